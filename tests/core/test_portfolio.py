"""Portfolio: fills, fees, funding, flips, option premiums, atomic rejections, and a 10,000-fill check.

Expected values are worked out by hand in the comments, or recomputed by an independent model
written here (exact fractions, textbook per-unit average price), never read back from the code.
"""

from __future__ import annotations

import dataclasses
import random
from collections import defaultdict
from decimal import Decimal, localcontext
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.enums import Side
from core.errors import InsufficientFunds, InvalidInput
from core.events import Fill
from core.instruments import (
    InstrumentRegistry,
    PerpetualOption,
    Spot,
    StockPerp,
    TokenizedStock,
)
from core.portfolio import Portfolio

D = Decimal
DAY = 24 * 3600 * 1_000_000_000
T0 = 1_750_000_000_000_000_000
BUY, SELL = Side.BUY, Side.SELL

TSLAX_USDC = Spot("TSLAx/USDC", "TSLAx", "USDC")
BTC_USDC = Spot("BTC/USDC", "BTC", "USDC")
TSLA_PERP = StockPerp("TSLA-PERP", "TSLA", "USDT")
AAPL_PERP = StockPerp("AAPL-PERP", "AAPL", "USDT", contract_size=D("0.1"))
BTC_CALL = PerpetualOption("BTC-100000-C-7D/TSLAx", "BTC", D(100000), True, 7 * DAY, "USD", "TSLAx", True)
TSLA_PUT = PerpetualOption(
    "TSLA-250-P-1D", "TSLA", D(250), False, DAY, "USDC", "USDC", contract_size=D("0.01")
)
TSLAX_TOKEN = TokenizedStock("TSLAx", "TSLA", "xstocks", 1, "0x" + "11" * 20)


def registry() -> InstrumentRegistry:
    return InstrumentRegistry([TSLAX_USDC, BTC_USDC, TSLA_PERP, AAPL_PERP, BTC_CALL, TSLA_PUT, TSLAX_TOKEN])


def fill(
    instrument: str,
    side: Side,
    qty: str | Decimal,
    price: str | Decimal,
    fee: str | Decimal = "0",
    fee_asset: str = "USDC",
    venue: str = "kraken",
    ts: int = T0,
    cid: str = "c-1",
) -> Fill:
    return Fill(
        ts=ts,
        venue=venue,
        instrument=instrument,
        client_order_id=cid,
        side=side,
        price=D(price),
        quantity=D(qty),
        fee=D(fee),
        fee_asset=fee_asset,
    )


def funded(**balances: str) -> Portfolio:
    """A strict portfolio with the given balances on venue `kraken`."""
    portfolio = Portfolio(registry())
    for asset, amount in balances.items():
        if D(amount) > 0:
            portfolio.deposit("kraken", asset, D(amount))
    return portfolio


# ----------------------------------------------------------------------------------------- spot


def test_spot_buy_with_fee_in_quote() -> None:
    p = funded(USDC="10000")
    p.apply_fill(fill("TSLAx/USDC", BUY, "2", "250.5", fee="0.5", fee_asset="USDC"))
    # 10000 - 2 * 250.5 - 0.5
    assert p.balance("kraken", "USDC") == D("9498.5")
    assert p.balance("kraken", "TSLAx") == D(2)
    assert p.fees_paid("kraken", "USDC") == D("0.5")
    pos = p.position("kraken", "TSLAx/USDC")
    assert (pos.quantity, pos.average_price, pos.realized_pnl) == (D(2), D("250.5"), D(0))


def test_spot_buy_with_fee_in_base() -> None:
    p = funded(USDC="1000")
    p.apply_fill(fill("TSLAx/USDC", BUY, "2", "250", fee="0.002", fee_asset="TSLAx"))
    # The fee comes out of the tokens bought; the traded position stays gross.
    assert p.balance("kraken", "TSLAx") == D("1.998")
    assert p.balance("kraken", "USDC") == D(500)
    assert p.fees_paid("kraken", "TSLAx") == D("0.002")
    assert p.fees_paid("kraken", "USDC") == 0
    assert p.position("kraken", "TSLAx/USDC").quantity == D(2)


