"""Margin: haircut collateral, perp and short-option requirements, liquidation, `can_open`.

Every expected number is worked out by hand in the comment above its assertion.
"""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest

from core.enums import Side
from core.errors import InvalidInput
from core.events import Fill
from core.instruments import InstrumentRegistry, PerpetualOption, Spot, StockPerp
from core.margin import MarginCalculator, MarginPolicy, MarginRequirement
from core.portfolio import Portfolio

D = Decimal
DAY = 24 * 3600 * 1_000_000_000
T0 = 1_750_000_000_000_000_000
V = "perpx"

TSLA_PERP = StockPerp("TSLA-PERP", "TSLA", "USDT", max_leverage=D(5))
TSLA_PUT = PerpetualOption("TSLA-250-P", "TSLA", D(250), False, DAY, "USDC", "USDC")
BTC_CALL = PerpetualOption("BTC-100000-C/TSLAx", "BTC", D(100000), True, 7 * DAY, "USD", "TSLAx", True)
TSLAX_USDC = Spot("TSLAx/USDC", "TSLAx", "USDC")

POLICY = MarginPolicy(
    haircuts={"TSLAx": D("0.20"), "USDC": D(0), "USDT": D(0), "BTC": D("0.10")},
    perp_maintenance_fraction=D("0.5"),
)
CALC = MarginCalculator(POLICY, valuation_asset="USD")


def portfolio(allow_negative: bool = False, **balances: str) -> Portfolio:
    p = Portfolio(InstrumentRegistry([TSLA_PERP, TSLA_PUT, BTC_CALL, TSLAX_USDC]), allow_negative)
    for asset, amount in balances.items():
        p.deposit(V, asset, D(amount))
    return p


def trade(p: Portfolio, instrument: str, side: Side, qty: str, price: str) -> None:
    p.apply_fill(
        Fill(
            ts=T0,
            venue=V,
            instrument=instrument,
            client_order_id="c",
            side=side,
            price=D(price),
            quantity=D(qty),
            fee=D(0),
            fee_asset="USDT",
        )
    )


# ------------------------------------------------------------------------------------ collateral


def test_collateral_value_with_haircuts_by_hand() -> None:
    p = portfolio(TSLAx="10", USDC="1000", BTC="0.1")
    prices = {"TSLAx": D(250), "USDC": D(1), "BTC": D(100000)}
    # TSLAx 10 * 250 * 0.8 = 2000; USDC 1000 * 1 * 1 = 1000; BTC 0.1 * 100000 * 0.9 = 9000
    assert CALC.collateral_value(p, V, prices) == D(12000)
    # Another venue's balances do not count.
    p.deposit("elsewhere", "USDC", D(500))
    assert CALC.collateral_value(p, V, prices) == D(12000)


def test_a_debt_counts_in_full() -> None:
    p = portfolio(allow_negative=True, TSLAx="10")
    p.withdraw(V, "BTC", D("0.01"))
    # 10 * 250 * 0.8 = 2000, minus the whole 0.01 * 100000 = 1000 debt (not 900)
    assert CALC.collateral_value(p, V, {"TSLAx": D(250), "BTC": D(100000)}) == D(1000)


def test_unknown_asset_is_refused_not_counted_in_full() -> None:
    p = portfolio(USDC="100", DOGE="5")
    with pytest.raises(InvalidInput) as err:
        CALC.collateral_value(p, V, {"USDC": D(1), "DOGE": D("0.2")})
    assert (err.value.field, err.value.value) == ("haircuts", "DOGE")
    with pytest.raises(InvalidInput):
        CALC.state(p, V, {"USDC": D(1), "DOGE": D("0.2")})
    # With nothing left of it, the unknown asset is worth 0 and needs no haircut.
    p.withdraw(V, "DOGE", D(5))
    assert CALC.collateral_value(p, V, {"USDC": D(1)}) == D(100)


def test_missing_price_is_named() -> None:
    p = portfolio(TSLAx="1")
    with pytest.raises(InvalidInput) as err:
        CALC.collateral_value(p, V, {})
    assert (err.value.field, err.value.value) == ("prices", "TSLAx")


# ----------------------------------------------------------------------------------------- perps


def test_perp_initial_and_maintenance_by_hand() -> None:
    p = portfolio(USDT="1000")
    trade(p, "TSLA-PERP", Side.BUY, "10", "250")
    state = CALC.state(p, V, {"USDT": D(1), "TSLA-PERP": D(250)})
    # notional 10 * 250 = 2500; initial 2500 / 5 = 500; maintenance 500 * 0.5 = 250
    assert (state.collateral_value, state.unrealized_pnl, state.equity) == (D(1000), D(0), D(1000))
    assert (state.initial_margin, state.maintenance_margin) == (D(500), D(250))
    assert (state.free_margin, state.margin_ratio, state.liquidation) == (D(500), D("0.25"), False)
    state = CALC.state(p, V, {"USDT": D(1), "TSLA-PERP": D(240)})
    # unrealized 10 * (240 - 250) = -100; notional 2400 -> initial 480, maintenance 240
    assert (state.equity, state.initial_margin, state.maintenance_margin) == (D(900), D(480), D(240))
    assert state.free_margin == D(420)


