"""How a container reaches a Service: the pod-facing address, pod ports, and the
``<NAME>_SERVICE_HOST`` / ``_PORT`` variables the node agent injects.

Where it sits: ``kstate/control``, shared by the service proxy (which allocates and
listens) and the node agent (which injects the variables) — pure functions only::

    Service (ClusterIP 127.x, unreachable from a container's own network namespace)
      -> assign_pod_ports(...)  the proxy records a pod port per TCP port on the Service
      -> ServiceProxy listens on <gateway>:<pod port>
      -> service_env(...)       the node agent injects <gateway>/<pod port> into containers

Why: ClusterIPs live in ``127.96.0.0/12`` so a host user can connect without any network
setup, but inside a container ``127/8`` is the container's own loopback. The one host
address every container reaches is its bridge's gateway, so Services are offered to pods
there. The gateway is a single address shared by every Service, so each Service port gets
its own **pod port**, allocated once by the proxy from ``20000-29999`` (below the NodePort
range and the kernel's ephemeral range) and recorded on the Service in the annotation
``proxy.kstate.io/pod-ports`` (JSON, service port -> pod port, e.g. ``{"80": 20417}``).

Recording it in the store is what makes it correct: the pod port is unique cluster-wide,
stable for the Service's life (env vars are frozen into running containers), the same on
every node, and survives a restart of any component — the same reasons the ClusterIP
itself is stored. Alternatives rejected: listening on ``gateway:<service port>`` collides
as soon as two Services share a port (two Redis services on 6379: the younger's clients
would silently reach the older); a port derived from a hash collides by chance and then
moves when the older Service goes; DNAT rules need host network configuration.

The contract for the node agent (Kubernetes' kubelet ``envvars.go`` with the ClusterIP
replaced by the gateway and each port by its pod port) is :func:`service_env`.

>>> from kstate.api.objects import Service, ServicePort, ServiceSpec
>>> from kstate.api.meta import ObjectMeta
>>> from kstate.api.frozen import FrozenDict
>>> recorded = FrozenDict({POD_PORTS_ANNOTATION: '{"6379": 20417}'})
>>> svc = Service(metadata=ObjectMeta(name="redis-master", annotations=recorded),
...               spec=ServiceSpec(cluster_ip="127.96.0.9", ports=(ServicePort(port=6379),)))
>>> dict(service_env([svc], "172.18.0.1"))["REDIS_MASTER_SERVICE_PORT"]
'20417'
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable, Mapping

import attrs

from kstate.api.lifecycle import service_state
from kstate.api.objects import Service

POD_PORTS_ANNOTATION = "proxy.kstate.io/pod-ports"
DEFAULT_POD_PORT_RANGE = (20000, 29999)


@attrs.frozen(order=True)
class PortRef:
    """One port of one Service: ``namespace/name`` plus the port's name (``""`` for the
    single unnamed port Kubernetes allows)."""

    namespace: str
    name: str
    port: str = ""

    @property
    def service(self) -> str:
        return f"{self.namespace}/{self.name}"

    def __str__(self) -> str:
        return f"{self.service}:{self.port}" if self.port else self.service


def service_age(service: Service) -> tuple[str, str, str]:
    """Oldest first: creation time (RFC 3339 sorts as text), then namespace and name so
    same-second ties break the same way in every proxy."""
    meta = service.metadata
    return (meta.creation_timestamp, meta.namespace, meta.name)


def proxied(service: Service) -> bool:
    """Whether a Service gets listeners at all: a virtual IP allocated, not deleted."""
    spec = service.spec
    if spec.type == "ExternalName" or spec.cluster_ip in ("", "None"):
        return False  # headless or not yet allocated: nothing to listen on
    return service_state(service) != "Deleting"


def read_pod_ports(service: Service) -> dict[int, int]:
    """The recorded pod ports (service port -> pod port); junk entries are ignored, so a
    hand-edited annotation can only lose an allocation, never break the proxy."""
    raw = service.metadata.annotations.get(POD_PORTS_ANNOTATION)
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        return {}
    if not isinstance(data, dict):
        return {}
    out: dict[int, int] = {}
    for key, value in data.items():
        if isinstance(key, str) and key.isdigit() and isinstance(value, int) \
                and not isinstance(value, bool) and 1 <= value <= 65535:
            out[int(key)] = value
    return out


def format_pod_ports(ports: Mapping[int, int]) -> str:
    """The annotation value: compact JSON, keys in port order."""
    return json.dumps({str(p): ports[p] for p in sorted(ports)}, separators=(",", ":"))


def _tcp_ports(service: Service) -> list[int]:
    return [p.port for p in service.spec.ports if (p.protocol or "TCP") == "TCP"]


def assign_pod_ports(
    services: Iterable[Service],
    port_range: tuple[int, int] = DEFAULT_POD_PORT_RANGE,
    remembered: Mapping[str, Mapping[int, int]] | None = None,
) -> dict[tuple[str, str], dict[int, int]]:
    """The pod ports every proxied Service should have recorded, by ``(namespace, name)``.

    Recorded ports are kept (oldest Service first, so of two Services claiming one port
    the younger is moved); ``remembered`` (by uid) restores an allocation a client's PUT
    dropped from the annotation. New ports start at a hash of the Service's uid and port
    and probe upwards, so the result is deterministic and new allocations never take a
    port an existing Service holds. A port is missing from the result only when the range
    is full.
    """
    remembered = remembered or {}
    lo, hi = port_range
    size = hi - lo + 1
    ordered = [s for s in sorted(services, key=service_age) if proxied(s)]
    taken: set[int] = set()
    result: dict[tuple[str, str], dict[int, int]] = {}
    missing: list[tuple[Service, int]] = []
    for svc in ordered:
        meta = svc.metadata
        recorded, memory = read_pod_ports(svc), remembered.get(meta.uid, {})
        want: dict[int, int] = {}
        for port in _tcp_ports(svc):
            for candidate in (recorded.get(port), memory.get(port)):
                if candidate is not None and lo <= candidate <= hi and candidate not in taken:
                    want[port] = candidate
                    taken.add(candidate)
                    break
            else:
                missing.append((svc, port))
        result[(meta.namespace, meta.name)] = want
    for svc, port in missing:
        meta = svc.metadata
        seed = f"{meta.uid or meta.namespace + '/' + meta.name}/{port}".encode()
        start = zlib.crc32(seed) % size
        for step in range(size):
            candidate = lo + (start + step) % size
            if candidate not in taken:
                result[(meta.namespace, meta.name)][port] = candidate
                taken.add(candidate)
                break
    return result


def pod_port_refs(
    services: Iterable[Service],
    assignment: Mapping[tuple[str, str], Mapping[int, int]] | None = None,
) -> dict[PortRef, int]:
    """The pod port of every proxied TCP Service port, as ``compute_plan`` wants it: from
    ``assignment`` (an ``assign_pod_ports`` result: what is recorded or being recorded)
    or else from the annotations — what the node agent reads."""
    out: dict[PortRef, int] = {}
    for svc in services:
        if not proxied(svc):
            continue
        key = (svc.metadata.namespace, svc.metadata.name)
        recorded = assignment.get(key, {}) if assignment is not None else read_pod_ports(svc)
        for sp in svc.spec.ports:
            if (sp.protocol or "TCP") == "TCP" and sp.port in recorded:
                out[PortRef(svc.metadata.namespace, svc.metadata.name, sp.name)] = \
                    recorded[sp.port]
    return out


def env_name(name: str) -> str:
    """Kubernetes' ``makeEnvVariableName``: upper case, ``-`` -> ``_``."""
    return name.upper().replace("-", "_")


