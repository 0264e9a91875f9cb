"""ERC-20 tokens: balances, decimals, allowance and approvals, transfers; stock tokens' multiplier.

Amounts are integer base units everywhere (`balance_of`, `approve`, `transfer`); `to_base_units` and
`from_base_units` convert exactly to and from Decimal display units (no rounding, no context).
Approvals are for the exact amount needed and skipped when the allowance already covers it;
an unlimited approval (2**256 - 1) happens only when the token was built with
`unlimited_approvals=True`.

A `StockToken` (ERC-8056-style, `contracts/StockToken.sol`) adds a UI multiplier (1e18 = 1x) for
corporate actions: shares represented = raw balance x multiplier / 1e18. Raw amounts (what
transfers and pools move) and displayed amounts (shares, what the price of the real stock applies
to) are kept apart: every displayed value is computed from a raw amount and a named multiplier.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from eth_typing import ChecksumAddress
from web3 import AsyncWeb3
from web3.contract import AsyncContract
from web3.types import TxReceipt

from connectors.evm.chain import ChainSession
from core.errors import InvalidInput

MAX_UINT256 = 2**256 - 1
MULTIPLIER_ONE = 10**18  # a UI multiplier of exactly 1x


def _fn(
    name: str, inputs: Sequence[tuple[str, str]], outputs: Sequence[str], mutability: str
) -> dict[str, Any]:
    return {
        "type": "function",
        "name": name,
        "stateMutability": mutability,
        "inputs": [{"name": arg, "type": kind} for arg, kind in inputs],
        "outputs": [{"name": "", "type": kind} for kind in outputs],
    }


def _event(name: str, *inputs: tuple[str, str, bool]) -> dict[str, Any]:
    return {
        "type": "event",
        "name": name,
        "anonymous": False,
        "inputs": [{"name": arg, "type": kind, "indexed": indexed} for arg, kind, indexed in inputs],
    }


ERC20_ABI: list[dict[str, Any]] = [
    _fn("name", [], ["string"], "view"),
    _fn("symbol", [], ["string"], "view"),
    _fn("decimals", [], ["uint8"], "view"),
    _fn("totalSupply", [], ["uint256"], "view"),
    _fn("balanceOf", [("owner", "address")], ["uint256"], "view"),
    _fn("allowance", [("owner", "address"), ("spender", "address")], ["uint256"], "view"),
    _fn("approve", [("spender", "address"), ("value", "uint256")], ["bool"], "nonpayable"),
    _fn("transfer", [("to", "address"), ("value", "uint256")], ["bool"], "nonpayable"),
    _fn(
        "transferFrom", [("from", "address"), ("to", "address"), ("value", "uint256")], ["bool"], "nonpayable"
    ),
    _event("Transfer", ("from", "address", True), ("to", "address", True), ("value", "uint256", False)),
    _event("Approval", ("owner", "address", True), ("spender", "address", True), ("value", "uint256", False)),
]

STOCK_TOKEN_ABI: list[dict[str, Any]] = [
    *ERC20_ABI,
    _fn("issuer", [], ["address"], "view"),
    _fn("uiMultiplier", [], ["uint256"], "view"),
    _fn("newUIMultiplier", [], ["uint256"], "view"),
    _fn("effectiveAt", [], ["uint256"], "view"),
    _fn("mint", [("to", "address"), ("amount", "uint256")], [], "nonpayable"),
    _fn("burn", [("from", "address"), ("amount", "uint256")], [], "nonpayable"),
    _fn("setUIMultiplier", [("multiplier", "uint256"), ("effectiveAt_", "uint256")], [], "nonpayable"),
    *({"type": "error", "name": name, "inputs": []} for name in ("NotIssuer", "InsufficientBalance")),
    *({"type": "error", "name": name, "inputs": []} for name in ("InsufficientAllowance", "ZeroMultiplier")),
]


def _check_amount(field: str, amount: int) -> int:
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise InvalidInput(field, amount, "must be an int of base units")
    if not 0 <= amount <= MAX_UINT256:
        raise InvalidInput(field, amount, "must be within 0 .. 2**256 - 1 base units")
    return amount


def from_base_units(raw: int, decimals: int) -> Decimal:
    """`raw` base units as an exact Decimal of display units (raw / 10**decimals, no rounding)."""
    sign, digits, exponent = Decimal(raw).as_tuple()
    return Decimal((sign, digits, int(exponent) - decimals))


def to_base_units(amount: Decimal, decimals: int, field: str = "amount") -> int:
    """Display-unit `amount` as exact integer base units; `InvalidInput` if it has more decimals than that."""
    if not isinstance(amount, Decimal) or not amount.is_finite():
        raise InvalidInput(field, amount, "must be a finite Decimal")
    sign, digits, exponent = amount.as_tuple()
    shift = int(exponent) + decimals
    mantissa = int("".join(map(str, digits)) or "0")
    if shift >= 0:
        units = mantissa * 10**shift
    else:
        units, remainder = divmod(mantissa, 10**-shift)
        if remainder:
            raise InvalidInput(field, amount, f"has more than {decimals} decimals (not a whole base unit)")
    return int(-units if sign else units)


def displayed_amount(raw: int, multiplier: int, decimals: int) -> Decimal:
    """Shares shown for `raw` base units at UI `multiplier` (1e18 = 1x): raw x mult / 1e18 / 10**decimals.

    Exact (a Decimal with decimals + 18 digits after the point at most).
    """
    return from_base_units(raw * multiplier, decimals + 18)


class ERC20:
    """An ERC-20 at `address`. Reads through `w3`; writes through `session` (the account that signs).

    `unlimited_approvals=True` lets `approve` grant 2**256 - 1 instead of the exact amount;
    `reset_before_approve=True` sets a non-zero allowance to 0 first (tokens like USDT require it).
    """

    abi: list[dict[str, Any]] = ERC20_ABI

    def __init__(
        self,
        w3: AsyncWeb3[Any],
        address: str,
        *,
        session: ChainSession | None = None,
        unlimited_approvals: bool = False,
        reset_before_approve: bool = False,
    ) -> None:
        self.w3 = w3
        self.address: ChecksumAddress = AsyncWeb3.to_checksum_address(address)
        self.contract: AsyncContract = w3.eth.contract(address=self.address, abi=self.abi)
        self.session = session
        self.unlimited_approvals = unlimited_approvals
        self.reset_before_approve = reset_before_approve
        self._decimals: int | None = None
        self._symbol: str | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._symbol or '?'} at {self.address})"

    def _session(self) -> ChainSession:
        if self.session is None:
            raise InvalidInput("session", None, f"{self!r} was built without a session; it can only read")
        return self.session

    async def decimals(self) -> int:
        """`decimals()`, read once."""
        if self._decimals is None:
            self._decimals = int(await self.contract.functions.decimals().call())
        return self._decimals

    async def symbol(self) -> str:
        """`symbol()`, read once."""
        if self._symbol is None:
            self._symbol = str(await self.contract.functions.symbol().call())
        return self._symbol

    async def total_supply(self) -> int:
        """`totalSupply()` in base units."""
        return int(await self.contract.functions.totalSupply().call())

    async def balance_of(self, owner: str | None = None) -> int:
        """`balanceOf(owner)` in base units (default owner: the session's account)."""
        who = AsyncWeb3.to_checksum_address(owner) if owner else self._session().address
        return int(await self.contract.functions.balanceOf(who).call())

    async def allowance(self, spender: str, owner: str | None = None) -> int:
        """`allowance(owner, spender)` in base units (default owner: the session's account)."""
        who = AsyncWeb3.to_checksum_address(owner) if owner else self._session().address
        return int(
            await self.contract.functions.allowance(who, AsyncWeb3.to_checksum_address(spender)).call()
        )

    async def to_units(self, amount: Decimal) -> int:
        """Display-unit `amount` in exact base units of this token."""
        return to_base_units(amount, await self.decimals())

    async def from_units(self, raw: int) -> Decimal:
        """`raw` base units of this token in exact display units."""
        return from_base_units(raw, await self.decimals())

    async def _call(self, function: str, *args: Any) -> TxReceipt:
        data = self.contract.encode_abi(function, args=list(args))
        return await self._session().send({"to": self.address, "data": data, "value": 0}, abi=self.abi)

    async def approve(self, spender: str, amount: int) -> TxReceipt | None:
        """Let `spender` move at least `amount` base units; None when the allowance already covers it.

        Grants exactly `amount` (2**256 - 1 only with `unlimited_approvals`).
        """
        _check_amount("amount", amount)
        spender_address = AsyncWeb3.to_checksum_address(spender)
        current = await self.allowance(spender_address)
        if current >= amount:
            return None
        if self.reset_before_approve and current:
            await self._call("approve", spender_address, 0)
        grant = MAX_UINT256 if self.unlimited_approvals else amount
        return await self._call("approve", spender_address, grant)

    async def revoke(self, spender: str) -> TxReceipt | None:
        """Set `spender`'s allowance to 0; None if it already is."""
        spender_address = AsyncWeb3.to_checksum_address(spender)
        if await self.allowance(spender_address) == 0:
            return None
        return await self._call("approve", spender_address, 0)

    async def transfer(self, to: str, amount: int) -> TxReceipt:
        """Send `amount` base units to `to`."""
        _check_amount("amount", amount)
        return await self._call("transfer", AsyncWeb3.to_checksum_address(to), amount)


@dataclass(frozen=True)
class MultiplierSchedule:
    """A stock token's UI multipliers (1e18 = 1x) as read at one block.

    `in_force` is `uiMultiplier()` at the block (time `read_at`, unix s); `scheduled` takes over
    from `effective_at` (unix s; already in force when `effective_at <= read_at`).
    """

    in_force: int
    scheduled: int
    effective_at: int
    read_at: int

    def at(self, ts: int) -> int:
        """The multiplier in force at unix time `ts` (s), as far as this read can tell."""
        if ts >= self.effective_at:
            return self.scheduled
        if self.read_at < self.effective_at:
            return self.in_force
        raise InvalidInput(
            "ts", ts, f"before the change at {self.effective_at}, which the token no longer reports"
        )


class StockToken(ERC20):
    """The project's `StockToken`: an ERC-20 with an issuer-scheduled UI multiplier (module doc)."""

    abi = STOCK_TOKEN_ABI

    async def multiplier(self) -> int:
        """`uiMultiplier()` now (1e18 = 1x)."""
        return int(await self.contract.functions.uiMultiplier().call())

    async def schedule(self, block: int | str = "latest") -> MultiplierSchedule:
        """The multipliers and the scheduled change, all read at the same `block`."""
        header = await self.w3.eth.get_block(block)  # type: ignore[arg-type]
        number = int(header["number"])
        functions = self.contract.functions
        in_force, scheduled, effective_at = await asyncio.gather(
            functions.uiMultiplier().call(block_identifier=number),
            functions.newUIMultiplier().call(block_identifier=number),
            functions.effectiveAt().call(block_identifier=number),
        )
        return MultiplierSchedule(int(in_force), int(scheduled), int(effective_at), int(header["timestamp"]))

    async def displayed_balance(self, owner: str | None = None) -> tuple[int, Decimal]:
        """(raw balance in base units, shares shown) for `owner`, both at the same block."""
        who = AsyncWeb3.to_checksum_address(owner) if owner else self._session().address
        number = int(await self.w3.eth.block_number)
        raw, multiplier = await asyncio.gather(
            self.contract.functions.balanceOf(who).call(block_identifier=number),
            self.contract.functions.uiMultiplier().call(block_identifier=number),
        )
        return int(raw), displayed_amount(int(raw), int(multiplier), await self.decimals())

    async def issuer(self) -> ChecksumAddress:
        """The only account allowed to mint, burn and schedule multipliers."""
        return AsyncWeb3.to_checksum_address(await self.contract.functions.issuer().call())

    async def mint(self, to: str, amount: int) -> TxReceipt:
        """Issuer only: mint `amount` base units to `to`."""
        _check_amount("amount", amount)
        return await self._call("mint", AsyncWeb3.to_checksum_address(to), amount)

    async def burn(self, holder: str, amount: int) -> TxReceipt:
        """Issuer only: burn `amount` base units from `holder`."""
        _check_amount("amount", amount)
        return await self._call("burn", AsyncWeb3.to_checksum_address(holder), amount)

    async def set_multiplier(self, multiplier: int, effective_at: int) -> TxReceipt:
        """Issuer only: schedule `multiplier` (1e18 = 1x) from unix time `effective_at` (s)."""
        _check_amount("multiplier", multiplier)
        if multiplier == 0:
            raise InvalidInput("multiplier", multiplier, "must be > 0 (1e18 = 1x)")
        return await self._call("setUIMultiplier", multiplier, effective_at)
