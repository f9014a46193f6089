"""The system model's representative (``ClusterSymmetry.canonical``,
kstate/verify/system/symmetry.py) is exact and a member of the orbit: for reachable
states s and every renaming r of nodes and of each RC's pods, canonical(r(s)) ==
canonical(s), and canonical(s) is some renaming of s. The pick among candidates is a
total order: with every key colliding it still is (``least`` falls back on structure)."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kstate.verify.checker.model import states_within
from kstate.verify.checker.symmetry import least, structure
from kstate.verify.system import load_scenario
from kstate.verify.system import symmetry as system_symmetry
from kstate.verify.system.symmetry import ClusterSymmetry, rename
from kstate.verify.system.world import World
from tests.verify.test_system_symmetry import _renamings as every_other_renaming

SCENARIOS = Path(__file__).resolve().parents[2] / "specs" / "scenarios"


def _every_renaming(w: World, nodes: list[str]) -> Iterator[dict[str, str]]:
    """Every renaming of the nodes combined with every renaming of each RC's pods, the
    identity first."""
    yield {}
    yield from every_other_renaming(w, nodes)


def _states(name: str, depth: int, sample: int = 0) -> tuple[list[str], list[World]]:
    """The scenario's nodes and reachable states (``sample`` of them, 0: all)."""
    scenario = load_scenario(SCENARIOS / f"{name}.yaml")
    states = states_within(scenario.model(symmetry=False), depth)
    if not sample:
        return list(scenario.nodes), states
    # the deepest states have the most pods and ties; take them, and spread the rest
    picked = states[-sample // 2:] + states[::max(1, len(states) // (sample // 2))]
    return list(scenario.nodes), picked


def _check_exact(sym: ClusterSymmetry, nodes: list[str], states: list[World],
                 limit: int = 48) -> int:
    checked = 0
    for w in states:
        rep = sym.canonical(w)
        renamings = list(itertools.islice(_every_renaming(w, nodes), limit))
        orbit = [rename(w, r) for r in renamings]
        assert any(rep == member for member in orbit) or \
            rep in {rename(w, r) for r in _every_renaming(w, nodes)}, "not in the orbit"
        for member in orbit:
            assert sym.canonical(member) == rep
            checked += 1
    return checked


@pytest.mark.parametrize(("name", "depth", "sample"), [
    ("quickstart", 7, 120), ("node-partition", 8, 80), ("three-nodes", 4, 40)])
def test_every_renaming_of_a_state_gets_the_same_member_of_its_orbit(
        name: str, depth: int, sample: int) -> None:
    nodes, states = _states(name, depth, sample)
    sym = ClusterSymmetry(nodes)
    assert _check_exact(sym, nodes, states) > len(states)


@pytest.fixture(scope="module")
def different_candidates() -> tuple[list[str], list[World]]:
    """quickstart states whose tied signatures give different candidate Worlds (not
    only renamings the state is symmetric under): there the pick decides exactness."""
    nodes, states = _states("quickstart", 8)
    sym = ClusterSymmetry(nodes)
    tied = [w for w in states if len(set(sym.candidates(w))) > 1]
    assert tied, "no state with different candidates: the tests would check nothing"
    return nodes, tied[:12]


def test_ties_between_different_candidates_are_resolved_exactly(
        different_candidates: tuple[list[str], list[World]]) -> None:
    nodes, tied = different_candidates
    _check_exact(ClusterSymmetry(nodes), nodes, tied)


def test_colliding_keys_still_give_one_representative_per_orbit(
        different_candidates: tuple[list[str], list[World]]) -> None:
    """Every candidate collides (key constant): the pick falls to ``structure``, which
    does not depend on the member of the orbit it starts from."""
    nodes, tied = different_candidates
    collide = ClusterSymmetry(nodes, key=lambda w: 0)
    _check_exact(collide, nodes, tied)
    w = tied[0]
    assert collide.canonical(w) == min(set(collide.candidates(w)), key=structure)


def test_least_is_a_total_order_under_collisions() -> None:
    a, b, c = ("x", 1), ("x", 2), ("y", 0)
    constant: Callable[[Any], int] = lambda s: 7  # noqa: E731 - every key collides
    for order in itertools.permutations([a, b, c]):
        assert least(order, constant) == a
        assert least(order, hash) == min(order, key=hash)
    assert least([b, b, b], constant) == b
    with pytest.raises(Exception, match="no candidate"):
        least([], constant)


def test_structure_orders_values_whatever_their_insertion_order() -> None:
    from kstate.api.frozen import FrozenDict

    one = FrozenDict({"a": 1, "b": (2, frozenset({"x", "y"}))})
    other = FrozenDict({"b": (2, frozenset({"y", "x"})), "a": 1})
    assert one == other and structure(one) == structure(other)
    assert structure(FrozenDict({"a": 1})) != structure(FrozenDict({"a": 2}))
    assert structure(1) == structure(1.0) and structure(None) != structure("")


def test_renaming_caches_dropped_when_full_give_the_same_representatives(
        monkeypatch: pytest.MonkeyPatch) -> None:
    nodes, states = _states("quickstart", 6, 60)
    before = [ClusterSymmetry(nodes).canonical(w) for w in states]
    monkeypatch.setattr(system_symmetry, "_CACHE_LIMIT", 50)
    monkeypatch.setattr(system_symmetry, "_KNOWN_LIMIT", 5)
    sym = ClusterSymmetry(nodes)
    assert [sym.canonical(w) for w in states] == before
    assert [sym.canonical(w) for w in states] == before  # some remembered, some not
