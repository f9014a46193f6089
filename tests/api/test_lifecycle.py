"""Objects <-> lifecycle machine states and the update rule."""

from __future__ import annotations

import attrs
import pytest

from kstate.api.helpers import with_spec, with_status
from kstate.api.lifecycle import (
    check_change,
    node_state,
    pod_state,
    rc_state,
    service_state,
    state_of,
)
from kstate.api.objects import ContainerState, ContainerStateTerminated, ContainerStatus
from kstate.errors import IllegalTransition
from tests.control.objects import T0, node, pod, rc, service


def test_pod_states_from_fields() -> None:
    assert pod_state(pod("a")) == "Pending"
    assert pod_state(pod("a", node="n1")) == "Scheduled"
    assert pod_state(pod("a", node="n1", phase="Pending", waiting="ContainerCreating")) == \
        "ContainerCreating"
    assert pod_state(pod("a", node="n1", phase="Pending", waiting="ErrImagePull")) == \
        "ImagePullBackOff"
    assert pod_state(pod("a", node="n1", phase="Running", ready=False)) == "Running"
    assert pod_state(pod("a", node="n1", phase="Running", ready=True)) == "Ready"
    assert pod_state(pod("a", node="n1", phase="Running", waiting="CrashLoopBackOff")) == \
        "CrashLoopBackOff"
    assert pod_state(pod("a", node="n1", phase="Succeeded")) == "Succeeded"
    dying = pod("a", node="n1", phase="Running", deleting=True, created=T0)
    assert pod_state(dying, now=T0) == "Terminating"
    assert pod_state(dying, now=T0 + 31) == "Killing"


def test_rc_service_and_node_states() -> None:
    assert rc_state(rc()) == "Created"
    synced = rc(replicas=2, observedGeneration=1)
    assert rc_state(synced) == "Progressing"  # status.replicas 0 != 2
    at_two = attrs.evolve(synced, status=attrs.evolve(synced.status, replicas=2))
    assert rc_state(at_two) == "Stable"
    assert service_state(service()) == "Allocated"
    assert node_state(node("n")) == "Registered"
    assert state_of(node("n")) == "Registered"


def test_illegal_change_names_state_and_attempt() -> None:
    done = pod("a", node="n1", phase="Succeeded")
    back = pod("a", node="n1", phase="Running", ready=True)
    with pytest.raises(IllegalTransition, match="from 'Succeeded' to 'Ready'"):
        check_change(done, back)
    assert check_change(back, back) is None


def test_a_change_is_admitted_only_where_the_guards_lead() -> None:
    """The machine makes the move: ``container_exited`` fired with the write's facts
    must land on the state the new object shows (issue 14's example)."""
    running = pod("a", node="n1", phase="Running", ready=True)
    exited = (ContainerStatus(name="c", state=ContainerState(
        terminated=ContainerStateTerminated(exit_code=0, reason="Completed",
                                            container_id="kstate://c1"))),)
    done = with_status(running, phase="Succeeded", container_statuses=exited,
                       conditions=())
    with pytest.raises(IllegalTransition) as info:
        check_change(running, done)  # restartPolicy Always: it would restart
    text = str(info.value)
    assert "'Ready'" in text and "'Succeeded'" in text and "restart_policy=Always" in text
    assert "leads to 'CrashLoopBackOff'" in text and "!should_restart" in text
    never = with_spec(running, restart_policy="Never")
    assert check_change(never, with_spec(done, restart_policy="Never")) == "container_exited"
    failed = with_status(done, container_statuses=(attrs.evolve(exited[0], state=ContainerState(
        terminated=ContainerStateTerminated(exit_code=1, container_id="kstate://c1"))),))
    with pytest.raises(IllegalTransition, match="leads to 'Failed'"):
        check_change(never, with_spec(failed, restart_policy="Never"))
    # Nothing recorded how the container ended: not derivable, so not a success.
    with pytest.raises(IllegalTransition, match="exit_code=128"):
        check_change(never, with_spec(with_status(done, container_statuses=()),
                                      restart_policy="Never"))
