"""What a checker run returns: counts, verdicts and counterexamples, as JSON-able values.

Where it sits: the output end of ``kstate.verify.checker``; the ``kstate verify`` CLI
prints these (summary table, numbered traces), writes them with ``--json`` and reads a
trace back for ``--replay``.

Counting follows TLC so published figures can be compared digit for digit:

* ``distinct_states`` — TLC's "distinct states found": states stored (under symmetry,
  representatives stored);
* ``states_generated`` — TLC's "states generated": initial states plus every successor
  computed, duplicates and self-loops included (TwoPhase N=3: 1 + 1,145 = 1,146);
* ``transitions`` — the successors alone (``states_generated - initial_states``);
* ``depth`` — TLC's depth: states on the longest shortest path, the initial state
  counting 1 (TwoPhase N=3: 11).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from kstate.errors import ModelError

SCHEMA = "kstate.verify/result@1"


class Verdict(enum.StrEnum):
    HOLDS = "holds"  # exhaustive: never violated / liveness holds
    VIOLATED = "violated"  # counterexample attached
    WITNESSED = "witnessed"  # sometimes: witness attached
    UNREACHABLE = "unreachable"  # sometimes: exhaustive search found no witness
    BOUNDED = "bounded"  # bounds, timeout or an early stop cut the search first

    @property
    def failed(self) -> bool:
        return self in (Verdict.VIOLATED, Verdict.UNREACHABLE)


class StopReason(enum.StrEnum):
    EXHAUSTED = "exhausted"  # every reachable state explored
    DECIDED = "decided"  # every property had its verdict; the rest was not needed
    VIOLATION = "violation"  # stop_on_violation and something failed
    MAX_STATES = "max_states"
    MAX_DEPTH = "max_depth"
    TIMEOUT = "timeout"
    WALKS = "walks"  # simulation: all walks done (never a proof)


@attrs.frozen
class Step:
    """One step of a trace: the action taken and the state after it.

    ``state`` is the model's ``describe`` of the state (JSON data); ``raw`` is the state
    object itself, present in-process for replay and dropped by JSON.
    """

    action: str
    state: Any
    raw: Any = attrs.field(default=None, eq=False, repr=False)


@attrs.frozen
class PropertyResult:
    """The verdict on one property (or on ``deadlock``).

    ``trace`` is the counterexample (``always``, deadlock), the witness (``sometimes``) or,
    for liveness, the lasso's prefix from an initial state; ``cycle`` is the lasso's loop,
    which returns to the last state of ``trace``. An empty ``cycle`` on a liveness
    violation means the behaviour stutters forever in the last state (allowed because no
    weakly fair action is enabled there).
    """

    name: str
    kind: str
    verdict: Verdict = attrs.field(converter=Verdict)
    trace: tuple[Step, ...] = ()
    cycle: tuple[Step, ...] = ()
    note: str = ""

    @property
    def failed(self) -> bool:
        return self.verdict.failed

    @property
    def length(self) -> int:
        """Number of states in the trace (TLC counts counterexamples this way)."""
        return len(self.trace)


@attrs.frozen
class Progress:
    """Handed to the progress callback every ``progress_interval`` seconds."""

    distinct_states: int
    states_generated: int
    queue: int
    depth: int
    elapsed: float
    #: With a state-space reduction active (partial-order reduction): transitions kept
    #: over transitions enabled so far; ``None`` when no reduction is running.
    reduction: float | None = None

    @property
    def states_per_second(self) -> float:
        return self.distinct_states / self.elapsed if self.elapsed > 0 else 0.0

    def line(self) -> str:
        """One status line, e.g. for a terminal's carriage-return progress display:
        ``12,345 distinct  2,100 states/s  queue 3,456  depth 9  5.9s``."""
        reduced = "" if self.reduction is None else f"  kept {self.reduction:.0%}"
        return (f"{self.distinct_states:,} distinct  {self.states_per_second:,.0f} states/s  "
                f"queue {self.queue:,}  depth {self.depth}{reduced}  {self.elapsed:.1f}s")


@attrs.frozen
class CheckResult:
    model: str
    strategy: str
    workers: int
    symmetry: bool
    complete: bool
    stop_reason: StopReason = attrs.field(converter=StopReason)
    distinct_states: int
    states_generated: int
    initial_states: int
    depth: int
    queue_left: int
    elapsed: float
    properties: tuple[PropertyResult, ...]
    bytes_per_state: float = 0.0  # the checker's own bookkeeping (tables, parents)
    warnings: tuple[str, ...] = ()
    #: ``(family, times fired)`` per action family, by name: successors computed, so
    #: they sum to ``transitions``. Empty when not counted (the vectorised BFS path).
    coverage: tuple[tuple[str, int], ...] = ()
    #: the model's action families (``Model.action_families``) that never fired
    never_fired: tuple[str, ...] = ()
    #: partial-order reduction ran: ``transitions`` counts every successor computed
    #: (enabled), ``transitions_pruned`` those left out of persistent sets, and
    #: ``reduced_states`` the states expanded with a proper persistent set
    por: bool = False
    transitions_pruned: int = 0
    reduced_states: int = 0

    @property
    def transitions(self) -> int:
        return self.states_generated - self.initial_states

    @property
    def transitions_kept(self) -> int:
        """Transitions followed (equals ``transitions`` without reduction)."""
        return self.transitions - self.transitions_pruned

    @property
    def states_per_second(self) -> float:
        return self.distinct_states / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def ok(self) -> bool:
        """No property failed (bounded verdicts are not failures)."""
        return not any(p.failed for p in self.properties)

    @property
    def collision_probability(self) -> float:
        """TLC's optimistic estimate that two distinct states shared a 64-bit fingerprint."""
        n = self.distinct_states
        return n * max(self.states_generated - n, 0) / 2.0**64

    def property(self, name: str) -> PropertyResult:
        for p in self.properties:
            if p.name == name:
                return p
        raise KeyError(name)

    def summary(self) -> str:
        lines = [f"{self.model}: {self.distinct_states:,} distinct states, "
                 f"{self.states_generated:,} generated, depth {self.depth}, "
                 f"{self.elapsed:.2f}s ({self.stop_reason.value})"]
        for p in self.properties:
            lines.append(f"  {p.name:<24} {p.kind:<10} {p.verdict.value}"
                         + (f" ({len(p.trace)} states)" if p.trace else ""))
        if self.por:
            lines.append(self.por_line())
        lines.extend(self.coverage_lines())
        return "\n".join(lines)

    def por_line(self) -> str:
        """``partial-order reduction: kept 1,234 of 5,678 transitions (22%), 345 of 901
        states reduced``."""
        share = self.transitions_kept / self.transitions if self.transitions else 1.0
        return (f"partial-order reduction: kept {self.transitions_kept:,} of "
                f"{self.transitions:,} transitions ({share:.0%}), {self.reduced_states:,} "
                f"of {self.distinct_states - self.queue_left:,} expanded states reduced")

    def coverage_lines(self) -> list[str]:
        """``coverage: Deliver 1,234  Sync 56 ...`` and ``never fired: Heal, ...``."""
        out = []
        if self.coverage:
            out.append("coverage (times fired): " + "  ".join(
                f"{family} {n:,}" for family, n in self.coverage))
        if self.never_fired:
            out.append("never fired: " + ", ".join(self.never_fired))
        return out

    # ------------------------------------------------------------------ JSON

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "model": self.model,
            "strategy": self.strategy,
            "workers": self.workers,
            "symmetry": self.symmetry,
            "complete": self.complete,
            "stopReason": self.stop_reason.value,
            "distinctStates": self.distinct_states,
            "statesGenerated": self.states_generated,
            "initialStates": self.initial_states,
            "transitions": self.transitions,
            "depth": self.depth,
            "queueLeft": self.queue_left,
            "elapsed": self.elapsed,
            "statesPerSecond": self.states_per_second,
            "bytesPerState": self.bytes_per_state,
            "warnings": list(self.warnings),
            "coverage": dict(self.coverage),
            "neverFired": list(self.never_fired),
            "por": {"enabled": self.por, "transitionsKept": self.transitions_kept,
                    "reducedStates": self.reduced_states},
            "properties": [_property_json(p) for p in self.properties],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CheckResult:
        """Inverse of ``to_json``; a malformed document raises ``ModelError`` naming the field."""
        if not isinstance(data, Mapping):
            raise ModelError("a result document must be a JSON object", field="$")
        if data.get("schema") != SCHEMA:
            raise ModelError(f"expected schema {SCHEMA!r}, got {data.get('schema')!r}",
                             field="schema")
        props = _get(data, "properties", list)
        return cls(
            model=_get(data, "model", str),
            strategy=_get(data, "strategy", str),
            workers=_get(data, "workers", int),
            symmetry=_get(data, "symmetry", bool),
            complete=_get(data, "complete", bool),
            stop_reason=_enum(StopReason, _get(data, "stopReason", str), "stopReason"),
            distinct_states=_get(data, "distinctStates", int),
            states_generated=_get(data, "statesGenerated", int),
            initial_states=_get(data, "initialStates", int),
            depth=_get(data, "depth", int),
            queue_left=_get(data, "queueLeft", int),
            elapsed=float(_get(data, "elapsed", (int, float))),
            bytes_per_state=float(_get(data, "bytesPerState", (int, float))),
            warnings=tuple(_get(data, "warnings", list)),
            coverage=_coverage(data.get("coverage", {})),
            never_fired=tuple(_names(data.get("neverFired", []), "neverFired")),
            **_por_from(data),
            properties=tuple(_property_from(p, f"properties[{i}]")
                             for i, p in enumerate(props)),
        )


