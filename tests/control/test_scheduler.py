"""The scheduler as a pure function: views in, Bind / FailedScheduling out.

Every decision test runs on both placement engines (reference scan and numpy), which
must agree; the property test of that agreement is in test_scheduler_equivalence.py.
"""

from __future__ import annotations

import doctest
import importlib
from typing import Any

import pytest

from kstate.api.helpers import get_condition
from kstate.api.objects import Pod
from kstate.control.commands import Bind, Record, Update
from kstate.control.scheduler import (
    ClusterSnapshot,
    SchedulerSettings,
    SchedulingView,
    Weights,
    decide,
    schedule,
)
from kstate.control.scheduling.facts import DEFAULT_MEMORY, DEFAULT_MILLI_CPU, pod_facts
from kstate.control.scheduling.plugins import (
    balanced_allocation,
    least_allocated,
    nodes_to_find,
    spread,
)
from tests.control.test_scheduler_builders import BOTH, T0, decide_on, node, pod, taint

UNREACHABLE = "node.kubernetes.io/unreachable"


def only(decision: Any) -> str:
    assert decision.outcome == "bind", decision
    return str(decision.node)


def failure(decision: Any) -> str:
    assert decision.outcome == "unschedulable", decision
    return str(decision.message)


# ------------------------------------------------------------------ commands


def test_binds_a_pending_pod_through_the_binding_subresource() -> None:
    p = pod("web", cpu="100m")
    commands = schedule(SchedulingView(p, ClusterSnapshot.build([node("n1")])), now=T0)
    assert commands == [Bind("default", "web", "uid-web", "n1")]


def test_failure_records_an_event_and_the_pod_scheduled_condition() -> None:
    p = pod("web", cpu="8")
    view = SchedulingView(p, ClusterSnapshot.build([node("n1")]))
    record, update = schedule(view, now=T0)
    message = "0/1 nodes are available: 1 Insufficient cpu."
    assert isinstance(record, Record)
    assert (record.reason, record.type, record.message) == ("FailedScheduling", "Warning",
                                                            message)
    assert (record.involved.kind, record.involved.name) == ("Pod", "web")
    assert isinstance(update, Update) and update.subresource == "status"
    cond = get_condition(update.obj.status.conditions, "PodScheduled")  # type: ignore[attr-defined]
    assert cond is not None
    assert (cond.status, cond.reason, cond.message) == ("False", "Unschedulable", message)
    assert cond.last_transition_time == "2023-11-14T22:13:20Z"

    # Retried with nothing changed: the event again, but no status write.
    again = SchedulingView(update.obj, view.cluster)  # type: ignore[arg-type]
    assert [type(c) for c in schedule(again, now=T0 + 60)] == [Record]


@pytest.mark.parametrize("p", [
    pod("bound", node_name="n1"),
    pod("deleting", deleting=True),
    pod("other", scheduler="my-scheduler"),
], ids=["bound", "deleting", "other-scheduler"])
def test_pods_that_are_not_ours_are_left_alone(p: Pod) -> None:
    assert schedule(SchedulingView(p, ClusterSnapshot.build([node("n1")])), now=T0) == []


def test_an_assumed_pod_is_not_scheduled_twice() -> None:
    p = pod("web")
    snap = ClusterSnapshot.build([node("n1"), node("n2")], assumed=[(p, "n1")])
    # The informer still shows the pod unbound: its binding is in flight.
    assert schedule(SchedulingView(p, snap), now=T0) == []


# ------------------------------------------------------------------ resources


@pytest.mark.parametrize("settings", BOTH)
def test_resource_fit(settings: SchedulerSettings) -> None:
    nodes = [node("small", cpu="1", memory="1Gi"), node("big", cpu="8", memory="64Gi")]
    assert only(decide_on(pod("p", cpu="2", memory="2Gi"), nodes, settings=settings)) == "big"
    assert failure(decide_on(pod("p", cpu="9"), nodes, settings=settings)) == (
        "0/2 nodes are available: 2 Insufficient cpu.")
    assert failure(decide_on(pod("p", cpu="2", memory="100Gi"), nodes, settings=settings)) == (
        "0/2 nodes are available: 1 Insufficient cpu, 2 Insufficient memory.")


