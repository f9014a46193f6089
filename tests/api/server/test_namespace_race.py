"""A create racing its namespace's deletion (issue 16): never content in a closed namespace.

``ApiCore.create`` admits a namespaced object against its namespace, then writes it.
The store (``InterleavingStore``) runs a hook exactly between the two — at the object's
``store.create`` — where the namespace is marked Terminating, or marked, emptied and
finalized as the namespace controller would. Deterministic: no timing, no sleeps.
Before the write was
guarded by the namespace's revision, the refused creates were stored in a namespace that
was terminating or gone (and the harmless change was not retried: the write had no guard).
With the real namespace controller: tests/control/test_manager.py.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from kstate.api import Endpoints, ObjectMeta, with_labels, with_spec
from kstate.api.meta import KubeObject
from kstate.api.registry import KindInfo, store_key
from kstate.api.server.core import ApiCore
from kstate.errors import Forbidden, NotFound
from kstate.store.memory import MemoryBackend
from tests.api.server.conftest import running_core
from tests.api.server.helpers import (
    ENDPOINTS,
    NS,
    POD,
    SVC,
    InterleavingStore,
    namespace,
    pod,
    svc,
)


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


#: Every path that stores a new namespaced object: (kind, the object in a namespace,
#: the ApiCore method that writes it).
NEW_OBJECT_WRITES = [
    pytest.param(POD, lambda ns: pod("late", namespace=ns), "create", id="create"),
    pytest.param(SVC, lambda ns: svc("late", type_="NodePort", node_port=30080, namespace=ns),
                 "create", id="service-create-after-allocation"),
    pytest.param(ENDPOINTS, lambda ns: Endpoints(metadata=ObjectMeta(name="late", namespace=ns)),
                 "update", id="update-that-creates"),
]


@pytest.mark.parametrize(("info", "make", "verb"), NEW_OBJECT_WRITES)
async def test_a_write_admitted_before_the_mark_and_stored_after_it_is_refused(
    info: KindInfo, make: Callable[[str], KubeObject], verb: str
) -> None:
    """Admitted from the core's namespace cache (filled when the namespace was created):
    the cached revision is only ever a guard, so the mark still refuses the write."""
    store = InterleavingStore()
    async with running_core(store) as core:
        await core.create(namespace("shop"))
        store.hooks[store_key(info, "shop", "late")] = lambda: mark(core, "shop")
        with pytest.raises(Forbidden, match="unable to create new content in namespace shop "
                                            "because it is being terminated") as refused:
            await getattr(core, verb)(make("shop"))
        assert refused.value.code == 403
        assert await stored_under(store, "shop") == []
        assert (await core.get(NS, "", "shop")).status.phase == "Terminating"
        # Nothing half-written holds on: the same object is welcome elsewhere (a Service's
        # node port included).
        await getattr(core, verb)(make("default"))


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
