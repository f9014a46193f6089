"""Pod startup latency on containerd, against bare CRI and the Docker adapter in the same run.

Where it sits: ``bench/pods`` (``python -m bench.pods --part containerd``). As on Docker,
the whole runtime path runs for real: ``kstate.daemon.Daemon`` in this process (SQLite,
API server, controller manager, scheduler, node agent over the **containerd adapter**,
proxy), an RC created through ``daemon.client``, the pods timed by a watch.

Definitions:

* **kstate pod startup** on containerd: the pod's creation seen through a watch -> the
  watch showing it Ready (no probe: Ready = running), as on Docker;
* **floor: a pod by bare CRI**: ``RunPodSandbox`` -> ``CreateContainer`` ->
  ``StartContainer`` of the same image and command, sent straight over the generated CRI
  stubs (no adapter, no agent), all the RC's pods at once — what the kubelet's minimum
  would be on this containerd;
* **the Docker adapter**: the same RC on ``Daemon(runtime="docker")``, in the same run.

Repetitions interleave bare CRI, kstate on containerd and kstate on Docker so the machine's
noise hits each alike. Everything made here is removed (kstate's by the node label, the
floor's by ``io.kstate.bench=<run id>``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.pods.common import HTTPD_COMMAND
from bench.pods.docker import IMAGE, _wait_node_ready, kstate_rc
from bench.report import percentile as pct


@dataclass
class ContainerdRep:
    floor: list[float]  #: bare CRI: sandbox + container, per pod (s)
    startup: list[float]  #: kstate on containerd: created -> Ready seen, per pod (s)
    docker: list[float]  #: kstate on Docker: created -> Ready seen, per pod (s)
    all_ready: float  #: containerd: RC created -> every replica Ready (s)


async def _bare_pod(stub: Any, cri: Any, label: str, i: int, log_dir: str) -> float:
    """One pod straight over CRI; returns seconds from the first call to StartContainer's
    answer."""
    meta = cri.PodSandboxMetadata(name=f"bench-{label}-{i}", uid=f"bench-{label}-{i}",
                                  namespace="bench", attempt=0)
    ns = cri.NamespaceOption(network=cri.POD, pid=cri.CONTAINER, ipc=cri.POD)
    config = cri.PodSandboxConfig(
        metadata=meta, hostname=meta.name, log_directory=log_dir,
        labels={"io.kstate.bench": label},
        linux=cri.LinuxPodSandboxConfig(
            security_context=cri.LinuxSandboxSecurityContext(namespace_options=ns)))
    t = time.perf_counter()
    sandbox = (await stub.RunPodSandbox(cri.RunPodSandboxRequest(config=config))).pod_sandbox_id
    container = cri.ContainerConfig(
        metadata=cri.ContainerMetadata(name="app"), image=cri.ImageSpec(image=IMAGE),
        command=list(HTTPD_COMMAND), labels={"io.kstate.bench": label},
        log_path=f"app-{i}.log",
        linux=cri.LinuxContainerConfig(
            security_context=cri.LinuxContainerSecurityContext(namespace_options=ns)))
    cid = (await stub.CreateContainer(cri.CreateContainerRequest(
        pod_sandbox_id=sandbox, config=container, sandbox_config=config))).container_id
    await stub.StartContainer(cri.StartContainerRequest(container_id=cid))
    return time.perf_counter() - t


async def _remove_bare(stub: Any, cri: Any, label: str) -> None:
    found = await stub.ListPodSandbox(cri.ListPodSandboxRequest(
        filter=cri.PodSandboxFilter(label_selector={"io.kstate.bench": label})))
    for item in found.items:
        await stub.StopPodSandbox(cri.StopPodSandboxRequest(pod_sandbox_id=item.id))
        await stub.RemovePodSandbox(cri.RemovePodSandboxRequest(pod_sandbox_id=item.id))


async def bare_cri_floor(socket: str, count: int, label: str, log_dir: str) -> list[float]:
    import grpc.aio

    from kstate.runtime.cri import api_pb2 as cri
    from kstate.runtime.cri import api_pb2_grpc as cri_grpc

    async with grpc.aio.insecure_channel(f"unix://{socket}") as channel:
        stub = cri_grpc.RuntimeServiceStub(channel)
        try:
            return list(await asyncio.gather(*(
                _bare_pod(stub, cri, label, i, log_dir) for i in range(count))))
        finally:
            await _remove_bare(stub, cri, label)


async def _node_empty(runtime: Any, node: str, timeout: float = 60.0) -> None:
    """Wait until the agent removed the RC's containers; then remove any left."""
    from kstate.runtime.base import NODE_NAME

    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if not await runtime.list_containers({NODE_NAME: node}) and not [
                s for s in await runtime.list_sandboxes({NODE_NAME: node})]:
            return
        await asyncio.sleep(0.2)
    for sandbox in await runtime.list_sandboxes({NODE_NAME: node}):
        await runtime.remove_sandbox(sandbox.id)


