"""Breadth-first search, in one process or across worker processes, with identical results.

Where it sits: the default strategy behind ``Checker.run``. The coordinator (this
process) owns the visited table and every per-state record; *expanders* own state
objects and run the model. With ``workers=1`` the one expander lives in-process; with
``workers=K`` there are K forked expander processes and only integers cross the pipes
(plus the occasional batch of states moved to rebalance work).

How a level goes: each expander takes chunks of its share of the frontier (in state-id
order), computes successors and their fingerprints, and sends the fingerprints with
*keys* ``parent id << 20 | successor index``. The coordinator inserts the batch in the
table (vectorised) and answers which candidates the expander must keep. At the end of
the level every new state is numbered by its smallest key — exactly the order a
single-process FIFO queue would have given it — and its parent is the candidate that
carried that key. Because "smallest key" does not depend on which batch arrived first,
counts, parents, state ids and therefore counterexamples are the same for any number of
workers and any timing. When a later batch brings a smaller key for a state of the
current level, its candidate replaces the kept copy (the model's ``canonical`` may map
different states to one representative; the copy kept is always the one the
deterministic parent produces).

Per stored state the coordinator keeps 8 bytes of fingerprint, 8 bytes of key (parent
pointer) and a hash-table slot (12 bytes at load 0.3-0.6); the states themselves live
only while in the frontier. Counterexamples are rebuilt from the keys (``core.Tracer``).
"""

from __future__ import annotations

import bisect
import contextlib
import multiprocessing as mp
import pickle
import sys
import traceback
from collections import Counter, deque
from collections.abc import Callable
from multiprocessing.connection import Connection, wait
from typing import Any

import attrs
import numpy as np
import numpy.typing as npt

from kstate.errors import ModelError
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
from kstate.verify.checker.model import Kind
from kstate.verify.checker.por import persistent_mask
from kstate.verify.checker.results import CheckResult, Progress, StopReason
from kstate.verify.checker.table import FingerprintTable, mix

SUCC_BITS = 20
SUCC_MASK = (1 << SUCC_BITS) - 1
ROOT = (1 << (64 - SUCC_BITS)) - 1  # parent field of an initial state's key

I64 = npt.NDArray[np.int64]
U64 = npt.NDArray[np.uint64]


class _Grow:
    """A growable 1-d numpy array (amortised doubling)."""

    def __init__(self, dtype: Any, fill: Any = 0) -> None:
        self.a = np.full(1024, fill, dtype)
        self.fill = fill
        self.n = 0

    def resize(self, n: int) -> None:
        if n > self.a.size:
            bigger = np.full(max(n, 2 * self.a.size), self.fill, self.a.dtype)
            bigger[: self.n] = self.a[: self.n]
            self.a = bigger
        if n > self.n:
            self.a[self.n:n] = self.fill
        self.n = n

    def view(self) -> Any:
        return self.a[: self.n]


@attrs.frozen
class Batch:
    """Expander -> coordinator: the successors of one chunk of frontier states."""

    generated: int  # successors computed, self-loops included
    fps: I64  # fingerprint of each successor's representative (self-loops left out)
    keys: U64  # parent id << SUCC_BITS | successor index
    expanded: I64  # ids of the states expanded
    deadlocks: list[int]
    labels: npt.NDArray[np.int32] | None  # expander-local action ids (liveness only)
    new_labels: list[str]
    fired: Counter[str]  # action name -> successors computed (coverage)
    #: partial-order reduction: candidates outside their parent's persistent set, sent
    #: only in case the cycle proviso makes the coordinator expand the parent fully
    optional: npt.NDArray[np.bool_] | None = None


