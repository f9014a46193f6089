"""Informers: a local cache of one kind, kept current by list + watch.

Where it sits: the engine side of ``kstate/control`` (and used by the node agent and the
proxy): API server -> **informer** -> handlers -> work queues -> reconcilers. Handlers
only enqueue keys (level-triggered); reconcilers read the cache, never the event.

The cache is derived, never authoritative: it starts from a list, follows the watch from
the list's resourceVersion, and when the watch's revision has been compacted (410) it
relists and reports the difference as ordinary ADDED / MODIFIED / DELETED events. A
periodic resync re-announces every cached object so a handler that dropped a key sees it
again. ``revision`` is the store revision the cache reflects — the stateful tests check
the cache equals the store at that revision.

Indexes (client-go's ``Indexer``): ``add_index(name, fn)`` keeps the cached objects
grouped by ``fn(obj)``, updated with the cache itself, so a reader that needs one group
(the pods one controller owns) reads that group instead of filtering every object.

>>> # informer = Informer(client, Pod, clock=RealClock())
>>> # informer.add_handler(lambda kind, old, new: queue.add(key_of(new or old)))
>>> # asyncio.create_task(informer.run()); await informer.synced()
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import logging
from collections.abc import Callable, Hashable, Iterator
from typing import Generic, Literal, TypeVar

from kstate.api.client import ApiClient
from kstate.api.meta import KubeObject
from kstate.clock import Clock, RealClock
from kstate.errors import Compacted, KstateError

K = TypeVar("K", bound=KubeObject)
EventType = Literal["ADDED", "MODIFIED", "DELETED"]
Handler = Callable[[EventType, "KubeObject | None", "KubeObject | None"], None]
#: An index's key function: the one group an object belongs to.
IndexFunc = Callable[[K], Hashable]

log = logging.getLogger(__name__)


def object_key(obj: KubeObject) -> str:
    """Work-queue and cache key: ``namespace/name`` (``name`` when cluster-scoped)."""
    meta = obj.metadata
    return f"{meta.namespace}/{meta.name}" if meta.namespace else meta.name


class _Index(Generic[K]):
    """One index: group value -> {cache key: object}, each group kept in cache order."""

    def __init__(self, fn: IndexFunc[K]) -> None:
        self.fn = fn
        self.groups: dict[Hashable, dict[str, K]] = {}
        #: groups an object joined out of cache order (it changed group): sorted when read
        self.unordered: set[Hashable] = set()

    def join(self, value: Hashable, key: str, obj: K, position: dict[str, int]) -> None:
        group = self.groups.setdefault(value, {})
        if key not in group and group and position[next(reversed(group))] > position[key]:
            self.unordered.add(value)
        group[key] = obj  # an update in place keeps its place

    def leave(self, value: Hashable, key: str) -> None:
        group = self.groups.get(value)
        if group is not None:
            group.pop(key, None)
            if not group:  # an emptied group costs nothing (RCs come and go)
                del self.groups[value]
                self.unordered.discard(value)

    def ordered(self, value: Hashable, position: dict[str, int]) -> dict[str, K] | None:
        group = self.groups.get(value)
        if group is not None and value in self.unordered:
            self.unordered.discard(value)
            group = self.groups[value] = dict(
                sorted(group.items(), key=lambda item: position[item[0]]))
        return group


class Informer(Generic[K]):
    """List + watch one kind (optionally one namespace / selector) into a cache."""

    def __init__(
        self,
        client: ApiClient,
        kind: type[K],
        *,
        namespace: str = "",
        label_selector: str = "",
        field_selector: str = "",
        resync: float | None = None,
        clock: Clock | None = None,
        retry_delay: float = 1.0,
    ) -> None:
        self.client = client
        self.kind = kind
        self.namespace = namespace
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.resync = resync
        self.clock = clock or RealClock()
        self.retry_delay = retry_delay
        self.cache: dict[str, K] = {}
        self.revision = ""
        self._indexes: dict[str, _Index[K]] = {}
        #: cache key -> when it entered the cache (kept only while there is an index): the
        #: cache's own order, in which ``by_index`` answers — as ``list()`` would, filtered.
        self._position: dict[str, int] = {}
        self._entered = 0
        self._handlers: list[Handler] = []
        self._synced = asyncio.Event()
        self._stopped = False

    # ------------------------------------------------------------------ reads

    def get(self, key: str) -> K | None:
        return self.cache.get(key)

    def list(self) -> list[K]:
        return list(self.cache.values())

    def __iter__(self) -> Iterator[K]:
        return iter(list(self.cache.values()))

    def add_index(self, name: str, fn: IndexFunc[K]) -> None:
        """Keep the cache grouped by ``fn(obj)`` under ``name`` (built now, then kept)."""
        if name in self._indexes:
            raise ValueError(f"index {name!r} already exists")
        if not self._indexes:
            for key in self.cache:
                self._entered += 1
                self._position[key] = self._entered
        index = self._indexes[name] = _Index(fn)
        for key, obj in self.cache.items():
            index.join(fn(obj), key, obj, self._position)

    def by_index(self, name: str, *values: Hashable) -> builtins.list[K]:
        """The cached objects in the groups ``values`` of index ``name``, in the cache's
        order (the order ``list()`` gives them). O(size of those groups), not O(cache)."""
        index = self._indexes[name]
        chosen = [group for group in (index.ordered(value, self._position)
                                      for value in dict.fromkeys(values)) if group]
        if len(chosen) == 1:
            return list(chosen[0].values())
        position = self._position
        # Each group is in cache order, so this sort merges sorted runs: linear.
        ordered = sorted((position[key], obj) for group in chosen for key, obj in group.items())
        return [obj for _, obj in ordered]

    def add_handler(self, handler: Handler) -> None:
        """``handler(type, old, new)`` runs for every change; it must only enqueue."""
        self._handlers.append(handler)

    async def synced(self) -> None:
        """Wait until the first list is in the cache."""
        await self._synced.wait()

    @property
    def has_synced(self) -> bool:
        return self._synced.is_set()

    def stop(self) -> None:
        self._stopped = True

    # ------------------------------------------------------------------ loop

    async def run(self) -> None:
        """List, then watch until stopped; relist on 410, retry on transient errors."""
        resync_task = asyncio.create_task(self._resync_loop()) if self.resync else None
        listed = False
        try:
            while not self._stopped:
                try:
                    if not listed:
                        await self._list()
                        listed = True
                    await self._watch()  # returns when the server ends the stream
                except Compacted:
                    log.info("%s watch expired at %s; relisting", self.kind.__name__,
                             self.revision)
                    listed = False
                except (TimeoutError, KstateError, OSError) as err:
                    log.warning("%s informer: %s; retrying", self.kind.__name__, err)
                    await self.clock.sleep(self.retry_delay)
        finally:
            if resync_task is not None:
                resync_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await resync_task

    async def _list(self) -> None:
        listing = await self.client.list(self.kind, self.namespace,
                                         label_selector=self.label_selector,
                                         field_selector=self.field_selector)
        fresh = {object_key(o): o for o in listing.items}
        for key, old in list(self.cache.items()):
            if key not in fresh:
                self._remove(key, old)
                self._emit("DELETED", old, None)
        for key, obj in fresh.items():
            previous = self.cache.get(key)
            self._put(key, obj, previous)
            if previous is None:
                self._emit("ADDED", None, obj)
            elif previous.metadata.resource_version != obj.metadata.resource_version:
                self._emit("MODIFIED", previous, obj)
        self.revision = listing.resource_version
        self._synced.set()

    async def _watch(self) -> None:
        async with self.client.watch(
            self.kind, self.namespace, resource_version=self.revision,
            label_selector=self.label_selector, field_selector=self.field_selector,
            allow_bookmarks=True,
        ) as stream:
            async for event_type, obj in stream:
                if self._stopped:
                    return
                self.revision = obj.metadata.resource_version or self.revision
                if event_type == "BOOKMARK":
                    continue
                key = object_key(obj)
                old = self.cache.get(key)
                if event_type == "DELETED":
                    if old is not None:
                        self._remove(key, old)
                        self._emit("DELETED", old, None)
                else:
                    self._put(key, obj, old)
                    self._emit("ADDED" if old is None else "MODIFIED", old, obj)

    async def _resync_loop(self) -> None:
        assert self.resync is not None
        while not self._stopped:
            await self.clock.sleep(self.resync)
            for obj in list(self.cache.values()):
                self._emit("MODIFIED", obj, obj)

    # ------------------------------------------------------------------ cache writes

    def _put(self, key: str, obj: K, old: K | None) -> None:
        """Store ``obj`` (replacing ``old``), keeping every index current."""
        self.cache[key] = obj
        if not self._indexes:
            return
        if old is None:
            self._entered += 1
            self._position[key] = self._entered
        for index in self._indexes.values():
            value = index.fn(obj)
            if old is not None:
                was = index.fn(old)
                if was != value:
                    index.leave(was, key)
            index.join(value, key, obj, self._position)

    def _remove(self, key: str, old: K) -> None:
        del self.cache[key]
        if not self._indexes:
            return
        for index in self._indexes.values():
            index.leave(index.fn(old), key)
        self._position.pop(key, None)  # tolerant of a cache edited by hand (tests)

    def _emit(self, event_type: EventType, old: KubeObject | None,
              new: KubeObject | None) -> None:
        for handler in self._handlers:
            handler(event_type, old, new)


__all__ = ["EventType", "Handler", "IndexFunc", "Informer", "object_key"]
