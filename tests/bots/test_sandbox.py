"""The sandbox from nothing: real anvil + Uniswap v3, the Binance and Alpaca emulators, the market driver.

References are independent of the code under test: addresses from config.yaml, prices from the
sample's Parquet files read here, the pool read back through `UniswapV3Pool` and the real QuoterV2,
the oracle through `ChainlinkFeed`, the books through the real ccxt client, the broker's quote over
its REST API. One sandbox serves the module (steps driven by hand: no timing in the assertions);
the shutdown test starts its own.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import pickle
from collections.abc import AsyncIterator
from decimal import Decimal, getcontext
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import ccxt.async_support as ccxt_async
import numpy as np
import pytest
import pytest_asyncio
import yaml
from eth_account import Account
from web3 import AsyncHTTPProvider, AsyncWeb3

from backtest.data import load_dataset, stream_arrays
from bots.market_driver import DriverParams, SandboxCalendar, SandboxTime, StepReport
from bots.sandbox import PRIVATE_KEY_ENV, Sandbox, SandboxParams
from connectors.evm.anvil import PROJECT_ROOT
from connectors.evm.chain import ChainSession, FeePolicy
from connectors.evm.chainlink import ChainlinkFeed
from connectors.evm.erc20 import ERC20
from connectors.evm.keys import LocalSigner
from connectors.evm.uniswap_artifacts import contract_at
from connectors.evm.uniswap_v3 import UniswapV3Pool
from core.enums import Session
from core.errors import InvalidInput

pytestmark = pytest.mark.asyncio(loop_scope="module")

START = "2025-07-01T13:30:00Z"  # the sample's first regular open
START_NS = 1_751_376_600 * 10**9
MINUTE_NS = 60 * 10**9
# every minute a noise swap, no random depegs: the pool's gap to the sample is noise only
# (and tokenization requests done as soon as they are accepted)
PARAMS = SandboxParams(
    start=START,
    drive=False,
    driver=DriverParams(swap_probability=1.0, depeg_probability=0.0, seed=11),
    mint_delay_minutes=0,
)
FIRST_STEPS = 10  # recorded by the fixture, compared with a second sandbox of the same seed
NOISE_SD = 8e-4  # DriverParams.swap_noise_bps as a log-price fraction
DECAY = 0.5 ** (1 / 4)  # DriverParams.reversion_half_life_min = 4
# the gap is an AR(1) with those shocks: stationary sd = NOISE_SD / sqrt(1 - DECAY^2) = 14.8 bps
BAND = 5 * NOISE_SD / math.sqrt(1 - DECAY**2)


class Sample:
    """The sample streams the driver replays, read here straight from the Parquet files."""

    def __init__(self) -> None:
        names = ["stock_quotes", "stock_oracle", "token_cex_quotes", "token_pool"]
        ds = load_dataset(
            PROJECT_ROOT / "data" / "sample",
            streams=names,
            start_ns=START_NS - 86_400 * 10**9,
            end_ns=START_NS + 86_400 * 10**9,
        )
        self.arrays = {name: stream_arrays(ds.stream(name)) for name in names}

    def at(self, name: str, ts: int) -> Any:
        """The last event of stream `name` with ts <= `ts`."""
        stamps, events = self.arrays[name]
        return events[int(np.searchsorted(stamps, ts, side="right")) - 1]

    def pool_price(self, ts: int) -> float:
        sqrt = self.at("token_pool", ts).sqrt_price_x96
        return float(Decimal(sqrt * sqrt) / Decimal(2**192) * Decimal(10**12))


@pytest.fixture(scope="module")
def sample() -> Sample:
    return Sample()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def sandbox() -> AsyncIterator[tuple[Sandbox, list[StepReport]]]:
    async with Sandbox(PARAMS) as box:
        first = [box.driver.last] if box.driver.last is not None else []
        for _ in range(FIRST_STEPS - len(first)):
            first.append(await box.driver.step())
        yield box, first


@pytest_asyncio.fixture(loop_scope="module")
async def w3(sandbox: tuple[Sandbox, list[StepReport]]) -> AsyncIterator[AsyncWeb3[Any]]:
    web3 = AsyncWeb3(AsyncHTTPProvider(sandbox[0].info.rpc_url))
    yield web3
    await web3.provider.disconnect()


def pool_price(pool: UniswapV3Pool) -> Decimal:
    """USDC per TSLAx of the pool's state: sqrtP^2 / 2^192 x 10^(18 - 6)."""
    getcontext().prec = 60
    sqrt = pool.state.sqrt_price_x96
    return Decimal(sqrt * sqrt) / Decimal(2**192) * Decimal(10**12)