class Expander:
    """Holds frontier states and runs the model on them (in-process or in a worker)."""

    def __init__(self, spec: Spec, record_labels: bool) -> None:
        self.spec = spec
        self.record_labels = record_labels
        self.frontier: list[Any] = []
        self.ids: I64 = np.empty(0, np.int64)
        self.pos = 0
        self.kept: list[Any] = []
        self.inflight: deque[list[Any]] = deque()
        self.label_ids: dict[str, int] = {}

    def load(self, states: list[Any], ids: I64) -> None:
        order = np.argsort(ids, kind="stable")
        self.frontier = [states[i] for i in order.tolist()]
        self.ids = ids[order]
        self.pos = 0

    def remaining(self) -> int:
        return len(self.frontier) - self.pos

    def expand(self, n: int) -> Batch | None:
        if self.pos >= len(self.frontier):
            return None
        chunk = self.frontier[self.pos:self.pos + n]
        ids = self.ids[self.pos:self.pos + n]
        self.pos += len(chunk)
        model, label = self.spec.model, self.spec.label
        actions = model.actions
        pairs: list[tuple[str, Any]] = []
        counts: list[int] = []
        left_out: list[bool] | None = [] if self.spec.por else None
        for s in chunk:
            succ = list(actions(s))
            pairs.extend(succ)
            counts.append(len(succ))
            if left_out is not None:
                mask = persistent_mask(model, label, s, succ)
                left_out.extend(mask if mask is not None else [False] * len(succ))
        fired = Coverage()
        fired.count(pairs)
        states = [t for _, t in pairs]
        try:
            fps = self.spec.fingerprints(states)
        except ModelError:
            self.spec.fingerprints(states, [a for a, _ in pairs])
            raise
        cnt = np.array(counts, np.int64)
        if cnt.size and cnt.max() > SUCC_MASK:
            raise ModelError(f"a state has {int(cnt.max())} successors; at most {SUCC_MASK}",
                             model=self.spec.label, field="actions")
        starts = np.cumsum(cnt) - cnt
        idx = np.arange(len(pairs), dtype=np.int64) - np.repeat(starts, cnt)
        keys = (np.repeat(ids, cnt).astype(np.uint64) << np.uint64(SUCC_BITS)) | idx.astype(
            np.uint64)
        generated = len(pairs)
        optional = None
        if not self.record_labels:
            # A self-loop lands on its parent, a state of the previous level: it cannot
            # change any parent choice, so the coordinator need not see it (TwoPhase: 37%
            # of all transitions are receipts of a message already acted on).
            loop = fps == np.repeat(self.spec.fingerprints(chunk), cnt)
            moved = ~loop
            if left_out is not None and any(left_out):
                optional = np.array(left_out, np.bool_)
                # the proviso: a kept self-loop is a kept successor already visited, so
                # its parent is expanded fully (decided here, no table needed)
                owner = np.repeat(np.arange(len(chunk)), cnt)
                full = np.zeros(len(chunk), np.bool_)
                full[owner[loop & ~optional]] = True
                optional &= ~full[owner]
                moved |= optional  # left-out self-loops travel, in case they are needed
            if not moved.all():
                fps, keys = fps[moved], keys[moved]
                states = [states[i] for i in np.flatnonzero(moved).tolist()]
                if optional is not None:
                    optional = optional[moved]
        deadlocks = [int(ids[i]) for i in np.flatnonzero(cnt == 0).tolist()
                     if not self.spec.model.terminal(chunk[i])]
        labels = None
        new_labels: list[str] = []
        if self.record_labels:
            table = self.label_ids
            local = []
            for name, _ in pairs:
                j = table.get(name)
                if j is None:
                    j = table[name] = len(table)
                    new_labels.append(name)
                local.append(j)
            labels = np.array(local, np.int32)
        self.inflight.append(states)
        return Batch(generated, fps, keys, ids.copy(), deadlocks, labels, new_labels,
                     fired.fired, optional)

    def rewind(self, batch: Batch) -> None:
        """Forget the last (unsent) batch: its states stay unexpanded."""
        self.inflight.pop()
        self.pos -= batch.expanded.size

    def accept(self, keep: npt.NDArray[np.bool_]) -> npt.NDArray[np.uint64]:
        """Keep the chosen candidates of the oldest batch; their predicate bits."""
        states = self.inflight.popleft()
        new = [states[i] for i in np.flatnonzero(keep).tolist()]
        self.kept.extend(new)
        return self.spec.bits(new)

    def next_level(self, final: I64) -> int:
        """Adopt the kept states numbered ``final`` (-1: replaced, drop) as the frontier."""
        live = np.flatnonzero(final >= 0)
        self.load([self.kept[i] for i in live.tolist()], final[live])
        self.kept = []
        return len(self.frontier)

    def take(self, k: int) -> tuple[list[Any], I64]:
        """Hand over the last ``k`` unexpanded states (rebalancing, between levels)."""
        cut = len(self.frontier) - k
        states, ids = self.frontier[cut:], self.ids[cut:]
        self.frontier, self.ids = self.frontier[:cut], self.ids[:cut]
        return states, ids

    def give(self, states: list[Any], ids: I64) -> None:
        self.load(self.frontier + states, np.concatenate([self.ids, ids]))


