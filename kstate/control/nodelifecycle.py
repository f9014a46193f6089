"""The node lifecycle controller: failure detection, NoExecute taints, eviction, drain.

Where it sits: ``kstate/control`` — a pure reconciler over the whole cluster (Kubernetes'
``monitorNodeHealth`` pass), run every few seconds by the controller manager and as one
action by the model checker.

One pass, in Kubernetes' order:

1. **Health.** A node whose heartbeat (its Lease's ``renewTime``, or the Ready
   condition's ``lastHeartbeatTime``) is older than the grace period (40 s by default)
   goes Ready=Unknown — the Node machine's ``grace_expired`` — and its pods are marked
   lost (the Pod machine's ``node_lost``: phase Unknown, Ready=False), so endpoints drop
   them at once.
2. **Disruption.** If *every* node looks down, the control plane is the likelier fault
   (a partition between it and the nodes): no node is tainted and existing NoExecute
   taints are removed, so nothing is evicted. If a large share is down, tainting slows
   (secondary rate) or stops (small clusters), as in Kubernetes.
3. **Taints.** Ready=False -> ``node.kubernetes.io/not-ready``, Ready=Unknown ->
   ``node.kubernetes.io/unreachable``, each as NoSchedule (no new pods; follows the
   condition) and NoExecute (evicts); adding a NoExecute taint is rate limited
   (``--node-eviction-rate``, one node per 10 s by default); removing or swapping one
   never is.
4. **Eviction.** Pods that do not tolerate a node's NoExecute taints are deleted when
   their toleration runs out (``tolerationSeconds``, 300 s added by admission).
5. **Drain.** A node marked draining (cordoned, ``kstate.io/draining``) has its pods
   evicted; when none is left the mark is removed (Node machine ``drained``).

Nodes are taken in name order; a node's pods in the order the view lists them (the
cache's, which has none in Kubernetes): ``reconcile_choices`` gives every order of the
pods a pass writes, for the model checker; ``reconcile`` is the first, the engine's.

Status and spec of one node are never written in the same pass (they would conflict on
resourceVersion); the next pass — level-triggered — picks up where this one left off.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

import attrs

from kstate.api import visible
from kstate.api.frozen import FrozenDict
from kstate.api.helpers import get_condition, object_reference
from kstate.api.lifecycle import DRAINING_ANNOTATION, fire, node_state, object_name, pod_state
from kstate.api.objects import Lease, Node, Pod, Taint
from kstate.clock import parse_rfc3339, rfc3339
from kstate.control import orders
from kstate.control.commands import Command, Delete, Evict, Record, Remember, Update
from kstate.control.taints import NOT_READY, UNREACHABLE, eviction_time
from kstate.machines.pod import ACTIVE_STATES

LIMITER = "taint-limiter"
_LOST_FROM = frozenset({"Scheduled", "ContainerCreating", "ImagePullBackOff", "Running",
                        "Ready", "CrashLoopBackOff"})


@attrs.frozen
class NodeLifecycleSettings:
    """Kubernetes' kube-controller-manager defaults (flags of the same names)."""

    grace_period: float = 40.0  # --node-monitor-grace-period (50 s since 1.32)
    eviction_rate: float = 0.1  # --node-eviction-rate: nodes tainted per second
    secondary_eviction_rate: float = 0.01  # --secondary-node-eviction-rate
    unhealthy_zone_threshold: float = 0.55  # --unhealthy-zone-threshold
    large_cluster_threshold: int = 50  # --large-cluster-size-threshold
    #: Kubernetes' rule; turning it off exists only to show the model checker finding
    #: the mass eviction it prevents (tests/verify/test_seeded_bugs.py).
    spare_full_disruption: bool = True


@attrs.frozen
class NodeLifecycleView:
    """The whole cluster as the controller's cache holds it, plus its local memory."""

    nodes: tuple[Node, ...]
    leases: Mapping[str, Lease]  # by node name (namespace kube-node-lease)
    pods: tuple[Pod, ...]  # pods bound to nodes
    last_taint: float | None = None  # when the taint rate limiter was last used


