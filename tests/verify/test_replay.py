"""``kstate verify --replay``: a model checker counterexample, replayed on the engine.

The seeded bug of test_seeded_bugs (a replication controller without expectations) gives
a real counterexample; the engine running the same broken reconciler must reproduce it,
and the engine running the real one must not. Through the CLI: ``verify --json`` output
replays as it is (the scenario travels with it), a genuine liveness counterexample of
the real engine reproduces, the exit codes follow ``verify``'s (1: the property fails on
the engine), and a malformed trace is one line naming the field, exit 2.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import attrs
import pytest
import yaml

from kstate import cli
from kstate.control import replication
from kstate.errors import ModelError
from kstate.verify.checker import check
from kstate.verify.replay import ACTIONS, NOT_REPLAYED, load_trace, replay_file
from kstate.verify.system import load_scenario
from kstate.verify.system.model import FAIR
from tests.verify.test_seeded_bugs import SCENARIOS, without_expectations

STALE_CACHE = SCENARIOS / "stale-cache.yaml"

#: The only node cordoned, then a scale-up: the new pods can never be scheduled, so the
#: RC never converges — on the model and on the real engine alike.
CORDONED = ("name: cordoned\nnodes: 1\nreplication_controllers: [{name: web, replicas: 1}]\n"
            "watch_lag: 0\nproperties: [converges, never_overcreates]\n"
            "script: [{cordon: node-1}, {scale: {rc: web, replicas: 2}}]\n")


@pytest.fixture(scope="module")
def overcreation() -> dict[str, Any]:
    """The checker's shortest over-creation by the seeded bug, as ``verify --json``
    writes it (without the scenario: each test adds what it needs)."""
    scenario = load_scenario(STALE_CACHE)
    result = check(scenario.model(replication_fn=without_expectations, symmetry=False),
                   symmetry=False, stop="first-violation", max_depth=10)
    assert result.property("never_overcreates").verdict.value == "violated"
    return result.to_json()


def write(path: Path, doc: Any) -> Path:
    path.write_text(json.dumps(doc) if not isinstance(doc, str) else doc)
    return path


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.main(["verify", *args])
    out, err = capsys.readouterr()
    return code, out, err


# --------------------------------------------------------------------------- in-process


def test_the_seeded_bug_reproduces_on_the_engine_and_the_real_controller_does_not(
        tmp_path: Path, overcreation: dict[str, Any]) -> None:
    trace = write(tmp_path / "result.json", {**overcreation, "scenario": str(STALE_CACHE)})
    model_steps = [s["action"] for s in overcreation["properties"][0]["trace"]][1:]

    broken = replay_file(trace, replication_fn=without_expectations)
    assert broken.reproduced, broken.text()
    assert (broken.property, broken.scenario) == ("never_overcreates", "stale-cache")
    assert [s.action for s in broken.steps] == model_steps
    assert all("manager.sync_rc(default/web)" in s.did for s in broken.steps)
    assert not broken.steps[0].violations
    assert "more than the 2 replicas" in broken.steps[-1].violations[0]
    assert not broken.steps[-1].differences  # the engine did exactly what the model did
    assert broken.text().splitlines()[-1].startswith("REPRODUCED: never_overcreates")

    real = replay_file(trace)
    assert not real.reproduced, real.text()
    assert not any(s.violations for s in real.steps)
    assert "held on the engine at every step" in real.verdict
    # The real controller refuses the second creation; the step report shows where the
    # engine parts from the (buggy) model.
    assert "pods: model ['web-2" in real.steps[-1].differences[0]


def test_a_single_trace_document_finds_its_scenario(tmp_path: Path,
                                                   overcreation: dict[str, Any]) -> None:
    """``{"property", "trace", "scenario"}`` with a path relative to the trace file; or
    no scenario at all, found by the result's ``model`` name in specs/scenarios."""
    prop = overcreation["properties"][0]
    (tmp_path / "scenarios").mkdir()
    (tmp_path / "scenarios" / "mine.yaml").write_text(STALE_CACHE.read_text())
    single = write(tmp_path / "one.json", {"property": prop["name"], "trace": prop["trace"],
                                           "scenario": "scenarios/mine.yaml"})
    assert replay_file(single, replication_fn=without_expectations).reproduced
    by_model_name = write(tmp_path / "bare.json", overcreation)
    doc = load_trace(by_model_name)
    assert doc.scenario.name == "stale-cache" and doc.property == "never_overcreates"
    assert doc.fields[0] == "properties[0].trace[1]"


