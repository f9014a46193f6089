"""What the proxy should do, as pure functions: which sockets to listen on, where each
one's traffic may go, and which backend takes the next connection.

Where it sits: the decision half of ``kstate/proxy``::

    Services + Endpoints (informer caches)
      -> compute_plan(...)  -> Plan: listeners + routes     (this module, pure)
      -> ServiceProxy       -> TCP listeners -> pick(...)   (proxy.py, asyncio)
      -> pods

Why it is split this way: everything here is a function of immutable API objects and
explicit state, with no sockets, no clock and no randomness, so the unit tests exercise
it exhaustively without networking and the model checker can reuse exactly the routing
rules the live proxy runs (the architecture's "one definition, three executors").

Rules (Kubernetes' kube-proxy semantics, TCP only):

* A Service gets listeners once its ClusterIP is allocated, and loses them when it is
  deleted (``deletionTimestamp`` or gone): ``ClusterIP:port`` for every TCP port,
  ``<node address>:nodePort`` for NodePort / LoadBalancer services, and
  ``<pod-facing address>:<pod port>`` (see ``podports.py``) for traffic from containers.
  Headless (``clusterIP: None``) and ExternalName services get none.
* Backends are the ready addresses (``subsets[].addresses``, never
  ``notReadyAddresses``) with the target port taken from the Endpoints port of the same
  name. A Service with no ready backend is not Active (``kstate.api.lifecycle``): its
  listeners stay open and refuse each connection (reset), as kube-proxy REJECTs.
* Two listeners may not share an address and port (a wildcard ``0.0.0.0`` listener
  shares every address): the older Service keeps it and the younger's is reported.

>>> from kstate.api.objects import Service, ServicePort, ServiceSpec
>>> from kstate.api.meta import ObjectMeta
>>> svc = Service(metadata=ObjectMeta(name="web", namespace="default"),
...               spec=ServiceSpec(type="NodePort", cluster_ip="127.96.0.5",
...                                ports=(ServicePort(port=80, node_port=30001),)))
>>> sorted(str(listener) for listener in compute_plan([svc], []).listeners)
['0.0.0.0:30001 (node-port default/web)', '127.96.0.5:80 (cluster-ip default/web)']
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Literal

import attrs

from kstate.api.frozen import EMPTY, FrozenDict
from kstate.api.objects import Endpoints, Service, ServicePort
from kstate.control.podports import PortRef, proxied, service_age

#: kube-proxy's default ``sessionAffinityConfig.clientIP.timeoutSeconds`` (3 hours).
DEFAULT_AFFINITY_TIMEOUT = 10800.0

WILDCARD = "0.0.0.0"

ListenerKind = Literal["cluster-ip", "node-port", "pod-facing"]

# Who keeps an address:port two listeners want: a ClusterIP is the Service's own address,
# a NodePort was allocated for it, a pod port is the proxy's own choice.
_KIND_RANK: dict[str, int] = {"cluster-ip": 0, "node-port": 1, "pod-facing": 2}


@attrs.frozen(order=True)
class Backend:
    """A pod address traffic may go to."""

    ip: str
    port: int

    def __str__(self) -> str:
        return f"{self.ip}:{self.port}"


@attrs.frozen(order=True)
class Listener:
    """One socket the proxy should listen on, and the Service port it serves."""

    address: str
    port: int
    kind: ListenerKind
    service: PortRef

    @property
    def key(self) -> tuple[str, int]:
        """The socket's identity: a listener keeps its socket while its key is wanted,
        whichever Service port it serves."""
        return (self.address, self.port)

    def __str__(self) -> str:
        return f"{self.address}:{self.port} ({self.kind} {self.service})"


@attrs.frozen
class Route:
    """Where one Service port's connections go."""

    backends: tuple[Backend, ...] = ()
    #: ``sessionAffinity: ClientIP`` timeout in seconds; ``None`` when affinity is off.
    affinity_timeout: float | None = None


@attrs.frozen
class Plan:
    """The proxy's whole desired state for one snapshot of Services and Endpoints."""

    listeners: frozenset[Listener] = frozenset()
    routes: FrozenDict[PortRef, Route] = attrs.field(factory=FrozenDict)
    #: Input the proxy cannot serve (UDP ports, address conflicts), one line each.
    warnings: tuple[str, ...] = ()

    def listeners_of(self, namespace: str, name: str) -> frozenset[Listener]:
        return frozenset(lst for lst in self.listeners
                         if (lst.service.namespace, lst.service.name) == (namespace, name))


def ready_backends(port: ServicePort, endpoints: Endpoints | None) -> tuple[Backend, ...]:
    """The ready addresses of ``endpoints`` for service ``port``, with the target port from
    the Endpoints port of the same name (how the endpoints controller resolved a named
    ``targetPort`` per pod). Order is the Endpoints' order, duplicates dropped."""
    if endpoints is None:
        return ()
    out: dict[Backend, None] = {}
    for subset in endpoints.subsets:
        target = next((p.port for p in subset.ports
                       if p.name == port.name and (p.protocol or "TCP") == "TCP"), None)
        if target is None:
            continue
        for address in subset.addresses:
            out.setdefault(Backend(address.ip, target), None)
    return tuple(out)


def affinity_timeout(service: Service) -> float | None:
    """Seconds a client IP sticks to its backend; ``None`` without ClientIP affinity."""
    spec = service.spec
    if spec.session_affinity != "ClientIP":
        return None
    config = spec.session_affinity_config
    seconds = config.client_ip.timeout_seconds if config and config.client_ip else None
    return float(seconds) if seconds else DEFAULT_AFFINITY_TIMEOUT


