#!/usr/bin/env python3
"""The shipped Kubernetes scenarios: states/s and time to verdict of kstate's checker.

Where it sits: ``bench/verify`` (a benchmark, not a test), beside ``bench_twophase.py``;
results are appended to ``docs/benchmarks/verify.md``. Issue 7 asks, besides the TwoPhase
comparison with Spin, for "states/s and time to verdict for the shipped k8s scenarios":
every ``specs/scenarios/*.yaml`` is loaded and checked exactly as ``kstate verify`` does
it (``load_scenario`` -> ``scenario.model()`` -> ``Checker(model).bfs()``), in a fresh
subprocess per run so that peak memory is the run's own.

Depth: a scenario without ``bounds`` is explored exhaustively (its verdicts are real
``holds`` / ``violated``); a scenario with ``bounds.max_depth`` is explored to
``min(bounds.max_depth, --max-depth)``, so every run stays within minutes on a 2-core
machine (its verdicts are then ``bounded``). ``--max-depth`` is the fixed cap.

Configurations per scenario: 1 and 2 workers; symmetry off, and symmetry on where the
scenario opts in (``symmetry: true``) — or, with ``--symmetry``, wherever the model's
representative is exact for it — as ``kstate verify`` decides: with liveness properties
only where ``symmetry_exact`` holds (docs/checker.md, "Liveness under symmetry").

Figures (medians of ``--reps``): distinct states, states generated, depth reached, the
search's own time (``CheckResult.elapsed``) and distinct states per second of it, time to
verdict (wall: load the YAML, build the model, search, verdicts), the checker's own
bookkeeping bytes per state and the coordinator's peak RSS. ``--profile SCENARIO``
adds a cProfile of one 1-worker run, grouped by layer, per distinct state.

    .venv/bin/python -m bench.verify scenarios                  # short: depth cap 8
    .venv/bin/python -m bench.verify scenarios --full --doc docs/benchmarks/verify.md

``--baseline TREE`` runs every configuration on the code in another tree too (a commit
unpacked with ``git archive <commit> | tar -x -C TREE``), alternated with this one, and
prints the ratios of states/s and of CPU seconds with the counts and verdicts compared:
an A/B measured in one run, on the same load. ``--no-por`` explores the full graph (as
``kstate verify --no-por``; a tree from before the reduction has only that): the cost
per state, which the reduction would otherwise mix with the states it removes.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import shlex
import statistics
import subprocess
import sys
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.machine import describe_machine
from bench.report import write_section

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "specs" / "scenarios"
SECTION = "## Kubernetes scenarios: states/s and time to verdict"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- one run


CHILD = r"""
import json, resource, sys, time
t0 = time.perf_counter()
from kstate.verify.checker import Checker, Kind
from kstate.verify.system import load_scenario
path, depth, symmetry, workers, timeout, no_por = json.loads(sys.argv[1])
scenario = load_scenario(path)
model = scenario.model(symmetry=symmetry)
checker = Checker(model).bfs().symmetry(symmetry).workers(workers).max_depth(depth)
checker = checker.max_states(scenario.bounds.max_states).timeout(timeout)
if no_por and hasattr(checker, "por"):  # a tree from before the reduction has none
    checker = checker.por(False)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
