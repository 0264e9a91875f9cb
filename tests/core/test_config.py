"""Config models: the default config.yaml, every kind of bad config and its exact message."""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from core.config import (
    CcxtVenue,
    ConfigError,
    Mode,
    PerpetuaConfig,
    PoolConfig,
    issues_from_validation_error,
    load_config,
    parse_config,
    to_ns,
    validate_strategy_params,
)
from core.errors import PerpetuaError
from core.instruments import PerpetualOption, Pool, Spot, StockPerp, TokenizedStock
from core.risk import InstrumentLimits, RiskLimits

REPO = Path(__file__).resolve().parents[2]
TSLAX = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
USDC = "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512"

# A small valid config; each bad-config test changes one thing in a copy of it.
BASE_YAML = f"""
mode: paper
venues:
  - name: binance
    kind: ccxt
    exchange: binance
    api_key_env: BINANCE_API_KEY
    secret_env: BINANCE_API_SECRET
    markets: {{TSLA-PERP: "TSLA/USDT:USDT"}}
  - name: uni
    kind: uniswap_v3
    chain_id: 31337
    rpc_url: http://127.0.0.1:8545
    factory: "0x9fE46736679d2D9a65F0992F2272dE9f3c7fa6e0"
    quoter: "0xDc64a140Aa3E981100a9becA4E685f962f0cF6C9"
    swap_router: "0xCf7Ed3AccA5a467e9e704C703E8D87F634fB0Fc9"
tokens:
  - {{id: USDC, chain_id: 31337, address: "{USDC}", decimals: 6}}
instruments:
  - {{id: TSLAx, kind: tokenized_stock, underlying: TSLA, issuer: xstocks, chain_id: 31337,
     address: "{TSLAX}", decimals: 18}}
  - {{id: TSLA-PERP, kind: stock_perp, underlying: TSLA, quote: USDT}}
  - {{id: TSLAx/USDC, kind: pool, venue: uni, chain_id: 31337,
     address: "0x0165878A594ca255338adfa4d48449f69242Eb8F", token0: TSLAx, token1: USDC, fee: 3000}}
strategies:
  - name: taker
    strategy: strategies.fair_value:FairValueTaker
    venues: [uni, binance]
    instruments: [TSLAx/USDC, TSLA-PERP]
    params: {{max_premium_bps: 50, order_size: 1.5}}
risk:
  max_notional: 25000
  max_order_rate: {{orders_per_second: 5}}
  max_daily_loss: 1000
  max_data_staleness_ms: 5000
  price_band_bps: 200
  max_gas_price_gwei: 50
"""
BASE: dict[str, Any] = yaml.safe_load(BASE_YAML)


def build(change: Callable[[dict[str, Any]], object]) -> str:
    """YAML text of BASE after `change` edited a deep copy of it."""
    data = copy.deepcopy(BASE)
    change(data)
    return yaml.safe_dump(data, sort_keys=False)


def errors_of(text: str) -> str:
    """The ConfigError message `text` produces (the test fails if it validates)."""
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "c.yaml")
    return str(caught.value)


def test_base_config_is_valid() -> None:
    config = parse_config(BASE_YAML)
    assert config.mode is Mode.PAPER
    assert config.storage.url == "sqlite+aiosqlite:///perpetua.sqlite"
    assert config.backtest is None


# --------------------------------------------------------------------------------------------
# The default config.yaml


