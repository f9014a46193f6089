"""A lifecycle compiled to a plain transition table: the model checker's executor.

Where it sits: definition path, next to ``live.py``. ``MachineDef`` -> ``CompiledMachine``
-> ``kstate.verify`` (system model). The engine runs the same definition through
``transitions`` (``live.py``); a Hypothesis test (tests/machines) drives both with random
trigger sequences and shows they always agree, so a verdict about the table is a verdict
about the engine.

Why a second executor: ``transitions`` binds methods to model objects and dispatches
through callbacks — right for live objects, far too slow for millions of checker states.
Here a move is one dict lookup plus the guards.

>>> from kstate.machines.pod import POD
>>> table = compile_machine(POD)
>>> table.fire("Pending", "schedule")
'Scheduled'
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from kstate.errors import IllegalTransition
from kstate.machines.definition import Facts, GuardFn, MachineDef

_NO_FACTS: Mapping[str, Any] = {}


@attrs.frozen
class Edge:
    """One compiled transition out of a (state, trigger) cell."""

    dest: str
    label: str
    when: tuple[GuardFn, ...]
    unless: tuple[GuardFn, ...]

    def passes(self, facts: Facts) -> bool:
        return all(g(facts) for g in self.when) and not any(g(facts) for g in self.unless)


@attrs.frozen
class CompiledMachine:
    """``table[(state, trigger)]`` -> edges in definition order; the first that passes wins."""

    name: str
    kind: str
    states: tuple[str, ...]
    triggers: tuple[str, ...]
    initial: str
    terminal: frozenset[str]
    table: Mapping[tuple[str, str], tuple[Edge, ...]]
    between: Mapping[tuple[str, str], tuple[str, ...]] = attrs.field(factory=dict, eq=False)

    def fire(self, state: str, trigger: str, facts: Facts | None = None, obj: str = "") -> str:
        """The state after ``trigger``; raises ``IllegalTransition`` exactly as the engine does."""
        edges = self.table.get((state, trigger))
        if edges is None:
            raise IllegalTransition(self.kind, obj or "?", state, trigger, _not_allowed(trigger))
        given = facts if facts is not None else _NO_FACTS
        for edge in edges:
            if edge.passes(given):
                return edge.dest
        raise IllegalTransition(self.kind, obj or "?", state, trigger, _no_guard(given))

    def allowed(self, state: str) -> tuple[str, ...]:
        """Triggers that have at least one transition out of ``state``."""
        return tuple(t for t in self.triggers if (state, t) in self.table)

    def destinations(self, state: str, trigger: str) -> tuple[str, ...]:
        """Every state ``trigger`` can lead to from ``state``, whatever the facts."""
        return tuple(e.dest for e in self.table.get((state, trigger), ()))

    def triggers_between(self, src: str, dst: str) -> tuple[str, ...]:
        """Triggers with a transition ``src`` -> ``dst`` (the api server's status check)."""
        return self.between.get((src, dst), ())


def _pairs(table: Mapping[tuple[str, str], tuple[Edge, ...]],
           triggers: tuple[str, ...]) -> Mapping[tuple[str, str], tuple[str, ...]]:
    """(source, destination) -> triggers that join them, in definition order: every status
    write the api server (and the checker) admits asks this, so it is computed once."""
    pairs: dict[tuple[str, str], list[str]] = {}
    for (src, trigger), edges in table.items():
        for edge in edges:
            names = pairs.setdefault((src, edge.dest), [])
            if trigger not in names:
                names.append(trigger)
    order = {t: i for i, t in enumerate(triggers)}
    return {k: tuple(sorted(v, key=order.__getitem__)) for k, v in pairs.items()}


def _not_allowed(trigger: str) -> str:
    return f"no transition for {trigger!r} leaves this state"


def _no_guard(facts: Facts) -> str:
    return f"no guard holds for facts {dict(facts)}"


def compile_machine(definition: MachineDef) -> CompiledMachine:
    """Flatten a definition into its table (guards resolved to functions)."""
    guards = {g.name: g.fn for g in definition.guards}
    cells: dict[tuple[str, str], list[Edge]] = {}
    for t in definition.transitions:
        edge = Edge(
            dest=t.dest,
            label=t.label(),
            when=tuple(guards[g] for g in t.when),
            unless=tuple(guards[g] for g in t.unless),
        )
        for src in t.sources:
            cells.setdefault((src, t.trigger), []).append(edge)
    table = {k: tuple(v) for k, v in cells.items()}
    return CompiledMachine(
        name=definition.name,
        kind=definition.kind,
        states=definition.state_names,
        triggers=definition.trigger_names,
        initial=definition.initial,
        terminal=frozenset(definition.terminal_states),
        table=table,
        between=_pairs(table, definition.trigger_names),
    )


__all__ = ["CompiledMachine", "Edge", "compile_machine"]
