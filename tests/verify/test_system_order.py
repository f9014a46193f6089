"""The system model's successors are a function of the state (issue 15).

The checker keeps one state per equality class, and ``FrozenDict`` equality ignores
insertion order while its iteration follows it. So for every reachable state ``s`` and
every ``s2 == s`` laid out in another order — every FrozenDict inside it, at any depth
(store, caches, pending events, kubelets, runtimes, the objects' own maps) — the multiset
of successor states must be the same: otherwise which behaviours the checker explores
would depend on which member of the class it met first (a soundness hole), and symmetry
could not be exact.

Each side runs on a model of its own (a fresh memo): a shared one would hand the
shuffled state the original's memoised answers and hide the difference."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from kstate.api.frozen import FrozenDict
from kstate.api.objects import Pod
from kstate.control.commands import Delete, Update
from kstate.verify.checker.model import states_within
from kstate.verify.system import load_scenario
from kstate.verify.system.model import SystemModel
from kstate.verify.system.world import World

SCENARIOS = Path(__file__).resolve().parents[2] / "specs" / "scenarios"


def shuffled(value: Any, rng: random.Random) -> Any:
    """``value`` rebuilt with every FrozenDict (and frozenset) in it, at any depth, in a
    random insertion order: equal to ``value``, iterated differently."""
    if isinstance(value, FrozenDict):
        items = [(shuffled(k, rng), shuffled(v, rng)) for k, v in value.items()]
        rng.shuffle(items)
        return FrozenDict(items)
    if isinstance(value, tuple):
        return tuple(shuffled(v, rng) for v in value)
    if isinstance(value, frozenset):
        members = [shuffled(v, rng) for v in value]
        rng.shuffle(members)
        return frozenset(members)
    if attrs.has(type(value)):
        changes = {f.alias: shuffled(getattr(value, f.name), rng)
                   for f in attrs.fields(type(value)) if f.init}
        return attrs.evolve(value, **changes)
    return value


def _successors(model: SystemModel, w: World) -> Counter[World]:
    return Counter(t for _, t in model.actions(w))


def _order_dependent(make: Callable[[], SystemModel], states: list[World],
                     rng: random.Random, layouts: int = 2) -> tuple[int, list[str]]:
    """(layouts tried, the actions of states whose successors changed with the layout)."""
    tried, bad = 0, []
    for w in states:
        want = _successors(make(), w)
        for _ in range(layouts):
            other = shuffled(w, rng)
            assert other == w and hash(other) == hash(w)
            tried += 1
            got = _successors(make(), other)
            if got != want:
                bad.append(", ".join(sorted(a for a, _ in make().actions(w))))
    return tried, bad


def _sample(states: list[World], size: int) -> list[World]:
    return states[::max(1, len(states) // size)]


@pytest.mark.parametrize(("name", "depth", "size"), [
    ("quickstart", 7, 80), ("three-nodes", 4, 40), ("node-partition", 12, 80),
    ("full-disruption", 12, 80), ("namespace-delete", 30, 120)])
def test_successors_do_not_depend_on_insertion_order(name: str, depth: int,
                                                     size: int) -> None:
    scenario = load_scenario(SCENARIOS / f"{name}.yaml")
    states = states_within(scenario.model(symmetry=False), depth)
    tried, bad = _order_dependent(lambda: scenario.model(symmetry=False),
                                  _sample(states, size), random.Random(15))
    assert tried > 0 and not bad, (f"{len(bad)} of {tried} layouts", bad[:2])


def _two_pods_one_round(model: SystemModel, w: World) -> bool:
    """Some controller-manager round writes two pods (marks them lost, or deletes them)."""
    rounds = model._cm_rounds(w.cm.watcher.cache, w.cm.expectations, w.cm.memory, w.now)
    return any(label.startswith(("NodeLifecycle", "GC"))
               and len({c.name if isinstance(c, Delete) else c.obj.metadata.name
                        for c in cmds if isinstance(c, Delete)
                        or (isinstance(c, Update) and isinstance(c.obj, Pod))}) >= 2
               for label, cmds, _, _ in rounds)


def _walk(model: SystemModel, rng: random.Random, steps: int) -> Iterator[World]:
    """A seeded walk steered to a node holding two running pods lost: scale up, cut
    that node off, then let time pass (grace period, tolerations)."""
    from tests.verify.test_system_symmetry import _steered

    w, partitioned = next(iter(model.initial_states())), False
    for _ in range(steps):
        succ = model.actions(w)
        if not succ:
            return
        yield w
        w = rng.choice(_steered(w, succ, partitioned, rng))[1]
        partitioned = partitioned or not all(k.up for k in w.kubelets.values())


def test_successors_do_not_depend_on_insertion_order_where_a_lost_node_has_two_pods(
) -> None:
    """three-nodes, walked to where the node lifecycle writes two pods of one node in
    a round (marks them lost; evicts them): the order of those writes is the cache's in
    Kubernetes, so the model explores every order — whatever order its state lists them."""
    scenario = load_scenario(SCENARIOS / "three-nodes.yaml")
    model = scenario.model(symmetry=False)
    rng, seen = random.Random(7), set()
    busy: list[World] = []
    for _ in range(4):
        for w in _walk(model, rng, 120):
            if w not in seen and _two_pods_one_round(model, w):
                seen.add(w)
                busy.append(w)
    assert len(busy) >= 2
    # where the model explores both orders (NodeLifecycle(web-1+web-0), ...)
    assert any("+" in a for w in busy for a, _ in model.actions(w)
               if a.startswith("NodeLifecycle("))
    tried, bad = _order_dependent(lambda: scenario.model(symmetry=False), busy,
                                  random.Random(15), layouts=4)
    assert tried > 0 and not bad, (f"{len(bad)} of {tried} layouts", bad[:2])
