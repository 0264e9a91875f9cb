"""Deploy the sandbox chain on a fresh anvil: the stock token, USDC, real Uniswap v3, the pool, an oracle.

Everything is deployed by anvil's first dev account (the deployer, also the token's issuer, USDC's
owner and the aggregator's owner), in a fixed order so the addresses are the ones `config.yaml`
lists for chain 31337 (CREATE addresses depend only on the deployer and its nonce):

| nonce | contract | address |
|---|---|---|
| 0 | TSLAx (`contracts/StockToken.sol`, 18 decimals) | 0x5FbDB2315678afecb367f032d93F642f64180aa3 |
| 1 | USDC (`contracts/MintableToken.sol`, 6 decimals) | 0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512 |
| 2 | UniswapV3Factory | 0x9fE46736679d2D9a65F0992F2272dE9f3c7fa6e0 |
| 3 | SwapRouter | 0xCf7Ed3AccA5a467e9e704C703E8D87F634fB0Fc9 |
| 4 | QuoterV2 | 0xDc64a140Aa3E981100a9becA4E685f962f0cF6C9 |
| 5 | MockAggregator TSLA / USD (8 decimals) | 0x5FC8d32690cc91D4c39d9d3abcBD16989F875707 |
| 6 | NonfungiblePositionManager | 0x0165878A594ca255338adfa4d48449f69242Eb8F |

The TSLAx/USDC 0.3% pool's address is the factory's CREATE2 address for the pair, so it is the same
on every fresh sandbox too (`POOL_ADDRESS`, 0x0daC8fCA3592681792D9f47Aa621F42B2A847FC7). TSLAx sorts
below USDC: token0 = TSLAx, token1 = USDC, the pool price is USDC per TSLAx. WETH9 and the NFT
descriptor are never used here (no ETH legs, no token URIs): the periphery gets a placeholder for them.

Liquidity: several positions minted through the position manager, centred on the start price: a
full-range one (so a price never runs out of liquidity) and nested ranges of +-20%, +-8% and +-3%,
so the pool is deepest near fair value, as a live pool's LPs make it.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any

from eth_typing import ChecksumAddress
from web3 import AsyncWeb3
from web3.contract import AsyncContract
from web3.logs import DISCARD
from web3.types import RPCEndpoint

from backtest.sample_data import price_to_sqrt_price_x96, sqrt_price_x96_to_price
from connectors.evm.chainlink import load_contract_artifact
from connectors.evm.uniswap_artifacts import ArtifactError, contract_at, deploy, load_artifact
from core.errors import InvalidInput
from pricing.amm import (
    MAX_TICK,
    MIN_TICK,
    get_amount0_delta,
    get_amount1_delta,
    get_sqrt_ratio_at_tick,
    get_tick_at_sqrt_ratio,
)

TOKEN_DECIMALS = 18  # TSLAx, as ERC-20 xStocks
USDC_DECIMALS = 6
ORACLE_DECIMALS = 8  # Chainlink USD feeds
POOL_FEE = 3000  # pips: 0.3%, tick spacing 60
DEADLINE = 2**32  # far-future deadline (unix s) for the deployer's periphery calls
PLACEHOLDER = AsyncWeb3.to_checksum_address("0x" + "11" * 20)  # WETH9 / NFT descriptor: never called
MAX_UINT256 = 2**256 - 1

TOKEN_ADDRESS = AsyncWeb3.to_checksum_address("0x5FbDB2315678afecb367f032d93F642f64180aa3")
USDC_ADDRESS = AsyncWeb3.to_checksum_address("0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512")
FACTORY_ADDRESS = AsyncWeb3.to_checksum_address("0x9fE46736679d2D9a65F0992F2272dE9f3c7fa6e0")
ROUTER_ADDRESS = AsyncWeb3.to_checksum_address("0xCf7Ed3AccA5a467e9e704C703E8D87F634fB0Fc9")
QUOTER_ADDRESS = AsyncWeb3.to_checksum_address("0xDc64a140Aa3E981100a9becA4E685f962f0cF6C9")
AGGREGATOR_ADDRESS = AsyncWeb3.to_checksum_address("0x5FC8d32690cc91D4c39d9d3abcBD16989F875707")
POSITION_MANAGER_ADDRESS = AsyncWeb3.to_checksum_address("0x0165878A594ca255338adfa4d48449f69242Eb8F")
# CREATE2 of the factory above for (TSLAx, USDC, 3000): the same on every fresh sandbox
POOL_ADDRESS = AsyncWeb3.to_checksum_address("0x0daC8fCA3592681792D9f47Aa621F42B2A847FC7")


@dataclass(frozen=True)
class LiquidityRange:
    """One LP position: +-`half_width` (fraction of the start price; None = full range), `liquidity` L."""

    half_width: Decimal | None
    liquidity: int


# In-range L near the start: 4.0e16, i.e. about USD 13,000 of USDC moves a USD 660 price by 1%
# (the bundled sample's single full-range position has 3.9e16): thin, as xStocks pools are.
DEFAULT_RANGES: tuple[LiquidityRange, ...] = (
    LiquidityRange(None, 16 * 10**15),
    LiquidityRange(Decimal("0.20"), 12 * 10**15),
    LiquidityRange(Decimal("0.08"), 8 * 10**15),
    LiquidityRange(Decimal("0.03"), 4 * 10**15),
)


@dataclass(frozen=True)
class ChainDeployment:
    """What `deploy_sandbox_chain` put on chain (checksum addresses; the pool's state at the end)."""

    deployer: ChecksumAddress
    token: ChecksumAddress
    usdc: ChecksumAddress
    factory: ChecksumAddress
    router: ChecksumAddress
    quoter: ChecksumAddress
    aggregator: ChecksumAddress
    position_manager: ChecksumAddress
    pool: ChecksumAddress
    initial_sqrt_price_x96: int
    position_ids: tuple[int, ...]


def price_to_sqrt(price: Decimal) -> int:
    """Q64.96 sqrt price of the TSLAx/USDC pool for `price` USDC per TSLAx (display units, floored)."""
    return price_to_sqrt_price_x96(Fraction(price), TOKEN_DECIMALS, USDC_DECIMALS)


def sqrt_to_price(sqrt_price_x96: int) -> Fraction:
    """Exact USDC per TSLAx (display units) of the pool's Q64.96 sqrt price."""
    return sqrt_price_x96_to_price(sqrt_price_x96, TOKEN_DECIMALS, USDC_DECIMALS)


def oracle_answer(price: Decimal | float) -> int:
    """`price` in USD as the aggregator's integer answer (8 decimals, rounded half-even)."""
    return int((Decimal(str(price)) * 10**ORACLE_DECIMALS).to_integral_value())


async def rpc(w3: AsyncWeb3[Any], method: str, *params: Any) -> Any:
    """A raw JSON-RPC call (anvil_* and evm_* methods); raises RuntimeError naming the method on an error."""
    reply = await w3.provider.make_request(RPCEndpoint(method), list(params))
    if "error" in reply:
        raise RuntimeError(f"{method} failed: {reply['error']}")
    return reply.get("result")


async def send(w3: AsyncWeb3[Any], call: Any, sender: ChecksumAddress) -> Any:
    """Send a contract call from the unlocked `sender` and wait for it; ArtifactError if it reverts."""
    tx_hash = await call.transact({"from": sender})
    receipt = await w3.eth.wait_for_transaction_receipt(tx_hash)
    if receipt["status"] != 1:
        raise ArtifactError(f"sandbox deployment: transaction {tx_hash.to_0x_hex()} reverted")
    return receipt


def _range_ticks(start_tick: int, half_width: Decimal | None, spacing: int) -> tuple[int, int]:
    """(lower, upper) ticks on the spacing for +-`half_width` around `start_tick` (None: full range)."""
    if half_width is None:
        return -(MAX_TICK // spacing) * spacing, (MAX_TICK // spacing) * spacing
    # 1.0001^ticks = 1 + w  ->  ticks = ln(1 + w) / ln(1.0001)
    width = int((Decimal(1) + half_width).ln() / Decimal("1.0001").ln())
    lower = max(MIN_TICK, start_tick - width) // spacing * spacing
    upper = -(-min(MAX_TICK, start_tick + width) // spacing) * spacing
    return lower, upper


def amounts_for_liquidity(sqrt_price_x96: int, lower: int, upper: int, liquidity: int) -> tuple[int, int]:
    """Base units of (token0, token1) that `liquidity` in [lower, upper) needs at `sqrt_price_x96`
    (rounded up, as the pool charges a mint)."""
    sqrt_lower, sqrt_upper = get_sqrt_ratio_at_tick(lower), get_sqrt_ratio_at_tick(upper)
    current = min(max(sqrt_price_x96, sqrt_lower), sqrt_upper)
    amount0 = get_amount0_delta(current, sqrt_upper, liquidity, True)
    amount1 = get_amount1_delta(sqrt_lower, current, liquidity, True)
    return amount0, amount1


async def deploy_sandbox_chain(
    w3: AsyncWeb3[Any],
    start_price: Decimal,
    ranges: tuple[LiquidityRange, ...] = DEFAULT_RANGES,
) -> ChainDeployment:
    """Deploy the sandbox contracts on a fresh node (see the module doc) and seed the pool.

    `start_price` (USDC per TSLAx) is the pool's initial price. Raises `InvalidInput` if it is not
    positive, `ArtifactError` if a deployment reverts or the node is not fresh (the addresses would
    differ from the documented ones).
    """
    if not isinstance(start_price, Decimal) or not start_price.is_finite() or start_price <= 0:
        raise InvalidInput("start_price", start_price, "must be a positive Decimal (USDC per TSLAx)")
    deployer = (await w3.eth.accounts)[0]
    if await w3.eth.get_transaction_count(deployer) != 0:
        raise ArtifactError(f"the deployer {deployer} has sent transactions already: not a fresh node")
    token = await deploy(w3, load_contract_artifact("StockToken"), "Tesla xStock", "TSLAx")
    usdc = await deploy(w3, load_contract_artifact("MintableToken"), "USD Coin", "USDC", USDC_DECIMALS)
    factory = await deploy(w3, load_artifact("UniswapV3Factory"))
    router = await deploy(w3, load_artifact("SwapRouter"), factory.address, PLACEHOLDER)
    quoter = await deploy(w3, load_artifact("QuoterV2"), factory.address, PLACEHOLDER)
    aggregator = await deploy(w3, load_contract_artifact("MockAggregator"), ORACLE_DECIMALS, "TSLA / USD")
    manager = await deploy(
        w3, load_artifact("NonfungiblePositionManager"), factory.address, PLACEHOLDER, PLACEHOLDER
    )
    expected = (
        TOKEN_ADDRESS,
        USDC_ADDRESS,
        FACTORY_ADDRESS,
        ROUTER_ADDRESS,
        QUOTER_ADDRESS,
        AGGREGATOR_ADDRESS,
        POSITION_MANAGER_ADDRESS,
    )
    actual = (
        token.address,
        usdc.address,
        factory.address,
        router.address,
        quoter.address,
        aggregator.address,
        manager.address,
    )
    if actual != expected:
        raise ArtifactError(f"sandbox addresses {actual} differ from the documented {expected}")

    await send(w3, factory.functions.createPool(token.address, usdc.address, POOL_FEE), deployer)
    pool_address = AsyncWeb3.to_checksum_address(
        await factory.functions.getPool(token.address, usdc.address, POOL_FEE).call()
    )
    if pool_address != POOL_ADDRESS:
        raise ArtifactError(f"pool address {pool_address} differs from the documented {POOL_ADDRESS}")
    pool = contract_at(w3, "UniswapV3Pool", pool_address)
    sqrt_start = price_to_sqrt(start_price)
    await send(w3, pool.functions.initialize(sqrt_start), deployer)
    spacing = int(await pool.functions.tickSpacing().call())
    start_tick = get_tick_at_sqrt_ratio(sqrt_start)

    positions: list[tuple[int, int, int, int]] = []
    need0 = need1 = 0
    for liquidity_range in ranges:
        lower, upper = _range_ticks(start_tick, liquidity_range.half_width, spacing)
        amount0, amount1 = amounts_for_liquidity(sqrt_start, lower, upper, liquidity_range.liquidity)
        # one unit more on each side: the manager rounds the liquidity it gets down
        positions.append((lower, upper, amount0 + 1, amount1 + 1))
        need0, need1 = need0 + amount0 + 1, need1 + amount1 + 1
    # One after the other: two sends at once from one account can both take the same nonce.
    await send(w3, token.functions.mint(deployer, need0), deployer)
    await send(w3, usdc.functions.mint(deployer, need1), deployer)
    for erc20 in (token, usdc):
        await send(w3, erc20.functions.approve(manager.address, MAX_UINT256), deployer)
    ids: list[int] = []
    for lower, upper, amount0, amount1 in positions:
        params = {
            "token0": token.address,
            "token1": usdc.address,
            "fee": POOL_FEE,
            "tickLower": lower,
            "tickUpper": upper,
            "amount0Desired": amount0,
            "amount1Desired": amount1,
            "amount0Min": 0,
            "amount1Min": 0,
            "recipient": deployer,
            "deadline": DEADLINE,
        }
        receipt = await send(w3, manager.functions.mint(params), deployer)
        ids.append(_minted_token_id(manager, receipt))
    return ChainDeployment(
        deployer=deployer,
        token=token.address,
        usdc=usdc.address,
        factory=factory.address,
        router=router.address,
        quoter=quoter.address,
        aggregator=aggregator.address,
        position_manager=manager.address,
        pool=pool_address,
        initial_sqrt_price_x96=sqrt_start,
        position_ids=tuple(ids),
    )


def _minted_token_id(manager: AsyncContract, receipt: Any) -> int:
    """The position NFT id of a `mint` receipt (its IncreaseLiquidity log)."""
    events = manager.events.IncreaseLiquidity().process_receipt(receipt, errors=DISCARD)
    if not events:
        raise ArtifactError("position manager mint left no IncreaseLiquidity log")
    return int(events[0]["args"]["tokenId"])


async def fund_wallet(
    w3: AsyncWeb3[Any],
    deployment: ChainDeployment,
    wallet: ChecksumAddress,
    *,
    eth_wei: int,
    usdc_units: int,
    token_units: int,
) -> None:
    """Give `wallet` `eth_wei` of ETH (anvil_setBalance), and mint it USDC and TSLAx (base units)."""
    await rpc(w3, "anvil_setBalance", wallet, hex(eth_wei))
    token = w3.eth.contract(address=deployment.token, abi=load_contract_artifact("StockToken").abi)
    usdc = w3.eth.contract(address=deployment.usdc, abi=load_contract_artifact("MintableToken").abi)
    if usdc_units:
        await send(w3, usdc.functions.mint(wallet, usdc_units), deployment.deployer)
    if token_units:
        await send(w3, token.functions.mint(wallet, token_units), deployment.deployer)
