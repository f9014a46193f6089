"""The store contract, run identically against every backend (memory, SQLite, etcd).

If a behaviour matters to the API server or an informer, it is asserted here, so a
backend cannot pass by accident of its implementation. Revisions are compared relative to
each other (never absolute): the etcd under test may be shared with other tests.
"""

from __future__ import annotations

import asyncio

import pytest

from kstate.errors import (
    Compacted,
    Conflict,
    FutureRevision,
    GuardChanged,
    InvalidContinueToken,
    InvalidKey,
    KeyExists,
    NotFound,
    ValueTooLarge,
)
from kstate.store import MAX_VALUE_BYTES, Backend, Event, Guard, KeyValue, Watch, open_store

TIMEOUT = 20.0  # bounds every wait on a watch; never a sleep


async def take(watch: Watch, n: int) -> list[Event]:
    """The next ``n`` events, or fail after ``TIMEOUT``."""

    async def run() -> list[Event]:
        return [await anext(watch) for _ in range(n)]

    return await asyncio.wait_for(run(), TIMEOUT)


# --------------------------------------------------------------------------- writes and reads


async def test_create_get_and_revision_bump(store_url: str, ns: str) -> None:
    async with open_store(store_url) as store:
        before = await store.revision()
        kv = await store.create(ns + "pods/a", b'{"a":1}')
        assert kv == KeyValue(ns + "pods/a", b'{"a":1}', before + 1, before + 1, 1)
        assert await store.revision() == before + 1
        assert await store.get(ns + "pods/a") == kv


async def test_create_existing_key_is_key_exists_and_changes_nothing(
    store_url: str, ns: str
) -> None:
    async with open_store(store_url) as store:
        kv = await store.create(ns + "a", b"1")
        with pytest.raises(KeyExists):
            await store.create(ns + "a", b"2")
        assert await store.revision() == kv.mod_revision
        assert (await store.get(ns + "a")).value == b"1"


async def test_guarded_create_needs_the_guard_unchanged(store_url: str, ns: str) -> None:
    async with open_store(store_url) as store:
        home = await store.create(ns + "namespaces/a", b"active")
        guard = Guard(home.key, home.mod_revision)
        kv = await store.create(ns + "pods/a/1", b"1", guard=guard)  # unchanged: created
        assert kv == KeyValue(ns + "pods/a/1", b"1", home.mod_revision + 1,
                              home.mod_revision + 1, 1)
        with pytest.raises(KeyExists):  # unchanged guard, existing key
            await store.create(ns + "pods/a/1", b"2", guard=guard)
        moved = await store.update(home.key, b"closing", expected_revision=home.mod_revision)
        for key in ("pods/a/2", "pods/a/1"):  # changed guard, whether or not the key exists
            with pytest.raises(GuardChanged) as failed:
                await store.create(ns + key, b"3", guard=guard)
            assert isinstance(failed.value, Conflict)
            assert home.key in str(failed.value) and str(moved.mod_revision) in str(failed.value)
        await store.delete(home.key)
        with pytest.raises(GuardChanged):  # the guard key is gone
            await store.create(ns + "pods/a/3", b"3", guard=Guard(home.key, moved.mod_revision))
        assert await store.revision() == moved.mod_revision + 1  # only the delete wrote
        assert [kv.key for kv in (await store.list(ns + "pods/")).items] == [ns + "pods/a/1"]
        assert (await store.get(ns + "pods/a/1")).value == b"1"


async def test_guarded_create_racing_a_guard_write_never_lands_after_it(
    store_url: str, ns: str
) -> None:
    """Sent together (SQLite: likely one group commit), the create either commits before
    the guard's change or not at all."""
    async with open_store(store_url) as store:
        for i in range(5):
            home = await store.create(ns + f"namespaces/{i}", b"active")
            moved, created = await asyncio.gather(
                store.update(home.key, b"closing", expected_revision=home.mod_revision),
                store.create(ns + f"pods/{i}/x", b"x", guard=Guard(home.key, home.mod_revision)),
                return_exceptions=True,
            )
            assert isinstance(moved, KeyValue)
            if isinstance(created, KeyValue):
                assert created.mod_revision < moved.mod_revision
            else:
                assert isinstance(created, GuardChanged)
                with pytest.raises(NotFound):
                    await store.get(ns + f"pods/{i}/x")


