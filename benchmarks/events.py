"""Creation cost of an event: our NamedTuple `Quote` against the two usual ways to write one.

Peers measured in the same run: a frozen slotted dataclass and a frozen pydantic model with the
same fields. Run: `.venv/bin/python -m benchmarks.events`.
"""

from __future__ import annotations

import timeit
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict

from core.events import Quote


@dataclass(frozen=True, slots=True)
class QuoteDataclass:
    ts: int
    venue: str
    instrument: str
    bid: float
    ask: float
    bid_size: float
    ask_size: float


class QuotePydantic(BaseModel):
    model_config = ConfigDict(frozen=True)
    ts: int
    venue: str
    instrument: str
    bid: float
    ask: float
    bid_size: float
    ask_size: float


def _per_second(factory: type, n: int, keywords: bool) -> float:
    def make_keywords() -> None:
        for i in range(n):
            factory(ts=i, venue="bn", instrument="TSLAx/USDT", bid=1.0, ask=2.0, bid_size=3.0, ask_size=4.0)

    def make_positional() -> None:
        for i in range(n):
            factory(i, "binance", "TSLAx/USDT", 1.0, 2.0, 3.0, 4.0)

    best = min(timeit.repeat(make_keywords if keywords else make_positional, number=1, repeat=5))
    return n / best


PEERS: tuple[tuple[str, type], ...] = (
    ("frozen slotted dataclass", QuoteDataclass),
    ("frozen pydantic model", QuotePydantic),
)


def main(n: int = 200_000) -> list[tuple[str, str, float, float]]:
    """Print and return (implementation, call style, events per second, ours / it) rows."""
    rows: list[tuple[str, str, float, float]] = []
    for style, keywords in (("positional", False), ("keywords", True)):
        ours = _per_second(Quote, n, keywords)
        rows.append(("Quote (NamedTuple, ours)", style, ours, 1.0))
        for name, peer in PEERS:
            if style == "positional" and peer is QuotePydantic:
                continue  # pydantic models take keywords only
            rate = _per_second(peer, n, keywords)
            rows.append((name, style, rate, ours / rate))
    print(f"event creation, {n:,} events, best of 5")
    print(f"{'implementation':<28} {'call':<11} {'M events/s':>11} {'ours / it':>10}")
    for name, style, rate, ratio in rows:
        print(f"{name:<28} {style:<11} {rate / 1e6:>11.2f} {ratio:>9.2f}x")
    return rows


if __name__ == "__main__":
    main()
