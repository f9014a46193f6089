"""Pod startup latency on Docker, against a bare ``docker run`` measured in the same run.

Where it sits: ``bench/pods`` (``python -m bench.pods docker``). The whole runtime path
runs for real: ``kstate.daemon.Daemon`` in this process (SQLite store, API server on a
free loopback port, controller manager, scheduler, node agent over the Docker adapter,
proxy), the RC created through ``daemon.client``, the pods timed by a watch.

Definitions (the same end point on both sides: the runtime has started the container
process and the client has learnt it):

* **kstate pod startup**: from the pod's creation seen through the watch (ADDED; the RC
  controller created it) to the watch showing it Ready. The pod has no readiness probe,
  so Ready = its container reported running (Kubernetes' rule), and Running coincides.
  This is Kubernetes' pod-startup SLI (creation to Running through a watch; no image
  pull: ``imagePullPolicy: Never``, the image is local).
* **floor: bare ``docker run -d``**: from spawning ``docker run -d`` to its exit — the
  CLI returns once the engine has created *and started* the container. Same image, same
  command, same bridge network (``kstate0``), the same number of containers at once as
  the RC has replicas (the node agent starts pods concurrently, one worker per pod).
* **second floor: a pod by hand**: what a pod costs the engine whatever drives it —
  a sandbox container (the adapter's pause command) on ``kstate0``, then the app
  container in its network namespace (``--network container:<sandbox>``), two
  ``docker run -d`` back to back, again all pods at once.

Also: RC created -> every replica Ready (the user's view of "20 replicas up").

Repetitions interleave floor, pod-by-hand and kstate so the machine's noise hits each
alike. Every container made here is removed (labels ``io.kstate.node.name=<node>`` for
kstate's, ``io.kstate.bench=<run id>`` for the floors').
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.pods.common import HTTPD_COMMAND, PodTracker, rc
from bench.report import percentile as pct
from kstate.api.client import ApiClient
from kstate.api.helpers import get_condition
from kstate.api.objects import Node, Pod, ReplicationController
from kstate.errors import NotFound
from kstate.runtime.base import PAUSE_COMMAND

IMAGE = "kstate/httpd:1"
NETWORK = "kstate0"
PAUSE = PAUSE_COMMAND  # the Docker adapter's sandbox command


@dataclass
class DockerRep:
    floor: list[float]  #: bare docker run -d, per container (s)
    by_hand: list[float]  #: sandbox + app container by hand, per pod (s)
    startup: list[float]  #: kstate: created -> Ready seen, per pod (s)
    running: list[float]  #: kstate: created -> Running seen, per pod (s)
    rc_all_ready: float  #: RC created -> every replica Ready (s)
    floor_all: float  #: first docker run spawned -> the last one returned (s)
    relists: int = 0
    to_scheduled: list[float] = field(default_factory=list)  #: created -> bound seen
    to_running: list[float] = field(default_factory=list)  #: bound seen -> Running seen
    #: one at a time (nothing else starting): bare docker run, pod by hand, kstate pod
    single: tuple[float, float, float] = (float("nan"),) * 3


# --------------------------------------------------------------------------- docker CLI


async def _docker(*args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        "docker", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args[:3])}...: {err.decode().strip()}")
    return proc.returncode or 0, out.decode().strip()


async def _timed_run(*args: str) -> tuple[float, str]:
    t = time.perf_counter()
    _, cid = await _docker("run", "-d", *args)
    return time.perf_counter() - t, cid


async def bare_floor(count: int, label: str) -> tuple[list[float], float]:
    """``count`` concurrent ``docker run -d`` of the pod's image and command."""
    t0 = time.perf_counter()
    runs = await asyncio.gather(*(
        _timed_run("--network", NETWORK, "--label", label, IMAGE, *HTTPD_COMMAND)
        for _ in range(count)))
    return [t for t, _ in runs], time.perf_counter() - t0


