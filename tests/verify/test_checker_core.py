"""The checker's behaviour: strategies, workers, bounds, deadlocks, traces, JSON, errors."""

from __future__ import annotations

import json
from typing import Any

import pytest

from kstate.errors import ModelError
from kstate.verify.checker import (
    INIT,
    Checker,
    CheckResult,
    Model,
    Progress,
    Property,
    StopReason,
    Verdict,
    check,
    replay,
    steps_from_json,
    validate_trace,
)
from kstate.verify.examples.diehard import DieHard
from kstate.verify.examples.twophase import PackedTwoPhase, TwoPhase

from .models import Counter, Grid, NoInit, Unhashable


class Ticks:
    """A clock that advances one second per reading: timeouts without sleeping."""

    def __init__(self) -> None:
        self.t = 0.0

    def now(self) -> float:
        self.t += 1.0
        return self.t


def _stable(r: CheckResult) -> dict[str, Any]:
    d = r.to_json()
    for k in ("elapsed", "statesPerSecond", "workers"):
        d.pop(k)
    return d


# --------------------------------------------------------------------------- workers


@pytest.mark.parametrize("model", [
    TwoPhase(5, symmetry="rm-state"),  # a non-canonical representative: the hard case
    PackedTwoPhase(6),  # vectorised expansion
    DieHard(),
])
def test_workers_give_identical_results(model: Model[Any]) -> None:
    one = Checker(model).workers(1).run()
    two = Checker(model).workers(2).run()
    assert two.workers == 2
    assert _stable(one) == _stable(two)


def test_workers_identical_with_liveness_edges() -> None:
    model = Counter(top=40, reset=True, fair=["Inc"], props=[])
    from kstate.verify.checker import leads_to
    model.props = (leads_to("Wraps", lambda s: s == 40, lambda s: s == 0),)
    assert _stable(check(model, workers=1)) == _stable(check(model, workers=2))


# --------------------------------------------------------------------------- strategies


def test_dfs_finds_a_valid_but_not_necessarily_shortest_counterexample() -> None:
    r = Checker(DieHard()).dfs().run()
    bad = r.property("NotSolved")
    assert bad.verdict is Verdict.VIOLATED and bad.length >= 7
    validate_trace(DieHard(), bad.trace)
    assert check(TwoPhase(3), strategy="dfs").distinct_states == 288


def test_simulation_is_seeded_and_parallel_safe() -> None:
    sim = Checker(DieHard()).simulate(walks=300, depth=40, seed=7)
    a, b = sim.run(), sim.workers(2).run()
    assert _stable(a) == _stable(b)
    bad = a.property("NotSolved")
    assert bad.verdict is Verdict.VIOLATED
    validate_trace(DieHard(), bad.trace)
    assert a.property("TypeOK").verdict is Verdict.BOUNDED  # simulation proves nothing
    assert not a.complete and a.stop_reason is StopReason.WALKS
    other = Checker(DieHard()).simulate(walks=300, depth=40, seed=8).run()
    assert other.states_generated != a.states_generated  # the seed matters


def test_simulation_stays_within_the_reachable_set() -> None:
    r = Checker(TwoPhase(3)).simulate(walks=200, depth=12, seed=1).run()
    assert 0 < r.distinct_states <= 288 and r.depth <= 12
    assert r.property("TCConsistent").verdict is Verdict.BOUNDED


# --------------------------------------------------------------------------- bounds


def test_max_depth_cuts_paths_and_says_so() -> None:
    r = check(DieHard(), max_depth=4)
    assert r.depth == 4 and not r.complete and r.stop_reason is StopReason.MAX_DEPTH
    assert r.property("NotSolved").verdict is Verdict.BOUNDED
    assert "max_depth" in r.property("NotSolved").note
    full = check(DieHard(), max_depth=8)  # DieHard's depth is exactly 8
    assert full.complete and full.distinct_states == 16


def test_dfs_depth_bound_explores_the_same_states_as_bfs() -> None:
    for d in (3, 5, 8):
        bfs = check(TwoPhase(3), max_depth=d)
        dfs = check(TwoPhase(3), max_depth=d, strategy="dfs")
        assert bfs.distinct_states == dfs.distinct_states


def test_max_states_gives_a_bounded_verdict() -> None:
    r = check(TwoPhase(4), max_states=100)
    assert r.stop_reason is StopReason.MAX_STATES and not r.complete
    assert 100 <= r.distinct_states < 1000 and r.queue_left > 0
    assert r.property("TCConsistent").verdict is Verdict.BOUNDED
    # reaching the bound with states still unexpanded is not a proof ...
    assert not check(TwoPhase(3), max_states=288).complete
    assert check(TwoPhase(3), max_states=289).complete  # ... staying under it is


