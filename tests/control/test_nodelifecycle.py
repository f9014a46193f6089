"""The node lifecycle reconciler: heartbeats, taints, eviction, disruption, drain."""

from __future__ import annotations

from typing import Any

import attrs

from kstate.api.codec import from_dict
from kstate.api.lifecycle import DRAINING_ANNOTATION, node_state, pod_state
from kstate.api.objects import Lease, Node, Toleration
from kstate.clock import rfc3339
from kstate.control.commands import Delete, Evict, Record, Remember, Update
from kstate.control.nodelifecycle import (
    LIMITER,
    NodeLifecycleSettings,
    NodeLifecycleView,
    full_disruption,
    reconcile,
)
from kstate.control.taints import NOT_READY, UNREACHABLE, eviction_time
from tests.control.objects import T0, pod

#: A heartbeat newer than every ``now`` these tests use, for nodes that stay healthy.
RECENT = T0 + 10_000


def node(name: str, ready: str = "True", heartbeat: float = RECENT, taints: list[Any] = (),
         unschedulable: bool = False, annotations: dict[str, str] | None = None) -> Node:
    return from_dict(Node, {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "uid": f"uid-{name}", "resourceVersion": "4",
                     "creationTimestamp": rfc3339(T0 - 1000),
                     "annotations": annotations or {}},
        "spec": {"taints": list(taints), "unschedulable": unschedulable},
        "status": {"conditions": [{"type": "Ready", "status": ready,
                                   "lastHeartbeatTime": rfc3339(heartbeat),
                                   "lastTransitionTime": rfc3339(T0 - 500)}]},
    })


def lease(name: str, renewed: float) -> Lease:
    return from_dict(Lease, {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                             "metadata": {"name": name, "namespace": "kube-node-lease"},
                             "spec": {"holderIdentity": name,
                                      "renewTime": rfc3339(renewed)}})


def taint(key: str, added: float, effect: str = "NoExecute") -> dict[str, str]:
    return {"key": key, "effect": effect, "timeAdded": rfc3339(added)}


def health(key: str, added: float) -> list[dict[str, str]]:
    """The pair of taints the controller keeps on a sick node."""
    return [taint(key, added, "NoSchedule"), taint(key, added)]


def run(nodes, pods=(), leases=None, now=T0, last=None, **settings):
    view = NodeLifecycleView(tuple(nodes), leases or {}, tuple(pods), last)
    return reconcile(view, now, NodeLifecycleSettings(**settings))


def evicting(n: Node) -> list[str]:
    return [t.key for t in n.spec.taints if t.effect == "NoExecute"]


def blocking(n: Node) -> list[str]:
    return [t.key for t in n.spec.taints if t.effect == "NoSchedule"]


def status_updates(out):
    return {c.obj.metadata.name: c.obj for c in out
            if isinstance(c, Update) and c.subresource == "status"}


def spec_updates(out):
    return {c.obj.metadata.name: c.obj for c in out
            if isinstance(c, Update) and not c.subresource}


def test_healthy_cluster_needs_nothing() -> None:
    assert run([node("a"), node("b")], now=T0 + 10) == []
    assert run([node("a", heartbeat=T0)], now=T0 + 40) == []


def test_lease_renewal_counts_as_heartbeat() -> None:
    out = run([node("a", heartbeat=T0), node("b")], leases={"a": lease("a", T0 + 100)},
              now=T0 + 120)
    assert "a" not in status_updates(out)


def test_silent_node_goes_unknown_and_its_pods_are_lost() -> None:
    p = pod("p", node="a", phase="Running", ready=True)
    out = run([node("a", heartbeat=T0), node("b")], [p], now=T0 + 41)
    a = status_updates(out)["a"]
    assert node_state(a) == "Unknown"
    assert a.status.conditions[0].reason == "NodeStatusUnknown"
    lost = status_updates(out)["p"]
    assert pod_state(lost) == "Unknown" and lost.status.phase == "Unknown"
    # no spec write for a node whose status was written this pass
    assert "a" not in spec_updates(out)


def test_grace_period_is_configurable() -> None:
    assert run([node("a", heartbeat=T0), node("b")], now=T0 + 45, grace_period=50) == []


