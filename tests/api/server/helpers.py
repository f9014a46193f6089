"""Small object builders for the API server tests, the log handler the fuzz runs use,
protobuf bodies damaged byte by byte, and a store that interleaves work into a create."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from hypothesis import strategies as st

from kstate.api import (
    Container,
    ContainerPort,
    Namespace,
    Node,
    NodeCondition,
    NodeStatus,
    ObjectMeta,
    Pod,
    PodSpec,
    PodTemplateSpec,
    ReplicationController,
    ReplicationControllerSpec,
    Service,
    ServicePort,
    ServiceSpec,
    from_dict,
    protobuf,
)
from kstate.api.frozen import FrozenDict
from kstate.api.registry import REGISTRY
from kstate.store import KeyValue
from kstate.store.memory import MemoryBackend

POD = REGISTRY.for_kind("Pod")
RC = REGISTRY.for_kind("ReplicationController")
SVC = REGISTRY.for_kind("Service")
NODE = REGISTRY.for_kind("Node")
NS = REGISTRY.for_kind("Namespace")
EVENT = REGISTRY.for_kind("Event")
LEASE = REGISTRY.for_kind("Lease")
ENDPOINTS = REGISTRY.for_kind("Endpoints")


def pod(name: str = "web", namespace: str = "default", *, labels: dict[str, str] | None = None,
        node: str = "", image: str = "nginx:1.25", **spec: Any) -> Pod:
    return Pod(metadata=ObjectMeta(name=name, namespace=namespace,
                                   labels=FrozenDict(labels or {})),
               spec=PodSpec(containers=(Container(name="c", image=image,
                                                  ports=(ContainerPort(container_port=80),)),),
                            node_name=node, **spec))


def rc(name: str = "web", replicas: int = 2, namespace: str = "default") -> ReplicationController:
    labels = FrozenDict({"app": name})
    return ReplicationController(
        metadata=ObjectMeta(name=name, namespace=namespace),
        spec=ReplicationControllerSpec(
            replicas=replicas, selector=labels,
            template=PodTemplateSpec(metadata=ObjectMeta(labels=labels),
                                     spec=PodSpec(containers=(Container(name="c",
                                                                        image="nginx:1.25"),)))))


def svc(name: str = "web", *, type_: str = "ClusterIP", node_port: int = 0,
        cluster_ip: str = "", namespace: str = "default") -> Service:
    return Service(metadata=ObjectMeta(name=name, namespace=namespace),
                   spec=ServiceSpec(type=type_, cluster_ip=cluster_ip,
                                    selector=FrozenDict({"app": name}),
                                    ports=(ServicePort(port=80, node_port=node_port),)))


def node(name: str = "n1", ready: str = "") -> Node:
    status = NodeStatus(conditions=(NodeCondition(type="Ready", status=ready),)) if ready \
        else NodeStatus()
    return Node(metadata=ObjectMeta(name=name), status=status)


def namespace(name: str) -> Namespace:
    return Namespace(metadata=ObjectMeta(name=name))


def decode_pod(data: dict[str, Any]) -> Pod:
    return from_dict(Pod, data)


class BugLog(logging.Handler):
    """Collects what the server logs at ERROR: its catch-all for a bug (a fuzz run fails
    on any record)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record.getMessage())


@st.composite
def as_protobuf(draw: st.DrawFn, obj: dict[str, Any]) -> bytes | None:
    """``obj`` in protobuf, whole or damaged (cut short, a byte changed, a byte added);
    None if it has a value protobuf cannot carry (it is sent as JSON then)."""
    try:
        body = bytearray(protobuf.encode_object(obj))
    except protobuf.NotRepresentable:
        return None
    damage = draw(st.sampled_from(["none", "none", "cut", "flip", "insert"]))
    at = draw(st.integers(0, len(body) - 1))
    if damage == "cut":
        del body[at:]
    elif damage == "flip":
        body[at] = draw(st.integers(0, 255))
    elif damage == "insert":
        body.insert(at, draw(st.integers(0, 255)))
    return bytes(body)


Hook = Callable[[], Awaitable[None]]


class InterleavingStore(MemoryBackend):
    """A memory store that runs ``hooks[key]`` (once) when ``key`` is about to be created:
    after the API server's admission of the create, before its write."""

    def __init__(self) -> None:
        super().__init__()
        self.hooks: dict[str, Hook] = {}
        self.attempts: dict[str, int] = {}

    async def create(self, key: str, value: bytes, **options: Any) -> KeyValue:
        self.attempts[key] = self.attempts.get(key, 0) + 1
        hook = self.hooks.pop(key, None)
        if hook is not None:
            await hook()
        return await super().create(key, value, **options)