def _coverage(data: Any) -> tuple[tuple[str, int], ...]:
    if not isinstance(data, Mapping):
        raise ModelError("must be an object of action family -> count", field="coverage")
    for family, n in data.items():
        if isinstance(n, bool) or not isinstance(n, int):
            raise ModelError(f"has the wrong type ({type(n).__name__})",
                             field=f"coverage.{family}")
    return tuple(sorted(data.items()))


def _por_from(data: Mapping[str, Any]) -> dict[str, Any]:
    """The ``por`` object (absent in documents written before the reduction existed)."""
    if "por" not in data:
        return {}
    por = _get(data, "por", Mapping)
    transitions = _get(data, "transitions", int) if "transitions" in data else (
        _get(data, "statesGenerated", int) - _get(data, "initialStates", int))
    return {"por": _get(por, "enabled", bool, "por"),
            "transitions_pruned": transitions - _get(por, "transitionsKept", int, "por"),
            "reduced_states": _get(por, "reducedStates", int, "por")}


def _names(data: Any, field: str) -> list[str]:
    if not isinstance(data, list) or not all(isinstance(x, str) for x in data):
        raise ModelError("must be a list of names", field=field)
    return data


def _property_json(p: PropertyResult) -> dict[str, Any]:
    return {
        "name": p.name,
        "kind": p.kind,
        "verdict": p.verdict.value,
        "note": p.note,
        "trace": [{"action": s.action, "state": s.state} for s in p.trace],
        "cycle": [{"action": s.action, "state": s.state} for s in p.cycle],
    }