@pytest.mark.parametrize("settings", BOTH)
def test_placed_pods_use_up_room_and_requests_are_summed(settings: SchedulerSettings) -> None:
    n = node("n1", cpu="1", pods="3")
    placed = [pod("a", cpu="300m", node_name="n1"), pod("b", cpu="200m", containers=2,
                                                         node_name="n1")]
    # 300m + 2 x 200m = 700m used: 300m left.
    assert only(decide_on(pod("p", cpu="300m"), [n], placed, settings=settings)) == "n1"
    assert failure(decide_on(pod("p", cpu="301m"), [n], placed, settings=settings)) == (
        "0/1 nodes are available: 1 Insufficient cpu.")
    full = [*placed, pod("c", node_name="n1")]
    assert failure(decide_on(pod("p"), [n], full, settings=settings)) == (
        "0/1 nodes are available: 1 Too many pods.")


@pytest.mark.parametrize("settings", BOTH)
def test_requests_default_to_zero_for_fit(settings: SchedulerSettings) -> None:
    n = node("n1", cpu="1", memory="1Gi")
    hog = [pod("hog", cpu="1", memory="1Gi", node_name="n1")]
    assert only(decide_on(pod("besteffort"), [n], hog, settings=settings)) == "n1"
    # A zero request is never "insufficient", even on an over-committed node.
    assert only(decide_on(pod("p", cpu="0", memory="0"), [n], hog, settings=settings)) == "n1"


@pytest.mark.parametrize("settings", BOTH)
def test_finished_pods_free_their_room_and_terminating_ones_do_not(
    settings: SchedulerSettings,
) -> None:
    n = node("n1", cpu="1")
    done = [pod("done", cpu="1", node_name="n1", phase="Succeeded")]
    dying = [pod("dying", cpu="1", node_name="n1", phase="Running", deleting=True)]
    assert only(decide_on(pod("p", cpu="1"), [n], done, settings=settings)) == "n1"
    assert failure(decide_on(pod("p", cpu="1"), [n], dying, settings=settings)) == (
        "0/1 nodes are available: 1 Insufficient cpu.")


@pytest.mark.parametrize("settings", BOTH)
def test_assumed_pods_take_room_before_their_binding_is_visible(
    settings: SchedulerSettings,
) -> None:
    """Two pods that each fit alone on the last free node must not both be bound there:
    the second sees the first as assumed."""
    nodes = [node("full", cpu="1"), node("last", cpu="1")]
    placed = [pod("old", cpu="1", node_name="full")]
    first, second = pod("first", cpu="600m"), pod("second", cpu="600m")
    snap = ClusterSnapshot.build(nodes, placed)
    view = SchedulingView(first, snap)
    assert only(decide(view, settings)) == "last"
    assert only(decide(SchedulingView(second, snap), settings)) == "last"  # alone: fits

    snap = snap.assume(first, "last")
    assert failure(decide(SchedulingView(second, snap), settings)) == (
        "0/2 nodes are available: 2 Insufficient cpu.")
    # The binding shows up through the informer: still taken, no longer assumed.
    bound = pod("first", cpu="600m", node_name="last")
    snap = snap.with_pod(bound)
    assert not snap.is_assumed("default/first")
    assert failure(decide(SchedulingView(second, snap), settings)).endswith("2 Insufficient cpu.")
    # Had the binding failed instead, forgetting it frees the room.
    freed = ClusterSnapshot.build(nodes, placed).assume(first, "last").forget(first)
    assert only(decide(SchedulingView(second, freed), settings)) == "last"


# ------------------------------------------------------------------ cordon and taints


@pytest.mark.parametrize("settings", BOTH)
def test_node_unschedulable(settings: SchedulerSettings) -> None:
    nodes = [node("n1", unschedulable=True)]
    assert failure(decide_on(pod("p"), nodes, settings=settings)) == (
        "0/1 nodes are available: 1 node(s) were unschedulable.")
    tolerant = pod("p", tolerations=[{"key": "node.kubernetes.io/unschedulable",
                                      "operator": "Exists", "effect": "NoSchedule"}])
    assert only(decide_on(tolerant, nodes, settings=settings)) == "n1"
    everything = pod("p", tolerations=[{"operator": "Exists"}])
    assert only(decide_on(everything, nodes, settings=settings)) == "n1"