async def _pod_by_hand(label: str) -> float:
    t = time.perf_counter()
    _, sandbox = await _docker("run", "-d", "--network", NETWORK, "--label", label,
                               IMAGE, *PAUSE)
    _, _app = await _docker("run", "-d", "--network", f"container:{sandbox}", "--label",
                            label, IMAGE, *HTTPD_COMMAND)
    return time.perf_counter() - t


async def by_hand_floor(count: int, label: str) -> list[float]:
    return list(await asyncio.gather(*(_pod_by_hand(label) for _ in range(count))))


async def remove_labelled(label: str) -> int:
    _, ids = await _docker("ps", "-aq", "--filter", f"label={label}")
    if ids:
        await _docker("rm", "-f", *ids.split())
    return len(ids.split())


def remove_labelled_sync(label: str) -> None:
    ids = subprocess.run(["docker", "ps", "-aq", "--filter", f"label={label}"],
                         capture_output=True, text=True, check=False).stdout.split()
    if ids:
        subprocess.run(["docker", "rm", "-f", *ids], capture_output=True, check=False)


# --------------------------------------------------------------------------- kstate


async def _wait_node_ready(client: ApiClient, name: str, timeout: float = 60.0) -> None:
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        with contextlib.suppress(NotFound):
            node = await client.get(Node, name)
            cond = get_condition(node.status.conditions, "Ready")
            if cond is not None and cond.status == "True":
                return
        await asyncio.sleep(0.1)
    raise TimeoutError(f"node {name} not Ready within {timeout:.0f} s")


@dataclass
class RcRun:
    startup: list[float]
    running: list[float]
    all_ready: float
    relists: int
    to_scheduled: list[float]
    to_running: list[float]


async def kstate_rc(client: ApiClient, name: str, replicas: int, timeout: float) -> RcRun:
    """Create an RC, time its pods to Ready, then delete it and wait for its pods to go."""
    tracker = PodTracker(client, f"app={name}")
    await tracker.start()
    try:
        t0 = time.perf_counter()
        await client.create(rc(name, replicas))
        await tracker.wait(lambda: len(tracker.ready) >= replicas, timeout,
                           f"{replicas} replicas of {name} Ready")
        all_ready = max(tracker.ready.values()) - t0
        out = RcRun(tracker.latencies("ready"), tracker.latencies("running"), all_ready,
                    tracker.relists, tracker.latencies("scheduled"),
                    tracker.latencies("running", since="scheduled"))
        # kubectl does the same: the API default for an RC is to orphan its pods
        await client.delete(ReplicationController, name, "default",
                            propagation_policy="Background")

        async def pods_gone() -> bool:
            listing = await client.list(Pod, "default",
                                        label_selector=f"app={name}")
            return not listing.items

        deadline = time.perf_counter() + timeout
        while not await pods_gone():
            if time.perf_counter() > deadline:
                raise TimeoutError(f"pods of {name} not gone within {timeout:.0f} s")
            await asyncio.sleep(0.2)
        return out
    finally:
        await tracker.stop()


async def _containers_gone(node_label: str, timeout: float = 60.0) -> None:
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        _, ids = await _docker("ps", "-aq", "--filter", f"label={node_label}")
        if not ids:
            return
        await asyncio.sleep(0.2)
    # the agent should have removed them; make sure the next repetition starts clean
    await remove_labelled(node_label)