def test_every_model_action_has_an_engine_operation() -> None:
    faults_and_script = {"Crash", "Partition", "RestartControllerManager", "RestartKubelet",
                         "Scale", "DeletePod", "ForceDeletePod", "DeleteRC", "Cordon",
                         "Drain", "DeleteNamespace"}
    assert set(ACTIONS) == (set(FAIR) | faults_and_script) - set(NOT_REPLAYED)
    assert not set(ACTIONS) & set(NOT_REPLAYED)
    assert ACTIONS["Schedule"] == (1, 2) and ACTIONS["Tick"] == (0, 0)


# --------------------------------------------------------------------------- the CLI


def test_verify_json_then_replay_through_the_cli(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The seeded bug in the shipped code path (the model and the engine both call
    ``replication.reconcile``): the result replays as written, and reproduces only while
    the bug is in."""
    real_reconcile = replication.reconcile

    def reconcile_without_expectations(view: replication.ReplicationView, now: float,
                                       settings: replication.ReplicationSettings
                                       ) -> list[Any]:
        return real_reconcile(attrs.evolve(view, expectation=None), now, settings)

    monkeypatch.setattr(replication, "reconcile", reconcile_without_expectations)
    code, out, err = run_cli(capsys, str(STALE_CACHE), "--json", "--max-depth", "6")
    assert code == 1, err
    result = json.loads(out)
    assert result["scenario"] == str(STALE_CACHE.resolve())
    trace = write(tmp_path / "result.json", out)

    code, out, err = run_cli(capsys, "--replay", str(trace))
    assert code == 1, err
    assert out.rstrip().splitlines()[-1].startswith("REPRODUCED: never_overcreates")
    assert "1. Sync(web)" in out and "VIOLATED: after Sync(web)" in out
    code, out, _ = run_cli(capsys, "--replay", str(trace), "--json")
    outcome = json.loads(out)
    assert code == 1 and outcome["reproduced"] is True
    assert outcome["steps"][-1]["violations"]

    monkeypatch.setattr(replication, "reconcile", real_reconcile)
    code, out, err = run_cli(capsys, "--replay", str(trace))
    assert code == 0, out + err
    assert "not reproduced: never_overcreates held on the engine at every step" in out


def test_a_liveness_counterexample_of_the_real_engine_reproduces(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Resting short of the goal is a liveness violation too: the engine comes to rest
    with both pods Unschedulable, and the replay says the RC never converges."""
    scenario = write(tmp_path / "cordoned.yaml", CORDONED)
    code, out, err = run_cli(capsys, str(scenario), "--json")
    assert code == 1, err
    trace = write(tmp_path / "result.json", out)
    code, out, err = run_cli(capsys, "--replay", str(trace))
    assert code == 1, out + err
    assert "Cordon(node-1)" in out and "Scale(web, 2)" in out
    assert "REPRODUCED: converges" in out and "2 active pods (0 Ready), replicas 2" in out


def test_a_liveness_property_that_holds_on_the_engine_is_not_reproduced(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        overcreation: dict[str, Any]) -> None:
    init = overcreation["properties"][0]["trace"][0]
    trace = write(tmp_path / "t.json", {"property": "converges", "trace": [init],
                                        "scenario": str(STALE_CACHE)})
    code, out, err = run_cli(capsys, "--replay", str(trace))
    assert code == 0, out + err
    assert "not reproduced: converges: after the trace, the engine running on its own " \
           "settled" in out


def test_the_positional_scenario_overrides_the_documents(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        overcreation: dict[str, Any]) -> None:
    trace = write(tmp_path / "t.json", {**overcreation, "scenario": "nowhere.yaml"})
    code, _, err = run_cli(capsys, "--replay", str(trace))
    assert code == 2 and "scenario: no scenario file 'nowhere.yaml'" in err
    code, out, err = run_cli(capsys, str(STALE_CACHE), "--replay", str(trace))
    assert code == 0, err
    assert "not reproduced" in out


# --------------------------------------------------------------------------- bad input


def _steps(overcreation: dict[str, Any]) -> list[dict[str, Any]]:
    return [dict(s) for s in overcreation["properties"][0]["trace"]]


def _with_action(action: str) -> Any:
    def build(o: dict[str, Any]) -> Any:
        steps = _steps(o)
        steps[1]["action"] = action
        return {"property": "never_overcreates", "trace": steps, "scenario": str(STALE_CACHE)}
    return build


BAD: list[tuple[str, Any, str, str]] = [
    ("not-json", lambda o: "{'trace': [", "$", "not JSON"),
    ("a-number", lambda o: 42, "$", "expected a kstate verify --json result"),
    ("wrong-schema", lambda o: {**o, "schema": "kstate.verify/result@9"}, "schema",
     "expected schema 'kstate.verify/result@1'"),
    ("nothing-violated", lambda o: {**o, "properties": [
        {**o["properties"][0], "verdict": "holds"}]}, "properties", "nothing to replay"),
    ("properties-not-a-list", lambda o: {**o, "properties": {}}, "properties",
     "must be a list"),
    ("empty-trace", lambda o: {"property": "never_overcreates", "trace": []}, "trace",
     "non-empty list"),
    ("step-not-an-object", lambda o: {"trace": [*_steps(o), 7]}, "trace[3]",
     "'action' and 'state'"),
    ("action-not-a-string", lambda o: {"trace": [_steps(o)[0], {"action": 3, "state": {}}]},
     "trace[1].action", "wrong type"),
    ("no-init", lambda o: {"trace": _steps(o)[1:]}, "trace[0].action",
     "first step must be '<init>'"),
    ("state-without-now", lambda o: {"trace": [_steps(o)[0], {"action": "GC", "state": {}}]},
     "trace[1].state", "numeric 'now'"),
    ("unknown-action", _with_action("Explode(web)"), "trace[1].action",
     "unknown action 'Explode'; known:"),
    ("unreadable-action", _with_action("Sync(web"), "trace[1].action", "unreadable action"),
    ("too-many-arguments", _with_action("Sync(web, web-0, db)"), "trace[1].action",
     "Sync takes 1 to 2 argument(s), got 3"),
    ("cycle-step", lambda o: {"property": "converges", "trace": _steps(o)[:1],
                              "cycle": [{"action": "Tick(1)", "state": {"now": 1}}],
                              "scenario": str(STALE_CACHE)},
     "cycle[0].action", "Tick takes 0 argument(s)"),
    ("unknown-property", lambda o: {"property": "always_happy", "trace": _steps(o),
                                    "scenario": str(STALE_CACHE)},
     "property", "unknown property 'always_happy'"),
    ("unknown-kind", lambda o: {**o, "properties": [{**o["properties"][0], "kind": "often"}]},
     "properties[0].kind", "unknown kind 'often'"),
    ("missing-scenario", lambda o: {"property": "never_overcreates", "trace": _steps(o)},
     "scenario", "cannot tell which scenario"),
    ("scenario-of-the-wrong-type", lambda o: {"trace": _steps(o), "scenario": 5},
     "scenario", "a scenario mapping or a path"),
    ("unknown-model", lambda o: {**o, "model": "no-such-scenario"}, "model",
     "no scenario file no-such-scenario.yaml"),
    ("bad-inline-scenario", lambda o: {"trace": _steps(o), "scenario": {"nodes": 0}},
     "scenario.nodes", "must be >= 1"),
    # Readable, but the engine cannot follow: named at the step, while replaying.
    ("pod-never-created", _with_action("DeletePod(web-7)"), "trace[1].action",
     "names pod 'web-7', which the engine never created"),
    ("unknown-node", _with_action("Partition(node-9)"), "trace[1].action",
     "no node 'node-9'"),
    ("replicas-not-a-number", _with_action("Scale(web, many)"), "trace[1].action",
     "replicas must be a number"),
]


@pytest.mark.parametrize(("build", "field", "message"), [b[1:] for b in BAD],
                         ids=[b[0] for b in BAD])
def test_a_malformed_trace_is_one_line_naming_the_field(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], overcreation: dict[str, Any],
        build: Any, field: str, message: str) -> None:
    trace = write(tmp_path / "trace.json", build(overcreation))
    code, out, err = run_cli(capsys, "--replay", str(trace))
    assert code == 2, out + err
    assert err.startswith(f"error: {trace}: {field}: "), err
    assert message in err and len(err.strip().splitlines()) == 1, err
    with pytest.raises(ModelError) as info:
        replay_file(trace)
    assert info.value.field == field


