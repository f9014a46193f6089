"""The scheduling queue as a value: ordering, back-off, unschedulable pods and cluster
events, with a fake ``now``; and the engine loop the lead will write, driven by hand."""

from __future__ import annotations

import pytest

from kstate.control.commands import Bind, Record
from kstate.control.scheduler import ClusterSnapshot, SchedulingView, decide, schedule, wants
from kstate.control.scheduling import queue as sq
from kstate.control.scheduling.queue import Move, SchedulingQueue
from tests.control.test_scheduler_builders import T0, node, pod, taint


def pop_all(q: SchedulingQueue, now: float) -> tuple[SchedulingQueue, list[str]]:
    out: list[str] = []
    while True:
        q, key = sq.pop(q, now)
        if key is None:
            return q, out
        out.append(key)


def failed(q: SchedulingQueue, key: str, now: float, *plugins: str) -> SchedulingQueue:
    """Pop ``key`` (it must be next) and report it unschedulable."""
    q, popped = sq.pop(q, now)
    assert popped == key
    return sq.mark_unschedulable(q, key, now, plugins)


def test_active_queue_orders_by_priority_then_arrival() -> None:
    q = SchedulingQueue()
    q = sq.enqueue(q, "low-early", T0, priority=0)
    q = sq.enqueue(q, "high-late", T0 + 2, priority=10)
    q = sq.enqueue(q, "high-early", T0 + 1, priority=10)
    q = sq.enqueue(q, "low-late", T0 + 3, priority=0)
    q = sq.enqueue(q, "high-early", T0 + 9, priority=10)  # already queued: no change
    _, order = pop_all(q, T0 + 10)
    assert order == ["high-early", "high-late", "low-early", "low-late"]


def test_queues_are_values() -> None:
    empty = SchedulingQueue()
    one = sq.enqueue(empty, "a", T0)
    after, key = sq.pop(one, T0)
    assert key == "a" and len(empty) == 0
    assert one.where("a") == "active" and after.where("a") == "in_flight"
    assert sq.pop(one, T0)[1] == "a"  # the old version still has it


@pytest.mark.parametrize(("attempts", "seconds"), [
    (1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 10.0), (12, 10.0)])
def test_backoff_doubles_from_one_second_up_to_ten(attempts: int, seconds: float) -> None:
    assert sq.backoff_duration(attempts, sq.QueueSettings()) == seconds


def test_unschedulable_pod_waits_for_a_relevant_event_then_serves_its_backoff() -> None:
    q = failed(sq.enqueue(SchedulingQueue(), "p", T0), "p", T0 + 1, "NodeResourcesFit")
    assert q.where("p") == "unschedulable"
    assert sq.pop(q, T0 + 100)[1] is None  # no event: it stays put

    q, moves = sq.on_cluster_event(q, "NodeLabelChange", T0 + 1.5)
    assert moves == [] and q.where("p") == "unschedulable"  # irrelevant to resources

    q, moves = sq.on_cluster_event(q, "AssignedPodDelete", T0 + 1.5)
    assert moves == [Move("p", "backoff")]  # failed at T0+1 after 1 attempt: until T0+2
    assert sq.pop(q, T0 + 1.9)[1] is None
    assert sq.next_wakeup(q) == T0 + 2
    q, key = sq.pop(q, T0 + 2)
    assert key == "p"

    # Second failure: 2 s of back-off; an event after it ends moves straight to active.
    q = sq.mark_unschedulable(q, "p", T0 + 3, ["NodeResourcesFit"])
    q, moves = sq.on_cluster_event(q, "NodeAdd", T0 + 6)
    assert moves == [Move("p", "active")]
    assert sq.pop(q, T0 + 6)[1] == "p"


def test_a_pod_rejected_by_no_filter_wakes_on_any_event() -> None:
    q = failed(sq.enqueue(SchedulingQueue(), "p", T0), "p", T0)
    q, moves = sq.on_cluster_event(q, "NodeLabelChange", T0 + 5)
    assert moves == [Move("p", "active")]


