"""``kubectl get`` output: the server-side ``Table`` format, column for column.

Where it sits: the HTTP layer answers a request whose ``Accept`` asks for
``application/json;as=Table;v=v1;g=meta.k8s.io`` (what ``kubectl get`` sends) with
rows built here, for lists, single objects and watch events alike.

Why it exists: kubectl prints whatever columns the server returns, so the familiar
``NAME READY STATUS RESTARTS AGE`` exists only if the server computes it. The printers
follow Kubernetes' own (``pkg/printers/internalversion``): the same column names,
priorities (priority 1 = shown by ``-o wide``), the pod STATUS rules (Terminating,
CrashLoopBackOff, ContainerCreating, Completed, Error, ``Init:``, ``Signal:9``, ...) and
``AGE`` in Kubernetes' ``HumanDuration`` format, computed from the server's clock.

>>> human_duration(59), human_duration(150), human_duration(3 * 3600 + 120)
('59s', '2m30s', '3h2m')
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from kstate.api.codec import to_dict
from kstate.api.helpers import get_condition
from kstate.api.meta import KubeObject
from kstate.api.objects import (
    Endpoints,
    Event,
    Lease,
    Namespace,
    Node,
    Pod,
    ReplicationController,
    Service,
)
from kstate.api.registry import KindInfo
from kstate.clock import parse_rfc3339

TABLE_API_VERSION = "meta.k8s.io/v1"

Column = dict[str, Any]
Cells = list[Any]


def human_duration(seconds: float) -> str:
    """Kubernetes' ``duration.HumanDuration`` (what the AGE column shows)."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        rest = s % 60
        return f"{minutes}m{rest}s" if rest else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = s // 3600
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h{rest}m" if rest else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rest = hours % 24
        return f"{hours // 24}d{rest}h" if rest else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = (hours // 24) % 365
        years = hours // 24 // 365
        return f"{years}y{days}d" if days else f"{years}y"
    return f"{hours // 24 // 365}y"


def _since(timestamp: str, now: float) -> str:
    if not timestamp:
        return "<unknown>"
    try:
        return human_duration(now - parse_rfc3339(timestamp))
    except ValueError:
        return "<unknown>"


def _col(name: str, description: str, *, type_: str = "string", fmt: str = "",
         priority: int = 0) -> Column:
    return {"name": name, "type": type_, "format": fmt, "description": description,
            "priority": priority}


NAME = _col("Name", "Name must be unique within a namespace.", fmt="name")
AGE = _col("Age", "CreationTimestamp is a timestamp representing the server time when "
                  "this object was created.")


def _labels(selector: Any) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(selector.items())) or "<none>"


# ------------------------------------------------------------------ pods

POD_COLUMNS = [
    NAME,
    _col("Ready", "The aggregate readiness state of this pod for accepting traffic."),
    _col("Status", "The aggregate status of the containers in this pod."),
    _col("Restarts", "The number of times the containers in this pod have been restarted "
                     "and when the last container in this pod has restarted."),
    AGE,
    _col("IP", "podIP address allocated to the pod.", priority=1),
    _col("Node", "NodeName is the node the pod is scheduled to.", priority=1),
    _col("Nominated Node", "nominatedNodeName is set when this pod preempts other pods.",
         priority=1),
    _col("Readiness Gates", "If specified, all readiness gates will be evaluated for pod "
                            "readiness.", priority=1),
]


def pod_status(pod: Pod) -> str:
    """The STATUS column: kubectl's rules, in its order of precedence."""
    reason = pod.status.reason or pod.status.phase
    for cond in pod.status.conditions:
        if cond.type == "PodScheduled" and cond.reason == "SchedulingGated":
            reason = "SchedulingGated"
    init_reason = _init_status(pod)
    if init_reason is not None:
        reason = init_reason
    else:
        has_running = False
        for cs in reversed(pod.status.container_statuses):
            state = cs.state
            if state.waiting is not None and state.waiting.reason:
                reason = state.waiting.reason
            elif state.terminated is not None and state.terminated.reason:
                reason = state.terminated.reason
            elif state.terminated is not None:
                t = state.terminated
                reason = f"Signal:{t.signal}" if t.signal else f"ExitCode:{t.exit_code}"
            elif cs.ready and state.running is not None:
                has_running = True
        if reason == "Completed" and has_running:
            ready = get_condition(pod.status.conditions, "Ready")
            reason = "Running" if ready is not None and ready.status == "True" else "NotReady"
    if pod.metadata.deletion_timestamp and pod.status.reason == "NodeLost":
        reason = "Unknown"
    elif pod.metadata.deletion_timestamp and pod.status.phase not in ("Succeeded", "Failed"):
        reason = "Terminating"
    return reason


