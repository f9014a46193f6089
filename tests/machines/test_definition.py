"""Build-time checks of lifecycle definitions: each malformed table gets a precise error."""

from __future__ import annotations

import pytest

from kstate.errors import MachineDefinitionError
from kstate.machines.definition import Guard, MachineDef, State, StateGroup, Transition, Trigger


def door(**overrides: object) -> MachineDef:
    spec: dict[str, object] = dict(
        name="door",
        kind="Door",
        states=(State("Closed"), State("Open"), State("Gone", terminal=True)),
        initial="Closed",
        triggers=(Trigger("push"), Trigger("close"), Trigger("remove")),
        transitions=(
            Transition("push", ("Closed",), "Open"),
            Transition("close", ("Open",), "Closed"),
            Transition("remove", ("Closed", "Open"), "Gone"),
        ),
    )
    spec.update(overrides)
    return MachineDef(**spec)  # type: ignore[arg-type]


def problems_of(**overrides: object) -> str:
    with pytest.raises(MachineDefinitionError) as info:
        door(**overrides)
    assert info.value.machine == "door"
    return str(info.value)


def test_a_valid_definition_builds() -> None:
    d = door()
    assert d.terminal_states == ("Gone",)
    assert d.outgoing("Closed", "push")[0].dest == "Open"


def test_unreachable_state() -> None:
    msg = problems_of(states=(State("Closed"), State("Open"), State("Attic"),
                              State("Gone", terminal=True)))
    assert "state 'Attic' is unreachable from the initial state 'Closed'" in msg


def test_exit_from_terminal_state() -> None:
    msg = problems_of(
        triggers=(Trigger("push"), Trigger("close"), Trigger("remove"), Trigger("revive")),
        transitions=(
            Transition("push", ("Closed",), "Open"),
            Transition("close", ("Open",), "Closed"),
            Transition("remove", ("Closed", "Open"), "Gone"),
            Transition("revive", ("Gone",), "Closed"),
        ),
    )
    assert "leaves terminal state 'Gone'" in msg


def test_unknown_guard_state_and_trigger() -> None:
    msg = problems_of(
        transitions=(
            Transition("push", ("Closed",), "Open", when=("has_key",)),
            Transition("close", ("Ajar",), "Closed"),
            Transition("slam", ("Open",), "Closed"),
            Transition("remove", ("Closed", "Open"), "Nowhere"),
        ),
    )
    assert "unknown guard 'has_key'" in msg
    assert "unknown source state 'Ajar'" in msg
    assert "unknown trigger 'slam'" in msg
    assert "unknown destination state 'Nowhere'" in msg


def test_two_unguarded_transitions_for_one_trigger_and_state() -> None:
    msg = problems_of(
        transitions=(
            Transition("push", ("Closed",), "Open"),
            Transition("push", ("Closed",), "Gone"),
            Transition("close", ("Open",), "Closed"),
            Transition("remove", ("Closed", "Open"), "Gone"),
        ),
    )
    assert "state 'Closed', trigger 'push': 2 unguarded transitions" in msg


def test_unguarded_transition_hiding_a_guarded_one() -> None:
    msg = problems_of(
        guards=(Guard("locked", lambda f: bool(f["locked"])),),
        triggers=(Trigger("push", facts={"locked": (False, True)}), Trigger("close"),
                  Trigger("remove")),
        transitions=(
            Transition("push", ("Closed",), "Open"),
            Transition("push", ("Closed",), "Closed", when=("locked",)),
            Transition("close", ("Open",), "Closed"),
            Transition("remove", ("Closed", "Open"), "Gone"),
        ),
    )
    assert "hides the ones after it" in msg


def test_overlapping_guards() -> None:
    msg = problems_of(
        guards=(Guard("a", lambda f: f["n"] > 0), Guard("b", lambda f: f["n"] > 1)),
        triggers=(Trigger("push", facts={"n": (0, 1, 2)}), Trigger("close"),
                  Trigger("remove")),
        transitions=(
            Transition("push", ("Closed",), "Open", when=("a",)),
            Transition("push", ("Closed",), "Gone", when=("b",)),
            Transition("close", ("Open",), "Closed"),
            Transition("remove", ("Closed", "Open"), "Gone"),
        ),
    )
    assert "can all fire for facts {'n': 2}" in msg


def test_guard_reading_an_undeclared_fact() -> None:
    msg = problems_of(
        guards=(Guard("locked", lambda f: bool(f["locked"])),),
        transitions=(
            Transition("push", ("Closed",), "Open", unless=("locked",)),
            Transition("close", ("Open",), "Closed"),
            Transition("remove", ("Closed", "Open"), "Gone"),
        ),
    )
    assert "a guard fails on facts {}" in msg and "KeyError" in msg


def test_state_that_can_never_end() -> None:
    trap = problems_of(
        states=(State("Closed"), State("Open"), State("Stuck"), State("Gone", terminal=True)),
        triggers=(Trigger("push"), Trigger("close"), Trigger("remove"), Trigger("jam")),
        transitions=(
            Transition("push", ("Closed",), "Open"),
            Transition("close", ("Open",), "Closed"),
            Transition("remove", ("Closed", "Open"), "Gone"),
            Transition("jam", ("Open", "Stuck"), "Stuck"),
        ),
    )
    assert "state 'Stuck' can never reach a terminal state" in trap


def test_duplicates_initial_unused_trigger_and_groups() -> None:
    msg = problems_of(
        states=(State("Closed"), State("Closed"), State("Open"), State("Gone", terminal=True)),
        initial="Nowhere",
    )
    assert "state 'Closed' is declared twice" in msg
    assert "initial state 'Nowhere' is not a declared state" in msg
    msg = problems_of(triggers=(Trigger("push"), Trigger("close"), Trigger("remove"),
                                Trigger("knock")))
    assert "trigger 'knock' is declared but no transition uses it" in msg
    msg = problems_of(groups=(StateGroup("g", ("Closed", "Attic")),
                              StateGroup("h", ("Closed",))))
    assert "group 'g': unknown state 'Attic'" in msg
    assert "state 'Closed' is already in another group" in msg
