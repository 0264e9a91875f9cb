"""Uniswap v3 connector latency on one anvil pool with many initialized ticks, against its peers.

In one run, on the same pool (the real v3 contracts on a local anvil, ~300 overlapping positions):

- a local exact-input quote (`UniswapV3Pool.quote_exact_input`, tick map loaded) vs degenbot 0.3.0
  (`calculate_tokens_out_from_tokens_in`, full tick map) vs QuoterV2 through web3 (eth_call);
  the same random sizes for all three (small ones that stay between two initialized ticks, large
  ones that cross dozens), every result checked equal to QuoterV2's first; and the local quote's
  first call on a tick map just changed (a Mint/Burn makes a new one), when the swap path's prefix
  sums (`pricing.amm.v3_swap_path`) are not built yet and no step is memoised;
- the time to load the full tick map: bitmap scan (`refresh`) vs Mint/Burn logs
  (`refresh_from_logs`), and degenbot's two ways;
- from a Swap log to the updated `PoolState`: decoding and applying one log in-process, and end to
  end (swap sent over HTTP, PoolState out of the websocket subscription).

degenbot needs web3 7, so it runs in `.venv-peers` (`.venv-peers/bin/pip install degenbot==0.3.0`)
as a subprocess on the same anvil; if it is missing its rows are left out and that is said.
Run: `.venv/bin/python -m benchmarks.connectors`.
"""

from __future__ import annotations

import asyncio
import json
import random
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from web3 import AsyncHTTPProvider, AsyncWeb3, WebSocketProvider
from web3.contract import AsyncContract

from benchmarks.table import Row, print_table, ratios
from connectors.evm.anvil import PROJECT_ROOT, start_anvil
from connectors.evm.pool_logs import PoolLogFollower
from connectors.evm.uniswap_artifacts import contract_at, deploy, load_artifact
from connectors.evm.uniswap_events import decode_log, fetch_logs
from connectors.evm.uniswap_v3 import UniswapV3Pool
from core.events import PoolState
from pricing.amm import get_sqrt_ratio_at_tick, quote_exact_input

PEERS_PYTHON = PROJECT_ROOT / ".venv-peers" / "bin" / "python"
DEGENBOT_SCRIPT = Path(__file__).resolve().parent / "peers" / "degenbot_v3.py"
FEE = 500  # 0.05%, tick spacing 10
POSITIONS = 300
UNUSED = AsyncWeb3.to_checksum_address("0x" + "11" * 20)  # WETH9 / descriptor, never called
DEADLINE = 2**32
# exact-input size classes, log10 of the amount in base units: within a tick range, across dozens
SIZE_CLASSES = {"small": (18.0, 21.0), "medium": (22.0, 23.0), "large": (23.5, 24.5)}


async def _transact(w3: AsyncWeb3[Any], call: Any, sender: str) -> None:
    receipt = await w3.eth.wait_for_transaction_receipt(await call.transact({"from": sender}))
    if receipt["status"] != 1:
        raise RuntimeError(f"setup transaction reverted: {call}")


async def deploy_pool(w3: AsyncWeb3[Any], rng: random.Random) -> tuple[AsyncContract, AsyncContract, str]:
    """The v3 set and a pool with `POSITIONS` random overlapping ranges; (pool, router, quoter address)."""
    deployer = (await w3.eth.accounts)[0]
    factory = await deploy(w3, load_artifact("UniswapV3Factory"))
    tokens = sorted(
        [await deploy(w3, load_artifact("ERC20"), 10**30) for _ in range(2)], key=lambda t: int(t.address, 16)
    )
    manager = await deploy(w3, load_artifact("NonfungiblePositionManager"), factory.address, UNUSED, UNUSED)
    router = await deploy(w3, load_artifact("SwapRouter"), factory.address, UNUSED)
    quoter = await deploy(w3, load_artifact("QuoterV2"), factory.address, UNUSED)
    await _transact(w3, factory.functions.createPool(tokens[0].address, tokens[1].address, FEE), deployer)
    pool = contract_at(
        w3, "UniswapV3Pool", await factory.functions.getPool(tokens[0].address, tokens[1].address, FEE).call()
    )
    await _transact(w3, pool.functions.initialize(get_sqrt_ratio_at_tick(0) + 12345), deployer)
    for token in tokens:
        for spender in (manager.address, router.address):
            await _transact(w3, token.functions.approve(spender, 2**256 - 1), deployer)
    for index in range(POSITIONS):
        if index < 6:
            lower = -rng.randrange(20_000, 400_000) // 10 * 10
            upper = -lower
        else:
            lower = rng.randrange(-30_000, 30_000) // 10 * 10
            upper = lower + rng.randrange(1, 1_500) * 10
        params = (
            tokens[0].address, tokens[1].address, FEE, lower, upper,
            rng.randrange(10**18, 10**22), rng.randrange(10**18, 10**22), 0, 0, deployer, DEADLINE,
        )  # fmt: skip
        await _transact(w3, manager.functions.mint(params), deployer)
    return pool, router, quoter.address


def _median_ns(samples: list[int]) -> float:
    return float(statistics.median(samples))


