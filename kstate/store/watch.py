"""Watch streams: the bounded event buffer every backend uses, and local fan-out.

Where it sits: between a backend's commits and the informers that follow them
(store -> watch -> informers -> work queues). A watch is how every cache above the store
stays derived from it.

Why it exists: the "no gaps, no duplicates, bounded memory" promise is subtle, so it is
implemented once. :class:`EventBuffer` is the single bounded queue behind every
:class:`Watch` (memory, SQLite and etcd alike): when a consumer falls ``capacity`` events
behind, the watch fails with ``Compacted`` after handing out what it already holds, and
the consumer must relist — the store never buffers without bound on a slow reader's
behalf. :class:`LocalHub` is the in-process fan-out shared by the memory and SQLite
backends: it replays history from the backend's log page by page, then switches to live
events at exactly the right revision.
"""

from __future__ import annotations

import abc
import asyncio
import collections
from collections.abc import Sequence
from types import TracebackType
from typing import Protocol

from kstate.errors import Compacted, FutureRevision, StoreError
from kstate.store.base import Event

#: Events a watcher may lag before it gets ``Compacted``. Well above one SQLite group
#: commit (up to 1,024 writes, all published at once): at 1,024, every in-process watcher
#: of a busy daemon overflowed on the same bursts and relisted together — a relist storm
#: that cost memory and minutes at 20,000-30,000 pods (docs/benchmarks/pods.md). Events
#: are shared by every watcher, so a slot costs a reference, not a copy.
DEFAULT_WATCH_BUFFER = 16_384
HISTORY_PAGE = 256


class EventBuffer:
    """A bounded FIFO of events with one terminal outcome (end or error).

    Producers call :meth:`put` (never blocks; ``False`` means the buffer is finished and
    the producer should stop), consumers await :meth:`get`. Overflow turns into a
    ``Compacted`` error delivered after the events already buffered, so what a consumer
    did see is still gap-free.
    """

    def __init__(self, capacity: int = DEFAULT_WATCH_BUFFER) -> None:
        if capacity < 1:
            raise ValueError(f"watch buffer capacity must be >= 1, not {capacity}")
        self.capacity = capacity
        self._events: collections.deque[Event] = collections.deque()
        self._error: StoreError | None = None
        self._ended = False
        self._wakeup: asyncio.Future[None] | None = None

    @property
    def finished(self) -> bool:
        return self._ended or self._error is not None

    def put(self, event: Event) -> bool:
        if self.finished:
            return False
        if len(self._events) >= self.capacity:
            self.fail(
                Compacted(
                    f"watcher fell {self.capacity} events behind at revision {event.revision};"
                    " relist and watch again",
                    key=event.kv.key,
                )
            )
            return False
        self._events.append(event)
        self._wake()
        return True

    def fail(self, error: StoreError) -> None:
        if not self.finished:
            self._error = error
            self._wake()

    def end(self) -> None:
        if not self.finished:
            self._ended = True
            self._wake()

    def ready(self) -> bool:
        """Whether :meth:`get` would answer at once (an event, the end or the error)."""
        return bool(self._events) or self.finished

    async def get(self) -> Event:
        while True:
            if self._events:
                return self._events.popleft()
            if self._error is not None:
                raise self._error
            if self._ended:
                raise StopAsyncIteration
            self._wakeup = asyncio.get_running_loop().create_future()
            try:
                await self._wakeup
            finally:
                self._wakeup = None

    def _wake(self) -> None:
        if self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)


class Watch(abc.ABC):
    """An ordered stream of :class:`Event`; an async iterator and async context manager.

    Setup (revision checks, registration) happens in :meth:`start`, which ``async with``
    and the first ``__anext__`` call; closing ends iteration.
    """

    def __init__(self, prefix: str, start_revision: int | None, capacity: int) -> None:
        self.prefix = prefix
        self.start_revision = start_revision
        self._buffer = EventBuffer(capacity)
        self._started = False

    async def start(self) -> Watch:
        if not self._started:
            self._started = True
            try:
                await self._start()
            except BaseException:
                self._buffer.end()
                raise
        return self

    async def close(self) -> None:
        self._buffer.end()
        await self._stop()

    def __aiter__(self) -> Watch:
        return self

    async def __anext__(self) -> Event:
        await self.start()
        return await self._next()

    async def __aenter__(self) -> Watch:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def _next(self) -> Event:
        return await self._buffer.get()

    def ready(self) -> bool:
        """Whether the next ``__anext__`` answers without waiting: lets a consumer take
        buffered events directly instead of racing a task against its timers."""
        return self._started and self._buffer.ready()

    @abc.abstractmethod
    async def _start(self) -> None:
        """Check the start revision and begin receiving events."""

    @abc.abstractmethod
    async def _stop(self) -> None:
        """Stop receiving events (idempotent)."""


