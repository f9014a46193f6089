"""Seeded bugs: replace a reconciler with a plausible broken variant and the checker must
find the classic failure — shortest, as a readable trace — while the real one passes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import attrs
import pytest

from kstate.api import visible, writes
from kstate.api.helpers import with_spec
from kstate.control import execution, nodelifecycle, replication
from kstate.control.commands import Create, Delete, Outcome
from kstate.node import execution as node_execution
from kstate.node import podsync
from kstate.verify import report
from kstate.verify.checker import check
from kstate.verify.replay import replay_file
from kstate.verify.system import load_scenario
from tests.conftest import SEARCH_WORKERS

SCENARIOS = Path(__file__).resolve().parents[2] / "specs" / "scenarios"


def without_expectations(view: replication.ReplicationView, now: float,
                         settings: replication.ReplicationSettings) -> list:  # type: ignore[type-arg]
    """The replication controller as if it never remembered its own creations."""
    return replication.reconcile(attrs.evolve(view, expectation=None), now, settings)


def evicting_in_full_disruption(view: nodelifecycle.NodeLifecycleView, now: float,
                                settings: nodelifecycle.NodeLifecycleSettings) -> list:  # type: ignore[type-arg]
    """The node lifecycle controller without Kubernetes' "whole cluster down" rule."""
    return nodelifecycle.reconcile(view, now,
                                   attrs.evolve(settings, spare_full_disruption=False))


def test_missing_expectations_over_create_and_the_real_controller_does_not() -> None:
    scenario = load_scenario(SCENARIOS / "stale-cache.yaml")
    # Without expectations the RC churns pods forever (an infinite space): stop at the
    # first violation, which BFS reaches at its shortest depth.
    broken = check(scenario.model(replication_fn=without_expectations, symmetry=False),
                   symmetry=False, stop="first-violation", max_depth=10)
    prop = broken.property("never_overcreates")
    assert prop.verdict.value == "violated"
    actions = [s.action for s in prop.trace]
    # BFS gives the shortest story: sync, one creation seen, sync again on the stale cache.
    assert actions[0] == "<init>" and actions[1] == "Sync(web)" and actions[-1] == "Sync(web)"
    assert len(actions) <= 5
    text = report.trace_text(prop)
    assert "counterexample for never_overcreates" in text and "overcreated: True" in text

    real = check(scenario.model(symmetry=False), symmetry=False)
    assert real.property("never_overcreates").verdict.value == "holds"
    assert real.complete


def test_evicting_when_the_whole_cluster_looks_down_is_found() -> None:
    scenario = load_scenario(SCENARIOS / "full-disruption.yaml")
    broken = check(scenario.model(nodelifecycle_fn=evicting_in_full_disruption),
                   stop="first-violation", max_depth=12, workers=SEARCH_WORKERS)
    prop = broken.property("no_mass_eviction")
    assert prop.verdict.value == "violated"
    actions = [s.action for s in prop.trace]
    assert actions.count("Partition(node-1)") + actions.count("Partition(node-2)") == 2
    assert "Tick" in actions and "NodeLifecycle" in actions

    # The real controller: no eviction in the same bounded space (depth 12 covers the
    # whole story above, in every interleaving).
    real = check(scenario.model(), max_depth=12, workers=SEARCH_WORKERS)
    assert real.property("no_mass_eviction").verdict.value in ("holds", "bounded")
    assert not real.property("no_mass_eviction").trace


# --- seeded bugs: part C (the state <-> field mapping, kstate/api/visible.py)





def lost_pods_shown_ready(monkeypatch: pytest.MonkeyPatch) -> None:
    """The mapping as if the Pod machine's Unknown state declared ``Ready: True`` ("we do
    not know, so keep serving") — one line in ``State.visible``. Every reader and writer
    of the mapping picks it up: the node lifecycle controller marks a lost pod Ready, the
    api server reads it back as Unknown, and the endpoints controller keeps sending it
    traffic."""
    unknown = visible.SHOWN["pod"]["Unknown"]
    monkeypatch.setitem(visible.SHOWN["pod"], "Unknown",
                        attrs.evolve(unknown, conditions=(("Ready", "True"),)))