async def test_starts_with_the_config_addresses_and_funded_accounts(
    sandbox: tuple[Sandbox, list[StepReport]], w3: AsyncWeb3[Any], sample: Sample
) -> None:
    box, _ = sandbox
    info = box.info
    assert box.startup_seconds < 60  # a hang guard; the measured figure is in docs/sandbox.md
    config = yaml.safe_load((PROJECT_ROOT / "config.yaml").read_text())
    venues = {v["name"]: v for v in config["venues"]}
    instruments = {i["id"]: i for i in config["instruments"]}
    assert info.chain_id == venues["uniswap_local"]["chain_id"] == await w3.eth.chain_id
    assert info.token == instruments["TSLAx"]["address"]
    assert info.usdc == config["tokens"][0]["address"]
    assert info.factory == venues["uniswap_local"]["factory"]
    assert info.router == venues["uniswap_local"]["swap_router"]
    assert info.quoter == venues["uniswap_local"]["quoter"]
    assert info.aggregator == venues["chainlink_local"]["feeds"]["TSLA/USD"]
    assert urlsplit(info.rpc_url).hostname == "127.0.0.1"

    token, usdc = ERC20(w3, info.token), ERC20(w3, info.usdc)
    assert (await token.decimals(), await usdc.decimals()) == (18, 6)
    assert await token.balance_of(info.wallet) == 100 * 10**18
    assert await usdc.balance_of(info.wallet) == 100_000 * 10**6
    assert await w3.eth.get_balance(info.wallet) == 100 * 10**18
    factory = contract_at(w3, "UniswapV3Factory", info.factory)
    assert await factory.functions.getPool(info.token, info.usdc, 3000).call() == info.pool
    pool = UniswapV3Pool(w3, info.pool)
    await pool.refresh_from_logs()
    assert (pool.token0, pool.token1, pool.fee, pool.tick_spacing) == (info.token, info.usdc, 3000, 60)
    assert len(pool.tick_liquidity) == 8  # four positions: full range and three nested ranges

    # initialised at the sample's fair price at the start: floor(sqrt(P x 10^-12) x 2^96)
    getcontext().prec = 80
    fair = Decimal(repr(sample.at("stock_oracle", START_NS).price))
    expected = int((fair * Decimal(10) ** -12).sqrt() * Decimal(2**96))
    initialize = await contract_at(w3, "UniswapV3Pool", info.pool).events.Initialize().get_logs(from_block=0)
    assert initialize[0]["args"]["sqrtPriceX96"] == expected

    # the accounts the bot trades with off chain
    assert box.binance is not None and box.alpaca is not None and box.futures is not None
    assert box.binance.balance("USDT") == (Decimal(50_000), Decimal(0))
    assert box.binance.balance("TSLAX") == (Decimal(20), Decimal(0))
    assert box.futures.wallet() == Decimal(20_000)
    assert box.alpaca.cash == Decimal(100_000)


async def test_secrets_are_exported_by_name_and_never_shown(
    sandbox: tuple[Sandbox, list[StepReport]], w3: AsyncWeb3[Any]
) -> None:
    box, _ = sandbox
    env = box.secrets.env()
    assert set(env) == {
        box.info.private_key_env,
        box.info.binance_key_env,
        box.info.binance_secret_env,
        box.info.alpaca_key_env,
        box.info.alpaca_secret_env,
    }
    # the exported key is the funded wallet's
    assert Account.from_key(env[PRIVATE_KEY_ENV]).address == box.info.wallet
    shown = " ".join(map(repr, (box, box.info, box.secrets, box.info.as_dict(), str(box.secrets))))
    for value in env.values():
        assert value not in shown
    with pytest.raises(TypeError):
        pickle.dumps(box.secrets)
    # the broker accepts the exported keys and refuses others
    headers = {"APCA-API-KEY-ID": env["APCA_API_KEY_ID"], "APCA-API-SECRET-KEY": env["APCA_API_SECRET_KEY"]}
    async with aiohttp.ClientSession() as http:
        async with http.get(box.info.alpaca_url + "/v2/account", headers=headers) as ok:
            assert ok.status == 200
        bad = headers | {"APCA-API-SECRET-KEY": "wrong"}
        async with http.get(box.info.alpaca_url + "/v2/account", headers=bad) as refused:
            assert refused.status == 403


