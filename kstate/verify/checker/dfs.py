"""Depth-first search (one process).

Where it sits: ``Checker.dfs()``. Useful when a bug hides deep and BFS would first have
to store every shallower state; its counterexamples are valid but not shortest.

The stack holds states, not iterators: a popped state has all its successors generated
and the new ones pushed (last pushed, first explored) — the order Stateright's DFS uses,
which matters when a model's ``canonical`` is not exact (TwoPhase's ``"rm-state"``
representative gives Stateright's published 665 states for N=5 only in this order).

With ``max_depth`` a state first reached on a long path and later on a shorter one is
explored again from the shorter path (Spin's ``-DREACH``), so a depth bound cuts paths,
not states that are within the bound. Bookkeeping is a ``dict`` of fingerprints plus
compact arrays of parent keys; DFS is not the strategy for the biggest spaces.
"""

from __future__ import annotations

from array import array
from typing import TYPE_CHECKING, Any

import numpy as np

from kstate.errors import ModelError
from kstate.verify.checker.bfs import ROOT, SUCC_BITS, SUCC_MASK
from kstate.verify.checker.core import (
    Coverage,
    Findings,
    Spec,
    StopPolicy,
    Tracer,
    all_safety_decided,
    any_failure,
    kept_ratio,
    verdicts,
)
from kstate.verify.checker.liveness import Graph, record_lassos
from kstate.verify.checker.por import persistent_mask
from kstate.verify.checker.results import CheckResult, Progress, StopReason

if TYPE_CHECKING:
    from kstate.verify.checker.checker import Options


