"""Partial-order reduction in the generic checker: same verdicts and trace lengths as
the full search, the cycle proviso, identical results for any number of workers, a
wrong footprint caught, and the bad inputs."""

from __future__ import annotations

from typing import Any

import pytest

from kstate.errors import ModelError
from kstate.verify.checker import Checker, CheckResult, Footprint, Model, check, stubborn
from kstate.verify.examples.twophase import TwoPhase

from .models import Counter, Ignoring, Workers


def _verdicts(r: CheckResult) -> list[tuple[str, str, int]]:
    return [(p.name, p.verdict.value, p.length) for p in r.properties]


def _same(model: Model[Any], **options: Any) -> tuple[CheckResult, CheckResult]:
    full = check(model, por=False, **options)
    reduced = check(model, por=True, **options)
    assert _verdicts(reduced) == _verdicts(full)
    return full, reduced


@pytest.mark.parametrize("model", [
    Workers(4, 3), Workers(4, 3, bad_flags=3), Workers(3, 2, ordered=True),
    Workers(3, 2, bad_flags=2, ordered=True),
    TwoPhase(3, footprints=True), TwoPhase(3, footprints=True, seeded_bug=True),
    TwoPhase(4, footprints=True, check=()), TwoPhase(4, footprints=True, check=(),
                                                      seeded_bug=True),
], ids=repr)
@pytest.mark.parametrize("stop", ["decided", "never", "first-violation"])
def test_same_verdicts_and_bfs_trace_lengths(model: Model[Any], stop: str) -> None:
    full, reduced = _same(model, stop=stop, deadlock=True)
    assert reduced.por and not full.por
    assert reduced.distinct_states <= full.distinct_states
    for p in reduced.properties:  # the trace shown is a real path of the full model
        if p.trace:
            assert [s.action for s in p.trace] == [
                s.action for s in full.property(p.name).trace]


def test_the_reduction_removes_states_where_actions_are_independent() -> None:
    full, reduced = _same(Workers(4, 3), stop="never")
    assert (full.distinct_states, reduced.distinct_states) == (625, 28)
    assert reduced.transitions_kept < reduced.transitions == 80
    assert reduced.reduced_states > 0
    assert "partial-order reduction: kept" in reduced.summary()


def test_a_longer_reduced_trace_is_replaced_by_the_shortest() -> None:
    # the reduced graph runs p0 first, so its first "one flag up" witness is longer
    # than the full graph's; the re-search without reduction restores the shortest
    model = Workers(3, 2)
    full = check(model, por=False)
    reduced = check(model, por=True)
    assert reduced.property("OneFlag").length == full.property("OneFlag").length == 4


def test_first_violation_reports_what_the_full_run_reports() -> None:
    # Full graph: p1 (1 private step) overtakes p0 at 3 states, so a first-violation run
    # stops there with P0First violated and P0Down bounded. The reduced graph runs p0's
    # 3 private steps first and reaches P0Down (5 states) before P0First (6 states);
    # the full re-search restores the full run's verdicts.
    model = Workers(2, (3, 1), ordered=True, p0_down=True)
    full = check(model, por=False, stop="first-violation")
    reduced = check(model, por=True, stop="first-violation")
    assert full.property("P0First").verdict.value == "violated"
    assert full.property("P0Down").verdict.value == "bounded"
    assert _verdicts(reduced) == _verdicts(full)
    assert reduced.reduced_states > 0


def test_dfs_gives_the_same_verdicts() -> None:
    for model in (Workers(4, 3, bad_flags=4), Workers(3, 2, ordered=True),
                  TwoPhase(3, footprints=True, seeded_bug=True)):
        full = check(model, strategy="dfs", por=False, stop="never")
        reduced = check(model, strategy="dfs", por=True, stop="never")
        assert [(p.name, p.verdict) for p in full.properties] == [
            (p.name, p.verdict) for p in reduced.properties]
    assert reduced.por


def test_workers_give_identical_results_with_por() -> None:
    def stable(r: CheckResult) -> dict[str, Any]:
        d = r.to_json()
        for k in ("elapsed", "statesPerSecond", "workers"):
            d.pop(k)
        return d

    for model in (Workers(5, 3, bad_flags=5), TwoPhase(4, footprints=True, check=(),
                                                       seeded_bug=True)):
        one = Checker(model).por().workers(1).deadlock().stop("never").run()
        two = Checker(model).por().workers(2).deadlock().stop("never").run()
        assert one.reduced_states > 0
        assert stable(one) == stable(two)


@pytest.mark.parametrize("strategy", ["bfs", "dfs"])
def test_the_cycle_proviso_finds_what_an_ignored_action_hides(strategy: str) -> None:
    # Ignoring's persistent set is always {Spin}; without the proviso the reduced
    # graph would be the x-cycle alone and YZero would "hold"
    r = check(Ignoring(), por=True, strategy=strategy)
    assert r.property("YZero").verdict.value == "violated"
    assert r.reduced_states >= 1