def test_a_lost_pod_shown_ready_keeps_its_traffic_and_the_real_mapping_does_not(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = SCENARIOS / "lost-node-traffic.yaml"
    scenario = load_scenario(path)
    depth = scenario.bounds.max_depth
    with monkeypatch.context() as patched:
        lost_pods_shown_ready(patched)
        broken = check(scenario.model(), stop="first-violation", max_depth=depth)
        prop = broken.property("endpoints_ready_only")
        assert prop.verdict.value == "violated"
        actions = [s.action for s in prop.trace]
        # BFS: the pod starts and is ready, the node is cut off, the grace period passes,
        # the controller marks the pod lost — and the endpoints keep it.
        assert actions[-4:] == ["Partition(node-1)", "Tick", "NodeLifecycle", "Endpoints(web)"]
        assert len(actions) <= 9
        trace = tmp_path / "result.json"
        trace.write_text(json.dumps({**broken.to_json(), "scenario": str(path)}))
        replayed = replay_file(trace)
        assert replayed.reproduced, replayed.text()
        assert [s.action for s in replayed.steps] == actions[1:]

    real = check(scenario.model(), max_depth=depth)
    assert real.property("endpoints_ready_only").verdict.value == "bounded"
    assert real.property("legal_transitions").verdict.value == "bounded"


# --- seeded bugs: part A (one write path: the API server's binding rule)



# The scheduler's cache may lag behind its own bindings; the API server's binding rule
# (kstate.api.writes.bind, run by the engine's ApiCore and the checker's AbstractApi
# alike) is what keeps a pod on its first node.
STALE_SCHEDULER = SCENARIOS / "stale-scheduler.yaml"


def binding_checks_only_the_target_node(monkeypatch: Any) -> None:
    """Seed ``writes.bind`` with a one-line mistake: "already assigned" tested as
    ``pod.spec.nodeName == node`` instead of ``pod.spec.nodeName`` — a second binding to
    *another* node goes through. Patched on the shared module, so the checker and the
    ``--replay`` engine both run it."""
    real = writes.bind

    def bind(pod: Any, node: str, uid: str, now: float) -> Any:
        if pod.spec.node_name and pod.spec.node_name != node:  # the seeded mistake
            pod = with_spec(pod, node_name="")
        return real(pod, node, uid, now)

    monkeypatch.setattr(writes, "bind", bind)


def test_a_binding_rule_that_lets_a_pod_move_is_found_and_replays(
        monkeypatch: Any, tmp_path: Path) -> None:
    scenario = load_scenario(STALE_SCHEDULER)
    real = check(scenario.model())
    assert real.complete
    assert {p.name: p.verdict.value for p in real.properties} == {
        "bound_once": "holds", "no_pod_on_two_nodes": "holds", "legal_transitions": "holds",
        "replicas_ready": "witnessed"}

    binding_checks_only_the_target_node(monkeypatch)
    broken = check(scenario.model(), stop="first-violation")
    prop = broken.property("bound_once")
    assert prop.verdict.value == "violated"
    # BFS: the shortest story — the scheduler binds, then binds again from its stale cache.
    assert [s.action for s in prop.trace] == [
        "<init>", "Sync(web)", "Deliver(scheduler, Pod)", "Schedule(web-0, node-1)",
        "Schedule(web-0, node-2)"]

    trace = tmp_path / "result.json"
    trace.write_text(json.dumps({**broken.to_json(), "scenario": str(STALE_SCHEDULER)}))
    on_engine = replay_file(trace)
    assert on_engine.reproduced, on_engine.text()
    assert "pod moved from node node-1 to node-2" in on_engine.steps[-1].violations[0]

    monkeypatch.undo()  # the real binding rule: the engine refuses the second binding
    assert not replay_file(trace).reproduced


# --- seeded bugs: part B (one executor per kind of command: control.execution, node.execution)


def _counting_own_creations(command: Create | Delete, outcome: Outcome) -> bool:
    """The controller executor's "will the watch never show this?" with one line wrong:
    a creation counts as seen as soon as the API server answered."""
    if isinstance(command, Create):
        return True  # the real rule: outcome != "ok"
    return outcome not in ("ok", "not_found")


def test_an_executor_that_counts_its_own_creations_over_creates(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The seeded bug sits in the shared plan (``control.execution.unseen``): the checker
    and the engine's Executor both run it. The shortest counterexample is two syncs; the
    engine reproduces it; the real plan passes the same scenario."""
    scenario = load_scenario(SCENARIOS / "stale-cache.yaml")
    monkeypatch.setattr(execution, "unseen", _counting_own_creations)
    broken = check(scenario.model(symmetry=False), symmetry=False, stop="first-violation",
                   max_depth=10)
    prop = broken.property("never_overcreates")
    assert prop.verdict.value == "violated"
    # BFS: the first sync creates both pods and forgets it expects them; the second,
    # on a cache that has seen one of them, creates another.
    assert [s.action for s in prop.trace] == ["<init>", "Sync(web)", "Sync(web)"]
    trace = tmp_path / "result.json"
    trace.write_text(json.dumps({**broken.to_json(),
                                 "scenario": str(SCENARIOS / "stale-cache.yaml")}))
    replayed = replay_file(trace)
    assert replayed.reproduced, replayed.text()
    assert "more than the 2 replicas" in replayed.steps[-1].violations[0]

    monkeypatch.undo()
    assert not replay_file(trace).reproduced
    real = check(scenario.model(symmetry=False), symmetry=False)
    assert real.property("never_overcreates").verdict.value == "holds"
    assert real.complete


def _units_dropping_the_last_stops(
        commands: Sequence[podsync.NodeCommand]) -> Iterator[tuple[podsync.NodeCommand, ...]]:
    """The node plan's ``units`` with its last line lost: a run of StopContainers that
    ends the round is never flushed — so never sent."""
    stops: list[podsync.NodeCommand] = []
    for cmd in commands:
        if isinstance(cmd, podsync.StopContainer):
            stops.append(cmd)
            continue
        if stops:
            yield tuple(stops)
            stops = []
        yield (cmd,)


def test_a_node_plan_that_never_sends_a_rounds_last_stops_is_found(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The seeded bug sits in the shared round plan (``node.execution.units``): the
    model's pod worker and the engine's node agent both run it. A deleted pod's container
    is never stopped, so the deletion never completes; the engine replays it (its agent
    retries the round forever); the real plan passes the same scenario."""
    scenario = load_scenario(SCENARIOS / "graceful-delete.yaml")
    monkeypatch.setattr(node_execution, "units", _units_dropping_the_last_stops)
    broken = check(scenario.model(), symmetry=False, stop="first-violation")
    prop = broken.property("deletions_complete")
    assert prop.verdict.value == "violated"
    actions = [s.action for s in prop.trace]
    assert actions[:6] == ["<init>", "Sync(web)", "Schedule(web-0)", "Kubelet(node-1, web-0)",
                           "Kubelet(node-1, web-0)", "DeletePod(web-0)"]
    # After the deletion no Kubelet step for web-0 changes anything: its stop is lost.
    assert "Kubelet(node-1, web-0)" not in actions[6:]
    assert "counterexample for deletions_complete" in report.trace_text(prop)
    trace = tmp_path / "result.json"
    trace.write_text(json.dumps({**broken.to_json(),
                                 "scenario": str(SCENARIOS / "graceful-delete.yaml")}))
    replayed = replay_file(trace)
    assert replayed.reproduced, replayed.text()
    assert "still terminating" in replayed.verdict

    monkeypatch.undo()
    assert not replay_file(trace).reproduced
    real = check(scenario.model(), symmetry=False)
    assert {p.verdict.value for p in real.properties if p.kind != "sometimes"} == {"holds"}
    assert {p.verdict.value for p in real.properties if p.kind == "sometimes"} == {"witnessed"}
    assert real.complete


# --- seeded bugs: the namespace controller


def test_finalizing_a_namespace_before_it_is_empty_is_found(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A namespace controller that finalizes without emptying the namespace first (as
    one trusting a cache that has not seen the content yet would) leaves the RC's pod
    in a namespace that is gone; the real one never does."""
    from kstate.control import namespace

    scenario = load_scenario(SCENARIOS / "namespace-delete.yaml")
    real = check(scenario.model(), symmetry=False)
    assert real.property("no_content_in_gone_namespace").verdict.value == "holds"

    reconcile = namespace.reconcile

    def finalizes_at_once(view: namespace.NamespaceView, now: float) -> list:  # type: ignore[type-arg]
        return reconcile(attrs.evolve(view, content=()), now)

    monkeypatch.setattr(namespace, "reconcile", finalizes_at_once)
    broken = check(scenario.model(), symmetry=False, stop="first-violation")
    prop = broken.property("no_content_in_gone_namespace")
    assert prop.verdict.value == "violated"
    actions = [s.action for s in prop.trace]
    assert actions[-1] == "Namespace(foo)" and "DeleteNamespace(foo)" in actions
    # the engine's controller manager runs the same (broken) function: replayed, the
    # pod is left behind there too
    trace = tmp_path / "result.json"
    trace.write_text(json.dumps({**broken.to_json(),
                                 "scenario": str(SCENARIOS / "namespace-delete.yaml")}))
    replayed = replay_file(trace)
    assert replayed.reproduced, replayed.text()
    assert [s.action for s in replayed.steps] == actions[1:]
