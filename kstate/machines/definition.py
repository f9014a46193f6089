"""The vocabulary every lifecycle is written in: states, triggers, guards, transitions.

Where it sits: the bottom of the definition path (ARCHITECTURE §2). ``pod.py``,
``replication.py``, ``service.py`` and ``node.py`` are written as ``MachineDef`` values;
``live.py`` turns one into a ``transitions`` machine for the engine, ``compiled.py`` into a
plain table for the model checker, and ``kstate.verify.graphs`` draws it. Nothing here
does I/O.

Why it exists: a lifecycle must be a *value* that can be checked before anything runs.
``MachineDef`` validates itself when built (networkx does the graph checks): unknown
states or guards, unreachable states, exits from terminal states, a guard that breaks on
its declared facts, and two transitions for one (state, trigger) that can both fire.

A trigger declares the *facts* it needs (name -> finite domain). Guards are pure
predicates over those facts. Declaring the domains is what lets the model checker branch
over every outcome, the Hypothesis agreement test draw realistic inputs, and the
definition check evaluate every guard on every combination ahead of time.

>>> d = MachineDef(
...     name="door", kind="Door",
...     states=(State("Closed", "shut"), State("Open", "ajar"), State("Gone", "", terminal=True)),
...     initial="Closed",
...     triggers=(Trigger("push"), Trigger("close"), Trigger("remove")),
...     transitions=(
...         Transition("push", ("Closed",), "Open"),
...         Transition("close", ("Open",), "Closed"),
...         Transition("remove", ("Closed", "Open"), "Gone"),
...     ),
... )
>>> d.state("Gone").terminal
True
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping
from types import MappingProxyType
from typing import Any

import attrs
import networkx as nx

from kstate.errors import MachineDefinitionError

Facts = Mapping[str, Any]
GuardFn = Callable[[Facts], bool]

#: How many fact combinations the build-time check evaluates per trigger before it stops
#: enumerating (domains are small by design; this only protects against a typo).
_MAX_COMBINATIONS = 4096


def _strs(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(values)


def _states(values: Iterable[State]) -> tuple[State, ...]:
    return tuple(values)


def _triggers(values: Iterable[Trigger]) -> tuple[Trigger, ...]:
    return tuple(values)


def _transitions(values: Iterable[Transition]) -> tuple[Transition, ...]:
    return tuple(values)


def _guards(values: Iterable[Guard]) -> tuple[Guard, ...]:
    return tuple(values)


def _groups(values: Iterable[StateGroup]) -> tuple[StateGroup, ...]:
    return tuple(values)


def _frozen_mapping(value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return MappingProxyType(dict(value or {}))


@attrs.frozen
class State:
    """One lifecycle state.

    ``visible`` says how the state shows on the Kubernetes object (``phase``, a
    condition, a reason); the api layer's projection is checked against it by tests.
    ``terminal`` states have no exits.
    """

    name: str
    doc: str = ""
    terminal: bool = False
    visible: Mapping[str, str] = attrs.field(factory=dict, converter=_frozen_mapping, eq=False)


@attrs.frozen
class Trigger:
    """An event a component may fire, with the facts (name -> domain) its guards read."""

    name: str
    doc: str = ""
    facts: Mapping[str, tuple[Any, ...]] = attrs.field(
        factory=dict, converter=_frozen_mapping, eq=False
    )
    #: Which component fires it (scheduler, kubelet, apiserver, controller...) — shown on
    #: graphs and in traces so a reader knows who moves the object.
    actor: str = ""


@attrs.frozen
class Guard:
    """A named, pure predicate over a trigger's facts."""

    name: str
    fn: GuardFn = attrs.field(eq=False)
    doc: str = ""


@attrs.frozen
class Transition:
    """``trigger`` moves any of ``sources`` to ``dest`` when every guard in ``when`` holds
    and none in ``unless`` does. Transitions for one (state, trigger) are tried in
    definition order; the first that passes wins."""

    trigger: str
    sources: tuple[str, ...] = attrs.field(converter=_strs)
    dest: str
    when: tuple[str, ...] = attrs.field(default=(), converter=_strs)
    unless: tuple[str, ...] = attrs.field(default=(), converter=_strs)

    @property
    def guarded(self) -> bool:
        return bool(self.when or self.unless)

    def label(self) -> str:
        """``trigger [g1 && !g2]`` — how graphs and errors show the edge."""
        parts = list(self.when) + [f"!{g}" for g in self.unless]
        return f"{self.trigger} [{' && '.join(parts)}]" if parts else self.trigger