def test_default_config_yaml_validates_and_builds_instruments() -> None:
    config = load_config(REPO / "config.yaml")
    assert config.mode is Mode.SANDBOX
    assert [v.kind for v in config.venues] == [
        "uniswap_v3",
        "ccxt",
        "alpaca",
        "issuer",
        "chainlink",
        "sim_options_pool",
    ]
    registry = config.instrument_registry()
    assert len(registry) == 6
    tslax = registry["TSLAx"]
    assert isinstance(tslax, TokenizedStock)
    assert tslax.decimals == 18
    change_ts = to_ns(datetime(2026, 6, 15, 13, 30, tzinfo=UTC))
    assert tslax.multiplier.at(change_ts - 1) == Decimal("1.0")
    assert tslax.multiplier.at(change_ts) == Decimal("1.0042")
    assert isinstance(registry["TSLA/USD"], Spot)
    perp = registry["TSLA-PERP"]
    assert isinstance(perp, StockPerp)
    assert perp.funding_interval_ns == 4 * 3600 * 10**9
    option = registry["BTC-100000-C-7D/TSLAx"]
    assert isinstance(option, PerpetualOption)
    assert (option.is_call, option.coin_margined, option.margin_asset) == (True, True, "TSLAx")
    assert option.funding_period_ns == 7 * 86_400 * 10**9
    pool = registry["TSLAx/USDC"]
    assert isinstance(pool, Pool)
    assert (pool.token0, pool.token1, pool.fee, pool.tick_spacing, pool.version) == (
        "TSLAx",
        "USDC",
        3000,
        60,
        3,
    )
    assert config.token("USDC").decimals == 6
    assert config.strategies[0].strategy == "strategies.fair_value:FairValueTaker"
    assert config.strategies[0].params["order_size"] == Decimal("1.5")
    assert ("venues[1].api_key_env", "BINANCE_API_KEY") in config.env_vars()