def test_perp_requirement_is_valued_through_the_quote_price() -> None:
    # 4 * 250 = 1000 USDT of notional at 0.998 USD per USDT: initial 998 / 5 = 199.6, maintenance 99.8
    need = CALC.requirement(TSLA_PERP, D(-4), {"TSLA-PERP": D(250), "USDT": D("0.998")})
    assert need == MarginRequirement(D("199.6"), D("99.8"))


def test_maintenance_breach_flags_liquidation() -> None:
    p = portfolio(USDT="700")
    trade(p, "TSLA-PERP", Side.BUY, "10", "250")
    # At 200: equity 700 + 10 * (200 - 250) = 200; maintenance 10 * 200 / 5 * 0.5 = 200: not below.
    at_200 = CALC.state(p, V, {"USDT": D(1), "TSLA-PERP": D(200)})
    assert (at_200.equity, at_200.maintenance_margin, at_200.margin_ratio) == (D(200), D(200), D(1))
    assert not at_200.liquidation
    # At 199: equity 190 < maintenance 199.
    at_199 = CALC.state(p, V, {"USDT": D(1), "TSLA-PERP": D(199)})
    assert (at_199.equity, at_199.maintenance_margin) == (D(190), D(199))
    assert at_199.liquidation
    assert abs(Fraction(at_199.margin_ratio) - Fraction(199, 190)) < Fraction(1, 10**40)
    # At 150 equity is -300: the ratio is unbounded.
    at_150 = CALC.state(p, V, {"USDT": D(1), "TSLA-PERP": D(150)})
    assert at_150.liquidation and at_150.margin_ratio == D("Infinity")


def test_short_perp_breach() -> None:
    p = portfolio(USDT="700")
    trade(p, "TSLA-PERP", Side.SELL, "10", "250")
    # At 300: equity 700 - 500 = 200 < maintenance 10 * 300 / 5 * 0.5 = 300
    state = CALC.state(p, V, {"USDT": D(1), "TSLA-PERP": D(300)})
    assert (state.equity, state.maintenance_margin, state.liquidation) == (D(200), D(300), True)


# --------------------------------------------------------------------------------------- options


@pytest.mark.parametrize(
    ("spot", "mark", "initial", "maintenance"),
    [
        # in the money (OTM 0): 2 * (12 + max(0.15 * 240 - 0, 0.10 * 240)) = 2 * 48; 2 * (12 + 18)
        ("240", "12", "96", "60"),
        # 10 out of the money: 2 * (5 + max(39 - 10, 26)) = 2 * 34; 2 * (5 + 19.5)
        ("260", "5", "68", "49"),
        # 50 out of the money, the floor wins: 2 * (2 + max(45 - 50, 30)) = 2 * 32; 2 * (2 + 22.5)
        ("300", "2", "64", "49"),
    ],
)
def test_short_put_requirement_by_hand(spot: str, mark: str, initial: str, maintenance: str) -> None:
    prices = {"TSLA": D(spot), "TSLA-250-P": D(mark), "USDC": D(1)}
    assert CALC.requirement(TSLA_PUT, D(-2), prices) == MarginRequirement(D(initial), D(maintenance))
    # A long option's premium is paid: no margin.
    assert CALC.requirement(TSLA_PUT, D(2), prices) == MarginRequirement(D(0), D(0))


def test_coin_margined_short_call_state_by_hand() -> None:
    p = portfolio(TSLAx="40")
    trade(p, "BTC-100000-C/TSLAx", Side.SELL, "1", "0.4")
    prices = {"TSLAx": D(250), "BTC": D(95000), "BTC-100000-C/TSLAx": D("0.4")}
    state = CALC.state(p, V, prices)
    # premium received: TSLAx 40.4 -> collateral 40.4 * 250 * 0.8 = 8080
    # short option liability 0.4 TSLAx * 250 = 100 -> equity 7980
    # initial: 100 + max(0.15 * 95000 - 5000 OTM, 0.10 * 95000) = 100 + 9500 = 9600
    # maintenance: 100 + 0.075 * 95000 = 7225
    assert (state.collateral_value, state.options_value, state.equity) == (D(8080), D(-100), D(7980))
    assert (state.initial_margin, state.maintenance_margin) == (D(9600), D(7225))
    assert (state.free_margin, state.liquidation) == (D(-1620), False)


def test_long_option_counts_its_value_and_needs_no_margin() -> None:
    p = portfolio(USDC="100")
    trade(p, "TSLA-250-P", Side.BUY, "2", "10")
    state = CALC.state(p, V, {"USDC": D(1), "TSLA": D(240), "TSLA-250-P": D(15)})
    # cash 100 - 20 = 80, options 2 * 15 = 30
    assert (state.collateral_value, state.options_value, state.equity) == (D(80), D(30), D(110))
    assert (state.initial_margin, state.maintenance_margin, state.margin_ratio) == (D(0), D(0), D(0))


