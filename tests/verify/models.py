"""Tiny hand-made models for the checker's tests (liveness, deadlock, bounds, bad input)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from kstate.verify.checker import (
    Footprint,
    Model,
    Property,
    always,
    converges,
    eventually,
    leads_to,
    sometimes,
    stubborn,
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


class Workers(Model[tuple[int, ...]]):
    """``n`` processes, each taking ``k`` private steps (``Step(i)``) and then raising its
    shared flag (``Finish(i)``, pc ``k + 1``). The properties read only the flags, so the
    private steps are invisible and commute with every other process: the textbook case
    for partial-order reduction ((k + 2)^n states in full, about n(k + 2) reduced).

    ``bad_flags``: the ``always`` property "fewer than this many flags are up" (violated
    when it is at most n). ``wrong``: a deliberately unsound footprint — Finish(i) is
    declared invisible (it hides its flag write), so a persistent set may hold p1 back
    until p0 is done and ``ordered``'s violation (p1's flag before p0's) is missed.
    """

    def __init__(self, n: int = 3, k: int | tuple[int, ...] = 2,
                 bad_flags: int | None = None, wrong: bool = False, live: bool = False,
                 ordered: bool = False, p0_down: bool = False) -> None:
        self.n = n
        self.ks = k if isinstance(k, tuple) else (k,) * n  # private steps per process
        self.p0_down = p0_down
        self.bad_flags = n + 1 if bad_flags is None else bad_flags
        self.wrong = wrong
        self.live = live
        self.ordered = ordered
        self.step = [f"Step(p{i})" for i in range(n)]
        self.finish = [f"Finish(p{i})" for i in range(n)]

    def initial_states(self) -> Iterable[tuple[int, ...]]:
        return [(0,) * self.n]

    def actions(self, s: tuple[int, ...]) -> Iterable[tuple[str, tuple[int, ...]]]:
        out = []
        for i, pc in enumerate(s):
            if pc < self.ks[i]:
                out.append((self.step[i], (*s[:i], pc + 1, *s[i + 1:])))
            elif pc == self.ks[i]:
                out.append((self.finish[i], (*s[:i], pc + 1, *s[i + 1:])))
        return out

    def flag(self, s: tuple[int, ...], i: int) -> bool:
        return s[i] > self.ks[i]

    def flags(self, s: tuple[int, ...]) -> int:
        return sum(self.flag(s, i) for i in range(self.n))

    def properties(self) -> Sequence[Property[tuple[int, ...]]]:
        props: list[Property[tuple[int, ...]]] = [
            always("FewFlags", lambda s: self.flags(s) < self.bad_flags),
            sometimes("OneFlag", lambda s: self.flags(s) == 1)]
        if self.live:
            props.append(eventually("AllFlags", lambda s: self.flags(s) == self.n))
        if self.ordered:  # violated only when p1 overtakes p0
            props.append(always("P0First", lambda s: self.flag(s, 0) or not self.flag(s, 1)))
        if self.p0_down:
            props.append(always("P0Down", lambda s: not self.flag(s, 0)))
        return props

    def terminal(self, s: tuple[int, ...]) -> bool:
        return True

    def footprint(self, name: str) -> Footprint:
        i = int(name[name.index("(p") + 2:-1])
        pc = frozenset({("pc", i)})
        if name.startswith("Finish") and not self.wrong:
            return Footprint(reads=pc, writes=pc | {("flag", i)})
        return Footprint(reads=pc, writes=pc)

    def persistent(self, s: tuple[int, ...], actions: Sequence[tuple[str, tuple[int, ...]]]
                   ) -> list[int] | None:
        return stubborn([a for a, _ in actions], self.step + self.finish, self.footprint,
                        frozenset(("flag", i) for i in range(self.n)))


class Ignoring(Model[tuple[int, int]]):
    """The ignoring problem: ``Spin`` toggles x forever, ``Go`` sets y (which the property
    reads). ``{Spin}`` is a genuine persistent set of invisible actions everywhere, so
    without the cycle proviso the reduced graph would be the x-cycle and miss y."""

    def initial_states(self) -> Iterable[tuple[int, int]]:
        return [(0, 0)]

    def actions(self, s: tuple[int, int]) -> Iterable[tuple[str, tuple[int, int]]]:
        x, y = s
        out = [("Spin", (1 - x, y))]
        if y == 0:
            out.append(("Go", (x, 1)))
        return out

    def properties(self) -> Sequence[Property[tuple[int, int]]]:
        return [always("YZero", lambda s: s[1] == 0)]

    def persistent(self, s: tuple[int, int], actions: Sequence[tuple[str, tuple[int, int]]]
                   ) -> list[int] | None:
        return [0]
