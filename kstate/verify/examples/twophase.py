"""Two-phase commit, action for action as Lamport's ``TwoPhase.tla`` (tlaplus/Examples).

Where it sits: the checker's main cross-check and benchmark model. Published figures it
must reproduce: 288 distinct states / 1,146 states generated / depth 11 for 3 resource
managers (TLC), 8,832 for 5, 296,448 for 7, 1,745,408 for 8, 10,340,352 for 9.

Two encodings of one spec, kept in agreement by a test:

* ``TwoPhase`` — readable: a frozen attrs state with the spec's four variables;
* ``PackedTwoPhase`` — one int per state (4 bits per resource manager plus 4 bits of
  TM state and broadcast messages), several times faster; the benchmark runs this one.

Symmetry over resource managers, two flavours:

* ``"exact"`` — sort the managers by everything the state says about them (their
  state, whether the TM has their Prepared, whether they sent it): one representative
  per orbit, 314 states for N=5, independent of search order;
* ``"rm-state"`` — Stateright's representative for its 2pc example: sort by ``rmState``
  alone, ties kept in index order. It is not canonical (two members of an orbit can get
  different representatives), so the count depends on the search order: Stateright's
  DFS finds 665 states for N=5 and so does ours; BFS finds 508.
"""

from __future__ import annotations

import functools
from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Any, Literal

import attrs
import numpy as np

from kstate.errors import ModelError
from kstate.verify.checker.model import (
    Model,
    Property,
    VectorModel,
    action,
    always,
    sometimes,
)
from kstate.verify.checker.por import Footprint, stubborn
from kstate.verify.checker.symmetry import Symmetry

RM_STATES = ("working", "prepared", "committed", "aborted")
TM_STATES = ("init", "committed", "aborted")
SymmetryKind = Literal["exact", "rm-state"]


@attrs.frozen(order=True)
class Msg:
    type: str  # "Prepared" | "Commit" | "Abort"
    rm: int = -1  # the sender of a Prepared message


COMMIT = Msg("Commit")
ABORT = Msg("Abort")


@attrs.frozen
class TPState:
    rm_state: tuple[str, ...]  # rm_state[i]: resource manager i's state
    tm_state: str
    tm_prepared: frozenset[int]
    msgs: frozenset[Msg]


def rm_name(i: int) -> str:
    return f"r{i + 1}"


def describe(s: TPState) -> dict[str, Any]:
    """The TLA+-shaped JSON view shared by both encodings."""
    msgs = sorted(s.msgs, key=lambda m: (m.type, m.rm))
    return {
        "rmState": {rm_name(i): st for i, st in enumerate(s.rm_state)},
        "tmState": s.tm_state,
        "tmPrepared": [rm_name(i) for i in sorted(s.tm_prepared)],
        "msgs": [{"type": m.type, "rm": rm_name(m.rm)} if m.type == "Prepared"
                 else {"type": m.type} for m in msgs],
    }


def _check_n(n: int, symmetry: str | None) -> None:
    if not 1 <= n <= 15:
        raise ModelError("between 1 and 15 resource managers", model="TwoPhase", field="n")
    if symmetry not in (None, "exact", "rm-state"):
        raise ModelError(f"unknown symmetry {symmetry!r}", model="TwoPhase", field="symmetry")


