"""The system model's symmetry is exact: every renaming of nodes and of each RC's pods
gets the same representative (kstate/verify/system/symmetry.py) — what liveness under
symmetry relies on (docs/checker.md, "Liveness under symmetry")."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest

from kstate.verify.system import load_scenario
from kstate.verify.system.symmetry import _pod_names, _pod_renaming, rename

SCENARIOS = Path(__file__).resolve().parents[2] / "specs" / "scenarios"


def _reachable(model: Any, depth: int) -> list[Any]:
    seen = dict.fromkeys(model.initial_states())
    level = list(seen)
    for _ in range(depth):
        nxt = []
        for s in level:
            for _, t in model.actions(s):
                if t not in seen:
                    seen[t] = None
                    nxt.append(t)
        level = nxt
    return list(seen)


def _renamings(w: Any, nodes: list[str]) -> list[dict[str, str]]:
    """Every node renaming combined with every renaming of each RC's pods."""
    per_rc = [sorted(names) for names in _pod_names(w).values() if len(names) > 1]
    pod_choices = [
        [_pod_renaming(names, list(p)) for p in itertools.permutations(names)]
        for names in per_rc]
    out = []
    for image in itertools.permutations(nodes):
        for pods in itertools.product(*pod_choices):
            names = dict(zip(nodes, image, strict=True))
            for part in pods:
                names.update(part)
            out.append(names)
    return out


@pytest.mark.parametrize(("name", "depth"), [("stale-scheduler", 12), ("quickstart", 5),
                                             ("controller-restart", 30)])
def test_every_renaming_of_a_state_gets_its_representative(name: str, depth: int) -> None:
    scenario = load_scenario(SCENARIOS / f"{name}.yaml")
    model = scenario.model(symmetry=True)
    assert model.symmetry_exact
    nodes = sorted(n.metadata.name for n in model.initial_states().__iter__().__next__()
                   .objects("Node"))
    states = _reachable(scenario.model(symmetry=False), depth)
    renamed = 0
    for w in states:
        rep = model.canonical(w)
        for names in _renamings(w, nodes):
            if any(k != v for k, v in names.items()):
                assert model.canonical(rename(w, names)) == rep, name
                renamed += 1
    assert renamed > 0  # states were really renamed