def test_a_missing_trace_file_is_bad_usage(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "--replay", str(tmp_path / "nope.json"))
    assert code == 2 and "cannot read trace file" in err


# --------------------------------------------------------------------------- choices

#: Two pods of one RC, alike in every way the deletion ranking looks at, then a scale-down
#: to 1: which pod goes is the model's choice, ``Sync(web, web-0)`` or ``Sync(web, web-1)``.
TIED = ("name: tied\nnodes: 1\nreplication_controllers: [{name: web, replicas: 2}]\n"
        "watch_lag: 0\nproperties: [never_overcreates]\n"
        "script: [{scale: {rc: web, replicas: 1}}]\n")


def _tied_traces() -> list[list[dict[str, Any]]]:
    """Every path to the scale-down's choices: the cluster settled with two pods, the
    scale, the syncs up to the tied one — one trace per choice."""
    from kstate.verify.system import parse_scenario
    from kstate.verify.system.render import describe

    model = parse_scenario(yaml.safe_load(TIED)).model(symmetry=False)
    w = next(iter(model.initial_states()))
    trace = [{"action": "<init>", "state": describe(w)}]
    for _ in range(60):
        moves = model.actions(w)
        tied = [(a, t) for a, t in moves if a.startswith("Sync(web, ")]
        if tied:
            return [[*trace, {"action": a, "state": describe(t)}] for a, t in tied]
        settled = [(a, t) for a, t in moves if not a.startswith(("Scale", "Tick"))]
        action, w = (settled or [m for m in moves if m[0].startswith("Scale")])[0]
        trace.append({"action": action, "state": describe(w)})
    raise AssertionError("no tied scale-down reached")


