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


async def test_namespace_finalize_subresource_over_http() -> None:
    """``PUT /api/v1/namespaces/X/finalize`` (what the namespace controller, and
    ``kubectl replace --raw``, send): only spec.finalizers changes; the last one going
    removes a terminating namespace. The controller identity may use it, edit may not."""
    async with running_core() as core, http_client(core) as http:
        created = await http.post("/api/v1/namespaces", headers=ADMIN, json={
            "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}})
        assert created.status == 201
        body = await created.json()
        assert body["spec"] == {"finalizers": ["kubernetes"]}
        assert body["status"] == {"phase": "Active"}
        marked = await http.delete("/api/v1/namespaces/shop", headers=ADMIN)
        assert marked.status == 200
        ns = await marked.json()
        assert ns["status"]["phase"] == "Terminating"
        refused = await http.post("/api/v1/namespaces/shop/pods", headers=ADMIN,
                                  json=to_dict(pod("late", namespace="shop")))
        assert refused.status == 403
        assert (await refused.json())["message"] == (
            "unable to create new content in namespace shop because it is being terminated")
        ns["spec"]["finalizers"] = []
        ns["metadata"]["labels"] = {"ignored": "yes"}  # /finalize changes nothing else
        edit = {"Authorization": "Bearer edit-token"}
        forbidden = await http.put("/api/v1/namespaces/shop/finalize", json=ns, headers=edit)
        assert forbidden.status == 403
        controller = {"Authorization": "Bearer controller-token"}
        done = await http.put("/api/v1/namespaces/shop/finalize", json=ns,
                              headers=controller)
        assert done.status == 200, await done.text()
        assert "labels" not in (await done.json())["metadata"]
        gone = await http.get("/api/v1/namespaces/shop", headers=ADMIN)
        assert gone.status == 404
        bad = await http.put("/api/v1/namespaces/default/pods/x/finalize", json={},
                             headers=ADMIN)
        assert bad.status == 404
