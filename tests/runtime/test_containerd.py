"""What only the containerd (CRI) adapter can show.

The shared behaviour is in ``test_contract.py``; here: the quick start's httpd served from
the pod's own CNI address (where the proxy dials it), adoption by a fresh adapter, cluster
scoping, stats, the CRI log format, containerd restarting under running pods, the images
``ctr`` imports, and the message a user sees when the socket is missing.
"""

from __future__ import annotations

import asyncio
import importlib.util
import ipaddress
import json
import tarfile
import urllib.request
import uuid
from io import BytesIO
from pathlib import Path

import pytest

from kstate.errors import RuntimeAdapterError, RuntimeUnreachable
from kstate.runtime.base import (
    CLUSTER,
    HTTPD_IMAGE,
    NODE_NAME,
    PAUSE_COMMAND,
    POD_UID,
    ContainerSpec,
    ContainerState,
    PullPolicy,
    SandboxSpec,
    SandboxState,
)
from kstate.runtime.containerd_host import (
    BASE_IMAGE,
    PAUSE_IMAGE,
    SUBNET,
    ContainerdHost,
    image_archive,
    normalise,
)
from tests.conftest import require
from tests.runtime.conftest import Harness

HAVE_GRPC = importlib.util.find_spec("grpc") is not None
QUICK_START = ("sh", "-c", 'echo "hello from $HOSTNAME" > /www/index.html && '
               "exec httpd -f -p 8080 -h /www")


@pytest.fixture(autouse=True)
def _grpc() -> None:
    require(HAVE_GRPC, "grpcio (pip install -e '.[containerd]')")


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=2) as resp:  # a pod IP on kstate's bridge
        return bytes(resp.read())


# ------------------------------------------------------------------ without containerd


def test_a_missing_socket_names_it_and_how_to_start_containerd() -> None:
    from kstate.runtime.containerd import ContainerdRuntime

    async def scenario() -> None:
        rt = ContainerdRuntime("/nonexistent/kstate-test.sock")
        try:
            for call in (rt.version(), rt.list_containers(), rt.events().start()):
                with pytest.raises(RuntimeUnreachable) as err:
                    await call
                assert "/nonexistent/kstate-test.sock" in str(err.value)
                assert "containerd_host start" in str(err.value)
        finally:
            await rt.close()

    asyncio.run(scenario())


def _rpc_error(details: str) -> Exception:
    import grpc
    import grpc.aio

    return grpc.aio.AioRpcError(grpc.StatusCode.UNKNOWN, grpc.aio.Metadata(),
                                grpc.aio.Metadata(), details)


def test_a_remove_waits_out_a_start_still_in_flight() -> None:
    # kstate down --purge after the daemon was killed mid-StartContainer: containerd
    # refuses the remove until the start returns; the adapter waits for it (CI, once).
    from kstate.runtime.containerd import STARTING, ContainerdRuntime

    async def scenario() -> None:
        rt = ContainerdRuntime("/nonexistent/kstate-test.sock", call_timeout=5)
        refusals = [f'failed to set removing state for container "c1": container is {STARTING}, '
                    "can't be removed"] * 2
        calls = []

        async def remove() -> str:
            calls.append(1)
            if refusals:
                raise _rpc_error(refusals.pop())
            return "removed"

        assert await rt._removing("remove", remove) == "removed"
        assert len(calls) == 3

        async def other() -> str:  # any other failure is not waited out
            calls.append(1)
            raise _rpc_error("permission denied")

        with pytest.raises(RuntimeAdapterError, match="permission denied"):
            await rt._removing("remove", other)
        assert len(calls) == 4

    asyncio.run(scenario())


def test_a_start_that_never_settles_fails_within_the_call_timeout() -> None:
    from kstate.runtime.containerd import STARTING, ContainerdRuntime

    async def scenario() -> None:
        rt = ContainerdRuntime("/nonexistent/kstate-test.sock", call_timeout=0.3)

        async def remove() -> str:
            raise _rpc_error(f"container is {STARTING}, can't be removed")

        with pytest.raises(RuntimeAdapterError, match=STARTING):
            await rt._removing("remove", remove)

    asyncio.run(scenario())


def test_a_socket_that_is_not_containerd_is_unreachable(tmp_path: Path) -> None:
    import socket

    from kstate.runtime.containerd import ContainerdRuntime

    path = tmp_path / "not-containerd.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))  # bound, never accepting: no gRPC behind it

    async def scenario() -> None:
        rt = ContainerdRuntime(str(path), call_timeout=2)
        try:
            with pytest.raises(RuntimeUnreachable) as err:
                await rt.version()
            assert str(path) in str(err.value)
        finally:
            await rt.close()

    try:
        asyncio.run(scenario())
    finally:
        server.close()


def test_cri_log_records_become_lines() -> None:
    from kstate.runtime.containerd import parse_cri_log

    data = (b"2024-01-01T00:00:00.000000001Z stdout F one\n"
            b"2024-01-01T00:00:00.000000002Z stderr F \n"
            b"2024-01-01T00:00:00.000000003Z stdout P tw\n"
            b"2024-01-01T00:00:00.000000004Z stdout F o\n"
            b"2024-01-01T00:00:00.000000005Z stdout P four\n"
            b"2024-01-01T00:00:00.000000006Z stdout F torn")  # still being written
    assert b"".join(parse_cri_log(data)) == b"one\n\ntwo\nfour"