def test_spot_sell_with_fee_in_third_asset_and_a_rebate() -> None:
    p = funded(TSLAx="3", BNB="1")
    p.apply_fill(fill("TSLAx/USDC", SELL, "1", "260", fee="0.01", fee_asset="BNB"))
    p.apply_fill(fill("TSLAx/USDC", SELL, "1", "262", fee="-0.13", fee_asset="USDC"))
    assert p.balance("kraken", "TSLAx") == D(1)
    assert p.balance("kraken", "BNB") == D("0.99")
    # 260 + 262 + 0.13 rebate
    assert p.balance("kraken", "USDC") == D("522.13")
    assert p.fees_paid("kraken", "USDC") == D("-0.13")
    # Deposited tokens carry no cost basis: selling them opens a negative spot position.
    pos = p.position("kraken", "TSLAx/USDC")
    assert pos.quantity == D(-2)
    assert pos.average_price == D(261)


def test_spot_round_trip_realizes_average_cost_pnl() -> None:
    p = funded(USDC="1000")
    p.apply_fill(fill("TSLAx/USDC", BUY, "2", "100"))
    p.apply_fill(fill("TSLAx/USDC", BUY, "1", "130"))
    # average cost (200 + 130) / 3 = 110
    assert p.position("kraken", "TSLAx/USDC").average_price == D(110)
    p.apply_fill(fill("TSLAx/USDC", SELL, "1.5", "120"))
    pos = p.position("kraken", "TSLAx/USDC")
    # 1.5 * (120 - 110) = 15; the rest keeps its average cost
    assert (pos.quantity, pos.average_price, pos.realized_pnl) == (D("1.5"), D(110), D(15))
    p.apply_fill(fill("TSLAx/USDC", SELL, "1.5", "90"))
    pos = p.position("kraken", "TSLAx/USDC")
    # 15 + 1.5 * (90 - 110) = -15, and flat means no cost left
    assert (pos.quantity, pos.cost, pos.realized_pnl) == (D(0), D(0), D(-15))
    # Cash tells the same story: -200 - 130 + 180 + 135 = -15
    assert p.balance("kraken", "USDC") == D(985)
    assert p.balance("kraken", "TSLAx") == D(0)


# ----------------------------------------------------------------------------------------- perps


def test_perp_open_increase_reduce_moves_only_realized_pnl_and_fees() -> None:
    p = funded(USDT="1000")
    p.apply_fill(fill("TSLA-PERP", BUY, "3", "200", fee="0.3", fee_asset="USDT"))
    # Opening moves no cash but the fee.
    assert p.balance("kraken", "USDT") == D("999.7")
    p.apply_fill(fill("TSLA-PERP", BUY, "1", "220"))
    # (600 + 220) / 4 = 205
    assert p.position("kraken", "TSLA-PERP").average_price == D(205)
    assert p.balance("kraken", "USDT") == D("999.7")
    p.apply_fill(fill("TSLA-PERP", SELL, "2", "230"))
    pos = p.position("kraken", "TSLA-PERP")
    # 2 * (230 - 205) = 50, credited to the quote balance at once
    assert (pos.quantity, pos.average_price, pos.realized_pnl) == (D(2), D(205), D(50))
    assert p.balance("kraken", "USDT") == D("1049.7")
    assert p.balance("kraken", "TSLA") == 0
    # 2 * (210 - 205)
    assert p.unrealized_pnl({"TSLA-PERP": D(210)}) == {("kraken", "TSLA-PERP"): D(10)}


def test_perp_flip_through_zero_closes_then_opens_the_rest() -> None:
    p = funded(USDT="100")
    p.apply_fill(fill("AAPL-PERP", BUY, "3", "100"))
    p.apply_fill(fill("AAPL-PERP", SELL, "5", "110"))
    pos = p.position("kraken", "AAPL-PERP")
    # close 3: 3 * (110 - 100) * 0.1 = 3; open short 2 at 110
    assert (pos.quantity, pos.average_price, pos.realized_pnl) == (D(-2), D(110), D(3))
    assert p.balance("kraken", "USDT") == D(103)
    p.apply_fill(fill("AAPL-PERP", BUY, "6", "105"))
    pos = p.position("kraken", "AAPL-PERP")
    # close short 2: 2 * (110 - 105) * 0.1 = 1; open long 4 at 105
    assert (pos.quantity, pos.average_price, pos.realized_pnl) == (D(4), D(105), D(4))
    assert p.balance("kraken", "USDT") == D(104)
    p.apply_fill(fill("AAPL-PERP", SELL, "4", "95"))
    pos = p.position("kraken", "AAPL-PERP")
    # 4 + 4 * (95 - 105) * 0.1 = 0, exactly flat
    assert (pos.quantity, pos.cost, pos.realized_pnl) == (D(0), D(0), D(0))
    assert p.balance("kraken", "USDT") == D(100)


