"""Scenario knobs and faults (issue 15 item 4): each decided exhaustively on a small
scenario with pinned counts, each shown to fire (coverage) and to do what it models,
and each mistake a ``ModelError`` naming the field (exit 2 from ``kstate verify``)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kstate.api.helpers import get_condition
from kstate.api.lifecycle import pod_state
from kstate.api.objects import Pod
from kstate.errors import ModelError
from kstate.verify.checker import check
from kstate.verify.replay import replay_file
from kstate.verify.system import parse_scenario
from kstate.verify.system.model import SystemModel
from kstate.verify.system.world import World

ROOT = Path(__file__).resolve().parents[2]
SAFE = ["never_overcreates", "legal_transitions", "bound_once", "converges"]
BASE: dict[str, Any] = {
    "nodes": 1, "replication_controllers": [{"name": "web", "replicas": 1}],
    "properties": SAFE, "reachable": ["replicas_ready", "faults_spent", "script_done"]}
PROBED = [{"name": "web", "replicas": 1, "readiness_probe": {"port": 8080}}]

#: knob or fault -> (scenario overrides, families that must fire, distinct, generated)
CASES: dict[str, tuple[dict[str, Any], tuple[str, ...], int, int]] = {
    "readiness_probe": ({
        "replication_controllers": PROBED, "faults": {"readiness_failure": 1},
        "services": ["web"],
        "properties": ["never_overcreates", "legal_transitions", "endpoints_ready_only",
                       "converges", "endpoints_converge"],
        "reachable": ["replicas_ready", "faults_spent", "endpoints_ready"]},
        ("ProbePass", "ProbeFail"), 845, 3476),
    "node_reboot": ({"faults": {"node_reboot": 1}}, ("Reboot",), 176, 490),
    "kubelet_restart": ({"faults": {"kubelet_restart": 1}}, ("RestartKubelet",), 90, 260),
    "api_outage": ({"faults": {"api_outage": 1}}, ("ApiOutage", "ApiBack"), 144, 419),
    "force_delete": ({"script": [{"delete_pod": {"rc": "web", "grace": 0}}]},
                     ("ForceDeletePod",), 328, 989),
    "requests": ({"nodes": 2, "replication_controllers": [
        {"name": "web", "replicas": 2, "requests": {"cpu": "3", "memory": "1Gi"}}]},
        ("Schedule",), 1054, 3737),
    "termination_grace_period": ({
        "replication_controllers": [{"name": "web", "replicas": 1,
                                     "termination_grace_period": 5}],
        "script": [{"delete_pod": {"rc": "web"}}]}, ("DeletePod", "Tick"), 1853, 5421),
    "kubelet_lag": ({"kubelet_lag": 1}, ("Deliver",), 77, 225),
}


def scenario_model(**overrides: Any) -> SystemModel:
    return parse_scenario({**BASE, **overrides}, "knobs").model()


@pytest.mark.parametrize("name", sorted(CASES))
def test_knob_decided_exhaustively_and_fires(name: str) -> None:
    overrides, families, distinct, generated = CASES[name]
    result = check(scenario_model(**overrides), symmetry=False)
    verdicts = {p.name: p.verdict.value for p in result.properties}
    assert {v for p, v in verdicts.items() if p not in result_goals(result)} == {"holds"}
    assert {verdicts[g] for g in result_goals(result)} == {"witnessed"}
    fired = dict(result.coverage)
    # Not vacuous: every new fault or step actually fired, and none is "never fired".
    for family in families:
        assert fired.get(family, 0) > 0, (family, fired)
        assert family not in result.never_fired
    assert (result.distinct_states, result.states_generated) == (distinct, generated), (
        f"{name}: the state space changed; if intended, re-pin it")


def result_goals(result: Any) -> set[str]:
    return {p.name for p in result.properties if p.kind == "sometimes"}


# --------------------------------------------------------------------------- effects


def transitions(model: SystemModel) -> Iterator[tuple[World, str, World]]:
    """Every (state, action, next state) reachable (the small scenarios only)."""
    (start,) = model.initial_states()
    seen, queue = {start}, deque([start])
    while queue:
        w = queue.popleft()
        for action, after in model.actions(w):
            yield w, action, after
            if after not in seen:
                seen.add(after)
                queue.append(after)


def pod_ready(w: World) -> bool:
    return any((c := get_condition(p.status.conditions, "Ready")) is not None
               and c.status == "True" for p in w.pods())


def some(model: SystemModel, test: Callable[[World, str, World], bool]) -> bool:
    return any(test(w, a, after) for w, a, after in transitions(model))


def test_a_probed_pod_is_ready_only_while_its_probe_passes() -> None:
    model = scenario_model(replication_controllers=PROBED)
    for w, _, after in transitions(model):
        for state in (w, after):
            if pod_ready(state):
                assert any(k.probes_passing for k in state.kubelets.values())
    # A failing probe takes a Ready pod out of service (a Kubelet round writes unready).
    failing = scenario_model(replication_controllers=PROBED, faults={"readiness_failure": 1})
    assert some(failing, lambda w, a, after: a.startswith("Kubelet")
                and pod_ready(w) and not pod_ready(after))
    assert not some(model, lambda w, a, after: pod_ready(w) and not pod_ready(after))


def test_a_kubelet_restart_forgets_probe_results_but_keeps_containers() -> None:
    model = scenario_model(replication_controllers=PROBED, faults={"kubelet_restart": 1})
    restarts = [(w, after) for w, a, after in transitions(model)
                if a.startswith("RestartKubelet")]
    assert restarts
    for w, after in restarts:
        assert after.runtimes == w.runtimes
        assert not after.kubelets["node-1"].probes_passing
    # Its memory lost, the agent reports the pod unready until the probe passes again.
    assert some(model, lambda w, a, after: a.startswith("Kubelet") and pod_ready(w)
                and not pod_ready(after))


def test_a_reboot_loses_the_containers_and_the_pod_restarts_them() -> None:
    model = scenario_model(faults={"node_reboot": 1})
    reboots = [(w, after) for w, a, after in transitions(model) if a.startswith("Reboot")]
    assert reboots and all(not after.runtimes["node-1"].containers for _, after in reboots)
    assert any(w.runtimes["node-1"].running() for w, _ in reboots)
    # With no crash in the scenario, only the reboot can make the pod worker report its
    # container as exited (CrashLoopBackOff: restartPolicy Always) — and start it again.
    def states(w: World) -> set[str]:
        return {pod_state(p, w.now) for p in w.pods()}
    assert some(model, lambda w, a, after: a.startswith("Kubelet")
                and "CrashLoopBackOff" in states(after) and "Ready" in states(w))
    assert some(model, lambda w, a, after: not w.budget["node_reboot"]
                and not w.runtimes["node-1"].running() and after.runtimes["node-1"].running())


def test_during_an_api_outage_no_write_lands() -> None:
    model = scenario_model(faults={"api_outage": 1},
                           replication_controllers=[{"name": "web", "replicas": 2}])
    down = 0
    for w, action, after in transitions(model):
        if not w.api_available and action != "ApiBack":
            down += 1
            assert after.store == w.store, action
            assert action != "Tick" and not action.startswith("Scale")
            assert "outage" in model.describe(w)["api_server"]  # the trace says so
    assert down > 0


def test_force_delete_removes_the_pod_while_its_container_may_still_run() -> None:
    model = scenario_model(script=[{"delete_pod": {"rc": "web", "grace": 0}}])
    forced = [(w, after) for w, a, after in transitions(model)
              if a.startswith("ForceDeletePod")]
    assert forced
    for w, after in forced:
        assert len(after.pods()) == len(w.pods()) - 1  # gone at once: no grace period
    assert any(after.runtimes["node-1"].running() for _, after in forced)


def test_termination_grace_period_sets_the_deletion_deadline() -> None:
    for grace in (5, 0):
        model = scenario_model(
            replication_controllers=[{"name": "web", "replicas": 1,
                                      "termination_grace_period": grace}],
            script=[{"delete_pod": {"rc": "web"}}])
        graces = {p.metadata.deletion_grace_period_seconds
                  for w, a, after in transitions(model) if a.startswith("DeletePod")
                  for p in after.pods() if p.metadata.deletion_timestamp}
        assert graces == ({5} if grace else set())  # grace 0: removed at once


def test_requests_decide_placement() -> None:
    two_big = [{"name": "web", "replicas": 2, "requests": {"cpu": "3"}}]
    # Two pods of 3 CPUs never share a 4-CPU node ...
    spread = scenario_model(nodes=2, replication_controllers=two_big)
    for w, _, _ in transitions(spread):
        nodes = [p.spec.node_name for p in w.pods() if isinstance(p, Pod)
                 and p.spec.node_name]
        assert len(nodes) == len(set(nodes))
    # ... so on one node the second stays pending and the RC never converges.
    result = check(scenario_model(replication_controllers=two_big,
                                  properties=["converges"], reachable=[]), symmetry=False)
    assert [p.verdict.value for p in result.properties] == ["violated"]


def test_kubelet_lag_holds_pod_events_back() -> None:
    lagging = scenario_model(kubelet_lag=1)
    assert some(lagging, lambda w, a, after: bool(after.kubelets["node-1"].watcher.pending))
    assert not some(scenario_model(),
                    lambda w, a, after: bool(after.kubelets["node-1"].watcher.pending))


def test_a_kubelet_restart_and_a_force_delete_replay_on_the_engine(tmp_path: Path) -> None:
    """The replay maps both onto the engine (its agent restarted on the same runtime;
    a DELETE with grace 0), and the engine's store follows the model's at each step."""
    data = {**BASE, "watch_lag": 0, "faults": {"kubelet_restart": 1},
            "script": [{"delete_pod": {"rc": "web", "grace": 0}}],
            "properties": ["never_overcreates"], "reachable": ["replicas_ready"]}
    model = parse_scenario(data, "replayed").model()
    (w,) = model.initial_states()
    steps = [{"action": "<init>", "state": model.describe(w)}]
    for action in ("Sync(web)", "Schedule(web-0)", "Kubelet(node-1, web-0)",
                   "Kubelet(node-1, web-0)", "RestartKubelet(node-1)",
                   "ForceDeletePod(web-0)"):
        w = dict(model.actions(w))[action]
        steps.append({"action": action, "state": model.describe(w)})
    trace = tmp_path / "trace.json"
    trace.write_text(json.dumps({"property": "never_overcreates", "trace": steps,
                                 "scenario": data}))
    replayed = replay_file(trace)
    assert not replayed.reproduced, replayed.text()
    assert [s.action for s in replayed.steps][-2:] == ["RestartKubelet(node-1)",
                                                        "ForceDeletePod(web-0)"]
    assert "agent restarted" in replayed.steps[-2].did
    assert "force-deleted" in replayed.steps[-1].did
    assert not any(s.differences for s in replayed.steps), replayed.text()
    # A fault the replay has no engine operation for is refused, naming the step.
    steps[-1]["action"] = "ApiOutage"
    trace.write_text(json.dumps({"property": "never_overcreates", "trace": steps,
                                 "scenario": data}))
    with pytest.raises(ModelError) as info:
        replay_file(trace)
    assert "cannot yet play 'ApiOutage'" in str(info.value)


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(("data", "field", "message"), [
    ({"replication_controllers": [{"name": "web", "restart_policy": "Never"}]},
     "replication_controllers[0].restart_policy", 'supported values: "Always"'),
    ({"replication_controllers": [{"name": "web", "requests": {"cpu": "lots"}}]},
     "replication_controllers[0].requests.cpu", "not a quantity"),
    ({"replication_controllers": [{"name": "web", "requests": {"gpu": "1"}}]},
     "replication_controllers[0].requests.gpu", "unknown field 'gpu'"),
    ({"replication_controllers": [{"name": "web", "termination_grace_period": -5}]},
     "replication_controllers[0].termination_grace_period", "must be >= 0"),
    ({"replication_controllers": [{"name": "web", "readiness_probe": {"port": 9090}}]},
     "replication_controllers[0].readiness_probe.port", "does not declare port 9090"),
    ({"replication_controllers": [{"name": "web", "readiness_probe": {"path": "/"}}]},
     "replication_controllers[0].readiness_probe.path", "unknown field 'path'"),
    ({"replication_controllers": [{"name": "web", "liveness_probe": {"port": 80}}]},
     "replication_controllers[0].liveness_probe", "unknown field 'liveness_probe'"),
    ({"replication_controllers": [{"name": "web", "ports": [70000]}]},
     "replication_controllers[0].ports[0]", "<= 65535"),
    ({"faults": {"node_partition": 2}}, "faults.node_partition",
     "more partitions (2) than nodes (1)"),
    ({"faults": {"readiness_failure": 1}}, "faults.readiness_failure",
     "no RC has a readiness_probe"),
    ({"faults": {"disk_full": 1}}, "faults.disk_full", "unknown fault 'disk_full'"),
    ({"script": [{"delete_pod": {"rc": "web", "grace": -1}}]},
     "script[0].delete_pod.grace", "must be >= 0"),
    ({"kubelet_lag": -1}, "kubelet_lag", "must be >= 0"),
])
def test_bad_knobs_name_the_field(data: dict[str, Any], field: str, message: str) -> None:
    with pytest.raises(ModelError) as info:
        parse_scenario({"replication_controllers": [{"name": "web", "replicas": 1}], **data})
    assert info.value.field == field
    assert message in str(info.value)


def test_cli_exits_2_on_a_bad_knob(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nreplication_controllers:\n"
                   "  - {name: web, readiness_probe: {port: 9090}}\n")
    done = subprocess.run([sys.executable, "-m", "kstate.cli", "verify", str(bad)],
                          capture_output=True, text=True, cwd=ROOT, timeout=120, check=False)
    assert done.returncode == 2
    assert "replication_controllers[0].readiness_probe.port" in done.stderr
    assert "Traceback" not in done.stderr