async def run_containerd(replicas: int, reps: int, timeout: float,
                         log: Callable[[str], None]) -> tuple[list[ContainerdRep], dict[str, str]]:
    from kstate.api.server.server import tune_gc
    from kstate.daemon import Daemon, DaemonConfig
    from kstate.runtime import open_runtime
    from kstate.runtime.containerd_host import default_socket

    socket = default_socket()
    run_id = uuid.uuid4().hex[:8]
    work = Path(tempfile.mkdtemp(prefix="kstate-bench-containerd-"))
    floor_logs = work / "floor-logs"
    floor_logs.mkdir()
    logging.getLogger("transitions").setLevel(logging.WARNING)
    observer_cd = open_runtime("containerd", socket=socket)
    observer_dk = open_runtime("docker")
    versions = {
        "containerd": (await observer_cd.version()).runtime_version,
        "docker engine": (await observer_dk.version()).runtime_version,
    }
    if not await observer_cd.image_present(IMAGE):
        raise RuntimeError(f"{IMAGE} is not in containerd: python -m "
                           "kstate.runtime.containerd_host import-images")
    tune_gc()
    nodes = {"containerd": f"bench-cd-{run_id}", "docker": f"bench-dk-{run_id}"}
    daemons = {
        kind: Daemon(DaemonConfig(runtime=kind, containerd_socket=socket, listen="127.0.0.1:0",
                                  data_dir=work / kind, node_name=nodes[kind],
                                  node_port_address="127.0.0.1"))
        for kind in nodes}
    out: list[ContainerdRep] = []
    try:
        for kind, daemon in daemons.items():
            (work / kind).mkdir()
            await daemon.start()
            await _wait_node_ready(daemon.client, nodes[kind])
        log(f"daemons up (nodes {nodes['containerd']}, {nodes['docker']}); warming up ...")
        await bare_cri_floor(socket, 2, f"{run_id}-warm", str(floor_logs))
        for kind, daemon in daemons.items():
            await kstate_rc(daemon.client, f"warm-{kind}-{run_id}", 2, timeout)
        await _node_empty(observer_cd, nodes["containerd"])
        await _node_empty(observer_dk, nodes["docker"])
        for rep in range(reps):
            floor = await bare_cri_floor(socket, replicas, f"{run_id}-{rep}", str(floor_logs))
            cd = await kstate_rc(daemons["containerd"].client, f"cd-{run_id}-{rep}", replicas,
                                 timeout)
            await _node_empty(observer_cd, nodes["containerd"])
            dk = await kstate_rc(daemons["docker"].client, f"dk-{run_id}-{rep}", replicas,
                                 timeout)
            await _node_empty(observer_dk, nodes["docker"])
            out.append(ContainerdRep(floor, cd.startup, dk.startup, cd.all_ready))
            log(f"containerd rep {rep + 1}/{reps}: kstate p50 {pct(cd.startup, 50):.2f} s "
                f"p99 {pct(cd.startup, 99):.2f} s; bare CRI p50 {pct(floor, 50):.2f} s "
                f"p99 {pct(floor, 99):.2f} s; kstate on Docker p50 "
                f"{pct(dk.startup, 50):.2f} s p99 {pct(dk.startup, 99):.2f} s")
    finally:
        for daemon in daemons.values():
            with contextlib.suppress(Exception):
                await daemon.stop()
        with contextlib.suppress(Exception):
            await _node_empty(observer_cd, nodes["containerd"], timeout=1)
            await _node_empty(observer_dk, nodes["docker"], timeout=1)
        await observer_cd.close()
        await observer_dk.close()
        shutil.rmtree(work, ignore_errors=True)
    return out, {**versions, "socket": socket}
