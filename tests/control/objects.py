"""Small builders of valid objects for the control-layer tests (views in, commands out)."""

from __future__ import annotations

from typing import Any

from kstate.api.codec import from_dict
from kstate.api.defaults import default
from kstate.api.objects import Node, Pod, ReplicationController, Service
from kstate.clock import rfc3339

T0 = 1_700_000_000.0


def rc(name: str = "web", replicas: int = 3, uid: str = "rc-uid", generation: int = 1,
       **status: Any) -> ReplicationController:
    return default(from_dict(ReplicationController, {
        "apiVersion": "v1", "kind": "ReplicationController",
        "metadata": {"name": name, "namespace": "default", "uid": uid,
                     "generation": generation, "resourceVersion": "10",
                     "creationTimestamp": rfc3339(T0)},
        "spec": {"replicas": replicas, "selector": {"app": name},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": "c", "image": "img:1"}]}}},
        "status": status,
    }))


def pod(name: str, *, owner: ReplicationController | None = None, node: str = "",
        phase: str = "", ready: bool | None = None, ready_at: float = T0,
        created: float = T0, restarts: int = 0, labels: dict[str, str] | None = None,
        deleting: bool = False, waiting: str = "") -> Pod:
    meta: dict[str, Any] = {
        "name": name, "namespace": "default", "uid": f"uid-{name}", "resourceVersion": "5",
        "labels": labels if labels is not None
        else {"app": owner.metadata.name if owner else "web"},
        "creationTimestamp": rfc3339(created),
    }
    if owner is not None:
        meta["ownerReferences"] = [{"apiVersion": "v1", "kind": "ReplicationController",
                                    "name": owner.metadata.name, "uid": owner.metadata.uid,
                                    "controller": True, "blockOwnerDeletion": True}]
    if deleting:
        meta["deletionTimestamp"] = rfc3339(created + 30)
        meta["deletionGracePeriodSeconds"] = 30
    status: dict[str, Any] = {}
    if phase:
        status["phase"] = phase
    if ready is not None:
        status["conditions"] = [{"type": "Ready", "status": "True" if ready else "False",
                                 "lastTransitionTime": rfc3339(ready_at)}]
    if restarts or waiting:
        state = {"waiting": {"reason": waiting}} if waiting else {"running": {}}
        status["containerStatuses"] = [{"name": "c", "restartCount": restarts,
                                        "state": state}]
    return default(from_dict(Pod, {
        "apiVersion": "v1", "kind": "Pod", "metadata": meta,
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "img:1"}]},
        "status": status,
    }))


def node(name: str, **fields: Any) -> Node:
    return from_dict(Node, {"apiVersion": "v1", "kind": "Node",
                            "metadata": {"name": name, "uid": f"uid-{name}"}, **fields})


def service(name: str = "web", selector: dict[str, str] | None = None,
            ports: list[dict[str, Any]] | None = None) -> Service:
    return default(from_dict(Service, {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": "default", "uid": f"uid-svc-{name}",
                     "resourceVersion": "3"},
        "spec": {"selector": selector if selector is not None else {"app": name},
                 "clusterIP": "127.96.0.10",
                 "ports": ports or [{"port": 80, "targetPort": 8080}]},
    }))