async def test_guard_arguments_are_checked(store_url: str, ns: str) -> None:
    async with open_store(store_url) as store:
        home = await store.create(ns + "namespaces/a", b"active")
        before = await store.revision()
        with pytest.raises(InvalidKey):
            await store.create(ns + "pods/a/1", b"1", guard=Guard("not/a/key", home.mod_revision))
        with pytest.raises(InvalidKey):  # a create's own key is absent, so never its guard
            await store.create(home.key, b"1", guard=Guard(home.key, home.mod_revision))
        with pytest.raises(ValueError):
            await store.create(ns + "pods/a/1", b"1", guard=Guard(home.key, 0))
        assert await store.revision() == before


async def test_get_missing_is_not_found(store_url: str, ns: str) -> None:
    async with open_store(store_url) as store:
        with pytest.raises(NotFound):
            await store.get(ns + "missing")


async def test_update_is_compare_and_swap_on_mod_revision(store_url: str, ns: str) -> None:
    async with open_store(store_url) as store:
        v1 = await store.create(ns + "a", b"1")
        v2 = await store.update(ns + "a", b"2", expected_revision=v1.mod_revision)
        assert (v2.create_revision, v2.mod_revision, v2.version) == (
            v1.create_revision,
            v1.mod_revision + 1,
            2,
        )
        with pytest.raises(Conflict):  # stale: someone else already moved it on
            await store.update(ns + "a", b"3", expected_revision=v1.mod_revision)
        assert await store.get(ns + "a") == v2
        assert await store.revision() == v2.mod_revision  # a failed CAS writes nothing
        v3 = await store.update(ns + "a", b"3")  # no expectation: unconditional
        assert v3.version == 3
        with pytest.raises(NotFound):
            await store.update(ns + "missing", b"x", expected_revision=v3.mod_revision)
        with pytest.raises(NotFound):
            await store.update(ns + "missing", b"x")


async def test_delete_returns_the_deleted_record_and_can_be_cas(store_url: str, ns: str) -> None:
    async with open_store(store_url) as store:
        v1 = await store.create(ns + "a", b"1")
        v2 = await store.update(ns + "a", b"2", expected_revision=v1.mod_revision)
        with pytest.raises(Conflict):
            await store.delete(ns + "a", expected_revision=v1.mod_revision)
        assert await store.delete(ns + "a", expected_revision=v2.mod_revision) == v2
        assert await store.revision() == v2.mod_revision + 1
        with pytest.raises(NotFound):
            await store.get(ns + "a")
        with pytest.raises(NotFound):
            await store.delete(ns + "a")
        again = await store.create(ns + "a", b"new life")  # a recreated key starts over
        assert (again.version, again.create_revision) == (1, again.mod_revision)


# --------------------------------------------------------------------------- list


async def test_list_is_prefix_scoped_and_key_ordered(store_url: str, ns: str) -> None:
    async with open_store(store_url) as store:
        for key in ("pods/b/2", "pods/a/1", "pods/b/1", "podsx/a", "pod"):
            await store.create(ns + key, key.encode())
        result = await store.list(ns + "pods/")
        assert [kv.key for kv in result.items] == [
            ns + "pods/a/1",
            ns + "pods/b/1",
            ns + "pods/b/2",
        ]
        assert result.revision == await store.revision()
        assert result.continue_token is None
        assert [kv.key for kv in (await store.list(ns + "pods/b/")).items] == [
            ns + "pods/b/1",
            ns + "pods/b/2",
        ]
        assert (await store.list(ns + "nothing/")).items == ()


async def test_list_at_a_past_revision_sees_the_past(store_url: str, ns: str) -> None:
    async with open_store(store_url) as store:
        a1 = await store.create(ns + "a", b"1")
        b1 = await store.create(ns + "b", b"1")
        then = b1.mod_revision
        await store.update(ns + "a", b"2", expected_revision=a1.mod_revision)
        await store.delete(ns + "b")
        await store.create(ns + "c", b"1")
        past = await store.list(ns, revision=then)
        assert past.items == (a1, b1)
        assert past.revision == then
        now = await store.list(ns)
        assert [(kv.key, kv.value) for kv in now.items] == [(ns + "a", b"2"), (ns + "c", b"1")]
        with pytest.raises(FutureRevision):
            await store.list(ns, revision=now.revision + 1000)


async def test_pagination_reads_every_page_at_the_first_pages_revision(
    store_url: str, ns: str
) -> None:
    async with open_store(store_url) as store:
        created = [await store.create(f"{ns}k{i:02d}", b"%d" % i) for i in range(7)]
        first = await store.list(ns, limit=3)
        assert [kv.key for kv in first.items] == [kv.key for kv in created[:3]]
        assert first.continue_token
        # Writes between pages must not leak into the listing.
        await store.delete(created[4].key)
        await store.create(ns + "k03a", b"late")
        await store.update(created[5].key, b"changed")
        seen = list(first.items)
        token: str | None = first.continue_token
        while token:
            page = await store.list(ns, limit=3, continue_token=token)
            assert page.revision == first.revision
            seen.extend(page.items)
            token = page.continue_token
        assert seen == created