def _degenbot(job: dict[str, Any]) -> dict[str, Any] | str:
    """degenbot's timings on the same pool (a subprocess in .venv-peers), or why it could not run."""
    if not PEERS_PYTHON.is_file():
        return f"{PEERS_PYTHON} missing"
    done = subprocess.run(
        [str(PEERS_PYTHON), str(DEGENBOT_SCRIPT)],
        input=json.dumps(job),
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    if done.returncode != 0:
        return "degenbot failed: " + (done.stderr.strip().splitlines() or ["?"])[-1]
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


async def _swap_to_event(
    w3: AsyncWeb3[Any], ws_url: str, pool: UniswapV3Pool, router: AsyncContract, n: int
) -> list[int]:
    """ns from sending a swap (HTTP; anvil mines it at once) to its PoolState out of the ws follower."""
    deployer = (await w3.eth.accounts)[0]
    latencies: list[int] = []
    async with AsyncWeb3(WebSocketProvider(ws_url)) as ws:
        followed = UniswapV3Pool(ws, pool.address)
        await followed.refresh_from_logs()
        follower = PoolLogFollower(followed, venue="uniswap_v3", pool_id="bench")
        queue: asyncio.Queue[tuple[int, PoolState]] = asyncio.Queue()

        async def consume() -> None:
            async for event in follower.events():
                queue.put_nowait((time.perf_counter_ns(), event))

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.2)  # let the subscription start
        for index in range(n):
            zero_for_one = index % 2 == 0
            token_in, token_out = (pool.token0, pool.token1) if zero_for_one else (pool.token1, pool.token0)
            call = router.functions.exactInputSingle(
                (token_in, token_out, FEE, deployer, DEADLINE, 10**18, 0, 0)
            )
            tx = {
                "from": deployer,
                "to": router.address,
                "data": call._encode_transaction_data(),
                "gas": 600_000,
            }
            sent = time.perf_counter_ns()
            await w3.eth.send_transaction(tx)  # type: ignore[arg-type]
            received, _ = await asyncio.wait_for(queue.get(), 30)
            latencies.append(received - sent)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    return latencies


