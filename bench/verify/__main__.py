"""``python -m bench.verify {scenarios,twophase,commute,por,canonical,blocking} [options]``:
the checker's benchmarks.

* ``scenarios`` — ``bench_scenarios.py``: every ``specs/scenarios/*.yaml`` checked as
  ``kstate verify`` does it; distinct states, states/s, time to verdict, 1 and 2 workers.
* ``twophase`` — ``bench_twophase.py``: TwoPhase commit, kstate's checker against Spin
  measured in the same run (needs ``spin`` and ``gcc``).
* ``commute`` — ``bench_commute.py``: how many enabled action pairs of a scenario commute
  (the ceiling of partial-order reduction).
* ``por`` — ``bench_por.py``: every scenario with and without partial-order reduction
  (states and transitions kept versus the full graph, same verdicts).
* ``canonical`` — ``bench_canonical.py``: microseconds per symmetry representative
  (``ClusterSymmetry.canonical``) on fixed sets of reachable states.
* ``blocking`` — ``bench_blocking.py``: an experiment, bounded watch lag as a blocking
  channel instead of the overflow rule (same states? what would POR remove?).

``python -m bench.verify scenarios --help`` shows each one's options. Run them from the
repository root with ``-m`` (they import ``bench.machine``).
"""

from __future__ import annotations

import sys

USAGE = """usage: python -m bench.verify {scenarios,twophase,commute,por,canonical,blocking}
                                 [options]

  scenarios   states/s and time to verdict for specs/scenarios/*.yaml (bench_scenarios.py)
  twophase    TwoPhase commit: kstate's checker against Spin (bench_twophase.py)
  commute     how many enabled action pairs commute: POR's ceiling (bench_commute.py)
  por         states and transitions kept with partial-order reduction (bench_por.py)
  canonical   microseconds per symmetry representative (bench_canonical.py)
  blocking    experiment: watch lag as a blocking channel (bench_blocking.py)

'python -m bench.verify scenarios --help' shows that benchmark's options."""


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    which, rest = argv[0], argv[1:]
    if which == "scenarios":
        from bench.verify import bench_scenarios

        return bench_scenarios.main(rest, prog="python -m bench.verify scenarios")
    if which == "twophase":
        from bench.verify import bench_twophase

        return bench_twophase.main(rest, prog="python -m bench.verify twophase")
    if which == "commute":
        from bench.verify import bench_commute

        return bench_commute.main(rest, prog="python -m bench.verify commute")
    if which == "por":
        from bench.verify import bench_por

        return bench_por.main(rest, prog="python -m bench.verify por")
    if which == "canonical":
        from bench.verify import bench_canonical

        return bench_canonical.main(rest, prog="python -m bench.verify canonical")
    if which == "blocking":
        from bench.verify import bench_blocking

        return bench_blocking.main(rest, prog="python -m bench.verify blocking")
    print(f"unknown benchmark {which!r}\n\n{USAGE}", file=sys.stderr)
    return 2


sys.exit(main(sys.argv[1:]))
