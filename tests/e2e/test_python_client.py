"""The official ``kubernetes`` Python client, unmodified, against ``kstate apiserver``:
load the generated kubeconfig, list, watch, create, patch, delete, and the 409/404
answers as ``ApiException`` with the status and ``Status`` body Kubernetes gives."""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_kubectl import Server, start_apiserver

kubernetes = pytest.importorskip("kubernetes")

from kubernetes import client, config, watch  # noqa: E402
from kubernetes.client.rest import ApiException  # noqa: E402


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with start_apiserver(tmp_path_factory.mktemp("apiserver-pyclient")) as running:
        yield running


@pytest.fixture
def core(server: Server) -> client.CoreV1Api:
    api_client = config.new_client_from_config(config_file=str(server.kubeconfig))
    return client.CoreV1Api(api_client)


def pod(name: str, **labels: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": labels or {"app": "py"}},
            "spec": {"containers": [{"name": "c", "image": "nginx:1.25"}]}}


def test_create_get_list_patch_delete(core: client.CoreV1Api) -> None:
    created = core.create_namespaced_pod("default", pod("py-1"))
    assert created.metadata.name == "py-1" and created.status.phase == "Pending"
    assert created.metadata.uid and created.spec.restart_policy == "Always"
    got = core.read_namespaced_pod("py-1", "default")
    assert got.metadata.resource_version == created.metadata.resource_version
    listed = core.list_namespaced_pod("default", label_selector="app=py")
    assert [p.metadata.name for p in listed.items] == ["py-1"]
    assert listed.metadata.resource_version
    everywhere = core.list_pod_for_all_namespaces(field_selector="metadata.name=py-1")
    assert len(everywhere.items) == 1
    patched = core.patch_namespaced_pod("py-1", "default",
                                        {"metadata": {"labels": {"tier": "front"}}})
    assert patched.metadata.labels == {"app": "py", "tier": "front"}
    deleted = core.delete_namespaced_pod("py-1", "default")
    assert deleted.metadata.name == "py-1"  # pods come back whole, as in Kubernetes
    with pytest.raises(ApiException) as missing:
        core.read_namespaced_pod("py-1", "default")
    assert missing.value.status == 404


def test_conflicts_and_not_found(core: client.CoreV1Api) -> None:
    core.create_namespaced_pod("default", pod("py-2"))
    with pytest.raises(ApiException) as exists:
        core.create_namespaced_pod("default", pod("py-2"))
    assert exists.value.status == 409
    body = json.loads(exists.value.body)
    assert body["kind"] == "Status" and body["reason"] == "AlreadyExists"
    current = core.read_namespaced_pod("py-2", "default")
    stale = core.read_namespaced_pod("py-2", "default")
    current.metadata.labels = {"app": "py", "v": "2"}
    core.replace_namespaced_pod("py-2", "default", current)
    stale.metadata.labels = {"app": "py", "v": "stale"}
    with pytest.raises(ApiException) as conflict:
        core.replace_namespaced_pod("py-2", "default", stale)
    assert conflict.value.status == 409
    assert json.loads(conflict.value.body)["reason"] == "Conflict"
    with pytest.raises(ApiException) as gone:
        core.delete_namespaced_pod("nope", "default")
    assert gone.value.status == 404
    with pytest.raises(ApiException) as invalid:
        core.create_namespaced_pod("default", pod("Bad_Name"))
    assert invalid.value.status == 422
    assert json.loads(invalid.value.body)["details"]["causes"][0]["field"] == "metadata.name"
    core.delete_namespaced_pod("py-2", "default")


def test_watch(core: client.CoreV1Api) -> None:
    core.create_namespaced_pod("default", pod("py-w1", app="watched"))
    events: queue.Queue[tuple[str, str]] = queue.Queue()
    watcher = watch.Watch()

    def follow() -> None:
        for event in watcher.stream(core.list_namespaced_pod, "default",
                                    label_selector="app=watched", timeout_seconds=30):
            events.put((event["type"], event["object"].metadata.name))
            if event["type"] == "DELETED":
                watcher.stop()

    thread = threading.Thread(target=follow, daemon=True)
    thread.start()
    assert events.get(timeout=20) == ("ADDED", "py-w1")
    core.create_namespaced_pod("default", pod("py-w2", app="watched"))
    assert events.get(timeout=20) == ("ADDED", "py-w2")
    core.patch_namespaced_pod("py-w1", "default", {"metadata": {"annotations": {"a": "b"}}})
    assert events.get(timeout=20) == ("MODIFIED", "py-w1")
    core.delete_namespaced_pod("py-w2", "default")
    assert events.get(timeout=20) == ("DELETED", "py-w2")
    thread.join(20)
    assert not thread.is_alive()
    core.delete_namespaced_pod("py-w1", "default")


def test_other_kinds_and_subresources(core: client.CoreV1Api, server: Server) -> None:
    core.create_namespace({"apiVersion": "v1", "kind": "Namespace",
                           "metadata": {"name": "py"}})
    svc = core.create_namespaced_service("py", {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
        "spec": {"type": "NodePort", "selector": {"app": "web"}, "ports": [{"port": 80}]}})
    assert 30000 <= svc.spec.ports[0].node_port <= 32767
    rc = {"apiVersion": "v1", "kind": "ReplicationController", "metadata": {"name": "web"},
          "spec": {"replicas": 1, "template": {"metadata": {"labels": {"app": "web"}},
                                               "spec": pod("x")["spec"]}}}
    core.create_namespaced_replication_controller("py", rc)
    scale = core.patch_namespaced_replication_controller_scale(
        "web", "py", {"spec": {"replicas": 3}})
    assert scale.spec.replicas == 3
    assert core.read_namespaced_replication_controller("web", "py").spec.replicas == 3
    leases = client.CoordinationV1Api(core.api_client)
    lease = leases.create_namespaced_lease("kube-node-lease", {
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "node-py"}, "spec": {"holderIdentity": "node-py",
                                                  "leaseDurationSeconds": 40}})
    assert lease.spec.holder_identity == "node-py"
    core.delete_namespace("py")
    # Marked only: emptying and finalizing it is the controller manager's, not run here.
    terminating = core.read_namespace("py")
    assert terminating.status.phase == "Terminating"
    assert terminating.spec.finalizers == ["kubernetes"]
    assert Path(server.kubeconfig).exists()
