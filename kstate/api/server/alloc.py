"""Service address allocation: cluster IPs from a CIDR, node ports from a range.

Where it sits: Service admission in the API server (``core.py``). Creating a Service
fires the Service machine's ``allocate`` trigger; this module decides *what* is
allocated. Deleting a Service releases its addresses simply by removing it.

Why it is shaped this way: allocations are **derived from the store** — the set of used
addresses is computed from the Services that exist, every time, under the core's
allocation lock — so a restarted API server can never hand out an address twice and
there is no separate allocation map to drift from the objects (Kubernetes keeps a
bitmap in etcd beside the Services and needs a repair loop to reconcile the two).
Listing Services on each Service write is cheap: clusters have hundreds, not millions.

The default service CIDR is a loopback range (``127.96.0.0/12``): on Linux the whole of
``127/8`` reaches the host, so a user on the machine can connect to a ClusterIP that the
kstate proxy listens on without any routing set up.

>>> a = Allocator(NetworkConfig(service_cidr="127.96.0.0/29"), random.Random(1))
>>> svc = Service(spec=ServiceSpec(ports=(ServicePort(port=80),)))
>>> a.assign(svc, []).spec.cluster_ip in {f"127.96.0.{i}" for i in range(1, 7)}
True
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Iterable
from typing import Any

import attrs

from kstate.api.objects import Service, ServicePort, ServiceSpec
from kstate.errors import Cause, InvalidObject

DEFAULT_SERVICE_CIDR = "127.96.0.0/12"
DEFAULT_NODE_PORTS = (30000, 32767)

_EXTERNAL = ("NodePort", "LoadBalancer")


@attrs.frozen
class NetworkConfig:
    """Where Service addresses come from (``kstate apiserver --service-cidr ...``)."""

    service_cidr: str = DEFAULT_SERVICE_CIDR
    node_port_range: tuple[int, int] = DEFAULT_NODE_PORTS

    def __attrs_post_init__(self) -> None:
        net = ipaddress.ip_network(self.service_cidr, strict=True)  # ValueError if bad
        if net.num_addresses < 4:
            raise ValueError(f"service CIDR {self.service_cidr} is too small")
        lo, hi = self.node_port_range
        if not 1 <= lo <= hi <= 65535:
            raise ValueError(f"node port range {lo}-{hi} is not a valid port range")


def needs_cluster_ip(spec: ServiceSpec) -> bool:
    """Headless (``None``) and ExternalName services get no virtual IP."""
    return spec.type != "ExternalName" and spec.cluster_ip != "None"


def needs_node_ports(spec: ServiceSpec) -> bool:
    return spec.type in _EXTERNAL


def _invalid(path: str, value: object, message: str) -> Cause:
    return Cause(path, "FieldValueInvalid", f"Invalid value: {value!r}: {message}")


class Allocator:
    """Chooses free addresses given the Services that already hold some."""

    def __init__(self, config: NetworkConfig, rng: random.Random) -> None:
        self.config = config
        self._net = ipaddress.ip_network(config.service_cidr, strict=True)
        self._rng = rng

    def _used(self, others: Iterable[Service]) -> tuple[set[str], set[tuple[int, str]]]:
        ips: set[str] = set()
        ports: set[tuple[int, str]] = set()
        for svc in others:
            ips.update(ip for ip in (svc.spec.cluster_ip, *svc.spec.cluster_ips)
                       if ip and ip != "None")
            ports.update((p.node_port, p.protocol or "TCP") for p in svc.spec.ports
                         if p.node_port)
        return ips, ports

    def assign(self, svc: Service, others: Iterable[Service]) -> Service:
        """``svc`` with a cluster IP and node ports filled in (requested ones honoured).

        ``others`` are every other Service in the store. ``InvalidObject`` (422) names
        the field when a requested address is taken or outside the configured range.
        """
        used_ips, used_ports = self._used(others)
        spec, causes = svc.spec, []
        cluster_ip = spec.cluster_ip
        if needs_cluster_ip(spec):
            if cluster_ip:
                problem = self._check_ip(cluster_ip, used_ips)
                if problem:
                    causes.append(_invalid("spec.clusterIP", cluster_ip, problem))
            else:
                cluster_ip = self._free_ip(used_ips)
        cluster_ips = spec.cluster_ips or ((cluster_ip,) if cluster_ip else ())
        ports = spec.ports
        if needs_node_ports(spec):
            ports, port_causes = self._assign_ports(spec.ports, used_ports)
            causes += port_causes
        if causes:
            raise InvalidObject("Service", svc.metadata.name, causes)
        new_spec = attrs.evolve(spec, cluster_ip=cluster_ip, cluster_ips=cluster_ips,
                                ports=ports)
        return svc if new_spec == spec else attrs.evolve(svc, spec=new_spec)

    def _check_ip(self, ip: str, used: set[str]) -> str:
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return "must be a valid IP address or 'None'"
        if addr not in self._net or addr in (self._net.network_address,
                                             self._net.broadcast_address):
            return f"provided IP is not in the valid range. The range of valid IPs is " \
                   f"{self.config.service_cidr}"
        if ip in used:
            return "provided IP is already allocated"
        return ""

    def _free_ip(self, used: set[str]) -> str:
        first = int(self._net.network_address) + 1
        size = self._net.num_addresses - 2
        # Random probes, like Kubernetes, so a just-released address is not reused at
        # once (proxies may still hold connections to it); a scan finds the last ones.
        for _ in range(64):
            ip = str(ipaddress.ip_address(first + self._rng.randrange(size)))
            if ip not in used:
                return ip
        for offset in range(size):
            ip = str(ipaddress.ip_address(first + offset))
            if ip not in used:
                return ip
        raise InvalidObject("Service", "", [Cause(
            "spec.clusterIP", "FieldValueInvalid",
            f"range is full: no free IP in {self.config.service_cidr}")])

    def _assign_ports(self, ports: tuple[ServicePort, ...], used: set[tuple[int, str]]
                      ) -> tuple[tuple[ServicePort, ...], list[Cause]]:
        lo, hi = self.config.node_port_range
        taken = set(used)
        out, causes = [], []
        for i, p in enumerate(ports):
            proto = p.protocol or "TCP"
            if p.node_port:
                path = f"spec.ports[{i}].nodePort"
                if not lo <= p.node_port <= hi:
                    causes.append(_invalid(path, p.node_port,
                                           f"provided port is not in the valid range. The "
                                           f"range of valid ports is {lo}-{hi}"))
                elif (p.node_port, proto) in taken:
                    causes.append(_invalid(path, p.node_port,
                                           "provided port is already allocated"))
                taken.add((p.node_port, proto))
                out.append(p)
                continue
            port = self._free_port(taken, proto)
            if port is None:
                causes.append(Cause(f"spec.ports[{i}].nodePort", "FieldValueInvalid",
                                    f"range is full: no free node port in {lo}-{hi}"))
                out.append(p)
                continue
            taken.add((port, proto))
            out.append(attrs.evolve(p, node_port=port))
        return tuple(out), causes

    def _free_port(self, taken: set[tuple[int, str]], proto: str) -> int | None:
        lo, hi = self.config.node_port_range
        for _ in range(64):
            port = self._rng.randint(lo, hi)
            if (port, proto) not in taken:
                return port
        return next((p for p in range(lo, hi + 1) if (p, proto) not in taken), None)


def keep_allocated(old: Service, new: Service) -> Service:
    """An update that leaves out allocated values keeps them, as Kubernetes does: a PUT
    without ``clusterIP`` keeps the old one, a port without ``nodePort`` keeps its old
    node port (matched by port and protocol), and a type change away from NodePort drops
    the node ports the user did not touch."""
    spec, before = new.spec, old.spec
    changes: dict[str, Any] = {}
    if needs_cluster_ip(before) and needs_cluster_ip(spec) and not spec.cluster_ip:
        changes["cluster_ip"] = before.cluster_ip
        if not spec.cluster_ips:
            changes["cluster_ips"] = before.cluster_ips
    elif not needs_cluster_ip(spec) and spec.type == "ExternalName":
        changes["cluster_ip"], changes["cluster_ips"] = "", ()
    old_ports = {(p.port, p.protocol or "TCP"): p.node_port for p in before.ports
                 if p.node_port}
    if needs_node_ports(spec):
        ports = tuple(
            attrs.evolve(p, node_port=old_ports[(p.port, p.protocol or "TCP")])
            if not p.node_port and (p.port, p.protocol or "TCP") in old_ports else p
            for p in spec.ports
        )
        changes["ports"] = ports
    elif needs_node_ports(before):
        changes["ports"] = tuple(
            attrs.evolve(p, node_port=0)
            if p.node_port and old_ports.get((p.port, p.protocol or "TCP")) == p.node_port
            else p
            for p in spec.ports
        )
    if not changes:
        return new
    return attrs.evolve(new, spec=attrs.evolve(spec, **changes))


__all__ = [
    "DEFAULT_NODE_PORTS",
    "DEFAULT_SERVICE_CIDR",
    "Allocator",
    "NetworkConfig",
    "keep_allocated",
    "needs_cluster_ip",
    "needs_node_ports",
]