@pytest.mark.parametrize("strategy", ["bfs", "dfs", "simulate"])
def test_timeout_gives_a_bounded_verdict(strategy: str) -> None:
    r = check(Grid(), strategy=strategy, timeout=5, clock=Ticks(), chunk=64, walks=10_000)
    assert r.stop_reason is StopReason.TIMEOUT and not r.complete
    assert r.property("InBox").verdict is Verdict.BOUNDED
    assert r.distinct_states < 300 * 300


def test_progress_reports() -> None:
    seen: list[Progress] = []
    Checker(Grid(120)).progress(seen.append, interval=0).run()
    assert seen and seen[-1].distinct_states == 120 * 120
    counts = [p.distinct_states for p in seen]
    assert counts == sorted(counts)
    assert "states" in seen[-1].line()


def test_progress_line_shows_distinct_rate_queue_depth_and_a_reduction_only_when_active(
        ) -> None:
    plain = Progress(12_345, 40_000, 3_456, 9, 5.0)
    assert plain.line() == "12,345 distinct  2,469 states/s  queue 3,456  depth 9  5.0s"
    reduced = Progress(12_345, 40_000, 3_456, 9, 5.0, reduction=0.25)
    assert reduced.line() == ("12,345 distinct  2,469 states/s  queue 3,456  depth 9  "
                              "kept 25%  5.0s")


# --------------------------------------------------------------------------- verdicts


def test_deadlock_reporting() -> None:
    r = check(Counter(top=3), deadlock=True)
    dead = r.property("deadlock")
    assert dead.verdict is Verdict.VIOLATED and dead.length == 4
    assert [s.action for s in dead.trace] == [INIT, "Inc", "Inc", "Inc"]
    assert check(Counter(top=3, terminal_top=True), deadlock=True).ok
    assert check(Counter(top=3, reset=True), deadlock=True).property(
        "deadlock").verdict is Verdict.HOLDS
    assert check(Counter(top=3, terminal_top=True), deadlock=True, strategy="dfs").ok
    sim = check(Counter(top=3), deadlock=True, strategy="simulate", walks=3)
    assert sim.property("deadlock").verdict is Verdict.VIOLATED


def test_sometimes_witness_and_unreachable() -> None:
    from kstate.verify.checker import sometimes
    r = check(Counter(top=5, props=[sometimes("Three", lambda s: s == 3),
                                    sometimes("Nine", lambda s: s == 9)]))
    assert r.property("Three").verdict is Verdict.WITNESSED
    assert [s.raw for s in r.property("Three").trace] == [0, 1, 2, 3]
    assert r.property("Nine").verdict is Verdict.UNREACHABLE and not r.ok


def test_stop_policies() -> None:
    first = check(DieHard(), stop="first-violation")
    assert first.stop_reason is StopReason.VIOLATION and first.distinct_states < 16
    assert first.property("TypeOK").verdict is Verdict.BOUNDED
    only = Counter(top=50, props=[Property("Small", "always", lambda s: s < 5)])
    decided = check(only)
    assert decided.stop_reason is StopReason.DECIDED and decided.distinct_states < 51


def test_counterexamples_replay_through_the_model() -> None:
    r = check(DieHard())
    trace = r.property("NotSolved").trace
    validate_trace(DieHard(), trace)
    doc = json.loads(json.dumps(r.to_json()))
    steps = steps_from_json(doc["properties"][1]["trace"])
    replayed = replay(DieHard(), steps)
    assert [s.raw for s in replayed] == [s.raw for s in trace]
    broken = list(steps)
    broken[3] = type(broken[3])("FillSmallJug", broken[3].state)
    with pytest.raises(ModelError, match=r"trace\[3\]"):
        replay(DieHard(), broken)
    with pytest.raises(ModelError):
        validate_trace(DieHard(), [trace[0], trace[2]])


def test_json_round_trip() -> None:
    for r in (check(DieHard()), check(TwoPhase(3), strategy="dfs"),
              Checker(DieHard()).simulate(50, 20).run()):
        doc = json.loads(json.dumps(r.to_json()))
        back = CheckResult.from_json(doc)
        assert back == r
        assert back.to_json() == r.to_json()


def test_bookkeeping_is_compact() -> None:
    r = check(PackedTwoPhase(6))
    assert r.bytes_per_state <= 100


# --------------------------------------------------------------------------- bad input


def test_unknown_property_kind() -> None:
    with pytest.raises(ModelError, match="unknown property kind 'eventualy'"):
        Property("p", "eventualy", lambda s: True)


