"""A lifecycle as a ``transitions`` machine: the engine's executor.

Where it sits: definition path. ``MachineDef`` -> ``LiveMachine`` -> engine components
(node agent, scheduler, api server admission, controllers' command executor) call
``fire`` whenever an object's lifecycle moves. The model checker uses the compiled table
instead (``compiled.py``); both raise the same ``IllegalTransition``.

Why ``transitions``: it is the design card's state-machine library, it gives callbacks
and diagrams for free, and it makes "state changes only through machine triggers" a
mechanism rather than a convention — a trigger not allowed in the current state raises.
Automatic ``to_<state>`` triggers are turned off so nothing can jump states directly.

One ``transitions.Machine`` per definition is shared by every object; an object's
lifecycle is a model added for the duration of a move (``fire``) or held while an owner
drives it (``Lifecycle``).

>>> from kstate.machines.pod import POD
>>> live = LiveMachine(POD)
>>> live.fire("Pending", "schedule", obj="default/web-1")
'Scheduled'
"""

from __future__ import annotations

import threading
from typing import Any

from transitions import Machine, MachineError

from kstate.errors import IllegalTransition
from kstate.machines.compiled import _no_guard, _not_allowed
from kstate.machines.definition import Facts, GuardFn, MachineDef


def _condition(fn: GuardFn) -> Any:
    # transitions hands conditions an EventData when send_event=True; guards read only
    # the facts passed as keyword arguments to the trigger.
    return lambda event: fn(event.kwargs)


class Lifecycle:
    """One object's position in its lifecycle (a ``transitions`` model)."""

    state: str

    def __init__(self, live: LiveMachine, obj: str) -> None:
        self._live = live
        self.obj = obj

    def fire(self, trigger: str, **facts: Any) -> str:
        """Fire ``trigger`` with ``facts``; returns the new state or raises."""
        definition = self._live.definition
        if trigger not in definition.trigger_names:
            raise IllegalTransition(
                definition.kind, self.obj, self.state, trigger,
                f"unknown trigger; known: {', '.join(definition.trigger_names)}",
            )
        before = self.state
        try:
            moved = self.trigger(trigger, **facts)  # type: ignore[attr-defined]
        except MachineError:
            raise IllegalTransition(
                definition.kind, self.obj, before, trigger, _not_allowed(trigger)
            ) from None
        if not moved:
            raise IllegalTransition(definition.kind, self.obj, before, trigger, _no_guard(facts))
        return self.state


class LiveMachine:
    """The ``transitions`` machine for one definition, shared by all its objects."""

    def __init__(self, definition: MachineDef) -> None:
        self.definition = definition
        guards = {g.name: _condition(g.fn) for g in definition.guards}
        self._machine = Machine(
            model=None,
            states=list(definition.state_names),
            transitions=[
                {
                    "trigger": t.trigger,
                    "source": list(t.sources),
                    "dest": t.dest,
                    "conditions": [guards[g] for g in t.when],
                    "unless": [guards[g] for g in t.unless],
                }
                for t in definition.transitions
            ],
            initial=definition.initial,
            auto_transitions=False,
            send_event=True,
            ignore_invalid_triggers=False,
        )
        # add_model/remove_model mutate shared lists; engine components run on several
        # threads (the store's writer, executors), so moves are serialised here.
        self._lock = threading.Lock()
        # One-off moves reuse a single model: set its state, fire, done — adding and
        # removing a model per move costs more than the move itself.
        self._scratch = Lifecycle(self, "?")
        self._machine.add_model(self._scratch, initial=definition.initial)

    def lifecycle(self, obj: str, state: str | None = None) -> Lifecycle:
        """A model for ``obj`` starting in ``state`` (default: the initial state).

        Call ``release`` when done, or use ``fire`` for a one-off move.
        """
        start = state if state is not None else self.definition.initial
        if start not in self.definition.state_names:
            raise IllegalTransition(
                self.definition.kind, obj, start, "<resume>",
                f"unknown state; known: {', '.join(self.definition.state_names)}",
            )
        model = Lifecycle(self, obj)
        with self._lock:
            self._machine.add_model(model, initial=start)
        return model

    def release(self, model: Lifecycle) -> None:
        with self._lock:
            self._machine.remove_model(model)

    def fire(self, state: str, trigger: str, facts: Facts | None = None, obj: str = "") -> str:
        """One move of ``obj`` from ``state``: the state after ``trigger``, or raises."""
        if state not in self.definition.state_names:
            raise IllegalTransition(
                self.definition.kind, obj or "?", state, trigger,
                f"unknown state; known: {', '.join(self.definition.state_names)}",
            )
        with self._lock:
            scratch = self._scratch
            scratch.obj = obj or "?"
            self._machine.set_state(state, model=scratch)
            return scratch.fire(trigger, **dict(facts or {}))


__all__ = ["Lifecycle", "LiveMachine"]
