#!/usr/bin/env python3
"""What partial-order reduction removes: every shipped scenario with and without it.

Where it sits: ``bench/verify`` (a benchmark, not a test), beside ``bench_scenarios.py``;
results go to ``docs/benchmarks/verify.md``. Issue 15 asks to "report what POR removes:
states and transitions kept versus the full graph". Each scenario is checked twice in
one process, ``por=False`` (the full graph, as ``kstate verify --no-por``) and
``por=True`` (forced, as ``--por``), BFS, one worker, symmetry off, ``stop="never"`` so
both runs explore everything within the bound. POR is never used with liveness, so a
scenario's liveness properties are left out here (its safety properties and
``sometimes`` goals are checked). Scenarios with a ``max_depth`` bound are capped at
``--max-depth`` (three-nodes, unbounded and far too large, at depth 5). A ``stable``
row checks only the properties whose violation is stable (the history flags), which
need no invisibility: what the dependency structure alone allows. TwoPhase (footprints
from ``kstate.verify.examples.twophase``) is the reference model.

    .venv/bin/python -m bench.verify por --doc docs/benchmarks/verify.md
"""

from __future__ import annotations

import argparse
import functools
import shlex
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.machine import describe_machine
from bench.report import write_section

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "specs" / "scenarios"
SECTION = "## Partial-order reduction: what it removes"
#: scenarios without a depth bound that no run finishes (docs/benchmarks: three-nodes)
TOO_LARGE = {"three-nodes": 5}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def compare(label: str, build: Any, depth: int | None, timeout: float) -> dict[str, Any]:
    """Check ``build()`` with and without reduction; the figures of both."""
    from kstate.verify.checker import check

    row: dict[str, Any] = {"label": label, "depth": depth}
    for por in (False, True):
        t0 = time.perf_counter()
        r = check(build(), symmetry=False, max_depth=depth, por=por, stop="never",
                  timeout=timeout)
        key = "por" if por else "full"
        row[key] = {
            "distinct": r.distinct_states, "transitions": r.transitions,
            "kept": r.transitions_kept, "reduced": r.reduced_states,
            "seconds": time.perf_counter() - t0, "stop": r.stop_reason.value,
            "verdicts": [(p.name, p.verdict.value, p.length) for p in r.properties]}
    row["same"] = row["full"]["verdicts"] == row["por"]["verdicts"]
    return row


def scenario_rows(names: list[str], cap: int, timeout: float) -> list[dict[str, Any]]:
    from kstate.verify.checker import Kind
    from kstate.verify.system import load_scenario
    from kstate.verify.system.independence import STABLE

    rows = []
    for name in names:
        scenario = load_scenario(SCENARIOS / f"{name}.yaml")
        safety = [p.name for p in scenario.model().properties()
                  if not Kind(p.kind).liveness]
        bound = scenario.bounds.max_depth or TOO_LARGE.get(name)
        depth = None if bound is None else min(bound, cap)
        for label, props in ((name, safety),
                             (f"{name} (stable only)", [p for p in safety if p in STABLE])):
            if not props:
                continue
            row = compare(label, functools.partial(scenario.model, properties=props,
                                                   symmetry=False), depth, timeout)
            rows.append(row)
            log(line(row))
    return rows


def twophase_rows(timeout: float) -> list[dict[str, Any]]:
    from kstate.verify.examples.twophase import TwoPhase

    rows = []
    for n, check, bug, label in (
            (5, None, False, "TwoPhase N=5, all properties"),
            (5, ("TCConsistent",), True, "TwoPhase N=5, TCConsistent, seeded bug"),
            (5, (), False, "TwoPhase N=5, deadlock only")):
        row = compare(label, functools.partial(TwoPhase, n, footprints=True, check=check,
                                               seeded_bug=bug), None, timeout)
        rows.append(row)
        log(line(row))
    return rows


def line(row: dict[str, Any]) -> str:
    f, p = row["full"], row["por"]
    return (f"{row['label']}: {f['distinct']:,} -> {p['distinct']:,} states, "
            f"{f['transitions']:,} -> {p['kept']:,} transitions, same verdicts: {row['same']}")


def table(rows: list[dict[str, Any]]) -> list[str]:
    out = ["| model | depth bound | states full | states POR | transitions full "
           "| transitions kept | states reduced | same verdicts | s full | s POR |",
           "|---|---:|---:|---:|---:|---:|---:|:-:|---:|---:|"]
    for r in rows:
        f, p = r["full"], r["por"]
        share = p["distinct"] / f["distinct"] if f["distinct"] else 1.0
        kept = p["kept"] / f["transitions"] if f["transitions"] else 1.0
        same = "yes" if r["same"] else "NO: " + ", ".join(
            f"{a[0]} {a[1]}/{b[1]}" for a, b in zip(f["verdicts"], p["verdicts"], strict=True)
            if a != b)
        out.append(
            f"| {r['label']} | {'exhaustive' if r['depth'] is None else r['depth']} | "
            f"{f['distinct']:,} | {p['distinct']:,} ({share:.0%}) | {f['transitions']:,} | "
            f"{p['kept']:,} ({kept:.0%}) | {p['reduced']:,} | {same} | "
            f"{f['seconds']:.1f} | {p['seconds']:.1f} |")
    return out


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    ap = argparse.ArgumentParser(prog=prog, description=(__doc__ or "").splitlines()[0])
    names = sorted(p.stem for p in SCENARIOS.glob("*.yaml"))
    ap.add_argument("--scenario", action="append", choices=names,
                    help="only this scenario (repeatable; default: all)")
    ap.add_argument("--max-depth", type=int, default=7,
                    help="cap for scenarios with a depth bound (default 7)")
    ap.add_argument("--timeout", type=float, default=600.0, help="per run, seconds")
    ap.add_argument("--doc", type=Path, help="append/replace this section in a markdown file")
    args = ap.parse_args(argv)
    info = {**describe_machine()}
    rows = twophase_rows(args.timeout) + scenario_rows(args.scenario or names,
                                                       args.max_depth, args.timeout)
    print("\n".join(table(rows)))
    if args.doc:
        command = " ".join([".venv/bin/python -m bench.verify por",
                            *map(shlex.quote, argv if argv is not None else sys.argv[1:])])
        now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        text = "\n".join([
            SECTION, "", f"Generated by `bench.verify por` on {now}. Re-run with:", "",
            f"    {command}", "",
            *(__doc__ or "").replace("``", "`").split("\n\n")[1].splitlines(), "",
            *(f"- {k}: {v}" for k, v in info.items()), "", *table(rows), ""])
        write_section(args.doc, SECTION, text)
        log(f"wrote {args.doc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