def test_unknown_node_gets_unreachable_taint_then_pods_evicted_after_toleration() -> None:
    nodes = [node("a", ready="Unknown"), node("b")]
    out = run(nodes, now=T0 + 60)
    tainted = spec_updates(out)["a"]
    assert evicting(tainted) == [UNREACHABLE] and blocking(tainted) == [UNREACHABLE]
    assert Remember(LIMITER, T0 + 60) in out

    tolerant = pod("p", node="a", phase="Running")
    tolerant = attrs.evolve(tolerant, spec=attrs.evolve(tolerant.spec, tolerations=(
        Toleration(key=UNREACHABLE, operator="Exists", effect="NoExecute",
                   toleration_seconds=300),)))
    intolerant = pod("q", node="a", phase="Running")
    nodes = [node("a", ready="Unknown", taints=health(UNREACHABLE, T0 + 60)), node("b")]
    out = run(nodes, [tolerant, intolerant], now=T0 + 61)
    assert [d.name for d in out if isinstance(d, Delete)] == ["q"]
    assert any(isinstance(r, Record) and r.reason == "TaintManagerEviction" for r in out)
    out = run(nodes, [tolerant], now=T0 + 60 + 300)
    assert [d.name for d in out if isinstance(d, Delete)] == ["p"]


def test_not_ready_node_gets_not_ready_taint_and_recovery_removes_it() -> None:
    out = run([node("a", ready="False"), node("b")], now=T0 + 1)
    assert evicting(spec_updates(out)["a"]) == [NOT_READY]
    assert blocking(spec_updates(out)["a"]) == [NOT_READY]
    out = run([node("a", taints=[taint(NOT_READY, T0)]), node("b")], now=T0 + 2)
    assert spec_updates(out)["a"].spec.taints == ()


def test_tainting_is_rate_limited_but_swapping_is_not() -> None:
    nodes = [node("a", ready="Unknown"), node("b", ready="Unknown"), node("c"), node("d"),
             node("e"), node("f"), node("g")]
    out = run(nodes, now=T0 + 100)
    tainted = {name for name, n in spec_updates(out).items() if evicting(n)}
    assert tainted == {"a"}  # one NoExecute taint per 10 s; NoSchedule for both
    assert {name for name, n in spec_updates(out).items() if blocking(n)} == {"a", "b"}
    out = run(nodes, now=T0 + 105, last=T0 + 100)
    assert not any(evicting(n) for n in spec_updates(out).values())
    nodes[0] = node("a", ready="Unknown", taints=health(UNREACHABLE, T0 + 100))
    out = run(nodes, now=T0 + 110, last=T0 + 100)
    assert {name for name, n in spec_updates(out).items() if evicting(n)} == {"b"}
    swapped = run([node("a", ready="False", taints=[taint(UNREACHABLE, T0)]), node("b")],
                  now=T0 + 101, last=T0 + 100)
    assert evicting(spec_updates(swapped)["a"]) == [NOT_READY]


def test_whole_cluster_down_evicts_nobody_and_lifts_taints() -> None:
    """A control-plane partition looks like every node dying: Kubernetes stops evictions."""
    nodes = [node("a", ready="Unknown", taints=[taint(UNREACHABLE, T0)]),
             node("b", ready="Unknown"), node("c", ready="Unknown")]
    assert full_disruption(nodes)
    p = pod("p", node="a", phase="Running")
    out = run(nodes, [p], now=T0 + 1000)
    assert not [c for c in out if isinstance(c, Delete)]
    assert not any(evicting(n) for n in spec_updates(out).values())
    assert evicting(nodes[0]) and not evicting(spec_updates(out)["a"])


def test_partial_disruption_in_a_small_cluster_stops_new_taints() -> None:
    nodes = [node(n, ready="Unknown") for n in "abc"] + [node("d"), node("e")]
    assert not any(evicting(n) for n in spec_updates(run(nodes, now=T0 + 100)).values())


def test_drain_evicts_then_clears_the_mark() -> None:
    draining = node("a", unschedulable=True, annotations={DRAINING_ANNOTATION: "true"})
    assert node_state(draining) == "Draining"
    p = pod("p", node="a", phase="Running", ready=True)
    out = run([draining, node("b")], [p], now=T0 + 1)
    assert [e.name for e in out if isinstance(e, Evict)] == ["p"]
    out = run([draining, node("b")], [], now=T0 + 1)
    done = spec_updates(out)["a"]
    assert node_state(done) == "Cordoned"


def test_eviction_time_rules() -> None:
    from kstate.api.objects import Taint
    t = Taint(key=UNREACHABLE, effect="NoExecute", time_added=rfc3339(T0))
    forever = Toleration(key=UNREACHABLE, operator="Exists", effect="NoExecute")
    short = Toleration(operator="Exists", toleration_seconds=10)
    assert eviction_time((), [t]) == T0
    assert eviction_time((forever,), [t]) is None
    assert eviction_time((forever, short), [t]) == T0 + 10
    assert eviction_time((), []) is None
