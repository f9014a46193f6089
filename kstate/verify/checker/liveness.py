"""Liveness under weak fairness: fair strongly connected components of the explored graph.

Where it sits: run once at the end of a BFS/DFS search that recorded its edges; its
lassos go through ``core.Tracer`` to become readable traces.

The semantics are TLA+'s. A behaviour may stutter (stay in a state forever) unless a
weakly fair action is enabled there; weak fairness of an action ``A`` forbids a
behaviour in which ``A`` is enabled continuously from some point on yet never taken.
Each action *name* is its own fairness unit (``"RMPrepare"`` declared fair makes every
``RMPrepare(rm)`` fair on its own, like ``\\A rm : WF(RMPrepare(rm))``).

A property fails iff some fair behaviour ends up cycling inside one strongly connected
component ``C`` of the states it may cycle in (``~q`` states for ``p ~> q``, ``p`` states
for ``[]p ~> []q``). Touring all of ``C`` is the fairest such behaviour: it visits every
state where an action is disabled and takes every edge inside ``C``. So ``C`` admits a
fair behaviour iff every fair action enabled in *all* states of ``C`` labels some edge
inside ``C`` (a one-state component stutters, so it needs a self-loop for each fair
action enabled there). If ``C`` fails that test, so does every cycle inside it — which
is why component-level checking is complete for weak fairness. Only expanded states
take part: a state cut off by a bound has unknown enabled actions.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import attrs
import numpy as np
import numpy.typing as npt

from kstate.verify.checker.core import Findings, LivenessCheck, Spec, Tracer
from kstate.verify.checker.model import Kind

Path = list[tuple[int, str | None]]  # (state id, action that led to it; None for the first)


@attrs.define
class Graph:
    """The explored state graph: ``dst`` is -1 for an edge to a state never stored."""

    n: int
    initial: Sequence[int]
    src: npt.NDArray[np.int64]
    dst: npt.NDArray[np.int64]
    lab: npt.NDArray[np.int64]
    labels: Sequence[str]
    expanded: npt.NDArray[np.bool_]
    bits: npt.NDArray[np.uint64]


@attrs.frozen
class Lasso:
    prefix: Path  # from an initial state to the cycle's entry
    cycle: Path  # back to the entry (empty: stutter at the entry)
    note: str


class Analysis:
    def __init__(self, spec: Spec, g: Graph) -> None:
        self.spec = spec
        self.g = g
        fair = [spec.fairness.fair(name) for name in g.labels]
        known = g.dst >= 0
        order = np.argsort(g.src[known], kind="stable")
        src = g.src[known][order]
        self._dst: list[int] = g.dst[known][order].tolist()
        self._lab: list[int] = g.lab[known][order].tolist()
        self._start: list[int] = np.searchsorted(src, np.arange(g.n + 1)).tolist()
        enabled: dict[int, set[int]] = {}
        for s, lab in zip(g.src.tolist(), g.lab.tolist(), strict=True):
            if fair[lab]:
                enabled.setdefault(s, set()).add(lab)
        self._enabled = {s: frozenset(v) for s, v in enabled.items()}
        self._none: frozenset[int] = frozenset()

    def out(self, v: int) -> list[tuple[int, int]]:
        a, b = self._start[v], self._start[v + 1]
        return list(zip(self._dst[a:b], self._lab[a:b], strict=True))

    def enabled(self, v: int) -> frozenset[int]:
        return self._enabled.get(v, self._none)

    def col(self, bit: int) -> npt.NDArray[np.bool_]:
        return ((self.g.bits >> np.uint64(bit)) & np.uint64(1)).astype(np.bool_)

    # ------------------------------------------------------------------ the check

    def check(self, c: LivenessCheck) -> Lasso | None:
        g = self.g
        p = self.col(c.p_bit)
        is_init = np.zeros(g.n, np.bool_)
        is_init[list(g.initial)] = True
        if c.kind is Kind.LEADS_TO:
            nodes = g.expanded & ~self.col(c.q_bit)
            seeds = nodes & p
        elif c.kind is Kind.EVENTUALLY:
            nodes = g.expanded & ~p
            seeds = nodes & is_init
        else:  # CONVERGES: cycle among p states through a ~q state
            nodes = g.expanded & p
            seeds = nodes
        allowed = set(np.flatnonzero(nodes).tolist())
        seed_list = np.flatnonzero(seeds).tolist()
        region = self._reach(seed_list, allowed)
        fair = [set(c) for c in self._sccs(sorted(region), region) if self._fair(set(c))]
        if c.kind is Kind.CONVERGES:
            target = set(np.flatnonzero(~self.col(c.q_bit)).tolist())
            entries = [(min(comp & target), i) for i, comp in enumerate(fair) if comp & target]
            if not entries:
                return None
            entry, which = min(entries)
            comp = fair[which]
            prefix = self._path(list(g.initial), lambda v: v == entry, None)
        else:
            if not fair:
                return None
            bad = set().union(*fair)
            tail = self._path(seed_list, lambda v: v in bad, region)
            entry = tail[-1][0]
            comp = next(f for f in fair if entry in f)
            head = self._path(list(g.initial), lambda v: v == tail[0][0], None)
            prefix = head + tail[1:]
        cycle = self._cycle(entry, comp)
        note = ("stutters forever in the last state: no weakly fair action is enabled there"
                if not cycle else "loops forever; every weakly fair action enabled all along "
                "the loop is taken in it")
        return Lasso(prefix, cycle, note)

    def _fair(self, comp: set[int]) -> bool:
        always_enabled: frozenset[int] | None = None
        for v in comp:
            e = self.enabled(v)
            always_enabled = e if always_enabled is None else always_enabled & e
            if not always_enabled:
                return True
        assert always_enabled is not None
        taken = {lab for v in comp for (w, lab) in self.out(v) if w in comp}
        return always_enabled <= taken

    # ------------------------------------------------------------------ graph helpers

    def _reach(self, seeds: list[int], allowed: set[int]) -> set[int]:
        seen = set(seeds)
        todo = list(seeds)
        while todo:
            v = todo.pop()
            for w, _ in self.out(v):
                if w in allowed and w not in seen:
                    seen.add(w)
                    todo.append(w)
        return seen

    def _sccs(self, nodes: list[int], within: set[int]) -> list[list[int]]:
        """Tarjan's algorithm, iterative (graphs here outgrow Python's recursion limit)."""
        index: dict[int, int] = {}
        low: dict[int, int] = {}
        stack: list[int] = []
        on_stack: set[int] = set()
        out: list[list[int]] = []
        for root in nodes:
            if root in index:
                continue
            index[root] = low[root] = len(index)
            stack.append(root)
            on_stack.add(root)
            work = [(root, iter([w for w, _ in self.out(root) if w in within]))]
            while work:
                v, it = work[-1]
                for w in it:
                    if w not in index:
                        index[w] = low[w] = len(index)
                        stack.append(w)
                        on_stack.add(w)
                        work.append((w, iter([x for x, _ in self.out(w) if x in within])))
                        break
                    if w in on_stack:
                        low[v] = min(low[v], index[w])
                else:
                    work.pop()
                    if work:
                        u = work[-1][0]
                        low[u] = min(low[u], low[v])
                    if low[v] == index[v]:
                        comp = []
                        while True:
                            w = stack.pop()
                            on_stack.discard(w)
                            comp.append(w)
                            if w == v:
                                break
                        out.append(comp)
        return out

    def _unwind(self, parent: dict[int, tuple[int, int] | None], v: int) -> list[tuple[int, int]]:
        path: list[tuple[int, int]] = []
        cur: int | None = v
        while cur is not None:
            link = parent[cur]
            path.append((cur, link[1] if link else -1))
            cur = link[0] if link else None
        path.reverse()
        return path

    def _ids_path(self, sources: list[int], goal: Callable[[int], bool],
                  within: set[int] | None) -> list[tuple[int, int]]:
        """Shortest path (BFS) from any source to a goal node, staying ``within``;
        entries are (state id, label id of the edge into it, -1 for the first)."""
        parent: dict[int, tuple[int, int] | None] = {}
        todo: deque[int] = deque()
        for s in sources:
            if s not in parent:
                parent[s] = None
                todo.append(s)
        while todo:
            v = todo.popleft()
            if goal(v):
                return self._unwind(parent, v)
            for w, lab in self.out(v):
                if w not in parent and (within is None or w in within):
                    parent[w] = (v, lab)
                    todo.append(w)
        return []

    def _path(self, sources: list[int], goal: Callable[[int], bool],
              within: set[int] | None) -> Path:
        return self._named(self._ids_path(sources, goal, within))

    def _named(self, path: list[tuple[int, int]]) -> Path:
        return [(v, self.g.labels[lab] if lab >= 0 else None) for v, lab in path]

    def _cycle(self, entry: int, comp: set[int]) -> Path:
        """A loop from ``entry`` inside ``comp`` that discharges every weak-fairness
        obligation: each fair action enabled somewhere in ``comp`` is either disabled in
        a visited state or taken. Empty when nothing is owed: the behaviour stutters."""
        required: set[int] = set()
        for v in comp:
            required |= self.enabled(v)
        remaining = required & self.enabled(entry)
        cycle: list[tuple[int, int]] = []
        cur = entry
        while remaining:
            leg = self._leg(cur, comp, remaining)
            cycle.extend(leg[1:])
            for v, lab in leg:
                remaining &= self.enabled(v)
                remaining.discard(lab)
            cur = leg[-1][0]
        if cur != entry:
            cycle.extend(self._ids_path([cur], lambda v: v == entry, comp)[1:])
        return self._named(cycle)

    def _leg(self, start: int, comp: set[int], remaining: set[int]) -> list[tuple[int, int]]:
        """Shortest walk from ``start`` that discharges at least one remaining obligation
        (ends after a remaining action's edge, or at a state where one is disabled)."""
        parent: dict[int, tuple[int, int] | None] = {start: None}
        todo: deque[int] = deque([start])
        while todo:
            v = todo.popleft()
            for w, lab in self.out(v):
                if w not in comp:
                    continue
                if lab in remaining:
                    return [*self._unwind(parent, v), (w, lab)]
                if w not in parent:
                    parent[w] = (v, lab)
                    if remaining - self.enabled(w):
                        return self._unwind(parent, w)
                    todo.append(w)
        raise AssertionError("a fair component always discharges its obligations")


def record_lassos(spec: Spec, graph: Graph, tracer: Tracer, findings: Findings) -> None:
    """Check every liveness property on the explored ``graph`` and put each violation's
    lasso (prefix from an initial state, then the cycle) into ``findings`` — the one
    place BFS and DFS turn a lasso into readable steps."""
    analysis = Analysis(spec, graph)
    for c in spec.liveness:
        lasso = analysis.check(c)
        if lasso is None:
            continue
        prefix = tracer.steps([v for v, _ in lasso.prefix],
                              labels=[lab for _, lab in lasso.prefix])
        cycle: list[Any] = []
        if lasso.cycle:
            ids = [lasso.prefix[-1][0]] + [v for v, _ in lasso.cycle]
            labels = [None] + [lab for _, lab in lasso.cycle]
            cycle = tracer.steps(ids, labels=labels, start=prefix[-1].raw)
        findings.liveness[c.index] = (prefix, cycle, lasso.note)
