"""Alpaca's tokenization API (Instant Tokenization Network) in the Alpaca emulator.

Documented (Alpaca's "Tokenization Guide for Authorized Participant", Trading API):

- `POST /v2/tokenization/mint` with `underlying_symbol`, `qty` (string, may be fractional),
  `issuer` (e.g. `xstocks`), `network` (e.g. `solana`), `wallet_address`, and the optional
  `client_request_id` (added 2026-11): the shares are journaled out of the AP's Alpaca account and
  the issuer mints tokens to the wallet. The answer and every status read is a tokenization request:
  `tokenization_request_id`, `type` (`mint`/`redeem`), `status` (`pending`, `completed`,
  `rejected`), `underlying_symbol`, `token_symbol`, `qty`, `issuer`, `network`, `wallet_address`,
  `issuer_request_id`, `tx_hash`, `created_at`, `client_request_id`.
- `GET /v2/tokenization/requests` (filters `type`, `status`), and the single-request lookups
  `GET /v2/tokenization/requests/{id}` and `GET /v2/tokenization/requests:by_client_request_id`
  (the Trading API path is inferred from the Broker API's
  `/v1/accounts/{id}/tokenization/requests:by_client_request_id`).

Not found in Alpaca's documentation, modelled here on the mint's shape (unverified):

- `POST /v2/tokenization/redeem` with the same fields (`wallet_address` = the wallet the tokens
  leave). Alpaca documents the AP's redeem as an on-chain transfer of the tokens to the issuer's
  redemption wallet, which Alpaca detects and lists as a `redeem` request; this endpoint stands for
  that step so the flow can be driven over REST.
- the `fees` field (USD charged per request), the minimum size, the processing delay and the
  windows: Alpaca publishes none of them; they are `TokenizationDesk` parameters.
- `Idempotency-Key` header on mint/redeem (documented for the issuer's redeem confirmation): the
  same key with the same body returns the first request, with another body a 422.

Rules (all refusals in Alpaca's error format `{"code": ..., "message": ...}`): unknown issuer,
network or symbol, or `qty` below `min_qty`: 422; outside the desk's `sessions` of the market
calendar at the emulator's clock: 422 naming the session; a mint needs the shares in the account
(403 `insufficient position for TSLA`) and a redeem the tokens in the wallet, and both the fee in
cash (403). Accepted: the shares (mint) or tokens (redeem) leave at once and the request is
`pending`; at `created + delay_ns` (judged lazily on every tokenization request, or by `advance()`)
it completes: tokens to the wallet or shares to the account, fee from the cash. `fail()` rejects a
pending request and returns what it took.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from aiohttp import web

from connectors.emulators.alpaca import (
    AlpacaApiError,
    AlpacaEmulator,
    Handler,
    Position,
    rfc3339_ns,
    unprocessable,
)
from core.enums import Session

ZERO = Decimal(0)
DEFAULT_SESSIONS = frozenset({Session.PRE_MARKET, Session.REGULAR, Session.POST_MARKET})


@dataclass
class TokenizationRequestRecord:
    """One mint or redeem as the desk keeps it."""

    id: str
    type: str  # mint | redeem
    underlying_symbol: str
    token_symbol: str
    qty: Decimal
    issuer: str
    network: str
    wallet_address: str
    client_request_id: str | None
    created_ns: int
    due_ns: int
    created_at: str
    status: str = "pending"
    fee: Decimal = ZERO
    tx_hash: str | None = None
    updated_at: str = ""
    reason: str = ""

    def as_json(self) -> dict[str, Any]:
        return {
            "tokenization_request_id": self.id,
            "client_request_id": self.client_request_id,
            "issuer_request_id": f"iss-{self.id[-6:]}",
            "type": self.type,
            "status": self.status,
            "underlying_symbol": self.underlying_symbol,
            "token_symbol": self.token_symbol,
            "qty": str(self.qty),
            "issuer": self.issuer,
            "network": self.network,
            "wallet_address": self.wallet_address,
            "tx_hash": self.tx_hash,
            "fees": str(self.fee),
            "reason": self.reason or None,
            "created_at": self.created_at,
            "updated_at": self.updated_at or self.created_at,
        }


@dataclass
class TokenizationDesk:
    """The issuer side of the emulator: what it mints, its minimum, fee, delay and windows.

    Args:
        tokens: underlying symbol -> token symbol (`{"TSLA": "TSLAx"}`).
        issuer: the issuer name requests must carry.
        networks: accepted networks.
        min_qty: smallest request, in shares.
        fee: USD charged per completed request.
        delay_ns: from acceptance to completion.
        sessions: market sessions in which requests are accepted.
    """

    tokens: dict[str, str]
    issuer: str = "xstocks"
    networks: frozenset[str] = frozenset({"solana", "ethereum"})
    min_qty: Decimal = Decimal(1)
    fee: Decimal = ZERO
    delay_ns: int = 0
    sessions: frozenset[Session] = DEFAULT_SESSIONS
    requests: dict[str, TokenizationRequestRecord] = field(default_factory=dict)
    wallets: dict[tuple[str, str, str], Decimal] = field(default_factory=dict)
    _idempotency: dict[str, tuple[dict[str, Any], str]] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _emulator: AlpacaEmulator | None = None

    def attach(self, emulator: AlpacaEmulator) -> None:
        """Bind to the emulator whose account (positions, cash, calendar, clock) it works on."""
        self._emulator = emulator

    @property
    def emu(self) -> AlpacaEmulator:
        assert self._emulator is not None, "TokenizationDesk not attached to an AlpacaEmulator"
        return self._emulator

    def routes(self) -> list[tuple[str, str, Handler]]:
        return [
            ("POST", "/v2/tokenization/mint", self._mint),
            ("POST", "/v2/tokenization/redeem", self._redeem),
            ("GET", "/v2/tokenization/requests", self._list),
            ("GET", "/v2/tokenization/requests:by_client_request_id", self._by_client_request_id),
            ("GET", "/v2/tokenization/requests/{request_id}", self._get),
        ]

    # -- test controls ---------------------------------------------------------------------------

    def credit_wallet(self, network: str, wallet: str, token_symbol: str, qty: Decimal) -> None:
        """Put tokens in a wallet (as if bought on chain)."""
        key = (network, wallet, token_symbol)
        self.wallets[key] = self.wallets.get(key, ZERO) + qty

    def wallet(self, network: str, wallet: str, token_symbol: str) -> Decimal:
        return self.wallets.get((network, wallet, token_symbol), ZERO)

    def advance(self) -> None:
        """Complete every pending request whose processing delay has passed at the emulator's clock."""
        now = self.emu.clock.now_ns()
        for record in self.requests.values():
            if record.status == "pending" and record.due_ns <= now:
                self._complete(record)

    def fail(self, request_id: str, reason: str = "rejected by the issuer") -> None:
        """Reject a pending request; the shares or tokens it took go back."""
        record = self.requests[request_id]
        if record.status != "pending":
            raise ValueError(f"request {request_id} is {record.status}")
        self._give_back(record)
        record.status = "rejected"
        record.reason = reason
        record.updated_at = self._now_iso()

    # -- model -----------------------------------------------------------------------------------

    def _now_iso(self) -> str:
        return rfc3339_ns(self.emu.clock.now_ns())

    def _give_back(self, record: TokenizationRequestRecord) -> None:
        if record.type == "mint":
            self._move_shares(record.underlying_symbol, record.qty)
        else:
            self.credit_wallet(record.network, record.wallet_address, record.token_symbol, record.qty)

    def _move_shares(self, symbol: str, qty: Decimal) -> None:
        """Journal shares in (qty > 0) or out (qty < 0) of the account; cost moves at the average."""
        pos = self.emu.state.positions.setdefault(symbol, Position())
        avg = pos.cost / pos.qty if pos.qty else self.emu._mark(symbol)
        pos.qty += qty
        pos.cost += qty * avg

    def _complete(self, record: TokenizationRequestRecord) -> None:
        if self.emu.state.cash < record.fee:
            self.fail(record.id, f"insufficient cash for the fee {record.fee}")
            return
        self.emu.state.cash -= record.fee
        if record.type == "mint":
            self.credit_wallet(record.network, record.wallet_address, record.token_symbol, record.qty)
        else:
            self._move_shares(record.underlying_symbol, record.qty)
        record.status = "completed"
        record.tx_hash = "0x" + f"{int(record.id[-12:], 16):064x}"
        record.updated_at = self._now_iso()

    def _check(self, body: dict[str, Any], kind: str) -> tuple[str, Decimal, str, str, str]:
        issuer = body.get("issuer")
        if issuer != self.issuer:
            raise unprocessable(f"invalid issuer: {issuer}")
        network = body.get("network")
        if network not in self.networks:
            raise unprocessable(f"invalid network: {network}")
        symbol = str(body.get("underlying_symbol", ""))
        if symbol not in self.tokens:
            raise unprocessable(f'underlying symbol "{symbol}" is not available for tokenization')
        wallet = body.get("wallet_address")
        if not isinstance(wallet, str) or not wallet:
            raise unprocessable("wallet_address is required")
        qty = AlpacaEmulator._decimal(body, "qty")
        if qty < self.min_qty:
            raise unprocessable(f"qty {qty} is below the minimum {self.min_qty}")
        session = self.emu.calendar.session_at(self.emu.clock.now_ns())
        if session not in self.sessions:
            allowed = ", ".join(sorted(s.value for s in self.sessions))
            raise unprocessable(f"{kind} requests are accepted only during {allowed} (now {session.value})")
        if self.emu.state.cash < self.fee:
            raise AlpacaApiError(403, 40310000, f"insufficient cash for the tokenization fee {self.fee}")
        return symbol, qty, str(issuer), str(network), wallet

    async def _submit(self, request: web.Request, body: dict[str, Any], kind: str) -> web.Response:
        self.advance()
        key = request.headers.get("Idempotency-Key")
        if key is not None and key in self._idempotency:
            first_body, request_id = self._idempotency[key]
            if first_body != body:
                raise AlpacaApiError(422, 42210000, "idempotency key reused with a different request body")
            return web.json_response(self.requests[request_id].as_json())
        symbol, qty, issuer, network, wallet = self._check(body, kind)
        token = self.tokens[symbol]
        if kind == "mint":
            if self.emu.position(symbol) < qty:
                raise AlpacaApiError(403, 40310000, f"insufficient position for {symbol}")
            self._move_shares(symbol, -qty)
        else:
            if self.wallet(network, wallet, token) < qty:
                raise AlpacaApiError(403, 40310000, f"insufficient {token} balance in {wallet}")
            self.credit_wallet(network, wallet, token, -qty)
        now = self.emu.clock.now_ns()
        cid = body.get("client_request_id")
        record = TokenizationRequestRecord(
            id=f"10000000-0000-4000-8000-{next(self._ids):012d}",
            type=kind,
            underlying_symbol=symbol,
            token_symbol=token,
            qty=qty,
            issuer=issuer,
            network=network,
            wallet_address=wallet,
            client_request_id=None if cid is None else str(cid),
            created_ns=now,
            due_ns=now + self.delay_ns,
            created_at=rfc3339_ns(now),
            fee=self.fee,
        )
        self.requests[record.id] = record
        if key is not None:
            self._idempotency[key] = (body, record.id)
        self.advance()  # a zero delay completes at once
        return web.json_response(record.as_json())

    async def _mint(self, request: web.Request, body: dict[str, Any]) -> web.Response:
        return await self._submit(request, body, "mint")

    async def _redeem(self, request: web.Request, body: dict[str, Any]) -> web.Response:
        return await self._submit(request, body, "redeem")

    async def _list(self, request: web.Request, body: dict[str, Any]) -> web.Response:
        self.advance()
        kind, status = request.query.get("type"), request.query.get("status")
        out = [
            r.as_json()
            for r in self.requests.values()
            if (kind is None or r.type == kind) and (status is None or r.status == status)
        ]
        return web.json_response(out)

    async def _get(self, request: web.Request, body: dict[str, Any]) -> web.Response:
        self.advance()
        record = self.requests.get(request.match_info["request_id"])
        if record is None:
            raise AlpacaApiError(404, 40410000, "tokenization request not found")
        return web.json_response(record.as_json())

    async def _by_client_request_id(self, request: web.Request, body: dict[str, Any]) -> web.Response:
        self.advance()
        wanted = request.query.get("client_request_id")
        matches = [r for r in self.requests.values() if r.client_request_id == wanted]
        if not matches:
            raise AlpacaApiError(404, 40410000, "tokenization request not found")
        return web.json_response(max(matches, key=lambda r: r.created_ns).as_json())