def reconcile(
    view: NodeLifecycleView, now: float,
    settings: NodeLifecycleSettings = NodeLifecycleSettings(),
) -> list[Command]:
    commands: list[Command] = []
    by_node: dict[str, list[Pod]] = {}
    for pod in view.pods:
        by_node.setdefault(pod.spec.node_name, []).append(pod)

    status_written: set[str] = set()
    health: dict[str, str] = {}
    for node in sorted(view.nodes, key=lambda n: n.metadata.name):
        name = node.metadata.name
        updated = _check_heartbeat(node, view.leases.get(name), now, settings)
        if updated is not None:
            commands.append(Update(updated, subresource="status"))
            status_written.add(name)
            node = updated
        health[name] = _ready_status(node)
        if health[name] == "Unknown":
            commands += _mark_pods_lost(by_node.get(name, ()), now)

    rate, full = _disruption(list(health.values()), settings)
    if full and not settings.spare_full_disruption:
        rate, full = settings.eviction_rate, False
    last = view.last_taint
    for node in sorted(view.nodes, key=lambda n: n.metadata.name):
        name = node.metadata.name
        if name in status_written or node.metadata.deletion_timestamp:
            continue
        tainted, used_limiter = _retaint(node, _ready_status(node), rate, full, last, now)
        if tainted is not None:
            commands.append(Update(tainted))
            if used_limiter:
                last = now
                commands.append(Remember(LIMITER, now))
            continue  # one spec write per node per pass
        pods = by_node.get(name, ())
        commands += _evict_intolerant(node, pods, now)
        commands += _drain(node, pods)
    return commands


def reconcile_choices(
    view: NodeLifecycleView, now: float,
    settings: NodeLifecycleSettings = NodeLifecycleSettings(), *,
    reconcile: Callable[..., list[Command]] = reconcile,
) -> list[list[Command]]:
    """Every command list a pass may send: the pods it marks lost or evicts, in every
    order (Kubernetes lists them from its cache, in no order: ``orders``). The first is
    ``reconcile``'s on the view as given (the engine's); ``reconcile`` may be swapped (a
    seeded bug gets its every order too)."""
    return orders.every_order(reconcile, view, "pods", now, settings)


# --------------------------------------------------------------------------- health


def _ready_status(node: Node) -> str:
    cond = get_condition(node.status.conditions, "Ready")
    return cond.status if cond is not None else "Unknown"


def _last_heartbeat(node: Node, lease: Lease | None) -> float:
    times = [parse_rfc3339(node.metadata.creation_timestamp)] \
        if node.metadata.creation_timestamp else [float("-inf")]
    cond = get_condition(node.status.conditions, "Ready")
    if cond is not None and cond.last_heartbeat_time:
        times.append(parse_rfc3339(cond.last_heartbeat_time))
    if lease is not None and lease.spec.renew_time:
        times.append(parse_rfc3339(lease.spec.renew_time))
    return max(times)


def _check_heartbeat(
    node: Node, lease: Lease | None, now: float, settings: NodeLifecycleSettings
) -> Node | None:
    """The node with Ready=Unknown if its heartbeat is older than the grace period."""
    cond = get_condition(node.status.conditions, "Ready")
    if cond is not None and cond.status == "Unknown":
        return None
    if now - _last_heartbeat(node, lease) <= settings.grace_period:
        return None
    after = fire("node", node_state(node), "grace_expired", obj=object_name(node))
    message = ("Kubelet stopped posting node status." if cond is not None
               else "Kubelet never posted node status.")
    return visible.show(node, after, now, reason="NodeStatusUnknown", message=message,
                        heartbeat=cond.last_heartbeat_time if cond is not None else "")


def _mark_pods_lost(pods: Iterable[Pod], now: float) -> list[Command]:
    """Pods on an unreachable node: the Pod machine's ``node_lost``, shown as its
    Unknown state declares (phase Unknown, Ready=False) so no Service keeps sending them
    traffic."""
    out: list[Command] = []
    for pod in pods:
        state = pod_state(pod)
        if state not in _LOST_FROM:
            continue
        after = fire("pod", state, "node_lost", obj=object_name(pod))
        lost = visible.show(pod, after, now, reason="NodeLost",
                            message="the node stopped reporting")
        out.append(Update(lost, subresource="status"))
    return out


# --------------------------------------------------------------------------- taints