def test_partial_fills_add_up() -> None:
    p = funded(USDT="1000")
    p.apply_fill(fill("TSLA-PERP", BUY, "4", "100", cid="open"))
    for qty, price in (("1", "110"), ("1", "120"), ("2", "90")):
        p.apply_fill(fill("TSLA-PERP", SELL, qty, price, cid="close"))
    # 1 * 10 + 1 * 20 + 2 * (-10) = 10
    pos = p.position("kraken", "TSLA-PERP")
    assert (pos.quantity, pos.realized_pnl) == (D(0), D(10))
    assert p.balance("kraken", "USDT") == D(1010)


def test_partial_close_with_a_non_terminating_average_still_round_trips_exactly() -> None:
    p = funded(USDT="1000")
    for price in ("100", "100", "101"):
        p.apply_fill(fill("TSLA-PERP", BUY, "1", price))
    # average 301/3 does not terminate; closing in three pieces still realizes exactly
    # 99 + 102 + 103 - 301 = 3
    for price in ("99", "102", "103"):
        p.apply_fill(fill("TSLA-PERP", SELL, "1", price))
    assert p.position("kraken", "TSLA-PERP").realized_pnl == D(3)
    assert p.balance("kraken", "USDT") == D(1003)


def test_positions_are_per_venue() -> None:
    p = Portfolio(registry(), allow_negative=True)
    p.apply_fill(fill("TSLA-PERP", BUY, "1", "200", venue="binance"))
    p.apply_fill(fill("TSLA-PERP", SELL, "1", "210", venue="hyperliquid"))
    assert p.position("binance", "TSLA-PERP").quantity == 1
    assert p.position("hyperliquid", "TSLA-PERP").quantity == -1
    assert p.positions(venue="binance", open_only=True).keys() == {("binance", "TSLA-PERP")}


# -------------------------------------------------------------------------------------- funding


def test_funding_paid_and_received() -> None:
    p = funded(USDT="100", TSLAx="5")
    p.apply_fill(fill("TSLA-PERP", BUY, "1", "200"))
    p.apply_funding(T0 + 1, "kraken", "TSLA-PERP", D("1.5"))
    p.apply_funding(T0 + 2, "kraken", "TSLA-PERP", D("-0.7"))
    # 100 - 1.5 + 0.7
    assert p.balance("kraken", "USDT") == D("99.2")
    assert p.funding_paid("kraken", "TSLA-PERP") == D("0.8")
    # An option's funding is in its margin asset.
    p.apply_funding(T0 + 3, "kraken", "BTC-100000-C-7D/TSLAx", D("0.02"))
    assert p.balance("kraken", "TSLAx") == D("4.98")
    assert p.funding() == {("kraken", "TSLA-PERP"): D("0.8"), ("kraken", "BTC-100000-C-7D/TSLAx"): D("0.02")}
    assert p.ts == T0 + 3


def test_funding_refusals_leave_state_unchanged() -> None:
    p = funded(USDT="1")
    before = p.snapshot()
    with pytest.raises(InvalidInput) as err:
        p.apply_funding(T0, "kraken", "TSLAx/USDC", D(1))
    assert (err.value.field, err.value.value) == ("funding.instrument", "TSLAx/USDC")
    with pytest.raises(InvalidInput) as err:
        p.apply_funding(T0, "kraken", "TSLA-PERP", 0.5)  # type: ignore[arg-type]
    assert err.value.field == "funding.amount"
    with pytest.raises(InsufficientFunds, match="USDT"):
        p.apply_funding(T0, "kraken", "TSLA-PERP", D("1.01"))
    assert p.snapshot() == before


