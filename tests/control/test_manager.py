"""The controller manager against a real ApiCore (memory store, fake clock).

Simulated nodes: Node objects and leases written by the test; pods are driven to Ready
by the real pod worker (``podsync``) over a ``SimulatedNode`` — no containers needed.
"""

from __future__ import annotations

from typing import Any

import attrs
import pytest

from kstate.api.codec import from_dict
from kstate.api.frozen import FrozenDict
from kstate.api.lifecycle import node_state, pod_state
from kstate.api.meta import ObjectMeta
from kstate.api.objects import (
    Endpoints,
    Lease,
    Namespace,
    Node,
    Pod,
    ReplicationController,
    Service,
)
from kstate.api.registry import REGISTRY, store_key
from kstate.clock import FakeClock, rfc3339
from kstate.control.expectations import Expectation
from kstate.control.manager import ControllerManager, ManagerSettings
from kstate.errors import NotFound
from kstate.node import podsync
from kstate.node.heartbeat import renew_lease
from kstate.node.simulated import SimulatedNode
from tests.api.server.helpers import InterleavingStore
from tests.control.harness import START, Observer, cluster, run, running, settle_loop


def rc_manifest(name: str = "web", replicas: int = 3) -> ReplicationController:
    return from_dict(ReplicationController, {
        "apiVersion": "v1", "kind": "ReplicationController",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"replicas": replicas, "selector": {"app": name},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": "c", "image": "img:1"}]}}}})


def node_manifest(name: str) -> Node:
    stamp = rfc3339(START)
    return from_dict(Node, {
        "apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
        "status": {"allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
                   "conditions": [{"type": "Ready", "status": "True",
                                   "lastHeartbeatTime": stamp, "lastTransitionTime": stamp}]}})


def mine(rc: str) -> Any:
    return lambda pods: [p for p in pods if p.metadata.owner_references
                         and p.metadata.owner_references[0].name == rc]


def active(pods: list[Pod]) -> list[Pod]:
    return [p for p in pods if not p.metadata.deletion_timestamp]


async def advance(clock: FakeClock, seconds: float, step: float = 1.0) -> None:
    """Let fake time pass in steps, giving every woken task its turn."""
    done = 0.0
    while done < seconds:
        clock.advance(step)
        done += step
        await settle_loop()


async def heartbeat(client: Any, node: str, clock: FakeClock) -> None:
    lease = await client.get(Lease, node, "kube-node-lease")
    await client.update(renew_lease(lease, node, clock.now()))


async def kubelet_until_idle(client: Any, pod: Pod, node: SimulatedNode,
                             clock: FakeClock) -> SimulatedNode:
    """Drive one bound pod to a fixed point with the real pod worker (test kubelet)."""
    for _ in range(20):
        current = await client.get(Pod, pod.metadata.name, "default")
        view = podsync.PodSyncView(node=current.spec.node_name, uid=current.metadata.uid,
                                   pod=current, sandbox=node.sandbox(current.metadata.uid),
                                   containers=node.of_pod(current.metadata.uid),
                                   backoff=FrozenDict())
        cmds = podsync.sync(view, clock.now())
        if not [c for c in cmds if not isinstance(c, podsync.RequeueAt)]:
            return node
        for cmd in cmds:
            if isinstance(cmd, podsync.WriteStatus):
                await client.update_status(cmd.pod)
            else:
                node, _ = node.apply(cmd, clock.now())
    raise AssertionError("pod worker did not settle")


def test_rc_creates_scales_and_replaces_pods() -> None:
    async def go() -> None:
        async with cluster() as (_, client, clock):
            manager = ControllerManager(client, clock)
            async with running(manager, client) as pods:
                await client.create(rc_manifest(replicas=3))
                got = await pods.until(lambda ps: len(mine("web")(ps)) == 3)
                assert {p.metadata.owner_references[0].controller for p in got} == {True}
                rcs = await Observer(client, ReplicationController).start()
                await rcs.until(lambda rs: rs and rs[0].status.replicas == 3)

                await client.scale(ReplicationController, "web", 1)
                await pods.until(lambda ps: len(active(mine("web")(ps))) == 1)

                victim = active(mine("web")(pods.items()))[0]
                await client.delete(Pod, victim.metadata.name, "default")
                await pods.until(lambda ps: len(active(mine("web")(ps))) == 1 and all(
                    p.metadata.name != victim.metadata.name for p in ps))
                await rcs.stop()
    run(go())


def test_cascading_deletion_in_all_three_modes() -> None:
    async def go() -> None:
        async with cluster() as (_, client, clock):
            manager = ControllerManager(client, clock, ManagerSettings(gc_period=10))
            async with running(manager, client) as pods:
                rcs = await Observer(client, ReplicationController).start()
                try:
                    for name in ("bg", "fg", "orphan"):
                        await client.create(rc_manifest(name, 2))
                    await pods.until(lambda ps: len(ps) == 6)

                    await client.delete(ReplicationController, "fg", "default",
                                        propagation_policy="Foreground")
                    fg = [r for r in rcs.items() if r.metadata.name == "fg"]
                    await rcs.until(lambda rs: any(r.metadata.name == "fg"
                                                   and r.metadata.deletion_timestamp for r in rs))
                    await client.delete(ReplicationController, "bg", "default",
                                        propagation_policy="Background")
                    await client.delete(ReplicationController, "orphan", "default",
                                        propagation_policy="Orphan")
                    await advance(clock, 25, step=5)
                    await rcs.until(lambda rs: not rs)
                    remaining = await pods.until(lambda ps: len(ps) == 2)
                    assert {p.metadata.labels["app"] for p in remaining} == {"orphan"}
                    assert all(not p.metadata.owner_references for p in remaining)
                    assert fg  # the foreground owner was visible while its pods went
                finally:
                    await rcs.stop()
    run(go())


def test_cascading_deletion_does_not_wait_for_the_gc_period() -> None:
    """Regression (found by tests/e2e/test_faults.py): the collector ran only every
    ``gc_period`` (20 s), so a Background cascade started up to 20 s late and a Foreground
    owner outlived its last pod by up to another 20 s. Ownership changes now wake it."""
    async def go() -> None:
        async with cluster() as (_, client, clock):
            manager = ControllerManager(client, clock, ManagerSettings(gc_period=1000))
            async with running(manager, client) as pods:
                rcs = await Observer(client, ReplicationController).start()
                try:
                    for name in ("bg", "fg"):
                        await client.create(rc_manifest(name, 2))
                    await pods.until(lambda ps: len(ps) == 4)
                    await advance(clock, 2)  # past the start-up pass and its minimum gap
                    await client.delete(ReplicationController, "fg", "default",
                                        propagation_policy="Foreground")
                    await client.delete(ReplicationController, "bg", "default",
                                        propagation_policy="Background")
                    await advance(clock, 3)  # a few minimum gaps, nowhere near the period
                    await rcs.until(lambda rs: not rs)
                    await pods.until(lambda ps: not ps)
                finally:
                    await rcs.stop()
    run(go())


def test_an_rc_waiting_on_expectations_that_never_come_true_syncs_at_their_ttl() -> None:
    """A creation the cache will never see holds the RC back; with no pod event left to
    wake it, the expectations' TTL (Kubernetes' 5 minutes) must, by itself."""
    async def go() -> None:
        async with cluster() as (_, client, clock):
            manager = ControllerManager(client, clock)
            async with running(manager, client) as pods:
                await client.create(rc_manifest(replicas=2))
                await pods.until(lambda ps: len(active(mine("web")(ps))) == 2)
                manager.expectations["default/web"] = Expectation.expect(
                    adds=1, now=clock.now())  # a create whose event was lost
                victim = active(mine("web")(pods.items()))[0]
                await client.delete(Pod, victim.metadata.name, "default")
                await pods.until(lambda ps: len(active(mine("web")(ps))) == 1)
                await advance(clock, 290, step=10)
                assert len(active(mine("web")(pods.items()))) == 1  # still held back
                await advance(clock, 20, step=10)
                await pods.until(lambda ps: len(active(mine("web")(ps))) == 2)
    run(go())


def test_silent_node_goes_unknown_then_its_pods_are_evicted() -> None:
    async def go() -> None:
        async with cluster() as (_, client, clock):
            settings = ManagerSettings(node_monitor_period=5, gc_period=1000)
            manager = ControllerManager(client, clock, settings)
            for name in ("n1", "n2"):
                await client.create(node_manifest(name))
                await client.create(renew_lease(None, name, START))
            async with running(manager, client) as pods:
                nodes = await Observer(client, Node).start()
                try:
                    await client.create(rc_manifest(replicas=1))
                    (pod,) = await pods.until(lambda ps: len(ps) == 1)
                    await client.bind(pod.metadata.name, "n1", uid=pod.metadata.uid)
                    await kubelet_until_idle(client, pod, SimulatedNode(), clock)
                    # n2 keeps heartbeating, n1 goes silent
                    for _ in range(9):
                        await advance(clock, 5)
                        await heartbeat(client, "n2", clock)
                    gone = await nodes.until(lambda ns: any(
                        n.metadata.name == "n1" and node_state(n) == "Unknown" for n in ns))
                    assert [node_state(n) for n in gone if n.metadata.name == "n2"] == ["Ready"]
                    lost = await pods.until(lambda ps: any(pod_state(p) == "Unknown" for p in ps))
                    assert lost[0].status.phase == "Unknown"
                    tainted = await nodes.until(lambda ns: any(
                        n.metadata.name == "n1" and n.spec.taints for n in ns))
                    assert any(t.key == "node.kubernetes.io/unreachable" and t.effect == "NoExecute"
                               for n in tainted if n.metadata.name == "n1" for t in n.spec.taints)
                    # default toleration: 300 s, then eviction and a replacement
                    for _ in range(62):
                        await advance(clock, 5)
                        await heartbeat(client, "n2", clock)
                    evicted = await pods.until(lambda ps: len(ps) == 2)
                    states = {pod_state(p, clock.now()) for p in evicted}
                    assert states in ({"Killing", "Pending"}, {"Terminating", "Pending"})
                finally:
                    await nodes.stop()
    run(go())


def test_endpoints_follow_ready_pods() -> None:
    async def go() -> None:
        async with cluster() as (_, client, clock):
            manager = ControllerManager(client, clock)
            await client.create(node_manifest("n1"))
            async with running(manager, client) as pods:
                eps = await Observer(client, Endpoints).start()
                try:
                    await client.create(from_dict(Service, {
                        "apiVersion": "v1", "kind": "Service",
                        "metadata": {"name": "web", "namespace": "default"},
                        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}}))
                    await client.create(rc_manifest(replicas=2))
                    created = await pods.until(lambda ps: len(ps) == 2)
                    node = SimulatedNode()
                    for pod in created:
                        await client.bind(pod.metadata.name, "n1", uid=pod.metadata.uid)
                        node = await kubelet_until_idle(client, pod, node, clock)
                    ready = await eps.until(lambda es: bool(es) and sum(
                        len(s.addresses) for s in es[0].subsets) == 2)
                    assert {a.target_ref.name for s in ready[0].subsets for a in s.addresses} == \
                        {p.metadata.name for p in created}
                    await client.delete(Pod, created[0].metadata.name, "default")
                    left = await eps.until(lambda es: sum(len(s.addresses)
                                                          for s in es[0].subsets) == 1)
                    assert created[0].metadata.name not in {
                        a.target_ref.name for s in left[0].subsets for a in s.addresses}
                finally:
                    await eps.stop()
    run(go())



def test_an_rc_sync_reads_its_own_pods_and_the_orphans_only() -> None:
    async def go() -> None:
        async with cluster() as (_, client, clock):
            manager = ControllerManager(client, clock)
            async with running(manager, client) as pods:
                await client.create(rc_manifest("web", 2))
                await client.create(rc_manifest("api", 3))
                await pods.until(lambda ps: len(ps) == 5)
                stray = from_dict(Pod, {
                    "apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": "stray", "namespace": "default",
                                 "labels": {"app": "other"}},
                    "spec": {"containers": [{"name": "c", "image": "img:1"}]}})
                await client.create(stray)
                await pods.until(lambda ps: len(ps) == 6)
                await settle_loop()
                web = manager.rcs.get("default/web")
                assert web is not None
                seen = manager.rc_pods(web)
                assert sorted(p.metadata.name for p in seen if p.metadata.name != "stray") \
                    == sorted(p.metadata.name for p in mine("web")(pods.items()))
                assert "stray" in {p.metadata.name for p in seen}
                # in the cache's order, as a full read of the namespace would give them
                everything = [p for p in manager.pods.list() if p in seen]
                assert list(seen) == everything
    run(go())