def test_with_zero_haircuts_margin_equity_is_portfolio_equity() -> None:
    calc = MarginCalculator(MarginPolicy({"USDT": D(0), "USDC": D(0), "TSLAx": D(0)}), "USD")
    p = portfolio(USDT="1000", USDC="500", TSLAx="3")
    trade(p, "TSLA-PERP", Side.BUY, "2", "250")
    trade(p, "TSLA-250-P", Side.SELL, "3", "9")
    trade(p, "TSLAx/USDC", Side.BUY, "1", "245")
    prices = {"USDT": D("0.999"), "USDC": D(1), "TSLAx": D(251), "TSLA": D(249), "TSLA-PERP": D(252)}
    prices["TSLA-250-P"] = D(11)
    # 999 + 500 - 245 + 27 + 4 * 251 + 2 * 2 * 0.999 - 3 * 11 = 2255.996
    assert calc.state(p, V, prices).equity == p.equity(prices, "USD") == D("2255.996")


# -------------------------------------------------------------------------------------- can_open


def test_can_open_up_to_free_margin_without_touching_the_portfolio() -> None:
    p = portfolio(USDT="1000")
    before = p.snapshot()
    prices = {"USDT": D(1), "TSLA-PERP": D(250)}
    # 20 * 250 / 5 = 1000 = equity: just fits
    assert CALC.can_open(p, V, "TSLA-PERP", Side.BUY, D(20), D(250), prices)
    assert not CALC.can_open(p, V, "TSLA-PERP", Side.BUY, D("20.01"), D(250), prices)
    # A fee in the settlement asset eats equity: 1000 - 1 < 1000.
    assert not CALC.can_open(p, V, "TSLA-PERP", Side.BUY, D(20), D(250), prices, D(1), "USDT")
    assert p.snapshot() == before


def test_can_open_lets_an_underwater_account_reduce_but_not_add() -> None:
    p = portfolio(USDT="1000")
    trade(p, "TSLA-PERP", Side.BUY, "20", "250")
    prices = {"USDT": D(1), "TSLA-PERP": D(220)}
    # equity 1000 + 20 * (220 - 250) = 400 < initial 20 * 220 / 5 = 880
    assert CALC.state(p, V, prices).free_margin == D(-480)
    assert not CALC.can_open(p, V, "TSLA-PERP", Side.BUY, D(1), D(220), prices)
    # Selling 5 still leaves 400 < 660 of initial margin, but it lowers the requirement: allowed.
    assert CALC.can_open(p, V, "TSLA-PERP", Side.SELL, D(5), D(220), prices)
    # Flipping to short 25 needs 25 * 220 / 5 = 1100 > 880: more risk, refused.
    assert not CALC.can_open(p, V, "TSLA-PERP", Side.SELL, D(45), D(220), prices)


def test_can_open_refuses_an_unaffordable_premium_and_raises_on_bad_input() -> None:
    p = portfolio(USDC="10")
    prices = {"USDC": D(1), "TSLA": D(240), "TSLA-250-P": D(12)}
    assert not CALC.can_open(p, V, "TSLA-250-P", Side.BUY, D(1), D(12), prices)
    assert CALC.can_open(p, V, "TSLA-250-P", Side.BUY, D(1), D(10), prices)
    with pytest.raises(InvalidInput) as err:
        CALC.can_open(p, V, "TSLA-250-P", Side.BUY, D(0), D(10), prices)
    assert err.value.field == "fill.quantity"


# ---------------------------------------------------------------------------------------- policy


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"haircuts": {"TSLAx": D("1.5")}}, "haircuts['TSLAx']"),
        ({"haircuts": {"TSLAx": D("-0.1")}}, "haircuts['TSLAx']"),
        ({"haircuts": {"TSLAx": 0.2}}, "haircuts['TSLAx']"),
        ({"haircuts": {"": D(0)}}, "haircuts"),
        ({"haircuts": {}, "perp_maintenance_fraction": D(0)}, "perp_maintenance_fraction"),
        ({"haircuts": {}, "perp_maintenance_fraction": D("1.1")}, "perp_maintenance_fraction"),
        ({"haircuts": {}, "option_maintenance_rate": D("0.2")}, "option_maintenance_rate"),
        ({"haircuts": {}, "option_floor_rate": D("0.2")}, "option_floor_rate"),
        ({"haircuts": {}, "option_initial_rate": D("NaN")}, "option_initial_rate"),
    ],
)
def test_policy_refuses_bad_rates(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidInput) as err:
        MarginPolicy(**kwargs)  # type: ignore[arg-type]
    assert err.value.field == field


def test_policy_keeps_its_own_copy_of_the_haircuts() -> None:
    haircuts = {"TSLAx": D("0.2")}
    policy = MarginPolicy(haircuts)
    haircuts["TSLAx"] = D(0)
    haircuts["DOGE"] = D(0)
    assert policy.haircut("TSLAx") == D("0.2")
    with pytest.raises(InvalidInput):
        policy.haircut("DOGE")