def service_env(services: Iterable[Service], host: str) -> tuple[tuple[str, str], ...]:
    """The variables a container gets for ``services`` (the pod's namespace's Services
    that exist when the container is created), with ``host`` = the pod-facing address.

    Per Service with a recorded pod port (proxied TCP ports only; Services without one —
    headless, ExternalName, UDP-only, or not yet allocated — are skipped, as Kubernetes
    skips Services without a ClusterIP), in the order of ``services``::

        <NAME>_SERVICE_HOST=<host>
        <NAME>_SERVICE_PORT=<pod port of the first proxied port>
        <NAME>_SERVICE_PORT_<PORT NAME>=<pod port>          (named ports)
        <NAME>_PORT=tcp://<host>:<pod port of the first proxied port>
        <NAME>_PORT_<service port>_TCP=tcp://<host>:<pod port>
        <NAME>_PORT_<service port>_TCP_PROTO=tcp
        <NAME>_PORT_<service port>_TCP_PORT=<pod port>
        <NAME>_PORT_<service port>_TCP_ADDR=<host>

    Variable *names* keep the Service's own port (``REDIS_PORT_6379_TCP``), values carry
    the pod port, so programs that look variables up by the well-known port still work.
    """
    env: list[tuple[str, str]] = []
    for svc in services:
        if not proxied(svc):
            continue
        recorded = read_pod_ports(svc)
        ports = [(sp, recorded[sp.port]) for sp in svc.spec.ports
                 if (sp.protocol or "TCP") == "TCP" and sp.port in recorded]
        if not ports:
            continue
        prefix = env_name(svc.metadata.name)
        first = ports[0][1]
        env.append((f"{prefix}_SERVICE_HOST", host))
        env.append((f"{prefix}_SERVICE_PORT", str(first)))
        env.extend((f"{prefix}_SERVICE_PORT_{env_name(sp.name)}", str(pod_port))
                   for sp, pod_port in ports if sp.name)
        env.append((f"{prefix}_PORT", f"tcp://{host}:{first}"))
        for sp, pod_port in ports:
            link = f"{prefix}_PORT_{sp.port}_TCP"
            env += [(link, f"tcp://{host}:{pod_port}"), (f"{link}_PROTO", "tcp"),
                    (f"{link}_PORT", str(pod_port)), (f"{link}_ADDR", host)]
    return tuple(env)


__all__ = [
    "DEFAULT_POD_PORT_RANGE",
    "POD_PORTS_ANNOTATION",
    "assign_pod_ports",
    "env_name",
    "format_pod_ports",
    "pod_port_refs",
    "read_pod_ports",
    "service_env",
]
