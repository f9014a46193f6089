"""The shipped scenarios: verdicts and pinned state counts (a lifecycle or reconciler
change shows up here as a changed count — review it like a golden file), the CLI's exit
codes, and clear errors for bad scenarios."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from kstate.errors import ModelError
from kstate.verify.checker import Kind, check, validate_trace
from kstate.verify.system import load_scenario, parse_scenario

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "specs" / "scenarios"

#: scenario -> (max depth for the test run, distinct states, states generated).
#: ``None`` depth: exhaustive.
PINNED: dict[str, tuple[int | None, int, int]] = {
    "stale-cache": (None, 614, 2089),
    "controller-restart": (None, 1691, 6265),
    "crash-loop": (None, 229, 549),
    "graceful-delete": (None, 354, 722),
    "node-partition": (14, 12832, 37035),
    "quickstart": (8, 1205, 8409),  # under its symmetry (4,678 states without)
    "lost-node-traffic": (12, 2164, 6648),
    "stale-scheduler": (None, 41, 80),
    "namespace-delete": (None, 427, 1487),
}


@pytest.mark.parametrize("name", sorted(PINNED))
def test_shipped_scenario_counts_and_verdicts(name: str) -> None:
    depth, distinct, generated = PINNED[name]
    scenario = load_scenario(SCENARIOS / f"{name}.yaml")
    model = scenario.model()
    result = check(model, symmetry=scenario.symmetry, max_depth=depth,
                   por=False)  # the full graph is what is pinned
    assert not [p.name for p in result.properties if p.verdict.failed]
    expected = "holds" if depth is None else "bounded"
    claims = [p for p in result.properties if p.kind != "sometimes"]
    goals = [p for p in result.properties if p.kind == "sometimes"]
    assert {p.verdict.value for p in claims} == {expected}
    # Every shipped scenario states a reachability goal, and reaches it: no vacuous pass.
    assert goals and {p.verdict.value for p in goals} == {"witnessed"}
    assert (result.distinct_states, result.states_generated) == (distinct, generated), (
        f"{name}: the state space changed; if intended, re-pin it")


def test_three_nodes_first_levels() -> None:
    """three-nodes is too large for a test run to reach its goals (its figures are in
    docs/benchmarks/verify.md); its first levels are pinned like the others."""
    model = load_scenario(SCENARIOS / "three-nodes.yaml").model()
    result = check(model, symmetry=False, max_depth=4)
    assert not [p.name for p in result.properties if p.verdict.failed]
    assert (result.distinct_states, result.states_generated) == (309, 3618)


#: Service scenarios under their symmetry (exact since issue 15) -> (max depth, distinct
#: states and states generated without it, the same under it).
SYMMETRIC_SERVICE: dict[str, tuple[int, tuple[int, int], tuple[int, int]]] = {
    "quickstart": (8, (4678, 32483), (1205, 8409)),
    "three-nodes": (5, (1935, 22680), (367, 4623)),
}


@pytest.mark.parametrize("name", sorted(SYMMETRIC_SERVICE))
def test_a_service_scenario_under_symmetry_keeps_every_verdict(name: str) -> None:
    depth, plain_counts, reduced_counts = SYMMETRIC_SERVICE[name]
    scenario = load_scenario(SCENARIOS / f"{name}.yaml")
    assert scenario.symmetry
    results = {sym: check(scenario.model(symmetry=sym), symmetry=sym, max_depth=depth,
                          por=False) for sym in (False, True)}
    plain, reduced = results[False], results[True]
    assert [(p.name, p.verdict) for p in reduced.properties] == \
        [(p.name, p.verdict) for p in plain.properties]
    assert not [p.name for p in plain.properties if p.verdict.failed]
    assert reduced.symmetry and not reduced.warnings
    assert (plain.distinct_states, plain.states_generated) == plain_counts
    assert (reduced.distinct_states, reduced.states_generated) == reduced_counts


def test_every_shipped_scenario_loads() -> None:
    for path in SCENARIOS.glob("*.yaml"):
        load_scenario(path).model()


@pytest.mark.parametrize(("data", "field", "message"), [
    ({"nodes": 0}, "nodes", "must be >= 1"),
    ({"nodes": "two"}, "nodes", "expected a list"),
    ({"faults": {"node_crash": 1}}, "faults.node_crash", "unknown fault 'node_crash'"),
    ({"faults": {"container_crash": -1}}, "faults.container_crash", "must be >= 0"),
    ({"properties": ["eventually_happy"]}, "properties[0]", "unknown property"),
    ({"replication_controllers": [{"name": "web", "replicas": "3"}]},
     "replication_controllers[0].replicas", "expected an integer"),
    ({"script": [{"explode": {}}]}, "script[0]", "unknown step 'explode'"),
    ({"script": [{"scale": {"rc": "nope", "replicas": 2}}]}, "script[0].scale.rc", "no RC"),
    ({"bounds": {"max_depth": 0}}, "bounds.max_depth", "must be >= 1"),
    ({"bounds": {"timeout": "soon"}}, "bounds.timeout", "positive number"),
    ({"services": ["db"]}, "services[0]", "no RC has that name"),
    ({"colour": "blue"}, "colour", "unknown field"),
    ({"reachable": ["happiness"]}, "reachable[0]", "unknown goal 'happiness'"),
    ({"reachable": "script_done"}, "reachable", "expected a list"),
    ({"properties": ["script_done"]}, "properties[0]", "unknown property 'script_done'"),
    ({"settings": {"grace": 3}}, "settings.grace", "unknown setting 'grace'"),
    ({"bounds": {"depth": 3}}, "bounds.depth", "unknown bound 'depth'"),
    ({"replication_controllers": [{"name": "web", "replica": 2}]},
     "replication_controllers[0].replica", "unknown field 'replica'; known: name, replicas"),
    ({"replication_controllers": ["web"]}, "replication_controllers[0]",
     "expected {name: ..., replicas: N}"),
    ({"script": [{"scale": {"rc": "web", "replicas": 2, "grace": 0}}]},
     "script[0].scale.grace", "unknown field 'grace'; known: rc, replicas"),
    ({"script": [{"delete_rc": {"rc": "web", "propagate": "Orphan"}}]},
     "script[0].delete_rc.propagate", "known: rc, propagation"),
    ({"script": [{"delete_namespace": "foo"}]}, "script[0].delete_namespace",
     "no namespace 'foo'"),
    ({"namespace": "foo", "script": [{"delete_namespace": "bar"}]},
     "script[0].delete_namespace", "no namespace 'bar'"),
    ({"namespace": "foo", "script": [{"scale": {"rc": "web", "replicas": 2}}]},
     "script[0]", "cordon, drain and delete_namespace steps only"),
    ({"namespace": ""}, "namespace", "expected a non-empty string"),
])
def test_bad_scenarios_name_the_field(data: dict[str, Any], field: str, message: str) -> None:
    with pytest.raises(ModelError) as info:
        parse_scenario({"replication_controllers": [{"name": "web", "replicas": 1}], **data})
    assert info.value.field == field
    assert message in str(info.value)


def kstate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kstate.cli", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=300, check=False)


def test_cli_exit_codes_summary_and_json(tmp_path: Path) -> None:
    done = kstate("verify", str(SCENARIOS / "crash-loop.yaml"))
    assert done.returncode == 0, done.stderr
    assert "PROPERTY" in done.stdout and "HOLDS" in done.stdout
    # Coverage: crashes happened; with watch_lag 0 no watch event is ever in flight.
    assert "coverage (times fired): Crash" in done.stdout
    assert "never fired: NodeLifecycle, GC, NodeReady, Deliver" in done.stdout
    done = kstate("verify", str(SCENARIOS / "crash-loop.yaml"), "--json")
    result = json.loads(done.stdout)
    assert result["distinctStates"] == PINNED["crash-loop"][1]
    assert sum(result["coverage"].values()) == result["transitions"]
    assert result["coverage"]["Crash"] > 0 and "Deliver" in result["neverFired"]

    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nfaults: {meteor: 1}\n")
    done = kstate("verify", str(bad))
    assert done.returncode == 2
    assert "faults.meteor" in done.stderr and "Traceback" not in done.stderr
    for text, field in (("colour: blue\n", "colour: unknown field 'colour'"),
                        ("reachable: [happiness]\n", "reachable[0]: unknown goal"),
                        ("settings: {grace: 3}\n", "settings.grace: unknown setting")):
        bad.write_text("name: x\n" + text)
        done = kstate("verify", str(bad))
        assert done.returncode == 2 and field in done.stderr, done.stderr
        assert "Traceback" not in done.stderr
    bad.write_text("name: [unclosed\n")
    done = kstate("verify", str(bad))
    assert done.returncode == 2 and "invalid YAML" in done.stderr
    done = kstate("verify", str(tmp_path / "missing.yaml"))
    assert done.returncode == 2 and "cannot read scenario" in done.stderr


def test_cli_partial_order_reduction_flags(tmp_path: Path) -> None:
    scenario = tmp_path / "tiny.yaml"
    head = "name: tiny\nnodes: 1\nreplication_controllers: [{name: web, replicas: 1}]\n"
    # with a liveness property the default explores the full graph and says so
    scenario.write_text(head + "watch_lag: 0\nproperties: [converges, never_overcreates]\n"
                        "reachable: [replicas_ready]\n")
    done = kstate("verify", str(scenario))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "liveness: explored without partial-order reduction" in done.stdout
    # --por with a liveness property is bad input naming the property
    done = kstate("verify", str(scenario), "--por")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "por" in done.stderr and "'converges'" in done.stderr
    assert "Traceback" not in done.stderr
    # safety only, no depth bound: POR by default, --no-por turns it off
    scenario.write_text(head + "properties: [never_overcreates, legal_transitions]\n"
                        "reachable: [replicas_ready]\n")
    done = kstate("verify", str(scenario))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "partial-order reduction: kept" in done.stdout
    off = kstate("verify", str(scenario), "--no-por")
    assert off.returncode == 0 and "partial-order reduction" not in off.stdout
    assert done.stdout.split(",")[0] == off.stdout.split(",")[0]  # same distinct states


def test_cli_prints_and_draws_a_counterexample(tmp_path: Path) -> None:
    """Cordoning the only node, then scaling up: the new pod can never be scheduled, so
    the RC cannot converge — a real liveness counterexample (a lasso that stutters)."""
    scenario = tmp_path / "cordoned.yaml"
    scenario.write_text(
        "name: cordoned\nnodes: 1\nreplication_controllers: [{name: web, replicas: 1}]\n"
        "watch_lag: 0\nproperties: [converges, never_overcreates]\n"
        "script: [{cordon: node-1}, {scale: {rc: web, replicas: 2}}]\n")
    graph = tmp_path / "trace.dot"
    done = kstate("verify", str(scenario), "--trace-graph", str(graph))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "counterexample for converges (converges):" in done.stdout
    assert "Cordon(node-1)" in done.stdout and "Scale(web, 2)" in done.stdout
    assert "it stays here forever" in done.stdout
    assert "VIOLATED" in done.stdout and "HOLDS" in done.stdout
    dot = graph.read_text()
    assert dot.startswith("digraph trace") and "Cordon(node-1)" in dot


@pytest.mark.parametrize("name", ["stale-cache", "controller-restart"])
def test_symmetry_keeps_safety_verdicts_with_fewer_states(name: str) -> None:
    """Pods of one RC are interchangeable: the reduced space is smaller, and every safety
    property gets the same verdict as without reduction."""
    scenario = load_scenario(SCENARIOS / f"{name}.yaml")
    results = {}
    safety = [p.name for p in scenario.model().properties() if not Kind(p.kind).liveness]
    for symmetry in (False, True):
        model = scenario.model(symmetry=symmetry, properties=safety)
        results[symmetry] = check(model, symmetry=symmetry)
    plain, reduced = results[False], results[True]
    assert reduced.distinct_states < plain.distinct_states
    assert [p.verdict for p in reduced.properties] == [p.verdict for p in plain.properties]


#: Liveness scenarios -> (max depth, distinct states, states generated) under symmetry
#: (exact on every scenario); the same verdicts as without it. crash-loop has a Service,
#: and one node and one pod: nothing to rename, the full count.
SYMMETRIC_LIVENESS: dict[str, tuple[int | None, int, int]] = {
    "crash-loop": (None, 229, 549),
    "stale-cache": (None, 320, 1090),
    "controller-restart": (None, 879, 3260),
    "graceful-delete": (None, 354, 722),
    "namespace-delete": (None, 427, 1487),
    "node-partition": (10, 912, 2681),
}


@pytest.mark.parametrize("name", sorted(SYMMETRIC_LIVENESS))
def test_liveness_under_symmetry_keeps_every_verdict(name: str) -> None:
    depth, distinct, generated = SYMMETRIC_LIVENESS[name]
    scenario = load_scenario(SCENARIOS / f"{name}.yaml")
    results = {sym: check(scenario.model(symmetry=sym), symmetry=sym, max_depth=depth,
                          por=False) for sym in (False, True)}
    plain, reduced = results[False], results[True]
    assert any(Kind(p.kind).liveness for p in reduced.properties)
    assert [(p.name, p.verdict) for p in reduced.properties] == \
        [(p.name, p.verdict) for p in plain.properties]
    assert reduced.symmetry and not reduced.warnings
    assert (reduced.distinct_states, reduced.states_generated) == (distinct, generated), (
        f"{name}: the reduced state space changed; if intended, re-pin it")


def test_a_liveness_violation_under_symmetry_replays() -> None:
    """Both nodes cordoned, then a scale-up: the new pod can never be scheduled. Found
    on the quotient graph of nodes and pods, the lasso is concrete and replays."""
    scenario = parse_scenario({
        "name": "cordoned-pair", "nodes": 2, "watch_lag": 0,
        "replication_controllers": [{"name": "web", "replicas": 2}],
        "properties": ["converges", "never_overcreates"],
        "script": [{"cordon": "node-1"}, {"cordon": "node-2"},
                   {"scale": {"rc": "web", "replicas": 3}}]})
    results = {sym: check(scenario.model(symmetry=sym), symmetry=sym) for sym in (False, True)}
    plain, reduced = results[False], results[True]
    assert reduced.distinct_states < plain.distinct_states
    assert [(p.name, p.verdict.value) for p in reduced.properties] == \
        [(p.name, p.verdict.value) for p in plain.properties]
    prop = reduced.property("converges")
    assert prop.verdict.value == "violated"
    validate_trace(scenario.model(symmetry=True), prop.trace, prop.cycle)


def test_cli_keeps_a_scenarios_symmetry_with_liveness(tmp_path: Path) -> None:
    """Every system model's representative is exact, with a Service too: a scenario's
    ``symmetry: true`` holds for liveness (no note, no fallback to the full graph)."""
    for name, distinct in (("stale-cache", SYMMETRIC_LIVENESS["stale-cache"][1]),
                           # one node and one pod: nothing to rename, the same count
                           ("crash-loop", PINNED["crash-loop"][1])):
        path = tmp_path / f"{name}.yaml"
        path.write_text((SCENARIOS / f"{name}.yaml").read_text() + "symmetry: true\n")
        done = kstate("verify", str(path), "--json")
        assert done.returncode == 0, done.stderr
        assert "symmetry is off" not in done.stderr and "Traceback" not in done.stderr
        result = json.loads(done.stdout)
        assert result["symmetry"] and result["distinctStates"] == distinct, name