def test_a_wrong_footprint_changes_a_verdict() -> None:
    # The same-verdict comparison has teeth: declaring Finish invisible lets the
    # reduction run p0 to completion first, and p1 never overtakes it.
    right = check(Workers(3, 2, ordered=True), por=True)
    wrong = check(Workers(3, 2, ordered=True, wrong=True), por=True)
    unreduced = check(Workers(3, 2, ordered=True, wrong=True), por=False)
    assert right.property("P0First").verdict.value == "violated"
    assert unreduced.property("P0First").verdict.value == "violated"
    assert wrong.property("P0First").verdict.value == "holds"


def test_liveness_runs_the_full_graph_by_default_and_says_so() -> None:
    auto = check(Workers(3, 2, live=True))
    full = check(Workers(3, 2, live=True), por=False)
    assert not auto.por
    assert auto.distinct_states == full.distinct_states
    assert any("liveness: explored without partial-order reduction" in w
               for w in auto.warnings)
    assert not full.warnings


def test_por_with_liveness_is_bad_input() -> None:
    with pytest.raises(ModelError) as e:
        check(Workers(3, 2, live=True), por=True)
    assert e.value.field == "por"
    assert "AllFlags" in str(e.value)


def test_por_without_a_persistent_hook_is_bad_input() -> None:
    with pytest.raises(ModelError) as e:
        check(Counter(), por=True)
    assert e.value.field == "por"
    assert not check(Counter()).por  # the default quietly runs in full


def test_a_por_option_that_is_not_a_bool_is_bad_input() -> None:
    with pytest.raises(ModelError) as e:
        check(Workers(2, 1), por="yes")
    assert e.value.field == "por"


def test_a_depth_bound_turns_the_default_off_quietly() -> None:
    r = check(Workers(4, 3), max_depth=5)
    assert not r.por and not r.warnings
    assert check(Workers(4, 3)).por
    assert check(Workers(4, 3), max_depth=5, por=True).por


def test_a_malformed_persistent_answer_is_a_model_error() -> None:
    class Bad(Workers):
        def persistent(self, s: Any, actions: Any) -> list[int]:
            return [len(actions)]

    with pytest.raises(ModelError) as e:
        check(Bad(2, 1), por=True)
    assert e.value.field == "persistent"


def test_symmetry_and_por_together_keep_verdicts() -> None:
    for bug in (False, True):
        model = TwoPhase(4, "exact", footprints=True, check=(), seeded_bug=bug)
        full = check(model, por=False, deadlock=True, stop="never")
        reduced = check(model, por=True, deadlock=True, stop="never")
        assert _verdicts(full) == _verdicts(reduced)
        assert reduced.distinct_states < full.distinct_states


def test_progress_reports_the_kept_ratio() -> None:
    seen = []
    check(Workers(4, 3), por=True, stop="never", progress=seen.append, progress_interval=0)
    assert seen and all(p.reduction is not None and 0 < p.reduction <= 1 for p in seen)
    assert "kept" in seen[-1].line()


def test_json_round_trips_the_reduction_figures() -> None:
    r = check(Workers(4, 3), por=True, stop="never")
    back = CheckResult.from_json(r.to_json())
    assert (back.por, back.transitions_kept, back.reduced_states) == (
        True, r.transitions_kept, r.reduced_states)


def test_stubborn_closure() -> None:
    fp = {"a": Footprint(frozenset({"x"}), frozenset({"x"})),
          "b": Footprint(frozenset({"x"}), frozenset({"y"})),
          "c": Footprint(frozenset({"z"}), frozenset({"z"})),
          "d": Footprint(frozenset({"q"}), frozenset({"v"}), guard=frozenset({"q"}))}
    # a and b conflict on x, c is alone: {c} is the smallest set
    assert stubborn(["a", "b", "c"], fp, fp.__getitem__, frozenset()) == [2]
    # c visible: {a, b} (a's closure pulls in b)
    assert stubborn(["a", "b", "c"], fp, fp.__getitem__, frozenset({"z"})) == [0, 1]
    # a visible too: b's closure needs a -> nothing qualifies
    assert stubborn(["a", "b", "c"], fp, fp.__getitem__, frozenset({"z", "x"})) is None
    # c disables/enables d (writes q, which d reads); d is disabled waiting for x, so
    # its necessary-enabling set, a (the writer of x), joins c's closure
    fp["c"] = Footprint(frozenset({"z"}), frozenset({"z", "q"}))
    fp["d"] = Footprint(frozenset({"q", "x"}), frozenset({"v"}), guard=frozenset({"x"}))
    assert stubborn(["c", "a"], fp, fp.__getitem__, frozenset()) == [1]  # {a} < {c, a}
    assert stubborn(["c", "a"], fp, fp.__getitem__, frozenset({"x"})) is None
