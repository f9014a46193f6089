"""Builders of nodes and pods for the scheduler tests (no tests here).

Kept beside the scheduler tests (``tests/control/objects.py`` is shared by every control
test); objects are built from Kubernetes JSON through the codec and defaulting, so they
look exactly like what the informers would hand the scheduler.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from kstate.api.codec import from_dict
from kstate.api.defaults import default
from kstate.api.objects import Node, Pod
from kstate.clock import rfc3339
from kstate.control.scheduler import (
    DEFAULTS,
    ClusterSnapshot,
    Decision,
    SchedulerSettings,
    SchedulingView,
    decide,
)

T0 = 1_700_000_000.0


def node(name: str, *, cpu: str | None = "4", memory: str | None = "32Gi",
         pods: str | None = "110", labels: dict[str, str] | None = None,
         taints: list[dict[str, str]] | None = None, unschedulable: bool = False,
         deleting: bool = False, ready: bool | None = True) -> Node:
    """A node; ``cpu``/``memory``/``pods`` None leaves that allocatable unreported."""
    allocatable = {k: v for k, v in (("cpu", cpu), ("memory", memory), ("pods", pods))
                   if v is not None}
    meta: dict[str, Any] = {"name": name, "uid": f"uid-{name}",
                            "labels": {"kubernetes.io/hostname": name, **(labels or {})}}
    if deleting:
        meta["deletionTimestamp"] = rfc3339(T0)
    status: dict[str, Any] = {"allocatable": allocatable, "capacity": allocatable}
    if ready is not None:
        status["conditions"] = [{"type": "Ready", "status": "True" if ready else "False"}]
    spec: dict[str, Any] = {"taints": taints or []}
    if unschedulable:
        spec["unschedulable"] = True
    return from_dict(Node, {"apiVersion": "v1", "kind": "Node", "metadata": meta,
                            "spec": spec, "status": status})


def pod(name: str, *, cpu: str | None = None, memory: str | None = None,
        node_name: str = "", owner: str = "", host_ports: Sequence[int | dict[str, Any]] = (),
        tolerations: list[dict[str, Any]] | None = None,
        node_selector: dict[str, str] | None = None,
        terms: list[dict[str, Any]] | None = None, phase: str = "",
        deleting: bool = False, scheduler: str = "", priority: int | None = None,
        containers: int = 1, uid: str = "") -> Pod:
    """A pod; ``terms`` are required node-affinity ``nodeSelectorTerms``; ``host_ports``
    are ints (TCP on all addresses) or ContainerPort dicts."""
    requests = {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v is not None}
    ports = [{"containerPort": 1000 + i, "hostPort": p} if isinstance(p, int)
             else {"containerPort": 1000 + i, **p} for i, p in enumerate(host_ports)]
    spec: dict[str, Any] = {
        "containers": [
            {"name": f"c{i}", "image": "img:1", "resources": {"requests": requests},
             "ports": ports if i == 0 else []}
            for i in range(containers)
        ],
        "tolerations": tolerations or [],
        "nodeSelector": node_selector or {},
    }
    if node_name:
        spec["nodeName"] = node_name
    if scheduler:
        spec["schedulerName"] = scheduler
    if priority is not None:
        spec["priority"] = priority
    if terms is not None:
        spec["affinity"] = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": terms}}}
    meta: dict[str, Any] = {"name": name, "namespace": "default", "uid": uid or f"uid-{name}",
                            "resourceVersion": "7", "creationTimestamp": rfc3339(T0)}
    if owner:
        meta["ownerReferences"] = [{"apiVersion": "v1", "kind": "ReplicationController",
                                    "name": owner, "uid": f"uid-{owner}", "controller": True}]
    if deleting:
        meta["deletionTimestamp"] = rfc3339(T0 + 30)
    status: dict[str, Any] = {"phase": phase} if phase else {}
    return default(from_dict(Pod, {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
                                   "spec": spec, "status": status}))


def taint(key: str, value: str = "", effect: str = "NoSchedule") -> dict[str, str]:
    return {"key": key, "value": value, "effect": effect}


def decide_on(p: Pod, nodes: Sequence[Node], pods: Sequence[Pod] = (),
              settings: SchedulerSettings = DEFAULTS, **kwargs: Any) -> Decision:
    """The decision for ``p`` on a fresh snapshot of ``nodes`` and ``pods``."""
    return decide(SchedulingView(p, ClusterSnapshot.build(nodes, pods, **kwargs)), settings)


BOTH = (SchedulerSettings(vectorise_from=sys.maxsize), SchedulerSettings(vectorise_from=0))