class VectorExpander(Expander):
    """``Expander`` for a ``VectorModel``: the frontier is an int64 array and a chunk is
    expanded by one ``successors_array`` call (no Python loop per state)."""

    LIMIT = sys.hash_info.modulus  # below it, hash(x) == x: the array is the fingerprint

    def load(self, states: Any, ids: I64) -> None:
        order = np.argsort(ids, kind="stable")
        self.frontier = np.asarray(states, np.int64)[order]  # type: ignore[assignment]
        self.ids = ids[order]
        self.pos = 0
        self.kept = []

    def expand(self, n: int) -> Batch | None:
        if self.pos >= len(self.frontier):
            return None
        chunk = np.asarray(self.frontier[self.pos:self.pos + n])
        ids = self.ids[self.pos:self.pos + n]
        self.pos += chunk.size
        model: Any = self.spec.model
        par, idx, nxt = (np.asarray(a, np.int64) for a in model.successors_array(chunk))
        generated = int(nxt.size)
        cnt = np.bincount(par, minlength=chunk.size)
        deadlocks = [int(ids[i]) for i in np.flatnonzero(cnt == 0).tolist()
                     if not model.terminal(int(chunk[i]))]
        if nxt.size and (int(nxt.min()) < 0 or int(nxt.max()) >= self.LIMIT):
            raise ModelError(f"vector states must lie in [0, {self.LIMIT})",
                             model=self.spec.label, field="successors_array")
        if idx.size and int(idx.max()) > SUCC_MASK:
            raise ModelError(f"a state has more than {SUCC_MASK} successors",
                             model=self.spec.label, field="successors_array")
        moved = nxt != chunk[par]  # self-loops: see Expander.expand
        par, idx, nxt = par[moved], idx[moved], nxt[moved]
        fps = model.canonical_array(nxt) if self.spec.canon is not None else nxt
        keys = (ids[par].astype(np.uint64) << np.uint64(SUCC_BITS)) | idx.astype(np.uint64)
        fps = np.asarray(fps, np.int64)
        if keys.size > 1 and not (keys[1:] > keys[:-1]).all():
            order = np.argsort(keys, kind="stable")  # the coordinator relies on key order
            nxt, fps, keys = nxt[order], fps[order], keys[order]
        self.inflight.append(nxt)
        return Batch(generated, fps, keys, ids.copy(), deadlocks, None, [], Counter())

    def accept(self, keep: npt.NDArray[np.bool_]) -> npt.NDArray[np.uint64]:
        new = self.inflight.popleft()[keep]
        self.kept.append(new)
        return self.spec.bits_array(new)

    def next_level(self, final: I64) -> int:
        kept = np.concatenate(self.kept) if self.kept else np.empty(0, np.int64)
        live = np.flatnonzero(final >= 0)
        self.load(kept[live], final[live])
        return len(self.frontier)

    def take(self, k: int) -> tuple[Any, I64]:
        cut = len(self.frontier) - k
        states, ids = self.frontier[cut:], self.ids[cut:]
        self.frontier, self.ids = self.frontier[:cut], self.ids[:cut]
        return states, ids

    def give(self, states: Any, ids: I64) -> None:
        self.load(np.concatenate([np.asarray(self.frontier, np.int64), states]),
                  np.concatenate([self.ids, ids]))


