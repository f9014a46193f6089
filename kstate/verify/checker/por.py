"""Partial-order reduction: the model's persistent sets, checked, and a footprint helper.

Where it sits: between a model's ``Model.persistent`` hook and the search strategies
(``bfs.py``, ``dfs.py``). The *model* vouches for conditions C0-C2 of a persistent set
(non-empty when the state has successors; no action outside the set, on any path from
the state that avoids the set, depends on one inside; every member invisible to the
properties being checked). The *checker* owns the cycle proviso C3 (see ``bfs.py`` and
``dfs.py``): a state is reduced only if none of its kept successors was already visited
when it was expanded, so every cycle of the reduced graph has a fully expanded state.
The soundness argument is in docs/checker.md, "Partial-order reduction".

``stubborn`` lets a model describe its actions by read/write *footprints* over named
locations and get a persistent set from the classic stubborn-set closure, so a model
states footprints, not the algorithm:

* start from one enabled, invisible action;
* for an enabled member add every action dependent on it (one writes what the other
  reads or writes);
* for a disabled member add a necessary-enabling set: every action that writes a
  location its guard reads (a model may name only the locations of one guard conjunct
  that is false in the current state — still a necessary-enabling set there);
* give up on the seed if an enabled visible action joins; the enabled members are the
  persistent set. The smallest over all seeds wins.

An over-approximated footprint only costs reduction; an under-approximated one can hide
a violation (tests/verify/test_checker_por.py shows a wrong footprint changing a verdict).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import Any

import attrs

from kstate.errors import ModelError

Location = Hashable


@attrs.frozen
class Footprint:
    """What an action may read and write, as named locations (any hashables: a variable,
    ``("rm", 2)``, ``("queue", "cm", "Pod")``).

    ``reads`` covers everything its guard and its effect depend on; ``writes`` every
    location whose value it may change. ``guard`` is what a *disabled* action waits for:
    the locations its enabling condition reads (``None``: all of ``reads``).
    """

    reads: frozenset[Location] = frozenset()
    writes: frozenset[Location] = frozenset()
    guard: frozenset[Location] | None = None

    def dependent(self, other: Footprint) -> bool:
        """True unless the two provably commute and cannot enable or disable each other."""
        return bool(self.writes & other.writes or self.writes & other.reads
                    or other.writes & self.reads)

    @property
    def enabling(self) -> frozenset[Location]:
        return self.reads if self.guard is None else self.guard


def stubborn(
    enabled: Sequence[str],
    universe: Iterable[str],
    footprint: Callable[[str], Footprint],
    visible: frozenset[Location],
) -> list[int] | None:
    """A persistent set for a state, by stubborn-set closure over footprints.

    ``enabled``: the names of the state's actions, in ``actions()`` order (an action
    listed several times, e.g. one per nondeterministic outcome, is one action).
    ``universe``: every action that may become enabled on some path from the state (a
    superset is fine). ``footprint(name)``: that action's footprint at this state.
    ``visible``: the locations the properties read; an action writing one is visible.
    Returns indexes into ``enabled``, or ``None`` when no proper subset qualifies.
    """
    on = set(enabled)
    everyone = list(dict.fromkeys([*enabled, *universe]))
    fps = {name: footprint(name) for name in everyone}
    best: set[str] | None = None
    for seed in dict.fromkeys(enabled):
        if fps[seed].writes & visible:
            continue
        members = {seed}
        work = [seed]
        ok = True
        while work and ok:
            a = work.pop()
            fa = fps[a]
            if a in on:
                deps = [b for b in everyone if b not in members and fa.dependent(fps[b])]
            else:
                need = fa.enabling
                deps = [b for b in everyone if b not in members and fps[b].writes & need]
            for b in deps:
                if b in on and fps[b].writes & visible:
                    ok = False
                    break
                members.add(b)
                work.append(b)
            if best is not None and len(members & on) >= len(best):
                ok = False  # no smaller than the best so far
        if ok:
            best = members & on
            if len(best) == 1:
                break
    if best is None or len(best) == len(on):
        return None
    return [i for i, name in enumerate(enabled) if name in best]


def persistent_mask(model: Any, label: str, state: Any,
                    successors: Sequence[tuple[str, Any]]) -> list[bool] | None:
    """Ask the model for a persistent set; per successor, True when it is *left out*.
    ``None``: no reduction here. A malformed answer is a ``ModelError``."""
    if len(successors) < 2:
        return None
    chosen = model.persistent(state, successors)
    if chosen is None:
        return None
    n = len(successors)
    try:
        idx = {int(i) for i in chosen}
    except (TypeError, ValueError):
        raise ModelError(f"persistent() must return indexes into the action list, got "
                         f"{chosen!r}", model=label, field="persistent") from None
    if not idx or any(i < 0 or i >= n for i in idx):
        raise ModelError(f"persistent() returned {sorted(idx)!r} for a state with {n} "
                         "actions: it must be a non-empty set of indexes below that",
                         model=label, field="persistent")
    if len(idx) == n:
        return None
    return [i not in idx for i in range(n)]