async def test_continue_tokens_are_checked(store_url: str, ns: str) -> None:
    async with open_store(store_url) as store:
        for i in range(3):
            await store.create(f"{ns}a/{i}", b"x")
        token = (await store.list(ns + "a/", limit=1)).continue_token
        assert token
        for bad in ("garbage!", "eyJ2IjogMX0", token[:-3]):
            with pytest.raises(InvalidContinueToken):
                await store.list(ns + "a/", continue_token=bad)


# --------------------------------------------------------------------------- watch


async def test_watch_replays_history_then_follows_live(store_url: str, ns: str) -> None:
    async with open_store(store_url) as store:
        a1 = await store.create(ns + "pods/a", b"1")
        a2 = await store.update(ns + "pods/a", b"2", expected_revision=a1.mod_revision)
        await store.create(ns + "other/x", b"not watched")
        async with store.watch(ns + "pods/", a1.mod_revision) as watch:
            replay = await take(watch, 2)
            assert replay == [Event("PUT", a1, None), Event("PUT", a2, a1)]
            deleted = await store.delete(ns + "pods/a")
            b = await store.create(ns + "pods/b", b"b")
            live = await take(watch, 2)
        assert live[0].type == "DELETE"
        assert live[0].kv.key == ns + "pods/a"
        assert live[0].kv.mod_revision == b.mod_revision - 1  # the deletion's revision
        assert live[0].prev_kv == deleted
        assert live[1] == Event("PUT", b, None)


async def test_watch_from_now_sees_only_later_changes(store_url: str, ns: str) -> None:
    async with open_store(store_url) as store:
        await store.create(ns + "old", b"old")
        async with store.watch(ns) as watch:
            new = await store.create(ns + "new", b"new")
            assert await take(watch, 1) == [Event("PUT", new, None)]


async def test_watch_from_next_revision_is_allowed_beyond_is_future(
    store_url: str, ns: str
) -> None:
    async with open_store(store_url) as store:
        current = await store.revision()
        with pytest.raises(FutureRevision):
            async with store.watch(ns, current + 2):
                pass
        async with store.watch(ns, current + 1) as watch:
            kv = await store.create(ns + "next", b"x")
            assert (await take(watch, 1))[0].kv == kv


async def test_concurrent_writers_give_gap_free_ordered_watch(store_url: str, ns: str) -> None:
    writers, per_writer = 8, 12
    async with open_store(store_url) as store:
        start = await store.revision() + 1
        async with store.watch(ns, start) as watch:

            async def writer(w: int) -> list[int]:
                kv = await store.create(f"{ns}w{w}", b"0")
                revisions = [kv.mod_revision]
                for i in range(per_writer - 1):
                    kv = await store.update(kv.key, b"%d" % i, expected_revision=kv.mod_revision)
                    revisions.append(kv.mod_revision)
                return revisions

            acked = [r for rs in await asyncio.gather(*map(writer, range(writers))) for r in rs]
            events = await take(watch, writers * per_writer)
        seen = [e.revision for e in events]
        assert seen == sorted(acked)  # every acknowledged write, in order, once
        assert len(set(seen)) == len(seen)
        for event in events:  # each writer's chain links up through prev_kv
            if event.kv.version > 1:
                assert event.prev_kv is not None
                assert event.prev_kv.version == event.kv.version - 1


async def test_long_replay_meets_live_writes_without_gap_or_duplicate(
    store_url: str, ns: str
) -> None:
    # Longer than a replay page (local backends) and racing live writes: the hand-over
    # from history to live events is where a gap or a duplicate would hide.
    async with open_store(store_url) as store:
        first = await store.create(f"{ns}k/0000", b"x")
        for i in range(1, 600):
            await store.create(f"{ns}k/{i:04d}", b"x")
        async with store.watch(ns + "k/", first.mod_revision) as watch:
            writer = asyncio.gather(*(store.create(f"{ns}k/z{i}", b"y") for i in range(100)))
            revisions = [e.revision for e in await take(watch, 700)]
            await writer
        assert revisions == list(range(first.mod_revision, first.mod_revision + 700))


