"""In-process cluster plumbing for control-layer integration tests.

An ``ApiCore`` over the memory store, a ``LocalClient``, a ``FakeClock`` — and
``Observer``, which waits for a condition on the store by following a watch (no sleeps).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Callable
from typing import Any, Generic, Protocol, TypeVar

from kstate.api.client import LocalClient
from kstate.api.meta import KubeObject
from kstate.api.objects import Pod
from kstate.api.server.core import ApiCore
from kstate.clock import FakeClock
from kstate.control.informer import Informer
from kstate.store import Backend, open_store

K = TypeVar("K", bound=KubeObject)
START = 1_700_000_000.0


class Observer(Generic[K]):
    """A test's own informer: ``await until(predicate)`` re-checks on every event."""

    def __init__(self, client: LocalClient, kind: type[K], **options: Any) -> None:
        self.informer: Informer[K] = Informer(client, kind, **options)
        self._changed = asyncio.Event()
        self.informer.add_handler(lambda *_: self._changed.set())
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> Observer[K]:
        self._task = asyncio.ensure_future(self.informer.run())
        await self.informer.synced()
        return self

    async def stop(self) -> None:
        self.informer.stop()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def items(self) -> list[K]:
        return self.informer.list()

    async def until(self, predicate: Callable[[list[K]], bool], timeout: float = 10.0) -> list[K]:
        async def wait() -> list[K]:
            while True:
                self._changed.clear()
                items = self.items()
                if predicate(items):
                    return items
                await self._changed.wait()
        try:
            return await asyncio.wait_for(wait(), timeout)
        except TimeoutError:
            raise AssertionError(f"condition not met within {timeout}s; "
                                 f"last seen: {[o.metadata.name for o in self.items()]}") from None


@contextlib.asynccontextmanager
async def cluster(store: Backend | None = None
                  ) -> AsyncIterator[tuple[ApiCore, LocalClient, FakeClock]]:
    """A started core and its client over ``store`` (default: a fresh memory store)."""
    clock = FakeClock(START)
    store = store or open_store("memory://")
    core = ApiCore(store, clock, rng=random.Random(11))
    await core.start()
    try:
        yield core, LocalClient(core), clock
    finally:
        await core.close()
        await store.close()


class Component(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...


@contextlib.asynccontextmanager
async def running(component: Component, client: LocalClient) -> AsyncIterator[Observer[Pod]]:
    """``component`` (a scheduler, a controller manager) started, with an observer of the
    pods; both stopped on the way out."""
    await component.start()
    pods = await Observer(client, Pod).start()
    try:
        yield pods
    finally:
        await pods.stop()
        await component.stop()


async def settle_loop(rounds: int = 20) -> None:
    """Let every ready task run (no wall-clock waiting): a few event-loop turns."""
    for _ in range(rounds):
        await asyncio.sleep(0)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


__all__ = ["START", "Observer", "cluster", "run", "running", "settle_loop"]

