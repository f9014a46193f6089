"""etcd backend specifics: an unreachable cluster is a clear ``Unavailable``, a dead
endpoint in the list is skipped, and a three-member cluster loses no acknowledged write
and no watch event while members are killed and restarted."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from kstate.errors import Unavailable, UsageError
from kstate.store import Event, open_store
from kstate.store.etcdproc import EtcdCluster, free_port, log_tail
from tests.conftest import require_binary
from tests.store.conftest import require_etcd_client

pytestmark = pytest.mark.etcd

TIMEOUT = 30.0


@pytest.fixture(autouse=True)
def _client() -> None:
    require_etcd_client()


async def test_unreachable_etcd_is_unavailable_with_a_clear_message() -> None:
    dead = f"127.0.0.1:{free_port()}"
    async with open_store(f"etcd://{dead}", timeout=2) as store:
        for call in (
            store.get("/registry/a/b"),
            store.create("/registry/a/b", b"x"),
            store.list("/registry/a/"),
            store.revision(),
        ):
            with pytest.raises(Unavailable, match=f"unreachable.*{dead}"):
                await asyncio.wait_for(call, TIMEOUT)
        with pytest.raises(Unavailable, match=dead):
            async with store.watch("/registry/a/"):
                pass


@pytest.mark.parametrize("bad", ["etcd://", "etcd://localhost", "etcd://h:port", "etcd://:1"])
def test_malformed_etcd_urls_are_usage_errors(bad: str) -> None:
    with pytest.raises(UsageError):
        open_store(bad)


async def test_a_dead_endpoint_is_skipped(etcd_url: str) -> None:
    dead = f"127.0.0.1:{free_port()}"
    live = etcd_url.removeprefix("etcd://")
    key = f"/registry/t{uuid.uuid4().hex[:8]}/a"
    async with open_store(f"etcd://{dead},{live}", timeout=2) as store:
        kv = await store.create(key, b"x")  # never sent to the dead one: safe to retry
        assert (await store.get(key)) == kv


async def test_three_member_cluster_survives_member_kills() -> None:
    require_binary("etcd")
    cluster = EtcdCluster(size=3).start()
    prefix = "/registry/failover/"
    try:
        async with open_store(cluster.url, timeout=2) as store:
            start = await store.revision() + 1
            acked: dict[str, int] = {}
            unknown: set[str] = set()  # writes whose outcome a failure left open
            stop, progressed = asyncio.Event(), asyncio.Event()

            async def writer() -> None:
                i = 0
                while not stop.is_set():
                    key = f"{prefix}{i:05d}"
                    i += 1
                    try:
                        acked[key] = (await store.create(key, key.encode())).mod_revision
                        progressed.set()
                    except Unavailable:
                        unknown.add(key)

            async def writes(n: int) -> None:
                """Wait until the writer got ``n`` more acknowledgements."""
                goal = len(acked) + n
                while len(acked) < goal:
                    progressed.clear()
                    await asyncio.wait_for(progressed.wait(), TIMEOUT)

            async with store.watch(prefix, start) as watch:
                task = asyncio.create_task(writer())
                await writes(50)
                # Kill the member the client and the watch are using, then the next one
                # after the first is back: the restarted member must have caught up.
                for victim in (cluster.members[0], cluster.members[1]):
                    victim.kill()
                    await writes(100)
                    await asyncio.to_thread(cluster.restart, victim)
                    await writes(50)
                stop.set()
                await task

                final = await store.list(prefix)
                present = {kv.key: kv.mod_revision for kv in final.items}
                for key, revision in acked.items():
                    assert present.get(key) == revision, f"acknowledged {key} lost"
                assert set(present) <= set(acked) | unknown

                events: list[Event] = []
                while len(events) < len(present):
                    events.append(await asyncio.wait_for(anext(watch), TIMEOUT))
            revisions = [e.revision for e in events]
            assert revisions == sorted(present.values()), "watch has a gap or a duplicate"
            assert all(e.type == "PUT" and e.kv.value == e.kv.key.encode() for e in events)
    except BaseException:
        print(log_tail(cluster))
        raise
    finally:
        cluster.close()