async def test_same_seed_same_market(
    sandbox: tuple[Sandbox, list[StepReport]], caplog: pytest.LogCaptureFixture
) -> None:
    _, first = sandbox
    caplog.set_level(logging.DEBUG)  # everything web3, aiohttp and the sandbox log
    async with Sandbox(PARAMS) as again:
        assert again.driver.last is not None
        replay = [again.driver.last] + [await again.driver.step() for _ in range(FIRST_STEPS - 1)]
        anvil_pid = again.info.anvil_pid
        secrets = again.secrets.env().values()
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "sandbox up in" in logged
    assert not [value for value in secrets if value in logged or value.removeprefix("0x") in logged]
    assert [r.pool_sqrt_after for r in replay] == [r.pool_sqrt_after for r in first]
    assert [r.oracle_answer for r in replay] == [r.oracle_answer for r in first]
    assert any(r.swapped for r in first)
    with pytest.raises(ProcessLookupError):
        os.kill(anvil_pid, 0)


async def test_pool_tracks_the_sample_without_a_bot(
    sandbox: tuple[Sandbox, list[StepReport]], w3: AsyncWeb3[Any], sample: Sample
) -> None:
    box, _ = sandbox
    pool = contract_at(w3, "UniswapV3Pool", box.info.pool)
    gaps, premiums = [], []
    for _ in range(60):
        report = await box.driver.step()
        sqrt = int((await pool.functions.slot0().call())[0])
        price = sqrt * sqrt / 2**192 * 10**12
        mid = sample.at("stock_quotes", report.sample_ns)
        gaps.append(math.log(price / sample.pool_price(report.sample_ns)))
        premiums.append(math.log(price / ((mid.bid + mid.ask) / 2)))
    # 5 stationary sds of the noise traders' gap to the sample's pool price (74 bps)
    assert max(map(abs, gaps)) < BAND
    # the sample's own pool premium over the stock stays within 50 bps on this day (docs/data.md)
    assert max(map(abs, premiums)) < BAND + 0.005
    assert abs(float(np.mean(gaps))) < 3 * NOISE_SD / math.sqrt(1 - DECAY**2)


async def test_broker_serves_the_driven_quote_and_session(
    sandbox: tuple[Sandbox, list[StepReport]], sample: Sample
) -> None:
    box, _ = sandbox
    report = await box.driver.step()
    expected = sample.at("stock_quotes", report.sample_ns)
    env = box.secrets.env()
    headers = {"APCA-API-KEY-ID": env["APCA_API_KEY_ID"], "APCA-API-SECRET-KEY": env["APCA_API_SECRET_KEY"]}
    async with aiohttp.ClientSession() as http:
        url = box.info.alpaca_url + "/v2/stocks/TSLA/quotes/latest"
        async with http.get(url, headers=headers) as reply:
            body = await reply.json()
    assert (body["quote"]["bp"], body["quote"]["ap"]) == (round(expected.bid, 4), round(expected.ask, 4))
    # 13:30 UTC on a Tuesday + the steps so far: the regular session, at the broker and on the feed
    assert report.session.value == "regular"
    assert box.calendar.session_at(box.time.wall_ns).value == "regular"
    assert box.sessions.current is not None and box.sessions.current.session.value == "regular"


async def test_aggregator_answers_the_driven_price(
    sandbox: tuple[Sandbox, list[StepReport]], w3: AsyncWeb3[Any], sample: Sample
) -> None:
    box, _ = sandbox
    report = await box.driver.step()
    feed = ChainlinkFeed(w3, box.info.aggregator, "chainlink_local", "TSLA/USD", max_age_ns=10**12)
    latest = await feed.latest_round()
    price = Decimal(repr(sample.at("stock_oracle", report.sample_ns).price))
    assert await feed.decimals() == 8
    assert latest.answer == int(price * 10**8)
    assert latest.round_id == box.driver.steps  # one round a minute in regular hours, from round 1


async def test_exchange_book_is_the_sample_quote_through_ccxt(
    sandbox: tuple[Sandbox, list[StepReport]], sample: Sample
) -> None:
    box, _ = sandbox
    report = await box.driver.step()
    env = box.secrets.env()
    client = ccxt_async.binance(
        {
            "apiKey": env["BINANCE_API_KEY"],
            "secret": env["BINANCE_API_SECRET"],
            "options": {"fetchMarkets": {"types": ["spot"]}, "fetchCurrencies": False, "fetchMargins": False},
        }
    )
    for name, url in client.urls["api"].items():
        if isinstance(url, str):
            client.urls["api"][name] = box.info.binance_url + urlsplit(url).path
    try:
        book = await client.fetch_order_book("TSLAX/USDT")
        balance = await client.fetch_balance()
    finally:
        await client.close()
    quote = sample.at("token_cex_quotes", report.sample_ns)
    assert (book["bids"][0][0], book["asks"][0][0]) == (round(quote.bid, 2), round(quote.ask, 2))
    assert len(book["bids"]) == len(book["asks"]) == 5
    assert balance["TSLAX"]["free"] == 20


