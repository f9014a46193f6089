"""Pod benchmarks (issue 6): startup latency on Docker, and many pods on simulated nodes.

Where it sits: outside the runtime path; it drives the all-in-one daemon
(``kstate.daemon.Daemon``, in this process) the way a user does — an RC created through
the API client — and watches pods the way Kubernetes' pod-startup SLI is defined
(creation to Running, observed through a watch).

Why it exists: ARCHITECTURE §6 anchors pod startup at Kubernetes' SLO (stateless pod
startup p99 <= 5 s) and issue 6 sets the goals: on Docker, a 20-replica RC with p99 <= 2 s
and at most 1.5x a bare ``docker run`` of the same image measured in the same run; with
the fake runtime, 1,000 simulated nodes and 30,000 pods reaching Running, with time and
memory reported.

Parts (``--part``, default both):

* ``docker`` — ``bench/pods/docker.py``: kstate pods vs bare ``docker run -d`` vs a pod
  made by hand (sandbox + app container), interleaved, ``--reps`` repetitions;
* ``containerd`` — ``bench/pods/containerd.py`` (issue 17; not in ``both``): kstate pods on
  the containerd adapter vs pods made by bare CRI calls vs kstate on the Docker adapter,
  interleaved, ``--reps`` repetitions;
* ``scale`` — ``bench/pods/scale.py``: ``--nodes`` simulated nodes, ``--pods`` pods from
  ``--rcs`` RCs, each size a fresh subprocess (peak RSS is its own), optional py-spy
  profile of the largest.

Usage::

    .venv/bin/python -m bench.pods                        # short: docker x3, scale 100/2,000
    .venv/bin/python -m bench.pods --full --doc docs/benchmarks/pods.md   # issue 6's sizes
    .venv/bin/python -m bench.pods --part scale --nodes 1000 --pods 10000 30000
    .venv/bin/python -m bench.pods --part containerd --reps 2 --doc docs/benchmarks/pods.md
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import statistics
import sys
from datetime import UTC, datetime
from pathlib import Path

from bench.pods import containerd as cd
from bench.pods import docker as dk
from bench.pods import scale as sc
from bench.pods.common import machine
from bench.report import cell, write_section
from bench.report import percentile as pct

HEADING = "# Pod benchmarks"
DOCKER_SECTION = "## Pod startup on Docker"
SCALE_SECTION = "## Many pods on simulated nodes (fake runtime)"
CONTAINERD_SECTION = "## Pod startup on containerd"
GOAL_P99 = 2.0
GOAL_RATIO = 1.5
SLO_P99 = 5.0


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def docker_table(reps: list[dk.DockerRep], replicas: int) -> tuple[list[str], dict[str, float]]:
    s = dk.summarise(reps)
    m = {k: statistics.median(v) for k, v in s.items()}
    ratio50 = [a / b for a, b in zip(s["k50"], s["f50"], strict=True)]
    ratio99 = [a / b for a, b in zip(s["k99"], s["f99"], strict=True)]
    hand50 = [a / b for a, b in zip(s["k50"], s["h50"], strict=True)]
    hand99 = [a / b for a, b in zip(s["k99"], s["h99"], strict=True)]
    m.update(ratio50=statistics.median(ratio50), ratio99=statistics.median(ratio99),
             hand50=statistics.median(hand50), hand99=statistics.median(hand99))
    lines = [
        f"| what ({replicas} at once) | p50 s | p99 s | kstate / this, p50 | p99 |",
        "|---|---:|---:|---:|---:|",
        f"| **kstate pod**: created -> Ready seen through a watch | {cell(s['k50'], '.2f')} "
        f"| {cell(s['k99'], '.2f')} | | |",
        f"| kstate pod: created -> Running seen | {cell(s['r50'], '.2f')} | "
        f"{cell(s['r99'], '.2f')} | | |",
        f"| **floor: bare `docker run -d`** (same image, command, network) | "
        f"{cell(s['f50'], '.2f')} | {cell(s['f99'], '.2f')} | "
        f"**{cell(ratio50, '.2f')}** | **{cell(ratio99, '.2f')}** |",
        f"| pod by hand: sandbox + app container, two `docker run -d` | "
        f"{cell(s['h50'], '.2f')} | {cell(s['h99'], '.2f')} | {cell(hand50, '.2f')} | "
        f"{cell(hand99, '.2f')} |",
        "",
        f"| kstate pod, by step ({replicas} at once) | p50 s | p99 s |", "|---|---:|---:|",
        f"| created -> bound to the node (RC controller, scheduler; seen by the watch) | "
        f"{cell(s['s50'], '.2f')} | {cell(s['s99'], '.2f')} |",
        f"| bound -> Running (node agent: sandbox, app container, status write) | "
        f"{cell(s['u50'], '.2f')} | {cell(s['u99'], '.2f')} |",
        "",
        "| one pod alone (nothing else starting) | seconds | kstate / this |",
        "|---|---:|---:|",
        f"| kstate pod (RC of 1): created -> Ready seen | {cell(s['one_k'], '.2f')} | |",
        f"| bare `docker run -d` | {cell(s['one_f'], '.2f')} | "
        f"{cell(s['one_ratio'], '.2f')} |",
        f"| pod by hand (two `docker run -d`) | {cell(s['one_h'], '.2f')} | "
        f"{statistics.median(s['one_k']) / statistics.median(s['one_h']):.2f} |",
        "",
        "| whole batch | seconds |", "|---|---:|",
        f"| RC created -> all {replicas} replicas Ready | {cell(s['all'], '.2f')} |",
        f"| {replicas} bare `docker run -d`: first spawned -> last returned | "
        f"{cell(s['floor_all'], '.2f')} |",
    ]
    return lines, m


def render_docker(command: str, info: dict[str, str], extra: dict[str, str],
                  args: argparse.Namespace, lines: list[str], m: dict[str, float]) -> str:
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    p99_ok = m["k99"] <= GOAL_P99
    ratio_ok = m["ratio99"] <= GOAL_RATIO and m["ratio50"] <= GOAL_RATIO
    return "\n".join([
        DOCKER_SECTION, "",
        f"Generated by `bench/pods` on {now}. Re-run with:", "",
        f"    {command}", "",
        *(f"- {k}: {v}" for k, v in {**info, **extra}.items()), "",
        "### Method", "",
        "- `kstate.daemon.Daemon` in the benchmark's process with `runtime=\"docker\"`",
        "  (SQLite store, API server on a free loopback port, controller manager,",
        "  scheduler, node agent over the Docker adapter, proxy); an RC of",
        f"  {args.replicas} replicas of `kstate/httpd:1` (the quick start's busybox httpd,",
        "  `imagePullPolicy: Never`, no readiness probe, so Ready = container running)",
        "  created through `daemon.client`.",
        "- **kstate pod startup** = the pod's creation seen through a watch -> the watch",
        "  showing it Ready: Kubernetes' pod-startup SLI (no image pull).",
        "- **Floor** = spawning `docker run -d` -> its exit (the CLI returns once the engine",
        "  has created and started the container), same image, command and bridge network",
        f"  (`kstate0`), {args.replicas} at once as the agent starts the RC's pods at once.",
        "  A kstate pod is two containers — a sandbox holding the network namespace, then",
        "  the app container in it — so the table also has a *pod by hand*: the same two",
        "  `docker run -d` back to back. It is the engine's floor for a pod, whoever drives",
        "  it.",
        f"- {args.reps} repetitions, each: floor, pod by hand, kstate RC (then the RC is",
        "  deleted and every container gone before the next), then the same three with a",
        "  single container/pod (the latency when the engine has nothing else to start);",
        "  one untimed warm-up round first. Figures: median over repetitions of each",
        "  repetition's p50/p99 over its",
        f"  {args.replicas} pods (min..max beside); ratios are per repetition, then the",
        "  median. p99 of 20 values is essentially the slowest pod.",
        "", "### Results", "", *lines, "",
        "| goal | measured (median) | met? |", "|---|---|---|",
        f"| p99 <= {GOAL_P99:.0f} s (Kubernetes' SLO: {SLO_P99:.0f} s) | {m['k99']:.2f} s | "
        f"{'yes' if p99_ok else '**no**'} |",
        f"| kstate / bare `docker run` <= {GOAL_RATIO} | p50 {m['ratio50']:.2f}, p99 "
        f"{m['ratio99']:.2f} | {'yes' if ratio_ok else '**no**'} |",
        f"| (reference) kstate / pod by hand | p50 {m['hand50']:.2f}, p99 {m['hand99']:.2f} "
        "| - |",
        f"| (reference) one pod alone: kstate / bare `docker run` | {m['one_ratio']:.2f} "
        f"({m['one_k']:.2f} s vs {m['one_f']:.2f} s) | - |",
        "",
    ])


def containerd_table(reps: list[cd.ContainerdRep], replicas: int
                     ) -> tuple[list[str], dict[str, float]]:
    def per_rep(values: str, p: float) -> list[float]:
        return [pct(getattr(r, values), p) for r in reps]

    k50, k99 = per_rep("startup", 50), per_rep("startup", 99)
    f50, f99 = per_rep("floor", 50), per_rep("floor", 99)
    d50, d99 = per_rep("docker", 50), per_rep("docker", 99)

    def ratios(a: list[float], b: list[float]) -> list[float]:
        return [x / y for x, y in zip(a, b, strict=True)]

    m = {"k50": statistics.median(k50), "k99": statistics.median(k99),
         "floor50": statistics.median(ratios(k50, f50)),
         "floor99": statistics.median(ratios(k99, f99)),
         "docker50": statistics.median(ratios(k50, d50)),
         "docker99": statistics.median(ratios(k99, d99))}
    lines = [
        f"| what ({replicas} at once) | p50 s | p99 s | kstate on containerd / this, p50 "
        "| p99 |",
        "|---|---:|---:|---:|---:|",
        f"| **kstate pod on containerd**: created -> Ready seen through a watch | "
        f"{cell(k50, '.2f')} | {cell(k99, '.2f')} | | |",
        f"| **floor: a pod by bare CRI** (RunPodSandbox, CreateContainer, StartContainer) | "
        f"{cell(f50, '.2f')} | {cell(f99, '.2f')} | **{cell(ratios(k50, f50), '.2f')}** | "
        f"**{cell(ratios(k99, f99), '.2f')}** |",
        f"| kstate pod on the Docker adapter (same RC, same run) | {cell(d50, '.2f')} | "
        f"{cell(d99, '.2f')} | **{cell(ratios(k50, d50), '.2f')}** | "
        f"**{cell(ratios(k99, d99), '.2f')}** |",
        "",
        "| whole batch | seconds |", "|---|---:|",
        f"| RC created -> all {replicas} replicas Ready (containerd) | "
        f"{cell([r.all_ready for r in reps], '.2f')} |",
    ]
    return lines, m


def render_containerd(command: str, info: dict[str, str], extra: dict[str, str],
                      args: argparse.Namespace, lines: list[str]) -> str:
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return "\n".join([
        CONTAINERD_SECTION, "",
        f"Generated by `bench/pods` on {now}. Re-run with:", "",
        f"    {command}", "",
        *(f"- {k}: {v}" for k, v in {**info, **extra}.items()), "",
        "### Method", "",
        "- Two `kstate.daemon.Daemon`s in the benchmark's process, one with",
        "  `runtime=\"containerd\"` (kstate's containerd over CRI, pods on the CNI bridge",
        "  `kstate-cni0`), one with `runtime=\"docker\"`; an RC of",
        f"  {args.replicas} replicas of `kstate/httpd:1` (`imagePullPolicy: Never`, no",
        "  readiness probe) created through each daemon's client.",
        "- **kstate pod startup** = creation seen through a watch -> Ready seen (as on",
        "  Docker). **Floor** = a pod made by bare CRI calls over the same generated stubs",
        "  (RunPodSandbox -> CreateContainer -> StartContainer, same image, command and",
        f"  namespaces), {args.replicas} at once: the least any kubelet pays on this",
        "  containerd.",
        f"- {args.reps} repetitions, each: bare CRI, kstate on containerd, kstate on Docker",
        "  (every container gone before the next); one untimed warm-up first. Figures:",
        "  median over repetitions of each repetition's p50/p99 (min..max beside); ratios",
        "  per repetition, then the median. Short on purpose (a shared 2-core machine).",
        "- Reading the ratio: the RC controller creates pods in slow-start batches (1, 2,",
        "  4, 8, ...), so kstate's pods reach containerd a little spread out, while the",
        "  floor sends all of them at once; on a loaded machine the floor's pods then queue",
        "  longer than kstate's, and the ratio can fall below 1. The Docker row is the same",
        "  RC through the Docker adapter, interleaved in the same run.",
        "", "### Results", "", *lines, "",
    ])


def render_scale(command: str, info: dict[str, str], runs: list[sc.ScaleRun]) -> str:
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    big = max(runs, key=lambda r: r.pods)
    parts = [
        SCALE_SECTION, "",
        f"Generated by `bench/pods` on {now}. Re-run with:", "",
        f"    {command}", "",
        *(f"- {k}: {v}" for k, v in info.items()), "",
        "### Method", "",
        "- `kstate.daemon.Daemon` with `runtime=\"fake\"` in a fresh subprocess per size:",
        "  store, API server (HTTPS listener on loopback, idle), controller manager,",
        "  scheduler, `SimulatedCluster` (one real `NodeAgent` per node over a",
        "  `FakeRuntime`; capacity 32 CPU / 256 GiB / 110 pods), proxy.",
        "- Pods come from RCs of the quick start's pod (no requests, no probes) created",
        "  through `daemon.client`: the RC controller (burst 500, slow start) creates them,",
        "  the scheduler binds them, the agents run them and write their status.",
        "- *all Running* = first RC create -> the watch has seen every pod Running (Ready",
        "  at the same moment: no probes); *pods/s* = pods / that; *created->Running* per",
        "  pod; *RSS* = the whole process (the daemon plus the benchmark's watch, which",
        "  keeps three floats per pod): with the nodes up, peak (`VmHWM`), and the growth",
        "  per pod from nodes-up to the end (of the pods Running, if the run timed out).",
        "", "### Results", "", *sc.SCALE_HEADER, *(sc.scale_row(r) for r in runs), "",
    ]
    for r in runs:
        if r.pods != big.pods:
            continue
        parts += [f"Run with {r.nodes:,} nodes, {r.pods:,} pods:", "",
                  *sc.timeline_lines(r), ""]
    for r in runs:
        if r.profile:
            parts += ["### Where the time goes", "",
                      f"py-spy (`--nonblocking`, 50 Hz) over part of the {r.pods:,}-pod run, "
                      "from the moment 5% of the pods run:", "", *r.profile, ""]
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.pods",
                                 description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--part", choices=["docker", "scale", "both", "containerd"],
                    default="both")
    ap.add_argument("--full", action="store_true",
                    help="issue 6's sizes: docker x5; scale 1,000 nodes, 30,000 pods "
                         "(and 10,000 for the trend)")
    ap.add_argument("--replicas", type=int, default=20, help="docker: RC size")
    ap.add_argument("--reps", type=int, default=None, help="docker: repetitions (3; full 5)")
    ap.add_argument("--nodes", type=int, default=None, help="scale: nodes (100; full 1,000)")
    ap.add_argument("--pods", type=int, nargs="+", default=None,
                    help="scale: pod counts, one run each (2,000; full 10,000 30,000)")
    ap.add_argument("--rcs", type=int, default=None,
                    help="scale: RCs the pods are spread over (default pods / 1,000, >= 1)")
    ap.add_argument("--store", choices=["sqlite", "memory"], default="sqlite",
                    help="scale: the daemon's store (sqlite: as `kstate up`)")
    ap.add_argument("--profile", type=float, default=None, metavar="SECONDS",
                    help="scale: py-spy the largest run for this long (0: off; full 60)")
    ap.add_argument("--timeout", type=float, default=3600.0,
                    help="per run, seconds (scale: then report the figures so far)")
    ap.add_argument("--doc", type=Path, default=None,
                    help="write/replace this benchmark's sections in a markdown file")
    args = ap.parse_args(argv)
    args.reps = args.reps or (5 if args.full else 3)
    args.nodes = args.nodes or (1000 if args.full else 100)
    args.pods = args.pods or ([10_000, 30_000] if args.full else [2000])
    args.profile = args.profile if args.profile is not None else (60.0 if args.full else 0.0)
    command = " ".join([".venv/bin/python -m bench.pods",
                        *map(shlex.quote, argv if argv is not None else sys.argv[1:])])
    info = machine()
    if args.doc is not None and not args.doc.exists():
        args.doc.parent.mkdir(parents=True, exist_ok=True)
        args.doc.write_text(f"{HEADING}\n\nIssue 6's benchmarks; the index is "
                            "[docs/benchmarks.md](../benchmarks.md).\n")

    if args.part in ("docker", "both"):
        reps, extra = asyncio.run(dk.run_docker(args.replicas, args.reps, 300.0, log))
        lines, m = docker_table(reps, args.replicas)
        print("\n".join(lines))
        print(f"\ngoal p99 <= {GOAL_P99} s: {m['k99']:.2f} s; ratio to docker run p50 "
              f"{m['ratio50']:.2f} p99 {m['ratio99']:.2f} (goal <= {GOAL_RATIO})")
        if args.doc is not None:
            info_now = {**info, "load average (1 min) at end": f"{os.getloadavg()[0]:.1f}"}
            write_section(args.doc, DOCKER_SECTION,
                          render_docker(command, info_now, extra, args, lines, m))
            log(f"wrote {args.doc}")

    if args.part == "containerd":
        cd_reps, extra = asyncio.run(cd.run_containerd(args.replicas, args.reps, 300.0, log))
        lines, m = containerd_table(cd_reps, args.replicas)
        print("\n".join(lines))
        print(f"\nkstate on containerd p50 {m['k50']:.2f} s p99 {m['k99']:.2f} s; / bare CRI "
              f"p50 {m['floor50']:.2f} p99 {m['floor99']:.2f}; / Docker adapter p50 "
              f"{m['docker50']:.2f} p99 {m['docker99']:.2f}")
        if args.doc is not None:
            info_now = {**info, "load average (1 min) at end": f"{os.getloadavg()[0]:.1f}"}
            write_section(args.doc, CONTAINERD_SECTION,
                          render_containerd(command, info_now, extra, args, lines))
            log(f"wrote {args.doc}")

    if args.part in ("scale", "both"):
        runs = []
        largest = max(args.pods)
        for pods in args.pods:
            rcs = args.rcs or max(1, pods // 1000)
            log(f"scale: {args.nodes} nodes, {pods} pods in {rcs} RCs ...")
            run = sc.run_scale_subprocess(args.nodes, pods, rcs, args.store, args.timeout,
                                          args.profile if pods == largest else 0.0)
            log(f"  {'all' if run.finished else 'NOT all'} Running after "
                f"{run.all_running_s:.1f} s, peak RSS {run.hwm_mib:.0f} MiB")
            runs.append(run)
        print("\n".join([*sc.SCALE_HEADER, *(sc.scale_row(r) for r in runs)]))
        for r in runs:
            if r.profile:
                print("\n".join(r.profile))
        if args.doc is not None:
            info_now = {**info, "load average (1 min) at end": f"{os.getloadavg()[0]:.1f}"}
            write_section(args.doc, SCALE_SECTION, render_scale(command, info_now, runs))
            log(f"wrote {args.doc}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