async def run(repeat: int = 20) -> list[Row]:
    """Deploy, measure everything on one anvil, print and return the rows."""
    node = await start_anvil("--disable-code-size-limit")
    try:
        w3 = AsyncWeb3(AsyncHTTPProvider(node.url))
        rng = random.Random(1)
        pool_contract, router, quoter_address = await deploy_pool(w3, rng)
        pool = UniswapV3Pool(w3, pool_contract.address)
        block = await w3.eth.block_number

        # tick-map loads, interleaved rounds, best of each (a shared machine)
        scan_s, logs_s = [], []
        for _ in range(5):
            start = time.perf_counter()
            by_scan = await pool.refresh(block)
            scan_s.append(time.perf_counter() - start)
            start = time.perf_counter()
            by_logs = await pool.refresh_from_logs(0, block)
            logs_s.append(time.perf_counter() - start)
            assert by_scan == by_logs
        ticks = len(pool.state.ticks)

        quoter = contract_at(w3, "QuoterV2", AsyncWeb3.to_checksum_address(quoter_address))

        async def chain_quote(amount: int, zero_for_one: bool) -> int:
            token_in, token_out = (pool.token0, pool.token1) if zero_for_one else (pool.token1, pool.token0)
            out = await quoter.functions.quoteExactInputSingle((token_in, token_out, amount, FEE, 0)).call()
            return int(out[0])

        # the same random sizes for everyone, in base units (18 dp), both directions
        classes: dict[str, dict[str, Any]] = {}
        ours_ns: dict[str, list[int]] = {}
        cold_ns: dict[str, list[int]] = {}
        crossed: dict[str, tuple[int, float, int]] = {}
        for name, (low, high) in SIZE_CLASSES.items():
            cases = [(int(10 ** rng.uniform(low, high)), index % 2 == 0) for index in range(200)]
            expected = [await chain_quote(*case) for case in cases]
            local = [pool.quote_exact_input(*case) for case in cases]
            assert [q.amount_out for q in local] == expected, "local quotes differ from QuoterV2"
            counts = [q.initialized_ticks_crossed for q in local]
            crossed[name] = (min(counts), statistics.median(counts), max(counts))
            classes[name] = {"cases": cases, "expected": expected}
            quote = pool.quote_exact_input
            samples: list[int] = []
            for _ in range(repeat):
                for amount, zero_for_one in cases:
                    begin = time.perf_counter_ns()
                    quote(amount, zero_for_one)
                    samples.append(time.perf_counter_ns() - begin)
            ours_ns[name] = samples
            # the first quote on a fresh tick map (same ticks, a new tuple: what a Mint/Burn leaves)
            cold: list[int] = []
            for amount, zero_for_one in cases[:100]:
                fresh = replace(pool.state, ticks=tuple(list(pool.state.ticks)))
                begin = time.perf_counter_ns()
                quote_exact_input(fresh, amount, zero_for_one)
                cold.append(time.perf_counter_ns() - begin)
            cold_ns[name] = cold
        quoter_ns: list[int] = []
        for amount, zero_for_one in classes["small"]["cases"][:100]:
            begin = time.perf_counter_ns()
            await chain_quote(amount, zero_for_one)
            quoter_ns.append(time.perf_counter_ns() - begin)

        peer = _degenbot(
            {"url": node.url, "pool": pool.address, "block": block, "classes": classes, "repeat": repeat}
        )

        # Swap log -> PoolState in-process: decode, apply, build the event (logs of real swaps)
        follow_ns = await _swap_to_event(w3, node.ws_url, pool, router, 40)
        latest = await w3.eth.block_number
        swap_logs = await fetch_logs(w3, pool.address, UniswapV3Pool.STATE_TOPICS, block + 1, latest)
        apply_ns: list[int] = []
        for _ in range(repeat):
            await pool.refresh(block)  # restart from before the swaps
            for raw in swap_logs:
                begin = time.perf_counter_ns()
                event = decode_log(raw)
                assert event is not None and pool.apply_event(event)
                pool.to_pool_state_event(time.time_ns(), "uniswap_v3", "bench", event.position.block_number)
                apply_ns.append(time.perf_counter_ns() - begin)
        assert pool.state == await UniswapV3Pool(w3, pool.address).refresh()
        await w3.provider.disconnect()
    finally:
        await node.stop()

    rows: list[Row] = []
    quoter_median = _median_ns(quoter_ns)
    # QuoterV2 on the small sizes: its cost grows with the ticks crossed, so larger ratios understate
    quoter_row = Row(
        "v3 quote: small", "QuoterV2 via web3", 1e9 / quoter_median, f"median {quoter_median / 1e6:.2f} ms"
    )
    for name in SIZE_CLASSES:
        task = f"v3 quote: {name}"
        low, median, high = crossed[name]
        peer_rows = []
        if isinstance(peer, dict):
            peer_ns = peer["quote_median_ns"][name]
            note = f"median {peer_ns / 1e3:.1f} us" + (
                f", {peer['mismatches']} differ from QuoterV2!" if peer["mismatches"] else ""
            )
            peer_rows.append(Row(task, f"degenbot {peer['version']}", 1e9 / peer_ns, note))
        ours_median = _median_ns(ours_ns[name])
        rows.append(
            Row(
                task,
                "perpetua (local, tick map loaded)",
                1e9 / ours_median,
                f"median {ours_median / 1e3:.2f} us, crosses {low}..{high} ticks (median {median:.0f})",
                ratios(1e9 / ours_median, [*peer_rows, quoter_row]),
            )
        )
        cold_median = _median_ns(cold_ns[name])
        rows.append(
            Row(
                task,
                "perpetua, first quote on a new tick map",
                1e9 / cold_median,
                f"median {cold_median / 1e3:.1f} us (builds the swap path it needs)",
            )
        )
        rows.extend(peer_rows)
        if name == "small":
            rows.append(quoter_row)

    load_peers = []
    if isinstance(peer, dict):
        load_peers = [
            Row(
                "tick map load",
                "degenbot bitmap scan",
                peer["bitmap_scan_ticks"] / peer["bitmap_scan_s"],
                f"{peer['bitmap_scan_s']:.3f} s, {peer['bitmap_scan_ticks']} ticks",
            ),
            Row(
                "tick map load",
                "degenbot Mint/Burn logs",
                peer["logs_ticks"] / peer["logs_s"],
                f"{peer['logs_s']:.3f} s, {peer['logs_ticks']} ticks",
            ),
        ]
    scan_row = Row(
        "tick map load",
        "perpetua bitmap scan (refresh)",
        ticks / min(scan_s),
        f"{min(scan_s):.3f} s, {ticks} ticks",
    )
    logs_rate = ticks / min(logs_s)
    rows.append(
        Row(
            "tick map load",
            "perpetua Mint/Burn logs (refresh_from_logs)",
            logs_rate,
            f"{min(logs_s):.3f} s, {ticks} ticks",
            ratios(logs_rate, [scan_row, *load_peers]),
        )
    )
    rows.extend([scan_row, *load_peers])
    rows.append(
        Row(
            "Swap log -> PoolState",
            "perpetua decode+apply+event",
            1e9 / _median_ns(apply_ns),
            f"median {_median_ns(apply_ns) / 1e3:.1f} us, in-process",
        )
    )
    rows.append(
        Row(
            "Swap log -> PoolState",
            "perpetua swap sent -> event (ws)",
            1e9 / _median_ns(follow_ns),
            f"median {_median_ns(follow_ns) / 1e6:.2f} ms, HTTP send + mine + eth_subscribe push",
        )
    )
    title = f"Uniswap v3 connector on one anvil pool ({ticks} initialized ticks), rates per second"
    print_table(title, rows)
    if not isinstance(peer, dict):
        print(f"degenbot not measured: {peer}")
    return rows


def main() -> list[Row]:
    """Run the benchmark (starts and stops its own anvil)."""
    return asyncio.run(run())


if __name__ == "__main__":
    main()
    sys.exit(0)
