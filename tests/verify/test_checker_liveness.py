"""Liveness under weak fairness: SCC search over the explored graph, lasso counterexamples."""

from __future__ import annotations

from kstate.verify.checker import (
    ALL_ACTIONS,
    Checker,
    Verdict,
    check,
    eventually,
    leads_to,
    validate_trace,
)

from .models import Counter, Faulty, PingPong


def _lasso(model, r, name):
    p = r.property(name)
    assert p.verdict is Verdict.VIOLATED
    validate_trace(model, p.trace, p.cycle)
    return [s.action for s in p.trace], [s.action for s in p.cycle]


def test_leads_to_holds_under_weak_fairness() -> None:
    model = Counter(top=3, reset=True, fair=["Inc", "Reset"],
                    props=[leads_to("ZeroToTop", lambda s: s == 0, lambda s: s == 3),
                           eventually("ReachesTop", lambda s: s == 3)])
    for strategy in ("bfs", "dfs"):
        r = check(model, strategy=strategy)
        assert r.ok and r.property("ZeroToTop").verdict is Verdict.HOLDS


def test_without_fairness_a_behaviour_may_stutter() -> None:
    model = Counter(top=3, props=[eventually("ReachesTop", lambda s: s == 3)])
    r = check(model)
    prefix, cycle = _lasso(model, r, "ReachesTop")
    assert cycle == [] and prefix == ["<init>"]  # stays in 0 forever
    assert "stutters" in r.property("ReachesTop").note


def test_weak_fairness_is_not_strong_fairness() -> None:
    # Finish is enabled only in state 0; the Ping/Pong loop keeps disabling it, so weak
    # fairness never forces it: a real cycle, not a stutter.
    model = PingPong(fair=[ALL_ACTIONS])
    r = check(model)
    prefix, cycle = _lasso(model, r, "PingFinishes")
    assert prefix == ["<init>"] and cycle == ["Ping", "Pong"]
    # enabled in both 0 and 1, Finish is continuously enabled on the loop: WF forces it
    assert check(PingPong(fair=[ALL_ACTIONS], finish_from=(0, 1))).ok
    # fairness on one family only: Finish itself may be postponed forever
    only_loop = PingPong(fair=["Ping", "Pong"], finish_from=(0, 1))
    _lasso(only_loop, check(only_loop), "PingFinishes")


def test_converges_once_faults_stop() -> None:
    healed = Faulty(budget=2, fair=["Repair"])
    assert check(healed).ok
    # an unfair repair may never happen: stutter in the broken state
    lazy = Faulty(budget=2, fair=[])
    prefix, cycle = _lasso(lazy, check(lazy), "Heals")
    assert cycle == [] and prefix[-1] == "Fault"
    # faults that never stop and are themselves fair: a break/repair cycle forever
    endless = Faulty(budget=None, fair=["Repair", "Fault"])
    r = check(endless)
    prefix, cycle = _lasso(endless, r, "Heals")
    assert sorted(cycle) == ["Fault", "Repair"]
    assert r.property("EventuallyHealthy").verdict is Verdict.HOLDS  # it starts healthy


def test_bounded_search_only_judges_expanded_states() -> None:
    model = Counter(top=10, reset=True, fair=["Inc", "Reset"],
                    props=[leads_to("ZeroToTop", lambda s: s == 0, lambda s: s == 10)])
    r = check(model, max_depth=5)
    # the frontier state 4 has unknown successors: no stutter counterexample there
    assert r.property("ZeroToTop").verdict is Verdict.BOUNDED


def test_unused_fairness_entries_are_reported() -> None:
    model = Counter(top=2, reset=True, fair=["Inc", "Reset", "Typo"],
                    props=[eventually("Two", lambda s: s == 2)])
    r = check(model)
    assert r.ok and any("Typo" in w for w in r.warnings)


def test_a_model_may_name_fair_components_it_does_not_always_have() -> None:
    class EveryComponent(Counter):
        warn_unused_fairness = False

    model = EveryComponent(top=2, reset=True, fair=["Inc", "Reset", "Endpoints"],
                           props=[eventually("Two", lambda s: s == 2)])
    r = check(model)
    assert r.ok and not r.warnings


def test_simulation_leaves_liveness_undecided() -> None:
    model = Counter(top=3, props=[eventually("ReachesTop", lambda s: s == 3)])
    r = Checker(model).simulate(10, 5).run()
    assert r.property("ReachesTop").verdict is Verdict.BOUNDED
