"""Work queues: keys waiting for a sync, each processed by one worker at a time.

Where it sits: engine side of ``kstate/control`` (also the node agent's per-pod
workers): informer handlers ``add`` keys; workers ``get`` a key, sync it, then ``done``
it and either ``forget`` it (success) or ``add_rate_limited`` it (failure, e.g. a 409).

Semantics of client-go's rate-limited queue:

* **de-duplication** — a key waiting in the queue is there once, however often added;
* **one worker per key** — a key being processed is not handed out again; if it is
  added meanwhile it is marked dirty and re-queued when ``done``, so the latest change
  always gets a sync (latest update wins);
* **rate-limited retry** — per-key exponential back-off (5 ms doubling, capped),
  reset by ``forget``;
* **delayed adds** — ``add_after`` for timers (grace periods, back-offs), on the
  injected clock.

>>> import asyncio
>>> async def demo():
...     q = WorkQueue()
...     q.add("default/web"); q.add("default/web")
...     key = await q.get()
...     q.done(key)
...     return key, len(q)
>>> asyncio.run(demo())
('default/web', 0)
"""

from __future__ import annotations

import asyncio
import heapq
import itertools

from kstate.clock import Clock, RealClock


class WorkQueue:
    def __init__(self, clock: Clock | None = None, *, base_delay: float = 0.005,
                 max_delay: float = 60.0) -> None:
        self.clock = clock or RealClock()
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._queue: list[str] = []
        self._queued: set[str] = set()
        self._processing: set[str] = set()
        self._dirty: set[str] = set()
        self._failures: dict[str, int] = {}
        self._waiters: list[tuple[float, int, str]] = []  # (due, seq, key)
        self._seq = itertools.count()
        self._ready = asyncio.Event()
        self._timer: asyncio.Task[None] | None = None
        self._shutdown = False

    def __len__(self) -> int:
        return len(self._queue)

    # ------------------------------------------------------------------ adding

    def add(self, key: str) -> None:
        if self._shutdown:
            return
        if key in self._processing:
            self._dirty.add(key)
            return
        if key in self._queued:
            return
        self._queued.add(key)
        self._queue.append(key)
        self._ready.set()

    def add_after(self, key: str, delay: float) -> None:
        """Add ``key`` once ``delay`` seconds of the queue's clock have passed."""
        if delay <= 0:
            self.add(key)
            return
        due = self.clock.monotonic() + delay
        earliest = self._waiters[0][0] if self._waiters else None
        heapq.heappush(self._waiters, (due, next(self._seq), key))
        if earliest is not None and due < earliest and self._timer is not None:
            self._timer.cancel()  # the timer sleeps until a later deadline: re-arm
            self._timer = None
        self._arm_timer()

    def add_rate_limited(self, key: str) -> None:
        """Retry ``key`` after its exponential back-off (a failed sync)."""
        failures = self._failures.get(key, 0)
        self._failures[key] = failures + 1
        self.add_after(key, min(self.max_delay, self.base_delay * 2**failures))

    def forget(self, key: str) -> None:
        """The key synced successfully: its back-off starts over."""
        self._failures.pop(key, None)

    def retries(self, key: str) -> int:
        return self._failures.get(key, 0)

    # ------------------------------------------------------------------ taking

    async def get(self) -> str:
        """The next key to process (waits while the queue is empty)."""
        while not self._queue:
            if self._shutdown:
                raise asyncio.CancelledError("work queue shut down")
            self._ready.clear()
            await self._ready.wait()
        key = self._queue.pop(0)
        self._queued.discard(key)
        self._processing.add(key)
        return key

    def done(self, key: str) -> None:
        """Processing of ``key`` finished; a change that arrived meanwhile re-queues it."""
        self._processing.discard(key)
        if key in self._dirty:
            self._dirty.discard(key)
            self.add(key)

    def shutdown(self) -> None:
        self._shutdown = True
        self._ready.set()
        if self._timer is not None:
            self._timer.cancel()

    # ------------------------------------------------------------------ timers

    def _arm_timer(self) -> None:
        if self._timer is None or self._timer.done():
            self._timer = asyncio.get_running_loop().create_task(self._fire_due())

    async def _fire_due(self) -> None:
        while self._waiters and not self._shutdown:
            due = self._waiters[0][0]
            wait = due - self.clock.monotonic()
            # A microsecond of slack: a fake clock's absolute time (1.7e9 s) cannot hold
            # a sub-microsecond remainder, which would otherwise be slept on forever.
            if wait > 1e-6:
                await self.clock.sleep(wait)
                continue
            _, _, key = heapq.heappop(self._waiters)
            self.add(key)


__all__ = ["WorkQueue"]