class TwoPhase(Model[TPState]):
    """``TwoPhase.tla`` with ``RM = {r1, ..., rN}``; actions in ``TPNext``'s order."""

    def __init__(self, n: int = 3, symmetry: SymmetryKind | None = None, *,
                 footprints: bool = False, check: Sequence[str] | None = None,
                 seeded_bug: bool = False) -> None:
        _check_n(n, symmetry)
        self.n = n
        self.name = f"TwoPhase(N={n})"
        self.sym_kind = symmetry
        #: partial-order reduction from the actions' footprints (``persistent``)
        self.footprints = footprints
        #: the properties checked (names; default all four)
        self.check = tuple(check) if check is not None else None
        #: TMCommit needs only r1's Prepared: TCConsistent fails (6 states at shortest)
        self.seeded_bug = seeded_bug
        self.symmetry_exact = symmetry == "exact"
        rms = range(n)
        self._names = [
            tuple(action(fam, rm_name(i)) for fam in (
                "TMRcvPrepared", "RMPrepare", "RMChooseToAbort", "RMRcvCommitMsg",
                "RMRcvAbortMsg"))
            for i in rms
        ]
        self._all = frozenset(rms)
        self._sym = Symmetry(tuple(rms), _permute, signature=self._signature, complete=True)

    def initial_states(self) -> Iterable[TPState]:
        return [TPState(("working",) * self.n, "init", frozenset(), frozenset())]

    def actions(self, s: TPState) -> Iterable[tuple[str, TPState]]:
        out: list[tuple[str, TPState]] = []
        init = s.tm_state == "init"
        if init and (s.tm_prepared == self._all
                     or (self.seeded_bug and 0 in s.tm_prepared)):  # TMCommit
            out.append(("TMCommit", attrs.evolve(s, tm_state="committed", msgs=s.msgs | {COMMIT})))
        if init:  # TMAbort
            out.append(("TMAbort", attrs.evolve(s, tm_state="aborted", msgs=s.msgs | {ABORT})))
        commit, abort = COMMIT in s.msgs, ABORT in s.msgs
        for rm in range(self.n):
            rcv, prepare, choose, rcv_commit, rcv_abort = self._names[rm]
            if init and Msg("Prepared", rm) in s.msgs:
                out.append((rcv, attrs.evolve(s, tm_prepared=s.tm_prepared | {rm})))
            if s.rm_state[rm] == "working":
                out.append((prepare, attrs.evolve(s, rm_state=_set(s.rm_state, rm, "prepared"),
                                                  msgs=s.msgs | {Msg("Prepared", rm)})))
                out.append((choose, attrs.evolve(s, rm_state=_set(s.rm_state, rm, "aborted"))))
            if commit:
                out.append((rcv_commit,
                            attrs.evolve(s, rm_state=_set(s.rm_state, rm, "committed"))))
            if abort:
                out.append((rcv_abort, attrs.evolve(s, rm_state=_set(s.rm_state, rm, "aborted"))))
        return out

    def properties(self) -> Sequence[Property[TPState]]:
        props: list[Property[TPState]] = [
            always("TPTypeOK", self.type_ok),
            always("TCConsistent", tc_consistent),
            sometimes("AllCommitted", lambda s: all(x == "committed" for x in s.rm_state)),
            sometimes("AllAborted", lambda s: all(x == "aborted" for x in s.rm_state)),
        ]
        return [p for p in props if self.check is None or p.name in self.check]

    # ------------------------------------------------------------------ footprints

    @property
    def has_persistent(self) -> bool:
        return self.footprints

    def persistent(self, s: TPState, actions: Sequence[tuple[str, TPState]]
                   ) -> list[int] | None:
        """A stubborn set from the actions' footprints. Locations: ``("rm", i)``
        (rmState[i]), ``("decided", i)`` (whether rm i is committed, aborted or neither —
        a function of rmState[i], the only thing the properties other than TPTypeOK
        read), ``"tm"``, ``("tmp", i)`` (i in tmPrepared), ``("msg", m)`` per message
        (messages are only ever added). RMPrepare moves working -> prepared, so it
        writes ``("rm", i)`` but not ``("decided", i)``: it is invisible."""
        return stubborn([a for a, _ in actions], self._universe,
                        lambda name: self._footprint(s, name), self._visible)

    @functools.cached_property
    def _universe(self) -> tuple[str, ...]:
        return ("TMCommit", "TMAbort", *(a for names in self._names for a in names))

    @functools.cached_property
    def _visible(self) -> frozenset[Hashable]:
        names = {p.name for p in self.properties()}
        out: set[Hashable] = set()
        if "TPTypeOK" in names:  # reads every variable
            out.update(loc for a in self._universe for loc in self._footprint(None, a).writes)
        elif names:
            out.update(("decided", i) for i in range(self.n))
        return frozenset(out)

    def _footprint(self, s: TPState | None, name: str) -> Footprint:
        """What ``name`` reads and writes; its guard is narrowed to one conjunct that is
        false in ``s`` (a necessary-enabling set there) when there is one."""
        tm: frozenset[Hashable] = frozenset({"tm"})
        guard: frozenset[Hashable] | None = None
        if name in ("TMCommit", "TMAbort"):
            need = range(self.n) if name == "TMCommit" and not self.seeded_bug else \
                (0,) if name == "TMCommit" else ()
            reads = tm | {("tmp", i) for i in need}
            if s is not None and s.tm_state != "init":
                guard = tm
            elif s is not None and name == "TMCommit":
                guard = frozenset(("tmp", i) for i in need if i not in s.tm_prepared)
            msg = ("msg", "Commit") if name == "TMCommit" else ("msg", "Abort")
            return Footprint(reads, tm | {msg}, guard)
        family, rm = name[:-1].split("(")
        i = int(rm[1:]) - 1
        me, decided = ("rm", i), ("decided", i)
        if family == "TMRcvPrepared":
            prepared = ("msg", "Prepared", i)
            if s is not None:
                guard = tm if s.tm_state != "init" else frozenset({prepared})
            return Footprint(tm | {prepared}, frozenset({("tmp", i)}), guard)
        if family == "RMPrepare":
            return Footprint(frozenset({me}), frozenset({me, ("msg", "Prepared", i)}))
        if family == "RMChooseToAbort":
            return Footprint(frozenset({me}), frozenset({me, decided}))
        msg = ("msg", "Commit") if family == "RMRcvCommitMsg" else ("msg", "Abort")
        return Footprint(frozenset({msg}), frozenset({me, decided}))

    def type_ok(self, s: TPState) -> bool:
        return (len(s.rm_state) == self.n and all(x in RM_STATES for x in s.rm_state)
                and s.tm_state in TM_STATES and s.tm_prepared <= self._all
                and all(m in (COMMIT, ABORT) or (m.type == "Prepared" and m.rm in self._all)
                        for m in s.msgs))

    def canonical(self, s: TPState) -> TPState:
        if self.sym_kind is None:
            return s
        if self.sym_kind == "rm-state":
            order = sorted(range(self.n), key=lambda i: (RM_STATES.index(s.rm_state[i]), i))
            return _permute(s, {old: new for new, old in enumerate(order)})
        return self._sym.canonical(s)

    @property
    def has_symmetry(self) -> bool:
        return self.sym_kind is not None

    def describe(self, s: TPState) -> Any:
        return describe(s)

    def _signature(self, s: TPState, rm: int) -> tuple[int, bool, bool]:
        return (RM_STATES.index(s.rm_state[rm]), rm in s.tm_prepared,
                Msg("Prepared", rm) in s.msgs)


