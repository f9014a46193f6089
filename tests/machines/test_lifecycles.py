"""The four lifecycles behave as Kubernetes users expect: legal paths, illegal triggers.

Every assertion runs through *both* executors (``transitions`` for the engine, the
compiled table for the checker) via ``both``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import networkx as nx
import pytest

from kstate import machines
from kstate.errors import IllegalTransition
from kstate.machines.pod import ACTIVE_STATES, FINISHED_STATES


def both(machine: str, state: str, trigger: str, **facts: Any) -> str:
    """Fire through the engine and the checker; they must agree."""
    engine = machines.live(machine).fire(state, trigger, facts, obj="ns/x")
    checker = machines.compiled(machine).fire(state, trigger, facts, obj="ns/x")
    assert engine == checker
    return engine


def walk(machine: str, start: str, *steps: tuple[str, dict[str, Any]] | str) -> str:
    state = start
    for step in steps:
        trigger, facts = (step, {}) if isinstance(step, str) else step
        state = both(machine, state, trigger, **facts)
    return state


def exited(policy: str, code: int, others_running: bool = False,
           others_failed: bool = False) -> tuple[str, dict[str, Any]]:
    return ("container_exited", dict(restart_policy=policy, exit_code=code,
                                     others_running=others_running,
                                     others_failed=others_failed))


def illegal(machine: str, state: str, trigger: str, **facts: Any) -> None:
    for executor in (machines.live(machine), machines.compiled(machine)):
        with pytest.raises(IllegalTransition) as info:
            executor.fire(state, trigger, facts, obj="ns/x")
        err = info.value
        assert (err.state, err.trigger, err.obj) == (state, trigger, "ns/x")
        assert state in str(err) and trigger in str(err)


# ----------------------------------------------------------------------------- pod


def test_pod_happy_path() -> None:
    assert walk("pod", "Pending", "schedule", "start", "started", "ready") == "Ready"


@pytest.mark.parametrize(
    ("policy", "code", "expected"),
    [
        ("Always", 0, "CrashLoopBackOff"),
        ("Always", 1, "CrashLoopBackOff"),
        ("OnFailure", 1, "CrashLoopBackOff"),
        ("OnFailure", 137, "CrashLoopBackOff"),
        ("OnFailure", 0, "Succeeded"),
        ("Never", 0, "Succeeded"),
        ("Never", 1, "Failed"),
        ("Never", 137, "Failed"),
    ],
)
def test_restart_policy_decides_the_exit(policy: str, code: int, expected: str) -> None:
    assert walk("pod", "Ready", exited(policy, code)) == expected


def test_other_containers_keep_the_pod_running_then_decide() -> None:
    assert walk("pod", "Ready", exited("Never", 0, others_running=True)) == "Running"
    assert walk("pod", "Running", exited("Never", 0, others_failed=True)) == "Failed"


def test_crash_loop_restarts_through_container_creating() -> None:
    state = walk("pod", "Running", exited("Always", 1), "backoff_expired", "started")
    assert state == "Running"


def test_container_cannot_run_is_an_exit_from_container_creating() -> None:
    assert walk("pod", "ContainerCreating", exited("Always", 128)) == "CrashLoopBackOff"
    assert walk("pod", "ContainerCreating", exited("Never", 128)) == "Failed"


def test_image_pull_back_off_and_retry() -> None:
    assert walk("pod", "ContainerCreating", "pull_failed", "pull_retry") == "ContainerCreating"


def test_graceful_and_forced_deletion() -> None:
    grace = {"grace_seconds": 30}
    force = {"grace_seconds": 0}
    assert walk("pod", "Ready", ("delete", grace), "stopped") == "Deleted"
    assert walk("pod", "Ready", ("delete", grace), "grace_expired", "stopped") == "Deleted"
    assert walk("pod", "Ready", ("delete", force)) == "Deleted"
    # A stuck Terminating pod (its node is gone) can still be force-deleted.
    assert walk("pod", "Terminating", ("delete", force)) == "Deleted"


@pytest.mark.parametrize("state", ["Pending", "Succeeded", "Failed"])
def test_unbound_and_finished_pods_are_deleted_at_once(state: str) -> None:
    assert walk("pod", state, ("delete", {"grace_seconds": 30})) == "Deleted"


def test_node_loss_and_recovery() -> None:
    assert walk("pod", "Ready", "node_lost") == "Unknown"
    assert walk("pod", "Unknown", "node_recovered") == "Running"
    assert walk("pod", "Unknown", ("delete", {"grace_seconds": 30})) == "Terminating"


def test_illegal_pod_triggers() -> None:
    illegal("pod", "Pending", "started")
    illegal("pod", "Pending", "node_lost")
    illegal("pod", "Scheduled", "ready")
    illegal("pod", "Succeeded", "container_exited", restart_policy="Always", exit_code=1,
            others_running=False, others_failed=False)
    illegal("pod", "Failed", "backoff_expired")
    illegal("pod", "Terminating", "ready")
    illegal("pod", "Terminating", "delete", grace_seconds=30)  # already terminating
    illegal("pod", "Killing", "grace_expired")
    for trigger in machines.POD.trigger_names:
        illegal("pod", "Deleted", trigger)


def test_unknown_trigger_is_named() -> None:
    with pytest.raises(IllegalTransition, match="unknown trigger"):
        machines.live("pod").fire("Pending", "teleport", obj="ns/x")
    with pytest.raises(IllegalTransition, match="not allowed in state 'Pending'"):
        machines.compiled("pod").fire("Pending", "teleport", obj="ns/x")


def test_a_finished_pod_never_runs_again() -> None:
    """Checked on the graph itself: no path from Succeeded/Failed to a running state."""
    g = machines.POD.graph()
    for done in FINISHED_STATES:
        reachable = nx.descendants(g, done)
        assert reachable <= {"Deleted"}, (done, reachable)
    assert "Deleted" not in ACTIVE_STATES


# ----------------------------------------------------------------------------- rc


def test_rc_scaling_and_deletion() -> None:
    assert walk("rc", "Created", ("observe", {"at_desired": False})) == "Progressing"
    assert walk("rc", "Progressing", "converged", "scale", "converged") == "Stable"
    assert walk("rc", "Stable", ("delete", {"propagation": "Background"})) == "Deleted"
    assert walk("rc", "Stable", ("delete", {"propagation": "Foreground"}),
                "finalized") == "Deleted"
    assert walk("rc", "Progressing", ("delete", {"propagation": "Orphan"})) == "Deleting"
    illegal("rc", "Created", "converged")
    illegal("rc", "Deleting", "scale")
    illegal("rc", "Deleted", "observe", at_desired=True)


# ----------------------------------------------------------------------------- service


def test_service_endpoints_and_deletion() -> None:
    assert walk("service", "Created", "allocate", "endpoints_gone", "endpoints_ready",
                "endpoints_gone") == "NoEndpoints"
    assert walk("service", "Active", "delete", "released") == "Deleted"
    illegal("service", "Created", "endpoints_ready")
    illegal("service", "Deleting", "endpoints_ready")


# ----------------------------------------------------------------------------- node


def hb(ready: bool, cordoned: bool = False) -> tuple[str, dict[str, Any]]:
    return ("heartbeat", {"ready": ready, "cordoned": cordoned})


def test_node_heartbeats_grace_and_recovery() -> None:
    assert walk("node", "Registered", hb(True)) == "Ready"
    assert walk("node", "Ready", hb(False)) == "NotReady"
    assert walk("node", "Ready", "grace_expired") == "Unknown"
    assert walk("node", "Unknown", hb(True)) == "Ready"


def test_cordon_survives_a_lost_heartbeat() -> None:
    state = walk("node", "Ready", "cordon", "grace_expired", hb(True, cordoned=True))
    assert state == "Cordoned"
    assert walk("node", "Cordoned", "drain", "drained", "uncordon") == "Ready"
    assert walk("node", "Unknown", "cordon") == "Unknown"


def test_illegal_node_triggers() -> None:
    illegal("node", "Registered", "drain")
    illegal("node", "Unknown", "grace_expired")
    illegal("node", "Removed", "heartbeat", ready=True, cordoned=False)


# ----------------------------------------------------------------------------- all


def every_move() -> Iterator[tuple[str, str, str, dict[str, Any]]]:
    for name, d in machines.MACHINES.items():
        for state in d.state_names:
            for trigger in d.trigger_names:
                for facts in d.fact_combinations(trigger):
                    yield name, state, trigger, facts


def test_engine_and_checker_agree_on_every_single_move() -> None:
    """Exhaustive over every (machine, state, trigger, facts in the declared domains)."""
    count = 0
    for name, state, trigger, facts in every_move():
        outcomes = []
        for executor in (machines.live(name), machines.compiled(name)):
            try:
                outcomes.append(executor.fire(state, trigger, facts))
            except IllegalTransition as err:
                outcomes.append(f"illegal:{err.state}:{err.trigger}")
        assert outcomes[0] == outcomes[1], (name, state, trigger, facts, outcomes)
        count += 1
    assert count > 500


def test_every_state_declares_how_it_shows() -> None:
    for d in machines.MACHINES.values():
        for s in d.states:
            assert s.visible, f"{d.name}.{s.name} has no visible mapping"
            assert s.doc, f"{d.name}.{s.name} has no doc"
