"""``ApiClient``: the same scenario through ``LocalClient`` (in-process) and
``HttpClient`` (HTTPS to a real ``ApiServer``) gives the same objects and the same typed
errors."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from kstate.api import Node, Pod, ReplicationController, with_labels, with_status
from kstate.api.client import ApiClient, HttpClient, LocalClient
from kstate.api.server import ApiCore, ApiServer, ServerConfig
from kstate.clock import FakeClock
from kstate.errors import (
    BadRequest,
    Compacted,
    Conflict,
    IllegalTransition,
    InvalidObject,
    KeyExists,
    NotFound,
)
from kstate.store import open_store
from tests.api.server.conftest import START
from tests.api.server.helpers import node, pod, rc


@contextlib.asynccontextmanager
async def client_for(kind: str, tmp: Path) -> AsyncIterator[tuple[ApiClient, ApiCore]]:
    store = open_store("memory://")
    core = ApiCore(store, FakeClock(START), rng=random.Random(3))
    try:
        if kind == "local":
            await core.start()
            yield LocalClient(core), core
        else:
            server = ApiServer(core, ServerConfig(data_dir=tmp, listen="127.0.0.1:0"))
            await server.start()
            client = HttpClient.from_kubeconfig(server.kubeconfig)
            try:
                yield client, core
            finally:
                await client.close()
                await server.stop()
    finally:
        await core.close()
        await store.close()


@pytest.fixture(params=["local", "http"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def test_same_behaviour_both_ways(kind: str, tmp_path: Path) -> None:
    async with client_for(kind, tmp_path) as (client, _):
        created = await client.create(pod("web"))
        assert isinstance(created, Pod) and created.metadata.uid
        assert await client.get(Pod, "web") == created
        with pytest.raises(KeyExists):
            await client.create(pod("web"))
        with pytest.raises(NotFound):
            await client.get(Pod, "ghost")
        updated = await client.update(with_labels(created, a="1"))
        with pytest.raises(Conflict):
            await client.update(with_labels(created, a="2"))
        with pytest.raises(InvalidObject) as invalid:
            await client.create(pod("Bad"))
        assert invalid.value.causes[0].field == "metadata.name"
        with pytest.raises(BadRequest):
            await client.list(Pod, label_selector="a in (")
        listed = await client.list(Pod, "default", label_selector="a=1")
        assert [p.metadata.name for p in listed.items] == ["web"]
        patched = await client.patch(Pod, "web", {"metadata": {"labels": {"b": "2"}}})
        assert patched.metadata.labels == {"a": "1", "b": "2"}
        assert int(patched.metadata.resource_version) > int(updated.metadata.resource_version)
        merged = await client.patch(Pod, "web", [{"op": "remove", "path": "/metadata/labels/a"}],
                                    patch_type="json")
        assert merged.metadata.labels == {"b": "2"}

        await client.bind("web", "n1")
        bound = await client.get(Pod, "web")
        assert bound.spec.node_name == "n1"
        with pytest.raises(IllegalTransition) as illegal:
            await client.update_status(with_status(bound, phase="Succeeded"))
        assert illegal.value.state == "Scheduled"

        marked = await client.delete(Pod, "web")
        assert not marked.removed and marked.object.metadata.deletion_timestamp
        gone = await client.delete(Pod, "web", grace_period_seconds=0)
        assert gone.removed

        await client.create(rc("web", 2))
        scale = await client.scale(ReplicationController, "web", 5)
        assert scale.spec.replicas == 5
        assert (await client.get_scale(ReplicationController, "web")).spec.replicas == 5
        assert (await client.delete(ReplicationController, "web",
                                    propagation_policy="Background")).removed
        await client.create(node("n1"))
        assert (await client.list(Node)).items[0].metadata.name == "n1"


async def test_watch_both_ways(kind: str, tmp_path: Path) -> None:
    async with client_for(kind, tmp_path) as (client, core):
        first = await client.create(pod("a"))
        async with client.watch(Pod, "default") as events:
            stream = aiter(events)
            assert (await asyncio.wait_for(anext(stream), 5))[0] == "ADDED"
            await client.create(pod("b"))
            event_type, obj = await asyncio.wait_for(anext(stream), 5)
            assert (event_type, obj.metadata.name) == ("ADDED", "b")
            await client.evict("b")
            await client.delete(Pod, "a")
            event_type, obj = await asyncio.wait_for(anext(stream), 5)
            assert (event_type, obj.metadata.name) == ("DELETED", "b")
        await core.store.compact(await core.store.revision())
        with pytest.raises(Compacted):
            async with client.watch(Pod, resource_version=first.metadata.resource_version) as w:
                async for _ in w:
                    pass


async def _half_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A server that dies mid-answer: headers promise 500 bytes, 20 arrive."""
    await reader.readuntil(b"\r\n\r\n")
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 500\r\n\r\n" + b'{"kind": "Pod", "met')
    await writer.drain()
    writer.close()


async def test_a_server_dying_mid_answer_is_unavailable_not_a_raw_error() -> None:
    from kstate.errors import Unavailable

    server = await asyncio.start_server(_half_answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = HttpClient(f"http://127.0.0.1:{port}")
    try:
        with pytest.raises(Unavailable, match="broke during the answer"):
            await client.get(Pod, "web", "default")
    finally:
        await client.close()
        server.close()
        await server.wait_closed()
