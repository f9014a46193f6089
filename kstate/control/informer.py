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

>>> # informer = Informer(client, Pod, clock=RealClock())
>>> # informer.add_handler(lambda kind, old, new: queue.add(key_of(new or old)))
>>> # asyncio.create_task(informer.run()); await informer.synced()
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator
from typing import Generic, Literal, TypeVar

from kstate.api.client import ApiClient
from kstate.api.meta import KubeObject
from kstate.clock import Clock, RealClock
from kstate.errors import Compacted, KstateError

K = TypeVar("K", bound=KubeObject)
EventType = Literal["ADDED", "MODIFIED", "DELETED"]
Handler = Callable[[EventType, "KubeObject | None", "KubeObject | None"], None]

log = logging.getLogger(__name__)


def object_key(obj: KubeObject) -> str:
    """Work-queue and cache key: ``namespace/name`` (``name`` when cluster-scoped)."""
    meta = obj.metadata
    return f"{meta.namespace}/{meta.name}" if meta.namespace else meta.name


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
                del self.cache[key]
                self._emit("DELETED", old, None)
        for key, obj in fresh.items():
            previous = self.cache.get(key)
            self.cache[key] = obj
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
                        del self.cache[key]
                        self._emit("DELETED", old, None)
                else:
                    self.cache[key] = obj
                    self._emit("ADDED" if old is None else "MODIFIED", old, obj)

    async def _resync_loop(self) -> None:
        assert self.resync is not None
        while not self._stopped:
            await self.clock.sleep(self.resync)
            for obj in list(self.cache.values()):
                self._emit("MODIFIED", obj, obj)

    def _emit(self, event_type: EventType, old: KubeObject | None,
              new: KubeObject | None) -> None:
        for handler in self._handlers:
            handler(event_type, old, new)


__all__ = ["EventType", "Handler", "Informer", "object_key"]
