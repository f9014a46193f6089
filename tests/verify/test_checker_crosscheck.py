"""Published figures, reproduced digit for digit (issue 7, "Cross-checks").

TwoPhase counts are TLC's: "distinct states" and "states generated" (initial states plus
every successor computed: 1 + 1,145 = 1,146 for N=3), depth counting the initial state
as 1. The 665 for N=5 with symmetry is Stateright's figure (its 2pc example): it uses a
non-canonical representative under DFS; the exact orbit count is 314.
"""

from __future__ import annotations

import pytest

from kstate.verify.checker import Checker, Verdict, check, validate_trace
from kstate.verify.examples.diehard import DieHard, Jugs
from kstate.verify.examples.twophase import PackedTwoPhase, TwoPhase


@pytest.mark.parametrize("model", [TwoPhase(3), PackedTwoPhase(3)], ids=["attrs", "packed"])
def test_twophase_3_matches_tlc(model) -> None:
    r = check(model)
    assert (r.distinct_states, r.states_generated, r.depth) == (288, 1146, 11)
    assert r.transitions == 1145 and r.initial_states == 1
    assert r.complete and r.ok
    assert r.property("TCConsistent").verdict is Verdict.HOLDS
    assert r.property("TPTypeOK").verdict is Verdict.HOLDS


@pytest.mark.parametrize("model", [TwoPhase(5), PackedTwoPhase(5)], ids=["attrs", "packed"])
def test_twophase_5(model) -> None:
    r = check(model)
    assert r.distinct_states == 8832
    assert r.property("TCConsistent").verdict is Verdict.HOLDS


def test_twophase_7_vectorised_and_scalar_agree() -> None:
    # ~1 s vectorised, ~3 s scalar on the 2-core CI machine
    fast = check(PackedTwoPhase(7))
    slow = check(PackedTwoPhase(7), vectorised=False)
    assert fast.distinct_states == slow.distinct_states == 296_448
    assert fast.states_generated == slow.states_generated
    assert fast.depth == slow.depth
    assert fast.ok and slow.ok


def test_twophase_5_symmetry_665_is_stateright_dfs() -> None:
    for model in (TwoPhase(5, symmetry="rm-state"), PackedTwoPhase(5, symmetry="rm-state")):
        assert Checker(model).dfs().run().distinct_states == 665
        # the same non-canonical representative under BFS: order-dependent, pinned
        assert Checker(model).bfs().run().distinct_states == 508


def test_twophase_5_exact_symmetry_is_the_orbit_count() -> None:
    for model in (TwoPhase(5, symmetry="exact"), PackedTwoPhase(5, symmetry="exact")):
        for strategy in ("bfs", "dfs"):
            r = check(model, strategy=strategy)
            assert r.distinct_states == 314 and r.symmetry and r.ok
    # vectorised canonical_array agrees with the scalar one
    assert check(PackedTwoPhase(5, symmetry="exact"), vectorised=False).distinct_states == 314


def test_symmetry_witnesses_replay_as_concrete_traces() -> None:
    r = check(TwoPhase(4, symmetry="exact"))
    witness = r.property("AllCommitted")
    assert witness.verdict is Verdict.WITNESSED
    validate_trace(TwoPhase(4), witness.trace)  # concrete states, every step enabled
    assert all(v == "committed" for v in witness.trace[-1].state["rmState"].values())


def test_encodings_describe_the_same_graph() -> None:
    a, p = TwoPhase(3), PackedTwoPhase(3)
    for s in _reachable(p):
        readable = p.decode(s)
        assert p.encode(readable) == s
        assert a.describe(readable) == p.describe(s)
        assert [(n, a.describe(t)) for n, t in a.actions(readable)] == \
            [(n, p.describe(t)) for n, t in p.actions(s)]


def test_vector_successors_match_actions() -> None:
    import numpy as np

    p = PackedTwoPhase(4, symmetry="exact")
    states = sorted(_reachable(p))
    par, idx, nxt = p.successors_array(np.array(states, np.int64))
    got = sorted(zip(par.tolist(), idx.tolist(), nxt.tolist(), strict=True))
    want = sorted((i, j, t) for i, s in enumerate(states)
                  for j, (_, t) in enumerate(p.actions(s)))
    assert got == want
    canon = p.canonical_array(np.array(states, np.int64)).tolist()
    assert canon == [p.canonical(s) for s in states]


def test_diehard() -> None:
    r = Checker(DieHard()).bfs().stop("never").run()
    assert r.distinct_states == 16 and r.complete
    bad = r.property("NotSolved")
    assert bad.verdict is Verdict.VIOLATED
    assert bad.length == 7  # 7 states, 6 pours: the shortest solution
    assert bad.trace[-1].raw == Jugs(3, 4)
    validate_trace(DieHard(), bad.trace)
    assert r.property("TypeOK").verdict is Verdict.HOLDS
    # by default the search stops once every property is decided: TypeOK keeps it going
    assert check(DieHard()).distinct_states == 16


def _reachable(model) -> set:
    seen = set(model.initial_states())
    todo = list(seen)
    while todo:
        for _, t in model.actions(todo.pop()):
            if t not in seen:
                seen.add(t)
                todo.append(t)
    return seen