def test_a_create_racing_the_namespace_controller_leaves_nothing_behind() -> None:
    """Issue 16: a pod admitted into an open namespace, whose write comes only after the
    namespace was deleted, found empty by the namespace controller's live list and
    finalized. The write is refused (the namespace is gone: 404) and nothing is left."""
    async def go() -> None:
        store = InterleavingStore()
        async with cluster(store) as (_, client, clock):
            manager = ControllerManager(client, clock)
            async with running(manager, client):
                await client.create(Namespace(metadata=ObjectMeta(name="shop")))
                namespaces = await Observer(client, Namespace).start()

                async def delete_namespace_and_await_its_removal() -> None:
                    await client.delete(Namespace, "shop")
                    await namespaces.until(lambda nss: "shop" not in
                                           {n.metadata.name for n in nss})

                late = from_dict(Pod, {"apiVersion": "v1", "kind": "Pod",
                                       "metadata": {"name": "late", "namespace": "shop"},
                                       "spec": {"containers": [{"name": "c",
                                                                "image": "img:1"}]}})
                key = store_key(REGISTRY.for_kind("Pod"), "shop", "late")
                store.hooks[key] = delete_namespace_and_await_its_removal
                try:
                    with pytest.raises(NotFound, match='namespaces "shop" not found'):
                        await client.create(late)
                    assert store.attempts[key] == 1  # the one write, refused by its guard
                    with pytest.raises(NotFound):
                        await store.get(key)
                    assert (await client.list(Pod, "shop")).items == ()
                finally:
                    await namespaces.stop()
    run(go())