def test_property_arity_and_names() -> None:
    with pytest.raises(ModelError, match="two predicates"):
        Property("p", "leads_to", lambda s: True)
    dup = Counter(props=[Property("p", "always", bool), Property("p", "always", bool)])
    with pytest.raises(ModelError, match="duplicate property name 'p'"):
        check(dup)


def test_unhashable_state() -> None:
    for strategy in ("bfs", "dfs", "simulate"):
        with pytest.raises(ModelError, match="not hashable") as e:
            check(Unhashable(), strategy=strategy)
        if strategy != "simulate":
            assert "Grow" in str(e.value)


def test_no_initial_states() -> None:
    with pytest.raises(ModelError, match="no initial states"):
        check(NoInit())


def test_bad_options() -> None:
    with pytest.raises(ModelError, match="workers"):
        check(DieHard(), workers=0)
    with pytest.raises(ModelError, match="strategy"):
        check(DieHard(), strategy="astar")
    with pytest.raises(ModelError, match="max_depth"):
        check(DieHard(), max_depth=-1)
    with pytest.raises(ModelError, match="options"):
        check(DieHard(), colour="blue")
    with pytest.raises(ModelError, match="symmetry"):
        check(DieHard(), symmetry=True)  # DieHard defines no canonical()


def test_malformed_result_documents() -> None:
    good = check(DieHard()).to_json()
    for broken, field in [
        ({**good, "schema": "x"}, "schema"),
        ({k: v for k, v in good.items() if k != "depth"}, "depth"),
        ({**good, "depth": "7"}, "depth"),
        ({**good, "properties": [{"name": "x"}]}, "properties[0].kind"),
        ({**good, "stopReason": "bored"}, "stopReason"),
    ]:
        with pytest.raises(ModelError) as e:
            CheckResult.from_json(broken)
        assert e.value.field == field


def test_model_errors_from_workers_propagate() -> None:
    class Boom(Counter):
        def actions(self, s: int):  # type: ignore[override]
            if s == 30:
                raise ValueError("boom at 30")
            return super().actions(s)

    with pytest.raises(ValueError, match="boom at 30"):
        check(Boom(top=60), workers=2)


# --------------------------------------------------------------------------- coverage


class Declared(Counter):
    """Counter that also declares a Reset family it never fires (reset=False)."""

    def action_families(self) -> list[str]:
        return ["Inc", "Reset"]


@pytest.mark.parametrize("options", [
    {"strategy": "bfs", "vectorised": False}, {"strategy": "bfs", "workers": 2,
                                                "vectorised": False},
    {"strategy": "dfs"}, {"strategy": "simulate", "walks": 20, "workers": 2},
])
def test_coverage_counts_every_transition_by_family(options: dict[str, Any]) -> None:
    r = check(TwoPhase(3), **options)
    # every successor computed; a simulation also counts each walk's initial state
    starts = options.get("walks", r.initial_states)
    assert sum(n for _, n in r.coverage) == r.states_generated - starts
    assert [f for f, _ in r.coverage] == sorted(f for f, _ in r.coverage)
    if options["strategy"] == "bfs":  # exhaustive: the same counts on any worker count
        assert dict(r.coverage) == {
            "RMChooseToAbort": 156, "RMPrepare": 156, "RMRcvAbortMsg": 648,
            "RMRcvCommitMsg": 24, "TMAbort": 64, "TMCommit": 1, "TMRcvPrepared": 96}


def test_coverage_lists_declared_families_that_never_fired_and_round_trips() -> None:
    r = check(Declared(top=3))
    assert r.coverage == (("Inc", 3),) and r.never_fired == ("Reset",)
    assert "never fired: Reset" in r.summary() and "Inc 3" in r.summary()
    doc = json.loads(json.dumps(r.to_json()))
    assert doc["coverage"] == {"Inc": 3} and doc["neverFired"] == ["Reset"]
    back = CheckResult.from_json(doc)
    assert (back.coverage, back.never_fired) == (r.coverage, r.never_fired)
    # Fairness entries are the default declaration.
    assert check(Counter(top=2, fair=["Inc", "Reset"])).never_fired == ("Reset",)
    # Results written before coverage existed still load; a bad count is named.
    old = {k: v for k, v in doc.items() if k not in ("coverage", "neverFired")}
    assert CheckResult.from_json(old).coverage == ()
    with pytest.raises(ModelError) as info:
        CheckResult.from_json({**doc, "coverage": {"Inc": "3"}})
    assert info.value.field == "coverage.Inc"


def test_the_vectorised_path_does_not_count_coverage() -> None:
    r = check(PackedTwoPhase(3))
    assert r.coverage == () and r.never_fired == ()