def make_expander(spec: Spec, record_labels: bool) -> Expander:
    return VectorExpander(spec, record_labels) if spec.vector else Expander(spec,
                                                                              record_labels)


# --------------------------------------------------------------------------- workers


def _worker_main(conn: Connection, spec: Spec, record_labels: bool,
                 states: list[Any], ids: I64) -> None:
    ex = make_expander(spec, record_labels)
    ex.load(states, ids)
    try:
        while True:
            msg = conn.recv()
            op = msg[0]
            if op == "level":
                chunk = msg[1]
                batch = ex.expand(chunk)
                if batch is None:
                    conn.send(("done", None))
                    continue
                conn.send(("batch", batch, None))
                while True:
                    nxt = ex.expand(chunk)  # overlaps with the coordinator's work
                    keep, stop = conn.recv()
                    bits = ex.accept(keep)
                    if nxt is None or stop:
                        if nxt is not None:
                            ex.rewind(nxt)
                        conn.send(("done", bits))
                        break
                    conn.send(("batch", nxt, bits))
            elif op == "ids":
                conn.send(("size", ex.next_level(msg[1])))
            elif op == "take":
                conn.send(("states", ex.take(msg[1])))
            elif op == "give":
                ex.give(msg[1], msg[2])
            elif op == "quit":
                return
    except BaseException as e:  # report, never hang the coordinator
        try:
            payload: Any = pickle.dumps(e)
            pickle.loads(payload)
        except Exception:
            payload = None
        with contextlib.suppress(Exception):
            conn.send(("error", payload, traceback.format_exc(), repr(e)))


class _Remote:
    def __init__(self, proc: Any, conn: Connection) -> None:
        self.proc = proc
        self.conn = conn

    def recv(self) -> Any:
        msg = self.conn.recv()
        if msg[0] == "error":
            _, payload, tb, text = msg
            if payload is not None:
                err = pickle.loads(payload)
                err.add_note(f"raised in a checker worker process:\n{tb}")
                raise err
            raise ModelError(f"a checker worker failed: {text}\n{tb}")
        return msg


# --------------------------------------------------------------------------- coordinator


@attrs.define
class Limits:
    max_depth: int | None
    max_states: int | None
    timeout: float | None
    stop: StopPolicy
    progress: Callable[[Progress], None] | None
    progress_interval: float
    now: Callable[[], float]
    chunk: int


