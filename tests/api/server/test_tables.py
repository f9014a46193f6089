"""``kubectl get`` columns: pod STATUS as kubectl computes it, AGE, node STATUS."""

from __future__ import annotations

from typing import Any

import pytest

from kstate.api import Node, Pod, from_dict
from kstate.api.registry import REGISTRY
from kstate.api.server.tables import columns_of, human_duration, node_status, pod_status, table
from kstate.clock import rfc3339

NOW = 1_700_000_000.0


def make_pod(status: dict[str, Any], **meta: Any) -> Pod:
    return from_dict(Pod, {"metadata": {"name": "p", **meta},
                           "spec": {"containers": [{"name": "c", "image": "x"}]},
                           "status": status})


def waiting(reason: str) -> dict[str, Any]:
    return {"phase": "Pending", "containerStatuses": [
        {"name": "c", "ready": False, "restartCount": 0, "state": {"waiting": {"reason": reason}}}]}


@pytest.mark.parametrize(("status", "meta", "shown"), [
    ({"phase": "Pending"}, {}, "Pending"),
    (waiting("ContainerCreating"), {}, "ContainerCreating"),
    (waiting("CrashLoopBackOff"), {}, "CrashLoopBackOff"),
    (waiting("ImagePullBackOff"), {}, "ImagePullBackOff"),
    ({"phase": "Running", "containerStatuses": [
        {"name": "c", "ready": True, "restartCount": 0, "state": {"running": {}}}]}, {},
     "Running"),
    ({"phase": "Succeeded", "containerStatuses": [
        {"name": "c", "ready": False, "restartCount": 0,
         "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}, {}, "Completed"),
    ({"phase": "Failed", "containerStatuses": [
        {"name": "c", "ready": False, "restartCount": 0,
         "state": {"terminated": {"exitCode": 1, "reason": "Error"}}}]}, {}, "Error"),
    ({"phase": "Failed", "containerStatuses": [
        {"name": "c", "ready": False, "restartCount": 0,
         "state": {"terminated": {"exitCode": 137, "signal": 9}}}]}, {}, "Signal:9"),
    ({"phase": "Running"}, {"deletionTimestamp": "2023-11-14T22:13:20Z"}, "Terminating"),
    ({"phase": "Succeeded"}, {"deletionTimestamp": "2023-11-14T22:13:20Z"}, "Succeeded"),
    ({"phase": "Pending", "initContainerStatuses": [
        {"name": "i", "ready": False, "restartCount": 0, "state": {"running": {}}}]}, {},
     "Init:0/0"),
    ({"phase": "Failed", "reason": "Evicted"}, {}, "Evicted"),
])
def test_pod_status_column(status: dict[str, Any], meta: dict[str, Any], shown: str) -> None:
    assert pod_status(make_pod(status, **meta)) == shown


def test_pod_row_and_columns() -> None:
    pod = make_pod({"phase": "Running", "podIP": "10.0.0.5", "containerStatuses": [
        {"name": "c", "ready": True, "restartCount": 2, "state": {"running": {}},
         "lastState": {"terminated": {"exitCode": 1, "finishedAt": rfc3339(NOW - 90)}}}]},
        creationTimestamp=rfc3339(NOW - 3700))
    out = table(REGISTRY.for_kind("Pod"), [pod], NOW)
    assert [c["name"] for c in out["columnDefinitions"]] == [
        "Name", "Ready", "Status", "Restarts", "Age", "IP", "Node", "Nominated Node",
        "Readiness Gates"]
    assert [c["priority"] for c in out["columnDefinitions"]][4:6] == [0, 1]
    assert out["rows"][0]["cells"] == ["p", "1/1", "Running", "2 (90s ago)", "61m",
                                       "10.0.0.5", "<none>", "<none>", "<none>"]
    assert out["rows"][0]["object"]["kind"] == "PartialObjectMetadata"
    assert "object" not in table(REGISTRY.for_kind("Pod"), [pod], NOW,
                                 include_object="None")["rows"][0]


def test_other_kinds_columns() -> None:
    assert list(columns_of("ReplicationController"))[:5] == [
        "Name", "Desired", "Current", "Ready", "Age"]
    assert list(columns_of("Service"))[:6] == [
        "Name", "Type", "Cluster-IP", "External-IP", "Port(s)", "Age"]
    assert list(columns_of("Node"))[:5] == ["Name", "Status", "Roles", "Age", "Version"]
    node = from_dict(Node, {"metadata": {"name": "n", "labels": {
        "node-role.kubernetes.io/control-plane": ""}},
        "spec": {"unschedulable": True},
        "status": {"conditions": [{"type": "Ready", "status": "True"}],
                   "nodeInfo": {"kubeletVersion": "v1.32.0"}}})
    assert node_status(node) == "Ready,SchedulingDisabled"
    cells = table(REGISTRY.for_kind("Node"), [node], NOW)["rows"][0]["cells"]
    assert cells[:5] == ["n", "Ready,SchedulingDisabled", "control-plane", "<unknown>",
                         "v1.32.0"]


@pytest.mark.parametrize(("seconds", "text"), [
    (-5, "<invalid>"), (-1, "0s"), (0, "0s"), (119, "119s"), (120, "2m"), (125, "2m5s"),
    (600, "10m"), (3 * 3600, "3h"), (7 * 3600 + 60, "7h1m"), (30 * 3600, "30h"),
    (3 * 86400, "3d"), (3 * 86400 + 3600, "3d1h"), (20 * 86400, "20d"),
    (3 * 365 * 86400, "3y"), (9 * 365 * 86400, "9y"),
])
def test_human_duration(seconds: float, text: str) -> None:
    assert human_duration(seconds) == text
