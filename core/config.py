"""Config models: config.yaml validated into frozen pydantic models, with every error reported at once.

Top-level schema (every mapping refuses unknown keys; see each model for its fields and units):

    name: perpetua               bot name (prefixes client order ids); default "perpetua"
    mode: sandbox                backtest | paper | live | sandbox
    venues: [...]                where data comes from and orders go; one model per `kind`
    tokens: [...]                plain tokens that are not instruments (USDC): chain, address, decimals
    instruments: [...]           what is traded or priced; one model per `kind`
    strategies: [...]            name, class path or builtin name, params (validated later)
    risk: {...}                  `core.risk.RiskLimits`
    storage: {url: ...}          SQLAlchemy async URL; default sqlite+aiosqlite:///perpetua.sqlite
    backtest: {...}              optional; required when mode is backtest

Secrets never live in the file: API keys, exchange secrets and keystore passwords are named by
the environment variable that holds them (`api_key_env: BINANCE_API_KEY`); a literal secret-looking
key (`api_key`, `secret`, `private_key`, `password`, ...) anywhere is refused and never echoed.

Errors: `load_config` raises `ConfigError`, whose message has one line per problem, formatted
`key.path[0].sub: message, got <value>` (", got ..." is left out where there is no value, e.g. a
missing key, and shows `<redacted>` where the value may be a secret). File-level problems use the
file name as the path, with `:line:column` for YAML syntax errors.

Numbers: YAML numbers with a decimal point become `Decimal` straight from their text (`0.1` is
exactly 0.1, never a binary float), and quoted numbers (`"0.25"`) are accepted wherever an exact
amount is expected. Integers must be written as integers. Unquoted `0x...` values (addresses) and
`12:30`-style values stay strings instead of YAML 1.1's surprising hex and base-60 numbers.
"""

from __future__ import annotations

import difflib
import os
import re
import types
import typing
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Final, Generic, Literal, TypeVar, cast
from urllib.parse import urlsplit

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    Field,
    Strict,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    model_validator,
)

from core.errors import PerpetuaError
from core.instruments import (
    Instrument,
    InstrumentRegistry,
    MultiplierChange,
    MultiplierSchedule,
    PerpetualOption,
    Pool,
    Spot,
    StockPerp,
    TokenizedStock,
)
from core.risk import (
    NO_VALUE,
    USE_INPUT,
    FieldProblem,
    InstrumentId,
    NonNegativeDecimal,
    PositiveDecimal,
    PositiveInt,
    RiskLimits,
    StrictModel,
)

__all__ = [
    "AlpacaVenue",
    "AnyInstrument",
    "AnyVenue",
    "BacktestConfig",
    "CcxtVenue",
    "ChainlinkVenue",
    "ConfigError",
    "ConfigIssue",
    "IssuerVenue",
    "Mode",
    "PerpetuaConfig",
    "PerpetualOptionConfig",
    "PoolConfig",
    "SimAmmVenue",
    "SimBookVenue",
    "SimOptionsPoolVenue",
    "SpotConfig",
    "StockPerpConfig",
    "StorageConfig",
    "StrategyConfig",
    "TokenConfig",
    "TokenizedStockConfig",
    "UniswapV2Venue",
    "UniswapV3Venue",
    "duration_ns",
    "format_duration",
    "format_path",
    "issues_from_validation_error",
    "load_config",
    "parse_config",
    "show_value",
    "to_ns",
    "validate_strategy_params",
]

DEFAULT_STORAGE_URL: Final = "sqlite+aiosqlite:///perpetua.sqlite"
"""Where fills, orders and PnL are stored unless `storage.url` says otherwise."""


# --------------------------------------------------------------------------------------------
# Errors


@dataclass(frozen=True, slots=True)
class ConfigIssue:
    """One problem in a config: where (`path`, e.g. `venues[1].exchange`), what, and the value seen.

    `value` is `NO_VALUE` when there is nothing to show (a missing key); `redact` hides it.
    """

    path: str
    message: str
    value: object = NO_VALUE
    redact: bool = False

    def __str__(self) -> str:
        if self.redact:
            return f"{self.path}: {self.message}, got <redacted>"
        if self.value is NO_VALUE:
            return f"{self.path}: {self.message}"
        return f"{self.path}: {self.message}, got {show_value(self.value)}"


class ConfigError(PerpetuaError):
    """A config that cannot be used; the message lists every problem found, one per line."""

    def __init__(self, issues: Iterable[ConfigIssue]) -> None:
        self.issues: tuple[ConfigIssue, ...] = tuple(issues)
        super().__init__("\n".join(str(issue) for issue in self.issues))


class _ReferenceProblems(ValueError):
    """Carries cross-reference issues out of `PerpetuaConfig`'s validator with their own paths."""

    def __init__(self, issues: list[ConfigIssue]) -> None:
        super().__init__("\n".join(str(issue) for issue in issues))
        self.issues = issues


_IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def format_path(parts: Sequence[str | int]) -> str:
    """`("strategies", 0, "params", "x")` -> `strategies[0].params.x`; odd keys as `['TSLA/USD']`."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _IDENT_RE.fullmatch(part):
            out += f".{part}" if out else part
        else:
            out += f"[{part!r}]"
    return out or "(top level)"


def show_value(value: object, limit: int = 80) -> str:
    """A value as a config author would recognise it: YAML-like, quoted strings, cut at `limit` chars."""
    text = _show(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _show(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | Decimal):
        return str(value)
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, timedelta):
        return format_duration(value)
    if isinstance(value, Path):
        return repr(str(value))
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{_show(k)}: {_show(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    return repr(value)


# --------------------------------------------------------------------------------------------
# Field types


class Mode(StrEnum):
    """How the bot runs: replay history, trade on paper, trade for real, or against test venues."""

    BACKTEST = "backtest"
    PAPER = "paper"
    LIVE = "live"
    SANDBOX = "sandbox"


_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_\-]{0,63}")
_ASSET_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._\-]{0,31}")
_ENV_RE = re.compile(r"[A-Z_][A-Z0-9_]{0,127}")
_ADDRESS_RE = re.compile(r"0x[0-9a-fA-F]{40}")
_RAW_KEY_RE = re.compile(r"(0x)?[0-9a-fA-F]{64}")
_CCXT_ID_RE = re.compile(r"[a-z][a-z0-9]*")
_CLASS_PATH_RE = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*")
_BUILTIN_RE = re.compile(r"[a-z][a-z0-9_]*")
_STRATEGY_FILE_RE = re.compile(r".+\.py(:[A-Za-z_]\w*)?")
_DB_URL_RE = re.compile(r"[a-z][a-z0-9]*\+[a-z0-9_]+://.*")
_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)")
_DURATION_UNIT_US: Final = {
    "ms": 1_000,
    "s": 10**6,
    "m": 60 * 10**6,
    "h": 3_600 * 10**6,
    "d": 86_400 * 10**6,
    "w": 7 * 86_400 * 10**6,
}
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_US: Final = timedelta(microseconds=1)


def _check_name(value: str) -> str:
    if not _NAME_RE.fullmatch(value):
        raise FieldProblem("must be 1..64 characters: letters, digits, _ and - (starting with a letter)")
    return value


def _check_asset(value: str) -> str:
    if not _ASSET_RE.fullmatch(value):
        raise FieldProblem("must be 1..32 characters: letters, digits, . _ and - (like USDC or TSLAx)")
    return value


def _check_env_name(value: object) -> object:
    # Hidden in errors: a value that is not a variable name may be the secret itself, pasted in.
    if not isinstance(value, str) or not _ENV_RE.fullmatch(value):
        raise FieldProblem(
            "must be the NAME of an environment variable (A-Z, 0-9, _), never the secret itself", redact=True
        )
    return value


def _check_address(value: object) -> object:
    if not isinstance(value, str) or not _ADDRESS_RE.fullmatch(value):
        raise FieldProblem("must be an address: 0x followed by 40 hex digits")
    digits = value[2:]
    checksummed = _eip55(digits)
    # Mixed case carries an EIP-55 checksum; a single case carries none to check.
    if digits not in (digits.lower(), digits.upper()) and value != checksummed:
        raise FieldProblem("fails its EIP-55 checksum (a typo?); write it in lower case to skip the check")
    return checksummed


def _eip55(hex40: str) -> str:
    """`0x` + the address in EIP-55 mixed case: a hex letter is upper case where keccak says so."""
    from eth_hash.auto import keccak  # imported here: eth_utils would cost 0.5 s at every CLI start

    lower = hex40.lower()
    digest = keccak(lower.encode("ascii")).hex()
    return "0x" + "".join(
        c.upper() if int(d, 16) >= 8 else c for c, d in zip(lower, digest[:40], strict=True)
    )


def _check_rpc_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https", "ws", "wss") or not parts.hostname:
        raise FieldProblem("must be an http(s):// or ws(s):// URL")
    return value


def _check_http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise FieldProblem("must be an http:// or https:// URL")
    return value


def _check_keystore(value: object) -> object:
    # A raw private key pasted where the keystore path belongs must never be echoed.
    if isinstance(value, str) and _RAW_KEY_RE.fullmatch(value.strip()):
        raise FieldProblem(
            "looks like a raw private key; give the path of an encrypted JSON keystore file", redact=True
        )
    return value


def _parse_duration(value: object) -> object:
    if isinstance(value, timedelta):
        return value
    match = _DURATION_RE.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise FieldProblem("must be a duration with a unit: ms, s, m, h, d or w (like 500ms, 8h, 7d)")
    micros = Decimal(match[1]) * _DURATION_UNIT_US[match[2]]
    if micros != micros.to_integral_value():
        raise FieldProblem("must be a whole number of microseconds")
    return timedelta(microseconds=int(micros))


def _positive_duration(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise FieldProblem("must be > 0")
    return value


def _to_utc_datetime(value: object) -> object:
    if isinstance(value, str):
        text = value.strip()
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise FieldProblem("must be a date or a time, like 2025-01-31 or 2026-03-20T13:30:00Z") from None
        # A bare date means midnight UTC, like an unquoted YAML date.
        value = parsed.date() if len(text) == 10 else parsed
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise FieldProblem("must include a time zone, like 2026-03-20T13:30:00Z")
        return value.astimezone(UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    raise FieldProblem("must be a date or a time, like 2025-01-31 or 2026-03-20T13:30:00Z")


def _check_strategy_ref(value: str) -> str:
    if not (
        _CLASS_PATH_RE.fullmatch(value) or _BUILTIN_RE.fullmatch(value) or _STRATEGY_FILE_RE.fullmatch(value)
    ):
        raise FieldProblem(
            "must be a class path like mypkg.module:ClassName, a file like path/to/file.py:ClassName "
            "or a strategy name like fair_value_taker"
        )
    return value


def _check_ccxt_id(value: str) -> str:
    if not _CCXT_ID_RE.fullmatch(value):
        raise FieldProblem("must be a ccxt exchange id: lower-case letters and digits, like binance")
    return value


def _check_db_url(value: str) -> str:
    if urlsplit(value).password:
        raise FieldProblem(
            "must not contain a password; put it in an environment variable named by password_env",
            redact=True,
        )
    if not _DB_URL_RE.fullmatch(value):
        raise FieldProblem(
            "must be an async SQLAlchemy URL naming its driver, like sqlite+aiosqlite:///perpetua.sqlite "
            "or postgresql+asyncpg://host/db"
        )
    return value


Name = Annotated[str, AfterValidator(_check_name)]
"""A venue, strategy, issuer or bot name such as `binance` or `uniswap_v3_local`."""
Asset = Annotated[str, AfterValidator(_check_asset)]
"""An asset symbol such as `USD`, `USDC`, `TSLA` or `TSLAx`."""
EnvVarName = Annotated[str, BeforeValidator(_check_env_name)]
"""The name (never the value) of an environment variable, upper case: `BINANCE_API_KEY`."""
Address = Annotated[str, BeforeValidator(_check_address)]
"""An EVM address; stored in EIP-55 checksum form."""
RpcUrl = Annotated[str, AfterValidator(_check_rpc_url)]
HttpUrl = Annotated[str, AfterValidator(_check_http_url)]
Keystore = Annotated[Path, BeforeValidator(_check_keystore)]
Duration = Annotated[timedelta, BeforeValidator(_parse_duration), AfterValidator(_positive_duration)]
"""A positive duration written with a unit: `500ms`, `30s`, `5m`, `8h`, `7d`, `1w`."""
UtcDatetime = Annotated[datetime, BeforeValidator(_to_utc_datetime)]
"""A time zone aware instant (normalised to UTC); a bare date means 00:00 UTC."""
Int = Annotated[int, Strict()]
Flag = Annotated[bool, Strict()]
Decimals = Annotated[int, Strict(), Field(ge=0, le=36)]
ChainId = PositiveInt
FeeBps = Annotated[Decimal, Field(ge=0, le=10_000, allow_inf_nan=False)]
MakerFeeBps = Annotated[Decimal, Field(ge=-10_000, le=10_000, allow_inf_nan=False)]
Fraction = Annotated[Decimal, Field(ge=0, lt=1, allow_inf_nan=False)]


def duration_ns(value: timedelta) -> int:
    """A duration in integer nanoseconds, the unit of event time."""
    return value // _US * 1000


def format_duration(value: timedelta) -> str:
    """A duration in the largest unit (up to days) that divides it exactly: `8h`, `7d`, `500ms`."""
    micros = value // _US
    for unit in ("d", "h", "m", "s", "ms"):
        if micros % _DURATION_UNIT_US[unit] == 0:
            return f"{micros // _DURATION_UNIT_US[unit]}{unit}"
    return f"{micros}us"


def to_ns(value: datetime) -> int:
    """An aware datetime as integer nanoseconds since the epoch, UTC (exact, no float)."""
    return (value - _EPOCH) // _US * 1000


# --------------------------------------------------------------------------------------------
# Venues


class _Venue(StrictModel):
    """Fields every venue has: a unique `name` that strategies, pools and balances refer to."""

    name: Name

    def env_vars(self) -> dict[str, str]:
        """`{field: environment variable name}` of every secret this venue reads from the environment."""
        names = {field: getattr(self, field) for field in type(self).model_fields if field.endswith("_env")}
        return {field: name for field, name in names.items() if name is not None}

    def instrument_refs(self) -> list[tuple[tuple[str | int, ...], str]]:
        """`(key path within this venue, instrument id)` of every instrument the venue names."""
        return []


class _EvmReader(_Venue):
    """An EVM chain endpoint: `chain_id` and exactly one of `rpc_url` / `rpc_url_env`.

    Use `rpc_url_env` when the URL embeds an API key (hosted RPC providers do).
    """

    chain_id: ChainId
    rpc_url: RpcUrl | None = None
    rpc_url_env: EnvVarName | None = None

    @model_validator(mode="after")
    def _one_rpc(self) -> _EvmReader:
        if self.rpc_url is None and self.rpc_url_env is None:
            raise FieldProblem("required (or rpc_url_env)", key=("rpc_url",), value=NO_VALUE)
        if self.rpc_url is not None and self.rpc_url_env is not None:
            raise FieldProblem(
                "set only one of rpc_url and rpc_url_env", key=("rpc_url_env",), value=self.rpc_url_env
            )
        return self


class _EvmTrader(_EvmReader):
    """An EVM venue that can sign: an encrypted JSON `keystore` and the env var holding its password.

    Both are optional together: without them the venue reads data but cannot trade.
    """

    keystore: Keystore | None = None
    keystore_password_env: EnvVarName | None = None

    @model_validator(mode="after")
    def _keystore_pair(self) -> _EvmTrader:
        if self.keystore is not None and self.keystore_password_env is None:
            raise FieldProblem(
                "required when keystore is set", key=("keystore_password_env",), value=NO_VALUE
            )
        if self.keystore is None and self.keystore_password_env is not None:
            raise FieldProblem(
                "required when keystore_password_env is set", key=("keystore",), value=NO_VALUE
            )
        return self


class UniswapV2Venue(_EvmTrader):
    """Uniswap v2 (constant product) pools through the factory and router at these addresses."""

    kind: Literal["uniswap_v2"]
    factory: Address
    router: Address


class UniswapV3Venue(_EvmTrader):
    """Uniswap v3 (concentrated liquidity): factory, QuoterV2 (quotes with gas and ticks crossed), router."""

    kind: Literal["uniswap_v3"]
    factory: Address
    quoter: Address
    swap_router: Address


class ChainlinkVenue(_EvmReader):
    """Chainlink push feeds: `feeds` maps the instrument priced (e.g. `TSLA/USD`) to its aggregator."""

    kind: Literal["chainlink"]
    feeds: dict[InstrumentId, Address] = Field(min_length=1)

    def instrument_refs(self) -> list[tuple[tuple[str | int, ...], str]]:
        """Each feed's instrument."""
        return [(("feeds", instrument_id), instrument_id) for instrument_id in self.feeds]