@attrs.frozen
class StateGroup:
    """A named set of states that share exits (e.g. a pod's "on a node" states).

    Purely descriptive: the executors ignore it; graphs draw the group as a box so a
    transition leaving every member is one arrow instead of one per member.
    """

    name: str
    states: tuple[str, ...] = attrs.field(converter=_strs)
    doc: str = ""


@attrs.frozen
class MachineDef:
    """A complete lifecycle. Validated on construction; invalid ones never exist."""

    name: str
    kind: str
    states: tuple[State, ...] = attrs.field(converter=_states)
    initial: str
    triggers: tuple[Trigger, ...] = attrs.field(converter=_triggers)
    transitions: tuple[Transition, ...] = attrs.field(converter=_transitions)
    guards: tuple[Guard, ...] = attrs.field(default=(), converter=_guards)
    groups: tuple[StateGroup, ...] = attrs.field(default=(), converter=_groups)
    doc: str = ""

    def __attrs_post_init__(self) -> None:
        problems = list(_problems(self))
        if problems:
            raise MachineDefinitionError(self.name, problems)

    # ------------------------------------------------------------------ lookups

    @property
    def state_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.states)

    @property
    def trigger_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.triggers)

    @property
    def terminal_states(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.states if s.terminal)

    def state(self, name: str) -> State:
        for s in self.states:
            if s.name == name:
                return s
        raise KeyError(f"machine {self.name!r} has no state {name!r}")

    def trigger(self, name: str) -> Trigger:
        for t in self.triggers:
            if t.name == name:
                return t
        raise KeyError(f"machine {self.name!r} has no trigger {name!r}")

    def guard(self, name: str) -> Guard:
        for g in self.guards:
            if g.name == name:
                return g
        raise KeyError(f"machine {self.name!r} has no guard {name!r}")

    def outgoing(self, state: str, trigger: str | None = None) -> tuple[Transition, ...]:
        """Transitions leaving ``state`` (optionally only for ``trigger``), in order."""
        return tuple(
            t
            for t in self.transitions
            if state in t.sources and (trigger is None or t.trigger == trigger)
        )

    def passes(self, transition: Transition, facts: Facts) -> bool:
        """Whether ``transition``'s guards accept ``facts``."""
        return all(self.guard(g).fn(facts) for g in transition.when) and not any(
            self.guard(g).fn(facts) for g in transition.unless
        )

    def failed_guards(self, transition: Transition, facts: Facts) -> tuple[str, ...]:
        """The guards of ``transition`` that stop it for ``facts``: ``g`` for a ``when``
        guard that is false, ``!g`` for an ``unless`` guard that is true."""
        return tuple(
            [g for g in transition.when if not self.guard(g).fn(facts)]
            + [f"!{g}" for g in transition.unless if self.guard(g).fn(facts)])

    def fact_combinations(self, trigger: str) -> Iterator[dict[str, Any]]:
        """Every assignment of the trigger's declared fact domains (for checks and tests)."""
        facts = self.trigger(trigger).facts
        names = sorted(facts)
        for values in itertools.product(*(facts[n] for n in names)):
            yield dict(zip(names, values, strict=True))

    def graph(self) -> nx.MultiDiGraph:
        """States as nodes, one edge per (transition, source), labelled for rendering."""
        g = nx.MultiDiGraph(name=self.name)
        for s in self.states:
            g.add_node(s.name, terminal=s.terminal, initial=s.name == self.initial)
        for t in self.transitions:
            for src in t.sources:
                g.add_edge(src, t.dest, key=t.label(), trigger=t.trigger, label=t.label())
        return g


# ---------------------------------------------------------------------- validation


