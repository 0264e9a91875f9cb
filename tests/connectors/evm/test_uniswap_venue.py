"""`UniswapVenue` on anvil against the real Uniswap v3 SwapRouter/QuoterV2 and v2 router and pair.

The venue trades from a fresh account (100 ETH, tokens sent by the deployer) through a real
`ChainSession`. Every expected amount comes from the real contracts: QuoterV2 and the v2 router's
getAmountsOut / getAmountsIn before the swap, token balanceOf and the account's ETH balance before
and after, the receipts' gasUsed x effectiveGasPrice.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from decimal import ROUND_CEILING, Decimal
from typing import Any

import pytest
import pytest_asyncio
from web3 import AsyncWeb3
from web3.contract import AsyncContract
from web3.types import RPCEndpoint

from connectors.evm.chain import ChainSession, FeePolicy
from connectors.evm.erc20 import from_base_units
from connectors.evm.keys import LocalSigner
from connectors.evm.uniswap_venue import UniswapPoolSpec, UniswapVenue
from core.enums import OrderStatus, OrderType, Side
from core.events import Event, Fill, OrderUpdate, PoolState
from core.instruments import Pool, Spot
from core.orders import OrderRequest, SwapRequest
from core.venue import Venue
from tests.connectors.evm.conftest import V2Deployment, V3Deployment

pytestmark = pytest.mark.asyncio(loop_scope="session")

D = Decimal
V = "uni"
FUNDS = 50_000 * 10**18  # of each token sent to the venue's account
WAIT_S = 20.0  # a guard against a hang, never a timing assertion


async def rpc(w3: AsyncWeb3[Any], method: str, *params: Any) -> Any:
    reply = await w3.provider.make_request(RPCEndpoint(method), list(params))
    assert "error" not in reply, reply
    return reply["result"]


class Collector:
    """Drains `venue.stream()` in the background."""

    def __init__(self, venue: UniswapVenue) -> None:
        self.events: list[Event] = []
        self._changed = asyncio.Condition()
        self._stream = venue.stream()
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async for event in self._stream:
            async with self._changed:
                self.events.append(event)
                self._changed.notify_all()

    async def wait(self, predicate: Callable[[list[Event]], bool]) -> list[Event]:
        async with asyncio.timeout(WAIT_S), self._changed:
            await self._changed.wait_for(lambda: predicate(self.events))
        return self.events

    def of(self, kind: type[Any], cid: str | None = None) -> list[Any]:
        return [e for e in self.events if type(e) is kind and (cid is None or e.client_order_id == cid)]

    async def close(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


def final(cid: str) -> Callable[[list[Event]], bool]:
    return lambda events: any(
        type(e) is OrderUpdate and e.client_order_id == cid and e.status.is_terminal for e in events
    )


async def _fund(deployer: Any, tokens: list[AsyncContract], w3: AsyncWeb3[Any], to: str) -> None:
    for token in tokens:
        tx = await token.functions.transfer(to, FUNDS).transact({"from": deployer})
        assert (await w3.eth.wait_for_transaction_receipt(tx))["status"] == 1


async def _session(w3: AsyncWeb3[Any], key: str) -> ChainSession:
    session = ChainSession(
        w3, LocalSigner.from_hex(key, "test key"), 31337, FeePolicy(D(100)), poll_interval_s=0.01
    )
    await session.start()
    return session


def v3_spec(v3: V3Deployment) -> UniswapPoolSpec:
    pool = Pool("A/B-v3", V, 31337, v3.pool.address, "A", "B", v3.fee, 3, v3.tick_spacing)
    return UniswapPoolSpec(pool, Spot("A/B", "A", "B"), v3.router.address)


@pytest_asyncio.fixture(loop_scope="session")
async def v3_venue(v3: V3Deployment, funded_key: str) -> AsyncIterator[UniswapVenue]:
    session = await _session(v3.w3, funded_key)
    await _fund(v3.deployer, [v3.token0, v3.token1], v3.w3, session.address)
    venue = UniswapVenue(
        V, session, [v3_spec(v3)], {"A": v3.token0.address, "B": v3.token1.address}, poll_interval_s=0.02
    )
    await venue.start()
    yield venue
    await venue.close()


async def eth(w3: AsyncWeb3[Any], address: str) -> int:
    return int(await w3.eth.get_balance(address))  # type: ignore[arg-type]


async def token_balances(venue: UniswapVenue) -> dict[str, int]:
    return {token_id: await token.balance_of() for token_id, token in venue.tokens.items()}


async def quoter(
    v3: V3Deployment, token_in: AsyncContract, token_out: AsyncContract, amount: int, exact_in: bool
) -> int:
    params = {
        "tokenIn": token_in.address,
        "tokenOut": token_out.address,
        "amountIn" if exact_in else "amount": amount,
        "fee": v3.fee,
        "sqrtPriceLimitX96": 0,
    }
    functions = v3.quoter.functions
    call = functions.quoteExactInputSingle(params) if exact_in else functions.quoteExactOutputSingle(params)
    return int((await call.call())[0])


async def gas_paid_since(w3: AsyncWeb3[Any], address: str, block: int) -> int:
    """Wei `address` paid for the gas of its transactions mined after `block` (from their receipts)."""
    total = 0
    for number in range(block + 1, int(await w3.eth.block_number) + 1):
        for tx in (await w3.eth.get_block(number, full_transactions=True))["transactions"]:
            if tx["from"] == address:  # type: ignore[index]
                receipt = await w3.eth.get_transaction_receipt(tx["hash"])  # type: ignore[index]
                total += int(receipt["gasUsed"]) * int(receipt["effectiveGasPrice"])
    return total


async def test_v3_exact_input_buy_fills_with_the_quoter_amounts_and_the_gas_of_both_txs(
    v3: V3Deployment, v3_venue: UniswapVenue
) -> None:
    venue = v3_venue
    assert isinstance(venue, Venue)
    w3, me = v3.w3, venue.session.address
    amount_in = 1234 * 10**18 + 567  # B (the quote token) in: a BUY of A
    expected_out = await quoter(v3, v3.token1, v3.token0, amount_in, True)
    start_block = int(await w3.eth.block_number)
    eth_before, tokens_before = await eth(w3, me), await token_balances(venue)
    state_before = await venue.snapshot()
    collector = Collector(venue)
    try:
        ack = await venue.submit(SwapRequest("s-1", V, "A/B-v3", "B", "A", amount_in=amount_in))
        assert ack.status is OrderStatus.NEW and ack.venue_order_id.startswith("0x")
        events = await collector.wait(final("s-1"))
        receipt = await w3.eth.get_transaction_receipt(ack.venue_order_id)  # type: ignore[arg-type]
        mined = int(receipt["blockNumber"])
        # the pool's state after our swap's block, from the Swap log (before or after our fill)
        await collector.wait(lambda evs: any(type(e) is PoolState and e.block_number == mined for e in evs))
    finally:
        await collector.close()
    (fill,) = collector.of(Fill, "s-1")
    updates = collector.of(OrderUpdate, "s-1")
    assert [u.status for u in updates] == [OrderStatus.FILLED]
    paid_wei = eth_before - await eth(w3, me)
    assert paid_wei == await gas_paid_since(w3, me, start_block)  # approval + swap
    assert int(await w3.eth.get_transaction_count(me)) == 2
    assert (fill.side, fill.instrument, fill.trade_id) == (Side.BUY, "A/B", ack.venue_order_id)
    assert fill.quantity == from_base_units(expected_out, 18)
    assert fill.notional == from_base_units(amount_in, 18)
    assert (fill.fee, fill.fee_asset) == (from_base_units(paid_wei, 18), "ETH")
    tokens_after = await token_balances(venue)
    assert tokens_after["A"] - tokens_before["A"] == expected_out
    assert tokens_before["B"] - tokens_after["B"] == amount_in
    assert await venue.tokens["B"].allowance(v3.router.address) == 0  # exactly what the swap spent
    state_after = await venue.snapshot()
    assert state_after.balances["A"] - state_before.balances["A"] == fill.quantity
    assert state_before.balances["B"] - state_after.balances["B"] == fill.notional
    assert state_before.balances["ETH"] - state_after.balances["ETH"] == fill.fee
    assert state_after.open_orders == () and state_after.pending_transactions == ()
    sqrt_price, tick, liquidity = await v3.read_slot0()
    (pool_state,) = [e for e in events if type(e) is PoolState and e.block_number == mined]
    assert (pool_state.sqrt_price_x96, pool_state.tick, pool_state.liquidity) == (sqrt_price, tick, liquidity)
    # a fill's ts is its block's time
    block = await w3.eth.get_block(receipt["blockNumber"])
    assert fill.ts == int(block["timestamp"]) * 10**9


async def test_v3_exact_output_sell_approves_the_bound_and_spends_the_quoter_input(
    v3: V3Deployment, v3_venue: UniswapVenue
) -> None:
    venue = v3_venue
    amount_out = 777 * 10**18  # B out for A in: a SELL of A
    expected_in = await quoter(v3, v3.token0, v3.token1, amount_out, False)
    bound = expected_in + expected_in // 100  # 1% above the quote, within max_slippage 5%
    tokens_before = await token_balances(venue)
    collector = Collector(venue)
    try:
        request = SwapRequest("s-2", V, "A/B-v3", "A", "B", amount_out=amount_out, max_amount_in=bound)
        assert (await venue.submit(request)).status is OrderStatus.NEW
        await collector.wait(final("s-2"))
    finally:
        await collector.close()
    (fill,) = collector.of(Fill, "s-2")
    assert (fill.side, fill.quantity, fill.notional) == (
        Side.SELL,
        from_base_units(expected_in, 18),
        from_base_units(amount_out, 18),
    )
    tokens_after = await token_balances(venue)
    assert (tokens_before["A"] - tokens_after["A"], tokens_after["B"] - tokens_before["B"]) == (
        expected_in,
        amount_out,
    )
    # approved exactly the bound; what the swap did not use is left
    assert await venue.tokens["A"].allowance(v3.router.address) == bound - expected_in


async def test_v2_exact_input_matches_the_routers_get_amounts_out(
    v2: V2Deployment, v2_router: AsyncContract, funded_key: str
) -> None:
    w3 = v2.w3
    session = await _session(w3, funded_key)
    await _fund(v2.deployer, [v2.token0, v2.token1], w3, session.address)
    pool = Pool("X/Y-v2", V, 31337, v2.pair.address, "X", "Y", 3000, 2)
    spec = UniswapPoolSpec(pool, Spot("X/Y", "X", "Y"), v2_router.address)
    venue = UniswapVenue(V, session, [spec], {"X": v2.token0.address, "Y": v2.token1.address})
    await venue.start()
    amount_in = 3 * 10**18 + 1  # X in: a SELL of X
    path = [v2.token0.address, v2.token1.address]
    expected_out = int((await v2_router.functions.getAmountsOut(amount_in, path).call())[1])
    collector = Collector(venue)
    try:
        assert (
            await venue.submit(SwapRequest("v2-1", V, pool.id, "X", "Y", amount_in=amount_in))
        ).status is (OrderStatus.NEW)
        events = await collector.wait(final("v2-1"))
        await collector.wait(lambda evs: any(type(e) is PoolState for e in evs))
    finally:
        await collector.close()
        await venue.close()
    (fill,) = collector.of(Fill, "v2-1")
    assert (fill.side, fill.quantity, fill.notional) == (
        Side.SELL,
        from_base_units(amount_in, 18),
        from_base_units(expected_out, 18),
    )
    reserves = await v2.pair.functions.getReserves().call()
    (state,) = [e for e in events if type(e) is PoolState]
    assert (state.reserve0, state.reserve1) == (int(reserves[0]), int(reserves[1]))


async def test_bad_requests_are_refused_before_anything_is_sent(
    v3: V3Deployment, v3_venue: UniswapVenue
) -> None:
    venue = v3_venue
    me = venue.session.address
    eth_before, tokens_before = await eth(v3.w3, me), await token_balances(venue)
    quoted = await quoter(v3, v3.token1, v3.token0, 10**18, True)

    async def reason(request: Any) -> str:
        update = await venue.submit(request)
        assert update.status is OrderStatus.REJECTED, update
        return update.reason

    def swap(cid: str, **kw: Any) -> SwapRequest:
        fields: dict[str, Any] = {"pool": "A/B-v3", "token_in": "B", "token_out": "A", "amount_in": 10**18}
        fields.update(kw)
        return SwapRequest(cid, fields.pop("venue", V), **fields)

    assert (await reason(swap("r1", pool="nope"))).startswith("pool: 'nope' is not traded here")
    assert (await reason(swap("r2", token_in="C"))).startswith("token_in: 'C' is not a token of pool")
    assert (await reason(swap("r3", venue="other"))).startswith("venue: request for 'other'")
    assert await reason(swap("r4", amount_in=FUNDS + 1)) == (
        f"amount_in: the swap may spend {FUNDS + 1} base units of B, the wallet holds {FUNDS}"
    )
    loose = quoted * 94 // 100
    assert (await reason(swap("r5", min_amount_out=loose))).startswith(
        f"min_amount_out: {loose} is below the quote {quoted} by more than max_slippage 0.05"
    )
    assert (await reason(swap("r6", deadline_ns=1))).startswith("deadline_ns: 1 is not after now")
    assert (await reason(swap("r7", amount_in=None, amount_out=10**18, min_amount_out=1))).startswith(
        "min_amount_out: 1 applies to exact input only"
    )
    assert (await reason(swap("r8", amount_in=10**40))).startswith(
        "amount_in: "
    )  # beyond the pool's liquidity
    order = OrderRequest("r9", V, "A/B", Side.BUY, D(1), OrderType.MARKET)
    assert await reason(order) == "request: uni takes SwapRequest, got OrderRequest"
    unknown = await venue.cancel("never-sent")
    assert (unknown.status, unknown.reason) == (OrderStatus.REJECTED, "client_order_id: 'never-sent' unknown")
    # nothing sent, nothing paid
    assert int(await v3.w3.eth.get_transaction_count(me)) == 0
    assert (await eth(v3.w3, me), await token_balances(venue)) == (eth_before, tokens_before)


async def test_a_bound_the_pool_cannot_meet_is_refused_in_estimation_paying_only_the_approval(
    v3: V3Deployment, v3_venue: UniswapVenue
) -> None:
    venue = v3_venue
    me = venue.session.address
    amount_in = 10**18
    quoted = await quoter(v3, v3.token1, v3.token0, amount_in, True)
    start_block = int(await v3.w3.eth.block_number)
    eth_before, tokens_before = await eth(v3.w3, me), await token_balances(venue)
    update = await venue.submit(
        SwapRequest("e-1", V, "A/B-v3", "B", "A", amount_in=amount_in, min_amount_out=quoted + 1)
    )
    assert update.status is OrderStatus.REJECTED
    assert update.reason == "min_amount_out: Too little received (refused in gas estimation, nothing sent)"
    approval_gas = await gas_paid_since(v3.w3, me, start_block)
    assert int(await v3.w3.eth.get_transaction_count(me)) == 1  # the approval only
    assert (update.fee, update.fee_asset) == (from_base_units(approval_gas, 18), "ETH")
    assert eth_before - await eth(v3.w3, me) == approval_gas
    assert await token_balances(venue) == tokens_before


async def test_a_mined_revert_is_rejected_with_its_reason_and_the_gas_burnt(
    v3: V3Deployment, funded_key: str
) -> None:
    session = await _session(v3.w3, funded_key)
    await _fund(v3.deployer, [v3.token0, v3.token1], v3.w3, session.address)
    tokens = {"A": v3.token0.address, "B": v3.token1.address}
    venue = UniswapVenue(V, session, [v3_spec(v3)], tokens, swap_gas_limit=400_000, poll_interval_s=0.02)
    await venue.start()
    me = session.address
    amount_in = 10**18
    quoted = await quoter(v3, v3.token1, v3.token0, amount_in, True)
    start_block = int(await v3.w3.eth.block_number)
    eth_before, tokens_before = await eth(v3.w3, me), await token_balances(venue)
    collector = Collector(venue)
    try:
        ack = await venue.submit(
            SwapRequest("m-1", V, "A/B-v3", "B", "A", amount_in=amount_in, min_amount_out=quoted + 1)
        )
        assert ack.status is OrderStatus.NEW
        await collector.wait(final("m-1"))
    finally:
        await collector.close()
        await venue.close()
    (update,) = collector.of(OrderUpdate, "m-1")
    receipt = await v3.w3.eth.get_transaction_receipt(ack.venue_order_id)  # type: ignore[arg-type]
    assert receipt["status"] == 0
    assert update.status is OrderStatus.REJECTED and collector.of(Fill) == []
    assert (
        update.reason
        == f"min_amount_out: Too little received (reverted in block {receipt['blockNumber']}, gas paid)"
    )
    gas = await gas_paid_since(v3.w3, me, start_block)  # approval + the reverted swap
    assert (update.fee, update.fee_asset) == (from_base_units(gas, 18), "ETH")
    assert eth_before - await eth(v3.w3, me) == gas
    assert await token_balances(venue) == tokens_before


async def test_cancel_replaces_a_pending_swap_by_a_no_op_at_its_nonce(
    v3: V3Deployment, v3_venue: UniswapVenue
) -> None:
    venue = v3_venue
    w3, me = v3.w3, venue.session.address
    await venue.tokens["B"].approve(v3.router.address, 10**18)  # so the swap is the only tx pending
    tokens_before = await token_balances(venue)
    eth_before = await eth(w3, me)
    collector = Collector(venue)
    await rpc(w3, "evm_setAutomine", False)
    try:
        ack = await venue.submit(SwapRequest("c-1", V, "A/B-v3", "B", "A", amount_in=10**18))
        assert ack.status is OrderStatus.NEW and ack.reason == "sent at nonce 1"
        state = await venue.snapshot()
        assert [(p.tx_hash, p.nonce, p.client_order_id) for p in state.pending_transactions] == [
            (ack.venue_order_id, 1, "c-1")
        ]
        assert [(o.client_order_id, o.status) for o in state.open_orders] == [("c-1", OrderStatus.NEW)]
        answer = await venue.cancel("c-1")
        assert answer.status is OrderStatus.NEW and answer.reason.startswith("cancel: no-op 0x")
        replacement = answer.reason.split()[2]
        await rpc(w3, "evm_mine")
        await collector.wait(final("c-1"))
    finally:
        await rpc(w3, "evm_setAutomine", True)
        await collector.close()
    (update,) = collector.of(OrderUpdate, "c-1")
    receipt = await w3.eth.get_transaction_receipt(replacement)  # type: ignore[arg-type]
    assert (receipt["status"], receipt["to"], int(receipt["gasUsed"])) == (1, me, 21_000)
    gas = int(receipt["gasUsed"]) * int(receipt["effectiveGasPrice"])
    assert (update.status, update.fee, update.venue_order_id) == (
        OrderStatus.CANCELLED,
        from_base_units(gas, 18),
        replacement,
    )
    assert collector.of(Fill) == []
    assert await token_balances(venue) == tokens_before and eth_before - await eth(w3, me) == gas
    assert (await venue.snapshot()).pending_transactions == ()
    # a final swap cannot be cancelled: the answer keeps its status
    late = await venue.cancel("c-1")
    assert (late.status, late.reason) == (
        OrderStatus.CANCELLED,
        "cancel: too late, the swap is final (cancelled)",
    )


async def test_gas_priced_in_the_quote_token_when_a_native_price_is_given(
    v3: V3Deployment, funded_key: str
) -> None:
    session = await _session(v3.w3, funded_key)
    await _fund(v3.deployer, [v3.token0, v3.token1], v3.w3, session.address)
    tokens = {"A": v3.token0.address, "B": v3.token1.address}
    venue = UniswapVenue(V, session, [v3_spec(v3)], tokens, native_price=D("3123.45"), poll_interval_s=0.02)
    await venue.start()
    eth_before = await eth(v3.w3, session.address)
    collector = Collector(venue)
    try:
        await venue.submit(SwapRequest("q-1", V, "A/B-v3", "A", "B", amount_in=10**18))
        await collector.wait(final("q-1"))
    finally:
        await collector.close()
        await venue.close()
    (fill,) = collector.of(Fill, "q-1")
    wei = eth_before - await eth(v3.w3, session.address)
    # wei x 3123.45 / 1e18 B, rounded up to B's base unit (1e-18)
    expected = (D(wei) * D("3123.45") / D(10**18)).quantize(D("1e-18"), rounding=ROUND_CEILING)
    assert (fill.fee, fill.fee_asset) == (expected, "B")