def _init_status(pod: Pod) -> str | None:
    """``Init:N/M``, ``Init:<reason>`` while init containers run (they are unmodelled:
    read from the raw status)."""
    statuses = pod.status.extra.get("initContainerStatuses") or ()
    specs = pod.spec.extra.get("initContainers") or ()
    if not statuses:
        return None
    initialized = get_condition(pod.status.conditions, "Initialized")
    if initialized is not None and initialized.status == "True":
        return None
    total = len(specs)
    for i, cs in enumerate(statuses):
        state = cs.get("state") or {}
        terminated, waiting = state.get("terminated"), state.get("waiting")
        if terminated is not None and terminated.get("exitCode") == 0:
            continue
        if terminated is not None:
            why = terminated.get("reason") or (
                f"Signal:{terminated.get('signal')}" if terminated.get("signal")
                else f"ExitCode:{terminated.get('exitCode')}")
            return f"Init:{why}"
        if waiting is not None and waiting.get("reason") not in (None, "", "PodInitializing"):
            return f"Init:{waiting.get('reason')}"
        return f"Init:{i}/{total}"
    return None


def _pod_cells(pod: Pod, now: float) -> Cells:
    total = len(pod.spec.containers)
    ready = sum(1 for cs in pod.status.container_statuses
                if cs.ready and cs.state.running is not None)
    restarts = sum(cs.restart_count for cs in pod.status.container_statuses)
    last = max((cs.last_state.terminated.finished_at for cs in pod.status.container_statuses
                if cs.last_state.terminated is not None
                and cs.last_state.terminated.finished_at), default="")
    restarts_text = f"{restarts} ({_since(last, now)} ago)" if restarts and last else str(
        restarts)
    gates = pod.spec.extra.get("readinessGates") or ()
    gates_text = "<none>"
    if gates:
        true = sum(1 for g in gates for c in pod.status.conditions
                   if c.type == g.get("conditionType") and c.status == "True")
        gates_text = f"{true}/{len(gates)}"
    ip = pod.status.pod_ips[0].ip if pod.status.pod_ips else pod.status.pod_ip
    return [pod.metadata.name, f"{ready}/{total}", pod_status(pod), restarts_text,
            _since(pod.metadata.creation_timestamp, now), ip or "<none>",
            pod.spec.node_name or "<none>",
            pod.status.extra.get("nominatedNodeName") or "<none>", gates_text]


# ------------------------------------------------------------------ replication controllers

RC_COLUMNS = [
    NAME,
    _col("Desired", "Replicas is the number of desired replicas.", type_="integer"),
    _col("Current", "Replicas is the most recently observed number of replicas.",
         type_="integer"),
    _col("Ready", "The number of ready replicas for this replication controller.",
         type_="integer"),
    AGE,
    _col("Containers", "Names of each container in the template.", priority=1),
    _col("Images", "Images referenced by each container in the template.", priority=1),
    _col("Selector", "Selector is a label query over pods that should match the Replicas "
                     "count.", priority=1),
]


def _rc_cells(rc: ReplicationController, now: float) -> Cells:
    containers = rc.spec.template.spec.containers if rc.spec.template else ()
    return [rc.metadata.name, rc.spec.replicas or 0, rc.status.replicas,
            rc.status.ready_replicas, _since(rc.metadata.creation_timestamp, now),
            ",".join(c.name for c in containers), ",".join(c.image for c in containers),
            _labels(rc.spec.selector)]


# ------------------------------------------------------------------ services and endpoints

SERVICE_COLUMNS = [
    NAME,
    _col("Type", "type determines how the Service is exposed."),
    _col("Cluster-IP", "clusterIP is the IP address of the service."),
    _col("External-IP", "externalIPs is a list of IP addresses for which nodes in the "
                        "cluster will also accept traffic for this service."),
    _col("Port(s)", "The list of ports that are exposed by this service."),
    AGE,
    _col("Selector", "Route service traffic to pods with label keys and values matching "
                     "this selector.", priority=1),
]