def test_events_wake_only_the_pods_they_concern_in_queue_order() -> None:
    q = SchedulingQueue()
    for key in ("taint", "ports", "fit"):
        q = sq.enqueue(q, key, T0)
    q = failed(q, "taint", T0 + 1, "TaintToleration")
    q = failed(q, "ports", T0 + 2, "NodePorts", "TaintToleration")
    q = failed(q, "fit", T0 + 3, "NodeResourcesFit")
    q, moves = sq.on_cluster_event(q, "NodeTaintChange", T0 + 20)
    assert moves == [Move("taint", "active"), Move("ports", "active")]
    q, moves = sq.on_cluster_event(q, "AssignedPodDelete", T0 + 20)
    assert moves == [Move("fit", "active")]


def test_unschedulable_pods_are_retried_after_five_minutes() -> None:
    q = failed(sq.enqueue(SchedulingQueue(), "p", T0), "p", T0, "NodeAffinity")
    assert sq.next_wakeup(q) == T0 + 300
    assert sq.pop(q, T0 + 299.5)[1] is None
    # Due exactly when next_wakeup says: a scheduler woken then must find it, or it
    # sleeps 0 s and wakes again for ever (found by the stateful runs).
    assert sq.pop(q, T0 + 300)[1] == "p"


def test_an_event_during_the_cycle_sends_the_pod_to_backoff_not_unschedulable() -> None:
    """The lost wake-up: the node that would have fitted arrived while the pod was
    being scheduled on an older snapshot."""
    q, _ = sq.pop(sq.enqueue(SchedulingQueue(), "p", T0), T0)
    q, moves = sq.on_cluster_event(q, "NodeAdd", T0 + 0.1)
    assert moves == []  # nothing unschedulable yet
    q = sq.mark_unschedulable(q, "p", T0 + 0.2, ["NodeResourcesFit"])
    assert q.where("p") == "backoff"
    assert sq.pop(q, T0 + 1.2)[1] == "p"  # retried without another event

    # An event *before* the cycle started does not count.
    q = sq.enqueue(SchedulingQueue(), "p", T0)
    q, _ = sq.on_cluster_event(q, "NodeAdd", T0)
    q = failed(q, "p", T0 + 1, "NodeResourcesFit")
    assert q.where("p") == "unschedulable"


def test_a_pod_updated_during_its_cycle_is_retried_after_backoff() -> None:
    q, _ = sq.pop(sq.enqueue(SchedulingQueue(), "p", T0), T0)
    q = sq.enqueue(q, "p", T0 + 0.1)  # e.g. a toleration added while it was being decided
    assert q.where("p") == "in_flight"
    q = sq.mark_unschedulable(q, "p", T0 + 0.2, ["TaintToleration"])
    assert q.where("p") == "backoff"


def test_retry_after_a_failed_binding_backs_off() -> None:
    q, _ = sq.pop(sq.enqueue(SchedulingQueue(), "p", T0), T0)
    q = sq.retry(q, "p", T0)
    assert q.where("p") == "backoff"
    assert sq.pop(q, T0 + 0.5)[1] is None
    assert sq.pop(q, T0 + 1)[1] == "p"


def test_delete_and_done_forget_the_pod_wherever_it_is() -> None:
    q = sq.enqueue(sq.enqueue(SchedulingQueue(), "a", T0), "b", T0 + 1)
    q = sq.delete(q, "a")
    assert pop_all(q, T0)[1] == ["b"]
    q = failed(sq.enqueue(SchedulingQueue(), "a", T0), "a", T0)
    q = sq.delete(q, "a")
    assert q.where("a") is None and len(q) == 0
    assert sq.on_cluster_event(q, "NodeAdd", T0)[1] == []
    # Deleted then re-created: the stale heap entries are skipped, the new one is served.
    q = sq.enqueue(sq.delete(sq.enqueue(SchedulingQueue(), "a", T0), "a"), "a", T0 + 5)
    q, order = pop_all(q, T0 + 5)
    assert order == ["a"]
    assert sq.done(q, "a").where("a") is None


