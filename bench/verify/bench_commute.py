#!/usr/bin/env python3
"""How much of a scenario's interleaving is commutative: the ceiling of partial-order
reduction, measured before building one.

Where it sits: ``bench/verify`` (a measurement, not a test), beside
``bench_scenarios.py``. Partial-order reduction explores one order of actions that
commute; how much it can remove depends on how many enabled pairs commute at all. For
every state of a scenario up to ``--depth`` (BFS over the model, no checker), and every
pair of enabled actions ``a``, ``b`` (by label), this checks the diamond: ``b`` is still
enabled after ``a`` and vice versa, and both orders reach the same World. It reports

* the share of enabled pairs that commute (the local diamond: necessary for
  independence, not sufficient — a persistent set needs independence along every path);
* the share of states with an action that commutes with every other enabled action (a
  singleton persistent set could only exist there);
* which action families commute with which, so the dependency that blocks a reduction
  is named.

``--depth D`` counts steps from the initial state (the checker's ``max_depth`` D+1: like
TLC, it counts the initial state as depth 1).

    .venv/bin/python -m bench.verify commute --scenario quickstart --depth 6
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from kstate.verify.checker.model import family_of, states_within
from kstate.verify.system import load_scenario

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "specs" / "scenarios"


def measure(model: Any, states: list[Any]) -> dict[str, Any]:
    pairs = commuting = 0
    with_singleton = 0
    by_family: Counter[tuple[str, str, bool]] = Counter()
    for s in states:
        succ = dict(model.actions(s))
        after = {a: dict(model.actions(t)) for a, t in succ.items()}
        independent_of_all = {a: True for a in succ}
        labels = sorted(succ)
        for i, a in enumerate(labels):
            for b in labels[i + 1:]:
                ab, ba = after[a].get(b), after[b].get(a)
                ok = ab is not None and ba is not None and ab == ba
                pairs += 1
                commuting += ok
                fa, fb = sorted((family_of(a), family_of(b)))
                by_family[(fa, fb, ok)] += 1
                if not ok:
                    independent_of_all[a] = independent_of_all[b] = False
        if len(succ) > 1 and any(independent_of_all.values()):
            with_singleton += 1
    return {"states": len(states), "pairs": pairs, "commuting": commuting,
            "with_singleton": with_singleton, "by_family": by_family}


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    ap = argparse.ArgumentParser(prog=prog, description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--scenario", default="quickstart",
                    choices=sorted(p.stem for p in SCENARIOS.glob("*.yaml")))
    ap.add_argument("--depth", type=int, default=5)
    args = ap.parse_args(argv)
    model = load_scenario(SCENARIOS / f"{args.scenario}.yaml").model()
    r = measure(model, states_within(model, args.depth))
    share = r["commuting"] / r["pairs"] if r["pairs"] else 0.0
    print(f"{args.scenario}, depth {args.depth}: {r['states']:,} states, "
          f"{r['pairs']:,} enabled pairs, {r['commuting']:,} commute ({share:.0%}); "
          f"{r['with_singleton']:,} states have an action commuting with all others")
    print("| families | commute | do not |\n|---|---:|---:|")
    fams = sorted({(a, b) for a, b, _ in r["by_family"]})
    for a, b in fams:
        yes, no = r["by_family"][(a, b, True)], r["by_family"][(a, b, False)]
        print(f"| {a} x {b} | {yes:,} | {no:,} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
