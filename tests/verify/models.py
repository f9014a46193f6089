"""Tiny hand-made models for the checker's tests (liveness, deadlock, bounds, bad input)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from kstate.verify.checker import (
    Model,
    Property,
    always,
    converges,
    eventually,
    leads_to,
    sometimes,
    true,
)


class Counter(Model[int]):
    """0 -> 1 -> ... -> top; optionally a Reset from top back to 0."""

    def __init__(self, top: int = 3, reset: bool = False, fair: Sequence[str] = (),
                 props: Sequence[Property[int]] = (), terminal_top: bool = False) -> None:
        self.top = top
        self.reset = reset
        self.fair = tuple(fair)
        self.props = tuple(props)
        self.terminal_top = terminal_top

    def initial_states(self) -> Iterable[int]:
        return [0]

    def actions(self, s: int) -> Iterable[tuple[str, int]]:
        out = []
        if s < self.top:
            out.append(("Inc", s + 1))
        if self.reset and s == self.top:
            out.append(("Reset", 0))
        return out

    def properties(self) -> Sequence[Property[int]]:
        return self.props

    def fairness(self) -> Sequence[str]:
        return self.fair

    def terminal(self, s: int) -> bool:
        return self.terminal_top and s == self.top


class PingPong(Model[int]):
    """0 <-> 1 forever, or Finish to 2; ``finish_from`` says where Finish is enabled."""

    def __init__(self, fair: Sequence[str], finish_from: tuple[int, ...] = (0,)) -> None:
        self.fair = tuple(fair)
        self.finish_from = finish_from

    def initial_states(self) -> Iterable[int]:
        return [0]

    def actions(self, s: int) -> Iterable[tuple[str, int]]:
        out = []
        if s == 0:
            out.append(("Ping", 1))
        if s == 1:
            out.append(("Pong", 0))
        if s in self.finish_from:
            out.append(("Finish", 2))
        if s == 2:
            out.append(("Idle", 2))
        return out

    def properties(self) -> Sequence[Property[int]]:
        return [leads_to("PingFinishes", lambda s: s == 0, lambda s: s == 2)]

    def fairness(self) -> Sequence[str]:
        return self.fair


class Faulty(Model[tuple[int, int]]):
    """(faults left, healthy): Fault breaks it while the budget lasts, Repair fixes it."""

    def __init__(self, budget: int | None, fair: Sequence[str]) -> None:
        self.budget = budget
        self.fair = tuple(fair)

    def initial_states(self) -> Iterable[tuple[int, int]]:
        return [(self.budget if self.budget is not None else 0, 1)]

    def actions(self, s: tuple[int, int]) -> Iterable[tuple[str, tuple[int, int]]]:
        left, ok = s
        out = []
        if ok and (self.budget is None or left > 0):
            out.append(("Fault", (left - 1 if self.budget is not None else 0, 0)))
        if not ok:
            out.append(("Repair", (left, 1)))
        return out

    def properties(self) -> Sequence[Property[tuple[int, int]]]:
        return [converges("Heals", true, lambda s: s[1] == 1),
                eventually("EventuallyHealthy", lambda s: s[1] == 1)]

    def fairness(self) -> Sequence[str]:
        return self.fair


class Grid(Model[tuple[int, int]]):
    """A big-ish space (size x size) for bounds, timeouts, workers and progress."""

    def __init__(self, size: int = 300) -> None:
        self.size = size

    def initial_states(self) -> Iterable[tuple[int, int]]:
        return [(0, 0)]

    def actions(self, s: tuple[int, int]) -> Iterable[tuple[str, tuple[int, int]]]:
        x, y = s
        out = []
        if x + 1 < self.size:
            out.append(("Right", (x + 1, y)))
        if y + 1 < self.size:
            out.append(("Up", (x, y + 1)))
        if x and y:
            out.append(("Home", (0, 0)))
        return out

    def properties(self) -> Sequence[Property[tuple[int, int]]]:
        return [always("InBox", lambda s: max(s) < self.size),
                sometimes("Corner", lambda s: s == (self.size - 1, self.size - 1))]


class Unhashable(Model[Any]):
    def initial_states(self) -> Iterable[Any]:
        return [(0,)]

    def actions(self, s: Any) -> Iterable[tuple[str, Any]]:
        return [("Grow", [*s, 1])]


class NoInit(Model[int]):
    def initial_states(self) -> Iterable[int]:
        return []

    def actions(self, s: int) -> Iterable[tuple[str, int]]:
        return []