# -------------------------------------------------------------------------------------- options


def test_option_premium_is_cash_at_the_fill() -> None:
    p = funded(TSLAx="10")
    # Long pays 2 * 0.5 TSLAx premium, plus a 0.01 TSLAx fee.
    p.apply_fill(fill("BTC-100000-C-7D/TSLAx", BUY, "2", "0.5", fee="0.01", fee_asset="TSLAx"))
    assert p.balance("kraken", "TSLAx") == D("8.99")
    p.apply_fill(fill("BTC-100000-C-7D/TSLAx", SELL, "1", "0.8"))
    # Selling one back receives 0.8; the realized 0.3 is informational, the cash already moved.
    assert p.balance("kraken", "TSLAx") == D("9.79")
    pos = p.position("kraken", "BTC-100000-C-7D/TSLAx")
    assert (pos.quantity, pos.average_price, pos.realized_pnl) == (D(1), D("0.5"), D("0.3"))


def test_short_option_receives_premium_with_contract_size() -> None:
    p = funded(USDC="0")
    p.apply_fill(fill("TSLA-250-P-1D", SELL, "300", "12"))
    # 300 contracts * 0.01 TSLA each * 12 USDC premium per TSLA = 36 received
    assert p.balance("kraken", "USDC") == D(36)
    p.apply_fill(fill("TSLA-250-P-1D", BUY, "300", "5"))
    # bought back for 300 * 0.01 * 5 = 15
    assert p.balance("kraken", "USDC") == D(21)
    pos = p.position("kraken", "TSLA-250-P-1D")
    assert (pos.quantity, pos.realized_pnl) == (D(0), D(21))


# --------------------------------------------------------------------------------------- equity


def test_equity_and_unrealized_by_hand() -> None:
    p = funded(USDC="1000", TSLAx="2", USDT="500")
    p.apply_fill(fill("TSLA-PERP", BUY, "3", "200"))
    p.apply_fill(fill("BTC-100000-C-7D/TSLAx", BUY, "2", "0.5", fee_asset="TSLAx"))
    prices = {
        "USDC": D(1),
        "USDT": D("0.999"),
        "TSLAx": D(250),
        "TSLA-PERP": D(210),
        "BTC-100000-C-7D/TSLAx": D("0.7"),
    }
    # cash: 1000 + 500 * 0.999 + (2 - 1) TSLAx * 250 = 1749.5
    # perp: 3 * (210 - 200) = 30 USDT * 0.999 = 29.97
    # option: 2 * 0.7 TSLAx * 250 = 350
    assert p.equity(prices, "USD") == D("2129.47")
    assert p.unrealized_pnl(prices) == {
        ("kraken", "TSLA-PERP"): D(30),
        ("kraken", "BTC-100000-C-7D/TSLAx"): D("0.4"),
    }
    with pytest.raises(InvalidInput) as err:
        p.equity({"USDC": D(1)}, "USD")
    assert (err.value.field, err.value.value) == ("prices", "TSLAx")
    with pytest.raises(InvalidInput) as err:
        p.equity({**prices, "TSLAx": 250.0}, "USD")  # type: ignore[dict-item]
    assert err.value.field == "prices['TSLAx']"


def test_equity_of_one_venue_and_valuation_asset_worth_one() -> None:
    p = funded(USDC="10")
    p.deposit("binance", "USDC", D(5))
    # A stray price for the valuation asset itself is ignored: it is worth 1.
    assert p.equity({"USDC": D(2)}, "USDC", venue="binance") == D(5)
    assert p.equity({"USDC": D(2)}, "USD") == D(30)


# ----------------------------------------------------------------------------------- rejections

