#!/usr/bin/env python3
"""What the system model's symmetry representative costs: microseconds per
``ClusterSymmetry.canonical`` on a fixed set of reachable states.

Where it sits: ``bench/verify`` (a measurement, not a test), beside
``bench_scenarios.py``. The checker calls ``canonical`` on every state it generates, so
its cost adds to every expansion (issue 15). Each run is a fresh subprocess: it collects
every state within ``--depth`` steps of the scenario's initial state (BFS over the
model's actions with symmetry off, as ``states_within`` does), then times
``canonical`` (CPU time, the caches cold at the start as in a search) on either

* ``distinct``: each of those states once, or
* ``generated``: every successor of the states one step shallower, as a search calls it
  (once per transition, so most states several times),

and counts the distinct representatives (the orbits).

``--baseline TREE`` runs the same on the code in another tree (a commit unpacked with
``git archive <commit> | tar -x -C TREE``), alternated with this one, so that both are
measured in one run on the same load; the orbit counts must agree.

    .venv/bin/python -m bench.verify canonical --baseline /tmp/base --reps 3
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

#: scenario -> depth: the state sets the figures are measured on
SETS = {"quickstart": 8, "three-nodes": 5}
MODES = ("distinct", "generated")

CHILD = """
import gc, json, sys, time
from pathlib import Path
from kstate.verify.checker.model import states_within
from kstate.verify.system import load_scenario
from kstate.verify.system.symmetry import ClusterSymmetry
name, depth = sys.argv[1], int(sys.argv[2])
scenario = load_scenario(Path(sys.argv[3]) / "specs" / "scenarios" / f"{name}.yaml")
model = scenario.model(symmetry=False)
if sys.argv[5] == "distinct":
    states = states_within(model, depth)
else:
    states = [t for s in states_within(model, depth - 1) for _, t in model.actions(s)]
sym = ClusterSymmetry(scenario.nodes)
gc.collect()
gc.disable()
start = time.process_time()
orbits = {hash(sym.canonical(s)) for s in states}
spent = time.process_time() - start
import kstate
assert kstate.__file__.startswith(sys.argv[4]), kstate.__file__
print(json.dumps({"states": len(states), "orbits": len(orbits),
                  "us": spent / len(states) * 1e6}))
"""


def run(tree: Path, name: str, depth: int, mode: str) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    # run inside ``tree``: ``-c`` puts the working directory first on sys.path
    argv = [name, str(depth), str(ROOT), str(tree), mode]
    out = subprocess.run([sys.executable, "-c", CHILD, *argv], env=env, cwd=tree,
                         capture_output=True, text=True, check=True)
    return dict(json.loads(out.stdout))


def main(argv: list[str], prog: str = "bench_canonical.py") -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", type=Path, help="another tree, measured alternately")
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args(argv)
    trees = {"this": ROOT}
    if args.baseline is not None:
        if not (args.baseline / "kstate").is_dir():
            print(f"--baseline: {args.baseline} has no kstate/ (unpack a commit there)",
                  file=sys.stderr)
            return 2
        trees["baseline"] = args.baseline
    print("| scenario | depth | states canonicalised | calls | orbits | tree | us per canonical() "
          "(median) | runs |\n|---|---|---|---|---|---|---|---|")
    for (name, depth), mode in itertools.product(SETS.items(), MODES):
        runs: dict[str, list[dict[str, float]]] = {t: [] for t in trees}
        for _ in range(args.reps):
            for label, tree in trees.items():
                runs[label].append(run(tree, name, depth, mode))
        medians = {t: statistics.median(r["us"] for r in rs) for t, rs in runs.items()}
        for label, rs in runs.items():
            each = ", ".join(f"{r['us']:.0f}" for r in rs)
            print(f"| {name} | {depth} | {mode} | {rs[0]['states']:,.0f} | "
                  f"{rs[0]['orbits']:,.0f} | "
                  f"{label} | {medians[label]:,.0f} | "
                  f"{each} |")
        if "baseline" in runs:
            if runs["baseline"][0]["orbits"] != runs["this"][0]["orbits"]:
                print(f"{name}: the orbit counts differ", file=sys.stderr)
                return 1
            print(f"| {name} | | {mode} | | | speed-up | "
                  f"{medians['baseline'] / medians['this']:.1f}x | |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