def test_default_config_has_no_literal_secret_and_imports_no_strategy() -> None:
    import subprocess
    import sys

    # A fresh interpreter: other tests in this process import strategies on purpose.
    code = (
        "import sys; from core.config import load_config; load_config('config.yaml'); "
        "print('strategies.fair_value' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    # Validation must not import strategy classes (the loader does that when the bot starts).
    assert done.stdout.strip() == "False"


# --------------------------------------------------------------------------------------------
# Bad configs: exact messages


def test_negative_number() -> None:
    text = build(lambda d: d["risk"].update(max_notional=-5))
    assert errors_of(text) == "risk.max_notional: must be > 0, got -5"


def test_unknown_top_level_key() -> None:
    text = build(lambda d: d.update(leverage=10))
    assert errors_of(text) == (
        "leverage: unknown key (allowed: name, mode, venues, tokens, instruments, strategies, risk, "
        "storage, backtest), got 10"
    )


def test_unknown_nested_key_suggests_the_close_one() -> None:
    text = build(lambda d: d["risk"].update(max_notionl=5))
    assert errors_of(text) == "risk.max_notionl: unknown key (did you mean max_notional?), got 5"


def test_unknown_key_in_a_venue_has_no_union_tag_in_its_path() -> None:
    text = build(lambda d: d["venues"][0].update(exchang="kraken"))
    assert errors_of(text) == "venues[0].exchang: unknown key (did you mean exchange?), got 'kraken'"


def test_missing_required_key() -> None:
    text = build(lambda d: d["venues"][0].pop("exchange"))
    assert errors_of(text) == "venues[0].exchange: required"


def test_missing_required_section() -> None:
    text = build(lambda d: d.pop("risk"))
    assert errors_of(text) == "risk: required"


def test_wrong_mode() -> None:
    text = build(lambda d: d.update(mode="papr"))
    assert errors_of(text) == "mode: must be one of backtest, paper, live, sandbox, got 'papr'"


@pytest.mark.parametrize(
    "key", ["api_key", "secret", "password", "apiKey", "secret_key", "keystore_password"]
)
def test_literal_secret_is_refused_and_never_echoed(key: str) -> None:
    text = build(lambda d: d["venues"][0].update({key: "s3cr3t-VALUE-123"}))
    message = errors_of(text)
    assert message == (
        f"venues[0].{key}: literal secrets are not allowed in the config; use the *_env form "
        f"({key}_env: NAME_OF_AN_ENVIRONMENT_VARIABLE) and keep the secret in that variable, got <redacted>"
    )
    assert "s3cr3t" not in message


def test_literal_private_key_points_to_the_keystore() -> None:
    text = build(lambda d: d["venues"][1].update(private_key="ab" * 32))
    assert errors_of(text) == (
        "venues[1].private_key: literal private keys are not allowed in the config; "
        "use an encrypted keystore (keystore: path, keystore_password_env: NAME_OF_AN_ENVIRONMENT_VARIABLE), "
        "got <redacted>"
    )


def test_literal_secret_inside_strategy_params_is_refused() -> None:
    text = build(lambda d: d["strategies"][0]["params"].update(api_token="tok-123"))
    message = errors_of(text)
    assert message.startswith("strategies[0].params.api_token: literal secrets are not allowed")
    assert "tok-123" not in message


def test_env_var_field_holding_a_value_is_refused_and_redacted() -> None:
    text = build(lambda d: d["venues"][0].update(api_key_env="vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy"))
    message = errors_of(text)
    assert message == (
        "venues[0].api_key_env: must be the NAME of an environment variable (A-Z, 0-9, _), "
        "never the secret itself, got <redacted>"
    )


def test_unknown_venue_in_a_strategy() -> None:
    text = build(lambda d: d["strategies"][0]["venues"].append("binanse"))
    assert (
        errors_of(text) == "strategies[0].venues[2]: unknown venue (did you mean 'binance'?), got 'binanse'"
    )


def test_unknown_instrument_in_a_strategy_lists_the_declared_ones() -> None:
    text = build(lambda d: d["strategies"][0]["instruments"].append("NVDAx"))
    assert errors_of(text) == (
        "strategies[0].instruments[2]: unknown instrument (declared: TSLA-PERP, TSLAx, TSLAx/USDC, USDC), "
        "got 'NVDAx'"
    )


def test_unknown_token_in_a_pool() -> None:
    text = build(lambda d: d["instruments"][2].update(token1="USDT"))
    assert errors_of(text) == "instruments[2].token1: unknown token (did you mean 'USDC'?), got 'USDT'"


def test_unknown_venue_in_a_pool() -> None:
    text = build(lambda d: d["instruments"][2].update(venue="sushi"))
    assert errors_of(text) == "instruments[2].venue: unknown venue (declared: binance, uni), got 'sushi'"


def test_unknown_instrument_in_venue_markets() -> None:
    text = build(lambda d: d["venues"][0]["markets"].update({"TSLA-PERPX": "X"}))
    assert errors_of(text) == (
        "venues[0].markets['TSLA-PERPX']: unknown instrument (did you mean 'TSLA-PERP'?), got 'TSLA-PERPX'"
    )


def test_duplicate_venue_names() -> None:
    text = build(lambda d: d["venues"].append(copy.deepcopy(d["venues"][0])))
    assert (
        errors_of(text) == "venues[2].name: duplicate venue name (first declared at venues[0]), got 'binance'"
    )


def test_duplicate_instrument_ids() -> None:
    text = build(lambda d: d["instruments"].append(copy.deepcopy(d["instruments"][1])))
    assert (
        errors_of(text)
        == "instruments[3].id: duplicate id (first declared at instruments[1]), got 'TSLA-PERP'"
    )


def test_token_and_instrument_ids_share_one_namespace() -> None:
    text = build(lambda d: d["instruments"][1].update(id="USDC"))
    message = errors_of(text)
    assert (
        message.splitlines()[0] == "instruments[1].id: duplicate id (first declared at tokens[0]), got 'USDC'"
    )


def test_duplicate_strategy_names() -> None:
    text = build(lambda d: d["strategies"].append(copy.deepcopy(d["strategies"][0])))
    assert errors_of(text) == (
        "strategies[1].name: duplicate strategy name (first declared at strategies[0]), got 'taker'"
    )


def test_bad_yaml_syntax_names_line_and_column() -> None:
    text = "mode: paper\nvenues:\n  - name: x\n   kind: ccxt\n"
    assert errors_of(text) == (
        "c.yaml:4:4: invalid YAML: expected <block end>, but found '<block mapping start>' "
        "(while parsing a block collection)"
    )


def test_duplicate_yaml_key_is_refused_with_its_line() -> None:
    assert (
        errors_of("mode: paper\nmode: live\n")
        == "c.yaml:2:1: invalid YAML: duplicate key 'mode' (first at line 1)"
    )


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("# only a comment\n\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == f"{path}: file is empty"


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == f"{path}: file not found"
    assert isinstance(caught.value, PerpetuaError)


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path)
    assert str(caught.value) == f"{tmp_path}: is a directory, not a config file"


def test_top_level_must_be_a_mapping() -> None:
    assert errors_of("- 1\n- 2\n") == (
        "c.yaml: must be a mapping of sections (name, mode, venues, tokens, instruments, strategies, risk, "
        "storage, backtest), got [1, 2]"
    )


def test_wrong_type_string_for_int() -> None:
    text = build(lambda d: d["tokens"][0].update(decimals="six"))
    assert errors_of(text) == "tokens[0].decimals: must be an integer, got 'six'"


def test_quoted_integer_is_refused_where_an_integer_is_expected() -> None:
    text = build(lambda d: d["risk"].update(max_data_staleness_ms="5000"))
    assert errors_of(text) == "risk.max_data_staleness_ms: must be an integer, got '5000'"


def test_wrong_type_list_for_mapping() -> None:
    text = build(lambda d: d.update(risk=[1, 2]))
    assert errors_of(text) == "risk: must be a mapping, got [1, 2]"


def test_venue_that_is_not_a_mapping() -> None:
    text = build(lambda d: d["venues"].append("kraken"))
    assert errors_of(text) == "venues[2]: must be a mapping, got 'kraken'"


def test_unknown_venue_kind() -> None:
    text = build(lambda d: d["venues"][0].update(kind="ftx"))
    assert errors_of(text) == (
        "venues[0].kind: must be one of uniswap_v2, uniswap_v3, ccxt, alpaca, issuer, chainlink, sim_book, "
        "sim_amm, sim_options_pool, got 'ftx'"
    )


def test_missing_instrument_kind() -> None:
    text = build(lambda d: d["instruments"][1].pop("kind"))
    assert errors_of(text) == (
        "instruments[1].kind: required, one of tokenized_stock, spot, stock_perp, perpetual_option, pool"
    )


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("1.2.3", "must be a number, got '1.2.3'"),
        ("nan", "must be a finite number, got 'nan'"),
        (True, "must be a number, got true"),
        ("0", "must be > 0, got '0'"),
    ],
)
def test_bad_decimal(value: object, message: str) -> None:
    text = build(lambda d: d["risk"].update(max_daily_loss=value))
    assert errors_of(text) == f"risk.max_daily_loss: {message}"


