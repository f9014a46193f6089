#!/usr/bin/env python3
"""An experiment, not the model: bounded watch lag as a *blocking* channel.

Where it sits: ``bench/verify``, beside ``bench_por.py``; figures in
docs/benchmarks/verify.md ("Partial-order reduction: what it removes"). The system
model's rule is *overflow*: a write that finds a watcher's queue at its lag delivers the
queue's head into the cache inside the write. The alternative asked about in issue 15's
POR work: a write of K is *disabled* while some watcher's K queue is full (Promela's
bounded channel; a lag of 0 stays synchronous, a channel of capacity 0). The claim to
check: both reach exactly the same states (an overflowing write = the needed Deliver
steps, then the write). Here an action is dropped when any of its writes would overflow
a queue whose lag is at least 1 (``world._enqueue`` is wrapped for the run only); the
footprints of the POR run drop the cache and expectation writes of those watchers.

    .venv/bin/python -m bench.verify blocking stale-scheduler namespace-delete stale-cache
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "specs" / "scenarios"


@contextmanager
def blocking() -> Iterator[Callable[[], bool]]:
    """While active, ``overflowed()`` says whether a write since the last call would have
    overflowed a lagging queue."""
    from kstate.verify.system import world

    real = world._enqueue
    seen = [False]

    def enqueue(w: Any, change: Any, limit: int) -> Any:
        if limit > 0 and len(w.pending.get(world.kind_of(change[0]), ())) >= limit:
            seen[0] = True
        return real(w, change, limit)

    def overflowed() -> bool:
        hit, seen[0] = seen[0], False
        return hit

    world._enqueue = enqueue  # type: ignore[assignment]
    try:
        yield overflowed
    finally:
        world._enqueue = real  # type: ignore[assignment]


def blocking_model(scenario: Any, overflowed: Callable[[], bool], **kwargs: Any) -> Any:
    from kstate.api.lifecycle import use_executor
    from kstate.verify.checker import Footprint
    from kstate.verify.system.independence import Footprints
    from kstate.verify.system.model import SystemModel

    st = scenario.settings
    lags = {"cm": st.watch_lag, "scheduler": st.scheduler_lag,
            **{n: st.kubelet_lag for n in scenario.nodes}}

    class BlockingFootprints(Footprints):
        def api(self, *kinds: str) -> Footprint:
            fp = super().api(*kinds)
            drop = {("cache", w, k) for w, lag in lags.items() if lag for k in kinds}
            if lags["cm"] and "Pod" in kinds:
                drop.add("cm-expectations")
            return Footprint(fp.reads, fp.writes - drop)

    class Blocking(SystemModel):
        def actions(self, w: Any) -> list[tuple[str, Any]]:
            out = []
            with use_executor("compiled"):
                it = self._actions(w)
                overflowed()
                for item in it:
                    if not overflowed():
                        out.append(item)
            return out

        def persistent(self, state: Any, actions: Any) -> Any:
            if self._footprints is None:
                self._footprints = BlockingFootprints(
                    sorted(self._initial.kubelets), [p.name for p in self._properties])
            return super().persistent(state, actions)

    model = scenario.model(symmetry=False, **kwargs)
    model.__class__ = Blocking
    return model


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    from kstate.verify.checker import Kind, check
    from kstate.verify.system import load_scenario

    names = argv if argv else ["stale-scheduler", "namespace-delete", "stale-cache",
                               "controller-restart"]
    for name in names:
        scenario = load_scenario(SCENARIOS / f"{name}.yaml")
        safety = [p.name for p in scenario.model().properties()
                  if not Kind(p.kind).liveness]
        overflow = check(scenario.model(symmetry=False), symmetry=False, stop="never",
                         por=False)
        with blocking() as overflowed:
            full = check(blocking_model(scenario, overflowed), symmetry=False, stop="never",
                         por=False)
            por = check(blocking_model(scenario, overflowed, properties=safety),
                        symmetry=False, stop="never", por=True)
            safe = check(blocking_model(scenario, overflowed, properties=safety),
                         symmetry=False, stop="never", por=False)
        print(f"| {name} | {overflow.distinct_states:,} / {overflow.transitions:,} | "
              f"{full.distinct_states:,} / {full.transitions:,} | "
              f"{safe.distinct_states:,} -> {por.distinct_states:,} states, "
              f"{safe.transitions:,} -> {por.transitions_kept:,} transitions |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