def _external_ip(svc: Service) -> str:
    spec = svc.spec
    external = list(spec.extra.get("externalIPs") or ())
    if spec.type == "ExternalName":
        return str(spec.extra.get("externalName") or "<none>")
    if spec.type == "LoadBalancer":
        ingress = (svc.status.extra.get("loadBalancer") or {}).get("ingress") or ()
        ips = [i.get("ip") or i.get("hostname") for i in ingress]
        found = [x for x in [*ips, *external] if x]
        return ",".join(found) if found else "<pending>"
    return ",".join(external) if external else "<none>"


def _service_cells(svc: Service, now: float) -> Cells:
    spec = svc.spec
    ports = ",".join(
        (f"{p.port}:{p.node_port}/{p.protocol or 'TCP'}" if p.node_port
         else f"{p.port}/{p.protocol or 'TCP'}") for p in spec.ports) or "<none>"
    cluster_ip = spec.cluster_ips[0] if spec.cluster_ips else (spec.cluster_ip or "<none>")
    return [svc.metadata.name, spec.type or "ClusterIP", cluster_ip, _external_ip(svc), ports,
            _since(svc.metadata.creation_timestamp, now), _labels(spec.selector)]


ENDPOINTS_COLUMNS = [
    NAME,
    _col("Endpoints", "Endpoints is the list of endpoints in the resource."),
    AGE,
]


def _endpoints_cells(ep: Endpoints, now: float) -> Cells:
    pairs: list[str] = []
    for subset in ep.subsets:
        for addr in subset.addresses:
            if not subset.ports:
                pairs.append(addr.ip)
            for port in subset.ports:
                pairs.append(f"{addr.ip}:{port.port}")
    text = ",".join(pairs[:3]) if pairs else "<none>"
    if len(pairs) > 3:
        text += f" + {len(pairs) - 3} more..."
    return [ep.metadata.name, text, _since(ep.metadata.creation_timestamp, now)]


# ------------------------------------------------------------------ nodes and namespaces

NODE_COLUMNS = [
    NAME,
    _col("Status", "The status of the node"),
    _col("Roles", "The roles of the node"),
    AGE,
    _col("Version", "Kubelet Version reported by the node."),
    _col("Internal-IP", "List of addresses reachable to the node.", priority=1),
    _col("External-IP", "List of addresses reachable to the node.", priority=1),
    _col("OS-Image", "OS Image reported by the node from /etc/os-release.", priority=1),
    _col("Kernel-Version", "Kernel Version reported by the node.", priority=1),
    _col("Container-Runtime", "ContainerRuntime Version reported by the node.", priority=1),
]


def node_status(node: Node) -> str:
    ready = get_condition(node.status.conditions, "Ready")
    parts = ["Unknown" if ready is None else ("Ready" if ready.status == "True" else "NotReady")]
    if node.spec.unschedulable:
        parts.append("SchedulingDisabled")
    return ",".join(parts)


def _node_roles(node: Node) -> str:
    roles = set()
    for key, value in node.metadata.labels.items():
        if key.startswith("node-role.kubernetes.io/"):
            role = key.partition("/")[2]
            if role:
                roles.add(role)
        elif key == "kubernetes.io/role" and value:
            roles.add(value)
    return ",".join(sorted(roles)) or "<none>"


def _address(node: Node, kind: str) -> str:
    return next((a.address for a in node.status.addresses if a.type == kind), "<none>")


def _node_cells(node: Node, now: float) -> Cells:
    info = node.status.node_info
    return [node.metadata.name, node_status(node), _node_roles(node),
            _since(node.metadata.creation_timestamp, now), info.kubelet_version,
            _address(node, "InternalIP"), _address(node, "ExternalIP"),
            info.extra.get("osImage") or "<unknown>",
            info.extra.get("kernelVersion") or "<unknown>",
            info.container_runtime_version or "<unknown>"]


NAMESPACE_COLUMNS = [
    NAME,
    _col("Status", "The status of the namespace"),
    AGE,
]


def _namespace_cells(ns: Namespace, now: float) -> Cells:
    return [ns.metadata.name, ns.status.phase or "Active",
            _since(ns.metadata.creation_timestamp, now)]


# ------------------------------------------------------------------ events and leases

