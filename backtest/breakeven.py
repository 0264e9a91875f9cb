"""The cost multiple at which a strategy breaks even: re-run the backtest with every cost scaled by k.

`scale_costs(cfg, k)` returns the config with every cost multiplied by `k`:

- the simulated venues' own costs: `backtest.sim.<venue>` taker/maker fees, spread, commission per
  share and gas price (defaults of `SimSettings` where the config leaves them out); the issuer's
  mint and redeem fees; every AMM pool's fee tier (`fee`, hundredths of a bip, kept below 100%;
  its tick spacing is pinned, so only the fee changes);
- the strategy's estimates of them, so it keeps deciding with the true costs: every `params` key
  (at any depth) named `*_fee_bps`, `*_spread_bps`, `*_cost_bps` or `gas_price_gwei`.

The safety margin and the size limits are decisions, not costs: they are not scaled.

`net_pnl(cfg)` runs the backtest and returns the strategy's net PnL after all costs
(`backtest.attribution`: fills' edge + fees and gas + carry of the inventory it built; the drift of
the starting inventory excluded). `find_breakeven` brackets the k where it crosses 0 on a doubling
grid, then bisects (net PnL falls as costs rise: each trade's profit falls with every cost and
fewer trades pass the threshold; the search checks the sign at both ends of the bracket only).

    python -m backtest.breakeven examples/depeg_arb.yaml --out reports/depeg   # base run + k
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

from backtest.attribution import attribute, load_references, load_sessions
from backtest.runner import SimSettings, build_backtest
from core.config import IssuerVenue, PerpetuaConfig, PoolConfig, load_config

COST_SUFFIXES = ("_fee_bps", "_spread_bps", "_cost_bps")
COST_KEYS = frozenset({"gas_price_gwei"})
_SIM_COSTS = ("taker_fee_bps", "maker_fee_bps", "spread_bps", "commission_per_share", "gas_price_gwei")


def _is_cost(key: str) -> bool:
    return key in COST_KEYS or key.endswith(COST_SUFFIXES)


def _scale_params(value: Any, k: Decimal) -> Any:
    """`value` with every cost-named number scaled by k (dicts and lists walked)."""
    if isinstance(value, dict):
        return {
            key: (
                Decimal(str(v)) * k
                if _is_cost(key) and isinstance(v, int | float | Decimal) and not isinstance(v, bool)
                else _scale_params(v, k)
            )
            for key, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_scale_params(v, k) for v in value]
    return value


def scale_costs(cfg: PerpetuaConfig, k: Decimal) -> PerpetuaConfig:
    """`cfg` with every venue cost and every cost the strategies assume multiplied by `k` (>= 0)."""
    if k < 0:
        raise ValueError(f"k: must be >= 0, got {k}")
    venues = []
    for venue in cfg.venues:
        if isinstance(venue, IssuerVenue):
            venue = venue.model_copy(
                update={"mint_fee_bps": venue.mint_fee_bps * k, "redeem_fee_bps": venue.redeem_fee_bps * k}
            )
        venues.append(venue)
    instruments = []
    for instrument in cfg.instruments:
        if isinstance(instrument, PoolConfig):
            fee = min(int(instrument.fee * k), 999_999)
            if instrument.version == 2:
                fee = fee // 100 * 100  # a v2 fee is whole basis points
            instrument = instrument.model_copy(
                update={"fee": fee, "tick_spacing": instrument.effective_tick_spacing}
            )
        instruments.append(instrument)
    strategies = [s.model_copy(update={"params": _scale_params(s.params, k)}) for s in cfg.strategies]
    backtest = cfg.backtest
    if backtest is not None:
        sim: dict[str, dict[str, Any]] = {}
        defaults = SimSettings()
        for venue in cfg.venues:
            settings = dict(backtest.sim.get(venue.name, {}))
            for key in _SIM_COSTS:
                base = Decimal(str(settings.get(key, getattr(defaults, key))))
                settings[key] = base * k
            sim[venue.name] = settings
        backtest = backtest.model_copy(update={"sim": sim})
    return cfg.model_copy(
        update={"venues": venues, "instruments": instruments, "strategies": strategies, "backtest": backtest}
    )


def run_attributed(cfg: PerpetuaConfig) -> dict[str, Any]:
    """Run the backtest of `cfg`; its attribution as a dict (see `backtest.attribution`)."""
    bt = build_backtest(cfg)
    result = bt.run()
    assert cfg.backtest is not None
    sources = [(r.underlying, r.venue, r.instrument) for r in bt.engine.references if not r.from_oracle]
    references = load_references(cfg.backtest.data_dir, sources, bt.start_ns, bt.end_ns)
    sessions = load_sessions(cfg.backtest.data_dir)
    summary = attribute(result, bt.engine.instruments, references, sessions, bt.initial_balances).to_dict()
    summary["fills"] = len(result.fills)
    summary["rejections"] = len(result.rejections)
    return summary


def net_pnl(cfg: PerpetuaConfig) -> float:
    """The strategy's net PnL after all costs on `cfg` [valuation asset]."""
    return float(run_attributed(cfg)["net_pnl"])