def _property_from(data: Any, where: str) -> PropertyResult:
    if not isinstance(data, Mapping):
        raise ModelError("must be an object", field=where)
    return PropertyResult(
        name=_get(data, "name", str, where),
        kind=_get(data, "kind", str, where),
        verdict=_enum(Verdict, _get(data, "verdict", str, where), f"{where}.verdict"),
        note=_get(data, "note", str, where),
        trace=steps_from_json(_get(data, "trace", list, where), f"{where}.trace"),
        cycle=steps_from_json(_get(data, "cycle", list, where), f"{where}.cycle"),
    )


def steps_from_json(data: Sequence[Any], where: str = "trace") -> tuple[Step, ...]:
    """Steps from ``[{"action": ..., "state": ...}, ...]`` (a trace file's body)."""
    steps = []
    for i, item in enumerate(data):
        if not isinstance(item, Mapping) or "state" not in item:
            raise ModelError("a step is an object with 'action' and 'state'",
                             field=f"{where}[{i}]")
        steps.append(Step(_get(item, "action", str, f"{where}[{i}]"), item["state"]))
    return tuple(steps)


def _get(data: Mapping[str, Any], key: str, typ: Any, where: str = "") -> Any:
    field = f"{where}.{key}" if where else key
    if key not in data:
        raise ModelError("is missing", field=field)
    value = data[key]
    if (typ is int and isinstance(value, bool)) or not isinstance(value, typ):
        raise ModelError(f"has the wrong type ({type(value).__name__})", field=field)
    return value


def _enum(cls: Any, value: str, field: str) -> Any:
    try:
        return cls(value)
    except ValueError:
        raise ModelError(f"unknown value {value!r}", field=field) from None
