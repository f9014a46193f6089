"""The scheduler process against a real ApiCore: binds through /binding, explains
unschedulable pods with Kubernetes' event, and retries them when nodes change."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from kstate.api.client import LocalClient
from kstate.api.codec import from_dict
from kstate.api.helpers import with_spec
from kstate.api.objects import Event, Node, Pod
from kstate.api.server.core import ApiCore
from kstate.clock import rfc3339
from kstate.control.scheduler import ClusterSnapshot
from kstate.control.schedulerd import Scheduler
from kstate.errors import Unavailable
from tests.control.harness import START, Observer, cluster, run, running, settle_loop


def node(name: str, cpu: str = "2", **spec: Any) -> Node:
    stamp = rfc3339(START)
    return from_dict(Node, {
        "apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
        "spec": spec,
        "status": {"allocatable": {"cpu": cpu, "memory": "4Gi", "pods": "110"},
                   "capacity": {"cpu": cpu, "memory": "4Gi", "pods": "110"},
                   "conditions": [{"type": "Ready", "status": "True",
                                   "lastHeartbeatTime": stamp, "lastTransitionTime": stamp}]}})


def pod(name: str, cpu: str = "500m") -> Pod:
    return from_dict(Pod, {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"containers": [{"name": "c", "image": "img:1",
                                 "resources": {"requests": {"cpu": cpu}}}]}})


def test_pods_are_bound_and_unschedulable_ones_explained_then_retried() -> None:
    async def go() -> None:
        async with cluster() as (_, client, clock):
            await client.create(node("n1", cpu="1"))
            await client.create(node("n2", cpu="1", unschedulable=True))
            sched = Scheduler(client, clock)
            async with running(sched, client) as pods:
                events = await Observer(client, Event).start()
                try:
                    await client.create(pod("a", cpu="600m"))
                    await pods.until(lambda ps: ps and ps[0].spec.node_name == "n1")
                    await client.create(pod("b", cpu="600m"))
                    got = await events.until(lambda es: any(e.reason == "FailedScheduling"
                                                            for e in es))
                    (failed,) = [e for e in got if e.reason == "FailedScheduling"]
                    assert failed.message.startswith("0/2 nodes are available:")
                    assert "1 Insufficient cpu" in failed.message
                    assert "1 node(s) were unschedulable" in failed.message
                    assert any(e.reason == "Scheduled" for e in got)
                    # a new node arrives: the waiting pod is retried and bound there
                    await client.create(node("n3", cpu="1"))
                    await settle_loop()
                    clock.advance(10)  # past the pod's scheduling back-off
                    await pods.until(lambda ps: any(p.metadata.name == "b"
                                                    and p.spec.node_name == "n3" for p in ps))
                finally:
                    await events.stop()
    run(go())


# --------------------------------------------------------------------------- async binding


class HeldBinds(LocalClient):
    """A client whose bindings wait until the test releases them (``release``), and
    fail with ``Unavailable`` while ``reject`` is set: bindings in flight, and their
    rejections, at the moments the test chooses."""

    def __init__(self, core: ApiCore) -> None:
        super().__init__(core)
        self.held: list[tuple[str, str, asyncio.Future[None]]] = []
        self.hold = True
        self.reject = False
        self.arrived = asyncio.Event()

    async def bind(self, pod: str, node: str, namespace: str = "default", *,
                   uid: str = "") -> None:
        if self.hold:
            gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self.held.append((pod, node, gate))
            self.arrived.set()
            await gate
        if self.reject:
            raise Unavailable("the API server is restarting")
        await super().bind(pod, node, namespace, uid=uid)

    async def until_held(self, count: int) -> None:
        while len(self.held) < count:
            self.arrived.clear()
            await asyncio.wait_for(self.arrived.wait(), 10)

    def release(self) -> None:
        self.hold = False
        for _, _, gate in self.held:
            if not gate.done():
                gate.set_result(None)


async def turns_until(condition: Callable[[], bool], limit: int = 10_000) -> None:
    """Let the loop run until ``condition`` holds (loop turns, no wall-clock waiting)."""
    for _ in range(limit):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition not met")


def cpu_in_use(sched: Scheduler) -> dict[str, int]:
    return {info.name: info.cpu for info in sched.snapshot.nodes}


def test_many_bindings_in_flight_at_once_and_bounded() -> None:
    async def go() -> None:
        async with cluster() as (core, _, clock):
            client = HeldBinds(core)
            for name in ("n1", "n2", "n3"):
                await client.create(node(name, cpu="2"))
            sched = Scheduler(client, clock, bindings_in_flight=4)
            async with running(sched, client) as pods:
                for i in range(6):
                    await client.create(pod(f"p{i}", cpu="500m"))
                await client.until_held(4)
                await settle_loop()
                # Four bindings sent and none answered: the loop decided on while
                # they were out, and stops at the bound.
                assert sched.bindings == 4 and len(client.held) == 4
                assert len(sched.snapshot.assumed) == 4
                assert sum(cpu_in_use(sched).values()) == 4 * 500
                assert all(not p.spec.node_name for p in pods.items())
                client.release()
                got = await pods.until(lambda ps: len(ps) == 6
                                       and all(p.spec.node_name for p in ps))
                await settle_loop()
                assert sched.bindings == 0 and not sched.snapshot.assumed
                # Every pod counted once, where it is bound (2 CPUs a node: room for 4).
                placed: dict[str, int] = {}
                for p in got:
                    placed[p.spec.node_name] = placed.get(p.spec.node_name, 0) + 500
                assert cpu_in_use(sched) == {n: placed.get(n, 0) for n in ("n1", "n2", "n3")}
                assert max(placed.values()) <= 2000
    run(go())


def test_a_rejected_binding_is_forgotten_and_the_pod_bound_elsewhere_later() -> None:
    async def go() -> None:
        async with cluster() as (core, _, clock):
            client = HeldBinds(core)
            await client.create(node("n1", cpu="1"))
            await client.create(node("n2", cpu="1"))
            sched = Scheduler(client, clock)
            async with running(sched, client) as pods:
                events = await Observer(client, Event).start()
                try:
                    await client.create(pod("a", cpu="600m"))
                    await client.until_held(1)
                    (_, first, _), = client.held
                    assert sched.snapshot.assumed.get("default/a") == first
                    assert cpu_in_use(sched)[first] == 600
                    # The API refuses the binding; meanwhile the chosen node is cordoned.
                    client.reject = True
                    cordoned = (await client.get(Node, first)).spec
                    await client.update(with_spec(await client.get(Node, first),
                                                  unschedulable=True))
                    assert not cordoned.unschedulable
                    client.release()
                    got = await events.until(lambda es: any(
                        e.reason == "FailedScheduling" for e in es))
                    (failed,) = [e for e in got if e.reason == "FailedScheduling"]
                    assert failed.message == (f"binding rejected: pod default/a to {first}: "
                                              "unavailable")
                    await settle_loop()
                    # Forgotten: the room is free again, nothing is counted twice, and the
                    # pod waits out its back-off instead of being retried at once.
                    assert not sched.snapshot.assumed
                    assert cpu_in_use(sched) == {"n1": 0, "n2": 0}
                    assert sched.queue.where("default/a") == "backoff"
                    client.reject = False
                    clock.advance(1)  # the first back-off
                    other = "n2" if first == "n1" else "n1"
                    bound = await pods.until(lambda ps: bool(ps) and ps[0].spec.node_name != "")
                    assert bound[0].spec.node_name == other
                    await settle_loop()
                    assert cpu_in_use(sched) == {first: 0, other: 600}
                    assert not sched.snapshot.assumed and sched.queue.where("default/a") is None
                finally:
                    await events.stop()
    run(go())


def test_a_binding_refused_because_the_pod_was_bound_meanwhile_counts_it_once() -> None:
    async def go() -> None:
        async with cluster() as (core, plain, clock):
            client = HeldBinds(core)
            await client.create(node("n1", cpu="1"))
            await client.create(node("n2", cpu="1"))
            sched = Scheduler(client, clock)
            async with running(sched, client) as pods:
                await client.create(pod("a", cpu="600m"))
                await client.until_held(1)
                (_, first, _), = client.held
                other = "n2" if first == "n1" else "n1"
                await plain.bind("a", other)  # someone else was faster
                await pods.until(lambda ps: bool(ps) and ps[0].spec.node_name == other)
                client.release()  # ours gets 409: already assigned
                await settle_loop()
                assert sched.bindings == 0 and not sched.snapshot.assumed
                assert cpu_in_use(sched) == {first: 0, other: 600}
                assert sched.queue.where("default/a") is None  # bound: not retried
    run(go())


def test_stop_waits_for_bindings_in_flight_and_cancels_them_after_the_grace() -> None:
    async def go() -> None:
        async with cluster() as (core, _, clock):
            client = HeldBinds(core)
            await client.create(node("n1"))
            sched = Scheduler(client, clock, shutdown_grace=0.0)
            await sched.start()
            await client.create(pod("a"))
            await client.until_held(1)
            await sched.stop()  # the binding never answers: cancelled, not leaked
            assert sched.bindings == 0
            assert (await client.get(Pod, "a", "default")).spec.node_name == ""
    run(go())


# --------------------------------------------------------------------------- lazy snapshot


def test_node_events_reach_the_snapshot_in_one_batch_before_the_next_decision() -> None:
    async def go() -> None:
        async with cluster() as (_, client, clock):
            for i in range(300):
                await client.create(node(f"n{i:03}", cpu="1"))
            sched = Scheduler(client, clock)
            calls: list[int] = []
            real = ClusterSnapshot.with_nodes

            def counted(snap: ClusterSnapshot, *a: Any, **k: Any) -> ClusterSnapshot:
                calls.append(1)
                return real(snap, *a, **k)

            ClusterSnapshot.with_nodes = counted  # type: ignore[method-assign]
            try:
                await sched.start()
                pods = await Observer(client, Pod).start()
                await client.create(pod("a", cpu="600m"))
                await pods.until(lambda ps: bool(ps) and ps[0].spec.node_name != "")
                # The informer's list of 300 nodes: one rebuild, not 300.
                assert len(calls) == 1
                assert [i.name for i in sched.snapshot.nodes] == [
                    f"n{i:03}" for i in range(300)]
                # A burst while running: 50 joins, one leaves, one is cordoned.
                sched._wake.clear()
                for i in range(300, 350):
                    await client.create(node(f"n{i:03}", cpu="1"))
                await client.delete(Node, "n000")
                await client.update(with_spec(await client.get(Node, "n001"),
                                              unschedulable=True))
                await turns_until(lambda: sched.nodes.get("n000") is None
                                  and sched.nodes.get("n349") is not None
                                  and bool(sched.nodes.get("n001").spec.unschedulable))  # type: ignore[union-attr]
                assert len(sched._node_changes) == 52  # collected, not applied yet
                names = [i.name for i in sched.snapshot.nodes]
                assert names == [f"n{i:03}" for i in range(1, 350)]
                assert sched.snapshot.node("n001").node.unschedulable  # type: ignore[union-attr]
                assert len(sched.snapshot.columns.tie) == 349
                await pods.stop()
            finally:
                ClusterSnapshot.with_nodes = real  # type: ignore[method-assign]
                await sched.stop()
    run(go())
