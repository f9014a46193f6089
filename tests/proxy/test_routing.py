"""The proxy's decisions as pure functions: no sockets, no clock, no API server."""

from __future__ import annotations

import attrs
from hypothesis import given
from hypothesis import strategies as st

from kstate.api.frozen import FrozenDict
from kstate.api.meta import ObjectMeta
from kstate.api.objects import (
    ClientIPConfig,
    EndpointAddress,
    EndpointPort,
    Endpoints,
    EndpointSubset,
    Service,
    ServicePort,
    ServiceSpec,
    SessionAffinityConfig,
)
from kstate.proxy.routing import (
    DEFAULT_AFFINITY_TIMEOUT,
    Backend,
    Balancer,
    Listener,
    PortRef,
    Route,
    affinity_timeout,
    compute_plan,
    pick,
    ready_backends,
)

A, B, C = Backend("10.0.0.1", 80), Backend("10.0.0.2", 80), Backend("10.0.0.3", 80)


def svc(name: str, *ports: ServicePort, type_: str = "ClusterIP", ip: str = "127.96.0.5",
        created: str = "2024-01-01T00:00:00Z", deleting: bool = False, **spec: object
        ) -> Service:
    meta = ObjectMeta(name=name, namespace="default", creation_timestamp=created,
                      deletion_timestamp="2024-01-02T00:00:00Z" if deleting else "")
    return Service(metadata=meta, spec=ServiceSpec(
        type=type_, cluster_ip=ip, ports=ports or (ServicePort(port=80),), **spec))  # type: ignore[arg-type]


def eps(name: str, *subsets: EndpointSubset) -> Endpoints:
    return Endpoints(metadata=ObjectMeta(name=name, namespace="default"), subsets=subsets)


def subset(ready: list[str], port: int, name: str = "", not_ready: tuple[str, ...] = ()
           ) -> EndpointSubset:
    return EndpointSubset(addresses=tuple(EndpointAddress(ip=ip) for ip in ready),
                          not_ready_addresses=tuple(EndpointAddress(ip=ip) for ip in not_ready),
                          ports=(EndpointPort(name=name, port=port),))


def listeners(services: list[Service], **kw: object) -> set[tuple[str, str, int, str]]:
    plan = compute_plan(services, [], **kw)  # type: ignore[arg-type]
    return {(lst.kind, lst.address, lst.port, str(lst.service)) for lst in plan.listeners}


# ------------------------------------------------------------------ listeners


def test_cluster_ip_service_listens_on_its_cluster_ip_only() -> None:
    assert listeners([svc("web")]) == {("cluster-ip", "127.96.0.5", 80, "default/web")}


def test_node_port_service_adds_the_node_port_on_the_bind_address() -> None:
    s = svc("web", ServicePort(port=80, node_port=30001), type_="NodePort")
    assert listeners([s], node_address="127.0.0.1") == {
        ("cluster-ip", "127.96.0.5", 80, "default/web"),
        ("node-port", "127.0.0.1", 30001, "default/web"),
    }


def test_load_balancer_service_gets_node_ports_too() -> None:
    s = svc("web", ServicePort(port=80, node_port=30001), type_="LoadBalancer")
    assert ("node-port", "0.0.0.0", 30001, "default/web") in listeners([s])


def test_pod_facing_listener_uses_the_recorded_pod_port() -> None:
    s = svc("web", ServicePort(name="http", port=80))
    got = listeners([s], pod_address="172.18.0.1",
                    pod_ports={PortRef("default", "web", "http"): 20417})
    assert ("pod-facing", "172.18.0.1", 20417, "default/web:http") in got
    # No pod port recorded yet, or no pod-facing address: no pod-facing listener.
    assert all(kind != "pod-facing" for kind, *_ in listeners([s], pod_address="172.18.0.1"))
    assert all(kind != "pod-facing" for kind, *_ in listeners(
        [s], pod_ports={PortRef("default", "web", "http"): 20417}))


def test_services_that_get_no_listeners() -> None:
    assert listeners([svc("headless", ip="None")]) == set()
    assert listeners([svc("unallocated", ip="")]) == set()
    assert listeners([svc("gone", deleting=True)]) == set()
    assert listeners([svc("ext", type_="ExternalName", ip="")]) == set()
    # The API server rejects a non-headless Service without ports; the proxy copes anyway.
    portless = Service(metadata=ObjectMeta(name="portless", namespace="default"),
                       spec=ServiceSpec(cluster_ip="127.96.0.9"))
    assert listeners([portless]) == set()


