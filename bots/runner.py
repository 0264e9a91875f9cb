"""The live driver: the shared trading engine fed by venue streams on the wall clock.

The same `core.engine.TradingEngine` the backtester drives, here under an asyncio supervisor:

- one task per venue stream, restarted with exponential backoff (seeded jitter) when it crashes
  or ends, without stopping the bot;
- one consumer that applies events in arrival order: simulated venues (paper mode) see a market
  event first and match what rests on them, then the engine updates its state and wakes the
  strategies, exactly the order of the replay driver;
- a timer task that fires `ctx.schedule` timers and simulated venues' wake-ups on time;
- a watchdog that flags streams silent for longer than the staleness limit;
- graceful shutdown (SIGINT/SIGTERM, `duration`, or `stop()`): streams stop, every open order is
  cancelled, strategies' `on_stop` runs, and shutdown hooks (journal flush) are awaited.

Engine access is serialised by one lock, so a strategy's callback never interleaves with another
event's. Times are ns since the epoch, UTC.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import random
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field

from connectors.sim.base import SimVenue
from core.engine import TradingEngine
from core.events import Event, MarketStatus
from core.venue import Venue

log = logging.getLogger("perpetua.runner")

NS = 1_000_000_000


@dataclass(frozen=True, slots=True)
class Backoff:
    """Restart delays: `initial_s` doubling up to `max_s`, each times a jitter in [1 - jitter, 1]."""

    initial_s: float = 0.5
    max_s: float = 30.0
    jitter: float = 0.2

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Seconds to wait before restart number `attempt` (0 for the first)."""
        base = min(self.max_s, self.initial_s * 2.0**attempt)
        return base * (1.0 - self.jitter * rng.random())


@dataclass(slots=True)
class StreamHealth:
    """What the watchdog knows of one stream: when it last delivered, how often it restarted."""

    venue: str
    last_event_ns: int = 0
    restarts: int = 0
    stale: bool = False
    errors: list[str] = field(default_factory=list)