async def test_injected_depeg_moves_the_pool_by_that_much(
    sandbox: tuple[Sandbox, list[StepReport]], w3: AsyncWeb3[Any]
) -> None:
    box, _ = sandbox
    info = box.info
    pool = UniswapV3Pool(w3, info.pool)
    quoter = contract_at(w3, "QuoterV2", info.quoter)

    async def quote_one_milli_token() -> int:
        """USDC base units QuoterV2 gives for 0.001 TSLAx now."""
        params = {
            "tokenIn": info.token,
            "tokenOut": info.usdc,
            "amountIn": 10**15,
            "fee": 3000,
            "sqrtPriceLimitX96": 0,
        }
        amount_out, *_ = await quoter.functions.quoteExactInputSingle(params).call()
        return int(amount_out)

    await pool.refresh()
    price_before, out_before = pool_price(pool), await quote_one_milli_token()
    sqrt_before = pool.state.sqrt_price_x96
    before, after = await box.driver.inject_depeg(300)
    await pool.refresh()
    assert before == sqrt_before and pool.state.sqrt_price_x96 == after
    assert after == math.isqrt(sqrt_before * sqrt_before * 10_300 // 10_000)
    assert abs(pool_price(pool) / price_before - Decimal("1.03")) < Decimal("1e-20")
    # the quoter sees the same 3%: 0.001 TSLAx moves the price by well under a bp
    ratio = await quote_one_milli_token() / out_before
    assert abs(ratio - 1.03) < 1e-4
    # and down again: -300 bps of the new price
    again_before, again_after = await box.driver.inject_depeg(-300)
    assert again_after == math.isqrt(again_before * again_before * 9_700 // 10_000)


async def test_broker_mints_and_redeems_real_tokens_on_chain(
    sandbox: tuple[Sandbox, list[StepReport]], w3: AsyncWeb3[Any]
) -> None:
    box, _ = sandbox
    info, env = box.info, box.secrets.env()
    headers = {"APCA-API-KEY-ID": env["APCA_API_KEY_ID"], "APCA-API-SECRET-KEY": env["APCA_API_SECRET_KEY"]}
    token = ERC20(w3, info.token)
    start_balance = await token.balance_of(info.wallet)
    request = {"issuer": "xstocks", "network": "ethereum", "underlying_symbol": "TSLA"}
    async with aiohttp.ClientSession(base_url=info.alpaca_url, headers=headers) as http:
        order = {"symbol": "TSLA", "qty": "3", "side": "buy", "type": "market", "time_in_force": "day"}
        async with http.post("/v2/orders", json=order) as reply:
            assert (await reply.json())["status"] == "filled"
        mint = request | {"qty": "2", "wallet_address": info.wallet.lower()}
        async with http.post("/v2/tokenization/mint", json=mint) as reply:
            minted = await reply.json()
        await box.driver.step()
        assert await token.balance_of(info.wallet) == start_balance + 2 * 10**18
        async with http.get(f"/v2/tokenization/requests/{minted['tokenization_request_id']}") as reply:
            tx_hash = (await reply.json())["tx_hash"]
        receipt = await w3.eth.get_transaction_receipt(tx_hash)
        (transfer,) = token.contract.events.Transfer().process_receipt(receipt)
        assert (transfer["args"]["from"], transfer["args"]["to"]) == ("0x" + "00" * 20, info.wallet)
        assert transfer["args"]["value"] == 2 * 10**18

        # a redeem is checked against the chain's balance, and burns the tokens there
        too_many = request | {"qty": "500", "wallet_address": info.wallet}
        async with http.post("/v2/tokenization/redeem", json=too_many) as reply:
            assert reply.status == 403
        redeem = request | {"qty": "1", "wallet_address": info.wallet}
        async with http.post("/v2/tokenization/redeem", json=redeem) as reply:
            assert (await reply.json())["status"] == "completed"
        await box.driver.step()
        assert await token.balance_of(info.wallet) == start_balance + 1 * 10**18
        async with http.get("/v2/positions") as reply:
            (position,) = await reply.json()
        assert Decimal(position["qty"]) == 2  # 3 bought, 2 minted away, 1 redeemed back


async def test_the_bot_wallet_swaps_with_the_exported_key(
    sandbox: tuple[Sandbox, list[StepReport]], w3: AsyncWeb3[Any]
) -> None:
    box, _ = sandbox
    info = box.info
    signer = LocalSigner.from_env(info.private_key_env, environ=box.secrets.env())
    assert signer.address == info.wallet
    session = await ChainSession.connect(info.rpc_url, signer, info.chain_id, FeePolicy(Decimal(50)))
    try:
        usdc = ERC20(w3, info.usdc, session=session)
        token = ERC20(w3, info.token, session=session)
        spend = 1_000 * 10**6  # USD 1,000
        await usdc.approve(info.router, spend)
        pool = UniswapV3Pool(w3, info.pool)
        await pool.refresh()
        usdc_before, token_before = await usdc.balance_of(), await token.balance_of()
        swap = await pool.swap(session, info.router, spend, zero_for_one=False)
        assert swap.amount_in == spend and swap.amount_out > 0
        assert await usdc.balance_of() == usdc_before - spend
        assert await token.balance_of() == token_before + swap.amount_out
    finally:
        await session.close()


async def test_runs_paced_and_shuts_down_cleanly() -> None:
    params = SandboxParams(start="2025-07-05T16:00:00Z", driver=DriverParams(seconds_per_minute=0.02))
    async with Sandbox(params) as box:
        pid, urls = box.info.anvil_pid, (box.info.binance_url, box.info.alpaca_url)
        os.kill(pid, 0)  # running
        async with asyncio.timeout(30):
            while box.driver.steps < 5:  # noqa: ASYNC110 - the driver's task advances on its own
                await asyncio.sleep(0.01)
        # a Saturday: the market is shut, the oracle frozen on Thursday's close (no new round)
        assert box.driver.session().value == "weekend"
        assert box.sessions.current is not None and box.sessions.current.session.value == "weekend"
        last = box.driver.last
        assert last is not None and not last.new_round
        # the session feed a bot subscribes to starts with the session in force
        feed = box.sessions.stream()
        status = await anext(feed)
        await feed.aclose()
        assert status.session is Session.WEEKEND and status.market == "XNYS"
        assert status.next_change_ts > status.ts  # Sunday 20:00 New York, in wall time
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    async with aiohttp.ClientSession() as http:
        for url in urls:
            with pytest.raises(aiohttp.ClientConnectionError):
                async with http.get(url + "/api/v3/ping"):
                    pass


async def test_calendar_runs_at_the_sandbox_pace() -> None:
    # one sample minute per 0.2 s, showing 2025-07-01 13:29 UTC = 09:29 New York, pre-market
    shown = SandboxTime(START_NS - MINUTE_NS, seconds_per_minute=0.2)
    calendar = SandboxCalendar(shown, START_NS - 86_400 * 10**9, START_NS + 86_400 * 10**9)
    wall = shown.wall_ns
    tick = 200_000_000  # one sample minute, in wall ns
    assert calendar.session_at(wall) is Session.PRE_MARKET
    assert calendar.session_at(wall + tick - 1) is Session.PRE_MARKET
    assert calendar.session_at(wall + tick) is Session.REGULAR
    assert calendar.is_regular_open(wall + tick)
    assert calendar.next_regular_open(wall) == wall + tick
    # the close at 16:00 New York = 20:00 UTC: 391 sample minutes after 13:29
    assert calendar.next_regular_close(wall) == wall + 391 * tick
    assert calendar.next_transition(wall) == (wall + tick, Session.REGULAR)
    assert calendar.local_date(wall).isoformat() == "2025-07-01"
    (status,) = calendar.market_status_events(wall + tick, wall + tick + 1)
    assert (status.ts, status.session, status.next_change_ts) == (
        wall + tick,
        Session.REGULAR,
        wall + 391 * tick,
    )
    # re-anchored at the next minute shown: the mapping follows the driver, not the nominal pace
    shown.show(START_NS)
    assert calendar.session_at(shown.wall_ns) is Session.REGULAR
    assert calendar.session_at(shown.wall_ns - 1) is Session.PRE_MARKET


async def test_bad_parameters_name_the_field() -> None:
    with pytest.raises(InvalidInput, match="swap_probability"):
        DriverParams(swap_probability=1.5)
    with pytest.raises(InvalidInput, match="wallet_usdc"):
        SandboxParams(wallet_usdc=Decimal(-1))
    with pytest.raises(InvalidInput, match="start"):
        await Sandbox(SandboxParams(start="2024-01-02T15:00:00Z")).start()
    with pytest.raises(InvalidInput, match="start"):
        Sandbox(SandboxParams(start="2025-07-02T15:00:00"))  # no zone