def test_udp_ports_are_reported_and_skipped() -> None:
    s = svc("dns", ServicePort(name="tcp", port=53),
            ServicePort(name="udp", port=53, protocol="UDP"))
    plan = compute_plan([s], [])
    assert {str(lst.service) for lst in plan.listeners} == {"default/dns:tcp"}
    assert set(plan.routes) == {PortRef("default", "dns", "tcp")}
    assert len(plan.warnings) == 1 and "default/dns:udp" in plan.warnings[0]
    assert "53/UDP" in plan.warnings[0]


def test_a_shared_socket_goes_to_the_older_service() -> None:
    old = svc("old", ip="127.96.0.1", created="2024-01-01T00:00:00Z")
    young = svc("young", ip="127.96.0.2", created="2024-01-02T00:00:00Z")
    refs = {PortRef("default", "old"): 20000, PortRef("default", "young"): 20000}
    for order in ([old, young], [young, old]):
        plan = compute_plan(order, [], pod_address="172.18.0.1", pod_ports=refs)
        facing = [lst for lst in plan.listeners if lst.kind == "pod-facing"]
        assert [str(lst.service) for lst in facing] == ["default/old"]
        assert len(plan.warnings) == 1 and "default/young" in plan.warnings[0]


def test_a_wildcard_node_port_conflicts_with_any_address_on_its_port() -> None:
    # A ClusterIP service on port 30001 and a NodePort 30001 on 0.0.0.0 cannot coexist.
    a = svc("a", ServicePort(port=30001), ip="127.96.0.1")
    b = svc("b", ServicePort(port=80, node_port=30001), type_="NodePort", ip="127.96.0.2")
    plan = compute_plan([a, b], [])
    kinds = {(lst.kind, str(lst.service)) for lst in plan.listeners}
    assert kinds == {("cluster-ip", "default/a"), ("cluster-ip", "default/b")}
    assert "node-port listener 0.0.0.0:30001" in plan.warnings[0]
    # Bound to a specific address instead, both fit.
    plan = compute_plan([a, b], [], node_address="127.0.0.1")
    assert len(plan.listeners) == 3 and not plan.warnings


def test_plan_is_deterministic_and_hashable() -> None:
    services = [svc(f"s{i}", ip=f"127.96.0.{i + 1}") for i in range(5)]
    assert compute_plan(services, []) == compute_plan(list(reversed(services)), [])
    hash(compute_plan(services, []).listeners)


# ------------------------------------------------------------------ routes


def test_backends_are_ready_addresses_with_the_named_target_port() -> None:
    s = svc("web", ServicePort(name="http", port=80), ServicePort(name="admin", port=81))
    e = eps("web",
            EndpointSubset(addresses=(EndpointAddress(ip="10.0.0.1"),),
                           not_ready_addresses=(EndpointAddress(ip="10.0.0.9"),),
                           ports=(EndpointPort(name="http", port=8080),
                                  EndpointPort(name="admin", port=9090))),
            subset(["10.0.0.2"], 8081, name="http"))
    plan = compute_plan([s], [e])
    assert plan.routes[PortRef("default", "web", "http")].backends == (
        Backend("10.0.0.1", 8080), Backend("10.0.0.2", 8081))
    assert plan.routes[PortRef("default", "web", "admin")].backends == (
        Backend("10.0.0.1", 9090),)


def test_no_endpoints_or_only_not_ready_means_no_backends() -> None:
    port = ServicePort(port=80)
    assert ready_backends(port, None) == ()
    assert ready_backends(port, eps("web", subset([], 80, not_ready=("10.0.0.1",)))) == ()
    assert ready_backends(port, eps("web", subset(["10.0.0.1"], 80, name="other"))) == ()
    assert compute_plan([svc("web")], []).routes[PortRef("default", "web")] == Route()


def test_duplicate_addresses_are_listed_once() -> None:
    e = eps("web", subset(["10.0.0.1", "10.0.0.1"], 80))
    assert ready_backends(ServicePort(port=80), e) == (Backend("10.0.0.1", 80),)


def test_affinity_timeout_defaults_to_kubernetes_value() -> None:
    assert affinity_timeout(svc("a")) is None
    assert affinity_timeout(svc("a", session_affinity="ClientIP")) == DEFAULT_AFFINITY_TIMEOUT
    config = SessionAffinityConfig(client_ip=ClientIPConfig(timeout_seconds=30))
    assert affinity_timeout(svc("a", session_affinity="ClientIP",
                                session_affinity_config=config)) == 30.0


