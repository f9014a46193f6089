"""The service proxy in front of real containers (Docker), without the node agent.

Two busybox httpd pods run through the Docker runtime adapter; their Endpoints are
written by hand (what the endpoints controller would write once the agent reports their
IPs). Checked: NodePort and ClusterIP from the host, round-robin across both pods, and —
the pod-facing contract — a third container reaching the Service through the
``<NAME>_SERVICE_HOST`` / ``_SERVICE_PORT`` variables ``service_env`` gives the agent.

Skips outside CI without a Docker engine; fails under ``CI=true``. Nothing sleeps to
synchronise: the proxy is awaited (``wait_listening``); httpd readiness is polled.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import random
import uuid
from typing import Any

import pytest

from kstate.api.client import LocalClient
from kstate.api.frozen import FrozenDict
from kstate.api.meta import ObjectMeta
from kstate.api.objects import (
    EndpointAddress,
    EndpointPort,
    Endpoints,
    EndpointSubset,
    Service,
    ServicePort,
    ServiceSpec,
)
from kstate.api.server.core import ApiCore
from kstate.clock import RealClock
from kstate.proxy import ServiceProxy, service_env
from kstate.store import open_store
from tests.conftest import require

pytestmark = pytest.mark.docker

HTTPD = ('echo "hello from $HOSTNAME" > /www/index.html; trap "exit 0" TERM; '
         "httpd -f -p 8080 -h /www & wait")
IDLE = "trap 'exit 0' TERM; while :; do sleep 3600 & wait $!; done"
SCENARIO_TIMEOUT = 120.0


async def http_get(host: str, port: int) -> str:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(b"GET / HTTP/1.0\r\nHost: test\r\n\r\n")
        await writer.drain()
        response = await reader.read()
    finally:
        writer.close()
    return response.decode().partition("\r\n\r\n")[2].strip()


async def until_serving(host: str, port: int, timeout: float = 20.0) -> None:
    """Poll until httpd in a fresh container accepts (a readiness probe, not a sleep)."""
    async with asyncio.timeout(timeout):
        while True:
            try:
                if await http_get(host, port):
                    return
            except OSError:
                pass
            await asyncio.sleep(0.05)


def test_proxy_routes_to_docker_pods() -> None:
    require(importlib.util.find_spec("aiodocker") is not None,
            "aiodocker (pip install -e '.[docker]')")
    from kstate.errors import RuntimeAdapterError
    from kstate.runtime.docker import DockerRuntime

    session = uuid.uuid4().hex[:8]
    network = f"kstate-proxy-{session}"
    node = f"proxy-test-{session}"

    async def main() -> None:
        rt = DockerRuntime(network=network)
        try:
            try:
                await rt.version()
                problem = ""
            except RuntimeAdapterError as err:
                problem = str(err)
            require(not problem, f"Docker engine ({problem})")
            from kstate.runtime.base import HTTPD_IMAGE
            if not await rt.image_present(HTTPD_IMAGE):
                require(os.path.exists("/bin/busybox"), "busybox-static (/bin/busybox)")
            async with asyncio.timeout(SCENARIO_TIMEOUT):
                await scenario(rt, node)
        finally:
            await teardown(rt, node, network)

    asyncio.run(main())


async def scenario(rt: Any, node: str) -> None:
    from kstate.runtime.base import HTTPD_IMAGE, ContainerSpec, PullPolicy, SandboxSpec
    from kstate.runtime.image import build_base_image

    await build_base_image(rt)
    gateway = (await rt.network_info()).gateway

    async def pod(name: str, command: str, env: tuple[tuple[str, str], ...] = ()
                  ) -> tuple[str, str]:
        sandbox = await rt.create_sandbox(SandboxSpec(
            pod_uid=uuid.uuid4().hex, namespace="default", name=name, node_name=node))
        cid = await rt.create_container(sandbox.id, ContainerSpec(
            name="main", image=HTTPD_IMAGE, image_pull_policy=PullPolicy.NEVER,
            command=("sh", "-c", command), env=env))
        await rt.start_container(cid)
        return sandbox.ip, cid

    (ip1, _), (ip2, _) = await pod("web-1", HTTPD), await pod("web-2", HTTPD)
    await asyncio.gather(until_serving(ip1, 8080), until_serving(ip2, 8080))

    store = open_store("memory://")
    core = ApiCore(store, RealClock(), rng=random.Random())
    await core.start()
    client = LocalClient(core)
    proxy = ServiceProxy(client, RealClock(), bind_address="127.0.0.1",
                         pod_facing_address=gateway)
    try:
        await proxy.start()
        svc = await client.create(Service(
            metadata=ObjectMeta(name="web", namespace="default"),
            spec=ServiceSpec(type="NodePort", selector=FrozenDict({"app": "web"}),
                             ports=(ServicePort(port=8080, target_port=8080),))))
        await client.update(Endpoints(
            metadata=ObjectMeta(name="web", namespace="default"),
            subsets=(EndpointSubset(addresses=(EndpointAddress(ip=ip1), EndpointAddress(ip=ip2)),
                                    ports=(EndpointPort(port=8080),)),)))
        async with asyncio.timeout(10):
            await proxy.wait_until(lambda s: len(s.backends("default", "web")) == 2)
            await proxy.wait_listening("default", "web")

        node_port = svc.spec.ports[0].node_port
        answers = [await http_get("127.0.0.1", node_port) for _ in range(4)]
        assert set(answers) == {"hello from web-1", "hello from web-2"}
        assert answers[0] != answers[1] and answers[:2] == answers[2:]  # round-robin
        assert await http_get(svc.spec.cluster_ip, 8080) in set(answers)

        # From inside a container, through the variables the node agent injects.
        env = service_env([await client.get(Service, "web")], gateway)
        assert dict(env)["WEB_SERVICE_HOST"] == gateway
        _, client_cid = await pod("client", IDLE, env)
        result = await rt.exec(client_cid, ["sh", "-c",
                                            "wget -qO- http://$WEB_SERVICE_HOST:$WEB_SERVICE_PORT/"],
                               timeout=20)
        assert result.exit_code == 0, result.output
        assert result.output.decode().strip() in set(answers)
    finally:
        await proxy.stop()
        await core.close()
        await store.close()


async def teardown(rt: Any, node: str, network: str) -> None:
    from kstate.runtime.base import NODE_NAME

    with contextlib.suppress(Exception):
        for c in await rt.list_containers({NODE_NAME: node}):
            await rt.remove_container(c.id)
        for s in await rt.list_sandboxes({NODE_NAME: node}):
            await rt.remove_sandbox(s.id)
    with contextlib.suppress(Exception):  # the network exists only if a sandbox was made
        await (await rt._client().networks.get(network)).delete()
    await rt.close()
