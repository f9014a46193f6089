"""Replaying traces through a model: is every step an enabled action?

Where it sits: after a check. ``validate_trace`` checks an in-process trace (its steps
carry the raw states); ``replay`` re-derives the raw states of a trace read back from
JSON (``--json`` output or a trace file), matching each step by action name and by the
model's ``describe`` of the state — the first step of ``kstate verify --replay``, before
the engine is driven with the same actions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kstate.errors import ModelError
from kstate.verify.checker.model import INIT, Model
from kstate.verify.checker.results import Step


def validate_trace(model: Model[Any], trace: Sequence[Step],
                   cycle: Sequence[Step] = ()) -> None:
    """Raise ``ModelError`` unless ``trace`` starts in an initial state and each step (and
    each step of ``cycle``, which must return to the trace's last state) is enabled."""
    if not trace:
        raise ModelError("empty trace", model=model.label, field="trace")
    first = trace[0]
    if first.action != INIT or first.raw not in list(model.initial_states()):
        raise ModelError("does not start in an initial state", model=model.label,
                         field="trace[0]")
    cur = first.raw
    for where, steps in (("trace", trace[1:]), ("cycle", cycle)):
        offset = 1 if where == "trace" else 0
        for i, step in enumerate(steps):
            if (step.action, step.raw) not in list(model.actions(cur)):
                raise ModelError(f"{step.action!r} is not enabled or leads elsewhere",
                                 model=model.label, field=f"{where}[{i + offset}]")
            cur = step.raw
    if cycle and cycle[-1].raw != trace[-1].raw:
        raise ModelError("the cycle does not return to the trace's last state",
                         model=model.label, field="cycle")


def replay(model: Model[Any], trace: Sequence[Step]) -> list[Step]:
    """The steps of ``trace`` with their raw states, re-derived by running the model.

    Steps are matched by action name and ``model.describe(state) == step.state``.
    """
    return locate(model, trace)[1]


def locate(model: Model[Any], trace: Sequence[Step]) -> tuple[list[int], list[Step]]:
    """Where ``trace`` goes in the state graph: the index of its initial state among
    ``initial_states()``, then at each step the index of the successor taken among
    ``actions(state)`` — and the steps with their raw states (``replay``).

    A step carrying its raw state (in-process) is matched by that state; one read back
    from JSON by action name and ``model.describe``. The indexes are what the explorer
    (``kstate verify --explore``) puts in its URLs.
    """
    if not trace:
        raise ModelError("empty trace", model=model.label, field="trace")
    first = trace[0]
    initial = list(model.initial_states())
    starts = [i for i, s in enumerate(initial) if _same(model, s, first)]
    if not starts:
        raise ModelError("no initial state matches", model=model.label, field="trace[0].state")
    cur = initial[starts[0]]
    path, out = [starts[0]], [Step(INIT, first.state, cur)]
    for i, step in enumerate(trace[1:], start=1):
        named = [(j, t) for j, (name, t) in enumerate(model.actions(cur))
                 if name == step.action]
        if not named:
            raise ModelError(f"action {step.action!r} is not enabled here", model=model.label,
                             field=f"trace[{i}].action")
        same = [(j, t) for j, t in named if _same(model, t, step)]
        if not same:
            raise ModelError(f"{step.action!r} leads to a different state", model=model.label,
                             field=f"trace[{i}].state")
        j, cur = same[0]
        path.append(j)
        out.append(Step(step.action, step.state, cur))
    return path, out


def _same(model: Model[Any], state: Any, step: Step) -> bool:
    if step.raw is not None:
        return bool(state == step.raw)
    return bool(model.describe(state) == step.state)
