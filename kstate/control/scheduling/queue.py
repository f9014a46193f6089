"""The scheduling queue as an immutable value: Kubernetes' PriorityQueue, time injected.

Where it sits: between the pod informer and ``scheduler.schedule``. The engine keeps one
``SchedulingQueue``; informer events go in (``enqueue``, ``delete``, ``on_cluster_event``),
the worker takes the next pod out (``pop``) and reports how its cycle ended (``done``,
``mark_unschedulable``, ``retry``). Every function returns a new queue, so the model
checker can hold queues in its states and explore the orders in which events and
cycles interleave.

Kubernetes' three queues, and how a pod moves between them:

* **active** — ordered by priority (higher first), then by the time the pod (re-)entered
  the queue; ``pop`` takes the head and starts a scheduling *cycle* for it;
* **backoff** — pods waiting out ``initial_backoff * 2**(attempts-1)`` (1 s, 2 s, 4 s, ...
  capped at ``max_backoff`` = 10 s) from the time they failed; they go to active when it
  is over (``flush``, which ``pop`` calls first);
* **unschedulable** — pods no node fitted. They wait for a cluster event that could help
  (``on_cluster_event``: a node added, a node's allocatable / labels / taints changed, an
  assigned pod deleted), but only events that concern a filter that rejected them
  (Kubernetes' queueing hints, ``INTERESTS``); a pod rejected by no filter in particular
  (no nodes at all) wakes on any event. After ``max_unschedulable`` (5 min) without such
  an event they are retried anyway. Moved pods still serve their back-off first.

The lost-wake-up race: an event may arrive while a pod is being scheduled on a snapshot
that predates it. As in Kubernetes (``moveRequestCycle``), a pod whose cycle started
before the latest event that moved pods goes to backoff, not to unschedulable.

Engine glue::

    q = enqueue(q, key, now, priority=pod.spec.priority or 0)   # unscheduled pod seen
    q, key = pop(q, now)                # None: sleep until next_wakeup(q) or an event
    ... decide ...
    q = done(q, key)                    # bound (or the pod is gone)
    q = mark_unschedulable(q, key, now, decision.rejected_by)   # no node fits
    q = retry(q, key, now)              # binding failed: back-off, then again
    q, moves = on_cluster_event(q, "NodeAdd", now)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

import attrs

from kstate.api.objects import Node, Pod
from kstate.control.scheduling.facts import node_facts
from kstate.control.scheduling.persistent import Heap, PMap, heap_peek, heap_pop, heap_push

Where = Literal["active", "backoff", "unschedulable", "in_flight"]
EventKind = Literal[
    "NodeAdd", "NodeAllocatableChange", "NodeLabelChange", "NodeTaintChange",
    "AssignedPodDelete",
]

#: Which cluster events may make a node pass each filter (Kubernetes' EventsToRegister).
INTERESTS: dict[str, frozenset[EventKind]] = {
    "NodeUnschedulable": frozenset({"NodeAdd", "NodeTaintChange"}),
    "TaintToleration": frozenset({"NodeAdd", "NodeTaintChange"}),
    "NodeAffinity": frozenset({"NodeAdd", "NodeLabelChange"}),
    "NodePorts": frozenset({"NodeAdd", "AssignedPodDelete"}),
    "NodeResourcesFit": frozenset({"NodeAdd", "NodeAllocatableChange", "AssignedPodDelete"}),
}


@attrs.frozen
class QueueSettings:
    initial_backoff: float = 1.0  #: podInitialBackoffSeconds
    max_backoff: float = 10.0  #: podMaxBackoffSeconds
    max_unschedulable: float = 300.0  #: podMaxInUnschedulablePodsDuration


@attrs.frozen
class QueuedPod:
    """One pod in the queue."""

    key: str
    priority: int = 0
    #: when it (re-)entered the queue: orders the active queue, starts the back-off and
    #: the unschedulable timeout
    timestamp: float = 0.0
    attempts: int = 0  #: scheduling cycles so far
    where: Where = "active"
    cycle: int = 0  #: the cycle in which it was last popped
    rejected_by: frozenset[str] = frozenset()  #: filters that rejected it last time
    seq: int = 0  #: version: heap entries of an older version are skipped


@attrs.frozen
class Move:
    """A pod moved out of the unschedulable set."""

    key: str
    to: Literal["active", "backoff"]


@attrs.frozen
class SchedulingQueue:
    settings: QueueSettings = QueueSettings()
    pods: PMap[QueuedPod] = attrs.field(factory=PMap)
    unschedulable: PMap[QueuedPod] = attrs.field(factory=PMap)
    active: Heap = None  #: (-priority, timestamp, seq, key)
    backoff: Heap = None  #: (back-off expiry, seq, key)
    waiting: Heap = None  #: unschedulable pods by (timestamp, seq, key), for the timeout
    cycle: int = 0  #: scheduling cycles started
    move_request_cycle: int = -1  #: the cycle during which pods were last moved
    seq: int = 0

    def __len__(self) -> int:
        return len(self.pods)

    def _with(self, **changes: Any) -> SchedulingQueue:
        """A copy with ``changes``: attrs.evolve without its per-call introspection, which
        would cost more than the queue operation itself."""
        get = changes.get
        return SchedulingQueue(
            get("settings", self.settings), get("pods", self.pods),
            get("unschedulable", self.unschedulable), get("active", self.active),
            get("backoff", self.backoff), get("waiting", self.waiting),
            get("cycle", self.cycle), get("move_request_cycle", self.move_request_cycle),
            get("seq", self.seq),
        )

    def where(self, key: str) -> Where | None:
        """Which queue holds ``key`` (``None``: not queued)."""
        qp = self.pods.get(key)
        return qp.where if qp is not None else None


# --------------------------------------------------------------------------- back-off


def backoff_duration(attempts: int, settings: QueueSettings) -> float:
    """1 s after the first attempt, doubling per attempt, capped at 10 s."""
    duration = settings.initial_backoff
    for _ in range(1, attempts):
        duration *= 2
        if duration >= settings.max_backoff:
            return settings.max_backoff
    return min(duration, settings.max_backoff)


def backoff_expiry(qp: QueuedPod, settings: QueueSettings) -> float:
    return qp.timestamp + backoff_duration(qp.attempts, settings)


# --------------------------------------------------------------------------- moves


def _put(q: SchedulingQueue, qp: QueuedPod, where: Where) -> SchedulingQueue:
    """File ``qp`` under ``where`` with a fresh version (older heap entries go stale)."""
    seq = q.seq + 1
    qp = QueuedPod(qp.key, qp.priority, qp.timestamp, qp.attempts, where, qp.cycle,
                   qp.rejected_by, seq)
    changes: dict[str, Any] = {"seq": seq, "pods": q.pods.set(qp.key, qp)}
    if where == "unschedulable":
        changes["unschedulable"] = q.unschedulable.set(qp.key, qp)
        changes["waiting"] = heap_push(q.waiting, (qp.timestamp, seq, qp.key))
    elif qp.key in q.unschedulable:
        changes["unschedulable"] = q.unschedulable.remove(qp.key)
    if where == "active":
        changes["active"] = heap_push(q.active, (-qp.priority, qp.timestamp, seq, qp.key))
    elif where == "backoff":
        changes["backoff"] = heap_push(q.backoff, (backoff_expiry(qp, q.settings), seq, qp.key))
    return q._with(**changes)


def _requeue(q: SchedulingQueue, qp: QueuedPod, now: float) -> tuple[SchedulingQueue, Move]:
    """Out of unschedulable: to backoff while its back-off lasts, else to active."""
    to: Literal["active", "backoff"] = (
        "backoff" if backoff_expiry(qp, q.settings) > now else "active")
    return _put(q, qp, to), Move(qp.key, to)


def _current(q: SchedulingQueue, seq: int, key: str, where: Where) -> QueuedPod | None:
    qp = q.pods.get(key)
    return qp if qp is not None and qp.seq == seq and qp.where == where else None


# --------------------------------------------------------------------------- API


def enqueue(q: SchedulingQueue, key: str, now: float, priority: int = 0) -> SchedulingQueue:
    """An unscheduled pod was added or updated. New pods go to active; an unschedulable
    pod that changed may fit now, so it is requeued (Kubernetes' ``Update``); a pod
    changed *during* its cycle was decided on its old spec, so a failure of that cycle
    sends it to backoff (as for a cluster event); otherwise nothing moves."""
    qp = q.pods.get(key)
    if qp is None:
        return _put(q, QueuedPod(key, priority=priority, timestamp=now), "active")
    if qp.where == "unschedulable":
        return _requeue(q, qp, now)[0]
    if qp.where == "in_flight":
        return q._with(move_request_cycle=q.cycle)
    return q


def pop(q: SchedulingQueue, now: float) -> tuple[SchedulingQueue, str | None]:
    """The next pod to schedule (after ``flush``), or ``None`` when active is empty."""
    q = flush(q, now)
    active = q.active
    while active is not None:
        (_, _, seq, key), active = heap_pop(active)
        qp = _current(q, seq, key, "active")
        if qp is None:
            continue
        cycle = q.cycle + 1
        qp = QueuedPod(key, qp.priority, qp.timestamp, qp.attempts + 1, "in_flight", cycle,
                       qp.rejected_by, qp.seq)
        return q._with(active=active, cycle=cycle, pods=q.pods.set(key, qp)), key
    return q._with(active=None), None


def done(q: SchedulingQueue, key: str) -> SchedulingQueue:
    """The pod's cycle ended with a binding: it leaves the queue."""
    return delete(q, key)


def delete(q: SchedulingQueue, key: str) -> SchedulingQueue:
    """The pod is gone (deleted, or bound by someone else): forget it wherever it is.
    Its heap entries go stale and are skipped."""
    if key not in q.pods:
        return q
    return q._with(pods=q.pods.remove(key), unschedulable=q.unschedulable.remove(key))


def mark_unschedulable(
    q: SchedulingQueue, key: str, now: float, rejected_by: Iterable[str] = ()
) -> SchedulingQueue:
    """No node fitted the in-flight pod ``key``; ``rejected_by`` names the filters that
    rejected nodes (from ``Decision.rejected_by``) so only relevant events wake it."""
    qp = q.pods.get(key)
    if qp is None or qp.where != "in_flight":
        return q
    qp = attrs.evolve(qp, timestamp=now, rejected_by=frozenset(rejected_by))
    if q.move_request_cycle >= qp.cycle:
        # Something changed while this pod was being scheduled on an older snapshot.
        return _put(q, qp, "backoff")
    return _put(q, qp, "unschedulable")


def retry(q: SchedulingQueue, key: str, now: float) -> SchedulingQueue:
    """The in-flight pod's cycle failed for another reason (the binding was refused):
    try again after its back-off."""
    qp = q.pods.get(key)
    if qp is None or qp.where != "in_flight":
        return q
    return _put(q, attrs.evolve(qp, timestamp=now), "backoff")


def on_cluster_event(
    q: SchedulingQueue, event: EventKind, now: float
) -> tuple[SchedulingQueue, list[Move]]:
    """Move the unschedulable pods that ``event`` may help; the moves, in queue order."""
    def interested(qp: QueuedPod) -> bool:
        return not qp.rejected_by or any(
            event in INTERESTS.get(plugin, ()) for plugin in qp.rejected_by)

    moves: list[Move] = []
    for qp in sorted((p for p in q.unschedulable.values() if interested(p)),
                     key=lambda p: (p.timestamp, p.key)):
        q, move = _requeue(q, qp, now)
        moves.append(move)
    return q._with(move_request_cycle=q.cycle), moves


def flush(q: SchedulingQueue, now: float) -> SchedulingQueue:
    """Time passes: back-offs that ended go to active, pods unschedulable for longer
    than ``max_unschedulable`` are requeued."""
    while (top := heap_peek(q.backoff)) is not None and top[0] <= now:
        _, backoff = heap_pop(q.backoff)
        q = q._with(backoff=backoff)
        qp = _current(q, top[1], top[2], "backoff")
        if qp is not None:
            q = _put(q, qp, "active")
    limit = q.settings.max_unschedulable
    # The same sum as ``next_wakeup``: a scheduler woken at exactly that instant must
    # find the pod due, or it sleeps 0 s and wakes again for ever (a livelock on a fake
    # clock that stands still; a busy spin on a real one).
    while (top := heap_peek(q.waiting)) is not None and now >= top[0] + limit:
        _, waiting = heap_pop(q.waiting)
        q = q._with(waiting=waiting)
        qp = _current(q, top[1], top[2], "unschedulable")
        if qp is not None:
            q = _requeue(q, qp, now)[0]
    return q


def next_wakeup(q: SchedulingQueue) -> float | None:
    """When ``flush`` may next have work (a back-off or a timeout ends); ``None``: only
    an event can bring work. Stale heap entries may make this early, never late."""
    times = []
    if (top := heap_peek(q.backoff)) is not None:
        times.append(top[0])
    if (top := heap_peek(q.waiting)) is not None:
        times.append(top[0] + q.settings.max_unschedulable)
    return min(times) if times else None


# --------------------------------------------------------------------------- events


def node_events(old: Node | None, new: Node) -> frozenset[EventKind]:
    """What a node ADDED (``old`` None) / MODIFIED event means for unschedulable pods."""
    if old is None:
        return frozenset({"NodeAdd"})
    a, b = node_facts(old), node_facts(new)
    kinds: set[EventKind] = set()
    if (a.cpu, a.memory, a.pods, a.unreported) != (b.cpu, b.memory, b.pods, b.unreported):
        kinds.add("NodeAllocatableChange")
    if a.labels != b.labels:
        kinds.add("NodeLabelChange")
    if (a.taints, a.unschedulable) != (b.taints, b.unschedulable):
        kinds.add("NodeTaintChange")
    return frozenset(kinds)


def pod_events(old: Pod | None, new: Pod | None) -> frozenset[EventKind]:
    """What a pod event means for unschedulable pods: an assigned pod that is deleted or
    finishes frees room (``AssignedPodDelete``)."""
    if old is None or not old.spec.node_name:
        return frozenset()
    finished = new is not None and new.status.phase in ("Succeeded", "Failed") and \
        old.status.phase not in ("Succeeded", "Failed")
    return frozenset({"AssignedPodDelete"}) if new is None or finished else frozenset()


__all__ = [
    "INTERESTS",
    "EventKind",
    "Move",
    "QueueSettings",
    "QueuedPod",
    "SchedulingQueue",
    "Where",
    "backoff_duration",
    "backoff_expiry",
    "delete",
    "done",
    "enqueue",
    "flush",
    "mark_unschedulable",
    "next_wakeup",
    "node_events",
    "on_cluster_event",
    "pod_events",
    "pop",
    "retry",
]