def test_token_decimals_out_of_range() -> None:
    text = build(lambda d: d["tokens"][0].update(decimals=40))
    assert errors_of(text) == "tokens[0].decimals: must be <= 36, got 40"


def test_price_band_above_100_percent() -> None:
    text = build(lambda d: d["risk"].update(price_band_bps=20000))
    assert errors_of(text) == "risk.price_band_bps: must be <= 10000, got 20000"


def test_every_error_is_listed_one_per_line() -> None:
    def break_three(d: dict[str, Any]) -> None:
        d["mode"] = "papr"
        d["risk"]["max_notional"] = -5
        d["strategies"][0]["venues"].append("kraken")

    assert errors_of(build(break_three)).splitlines() == [
        "mode: must be one of backtest, paper, live, sandbox, got 'papr'",
        "risk.max_notional: must be > 0, got -5",
        "strategies[0].venues[2]: unknown venue (declared: binance, uni), got 'kraken'",
    ]


def test_a_broken_entry_still_counts_as_declared() -> None:
    # TSLAx is broken (bad address) but the pool naming it must not also report it as unknown.
    text = build(lambda d: d["instruments"][0].update(address="0x123"))
    assert (
        errors_of(text)
        == "instruments[0].address: must be an address: 0x followed by 40 hex digits, got '0x123'"
    )


def test_bad_address_checksum() -> None:
    text = build(lambda d: d["tokens"][0].update(address=USDC[:-1] + "3"))
    assert errors_of(text) == (
        "tokens[0].address: fails its EIP-55 checksum (a typo?); write it in lower case to skip the check, "
        f"got '{USDC[:-1]}3'"
    )