async def run_docker(replicas: int, reps: int, timeout: float, log: Callable[[str], None]) -> tuple[
        list[DockerRep], dict[str, str]]:
    from kstate.api.server.server import tune_gc
    from kstate.daemon import Daemon, DaemonConfig
    from kstate.runtime import open_runtime
    from kstate.runtime.base import NODE_NAME

    say = log
    run_id = uuid.uuid4().hex[:8]
    node = f"bench-pods-{run_id}"
    floor_label = f"io.kstate.bench={run_id}"
    node_label = f"{NODE_NAME}={node}"
    work = Path(tempfile.mkdtemp(prefix="kstate-bench-pods-"))
    logging.getLogger("transitions").setLevel(logging.WARNING)
    runtime = open_runtime("docker")
    try:
        version = (await runtime.version()).runtime_version
        if not await runtime.image_present(IMAGE):
            raise RuntimeError(f"{IMAGE} is missing: run `kstate image build-base`")
        await runtime.network_info()  # makes the kstate0 network if it is not there yet
    finally:
        await runtime.close()
    tune_gc()  # as ``kstate up`` does
    daemon = Daemon(DaemonConfig(runtime="docker", listen="127.0.0.1:0", data_dir=work,
                                 node_name=node, node_port_address="127.0.0.1"))
    reps_out: list[DockerRep] = []
    try:
        await daemon.start()
        client = daemon.client
        await _wait_node_ready(client, node)
        say(f"daemon up (node {node}); warming up ...")
        # First containers on a fresh daemon pay one-off costs (network attach, image
        # layer cache): one untimed round of each.
        await bare_floor(2, floor_label)
        await by_hand_floor(2, floor_label)
        await remove_labelled(floor_label)
        await kstate_rc(client, f"warm-{run_id}", 2, timeout)
        await _containers_gone(node_label)
        for rep in range(reps):
            floor, floor_all = await bare_floor(replicas, floor_label)
            await remove_labelled(floor_label)
            by_hand = await by_hand_floor(replicas, floor_label)
            await remove_labelled(floor_label)
            k = await kstate_rc(client, f"web-{run_id}-{rep}", replicas, timeout)
            await _containers_gone(node_label)
            # One at a time: the latency of a pod when the engine has nothing else to do.
            one_floor, _ = await bare_floor(1, floor_label)
            await remove_labelled(floor_label)
            one_hand = await by_hand_floor(1, floor_label)
            await remove_labelled(floor_label)
            one = await kstate_rc(client, f"one-{run_id}-{rep}", 1, timeout)
            await _containers_gone(node_label)
            r = DockerRep(floor, by_hand, k.startup, k.running, k.all_ready, floor_all,
                          k.relists, k.to_scheduled, k.to_running,
                          (one_floor[0], one_hand[0], one.startup[0]))
            reps_out.append(r)
            say(f"docker rep {rep + 1}/{reps}: kstate p50 {pct(k.startup, 50):.2f} s "
                f"p99 {pct(k.startup, 99):.2f} s; docker run p50 {pct(floor, 50):.2f} s "
                f"p99 {pct(floor, 99):.2f} s; pod by hand p50 {pct(by_hand, 50):.2f} s; "
                f"one pod {one.startup[0]:.2f} s vs docker run {one_floor[0]:.2f} s")
    finally:
        with contextlib.suppress(Exception):
            await daemon.stop()
        await remove_labelled(floor_label)
        remove_labelled_sync(node_label)
        shutil.rmtree(work, ignore_errors=True)
    return reps_out, {"docker engine": version, "node": node}


# --------------------------------------------------------------------------- report


def summarise(reps: Sequence[DockerRep]) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {k: [] for k in (
        "k50", "k99", "f50", "f99", "h50", "h99", "r50", "r99", "all", "floor_all",
        "s50", "s99", "u50", "u99", "one_f", "one_h", "one_k", "one_ratio")}
    for r in reps:
        out["k50"].append(pct(r.startup, 50))
        out["k99"].append(pct(r.startup, 99))
        out["r50"].append(pct(r.running, 50))
        out["r99"].append(pct(r.running, 99))
        out["f50"].append(pct(r.floor, 50))
        out["f99"].append(pct(r.floor, 99))
        out["h50"].append(pct(r.by_hand, 50))
        out["h99"].append(pct(r.by_hand, 99))
        out["all"].append(r.rc_all_ready)
        out["floor_all"].append(r.floor_all)
        out["s50"].append(pct(r.to_scheduled, 50))
        out["s99"].append(pct(r.to_scheduled, 99))
        out["u50"].append(pct(r.to_running, 50))
        out["u99"].append(pct(r.to_running, 99))
        out["one_f"].append(r.single[0])
        out["one_h"].append(r.single[1])
        out["one_k"].append(r.single[2])
        out["one_ratio"].append(r.single[2] / r.single[0])
    return out