def tc_consistent(s: TPState) -> bool:
    """``TCConsistent``: no resource manager commits while another aborts."""
    return not ("committed" in s.rm_state and "aborted" in s.rm_state)


def _set(t: tuple[str, ...], i: int, v: str) -> tuple[str, ...]:
    return (*t[:i], v, *t[i + 1:])


def _permute(s: TPState, r: Mapping[int, int]) -> TPState:
    rm_state = [""] * len(s.rm_state)
    for i, st in enumerate(s.rm_state):
        rm_state[r[i]] = st
    return TPState(
        tuple(rm_state), s.tm_state, frozenset(r[i] for i in s.tm_prepared),
        frozenset(Msg("Prepared", r[m.rm]) if m.type == "Prepared" else m for m in s.msgs))


# --------------------------------------------------------------------------- packed

# Per resource manager i, bits 4i..4i+3: rmState (2 bits, RM_STATES order), "TM has its
# Prepared" (bit 2), "its Prepared was sent" (bit 3). Above them: tmState (2 bits,
# TM_STATES order), Commit sent (bit 2), Abort sent (bit 3).
_TMP = 4
_SENT = 8


class PackedTwoPhase(VectorModel):
    """``TwoPhase`` with each state packed in one int: the same graph, faster; and, as a
    ``VectorModel``, whole arrays of states expanded by numpy (the BFS fast path)."""

    def __init__(self, n: int = 3, symmetry: SymmetryKind | None = None,
                 witnesses: bool = False) -> None:
        _check_n(n, symmetry)
        self.n = n
        self.name = f"PackedTwoPhase(N={n})"
        self.sym_kind = symmetry
        self.witnesses = witnesses
        g = 4 * n
        self.gshift = g
        self.all_tmp = sum(_TMP << 4 * i for i in range(n))
        self.commit = (1 | 4) << g  # tmState = committed, Commit sent
        self.abort = (2 | 8) << g  # tmState = aborted, Abort sent
        self.low = (1 << g) - 1
        self.hi_bits = sum(2 << 4 * i for i in range(n))
        self.lo_bits = sum(1 << 4 * i for i in range(n))
        self.shifts = tuple(4 * i for i in range(n))
        self._rm: list[tuple[Any, ...]] = []
        for i in range(n):
            sh = 4 * i
            names = [action(fam, rm_name(i)) for fam in (
                "TMRcvPrepared", "RMPrepare", "RMChooseToAbort", "RMRcvCommitMsg",
                "RMRcvAbortMsg")]
            self._rm.append((sh, *names, _TMP << sh, (1 | _SENT) << sh, 3 << sh,
                             ~(3 << sh), 2 << sh))

    def initial_states(self) -> Iterable[int]:
        return [0]

    def actions(self, s: int) -> list[tuple[str, int]]:
        out = []
        g = s >> self.gshift
        init = not g & 3
        if init:
            if s & self.all_tmp == self.all_tmp:
                out.append(("TMCommit", s | self.commit))
            out.append(("TMAbort", s | self.abort))
        commit = g & 4
        abort = g & 8
        for sh, rcv, prep, choose, rcv_c, rcv_a, tmp, prep_bits, abrt, clear, cmt in self._rm:
            nib = s >> sh
            if init and nib & _SENT:
                out.append((rcv, s | tmp))
            if not nib & 3:
                out.append((prep, s | prep_bits))
                out.append((choose, s | abrt))
            if commit:
                out.append((rcv_c, (s & clear) | cmt))
            if abort:
                out.append((rcv_a, s | abrt))
        return out

    def properties(self) -> Sequence[Property[int]]:
        props = [always("TPTypeOK", self.type_ok, vector=self.type_ok_array),
                 always("TCConsistent", self.consistent, vector=self.consistent_array)]
        if self.witnesses:
            all_c = sum(2 << sh for sh in self.shifts)
            all_a = sum(3 << sh for sh in self.shifts)
            props += [sometimes("AllCommitted", lambda s: s & all_a == all_c,
                                vector=lambda a: a & all_a == all_c),
                      sometimes("AllAborted", lambda s: s & all_a == all_a,
                                vector=lambda a: a & all_a == all_a)]
        return props

    # ------------------------------------------------------------------ vectorised

    def successors_array(self, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every action instance evaluated on the whole array at once; rows of the
        enabled matrix follow ``actions``' order, so a running count down a column is
        the successor's index in ``actions(parent)``."""
        g = s >> self.gshift
        init = (g & 3) == 0
        commit = (g & 4) != 0
        abort = (g & 8) != 0
        enabled = [init & ((s & self.all_tmp) == self.all_tmp), init]
        nexts = [s | self.commit, s | self.abort]
        for sh, _r, _p, _c, _rc, _ra, tmp, prep_bits, abrt, clear, cmt in self._rm:
            nib = s >> sh
            working = (nib & 3) == 0
            enabled += [init & ((nib & _SENT) != 0), working, working, commit, abort]
            nexts += [s | tmp, s | prep_bits, s | abrt, (s & clear) | cmt, s | abrt]
        mask = np.stack(enabled, axis=1)  # (states, actions): nonzero() is parent-major
        parent, act = np.nonzero(mask)
        count = np.bincount(parent, minlength=s.size)
        index = np.arange(parent.size) - np.repeat(np.cumsum(count) - count, count)
        return parent, index, np.stack(nexts, axis=1)[parent, act]

    def canonical_array(self, s: np.ndarray) -> np.ndarray:
        if self.sym_kind is None:
            return s
        if self.sym_kind == "rm-state":
            return np.fromiter(map(self.canonical, s.tolist()), np.int64, s.size)
        shifts = np.array(self.shifts, np.int64)
        nibs = np.sort((s[:, None] >> shifts) & 15, axis=1)
        return (s & ~self.low) | np.bitwise_or.reduce(nibs << shifts, axis=1)

    def type_ok_array(self, s: np.ndarray) -> np.ndarray:
        return (((s >> self.gshift) & 3) != 3) & ((s >> (self.gshift + 4)) == 0)

    def consistent_array(self, s: np.ndarray) -> np.ndarray:
        hi = s & self.hi_bits
        lo = (s & self.lo_bits) << 1
        return ((hi & ~lo) == 0) | ((hi & lo) == 0)

    def type_ok(self, s: int) -> bool:
        return (s >> self.gshift) & 3 != 3 and s >> (self.gshift + 4) == 0

    def consistent(self, s: int) -> bool:
        hi = s & self.hi_bits
        lo = (s & self.lo_bits) << 1
        # committed = 0b10 (hi without lo), aborted = 0b11 (hi with lo)
        return not (hi & ~lo and hi & lo)

    def canonical(self, s: int) -> int:
        shifts = self.shifts
        if self.sym_kind is None:
            return s
        if self.sym_kind == "rm-state":
            nibs = [(s >> sh) & 15 for sh in shifts]
            order = sorted(range(self.n), key=lambda i: (nibs[i] & 3, i))
            return self._repack(s, [nibs[i] for i in order])
        return self._repack(s, sorted((s >> sh) & 15 for sh in shifts))

    def _repack(self, s: int, nibs: list[int]) -> int:
        # A nibble only mentions its own manager, so moving nibbles is the renaming.
        out = s & ~self.low
        for sh, nib in zip(self.shifts, nibs, strict=True):
            out |= nib << sh
        return out

    @property
    def has_symmetry(self) -> bool:
        return self.sym_kind is not None

    def decode(self, s: int) -> TPState:
        rm_state, tmp, msgs = [], set(), set()
        for i, sh in enumerate(self.shifts):
            nib = (s >> sh) & 15
            rm_state.append(RM_STATES[nib & 3])
            if nib & _TMP:
                tmp.add(i)
            if nib & _SENT:
                msgs.add(Msg("Prepared", i))
        g = s >> self.gshift
        if g & 4:
            msgs.add(COMMIT)
        if g & 8:
            msgs.add(ABORT)
        return TPState(tuple(rm_state), TM_STATES[g & 3], frozenset(tmp), frozenset(msgs))

    def encode(self, s: TPState) -> int:
        out = TM_STATES.index(s.tm_state) << self.gshift
        out |= (4 if COMMIT in s.msgs else 0) << self.gshift
        out |= (8 if ABORT in s.msgs else 0) << self.gshift
        for i, sh in enumerate(self.shifts):
            nib = RM_STATES.index(s.rm_state[i])
            nib |= _TMP if i in s.tm_prepared else 0
            nib |= _SENT if Msg("Prepared", i) in s.msgs else 0
            out |= nib << sh
        return out

    def describe(self, s: int) -> Any:
        return describe(self.decode(s))