def test_an_updated_unschedulable_pod_is_requeued() -> None:
    q = failed(sq.enqueue(SchedulingQueue(), "p", T0), "p", T0, "NodeAffinity")
    q = sq.enqueue(q, "p", T0 + 30)  # e.g. its nodeSelector was edited
    assert q.where("p") == "active"


def test_node_and_pod_events_are_classified() -> None:
    base = node("n1")
    assert sq.node_events(None, base) == {"NodeAdd"}
    assert sq.node_events(base, node("n1", cpu="8")) == {"NodeAllocatableChange"}
    assert sq.node_events(base, node("n1", labels={"zone": "a"})) == {"NodeLabelChange"}
    assert sq.node_events(base, node("n1", unschedulable=True)) == {"NodeTaintChange"}
    assert sq.node_events(base, node("n1", taints=[taint("x")])) == {"NodeTaintChange"}
    assert sq.node_events(base, node("n1", ready=False)) == set()  # heartbeat-only
    running = pod("a", node_name="n1", phase="Running")
    assert sq.pod_events(running, None) == {"AssignedPodDelete"}
    assert sq.pod_events(running, pod("a", node_name="n1", phase="Failed")) == {
        "AssignedPodDelete"}
    assert sq.pod_events(pod("a"), None) == set()  # was not taking room anywhere
    assert sq.pod_events(None, running) == set()


# --------------------------------------------------------------------------- engine loop


def test_engine_loop_binds_and_retries_an_unschedulable_pod_when_room_frees() -> None:
    """The glue of the scheduler module docstring, by hand: queue + snapshot + schedule.
    One node with room for two 1-CPU pods, three pods: the third waits until one of the
    first two is deleted, then is bound after its back-off."""
    now = T0
    pods = {f"default/p{i}": pod(f"p{i}", cpu="1") for i in range(3)}
    snap = ClusterSnapshot.build([node("n1", cpu="2")])
    q = SchedulingQueue()
    for name, p in pods.items():
        assert wants(p)
        q = sq.enqueue(q, name, now)

    bound: dict[str, str] = {}
    events: list[str] = []

    def cycle(q: SchedulingQueue, snap: ClusterSnapshot,
              now: float) -> tuple[SchedulingQueue, ClusterSnapshot, str | None]:
        q, key = sq.pop(q, now)
        if key is None:
            return q, snap, None
        view = SchedulingView(pods[key], snap)
        decision = decide(view)
        commands = schedule(view, now)
        if decision.node:
            assert commands == [Bind("default", pods[key].metadata.name,
                                     pods[key].metadata.uid, decision.node)]
            snap = snap.assume(pods[key], decision.node)
            bound[key] = decision.node
            q = sq.done(q, key)
        else:
            assert isinstance(commands[0], Record)
            events.append(commands[0].message)
            q = sq.mark_unschedulable(q, key, now, decision.rejected_by)
        return q, snap, key

    for _ in range(3):
        q, snap, _ = cycle(q, snap, now)
    assert sorted(bound) == ["default/p0", "default/p1"]
    assert events == ["0/1 nodes are available: 1 Insufficient cpu."]
    assert q.where("default/p2") == "unschedulable"

    # The bindings become visible (confirming the assumptions), then p0 is deleted.
    for name in list(bound):
        snap = snap.with_pod(pod(name.split("/")[1], cpu="1", node_name="n1"))
    assert not snap.assumed
    gone = pod("p0", cpu="1", node_name="n1", phase="Running")
    snap = snap.without_pod(gone)
    now += 0.5
    for kind in sq.pod_events(gone, None):
        q, moves = sq.on_cluster_event(q, kind, now)
        assert moves == [Move("default/p2", "backoff")]
    q, snap, popped = cycle(q, snap, now)
    assert popped is None  # still backing off (failed at T0, 1 s)
    q, snap, popped = cycle(q, snap, T0 + 1)
    assert popped == "default/p2" and bound[popped] == "n1"