def _disruption(readiness: list[str], settings: NodeLifecycleSettings) -> tuple[float, bool]:
    """(tainting rate, full disruption) for the cluster's share of not-ready nodes."""
    total = len(readiness)
    not_ready = sum(1 for status in readiness if status != "True")
    if total and not_ready == total:
        return 0.0, True  # every node down: suspect the control plane, evict nobody
    if not_ready > 2 and not_ready / total >= settings.unhealthy_zone_threshold:
        small = total <= settings.large_cluster_threshold
        return (0.0 if small else settings.secondary_eviction_rate), False
    return settings.eviction_rate, False


def full_disruption(nodes: Iterable[Node]) -> bool:
    """Every node looks down: the case where Kubernetes stops all evictions."""
    return _disruption([_ready_status(n) for n in nodes], NodeLifecycleSettings())[1]


def _retaint(
    node: Node, ready: str, rate: float, full: bool, last: float | None, now: float
) -> tuple[Node | None, bool]:
    """The node with its health taints corrected, and whether that used the rate limiter.

    NoSchedule (Kubernetes' TaintNodesByCondition) simply follows the Ready condition,
    so no new pod lands on a sick node. NoExecute — the one that evicts — is added only
    within the rate limit and never in full disruption; removing or swapping it is free.
    """
    health = {"False": NOT_READY, "Unknown": UNREACHABLE}.get(ready)
    taints = [t for t in node.spec.taints if t.key not in (NOT_READY, UNREACHABLE)]
    old = {(t.key, t.effect): t for t in node.spec.taints if t.key in (NOT_READY, UNREACHABLE)}
    if health is not None:
        taints.append(old.get((health, "NoSchedule")) or _taint(health, "NoSchedule", now))
    used = False
    evicting = [t for (_, effect), t in old.items() if effect == "NoExecute"]
    if health is not None and not full:
        if (health, "NoExecute") in old:
            taints.append(old[(health, "NoExecute")])
        elif evicting:  # swap not-ready <-> unreachable: never rate limited
            taints.append(_taint(health, "NoExecute", now))
        elif rate > 0 and (last is None or now - last >= 1.0 / rate):
            taints.append(_taint(health, "NoExecute", now))
            used = True
    if sorted(map(_taint_key, taints)) == sorted(map(_taint_key, node.spec.taints)):
        return None, False
    return _with_taints(node, taints), used


def _taint_key(t: Taint) -> tuple[str, str, str, str]:
    return (t.key, t.effect, t.value, t.time_added)


def _taint(key: str, effect: str, now: float) -> Taint:
    return Taint(key=key, effect=effect, time_added=rfc3339(now))


def _with_taints(node: Node, taints: list[Taint]) -> Node:
    return attrs.evolve(node, spec=attrs.evolve(node.spec, taints=tuple(taints)))


# --------------------------------------------------------------------------- evict


def _evict_intolerant(node: Node, pods: Iterable[Pod], now: float) -> list[Command]:
    out: list[Command] = []
    for pod in pods:
        if pod.metadata.deletion_timestamp or pod_state(pod) not in ACTIVE_STATES:
            continue
        deadline = eviction_time(pod.spec.tolerations, node.spec.taints)
        if deadline is None or now < deadline:
            continue
        ref = object_reference(pod)
        out.append(Record(ref, "TaintManagerEviction",
                          f"Marking for deletion Pod {object_name(pod)}"))
        out.append(Delete("Pod", pod.metadata.namespace, pod.metadata.name,
                          uid=pod.metadata.uid))
    return out


def _drain(node: Node, pods: Iterable[Pod]) -> list[Command]:
    if node_state(node) != "Draining":
        return []
    remaining = [p for p in pods if pod_state(p) in ACTIVE_STATES]
    if remaining:
        return [Evict(p.metadata.namespace, p.metadata.name, p.metadata.uid, reason="drain")
                for p in remaining]
    fire("node", "Draining", "drained", obj=object_name(node))
    annotations = FrozenDict({k: v for k, v in node.metadata.annotations.items()
                              if k != DRAINING_ANNOTATION})
    return [Update(attrs.evolve(node, metadata=attrs.evolve(node.metadata,
                                                            annotations=annotations)))]


__all__ = ["LIMITER", "NodeLifecycleSettings", "NodeLifecycleView", "full_disruption",
           "reconcile", "reconcile_choices"]
