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

Under symmetry the graph is a quotient whose labels are in the frame of whichever member
was expanded; ``Unfolding`` judges its candidate components on concrete states instead
(docs/checker.md, "Liveness under symmetry").
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import attrs
import numpy as np
import numpy.typing as npt

from kstate.verify.checker.core import Findings, LivenessCheck, Spec, Tracer
from kstate.verify.checker.model import INIT, Kind
from kstate.verify.checker.results import Step

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


STUTTERS = "stutters forever in the last state: no weakly fair action is enabled there"
LOOPS = ("loops forever; every weakly fair action enabled all along the loop is taken in it")


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
        seeds, region = self.region(c)
        return self.find(c, seeds, region)

    def region(self, c: LivenessCheck,
               start: list[int] | None = None) -> tuple[list[int], set[int]]:
        """Where ``c``'s counterexample may cycle: the seeds (``p & ~q`` states for
        ``p ~> q``, initial ``~p`` states for ``<>p``, every ``p`` state for
        ``[]p ~> []q``; or those of ``start`` in the allowed set) and the states
        reachable from them inside the allowed set."""
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
        seed_list = np.flatnonzero(seeds).tolist() if start is None else \
            [v for v in start if v in allowed]
        return seed_list, self._reach(seed_list, allowed)

    def components(self, region: set[int]) -> list[set[int]]:
        """The strongly connected components of ``region``."""
        return [set(c) for c in self._sccs(sorted(region), region)]

    def find(self, c: LivenessCheck, seeds: list[int], region: set[int]) -> Lasso | None:
        """A fair lasso for ``c`` cycling in ``region`` (reached from ``seeds``), or None."""
        g = self.g
        fair = [comp for comp in self.components(region) if self._fair(comp)]
        if c.kind is Kind.CONVERGES:
            target = set(np.flatnonzero(~self.col(c.q_bit)).tolist())
            entries = [(min(comp & target), i) for i, comp in enumerate(fair) if comp & target]
            if not entries:
                return None
            entry, which = min(entries)
            comp = fair[which]
            prefix = self.path(list(g.initial), lambda v: v == entry, None)
        else:
            if not fair:
                return None
            bad = set().union(*fair)
            tail = self.path(seeds, lambda v: v in bad, region)
            entry = tail[-1][0]
            comp = next(f for f in fair if entry in f)
            head = self.path(list(g.initial), lambda v: v == tail[0][0], None)
            prefix = head + tail[1:]
        cycle = self._cycle(entry, comp)
        return Lasso(prefix, cycle, STUTTERS if not cycle else LOOPS)

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

    def path(self, sources: list[int], goal: Callable[[int], bool],
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


#: Most concrete states one unfolding may hold before the property is left ``bounded``.
UNFOLD_LIMIT = 1_000_000

#: Most concrete states the unfoldings' caches keep alive (they hold the model's states,
#: which the search itself never keeps: past this, a cache starts over).
CACHE_LIMIT = 200_000


def record_lassos(spec: Spec, graph: Graph, tracer: Tracer, findings: Findings,
                  unfold_limit: int = UNFOLD_LIMIT) -> None:
    """Check every liveness property on the explored ``graph`` and put each violation's
    lasso (prefix from an initial state, then the cycle) into ``findings`` — the one
    place BFS and DFS turn a lasso into readable steps. Under symmetry the graph is a
    quotient and the components are judged on concrete unfoldings (``Unfolding``)."""
    analysis = Analysis(spec, graph)
    unfolding = Unfolding(analysis, tracer, findings, unfold_limit)
    for c in spec.liveness:
        if spec.canon is not None:
            unfolding.check(c)
            continue
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


# --------------------------------------------------------------------------- symmetry


class Unfolding:
    """Liveness on a quotient graph, decided exactly on concrete unfoldings.

    Under symmetry each stored state is a class of concrete states and an edge's label
    is in the frame of the one member that was expanded, so per-instance fairness
    cannot be read off the quotient (``Kubelet(node-1)`` there may be ``Kubelet(node-2)``
    in the member a behaviour is in). The candidate components are still found on the
    quotient: a concrete fair cycle maps into one quotient component ``C`` of the
    region. Then:

    * a one-state ``C`` without a quotient self-loop can only be *stuttered* in, and
      "no fair action enabled" does not depend on the frame: judged as without symmetry;
    * any other ``C`` is unfolded: one concrete member of ``C`` is rebuilt along a path
      from an initial state (through a seed), and explored with ``Model.actions``,
      keeping the successors whose representative is in ``C``. The component test runs
      on that concrete graph (``Analysis.find``), so fairness is judged per instance.

    Why one unfolding decides ``C`` (docs/checker.md, "Liveness under symmetry"): with an
    exact ``canonical`` every concrete path inside ``C`` lifts from any member, so the
    concrete states over ``C`` reachable from the chosen member contain an image, under
    some renaming, of every concrete cycle over ``C``; renaming preserves properties and
    (family-level) fairness, so one copy decides all.
    """

    def __init__(self, analysis: Analysis, tracer: Tracer, findings: Findings,
                 limit: int) -> None:
        self.q = analysis
        self.spec = analysis.spec
        self.tracer = tracer
        self.findings = findings
        self.limit = limit
        # Properties often share components: each concrete state's moves (kept only when
        # another property may need them) and representatives are computed once.
        self.moves: dict[Any, list[tuple[str, Any]]] = {}
        self.share_moves = len(self.spec.liveness) > 1
        self.fps: dict[Any, int] = {}
        self.head: dict[int, int] = {}  # shortest-path trees: state -> parent (-1: root)
        self.tail: dict[int, int] = {}
        self.members: dict[tuple[bool, int], Any] = {}  # (in tail tree, state) -> member

    def check(self, c: LivenessCheck) -> None:
        q = self.q
        seeds, region = q.region(c)
        comps = q.components(region)
        # Concrete members are rebuilt along shortest-path trees, once per state: from
        # the initial states, and (p ~> q, <>p) from the seeds through the region, so a
        # counterexample's prefix passes a seed as without symmetry.
        self.head = self._tree(list(q.g.initial), None)
        self.members = {}
        if c.kind is Kind.CONVERGES:
            # Predicates are symmetric: a class is ~q iff its members are.
            target = set(np.flatnonzero(~q.col(c.q_bit)).tolist())
            order = sorted((min(comp & target), i) for i, comp in enumerate(comps)
                           if comp & target)
            entries = [(entry, comps[i]) for entry, i in order]
            self.tail = {}
        else:
            self.tail = self._tree(seeds, region)
            depth = self._depths(self.tail)
            entries = sorted(((min(comp, key=lambda v: (depth[v], v)), comp)
                              for comp in comps), key=lambda e: (depth[e[0]], e[0]))
        too_big = 0
        for entry, comp in entries:
            if len(comp) == 1 and not any(w == entry for w, _ in q.out(entry)):
                if q.enabled(entry):
                    continue  # a fair action is enabled and nothing loops: it is taken
                self.findings.liveness[c.index] = (self._prefix(entry), [], STUTTERS)
                return
            found = self._unfold(c, comp, entry)
            if found is None:
                too_big += 1
            elif found:
                return
        if too_big:
            name = self.spec.props[c.index].name
            why = (f"{too_big} component(s) of the quotient graph unfold to more than "
                   f"{self.limit:,} concrete states; not decided")
            self.findings.undecided[c.index] = why
            self.findings.warnings.append(f"{name}: {why}")

    def _moves(self, state: Any) -> list[tuple[str, Any]]:
        moves = self.moves.get(state)
        if moves is None:
            moves = list(self.spec.model.actions(state))
            if self.share_moves:
                _bounded(self.moves)[state] = moves
        return moves

    def _fingerprint(self, state: Any) -> int:
        fp = self.fps.get(state)
        if fp is None:
            fp = _bounded(self.fps)[state] = self.spec.fingerprint(state)
        return fp

    # ------------------------------------------------------------------ concrete members

    def _tree(self, sources: list[int], within: set[int] | None) -> dict[int, int]:
        """Shortest-path tree (BFS, parent -1 for a source) over the quotient graph."""
        parent = dict.fromkeys(sources, -1)
        todo = deque(sources)
        while todo:
            v = todo.popleft()
            for w, _ in self.q.out(v):
                if w not in parent and (within is None or w in within):
                    parent[w] = v
                    todo.append(w)
        return parent

    @staticmethod
    def _depths(tree: dict[int, int]) -> dict[int, int]:
        depth: dict[int, int] = {}
        for v in tree:  # BFS order: a parent comes before its children
            depth[v] = 0 if tree[v] < 0 else depth[tree[v]] + 1
        return depth

    def _path(self, v: int) -> list[tuple[bool, int]]:
        """The quotient path to ``v`` from an initial state — to a seed, then on inside
        the region when there is a seed tree — each node tagged with the tree it is
        reached in (a state can lie on both, reached by different members)."""
        tail: list[tuple[bool, int]] = []
        if self.tail:
            tail.append((True, v))
            while self.tail[v] >= 0:
                v = self.tail[v]
                tail.append((True, v))
            tail.pop()  # the seed: reached by the head tree
        head = [(False, v)]
        while self.head[v] >= 0:
            v = self.head[v]
            head.append((False, v))
        return head[::-1] + tail[::-1]

    def _member(self, v: int) -> Any:
        """The concrete state the prefix to ``v`` ends in (each tree node rebuilt once,
        from its parent's member, exactly as ``Tracer.steps`` rebuilds the prefix)."""
        path = self._path(v)
        k = len(path) - 1
        while k > 0 and path[k] not in self.members:
            k -= 1
        state = self.members.get(path[k])
        if state is None:
            state = _bounded(self.members)[path[k]] = self.tracer.steps([path[k][1]])[0].raw
        for (_, a), b in itertools.pairwise(path[k:]):
            state = self.tracer.steps([a, b[1]], start=state)[0].raw
            _bounded(self.members)[b] = state
        return state

    def _prefix(self, v: int) -> list[Step]:
        return self.tracer.steps([w for _, w in self._path(v)])

    def _unfold(self, c: LivenessCheck, comp: set[int], entry: int) -> bool | None:
        """Explore the concrete states over ``comp`` from the member of ``entry`` and
        look for a fair lasso there; record it. None: the unfolding outgrew the limit."""
        spec = self.spec
        model = spec.model
        inside = {self.tracer.fp_of(v) for v in comp}
        start = self._member(entry)
        states: list[Any] = [start]
        index = {start: 0}
        labels: dict[str, int] = {}
        src: list[int] = []
        dst: list[int] = []
        lab: list[int] = []
        for u, state in enumerate(states):  # grows while it is walked: a BFS
            for name, nxt in self._moves(state):
                k = index.get(nxt, -1)
                if k < 0 and self._fingerprint(nxt) in inside:
                    if len(states) >= self.limit:
                        return None
                    k = index[nxt] = len(states)
                    states.append(nxt)
                src.append(u)
                dst.append(k)  # -1: leaves comp; it still counts as enabled
                lab.append(labels.setdefault(name, len(labels)))
        n = len(states)
        graph = Graph(n=n, initial=[0], src=np.array(src, np.int64),
                      dst=np.array(dst, np.int64), lab=np.array(lab, np.int64),
                      labels=list(labels), expanded=np.ones(n, np.bool_),
                      bits=spec.bits(states))
        # The predicates are evaluated again on the concrete states: membership by
        # fingerprint alone would trust a 64-bit hash with the verdict.
        unfolded = Analysis(spec, graph)
        lasso = unfolded.find(c, *unfolded.region(c, start=[0]))
        if lasso is None:
            return False

        def steps(path: Path) -> list[Step]:
            return [Step(name or INIT, model.describe(states[v]), states[v]) for v, name in path]

        prefix = self._prefix(entry)
        assert prefix[-1].raw == start, "actions() is deterministic (Model contract)"
        self.findings.liveness[c.index] = (prefix + steps(lasso.prefix)[1:],
                                           steps(lasso.cycle), lasso.note)
        return True


def _bounded(cache: dict[Any, Any]) -> dict[Any, Any]:
    """``cache``, emptied first when it holds ``CACHE_LIMIT`` entries."""
    if len(cache) >= CACHE_LIMIT:
        cache.clear()
    return cache
