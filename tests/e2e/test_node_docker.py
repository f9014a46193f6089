"""The node agent over real Docker: a quick-start pod runs, serves, restarts, goes away.

The whole node side runs for real — the agent (informers, per-pod workers, PLEG events
and relist, network probes, log endpoint) over the Docker adapter — against the API core
in process (memory store, real clock). Checked, in one pod's life:

* it reaches Ready through its httpGet readiness probe (the host reaches the pod IP on
  the bridge) and answers HTTP on its pod IP; its log is served by the agent's endpoint;
* ``docker kill`` of its container -> restarted, ``restartCount`` 1, Ready again;
* delete -> TERM (the command traps it), the object is removed, no container is left.

Skips outside CI without a Docker engine; fails under ``CI=true``. Nothing sleeps to
synchronise: conditions are polled with a bound (``until``).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import random
import shutil
import subprocess
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from kstate.api.client import LocalClient
from kstate.api.codec import from_dict
from kstate.api.lifecycle import node_state, pod_state
from kstate.api.objects import Node, Pod
from kstate.api.server.core import ApiCore
from kstate.clock import RealClock
from kstate.errors import NotFound
from kstate.node.agent import AgentOptions, NodeAgent
from kstate.runtime.base import HTTPD_IMAGE, NODE_NAME, ContainerState
from kstate.store import open_store
from tests.conftest import require

pytestmark = pytest.mark.docker

SCENARIO_TIMEOUT = 120.0
#: The quick start's server with a TERM handler (busybox httpd as PID 1 ignores TERM).
HTTPD = ('echo "serving $HOSTNAME"; echo "hello from $HOSTNAME" > /www/index.html; '
         "trap 'exit 0' TERM; httpd -f -p 8080 -h /www & wait")


async def until(condition: Callable[[], Awaitable[bool]], what: str,
                timeout: float = 30.0) -> None:
    """Poll ``condition`` until it holds (bounded): Docker has no clock to drive."""
    try:
        async with asyncio.timeout(timeout):
            while not await condition():
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"{what} not reached within {timeout} s") from None


async def http_get(host: str, port: int, path: str = "/") -> tuple[int, str]:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(f"GET {path} HTTP/1.0\r\nHost: test\r\n\r\n".encode())
        await writer.drain()
        response = (await reader.read()).decode()
    finally:
        writer.close()
    head, _, body = response.partition("\r\n\r\n")
    return int(head.split()[1]), body


def test_a_quick_start_pod_on_docker() -> None:
    require(importlib.util.find_spec("aiodocker") is not None,
            "aiodocker (pip install -e '.[docker]')")
    asyncio.run(_scenario())


async def _scenario() -> None:
    from kstate.errors import RuntimeAdapterError
    from kstate.runtime.docker import DockerRuntime
    from kstate.runtime.image import build_base_image

    session = uuid.uuid4().hex[:8]
    network, node = f"kstate-e2e-{session}", f"e2e-{session}"
    runtime = DockerRuntime(network=network)
    try:
        await runtime.version()
    except RuntimeAdapterError as err:
        await runtime.close()
        require(False, f"Docker engine ({err})")
    if not await runtime.image_present(HTTPD_IMAGE):
        require(os.path.exists("/bin/busybox"), "busybox-static (/bin/busybox)")
    await build_base_image(runtime)

    store = open_store("memory://")
    core = ApiCore(store, RealClock(), rng=random.Random(7))
    await core.start()
    client = LocalClient(core)
    agent = NodeAgent(client, runtime, node, RealClock(), AgentOptions(server_port=0))
    try:
        async with asyncio.timeout(SCENARIO_TIMEOUT):
            await agent.start()
            await _pod_life(client, runtime, agent, node)
    finally:
        await agent.stop()
        with contextlib.suppress(RuntimeAdapterError):
            for c in await runtime.list_containers({NODE_NAME: node}):
                await runtime.remove_container(c.id)
            for s in await runtime.list_sandboxes({NODE_NAME: node}):
                await runtime.remove_sandbox(s.id)
        with contextlib.suppress(Exception):  # exists only once a sandbox was made
            await (await runtime._client().networks.get(network)).delete()
        await runtime.close()
        await core.close()
        await store.close()


async def _pod_life(client: LocalClient, runtime: Any, agent: NodeAgent, node: str) -> None:
    registered = await client.get(Node, node)
    assert node_state(registered) == "Ready"
    assert registered.status.node_info.container_runtime_version.startswith("docker://")

    await client.create(from_dict(Pod, {
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
        "spec": {
            "terminationGracePeriodSeconds": 10,
            "containers": [{
                "name": "web", "image": HTTPD_IMAGE, "imagePullPolicy": "Never",
                "command": ["sh", "-c", HTTPD],
                "ports": [{"name": "http", "containerPort": 8080}],
                "readinessProbe": {"httpGet": {"path": "/", "port": "http"},
                                   "periodSeconds": 1},
            }],
        },
    }))
    await client.bind("web", node)

    async def pod() -> Pod | None:
        try:
            return await client.get(Pod, "web", "default")
        except NotFound:
            return None

    def state(p: Pod | None) -> str:
        return pod_state(p, RealClock().now()) if p is not None else "Deleted"

    async def ready_with(restarts: int) -> bool:
        p = await pod()
        return state(p) == "Ready" and p is not None and \
            p.status.container_statuses[0].restart_count == restarts

    await until(lambda: ready_with(0), "pod Ready")
    p = await pod()
    assert p is not None
    ip = p.status.pod_ip
    assert ip and p.status.host_ip == "127.0.0.1"
    assert await http_get(ip, 8080) == (200, "hello from web\n")

    # The agent's log endpoint (what the API server proxies `kubectl logs` to).
    status, body = await http_get("127.0.0.1", agent.server.port if agent.server else 0,
                                  "/containerLogs/default/web/web")
    assert (status, body) == (200, "serving web\n")

    (first,) = [c for c in await runtime.list_containers({NODE_NAME: node})
                if c.state is ContainerState.RUNNING]
    docker = shutil.which("docker")
    if docker:
        subprocess.run([docker, "kill", first.id], check=True, capture_output=True)
    else:  # the same engine call the CLI makes
        await runtime.kill_container(first.id, "SIGKILL")
    await until(lambda: ready_with(1), "restarted once and Ready again")
    p = await pod()
    assert p is not None
    last = p.status.container_statuses[0].last_state.terminated
    assert last is not None and last.exit_code == 137
    assert p.status.pod_ip == ip  # same sandbox: same IP
    assert await http_get(ip, 8080) == (200, "hello from web\n")

    await client.delete(Pod, "web", "default")

    async def gone() -> bool:
        return await pod() is None and \
            not await runtime.list_containers({NODE_NAME: node}) and \
            not await runtime.list_sandboxes({NODE_NAME: node})

    await until(gone, "pod removed with every container", timeout=20)
