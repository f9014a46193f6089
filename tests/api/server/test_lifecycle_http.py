"""A lifecycle write the machines forbid, over HTTP: 422 in Kubernetes' Status shape,
naming the current state, the requested one and the guard that failed; nothing stored.

The example of issue 14: a status write Running -> Succeeded on a ``restartPolicy:
Always`` pod. ``container_exited`` joins the two states, but fired with the write's facts
(``restart_policy=Always``) it leads to CrashLoopBackOff, so the write is refused. The
same write on a ``restartPolicy: Never`` pod is a legal move and is stored.
"""

from __future__ import annotations

from typing import Any

from kstate.api import to_dict
from kstate.api.helpers import with_spec, with_status
from kstate.api.objects import (
    ContainerState,
    ContainerStateRunning,
    ContainerStateTerminated,
    ContainerStateWaiting,
    ContainerStatus,
    Pod,
    PodCondition,
)
from kstate.api.server.core import ApiCore
from tests.api.server.conftest import ADMIN, http_client, running_core
from tests.api.server.helpers import pod

STATUS_URL = "/api/v1/namespaces/default/pods/{name}/status"


def _container(state: ContainerState) -> tuple[ContainerStatus, ...]:
    return (ContainerStatus(name="c", image="busybox", state=state,
                            container_id="kstate://c-0"),)


async def _running(core: ApiCore, name: str, restart_policy: str) -> Pod:
    """A pod bound to n1 and moved, one legal status write at a time, to Running."""
    created = await core.create(with_spec(pod(name), node_name="n1",
                                          restart_policy=restart_policy))
    assert isinstance(created, Pod)
    creating = with_status(created, phase="Pending", container_statuses=_container(
        ContainerState(waiting=ContainerStateWaiting(reason="ContainerCreating"))))
    creating = await core.update(creating, subresource="status")
    running = with_status(creating, phase="Running", container_statuses=_container(
        ContainerState(running=ContainerStateRunning(started_at="2023-11-14T22:13:20Z"))),
        conditions=(PodCondition(type="Ready", status="False"),))
    stored = await core.update(running, subresource="status")
    assert isinstance(stored, Pod)
    return stored


def _succeeded(running: Pod) -> dict[str, Any]:
    done = with_status(running, phase="Succeeded", container_statuses=_container(
        ContainerState(terminated=ContainerStateTerminated(
            exit_code=0, reason="Completed", container_id="kstate://c-0"))))
    return to_dict(done)


async def test_running_to_succeeded_on_restart_always_is_refused_over_http() -> None:
    async with running_core() as core, http_client(core) as http:
        running = await _running(core, "web", "Always")
        revision = await core.store.revision()
        answer = await http.put(STATUS_URL.format(name="web"), json=_succeeded(running),
                                headers=ADMIN)
        assert answer.status == 422
        status = await answer.json()
        assert (status["kind"], status["status"], status["reason"], status["code"]) == (
            "Status", "Failure", "Invalid", 422)
        message = status["message"]
        assert message.startswith('Pod "web" is invalid: ')
        # current state, requested state, the trigger, the guard that failed and why
        assert "in state 'Running'" in message and "-> Succeeded" in message
        assert "container_exited" in message and "restart_policy=Always" in message
        assert "leads to 'CrashLoopBackOff'" in message and "!should_restart" in message
        assert status["details"]["kind"] == "Pod"
        assert status["details"]["causes"][0]["reason"] == "IllegalTransition"
        # nothing stored
        assert await core.store.revision() == revision
        after = await http.get(STATUS_URL.format(name="web"), headers=ADMIN)
        assert (await after.json())["status"]["phase"] == "Running"


async def test_running_to_succeeded_on_restart_never_is_stored() -> None:
    async with running_core() as core, http_client(core) as http:
        running = await _running(core, "job", "Never")
        answer = await http.put(STATUS_URL.format(name="job"), json=_succeeded(running),
                                headers=ADMIN)
        assert answer.status == 200, await answer.text()
        assert (await answer.json())["status"]["phase"] == "Succeeded"