def _problems(d: MachineDef) -> Iterator[str]:
    """Everything wrong with a definition, each as one precise sentence."""
    yield from _duplicates("state", [s.name for s in d.states])
    yield from _duplicates("trigger", [t.name for t in d.triggers])
    yield from _duplicates("guard", [g.name for g in d.guards])
    states = set(d.state_names)
    triggers = set(d.trigger_names)
    guards = {g.name for g in d.guards}
    terminal = set(d.terminal_states)

    if d.initial not in states:
        yield f"initial state {d.initial!r} is not a declared state"
    grouped: set[str] = set()
    for group in d.groups:
        for name in group.states:
            if name not in states:
                yield f"group {group.name!r}: unknown state {name!r}"
            elif name in grouped:
                yield f"group {group.name!r}: state {name!r} is already in another group"
            grouped.add(name)
    structural_ok = True
    for i, t in enumerate(d.transitions):
        where = f"transition #{i} ({t.label()})"
        if t.trigger not in triggers:
            structural_ok = False
            yield f"{where}: unknown trigger {t.trigger!r}; declare it in triggers"
        if not t.sources:
            yield f"{where}: has no source states"
        for src in t.sources:
            if src not in states:
                structural_ok = False
                yield f"{where}: unknown source state {src!r}"
            elif src in terminal:
                yield f"{where}: leaves terminal state {src!r}; terminal states have no exits"
        if t.dest not in states:
            structural_ok = False
            yield f"{where}: unknown destination state {t.dest!r}"
        for g in (*t.when, *t.unless):
            if g not in guards:
                structural_ok = False
                yield f"{where}: unknown guard {g!r}; declare it in guards"
    if not structural_ok or d.initial not in states:
        return  # the graph and guard checks below assume a well-formed table

    used = {t.trigger for t in d.transitions}
    for name in sorted(triggers - used):
        yield f"trigger {name!r} is declared but no transition uses it"

    g = d.graph()
    reachable = nx.descendants(g, d.initial) | {d.initial}
    for name in d.state_names:
        if name not in reachable:
            yield f"state {name!r} is unreachable from the initial state {d.initial!r}"
    if d.terminal_states:
        # Every live state must be able to end: a lifecycle with a trap cycle cannot
        # delete its object.
        for name in d.state_names:
            if name in terminal:
                continue
            if not (nx.descendants(g, name) & terminal):
                yield f"state {name!r} can never reach a terminal state"

    yield from _guard_problems(d)


def _duplicates(what: str, names: list[str]) -> Iterator[str]:
    seen: set[str] = set()
    for n in names:
        if n in seen:
            yield f"{what} {n!r} is declared twice"
        seen.add(n)


def _guard_problems(d: MachineDef) -> Iterator[str]:
    """Per (state, trigger): at most one unguarded transition, none after it, and no
    pair that both accept some fact combination (first-match would hide the second)."""
    for state in d.state_names:
        for trig in d.trigger_names:
            options = d.outgoing(state, trig)
            if not options:
                continue
            unguarded = [t for t in options if not t.guarded]
            if len(unguarded) > 1:
                yield (
                    f"state {state!r}, trigger {trig!r}: {len(unguarded)} unguarded "
                    f"transitions (to {', '.join(repr(t.dest) for t in unguarded)}); "
                    "add guards so exactly one can fire"
                )
                continue
            if unguarded and unguarded[0] is not options[-1]:
                yield (
                    f"state {state!r}, trigger {trig!r}: the unguarded transition to "
                    f"{unguarded[0].dest!r} hides the ones after it; move it last"
                )
                continue
            if any(t.guarded for t in options):
                yield from _overlaps(d, state, trig, options)


def _overlaps(
    d: MachineDef, state: str, trig: str, options: tuple[Transition, ...]
) -> Iterator[str]:
    combos = itertools.islice(d.fact_combinations(trig), _MAX_COMBINATIONS)
    for facts in combos:
        try:
            passing = [t for t in options if d.passes(t, facts)]
        except Exception as exc:  # a guard reading an undeclared fact, a typo...
            yield (
                f"state {state!r}, trigger {trig!r}: a guard fails on facts {facts}: "
                f"{type(exc).__name__}: {exc}; declare the facts it reads on the trigger"
            )
            return
        guarded = [t for t in passing if t.guarded]
        if len(guarded) > 1:
            yield (
                f"state {state!r}, trigger {trig!r}: transitions to "
                f"{', '.join(repr(t.dest) for t in guarded)} can all fire for facts "
                f"{facts}; make their guards exclusive"
            )
            return
