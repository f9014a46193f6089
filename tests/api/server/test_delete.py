"""Deletion as the lifecycle machines decide it: graceful pods, propagation policies,
finalizers, preconditions, namespaces."""

from __future__ import annotations

import pytest

from kstate.api import DeleteOptions, Preconditions, with_meta, with_spec, with_status
from kstate.api.server.core import FOREGROUND_FINALIZER, ORPHAN_FINALIZER
from kstate.clock import FakeClock, rfc3339
from kstate.errors import Conflict, Forbidden, NotFound
from tests.api.server.conftest import START, running_core
from tests.api.server.helpers import NODE, NS, POD, RC, SVC, namespace, node, pod, rc, svc


async def test_unbound_pod_goes_at_once() -> None:
    async with running_core() as core:
        await core.create(pod("web"))
        result = await core.delete(POD, "default", "web")
        assert result.removed
        with pytest.raises(NotFound):
            await core.get(POD, "default", "web")


async def test_bound_pod_terminates_with_its_grace_period() -> None:
    clock = FakeClock(START)
    async with running_core(clock=clock) as core:
        await core.create(pod("web", node="n1", termination_grace_period_seconds=20))
        marked = (await core.delete(POD, "default", "web")).object
        assert marked.metadata.deletion_timestamp == rfc3339(START + 20)
        assert marked.metadata.deletion_grace_period_seconds == 20
        assert marked.metadata.generation == 2
        # a second delete may only shorten the grace period (Kubernetes' BeforeDelete)
        assert (await core.delete(POD, "default", "web")).object == marked  # none given
        longer = await core.delete(POD, "default", "web", DeleteOptions(grace_period_seconds=60))
        assert not longer.removed
        assert longer.object.metadata.deletion_timestamp == rfc3339(START + 20)
        clock.advance(5)
        shorter = await core.delete(POD, "default", "web", DeleteOptions(grace_period_seconds=5))
        # counted from the first delete: old deadline - old grace + new grace
        assert shorter.object.metadata.deletion_timestamp == rfc3339(START + 20 - 20 + 5)
        assert shorter.object.metadata.deletion_grace_period_seconds == 5
        assert shorter.object.metadata.generation == 2  # only the first mark bumps it
        # the node agent's final delete (grace 0) removes it
        assert (await core.delete(POD, "default", "web",
                                  DeleteOptions(grace_period_seconds=0))).removed


async def test_force_delete_and_finished_pods_go_at_once() -> None:
    async with running_core() as core:
        await core.create(pod("web", node="n1"))
        assert (await core.delete(POD, "default", "web",
                                  DeleteOptions(grace_period_seconds=0))).removed
        done = await core.create(pod("job", node="n1"))
        # Scheduled -> Failed is the node agent's "reject"
        await core.update(with_status(done, phase="Failed"), subresource="status")
        assert (await core.delete(POD, "default", "job")).removed


async def test_finalizers_hold_the_object_until_removed() -> None:
    async with running_core() as core:
        await core.create(with_meta(pod("web"), finalizers=("example.com/hold",)))
        marked = await core.delete(POD, "default", "web")
        assert not marked.removed and marked.object.metadata.deletion_timestamp
        assert marked.object.metadata.deletion_grace_period_seconds == 0
        released = with_meta(marked.object, finalizers=())
        await core.update(released)
        with pytest.raises(NotFound):
            await core.get(POD, "default", "web")


async def test_graceful_pod_with_finalizer_waits_for_the_node_agent() -> None:
    async with running_core() as core:
        await core.create(with_meta(pod("web", node="n1"), finalizers=("example.com/hold",)))
        marked = (await core.delete(POD, "default", "web")).object
        still = await core.update(with_meta(marked, finalizers=()))
        assert still.metadata.deletion_grace_period_seconds == 30  # grace still running
        assert (await core.delete(POD, "default", "web",
                                  DeleteOptions(grace_period_seconds=0))).removed


