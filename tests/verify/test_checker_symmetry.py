"""The symmetry helper computes exact orbit representatives; the fingerprint table is a
correct set. Both checked against brute force with Hypothesis."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from kstate.verify.checker import Symmetry, check
from kstate.verify.checker.table import FingerprintTable, mix
from kstate.verify.examples.twophase import TPState, TwoPhase, _permute

IDS = ("a", "b", "c", "d")

# A state: per identity a small value, plus a set of ordered pairs of identities (a
# relation, so renaming matters beyond per-identity data).
State = tuple[tuple[int, ...], frozenset[tuple[str, str]]]


def permute(s: State, r: Mapping[str, str]) -> State:
    values = [0] * len(IDS)
    for i, v in enumerate(s[0]):
        values[IDS.index(r[IDS[i]])] = v
    return tuple(values), frozenset((r[x], r[y]) for x, y in s[1])


def signature(s: State, x: str) -> tuple[int, int, int]:
    return (s[0][IDS.index(x)], sum(1 for a, _ in s[1] if a == x),
            sum(1 for _, b in s[1] if b == x))


states = st.tuples(
    st.tuples(*[st.integers(0, 2)] * len(IDS)),
    st.frozensets(st.tuples(st.sampled_from(IDS), st.sampled_from(IDS)), max_size=5),
)
renamings = st.permutations(IDS).map(lambda image: dict(zip(IDS, image, strict=True)))

BRUTE = Symmetry(IDS, permute)
REFINED = Symmetry(IDS, permute, signature=signature)


@given(states, renamings)
def test_canonical_is_constant_on_orbits(s: State, r: dict[str, str]) -> None:
    for sym in (BRUTE, REFINED):
        assert sym.canonical(permute(s, r)) == sym.canonical(s)
        assert sym.canonical(s) in BRUTE.orbit(s)


@given(states, states)
def test_canonical_separates_orbits(s: State, t: State) -> None:
    same_orbit = t in BRUTE.orbit(s)
    assert (REFINED.canonical(s) == REFINED.canonical(t)) == same_orbit


def test_twophase_orbits_counted_by_brute_force() -> None:
    model = TwoPhase(4)
    reachable = _reachable(model)
    sym = Symmetry(tuple(range(4)), _permute)
    orbits = {sym.canonical(s) for s in reachable}
    assert check(TwoPhase(4, symmetry="exact")).distinct_states == len(orbits)
    assert all(model.canonical(s) == s for s in list(reachable)[:5])  # no symmetry: identity
    exact = TwoPhase(4, symmetry="exact")
    assert {exact.canonical(s) for s in reachable} == {
        exact.canonical(o) for o in orbits}


@given(st.lists(st.lists(st.integers(-(2**63), 2**63 - 1) | st.integers(0, 40),
                         max_size=60), max_size=8))
def test_fingerprint_table_is_a_set(batches: list[list[int]]) -> None:
    table = FingerprintTable(capacity=16)
    ref: dict[int, int] = {}
    for batch in batches:
        fps = np.array(batch, np.int64)
        ids, new = table.insert(mix(fps))
        seen_here: set[int] = set()
        for fp, i, is_new in zip(batch, ids.tolist(), new.tolist(), strict=True):
            first = fp not in ref and fp not in seen_here
            assert is_new == first
            if first:
                ref[fp] = i
                seen_here.add(fp)
            assert ref[fp] == i
        assert table.size == len(ref)
    if ref:
        keys = np.array(list(ref), np.int64)
        assert table.find(mix(keys)).tolist() == list(ref.values())
        assert (table.find(mix(np.array([2**62 + 12345], np.int64))) == -1).all() or \
            2**62 + 12345 in ref


def _reachable(model: TwoPhase) -> set[TPState]:
    seen = set(model.initial_states())
    todo = list(seen)
    while todo:
        for _, t in model.actions(todo.pop()):
            if t not in seen:
                seen.add(t)
                todo.append(t)
    return seen