BAD_FILLS = [
    (fill("XYZ/USDC", BUY, "1", "1"), "instrument", "XYZ/USDC"),
    (fill("TSLAx", BUY, "1", "1"), "instrument", "TSLAx"),
    (fill("TSLAx/USDC", BUY, "0", "250"), "fill.quantity", D(0)),
    (fill("TSLAx/USDC", BUY, "-1", "250"), "fill.quantity", D(-1)),
    (fill("TSLA-PERP", SELL, "1", "0"), "fill.price", D(0)),
    (fill("TSLA-PERP", SELL, "1", "-250"), "fill.price", D(-250)),
    (fill("TSLA-PERP", SELL, "1", "250", venue=""), "fill.venue", ""),
    (fill("TSLA-PERP", SELL, "1", "250", fee="0.1", fee_asset=""), "fill.fee_asset", ""),
    (fill("TSLAx/USDC", BUY, "1", "250")._replace(price=250.0), "fill.price", 250.0),  # type: ignore[arg-type]
    (fill("TSLAx/USDC", BUY, "1", "250")._replace(quantity=1), "fill.quantity", 1),  # type: ignore[arg-type]
    (fill("TSLAx/USDC", BUY, "1", "250")._replace(fee=0.1), "fill.fee", 0.1),  # type: ignore[arg-type]
    (fill("TSLAx/USDC", BUY, "1", "250")._replace(side="buy"), "fill.side", "buy"),  # type: ignore[arg-type]
    (fill("TSLAx/USDC", BUY, "1", "250")._replace(ts=1.5), "fill.ts", 1.5),  # type: ignore[arg-type]
]


@pytest.mark.parametrize(("bad", "field", "value"), BAD_FILLS)
def test_invalid_fill_names_field_and_value_and_changes_nothing(bad: Fill, field: str, value: object) -> None:
    p = funded(USDC="1000", USDT="1000", TSLAx="1")
    p.apply_fill(fill("TSLA-PERP", BUY, "2", "200", ts=T0 - 5))
    before = p.snapshot()
    with pytest.raises(InvalidInput) as err:
        p.apply_fill(bad)
    assert err.value.field == field
    assert err.value.value == value and type(err.value.value) is type(value)
    assert p.snapshot() == before


@pytest.mark.parametrize("bad_amount", ["NaN", "Infinity", "-Infinity", "sNaN"])
def test_non_finite_amounts_are_refused(bad_amount: str) -> None:
    p = funded(USDC="1000")
    before = p.snapshot()
    for field in ("price", "quantity", "fee"):
        bad = fill("TSLAx/USDC", BUY, "1", "250")._replace(**{field: D(bad_amount)})  # type: ignore[arg-type]
        with pytest.raises(InvalidInput) as err:
            p.apply_fill(bad)
        assert err.value.field == f"fill.{field}"
    assert p.snapshot() == before


INSUFFICIENT = [
    # (starting balances, fill, asset named in the error)
    ({"USDC": "499"}, fill("TSLAx/USDC", BUY, "2", "250"), "USDC"),
    ({"USDC": "500"}, fill("TSLAx/USDC", BUY, "2", "250", fee="0.01", fee_asset="USDC"), "USDC"),
    ({"TSLAx": "1"}, fill("TSLAx/USDC", SELL, "1.5", "250"), "TSLAx"),
    # The sale's USDC would arrive, but the base-asset fee takes TSLAx below zero: nothing applies.
    ({"TSLAx": "1"}, fill("TSLAx/USDC", SELL, "1", "250", fee="0.01", fee_asset="TSLAx"), "TSLAx"),
    ({"USDT": "0"}, fill("TSLA-PERP", BUY, "1", "250", fee="0.05", fee_asset="USDT"), "USDT"),
    ({"TSLAx": "0.99"}, fill("BTC-100000-C-7D/TSLAx", BUY, "2", "0.5"), "TSLAx"),
]


@pytest.mark.parametrize(("balances", "bad", "asset"), INSUFFICIENT)
def test_fill_that_would_overdraw_is_refused_atomically(
    balances: dict[str, str], bad: Fill, asset: str
) -> None:
    p = funded(**balances)
    before = p.snapshot()
    with pytest.raises(InsufficientFunds) as err:
        p.apply_fill(bad)
    assert f"'kraken', '{asset}'" in str(err.value)
    assert p.snapshot() == before