def test_lower_case_address_is_accepted_and_checksummed() -> None:
    config = parse_config(build(lambda d: d["tokens"][0].update(address=USDC.lower())))
    assert config.token("USDC").address == USDC


def test_duration_needs_a_unit() -> None:
    text = build(lambda d: d["instruments"][1].update(funding_interval=4))
    assert errors_of(text) == (
        "instruments[1].funding_interval: must be a duration with a unit: ms, s, m, h, d or w "
        "(like 500ms, 8h, 7d), got 4"
    )


def test_multiplier_change_needs_a_time_zone_and_order() -> None:
    def changes(d: dict[str, Any]) -> None:
        d["instruments"][0]["multiplier"] = {
            "initial": "1",
            "changes": [
                {"effective": "2026-06-15T13:30:00Z", "multiplier": "1.01"},
                {"effective": "2026-06-01T00:00:00", "multiplier": "1.02"},
            ],
        }

    assert errors_of(build(changes)) == (
        "instruments[0].multiplier.changes[1].effective: must include a time zone, "
        "like 2026-03-20T13:30:00Z, got '2026-06-01T00:00:00'"
    )
    text = build(changes).replace("2026-06-01T00:00:00", "2026-06-01T00:00:00Z")
    assert errors_of(text) == (
        "instruments[0].multiplier.changes[1].effective: must be later than changes[0].effective, "
        "got 2026-06-01T00:00:00+00:00"
    )


def test_pool_tokens_must_be_sorted_by_address() -> None:
    text = build(lambda d: d["instruments"][2].update(token0="USDC", token1="TSLAx"))
    assert errors_of(text) == (
        "instruments[2].token0: must have the lower address (sorted as on chain): swap token0 and token1, "
        "got 'USDC'"
    )


def test_pool_on_a_non_amm_venue() -> None:
    text = build(lambda d: d["instruments"][2].update(venue="binance"))
    assert errors_of(text) == (
        "instruments[2].venue: is a ccxt venue; a pool needs one of uniswap_v2, uniswap_v3, sim_amm, "
        "got 'binance'"
    )


def test_pool_version_and_chain_must_match_its_venue() -> None:
    text = build(lambda d: d["instruments"][2].update(version=2))
    assert errors_of(text) == "instruments[2].version: must be 3 on uniswap_v3 venue 'uni', got 2"
    text = build(lambda d: d["instruments"][2].update(chain_id=1))
    assert (
        errors_of(text).splitlines()[0]
        == "instruments[2].chain_id: must match venue 'uni' (chain 31337), got 1"
    )


def test_rpc_url_or_env_required() -> None:
    text = build(lambda d: d["venues"][1].pop("rpc_url"))
    assert errors_of(text) == "venues[1].rpc_url: required (or rpc_url_env)"


def test_keystore_needs_its_password_env() -> None:
    text = build(lambda d: d["venues"][1].update(keystore="wallet.json"))
    assert errors_of(text) == "venues[1].keystore_password_env: required when keystore is set"


def test_raw_private_key_as_keystore_is_redacted() -> None:
    text = build(lambda d: d["venues"][1].update(keystore="ab" * 32, keystore_password_env="PW"))
    message = errors_of(text)
    assert message == (
        "venues[1].keystore: looks like a raw private key; give the path of an encrypted JSON keystore file, "
        "got <redacted>"
    )


def test_storage_url_with_a_password_is_refused_and_redacted() -> None:
    text = build(lambda d: d.update(storage={"url": "postgresql+asyncpg://bot:hunter2@db/perpetua"}))
    message = errors_of(text)
    assert message == (
        "storage.url: must not contain a password; put it in an environment variable named by password_env, "
        "got <redacted>"
    )
    assert "hunter2" not in message


def test_storage_url_needs_an_async_driver() -> None:
    text = build(lambda d: d.update(storage={"url": "sqlite:///perpetua.sqlite"}))
    assert errors_of(text) == (
        "storage.url: must be an async SQLAlchemy URL naming its driver, "
        "like sqlite+aiosqlite:///perpetua.sqlite or postgresql+asyncpg://host/db, got 'sqlite:///perpetua.sqlite'"
    )


