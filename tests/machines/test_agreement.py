"""Hypothesis: random trigger sequences through the engine's ``transitions`` machine and
the checker's compiled table always agree (same states, same illegal moves)."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from kstate import machines
from kstate.errors import IllegalTransition


@st.composite
def runs(draw: st.DrawFn) -> tuple[str, list[tuple[str, dict[str, Any]]]]:
    name = draw(st.sampled_from(sorted(machines.MACHINES)))
    d = machines.MACHINES[name]
    steps = []
    for _ in range(draw(st.integers(1, 40))):
        trigger = d.trigger(draw(st.sampled_from(d.trigger_names)))
        facts = {k: draw(st.sampled_from(v)) for k, v in sorted(trigger.facts.items())}
        steps.append((trigger.name, facts))
    return name, steps


@given(runs())
def test_live_machine_and_compiled_table_agree(run: tuple[str, list[Any]]) -> None:
    name, steps = run
    live = machines.live(name).lifecycle("ns/fuzz")
    table = machines.compiled(name)
    state = table.initial
    try:
        for trigger, facts in steps:
            try:
                expected = table.fire(state, trigger, facts, obj="ns/fuzz")
            except IllegalTransition as err:
                try:
                    live.fire(trigger, **facts)
                except IllegalTransition as live_err:
                    assert (live_err.state, live_err.trigger) == (err.state, err.trigger)
                    assert live.state == state  # an illegal trigger changes nothing
                    continue
                raise AssertionError(f"engine allowed {trigger} from {state}") from None
            assert live.fire(trigger, **facts) == expected
            state = expected
            assert live.state == state
    finally:
        machines.live(name).release(live)
