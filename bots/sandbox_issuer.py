"""The sandbox's issuer: the Alpaca emulator's tokenization desk settled on the real chain.

The emulator's `TokenizationDesk` keeps token wallets in memory. In the sandbox the tokens are the
real TSLAx on anvil, so `ChainTokenizationDesk` keeps the desk's view of every wallet equal to the
chain, and `settle()` (called by the market driver every step) does on chain what the desk
decided:

- a **mint** that completed (shares journaled out of the Alpaca account, the delay passed) mints
  `qty` TSLAx to its `wallet_address` from the issuer account; the request's `tx_hash` becomes the
  mint transaction's hash;
- a **redeem** the desk accepted (tokens leave the wallet at once, shares come back when it
  completes) burns `qty` TSLAx from the wallet (the issuer may burn any holder's tokens, as
  xStocks' redemption wallet takes them); if the wallet no longer holds them on chain (spent
  since), the request is rejected and the desk gives back what it took;
- then every wallet the desk has seen is read back from the chain.

One token per share (the multiplier is 1 in the sandbox); amounts in whole base units (18 decimals).
Only the `ethereum` network settles on chain; the desk refuses the others in the sandbox.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from web3 import AsyncWeb3
from web3.contract import AsyncContract

from bots.sandbox_deploy import TOKEN_DECIMALS, send
from connectors.emulators.alpaca_tokenization import TokenizationDesk, TokenizationRequestRecord
from connectors.evm.erc20 import from_base_units, to_base_units

log = logging.getLogger("perpetua.sandbox.issuer")

NETWORK = "ethereum"


def _key(wallet: str) -> str:
    """A wallet as one key whatever its case: the checksum address when it is one."""
    return AsyncWeb3.to_checksum_address(wallet) if AsyncWeb3.is_address(wallet) else wallet


@dataclass
class ChainTokenizationDesk(TokenizationDesk):
    """A `TokenizationDesk` whose token wallets are the chain's balances (module doc).

    Call `bind(w3, token, issuer)` before `settle()`; `token` is the StockToken contract.
    """

    def __post_init__(self) -> None:
        self._w3: AsyncWeb3[Any] | None = None
        self._token: AsyncContract | None = None
        self._issuer = AsyncWeb3.to_checksum_address("0x" + "00" * 20)
        self._settled: set[str] = set()  # request ids done on chain (or rejected for it)

    def bind(self, w3: AsyncWeb3[Any], token: AsyncContract, issuer: str) -> None:
        """Settle on `token` (the StockToken contract) as `issuer` (an unlocked node account)."""
        self._w3, self._token, self._issuer = w3, token, AsyncWeb3.to_checksum_address(issuer)

    def credit_wallet(self, network: str, wallet: str, token_symbol: str, qty: Decimal) -> None:
        """Move the desk's view of a wallet by `qty` tokens (the chain catches up in `settle`)."""
        super().credit_wallet(network, _key(wallet), token_symbol, qty)

    def wallet(self, network: str, wallet: str, token_symbol: str) -> Decimal:
        """The desk's view of a wallet's tokens: the chain's balance at the last `settle`, less redeems
        accepted since."""
        return super().wallet(network, _key(wallet), token_symbol)

    async def watch(self, wallet: str) -> None:
        """Read `wallet`'s TSLAx from the chain now, so a redeem can be checked before any request."""
        await self._read_back({_key(wallet)})

    async def settle(self) -> None:
        """Do on chain what the desk decided since the last call (module doc)."""
        if self._token is None or self._w3 is None:
            raise RuntimeError("ChainTokenizationDesk.bind() was not called")
        self.advance()
        for record in list(self.requests.values()):
            if record.id in self._settled or record.network != NETWORK:
                continue
            if record.type == "mint" and record.status == "completed":
                await self._mint_on_chain(record)
            elif record.type == "redeem" and record.status in ("pending", "completed"):
                await self._burn_on_chain(record)
        seen = {key[1] for key in self.wallets if key[0] == NETWORK}
        await self._read_back(seen)

    async def _mint_on_chain(self, record: TokenizationRequestRecord) -> None:
        assert self._token is not None and self._w3 is not None
        amount = to_base_units(record.qty, TOKEN_DECIMALS, "qty")
        receipt = await send(
            self._w3, self._token.functions.mint(_key(record.wallet_address), amount), self._issuer
        )
        record.tx_hash = receipt["transactionHash"].to_0x_hex()
        self._settled.add(record.id)
        log.info("minted %s TSLAx to %s for request %s", record.qty, record.wallet_address, record.id)

    async def _burn_on_chain(self, record: TokenizationRequestRecord) -> None:
        assert self._token is not None and self._w3 is not None
        amount = to_base_units(record.qty, TOKEN_DECIMALS, "qty")
        holder = _key(record.wallet_address)
        held = int(await self._token.functions.balanceOf(holder).call())
        self._settled.add(record.id)
        if held < amount:  # the tokens were spent on chain since the desk accepted the redeem
            if record.status == "pending":
                self.fail(record.id, f"wallet {holder} holds {from_base_units(held, TOKEN_DECIMALS)} TSLAx")
                return
            # completed already (no processing delay): the shares went out, take what is there
            log.warning("redeem %s completed but %s holds only %s base units", record.id, holder, held)
            amount = held
        if not amount:
            return
        receipt = await send(self._w3, self._token.functions.burn(holder, amount), self._issuer)
        record.tx_hash = receipt["transactionHash"].to_0x_hex()
        log.info("burnt %s TSLAx of %s for request %s", record.qty, holder, record.id)

    async def _read_back(self, wallets: set[str]) -> None:
        """Set the desk's view of each wallet to its chain balance."""
        assert self._token is not None
        for wallet in wallets:
            if not AsyncWeb3.is_address(wallet):
                continue
            raw = int(await self._token.functions.balanceOf(_key(wallet)).call())
            for symbol in set(self.tokens.values()):
                self.wallets[(NETWORK, _key(wallet), symbol)] = from_base_units(raw, TOKEN_DECIMALS)