def test_namespace_deletion_empties_it_then_finalizes_it() -> None:
    async def go() -> None:
        async with cluster() as (_, client, clock):
            manager = ControllerManager(client, clock,
                                        ManagerSettings(namespace_recheck=1.0))
            async with running(manager, client):
                await client.create(Namespace(metadata=ObjectMeta(name="shop")))
                web = rc_manifest("web", 2)
                await client.create(attrs.evolve(web, metadata=attrs.evolve(
                    web.metadata, namespace="shop")))
                bound = from_dict(Pod, {
                    "apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": "bound", "namespace": "shop"},
                    "spec": {"nodeName": "n1",
                             "containers": [{"name": "c", "image": "img:1"}]}})
                await client.create(bound)
                shop_pods = await Observer(client, Pod, namespace="shop").start()
                namespaces = await Observer(client, Namespace).start()
                try:
                    await shop_pods.until(lambda ps: len(ps) == 3)
                    await client.delete(Namespace, "shop")
                    # the RC and its unbound pods go; the bound pod terminates gracefully
                    left = await shop_pods.until(
                        lambda ps: [p.metadata.name for p in ps] == ["bound"]
                        and bool(ps[0].metadata.deletion_timestamp))
                    assert (await client.list(ReplicationController, "shop")).items == ()

                    def reports_remaining(nss: list[Namespace]) -> bool:
                        return any(c.type == "NamespaceContentRemaining" and c.status == "True"
                                   for n in nss if n.metadata.name == "shop"
                                   for c in n.status.conditions)
                    shop = next(n for n in await namespaces.until(reports_remaining)
                            if n.metadata.name == "shop")
                    assert shop.status.phase == "Terminating"
                    assert shop.spec.finalizers == ("kubernetes",)
                    # the node agent finishes the pod: the namespace is finalized and gone
                    await client.delete(Pod, left[0].metadata.name, "shop",
                                        grace_period_seconds=0)
                    await namespaces.until(
                        lambda nss: all(n.metadata.name != "shop" for n in nss))
                finally:
                    await shop_pods.stop()
                    await namespaces.stop()
    run(go())
