"""What every search strategy shares: the compiled model, fingerprints, predicate bits,
trace rebuilding and the verdict table.

Where it sits: between the public builder (``checker.py``) and the strategies
(``bfs.py``, ``dfs.py``, ``simulate.py``, ``liveness.py``).

Why: a property is evaluated once per *distinct* state, as one bit of a 64-bit mask, so
the strategies move integers around instead of calling back into Python per property;
and a counterexample is stored as state ids only — its states and action names are
rebuilt at the end by re-running ``Model.actions`` along the path (TLC's approach),
which keeps the per-state cost of exploration to a fingerprint and a parent pointer.
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from operator import itemgetter
from typing import Any, Protocol

import attrs
import numpy as np
import numpy.typing as npt

from kstate.errors import ModelError
from kstate.verify.checker.model import (
    INIT,
    FairnessSpec,
    Kind,
    Model,
    Property,
    VectorModel,
    family_of,
)
from kstate.verify.checker.results import PropertyResult, Step, Verdict

#: The pseudo-property under which deadlocks are reported.
DEADLOCK = "deadlock"

MAX_PREDICATES = 64

Bits = npt.NDArray[np.uint64]


class Strategy(enum.StrEnum):
    BFS = "bfs"
    DFS = "dfs"
    SIMULATE = "simulate"


class StopPolicy(enum.StrEnum):
    DECIDED = "decided"  # stop once every property has a verdict more search cannot change
    FIRST_VIOLATION = "first-violation"  # TLC's default: stop at the first failure
    NEVER = "never"  # explore everything (full counts even when a property failed early)


class Clock(Protocol):
    def now(self) -> float: ...


@attrs.frozen
class SafetyCheck:
    index: int  # position in Spec.props
    kind: Kind
    bit: int


@attrs.frozen
class LivenessCheck:
    index: int
    kind: Kind
    p_bit: int
    q_bit: int  # -1 for EVENTUALLY


@attrs.define
class Spec:
    """A model compiled for the search: its predicates numbered, its options checked."""

    model: Model[Any]
    canon: Callable[[Any], Any] | None
    props: tuple[Property[Any], ...]
    preds: tuple[Callable[[Any], bool], ...]
    safety: tuple[SafetyCheck, ...]
    liveness: tuple[LivenessCheck, ...]
    deadlock: bool
    fairness: FairnessSpec
    vector: bool = False  # expand with VectorModel.successors_array
    vector_preds: dict[int, Callable[[Any], Any]] = attrs.Factory(dict)
    families: tuple[str, ...] = ()  # what the model may fire (Model.action_families)
    por: bool = False  # expand with Model.persistent (partial-order reduction)
    notes: tuple[str, ...] = ()  # warnings the result carries (e.g. why POR is off)

    @property
    def label(self) -> str:
        return self.model.label

    @classmethod
    def build(cls, model: Model[Any], *, symmetry: bool | None, deadlock: bool,
              vectorised: bool = True, por: bool | None = None,
              bounded: bool = False) -> Spec:
        name = getattr(model, "label", type(model).__name__)
        if not isinstance(model, Model):
            raise ModelError(f"{type(model).__name__} is not a kstate Model", model=name)
        use_sym = model.has_symmetry if symmetry is None else symmetry
        if use_sym and not model.has_symmetry:
            raise ModelError("symmetry requested but the model defines no canonical()",
                             model=name, field="symmetry")
        props = tuple(model.properties())
        seen: set[str] = set()
        for i, p in enumerate(props):
            if not isinstance(p, Property):
                raise ModelError(f"properties()[{i}] is a {type(p).__name__}, not a Property "
                                 "(use always/sometimes/eventually/leads_to/converges)",
                                 model=name, field=f"properties[{i}]")
            if p.name in seen or (deadlock and p.name == DEADLOCK):
                raise ModelError(f"duplicate property name {p.name!r}", model=name,
                                 field=f"property {p.name!r}")
            seen.add(p.name)
        preds: list[Callable[[Any], bool]] = []

        def bit(fn: Callable[[Any], bool]) -> int:
            for j, known in enumerate(preds):
                if known is fn:
                    return j
            preds.append(fn)
            return len(preds) - 1

        safety, liveness = [], []
        for i, p in enumerate(props):
            if p.kind in (Kind.ALWAYS, Kind.SOMETIMES):
                safety.append(SafetyCheck(i, p.kind, bit(p.p)))
            else:
                q = bit(p.q) if p.q is not None else -1
                liveness.append(LivenessCheck(i, p.kind, bit(p.p), q))
        if len(preds) > MAX_PREDICATES:
            raise ModelError(f"{len(preds)} distinct predicates; at most {MAX_PREDICATES}",
                             model=name, field="properties")
        if liveness and use_sym:
            _check_liveness_symmetry(model, name)
        vector_preds = {bit(p.p): p.vector for p in props if p.vector is not None}
        use_por, notes = _por_choice(model, name, props, por, bounded)
        return cls(
            model=model,
            canon=model.canonical if use_sym else None,
            props=props,
            preds=tuple(preds),
            safety=tuple(safety),
            liveness=tuple(liveness),
            deadlock=deadlock,
            fairness=FairnessSpec(model.fairness(),
                                  warn_unused=model.warn_unused_fairness),
            vector=(vectorised and isinstance(model, VectorModel) and not liveness
                    and not use_por),
            vector_preds=vector_preds,
            families=tuple(model.action_families()),
            por=use_por,
            notes=notes,
        )

    # ------------------------------------------------------------------ state plumbing

    def initial(self) -> tuple[list[Any], list[int]]:
        """Distinct initial states (first of each fingerprint, in model order) and their
        fingerprints."""
        states: list[Any] = []
        fps: list[int] = []
        seen: set[int] = set()
        for s in self.model.initial_states():
            fp = self.fingerprint(s, "an initial state")
            if fp not in seen:
                seen.add(fp)
                states.append(s)
                fps.append(fp)
        if not states:
            raise ModelError("the model has no initial states", model=self.label,
                             field="initial_states")
        return states, fps

    def fingerprint(self, state: Any, what: str = "a state") -> int:
        rep = self.canon(state) if self.canon is not None else state
        try:
            return hash(rep)
        except TypeError as e:
            raise unhashable(self.label, what, rep, e) from None

    def fingerprints(self, states: list[Any], names: Sequence[str] | None = None) -> Any:
        """int64 fingerprints of (the representatives of) ``states``."""
        reps = states if self.canon is None else list(map(self.canon, states))
        try:
            return np.fromiter(map(hash, reps), np.int64, len(reps))
        except TypeError as e:
            for i, r in enumerate(reps):
                try:
                    hash(r)
                except TypeError:
                    what = f"the state after action {names[i]!r}" if names else "a state"
                    raise unhashable(self.label, what, r, e) from None
            raise

    def bits_one(self, state: Any) -> int:
        """The predicate mask of one state, as a Python int (DFS and simulation)."""
        mask = 0
        for i, pred in enumerate(self.preds):
            if pred(state):
                mask |= 1 << i
        return mask

    def safety_hits(self, mask: int) -> list[int]:
        """Safety properties (indexes) that the state with predicate ``mask`` decides:
        an ``always`` it violates, a ``sometimes`` it witnesses."""
        out = []
        for c in self.safety:
            holds = (mask >> c.bit) & 1
            if holds != (c.kind is Kind.ALWAYS):
                out.append(c.index)
        return out

    def bits_array(self, states: npt.NDArray[np.int64]) -> Bits:
        """``bits`` for an array of packed states (vectorised predicates where given)."""
        out = np.zeros(states.size, np.uint64)
        as_list: list[int] | None = None
        for i, pred in enumerate(self.preds):
            vec = self.vector_preds.get(i)
            if vec is not None:
                vals = np.asarray(vec(states), np.bool_)
            else:
                as_list = states.tolist() if as_list is None else as_list
                vals = np.fromiter(map(pred, as_list), np.bool_, states.size)
            out |= vals.astype(np.uint64) << np.uint64(i)
        return out

    def bits(self, states: list[Any]) -> Bits:
        """Bit i of entry j: predicate i holds in ``states[j]``."""
        out = np.zeros(len(states), np.uint64)
        for i, pred in enumerate(self.preds):
            vals = np.fromiter(map(pred, states), np.bool_, len(states))
            out |= vals.astype(np.uint64) << np.uint64(i)
        return out


#: The line a result carries when liveness made the checker skip the reduction.
POR_OFF_FOR_LIVENESS = ("liveness: explored without partial-order reduction (not sound "
                        "under weak fairness here)")


def _por_choice(model: Model[Any], name: str, props: Sequence[Property[Any]],
                por: bool | None, bounded: bool) -> tuple[bool, tuple[str, ...]]:
    """Whether to reduce: ``None`` means wherever verdicts are preserved (the model has
    ``persistent``, no liveness property, no depth bound), ``True`` insists (an error
    with liveness), ``False`` off."""
    if por is False:
        return False, ()
    live = [p for p in props if p.kind.liveness]
    if por is True:
        if not model.has_persistent:
            raise ModelError("partial-order reduction requested but the model defines no "
                             "persistent()", model=name, field="por")
        if live:
            raise ModelError(
                f"partial-order reduction cannot preserve liveness property "
                f"{live[0].name!r} ({live[0].kind.value}): persistent sets with the cycle "
                "proviso do not preserve weak fairness; run without --por (the default "
                "explores the full graph when liveness is checked)",
                model=name, field="por")
        return True, ()
    if not model.has_persistent:
        return False, ()
    if live:
        return False, (POR_OFF_FOR_LIVENESS,)
    if bounded:
        # Silently: a bounded run says "bounded" already, and a reduced graph may reach a
        # violation later than the full one, so the bound would mean less (--por forces).
        return False, ()
    return True, ()


def kept_ratio(spec: Spec, transitions: int, pruned: int) -> float | None:
    """``Progress.reduction``: transitions kept over transitions enabled (None without POR)."""
    if not spec.por:
        return None
    return (transitions - pruned) / transitions if transitions else 1.0


def _check_liveness_symmetry(model: Model[Any], name: str) -> None:
    """What liveness under symmetry needs (docs/checker.md, "Liveness under symmetry"):
    one representative per orbit, so that every quotient path lifts from any member of
    a class, and fairness that renaming maps to itself."""
    if not model.symmetry_exact:
        raise ModelError("liveness under symmetry needs an exact canonical() (one "
                         "representative per orbit; set symmetry_exact = True on the model "
                         "when it is): with a non-exact one a fair cycle may be missed; "
                         "run without symmetry", model=name, field="symmetry")
    named = [e for e in model.fairness() if "(" in e]
    if named:
        raise ModelError(f"fairness entries {named} name single action instances; under "
                         "symmetry fairness must survive renaming, so name whole families "
                         "(or run without symmetry)", model=name, field="fairness")


def unhashable(model: str, what: str, state: Any, err: Exception) -> ModelError:
    return ModelError(f"{what} is not hashable ({err}); states must be hashable values "
                      f"such as tuples, frozensets, ints or frozen attrs objects, got "
                      f"{type(state).__name__}", model=model, field="state")


def first_set(bits: Bits, bit: int, want: bool) -> int:
    """Index of the first entry whose ``bit`` is ``want`` (-1 if none)."""
    col = (bits >> np.uint64(bit)) & np.uint64(1)
    hits = np.flatnonzero(col == (1 if want else 0))
    return int(hits[0]) if hits.size else -1


# --------------------------------------------------------------------------- coverage

_NAME = itemgetter(0)


class Coverage:
    """How often each action fired — every successor computed, self-loops and
    duplicates included (they sum to ``states_generated - initial_states``) — reported
    per family, with the model's families that never fired (TLC's coverage report).

    Counted per action *name* while exploring (a C-level count over the names
    ``actions`` returned, no string work per transition) and folded into families at
    the end.
    """

    def __init__(self) -> None:
        self.fired: Counter[str] = Counter()

    def count(self, successors: Iterable[tuple[str, Any]]) -> None:
        self.fired.update(map(_NAME, successors))

    def merge(self, fired: Mapping[str, int]) -> None:
        self.fired.update(fired)

    def report(self, spec: Spec) -> tuple[tuple[tuple[str, int], ...], tuple[str, ...]]:
        """``((family, times fired), ...)`` by family name, and the never-fired families
        (declared by the model, in its order)."""
        families: Counter[str] = Counter()
        for name, n in self.fired.items():
            families[family_of(name)] += n
        never = tuple(f for f in spec.families if not families[f])
        return tuple(sorted((f, n) for f, n in families.items() if n)), never


# --------------------------------------------------------------------------- traces


class Tracer:
    """Rebuilds traces from state ids by re-running the model from an initial state.

    ``fp_of(id)`` gives a stored state's fingerprint; at each step the successor whose
    representative has the next id's fingerprint is taken — the ``succ_hint``-th one
    first (BFS stores it), else a search, optionally matching the action name too
    (liveness cycles must take the edge the fairness argument relies on).
    """

    def __init__(self, spec: Spec, initial: list[Any], fp_of: Callable[[int], int]) -> None:
        self.spec = spec
        self.initial = initial
        self.fp_of = fp_of

    def steps(
        self,
        ids: Sequence[int],
        labels: Sequence[str | None] | None = None,
        hints: Sequence[int] | None = None,
        start: Any = None,
    ) -> list[Step]:
        model = self.spec.model
        if start is None:
            cur = self.initial[ids[0]]
            out = [Step(INIT, model.describe(cur), cur)]
        else:
            cur, out = start, []
        for k in range(1, len(ids)):
            want = self.fp_of(ids[k])
            label = labels[k] if labels else None
            succ = list(model.actions(cur))
            hint = hints[k] if hints else -1
            order = ([hint] if 0 <= hint < len(succ) else []) + list(range(len(succ)))
            for j in order:
                name, nxt = succ[j]
                if (label is None or name == label) and self.spec.fingerprint(nxt) == want:
                    break
            else:
                raise ModelError(
                    "cannot rebuild a trace: no successor matches the stored state, so "
                    "actions() is not a deterministic function of the state",
                    model=self.spec.label, field="actions")
            out.append(Step(name, model.describe(nxt), nxt))
            cur = nxt
        return out


# --------------------------------------------------------------------------- verdicts


@attrs.define
class Findings:
    """What a search found, as state-id paths, before traces are rebuilt."""

    safety: dict[int, list[Step]] = attrs.Factory(dict)  # prop index -> trace
    deadlock: list[Step] | None = None
    liveness: dict[int, tuple[list[Step], list[Step], str]] = attrs.Factory(dict)
    undecided: dict[int, str] = attrs.Factory(dict)  # liveness left bounded, and why
    warnings: list[str] = attrs.Factory(list)  # for CheckResult.warnings


def verdicts(spec: Spec, found: Findings, complete: bool, *,
             liveness_checked: bool = True, note: str = "") -> tuple[PropertyResult, ...]:
    out: list[PropertyResult] = []
    for i, p in enumerate(spec.props):
        kind = p.kind.value
        if p.kind is Kind.ALWAYS:
            if i in found.safety:
                out.append(PropertyResult(p.name, kind, Verdict.VIOLATED, tuple(found.safety[i])))
            else:
                out.append(PropertyResult(p.name, kind,
                                          Verdict.HOLDS if complete else Verdict.BOUNDED,
                                          note="" if complete else note))
        elif p.kind is Kind.SOMETIMES:
            if i in found.safety:
                out.append(PropertyResult(p.name, kind, Verdict.WITNESSED,
                                          tuple(found.safety[i])))
            else:
                out.append(PropertyResult(p.name, kind,
                                          Verdict.UNREACHABLE if complete else Verdict.BOUNDED,
                                          note="" if complete else note))
        elif i in found.liveness:
            prefix, cycle, why = found.liveness[i]
            out.append(PropertyResult(p.name, kind, Verdict.VIOLATED, tuple(prefix),
                                      tuple(cycle), why))
        elif i in found.undecided:
            out.append(PropertyResult(p.name, kind, Verdict.BOUNDED, note=found.undecided[i]))
        elif not liveness_checked:
            out.append(PropertyResult(p.name, kind, Verdict.BOUNDED,
                                      note="liveness is not checked by this strategy"))
        else:
            out.append(PropertyResult(p.name, kind,
                                      Verdict.HOLDS if complete else Verdict.BOUNDED,
                                      note="" if complete else note))
    if spec.deadlock:
        if found.deadlock is not None:
            out.append(PropertyResult(DEADLOCK, DEADLOCK, Verdict.VIOLATED,
                                      tuple(found.deadlock), note="no action is enabled"))
        else:
            out.append(PropertyResult(DEADLOCK, DEADLOCK,
                                      Verdict.HOLDS if complete else Verdict.BOUNDED,
                                      note="" if complete else note))
    return tuple(out)


def all_safety_decided(spec: Spec, found_safety: Iterable[int], deadlock_found: bool) -> bool:
    """True when more search cannot change any verdict (and there is something to decide)."""
    if spec.liveness or not (spec.safety or spec.deadlock):
        return False
    done = set(found_safety)
    return all(c.index in done for c in spec.safety) and (deadlock_found or not spec.deadlock)


def any_failure(spec: Spec, found_safety: Iterable[int], deadlock_found: bool) -> bool:
    failing = {c.index for c in spec.safety if c.kind is Kind.ALWAYS}
    return deadlock_found or bool(failing & set(found_safety))
