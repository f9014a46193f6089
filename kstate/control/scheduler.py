"""The scheduler: place one pending pod on a node, as a pure function.

Where it sits: ``kstate/control``, between the pod/node informers and the API server's
``/binding`` subresource. The engine (and the model checker, through the same function)
builds a :class:`SchedulingView` — the pod and a :class:`ClusterSnapshot` — and applies
the returned commands:

* a ``Bind(namespace, name, uid, node)`` — the API server checks the Pod machine's
  ``schedule`` trigger (Pending -> Scheduled) and sets ``spec.nodeName``; or
* when no node fits, a ``Record`` of ``FailedScheduling`` (Warning) with Kubernetes'
  message (``0/3 nodes are available: 1 Insufficient cpu, 2 node(s) had untolerated
  taint {node.kubernetes.io/unreachable: }.``) and an ``Update`` of the pod's status
  setting condition ``PodScheduled=False`` (reason ``Unschedulable``, the same message),
  written only when the condition changes, as Kubernetes' ``updatePod`` does;
* nothing, when the pod is not this scheduler's to place (bound, being deleted, another
  ``schedulerName``) or its binding is already in flight (it is *assumed*).

The algorithm — filters, scores, ``percentageOfNodesToScore`` — is in
``kstate/control/scheduling/`` (``plugins.py`` states every rule and weight;
``reference.py`` is the plain scan, ``vectorised.py`` the numpy one that finds the same
best nodes). ``place`` is the one placement: it chooses the engine by cluster size
(``settings.vectorise_from``) and breaks ties by a stable hash (``pick``); the model
checker runs it with the engine's settings and explores every tie (``tied``).

Engine glue (``kstate/control/schedulerd.py`` is this, with the binding sent in a
background task; every value below is immutable)::

    from kstate.control import scheduler as s
    from kstate.control.scheduling import queue as sq

    snap = s.ClusterSnapshot.build(node_cache.values(), pod_cache.values())
    q = sq.SchedulingQueue()
    # informer handlers (keep the snapshot and queue in step with the caches):
    #   node ADDED/MODIFIED: snap = snap.with_node(node)   # or collect, then with_nodes
    #                        q, _ = sq.on_cluster_event(q, kind, now)
    #                               for kind in sq.node_events(old, node)
    #   node DELETED:        snap = snap.without_node(node.metadata.name)
    #   pod ADDED/MODIFIED:  snap = snap.with_pod(pod)   # confirms an assumed binding
    #                        if s.wants(pod): q = sq.enqueue(q, key, now, pod.spec.priority or 0)
    #                        else: q = sq.delete(q, key)  # bound elsewhere, deleting, ...
    #   pod DELETED:         snap = snap.without_pod(pod); q = sq.delete(q, key)
    #                        + on_cluster_event for sq.pod_events(old, None)
    # worker loop:
    q, key = sq.pop(q, clock.now())          # None: wait for sq.next_wakeup(q) or an event
    pod = pod_cache[key]
    view = s.SchedulingView(pod, snap)
    decision = s.decide(view)
    commands = s.commands_for(view, decision, clock.now())   # == s.schedule(view, now)
    if decision.node:
        snap = snap.assume(pod, decision.node)   # before the Bind is sent
        ok = executor.apply(commands)            # POST .../pods/<name>/binding; the
                                                 # engine does this in the background
                                                 # and goes on to the next pod
        if ok: q = sq.done(q, key)               # the watch will confirm the assumption
        else:  snap = snap.forget(pod); q = sq.retry(q, key, clock.now())
               # + on_cluster_event(q, "AssignedPodDelete", now): the room is free
    elif decision.message:
        executor.apply(commands)
        q = sq.mark_unschedulable(q, key, clock.now(), decision.rejected_by)
    else:
        q = sq.done(q, key)

The assumed pod stays in the snapshot until the informer shows it bound (``with_pod``
confirms it), its binding fails (``forget``) or it is deleted (``without_pod``).
Kubernetes does not expire an assumed pod on a timer either (its
``durationToExpireAssumedPod`` is 0).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import attrs
import numpy as np

from kstate.api.helpers import get_condition, object_reference, set_condition, with_status
from kstate.api.objects import Pod, PodCondition
from kstate.clock import rfc3339
from kstate.control.commands import Bind, Command, Record, Update
from kstate.control.scheduling import reference, vectorised
from kstate.control.scheduling.facts import PodFacts, pod_facts, pod_key
from kstate.control.scheduling.plugins import SchedulerSettings, Weights, failure_message
from kstate.control.scheduling.reference import Top
from kstate.control.scheduling.snapshot import ClusterSnapshot

REASON_FAILED = "FailedScheduling"
DEFAULTS = SchedulerSettings()


@attrs.frozen
class SchedulingView:
    """What one scheduling cycle may look at."""

    pod: Pod
    cluster: ClusterSnapshot


@attrs.frozen
class Decision:
    """How a cycle ended: ``node`` chosen, or ``message`` explaining why none fits, or
    neither (the pod is not ours to place, or already assumed)."""

    outcome: Literal["bind", "unschedulable", "skip"]
    node: str = ""
    message: str = ""
    #: filters that rejected some node (the queue wakes the pod only for their events)
    rejected_by: frozenset[str] = frozenset()


SKIP = Decision("skip")


def wants(pod: Pod, settings: SchedulerSettings = DEFAULTS) -> bool:
    """Whether ``pod`` waits for this scheduler: unbound, not being deleted, ours."""
    return (not pod.spec.node_name and not pod.metadata.deletion_timestamp
            and (pod.spec.scheduler_name or settings.scheduler_name) == settings.scheduler_name)


def decide(view: SchedulingView, settings: SchedulerSettings = DEFAULTS) -> Decision:
    """The placement of ``view.pod`` on ``view.cluster``, as data."""
    pod, cluster = view.pod, view.cluster
    if not wants(pod, settings) or cluster.is_assumed(pod_key(pod)):
        return SKIP
    facts = pod_facts(pod)
    if facts.error:
        return Decision("unschedulable", message=f"pod has invalid resource requests: "
                                                 f"{facts.error}")
    return place(facts, cluster, settings)


def best(pod: PodFacts, cluster: ClusterSnapshot, settings: SchedulerSettings) -> Top:
    """The best-scoring feasible nodes for ``pod`` (indices in ``cluster.nodes``), or
    none and every node's rejection.

    The size of the cluster decides the engine, here and nowhere else: the numpy columns
    from ``settings.vectorise_from`` nodes up, the plain scan below (faster on a handful
    of nodes; the same result, as the Hypothesis tests show). The engine and the model
    checker both call this, with the same settings, through ``place`` and ``tied``.
    """
    if len(cluster) >= settings.vectorise_from:
        return vectorised.best(pod, cluster.nodes, cluster.columns, settings)
    return reference.best(pod, cluster.nodes, settings)


def pick(pod: PodFacts, cluster: ClusterSnapshot, top: Sequence[int]) -> int:
    """The one node of ``top`` the pod goes to: the largest ``tie_key`` (a stable hash of
    pod uid and node name, computed for all of them at once over the snapshot's column
    of node hashes) — Kubernetes picks at random, which the model checker explores."""
    if len(top) == 1:
        return top[0]
    indices = np.asarray(top, dtype=np.int64)
    return int(indices[np.argmax(vectorised.mix_array(pod.hash, cluster.columns.tie[indices]))])


def place(pod: PodFacts, cluster: ClusterSnapshot, settings: SchedulerSettings) -> Decision:
    """Filters, scores and the pick for already-parsed pod facts: the placement."""
    top, rejected = best(pod, cluster, settings)
    if top:
        return Decision("bind", node=cluster.nodes[pick(pod, cluster, top)].name)
    rejections = [r for _, r in rejected]
    return Decision(
        "unschedulable",
        message=failure_message(len(cluster), rejections),
        rejected_by=frozenset(plugin for plugin, _ in rejections),
    )


def tied(view: SchedulingView, settings: SchedulerSettings = DEFAULTS) -> tuple[str, ...]:
    """The nodes the pod could go to with the same best score: the set ``place`` picks
    from (by a stable hash; Kubernetes at random). Empty when the pod does not fit."""
    pod, cluster = view.pod, view.cluster
    if not wants(pod, settings) or cluster.is_assumed(pod_key(pod)):
        return ()
    facts = pod_facts(pod)
    if facts.error:
        return ()
    return tuple(cluster.nodes[i].name for i in best(facts, cluster, settings)[0])


def commands_for(view: SchedulingView, decision: Decision, now: float) -> list[Command]:
    """The commands that carry out ``decision``."""
    pod = view.pod
    meta = pod.metadata
    if decision.outcome == "bind":
        return [Bind(meta.namespace, meta.name, meta.uid, decision.node)]
    if decision.outcome == "skip":
        return []
    commands: list[Command] = [
        Record(object_reference(pod), REASON_FAILED, decision.message, "Warning")
    ]
    condition = PodCondition(type="PodScheduled", status="False", reason="Unschedulable",
                             message=decision.message, last_transition_time=rfc3339(now))
    conditions = set_condition(pod.status.conditions, condition)
    if get_condition(conditions, "PodScheduled") != get_condition(
            pod.status.conditions, "PodScheduled"):
        commands.append(Update(with_status(pod, conditions=conditions), subresource="status"))
    return commands


def schedule(
    view: SchedulingView, now: float, settings: SchedulerSettings = DEFAULTS
) -> list[Command]:
    """The reconciler: ``Bind`` the pod to the best node, or explain why none fits.

    >>> from kstate.api.meta import ObjectMeta
    >>> from kstate.api.objects import Container, Node, NodeStatus, PodSpec
    >>> from kstate.api.frozen import FrozenDict
    >>> node = Node(metadata=ObjectMeta(name="n1"), status=NodeStatus(
    ...     allocatable=FrozenDict(cpu="4", memory="32Gi", pods="110")))
    >>> pod = Pod(metadata=ObjectMeta(name="web", namespace="default", uid="u1"),
    ...           spec=PodSpec(containers=(Container(name="c", image="x"),)))
    >>> schedule(SchedulingView(pod, ClusterSnapshot.build([node])), now=0.0)
    [Bind(namespace='default', name='web', uid='u1', node='n1')]
    """
    return commands_for(view, decide(view, settings), now)


__all__ = [
    "DEFAULTS",
    "REASON_FAILED",
    "ClusterSnapshot",
    "Decision",
    "SchedulerSettings",
    "SchedulingView",
    "Weights",
    "best",
    "commands_for",
    "decide",
    "pick",
    "place",
    "schedule",
    "tied",
    "wants",
]
