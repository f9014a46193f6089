"""The system model's symmetry (kstate/verify/system/symmetry.py): the representative is
exact — every renaming of nodes and of each RC's pods gets the same one — and renaming
commutes with the model's actions, which is what liveness under symmetry relies on
(docs/checker.md, "Liveness under symmetry") — on every shipped scenario, those with a
Service too: a scale-down among pods of equal rank explores every choice and order of its
victims (``replication.reconcile_choices``), so no decision follows a pod's name."""

from __future__ import annotations

import itertools
import random
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kstate.control.commands import Delete
from kstate.verify.checker import family_of
from kstate.verify.checker.model import states_within as states_to_depth
from kstate.verify.system import load_scenario
from kstate.verify.system.symmetry import _pod_names, _pod_renaming, rename

SCENARIOS = Path(__file__).resolve().parents[2] / "specs" / "scenarios"


def _nodes(model: Any) -> list[str]:
    first = next(iter(model.initial_states()))
    return sorted(n.metadata.name for n in first.objects("Node"))


def _renamings(w: Any, nodes: list[str]) -> Iterator[dict[str, str]]:
    """Every node renaming combined with every renaming of each RC's pods, but the
    identity."""
    per_rc = [sorted(names) for names in _pod_names(w).values() if len(names) > 1]
    pod_choices = [[_pod_renaming(names, list(p)) for p in itertools.permutations(names)]
                   for names in per_rc]
    for image in itertools.permutations(nodes):
        for pods in itertools.product(*pod_choices):
            names = dict(zip(nodes, image, strict=True))
            for part in pods:
                names.update(part)
            if any(k != v for k, v in names.items()):
                yield names


def _unequal_moves(model: Any, states: list[Any], nodes: list[str],
                   renamings: list[dict[str, str]] | None = None) -> tuple[int, int]:
    """(renamings tried, renamings after which some action leads elsewhere than the
    renamed successor): ``actions(rename(s))`` against ``rename(actions(s))``, as
    multisets of successors (every renaming, or the given ones)."""
    tried = bad = 0
    for w in states:
        succ = list(model.actions(w))
        for names in _renamings(w, nodes) if renamings is None else renamings:
            want = Counter((family_of(a), rename(t, names)) for a, t in succ)
            got = Counter((family_of(a), t) for a, t in model.actions(rename(w, names)))
            tried += 1
            bad += want != got
    return tried, bad


@pytest.mark.parametrize(("name", "depth"), [("stale-scheduler", 12), ("quickstart", 5),
                                             ("controller-restart", 30)])
def test_every_renaming_of_a_state_gets_its_representative(name: str, depth: int) -> None:
    scenario = load_scenario(SCENARIOS / f"{name}.yaml")
    model = scenario.model(symmetry=True)
    nodes = _nodes(model)
    renamed = 0
    for w in states_to_depth(scenario.model(symmetry=False), depth):
        rep = model.canonical(w)
        for names in _renamings(w, nodes):
            assert model.canonical(rename(w, names)) == rep, name
            renamed += 1
    assert renamed > 0


@pytest.mark.parametrize(("name", "depth"), [("node-partition", 10), ("stale-cache", 12),
                                             ("controller-restart", 14),
                                             ("graceful-delete", 14),
                                             # with a Service (on d69885e, before scale-
                                             # downs explored every choice and order of
                                             # equal-rank victims: 424 of 10,040
                                             # renamings of quickstart differed)
                                             ("quickstart", 6), ("three-nodes", 4)])