EVENT_COLUMNS = [
    _col("Last Seen", "The time at which the most recent occurrence of this event was "
                      "recorded."),
    _col("Type", "Type of this event (Normal, Warning), new types could be added in the "
                 "future"),
    _col("Reason", "This should be a short, machine understandable string that gives the "
                   "reason for the transition into the object's current status."),
    _col("Object", "The object that this event is about."),
    _col("Subobject", "The field of the object the event is about.", priority=1),
    _col("Source", "The component reporting this event.", priority=1),
    _col("Message", "A human-readable description of the status of this operation."),
    _col("First Seen", "The time at which the event was first recorded.", priority=1),
    _col("Count", "The number of times this event has occurred.", priority=1),
    _col("Name", "Name must be unique within a namespace.", fmt="name", priority=1),
]


def _event_cells(ev: Event, now: float) -> Cells:
    last = ev.last_timestamp or ev.event_time or ev.metadata.creation_timestamp
    first = ev.first_timestamp or ev.event_time or ev.metadata.creation_timestamp
    last_seen = _since(last, now)
    if ev.count > 1:
        last_seen = f"{last_seen} (x{ev.count} over {_since(first, now)})"
    ref = ev.involved_object
    source = ev.source.component or ev.reporting_component
    if ev.source.host:
        source = f"{source}, {ev.source.host}"
    return [last_seen, ev.type, ev.reason, f"{ref.kind.lower()}/{ref.name}", ref.field_path,
            source, ev.message.strip(), _since(first, now), ev.count or 1, ev.metadata.name]


LEASE_COLUMNS = [
    NAME,
    _col("Holder", "The holder of the lease."),
    AGE,
]


def _lease_cells(lease: Lease, now: float) -> Cells:
    return [lease.metadata.name, lease.spec.holder_identity,
            _since(lease.metadata.creation_timestamp, now)]


DEFAULT_COLUMNS = [NAME, AGE]


def _default_cells(obj: KubeObject, now: float) -> Cells:
    return [obj.metadata.name, _since(obj.metadata.creation_timestamp, now)]


Printer = tuple[list[Column], Callable[[Any, float], Cells]]

PRINTERS: dict[str, Printer] = {
    "Pod": (POD_COLUMNS, _pod_cells),
    "ReplicationController": (RC_COLUMNS, _rc_cells),
    "Service": (SERVICE_COLUMNS, _service_cells),
    "Endpoints": (ENDPOINTS_COLUMNS, _endpoints_cells),
    "Node": (NODE_COLUMNS, _node_cells),
    "Namespace": (NAMESPACE_COLUMNS, _namespace_cells),
    "Event": (EVENT_COLUMNS, _event_cells),
    "Lease": (LEASE_COLUMNS, _lease_cells),
}


def _partial(obj: KubeObject) -> dict[str, Any]:
    return {"kind": "PartialObjectMetadata", "apiVersion": TABLE_API_VERSION,
            "metadata": to_dict(obj.metadata)}


def table(info: KindInfo, objects: Sequence[KubeObject], now: float, *,
          include_object: str = "Metadata", resource_version: str = "",
          continue_token: str = "", columns: bool = True) -> dict[str, Any]:
    """A ``meta.k8s.io/v1`` Table of ``objects`` (all columns; kubectl hides priority 1
    unless ``-o wide``). ``include_object``: ``None``, ``Metadata`` (the default, what
    kubectl asks for) or ``Object``. ``columns=False`` omits the definitions (watch
    events after the first, as Kubernetes does)."""
    cols, cells = PRINTERS.get(info.kind, (DEFAULT_COLUMNS, _default_cells))
    rows = []
    for obj in objects:
        row: dict[str, Any] = {"cells": cells(obj, now)}
        if include_object == "Object":
            row["object"] = to_dict(obj)
        elif include_object != "None":
            row["object"] = _partial(obj)
        if isinstance(obj, Pod) and obj.status.phase in ("Succeeded", "Failed"):
            row["conditions"] = [{"type": "Completed", "status": "True",
                                  "reason": obj.status.phase, "message": ""}]
        rows.append(row)
    meta: dict[str, Any] = {}
    if resource_version:
        meta["resourceVersion"] = resource_version
    if continue_token:
        meta["continue"] = continue_token
    out: dict[str, Any] = {"kind": "Table", "apiVersion": TABLE_API_VERSION, "metadata": meta}
    out["columnDefinitions"] = cols if columns else None
    out["rows"] = rows
    return out


def columns_of(kind: str) -> Iterable[str]:
    """Column names a kind prints (for docs and tests)."""
    return [c["name"] for c in PRINTERS.get(kind, (DEFAULT_COLUMNS, _default_cells))[0]]


__all__ = ["PRINTERS", "columns_of", "human_duration", "node_status", "pod_status", "table"]