class CcxtVenue(_Venue):
    """A crypto exchange through ccxt (`exchange` is the ccxt id, e.g. `binance`).

    Keys come from the environment variables named by `api_key_env`, `secret_env` and, for
    exchanges with a passphrase, `password_env`; without keys the venue is market data only.
    `testnet` switches ccxt to the exchange's sandbox; `base_url` sends every REST and websocket
    request to one host instead, keeping ccxt's paths (a local emulator); `options` go to the ccxt
    constructor; `markets` maps our instrument ids to ccxt symbols (`TSLA-PERP: TSLA/USDT:USDT`).
    """

    kind: Literal["ccxt"]
    exchange: Annotated[str, AfterValidator(_check_ccxt_id)]
    api_key_env: EnvVarName | None = None
    secret_env: EnvVarName | None = None
    password_env: EnvVarName | None = None
    testnet: Flag = False
    base_url: HttpUrl | None = None
    options: dict[str, Any] = Field(default_factory=dict)
    markets: dict[InstrumentId, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _key_pair(self) -> CcxtVenue:
        if self.api_key_env is not None and self.secret_env is None:
            raise FieldProblem("required when api_key_env is set", key=("secret_env",), value=NO_VALUE)
        if self.api_key_env is None and self.secret_env is not None:
            raise FieldProblem("required when secret_env is set", key=("api_key_env",), value=NO_VALUE)
        return self

    def instrument_refs(self) -> list[tuple[tuple[str | int, ...], str]]:
        """Each mapped market's instrument."""
        return [(("markets", instrument_id), instrument_id) for instrument_id in self.markets]


ALPACA_PAPER_URL: Final = "https://paper-api.alpaca.markets"
ALPACA_LIVE_URL: Final = "https://api.alpaca.markets"


class AlpacaVenue(_Venue):
    """The Alpaca stock broker (also the route to the xStocks tokenization API).

    `paper` picks the paper or live trading URL unless `base_url` overrides it (a local
    emulator); `data_feed` is `iex` (free) or `sip` (paid); `symbols` maps instrument ids to
    Alpaca symbols (`TSLA/USD: TSLA`).
    """

    kind: Literal["alpaca"]
    api_key_env: EnvVarName
    secret_key_env: EnvVarName
    paper: Flag = True
    base_url: HttpUrl | None = None
    data_feed: Literal["iex", "sip"] = "iex"
    symbols: dict[InstrumentId, str] = Field(default_factory=dict)

    @property
    def trading_url(self) -> str:
        """The trading API base URL in use."""
        return self.base_url or (ALPACA_PAPER_URL if self.paper else ALPACA_LIVE_URL)

    def instrument_refs(self) -> list[tuple[tuple[str | int, ...], str]]:
        """Each mapped symbol's instrument."""
        return [(("symbols", instrument_id), instrument_id) for instrument_id in self.symbols]


class IssuerVenue(_Venue):
    """A token issuer's mint/redeem desk (xStocks, Ondo, Dinari...), optionally through a `broker`
    venue (an `alpaca` venue for the xStocks tokenization API).

    Fees in bps of notional, `min_notional` in USD, `settlement` from request to tokens or cash.
    Issuers do not publish all of these: the defaults are conservative guesses (unverified).
    """

    kind: Literal["issuer"]
    issuer: Name
    broker: Name | None = None
    tokens: list[InstrumentId] = Field(min_length=1)
    mint_fee_bps: FeeBps = Decimal(10)
    redeem_fee_bps: FeeBps = Decimal(10)
    min_notional: NonNegativeDecimal = Decimal(1000)
    settlement: Duration = timedelta(days=1)
    market_hours_only: Flag = True

    def instrument_refs(self) -> list[tuple[tuple[str | int, ...], str]]:
        """Each token the issuer mints and redeems."""
        return [(("tokens", i), token) for i, token in enumerate(self.tokens)]


class SimBookVenue(_Venue):
    """A simulated order-book venue (backtests, paper): matching with fees, latency, partial fills.

    Fees in bps of notional (a negative maker fee is a rebate); `latency` from submit to the book.
    """

    kind: Literal["sim_book"]
    markets: list[InstrumentId] = Field(min_length=1)
    maker_fee_bps: MakerFeeBps = Decimal(0)
    taker_fee_bps: FeeBps = Decimal(0)
    latency: Duration = timedelta(milliseconds=50)
    partial_fills: Flag = True

    def instrument_refs(self) -> list[tuple[tuple[str | int, ...], str]]:
        """Each listed market."""
        return [(("markets", i), market) for i, market in enumerate(self.markets)]


class SimAmmVenue(_Venue):
    """Simulated AMM pools with exact integer math on a simulated chain; gas in units and gwei."""

    kind: Literal["sim_amm"]
    chain_id: ChainId
    gas_per_swap: PositiveInt = 150_000
    gas_price_gwei: PositiveDecimal = Decimal(1)
    block_time: Duration = timedelta(seconds=12)


class SimOptionsPoolVenue(_Venue):
    """A simulated perpetual-options pool (main + insurance pool) selling the listed `options`.

    `fee_bps` of premium; `insurance_fraction` of each premium goes to the insurance pool;
    `margin_haircuts` maps a margin asset to the fraction of its value not counted as margin.
    """

    kind: Literal["sim_options_pool"]
    options: list[InstrumentId] = Field(min_length=1)
    fee_bps: FeeBps = Decimal(0)
    insurance_fraction: Fraction = Decimal("0.1")
    margin_haircuts: dict[Asset, Fraction] = Field(default_factory=dict)

    def instrument_refs(self) -> list[tuple[tuple[str | int, ...], str]]:
        """Each option the pool sells."""
        return [(("options", i), option) for i, option in enumerate(self.options)]


AnyVenue = (
    UniswapV2Venue
    | UniswapV3Venue
    | CcxtVenue
    | AlpacaVenue
    | IssuerVenue
    | ChainlinkVenue
    | SimBookVenue
    | SimAmmVenue
    | SimOptionsPoolVenue
)
VenueConfig = Annotated[AnyVenue, Field(discriminator="kind")]
"""A venue entry; `kind` picks the model."""

AMM_KINDS: Final = ("uniswap_v2", "uniswap_v3", "sim_amm")


# --------------------------------------------------------------------------------------------
# Tokens and instruments


class TokenConfig(StrictModel):
    """A plain token (USDC, WETH) on one chain; `decimals` converts base units to amounts."""

    id: Asset
    chain_id: ChainId
    address: Address
    decimals: Decimals


class MultiplierChangeConfig(StrictModel):
    """The multiplier becomes `multiplier` at `effective` (an aware time, e.g. 2026-03-20T13:30:00Z)."""

    effective: UtcDatetime
    multiplier: PositiveDecimal


class MultiplierConfig(StrictModel):
    """Shares of the underlying per token: `initial`, then scheduled `changes` in time order.

    A bare number (`multiplier: "1.0"`) means a constant multiplier.
    """

    initial: PositiveDecimal = Decimal(1)
    changes: list[MultiplierChangeConfig] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _bare_number(cls, data: Any) -> Any:
        # A constant multiplier is the common case; let it be written as one number.
        if isinstance(data, int | Decimal | str | float) and not isinstance(data, bool):
            return {"initial": data}
        return data

    @model_validator(mode="after")
    def _increasing(self) -> MultiplierConfig:
        for i in range(1, len(self.changes)):
            if self.changes[i].effective <= self.changes[i - 1].effective:
                raise FieldProblem(
                    f"must be later than changes[{i - 1}].effective",
                    key=("changes", i, "effective"),
                    value=self.changes[i].effective,
                )
        return self

    def build(self) -> MultiplierSchedule:
        """The `core.instruments.MultiplierSchedule`, times in ns."""
        changes = tuple(MultiplierChange(to_ns(c.effective), c.multiplier) for c in self.changes)
        return MultiplierSchedule(self.initial, changes)


class TokenizedStockConfig(StrictModel):
    """A tokenized US stock (e.g. TSLAx tracking TSLA): fair value = stock price x multiplier.

    `decimals`: base-unit exponent (18 for ERC-20 xStocks, 8 on Solana); `rebasing`: balances
    display multiplied (ERC-8056 style) rather than wrapped.
    """

    kind: Literal["tokenized_stock"]
    id: InstrumentId
    underlying: Asset
    issuer: Name
    chain_id: ChainId
    address: Address
    decimals: Decimals
    multiplier: MultiplierConfig = Field(default_factory=MultiplierConfig)
    rebasing: Flag = False

    def build(self) -> TokenizedStock:
        """The `core.instruments.TokenizedStock`."""
        return TokenizedStock(
            id=self.id,
            underlying=self.underlying,
            issuer=self.issuer,
            chain_id=self.chain_id,
            address=self.address,
            decimals=self.decimals,
            multiplier=self.multiplier.build(),
            rebasing=self.rebasing,
        )


class SpotConfig(StrictModel):
    """A spot pair (`base` priced in `quote`), including the real stock at a broker (TSLA in USD).

    Increments and `min_size` in quote currency (price) and base units (size).
    """

    kind: Literal["spot"]
    id: InstrumentId
    base: Asset
    quote: Asset
    price_increment: PositiveDecimal = Decimal("0.00000001")
    size_increment: PositiveDecimal = Decimal("0.00000001")
    min_size: NonNegativeDecimal = Decimal(0)

    def build(self) -> Spot:
        """The `core.instruments.Spot`."""
        return Spot(
            id=self.id,
            base=self.base,
            quote=self.quote,
            price_increment=self.price_increment,
            size_increment=self.size_increment,
            min_size=self.min_size,
        )


class StockPerpConfig(StrictModel):
    """A linear perpetual on a stock settled in `quote` (Binance TSLAUSDT: 5x, funding every 4h)."""

    kind: Literal["stock_perp"]
    id: InstrumentId
    underlying: Asset
    quote: Asset
    contract_size: PositiveDecimal = Decimal(1)
    max_leverage: PositiveDecimal = Decimal(5)
    funding_interval: Duration = timedelta(hours=4)
    min_size: NonNegativeDecimal = Decimal("0.01")

    def build(self) -> StockPerp:
        """The `core.instruments.StockPerp`."""
        return StockPerp(
            id=self.id,
            underlying=self.underlying,
            quote=self.quote,
            contract_size=self.contract_size,
            max_leverage=self.max_leverage,
            funding_interval_ns=duration_ns(self.funding_interval),
            min_size=self.min_size,
        )


class PerpetualOptionConfig(StrictModel):
    """An everlasting option; coin-margined ones keep premium, margin and PnL in `margin_asset`.

    `strike` in `quote` currency; the long pays (mark - payoff) every `funding_period` (8h..7d live).
    """

    kind: Literal["perpetual_option"]
    id: InstrumentId
    underlying: Asset
    strike: PositiveDecimal
    option_type: Literal["call", "put"]
    funding_period: Duration
    quote: Asset
    margin_asset: Asset
    coin_margined: Flag = False
    contract_size: PositiveDecimal = Decimal(1)

    def build(self) -> PerpetualOption:
        """The `core.instruments.PerpetualOption`."""
        return PerpetualOption(
            id=self.id,
            underlying=self.underlying,
            strike=self.strike,
            is_call=self.option_type == "call",
            funding_period_ns=duration_ns(self.funding_period),
            quote=self.quote,
            margin_asset=self.margin_asset,
            coin_margined=self.coin_margined,
            contract_size=self.contract_size,
        )


_STANDARD_TICK_SPACING: Final = {100: 1, 500: 10, 3000: 60, 10_000: 200}
"""Uniswap v3 tick spacing of each standard fee tier (fee in hundredths of a bip)."""


class PoolConfig(StrictModel):
    """An AMM pool on `venue`: `token0`/`token1` are token or tokenized-stock ids, sorted as on chain
    (lower address first); `fee` in hundredths of a bip (3000 = 0.3%); `tick_spacing` defaults
    from the standard v3 fee tier.
    """

    kind: Literal["pool"]
    id: InstrumentId
    venue: Name
    chain_id: ChainId
    address: Address
    token0: InstrumentId
    token1: InstrumentId
    fee: Annotated[int, Strict(), Field(ge=0, lt=1_000_000)]
    version: Literal[2, 3] = 3
    tick_spacing: PositiveInt | None = None

    @model_validator(mode="after")
    def _consistent(self) -> PoolConfig:
        if self.token0 == self.token1:
            raise FieldProblem("must differ from token0", key=("token1",), value=self.token1)
        if self.version == 3 and self.tick_spacing is None and self.fee not in _STANDARD_TICK_SPACING:
            raise FieldProblem(
                f"required for the non-standard fee tier {self.fee}", key=("tick_spacing",), value=NO_VALUE
            )
        return self

    @property
    def effective_tick_spacing(self) -> int:
        """`tick_spacing`, or the standard one of the fee tier (1 for v2 pools, which have no ticks)."""
        if self.tick_spacing is not None:
            return self.tick_spacing
        return _STANDARD_TICK_SPACING[self.fee] if self.version == 3 else 1

    def build(self) -> Pool:
        """The `core.instruments.Pool`."""
        return Pool(
            id=self.id,
            venue=self.venue,
            chain_id=self.chain_id,
            address=self.address,
            token0=self.token0,
            token1=self.token1,
            fee=self.fee,
            version=self.version,
            tick_spacing=self.effective_tick_spacing,
        )


AnyInstrument = TokenizedStockConfig | SpotConfig | StockPerpConfig | PerpetualOptionConfig | PoolConfig
InstrumentConfig = Annotated[AnyInstrument, Field(discriminator="kind")]
"""An instrument entry; `kind` picks the model."""


# --------------------------------------------------------------------------------------------
# Strategies, storage, backtest


class StrategyConfig(StrictModel):
    """One strategy instance: `strategy` is a class path (`mypkg.mod:MyClass`) or a builtin name.

    Nothing is imported here: the strategy loader resolves `strategy` and validates `params`
    against the class's parameter model (see `validate_strategy_params`). `venues` and
    `instruments` are what the instance trades; they must be declared above.
    """

    name: Name
    strategy: Annotated[str, AfterValidator(_check_strategy_ref)]
    enabled: Flag = True
    venues: list[Name] = Field(default_factory=list)
    instruments: list[InstrumentId] = Field(default_factory=list)
    params: dict[str, Any] = Field(default_factory=dict)

    @property
    def is_builtin(self) -> bool:
        """True for a builtin name, False for a `module:Class` path."""
        return ":" not in self.strategy


class StorageConfig(StrictModel):
    """Where orders, fills and PnL are stored: an async SQLAlchemy URL without a password in it."""

    url: Annotated[str, AfterValidator(_check_db_url)] = DEFAULT_STORAGE_URL
    password_env: EnvVarName | None = None

    def env_vars(self) -> dict[str, str]:
        """`{field: environment variable name}` of the database password, if any."""
        return {"password_env": self.password_env} if self.password_env else {}


class BacktestConfig(StrictModel):
    """A backtest: recorded data under `data_dir`, replayed from `start` to `end` (aware times or
    dates = 00:00 UTC), with `initial_balances` per venue and asset (amounts in asset units)."""

    data_dir: Path
    start: UtcDatetime
    end: UtcDatetime
    initial_balances: dict[Name, dict[Asset, NonNegativeDecimal]] = Field(default_factory=dict)
    seed: Int = 0
    sim: dict[Name, dict[str, Any]] = Field(default_factory=dict)
    """Per venue name: costs of the simulated venue standing in for it (validated by the runner)."""

    @model_validator(mode="after")
    def _ordered(self) -> BacktestConfig:
        if self.end <= self.start:
            raise FieldProblem(
                f"must be later than start ({self.start.isoformat()})", key=("end",), value=self.end
            )
        return self

    @property
    def start_ns(self) -> int:
        """`start` in ns since the epoch."""
        return to_ns(self.start)

    @property
    def end_ns(self) -> int:
        """`end` in ns since the epoch."""
        return to_ns(self.end)


# --------------------------------------------------------------------------------------------
# The whole config

_SKIP_REFERENCES: Final = "perpetua_skip_references"


class PerpetuaConfig(StrictModel):
    """A validated config.yaml; cross-references (venue and instrument names) are checked too."""

    name: Name = "perpetua"
    mode: Mode
    venues: list[VenueConfig] = Field(min_length=1)
    tokens: list[TokenConfig] = Field(default_factory=list)
    instruments: list[InstrumentConfig] = Field(default_factory=list)
    strategies: list[StrategyConfig] = Field(default_factory=list)
    risk: RiskLimits
    storage: StorageConfig = Field(default_factory=StorageConfig)
    backtest: BacktestConfig | None = None

    @model_validator(mode="after")
    def _references(self, info: ValidationInfo) -> PerpetuaConfig:
        # load_config checks references itself, also when other sections failed, so skip it there.
        if isinstance(info.context, dict) and info.context.get(_SKIP_REFERENCES):
            return self
        issues = _reference_issues(_Sections.of(self))
        if issues:
            raise _ReferenceProblems(issues)
        return self

    def venue(self, name: str) -> AnyVenue:
        """The venue called `name`."""
        for venue in self.venues:
            if venue.name == name:
                return venue
        raise KeyError(name)

    def instrument(self, instrument_id: str) -> AnyInstrument:
        """The instrument entry with id `instrument_id`."""
        for instrument in self.instruments:
            if instrument.id == instrument_id:
                return instrument
        raise KeyError(instrument_id)

    def token(self, token_id: str) -> TokenConfig:
        """The token entry with id `token_id`."""
        for token in self.tokens:
            if token.id == token_id:
                return token
        raise KeyError(token_id)

    def build_instruments(self) -> list[Instrument]:
        """The `core.instruments` objects of every instrument entry, in config order."""
        return [instrument.build() for instrument in self.instruments]

    def instrument_registry(self) -> InstrumentRegistry:
        """An `InstrumentRegistry` of every instrument (plain tokens are not instruments)."""
        return InstrumentRegistry(self.build_instruments())

    def env_vars(self) -> list[tuple[str, str]]:
        """`(config path, variable name)` of every environment variable the config refers to."""
        found: list[tuple[str, str]] = []
        for i, venue in enumerate(self.venues):
            found += [(format_path(("venues", i, field)), name) for field, name in venue.env_vars().items()]
        found += [(format_path(("storage", field)), name) for field, name in self.storage.env_vars().items()]
        return found


# --------------------------------------------------------------------------------------------
# Cross-references

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class _Item(Generic[_T]):
    """A list entry: its position, its name or id and `kind` if it has them, its model if it
    validated on its own."""

    index: int
    key: str | None
    kind: str | None
    model: _T | None


@dataclass(frozen=True, slots=True)
class _Sections:
    """What the cross-reference check looks at, from a validated config or from raw YAML data.

    A section is None when it is not a list at all: references into it are then not checked, as
    its own error already says what is wrong.
    """

    mode: object
    has_backtest: bool
    venues: list[_Item[AnyVenue]] | None
    tokens: list[_Item[TokenConfig]] | None
    instruments: list[_Item[AnyInstrument]] | None
    strategies: list[_Item[StrategyConfig]] | None
    risk: RiskLimits | None
    backtest: BacktestConfig | None

    @classmethod
    def of(cls, cfg: PerpetuaConfig) -> _Sections:
        """From a validated config."""
        return cls(
            mode=cfg.mode,
            has_backtest=cfg.backtest is not None,
            venues=[_Item(i, v.name, v.kind, v) for i, v in enumerate(cfg.venues)],
            tokens=[_Item(i, t.id, None, t) for i, t in enumerate(cfg.tokens)],
            instruments=[_Item(i, x.id, x.kind, x) for i, x in enumerate(cfg.instruments)],
            strategies=[_Item(i, s.name, None, s) for i, s in enumerate(cfg.strategies)],
            risk=cfg.risk,
            backtest=cfg.backtest,
        )

    @classmethod
    def from_raw(cls, data: Mapping[str, Any]) -> _Sections:
        """From raw data that may not validate: each entry is validated on its own, so the entries
        that are fine are still checked, and names of broken entries still count as declared."""
        return cls(
            mode=data.get("mode"),
            has_backtest=data.get("backtest") is not None,
            venues=_raw_items(data.get("venues", ()), "name", _VENUE_ADAPTER),
            tokens=_raw_items(data.get("tokens", []), "id", _TOKEN_ADAPTER),
            instruments=_raw_items(data.get("instruments", []), "id", _INSTRUMENT_ADAPTER),
            strategies=_raw_items(data.get("strategies", []), "name", _STRATEGY_ADAPTER),
            risk=_try_validate(_RISK_ADAPTER, data.get("risk")),
            backtest=_try_validate(_BACKTEST_ADAPTER, data.get("backtest")),
        )


# cast: mypy cannot type a TypeAdapter of an Annotated union; the annotation states what it yields.
_VENUE_ADAPTER: TypeAdapter[AnyVenue] = TypeAdapter(cast(Any, VenueConfig))
_TOKEN_ADAPTER: TypeAdapter[TokenConfig] = TypeAdapter(TokenConfig)
_INSTRUMENT_ADAPTER: TypeAdapter[AnyInstrument] = TypeAdapter(cast(Any, InstrumentConfig))
_STRATEGY_ADAPTER: TypeAdapter[StrategyConfig] = TypeAdapter(StrategyConfig)
_RISK_ADAPTER: TypeAdapter[RiskLimits] = TypeAdapter(RiskLimits)
_BACKTEST_ADAPTER: TypeAdapter[BacktestConfig] = TypeAdapter(BacktestConfig)


def _try_validate(adapter: TypeAdapter[_T], raw: object) -> _T | None:
    if raw is None:
        return None
    try:
        return adapter.validate_python(raw)
    except ValidationError:
        return None


def _raw_items(raw: object, key_field: str, adapter: TypeAdapter[_T]) -> list[_Item[_T]] | None:
    if not isinstance(raw, list):
        return None
    items: list[_Item[_T]] = []
    for i, entry in enumerate(raw):
        fields = entry if isinstance(entry, dict) else {}
        key, kind = fields.get(key_field), fields.get("kind")
        items.append(
            _Item(
                i,
                key if isinstance(key, str) else None,
                kind if isinstance(kind, str) else None,
                _try_validate(adapter, entry),
            )
        )
    return items


def _unknown(what: str, value: str, known: Iterable[str]) -> str:
    names = sorted(set(known))
    close = difflib.get_close_matches(value, names, n=1, cutoff=0.6)
    if close:
        return f"unknown {what} (did you mean {close[0]!r}?)"
    if not names:
        return f"unknown {what} (none declared)"
    return f"unknown {what} (declared: {', '.join(names)})"


_Path = tuple[str | int, ...]


class _ReferenceCheck:
    """Duplicate names, and references to undeclared or unsuitable venues, instruments and tokens."""

    def __init__(self, s: _Sections) -> None:
        self.s = s
        self.issues: list[ConfigIssue] = []
        venues, tokens, instruments = s.venues or [], s.tokens or [], s.instruments or []
        self.venue_names = self._first_of("venues", "name", "venue name", venues)
        self._first_of("strategies", "name", "strategy name", s.strategies or [])
        # Tokens and instruments share one id space: pools, balances and strategies name both.
        self.id_where: dict[str, str] = {}
        for section, items in (("tokens", tokens), ("instruments", instruments)):
            for item in items:
                if item.key is None:
                    continue
                if item.key in self.id_where:
                    where = self.id_where[item.key]
                    self.issue(
                        (section, item.index, "id"), f"duplicate id (first declared at {where})", item.key
                    )
                else:
                    self.id_where[item.key] = format_path((section, item.index))
        self.venues = {it.key: it.model for it in venues if it.key is not None and it.model is not None}
        self.instruments = {
            it.key: it.model for it in instruments if it.key is not None and it.model is not None
        }
        self.tokens = {it.key: it.model for it in tokens if it.key is not None and it.model is not None}
        self.instrument_ids = [it.key for it in instruments if it.key is not None]
        # Broken entries still count as declared, so one error does not cascade into others.
        self.token_like = [it.key for it in tokens if it.key is not None] + [
            it.key for it in instruments if it.key is not None and it.kind == "tokenized_stock"
        ]

    def issue(self, parts: _Path, message: str, value: object) -> None:
        """Record one problem at `parts`."""
        self.issues.append(ConfigIssue(format_path(parts), message, value))

    def _first_of(self, section: str, key_field: str, what: str, items: Sequence[_Item[Any]]) -> set[str]:
        first: dict[str, int] = {}
        for item in items:
            if item.key is None:
                continue
            if item.key in first:
                where = format_path((section, first[item.key]))
                self.issue(
                    (section, item.index, key_field),
                    f"duplicate {what} (first declared at {where})",
                    item.key,
                )
            else:
                first[item.key] = item.index
        return set(first)

    def instrument(self, parts: _Path, instrument_id: str, tokens_too: bool = False) -> AnyInstrument | None:
        """Check that `instrument_id` is declared (an instrument, or also a token); its model if valid."""
        known = list(self.id_where) if tokens_too else self.instrument_ids
        if self.s.instruments is not None and instrument_id not in known:
            self.issue(parts, _unknown("instrument", instrument_id, known), instrument_id)
            return None
        return self.instruments.get(instrument_id)

    def venue(self, parts: _Path, name: str) -> AnyVenue | None:
        """Check that venue `name` is declared; its model if valid."""
        if self.s.venues is not None and name not in self.venue_names:
            self.issue(parts, _unknown("venue", name, self.venue_names), name)
            return None
        return self.venues.get(name)

    def run(self) -> list[ConfigIssue]:
        """Every problem, section by section."""
        for item in self.s.venues or []:
            if item.model is not None:
                self._venue_refs(("venues", item.index), item.model)
        for inst in self.s.instruments or []:
            if isinstance(inst.model, PoolConfig):
                self._pool(("instruments", inst.index), inst.model)
        for strat in self.s.strategies or []:
            if strat.model is not None:
                for j, name in enumerate(strat.model.venues):
                    self.venue(("strategies", strat.index, "venues", j), name)
                for j, instrument_id in enumerate(strat.model.instruments):
                    self.instrument(
                        ("strategies", strat.index, "instruments", j), instrument_id, tokens_too=True
                    )
        if self.s.risk is not None:
            for instrument_id in self.s.risk.overrides:
                self.instrument(("risk", "overrides", instrument_id), instrument_id)
        if self.s.backtest is not None:
            for name in self.s.backtest.initial_balances:
                self.venue(("backtest", "initial_balances", name), name)
        if self.s.mode == Mode.BACKTEST and not self.s.has_backtest:
            self.issue(("backtest",), "required when mode is backtest", NO_VALUE)
        return self.issues

    def _venue_refs(self, base: _Path, venue: AnyVenue) -> None:
        for key, instrument_id in venue.instrument_refs():
            found = self.instrument(base + key, instrument_id)
            if found is None:
                continue
            if isinstance(venue, IssuerVenue) and found.kind != "tokenized_stock":
                self.issue(
                    base + key,
                    f"is a {found.kind}; an issuer mints tokenized_stock instruments",
                    instrument_id,
                )
            if isinstance(venue, SimOptionsPoolVenue) and found.kind != "perpetual_option":
                message = f"is a {found.kind}; an options pool sells perpetual_option instruments"
                self.issue(base + key, message, instrument_id)
        if isinstance(venue, IssuerVenue) and venue.broker is not None:
            broker = self.venue((*base, "broker"), venue.broker)
            if broker is not None and broker.kind != "alpaca":
                message = f"is a {broker.kind} venue; a broker must be an alpaca venue"
                self.issue((*base, "broker"), message, venue.broker)

    def _pool(self, base: _Path, pool: PoolConfig) -> None:
        amm = self.venue((*base, "venue"), pool.venue)
        if amm is not None and not isinstance(amm, UniswapV2Venue | UniswapV3Venue | SimAmmVenue):
            message = f"is a {amm.kind} venue; a pool needs one of {', '.join(AMM_KINDS)}"
            self.issue((*base, "venue"), message, pool.venue)
        elif amm is not None:
            expected = {"uniswap_v2": 2, "uniswap_v3": 3}.get(amm.kind, pool.version)
            if pool.version != expected:
                self.issue(
                    (*base, "version"), f"must be {expected} on {amm.kind} venue {amm.name!r}", pool.version
                )
            if pool.chain_id != amm.chain_id:
                message = f"must match venue {amm.name!r} (chain {amm.chain_id})"
                self.issue((*base, "chain_id"), message, pool.chain_id)
        addresses: list[str] = []
        for side in ("token0", "token1"):
            token_id = getattr(pool, side)
            if token_id not in self.token_like:
                self.issue((*base, side), _unknown("token", token_id, self.token_like), token_id)
                continue
            token = self.tokens.get(token_id) or self.instruments.get(token_id)
            if isinstance(token, TokenConfig | TokenizedStockConfig):
                if token.chain_id != pool.chain_id:
                    message = f"is on chain {token.chain_id}, the pool on chain {pool.chain_id}"
                    self.issue((*base, side), message, token_id)
                addresses.append(token.address.lower())
        if len(addresses) == 2 and addresses[0] > addresses[1]:
            message = "must have the lower address (sorted as on chain): swap token0 and token1"
            self.issue((*base, "token0"), message, pool.token0)


def _reference_issues(s: _Sections) -> list[ConfigIssue]:
    """Every cross-reference problem of `s` (see `_ReferenceCheck`)."""
    return _ReferenceCheck(s).run()


# --------------------------------------------------------------------------------------------
# Translating pydantic errors


def _unwrap(tp: Any) -> Any:
    """Strip `Annotated[...]` and `X | None` down to the type that validates the value."""
    while True:
        if typing.get_origin(tp) is Annotated:
            tp = typing.get_args(tp)[0]
            continue
        if typing.get_origin(tp) in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(args) == 1:
                tp = args[0]
                continue
        return tp


def _tagged_members(tp: Any) -> dict[str, type[BaseModel]] | None:
    """`{kind: model}` when `tp` is a union of models discriminated on a literal `kind`."""
    if typing.get_origin(tp) not in (typing.Union, types.UnionType):
        return None
    members: dict[str, type[BaseModel]] = {}
    for member in typing.get_args(tp):
        field = getattr(member, "model_fields", {}).get("kind")
        if field is None or typing.get_origin(field.annotation) is not Literal:
            return None
        for tag in typing.get_args(field.annotation):
            members[str(tag)] = member
    return members


def _walk(root: Any, loc: Sequence[str | int]) -> tuple[tuple[str | int, ...], Any, Any]:
    """Follow pydantic's `loc` through the model types: returns the loc without union tags (which
    pydantic inserts, e.g. `venues.0.ccxt.exchange`), the type at the end and its parent's type."""
    tp: Any = root
    parent: Any = None
    out: list[str | int] = []
    for part in loc:
        tp = _unwrap(tp)
        members = _tagged_members(tp)
        if members is not None and isinstance(part, str) and part in members:
            tp = members[part]
            continue
        out.append(part)
        parent = tp
        origin = typing.get_origin(tp)
        fields = getattr(tp, "model_fields", None)
        if isinstance(fields, dict) and isinstance(part, str) and part in fields:
            tp = fields[part].annotation
        elif origin is list and isinstance(part, int):
            tp = typing.get_args(tp)[0]
        elif origin is dict and isinstance(part, str):
            tp = typing.get_args(tp)[1]
        else:
            tp = None
    return tuple(out), _unwrap(tp), _unwrap(parent)


def _expected(text: str) -> str:
    """pydantic's `'a', 'b' or 'c'` as `a, b, c`."""
    quoted = re.findall(r"'([^']*)'", text)
    return ", ".join(quoted) if quoted else text


def _known_keys_hint(key: str, parent: Any) -> str:
    fields = getattr(parent, "model_fields", None)
    if not isinstance(fields, dict):
        return ""
    close = difflib.get_close_matches(key, list(fields), n=1, cutoff=0.6)
    if close:
        return f" (did you mean {close[0]}?)"
    return f" (allowed: {', '.join(fields)})"


_SIMPLE_MESSAGES: Final = {
    "missing": "required",
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "int_from_float": "must be a whole number",
    "decimal_type": "must be a number",
    "decimal_parsing": "must be a number",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "finite_number": "must be a finite number",
    "string_type": "must be a string",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "list_type": "must be a list",
    "dict_type": "must be a mapping",
    "model_type": "must be a mapping",
    "model_attributes_type": "must be a mapping",
    "path_type": "must be a file path",
    "datetime_type": "must be a date or a time, like 2025-01-31 or 2026-03-20T13:30:00Z",
}


def _translate(error: Mapping[str, Any], parent: Any, here: Any) -> tuple[str, tuple[str | int, ...], object]:
    """pydantic error -> (short message, extra key path, value to show)."""
    kind = error["type"]
    ctx = error.get("ctx") or {}
    value: object = error.get("input", NO_VALUE)
    if kind == "missing":
        return "required", (), NO_VALUE
    if kind in _SIMPLE_MESSAGES:
        return _SIMPLE_MESSAGES[kind], (), value
    if kind == "extra_forbidden":
        key = error["loc"][-1] if error["loc"] else ""
        return "unknown key" + _known_keys_hint(str(key), parent), (), value
    if kind in ("literal_error", "enum"):
        return f"must be one of {_expected(str(ctx.get('expected', '')))}", (), value
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        field = str(ctx.get("discriminator", "kind")).strip("'")
        members = _tagged_members(here) or {}
        allowed = ", ".join(members) or _expected(str(ctx.get("expected_tags", "")))
        if kind == "union_tag_not_found":
            if not isinstance(value, Mapping):
                return "must be a mapping", (), value
            return f"required, one of {allowed}", (field,), NO_VALUE
        return f"must be one of {allowed}", (field,), ctx.get("tag", value)
    for bound, symbol in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
        if bound in ctx and kind.endswith(("than", "than_equal")):
            return f"must be {symbol} {ctx[bound]}", (), value
    if kind in ("string_too_short", "too_short"):
        least = ctx.get("min_length", 1)
        if kind == "string_too_short":
            return ("must not be empty" if least == 1 else f"must be at least {least} characters"), (), value
        return f"must have at least {least} item{'s' if least != 1 else ''}", (), value
    if kind in ("string_too_long", "too_long"):
        unit = "characters" if kind == "string_too_long" else "items"
        return f"must have at most {ctx.get('max_length')} {unit}", (), value
    message = str(error.get("msg", kind))
    return message[:1].lower() + message[1:], (), value


def issues_from_validation_error(
    error: ValidationError, root: type[BaseModel], prefix: tuple[str | int, ...] = ()
) -> list[ConfigIssue]:
    """Turn a pydantic `ValidationError` of model `root` into config issues with full key paths.

    `prefix` is where `root` sits in the config (e.g. `("strategies", 0, "params")`).
    """
    issues: list[ConfigIssue] = []
    for err in error.errors(include_url=False):
        loc, here, parent = _walk(root, err["loc"])
        ctx = err.get("ctx") or {}
        cause = ctx.get("error")
        if isinstance(cause, _ReferenceProblems):
            issues.extend(cause.issues)
            continue
        if isinstance(cause, FieldProblem):
            value = err.get("input", NO_VALUE) if cause.value is USE_INPUT else cause.value
            path = format_path(prefix + loc + cause.key)
            issues.append(ConfigIssue(path, cause.message, value, cause.redact))
            continue
        message, extra, value = _translate(err, parent, here)
        issues.append(ConfigIssue(format_path(prefix + loc + extra), message, value))
    return issues


# --------------------------------------------------------------------------------------------
# Secrets

_SECRET_KEY_RE = re.compile(
    r"(?:^|_)(api_?key|api_?secret|secret|private_?key|password|passwd|passphrase|mnemonic|seed_?phrase"
    r"|(?:access|auth|api|bearer)_?token)(?:_|$)"
)


def _normalise_key(key: str) -> str:
    # camelCase (ccxt's apiKey) and kebab-case keys are checked like snake_case ones.
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", key).replace("-", "_").lower()


def _is_secret_key(key: str) -> bool:
    normal = _normalise_key(key)
    return not normal.endswith("_env") and _SECRET_KEY_RE.search(normal) is not None


def _strip_secrets(data: Any, path: tuple[str | int, ...] = ()) -> tuple[Any, list[ConfigIssue]]:
    """Remove literal secret-looking keys anywhere in `data`, with one redacted issue each, so no
    later message can echo them."""
    issues: list[ConfigIssue] = []
    if isinstance(data, dict):
        kept: dict[Any, Any] = {}
        for key, value in data.items():
            if isinstance(key, str) and _is_secret_key(key):
                message = (
                    "literal secrets are not allowed in the config; use the *_env form "
                    f"({key}_env: NAME_OF_AN_ENVIRONMENT_VARIABLE) and keep the secret in that variable"
                )
                if re.search(r"private_?key|mnemonic|seed", _normalise_key(key)):
                    message = (
                        "literal private keys are not allowed in the config; use an encrypted keystore "
                        "(keystore: path, keystore_password_env: NAME_OF_AN_ENVIRONMENT_VARIABLE)"
                    )
                issues.append(ConfigIssue(format_path((*path, key)), message, redact=True))
                continue
            kept[key], sub = _strip_secrets(value, (*path, key) if isinstance(key, str | int) else path)
            issues += sub
        return kept, issues
    if isinstance(data, list):
        items = []
        for i, value in enumerate(data):
            item, sub = _strip_secrets(value, (*path, i))
            items.append(item)
            issues += sub
        return items, issues
    return data, issues


# --------------------------------------------------------------------------------------------
# YAML


class _Loader(yaml.SafeLoader):
    """Safe YAML with exact decimals, no hex/octal/base-60 surprises, and duplicate keys refused."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        """Refuse a key given twice in one mapping (plain PyYAML keeps the last one silently)."""
        seen: dict[tuple[str, str], yaml.Mark] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                continue
            ident = (key_node.tag, key_node.value)
            if ident in seen:
                first = seen[ident]
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"duplicate key {key_node.value!r} (first at line {first.line + 1})",
                    key_node.start_mark,
                )
            seen[ident] = key_node.start_mark
        return super().construct_mapping(node, deep)


def _construct_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int | str:
    text = loader.construct_scalar(node)
    digits = text.replace("_", "")
    # Only plain decimal integers are numbers; 0x..., 0o17, 017 and 1:30 stay text.
    if re.fullmatch(r"[-+]?(0|[1-9][0-9]*)", digits):
        return int(digits)
    return text


def _construct_float(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Decimal | str:
    text = loader.construct_scalar(node)
    cleaned = text.replace("_", "").lower()
    special = {".inf": "Infinity", "+.inf": "Infinity", "-.inf": "-Infinity", ".nan": "NaN"}
    try:
        return Decimal(special.get(cleaned, cleaned))
    except InvalidOperation:
        return text


_Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)
_Loader.add_constructor("tag:yaml.org,2002:float", _construct_float)


def _yaml_issue(source: str, exc: yaml.YAMLError) -> ConfigIssue:
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}"
        problem = exc.problem or "syntax error"
        context = f" ({exc.context})" if exc.context else ""
        return ConfigIssue(where, f"invalid YAML: {problem}{context}")
    return ConfigIssue(source, f"invalid YAML: {exc}")


# --------------------------------------------------------------------------------------------
# Entry points


def parse_config(text: str, source: str = "<config>") -> PerpetuaConfig:
    """Validate config text; `source` names it in messages. Raises `ConfigError` listing every problem."""
    try:
        data = yaml.load(text, Loader=_Loader)  # _Loader derives from SafeLoader
    except yaml.YAMLError as exc:
        raise ConfigError([_yaml_issue(source, exc)]) from None
    if data is None:
        raise ConfigError([ConfigIssue(source, "file is empty")])
    if not isinstance(data, dict):
        sections = ", ".join(PerpetuaConfig.model_fields)
        raise ConfigError([ConfigIssue(source, f"must be a mapping of sections ({sections})", data)])
    data, issues = _strip_secrets(data)
    config: PerpetuaConfig | None = None
    try:
        config = PerpetuaConfig.model_validate(data, context={_SKIP_REFERENCES: True})
    except ValidationError as exc:
        issues += issues_from_validation_error(exc, PerpetuaConfig)
    issues += _reference_issues(_Sections.from_raw(data))
    if issues or config is None:
        raise ConfigError(issues)
    return config


def load_config(path: str | os.PathLike[str]) -> PerpetuaConfig:
    """Read and validate a config file. Raises `ConfigError` listing every problem, one per line."""
    source = os.fspath(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([ConfigIssue(source, "file not found")]) from None
    except IsADirectoryError:
        raise ConfigError([ConfigIssue(source, "is a directory, not a config file")]) from None
    except PermissionError:
        raise ConfigError([ConfigIssue(source, "cannot be read: permission denied")]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            [ConfigIssue(source, f"is not UTF-8 text (bad byte at offset {exc.start})")]
        ) from None
    return parse_config(text, source)


def validate_strategy_params(
    cfg: PerpetuaConfig, models: Mapping[str, type[BaseModel]]
) -> dict[str, BaseModel]:
    """Validate each strategy's `params` against the parameter model of its class.

    `models` maps a `strategy` value (class path or builtin name) to its parameter model; entries
    whose class has no model here are skipped (the strategy loader reports unknown classes).
    Returns the validated parameters by strategy name; raises `ConfigError` listing every problem
    of every strategy with its full path, e.g. `strategies[0].params.max_premium_bps: must be > 0,
    got -5`.
    """
    issues: list[ConfigIssue] = []
    validated: dict[str, BaseModel] = {}
    for i, entry in enumerate(cfg.strategies):
        model = models.get(entry.strategy)
        if model is None:
            continue
        try:
            validated[entry.name] = model.model_validate(entry.params)
        except ValidationError as exc:
            issues += issues_from_validation_error(exc, model, prefix=("strategies", i, "params"))
    if issues:
        raise ConfigError(issues)
    return validated