# ------------------------------------------------------------------ pick


def picks(backends: tuple[Backend, ...], n: int, client: str = "c", state: Balancer | None = None,
          now: float = 0.0, **kw: object) -> tuple[list[Backend | None], Balancer]:
    state = state or Balancer()
    out: list[Backend | None] = []
    for _ in range(n):
        chosen, state = pick(backends, client, state, now, **kw)  # type: ignore[arg-type]
        out.append(chosen)
    return out, state


def test_round_robin() -> None:
    got, _ = picks((A, B, C), 6)
    assert got == [A, B, C, A, B, C]


def test_round_robin_survives_a_shrinking_list() -> None:
    _, state = picks((A, B, C), 2)
    got, _ = picks((A, B), 3, state=state)
    assert got == [A, B, A]


def test_exclude_skips_failed_backends() -> None:
    chosen, state = pick((A, B, C), "c", Balancer(), 0.0, exclude=frozenset({A}))
    assert chosen == B
    chosen, _ = pick((A, B, C), "c", state, 0.0, exclude=frozenset({A, B, C}))
    assert chosen is None
    assert pick((), "c", Balancer(), 0.0) == (None, Balancer())


def test_client_ip_affinity_sticks_within_the_timeout() -> None:
    got, state = picks((A, B), 3, client="1.1.1.1", affinity_timeout=10.0)
    assert got == [A, A, A]
    other, state = pick((A, B), "2.2.2.2", state, 0.0, affinity_timeout=10.0)
    assert other == B
    # The window slides with every connection...
    for now in (9.0, 18.0, 27.0):
        chosen, state = pick((A, B), "1.1.1.1", state, now, affinity_timeout=10.0)
        assert chosen == A
    # ... and ends after timeout seconds of silence: round-robin resumes.
    chosen, state = pick((A, B), "1.1.1.1", state, 37.5, affinity_timeout=10.0)
    assert chosen == A  # the cursor points at A again; a fresh stick
    assert state.sticky["1.1.1.1"].last_used == 37.5
    assert "2.2.2.2" not in state.sticky  # expired entries are dropped


def test_affinity_moves_when_the_backend_leaves_or_fails() -> None:
    _, state = picks((A, B), 1, client="1.1.1.1", affinity_timeout=10.0)
    chosen, state = pick((B, C), "1.1.1.1", state, 1.0, affinity_timeout=10.0)
    assert chosen in (B, C)
    assert state.sticky["1.1.1.1"].backend == chosen
    again, state = pick((B, C), "1.1.1.1", state, 2.0, affinity_timeout=10.0,
                        exclude=frozenset({chosen}))
    assert again != chosen and state.sticky["1.1.1.1"].backend == again


def test_switching_affinity_off_forgets_sticky_clients() -> None:
    _, state = picks((A, B), 1, client="1.1.1.1", affinity_timeout=10.0)
    _, state = pick((A, B), "1.1.1.1", state, 1.0)
    assert state.sticky == FrozenDict()


backend_lists = st.lists(st.builds(Backend, st.sampled_from(["10.0.0.1", "10.0.0.2", "10.0.0.3"]),
                                   st.integers(80, 82)), unique=True, max_size=6).map(tuple)


@given(backend_lists, st.integers(0, 20), st.frozensets(st.integers(0, 5)),
       st.booleans())
def test_pick_only_returns_allowed_backends(backends: tuple[Backend, ...], cursor: int,
                                            excluded: frozenset[int], affinity: bool) -> None:
    exclude = frozenset(b for i, b in enumerate(backends) if i in excluded)
    chosen, state = pick(backends, "c", Balancer(cursor=cursor), 0.0,
                         affinity_timeout=10.0 if affinity else None, exclude=exclude)
    allowed = set(backends) - exclude
    assert (chosen in allowed) if allowed else chosen is None
    hash(state)


@given(backend_lists.filter(bool), st.integers(1, 4))
def test_round_robin_is_fair(backends: tuple[Backend, ...], rounds: int) -> None:
    got, _ = picks(backends, rounds * len(backends))
    assert all(got.count(b) == rounds for b in backends)


def test_listener_key_ignores_the_service() -> None:
    one = Listener("127.0.0.1", 80, "cluster-ip", PortRef("a", "b"))
    assert one.key == attrs.evolve(one, service=PortRef("x", "y")).key == ("127.0.0.1", 80)
