"""The simulated AMM venue: exact v2/v3 swaps, slippage reverts paying gas, deadlines, blocks, records.

Every expected amount is worked out by hand in the comments. Blocks fall every 12 s from t = 0
(block k at 12k s), so a swap reaching the chain at 1000 s lands in block 84 at 1008 s.
The toy v2 pool trades TOK (token0) for USD (token1), both with 0 decimals, so base units are
display units: 1000/1000 reserves with the canonical 0.30% fee.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from connectors.sim.amm import AmmConfig, AmmPoolSpec, SimAmm
from connectors.sim.amm_gas import GasModel
from connectors.sim.amm_pool import LiquidityProfile, V3Pool
from connectors.sim.reference_price import LastPrice
from core.clock import SimulatedClock
from core.enums import Liquidity, OrderStatus, OrderType, Side
from core.errors import InvalidInput
from core.events import Fill, OrderUpdate, PoolState, Quote
from core.instruments import Pool, Spot
from core.orders import OrderRequest, SwapRequest
from pricing.amm import MAX_SQRT_RATIO, V3PoolState, quote_exact_input, v3_swap
from tests.connectors.sim.venue_harness import SECOND, Harness, fills, updates

D = Decimal
S = SECOND
Q96 = 2**96
V2 = Pool("TOK/USD-v2", "uni", 1, "0x" + "11" * 20, "TOK", "USD", 3000, version=2)
V3 = Pool("TOK/USD-v3", "uni", 1, "0x" + "22" * 20, "TOK", "USD", 3000, version=3, tick_spacing=60)
PAIR = Spot("TOK/USD", "TOK", "USD")
GAS_2_GWEI = GasModel(price_gwei=D(2))  # v2 110,000 / v3 130,000 + 20,000 per tick / revert 50,000


def v2_record(ts: int, reserve0: int, reserve1: int, block: int = 0) -> PoolState:
    return PoolState(ts, "uni", V2.id, block, reserve0, reserve1)


def v3_record(ts: int, sqrt_price_x96: int, tick: int, liquidity: int) -> PoolState:
    return PoolState(ts, "uni", V3.id, 0, 0, 0, sqrt_price_x96, tick, liquidity)


def make(
    config: AmmConfig | None = None,
    balances: dict[str, Decimal] | None = None,
    start: int = 1000 * S,
    pools: list[AmmPoolSpec] | None = None,
    decimals: dict[str, int] | None = None,
    native_price: Decimal | LastPrice | None = None,
) -> tuple[SimAmm, Harness]:
    """A venue 'uni' with the 1000/1000 v2 pool (unless `pools` is given), 100 USD and 1 ETH."""
    clock = SimulatedClock(start)
    venue = SimAmm(
        "uni",
        clock,
        pools if pools is not None else [AmmPoolSpec(V2, PAIR, v2_record(0, 1000, 1000))],
        decimals if decimals is not None else {"TOK": 0, "USD": 0},
        config if config is not None else AmmConfig(gas=GAS_2_GWEI),
        balances if balances is not None else {"USD": D(100), "ETH": D(1)},
        native_price,
    )
    return venue, Harness(venue, clock)


def buy(
    cid: str, amount_in: int, min_out: int = 0, deadline: int | None = None, pool: str = V2.id
) -> SwapRequest:
    """Exact input: pay `amount_in` USD for TOK."""
    return SwapRequest(
        cid, "uni", pool, "USD", "TOK", amount_in=amount_in, min_amount_out=min_out, deadline_ns=deadline
    )


def reserves(venue: SimAmm, pool: str = V2.id) -> tuple[int, int]:
    state = venue.pool_state(pool)
    return state.reserve0, state.reserve1


# -- v2 ----------------------------------------------------------------------------------------


async def test_v2_exact_input_gives_get_amount_out_and_moves_reserves_exactly() -> None:
    venue, h = make()
    ack = await venue.submit(buy("s1", 10))
    assert ack.status is OrderStatus.NEW and ack.venue_order_id == "0x" + "0" * 64
    # Pending: 10 USD and the gas estimate 110,000 x 2 gwei = 0.00022 ETH are reserved.
    assert (venue.ledger.reserved("USD"), venue.ledger.reserved("ETH")) == (D(10), D("0.00022"))
    h.run_until(1007 * S)
    assert h.drain() == []  # nothing before the block
    h.run_until(1008 * S)
    events = h.drain()
    # getAmountOut(10, 1000, 1000) = floor(10*997*1000 / (1000*1000 + 10*997))
    #                               = floor(9,970,000 / 1,009,970) = floor(9.87) = 9
    # price = 10 / 9 = 1.111... to 18 significant digits; gas 110,000 x 2 gwei = 0.00022 ETH
    assert events == [
        Fill(
            1008 * S,
            "uni",
            "TOK/USD",
            "s1",
            Side.BUY,
            D("1.11111111111111111"),
            D(9),
            D("0.00022"),
            "ETH",
            Liquidity.TAKER,
            "0x" + "0" * 64,
            D(10),
        ),
        OrderUpdate(
            1008 * S, "uni", "s1", OrderStatus.FILLED, "0x" + "0" * 64, D(9), D("1.11111111111111111")
        ),
        # reserves: TOK 1000 - 9 = 991, USD 1000 + 10 = 1010; block 1008 / 12 = 84
        PoolState(1008 * S, "uni", V2.id, 84, 991, 1010),
    ]
    assert reserves(venue) == (991, 1010)
    # wallet: USD 100 - 10 = 90, TOK 9, ETH 1 - 0.00022 = 0.99978; nothing left reserved
    assert venue.ledger.balances() == {"USD": D(90), "ETH": D("0.99978"), "TOK": D(9)}
    assert (venue.ledger.reserved("USD"), venue.ledger.reserved("ETH")) == (D(0), D(0))


async def test_v2_sell_books_a_sell_of_the_base_token() -> None:
    venue, h = make(balances={"TOK": D(50), "ETH": D(1)})
    await venue.submit(SwapRequest("s1", "uni", V2.id, "TOK", "USD", amount_in=10))
    h.run_until(1008 * S)
    (fill,) = fills(h.drain())
    # symmetric pool: 10 TOK in gives 9 USD out; reserves TOK 1010, USD 991
    assert (fill.side, fill.quantity, fill.notional, fill.price) == (Side.SELL, D(10), D(9), D("0.9"))
    assert reserves(venue) == (1010, 991)
    assert venue.ledger.balances() == {"TOK": D(40), "ETH": D("0.99978"), "USD": D(9)}


async def test_v2_exact_output_pays_get_amount_in() -> None:
    venue, h = make()
    await venue.submit(SwapRequest("s1", "uni", V2.id, "USD", "TOK", amount_out=9, max_amount_in=10))
    assert venue.ledger.reserved("USD") == D(10)  # max_amount_in is reserved
    h.run_until(1008 * S)
    (fill,) = fills(h.drain())
    # getAmountIn(9, 1000, 1000) = floor(1000*9*1000 / ((1000-9)*997)) + 1 = floor(9,000,000 / 988,027) + 1
    #                            = 9 + 1 = 10
    assert (fill.quantity, fill.notional) == (D(9), D(10))
    assert reserves(venue) == (991, 1010)


async def test_v2_exact_output_above_max_amount_in_reverts_naming_both() -> None:
    venue, h = make()
    await venue.submit(SwapRequest("s1", "uni", V2.id, "USD", "TOK", amount_out=9, max_amount_in=9))
    h.run_until(1008 * S)
    (update,) = h.drain()
    assert isinstance(update, OrderUpdate) and update.status is OrderStatus.REJECTED
    assert "max_amount_in: 9, but the pool would take 10 USD" in update.reason
    assert "EXCESSIVE_INPUT_AMOUNT" in update.reason
    assert reserves(venue) == (1000, 1000)


async def test_slippage_revert_pays_gas_and_moves_nothing_else() -> None:
    venue, h = make()
    await venue.submit(buy("s1", 10, min_out=10))
    h.run_until(1008 * S)
    events = h.drain()
    # the pool would give 9 < 10; gas burnt 50,000 x 2 gwei = 100,000 gwei = 0.0001 ETH
    assert len(events) == 1
    (update,) = updates(events)
    assert update.status is OrderStatus.REJECTED
    assert (update.fee, update.fee_asset) == (D("0.0001"), "ETH")
    assert update.reason == (
        "min_amount_out: 10, but the pool would give 9 TOK ('UniswapV2Router: INSUFFICIENT_OUTPUT_AMOUNT'); "
        "reverted in block 84, gas 50000 x 2 gwei paid"
    )
    assert reserves(venue) == (1000, 1000)
    # ETH 1 - 0.0001 = 0.9999; USD untouched and no longer reserved
    assert venue.ledger.balances() == {"USD": D(100), "ETH": D("0.9999")}
    assert venue.ledger.free("USD") == D(100)


async def test_two_swaps_in_one_block_execute_in_submission_order() -> None:
    venue, h = make()
    await venue.submit(buy("a", 10))
    h.run_until(1001 * S)
    await venue.submit(buy("b", 10))
    h.run_until(1008 * S)
    a, b = fills(h.drain())
    # a: 9 TOK (reserves 991/1010); b: floor(10*997*991 / (1010*1000 + 10*997)) = floor(9,880,270 / 1,019,970)
    #    = floor(9.69) = 9, reserves 982/1020
    assert (a.client_order_id, a.quantity, b.client_order_id, b.quantity) == ("a", D(9), "b", D(9))
    assert reserves(venue) == (982, 1020)


# -- deadline, latency, blocks, records ------------------------------------------------------------


async def test_deadline_before_arrival_is_rejected_at_submit_without_gas() -> None:
    venue, h = make(AmmConfig(gas=GAS_2_GWEI, latency_ns=2 * S))
    ack = await venue.submit(buy("s1", 10, deadline=1001 * S))  # arrives at 1000 + 2 = 1002 s
    assert ack.status is OrderStatus.REJECTED
    assert ack.reason == f"deadline_ns: {1001 * S} is before the swap reaches the chain at {1002 * S}"
    assert h.wakeups == [] and venue.ledger.reserved("USD") == 0
    assert venue.ledger.balances() == {"USD": D(100), "ETH": D(1)}


async def test_deadline_passed_at_the_block_reverts_and_pays_gas() -> None:
    venue, h = make(AmmConfig(gas=GAS_2_GWEI, latency_ns=2 * S))
    ack = await venue.submit(buy("s1", 10, deadline=1005 * S))  # arrives at 1002 s, block at 1008 s
    assert ack.status is OrderStatus.NEW
    h.run_until(1008 * S)
    (update,) = h.drain()
    assert isinstance(update, OrderUpdate) and update.status is OrderStatus.REJECTED
    assert update.reason.startswith(f"deadline_ns: {1005 * S} passed at block time {1008 * S}")
    assert "EXPIRED" in update.reason
    assert update.fee == D("0.0001")  # 50,000 x 2 gwei
    assert reserves(venue) == (1000, 1000)


async def test_swap_lands_in_the_first_block_after_arrival_against_the_state_recorded_by_then() -> None:
    venue, h = make(AmmConfig(gas=GAS_2_GWEI, latency_ns=2 * S), start=994 * S)
    await venue.submit(buy("s1", 10))  # arrives at 996 s = block 83 exactly: too late for it, lands in 84
    h.feed(v2_record(1000 * S, 1000, 1100, 83))  # recorded in between: applies before our swap
    h.feed(v2_record(1008 * S, 2000, 2000, 84))  # stamped at our block: the block's end, after our swap
    events = h.drain()
    (fill,) = fills(events)
    # against 1000 TOK / 1100 USD: floor(10*997*1000 / (1100*1000 + 10*997))
    #                              = floor(9,970,000 / 1,109,970) = floor(8.98) = 8
    assert (fill.ts, fill.quantity, fill.notional) == (1008 * S, D(8), D(10))
    assert events[-1] == PoolState(1008 * S, "uni", V2.id, 84, 992, 1110)  # 1000 - 8, 1100 + 10
    assert reserves(venue) == (2000, 2000)  # then the 1008 s record resets the pool


async def test_genesis_offset_and_block_numbers() -> None:
    config = AmmConfig(gas=GAS_2_GWEI, block_time_ns=2 * S, genesis_ns=999 * S, genesis_block=5_000_000)
    venue, h = make(config)
    # blocks at 999 + 2k s: the first strictly after 1000 s is 1001 s, number 5,000,000 + 1
    assert venue.block_at(1000 * S) == (1001 * S, 5_000_001)
    assert venue.block_at(1001 * S) == (1003 * S, 5_000_002)
    await venue.submit(buy("s1", 10))
    h.run_until(1001 * S)
    assert h.drain()[-1] == PoolState(1001 * S, "uni", V2.id, 5_000_001, 991, 1010)


async def test_recorded_state_resets_our_impact_by_default() -> None:
    venue, h = make()
    await venue.submit(buy("s1", 10))
    h.run_until(1008 * S)
    assert reserves(venue) == (991, 1010)
    assert len(fills(h.drain())) == 1
    h.feed(v2_record(1020 * S, 1000, 1000))
    assert reserves(venue) == (1000, 1000)
    h.run_until(1030 * S)
    assert h.drain() == []  # the engine gets the record itself from the driver: nothing to re-emit


async def test_impact_persists_adds_our_net_flow_to_later_records() -> None:
    venue, h = make(AmmConfig(gas=GAS_2_GWEI, impact_persists=True))
    await venue.submit(buy("s1", 10))
    h.run_until(1008 * S)
    h.drain()
    # our net flow: TOK -9, USD +10; a record of 1200/1300 becomes 1191/1310
    h.feed(v2_record(1020 * S, 1200, 1300, 85))
    assert reserves(venue) == (1191, 1310)
    h.run_until(1020 * S)
    # the adjusted state is re-emitted at once, after the record, with the record's time and block
    assert h.drain() == [PoolState(1020 * S, "uni", V2.id, 85, 1191, 1310)]


async def test_v3_impact_persists_by_swapping_our_net_token0_flow_again() -> None:
    venue, h = make(
        AmmConfig(gas=GasModel(), impact_persists=True),
        balances={"USD": D(10), "ETH": D(1)},
        pools=[AmmPoolSpec(V3, PAIR, v3_record(0, Q96, 0, 10**12))],
        decimals={"TOK": 6, "USD": 6},
    )
    await venue.submit(buy("s1", 10**6, pool=V3.id))  # 996,999 TOK out (see the v3 test below)
    h.run_until(1008 * S)
    after_ours = venue.pool_state(V3.id).sqrt_price_x96
    h.feed(v3_record(1020 * S, Q96, 0, 10**12))  # the record restates the price before our swap
    # our net token0 flow is -996,999: the record gets an exact output of 996,999 TOK (token1 in), which
    # needs the same 1e6 token1 and lands a hair below our swap's price (it stops where 996,999 TOK are
    # delivered; our exact input ran on until the whole 1e6 was spent, the 0.006 TOK it floored away)
    full = 887272 // 60 * 60
    record = V3PoolState(Q96, 0, 10**12, 3000, 60, ((-full, 10**12), (full, -(10**12))))
    expected = v3_swap(record, False, -996_999, MAX_SQRT_RATIO - 1)
    assert expected.amount_in == 10**6 and Q96 < expected.sqrt_price_x96 < after_ours
    assert venue.pool_state(V3.id).sqrt_price_x96 == expected.sqrt_price_x96


async def test_a_bad_record_is_skipped() -> None:
    venue, h = make()
    h.feed(v2_record(1001 * S, 0, 1000))
    assert reserves(venue) == (1000, 1000)
    profile = LiquidityProfile(((-600, 600, 1),))
    venue, h = make(pools=[AmmPoolSpec(V3, PAIR, v3_record(0, Q96, 0, 10**12), profile)])
    h.feed(v3_record(1001 * S, Q96 * 2, 13863, 10**12))  # tick 13863 is outside the profile's [-600, 600)
    assert venue.pool_state(V3.id).sqrt_price_x96 == Q96


# -- v3 ------------------------------------------------------------------------------------------


def v3_venue(
    profile: LiquidityProfile, liquidity: int, balances: dict[str, Decimal]
) -> tuple[SimAmm, Harness]:
    """A v3 pool at price 1 (sqrt price 2**96, tick 0) with in-range `liquidity`; gas 1 gwei."""
    spec = AmmPoolSpec(V3, PAIR, v3_record(0, Q96, 0, liquidity), profile)
    return make(AmmConfig(gas=GasModel()), balances=balances, pools=[spec], decimals={"TOK": 6, "USD": 6})


async def test_v3_swap_matches_v3_swap_and_emits_its_state() -> None:
    venue, h = v3_venue(LiquidityProfile(), 10**12, {"USD": D(10), "ETH": D(1)})
    await venue.submit(buy("s1", 10**6, pool=V3.id))  # 1 USD (6 decimals) in, token1 -> token0
    h.run_until(1008 * S)
    events = h.drain()
    (fill,) = fills(events)
    # Full range, L = 1e12 at price 1: virtual reserves x = y = 1e12. 0.3% fee: 997,000 goes into the curve,
    # out = floor(1e12 * 997,000 / (1e12 + 997,000)) = floor(996,999.006) = 996,999 -> 0.996999 TOK;
    # sqrt price = 2**96 + floor(997,000 * 2**96 / 1e12)
    #            = 79228162514264337593543950336 + 78990478026721544580763
    #            = 79228241504742364315088531099, still tick 0; gas 130,000 x 1 gwei = 0.00013 ETH
    assert (fill.quantity, fill.notional, fill.fee) == (D("0.996999"), D(1), D("0.00013"))
    assert events[-1] == PoolState(1008 * S, "uni", V3.id, 84, 0, 0, 79228241504742364315088531099, 0, 10**12)
    # the same swap by pricing.amm on the hand-built state (full range for spacing 60 is +-887220)
    full = 887272 // 60 * 60
    state = V3PoolState(Q96, 0, 10**12, 3000, 60, ((-full, 10**12), (full, -(10**12))))
    result = v3_swap(state, False, 10**6, MAX_SQRT_RATIO - 1)  # no price limit
    assert (result.amount_out, result.amount_in, result.sqrt_price_x96) == (
        996_999,
        10**6,
        events[-1].sqrt_price_x96,
    )


def test_v3_profile_gives_the_shape_and_the_record_the_scale() -> None:
    profile = LiquidityProfile(((-600, 600, 2), (-6000, 6000, 1)))
    venue, _ = v3_venue(profile, 3 * 10**12, {"ETH": D(1)})
    # segments: [-6000,-600): 1, [-600,600): 1+2 = 3, [600,6000): 1; the record puts 3e12 on the middle one,
    # so 1e12 / 3e12 / 1e12, and the nets are the steps: +1e12, +2e12, -2e12, -1e12
    model = venue.pools[V3.id].model
    assert isinstance(model, V3Pool)
    assert model.ticks_for(0, 3 * 10**12) == (
        (-6000, 10**12),
        (-600, 2 * 10**12),
        (600, -2 * 10**12),
        (6000, -(10**12)),
    )
    # at tick 700 (outer segment, weight 1), liquidity 5e11 scales the middle to 1.5e12
    assert model.ticks_for(700, 5 * 10**11) == (
        (-6000, 5 * 10**11),
        (-600, 10**12),
        (600, -(10**12)),
        (6000, -5 * 10**11),
    )


async def test_v3_swap_crossing_a_tick_pays_tick_gas_and_matches_pricing() -> None:
    profile = LiquidityProfile(((-600, 600, 2), (-6000, 6000, 1)))
    venue, h = v3_venue(profile, 3 * 10**12, {"USD": D(300_000), "ETH": D(1)})
    # To reach tick 600 takes L * (sqrt(1.0001**600) - 1) = 3e12 * 0.03045 ~ 9.1e10 token1 (91,000 USD):
    # 200,000 USD crosses it, into the 1e12 segment.
    await venue.submit(buy("s1", 200_000 * 10**6, pool=V3.id))
    h.run_until(1008 * S)
    events = h.drain()
    (fill,) = fills(events)
    state = V3PoolState(
        Q96,
        0,
        3 * 10**12,
        3000,
        60,
        ((-6000, 10**12), (-600, 2 * 10**12), (600, -2 * 10**12), (6000, -(10**12))),
    )
    expected = quote_exact_input(state, 200_000 * 10**6, False)
    assert expected.initialized_ticks_crossed == 1 and expected.liquidity == 10**12
    assert fill.quantity == D(expected.amount_out).scaleb(-6)
    assert events[-1] == PoolState(
        1008 * S, "uni", V3.id, 84, 0, 0, expected.sqrt_price_x96, expected.tick, 10**12
    )
    # gas: 130,000 + 20,000 x 1 tick = 150,000 units x 1 gwei = 0.00015 ETH
    assert fill.fee == D("0.00015")


async def test_v3_exact_input_beyond_the_liquidity_uses_what_it_can() -> None:
    venue, h = v3_venue(LiquidityProfile(((-60, 60, 1),)), 10**12, {"USD": D(10_000), "ETH": D(1)})
    await venue.submit(
        buy("s1", 10_000 * 10**6, pool=V3.id)
    )  # tick 60 is reached with ~1e12 * (1.0001**30 - 1) = 3e9 < 1e10
    assert venue.ledger.reserved("USD") == D(10_000)
    h.run_until(1008 * S)
    (fill,) = fills(h.drain())
    state = V3PoolState(Q96, 0, 10**12, 3000, 60, ((-60, 10**12), (60, -(10**12))))
    expected = quote_exact_input(state, 10_000 * 10**6, False)
    assert expected.partial and expected.amount_in < 10_000 * 10**6
    # the router takes only what the pool used; the rest of the reservation is released
    assert fill.notional == D(expected.amount_in).scaleb(-6)
    assert venue.ledger.balance("USD") == D(10_000) - D(expected.amount_in).scaleb(-6)
    assert venue.ledger.reserved("USD") == 0


async def test_v3_exact_output_beyond_the_liquidity_reverts() -> None:
    venue, h = v3_venue(LiquidityProfile(((-60, 60, 1),)), 10**12, {"USD": D(10**6), "ETH": D(1)})
    await venue.submit(SwapRequest("s1", "uni", V3.id, "USD", "TOK", amount_out=10**11))
    h.run_until(1008 * S)
    (update,) = h.drain()
    assert isinstance(update, OrderUpdate) and update.status is OrderStatus.REJECTED
    assert "amount_out" in update.reason and "can deliver only" in update.reason
    assert update.fee == D("0.00005")  # 50,000 x 1 gwei


# -- gas -----------------------------------------------------------------------------------------


async def test_gas_in_quote_at_the_block_gas_price_and_the_fed_native_price() -> None:
    usdc_pool = Pool("TOK/USDC", "uni", 1, "0x" + "33" * 20, "TOK", "USDC", 3000, version=2)
    eth = LastPrice("uni", "ETH/USDC")
    gas = GasModel(price_gwei=D(1), price_series=((1005 * S, D("1.5")),))
    initial = PoolState(0, "uni", "TOK/USDC", 0, 1000, 250_000 * 10**6)  # 1000 TOK / 250,000 USDC
    venue, h = make(
        AmmConfig(gas=gas, gas_fee_in="quote"),
        balances={"USDC": D(1000)},
        pools=[AmmPoolSpec(usdc_pool, Spot("TOK/USDC", "TOK", "USDC"), initial)],
        decimals={"TOK": 0, "USDC": 6},
        native_price=eth,
    )
    request = SwapRequest("s1", "uni", "TOK/USDC", "USDC", "TOK", amount_in=500 * 10**6)
    ack = await venue.submit(request)
    assert ack.status is OrderStatus.REJECTED and ack.reason.startswith(
        "native_price: no price of ETH in USDC"
    )
    h.feed(Quote(1000 * S, "uni", "ETH/USDC", 3123.40, 3123.50, 1.0, 1.0))  # mid 3123.45
    ack = await venue.submit(SwapRequest("s2", "uni", "TOK/USDC", "USDC", "TOK", amount_in=500 * 10**6))
    assert ack.status is OrderStatus.NEW
    # reserved: 500 USDC + the gas estimate at 1 gwei: 110,000 x 1 gwei = 0.00011 ETH x 3123.45
    # = 0.3435795 -> rounded up to 6 decimals 0.343580 USDC
    assert venue.ledger.reserved("USDC") == D("500.34358")
    h.run_until(1008 * S)
    (fill,) = fills(h.drain())
    # out = floor(500e6*997*1000 / (250,000e6*1000 + 500e6*997)) = floor(4.985e14 / 2.504985e14) = 1 TOK
    # gas at the block's 1.5 gwei: 110,000 x 1.5 = 165,000 gwei = 0.000165 ETH x 3123.45 = 0.51536925
    # -> rounded up 0.515370 USDC
    assert (fill.quantity, fill.notional, fill.price) == (D(1), D(500), D(500))
    assert (fill.fee, fill.fee_asset) == (D("0.51537"), "USDC")
    # USDC 1000 - 500 - 0.51537 = 499.48463
    assert venue.ledger.balances() == {"USDC": D("499.48463"), "TOK": D(1)}
    assert venue.ledger.reserved("USDC") == 0


def test_gas_price_series_is_a_step_function() -> None:
    gas = GasModel(price_gwei=D(1), price_series=((10, D("1.5")), (20, D(3))))
    assert [gas.price_at(t) for t in (9, 10, 19, 20, 99)] == [D(1), D("1.5"), D("1.5"), D(3), D(3)]
    # 110,000 units x 1.5 gwei = 165,000 gwei = 0.000165 ETH
    assert gas.cost(110_000, 15) == D("0.000165")
    with pytest.raises(InvalidInput, match="finer than 1 wei"):
        GasModel(price_gwei=D("0.0000000001"))


# -- bad requests --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_", "reason"),
    [
        (
            OrderRequest("x", "uni", "TOK/USD", Side.BUY, D(1), OrderType.MARKET),
            "request: uni takes SwapRequest, got OrderRequest",
        ),
        (
            SwapRequest("x", "other", V2.id, "USD", "TOK", amount_in=1),
            "venue: request for 'other' sent to 'uni'",
        ),
        (SwapRequest("x", "uni", "nope", "USD", "TOK", amount_in=1), "pool: 'nope' is not traded here"),
        (
            SwapRequest("x", "uni", V2.id, "USDC", "TOK", amount_in=1),
            "token_in: 'USDC' is not a token of pool",
        ),
        (
            SwapRequest("x", "uni", V2.id, "USD", "TOK", amount_in=D(1)),  # type: ignore[arg-type]
            "amount_in: Decimal('1') must be an integer",
        ),
        (
            SwapRequest("x", "uni", V2.id, "USD", "TOK", amount_in=1, max_amount_in=2),
            "max_amount_in: 2 applies to exact output only",
        ),
        (
            SwapRequest("x", "uni", V2.id, "USD", "TOK", amount_out=1, min_amount_out=1),
            "min_amount_out: 1 applies to exact input only",
        ),
        # 101 USD > the 100 held
        (buy("x", 101), "balance['USD']: needs 101, free 100 to swap USD for TOK with gas"),
    ],
)
async def test_bad_requests_are_rejected_at_submit_with_nothing_reserved(
    request_: object, reason: str
) -> None:
    venue, h = make()
    ack = await venue.submit(request_)  # type: ignore[arg-type]
    assert ack.status is OrderStatus.REJECTED
    assert ack.reason.startswith(reason)
    assert (venue.ledger.reserved("USD"), venue.ledger.reserved("ETH")) == (D(0), D(0))
    assert h.wakeups == []


async def test_no_eth_for_gas_is_rejected_at_submit() -> None:
    venue, _ = make(balances={"USD": D(100)})
    ack = await venue.submit(buy("s1", 10))
    assert ack.reason.startswith("balance['ETH']: needs 0.00022, free 0")


async def test_pool_without_state_and_reused_id() -> None:
    venue, h = make(pools=[AmmPoolSpec(V2, PAIR)])
    ack = await venue.submit(buy("s1", 10))
    assert ack.reason == f"pool: no state of {V2.id!r} recorded yet"
    h.feed(v2_record(1000 * S, 1000, 1000))
    assert (await venue.submit(buy("s2", 10))).status is OrderStatus.NEW
    assert (await venue.submit(buy("s2", 10))).reason == "client_order_id: 's2' already used"


async def test_a_swap_that_cannot_pay_its_gas_at_the_block_is_not_included() -> None:
    # reserved at 1 gwei (110,000 x 1 = 0.00011 ETH), but the block's price is 1000 gwei: the swap would
    # cost 0.11 ETH and even a revert 50,000 x 1000 gwei = 0.05 ETH > the 0.001 ETH held
    gas = GasModel(price_gwei=D(1), price_series=((1005 * S, D(1000)),))
    venue, h = make(AmmConfig(gas=gas), balances={"USD": D(100), "ETH": D("0.001")})
    await venue.submit(buy("s1", 10))
    h.run_until(1008 * S)
    (update,) = h.drain()
    assert isinstance(update, OrderUpdate) and update.status is OrderStatus.REJECTED and update.fee == 0
    assert "not included in block 84, nothing paid" in update.reason
    assert venue.ledger.balances() == {"USD": D(100), "ETH": D("0.001")}
    assert venue.ledger.reserved("ETH") == 0


async def test_cancel_cannot_recall_and_snapshot_lists_the_pending_transaction() -> None:
    venue, h = make()
    await venue.submit(buy("s1", 10))
    update = await venue.cancel("s1")
    assert (update.status, update.reason) == (OrderStatus.NEW, "cancel: uni cannot recall a sent swap")
    state = await venue.snapshot()
    assert [t.client_order_id for t in state.pending_transactions] == ["s1"]
    assert [u.status for u in state.open_orders] == [OrderStatus.NEW]
    h.run_until(1008 * S)
    assert (await venue.snapshot()).pending_transactions == ()


def test_config_errors_name_the_field() -> None:
    with pytest.raises(InvalidInput, match="block_time_ns"):
        AmmConfig(block_time_ns=0)
    with pytest.raises(InvalidInput, match="native_price"):
        make(AmmConfig(gas_fee_in="quote"))
    with pytest.raises(InvalidInput, match="pair"):
        AmmPoolSpec(V2, Spot("TOK/USDC", "TOK", "USDC"))
    with pytest.raises(InvalidInput, match="fee"):
        make(pools=[AmmPoolSpec(Pool("p", "uni", 1, "0x", "TOK", "USD", 3050, version=2), PAIR)])
    with pytest.raises(InvalidInput, match="initial"):
        make(pools=[AmmPoolSpec(V2, PAIR, v2_record(0, 0, 5))])