class Dfs:
    def __init__(self, spec: Spec, options: Options) -> None:
        self.spec = spec
        self.o = options

    def run(self) -> CheckResult:
        spec, o = self.spec, self.o
        now = o.clock.now
        t0 = last = now()
        model = spec.model
        warnings = []
        if o.workers > 1:
            warnings.append("dfs runs in one process; workers ignored")
        init_states, init_fps = spec.initial()
        visited: dict[int, int] = {}
        fps = array("q")
        keys = array("Q")
        depth = array("l")
        expanded = bytearray()
        masks = array("Q")  # predicate bits per state (liveness needs them all)
        found: dict[int, int] = {}
        deadlock: int | None = None
        live = bool(spec.liveness)
        e_src: list[int] = []
        e_dst: list[int] = []
        e_lab: list[int] = []
        labels: dict[str, int] = {}
        stack: list[tuple[Any, int]] = []
        for i, (s, fp) in enumerate(zip(init_states, init_fps, strict=True)):
            visited[fp] = i
            fps.append(fp)
            keys.append((ROOT << SUCC_BITS) | i)
            depth.append(1)
            expanded.append(0)
            mask = spec.bits_one(s)
            masks.append(mask)
            for index in spec.safety_hits(mask):
                found.setdefault(index, i)
            stack.append((s, i))
        generated = len(init_states)
        pruned = reduced_states = 0
        coverage = Coverage()
        unexplored = False
        stop: StopReason | None = None
        steps = 0

        def decided() -> StopReason | None:
            if o.stop is StopPolicy.DECIDED and all_safety_decided(
                    spec, found, deadlock is not None):
                return StopReason.DECIDED
            if o.stop is StopPolicy.FIRST_VIOLATION and any_failure(
                    spec, found, deadlock is not None):
                return StopReason.VIOLATION
            return None

        stop = decided()
        while stack and stop is None:
            steps += 1
            if steps & 1023 == 0:
                t = now()
                if o.timeout is not None and t - t0 >= o.timeout:
                    stop = StopReason.TIMEOUT
                    break
                if o.progress is not None and t - last >= o.progress_interval:
                    last = t
                    o.progress(Progress(len(fps), generated, len(stack), max(depth), t - t0,
                                        kept_ratio(spec, generated - len(init_states),
                                                   pruned)))
            s, sid = stack.pop()
            d = depth[sid]
            expanded[sid] = 1
            succ = list(model.actions(s))
            generated += len(succ)
            coverage.count(succ)
            if len(succ) > SUCC_MASK:
                raise ModelError(f"a state has more than {SUCC_MASK} successors",
                                 model=spec.label, field="actions")
            if not succ and spec.deadlock and deadlock is None and not model.terminal(s):
                deadlock = sid
            probe = o.max_depth is not None and d >= o.max_depth
            known: dict[int, int] = {}
            left_out = persistent_mask(model, spec.label, s, succ) if spec.por else None
            if left_out is not None:
                for idx, (name, t) in enumerate(succ):
                    if not left_out[idx]:
                        known[idx] = spec.fingerprint(t, f"the state after action {name!r}")
                # the cycle proviso: reduce only if no kept successor was visited before
                # this expansion (a self-loop included: s itself is visited)
                if any(fp in visited for fp in known.values()):
                    left_out = None
                else:
                    pruned += sum(left_out)
                    reduced_states += 1
            for idx, (name, t) in enumerate(succ):
                if left_out is not None and left_out[idx]:
                    continue
                fp = known[idx] if idx in known else spec.fingerprint(
                    t, f"the state after action {name!r}")
                tid = visited.get(fp)
                if tid is None:
                    if probe:
                        unexplored = True
                        tid = -1
                    else:
                        tid = len(fps)
                        visited[fp] = tid
                        fps.append(fp)
                        keys.append((sid << SUCC_BITS) | idx)
                        depth.append(d + 1)
                        expanded.append(0)
                        mask = spec.bits_one(t)
                        masks.append(mask)
                        for index in spec.safety_hits(mask):
                            found.setdefault(index, tid)
                        stack.append((t, tid))
                elif o.max_depth is not None and depth[tid] > d + 1 and not probe:
                    depth[tid] = d + 1
                    keys[tid] = (sid << SUCC_BITS) | idx
                    stack.append((t, tid))
                if live:
                    lab = labels.setdefault(name, len(labels))
                    e_src.append(sid)
                    e_dst.append(tid)
                    e_lab.append(lab)
            stop = decided()
            if stop is None and o.max_states is not None and len(fps) >= o.max_states \
                    and stack:
                stop = StopReason.MAX_STATES
        if stop is None:
            stop = StopReason.MAX_DEPTH if unexplored else StopReason.EXHAUSTED
        complete = stop is StopReason.EXHAUSTED

        def fp_of(i: int) -> int:
            return fps[i]

        def path_to(i: int) -> tuple[list[int], list[int]]:
            ids, hints = [], []
            while True:
                ids.append(i)
                hints.append(keys[i] & SUCC_MASK)
                parent = keys[i] >> SUCC_BITS
                if parent == ROOT:
                    break
                i = parent
            return ids[::-1], hints[::-1]

        tracer = Tracer(spec, init_states, fp_of)
        findings = Findings()
        for index, i in found.items():
            ids, hints = path_to(i)
            findings.safety[index] = tracer.steps(ids, hints=hints)
        if deadlock is not None:
            ids, hints = path_to(deadlock)
            findings.deadlock = tracer.steps(ids, hints=hints)
        if live:
            graph = Graph(
                n=len(fps), initial=list(range(len(init_states))),
                src=np.array(e_src, np.int64), dst=np.array(e_dst, np.int64),
                lab=np.array(e_lab, np.int64), labels=list(labels),
                expanded=np.frombuffer(bytes(expanded), np.uint8).astype(np.bool_),
                bits=np.frombuffer(masks, np.uint64).copy())
            record_lassos(spec, graph, tracer, findings)
        elapsed = now() - t0
        props = verdicts(spec, findings, complete,
                         note=f"search stopped ({stop.value}) before this was decided")
        fired, never = coverage.report(spec)
        return CheckResult(
            model=spec.label, strategy="dfs", workers=1, symmetry=spec.canon is not None,
            complete=complete, stop_reason=stop, distinct_states=len(fps),
            states_generated=generated, initial_states=len(init_states),
            depth=max(depth), queue_left=len(stack), elapsed=elapsed, properties=props,
            bytes_per_state=0.0, warnings=tuple(warnings + findings.warnings),
            coverage=fired, never_fired=never, por=spec.por, transitions_pruned=pruned,
            reduced_states=reduced_states)