def compute_plan(
    services: Iterable[Service],
    endpoints: Iterable[Endpoints],
    *,
    node_address: str = WILDCARD,
    pod_address: str | None = None,
    pod_ports: Mapping[PortRef, int] = EMPTY,
) -> Plan:
    """Listeners and routes for a snapshot. ``node_address`` is where NodePorts listen;
    ``pod_address`` (the pod network's gateway, or ``None``) is where containers reach
    Services, on the port ``pod_ports`` gives each Service port."""
    by_key = {(e.metadata.namespace, e.metadata.name): e for e in endpoints}
    routes: dict[PortRef, Route] = {}
    wanted: list[Listener] = []
    warnings: list[str] = []
    for svc in sorted(services, key=service_age):
        if not proxied(svc):
            continue
        meta, spec = svc.metadata, svc.spec
        eps = by_key.get((meta.namespace, meta.name))
        timeout = affinity_timeout(svc)
        for sp in spec.ports:
            ref = PortRef(meta.namespace, meta.name, sp.name)
            protocol = sp.protocol or "TCP"
            if protocol != "TCP":
                warnings.append(f"service {ref} port {sp.port}/{protocol}: only TCP is "
                                "proxied; this port is ignored")
                continue
            routes[ref] = Route(ready_backends(sp, eps), timeout)
            wanted.append(Listener(spec.cluster_ip, sp.port, "cluster-ip", ref))
            if sp.node_port and spec.type in ("NodePort", "LoadBalancer"):
                wanted.append(Listener(node_address, sp.node_port, "node-port", ref))
            pod_port = pod_ports.get(ref)
            if pod_address and pod_port:
                wanted.append(Listener(pod_address, pod_port, "pod-facing", ref))
    # Stable sort: by kind, and within a kind oldest Service first (the loop's order).
    wanted.sort(key=lambda lst: _KIND_RANK[lst.kind])
    by_port: dict[int, dict[str, Listener]] = {}  # port -> address -> listener
    for lst in wanted:
        at_port = by_port.setdefault(lst.port, {})
        holder = _holder(at_port, lst.address)
        if holder is None:
            at_port[lst.address] = lst
        elif holder.service != lst.service:
            warnings.append(f"{lst.kind} listener {lst.address}:{lst.port} for service "
                            f"{lst.service} is not opened: {holder} holds it")
    listeners = frozenset(lst for at_port in by_port.values() for lst in at_port.values())
    return Plan(listeners, FrozenDict(routes), tuple(warnings))


def _holder(at_port: Mapping[str, Listener], address: str) -> Listener | None:
    """The listener already claiming ``address`` on one port: the same address, or any
    address when either side is the wildcard (the kernel would refuse the bind)."""
    if address == WILDCARD:
        return next(iter(at_port.values()), None)
    return at_port.get(address) or at_port.get(WILDCARD)


# ------------------------------------------------------------------ load balancing


@attrs.frozen
class Sticky:
    """A client IP's backend under ClientIP affinity, and when it last connected."""

    backend: Backend
    last_used: float


@attrs.frozen
class Balancer:
    """Per Service port balancing memory: the round-robin cursor and the affinity table.
    Immutable, so a model checker can hash it into a state."""

    cursor: int = 0
    sticky: FrozenDict[str, Sticky] = attrs.field(factory=FrozenDict)


def pick(
    backends: tuple[Backend, ...],
    client_ip: str,
    state: Balancer,
    now: float,
    *,
    affinity_timeout: float | None = None,
    exclude: frozenset[Backend] = frozenset(),
) -> tuple[Backend | None, Balancer]:
    """The backend for a new connection from ``client_ip`` and the balancer's next state.

    Round-robin over ``backends``, skipping ``exclude`` (backends that just failed to
    connect: the caller retries with a growing set). With ``affinity_timeout`` a client
    keeps the backend it last used while that backend is still ready and not excluded and
    it connected within the timeout (a sliding window, as kube-proxy's); expired entries
    are dropped on the way. ``None`` when no backend is left.

    >>> a, b = Backend("10.0.0.1", 80), Backend("10.0.0.2", 80)
    >>> first, state = pick((a, b), "1.1.1.1", Balancer(), now=0.0)
    >>> second, state = pick((a, b), "1.1.1.1", state, now=1.0)
    >>> (str(first), str(second))
    ('10.0.0.1:80', '10.0.0.2:80')
    """
    sticky = state.sticky
    if affinity_timeout is not None:
        sticky = FrozenDict({ip: s for ip, s in sticky.items()
                             if now - s.last_used <= affinity_timeout and s.backend in backends})
        held = sticky.get(client_ip)
        if held is not None and held.backend not in exclude:
            return held.backend, Balancer(state.cursor,
                                          sticky.set(client_ip, Sticky(held.backend, now)))
    elif sticky:
        sticky = FrozenDict()  # affinity switched off: forget who stuck where
    chosen: Backend | None = None
    cursor = state.cursor
    for step in range(len(backends)):
        index = (state.cursor + step) % len(backends)
        if backends[index] not in exclude:
            chosen, cursor = backends[index], index + 1
            break
    if chosen is not None and affinity_timeout is not None:
        sticky = sticky.set(client_ip, Sticky(chosen, now))
    return chosen, Balancer(cursor, sticky)


__all__ = [
    "DEFAULT_AFFINITY_TIMEOUT",
    "WILDCARD",
    "Backend",
    "Balancer",
    "Listener",
    "ListenerKind",
    "Plan",
    "PortRef",
    "Route",
    "Sticky",
    "affinity_timeout",
    "compute_plan",
    "pick",
    "proxied",
    "ready_backends",
    "service_age",
]
