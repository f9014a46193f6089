"""The live proxy: a real API core (memory store), real sockets on loopback, TCP backends
standing in for pods. Endpoints are written by hand (no endpoints controller runs)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
from collections.abc import Callable
from typing import Any

import attrs
import pytest

from kstate.api.client import LocalClient
from kstate.api.frozen import FrozenDict
from kstate.api.objects import (
    EndpointAddress,
    EndpointPort,
    EndpointSubset,
    Service,
    ServicePort,
)
from kstate.proxy import POD_PORTS_ANNOTATION, Backend, read_pod_ports, service_env
from kstate.proxy import proxy as proxy_module
from kstate.proxy.proxy import ProxyStatus, ServiceProxy
from tests.proxy.conftest import (
    DEADLINE,
    Conn,
    Pod,
    ask,
    cluster,
    endpoints,
    random_loopback,
    service,
)


async def until(proxy: ServiceProxy, predicate: Callable[[ProxyStatus], bool]) -> ProxyStatus:
    async with asyncio.timeout(DEADLINE):
        return await proxy.wait_until(predicate)


def backends(*pods: Pod) -> tuple[Backend, ...]:
    return tuple(Backend(p.host, p.port) for p in pods)


async def test_nodeport_reachable() -> None:
    async with cluster() as c:
        pod = await c.pod("a")
        proxy = await c.proxy()
        svc = await c.client.create(service("web", ServicePort(port=8080), type_="NodePort"))
        await c.put_endpoints(endpoints("web", [pod]))
        node_port = svc.spec.ports[0].node_port
        assert 30000 <= node_port <= 32767
        listeners = await asyncio.wait_for(proxy.wait_listening("default", "web"), DEADLINE)
        assert {(lst.kind, lst.address, lst.port) for lst in listeners} == {
            ("cluster-ip", svc.spec.cluster_ip, 8080),
            ("node-port", c.node_address, node_port),
        }
        await until(proxy, lambda s: s.backends("default", "web") == backends(pod))
        assert await ask(c.node_address, node_port) == "a"


async def test_cluster_ip_reachable_on_its_loopback_address() -> None:
    async with cluster() as c:
        pod = await c.pod("a")
        proxy = await c.proxy()
        svc = await c.client.create(service("api", ServicePort(port=8080)))
        await c.put_endpoints(endpoints("api", [pod]))
        assert svc.spec.cluster_ip.startswith("127.")
        await asyncio.wait_for(proxy.wait_listening("default", "api"), DEADLINE)
        await until(proxy, lambda s: s.backends("default", "api") == backends(pod))
        assert await ask(svc.spec.cluster_ip, 8080) == "a"


async def test_round_robin_over_two_backends() -> None:
    async with cluster() as c:
        a, b = await c.pod("a"), await c.pod("b")
        proxy = await c.proxy()
        svc = await c.client.create(service("web"))
        await c.put_endpoints(endpoints("web", [a, b]))
        await until(proxy, lambda s: s.serving("default", "web")
                    and len(s.backends("default", "web")) == 2)
        answers = [await ask(svc.spec.cluster_ip, 8080) for _ in range(6)]
        assert answers[:2] in (["a", "b"], ["b", "a"])
        assert answers == answers[:2] * 3


async def test_not_ready_address_is_never_used() -> None:
    async with cluster() as c:
        ready, unready = await c.pod("ready"), await c.pod("unready")
        proxy = await c.proxy()
        svc = await c.client.create(service("web"))
        await c.put_endpoints(endpoints("web", [ready], not_ready=[unready]))
        await until(proxy, lambda s: s.serving("default", "web")
                    and s.backends("default", "web") == backends(ready))
        assert {await ask(svc.spec.cluster_ip, 8080) for _ in range(6)} == {"ready"}
        assert unready.accepted == 0


async def test_refusing_backend_is_skipped() -> None:
    async with cluster() as c:
        dead, live = await c.pod("dead"), await c.pod("live")
        await dead.stop()  # its port now refuses connections
        proxy = await c.proxy()
        svc = await c.client.create(service("web"))
        await c.put_endpoints(endpoints("web", [dead, live]))
        await until(proxy, lambda s: s.serving("default", "web")
                    and len(s.backends("default", "web")) == 2)
        # Every connection lands on the live pod, whichever the round-robin tried first.
        assert [await ask(svc.spec.cluster_ip, 8080) for _ in range(4)] == ["live"] * 4
        assert live.accepted == 4


async def test_all_backends_refusing_resets_the_client() -> None:
    async with cluster() as c:
        dead = await c.pod("dead")
        await dead.stop()
        proxy = await c.proxy()
        svc = await c.client.create(service("web"))
        await c.put_endpoints(endpoints("web", [dead]))
        await until(proxy, lambda s: s.serving("default", "web")
                    and s.backends("default", "web") == backends(dead))
        assert await ask(svc.spec.cluster_ip, 8080) == ""


async def test_no_ready_endpoint_resets_connections() -> None:
    async with cluster() as c:
        unready = await c.pod("unready")
        proxy = await c.proxy()
        svc = await c.client.create(service("web"))
        await c.put_endpoints(endpoints("web", not_ready=[unready]))
        await asyncio.wait_for(proxy.wait_listening("default", "web"), DEADLINE)
        assert await ask(svc.spec.cluster_ip, 8080) == ""  # listening, but not Active
        assert unready.accepted == 0


async def test_session_affinity_sticks_a_client_ip_to_its_backend() -> None:
    async with cluster() as c:
        a, b = await c.pod("a"), await c.pod("b")
        proxy = await c.proxy()
        svc = await c.client.create(service("web", affinity_timeout=60))
        await c.put_endpoints(endpoints("web", [a, b]))
        await until(proxy, lambda s: s.serving("default", "web")
                    and len(s.backends("default", "web")) == 2)
        ip = svc.spec.cluster_ip
        first = await ask(ip, 8080, source="127.0.0.2")
        assert [await ask(ip, 8080, source="127.0.0.2") for _ in range(4)] == [first] * 4
        other = await ask(ip, 8080, source="127.0.0.3")
        assert other != first  # the round-robin moved on for a new client
        assert [await ask(ip, 8080, source="127.0.0.3") for _ in range(3)] == [other] * 3
        # The sticky backend leaves the endpoints: its client moves, and sticks again.
        remaining = b if first == "a" else a
        await c.put_endpoints(endpoints("web", [remaining]))
        await until(proxy, lambda s: s.backends("default", "web") == backends(remaining))
        assert {await ask(ip, 8080, source="127.0.0.2") for _ in range(3)} == {remaining.name}


async def test_session_affinity_expires_after_its_timeout() -> None:
    async with cluster() as c:
        a, b = await c.pod("a"), await c.pod("b")
        proxy = await c.proxy()
        svc = await c.client.create(service("web", affinity_timeout=60))
        await c.put_endpoints(endpoints("web", [a, b]))
        await until(proxy, lambda s: s.serving("default", "web")
                    and len(s.backends("default", "web")) == 2)
        ip = svc.spec.cluster_ip
        first = await ask(ip, 8080, source="127.0.0.2")
        c.clock.advance(59)
        assert await ask(ip, 8080, source="127.0.0.2") == first  # and the window slides
        c.clock.advance(61)
        # Expired: the client takes the round-robin's next backend (the other one).
        assert await ask(ip, 8080, source="127.0.0.2") != first


async def test_endpoint_change_applied_promptly_and_connections_survive() -> None:
    async with cluster() as c:
        a, b, new = await c.pod("a"), await c.pod("b"), await c.pod("new")
        proxy = await c.proxy()
        svc = await c.client.create(service("web"))
        await c.put_endpoints(endpoints("web", [a, b]))
        await until(proxy, lambda s: s.serving("default", "web")
                    and len(s.backends("default", "web")) == 2)
        ip = svc.spec.cluster_ip
        first, second = await Conn.open(ip, 8080), await Conn.open(ip, 8080)
        assert {await first.ask(), await second.ask()} == {"a", "b"}
        to_a = first if await first.ask() == "a" else second
        to_b = second if to_a is first else first

        # b leaves, new joins: applied within the deadline (in practice: one watch event).
        loop = asyncio.get_running_loop()
        started = loop.time()
        await c.put_endpoints(endpoints("web", [a, new]))
        await until(proxy, lambda s: set(s.backends("default", "web")) == set(backends(a, new)))
        assert loop.time() - started < 1.0

        assert await to_a.ask("still there?") == "a"  # remaining endpoint: untouched
        assert await to_b.ask("still there?") == "b"  # removed endpoint: left to finish
        assert {await ask(ip, 8080) for _ in range(4)} == {"a", "new"}
        await to_a.close()
        await to_b.close()


async def test_service_deletion_closes_listeners() -> None:
    async with cluster() as c:
        pod = await c.pod("a")
        proxy = await c.proxy()
        svc = await c.client.create(service("web", type_="NodePort"))
        await c.put_endpoints(endpoints("web", [pod]))
        await asyncio.wait_for(proxy.wait_listening("default", "web"), DEADLINE)
        conn = await Conn.open(svc.spec.cluster_ip, 8080)
        assert await conn.ask() == "a"

        await c.client.delete(Service, "web")
        await asyncio.wait_for(proxy.wait_closed("default", "web"), DEADLINE)
        for host, port in ((svc.spec.cluster_ip, 8080),
                           (c.node_address, svc.spec.ports[0].node_port)):
            with pytest.raises(ConnectionRefusedError):
                await ask(host, port)
        assert await conn.ask() == "a"  # an established connection is left to finish
        await conn.close()


async def test_port_change_reopens_listeners() -> None:
    async with cluster() as c:
        pod = await c.pod("a")
        proxy = await c.proxy()
        svc = await c.client.create(service("web", ServicePort(port=8080)))
        await c.put_endpoints(endpoints("web", [pod]))
        await asyncio.wait_for(proxy.wait_listening("default", "web"), DEADLINE)
        changed = attrs.evolve(svc, spec=attrs.evolve(svc.spec, ports=(ServicePort(port=8081),)))
        await c.client.update(changed)
        await until(proxy, lambda s: {lst.port for lst in s.listeners_of("default", "web")}
                    == {8081})
        assert await ask(svc.spec.cluster_ip, 8081) == "a"
        with pytest.raises(ConnectionRefusedError):
            await ask(svc.spec.cluster_ip, 8080)


async def test_port_in_use_is_a_clear_error_and_others_are_fine(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="kstate.proxy")
    async with cluster() as c:
        pod = await c.pod("a")
        blocked_ip = f"127.96.{random.randint(1, 254)}.7"
        squatter = socket.socket()
        squatter.bind((blocked_ip, 8080))
        squatter.listen()
        proxy = await c.proxy(retry_interval=5.0)
        await c.client.create(service("blocked", cluster_ip=blocked_ip))
        fine = await c.client.create(service("fine"))
        await c.put_endpoints(endpoints("blocked", [pod]))
        await c.put_endpoints(endpoints("fine", [pod]))
        status = await until(proxy, lambda s: s.serving("default", "fine")
                             and any(lst.service.name == "blocked" for lst in s.failed))
        assert await ask(fine.spec.cluster_ip, 8080) == "a"
        assert not status.serving("default", "blocked")
        errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
        assert len(errors) == 1, errors
        assert f"cannot listen on {blocked_ip}:8080" in errors[0]
        assert "default/blocked" in errors[0] and "address already in use" in errors[0].lower()

        squatter.close()
        await c.sleeping(5.0)  # the proxy waits for its retry timer
        c.clock.advance(5.0)
        await asyncio.wait_for(proxy.wait_listening("default", "blocked"), DEADLINE)
        assert await ask(blocked_ip, 8080) == "a"
        assert any("now listening after earlier failures" in r.getMessage()
                   for r in caplog.records)


async def test_headless_and_udp_are_not_proxied(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="kstate.proxy")
    async with cluster() as c:
        pod = await c.pod("a")
        proxy = await c.proxy()
        await c.client.create(service("headless", cluster_ip="None"))
        mixed = await c.client.create(service(
            "dns", ServicePort(name="tcp", port=8053),
            ServicePort(name="udp", port=8053, protocol="UDP")))
        await c.put_endpoints(endpoints("dns", [pod], port_name="tcp"))
        await c.put_endpoints(endpoints("headless", [pod]))
        status = await until(proxy, lambda s: s.serving("default", "dns")
                             and bool(s.backends("default", "dns", "tcp")))
        assert status.listeners_of("default", "headless") == frozenset()
        assert {(lst.port, lst.service.port) for lst in status.listeners_of("default", "dns")} \
            == {(8053, "tcp")}
        assert await ask(mixed.spec.cluster_ip, 8053) == "a"
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert any("default/dns:udp" in w and "only TCP" in w for w in warnings), warnings


async def test_pod_facing_listener_and_recorded_pod_ports() -> None:
    async with cluster() as c:
        a, b = await c.pod("a"), await c.pod("b")
        gateway = random_loopback()  # stands in for the Docker bridge gateway
        proxy = await c.proxy(pod_facing_address=gateway)
        first = await c.client.create(service("redis-master", ServicePort(port=6379)))
        second = await c.client.create(service("redis-slave", ServicePort(port=6379)))
        await c.put_endpoints(endpoints("redis-master", [a]))
        await c.put_endpoints(endpoints("redis-slave", [b]))
        for name in ("redis-master", "redis-slave"):
            await asyncio.wait_for(proxy.wait_listening("default", name), DEADLINE)
        services = [await c.client.get(Service, s.metadata.name) for s in (first, second)]
        ports = [read_pod_ports(s)[6379] for s in services]
        assert ports[0] != ports[1]  # one gateway, two services on 6379: two pod ports
        assert all(20000 <= p <= 29999 for p in ports)
        env = dict(service_env(services, gateway))
        assert env["REDIS_MASTER_SERVICE_HOST"] == gateway
        assert await ask(gateway, int(env["REDIS_MASTER_SERVICE_PORT"])) == "a"
        assert await ask(gateway, int(env["REDIS_SLAVE_PORT_6379_TCP_PORT"])) == "b"

        # A client replacing the Service without the annotation gets the same port back,
        # and the pod-facing listener stays open meanwhile.
        current = services[0]
        meta = attrs.evolve(current.metadata, annotations=FrozenDict())
        replaced = await c.client.update(attrs.evolve(current, metadata=meta))
        async with asyncio.timeout(DEADLINE), c.client.watch(
                Service, "default", resource_version=replaced.metadata.resource_version,
                field_selector="metadata.name=redis-master") as events:
            async for _, obj in events:
                if read_pod_ports(obj) == {6379: ports[0]}:
                    break
        assert await ask(gateway, ports[0]) == "a"


async def test_a_restarted_proxy_keeps_pod_ports_and_serves_again() -> None:
    async with cluster() as c:
        pod = await c.pod("a")
        gateway = random_loopback()
        proxy = await c.proxy(pod_facing_address=gateway)
        await c.client.create(service("web"))
        await c.put_endpoints(endpoints("web", [pod]))
        await asyncio.wait_for(proxy.wait_listening("default", "web"), DEADLINE)
        recorded = (await c.client.get(Service, "web")).metadata.annotations[
            POD_PORTS_ANNOTATION]
        await proxy.stop()
        with pytest.raises(ConnectionRefusedError):
            await ask(gateway, read_pod_ports(await c.client.get(Service, "web"))[8080])

        again = await c.proxy(pod_facing_address=gateway)
        await asyncio.wait_for(again.wait_listening("default", "web"), DEADLINE)
        svc = await c.client.get(Service, "web")
        assert svc.metadata.annotations[POD_PORTS_ANNOTATION] == recorded
        assert await ask(gateway, read_pod_ports(svc)[8080]) == "a"


async def test_stop_closes_listeners_and_connections() -> None:
    async with cluster() as c:
        pod = await c.pod("a")
        proxy = await c.proxy()
        svc = await c.client.create(service("web"))
        await c.put_endpoints(endpoints("web", [pod]))
        await until(proxy, lambda s: s.serving("default", "web")
                    and bool(s.backends("default", "web")))
        conn = await Conn.open(svc.spec.cluster_ip, 8080)
        assert await conn.ask() == "a"
        await proxy.stop()
        assert await conn.ask() == ""
        await conn.close()
        with pytest.raises(ConnectionRefusedError):
            await ask(svc.spec.cluster_ip, 8080)
        assert proxy.status().listening == frozenset()
        # The same instance starts again from the API server's state.
        async with asyncio.timeout(DEADLINE):
            await proxy.start()
        assert await ask(svc.spec.cluster_ip, 8080) == "a"


async def test_a_proxy_started_after_the_services_serves_them() -> None:
    async with cluster() as c:
        pod = await c.pod("a")
        svc = await c.client.create(service("web", type_="NodePort"))
        await c.put_endpoints(endpoints("web", [pod]))
        proxy = await c.proxy()
        # start() returns with the first sync done: listeners already open.
        assert proxy.status().serving("default", "web")
        assert await ask(c.node_address, svc.spec.ports[0].node_port) == "a"


async def test_large_payload_and_half_close_are_relayed() -> None:
    async with cluster() as c:
        received = bytearray()

        async def sink(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            received.extend(await reader.read())  # until the client's EOF
            writer.write(f"{len(received)}".encode())
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(sink, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        proxy = await c.proxy()
        svc = await c.client.create(service("sink"))
        eps = attrs.evolve(endpoints("sink"), subsets=(EndpointSubset(
            addresses=(EndpointAddress(ip="127.0.0.1"),), ports=(EndpointPort(port=port),)),))
        await c.put_endpoints(eps)
        await until(proxy, lambda s: s.serving("default", "sink")
                    and bool(s.backends("default", "sink")))
        reader, writer = await asyncio.open_connection(svc.spec.cluster_ip, 8080)
        payload = bytes(range(256)) * 8192  # 2 MiB
        writer.write(payload)
        writer.write_eof()
        async with asyncio.timeout(DEADLINE):
            answer = await reader.read()
        assert answer == str(len(payload)).encode()
        assert bytes(received) == payload
        writer.close()
        server.close()
        with contextlib.suppress(Exception):
            await server.wait_closed()


async def test_a_backend_that_never_answers_times_out_on_the_clock() -> None:
    async with cluster() as c:
        # A listener with a full accept queue: the kernel drops further SYNs, so a
        # connect neither succeeds nor fails — the proxy's timeout must end it.
        hole = socket.socket()
        hole.bind(("127.0.0.1", 0))
        hole.listen(0)
        hole_port = hole.getsockname()[1]
        filler = await asyncio.open_connection("127.0.0.1", hole_port)
        live = await c.pod("live")
        proxy = await c.proxy(connect_timeouts=(0.25, 0.5))
        svc = await c.client.create(service("web"))
        await c.put_endpoints(attrs.evolve(endpoints("web"), subsets=tuple(
            EndpointSubset(addresses=(EndpointAddress(ip="127.0.0.1"),),
                           ports=(EndpointPort(port=port),))
            for port in (hole_port, live.port))))  # the silent one first in the rotation
        await until(proxy, lambda s: s.serving("default", "web")
                    and len(s.backends("default", "web")) == 2)
        answer = asyncio.create_task(ask(svc.spec.cluster_ip, 8080))
        await c.sleeping(0.25)  # the proxy waits 0.25 s of clock time for the SYN-ACK
        assert not answer.done()
        c.clock.advance(0.25)
        async with asyncio.timeout(DEADLINE):
            assert await answer == "live"
        filler[1].close()
        hole.close()


async def test_start_fails_cleanly_when_the_api_cannot_be_listed() -> None:
    async with cluster() as c:
        class Broken(LocalClient):
            async def list(self, *args: Any, **kwargs: Any) -> Any:
                raise RuntimeError("boom")

        proxy = ServiceProxy(Broken(c.core), c.clock, bind_address=c.node_address)
        with pytest.raises(RuntimeError, match="boom"):
            async with asyncio.timeout(DEADLINE):
                await proxy.start()
        assert proxy.status().listening == frozenset()


async def test_a_failing_sync_is_logged_and_the_proxy_carries_on(
        caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    async with cluster() as c:
        pod = await c.pod("a")
        proxy = await c.proxy()
        real = proxy_module.compute_plan
        calls = []

        def flaky(*args: Any, **kwargs: Any) -> Any:
            calls.append(1)
            if len(calls) == 1:
                raise ValueError("unexpected object")
            return real(*args, **kwargs)

        monkeypatch.setattr(proxy_module, "compute_plan", flaky)
        svc = await c.client.create(service("web"))
        await c.sleeping(5.0)  # the failed sync scheduled a retry
        assert any("sync failed" in r.getMessage() for r in caplog.records)
        await c.put_endpoints(endpoints("web", [pod]))  # the next event syncs again
        await until(proxy, lambda s: s.serving("default", "web")
                    and bool(s.backends("default", "web")))
        assert await ask(svc.spec.cluster_ip, 8080) == "a"