async def test_rc_propagation_policies() -> None:
    async with running_core() as core:
        await core.create(rc("bg"))
        assert (await core.delete(RC, "default", "bg",
                                  DeleteOptions(propagation_policy="Background"))).removed
        await core.create(rc("fg"))
        fg = await core.delete(RC, "default", "fg", DeleteOptions(propagation_policy="Foreground"))
        assert fg.object.metadata.finalizers == (FOREGROUND_FINALIZER,)
        assert fg.object.metadata.deletion_timestamp
        await core.create(rc("orph"))
        orphan = await core.delete(RC, "default", "orph")  # Kubernetes' v1 default: Orphan
        assert orphan.object.metadata.finalizers == (ORPHAN_FINALIZER,)
        # a second delete of an RC being deleted changes nothing
        again = await core.delete(RC, "default", "orph")
        assert again.object == orphan.object
        # the garbage collector finishes: removing the finalizer removes the RC
        await core.update(with_meta(fg.object, finalizers=()))
        with pytest.raises(NotFound):
            await core.get(RC, "default", "fg")


async def test_preconditions() -> None:
    async with running_core() as core:
        created = await core.create(pod("web"))
        with pytest.raises(Conflict, match="Precondition failed: UID"):
            await core.delete(POD, "default", "web",
                              DeleteOptions(preconditions=Preconditions(uid="other")))
        with pytest.raises(Conflict, match="ResourceVersion"):
            await core.delete(POD, "default", "web", DeleteOptions(
                preconditions=Preconditions(resource_version="1")))
        ok = DeleteOptions(preconditions=Preconditions(
            uid=created.metadata.uid, resource_version=created.metadata.resource_version))
        assert (await core.delete(POD, "default", "web", ok)).removed


async def test_dry_run_delete() -> None:
    async with running_core() as core:
        await core.create(pod("web"))
        result = await core.delete(POD, "default", "web", DeleteOptions(dry_run=("All",)))
        assert result.removed
        assert await core.get(POD, "default", "web")


async def test_services_and_nodes() -> None:
    async with running_core() as core:
        await core.create(svc("web", type_="NodePort", node_port=30080))
        assert (await core.delete(SVC, "default", "web")).removed
        # released: the port can be taken again
        again = await core.create(svc("other", type_="NodePort", node_port=30080))
        assert again.spec.ports[0].node_port == 30080
        await core.create(node("n1"))
        assert (await core.delete(NODE, "", "n1")).removed


async def test_namespace_delete_marks_it_and_finalize_removes_it() -> None:
    """The api server only marks a namespace (its content is the namespace controller's,
    see tests/control); the ``kubernetes`` finalizer, added on create, holds it until a
    /finalize write removes it."""
    async with running_core() as core:
        created = await core.create(namespace("shop"))
        assert created.spec.finalizers == ("kubernetes",)
        await core.create(pod("running", namespace="shop", node="n1"))
        marked = (await core.delete(NS, "", "shop")).object
        assert marked.status.phase == "Terminating"
        assert marked.metadata.deletion_timestamp
        assert [p.metadata.name for p in (await core.list(POD, "shop")).items] == ["running"]
        with pytest.raises(Forbidden, match="unable to create new content in namespace shop "
                                            "because it is being terminated"):
            await core.create(pod("late", namespace="shop"))
        with pytest.raises(Conflict, match="ensuring all content is removed"):
            await core.delete(NS, "", "shop")
        # spec.finalizers changes only through /finalize, and only on namespaces
        kept = await core.update(with_spec(marked, finalizers=()))
        assert kept.spec.finalizers == ("kubernetes",)
        with pytest.raises(NotFound, match="no finalize subresource"):
            await core.update(pod("other"), subresource="finalize")
        await core.update(with_spec(kept, finalizers=()), subresource="finalize")
        with pytest.raises(NotFound):
            await core.get(NS, "", "shop")


async def test_default_namespaces_stay_and_collection_delete() -> None:
    async with running_core() as core:
        with pytest.raises(Forbidden, match="may not be deleted"):
            await core.delete(NS, "", "kube-system")
        await core.create(namespace("tmp"))
        await core.delete(NS, "", "tmp")
        assert (await core.get(NS, "", "tmp")).status.phase == "Terminating"
        for i in range(3):
            await core.create(pod(f"p{i}"))
        done = await core.delete_collection(POD, "default")
        assert len(done.items) == 3
        assert (await core.list(POD, "default")).items == ()
