"""What only the Docker adapter can show: real images, real networks, the quick start.

The shared behaviour is in ``test_contract.py``; here are the engine-specific mappings
(command/args/env/limits onto the Engine API, hostname, the base image), the quick start's
httpd reached from the host as the proxy will reach it, adoption by a fresh adapter (an
agent restart), and the message a user sees when dockerd is not running.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import time
import urllib.request
import uuid

import pytest

from kstate.errors import RuntimeUnreachable
from kstate.runtime.base import (
    CLUSTER,
    HTTPD_IMAGE,
    NODE_NAME,
    POD_UID,
    ContainerSpec,
    ContainerState,
    PullPolicy,
    Reason,
    SandboxSpec,
    SandboxState,
)
from kstate.runtime.image import REQUIRED_APPLETS, build_base_image
from tests.conftest import require
from tests.runtime.conftest import Harness

HAVE_AIODOCKER = importlib.util.find_spec("aiodocker") is not None

#: The README quick start's container command (``imagePullPolicy: Never``).
QUICK_START = ("sh", "-c", 'echo "hello from $HOSTNAME" > /www/index.html && '
               "exec httpd -f -p 8080 -h /www")
#: The same server with a TERM handler: busybox httpd as PID 1 ignores SIGTERM.
QUICK_START_GRACEFUL = ("sh", "-c", 'echo "hello from $HOSTNAME" > /www/index.html; '
                        "trap 'exit 0' TERM; httpd -f -p 8080 -h /www & wait")

pytestmark = pytest.mark.docker


@pytest.fixture(autouse=True)
def _aiodocker() -> None:
    require(HAVE_AIODOCKER, "aiodocker (pip install -e '.[docker]')")


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=2) as resp:  # a pod IP on the local bridge
        return bytes(resp.read())


def test_unreachable_engine_says_how_to_start_it() -> None:
    from kstate.runtime.docker import DockerRuntime

    async def scenario() -> None:
        rt = DockerRuntime("unix:///nonexistent/kstate-test.sock")
        try:
            for call in (rt.version(), rt.list_containers(), rt.events().start()):
                with pytest.raises(RuntimeUnreachable) as err:
                    await call
                assert "dockerd" in str(err.value)
        finally:
            await rt.close()

    asyncio.run(scenario())


def test_parse_docker_time() -> None:
    from kstate.runtime.docker import parse_docker_time

    assert parse_docker_time("1970-01-01T00:00:10.5Z") == 10.5
    assert parse_docker_time("1970-01-01T00:00:10Z") == 10.0
    assert parse_docker_time("0001-01-01T00:00:00Z") is None
    assert parse_docker_time("") is None


def test_quick_start_httpd_is_served_from_the_pod_ip(docker_h: Harness) -> None:
    h = docker_h

    async def scenario() -> None:
        got = await h.rt.ensure_image(HTTPD_IMAGE, PullPolicy.NEVER)
        assert not got.pulled
        sb = await h.sandbox(name="web-0")
        cid = await h.container(sb, QUICK_START, name="web")
        await h.state(cid, ContainerState.RUNNING)
        url = f"http://{sb.ip}:8080/"
        body: list[bytes] = []

        async def served() -> bool:
            try:
                body.append(await asyncio.to_thread(_get, url))
            except OSError:
                return False
            return True

        await h.until(served, what=f"GET {url} from the host")
        assert body[-1] == b"hello from web-0\n"
        # PID 1 busybox httpd ignores SIGTERM: the grace period runs out, KILL (137).
        began = time.monotonic()
        await h.rt.stop_container(cid, 1)
        assert time.monotonic() - began >= 0.9
        assert (await h.rt.inspect_container(cid)).exit_code == 137

    h.run(scenario())


def test_quick_start_with_a_term_handler_stops_at_once(docker_h: Harness) -> None:
    h = docker_h

    async def scenario() -> None:
        sb = await h.sandbox(name="web-1")
        cid = await h.container(sb, QUICK_START_GRACEFUL, name="web")
        await h.state(cid, ContainerState.RUNNING)

        async def serving() -> bool:
            try:
                return await asyncio.to_thread(_get, f"http://{sb.ip}:8080/") == \
                    b"hello from web-1\n"
            except OSError:
                return False

        await h.until(serving, what="httpd answering")
        began = time.monotonic()
        await h.rt.stop_container(cid, 20)
        assert time.monotonic() - began < 5
        status = await h.rt.inspect_container(cid)
        assert (status.exit_code, status.reason) == (0, Reason.COMPLETED)

    h.run(scenario())


def test_spec_maps_onto_the_engine(docker_h: Harness) -> None:
    h = docker_h
    long_name = "p" * 70

    async def scenario() -> None:
        sb = await h.sandbox(name=long_name)
        shell = await h.container(
            sb, ("sh", "-c", 'echo "$A|$B|$(pwd)|$(hostname)"'), name="env",
            env=(("A", "1"), ("B", "two words"), ("A", "last wins")), working_dir="/tmp",
            cpu_millicores=250, memory_bytes=64 * 1024 * 1024)
        # args alone keep the image's entrypoint (none) and replace its CMD.
        args_only = await h.container(sb, (), name="args", args=("echo", "from-args"))
        # command alone drops the image's CMD (["sh"]) instead of appending to it.
        command_only = await h.container(sb, ("echo", "from-command"), name="cmd")
        for cid in (shell, args_only, command_only):
            await h.state(cid, ContainerState.EXITED)
        logs = [b"".join(await h.collect(h.rt.logs(c))) for c in (shell, args_only, command_only)]
        assert logs == [f"last wins|two words|/tmp|{'p' * 63}\n".encode(),
                        b"from-args\n", b"from-command\n"]

        raw = await h.docker._inspect(shell)
        host = raw["HostConfig"]
        assert host["NanoCpus"] == 250_000_000
        assert host["Memory"] == host["MemorySwap"] == 64 * 1024 * 1024
        assert host["NetworkMode"] == f"container:{sb.id}"
        assert host["LogConfig"]["Config"]["max-size"] == "10m"

    h.run(scenario())


def test_a_new_adapter_adopts_existing_containers(docker_h: Harness) -> None:
    from kstate.runtime.docker import DockerRuntime

    h = docker_h

    async def scenario() -> None:
        sb = await h.sandbox(name="adopt")
        cid = await h.container(sb, ("sleep", "3600"), name="app", attempt=3)
        await h.state(cid, ContainerState.RUNNING)
        restarted = DockerRuntime(network=h.docker._network_name)
        try:
            [found_sb] = await restarted.list_sandboxes({POD_UID: sb.pod_uid})
            assert (found_sb.id, found_sb.ip, found_sb.state) == (sb.id, sb.ip, SandboxState.READY)
            [found] = await restarted.list_containers({POD_UID: sb.pod_uid})
            assert (found.id, found.name, found.attempt, found.sandbox_id) == (
                cid, "app", 3, sb.id)
            await restarted.remove_sandbox(sb.id)
        finally:
            await restarted.close()
        assert await h.rt.list_containers({POD_UID: sb.pod_uid}) == []

    h.run(scenario())


def test_sandbox_stops_promptly_on_term(docker_h: Harness) -> None:
    h = docker_h

    async def scenario() -> None:
        sb = await h.sandbox()
        began = time.monotonic()
        await h.rt.stop_container(sb.id, 20)
        assert time.monotonic() - began < 5
        assert (await h.rt.inspect_sandbox(sb.id)).state is SandboxState.NOTREADY

    h.run(scenario())


def test_base_image_builds_idempotently_with_every_applet(docker_h: Harness) -> None:
    h = docker_h
    tag = f"kstate-test/base-{uuid.uuid4().hex[:8]}:1"

    async def scenario() -> None:
        client = h.docker._client()
        assert await build_base_image(h.docker) == []  # present already: nothing to do
        try:
            assert await build_base_image(h.docker, (tag,)) == [tag]
            first = (await client.images.inspect(tag))["Id"]
            assert await build_base_image(h.docker, (tag,)) == []
            assert await build_base_image(h.docker, (tag,), force=True) == [tag]
            assert (await client.images.inspect(tag))["Id"] != first
            # The rebuild dropped the image it replaced instead of leaving it dangling.
            assert not [i for i in await client.images.list() if i["Id"] == first]
            sb = await h.sandbox()
            check = " && ".join(f"command -v {a} >/dev/null" for a in REQUIRED_APPLETS)
            cid = await h.container(sb, ("sh", "-c", f"{check} && test -d /tmp && id -un"),
                                    image=tag)
            status = await h.state(cid, ContainerState.EXITED)
            assert status.exit_code == 0, b"".join(await h.collect(h.rt.logs(cid)))
            assert b"".join(await h.collect(h.rt.logs(cid))) == b"root\n"
            await h.rt.remove_sandbox(sb.id)
        finally:
            await client.images.delete(tag, force=True)

    h.run(scenario())


def test_a_pruned_network_is_recreated(docker_h: Harness) -> None:
    from kstate.runtime.docker import DockerRuntime

    h = docker_h
    network = f"kstate-test-{uuid.uuid4().hex[:8]}"

    async def scenario() -> None:
        rt = DockerRuntime(network=network)
        client = rt._client()
        try:
            first = await rt.create_sandbox(SandboxSpec(h.uid(), "test", "a", h.node))
            await rt.remove_sandbox(first.id)
            await (await client.networks.get(network)).delete()  # pruned under the adapter
            again = await rt.create_sandbox(SandboxSpec(h.uid(), "test", "b", h.node))
            assert again.state is SandboxState.READY and again.ip
            await rt.remove_sandbox(again.id)
        finally:
            with contextlib.suppress(Exception):
                await (await client.networks.get(network)).delete()
            await rt.close()

    h.run(scenario())


def test_an_adapter_given_a_cluster_sees_only_that_clusters_containers(
        docker_h: Harness) -> None:
    from kstate.runtime.docker import DockerRuntime

    h = docker_h

    async def scenario() -> None:
        network = h.docker._network_name
        mine = DockerRuntime(network=network, cluster=f"mine-{uuid.uuid4().hex[:8]}")
        theirs = DockerRuntime(network=network, cluster=f"theirs-{uuid.uuid4().hex[:8]}")
        try:
            sb = await mine.create_sandbox(SandboxSpec(h.uid(), "test", "scoped", h.node))
            h.sandboxes.append(sb.id)
            cid = await mine.create_container(sb.id, ContainerSpec(
                name="app", image=HTTPD_IMAGE, image_pull_policy=PullPolicy.NEVER,
                command=("sleep", "3600")))
            on_node = {NODE_NAME: h.node, POD_UID: sb.pod_uid}
            # The same node name, another cluster: nothing to adopt, nothing to remove.
            assert await theirs.list_sandboxes(on_node) == []
            assert await theirs.list_containers(on_node) == []
            assert [s.id for s in await mine.list_sandboxes(on_node)] == [sb.id]
            [found] = await mine.list_containers(on_node)
            assert found.id == cid
            # The container inherits its sandbox's cluster; unscoped, both are visible.
            assert found.labels[CLUSTER] == sb.labels[CLUSTER] == mine._scope[CLUSTER]
            assert [c.id for c in await h.rt.list_containers(on_node)] == [cid]
        finally:
            await mine.close()
            await theirs.close()

    h.run(scenario())
