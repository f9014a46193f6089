"""A create racing its namespace's deletion (issue 16): never content in a closed namespace.

``ApiCore.create`` admits a namespaced object against its namespace, then writes it. The
store below runs a hook exactly between the two — at the object's ``store.create`` —
where the namespace is marked Terminating, or marked, emptied and finalized as the
namespace controller would. Deterministic: no timing, no sleeps. Before the write was
guarded by the namespace's revision, every test here found the object stored in a
namespace that was terminating or gone.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from kstate.api import Endpoints, ObjectMeta, with_labels, with_spec
from kstate.api.registry import store_key
from kstate.api.server.core import ApiCore
from kstate.errors import Forbidden, NotFound
from kstate.store import KeyValue
from kstate.store.memory import MemoryBackend
from tests.api.server.conftest import running_core
from tests.api.server.helpers import ENDPOINTS, NS, POD, SVC, namespace, pod, svc

Hook = Callable[[], Awaitable[None]]


class InterleavingStore(MemoryBackend):
    """A memory store that runs ``hooks[key]`` (once) when ``key`` is about to be created:
    after the API server's admission of the create, before its write."""

    def __init__(self) -> None:
        super().__init__()
        self.hooks: dict[str, Hook] = {}
        self.attempts: dict[str, int] = {}

    async def create(self, key: str, value: bytes, **options: Any) -> KeyValue:
        self.attempts[key] = self.attempts.get(key, 0) + 1
        hook = self.hooks.pop(key, None)
        if hook is not None:
            await hook()
        return await super().create(key, value, **options)


async def mark(core: ApiCore, name: str) -> None:
    """``kubectl delete namespace``: the namespace is marked Terminating."""
    await core.delete(NS, "", name)


async def mark_empty_and_finalize(core: ApiCore, name: str) -> None:
    """Everything the namespace controller does: mark, find it empty (the object being
    created is not stored yet), remove the ``kubernetes`` finalizer: the namespace is gone."""
    await mark(core, name)
    for info in (POD, SVC, ENDPOINTS):
        assert (await core.list(info, name)).items == ()
    marked = await core.get(NS, "", name)
    await core.update(with_spec(marked, finalizers=()), subresource="finalize")


async def stored_under(store: MemoryBackend, name: str) -> list[str]:
    """Every key of namespaced content in namespace ``name``, whatever its kind."""
    listed = await store.list("/registry/")
    return [kv.key for kv in listed.items if f"/{name}/" in kv.key]


async def test_create_admitted_before_the_mark_and_written_after_it_is_refused() -> None:
    """Admitted from the core's namespace cache (filled when the namespace was created):
    the cached revision is only ever a guard, so the mark still refuses the write."""
    store = InterleavingStore()
    async with running_core(store) as core:
        await core.create(namespace("shop"))
        store.hooks[store_key(POD, "shop", "late")] = lambda: mark(core, "shop")
        with pytest.raises(Forbidden, match="unable to create new content in namespace shop "
                                            "because it is being terminated") as refused:
            await core.create(pod("late", namespace="shop"))
        assert refused.value.code == 403
        assert await stored_under(store, "shop") == []
        assert (await core.get(NS, "", "shop")).status.phase == "Terminating"


async def test_create_racing_the_whole_namespace_deletion_leaves_nothing() -> None:
    """The issue's scenario: the namespace is marked, found empty and removed while the
    create is between admission and write; the write must not resurrect content."""
    store = InterleavingStore()
    async with running_core(store) as core:
        await core.create(namespace("shop"))
        store.hooks[store_key(POD, "shop", "late")] = lambda: mark_empty_and_finalize(
            core, "shop")
        with pytest.raises(NotFound, match='namespaces "shop" not found'):
            await core.create(pod("late", namespace="shop"))
        with pytest.raises(NotFound):
            await core.get(NS, "", "shop")
        assert await stored_under(store, "shop") == []


async def test_a_harmless_namespace_change_meanwhile_is_retried() -> None:
    """A label added between admission and write moves the namespace's revision: the
    guarded write loses, the create admits again against the new version and succeeds."""
    store = InterleavingStore()
    async with running_core(store) as core:
        ns = await core.create(namespace("shop"))
        key = store_key(POD, "shop", "web")

        async def relabel() -> None:
            await core.update(with_labels(ns, team="a"))

        store.hooks[key] = relabel
        created = await core.create(pod("web", namespace="shop"))
        assert store.attempts[key] == 2
        assert (await core.get(POD, "shop", "web")).metadata.uid == created.metadata.uid
        assert (await core.get(NS, "", "shop")).metadata.labels == {"team": "a"}


async def test_a_service_allocated_before_the_mark_is_not_stored() -> None:
    store = InterleavingStore()
    async with running_core(store) as core:
        await core.create(namespace("shop"))
        store.hooks[store_key(SVC, "shop", "web")] = lambda: mark(core, "shop")
        with pytest.raises(Forbidden, match="being terminated"):
            await core.create(svc("web", type_="NodePort", node_port=30080, namespace="shop"))
        assert await stored_under(store, "shop") == []
        # nothing holds the port: another namespace's Service may take it
        again = await core.create(svc("web", type_="NodePort", node_port=30080))
        assert again.spec.ports[0].node_port == 30080


async def test_an_update_that_creates_is_refused_the_same_way() -> None:
    """Endpoints, Events and Leases are created by an update of a missing object."""
    store = InterleavingStore()
    async with running_core(store) as core:
        await core.create(namespace("shop"))
        store.hooks[store_key(ENDPOINTS, "shop", "web")] = lambda: mark(core, "shop")
        with pytest.raises(Forbidden, match="being terminated"):
            await core.update(Endpoints(metadata=ObjectMeta(name="web", namespace="shop")))
        assert await stored_under(store, "shop") == []