def test_backtest_mode_needs_a_backtest_section() -> None:
    text = build(lambda d: d.update(mode="backtest"))
    assert errors_of(text) == "backtest: required when mode is backtest"


def test_backtest_section_checks() -> None:
    def backtest(d: dict[str, Any]) -> None:
        d["backtest"] = {
            "data_dir": "data",
            "start": "2025-07-01",
            "end": "2025-06-01",
            "initial_balances": {"kraken": {"USD": 1}},
        }

    assert errors_of(build(backtest)).splitlines() == [
        "backtest.end: must be later than start (2025-07-01T00:00:00+00:00), got 2025-06-01T00:00:00+00:00",
    ]
    text = build(backtest).replace("2025-06-01", "2025-09-01")
    assert errors_of(text) == (
        "backtest.initial_balances.kraken: unknown venue (declared: binance, uni), got 'kraken'"
    )


def test_risk_override_for_an_unknown_instrument() -> None:
    text = build(lambda d: d["risk"].update(overrides={"TSLA-PERPX": {"max_position": 1}}))
    assert errors_of(text) == (
        "risk.overrides['TSLA-PERPX']: unknown instrument (did you mean 'TSLA-PERP'?), got 'TSLA-PERPX'"
    )


def test_strategy_reference_must_be_a_class_path_or_builtin_name() -> None:
    text = build(lambda d: d["strategies"][0].update(strategy="strategies/fair_value"))
    assert errors_of(text) == (
        "strategies[0].strategy: must be a class path like mypkg.module:ClassName, a file like "
        "path/to/file.py:ClassName or a strategy name like fair_value_taker, got 'strategies/fair_value'"
    )


def test_issuer_broker_must_be_an_alpaca_venue() -> None:
    def issuer(d: dict[str, Any]) -> None:
        d["venues"].append({"name": "xstocks", "kind": "issuer", "issuer": "xstocks", "broker": "binance"})
        d["venues"][-1]["tokens"] = ["TSLA-PERP"]

    assert errors_of(build(issuer)).splitlines() == [
        "venues[2].tokens[0]: is a stock_perp; an issuer mints tokenized_stock instruments, got 'TSLA-PERP'",
        "venues[2].broker: is a ccxt venue; a broker must be an alpaca venue, got 'binance'",
    ]


# --------------------------------------------------------------------------------------------
# Numbers, YAML quirks, models


def test_decimals_stay_exact() -> None:
    text = BASE_YAML.replace("order_size: 1.5", "order_size: 0.1234567890123456789012345").replace(
        "max_notional: 25000", 'max_notional: "0.25"'
    )
    config = parse_config(text)
    assert config.strategies[0].params["order_size"] == Decimal("0.1234567890123456789012345")
    assert config.risk.max_notional == Decimal("0.25")
    direct = RiskLimits.model_validate({**BASE["risk"], "max_daily_loss": 0.1})
    assert direct.max_daily_loss == Decimal("0.1")  # a Python float goes through its shortest repr


def test_unquoted_hex_address_stays_a_string() -> None:
    text = BASE_YAML.replace(f'"{USDC}"', USDC)
    assert parse_config(text).token("USDC").address == USDC


def test_config_is_frozen() -> None:
    config = parse_config(BASE_YAML)
    with pytest.raises(ValidationError):
        config.mode = Mode.LIVE  # type: ignore[misc]


def test_direct_model_validation_also_checks_references() -> None:
    data = yaml.safe_load(build(lambda d: d["strategies"][0]["venues"].append("kraken")))
    with pytest.raises(ValidationError) as caught:
        PerpetuaConfig.model_validate(data)
    issues = issues_from_validation_error(caught.value, PerpetuaConfig)
    assert [str(i) for i in issues] == [
        "strategies[0].venues[2]: unknown venue (declared: binance, uni), got 'kraken'"
    ]


