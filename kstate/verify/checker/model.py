"""The model API: what a model gives the checker.

Where it sits: the bottom of ``kstate.verify.checker``. Everything the checker explores
— the TLA+ cross-check examples today, the Kubernetes system model tomorrow — is a
``Model``: initial states, the enabled actions of a state with the state each one leads
to, named properties, optional weak fairness, an optional symmetry canonicaliser.

Why it looks like this: states are plain hashable *values* (ints, tuples, frozen attrs
objects) so the checker can fingerprint them with ``hash`` and ship them between worker
processes; actions are *named* so a counterexample reads as a story and a fairness
declaration can name a family of actions (``"RMPrepare"`` covers ``"RMPrepare(rm1)"``,
``"RMPrepare(rm2)"``, ...).

>>> class Counter(Model[int]):
...     def initial_states(self): return [0]
...     def actions(self, n): return [("Inc", n + 1)] if n < 3 else []
...     def properties(self): return [always("small", lambda n: n < 10)]
>>> [name for name, _ in Counter().actions(0)]
['Inc']
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from typing import Any, ClassVar, Generic, TypeVar

import attrs

from kstate.errors import ModelError

S = TypeVar("S", bound=Hashable)

#: The action name of the first step of every trace (TLC prints "<Initial predicate>").
INIT = "<init>"

#: A fairness entry that makes every action weakly fair.
ALL_ACTIONS = "*"

Predicate = Callable[[Any], bool]


def action(family: str, *params: object) -> str:
    """The conventional name of a parameterised action: ``action("RMPrepare", "rm2")``
    is ``"RMPrepare(rm2)"``. Models should build these once, not per transition."""
    if not params:
        return family
    return f"{family}({', '.join(str(p) for p in params)})"


def family_of(name: str) -> str:
    """``"RMPrepare(rm2)"`` -> ``"RMPrepare"``; a name without parameters is its own family."""
    return name.split("(", 1)[0]


class Kind(enum.StrEnum):
    """What a property claims about the state graph."""

    ALWAYS = "always"  # p holds in every reachable state (invariant)
    SOMETIMES = "sometimes"  # some reachable state satisfies p (witness wanted)
    EVENTUALLY = "eventually"  # every fair behaviour reaches a p state: <>p
    LEADS_TO = "leads_to"  # every p state is followed by a q state: p ~> q
    CONVERGES = "converges"  # once p holds for good, q eventually holds for good: []p ~> []q

    @property
    def liveness(self) -> bool:
        return self in _LIVENESS


_LIVENESS = frozenset({Kind.EVENTUALLY, Kind.LEADS_TO, Kind.CONVERGES})
_TWO_PREDICATES = frozenset({Kind.LEADS_TO, Kind.CONVERGES})


def _kind(value: Kind | str) -> Kind:
    try:
        return Kind(value)
    except ValueError:
        known = ", ".join(k.value for k in Kind)
        raise ModelError(f"unknown property kind {value!r} (known: {known})",
                         field="kind") from None


@attrs.frozen
class Property(Generic[S]):
    """A named claim over states. Build with ``always``/``sometimes``/``eventually``/
    ``leads_to``/``converges`` rather than directly.

    ``p`` is the property's predicate (for ``leads_to``/``converges`` the premise), ``q``
    the conclusion of the two-predicate kinds.
    """

    name: str
    kind: Kind = attrs.field(converter=_kind)
    p: Callable[[S], bool]
    q: Callable[[S], bool] | None = None
    vector: Callable[[Any], Any] | None = None  # p over a numpy array of packed states

    def __attrs_post_init__(self) -> None:
        if not self.name:
            raise ModelError("a property needs a name", field="name")
        if not callable(self.p):
            raise ModelError("predicate is not callable", field=f"property {self.name!r}")
        if (self.kind in _TWO_PREDICATES) != (self.q is not None):
            need = "two predicates" if self.kind in _TWO_PREDICATES else "one predicate"
            raise ModelError(f"{self.kind.value} takes {need}", field=f"property {self.name!r}")
        if self.q is not None and not callable(self.q):
            raise ModelError("predicate is not callable", field=f"property {self.name!r}")


def always(name: str, p: Callable[[S], bool], *,
           vector: Callable[[Any], Any] | None = None) -> Property[S]:
    """Invariant: ``p`` holds in every reachable state (violation: shortest path under BFS).
    ``vector`` (``VectorModel`` only): the same predicate over an array of states."""
    return Property(name, Kind.ALWAYS, p, vector=vector)


def sometimes(name: str, p: Callable[[S], bool], *,
              vector: Callable[[Any], Any] | None = None) -> Property[S]:
    """Reachability: some reachable state satisfies ``p`` (the witness is a path to it)."""
    return Property(name, Kind.SOMETIMES, p, vector=vector)


def eventually(name: str, p: Callable[[S], bool]) -> Property[S]:
    """Liveness ``<>p``: every fair behaviour from an initial state reaches a ``p`` state."""
    return Property(name, Kind.EVENTUALLY, p)


def leads_to(name: str, p: Callable[[S], bool], q: Callable[[S], bool]) -> Property[S]:
    """Liveness ``p ~> q``: every fair behaviour that reaches a ``p`` state later (or then)
    reaches a ``q`` state."""
    return Property(name, Kind.LEADS_TO, p, q)


def converges(name: str, p: Callable[[S], bool], q: Callable[[S], bool]) -> Property[S]:
    """Liveness ``[]p ~> []q``: in every fair behaviour in which ``p`` eventually holds for
    good, ``q`` eventually holds for good too ("once the desired state stops changing the
    actual state settles on it"). ``converges(name, TRUE, q)`` is ``<>[]q``."""
    return Property(name, Kind.CONVERGES, p, q)


def true(_state: object) -> bool:
    """The predicate that always holds (premise of ``<>[]q`` written as ``converges``)."""
    return True


class Model(Generic[S]):
    """Subclass and override. Only ``initial_states`` and ``actions`` are required.

    Contract:

    * states are hashable values, equal states have equal hashes, and (to use
      ``workers > 1``) they pickle;
    * ``actions(s)`` is a pure function of ``s`` and lists the same actions in the same
      order every time it is called — counterexamples are rebuilt by re-running it
      (TLC-style), not stored;
    * ``canonical(s)`` (symmetry) returns a state equivalent to ``s`` under a permutation
      of interchangeable identities; properties must not tell such states apart;
    * action names are ``Family`` or ``Family(params)`` (see ``action``).

    Instead of ``actions`` a model may define ``enabled(s)`` (the enabled actions, any
    objects whose ``str`` is the name) and ``next_state(s, a)``.
    """

    #: shown in results; defaults to the class name.
    name: str = ""

    def initial_states(self) -> Iterable[S]:
        raise NotImplementedError(f"{type(self).__name__}.initial_states")

    def actions(self, state: S) -> Iterable[tuple[str, S]]:
        """``(action name, next state)`` for every action enabled in ``state``."""
        enabled = getattr(self, "enabled", None)
        step = getattr(self, "next_state", None)
        if enabled is None or step is None:
            raise NotImplementedError(
                f"{type(self).__name__} must define actions() or enabled() + next_state()")
        return [(str(a), step(state, a)) for a in enabled(state)]

    def properties(self) -> Sequence[Property[S]]:
        return ()

    #: Report fairness entries that matched no explored action (usually a typo in a
    #: hand-written model). A model whose list names every component it *may* have
    #: turns this off: a scenario without Services never runs an Endpoints step.
    warn_unused_fairness: ClassVar[bool] = True

    def fairness(self) -> Sequence[str]:
        """Weakly fair actions: a family name (every instance of the family is weakly fair
        on its own, like TLA+'s ``\\A rm : WF(RMPrepare(rm))``), an exact action name, or
        ``ALL_ACTIONS``. Liveness is checked under these assumptions only."""
        return ()

    def action_families(self) -> Sequence[str]:
        """Every action family the model may fire — the coverage report lists those that
        never fired (TLC's coverage). Default: the families named in ``fairness()``;
        families that fire are reported whether listed or not."""
        return tuple(dict.fromkeys(family_of(e) for e in self.fairness() if e != ALL_ACTIONS))

    def canonical(self, state: S) -> S:
        """The representative of ``state``'s symmetry class (identity: no symmetry)."""
        return state

    #: ``canonical`` returns one representative per orbit (two renamings of a state get
    #: the same one), as ``Symmetry.canonical`` does. Liveness under symmetry needs it.
    symmetry_exact: bool = False

    def terminal(self, state: S) -> bool:
        """True for states allowed to have no successor (not reported as deadlocks)."""
        return False

    def persistent(self, state: S, actions: Sequence[tuple[str, S]]) -> Sequence[int] | None:
        """Partial-order reduction: indexes into ``actions`` (the state's full list) of a
        *persistent set of invisible actions*, or ``None`` for no reduction here.

        The model vouches for: non-empty when ``actions`` is; no action outside the
        set, on any path from ``state`` that avoids the set, is dependent on one inside
        (persistence); every member leaves every property predicate's value unchanged
        (invisibility). The checker adds the cycle proviso. ``por.stubborn`` computes
        such a set from read/write footprints. Used for safety properties only.
        """
        return None

    def describe(self, state: S) -> Any:
        """A JSON-able rendering of ``state`` for traces (override for packed states)."""
        return to_jsonable(state)

    @property
    def has_symmetry(self) -> bool:
        return type(self).canonical is not Model.canonical

    @property
    def has_persistent(self) -> bool:
        return type(self).persistent is not Model.persistent

    @property
    def label(self) -> str:
        return self.name or type(self).__name__


def states_within(model: Model[S], steps: int) -> list[S]:
    """Every state reachable in at most ``steps`` actions, breadth-first, the states
    themselves kept (for measurements and tests that look at each state; the checker
    never keeps states like this)."""
    seen = {s: None for s in model.initial_states()}
    level = list(seen)
    for _ in range(steps):
        nxt = []
        for s in level:
            for _, t in model.actions(s):
                if t not in seen:
                    seen[t] = None
                    nxt.append(t)
        level = nxt
    return list(seen)


class VectorModel(Model[int]):
    """A model whose states are ints in ``[0, 2**61 - 1)`` that can also expand a whole
    numpy array of states at once — the BFS fast path for packed models.

    ``successors_array(states)`` returns three equal-length arrays: the position in
    ``states`` of each successor's parent, the successor's index in the order
    ``actions(parent)`` lists it, and the successor state. It must describe exactly the
    transitions ``actions`` describes (traces are still rebuilt with ``actions``).
    With symmetry, ``canonical_array`` must agree with ``canonical``. Used when there
    are no liveness properties (they need action names on every edge).
    """

    def successors_array(self, states: Any) -> tuple[Any, Any, Any]:
        raise NotImplementedError(f"{type(self).__name__}.successors_array")

    def canonical_array(self, states: Any) -> Any:
        return states


class FairnessSpec:
    """Answers "is this action name weakly fair?" for the model's declaration."""

    def __init__(self, entries: Iterable[str], *, warn_unused: bool = True) -> None:
        self.entries = tuple(entries)
        self.warn_unused = warn_unused
        self.everything = ALL_ACTIONS in self.entries
        self.families = frozenset(e for e in self.entries if "(" not in e)
        self.exact = frozenset(e for e in self.entries if "(" in e)
        self.used: set[str] = set()

    def __bool__(self) -> bool:
        return bool(self.entries)

    def fair(self, name: str) -> bool:
        if self.everything:
            return True
        if name in self.exact:
            self.used.add(name)
            return True
        fam = family_of(name)
        if fam in self.families:
            self.used.add(fam)
            return True
        return False

    def unused(self) -> list[str]:
        if not self.warn_unused:
            return []
        return [e for e in self.entries if e != ALL_ACTIONS and e not in self.used]


def to_jsonable(value: Any) -> Any:
    """Plain JSON data for a state: attrs objects become dicts, sets sorted lists."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, enum.Enum):
        return to_jsonable(value.value)
    if attrs.has(type(value)):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in attrs.fields(type(value))}
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, frozenset | set):
        items = [to_jsonable(v) for v in value]
        return sorted(items, key=repr)
    if isinstance(value, tuple | list):
        return [to_jsonable(v) for v in value]
    return repr(value)