def test_cri_log_lines_carry_their_first_records_time() -> None:
    from kstate.runtime.containerd import CriLogReader

    reader = CriLogReader()
    lines = reader.feed(b"2024-01-01T00:00:01.5Z stdout P tw\n"
                        b"2024-01-01T02:00:02+02:00 stdout F o\n"
                        b"2024-01-01T00:00:03.000000007Z stderr P la")  # torn
    assert [(x.at, x.stamp, x.text) for x in lines] == [
        (1704067201.5, b"2024-01-01T00:00:01.500000000Z ", b"two\n")]
    assert reader.consumed == 72 and reader.flush() == []
    lines = reader.feed(b"2024-01-01T00:00:03.000000007Z stderr P last\n")
    assert lines == [] and [x.text for x in reader.flush()] == [b"last"]


def test_exec_exit_codes_come_from_the_v4_status() -> None:
    from kstate.runtime.containerd import _cannot_run_code
    from kstate.runtime.containerd_streams import exit_code

    failure = (b'{"status":"Failure","reason":"NonZeroExitCode","details":{"causes":'
               b'[{"reason":"ExitCode","message":"3"}]}}')
    assert exit_code(failure, _cannot_run_code) == 3
    assert exit_code(b'{"metadata":{},"status":"Success"}', _cannot_run_code) == 0
    assert exit_code(b"", _cannot_run_code) == 0
    cannot = b'{"status":"Failure","message":"exec: \\"nope\\": executable file not found"}'
    assert exit_code(cannot, _cannot_run_code) == 127


def test_a_streaming_server_off_loopback_is_refused() -> None:
    from kstate.runtime.containerd_streams import REMOTE_COMMAND, connect

    with pytest.raises(RuntimeAdapterError, match="not on loopback"):
        asyncio.run(connect("http://10.0.0.1:1234/exec/abc", REMOTE_COMMAND))


def test_image_names_are_normalised_as_cri_does() -> None:
    assert normalise("kstate/httpd:1") == "docker.io/kstate/httpd:1"
    assert normalise("busybox") == "docker.io/library/busybox:latest"
    assert normalise("localhost:5000/app") == "localhost:5000/app:latest"


def test_the_image_archive_has_one_layer_under_three_tags() -> None:
    archive = image_archive(b"rootfs-bytes")
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
        configs = {m["RepoTags"][0]: json.loads(
            tar.extractfile(m["Config"]).read()) for m in manifest}  # type: ignore[union-attr]
        assert tar.extractfile("layer.tar").read() == b"rootfs-bytes"  # type: ignore[union-attr]
    assert [m["RepoTags"] for m in manifest] == [[BASE_IMAGE, HTTPD_IMAGE], [PAUSE_IMAGE]]
    assert configs[PAUSE_IMAGE]["config"]["Cmd"] == list(PAUSE_COMMAND)
    assert configs[BASE_IMAGE]["rootfs"]["diff_ids"] == configs[PAUSE_IMAGE]["rootfs"]["diff_ids"]


def test_the_generated_config_is_kstates_own(tmp_path: Path) -> None:
    host = ContainerdHost(tmp_path / "state", tmp_path / "root")
    text = host.config_toml()
    assert f'address = "{tmp_path}/state/containerd.sock"' in text
    assert "/run/containerd/containerd.sock" not in text
    assert f'sandbox_image = "docker.io/{PAUSE_IMAGE}"' in text
    assert 'disabled_plugins' not in text  # the CRI plugin stays on
    assert 'stream_server_address = "127.0.0.1"' in text  # exec/attach/port-forward URLs
    bridge = host.cni_conflist()["plugins"][0]  # type: ignore[index]
    assert bridge["bridge"] == "kstate-cni0" and not bridge["ipMasq"]
    # Clear of Docker's default bridge and its user networks (172.16/12).
    assert not ipaddress.ip_network(SUBNET).overlaps(ipaddress.ip_network("172.16.0.0/12"))


# ------------------------------------------------------------------ on containerd


@pytest.mark.containerd
def test_quick_start_httpd_is_served_from_the_pod_ip(containerd_h: Harness) -> None:
    h = containerd_h

    async def scenario() -> None:
        sb = await h.sandbox(name="web-1")
        assert ipaddress.ip_address(sb.ip) in ipaddress.ip_network(SUBNET)
        cid = await h.container(sb, QUICK_START, name="web")
        await h.state(cid, ContainerState.RUNNING)

        async def served() -> bool:
            try:
                return await asyncio.to_thread(_get, f"http://{sb.ip}:8080/") == (
                    b"hello from web-1\n")
            except OSError:
                return False

        await h.until(served, what="httpd answers on the pod IP")
        usage = await h.rt.stats(cid)  # type: ignore[attr-defined]
        assert usage.container_id == cid and usage.memory_working_set_bytes > 0

    h.run(scenario())


