"""Random simulation: seeded walks for state spaces too big to exhaust.

Where it sits: ``Checker.simulate(walks, depth, seed)``. Each walk starts from a random
initial state and takes uniformly random enabled actions until it reaches ``depth``
states, a deadlock, or a violated invariant. Walk ``i`` draws from its own generator
seeded with ``(seed, i)``, so a run is reproducible and splitting walks across worker
processes changes nothing: results are merged by walk number (the lowest-numbered walk
that found something wins). A simulation never proves anything: properties that were
not violated (or witnessed) come back ``bounded``, and liveness is not judged.

``distinct_states`` counts the distinct (representative) states the walks visited;
``states_generated`` counts every successor computed, as TLC's simulator does.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import random
import traceback
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

import attrs
import numpy as np

from kstate.errors import ModelError
from kstate.verify.checker.core import Coverage, Findings, Spec, StopPolicy, verdicts
from kstate.verify.checker.model import INIT, Kind
from kstate.verify.checker.results import CheckResult, Progress, Step, StopReason

if TYPE_CHECKING:
    from kstate.verify.checker.checker import Options

Trace = list[tuple[str, Any]]


@attrs.define
class _Walks:
    """What a set of walks found; mergeable across workers."""

    seen: set[int] = attrs.Factory(set)
    generated: int = 0
    longest: int = 0
    walks: int = 0
    timed_out: bool = False
    found: dict[int, tuple[int, Trace]] = attrs.Factory(dict)  # prop -> (walk, trace)
    deadlock: tuple[int, Trace] | None = None
    fired: Coverage = attrs.Factory(Coverage)


def _walk_range(spec: Spec, o: Options, inits: list[Any], mine: range,
                t0: float) -> _Walks:
    model = spec.model
    out = _Walks()
    failing_always = {c.index for c in spec.safety if c.kind is Kind.ALWAYS}
    last = t0
    for i in mine:
        now = o.clock.now()
        if o.timeout is not None and now - t0 >= o.timeout:
            out.timed_out = True
            break
        if o.progress is not None and now - last >= o.progress_interval:
            last = now
            o.progress(Progress(len(out.seen), out.generated, 0, out.longest, now - t0))
        rng = random.Random(f"{o.seed}/{i}")
        s = rng.choice(inits)
        trace: Trace = [(INIT, s)]
        out.walks += 1
        out.generated += 1
        while True:
            out.seen.add(spec.fingerprint(s))
            hits = spec.safety_hits(spec.bits_one(s))
            stop_walk = False
            for index in hits:
                if index not in out.found:
                    out.found[index] = (i, list(trace))
                stop_walk |= index in failing_always
            if stop_walk or len(trace) >= o.walk_depth:
                break
            succ = list(model.actions(s))
            out.generated += len(succ)
            out.fired.count(succ)
            if not succ:
                if spec.deadlock and out.deadlock is None and not model.terminal(s):
                    out.deadlock = (i, list(trace))
                break
            name, s = succ[rng.randrange(len(succ))]
            trace.append((name, s))
        out.longest = max(out.longest, len(trace))
    return out


def _merge(parts: list[_Walks]) -> _Walks:
    out = _Walks()
    for p in parts:
        out.seen |= p.seen
        out.generated += p.generated
        out.fired.merge(p.fired.fired)
        out.longest = max(out.longest, p.longest)
        out.walks += p.walks
        out.timed_out |= p.timed_out
        for index, hit in p.found.items():
            if index not in out.found or hit[0] < out.found[index][0]:
                out.found[index] = hit
        if p.deadlock is not None and (out.deadlock is None or p.deadlock[0] < out.deadlock[0]):
            out.deadlock = p.deadlock
    return out


def _worker(conn: Connection, spec: Spec, o: Options, inits: list[Any], mine: range,
            t0: float) -> None:
    try:
        w = _walk_range(spec, o, inits, mine, t0)
        # fingerprints travel as an array, not a pickled set
        seen = np.fromiter(w.seen, np.int64, len(w.seen))
        w.seen = set()
        conn.send(("ok", w, seen))
    except BaseException as e:
        with contextlib.suppress(Exception):
            conn.send(("error", repr(e), traceback.format_exc()))


class Simulation:
    def __init__(self, spec: Spec, options: Options) -> None:
        self.spec = spec
        self.o = options

    def run(self) -> CheckResult:
        spec, o = self.spec, self.o
        t0 = o.clock.now()
        inits, _ = spec.initial()
        k = min(o.workers, o.walks)
        if k == 1:
            result = _walk_range(spec, o, inits, range(o.walks), t0)
        else:
            result = self._parallel(inits, k, t0)
        found = Findings()
        for index, (_, trace) in result.found.items():
            found.safety[index] = self._steps(trace)
        if result.deadlock is not None:
            found.deadlock = self._steps(result.deadlock[1])
        stop = StopReason.TIMEOUT if result.timed_out else StopReason.WALKS
        props = verdicts(spec, found, complete=False, liveness_checked=False,
                         note=f"not found in {result.walks} random walks")
        fired, never = result.fired.report(spec)
        warnings = []
        if o.stop is not StopPolicy.DECIDED:
            warnings.append("simulation always runs every walk; stop policy ignored")
        return CheckResult(
            model=spec.label, strategy="simulate", workers=k,
            symmetry=spec.canon is not None, complete=False, stop_reason=stop,
            distinct_states=len(result.seen), states_generated=result.generated,
            initial_states=len(inits), depth=result.longest, queue_left=0,
            elapsed=o.clock.now() - t0, properties=props, warnings=tuple(warnings),
            coverage=fired, never_fired=never)

    def _steps(self, trace: Trace) -> list[Step]:
        d = self.spec.model.describe
        return [Step(name, d(s), s) for name, s in trace]

    def _parallel(self, inits: list[Any], k: int, t0: float) -> _Walks:
        ctx = mp.get_context("fork")
        procs, conns = [], []
        for w in range(k):
            parent, child = ctx.Pipe(duplex=False)
            p = ctx.Process(target=_worker, daemon=True,
                            args=(child, self.spec, self.o, inits,
                                  range(w, self.o.walks, k), t0))
            p.start()
            child.close()
            procs.append(p)
            conns.append(parent)
        parts = []
        try:
            for c in conns:
                msg = c.recv()
                if msg[0] == "error":
                    raise ModelError(f"a simulation worker failed: {msg[1]}\n{msg[2]}")
                part, seen = msg[1], msg[2]
                part.seen = set(seen.tolist())
                parts.append(part)
        finally:
            for p in procs:
                p.join(timeout=5)
                if p.is_alive():
                    p.kill()
        return _merge(parts)