def find_breakeven(
    cfg: PerpetuaConfig,
    pnl: Callable[[PerpetuaConfig], float] = net_pnl,
    k_max: float = 64.0,
    tolerance: float = 0.05,
    log: Callable[[str], None] = print,
    pnl_at_1: float | None = None,
) -> tuple[float | None, list[tuple[float, float]]]:
    """(k where net PnL crosses 0, every (k, PnL) evaluated); None when it does not cross up to `k_max`.

    `pnl_at_1`: the PnL of `cfg` itself when already known (saves a run). The bracket is found on
    k = 1, 2, 4, ... (or 1, 1/2, 1/4, ... when PnL at k = 1 is already negative), then bisected
    until its width is below `tolerance` x k; the midpoint is returned.
    """
    seen: list[tuple[float, float]] = []

    def at(k: float) -> float:
        known = k == 1.0 and pnl_at_1 is not None
        value = pnl_at_1 if known and pnl_at_1 is not None else pnl(scale_costs(cfg, Decimal(repr(k))))
        seen.append((k, value))
        log(f"k = {k:g}: net PnL {value:,.2f}")
        return value

    low, high = 1.0, 1.0
    if at(1.0) > 0:
        while True:
            high = low * 2
            if high > k_max:
                return None, seen
            if at(high) <= 0:
                break
            low = high
    else:
        while True:
            low = high / 2
            if low < 1 / k_max:
                return None, seen
            if at(low) > 0:
                break
            high = low
    while high - low > tolerance * low:
        mid = (low + high) / 2
        if at(mid) > 0:
            low = mid
        else:
            high = mid
    return (low + high) / 2, seen


def main(argv: list[str] | None = None) -> None:
    """CLI: base run with attribution, then the break-even cost multiple; writes JSON to --out."""
    parser = argparse.ArgumentParser(prog="python -m backtest.breakeven", description=__doc__.split("\n")[0])
    parser.add_argument("config", type=Path)
    parser.add_argument("--out", type=Path, default=Path("reports/breakeven"))
    parser.add_argument("--k-max", type=float, default=64.0)
    parser.add_argument("--tolerance", type=float, default=0.05, help="relative width of the final bracket")
    args = parser.parse_args(argv)
    cfg = load_config(args.config)
    args.out.mkdir(parents=True, exist_ok=True)
    base = run_attributed(cfg)
    (args.out / "attribution.json").write_text(json.dumps(base, indent=2))
    print(json.dumps(base, indent=2))
    k, seen = find_breakeven(cfg, k_max=args.k_max, tolerance=args.tolerance, pnl_at_1=float(base["net_pnl"]))
    report = {"breakeven_k": k, "runs": [{"k": a, "net_pnl": b} for a, b in seen]}
    (args.out / "breakeven.json").write_text(json.dumps(report, indent=2))
    print(f"break-even cost multiple: {'none up to k_max' if k is None else f'{k:.3g}'}")


if __name__ == "__main__":
    main()