def test_renaming_commutes_with_the_actions(name: str, depth: int) -> None:
    scenario = load_scenario(SCENARIOS / f"{name}.yaml")
    model = scenario.model(symmetry=True)
    assert model.symmetry_exact
    states = states_to_depth(scenario.model(symmetry=False), depth)
    sample = 300 if len(_nodes(model)) < 3 else 60  # three nodes: 6x the renamings
    tried, bad = _unequal_moves(model, states[::max(1, len(states) // sample)],
                                _nodes(model))
    assert tried > 0 and bad == 0


def test_renaming_commutes_along_walks_through_three_nodes() -> None:
    """three-nodes beyond a breadth-first depth: seeded walks that reach the scale-down
    to 2 (victims of equal rank), crashes, the partition and its evictions."""
    scenario = load_scenario(SCENARIOS / "three-nodes.yaml")
    model = scenario.model(symmetry=True)
    nodes, rng, seen = _nodes(model), random.Random(1), set()
    tried = bad = 0
    fired: set[str] = set()
    for _ in range(12):
        w = next(iter(model.initial_states()))
        for _ in range(50):
            succ = model.actions(w)
            if not succ:
                break
            fired.update(action for action, _ in succ)
            if w not in seen:
                seen.add(w)
                renamings = list(_renamings(w, nodes))
                tried_here, bad_here = _unequal_moves(
                    model, [w], nodes, rng.sample(renamings, min(3, len(renamings))))
                tried, bad = tried + tried_here, bad + bad_here
            w = rng.choice(succ)[1]
    assert tried > 500 and bad == 0
    assert any(a.startswith("Sync(web, ") for a in fired)  # a choice among equal pods


@pytest.mark.parametrize("name", ["lost-node-traffic", "crash-loop"])
def test_a_service_scenario_with_one_node_and_one_pod_has_no_renaming(name: str) -> None:
    """The other Service scenarios: one node, and never two pods of the RC at once —
    no renaming but the identity, so their representative is trivially exact."""
    scenario = load_scenario(SCENARIOS / f"{name}.yaml")
    model = scenario.model(symmetry=True)
    assert model.symmetry_exact
    for w in states_to_depth(scenario.model(symmetry=False), 12):
        assert next(_renamings(w, _nodes(model)), None) is None


def test_renaming_commutes_where_a_lost_node_has_two_pods_evicted() -> None:
    """three-nodes steered to where the node lifecycle evicts two pods of one node in a
    round (a scale to 4, a node holding two running pods partitioned, time passing):
    renaming commutes there too — the round explores every order of its deletes
    (``NodeLifecycle(a+b)``): the cache's order, by key, is not one a renaming keeps."""
    scenario = load_scenario(SCENARIOS / "three-nodes.yaml")
    model = scenario.model(symmetry=True)
    nodes, rng = _nodes(model), random.Random(7)
    evicting = tried = bad = 0
    for _ in range(4):
        w, partitioned = next(iter(model.initial_states())), False
        for _ in range(120):
            succ = model.actions(w)
            if not succ:
                break
            if any(a.startswith("NodeLifecycle")
                   and sum(isinstance(c, Delete) for c in cmds) >= 2
                   for a, cmds, _, _ in model._cm_rounds(w.cm.watcher.cache,
                                                         w.cm.expectations, w.cm.memory,
                                                         w.now)):
                evicting += 1
                renamings = list(_renamings(w, nodes))
                tried_here, bad_here = _unequal_moves(model, [w], nodes,
                                                      rng.sample(renamings, 10))
                tried, bad = tried + tried_here, bad + bad_here
            w = rng.choice(_steered(w, succ, partitioned, rng))[1]
            partitioned = partitioned or not all(k.up for k in w.kubelets.values())
    assert evicting > 0 and tried > 0 and bad == 0


def _busiest(w: Any) -> str | None:
    """A node running two pods, if any."""
    running = Counter(p.spec.node_name for p in w.pods() if p.status.phase == "Running"
                      and p.spec.node_name and not p.metadata.deletion_timestamp)
    return next((n for n, k in running.items() if k >= 2), None)


def _steered(w: Any, succ: list[Any], partitioned: bool, rng: random.Random) -> list[Any]:
    calm = [m for m in succ if not m[0].startswith(("Heal", "Crash", "Restart"))]
    if not partitioned:
        busy = _busiest(w)
        if busy is not None and any(m[0] == f"Partition({busy})" for m in succ):
            return [m for m in succ if m[0] == f"Partition({busy})"]
        scale = [m for m in succ if m[0] == "Scale(web, 4)"]
        return scale or [m for m in calm if not m[0].startswith(("Scale", "Partition",
                                                                 "Tick"))] or succ
    calm = [m for m in calm if not m[0].startswith(("Scale", "Partition"))] or succ
    timely = [m for m in calm if m[0].startswith(("Tick", "NodeLifecycle"))]
    return timely if timely and rng.random() < 0.6 else calm