# --------------------------------------------------------------------------- local fan-out


class LocalLog(Protocol):
    """What :class:`LocalHub` needs from an in-process backend's history."""

    def compacted_revision(self) -> int:
        """Oldest revision still readable; watches must start at or after it."""
        ...

    def committed_revision(self) -> int:
        """Newest durable revision (may briefly run ahead of what was published)."""
        ...

    async def history(self, prefix: str, start: int, until: int, limit: int) -> Sequence[Event]:
        """Events under ``prefix`` with ``start <= revision <= until``, oldest first,
        at most ``limit``; ``Compacted`` if ``start`` is no longer in the log."""
        ...


class LocalHub:
    """Fans committed events out to in-process watches.

    The backend calls :meth:`publish` once per commit, in revision order, on the event
    loop. ``published`` is the newest revision every registered watch has been offered;
    a new watch replays ``[start, published]`` from the log and takes everything after
    live, so no event is missed or seen twice however the two interleave.
    """

    def __init__(self, log: LocalLog, published: int, capacity: int) -> None:
        self._log = log
        self.published = published
        self.capacity = capacity
        # Insertion-ordered (a dict, not a set): watchers are offered each event, and
        # so woken, in the order they started — not in an order set by object ids,
        # which differ from run to run and made the engine's schedules irreproducible.
        self._watches: dict[LocalWatch, None] = {}

    def watch(self, prefix: str, start_revision: int | None) -> LocalWatch:
        return LocalWatch(self, prefix, start_revision)

    def publish(self, events: Sequence[Event]) -> None:
        for event in events:
            for watch in tuple(self._watches):
                if not watch.offer(event):
                    self._watches.pop(watch, None)
        if events:
            self.published = max(self.published, events[-1].revision)

    def close(self) -> None:
        for watch in self._watches:
            watch._buffer.end()
        self._watches.clear()


class LocalWatch(Watch):
    """A watch served from a local log (history) and :class:`LocalHub` (live)."""

    def __init__(self, hub: LocalHub, prefix: str, start_revision: int | None) -> None:
        super().__init__(prefix, start_revision, hub.capacity)
        self._hub = hub
        self._cursor = 0  # next history revision to read; > _until when replay is done
        self._until = 0  # newest revision that comes from history rather than live
        self._live_from = 0  # oldest revision accepted from the hub
        self._page: collections.deque[Event] = collections.deque()

    async def _start(self) -> None:
        log, hub = self._hub._log, self._hub
        committed = log.committed_revision()
        start = self.start_revision if self.start_revision is not None else committed + 1
        compacted = log.compacted_revision()
        if start < compacted:
            raise Compacted(
                f"watch from revision {start}: history before {compacted} was compacted;"
                " relist and watch from the list's revision",
            )
        if start > committed + 1:
            raise FutureRevision(
                f"watch from revision {start}: the store is only at revision {committed}"
            )
        self.start_revision = start
        self._cursor, self._until = start, hub.published
        self._live_from = max(start, hub.published + 1)
        hub._watches[self] = None

    def offer(self, event: Event) -> bool:
        """Take a live event; ``False`` once this watch wants no more."""
        if event.revision < self._live_from or not event.kv.key.startswith(self.prefix):
            return not self._buffer.finished
        return self._buffer.put(event)

    async def _next(self) -> Event:
        while not self._page and self._cursor <= self._until and not self._buffer.finished:
            try:
                page = await self._hub._log.history(
                    self.prefix, self._cursor, self._until, HISTORY_PAGE
                )
            except StoreError as exc:  # compacted under a slow replay: the watch is over
                self._buffer.fail(exc)
                self._hub._watches.pop(self, None)
                raise
            if not page:
                self._cursor = self._until + 1
                break
            self._page.extend(page)
            self._cursor = page[-1].revision + 1
        if self._page and not self._buffer.finished:
            return self._page.popleft()
        return await self._buffer.get()

    def ready(self) -> bool:
        if self._page:
            return True
        return self._started and self._cursor > self._until and self._buffer.ready()

    async def _stop(self) -> None:
        self._hub._watches.pop(self, None)
        self._page.clear()
