"""Objects <-> lifecycle machine states and the update rule."""

from __future__ import annotations

import attrs
import pytest

from kstate.api.lifecycle import (
    check_change,
    node_state,
    pod_state,
    rc_state,
    service_state,
    state_of,
)
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
    assert check_change(back, done) == "container_exited"
    assert check_change(back, back) is None