def test_a_tied_scale_down_replays_the_models_choice(tmp_path: Path) -> None:
    traces = _tied_traces()
    assert sorted(t[-1]["action"] for t in traces) == ["Sync(web, web-0)", "Sync(web, web-1)"]
    for trace in traces:
        doc = {"property": "never_overcreates", "trace": trace, "scenario": yaml.safe_load(TIED)}
        outcome = replay_file(write(tmp_path / "trace.json", doc))
        last = outcome.steps[-1]
        assert last.action == trace[-1]["action"]
        # the engine deleted the pod the model chose (the other is still Running)
        assert not last.differences, outcome.text()


#: Two pods on the only node, which is cut off: once its grace period is over the node
#: lifecycle marks both lost in one pass, in either order (its cache has none).
LOST_TWO = ("name: lost-two\nnodes: 1\nreplication_controllers: [{name: web, replicas: 2}]\n"
            "watch_lag: 1\nfaults: {node_partition: 1}\nproperties: [never_overcreates]\n")


def _ordered_traces() -> list[list[dict[str, Any]]]:
    """Every path to the node lifecycle's orders: the cluster settled with two running
    pods, the partition, time passing — one trace per order."""
    from kstate.verify.system import parse_scenario
    from kstate.verify.system.render import describe

    model = parse_scenario(yaml.safe_load(LOST_TWO)).model(symmetry=False)
    w = next(iter(model.initial_states()))
    trace, seen = [{"action": "<init>", "state": describe(w)}], {w}
    for _ in range(80):
        moves = [(a, t) for a, t in model.actions(w) if t not in seen]
        ordered = [(a, t) for a, t in moves if a.startswith("NodeLifecycle(")]
        if ordered:
            return [[*trace, {"action": a, "state": describe(t)}] for a, t in ordered]
        running = sum(p.status.phase == "Running" for p in w.pods()) == 2
        settled = [(a, t) for a, t in moves
                   if not a.startswith(("Partition", "Heal", "Tick"))]
        cut = [(a, t) for a, t in moves if a.startswith("Partition")] if running else []
        later = [(a, t) for a, t in moves if a == "Tick"]
        action, w = (settled or cut or later)[0]
        seen.add(w)
        trace.append({"action": action, "state": describe(w)})
    raise AssertionError("no node lifecycle pass with a choice of order reached")


def test_a_node_lifecycle_pass_replays_the_models_order(tmp_path: Path) -> None:
    """Each order the model explored is the one the engine's pass writes in (without the
    forcing, both replays would write in the engine's own cache order)."""
    traces = _ordered_traces()
    assert sorted(t[-1]["action"] for t in traces) == [
        "NodeLifecycle(web-0+web-1)", "NodeLifecycle(web-1+web-0)"]
    for trace in traces:
        doc = {"property": "never_overcreates", "trace": trace,
               "scenario": yaml.safe_load(LOST_TWO)}
        outcome = replay_file(write(tmp_path / "trace.json", doc))
        last = outcome.steps[-1]
        order = trace[-1]["action"].removeprefix("NodeLifecycle(").removesuffix(")")
        assert last.action == trace[-1]["action"]
        assert last.did.endswith(f"; wrote {order}"), outcome.text()
        assert not last.differences, outcome.text()
