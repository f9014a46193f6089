"""The fast placement: the reference algorithm over numpy columns of the snapshot.

Where it sits: behind ``scheduler.place`` for clusters of ``settings.vectorise_from``
nodes or more. It must find exactly the best nodes of ``reference.best`` — same feasible
set, same ``percentageOfNodesToScore`` window, same integer/float64 scores; the
Hypothesis tests in ``tests/control/test_scheduler_equivalence.py`` hold it to that.

Why numpy earns its place: at the scheduler_perf anchor (5,000 nodes) a pod examines
~500 feasible nodes and scores them. Node by node in CPython (``reference.py``) that
gives ~150-250 pods/s on the benchmark machine, a third of the anchor's 680; as a few
dozen array operations of a few microseconds each it is 10-20 times faster (see
``docs/benchmarks/scheduler.md``).

How the work is split:

* **Static filters** (NodeUnschedulable, TaintToleration, NodeAffinity) depend only on
  the pod's constraints (tolerations, nodeSelector, required affinity) and the nodes'
  labels/taints/cordon. :class:`StaticMasks` memoises one boolean mask per distinct
  constraint set — real clusters have a handful — computed with the reference filter
  functions themselves, and patched at one node's position when that node's labels,
  taints or cordon change.
* **NodeResourcesFit** is three vector comparisons against :class:`Columns`
  (allocatable, requested, pod count), kept up to date incrementally by the snapshot.
* **NodePorts** runs the reference check on the few nodes with host ports in use.
* **Scores** are computed over the selected indices only, with the same integer and
  float64 operations as ``plugins.py`` in the same order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

import attrs
import numpy as np
import numpy.typing as npt

from kstate.control.scheduling.facts import Constraints, NodeFacts, PodFacts
from kstate.control.scheduling.nodeinfo import NodeInfo
from kstate.control.scheduling.persistent import PMap
from kstate.control.scheduling.plugins import (
    MAX_SCORE,
    SchedulerSettings,
    Weights,
    node_ports,
    nodes_to_find,
    static_rejection,
)
from kstate.control.scheduling.reference import Top, diagnose, start_index

Ints = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]
Hashes = npt.NDArray[np.uint64]

#: Distinct constraint sets remembered before the memo starts over.
_MEMO_LIMIT = 256

# Rows of Columns.requested.
CPU, MEMORY, COUNT, NZ_CPU, NZ_MEMORY = range(5)


A = TypeVar("A", bound=npt.NDArray[Any])


def _frozen(array: A) -> A:
    """Read-only: a snapshot's arrays are shared by every later version."""
    array.flags.writeable = False
    return array


def _constrained(key: Constraints) -> PodFacts:
    """A pod with just these constraints: all the static filters look at."""
    tolerations, node_selector, required = key
    return PodFacts(key="", namespace="", name="", uid="", tolerations=tolerations,
                    node_selector=node_selector, required=required)


@attrs.frozen(eq=False)
class StaticMasks:
    """Memo: constraint set -> which nodes pass the static filters.

    The dict is a cache of a pure function of (constraints, node statics), so filling it
    lazily does not make anything impure; a snapshot whose node statics change gets a
    new ``StaticMasks`` (``with_node``), never a mutated one.
    """

    memo: dict[Constraints, Bools] = attrs.field(factory=dict)

    def mask(self, pod: PodFacts, nodes: Sequence[NodeInfo]) -> Bools:
        key = pod.constraints
        found = self.memo.get(key)
        if found is None:
            found = np.fromiter(
                (static_rejection(pod, info.node) is None for info in nodes),  # type: ignore[arg-type]
                dtype=np.bool_, count=len(nodes))
            _frozen(found)
            if len(self.memo) >= _MEMO_LIMIT:
                self.memo.clear()
            self.memo[key] = found
        return found

    def with_node(self, index: int, node: NodeFacts) -> StaticMasks:
        """The memo after the node at ``index`` changed labels, taints or cordon."""
        memo: dict[Constraints, Bools] = {}
        for key, old in list(self.memo.items()):
            new = old.copy()
            new[index] = static_rejection(_constrained(key), node) is None
            memo[key] = _frozen(new)
        return StaticMasks(memo)


#: An owner's pods per node, sparse: (sorted node indices, counts), both int64 arrays.
#: Updating or reading it costs a few array operations whatever the owner's size.
Sparse = tuple[Ints, Ints]
_NO_PODS: Sparse = (_frozen(np.zeros(0, np.int64)), _frozen(np.zeros(0, np.int64)))


