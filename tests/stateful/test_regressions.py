"""Bugs the stateful runs found, each pinned as the smallest story that showed it.

Every test drives the live engine (or, for the scheduling queue, the pure function the
scheduler runs) through the shrunk program Hypothesis printed, and fails on the code as
it was before the fix.
"""

from __future__ import annotations

import attrs

from kstate.api.lifecycle import DRAINING_ANNOTATION, node_state, pod_state
from kstate.api.objects import Node, Pod, ReplicationController
from kstate.control.scheduling import queue as sq
from kstate.control.scheduling.queue import SchedulingQueue
from kstate.runtime.base import NODE_NAME, ContainerState
from kstate.verify.engine import Engine, EngineConfig
from kstate.verify.stateful.checks import legal_history
from kstate.verify.stateful.machine import rc_manifest

T0 = 1_700_000_000.0


async def mark(engine: Engine, name: str, *, unschedulable: bool, draining: bool) -> None:
    node = await engine.client.get(Node, name)
    annotations = node.metadata.annotations.without(DRAINING_ANNOTATION)
    if draining:
        annotations = annotations.set(DRAINING_ANNOTATION, "true")
    await engine.client.update(attrs.evolve(
        node, metadata=attrs.evolve(node.metadata, annotations=annotations),
        spec=attrs.evolve(node.spec, unschedulable=unschedulable)))
    await engine.drain()


async def test_a_node_drained_while_cut_off_reports_again_when_it_returns() -> None:
    """Found: the drain mark set on an Unknown node (or kept by a draining node that
    lost its heartbeat) made every later heartbeat an illegal Unknown -> Draining move;
    the agent's status writes were refused for ever and the node never came back.
    Fixed in the Node machine (a ``draining`` fact on ``heartbeat``)."""
    engine = Engine(EngineConfig(nodes=3, seed=1))
    await engine.start()
    try:
        await engine.client.create(rc_manifest("web", 2))
        assert (await engine.settle()).converged
        engine.partition("node-3")
        await engine.advance(45)
        assert node_state(await engine.client.get(Node, "node-3")) == "Unknown"
        await mark(engine, "node-3", unschedulable=True, draining=True)
        await engine.heal("node-3")
        settled = await engine.settle()
        assert settled.converged, settled.unmet
        assert legal_history(engine) == []
        node = await engine.client.get(Node, "node-3")
        assert node_state(node) == "Cordoned"  # drained, then the mark is taken off
        assert not [p for p in await engine.objects(Pod) if p.spec.node_name == "node-3"]
    finally:
        await engine.stop()


async def test_a_container_that_dies_while_its_node_is_cut_off_is_restarted() -> None:
    """Found: a container that exited while its node was partitioned (or while its pod
    waited out a crash-loop back-off when the node was lost) was shown as already
    terminated by the recovery write (Unknown -> Running); the pod sat Running, not
    Ready, with a dead container for ever. Fixed in ``podsync._unknown``."""
    engine = Engine(EngineConfig(nodes=1, seed=2))
    await engine.start()
    try:
        await engine.client.create(rc_manifest("web", 1))
        assert (await engine.settle()).converged
        engine.partition("node-1")
        running = (await engine.containers())["node-1"]
        await engine.crash("node-1", running[0].id)
        await engine.advance(45)  # the node is lost; its pod goes Unknown
        assert pod_state((await engine.objects(Pod))[0], engine.clock.now()) == "Unknown"
        await engine.heal("node-1")
        settled = await engine.settle()
        assert settled.converged, settled.unmet
        pod = (await engine.objects(Pod))[0]
        assert pod_state(pod, engine.clock.now()) == "Ready"
        listed = await engine.runtime_of("node-1").list_containers({NODE_NAME: "node-1"})
        assert [c.attempt for c in listed if c.state is ContainerState.RUNNING] == [1]
    finally:
        await engine.stop()


async def test_a_crash_looping_pod_on_a_lost_node_restarts_when_the_node_returns() -> None:
    engine = Engine(EngineConfig(nodes=1, seed=3))
    await engine.start()
    try:
        await engine.client.create(rc_manifest("web", 1))
        assert (await engine.settle()).converged
        for _ in range(2):  # the second crash waits out a 10 s back-off
            running = (await engine.containers())["node-1"]
            await engine.crash("node-1", running[0].id)
        assert pod_state((await engine.objects(Pod))[0],
                         engine.clock.now()) == "CrashLoopBackOff"
        engine.partition("node-1")
        await engine.advance(45)
        await engine.heal("node-1")
        settled = await engine.settle()
        assert settled.converged, settled.unmet
    finally:
        await engine.stop()


def test_an_unschedulable_pod_is_due_exactly_when_the_scheduler_wakes() -> None:
    """Found: ``next_wakeup`` said "at T+300" but ``flush`` only moved the pod strictly
    after it, so a scheduler woken at exactly T+300 slept 0 s and woke again for ever (a
    hang on the fake clock, a busy spin on a real one). Fixed in ``queue.flush``."""
    q, _ = sq.pop(sq.enqueue(SchedulingQueue(), "p", T0), T0)
    q = sq.mark_unschedulable(q, "p", T0, ["NodeAffinity"])
    wake = sq.next_wakeup(q)
    assert wake is not None
    assert sq.pop(q, wake)[1] == "p"
    # Fractional times too: the comparison is the very sum next_wakeup returns.
    q, _ = sq.pop(sq.enqueue(SchedulingQueue(), "p", T0 + 0.1), T0 + 0.1)
    q = sq.mark_unschedulable(q, "p", T0 + 0.1, ["NodeAffinity"])
    wake = sq.next_wakeup(q)
    assert wake is not None and sq.pop(q, wake)[1] == "p"


async def test_the_scheduler_does_not_spin_when_the_clock_lands_on_its_wakeup() -> None:
    engine = Engine(EngineConfig(nodes=2, seed=4))
    await engine.start()
    try:
        for name in engine.node_names:
            await mark(engine, name, unschedulable=True, draining=False)
        await engine.client.create(rc_manifest("web", 1))
        await engine.drain()
        # Every deadline on the way, the scheduler's five-minute requeue included, is
        # landed on exactly; a spinning scheduler would make drain() report a livelock.
        await engine.advance(320)
        pod = (await engine.objects(Pod))[0]
        assert pod_state(pod, engine.clock.now()) == "Pending"
        await mark(engine, "node-1", unschedulable=False, draining=False)
        settled = await engine.settle()
        assert settled.converged, settled.unmet
        assert (await engine.objects(Pod))[0].spec.node_name == "node-1"
        rc = await engine.client.get(ReplicationController, "web", "default")
        assert rc.status.ready_replicas == 1
    finally:
        await engine.stop()