async def test_slow_watcher_gets_compacted_not_unbounded_memory(store_url: str, ns: str) -> None:
    async with open_store(store_url, watch_buffer=4) as store:
        start = await store.revision() + 1
        async with store.watch(ns, start) as watch:
            for i in range(40):
                await store.create(f"{ns}k{i}", b"x")
            received: list[Event] = []
            with pytest.raises(Compacted):
                while True:
                    received.append(await asyncio.wait_for(anext(watch), TIMEOUT))
        assert len(received) <= 40
        # What the watcher did receive is still a gap-free prefix of the history.
        assert [e.revision for e in received] == list(range(start, start + len(received)))


async def test_closing_a_watch_ends_iteration(store_url: str, ns: str) -> None:
    async with open_store(store_url) as store:
        watch = store.watch(ns)
        await watch.start()
        await watch.close()
        with pytest.raises(StopAsyncIteration):
            await asyncio.wait_for(anext(watch), TIMEOUT)


# --------------------------------------------------------------------------- compaction


async def test_compaction_forgets_history_before_the_revision(store_url: str, ns: str) -> None:
    async with open_store(store_url) as store:
        a1 = await store.create(ns + "a", b"1")
        a2 = await store.update(ns + "a", b"2", expected_revision=a1.mod_revision)
        a3 = await store.update(ns + "a", b"3", expected_revision=a2.mod_revision)
        await store.compact(a2.mod_revision)
        with pytest.raises(Compacted):
            await store.list(ns, revision=a1.mod_revision)
        assert (await store.list(ns, revision=a2.mod_revision)).items == (a2,)
        with pytest.raises(Compacted):
            async with store.watch(ns, a1.mod_revision):
                pass
        async with store.watch(ns, a3.mod_revision) as watch:
            assert (await take(watch, 1))[0].kv == a3
        with pytest.raises(Compacted):
            await store.compact(a1.mod_revision)
        with pytest.raises(FutureRevision):
            await store.compact(a3.mod_revision + 1000)
        assert await store.get(ns + "a") == a3


# --------------------------------------------------------------------------- bad input

BAD_KEYS = [
    "",
    "/registry/",
    "registry/pods/a",
    "/etc/passwd",
    "/registry/pods/a/",
    "/registry//a",
    "/registry/pods/../secrets/a",
    "/registry/pods/a b",
    "/registry/pods/a\x00b",
    "/registry/pods/a\nb",
    "/registry/pods/caf\u00e9",
    "/registry/" + "x" * 5000,
]


@pytest.mark.parametrize("key", BAD_KEYS, ids=repr)
async def test_bad_keys_are_invalid_key(store_url: str, key: str) -> None:
    async with open_store(store_url) as store:
        before = await store.revision()
        with pytest.raises(InvalidKey):
            await store.create(key, b"x")
        with pytest.raises(InvalidKey):
            await store.get(key)
        with pytest.raises(InvalidKey):
            await store.update(key, b"x")
        with pytest.raises(InvalidKey):
            await store.delete(key)
        assert await store.revision() == before


@pytest.mark.parametrize("prefix", ["", "/", "/registry", "/other/", "/registry/a b/"])
async def test_bad_prefixes_are_invalid_key(store_url: str, prefix: str) -> None:
    async with open_store(store_url) as store:
        with pytest.raises(InvalidKey):
            await store.list(prefix)
        with pytest.raises(InvalidKey):
            store.watch(prefix)


async def test_value_size_limit(store_url: str, ns: str, backend: str) -> None:
    async with open_store(store_url) as store:
        with pytest.raises(ValueTooLarge):
            await store.create(ns + "big", b"x" * (MAX_VALUE_BYTES + 1))
        kv = await store.create(ns + "big", b"x" * (1 << 20))
        with pytest.raises(ValueTooLarge):
            await store.update(ns + "big", b"x" * (MAX_VALUE_BYTES + 1))
        assert (await store.get(ns + "big")).mod_revision == kv.mod_revision
        # Exactly at the limit: always accepted by the embedded backends; etcd accepts it
        # when its --max-request-bytes leaves room for the key (kstate's own etcd does),
        # and otherwise answers with the same typed error.
        try:
            await store.create(ns + "limit", b"y" * MAX_VALUE_BYTES)
        except ValueTooLarge:
            assert backend == "etcd"
        else:
            assert len((await store.get(ns + "limit")).value) == MAX_VALUE_BYTES


async def test_store_is_a_backend(store_url: str) -> None:
    async with open_store(store_url) as store:
        assert isinstance(store, Backend)
        assert store.url.split(":")[0] == store_url.split(":")[0]