class Bfs:
    def __init__(self, spec: Spec, workers: int, limits: Limits) -> None:
        self.spec = spec
        self.workers = workers
        self.lim = limits
        self.liveness = bool(spec.liveness)
        self.table = FingerprintTable()
        # per level, in final id order
        self.starts: list[int] = []
        self.fps: list[I64] = []
        self.keys: list[U64] = []
        self.bits: list[U64] = []
        # the level being built, indexed by temporary id - level start
        self.l_fps = _Grow(np.int64)
        self.l_keys = _Grow(np.uint64)
        self.l_bits = _Grow(np.uint64)
        self.l_owner = _Grow(np.int32, -1)
        self.l_pos = _Grow(np.int64, -1)
        self.kept = [0] * workers
        self.pending: list[I64] = [np.empty(0, np.int64)] * workers
        self.level_start = 0
        # edges for liveness
        self.e_src: list[I64] = []
        self.e_dst: list[I64] = []
        self.e_lab: list[I64] = []
        self.l_edges: list[tuple[I64, I64, I64]] = []
        self.expanded_ids: list[I64] = []
        self.label_names: list[str] = []
        self.label_gid: dict[str, int] = {}
        self.label_map: list[list[int]] = [[] for _ in range(workers)]
        # outcome
        self.generated = 0
        self.init_count = 0
        self.pruned = 0  # POR: successors left out (computed, not followed)
        self.reduced_states = 0  # POR: states expanded with a proper persistent set
        self.coverage = Coverage()
        self.expanded = 0
        self.deadlocks: list[int] = []
        self.first_deadlock: int | None = None
        self.found: dict[int, int] = {}  # safety prop index -> state id
        self.unexplored = False
        self.timed_out = False
        self.t0 = 0.0
        self.last_progress = 0.0

    # ------------------------------------------------------------------ run

    def run(self) -> CheckResult:
        spec, lim = self.spec, self.lim
        self.t0 = self.last_progress = lim.now()
        init_states, init_fps = spec.initial()
        fps = np.array(init_fps, np.int64)
        self.table.insert(mix(fps))
        order_ids = np.arange(len(init_states), dtype=np.int64)
        self.table.assign(mix(fps), order_ids)
        self.starts.append(0)
        self.fps.append(fps)
        self.keys.append((np.uint64(ROOT) << np.uint64(SUCC_BITS))
                         | order_ids.astype(np.uint64))
        self.bits.append(spec.bits(init_states))
        self.generated = self.init_count = len(init_states)
        self._note_safety(0)
        self.init_states = init_states
        stop: StopReason | None = self._stop_after_level()
        remotes: list[_Remote] = []
        local: Expander | None = None
        try:
            if self.workers == 1:
                local = make_expander(spec, self.liveness)
                local.load(list(init_states), order_ids)
            else:
                remotes = self._spawn(init_states, order_ids)
            self.frontier = len(init_states)
            while stop is None:
                self.level_start = self.table.size
                probe = lim.max_depth is not None and len(self.starts) >= lim.max_depth
                if local is not None:
                    self._level_local(local, probe)
                else:
                    self._level_remote(remotes, probe)
                if self.table.size > self.level_start:
                    finals = self._end_level(self.table.size - self.level_start)
                else:
                    self._flush_edges()
                    finals = [np.empty(0, np.int64)] * self.workers
                if local is not None:
                    frontier = local.next_level(finals[0])
                else:
                    frontier = self._distribute(remotes, finals)
                self.frontier = frontier
                stop = self._stop_reason(frontier, probe)
            self._report()
        finally:
            for r in remotes:
                with contextlib.suppress(Exception):
                    r.conn.send(("quit",))
            for r in remotes:
                r.proc.join(timeout=5)
                if r.proc.is_alive():
                    r.proc.kill()
        return self._result(stop)

    def _spawn(self, states: list[Any], ids: I64) -> list[_Remote]:
        ctx = mp.get_context("fork")
        remotes = []
        for w in range(self.workers):
            mine = list(range(w, len(states), self.workers))
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_worker_main, daemon=True,
                               args=(child, self.spec, self.liveness,
                                     [states[i] for i in mine], ids[mine]))
            proc.start()
            child.close()
            remotes.append(_Remote(proc, parent))
        return remotes

    # ------------------------------------------------------------------ one level

    def _level_local(self, ex: Expander, probe: bool) -> None:
        while not self.timed_out:
            batch = ex.expand(self._chunk(ex.remaining()))
            if batch is None:
                return
            keep = self._absorb(0, batch, probe)
            self._bits(0, ex.accept(keep))
            self._tick()

    def _level_remote(self, remotes: list[_Remote], probe: bool) -> None:
        # chunk sized on this worker's share so every worker gets several round trips
        # small chunks keep the pipeline full: a level ends with a barrier
        chunk = max(64, min(self.lim.chunk, self.frontier // (16 * len(remotes)) + 1))
        for r in remotes:
            r.conn.send(("level", chunk))
        by_conn = {r.conn: (w, r) for w, r in enumerate(remotes)}
        active = set(by_conn)
        while active:
            for conn in wait(list(active)):
                w, r = by_conn[conn]  # type: ignore[index]
                msg = r.recv()
                if msg[0] == "done":
                    if msg[1] is not None:
                        self._bits(w, msg[1])
                    active.discard(conn)
                    continue
                _, batch, bits = msg
                if bits is not None:
                    self._bits(w, bits)
                keep = self._absorb(w, batch, probe)
                self._tick()
                r.conn.send((keep, self.timed_out))

    def _chunk(self, remaining: int) -> int:
        return max(64, min(self.lim.chunk, remaining // 4 + 1))

    def _absorb(self, w: int, b: Batch, probe: bool) -> npt.NDArray[np.bool_]:
        self.generated += b.generated
        self.coverage.merge(b.fired)
        self.expanded += b.expanded.size
        self.deadlocks.extend(b.deadlocks)
        if b.optional is None:
            return self._insert(w, b, b.fps, b.keys, probe)
        active = self._proviso(b.fps, b.keys, b.optional, probe)
        keep = np.zeros(b.fps.size, np.bool_)
        keep[active] = self._insert(w, b, b.fps[active], b.keys[active], probe)
        return keep

    def _proviso(self, fps: I64, keys: U64, optional: npt.NDArray[np.bool_],
                 probe: bool) -> npt.NDArray[np.bool_]:
        """The cycle proviso, decided on the table as it was before this level: a parent
        is reduced only if none of its kept successors was stored before the level
        began (each has the next level, so levels rise strictly along every reduced
        edge and every cycle has a fully expanded state). Otherwise its left-out
        successors are added. Which states were stored before the level does not depend
        on batch order, so neither does the outcome (any number of workers). Returns the
        candidates to insert."""
        if probe:
            # at the depth bound only "is anything unseen?" is asked; a reduced parent
            # with an unseen kept successor answers yes, one without is fully expanded
            return np.ones(fps.size, np.bool_)
        parents = keys >> np.uint64(SUCC_BITS)
        firm = ~optional
        ids = self.table.find(mix(fps[firm]))
        seen = (ids >= 0) & (ids < self.level_start)
        full = np.isin(parents, parents[firm][seen])
        active = firm | full
        dropped = ~active
        self.pruned += int(dropped.sum())
        self.reduced_states += int(np.unique(parents[dropped]).size)
        return active

    def _insert(self, w: int, b: Batch, fps: I64, bkeys: U64,
                probe: bool) -> npt.NDArray[np.bool_]:
        n = fps.size
        keys = mix(fps)
        ls = self.level_start
        if probe:
            ids = self.table.find(keys)
            if (ids < 0).any():
                self.unexplored = True
            keep = np.zeros(n, np.bool_)
            self.pending[w] = np.empty(0, np.int64)
        else:
            ids, new = self.table.insert(keys)
            size = self.table.size - ls
            for g in (self.l_fps, self.l_keys, self.l_bits, self.l_owner, self.l_pos):
                g.resize(size)
            tn = ids[new] - ls
            self.l_fps.a[tn] = fps[new]
            self.l_keys.a[tn] = bkeys[new]
            keep = new.copy()
            # a candidate of an already-known state of this level with a smaller key
            # becomes its parent and its kept copy
            old = np.flatnonzero((ids >= ls) & ~new)
            if old.size:
                t = ids[old] - ls
                better = bkeys[old] < self.l_keys.a[t]
                if better.any():
                    t, sel = np.unique(t[better], return_index=True)
                    winners = old[better][sel]
                    self.l_keys.a[t] = bkeys[winners]
                    keep[winners] = True
            kidx = np.flatnonzero(keep)
            kt = ids[kidx] - ls
            self.l_owner.a[kt] = w
            self.l_pos.a[kt] = self.kept[w] + np.arange(kidx.size)
            self.kept[w] += kidx.size
            self.pending[w] = kt
        if self.liveness:
            assert b.labels is not None
            table = self.label_map[w]
            for name in b.new_labels:
                gid = self.label_gid.get(name)
                if gid is None:
                    gid = self.label_gid[name] = len(self.label_names)
                    self.label_names.append(name)
                table.append(gid)
            lab = np.array(table, np.int64)[b.labels] if n else np.empty(0, np.int64)
            src = (b.keys >> np.uint64(SUCC_BITS)).astype(np.int64)
            self.l_edges.append((src, ids.copy(), lab))
            self.expanded_ids.append(b.expanded)
        return keep

    def _bits(self, w: int, bits: U64) -> None:
        self.l_bits.a[self.pending[w]] = bits

    def _tick(self) -> None:
        now = self.lim.now()
        if self.lim.timeout is not None and now - self.t0 >= self.lim.timeout:
            self.timed_out = True
        if self.lim.progress is not None and now - self.last_progress >= \
                self.lim.progress_interval:
            self._report()

    def _report(self) -> None:
        if self.lim.progress is None:
            return
        now = self.lim.now()
        self.last_progress = now
        self.lim.progress(Progress(self.table.size, self.generated,
                                   self.table.size - self.expanded, len(self.starts),
                                   now - self.t0,
                                   kept_ratio(self.spec, self.generated - self.init_count,
                                              self.pruned)))

    def _end_level(self, n: int) -> list[I64]:
        """Number the new level by smallest key. Returns, per worker, the final id of
        each state it kept (-1 for a copy that was replaced)."""
        ls = self.level_start
        keys = self.l_keys.a[:n]
        order = np.argsort(keys, kind="stable")
        rank = np.empty(n, np.int64)
        rank[order] = np.arange(n)
        final = ls + rank
        fps = self.l_fps.a[:n]
        self.table.assign(mix(fps), final)
        self.starts.append(ls)
        self.fps.append(fps[order].copy())
        self.keys.append(keys[order].copy())
        self.bits.append(self.l_bits.a[:n][order].copy())
        self._note_safety(len(self.starts) - 1)
        if not self.liveness:
            self.bits[-1] = self.bits[-1][:0]  # only liveness needs them after the level
        for _, dst, _ in self.l_edges:
            cur = dst >= ls
            dst[cur] = final[dst[cur] - ls]
        self._flush_edges()
        finals = []
        owner = self.l_owner.a[:n]
        pos = self.l_pos.a[:n]
        for w in range(self.workers):
            arr = np.full(self.kept[w], -1, np.int64)
            sel = owner == w
            arr[pos[sel]] = final[sel]
            finals.append(arr)
        self.kept = [0] * self.workers
        for g in (self.l_fps, self.l_keys, self.l_bits, self.l_owner, self.l_pos):
            g.resize(0)
        return finals

    def _flush_edges(self) -> None:
        for src, dst, lab in self.l_edges:
            self.e_src.append(src)
            self.e_dst.append(dst)
            self.e_lab.append(lab)
        self.l_edges = []

    def _distribute(self, remotes: list[_Remote], finals: list[I64]) -> int:
        sizes = []
        for w, r in enumerate(remotes):
            r.conn.send(("ids", finals[w]))
        for r in remotes:
            sizes.append(r.recv()[1])
        total = sum(sizes)
        target = -(-total // len(remotes))
        if total and max(sizes) > 1.15 * target + 32:
            # move surplus from the fullest workers to the emptiest
            for w in sorted(range(len(remotes)), key=lambda i: -sizes[i]):
                surplus = sizes[w] - target
                if surplus <= 0:
                    break
                remotes[w].conn.send(("take", surplus))
                states, ids = remotes[w].recv()[1]
                sizes[w] -= surplus
                start = 0
                for v in sorted(range(len(remotes)), key=lambda i: sizes[i]):
                    room = target - sizes[v]
                    if room <= 0 or start >= len(states):
                        continue
                    part = slice(start, start + room)
                    remotes[v].conn.send(("give", states[part], ids[part]))
                    sizes[v] += len(states[part])
                    start += room
        return total

    # ------------------------------------------------------------------ verdicts

    def _note_safety(self, level: int) -> None:
        bits = self.bits[level]
        for c in self.spec.safety:
            if c.index in self.found:
                continue
            col = (bits >> np.uint64(c.bit)) & np.uint64(1)
            hits = np.flatnonzero(col == (0 if c.kind is Kind.ALWAYS else 1))
            if hits.size:
                self.found[c.index] = self.starts[level] + int(hits[0])

    def _stop_after_level(self) -> StopReason | None:
        if self.deadlocks and self.first_deadlock is None and self.spec.deadlock:
            self.first_deadlock = min(self.deadlocks)
        self.deadlocks = []
        lim = self.lim
        if lim.stop is StopPolicy.DECIDED and all_safety_decided(
                self.spec, self.found, self.first_deadlock is not None):
            return StopReason.DECIDED
        if lim.stop is StopPolicy.FIRST_VIOLATION and any_failure(
                self.spec, self.found, self.first_deadlock is not None):
            return StopReason.VIOLATION
        if self.timed_out:
            return StopReason.TIMEOUT
        if lim.max_states is not None and self.table.size >= lim.max_states:
            return StopReason.MAX_STATES
        return None

    def _stop_reason(self, frontier: int, probe: bool) -> StopReason | None:
        reason = self._stop_after_level()
        if reason is not None:
            if reason in (StopReason.MAX_STATES,) and frontier == 0:
                return StopReason.EXHAUSTED
            return reason
        if probe:
            return StopReason.MAX_DEPTH if self.unexplored else StopReason.EXHAUSTED
        if frontier == 0:
            return StopReason.EXHAUSTED
        return None

    # ------------------------------------------------------------------ results

    def fp_of(self, sid: int) -> int:
        lv = bisect.bisect_right(self.starts, sid) - 1
        return int(self.fps[lv][sid - self.starts[lv]])

    def key_of(self, sid: int) -> int:
        lv = bisect.bisect_right(self.starts, sid) - 1
        return int(self.keys[lv][sid - self.starts[lv]])

    def path_to(self, sid: int) -> tuple[list[int], list[int]]:
        ids, hints = [], []
        while True:
            key = self.key_of(sid)
            ids.append(sid)
            hints.append(key & SUCC_MASK)
            parent = key >> SUCC_BITS
            if parent == ROOT:
                break
            sid = parent
        ids.reverse()
        hints.reverse()
        return ids, hints

    def _result(self, stop: StopReason | None) -> CheckResult:
        assert stop is not None
        spec = self.spec
        complete = stop is StopReason.EXHAUSTED
        tracer = Tracer(spec, self.init_states, self.fp_of)
        found = Findings()
        for index, sid in self.found.items():
            ids, hints = self.path_to(sid)
            found.safety[index] = tracer.steps(ids, hints=hints)
        if self.first_deadlock is not None:
            ids, hints = self.path_to(self.first_deadlock)
            found.deadlock = tracer.steps(ids, hints=hints)
        warnings: list[str] = []
        if spec.liveness:
            graph = self._graph()
            record_lassos(spec, graph, tracer, found)
            unused = spec.fairness.unused()
            if unused:
                warnings.append("fairness entries matched no action: " + ", ".join(unused))
        note = f"search stopped ({stop.value}) before this was decided"
        props = verdicts(spec, found, complete, note=note)
        elapsed = self.lim.now() - self.t0
        distinct = self.table.size
        coverage, never = self.coverage.report(spec) if not spec.vector else ((), ())
        nbytes = self.table.nbytes + sum(a.nbytes for a in self.fps) + sum(
            a.nbytes for a in self.keys)
        if spec.liveness:
            nbytes += sum(a.nbytes for a in self.bits)
        return CheckResult(
            model=spec.label,
            strategy="bfs",
            workers=self.workers,
            symmetry=spec.canon is not None,
            complete=complete,
            stop_reason=stop,
            distinct_states=distinct,
            states_generated=self.generated,
            initial_states=len(self.init_states),
            depth=len(self.starts),
            queue_left=distinct - self.expanded,
            elapsed=elapsed,
            properties=props,
            bytes_per_state=nbytes / distinct,
            warnings=tuple(warnings + found.warnings),
            coverage=coverage,
            never_fired=never,
            por=spec.por,
            transitions_pruned=self.pruned,
            reduced_states=self.reduced_states,
        )

    def _graph(self) -> Graph:
        n = self.table.size
        expanded = np.zeros(n, np.bool_)
        for ids in self.expanded_ids:
            expanded[ids] = True
        return Graph(n=n, initial=list(range(len(self.init_states))),
                     src=_cat(self.e_src), dst=_cat(self.e_dst), lab=_cat(self.e_lab),
                     labels=self.label_names, expanded=expanded,
                     bits=np.concatenate(self.bits))


def _cat(parts: list[I64]) -> I64:
    return np.concatenate(parts) if parts else np.empty(0, np.int64)