def sparse_set(counts: Sparse, index: int, n: int) -> Sparse:
    """``counts`` with node ``index`` set to ``n`` (removed when 0)."""
    nodes, values = counts
    at = int(np.searchsorted(nodes, index))
    # Slices and concatenate: np.insert / np.delete cost ten times more on small arrays.
    if at < nodes.size and nodes[at] == index:
        if n == 0:
            return (_frozen(np.concatenate((nodes[:at], nodes[at + 1:]))),
                    _frozen(np.concatenate((values[:at], values[at + 1:]))))
        values = values.copy()
        values[at] = n
        return nodes, _frozen(values)
    if n == 0:
        return counts
    return (_frozen(np.concatenate((nodes[:at], np.array([index], np.int64), nodes[at:]))),
            _frozen(np.concatenate((values[:at], np.array([n], np.int64), values[at:]))))


def sparse_gather(counts: Sparse, selected: Ints) -> Ints:
    """The counts at the node indices ``selected`` (0 where absent)."""
    nodes, values = counts
    out = np.zeros(selected.size, np.int64)
    if nodes.size:
        at = np.minimum(np.searchsorted(nodes, selected), nodes.size - 1)
        hit = nodes[at] == selected
        out[hit] = values[at[hit]]
    return out


def _owner_counts(nodes: Sequence[NodeInfo]) -> PMap[Sparse]:
    owners: dict[str, list[tuple[int, int]]] = {}
    for index, info in enumerate(nodes):
        for owner, n in info.owners.items():
            owners.setdefault(owner, []).append((index, n))
    return PMap({
        owner: (_frozen(np.array([i for i, _ in pairs], np.int64)),
                _frozen(np.array([n for _, n in pairs], np.int64)))
        for owner, pairs in owners.items()
    })


@attrs.frozen(eq=False)
class Columns:
    """The snapshot's candidate nodes as arrays, index-aligned with ``snapshot.nodes``."""

    allocatable: Ints  #: (3, N): cpu millicores, memory bytes, pods
    requested: Ints  #: (5, N): cpu, memory, pod count, non-zero cpu, non-zero memory
    tie: Hashes  #: (N,): stable hash of each node name
    port_nodes: frozenset[int]  #: nodes with host ports in use
    owners: PMap[Sparse]  #: owner uid -> its non-terminating pods per node
    statics: StaticMasks

    @classmethod
    def build(cls, nodes: Sequence[NodeInfo]) -> Columns:
        facts = [info.node for info in nodes]
        assert all(f is not None for f in facts)
        allocatable = np.array(
            [[f.cpu, f.memory, f.pods] for f in facts if f is not None], dtype=np.int64
        ).reshape(-1, 3).T.copy()
        requested = np.array(
            [_requested(info) for info in nodes], dtype=np.int64
        ).reshape(-1, 5).T.copy()
        tie = np.array([f.hash for f in facts if f is not None], dtype=np.uint64)
        return cls(
            allocatable=_frozen(allocatable), requested=_frozen(requested),
            tie=_frozen(tie),
            port_nodes=frozenset(i for i, info in enumerate(nodes) if info.ports),
            owners=_owner_counts(nodes), statics=StaticMasks(),
        )

    def with_node_info(self, index: int, old: NodeInfo, new: NodeInfo) -> Columns:
        """These columns after ``old`` became ``new`` at ``index`` (same node name)."""
        changes: dict[str, Any] = {}
        row = _requested(new)
        if row != _requested(old):
            requested = self.requested.copy()
            requested[:, index] = row
            changes["requested"] = _frozen(requested)
        a, b = old.node, new.node
        assert a is not None and b is not None
        if (a.cpu, a.memory, a.pods) != (b.cpu, b.memory, b.pods):
            allocatable = self.allocatable.copy()
            allocatable[:, index] = (b.cpu, b.memory, b.pods)
            changes["allocatable"] = _frozen(allocatable)
        if a.statics != b.statics:
            changes["statics"] = self.statics.with_node(index, b)
        if bool(old.ports) != bool(new.ports):
            changes["port_nodes"] = (self.port_nodes | {index} if new.ports
                                     else self.port_nodes - {index})
        if old.owners is not new.owners:
            owners = self.owners
            for owner in set(old.owners) | set(new.owners):
                n = new.owners.get(owner, 0)
                if n == old.owners.get(owner, 0):
                    continue
                counts = sparse_set(owners.get(owner, _NO_PODS), index, n)
                owners = owners.set(owner, counts) if counts[0].size else owners.remove(owner)
            if owners is not self.owners:
                changes["owners"] = owners
        if not changes:
            return self
        get = changes.get
        return Columns(get("allocatable", self.allocatable), get("requested", self.requested),
                       self.tie, get("port_nodes", self.port_nodes), get("owners", self.owners),
                       get("statics", self.statics))