def test_perp_loss_beyond_balance_is_refused_atomically() -> None:
    p = funded(USDT="10")
    p.apply_fill(fill("TSLA-PERP", BUY, "1", "250"))
    before = p.snapshot()
    # realizes 1 * (239 - 250) = -11 against 10 USDT
    with pytest.raises(InsufficientFunds, match="USDT"):
        p.apply_fill(fill("TSLA-PERP", SELL, "1", "239", ts=T0 + 1))
    assert p.snapshot() == before
    p.apply_fill(fill("TSLA-PERP", SELL, "1", "240", ts=T0 + 2))
    assert p.balance("kraken", "USDT") == 0


def test_withdraw_and_deposit_checks() -> None:
    p = funded(USDC="10")
    with pytest.raises(InsufficientFunds):
        p.withdraw("kraken", "USDC", D("10.01"))
    with pytest.raises(InvalidInput) as err:
        p.deposit("kraken", "USDC", D(0))
    assert err.value.field == "amount"
    p.withdraw("kraken", "USDC", D(10))
    assert p.balance("kraken", "USDC") == 0


def test_allow_negative_records_overdrafts() -> None:
    p = Portfolio(registry(), allow_negative=True)
    p.apply_fill(fill("TSLAx/USDC", SELL, "1", "250", fee="0.01", fee_asset="TSLAx"))
    assert p.balance("kraken", "TSLAx") == D("-1.01")
    assert p.balance("kraken", "USDC") == D(250)


# ------------------------------------------------------------------------------------- snapshot


def test_snapshot_is_an_immutable_detached_copy() -> None:
    p = funded(USDC="1000")
    p.apply_fill(fill("TSLAx/USDC", BUY, "1", "250", fee="0.1"))
    snap = p.snapshot()
    with pytest.raises(TypeError):
        snap.balances[("kraken", "USDC")] = D(0)  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        snap.ts = 0  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        snap.positions[("kraken", "TSLAx/USDC")].quantity = D(0)  # type: ignore[misc]
    p.apply_fill(fill("TSLAx/USDC", BUY, "1", "251", ts=T0 + 1))
    assert snap.balances == {("kraken", "USDC"): D("749.9"), ("kraken", "TSLAx"): D(1)}
    assert snap.positions[("kraken", "TSLAx/USDC")].quantity == 1
    assert snap.fees == {("kraken", "USDC"): D("0.1")}
    assert snap.ts == T0
    assert p.snapshot() != snap


def test_copy_is_independent() -> None:
    p = funded(USDC="1000")
    twin = p.copy()
    twin.apply_fill(fill("TSLAx/USDC", BUY, "1", "250"))
    assert p.balance("kraken", "USDC") == D(1000)
    assert p.positions() == {}


# ------------------------------------------------------------------------- independent recomputation


# Written out by hand: perps settle in their quote, options in their margin asset.
SETTLES_IN = {"TSLA-PERP": "USDT", "AAPL-PERP": "USDT", BTC_CALL.id: "TSLAx", TSLA_PUT.id: "USDC"}


class Model:
    """Textbook recomputation: exact fractions, per-unit average price, cash flows by instrument type."""

    def __init__(self) -> None:
        self.balances: dict[tuple[str, str], Fraction] = defaultdict(Fraction)
        self.qty: dict[tuple[str, str], Fraction] = defaultdict(Fraction)
        self.avg: dict[tuple[str, str], Fraction] = defaultdict(Fraction)
        self.realized: dict[tuple[str, str], Fraction] = defaultdict(Fraction)
        self.fees: dict[tuple[str, str], Fraction] = defaultdict(Fraction)
        self.funding: dict[tuple[str, str], Fraction] = defaultdict(Fraction)

    def fill(self, f: Fill, instrument: Spot | StockPerp | PerpetualOption) -> None:
        key = (f.venue, f.instrument)
        size = Fraction(1) if isinstance(instrument, Spot) else Fraction(instrument.contract_size)
        q, p = Fraction(f.quantity) * f.side.sign, Fraction(f.price)
        held, avg = self.qty[key], self.avg[key]
        realized = Fraction(0)
        if held == 0 or (held > 0) == (q > 0):
            self.avg[key] = (avg * abs(held) + p * abs(q)) / (abs(held) + abs(q))
        else:
            closed = min(abs(q), abs(held))
            sign = 1 if held > 0 else -1
            realized = closed * (p - avg) * size * sign
            if abs(q) > abs(held):
                self.avg[key] = p
            elif abs(q) == abs(held):
                self.avg[key] = Fraction(0)
        self.qty[key] = held + q
        self.realized[key] += realized
        if isinstance(instrument, Spot):
            self.balances[(f.venue, instrument.base)] += q
            self.balances[(f.venue, instrument.quote)] -= q * p
        elif isinstance(instrument, StockPerp):
            self.balances[(f.venue, instrument.quote)] += realized
        else:
            self.balances[(f.venue, instrument.margin_asset)] -= q * p * size
        self.balances[(f.venue, f.fee_asset)] -= Fraction(f.fee)
        self.fees[(f.venue, f.fee_asset)] += Fraction(f.fee)


