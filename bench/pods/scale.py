"""Many pods on many simulated nodes: time until every pod runs, and the daemon's memory.

Where it sits: ``bench/pods`` (``python -m bench.pods scale``). ``kstate.daemon.Daemon``
with ``runtime="fake"`` runs in this process — store (SQLite by default, as ``kstate up``),
API server, controller manager, scheduler, ``SimulatedCluster`` of ``--nodes`` real node
agents over fake runtimes, proxy. The pods come from ``--rcs`` ReplicationControllers
created through ``daemon.client``; the RC controller creates them (burst 500, slow
start), the scheduler binds them, the simulated agents run them and write their status.

Measured: seconds from the first RC create until the watch has seen every pod Running
(and Ready: no probes, so the same moment), the rate of pods reaching Running, per-pod
created -> Running latency, and the process's memory: ``VmRSS`` sampled every second and
the peak ``VmHWM``, before the daemon starts, once its nodes are Ready, and at the end.
The measuring watch lives in the same process; it holds three floats per pod.

``--profile SECONDS`` samples the process with py-spy (``--nonblocking``, so the daemon
is not paused) for that long once the pods are flowing, and groups the samples by
component (whose task: node agents, RC controller, scheduler, ...) and by layer (where
the CPU is: API admission, store, codec, ...).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.pods.common import PodTracker, rc, rss_kib
from bench.report import percentile as pct
from kstate.api.objects import Node


@dataclass
class ScaleRun:
    nodes: int
    pods: int
    rcs: int
    store: str
    nodes_ready_s: float  #: daemon start -> every Node registered (SimulatedCluster.start)
    all_running_s: float  #: first RC create -> every pod Running seen
    all_created_s: float  #: first RC create -> every pod seen created
    startup: list[float]  #: per pod, created -> Running seen
    rss_before_mib: float  #: this process before the daemon started
    rss_nodes_mib: float  #: after the nodes are up
    rss_end_mib: float  #: every pod running
    hwm_mib: float  #: peak RSS of the process
    timeline: list[tuple[float, int, int, float]] = field(default_factory=list)
    relists: int = 0
    profile: list[str] = field(default_factory=list)
    finished: bool = True  #: False: stopped at the timeout (figures so far)

    @property
    def rate(self) -> float:
        return self.pods / self.all_running_s


# --------------------------------------------------------------------------- profile

#: Where a sample's task belongs: the first kstate frame (root to leaf) that is not
#: shared plumbing names it.
_PLUMBING = ("kstate/control/informer.py", "kstate/api/client.py", "kstate/store/watch.py")
_COMPONENTS = (
    ("kstate/node/", "node agents (simulated)"),
    ("kstate/runtime/", "node agents (simulated)"),
    ("kstate/control/schedulerd.py", "scheduler"),
    ("kstate/control/scheduling/", "scheduler"),
    ("kstate/control/scheduler.py", "scheduler"),
    ("kstate/control/manager.py", "controller manager"),
    ("kstate/control/", "controller manager"),
    ("kstate/proxy/", "service proxy"),
    ("kstate/api/server/", "API server (direct)"),
    ("kstate/store/", "store (writer, fan-out)"),
    ("bench/pods/", "the benchmark's own watch"),
)
#: Where the CPU is: the leaf-most kstate frame.
_LAYERS = (
    ("kstate/api/server/", "API server: admission, update paths, watch cache"),
    ("kstate/api/validation.py", "API objects: validation"),
    ("kstate/api/codec.py", "API objects: codec (to/from dict)"),
    ("kstate/api/defaults.py", "API objects: defaulting"),
    ("kstate/api/", "API objects: other (frozen values, helpers, quantities)"),
    ("kstate/store/", "store (SQLite backend, watch hub)"),
    ("kstate/control/scheduling/", "scheduling decision and snapshot"),
    ("kstate/control/", "controllers, informers, executor"),
    ("kstate/node/", "node agents, pod workers (podsync)"),
    ("kstate/machines/", "lifecycle machines"),
    ("kstate/runtime/", "fake runtime"),
    ("kstate/clock.py", "clock (timers, sleeps)"),
    ("bench/", "benchmark watch"),
)


def _frame_file(frame: str) -> str:
    # py-spy raw frames look like "function (path/to/file.py:123)"
    start = frame.rfind("(")
    return frame[start + 1:] if start >= 0 else frame


def group_samples(lines: Sequence[str], top: int = 15) -> list[str]:
    by_component: collections.Counter[str] = collections.Counter()
    by_layer: collections.Counter[str] = collections.Counter()
    by_function: collections.Counter[str] = collections.Counter()
    by_thread: collections.Counter[str] = collections.Counter()
    total = 0
    idle = 0
    for line in lines:
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        if frames[0].startswith("thread ("):
            thread = frames.pop(0).partition(": ")[2]
            by_thread[_thread_kind(thread)] += count
        total += count
        if not frames:  # a thread py-spy caught with no Python frame
            by_component["other (event loop, asyncio, GC)"] += count
            by_layer["Python runtime, asyncio, stdlib (no kstate frame)"] += count
            continue
        leaf = frames[-1]
        if "select" in leaf and ("selectors.py" in leaf or "epoll" in leaf):
            idle += count
            by_component["event loop idle (waiting for I/O)"] += count
            by_layer["event loop idle (waiting for I/O)"] += count
            continue
        files = [_frame_file(f) for f in frames]
        component = "other (event loop, asyncio, GC)"
        for f in files:
            if ("kstate/" in f or "bench/" in f) and not any(p in f for p in _PLUMBING):
                component = next((label for key, label in _COMPONENTS if key in f),
                                 component)
                break
        else:
            if any("kstate/" in f for f in files):
                component = "informers and watch delivery (shared plumbing)"
        by_component[component] += count
        layer = "Python runtime, asyncio, stdlib (no kstate frame)"
        for f in reversed(files):
            if "kstate/" in f or "bench/" in f:
                layer = next((label for key, label in _LAYERS if key in f), f)
                break
        by_layer[layer] += count
        by_function[leaf.replace(str(Path.cwd()) + "/", "")] += count
    if not total:
        return ["(py-spy collected no samples)"]
    out = [f"{total:,} samples of active threads ({idle / total:.0%} of them the event "
           "loop waiting in `select`).", "",
           "| thread | share of samples |", "|---|---:|"]
    out += [f"| {k} | {v / total:.0%} |" for k, v in by_thread.most_common()]
    out += ["", "| whose task (component) | share of samples |", "|---|---:|"]
    out += [f"| {k} | {v / total:.0%} |" for k, v in by_component.most_common()]
    out += ["", "| where the CPU is (leaf-most kstate module) | share of samples |",
            "|---|---:|"]
    out += [f"| {k} | {v / total:.0%} |" for k, v in by_layer.most_common()]
    out += ["", "Top leaf functions:", "", "| function | share |", "|---|---:|"]
    out += [f"| `{k}` | {v / total:.1%} |" for k, v in by_function.most_common(top)]
    return out


def _thread_kind(name: str) -> str:
    if name == "MainThread":
        return "main thread (the event loop: every component)"
    if name.startswith("kstate-sqlite-commit"):
        return "SQLite commit thread (COMMIT, fsync, compaction)"
    if name.startswith("ThreadPoolExecutor") or name.startswith("asyncio"):
        return "thread pools (SQLite reads, to_thread)"
    return name


async def _py_spy(seconds: float, rate: int = 50) -> list[str]:
    spy = Path(sys.executable).with_name("py-spy")
    exe = str(spy) if spy.exists() else (shutil.which("py-spy") or "")
    if not exe:
        return ["(py-spy not found)"]
    out = Path(tempfile.mkstemp(prefix="kstate-pyspy-", suffix=".txt")[1])
    proc = await asyncio.create_subprocess_exec(
        exe, "record", "--pid", str(os.getpid()), "--duration", str(int(seconds)),
        "--rate", str(rate), "--format", "raw", "--nonblocking", "--threads",
        "--output", str(out),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    _, err = await proc.communicate()
    try:
        lines = out.read_text().splitlines()
    except OSError:
        lines = []
    out.unlink(missing_ok=True)
    if proc.returncode != 0 and not lines:
        return [f"(py-spy failed: {err.decode().strip()[-300:]})"]
    return group_samples(lines)


# --------------------------------------------------------------------------- run


async def run_scale(nodes: int, pods: int, rcs: int, store: str, timeout: float,
                    profile_seconds: float, log: Any) -> ScaleRun:
    from kstate.api.server.server import tune_gc
    from kstate.daemon import Daemon, DaemonConfig

    logging.getLogger("transitions").setLevel(logging.WARNING)
    work = Path(tempfile.mkdtemp(prefix="kstate-bench-scale-"))
    store_url = "memory://" if store == "memory" else ""  # "": the daemon's SQLite
    rss_before = rss_kib()[0] / 1024
    tune_gc()  # as ``kstate up`` does
    daemon = Daemon(DaemonConfig(runtime="fake", nodes=nodes, listen="127.0.0.1:0",
                                 data_dir=work, store=store_url,
                                 node_port_address="127.0.0.1"))
    t0 = time.perf_counter()
    tracker: PodTracker | None = None
    try:
        await daemon.start()
        client = daemon.client
        registered = len((await client.list(Node)).items)
        if registered != nodes:
            raise RuntimeError(f"{registered} nodes registered, {nodes} asked for")
        nodes_ready = time.perf_counter() - t0
        rss_nodes = rss_kib()[0] / 1024
        log(f"{nodes} simulated nodes up in {nodes_ready:.1f} s, RSS {rss_nodes:.0f} MiB; "
            f"creating {rcs} RCs, {pods} pods ...")
        tracker = PodTracker(client)
        await tracker.start()
        sizes = [pods // rcs + (1 if i < pods % rcs else 0) for i in range(rcs)]
        started = time.perf_counter()
        for i, size in enumerate(sizes):
            await client.create(rc(f"scale-{i}", size))
        timeline: list[tuple[float, int, int, float]] = []
        profile: list[str] = []
        spy: asyncio.Task[list[str]] | None = None
        last_log = started
        while len(tracker.running) < pods:
            await asyncio.sleep(1.0)
            now = time.perf_counter() - started
            timeline.append((now, len(tracker.added), len(tracker.running),
                             rss_kib()[0] / 1024))
            if spy is None and profile_seconds and len(tracker.running) > pods * 0.05:
                spy = asyncio.ensure_future(_py_spy(profile_seconds))
            if time.perf_counter() - last_log >= 15:
                last_log = time.perf_counter()
                log(f"  {now:6.0f} s: {len(tracker.added):,} created, "
                    f"{len(tracker.running):,} running, RSS {timeline[-1][3]:.0f} MiB")
            if now > timeout:
                log(f"timeout: {len(tracker.running):,} of {pods:,} pods running after "
                    f"{timeout:.0f} s; reporting the figures so far")
                break
        finished = len(tracker.running) >= pods
        all_running = (max(tracker.running.values()) if finished
                       else time.perf_counter()) - started
        all_created = max(tracker.added.values()) - started
        if spy is not None:
            try:
                profile = await spy
            except Exception as err:  # the run's figures matter more than its profile
                profile = [f"(profile failed: {err!r})"]
        rss_end, hwm = rss_kib()
        return ScaleRun(nodes, pods, rcs, store or "sqlite", nodes_ready, all_running,
                        all_created, tracker.latencies("running"), rss_before, rss_nodes,
                        rss_end / 1024, hwm / 1024, timeline, tracker.relists, profile,
                        finished)
    finally:
        if tracker is not None:
            await tracker.stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(daemon.stop(), 300)
        shutil.rmtree(work, ignore_errors=True)


def run_scale_subprocess(nodes: int, pods: int, rcs: int, store: str, timeout: float,
                         profile_seconds: float) -> ScaleRun:
    """One run in a fresh interpreter, so that its peak RSS is its own."""
    import json

    code = (
        "import asyncio, dataclasses, json, sys\n"
        "from bench.pods.scale import run_scale\n"
        "def log(m): print(m, file=sys.stderr, flush=True)\n"
        f"r = asyncio.run(run_scale({nodes}, {pods}, {rcs}, {store!r}, {timeout}, "
        f"{profile_seconds}, log))\n"
        "print('RESULT ' + json.dumps(dataclasses.asdict(r)))\n")
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, "-c", code], cwd=root, stdout=subprocess.PIPE,
                          text=True, check=False,
                          env={**os.environ, "PYTHONPATH": str(root)})
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            data = json.loads(line[len("RESULT "):])
            data["timeline"] = [tuple(t) for t in data["timeline"]]
            return ScaleRun(**data)
    raise RuntimeError(f"scale run failed (exit {proc.returncode})")


def timeline_lines(run: ScaleRun, every: float | None = None) -> list[str]:
    """The run's samples, one row per ``every`` seconds (default: about 25 rows)."""
    if every is None:
        span = run.timeline[-1][0] if run.timeline else 0.0
        every = max(10.0, 10.0 * round(span / 25 / 10))
    lines = ["| seconds | pods created | pods running | RSS MiB |", "|---:|---:|---:|---:|"]
    next_at = 0.0
    for t, created, running, rss in run.timeline:
        if t >= next_at:
            lines.append(f"| {t:.0f} | {created:,} | {running:,} | {rss:,.0f} |")
            next_at += every
    last = run.timeline[-1] if run.timeline else None
    if last is not None and not lines[-1].startswith(f"| {last[0]:.0f} |"):
        lines.append(f"| {last[0]:.0f} | {last[1]:,} | {last[2]:,} | {last[3]:,.0f} |")
    return lines


def scale_row(run: ScaleRun) -> str:
    running = run.timeline[-1][2] if run.timeline else 0
    done = run.pods if run.finished else running
    per_pod_kib = (run.rss_end_mib - run.rss_nodes_mib) * 1024 / max(1, done)
    total = (f"{run.all_running_s:,.1f}" if run.finished
             else f"not reached: {running:,} Running at {run.all_running_s:,.0f}")
    return (f"| {run.nodes:,} | {run.pods:,} | {run.rcs} | {run.store} | "
            f"{run.nodes_ready_s:.1f} | {total} | {done / run.all_running_s:,.0f} | "
            f"{pct(run.startup, 50):,.1f} | {pct(run.startup, 99):,.1f} | "
            f"{run.rss_nodes_mib:,.0f} | {run.hwm_mib:,.0f} | {per_pod_kib:,.1f} |")


SCALE_HEADER = [
    "| nodes | pods | RCs | store | nodes up s | all Running s | pods/s | "
    "created->Running p50 s | p99 s | RSS with nodes MiB | peak RSS MiB | KiB per pod |",
    "|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
]