TOLERATION_MATRIX = [
    # toleration, taint, tolerated
    ({"key": "k", "operator": "Equal", "value": "v", "effect": "NoSchedule"},
     taint("k", "v"), True),
    ({"key": "k", "value": "v", "effect": "NoSchedule"}, taint("k", "v"), True),  # "" = Equal
    ({"key": "k", "operator": "Equal", "value": "w", "effect": "NoSchedule"},
     taint("k", "v"), False),
    ({"key": "k", "operator": "Equal", "value": "v"}, taint("k", "v", "NoExecute"), True),
    ({"key": "k", "operator": "Exists"}, taint("k", "anything"), True),
    ({"key": "j", "operator": "Exists"}, taint("k"), False),
    ({"operator": "Exists"}, taint("k", "v", "NoExecute"), True),
    ({"operator": "Exists", "effect": "NoSchedule"}, taint("k", "v", "NoExecute"), False),
    ({"key": "k", "operator": "Exists", "effect": "NoExecute"}, taint("k"), False),
    ({"key": "k", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
     taint("k", effect="NoExecute"), True),
]


@pytest.mark.parametrize("settings", BOTH)
@pytest.mark.parametrize(("toleration", "node_taint", "tolerated"), TOLERATION_MATRIX)
def test_toleration_matrix(settings: SchedulerSettings, toleration: dict[str, Any],
                           node_taint: dict[str, str], tolerated: bool) -> None:
    d = decide_on(pod("p", tolerations=[toleration]), [node("n1", taints=[node_taint])],
                  settings=settings)
    if tolerated:
        assert only(d) == "n1"
    else:
        assert failure(d) == (f"0/1 nodes are available: 1 node(s) had untolerated taint "
                              f"{{{node_taint['key']}: {node_taint['value']}}}.")


@pytest.mark.parametrize("settings", BOTH)
def test_prefer_no_schedule_never_filters(settings: SchedulerSettings) -> None:
    n = node("n1", taints=[taint("soft", effect="PreferNoSchedule")])
    assert only(decide_on(pod("p"), [n], settings=settings)) == "n1"


@pytest.mark.parametrize("settings", BOTH)
def test_the_first_untolerated_taint_is_reported(settings: SchedulerSettings) -> None:
    n = node("n1", taints=[taint("ok", "1"), taint("bad", "2", "NoExecute"), taint("worse")])
    d = decide_on(pod("p", tolerations=[{"key": "ok", "operator": "Exists"}]), [n],
                  settings=settings)
    assert failure(d) == "0/1 nodes are available: 1 node(s) had untolerated taint {bad: 2}."


@pytest.mark.parametrize("settings", BOTH)
def test_failure_message_counts_and_sorts_like_kubernetes(settings: SchedulerSettings) -> None:
    nodes = [node("a", cpu="1"), node("b", taints=[taint(UNREACHABLE, effect="NoExecute")]),
             node("c", taints=[taint(UNREACHABLE, effect="NoExecute")])]
    assert failure(decide_on(pod("p", cpu="2"), nodes, settings=settings)) == (
        "0/3 nodes are available: 1 Insufficient cpu, "
        "2 node(s) had untolerated taint {node.kubernetes.io/unreachable: }.")
    # Sorted as strings, like the Go code: "10 ..." before "2 ...".
    many = [node(f"t{i:02d}", taints=[taint("x")]) for i in range(10)] + [
        node("u1", unschedulable=True), node("u2", unschedulable=True)]
    assert failure(decide_on(pod("p"), many, settings=settings)) == (
        "0/12 nodes are available: 10 node(s) had untolerated taint {x: }, "
        "2 node(s) were unschedulable.")


@pytest.mark.parametrize("settings", BOTH)
def test_only_the_first_failing_filter_counts(settings: SchedulerSettings) -> None:
    n = node("n1", cpu="1", unschedulable=True, taints=[taint("x")], labels={"zone": "a"})
    d = decide_on(pod("p", cpu="2", node_selector={"zone": "b"}), [n], settings=settings)
    assert failure(d) == "0/1 nodes are available: 1 node(s) were unschedulable."
    assert d.rejected_by == frozenset({"NodeUnschedulable"})


def test_no_nodes_at_all() -> None:
    assert failure(decide_on(pod("p"), [])) == "no nodes available to schedule pods"


# ------------------------------------------------------------------ node affinity

LABELS = {"zone": "a", "cores": "16", "gpu": "yes"}


def expr(key: str, operator: str, *values: str) -> dict[str, Any]:
    return {"key": key, "operator": operator, "values": list(values)}


AFFINITY_CASES = [
    ([{"matchExpressions": [expr("zone", "In", "a", "b")]}], True),
    ([{"matchExpressions": [expr("zone", "In", "b")]}], False),
    ([{"matchExpressions": [expr("zone", "NotIn", "b")]}], True),
    ([{"matchExpressions": [expr("zone", "NotIn", "a")]}], False),
    ([{"matchExpressions": [expr("missing", "NotIn", "a")]}], True),
    ([{"matchExpressions": [expr("gpu", "Exists")]}], True),
    ([{"matchExpressions": [expr("missing", "Exists")]}], False),
    ([{"matchExpressions": [expr("missing", "DoesNotExist")]}], True),
    ([{"matchExpressions": [expr("gpu", "DoesNotExist")]}], False),
    ([{"matchExpressions": [expr("cores", "Gt", "8")]}], True),
    ([{"matchExpressions": [expr("cores", "Gt", "16")]}], False),
    ([{"matchExpressions": [expr("cores", "Lt", "32")]}], True),
    ([{"matchExpressions": [expr("cores", "Lt", "16")]}], False),
    ([{"matchExpressions": [expr("zone", "Gt", "1")]}], False),  # not an integer
    ([{"matchExpressions": [expr("missing", "Lt", "1")]}], False),
    # expressions of a term are ANDed, terms are ORed
    ([{"matchExpressions": [expr("zone", "In", "a"), expr("gpu", "In", "no")]}], False),
    ([{"matchExpressions": [expr("zone", "In", "b")]},
      {"matchExpressions": [expr("gpu", "In", "yes")]}], True),
    ([{}], False),  # an empty term matches nothing
    ([{"matchFields": [expr("metadata.name", "In", "n1")]}], True),
    ([{"matchFields": [expr("metadata.name", "NotIn", "n1")]}], False),
    ([{"matchFields": [expr("metadata.uid", "In", "n1")]}], False),
    ([{"matchExpressions": [expr("zone", "In", "a")],
       "matchFields": [expr("metadata.name", "In", "n2")]}], False),
]


@pytest.mark.parametrize("settings", BOTH)
@pytest.mark.parametrize(("terms", "matches"), AFFINITY_CASES)
def test_node_affinity_operators(settings: SchedulerSettings, terms: list[dict[str, Any]],
                                 matches: bool) -> None:
    d = decide_on(pod("p", terms=terms), [node("n1", labels=LABELS)], settings=settings)
    if matches:
        assert only(d) == "n1"
    else:
        assert failure(d) == (
            "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector.")


@pytest.mark.parametrize("settings", BOTH)
def test_node_selector_and_affinity_must_both_match(settings: SchedulerSettings) -> None:
    nodes = [node("a", labels={"zone": "a", "disk": "ssd"}), node("b", labels={"zone": "b"})]
    assert only(decide_on(pod("p", node_selector={"zone": "b"}), nodes,
                          settings=settings)) == "b"
    both = pod("p", node_selector={"zone": "a"},
               terms=[{"matchExpressions": [expr("disk", "In", "hdd")]}])
    assert failure(decide_on(both, nodes, settings=settings)) == (
        "0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector.")


# ------------------------------------------------------------------ host ports


PORT_CASES = [
    # wanted, in use, conflict
    (8080, 8080, True),
    (8080, 8081, False),
    ({"hostPort": 53, "protocol": "UDP"}, 53, False),
    ({"hostPort": 53, "protocol": "UDP"}, {"hostPort": 53, "protocol": "UDP"}, True),
    ({"hostPort": 80, "hostIP": "10.0.0.1"}, 80, True),  # in use on every address
    (80, {"hostPort": 80, "hostIP": "10.0.0.1"}, True),  # wants every address
    ({"hostPort": 80, "hostIP": "10.0.0.1"}, {"hostPort": 80, "hostIP": "10.0.0.2"}, False),
    ({"hostPort": 80, "hostIP": "10.0.0.1"}, {"hostPort": 80, "hostIP": "10.0.0.1"}, True),
]


@pytest.mark.parametrize("settings", BOTH)
@pytest.mark.parametrize(("wanted", "used", "conflict"), PORT_CASES)
def test_host_ports(settings: SchedulerSettings, wanted: Any, used: Any,
                    conflict: bool) -> None:
    placed = [pod("other", host_ports=[used], node_name="n1")]
    d = decide_on(pod("p", host_ports=[wanted]), [node("n1")], placed, settings=settings)
    if conflict:
        assert failure(d) == ("0/1 nodes are available: 1 node(s) didn't have free ports "
                              "for the requested pod ports.")
    else:
        assert only(d) == "n1"


@pytest.mark.parametrize("settings", BOTH)
def test_host_port_frees_when_its_pod_goes(settings: SchedulerSettings) -> None:
    other = pod("other", host_ports=[80], node_name="n1")
    snap = ClusterSnapshot.build([node("n1"), node("n2")], [other])
    for _ in range(5):
        assert only(decide(SchedulingView(pod("p", host_ports=[80]), snap), settings)) == "n2"
    snap = snap.without_pod(other)
    assert decide(SchedulingView(pod("p", host_ports=[80]), snap), settings).outcome == "bind"
    assert not snap.node("n1").ports  # type: ignore[union-attr]


# ------------------------------------------------------------------ scores


def test_least_allocated_and_balanced_allocation_values() -> None:
    snap = ClusterSnapshot.build([node("n1", cpu="4", memory="32Gi")])
    info = snap.nodes[0]
    p = pod_facts(pod("p", cpu="100m", memory="500Mi"))
    # cpu (4000-100)*100//4000 = 97, memory (32Gi-500Mi)*100//32Gi = 98 -> 97
    assert least_allocated(p, info) == 97
    # |0.025 - 0.0152587890625| / 2 = 0.0048706..., (1 - std) * 100 = 99.51 -> 99
    assert balanced_allocation(p, info) == 99
    # Unset requests count as 100m / 200 MiB for LeastAllocated only.
    best_effort = pod_facts(pod("be"))
    assert (best_effort.nonzero_cpu, best_effort.nonzero_memory) == (
        DEFAULT_MILLI_CPU, DEFAULT_MEMORY)
    assert least_allocated(best_effort, info) == (3900 * 100 // 4000 + (
        (32 * 2**30 - DEFAULT_MEMORY) * 100 // (32 * 2**30))) // 2
    assert balanced_allocation(best_effort, info) == 0  # skipped for best-effort pods


def test_least_allocated_ignores_resources_without_allocatable() -> None:
    snap = ClusterSnapshot.build([node("n1", cpu="4", memory=None)])
    assert least_allocated(pod_facts(pod("p", cpu="1")), snap.nodes[0]) == 75
    assert balanced_allocation(pod_facts(pod("p", cpu="1")), snap.nodes[0]) == 100


def test_spread_normalises_by_the_most_loaded_scored_node() -> None:
    placed = [pod(f"w{i}", owner="web", node_name="n1") for i in range(4)] + [
        pod("w9", owner="web", node_name="n2"), pod("x", owner="other", node_name="n3")]
    snap = ClusterSnapshot.build([node("n1"), node("n2"), node("n3")], placed)
    infos = list(snap.nodes)
    assert spread(pod_facts(pod("p", owner="web")), infos) == [0, 75, 100]
    assert spread(pod_facts(pod("p", owner="new")), infos) == [100, 100, 100]
    assert spread(pod_facts(pod("p")), infos) == [0, 0, 0]


@pytest.mark.parametrize("settings", BOTH)
def test_least_allocated_prefers_the_emptier_node(settings: SchedulerSettings) -> None:
    nodes = [node("busy"), node("idle")]
    placed = [pod("a", cpu="3", memory="16Gi", node_name="busy")]
    assert only(decide_on(pod("p", cpu="100m", memory="100Mi"), nodes, placed,
                          settings=settings)) == "idle"


@pytest.mark.parametrize("settings", BOTH)
def test_balanced_allocation_breaks_an_equal_least_allocated(
    settings: SchedulerSettings,
) -> None:
    # Both nodes end at LeastAllocated 50; "even" is balanced (cpu and memory both half
    # used), "skewed" is not — only BalancedAllocation can tell them apart.
    nodes = [node("even", cpu="4", memory="4Gi"), node("skewed", cpu="4", memory="4Gi")]
    placed = [pod("a", cpu="1", memory="1Gi", node_name="even"),
              pod("b", cpu="2", memory="0", node_name="skewed")]
    p = pod("p", cpu="1", memory="1Gi")
    assert only(decide_on(p, nodes, placed, settings=settings)) == "even"
    no_balance = SchedulerSettings(vectorise_from=settings.vectorise_from,
                                   weights=Weights(balanced_allocation=0))
    # Without it the tie-break decides: still deterministic.
    assert decide_on(p, nodes, placed, settings=no_balance) == decide_on(
        p, nodes, placed, settings=no_balance)


@pytest.mark.parametrize("settings", BOTH)
def test_pods_of_one_owner_spread_across_nodes(settings: SchedulerSettings) -> None:
    snap = ClusterSnapshot.build([node(f"n{i}") for i in range(3)])
    chosen = []
    for i in range(6):
        p = pod(f"web-{i}", owner="web", cpu="100m")
        n = only(decide(SchedulingView(p, snap), settings))
        chosen.append(n)
        snap = snap.assume(p, n)
    assert sorted(chosen) == ["n0", "n0", "n1", "n1", "n2", "n2"]


# ------------------------------------------------------------------ ties


def test_ties_are_broken_deterministically_and_spread_pods() -> None:
    nodes = [node(f"n{i}") for i in range(20)]
    picks = set()
    for i in range(40):
        p = pod(f"p{i}")
        first = decide_on(p, nodes)
        assert all(decide_on(p, nodes, settings=s) == first for s in BOTH)
        picks.add(first.node)
    # Identical empty nodes: the pod-dependent tie-break uses many of them.
    assert len(picks) > 10


# ------------------------------------------------------------------ candidates and bad input


@pytest.mark.parametrize("settings", BOTH)
def test_nodes_being_deleted_are_not_candidates(settings: SchedulerSettings) -> None:
    nodes = [node("gone", deleting=True), node("full", cpu="0")]
    assert failure(decide_on(pod("p", cpu="1"), nodes, settings=settings)) == (
        "0/1 nodes are available: 1 Insufficient cpu.")


@pytest.mark.parametrize("settings", BOTH)
def test_missing_allocatable_counts_as_zero_and_is_explained(
    settings: SchedulerSettings,
) -> None:
    nodes = [node("blank", cpu=None, memory=None, pods=None),
             node("nocpu", cpu=None), node("bad", cpu="lots")]
    d = decide_on(pod("p", cpu="100m"), nodes, settings=settings)
    assert failure(d) == (
        "0/3 nodes are available: 1 node(s) didn't report allocatable pods, "
        "3 node(s) didn't report allocatable cpu.")
    # A pod that asks for no CPU still fits where the pod count was reported.
    assert only(decide_on(pod("p"), nodes[1:], settings=settings)) in {"nocpu", "bad"}


def test_unparsable_pod_requests_are_reported_not_raised() -> None:
    d = decide_on(pod("p", cpu="lots"), [node("n1")])
    assert d.outcome == "unschedulable"
    assert d.message.startswith("pod has invalid resource requests: container 'c0'")


def test_nodes_to_find_is_kubernetes_adaptive_percentage() -> None:
    s = SchedulerSettings()
    assert [nodes_to_find(n, s) for n in (5, 99, 100, 1000, 5000, 50_000)] == [
        5, 99, 100, 420, 500, 2500]
    assert nodes_to_find(5000, SchedulerSettings(percentage_of_nodes_to_score=100)) == 5000
    assert nodes_to_find(5000, SchedulerSettings(percentage_of_nodes_to_score=1)) == 100


@pytest.mark.parametrize("settings", BOTH)
def test_only_a_window_of_feasible_nodes_is_scored(settings: SchedulerSettings) -> None:
    """percentageOfNodesToScore: with a 2-node window the pod lands on one of the first
    two feasible nodes of its scan, although the best node of the cluster is elsewhere."""
    p = pod("p", cpu="100m")
    start = pod_facts(p).hash % 200
    idle = f"n{(start + 100) % 200:03d}"
    nodes = [node(f"n{i:03d}") for i in range(200)]
    placed = [pod(f"x{i}", cpu="2", node_name=f"n{i:03d}") for i in range(200)
              if f"n{i:03d}" != idle]
    snap = ClusterSnapshot.build(nodes, placed)
    full = SchedulerSettings(vectorise_from=settings.vectorise_from,
                             percentage_of_nodes_to_score=100)
    assert only(decide(SchedulingView(p, snap), full)) == idle
    window = SchedulerSettings(vectorise_from=settings.vectorise_from, min_feasible_nodes=2,
                               percentage_of_nodes_to_score=1)
    assert only(decide(SchedulingView(p, snap), window)) in {
        f"n{start:03d}", f"n{(start + 1) % 200:03d}"}


# ------------------------------------------------------------------ docstrings


@pytest.mark.parametrize("name", [
    "kstate.control.scheduler", "kstate.control.scheduling.persistent",
    "kstate.control.scheduling.plugins", "kstate.control.scheduling.snapshot",
])
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0 and result.failed == 0