def _random_fills(
    seed: int, count: int, portfolio: Portfolio
) -> tuple[list[Fill], list[tuple[str, str, Decimal]]]:
    """`count` random fills (and some funding) over spot, perps and options on two venues, applied as made."""
    rng = random.Random(seed)
    instruments: list[Spot | StockPerp | PerpetualOption] = [
        TSLAX_USDC,
        BTC_USDC,
        TSLA_PERP,
        AAPL_PERP,
        BTC_CALL,
        TSLA_PUT,
    ]
    venues = ["binance", "kraken"]
    fills: list[Fill] = []
    funding: list[tuple[str, str, Decimal]] = []
    for n in range(count):
        instrument = rng.choice(instruments)
        venue = rng.choice(venues)
        held = portfolio.position(venue, instrument.id).quantity
        if held != 0 and rng.random() < 0.15:
            # Close exactly to flat now and then, so full closes are exercised often.
            side, qty = (SELL if held > 0 else BUY), abs(held)
        else:
            side, qty = rng.choice([BUY, SELL]), D(rng.randint(1, 400)) / 100
        price = D(rng.randint(1, 50_000)) / 100
        fee = D(rng.randint(-50, 200)) / 10_000
        assets = ["BNB", getattr(instrument, "quote", "USDC"), getattr(instrument, "base", "USDC")]
        f = fill(instrument.id, side, qty, price, fee, rng.choice(assets), venue, T0 + n, f"c-{n}")
        portfolio.apply_fill(f)
        fills.append(f)
        if instrument.is_derivative and rng.random() < 0.05:
            amount = D(rng.randint(-1000, 1000)) / 1000
            portfolio.apply_funding(T0 + n, venue, instrument.id, amount)
            funding.append((venue, instrument.id, amount))
    return fills, funding


