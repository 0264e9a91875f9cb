"""Mint and redeem of tokenized stocks through Alpaca's tokenization API, as a `Venue`.

Alpaca's Instant Tokenization Network converts shares in the Alpaca account into an issuer's
tokens (xStocks on Solana, ...) and back, in kind: a mint of `qty` journals `qty` shares out of the
account and the issuer sends the tokens to `wallet_address`; a redeem does the reverse.

Endpoints (see `connectors.emulators.alpaca_tokenization` for the sources):

- `POST /v2/tokenization/mint` with `issuer`, `network`, `underlying_symbol`, `qty`,
  `wallet_address`, `client_request_id` (= our client order id): documented.
- `GET /v2/tokenization/requests/{id}`: status `pending` -> `completed` | `rejected`: documented;
  `GET /v2/tokenization/requests:by_client_request_id`: the Trading API path is inferred from the
  Broker API's.
- `POST /v2/tokenization/redeem` with the mint's fields: UNVERIFIED. Alpaca documents the AP's
  redeem only as an on-chain transfer of the tokens to the issuer's redemption wallet, which
  Alpaca then lists as a `redeem` request; no REST redeem endpoint was found. This connector sends
  the modelled request; a live deployment has to replace `_send` for redeems by the transfer and
  then follow the detected request exactly as here.

The venue port: `submit(MintRequest | RedeemRequest)` checks locally, in this order, and answers
REJECTED naming the field and value without sending anything when a check fails: the venue, a
token listed in `listings`, the in-kind asset (`pay_asset` / `receive_asset` must be the underlying
symbol), `quantity` >= `terms.min_qty`, the issuer's window (`terms.sessions` of the market
calendar at the clock), the fee (`terms.fee` USD must be in the account's cash), and for a mint
the shares (the account must hold `quantity`). Then it sends the request with the broker's retry
policy; before any resend it looks the request up by `client_request_id` (and sends an
`Idempotency-Key`), so a timeout after Alpaca took the request never creates a second one. The
answer is ACCEPTED (pending; `venue_order_id` = Alpaca's `tokenization_request_id`) or REJECTED
with Alpaca's message.

`stream()` polls every pending request (`GET /v2/tokenization/requests/{id}`) with backoff,
`poll_s` doubling up to `max_poll_s` while nothing changes, and yields, exactly once per request:
on `completed` a `Fill` on the pair `{token}/{underlying}` (mint BUY, redeem SELL; `quantity`
tokens at `price` 1 share per token; `fee` in USD from the answer's `fees`, else `terms.fee`)
followed by an `OrderUpdate` FILLED; on `rejected` an `OrderUpdate` CANCELLED with the reason (the
request was ACCEPTED before, and the shares or tokens went back). 1 token per share assumes the
token's multiplier is 1 at the issuer's books: a displayed multiplier is the token's concern
(unverified how xStocks count a mint after dividends). `cancel` cannot cancel at Alpaca and says
so. Keys and HTTP come from the `AlpacaBroker` the desk is built on (same account): never logged.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from connectors.base import EventQueue
from connectors.brokers.alpaca import AlpacaBroker, AlpacaError
from core.enums import Liquidity, OrderStatus, Session, Side
from core.errors import InvalidInput
from core.events import Event, Fill, OrderUpdate
from core.orders import MintRequest, RedeemRequest, Request
from core.venue import VenueState

log = logging.getLogger(__name__)

DEFAULT_SESSIONS = frozenset({Session.PRE_MARKET, Session.REGULAR, Session.POST_MARKET})
"""The issuer's window by default: 04:00-20:00 New York on trading days (unverified)."""
ONE = Decimal(1)