def test_pool_tick_spacing_comes_from_the_fee_tier() -> None:
    pool = parse_config(BASE_YAML).instrument("TSLAx/USDC")
    assert isinstance(pool, PoolConfig)
    assert pool.effective_tick_spacing == 60
    text = build(lambda d: d["instruments"][2].update(fee=2500))
    assert errors_of(text) == "instruments[2].tick_spacing: required for the non-standard fee tier 2500"


def test_ccxt_keys_come_in_pairs() -> None:
    text = build(lambda d: d["venues"][0].pop("secret_env"))
    assert errors_of(text) == "venues[0].secret_env: required when api_key_env is set"
    venue = parse_config(BASE_YAML).venue("binance")
    assert isinstance(venue, CcxtVenue)
    assert venue.env_vars() == {"api_key_env": "BINANCE_API_KEY", "secret_env": "BINANCE_API_SECRET"}


# --------------------------------------------------------------------------------------------
# Risk limits


def test_risk_overrides_fall_back_to_the_defaults() -> None:
    limits = RiskLimits.model_validate(
        {**BASE["risk"], "max_position": 100, "overrides": {"TSLA-PERP": {"max_position": 5}}}
    )
    assert limits.for_instrument("TSLA-PERP") == InstrumentLimits(
        max_position=Decimal(5), max_notional=Decimal(25000), price_band_bps=Decimal(200)
    )
    assert limits.for_instrument("TSLAx").max_position == Decimal(100)
    assert limits.max_order_rate.max_orders_per_window == 5


@pytest.mark.parametrize(
    "field",
    ["max_notional", "max_daily_loss", "max_data_staleness_ms", "price_band_bps", "max_gas_price_gwei"],
)
def test_every_risk_limit_must_be_positive(field: str) -> None:
    text = build(lambda d: d["risk"].update({field: 0}))
    assert errors_of(text) == f"risk.{field}: must be > 0, got 0"


def test_order_rate_that_admits_no_order() -> None:
    text = build(lambda d: d["risk"].update(max_order_rate={"orders_per_second": "0.5", "window_ms": 1000}))
    assert errors_of(text) == (
        "risk.max_order_rate.orders_per_second: admits no order in a 1000 ms window; raise orders_per_second "
        "or window_ms, got 0.5"
    )


# --------------------------------------------------------------------------------------------
# Strategy parameters


class FairValueParams(BaseModel):
    """What a strategy class would declare for its params."""

    model_config = ConfigDict(extra="forbid")

    max_premium_bps: Decimal = Field(gt=0)
    order_size: Decimal = Field(gt=0)
    hedge: bool = False


MODELS: dict[str, type[BaseModel]] = {"strategies.fair_value:FairValueTaker": FairValueParams}


def test_strategy_params_validate_against_their_model() -> None:
    validated = validate_strategy_params(parse_config(BASE_YAML), MODELS)
    params = validated["taker"]
    assert isinstance(params, FairValueParams)
    assert (params.max_premium_bps, params.order_size) == (Decimal(50), Decimal("1.5"))


def test_bad_strategy_param_names_the_full_path() -> None:
    config = parse_config(build(lambda d: d["strategies"][0]["params"].update(max_premium_bps=-5)))
    with pytest.raises(ConfigError) as caught:
        validate_strategy_params(config, MODELS)
    assert str(caught.value) == "strategies[0].params.max_premium_bps: must be > 0, got -5"


def test_every_strategy_param_error_is_listed() -> None:
    def params(d: dict[str, Any]) -> None:
        d["strategies"][0]["params"] = {"order_size": "lots", "hedg": True}

    config = parse_config(build(params))
    with pytest.raises(ConfigError) as caught:
        validate_strategy_params(config, MODELS)
    assert str(caught.value).splitlines() == [
        "strategies[0].params.max_premium_bps: required",
        "strategies[0].params.order_size: must be a number, got 'lots'",
        "strategies[0].params.hedg: unknown key (did you mean hedge?), got true",
    ]


def test_strategies_without_a_model_are_left_to_the_loader() -> None:
    assert validate_strategy_params(parse_config(BASE_YAML), {}) == {}
