"""The endpoints controller: each Service's Endpoints are exactly its ready, matching pods.

Where it sits: ``kstate/control`` — a pure reconciler run by the controller manager and by
the model checker. The proxy (``kstate/proxy``) routes only to ``addresses``; pods that
match but are not ready go to ``notReadyAddresses``; pods being deleted leave at once, so
no traffic is sent to a pod shutting down (unless the Service publishes not-ready
addresses, as Kubernetes allows).

Idempotent by construction: the desired Endpoints are computed from the Service and the
pods alone and compared with the current object (an address names its pod by name and
uid, as Kubernetes' controller writes it — not by resourceVersion, so a pod status write
that moves no address rewrites nothing); a write is a compare-and-swap on the
current resourceVersion, so a conflicting update is retried from a fresh cache instead of
leaving stale addresses behind.

Firing the Service machine (``endpoints_ready`` / ``endpoints_gone``) before writing
keeps the Service's visible state (NoEndpoints / Active) a legal lifecycle move.
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs

from kstate.api.frozen import FrozenDict
from kstate.api.helpers import selector_matches
from kstate.api.lifecycle import fire, object_name, service_state
from kstate.api.meta import ObjectMeta, ObjectReference
from kstate.api.objects import (
    EndpointAddress,
    EndpointPort,
    Endpoints,
    EndpointSubset,
    Pod,
    Service,
    ServicePort,
)
from kstate.control.commands import Command, Create, Delete, Update
from kstate.control.pods import is_ready


@attrs.frozen
class EndpointsView:
    """One Service key: the Service (``None`` once deleted), its namespace's pods and its
    current Endpoints (``None`` if not created yet), all from the cache."""

    namespace: str
    name: str
    service: Service | None
    pods: tuple[Pod, ...]
    endpoints: Endpoints | None


def reconcile(view: EndpointsView, now: float) -> list[Command]:
    """Commands that make the Endpoints match the Service's pods."""
    service, current = view.service, view.endpoints
    if service is None or service.metadata.deletion_timestamp:
        if current is None:
            return []
        return [Delete("Endpoints", view.namespace, view.name, uid=current.metadata.uid)]
    if not service.spec.selector:
        return []  # selector-less Services have hand-managed Endpoints, as in Kubernetes
    subsets = desired_subsets(service, view.pods)
    if current is not None and current.subsets == subsets and \
            current.metadata.labels == service.metadata.labels:
        return []
    desired = Endpoints(
        metadata=ObjectMeta(name=view.name, namespace=view.namespace,
                            labels=service.metadata.labels),
        subsets=subsets,
    )
    _move(service, current, desired)
    if current is None:
        return [Create(desired)]
    meta = attrs.evolve(current.metadata, labels=service.metadata.labels)
    return [Update(attrs.evolve(current, metadata=meta, subsets=subsets))]


def desired_subsets(service: Service, pods: Iterable[Pod]) -> tuple[EndpointSubset, ...]:
    """Addresses grouped by identical resolved port sets (Kubernetes' RepackSubsets)."""
    publish = service.spec.publish_not_ready_addresses
    groups: dict[tuple[EndpointPort, ...], tuple[list[EndpointAddress], list[EndpointAddress]]] = {}
    for pod in pods:
        if not _serves(service, pod, publish):
            continue
        ports = tuple(sorted(
            (p for p in (_resolve(sp, pod) for sp in service.spec.ports) if p is not None),
            key=lambda p: (p.name, p.port, p.protocol),
        ))
        if not ports and service.spec.ports:
            continue
        address = EndpointAddress(
            ip=pod.status.pod_ip, node_name=pod.spec.node_name,
            target_ref=target_ref(pod),
        )
        ready, not_ready = groups.setdefault(ports, ([], []))
        (ready if publish or is_ready(pod) else not_ready).append(address)
    subsets = [
        EndpointSubset(
            addresses=tuple(sorted(ready, key=address_order)),
            not_ready_addresses=tuple(sorted(not_ready, key=address_order)),
            ports=ports,
        )
        for ports, (ready, not_ready) in groups.items()
    ]
    return tuple(sorted(subsets, key=lambda s: [(p.name, p.port) for p in s.ports]))


def _serves(service: Service, pod: Pod, publish_not_ready: bool) -> bool:
    if pod.metadata.namespace != service.metadata.namespace or not pod.status.pod_ip:
        return False
    if not pod.spec.node_name or pod.status.phase in ("Succeeded", "Failed"):
        return False
    if pod.metadata.deletion_timestamp and not publish_not_ready:
        return False
    return selector_matches(service.spec.selector, pod.metadata.labels)


def _resolve(port: ServicePort, pod: Pod) -> EndpointPort | None:
    """The pod's port for a service port: a number as is, a name looked up in the pod's
    container ports (same protocol), ``None`` when the pod has no such named port."""
    protocol = port.protocol or "TCP"
    target = port.target_port if port.target_port not in (None, "", 0) else port.port
    if isinstance(target, int):
        return EndpointPort(name=port.name, port=target, protocol=protocol)
    for container in pod.spec.containers:
        for cp in container.ports:
            if cp.name == target and (cp.protocol or "TCP") == protocol:
                return EndpointPort(name=port.name, port=cp.container_port, protocol=protocol)
    return None


def target_ref(pod: Pod) -> ObjectReference:
    """An address's reference to its pod as Kubernetes' endpoints controller writes it:
    kind, namespace, name and uid — no resourceVersion, so a pod update that leaves the
    address as it was (a status heartbeat, a restart count) does not rewrite the
    Endpoints."""
    meta = pod.metadata
    return ObjectReference(kind="Pod", namespace=meta.namespace, name=meta.name, uid=meta.uid)


def address_order(a: EndpointAddress) -> tuple[str, str]:
    """The order of a subset's addresses: by IP, then pod name (the model's nodes reuse
    IPs; its symmetry re-sorts renamed pods' addresses with this)."""
    return (a.ip, a.target_ref.name if a.target_ref else "")


def _move(service: Service, before: Endpoints | None, after: Endpoints) -> None:
    """Fire the Service machine when the write changes NoEndpoints <-> Active."""
    old, new = service_state(service, before), service_state(service, after)
    if old != new:
        trigger = "endpoints_ready" if new == "Active" else "endpoints_gone"
        fire("service", old, trigger, obj=object_name(service))


def pod_event(old: Pod | None, new: Pod | None, services: Iterable[Service]) -> set[str]:
    """Service keys to requeue for a pod change: every Service selecting it before or after."""
    keys: set[str] = set()
    label_sets: list[FrozenDict[str, str]] = [
        p.metadata.labels for p in (old, new) if p is not None
    ]
    current = new if new is not None else old
    assert current is not None
    for svc in services:
        if svc.metadata.namespace != current.metadata.namespace or not svc.spec.selector:
            continue
        if any(selector_matches(svc.spec.selector, labels) for labels in label_sets):
            keys.add(f"{svc.metadata.namespace}/{svc.metadata.name}")
    return keys


__all__ = ["EndpointsView", "address_order", "desired_subsets", "pod_event", "reconcile"]
