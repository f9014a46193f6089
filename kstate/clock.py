"""Injected time.

Where it sits: imported by everyone that needs "now" or a timer (controllers' executors,
node agents, the store's expectations TTLs, the stateful tests). Reconcilers never read a
clock: they receive ``now`` as an argument, so the model checker can treat time as a
nondeterministic event and a test can step it by hand.

Two implementations of one protocol:

* ``RealClock`` — wall time and ``asyncio.sleep``.
* ``FakeClock`` — time moves only when ``advance`` is called; sleepers wake in deadline
  order, so a test can say "40 s pass" and see exactly the timeouts that fire.

>>> clock = FakeClock(start=100.0)
>>> clock.now()
100.0
>>> clock.advance(5)
>>> clock.now()
105.0
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from datetime import UTC, datetime
from typing import Protocol, runtime_checkable


@runtime_checkable
class Clock(Protocol):
    """What components may ask of time."""

    def now(self) -> float:
        """Seconds since the Unix epoch (wall time: stored in timestamps)."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards (for intervals)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of this clock's time."""
        ...


class RealClock:
    """The machine's clock."""

    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class FakeClock:
    """A clock that moves only when told to; deterministic for tests and replays."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = float(start)
        self._start = float(start)
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def now(self) -> float:
        return self._now

    def monotonic(self) -> float:
        return self._now - self._start

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now + seconds, next(self._seq), fut))
        await fut

    def advance(self, seconds: float) -> None:
        """Move time forward, waking every sleeper whose deadline has come."""
        if seconds < 0:
            raise ValueError(f"time cannot go backwards (advance by {seconds})")
        self._now += seconds
        while self._sleepers and self._sleepers[0][0] <= self._now:
            _, _, fut = heapq.heappop(self._sleepers)
            if not fut.done():
                fut.set_result(None)

    def next_deadline(self) -> float | None:
        """The earliest pending sleeper's deadline, if any (lets tests jump to it)."""
        while self._sleepers and self._sleepers[0][2].done():
            heapq.heappop(self._sleepers)
        return self._sleepers[0][0] if self._sleepers else None


def rfc3339(ts: float) -> str:
    """Kubernetes' timestamp format (second precision, UTC, ``Z``).

    >>> rfc3339(0)
    '1970-01-01T00:00:00Z'
    """
    return datetime.fromtimestamp(int(ts), tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(text: str) -> float:
    """Inverse of :func:`rfc3339`; accepts fractional seconds and numeric offsets.

    >>> parse_rfc3339('1970-01-01T00:00:10Z')
    10.0
    """
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()
