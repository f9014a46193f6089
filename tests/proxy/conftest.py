"""Proxy test plumbing: async tests, an API core over the memory store, a proxy on it,
and real TCP backends on loopback standing in for pods.

Every test gets fresh random loopback addresses (ClusterIPs drawn from ``127.96.0.0/12``
by an unseeded allocator, NodePorts bound on a random ``127.2xx.x.x`` address) so that
parallel test runs on one machine do not fight over sockets.

Nothing sleeps to synchronise: tests await proxy conditions (``wait_until``) under a
deadline, and the FakeClock is only advanced once the proxy is known to sleep on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
from collections.abc import AsyncIterator, Sequence
from typing import Any

from kstate.api.client import LocalClient
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
from kstate.api.server.core import ApiCore
from kstate.clock import FakeClock
from kstate.proxy import ServiceProxy
from kstate.store import open_store

#: Wall-clock bound on any one wait (a broken proxy fails the test, not the session).
DEADLINE = 5.0


def random_loopback() -> str:
    """A loopback address outside the service CIDR (127.96.0.0/12)."""
    return f"127.{random.randint(200, 250)}.{random.randint(0, 255)}.{random.randint(1, 254)}"


class Pod:
    """A TCP backend on loopback: answers each line with ``<name> <line>`` and keeps the
    connection open, so a test can tell which pod served it and whether it survives."""

    def __init__(self, name: str, host: str = "127.0.0.1") -> None:
        self.name = name
        self.host = host
        self.port = 0
        self.accepted = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> Pod:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        with contextlib.suppress(ConnectionError):
            while line := await reader.readline():
                writer.write(f"{self.name} {line.decode()}".encode())
                await writer.drain()
        writer.close()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    def address(self) -> tuple[str, int]:
        return (self.host, self.port)


class Conn:
    """A client connection through the proxy, kept open across steps of a test."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, host: str, port: int, source: str | None = None) -> Conn:
        local = (source, 0) if source else None
        reader, writer = await asyncio.open_connection(host, port, local_addr=local)
        return cls(reader, writer)

    async def ask(self, text: str = "hi") -> str:
        """Who answered ``text`` (the pod's name), or ``""`` if the proxy reset us."""
        self.writer.write(f"{text}\n".encode())
        try:
            await self.writer.drain()
            async with asyncio.timeout(DEADLINE):
                line = await self.reader.readline()
        except ConnectionError:
            return ""
        return line.decode().split(" ")[0] if line else ""

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


async def ask(host: str, port: int, source: str | None = None) -> str:
    """One request on a fresh connection: the answering pod's name."""
    conn = await Conn.open(host, port, source)
    try:
        return await conn.ask()
    finally:
        await conn.close()


def service(name: str, *ports: ServicePort, type_: str = "ClusterIP", cluster_ip: str = "",
            affinity_timeout: int | None = None, namespace: str = "default") -> Service:
    affinity = SessionAffinityConfig(client_ip=ClientIPConfig(timeout_seconds=affinity_timeout))
    return Service(
        metadata=ObjectMeta(name=name, namespace=namespace),
        spec=ServiceSpec(type=type_, cluster_ip=cluster_ip,
                         ports=ports or (ServicePort(port=8080),),
                         selector=FrozenDict({"app": name}),
                         session_affinity="ClientIP" if affinity_timeout else "",
                         session_affinity_config=affinity if affinity_timeout else None))


def endpoints(name: str, ready: Sequence[Pod] = (), not_ready: Sequence[Pod] = (),
              port_name: str = "", namespace: str = "default") -> Endpoints:
    """Endpoints as the endpoints controller writes them: one subset per distinct port."""
    by_port: dict[int, tuple[list[EndpointAddress], list[EndpointAddress]]] = {}
    for pods, index in ((ready, 0), (not_ready, 1)):
        for pod in pods:
            by_port.setdefault(pod.port, ([], []))[index].append(EndpointAddress(ip=pod.host))
    subsets = tuple(
        EndpointSubset(addresses=tuple(r), not_ready_addresses=tuple(n),
                       ports=(EndpointPort(name=port_name, port=port),))
        for port, (r, n) in sorted(by_port.items()))
    return Endpoints(metadata=ObjectMeta(name=name, namespace=namespace), subsets=subsets)


class Cluster:
    """An API core (memory store, FakeClock), a client, and helpers to drive a proxy."""

    def __init__(self, core: ApiCore, clock: FakeClock) -> None:
        self.core = core
        self.clock = clock
        self.client = LocalClient(core)
        self.node_address = random_loopback()
        self.pods: list[Pod] = []
        self.proxies: list[ServiceProxy] = []

    async def pod(self, name: str) -> Pod:
        pod = await Pod(name).start()
        self.pods.append(pod)
        return pod

    async def proxy(self, **options: Any) -> ServiceProxy:
        options.setdefault("bind_address", self.node_address)
        proxy = ServiceProxy(self.client, self.clock, **options)
        self.proxies.append(proxy)
        async with asyncio.timeout(DEADLINE):
            await proxy.start()
        return proxy

    async def put_endpoints(self, eps: Endpoints) -> Endpoints:
        """Create or replace (Endpoints are created on update, as in Kubernetes)."""
        return await self.client.update(eps)

    async def sleeping(self, seconds: float) -> None:
        """Yield until the FakeClock's next wake-up is ``seconds`` from now: the proxy's
        timer is armed (the API core's own timers sleep a minute), so advancing by
        ``seconds`` fires exactly it."""
        async with asyncio.timeout(DEADLINE):
            while not math.isclose(self.clock.next_deadline() or 0.0,
                                   self.clock.now() + seconds):
                await asyncio.sleep(0)

    async def close(self) -> None:
        for proxy in self.proxies:
            await proxy.stop()
        for pod in self.pods:
            await pod.stop()


@contextlib.asynccontextmanager
async def cluster() -> AsyncIterator[Cluster]:
    store = open_store("memory://")
    clock = FakeClock()
    # Unseeded: random ClusterIPs and NodePorts, so concurrent runs do not collide.
    core = ApiCore(store, clock, rng=random.Random())
    await core.start()
    c = Cluster(core, clock)
    try:
        yield c
    finally:
        await c.close()
        await core.close()
        await store.close()
