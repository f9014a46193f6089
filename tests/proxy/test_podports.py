"""Pod ports and the node agent's environment contract, as pure functions."""

from __future__ import annotations

import attrs

from kstate.api.frozen import FrozenDict
from kstate.api.meta import ObjectMeta
from kstate.api.objects import Service, ServicePort, ServiceSpec
from kstate.control.podports import (
    POD_PORTS_ANNOTATION,
    assign_pod_ports,
    format_pod_ports,
    pod_port_refs,
    read_pod_ports,
    service_env,
)
from kstate.proxy.routing import PortRef


def svc(name: str, *ports: ServicePort, recorded: str | None = None, uid: str = "",
        created: str = "2024-01-01T00:00:00Z", ip: str = "127.96.0.5") -> Service:
    annotations = FrozenDict({POD_PORTS_ANNOTATION: recorded}) if recorded is not None \
        else FrozenDict()
    return Service(
        metadata=ObjectMeta(name=name, namespace="default", uid=uid or f"uid-{name}",
                            creation_timestamp=created, annotations=annotations),
        spec=ServiceSpec(cluster_ip=ip, ports=ports or (ServicePort(port=80),)))


def test_read_and_format_round_trip() -> None:
    assert read_pod_ports(svc("a", recorded=format_pod_ports({443: 20001, 80: 20000}))) == {
        80: 20000, 443: 20001}
    assert format_pod_ports({443: 20001, 80: 20000}) == '{"80":20000,"443":20001}'


def test_junk_annotations_read_as_nothing() -> None:
    for junk in ("", "not json", "[1]", '{"x": 1}', '{"80": "20000"}', '{"80": true}',
                 '{"80": 70000}'):
        assert read_pod_ports(svc("a", recorded=junk)) == {}, junk
    assert read_pod_ports(svc("a", recorded='{"80": 20000, "x": 1}')) == {80: 20000}


def test_assignment_is_deterministic_unique_and_in_range() -> None:
    services = [svc(f"s{i}", ServicePort(name="a", port=80), ServicePort(name="b", port=81))
                for i in range(50)]
    first = assign_pod_ports(services, (20000, 20199))
    assert first == assign_pod_ports(list(reversed(services)), (20000, 20199))
    ports = [p for by_port in first.values() for p in by_port.values()]
    assert len(ports) == 100 == len(set(ports))
    assert all(20000 <= p <= 20199 for p in ports)


def test_recorded_ports_are_kept_and_a_duplicate_moves_the_younger() -> None:
    old = svc("old", recorded='{"80": 20005}', created="2024-01-01T00:00:00Z")
    young = svc("young", recorded='{"80": 20005}', created="2024-01-02T00:00:00Z")
    got = assign_pod_ports([young, old], (20000, 20009))
    assert got[("default", "old")] == {80: 20005}
    assert got[("default", "young")][80] != 20005


def test_new_services_never_take_an_existing_port() -> None:
    # Fill a 3-port range with recorded services, then add one: no room, no theft.
    recorded = [svc(f"r{i}", recorded=f'{{"80": {20000 + i}}}') for i in range(3)]
    fresh = svc("fresh", created="2023-01-01T00:00:00Z")  # even though it sorts first
    got = assign_pod_ports([*recorded, fresh], (20000, 20002))
    assert got[("default", "fresh")] == {}
    assert [got[("default", f"r{i}")] for i in range(3)] == [{80: 20000 + i} for i in range(3)]


def test_remembered_ports_restore_a_dropped_annotation() -> None:
    s = svc("web")
    got = assign_pod_ports([s], (20000, 29999), remembered={"uid-web": {80: 23456}})
    assert got == {("default", "web"): {80: 23456}}


def test_removed_ports_are_dropped_and_udp_and_headless_get_none() -> None:
    s = svc("web", ServicePort(name="http", port=80), ServicePort(name="dns", port=53,
                                                                    protocol="UDP"),
            recorded='{"80": 20000, "8080": 20001}')
    headless = svc("h", ip="None")
    got = assign_pod_ports([s, headless])
    assert got == {("default", "web"): {80: 20000}}


def test_pod_port_refs_follow_annotations_or_an_assignment() -> None:
    s = svc("web", ServicePort(name="http", port=80), recorded='{"80": 20000}')
    assert pod_port_refs([s]) == {PortRef("default", "web", "http"): 20000}
    assert pod_port_refs([s], {("default", "web"): {80: 21000}}) == {
        PortRef("default", "web", "http"): 21000}
    assert pod_port_refs([attrs.evolve(s, spec=attrs.evolve(s.spec, cluster_ip="None"))]) == {}


def test_service_env_is_kubernetes_with_gateway_and_pod_ports() -> None:
    s = svc("redis-master", ServicePort(port=6379), recorded='{"6379": 20417}')
    multi = svc("web", ServicePort(name="http", port=80), ServicePort(name="https", port=443),
                ServicePort(name="dns", port=53, protocol="UDP"),
                recorded='{"80": 20001, "443": 20002}')
    headless = svc("headless", ip="None", recorded='{"80": 20003}')
    pending = svc("pending")  # pod port not recorded yet: skipped, like a later Service
    assert service_env([s, headless, pending, multi], "172.18.0.1") == (
        ("REDIS_MASTER_SERVICE_HOST", "172.18.0.1"),
        ("REDIS_MASTER_SERVICE_PORT", "20417"),
        ("REDIS_MASTER_PORT", "tcp://172.18.0.1:20417"),
        ("REDIS_MASTER_PORT_6379_TCP", "tcp://172.18.0.1:20417"),
        ("REDIS_MASTER_PORT_6379_TCP_PROTO", "tcp"),
        ("REDIS_MASTER_PORT_6379_TCP_PORT", "20417"),
        ("REDIS_MASTER_PORT_6379_TCP_ADDR", "172.18.0.1"),
        ("WEB_SERVICE_HOST", "172.18.0.1"),
        ("WEB_SERVICE_PORT", "20001"),
        ("WEB_SERVICE_PORT_HTTP", "20001"),
        ("WEB_SERVICE_PORT_HTTPS", "20002"),
        ("WEB_PORT", "tcp://172.18.0.1:20001"),
        ("WEB_PORT_80_TCP", "tcp://172.18.0.1:20001"),
        ("WEB_PORT_80_TCP_PROTO", "tcp"),
        ("WEB_PORT_80_TCP_PORT", "20001"),
        ("WEB_PORT_80_TCP_ADDR", "172.18.0.1"),
        ("WEB_PORT_443_TCP", "tcp://172.18.0.1:20002"),
        ("WEB_PORT_443_TCP_PROTO", "tcp"),
        ("WEB_PORT_443_TCP_PORT", "20002"),
        ("WEB_PORT_443_TCP_ADDR", "172.18.0.1"),
    )