@pytest.mark.containerd
def test_a_new_adapter_adopts_and_clusters_stay_apart(containerd_h: Harness) -> None:
    from kstate.runtime.containerd import ContainerdRuntime

    h = containerd_h

    async def scenario() -> None:
        mine = ContainerdRuntime(h.rt.socket, cluster=f"mine-{uuid.uuid4().hex[:8]}")  # type: ignore[attr-defined]
        theirs = ContainerdRuntime(h.rt.socket, cluster=f"theirs-{uuid.uuid4().hex[:8]}")  # type: ignore[attr-defined]
        try:
            sb = await mine.create_sandbox(SandboxSpec(h.uid(), "test", "scoped", h.node))
            h.sandboxes.append(sb.id)
            cid = await mine.create_container(sb.id, ContainerSpec(
                name="app", image=HTTPD_IMAGE, image_pull_policy=PullPolicy.NEVER,
                command=("sleep", "3600"), attempt=3))
            await mine.start_container(cid)
            on_node = {NODE_NAME: h.node, POD_UID: sb.pod_uid}
            assert await theirs.list_sandboxes(on_node) == []
            assert await theirs.list_containers(on_node) == []
            restarted = ContainerdRuntime(h.rt.socket, cluster=mine._scope[CLUSTER])  # type: ignore[attr-defined]
            try:
                [found_sb] = await restarted.list_sandboxes(on_node)
                assert (found_sb.id, found_sb.ip, found_sb.state) == (
                    sb.id, sb.ip, SandboxState.READY)
                [found] = await restarted.list_containers(on_node)
                assert (found.id, found.attempt, found.sandbox_id) == (cid, 3, sb.id)
                assert found.labels[CLUSTER] == mine._scope[CLUSTER]
            finally:
                await restarted.close()
        finally:
            await mine.close()
            await theirs.close()

    h.run(scenario())


@pytest.mark.containerd
def test_containerd_restarting_under_running_pods(containerd_h: Harness) -> None:
    """Stopping containerd leaves its shims (and so the pods) running; the adapter reports
    it unreachable meanwhile, reconnects afterwards, and nothing is lost or duplicated."""
    h = containerd_h
    host = ContainerdHost(state_dir=Path(h.rt.socket).parent)  # type: ignore[attr-defined]
    require(host.pid_path.exists(), f"a containerd started by kstate ({host.pid_path}) "
            "to restart")

    async def scenario() -> None:
        sb = await h.sandbox(name="survivor")
        cid = await h.container(sb, QUICK_START, name="web")
        before = await h.state(cid, ContainerState.RUNNING)
        async with h.rt.events({POD_UID: sb.pod_uid}) as events:
            await asyncio.to_thread(host.stop)
            with pytest.raises(RuntimeUnreachable):
                await h.rt.inspect_container(cid)
            with pytest.raises(RuntimeUnreachable):  # the agent relists and resubscribes
                await h.next_event(events)
            await asyncio.to_thread(host.start)
        await h.until(lambda: _answers(h), what="containerd back")
        after = await h.rt.inspect_container(cid)
        assert (after.state, after.started_at) == (ContainerState.RUNNING, before.started_at)
        assert (await h.rt.inspect_sandbox(sb.id)).ip == sb.ip
        assert await asyncio.to_thread(_get, f"http://{sb.ip}:8080/") == b"hello from survivor\n"
        assert [c.id for c in await h.rt.list_containers({POD_UID: sb.pod_uid})] == [cid]
        await h.rt.remove_sandbox(sb.id)
        assert await h.rt.list_containers({POD_UID: sb.pod_uid}) == []
        assert await h.rt.list_sandboxes({POD_UID: sb.pod_uid}) == []

    h.run(scenario())


async def _answers(h: Harness) -> bool:
    try:
        await h.rt.version()
    except RuntimeUnreachable:
        return False
    return True


@pytest.mark.containerd
def test_removing_a_sandbox_removes_its_log_files(containerd_h: Harness) -> None:
    h = containerd_h

    async def scenario() -> None:
        sb = await h.sandbox(name="logged")
        cid = await h.container(sb, ("sh", "-c", "echo hello"), name="talker")
        await h.state(cid, ContainerState.EXITED)
        assert await h.collect(h.rt.logs(cid)) == [b"hello\n"]
        log_dir = Path(h.rt._pod_log_dir(sb.labels, sb.attempt))  # type: ignore[attr-defined]
        assert (log_dir / "talker" / "0.log").exists()
        await h.rt.remove_sandbox(sb.id)
        assert not log_dir.exists()

    h.run(scenario())


def test_build_base_for_a_missing_containerd_says_how_to_start_it(
        capsys: pytest.CaptureFixture[str]) -> None:
    from kstate.cli import main

    assert main(["image", "build-base", "--runtime", "containerd",
                 "--containerd-socket", "/nonexistent/kstate-test.sock"]) == 2
    err = capsys.readouterr().err
    assert "/nonexistent/kstate-test.sock" in err and "containerd_host start" in err
