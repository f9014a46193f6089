"""The system model's footprints (kstate/verify/system/independence.py): every step
changes only what its class declares it writes, actions declared independent commute,
and every shipped scenario and seeded bug gets the same verdicts (and BFS trace lengths)
with and without partial-order reduction."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from kstate.verify.checker import Kind, check
from kstate.verify.checker.model import states_within
from kstate.verify.system import load_scenario
from kstate.verify.system.independence import FAULTS, FLAGS, KINDS, Footprints
from kstate.verify.system.world import Watcher, World

from .test_seeded_bugs import (
    _counting_own_creations,
    _units_dropping_the_last_stops,
    binding_checks_only_the_target_node,
    evicting_in_full_disruption,
    lost_pods_shown_ready,
    without_expectations,
)

SCENARIOS = Path(__file__).resolve().parents[2] / "specs" / "scenarios"
NAMES = sorted(p.stem for p in SCENARIOS.glob("*.yaml"))

#: a bound per scenario that keeps each run to seconds (None: exhaustive)
DEPTH = {"full-disruption": 6, "lost-node-traffic": 6, "node-partition": 6,
         "quickstart": 5, "three-nodes": 3}


def _watcher(w: Watcher, name: str, kinds: tuple[str, ...]) -> Iterator[tuple[Any, Any]]:
    for k in kinds:
        yield ("queue", name, k), w.pending.get(k, ())
        yield ("cache", name, k), frozenset(
            (key, o) for key, o in w.cache.items() if key.startswith(k + "/"))


def locations(w: World) -> dict[Any, Any]:
    """The World cut into the locations independence.py names (an independent reading)."""
    out: dict[Any, Any] = {
        "now": w.now, "script": w.script, "api": w.api_available,
        "names": (w.seq, w.incarnations),
        "cm-expectations": w.cm.expectations, "cm-memory": w.cm.memory,
        **{("store", k): frozenset((key, o) for key, o in w.store.items()
                                   if key.startswith(k + "/")) for k in KINDS},
        **{("budget", f): w.budget.get(f, 0) for f in FAULTS},
        **{("flag", f): getattr(w.flags, f) for f in FLAGS},
        **dict(_watcher(w.cm.watcher, "cm", KINDS)),
        **dict(_watcher(w.sched, "scheduler", ("Pod", "Node"))),
    }
    for n, k in w.kubelets.items():
        out[("up", n)] = k.up
        out[("kubelet", n)] = (k.backoff, k.start_errors, k.probes_passing)
        out.update(_watcher(k.watcher, n, ("Pod",)))
    for n, r in w.runtimes.items():
        out[("runtime", n)] = r
    return out


def test_locations_cover_the_whole_world() -> None:
    # a World field the cut above does not see would be a write no footprint declares
    assert {f.name for f in attrs.fields(World)} == {
        "store", "now", "cm", "sched", "kubelets", "runtimes", "budget", "script", "seq",
        "flags", "api_available", "incarnations"}


@pytest.mark.parametrize("name", NAMES)
def test_every_step_changes_only_what_its_footprint_writes(name: str) -> None:
    model = load_scenario(SCENARIOS / f"{name}.yaml").model(symmetry=False)
    fp = Footprints(sorted(next(iter(model.initial_states())).kubelets), ())
    checked = 0
    for s in states_within(model, 3 if name != "three-nodes" else 2):
        before = locations(s)
        for action, t in model.actions(s):
            after = locations(t)
            changed = {loc for loc in after if after[loc] != before.get(loc)}
            assert changed <= fp.footprint(action).writes, (action, changed - fp.footprint(
                action).writes)
            checked += 1
    assert checked > 10


def test_actions_declared_independent_commute() -> None:
    """The diamond, wherever two enabled actions' footprints say independent: each stays
    enabled after the other and both orders reach the same World."""
    diamonds = 0
    for name, depth in (("three-nodes", 2), ("node-partition", 3), ("full-disruption", 3),
                        ("crash-loop", 4)):
        diamonds += _diamonds(name, depth)
    assert diamonds > 0


def _diamonds(name: str, depth: int) -> int:
    model = load_scenario(SCENARIOS / f"{name}.yaml").model(symmetry=False)
    fp = Footprints(sorted(next(iter(model.initial_states())).kubelets), ())
    diamonds = 0
    for s in states_within(model, depth):
        succ = model.actions(s)
        for i, (a, sa) in enumerate(succ):
            for b, sb in succ[i + 1:]:
                if fp.footprint(a).dependent(fp.footprint(b)):
                    continue
                after_a, after_b = dict(model.actions(sa)), dict(model.actions(sb))
                assert b in after_a and a in after_b, (a, b)
                assert after_a[b] == after_b[a], (a, b)
                diamonds += 1
    return diamonds


def _safety(scenario: Any) -> list[str]:
    return [p.name for p in scenario.model().properties() if not Kind(p.kind).liveness]


def _same(model: Callable[[], Any], **options: Any) -> Any:
    full = check(model(), por=False, **options)
    reduced = check(model(), por=True, **options)
    assert reduced.por
    assert [(p.name, p.verdict, p.length) for p in reduced.properties] == [
        (p.name, p.verdict, p.length) for p in full.properties]
    assert reduced.distinct_states <= full.distinct_states
    return full


@pytest.mark.parametrize("name", NAMES)
def test_shipped_scenarios_same_verdicts_with_por(name: str) -> None:
    scenario = load_scenario(SCENARIOS / f"{name}.yaml")
    safety = _safety(scenario)
    _same(lambda: scenario.model(properties=safety, symmetry=False), symmetry=False,
          max_depth=DEPTH.get(name))


def _patch(monkeypatch: pytest.MonkeyPatch, target: str) -> None:
    from kstate.control import execution
    from kstate.node import execution as node_execution

    if target == "unseen":
        monkeypatch.setattr(execution, "unseen", _counting_own_creations)
    elif target == "units":
        monkeypatch.setattr(node_execution, "units", _units_dropping_the_last_stops)
    elif target == "bind":
        binding_checks_only_the_target_node(monkeypatch)
    elif target == "shown-ready":
        lost_pods_shown_ready(monkeypatch)


SEEDED: list[tuple[str, str, dict[str, Any], int | None]] = [
    # (scenario, patch, model() arguments, depth)
    ("stale-cache", "", {"replication_fn": without_expectations}, 6),
    ("full-disruption", "", {"nodelifecycle_fn": evicting_in_full_disruption}, 12),
    ("stale-scheduler", "bind", {}, None),
    ("stale-cache", "unseen", {}, 6),
    ("lost-node-traffic", "shown-ready", {}, 9),
]


@pytest.mark.parametrize(("name", "patch", "kwargs", "depth"), SEEDED,
                         ids=[f"{s[0]}-{s[1] or next(iter(s[2]))}" for s in SEEDED])
def test_seeded_bugs_same_verdicts_and_trace_lengths_with_por(
        monkeypatch: pytest.MonkeyPatch, name: str, patch: str, kwargs: dict[str, Any],
        depth: int | None) -> None:
    scenario = load_scenario(SCENARIOS / f"{name}.yaml")
    safety = _safety(scenario)
    _patch(monkeypatch, patch)
    # the scenario's own symmetry (full-disruption's keeps depth 12 to seconds): POR and
    # symmetry together on safety are sound (docs/checker.md)
    model = lambda: scenario.model(properties=safety, **kwargs)  # noqa: E731
    full = _same(model, max_depth=depth, stop="first-violation")
    assert any(p.verdict.value == "violated" for p in full.properties)


def test_a_liveness_bug_is_checked_on_the_full_graph(monkeypatch: pytest.MonkeyPatch) -> None:
    scenario = load_scenario(SCENARIOS / "graceful-delete.yaml")
    _patch(monkeypatch, "units")
    result = check(scenario.model(), symmetry=False, stop="first-violation")
    assert not result.por
    assert result.property("deletions_complete").verdict.value == "violated"
    assert any("without partial-order reduction" in w for w in result.warnings)


def test_properties_the_table_does_not_know_read_everything() -> None:
    fp = Footprints(["node-1"], ["something_new"])
    assert fp.visible >= fp.footprint("Deliver(scheduler, Pod)").writes
    assert not Footprints(["node-1"], ["legal_transitions"]).visible  # stable: no reads


def test_every_action_family_has_a_class() -> None:
    """A persistent set must account for actions not enabled yet, so a family missing
    from the table (a new fault, a new verb) would be unsound when disabled: pin that
    every family the model can fire has a class."""
    from kstate.verify.system import model as system

    families = (set(system.FAIR) | {f for _, f in system._FAULT_FAMILIES}
                | set(system._VERB_FAMILIES.values()) | {"ForceDeletePod"}
                | set(system._RECOVERY.values()))
    fp = Footprints(["node-1"], ())
    known = {c.split("(")[0] for c in fp.classes} | set(fp._USER)
    assert families <= known, families - known


def test_an_ordered_round_has_its_familys_footprint() -> None:
    """``NodeLifecycle(web-1+web-0)`` (one of a pass's orders: kstate.control.orders)
    reads and writes what any node lifecycle pass does; likewise GC and Namespace."""
    prints = Footprints(["node-1"], [])
    assert prints.footprint("NodeLifecycle(web-1+web-0)") == prints.footprint("NodeLifecycle")
    assert prints.footprint("GC(web-1+web-0)") == prints.footprint("GC")
    assert prints.footprint("Namespace(foo, web-1+web-0)") == prints.footprint("Namespace(foo)")
