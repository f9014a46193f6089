"""Kubernetes' filter and score plugins as small pure functions: the reference semantics.

Where it sits: the rules of placement. ``reference.py`` applies them node by node (the
full-scan implementation the tests trust); ``vectorised.py`` applies the same static
filters through a memo and re-states the resource filter and the scores over numpy
columns — a Hypothesis test holds the two to identical decisions.

Filters, in the order of Kubernetes' default profile. A node is rejected by the *first*
filter that fails, and only that filter's reasons reach the event:

* **NodeUnschedulable** — ``spec.unschedulable`` and the pod does not tolerate
  ``node.kubernetes.io/unschedulable:NoSchedule``: ``node(s) were unschedulable``;
* **TaintToleration** — the first NoSchedule / NoExecute taint the pod does not tolerate:
  ``node(s) had untolerated taint {key: value}``;
* **NodeAffinity** — ``nodeSelector`` or every required node-affinity term fails:
  ``node(s) didn't match Pod's node affinity/selector``;
* **NodePorts** — a wanted host port is in use:
  ``node(s) didn't have free ports for the requested pod ports``;
* **NodeResourcesFit** — placed pods + 1 > allocatable pods (``Too many pods``); a
  *non-zero* request above allocatable minus the placed pods' requests
  (``Insufficient cpu``, ``Insufficient memory``) — several reasons from one node.

kstate adds one reason: a node that did not report an allocatable resource (or
reported an unparsable one) counts it as zero and is rejected with
``node(s) didn't report allocatable <resource>`` instead of ``Too many pods`` /
``Insufficient <resource>``, so the event says what is wrong with the node.

Scores (each 0-100, ``MAX_SCORE``), summed with the weights of :class:`Weights`:

* **LeastAllocated** (NodeResourcesFit's default strategy, weight 1): per resource with
  allocatable > 0, ``(allocatable - requested) * 100 // allocatable`` (0 when over),
  averaged with integer division; "requested" uses the 100m / 200 MiB defaults for unset
  requests, placed pods plus this one.
* **BalancedAllocation** (weight 1): fractions ``requested / allocatable`` (capped at 1)
  of CPU and memory with actual requests; ``int((1 - |f_cpu - f_mem| / 2) * 100)``.
  Skipped (0 everywhere) for a best-effort pod, as current Kubernetes does (#129138).
* **SelectorSpread**, keyed by the controlling owner (weight 2): count the owner's
  non-terminating pods on each scored node; ``int(100 * (max - count) / max)``, 100
  everywhere when the owner has no pods yet, skipped for pods without an owner. This is
  the formula of Kubernetes' SelectorSpread plugin (node part, no zones); the weight is
  that of PodTopologySpread, which does default spreading in today's profile.

The score sums are Kubernetes' integer and float64 arithmetic step for step, so scores
are exact and both paths agree bit for bit.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence

import attrs

from kstate.api.defaults import DEFAULT_SCHEDULER
from kstate.api.objects import NodeSelectorRequirement, NodeSelectorTerm, Taint, Toleration
from kstate.control.scheduling.facts import CPU, MEMORY, PODS, NodeFacts, PodFacts, mix
from kstate.control.scheduling.nodeinfo import NodeInfo, port_conflict
from kstate.control.taints import tolerates as tolerates_taint

MAX_SCORE = 100

REASON_UNSCHEDULABLE = "node(s) were unschedulable"
REASON_AFFINITY = "node(s) didn't match Pod's node affinity/selector"
REASON_PORTS = "node(s) didn't have free ports for the requested pod ports"
REASON_TOO_MANY_PODS = "Too many pods"
NO_NODES = "no nodes available to schedule pods"

UNSCHEDULABLE_TAINT = Taint(key="node.kubernetes.io/unschedulable", effect="NoSchedule")
_HARD_EFFECTS = ("NoSchedule", "NoExecute")
_INTEGER = re.compile(r"[+-]?[0-9]+")


def untolerated(taint: Taint) -> str:
    return f"node(s) had untolerated taint {{{taint.key}: {taint.value}}}"


def insufficient(resource: str) -> str:
    return f"Insufficient {resource}"


def unreported(resource: str) -> str:
    return f"node(s) didn't report allocatable {resource}"


# --------------------------------------------------------------------------- settings


@attrs.frozen
class Weights:
    """Score plugin weights (Kubernetes' default profile)."""

    least_allocated: int = 1
    balanced_allocation: int = 1
    spread: int = 2


@attrs.frozen
class SchedulerSettings:
    """Kubernetes' defaults; every one configurable."""

    scheduler_name: str = DEFAULT_SCHEDULER
    #: 0 = adaptive (50% - nodes/125, at least ``min_feasible_percentage``); 100 = all.
    percentage_of_nodes_to_score: int = 0
    min_feasible_nodes: int = 100
    min_feasible_percentage: int = 5
    weights: Weights = Weights()
    #: Clusters of at least this many nodes are placed by the numpy path (vectorised.py),
    #: smaller ones by the plain scan (reference.py). Both find the same best nodes (the
    #: Hypothesis tests hold them to it); under ~16 nodes numpy's fixed cost per call is
    #: larger than the scan (a pod on 3 nodes: ~0.1 ms scanned, ~0.4 ms vectorised).
    #: The choice is made inside ``scheduler.place``, the one placement the engine and
    #: the model checker both run. 0 forces numpy; ``sys.maxsize`` forces the scan.
    vectorise_from: int = 16


def nodes_to_find(total: int, settings: SchedulerSettings) -> int:
    """How many feasible nodes to find before scoring (``numFeasibleNodesToFind``).

    >>> nodes_to_find(5000, SchedulerSettings()), nodes_to_find(50, SchedulerSettings())
    (500, 50)
    """
    pct = settings.percentage_of_nodes_to_score
    if total < settings.min_feasible_nodes or pct >= 100:
        return total
    if pct <= 0:
        pct = max(50 - total // 125, settings.min_feasible_percentage)
    return max(total * pct // 100, settings.min_feasible_nodes)


# --------------------------------------------------------------------------- tolerations


def tolerates(tolerations: Iterable[Toleration], taint: Taint) -> bool:
    return any(tolerates_taint(t, taint) for t in tolerations)


# --------------------------------------------------------------------------- node affinity


def requirement_matches(req: NodeSelectorRequirement, values: Mapping[str, str]) -> bool:
    """One ``matchExpressions`` / ``matchFields`` requirement against labels (or fields)."""
    op, present = req.operator, req.key in values
    if op == "In":
        return present and values[req.key] in req.values
    if op == "NotIn":
        return not present or values[req.key] not in req.values
    if op == "Exists":
        return present
    if op == "DoesNotExist":
        return not present
    if op in ("Gt", "Lt"):
        # Both sides must be base-10 integers (Go's ParseInt); anything else never matches.
        if not present or len(req.values) != 1:
            return False
        have, want = values[req.key], req.values[0]
        if not (_INTEGER.fullmatch(have) and _INTEGER.fullmatch(want)):
            return False
        return int(have) > int(want) if op == "Gt" else int(have) < int(want)
    return False


def term_matches(term: NodeSelectorTerm, node: NodeFacts) -> bool:
    """A node selector term: every requirement holds; an empty term matches nothing.
    ``matchFields`` supports ``metadata.name`` only, as in Kubernetes."""
    if not term.match_expressions and not term.match_fields:
        return False
    fields = {"metadata.name": node.name}
    return all(requirement_matches(r, node.labels) for r in term.match_expressions) and all(
        r.key == "metadata.name" and requirement_matches(r, fields) for r in term.match_fields
    )


# --------------------------------------------------------------------------- filters

Reasons = tuple[str, ...]


def node_unschedulable(pod: PodFacts, node: NodeFacts) -> Reasons:
    if node.unschedulable and not tolerates(pod.tolerations, UNSCHEDULABLE_TAINT):
        return (REASON_UNSCHEDULABLE,)
    return ()


def taint_toleration(pod: PodFacts, node: NodeFacts) -> Reasons:
    for taint in node.taints:
        if taint.effect in _HARD_EFFECTS and not tolerates(pod.tolerations, taint):
            return (untolerated(taint),)
    return ()


def node_affinity(pod: PodFacts, node: NodeFacts) -> Reasons:
    labels = node.labels
    if any(labels.get(k) != v for k, v in pod.node_selector.items()):
        return (REASON_AFFINITY,)
    required = pod.required
    if required is not None and not any(
        term_matches(t, node) for t in required.node_selector_terms
    ):
        return (REASON_AFFINITY,)
    return ()


def node_ports(pod: PodFacts, info: NodeInfo) -> Reasons:
    if any(port_conflict(p, info.ports) for p in pod.ports):
        return (REASON_PORTS,)
    return ()


def resources_fit(pod: PodFacts, info: NodeInfo) -> Reasons:
    node = info.node
    assert node is not None
    reasons: list[str] = []
    if info.pod_count + 1 > node.pods:
        reasons.append(unreported(PODS) if PODS in node.unreported else REASON_TOO_MANY_PODS)
    # Kubernetes checks only the resources the pod asks for.
    if pod.cpu > 0 and pod.cpu > node.cpu - info.cpu:
        reasons.append(unreported(CPU) if CPU in node.unreported else insufficient(CPU))
    if pod.memory > 0 and pod.memory > node.memory - info.memory:
        reasons.append(unreported(MEMORY) if MEMORY in node.unreported else insufficient(MEMORY))
    return tuple(reasons)


#: Filters that read only the pod's constraints and the node's labels/taints/cordon.
STATIC_FILTERS: tuple[tuple[str, Callable[[PodFacts, NodeFacts], Reasons]], ...] = (
    ("NodeUnschedulable", node_unschedulable),
    ("TaintToleration", taint_toleration),
    ("NodeAffinity", node_affinity),
)
#: Filters that read what is placed on the node.
DYNAMIC_FILTERS: tuple[tuple[str, Callable[[PodFacts, NodeInfo], Reasons]], ...] = (
    ("NodePorts", node_ports),
    ("NodeResourcesFit", resources_fit),
)
FILTER_NAMES = tuple(name for name, _ in STATIC_FILTERS + DYNAMIC_FILTERS)

#: A rejection: the plugin and its reasons.
Rejection = tuple[str, Reasons]


def static_rejection(pod: PodFacts, node: NodeFacts) -> Rejection | None:
    for name, check in STATIC_FILTERS:
        reasons = check(pod, node)
        if reasons:
            return name, reasons
    return None


def rejection(pod: PodFacts, info: NodeInfo) -> Rejection | None:
    """The first filter that rejects ``info``'s node for ``pod``, ``None`` when it fits."""
    assert info.node is not None
    found = static_rejection(pod, info.node)
    if found is not None:
        return found
    for name, check in DYNAMIC_FILTERS:
        reasons = check(pod, info)
        if reasons:
            return name, reasons
    return None


def failure_message(total: int, rejections: Iterable[Rejection]) -> str:
    """Kubernetes' ``FitError`` text: reason counts, each ``"<n> <reason>"``, sorted as
    strings (so ``"10 ..."`` sorts before ``"2 ..."``, exactly like the Go code).

    >>> failure_message(3, [("NodeResourcesFit", ("Insufficient cpu",)),
    ...                     ("TaintToleration", ("node(s) had untolerated taint {a: }",)),
    ...                     ("TaintToleration", ("node(s) had untolerated taint {a: }",))])
    '0/3 nodes are available: 1 Insufficient cpu, 2 node(s) had untolerated taint {a: }.'
    """
    if total == 0:
        return NO_NODES
    counts: dict[str, int] = {}
    for _, reasons in rejections:
        for reason in reasons:
            counts[reason] = counts.get(reason, 0) + 1
    histogram = sorted(f"{n} {reason}" for reason, n in counts.items())
    message = f"0/{total} nodes are available:"
    return f"{message} {', '.join(histogram)}." if histogram else message


# --------------------------------------------------------------------------- scores


def least_allocated(pod: PodFacts, info: NodeInfo) -> int:
    node = info.node
    assert node is not None
    total = weight = 0
    for requested, capacity in ((info.nonzero_cpu + pod.nonzero_cpu, node.cpu),
                                (info.nonzero_memory + pod.nonzero_memory, node.memory)):
        if capacity == 0:
            continue
        total += 0 if requested > capacity else (capacity - requested) * MAX_SCORE // capacity
        weight += 1
    return total // weight if weight else 0


def balanced_allocation(pod: PodFacts, info: NodeInfo) -> int:
    if pod.best_effort:
        return 0
    node = info.node
    assert node is not None
    fractions = [
        min(float(requested) / float(capacity), 1.0)
        for requested, capacity in ((info.cpu + pod.cpu, node.cpu),
                                    (info.memory + pod.memory, node.memory))
        if capacity != 0
    ]
    std = abs((fractions[0] - fractions[1]) / 2) if len(fractions) == 2 else 0.0
    return int((1 - std) * MAX_SCORE)


def spread(pod: PodFacts, infos: Sequence[NodeInfo]) -> list[int]:
    """SelectorSpread over the scored nodes (it normalises by their maximum)."""
    if not pod.owner:
        return [0] * len(infos)
    counts = [info.owners.get(pod.owner, 0) for info in infos]
    top = max(counts, default=0)
    if top == 0:
        return [MAX_SCORE] * len(infos)
    return [int(float(MAX_SCORE) * (float(top - c) / float(top))) for c in counts]


def scores(pod: PodFacts, infos: Sequence[NodeInfo], weights: Weights) -> list[int]:
    """Weighted total score of each of ``infos`` (all feasible for ``pod``)."""
    spreads = spread(pod, infos)
    return [
        least_allocated(pod, info) * weights.least_allocated
        + balanced_allocation(pod, info) * weights.balanced_allocation
        + s * weights.spread
        for info, s in zip(infos, spreads, strict=True)
    ]


def tie_key(pod: PodFacts, node: NodeFacts) -> int:
    """Among equal scores the node with the largest ``mix(pod, node)`` wins: a
    deterministic stand-in for Kubernetes' random pick among the best nodes.
    ``scheduler.pick`` computes it for all tied nodes at once (``vectorised.mix_array``
    over the snapshot's node hashes); this is its one-node definition."""
    return mix(pod.hash, node.hash)


__all__ = [
    "DYNAMIC_FILTERS",
    "FILTER_NAMES",
    "MAX_SCORE",
    "NO_NODES",
    "REASON_AFFINITY",
    "REASON_PORTS",
    "REASON_TOO_MANY_PODS",
    "REASON_UNSCHEDULABLE",
    "STATIC_FILTERS",
    "UNSCHEDULABLE_TAINT",
    "Reasons",
    "Rejection",
    "SchedulerSettings",
    "Weights",
    "balanced_allocation",
    "failure_message",
    "insufficient",
    "least_allocated",
    "node_affinity",
    "node_ports",
    "node_unschedulable",
    "nodes_to_find",
    "rejection",
    "requirement_matches",
    "resources_fit",
    "scores",
    "spread",
    "static_rejection",
    "taint_toleration",
    "term_matches",
    "tie_key",
    "tolerates",
    "tolerates_taint",
    "unreported",
    "untolerated",
]