@dataclass(frozen=True, slots=True)
class TokenListing:
    """A token Alpaca can mint: our token id, its underlying, issuer, network and our wallet."""

    token: str
    underlying_symbol: str
    network: str
    wallet_address: str
    issuer: str = "xstocks"

    def __post_init__(self) -> None:
        for name in ("token", "underlying_symbol", "network", "wallet_address", "issuer"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise InvalidInput(name, value, "must be a non-empty string")

    @property
    def pair(self) -> str:
        """The instrument fills are booked on: `{token}/{underlying}` (e.g. `TSLAx/TSLA`)."""
        return f"{self.token}/{self.underlying_symbol}"


@dataclass(frozen=True, slots=True)
class IssuerTerms:
    """The issuer's terms as this connector enforces them before sending (all unverified figures).

    Args:
        min_qty: smallest request, in shares (tokens).
        fee: USD charged per request.
        sessions: market sessions in which requests are accepted.
    """

    min_qty: Decimal = ONE
    fee: Decimal = Decimal(0)
    sessions: frozenset[Session] = DEFAULT_SESSIONS

    def __post_init__(self) -> None:
        for name in ("min_qty", "fee"):
            value = getattr(self, name)
            if not isinstance(value, Decimal) or not value.is_finite() or value < 0:
                raise InvalidInput(name, value, "must be a finite Decimal >= 0")
        if not self.sessions or not all(isinstance(s, Session) for s in self.sessions):
            raise InvalidInput("sessions", self.sessions, "must be a non-empty set of Session values")


@dataclass(slots=True)
class _Pending:
    request: MintRequest | RedeemRequest
    listing: TokenListing
    request_id: str
    status: OrderStatus = OrderStatus.ACCEPTED


class AlpacaTokenization:
    """Alpaca's mint/redeem desk for the tokens in `listings` (see the module docstring).

    Args:
        name: venue name (requests' `venue`, events' `venue`).
        broker: the Alpaca account's connector: keys, HTTP, retries, calendar and clock.
        listings: the tokens this desk mints and redeems.
        terms: minimum, fee and windows enforced before sending.
        poll_s, max_poll_s: status polling backoff, seconds.
    """

    def __init__(
        self,
        name: str,
        broker: AlpacaBroker,
        listings: Iterable[TokenListing],
        terms: IssuerTerms | None = None,
        *,
        poll_s: float = 1.0,
        max_poll_s: float = 60.0,
    ) -> None:
        if not 0 < poll_s <= max_poll_s:
            raise InvalidInput("poll_s", poll_s, f"must be > 0 and <= max_poll_s {max_poll_s}")
        self.name = name
        self.broker = broker
        self.terms = terms if terms is not None else IssuerTerms()
        self.listings: dict[str, TokenListing] = {}
        for listing in listings:
            if listing.token in self.listings:
                raise InvalidInput("listings", listing.token, "listed twice")
            self.listings[listing.token] = listing
        self.poll_s = poll_s
        self.max_poll_s = max_poll_s
        self._pending: dict[str, _Pending] = {}
        self._used: set[str] = set()
        self._events = EventQueue()
        self._wake = asyncio.Event()

    def __repr__(self) -> str:
        return f"AlpacaTokenization(name={self.name!r}, tokens={sorted(self.listings)})"

    # -- venue port ------------------------------------------------------------------------------

    def _update(
        self,
        cid: str,
        status: OrderStatus,
        reason: str = "",
        request_id: str = "",
        filled: Decimal = Decimal(0),
    ) -> OrderUpdate:
        price = ONE if filled else None
        return OrderUpdate(
            self.broker.clock.now_ns(), self.name, cid, status, request_id, filled, price, reason
        )

    def _reject(self, cid: str, reason: str) -> OrderUpdate:
        update = self._update(cid, OrderStatus.REJECTED, reason)
        self._events.put(update)
        return update

    async def check(self, request: MintRequest | RedeemRequest, listing: TokenListing) -> str | None:
        """Why the issuer would refuse `request` now (field and value named), or None."""
        terms = self.terms
        if request.quantity < terms.min_qty:
            return f"quantity: {request.quantity} below the issuer's minimum {terms.min_qty} {request.token}"
        session = self.broker.calendar.session_at(self.broker.clock.now_ns())
        if session not in terms.sessions:
            allowed = ", ".join(sorted(s.value for s in terms.sessions))
            return f"session: {session.value}, the issuer takes requests only in {allowed}"
        account = await self.broker.account()
        if account.cash < terms.fee:
            return f"fee: {terms.fee} USD per request exceeds the cash {account.cash} USD at Alpaca"
        if isinstance(request, MintRequest):
            held = (await self.broker.positions()).get(listing.underlying_symbol, Decimal(0))
            if held < request.quantity:
                return (
                    f"quantity: {request.quantity} {listing.underlying_symbol} to mint exceeds the "
                    f"{held} held at Alpaca"
                )
        return None

    async def submit(self, request: Request) -> OrderUpdate:
        """Check, then send a mint or redeem; ACCEPTED (pending at Alpaca) or REJECTED with why.

        Raises `AlpacaUnavailable` when every retry failed: Alpaca may or may not have taken the
        request then (`snapshot()` lists what is pending); the client order id stays used.
        """
        cid = request.client_order_id
        if not isinstance(request, MintRequest | RedeemRequest):
            return self._reject(
                cid, f"request: {self.name} takes MintRequest or RedeemRequest, got {type(request).__name__}"
            )
        if request.venue != self.name:
            return self._reject(cid, f"venue: request for {request.venue!r} sent to {self.name!r}")
        if cid in self._used:
            return self._reject(cid, f"client_order_id: {cid!r} already used")
        listing = self.listings.get(request.token)
        if listing is None:
            return self._reject(cid, f"token: {request.token!r} not listed (lists {sorted(self.listings)})")
        field, asset = (
            ("pay_asset", request.pay_asset)
            if isinstance(request, MintRequest)
            else ("receive_asset", request.receive_asset)
        )
        if asset != listing.underlying_symbol:
            return self._reject(
                cid,
                f"{field}: {asset!r}, but Alpaca converts {listing.token} in kind against "
                f"{listing.underlying_symbol!r}",
            )
        reason = await self.check(request, listing)
        if reason is not None:
            return self._reject(cid, reason)
        self._used.add(cid)
        kind = "mint" if isinstance(request, MintRequest) else "redeem"
        body = {
            "underlying_symbol": listing.underlying_symbol,
            "qty": str(request.quantity),
            "issuer": listing.issuer,
            "network": listing.network,
            "wallet_address": listing.wallet_address,
            "client_request_id": cid,
        }
        status, answer = await self.broker.request(
            "POST",
            f"/v2/tokenization/{kind}",
            body=body,
            lookup=("/v2/tokenization/requests:by_client_request_id", {"client_request_id": cid}),
            headers={"Idempotency-Key": cid},
        )
        if status != 200 or not isinstance(answer, dict) or "tokenization_request_id" not in answer:
            message = answer.get("message") if isinstance(answer, dict) else answer
            return self._reject(cid, f"alpaca {status}: {message}")
        pending = _Pending(request, listing, str(answer["tokenization_request_id"]))
        self._pending[cid] = pending
        update = self._update(cid, OrderStatus.ACCEPTED, request_id=pending.request_id)
        self._events.put(update)
        self._on_status(pending, answer)  # a request that completed at once
        self._wake.set()
        return update

    async def cancel(self, client_order_id: str) -> OrderUpdate:
        """Alpaca cannot cancel a tokenization request: answers with its status and says so."""
        pending = self._pending.get(client_order_id)
        if pending is None:
            return self._update(
                client_order_id, OrderStatus.REJECTED, f"client_order_id: {client_order_id!r} unknown"
            )
        return self._update(
            client_order_id,
            pending.status,
            "cancel: Alpaca tokenization requests cannot be cancelled",
            pending.request_id,
        )

    async def snapshot(self) -> VenueState:
        """The account's cash and shares, and the requests still pending at Alpaca."""
        account = await self.broker.account()
        balances = {account.currency: account.cash, **await self.broker.positions()}
        status, answer = await self.broker.request(
            "GET", "/v2/tokenization/requests", params={"status": "pending"}
        )
        if status != 200 or not isinstance(answer, list):
            raise AlpacaError(status, f"tokenization requests: {answer}")
        by_request = {p.request_id: cid for cid, p in self._pending.items()}
        open_orders = tuple(
            self._update(
                by_request.get(str(r.get("tokenization_request_id")), str(r.get("client_request_id") or "")),
                OrderStatus.ACCEPTED,
                request_id=str(r.get("tokenization_request_id")),
            )
            for r in answer
            if isinstance(r, dict)
        )
        return VenueState(self.name, self.broker.clock.now_ns(), balances, open_orders)

    async def stream(self) -> AsyncIterator[Event]:
        """Acknowledgements, then one `Fill` + FILLED (or CANCELLED) per request when Alpaca is done."""
        poller = asyncio.create_task(self._poll_loop(), name=f"{self.name}-poll")
        async for event in self._events.stream([poller]):
            yield event

    # -- polling ---------------------------------------------------------------------------------

    def _open(self) -> list[_Pending]:
        return [p for p in self._pending.values() if not p.status.is_terminal]

    async def _poll_loop(self) -> None:
        delay = self.poll_s
        while True:
            if not self._open():
                self._wake.clear()
                await self._wake.wait()
                delay = self.poll_s
            await asyncio.sleep(delay)
            changed = False
            for pending in self._open():
                try:
                    status, answer = await self.broker.request(
                        "GET", f"/v2/tokenization/requests/{pending.request_id}"
                    )
                except AlpacaError as exc:  # unavailable for now: keep polling with backoff
                    log.warning("tokenization %s: status poll failed (%s)", self.name, exc)
                    continue
                if status == 200 and isinstance(answer, dict):
                    changed |= self._on_status(pending, answer)
                else:
                    log.warning(
                        "tokenization %s: status of %s -> HTTP %d", self.name, pending.request_id, status
                    )
            delay = self.poll_s if changed or self._wake.is_set() else min(delay * 2, self.max_poll_s)
            self._wake.clear()

    def _on_status(self, pending: _Pending, answer: dict[str, Any]) -> bool:
        """Report a finished request once; True if it finished now."""
        if pending.status.is_terminal:
            return False
        state = answer.get("status")
        cid = pending.request.client_order_id
        now = self.broker.clock.now_ns()
        if state == "completed":
            try:
                fee = Decimal(str(answer["fees"])) if answer.get("fees") is not None else self.terms.fee
            except InvalidOperation:
                log.warning(
                    "tokenization %s: fees %r unreadable, using the terms' fee", self.name, answer.get("fees")
                )
                fee = self.terms.fee
            quantity = pending.request.quantity
            side = Side.BUY if isinstance(pending.request, MintRequest) else Side.SELL
            pending.status = OrderStatus.FILLED
            self._events.put(
                Fill(now, self.name, pending.listing.pair, cid, side, ONE, quantity, fee, "USD",
                     Liquidity.TAKER, pending.request_id, quantity)
            )  # fmt: skip
            self._events.put(self._update(cid, OrderStatus.FILLED, "", pending.request_id, quantity))
            return True
        if state == "rejected":
            pending.status = OrderStatus.CANCELLED
            why = answer.get("reason") or answer.get("message") or "no reason given"
            reason = f"rejected by the issuer: {why}"
            self._events.put(self._update(cid, OrderStatus.CANCELLED, reason, pending.request_id))
            return True
        return False