class LiveDriver:
    """Runs `engine` on live streams until stopped. See the module docstring.

    `venues` are the engine's execution venues that also stream (live connectors, or simulated
    venues in paper mode, which stream nothing). `feeds` are extra market-data sources (in paper
    mode: the live venues whose data the simulated ones trade against). `sim_venues` see each
    market event stamped with their name (field 1), as in a backtest.
    """

    def __init__(
        self,
        engine: TradingEngine,
        venues: Mapping[str, Venue],
        *,
        feeds: Iterable[Venue] = (),
        sim_venues: Iterable[SimVenue] = (),
        backoff: Backoff = Backoff(),
        stale_after_ns: int = 90 * NS,
        watchdog_every_s: float = 1.0,
        seed: int = 0,
        on_stale: Callable[[StreamHealth], None] | None = None,
        shutdown_hooks: Iterable[Callable[[], Awaitable[None]]] = (),
        shutdown_grace_s: float = 5.0,
    ) -> None:
        self.engine = engine
        self.clock = engine.clock
        self.sim_venues = {v.name: v for v in sim_venues}
        # Simulated venues stream nothing; in paper mode a feed carries the name of the venue it stands for.
        self.sources = [*feeds, *(v for v in venues.values() if not isinstance(v, SimVenue))]
        self.backoff = backoff
        self.stale_after_ns = stale_after_ns
        self.watchdog_every_s = watchdog_every_s
        self.on_stale = on_stale
        self.shutdown_hooks = list(shutdown_hooks)
        self.shutdown_grace_s = shutdown_grace_s
        self.health = [StreamHealth(source.name) for source in self.sources]
        self.events_in = 0
        self._rng = random.Random(seed)
        self._queue: asyncio.Queue[Event] = asyncio.Queue()
        self._lock = asyncio.Lock()
        self._stopping = asyncio.Event()
        self._outbox: list[Event] = []
        self._wakeups: list[tuple[int, int, SimVenue]] = []
        self._wake_seq = 0
        self._timer_changed = asyncio.Event()
        for venue in self.sim_venues.values():
            venue.attach(self._outbox, self._wake)

    # -- control -----------------------------------------------------------------------------

    @property
    def engine_lock(self) -> asyncio.Lock:
        """Held while the driver works on the engine: hold it to act on the engine between events."""
        return self._lock

    def stop(self) -> None:
        """Ask the driver to shut down gracefully (safe from a signal handler)."""
        self._stopping.set()

    async def run(self, duration_s: float | None = None, install_signals: bool = True) -> None:
        """Run until `stop()`, a signal, or `duration_s` seconds; then shut down gracefully."""
        loop = asyncio.get_running_loop()
        if install_signals:
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.add_signal_handler(sig, self.stop)
        async with self._lock:
            await self.engine.start()
            await self._flush()
        tasks = [
            asyncio.create_task(self._supervise(source, health), name=f"stream:{source.name}")
            for source, health in zip(self.sources, self.health, strict=True)
        ]
        tasks.append(asyncio.create_task(self._consume(), name="consumer"))
        tasks.append(asyncio.create_task(self._timers(), name="timers"))
        tasks.append(asyncio.create_task(self._watchdog(), name="watchdog"))
        try:
            if duration_s is None:
                await self._stopping.wait()
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), duration_s)
        finally:
            idle = await self._wait_idle()  # no event is cancelled half-applied (e.g. its journal write)
            for task in tasks:
                task.cancel()
            _, stuck = await asyncio.wait(tasks, timeout=self.shutdown_grace_s)
            if stuck:  # a stream client that swallows its cancellation must not hold the shutdown
                names = sorted(task.get_name() for task in stuck)
                log.warning(
                    "shutdown: tasks %s did not end %.1f s after cancel; going on",
                    names,
                    self.shutdown_grace_s,
                )
            if idle:
                self._lock.release()
            await self._shutdown()
            if install_signals:
                for sig in (signal.SIGINT, signal.SIGTERM):
                    with contextlib.suppress(NotImplementedError, RuntimeError):
                        loop.remove_signal_handler(sig)

    async def _wait_idle(self) -> bool:
        """Take the engine lock, so the event being applied finishes; False if it outlasts the grace."""
        try:
            await asyncio.wait_for(self._lock.acquire(), self.shutdown_grace_s)
        except TimeoutError:
            log.warning(
                "shutdown: an event is still being applied after %.1f s; cancelling it", self.shutdown_grace_s
            )
            return False
        return True

    async def _shutdown(self) -> None:
        """Cancel every open order, stop the strategies, run the hooks; each step's failure is logged."""
        async with self._lock:
            for order in self.engine.open_orders():
                try:
                    await self.engine.cancel(order.client_order_id)
                except Exception:  # a venue down at shutdown must not keep the others' orders open
                    log.exception("shutdown: cancel of %s failed", order.client_order_id)
            await self._flush()
            # Simulated venues answer cancels after their latency: wait for those answers (bounded).
            deadline = self.clock.now_ns() + int(self.shutdown_grace_s * NS)
            while self._wakeups and self._wakeups[0][0] <= deadline:
                await asyncio.sleep(max(0.0, (self._wakeups[0][0] - self.clock.now_ns()) / NS))
                await self._fire_due(self.clock.now_ns())
            try:
                await self.engine.stop()
            except Exception:
                log.exception("shutdown: a strategy's on_stop failed")
            await self._flush()
        for hook in self.shutdown_hooks:
            try:
                await hook()
            except Exception:
                log.exception("shutdown hook failed")

    # -- streams -----------------------------------------------------------------------------

    async def _supervise(self, source: Venue, health: StreamHealth) -> None:
        """Pump one venue's stream into the queue; restart it with backoff when it fails or ends."""
        name = source.name
        attempt = 0
        while not self._stopping.is_set():
            try:
                stream: AsyncIterator[Event] = source.stream()
                async for event in stream:
                    health.last_event_ns = self.clock.now_ns()
                    health.stale = False
                    attempt = 0
                    await self._queue.put(event)
                log.warning("stream %s ended; restarting", name)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # one venue's crash must not stop the bot
                health.errors.append(f"{type(exc).__name__}: {exc}")
                log.warning("stream %s crashed (%s: %s); restarting", name, type(exc).__name__, exc)
            health.restarts += 1
            delay = self.backoff.delay(attempt, self._rng)
            attempt += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)

    async def _consume(self) -> None:
        """Apply events in arrival order: simulated venues first, then the engine and strategies."""
        while True:
            event = await self._queue.get()
            async with self._lock:
                await self._fire_due(self.clock.now_ns())
                try:
                    await self._apply(event)
                except Exception:  # a bad event or a strategy bug is logged; the bot goes on
                    log.exception("event %s from %s failed", type(event).__name__, event[1])
            self.events_in += 1

    async def _apply(self, event: Event) -> None:
        if self.sim_venues:
            if type(event) is MarketStatus:
                for venue in self.sim_venues.values():
                    venue.on_market(event)
            else:
                target = self.sim_venues.get(event[1])
                if target is not None:
                    target.on_market(event)
                for venue in self.sim_venues.values():
                    if venue is not target and event[1] in venue.watched_sources():
                        venue.on_market(event)
            await self._flush()
        await self.engine.process(event)
        await self._flush()
        self._timer_changed.set()  # a handler may have scheduled a timer

    async def _flush(self) -> None:
        """Hand simulated venues' fills and updates to the engine; reactions may add more."""
        while self._outbox:
            batch = self._outbox[:]
            self._outbox.clear()
            for event in batch:
                await self.engine.process(event)

    # -- time --------------------------------------------------------------------------------

    def _wake(self, at_ns: int, venue: SimVenue) -> None:
        heapq.heappush(self._wakeups, (at_ns, self._wake_seq, venue))
        self._wake_seq += 1
        self._timer_changed.set()

    def _next_due(self) -> int | None:
        due = [h[0][0] for h in (self.engine.timer_heap, self._wakeups) if h]
        return min(due) if due else None

    async def _timers(self) -> None:
        """Sleep until the next timer or venue wake-up (or a change of them), then fire what is due."""
        while True:
            self._timer_changed.clear()
            due = self._next_due()
            if due is not None:
                wait_s = max(0.0, (due - self.clock.now_ns()) / NS)
                if wait_s == 0.0:
                    async with self._lock:
                        await self._fire_due(self.clock.now_ns())
                    continue
            else:
                wait_s = None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._timer_changed.wait(), wait_s)

    async def _fire_due(self, now_ns: int) -> None:
        """Fire venue wake-ups and strategy timers due by `now_ns`, in time order (venues first)."""
        timers = self.engine.timer_heap
        while True:
            venue_ns = self._wakeups[0][0] if self._wakeups else None
            timer_ns = timers[0][0] if timers else None
            if venue_ns is not None and venue_ns <= now_ns and (timer_ns is None or venue_ns <= timer_ns):
                _, _, venue = heapq.heappop(self._wakeups)
                venue.on_time(now_ns)
                await self._flush()
            elif timer_ns is not None and timer_ns <= now_ns:
                await self.engine.fire_timer()
                await self._flush()
            else:
                return

    async def _watchdog(self) -> None:
        """Flag streams with no event for longer than the staleness limit (once per silence)."""
        while True:
            await asyncio.sleep(self.watchdog_every_s)
            now = self.clock.now_ns()
            for health in self.health:
                if (
                    health.last_event_ns
                    and not health.stale
                    and now - health.last_event_ns > self.stale_after_ns
                ):
                    health.stale = True
                    log.warning(
                        "stream %s stale: no event for %.1f s",
                        health.venue,
                        (now - health.last_event_ns) / NS,
                    )
                    if self.on_stale is not None:
                        self.on_stale(health)
