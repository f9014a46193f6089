"""The system model's symmetry (kstate/verify/system/symmetry.py): the representative is
exact — every renaming of nodes and of each RC's pods gets the same one — and renaming
commutes with the model's actions, which is what liveness under symmetry relies on
(docs/checker.md, "Liveness under symmetry"). On the Service scenarios it does not commute
(a scale-down that ties, or deletes several pods in one step, goes in name order), and the
model says so."""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

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


def _unequal_moves(model: Any, states: list[Any], nodes: list[str]) -> tuple[int, int]:
    """(renamings tried, renamings after which some action leads elsewhere than the
    renamed successor): ``actions(rename(s))`` against ``rename(actions(s))``."""
    tried = bad = 0
    for w in states:
        succ = list(model.actions(w))
        for names in _renamings(w, nodes):
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
                                             ("graceful-delete", 14)])
def test_renaming_commutes_with_the_actions(name: str, depth: int) -> None:
    scenario = load_scenario(SCENARIOS / f"{name}.yaml")
    model = scenario.model(symmetry=True)
    assert model.symmetry_exact
    states = states_to_depth(scenario.model(symmetry=False), depth)
    tried, bad = _unequal_moves(model, states[::max(1, len(states) // 300)], _nodes(model))
    assert tried > 0 and bad == 0


def test_with_a_service_renaming_does_not_commute_and_symmetry_is_not_exact() -> None:
    scenario = load_scenario(SCENARIOS / "quickstart.yaml")
    model = scenario.model(symmetry=True)
    assert not model.symmetry_exact
    _, bad = _unequal_moves(model, states_to_depth(model, 5)[::6], _nodes(model))
    assert bad > 0  # tied / multi-pod scale-downs in name order: if this reaches 0, mark it exact