def _requested(info: NodeInfo) -> tuple[int, int, int, int, int]:
    return (info.cpu, info.memory, info.pod_count, info.nonzero_cpu, info.nonzero_memory)


# --------------------------------------------------------------------------- placement

_U30, _U27, _U31 = np.uint64(30), np.uint64(27), np.uint64(31)


def mix_array(a: int, b: Hashes) -> Hashes:
    """``facts.mix(a, b[i])`` for every i (uint64 arithmetic wraps like the ``& MASK``)."""
    z = (np.uint64(a) ^ b) + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> _U30)) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> _U27)) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> _U31)


def feasible_mask(pod: PodFacts, nodes: Sequence[NodeInfo], columns: Columns) -> Bools:
    """Nodes that pass every filter."""
    alloc, req = columns.allocatable, columns.requested
    feasible = columns.statics.mask(pod, nodes) & (req[COUNT] < alloc[2])
    if pod.cpu > 0:
        feasible &= alloc[0] - req[CPU] >= pod.cpu
    if pod.memory > 0:
        feasible &= alloc[1] - req[MEMORY] >= pod.memory
    if pod.ports:
        for index in columns.port_nodes:
            if feasible[index] and node_ports(pod, nodes[index]):
                feasible[index] = False
    return feasible


def scores(pod: PodFacts, columns: Columns, selected: Ints, weights: Weights) -> Ints:
    """``plugins.scores`` for the nodes at ``selected``: CPU and memory as the two rows
    of (2, k) arrays, same operations in the same order as the reference."""
    # np.take: several times faster than fancy indexing along the second axis.
    alloc = np.take(columns.allocatable[:2], selected, axis=1)
    req = np.take(columns.requested, selected, axis=1)
    total = np.zeros(selected.size, dtype=np.int64)
    if weights.least_allocated:
        want = req[NZ_CPU:] + np.array([[pod.nonzero_cpu], [pod.nonzero_memory]])
        # A resource with allocatable 0 scores 0 here (want > 0, or 0 * 100) and is left
        # out of the average by ``counted``.
        per = np.where(want > alloc, 0, (alloc - want) * MAX_SCORE // np.maximum(alloc, 1))
        counted = (alloc > 0).sum(axis=0)
        least = per.sum(axis=0) // np.maximum(counted, 1)
        total += least * weights.least_allocated
    if weights.balanced_allocation and not pod.best_effort:
        used = req[CPU:MEMORY + 1] + np.array([[pod.cpu], [pod.memory]])
        fraction = np.minimum(used / np.maximum(alloc, 1), 1.0)
        std = np.abs((fraction[0] - fraction[1]) / 2)
        both = (alloc > 0).all(axis=0)
        if not both.all():
            std = np.where(both, std, 0.0)  # one fraction (or none): deviation 0
        total += ((1 - std) * MAX_SCORE).astype(np.int64) * weights.balanced_allocation
    if weights.spread and pod.owner:
        placed = columns.owners.get(pod.owner, _NO_PODS)
        counts = sparse_gather(placed, selected)
        top = int(counts.max()) if counts.size else 0
        if top == 0:
            total += MAX_SCORE * weights.spread
        else:
            spread = (float(MAX_SCORE) * ((top - counts) / float(top))).astype(np.int64)
            total += spread * weights.spread
    return total


def best(
    pod: PodFacts, nodes: Sequence[NodeInfo], columns: Columns, settings: SchedulerSettings
) -> Top:
    """``reference.best`` over the columns: the best-scoring feasible nodes, in scan
    order, or none and every node's rejection."""
    total = len(nodes)
    if total == 0:
        return [], []
    feasible = np.flatnonzero(feasible_mask(pod, nodes, columns))
    # Feasible nodes in scan order (start .. end, then 0 .. start), cut at the window.
    split = int(np.searchsorted(feasible, start_index(pod, total)))
    selected = np.concatenate((feasible[split:], feasible[:split]))[
        : nodes_to_find(total, settings)]
    if selected.size == 0:
        return [], diagnose(pod, nodes)
    totals = scores(pod, columns, selected, settings.weights)
    return selected[totals == totals.max()].tolist(), []


__all__ = ["Columns", "StaticMasks", "best", "feasible_mask", "mix_array", "scores"]
