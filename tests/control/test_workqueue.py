"""Work queue semantics: de-duplication, one worker per key, retries, delays."""

from __future__ import annotations

import asyncio

from kstate.clock import FakeClock
from kstate.control.workqueue import WorkQueue


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def test_dedup_and_fifo() -> None:
    async def go() -> list[str]:
        q = WorkQueue()
        for k in ("a", "b", "a", "c", "b"):
            q.add(k)
        out = []
        while len(q):
            k = await q.get()
            out.append(k)
            q.done(k)
        return out
    assert run(go()) == ["a", "b", "c"]


def test_a_key_added_while_processing_is_synced_again_after_done() -> None:
    async def go() -> list[str]:
        q = WorkQueue()
        q.add("a")
        k = await q.get()
        q.add("a")  # changed while being processed
        assert len(q) == 0  # not handed to a second worker
        q.done(k)
        return [await q.get()]
    assert run(go()) == ["a"]


def test_rate_limited_retry_backs_off_and_forget_resets() -> None:
    async def go() -> tuple[int, int]:
        clock = FakeClock()
        q = WorkQueue(clock, base_delay=1.0, max_delay=8.0)
        for _ in range(5):
            q.add_rate_limited("a")
        retries = q.retries("a")
        q.forget("a")
        return retries, q.retries("a")
    assert run(go()) == (5, 0)


def test_add_after_waits_for_the_clock() -> None:
    async def go() -> str:
        clock = FakeClock()
        q = WorkQueue(clock)
        q.add_after("late", 10)
        q.add_after("early", 5)
        await asyncio.sleep(0)
        clock.advance(5)
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        first = await asyncio.wait_for(q.get(), 1)
        assert len(q) == 0
        clock.advance(5)
        for _ in range(3):
            await asyncio.sleep(0)
        second = await asyncio.wait_for(q.get(), 1)
        return first + "," + second
    assert run(go()) == "early,late"
