"""Watch semantics: initial ADDED events, resume from a resourceVersion, 410 after
compaction, selectors (objects leaving a selection arrive as DELETED), bookmarks and
timeouts on the injected clock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from kstate.api import with_labels
from kstate.api.server.core import WatchEvent, WatchStream
from kstate.api.server.selectors import selection
from kstate.clock import FakeClock
from kstate.errors import Compacted
from tests.api.server.conftest import START, running_core
from tests.api.server.helpers import POD, pod


async def take(stream: WatchStream, n: int) -> list[WatchEvent]:
    events: list[WatchEvent] = []
    iterator: AsyncIterator[WatchEvent] = aiter(stream)
    while len(events) < n:
        events.append(await asyncio.wait_for(anext(iterator), 5))
    return events


def summary(events: list[WatchEvent]) -> list[tuple[str, str]]:
    return [(e.type, e.object.metadata.name if e.object else str(e.error)) for e in events]


async def test_initial_state_then_changes() -> None:
    async with running_core() as core:
        await core.create(pod("a"))
        await core.create(pod("b"))
        async with core.watch(POD, "default") as stream:
            it = aiter(stream)
            first = [await anext(it), await anext(it)]
            assert summary(first) == [("ADDED", "a"), ("ADDED", "b")]
            a = await core.get(POD, "default", "a")
            await core.update(with_labels(a, x="1"))
            await core.delete(POD, "default", "b")
            nxt = [await asyncio.wait_for(anext(it), 5) for _ in range(2)]
            assert summary(nxt) == [("MODIFIED", "a"), ("DELETED", "b")]
            deleted = nxt[1].object
            assert deleted is not None
            assert int(deleted.metadata.resource_version) == await core.store.revision()


async def test_resume_from_resource_version() -> None:
    async with running_core() as core:
        first = await core.create(pod("a"))
        await core.create(pod("b"))
        stream = core.watch(POD, "default", resource_version=first.metadata.resource_version)
        events = await take(stream, 1)
        assert summary(events) == [("ADDED", "b")]
        await stream.close()


async def test_compacted_history_is_an_error_event() -> None:
    async with running_core() as core:
        old = await core.create(pod("a"))
        for i in range(3):
            await core.create(pod(f"p{i}"))
        await core.store.compact(await core.store.revision())
        stream = core.watch(POD, "default", resource_version=old.metadata.resource_version)
        events = await take(stream, 1)
        assert events[0].type == "ERROR"
        assert isinstance(events[0].error, Compacted) and events[0].error.code == 410


async def test_selection_moves_objects_in_and_out() -> None:
    async with running_core() as core:
        a = await core.create(pod("a", labels={"app": "web"}))
        other = await core.create(pod("b", labels={"app": "db"}))
        stream = core.watch(POD, "default", selection=selection("Pod", "app=web"))
        it = aiter(stream)
        assert summary([await anext(it)]) == [("ADDED", "a")]
        await core.update(with_labels(a, app="db"))          # leaves the selection
        await core.update(with_labels(other, app="web"))     # enters it
        events = [await asyncio.wait_for(anext(it), 5) for _ in range(2)]
        assert summary(events) == [("DELETED", "a"), ("ADDED", "b")]
        await stream.close()


async def test_field_selector_on_one_object() -> None:
    async with running_core() as core:
        stream = core.watch(POD, "default",
                            selection=selection("Pod", "", "metadata.name=target"))
        await stream.start()
        await core.create(pod("noise"))
        await core.create(pod("target"))
        events = await take(stream, 1)
        assert summary(events) == [("ADDED", "target")]
        await stream.close()


async def until_sleeping(clock: FakeClock, deadline: float) -> None:
    """Let the loop run until something sleeps until ``deadline`` on the fake clock."""
    for _ in range(1000):
        if clock.next_deadline() == deadline:
            return
        await asyncio.sleep(0)
    raise AssertionError(f"nothing sleeps until {deadline}")


async def test_bookmarks_and_timeout_follow_the_clock() -> None:
    clock = FakeClock(START)
    async with running_core(clock=clock) as core:
        created = await core.create(pod("a"))
        stream = core.watch(POD, "default", resource_version=created.metadata.resource_version,
                            allow_bookmarks=True, bookmark_interval=10, timeout_seconds=25)
        await stream.start()
        it = aiter(stream)
        pending = asyncio.ensure_future(anext(it))
        await until_sleeping(clock, START + 10)
        assert not pending.done()
        clock.advance(10)
        event = await asyncio.wait_for(pending, 5)
        assert event.type == "BOOKMARK"
        assert event.object is not None
        assert event.object.metadata.resource_version == created.metadata.resource_version
        second = asyncio.ensure_future(anext(it))
        await until_sleeping(clock, START + 20)
        clock.advance(10)
        assert (await asyncio.wait_for(second, 5)).type == "BOOKMARK"
        ended = asyncio.ensure_future(anext(it))
        await until_sleeping(clock, START + 25)
        clock.advance(5)
        try:
            await asyncio.wait_for(ended, 5)
            raise AssertionError("the stream should have ended")
        except StopAsyncIteration:
            pass


async def test_send_initial_events_ends_with_a_bookmark() -> None:
    async with running_core() as core:
        await core.create(pod("a"))
        stream = core.watch(POD, "default", resource_version="", allow_bookmarks=True,
                            send_initial_events=True)
        events = await take(stream, 2)
        assert [e.type for e in events] == ["ADDED", "BOOKMARK"]
        assert events[1].object is not None
        assert events[1].object.metadata.annotations["k8s.io/initial-events-end"] == "true"
        await stream.close()