@pytest.mark.parametrize("seed", [1, 2026])
def test_ten_thousand_random_fills_match_independent_recomputation(seed: int) -> None:
    reg = registry()
    portfolio = Portfolio(reg, allow_negative=True)
    fills, funding = _random_fills(seed, 10_000, portfolio)
    model = Model()
    for f in fills:
        instrument = reg.tradable(f.instrument)
        model.fill(f, instrument)
    for venue, instrument_id, amount in funding:
        model.balances[(venue, SETTLES_IN[instrument_id])] -= Fraction(amount)
        model.funding[(venue, instrument_id)] += Fraction(amount)

    # Fees and funding: plain sums, exact.
    assert {k: Fraction(v) for k, v in portfolio.fees().items() if v} == {
        k: v for k, v in model.fees.items() if v
    }
    assert {k: Fraction(v) for k, v in portfolio.funding().items()} == dict(model.funding)
    # Positions: quantity exact; average price and realized PnL within the 1e-18 rounding of
    # the cost released by partial closes (thousands of them).
    tolerance = Fraction(1, 10**12)
    assert set(model.qty) == set(portfolio.positions())
    for key, position in portfolio.positions().items():
        assert Fraction(position.quantity) == model.qty[key], key
        assert abs(Fraction(position.average_price) - model.avg[key]) < tolerance, key
        assert abs(Fraction(position.realized_pnl) - model.realized[key]) < tolerance, key
    # Balances: exact except the perps' settlement asset, which carries realized PnL.
    for key, model_balance in model.balances.items():
        if key[1] == "USDT":
            assert abs(Fraction(portfolio.balance(*key)) - model_balance) < tolerance, key
        else:
            assert Fraction(portfolio.balance(*key)) == model_balance, key

    # Exact cash-flow identities that need no model: for every position and any mark M,
    # realized + unrealized(M) = sum over its fills of signed qty * (M - price) * contract_size.
    with localcontext() as ctx:
        ctx.prec = 80
        for mark in (D(0), D("123.45"), D(1000)):
            expected: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
            for f in fills:
                instrument = reg.tradable(f.instrument)
                size = D(1) if isinstance(instrument, Spot) else instrument.contract_size
                expected[(f.venue, f.instrument)] += f.side.sign * f.quantity * (mark - f.price) * size
            for key, position in portfolio.positions().items():
                assert position.realized_pnl + position.unrealized_pnl(mark) == expected[key], key
            # And each venue's USDT = perps' realized PnL - USDT fees - perp funding, so
            # USDT + perps' unrealized(M) = sum over perp fills of qty * (M - price) * size - fees - funding.
            for venue in ("binance", "kraken"):
                perp_keys = [k for k in portfolio.positions(venue) if k[1].endswith("PERP")]
                lhs = portfolio.balance(venue, "USDT") + sum(
                    portfolio.position(*k).unrealized_pnl(mark) for k in perp_keys
                )
                rhs = (
                    sum(expected[k] for k in perp_keys)
                    - sum(f.fee for f in fills if f.venue == venue and f.fee_asset == "USDT")
                    - sum(a for v, i, a in funding if v == venue and i.endswith("PERP"))
                )
                assert lhs == rhs, venue


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from([BUY, SELL]), st.integers(1, 20), st.integers(1, 1000)),
        min_size=1,
        max_size=40,
    )
)
def test_perp_fill_sequences_match_the_fraction_model(trades: list[tuple[Side, int, int]]) -> None:
    reg = registry()
    portfolio = Portfolio(reg, allow_negative=True)
    model = Model()
    for n, (side, qty, price) in enumerate(trades):
        # quantities of 0.1 and prices of 0.01 through a contract size of 0.1
        f = fill("AAPL-PERP", side, D(qty) / 10, D(price) / 100, ts=T0 + n)
        portfolio.apply_fill(f)
        model.fill(f, AAPL_PERP)
    key = ("kraken", "AAPL-PERP")
    position = portfolio.position(*key)
    assert Fraction(position.quantity) == model.qty[key]
    assert abs(Fraction(position.realized_pnl) - model.realized[key]) < Fraction(1, 10**15)
    assert abs(Fraction(position.average_price) - model.avg[key]) < Fraction(1, 10**15)
    if position.is_flat:
        # Flat: realized PnL is exactly the cash the fills moved, no rounding left.
        flows = sum(f_side.sign * Fraction(q, 10) * Fraction(-p, 100) for f_side, q, p in trades)
        assert Fraction(position.realized_pnl) == flows * Fraction(1, 10)


def test_notional_moves_the_quote_balance_exactly() -> None:
    # A swap of 3 base units of a 6-decimal token for 1 unit of quote: price 1/3 is not a finite
    # decimal, the exact notional is.
    from core.enums import Liquidity
    from core.events import Fill
    from core.instruments import InstrumentRegistry, Spot
    from core.portfolio import Portfolio

    registry = InstrumentRegistry([Spot("A/B", "A", "B")])
    portfolio = Portfolio(registry)
    portfolio.deposit("pool", "B", Decimal("10"))
    price = Decimal("0.000001") / Decimal("0.000003")
    fill = Fill(
        1,
        "pool",
        "A/B",
        "s-1",
        Side.BUY,
        price,
        Decimal("0.000003"),
        Decimal(0),
        "",
        Liquidity.TAKER,
        "",
        Decimal("0.000001"),
    )
    portfolio.apply_fill(fill)
    assert portfolio.balance("pool", "B") == Decimal("9.999999")
    assert portfolio.balance("pool", "A") == Decimal("0.000003")
    bad = fill._replace(notional=Decimal(0), client_order_id="s-2")
    with pytest.raises(InvalidInput, match="fill.notional: must be > 0"):
        portfolio.apply_fill(bad)