cpu0 = time.process_time()
r = checker.run()
wall = time.perf_counter() - t0
kids = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({
    "distinct": r.distinct_states, "generated": r.states_generated, "depth": r.depth,
    "elapsed": r.elapsed, "wall": wall, "stop": r.stop_reason.value,
    "cpu": time.process_time() - cpu0 + kids.ru_utime + kids.ru_stime,
    "complete": r.complete, "symmetry": r.symmetry,
    "verdicts": sorted({p.verdict.value for p in r.properties}),
    "failed": [p.name for p in r.properties if p.verdict.failed],
    "bytes_per_state": r.bytes_per_state,
    "rss_base_kb": base, "rss_peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
}))
"""


def run_child(path: Path, depth: int | None, symmetry: bool, workers: int,
              timeout: float, tree: Path = ROOT, no_por: bool = False) -> dict[str, Any]:
    """One run in a fresh process, of the code (and the scenario file) in ``tree``
    (``no_por``: the full graph, as ``kstate verify --no-por``)."""
    path = tree / path.relative_to(ROOT)
    out = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps([str(path), depth, symmetry, workers,
                                                  timeout, no_por])],
        cwd=tree, capture_output=True, text=True, check=False,
        env={**os.environ, "PYTHONPATH": str(tree)})
    if out.returncode != 0:
        raise RuntimeError(f"{path.name}: checker run failed:\n{out.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


# --------------------------------------------------------------------------- plan


def plan(names: list[str], cap: int | None, workers: list[int],
         try_symmetry: bool = False) -> list[dict[str, Any]]:
    """One entry per (scenario, symmetry, workers) configuration."""
    from kstate.verify.checker import Kind
    from kstate.verify.system import load_scenario

    configs = []
    for name in names:
        path = SCENARIOS / f"{name}.yaml"
        scenario = load_scenario(path)
        model = scenario.model()
        liveness = any(Kind(p.kind).liveness for p in model.properties())
        bound = scenario.bounds.max_depth
        depth = None if bound is None else (bound if cap is None else min(bound, cap))
        symmetric = _symmetric(scenario, liveness, try_symmetry)
        for symmetry in ([False, True] if symmetric else [False]):
            for w in workers:
                configs.append({
                    "scenario": name, "path": path, "depth_bound": depth,
                    "scenario_bound": bound, "liveness": liveness, "symmetry": symmetry,
                    "workers": w, "nodes": len(scenario.nodes),
                    "properties": len(model.properties()), "runs": []})
    return configs


def _symmetric(scenario: Any, liveness: bool, try_symmetry: bool) -> bool:
    """Whether a symmetry-on run is made, as ``kstate verify`` would honour it."""
    if not (scenario.symmetry or try_symmetry):
        return False
    return not liveness or bool(scenario.model(symmetry=True).symmetry_exact)


def med(runs: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(r[key] for r in runs))


def span(runs: list[dict[str, Any]], key: str, fmt: str) -> str:
    values = [r[key] for r in runs]
    m = statistics.median(values)
    if len(values) == 1:
        return f"{m:{fmt}}"
    return f"{m:{fmt}} ({min(values):{fmt}}..{max(values):{fmt}})"


def table(configs: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| scenario | depth bound | sym | workers | distinct states | generated | depth "
        "| verdict | search s | states/s | time to verdict s | B/state (checker) "
        "| peak RSS MiB |",
        "|---|---:|:-:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for c in configs:
        runs = c["runs"]
        r0 = runs[0]
        for r in runs:
            r["rate"] = r["distinct"] / r["elapsed"] if r["elapsed"] > 0 else 0.0
            r["rss_mib"] = r["rss_peak_kb"] / 1024
        bound = "exhaustive" if c["depth_bound"] is None else str(c["depth_bound"])
        if c["depth_bound"] is not None and c["scenario_bound"] != c["depth_bound"]:
            bound += f" (scenario: {c['scenario_bound']})"
        verdict = "/".join(r0["verdicts"]) + (f" FAILED {r0['failed']}" if r0["failed"]
                                               else "")
        lines.append(
            f"| {c['scenario']}{' (liveness)' if c['liveness'] else ''} | {bound} | "
            f"{'on' if c['symmetry'] else 'off'} | {c['workers']} | {r0['distinct']:,} | "
            f"{r0['generated']:,} | {r0['depth']} | {verdict} | "
            f"{span(runs, 'elapsed', '.2f')} | {span(runs, 'rate', ',.0f')} | "
            f"{span(runs, 'wall', '.2f')} | {med(runs, 'bytes_per_state'):.0f} | "
            f"{med(runs, 'rss_mib'):.0f} |")
    return lines


def summary(configs: list[dict[str, Any]]) -> list[str]:
    """Speed-ups of 2 workers and of symmetry, from medians within this run."""
    by = {(c["scenario"], c["symmetry"], c["workers"]): c for c in configs}
    lines = ["| scenario | search time, 2 workers / 1 worker (< 1: faster) "
             "| symmetry: states kept | symmetry: search time |",
             "|---|---:|---:|---:|"]
    for name in dict.fromkeys(c["scenario"] for c in configs):
        one, two = by.get((name, False, 1)), by.get((name, False, 2))
        speed = (f"{med(two['runs'], 'elapsed') / med(one['runs'], 'elapsed'):.2f}x"
                 if one and two else "-")
        sym = by.get((name, True, 1))
        if sym and one:
            kept = f"{sym['runs'][0]['distinct'] / one['runs'][0]['distinct']:.2f}"
            stime = f"{med(sym['runs'], 'elapsed') / med(one['runs'], 'elapsed'):.2f}x"
        else:
            kept = stime = ("n/a (no `symmetry: true`, or not exact with liveness)"
                            if not sym else "-")
        lines.append(f"| {name} | {speed} | {kept} | {stime} |")
    return lines


def against(configs: list[dict[str, Any]], baseline: Path) -> list[str]:
    """This tree against ``--baseline`` (runs alternated, medians): the same counts and
    verdicts, and the ratio of distinct states per second (wall and CPU)."""
    lines = [f"Baseline: `{baseline}`; per configuration, medians of each side's runs.", "",
             "| scenario | workers | distinct states | generated | same counts and verdicts "
             "| states/s baseline | states/s this tree | ratio | CPU s baseline "
             "| CPU s this tree | ratio (CPU) |",
             "|---|---:|---:|---:|:-:|---:|---:|---:|---:|---:|---:|"]
    for c in configs:
        new, old = c["runs"], c["baseline_runs"]
        for r in (*new, *old):
            r["rate"] = r["distinct"] / r["elapsed"] if r["elapsed"] > 0 else 0.0
        facts = {(r["distinct"], r["generated"], tuple(r["verdicts"]), tuple(r["failed"]))
                 for r in (*new, *old)}
        lines.append(
            f"| {c['scenario']} | {c['workers']} | {new[0]['distinct']:,} | "
            f"{new[0]['generated']:,} | {'yes' if len(facts) == 1 else 'NO'} | "
            f"{span(old, 'rate', ',.0f')} | {span(new, 'rate', ',.0f')} | "
            f"{med(new, 'rate') / med(old, 'rate'):.2f}x | {span(old, 'cpu', '.2f')} | "
            f"{span(new, 'cpu', '.2f')} | {med(old, 'cpu') / med(new, 'cpu'):.2f}x |")
    return lines


# --------------------------------------------------------------------------- profile

LAYERS = (
    ("kstate/verify/checker/", "checker: BFS, fingerprint table, property checks"),
    ("kstate/verify/system/symmetry", "node symmetry (canonical)"),
    ("kstate/verify/system/", "system model: actions, world updates, properties"),
    ("kstate/control/", "reconcilers and scheduler (pure)"),
    ("kstate/node/", "pod worker / simulated node (pure)"),
    ("kstate/machines/", "lifecycle machines"),
    ("kstate/api/", "API objects: codec, defaults, validation, helpers, frozen values"),
    ("attr/", "attrs (evolve, __init__, __eq__, __hash__)"),
)


def layer(filename: str) -> str:
    for prefix, label in LAYERS:
        if prefix in filename:
            return label
    if filename.startswith("~") or filename.startswith("<"):
        return "builtins (hash, isinstance, dict/tuple ops)"
    return "other Python (stdlib, numpy wrappers)"


def profile(name: str, cap: int | None, top: int = 16) -> tuple[list[str], list[str], int]:
    """cProfile of one in-process 1-worker run: own time by layer, and the top functions."""
    from kstate.verify.checker import Checker, Kind
    from kstate.verify.system import load_scenario

    scenario = load_scenario(SCENARIOS / f"{name}.yaml")
    model = scenario.model()
    liveness = any(Kind(p.kind).liveness for p in model.properties())
    bound = scenario.bounds.max_depth
    depth = None if bound is None else (bound if cap is None else min(bound, cap))
    symmetric = _symmetric(scenario, liveness, False)  # as plan()
    model = scenario.model(symmetry=symmetric)
    checker: Any = Checker(model).bfs().symmetry(symmetric).max_depth(depth)
    prof = cProfile.Profile()
    prof.enable()
    result = checker.run()
    prof.disable()
    stats = pstats.Stats(prof)
    own: dict[str, float] = defaultdict(float)
    total = 0.0
    for (filename, _line, _func), (_cc, _nc, tt, _ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        own[layer(filename)] += tt
        total += tt
    n = result.distinct_states
    g = result.states_generated
    lines = [f"Profiled: `{name}`, depth {result.depth}, symmetry "
             f"{'on' if symmetric else 'off'}, 1 worker: {n:,} distinct states, {g:,} "
             f"generated, {total:.1f} s of own time under cProfile.", "",
             "| layer (own time) | share | µs per distinct state | µs per generated state |",
             "|---|---:|---:|---:|"]
    for label, t in sorted(own.items(), key=lambda kv: -kv[1]):
        lines.append(f"| {label} | {t / total:.0%} | {t / n * 1e6:,.0f} | "
                     f"{t / g * 1e6:,.0f} |")
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(top)
    text = out.getvalue()
    body = text[text.index("ncalls"):].rstrip().splitlines()
    root = str(ROOT) + "/"
    venv = str(ROOT / ".venv/lib/python3.11/site-packages") + "/"
    funcs = ["```", *(ln.replace(venv, "").replace(root, "") for ln in body), "```"]
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("cumulative").print_stats(top)
    text = out.getvalue()
    body = text[text.index("ncalls"):].rstrip().splitlines()
    cumulative = ["```", *(ln.replace(venv, "").replace(root, "") for ln in body), "```"]
    return lines, [*funcs, "", "Sorted by cumulative time:", "", *cumulative], n


# --------------------------------------------------------------------------- doc


def machine() -> dict[str, str]:
    return {
        **describe_machine(),
        "load average (1 min) at start": f"{os.getloadavg()[0]:.1f}",
    }


def render(command: str, info: dict[str, str], args: argparse.Namespace,
           configs: list[dict[str, Any]], prof: tuple[list[str], list[str], int] | None,
           ) -> str:
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        SECTION, "",
        f"Generated by `bench.verify scenarios` on {now}. Re-run with:", "",
        f"    {command}", "",
        "Every shipped scenario (`specs/scenarios/*.yaml`), loaded and checked as",
        "`kstate verify` does (BFS, the scenario's `bounds`), each run a fresh subprocess.",
        "Scenarios without `bounds` are explored exhaustively (real verdicts); scenarios",
        f"with a `max_depth` bound are capped at depth {args.max_depth} here (the",
        "`depth bound` column) so that a run stays within minutes; their verdicts are",
        "`bounded`. Symmetry (over identical nodes) is tried only where the scenario opts",
        "in (`symmetry: true`, as `kstate verify` decides: the reduction is exact only",
        "while no decision depends on a node's name), no property is a liveness property",
        "(the SCC check needs the unreduced graph) and there is more than one node.",
        "*search s* is the checker's own `elapsed`; *states/s* = distinct states / search s;",
        "*time to verdict* = wall time of the run (import, YAML, model",
        "build, search); *B/state* the checker's bookkeeping (`bytes_per_state`); peak",
        "RSS is the coordinator process's (states are Python objects: most of it).",
        f"Medians of {args.reps} repetitions (min..max beside them).", "",
        *(f"- {k}: {v}" for k, v in info.items()), "",
        *table(configs), "",
        "Speed-ups within this run (medians):", "",
        *summary(configs), "",
    ]
    if prof is not None:
        layers, funcs, _n = prof
        parts += ["### Where the time goes per state", "", *layers, "",
                  "Top functions by own time (cProfile slows everything ~2x; read it for",
                  "proportions):", "", *funcs, ""]
    return "\n".join(parts)




# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    ap = argparse.ArgumentParser(prog=prog, description=(__doc__ or "").splitlines()[0])
    names = sorted(p.stem for p in SCENARIOS.glob("*.yaml"))
    ap.add_argument("--scenario", action="append", choices=names,
                    help="only this scenario (repeatable; default: all)")
    ap.add_argument("--max-depth", type=int, default=None,
                    help="cap for scenarios with a depth bound (default 8, --full 12)")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--symmetry", action="store_true",
                    help="also run symmetry on where the scenario does not opt in but the "
                         "reduction is exact for it")
    ap.add_argument("--no-por", action="store_true",
                    help="explore the full graph (partial-order reduction off, as "
                         "`kstate verify --no-por`): the per-state cost")
    ap.add_argument("--reps", type=int, default=None, help="repetitions (default 1, --full 3)")
    ap.add_argument("--timeout", type=float, default=900.0, help="per run, seconds")
    ap.add_argument("--full", action="store_true",
                    help="depth cap 12 and 3 repetitions (some runs take minutes)")
    ap.add_argument("--profile", metavar="SCENARIO", default=None,
                    help="profile one 1-worker run of this scenario (default: quickstart; "
                         "'none' to skip)")
    ap.add_argument("--doc", type=Path, help="append/replace this section in a markdown file")
    ap.add_argument("--out", type=Path, help="write raw figures as JSON")
    ap.add_argument("--baseline", type=Path, metavar="TREE",
                    help="also run every configuration on the code in TREE (say, "
                         "`git archive <commit> | tar -x -C TREE`), alternating with this "
                         "tree, and print the ratios")
    args = ap.parse_args(argv)
    args.max_depth = args.max_depth or (12 if args.full else 8)
    args.reps = args.reps or (3 if args.full else 1)
    info = machine()
    configs = plan(args.scenario or names, args.max_depth, args.workers, args.symmetry)
    for rep in range(args.reps):
        for c in configs:  # interleaved: noise hits every configuration alike
            if args.baseline is not None:  # alternated: which goes first changes per rep
                c.setdefault("baseline_runs", [])
                trees = [(ROOT, c["runs"]), (args.baseline, c["baseline_runs"])]
                for tree, runs in trees[::-1] if rep % 2 else trees:
                    runs.append(run_child(c["path"], c["depth_bound"], c["symmetry"],
                                          c["workers"], args.timeout, tree, args.no_por))
                r = c["runs"][-1]
            else:
                r = run_child(c["path"], c["depth_bound"], c["symmetry"], c["workers"],
                              args.timeout, no_por=args.no_por)
                c["runs"].append(r)
            log(f"rep {rep + 1}/{args.reps} {c['scenario']} sym={c['symmetry']} "
                f"w={c['workers']}: {r['distinct']:,} states, depth {r['depth']}, "
                f"{r['elapsed']:.2f} s ({r['stop']})")
    prof = None
    target = args.profile or "quickstart"
    if target != "none":
        log(f"profiling {target} ...")
        prof = profile(target, args.max_depth)
    info["load average (1 min) at end"] = f"{os.getloadavg()[0]:.1f}"
    print("\n".join(table(configs)))
    print()
    print("\n".join(summary(configs)))
    if args.baseline is not None:
        print()
        print("\n".join(against(configs, args.baseline)))
    if prof is not None:
        print()
        print("\n".join(prof[0]))
    if args.out:
        raw = [{k: (str(v) if isinstance(v, Path) else v) for k, v in c.items()}
               for c in configs]
        args.out.write_text(json.dumps({"machine": info, "configs": raw}, indent=2))
    if args.doc:
        command = " ".join([".venv/bin/python -m bench.verify scenarios",
                            *map(shlex.quote, argv if argv is not None else sys.argv[1:])])
        write_section(args.doc, SECTION, render(command, info, args, configs, prof))
        log(f"wrote {args.doc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
