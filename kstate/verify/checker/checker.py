"""The checker builder: choose a strategy and bounds, run, get a ``CheckResult``.

Where it sits: the entry point of ``kstate.verify.checker``; the ``kstate verify`` CLI and
the tests build a ``Checker`` (fluent) or call ``check`` (keywords).

>>> from kstate.verify.examples.diehard import DieHard
>>> result = Checker(DieHard()).bfs().run()
>>> result.property("NotSolved").verdict.value, result.property("NotSolved").length
('violated', 7)
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import attrs

from kstate.errors import ModelError
from kstate.verify.checker.core import DEADLOCK, Clock, Spec, StopPolicy, Strategy
from kstate.verify.checker.model import Model
from kstate.verify.checker.results import CheckResult, Progress, StopReason

S = TypeVar("S")


class _Monotonic:
    def now(self) -> float:
        return time.monotonic()


def _positive(name: str, allow_zero: bool = False) -> Callable[[Any, Any, Any], None]:
    def check(_inst: Any, _attr: Any, value: Any) -> None:
        if value is None:
            return
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ModelError(f"must be a number, got {value!r}", field=name)
        if value < 0 or (value == 0 and not allow_zero):
            raise ModelError(f"must be {'>= 0' if allow_zero else '> 0'}, got {value!r}",
                             field=name)
    return check


def _optional_bool(name: str) -> Callable[[Any, Any, Any], None]:
    def check(_inst: Any, _attr: Any, value: Any) -> None:
        if value is not None and not isinstance(value, bool):
            raise ModelError(f"must be true, false or None (automatic), got {value!r}",
                             field=name)
    return check


def _enum(cls: Any, name: str, value: Any) -> Any:
    try:
        return cls(value)
    except ValueError:
        known = ", ".join(v.value for v in cls)
        raise ModelError(f"unknown value {value!r} (known: {known})", field=name) from None


def _strategy(value: Any) -> Strategy:
    return _enum(Strategy, "strategy", value)


def _stop(value: Any) -> StopPolicy:
    return _enum(StopPolicy, "stop", value)


@attrs.frozen
class Options:
    """Every knob of a run. ``max_depth`` counts states on a path, the initial state
    being depth 1 (TLC's convention, the same unit as ``CheckResult.depth``)."""

    strategy: Strategy = attrs.field(default=Strategy.BFS, converter=_strategy)
    workers: int = attrs.field(default=1, validator=_positive("workers"))
    symmetry: bool | None = None  # None: use the model's canonical() if it has one
    max_depth: int | None = attrs.field(default=None, validator=_positive("max_depth"))
    max_states: int | None = attrs.field(default=None, validator=_positive("max_states"))
    timeout: float | None = attrs.field(default=None,
                                        validator=_positive("timeout", allow_zero=True))
    deadlock: bool = False
    stop: StopPolicy = attrs.field(default=StopPolicy.DECIDED, converter=_stop)
    walks: int = attrs.field(default=1000, validator=_positive("walks"))
    walk_depth: int = attrs.field(default=100, validator=_positive("walk_depth"))
    seed: int = 0
    progress: Callable[[Progress], None] | None = None
    progress_interval: float = attrs.field(default=1.0,
                                           validator=_positive("progress_interval", True))
    clock: Clock = attrs.field(factory=_Monotonic)
    chunk: int = attrs.field(default=8192, validator=_positive("chunk"))
    vectorised: bool = True  # use VectorModel.successors_array when the model has it
    #: partial-order reduction (Model.persistent): None = wherever it preserves every
    #: verdict (no liveness property, no max_depth), True = insist (ModelError with a
    #: liveness property), False = off
    por: bool | None = attrs.field(default=None, validator=_optional_bool("por"))

    def __attrs_post_init__(self) -> None:
        if isinstance(self.workers, float):
            raise ModelError("must be an integer", field="workers")


def all_cores() -> int:
    """What ``workers`` should be to use every core."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (
        os.cpu_count() or 1)


@attrs.frozen
class Checker(Generic[S]):
    """Fluent builder: ``Checker(model).bfs().workers(2).symmetry().timeout(60).run()``."""

    model: Model[Any]
    options: Options = Options()

    def _with(self, **changes: Any) -> Checker[S]:
        return Checker(self.model, attrs.evolve(self.options, **changes))

    def bfs(self) -> Checker[S]:
        return self._with(strategy=Strategy.BFS)

    def dfs(self) -> Checker[S]:
        return self._with(strategy=Strategy.DFS)

    def simulate(self, walks: int = 1000, depth: int = 100, seed: int = 0) -> Checker[S]:
        """Random walks: ``walks`` seeded walks of at most ``depth`` states each."""
        return self._with(strategy=Strategy.SIMULATE, walks=walks, walk_depth=depth, seed=seed)

    def workers(self, k: int) -> Checker[S]:
        return self._with(workers=k)

    def symmetry(self, on: bool = True) -> Checker[S]:
        return self._with(symmetry=on)

    def por(self, on: bool | None = True) -> Checker[S]:
        """Partial-order reduction: ``True`` insists, ``False`` turns it off, ``None``
        (the default) uses it wherever it preserves every verdict."""
        return self._with(por=on)

    def max_depth(self, depth: int | None) -> Checker[S]:
        return self._with(max_depth=depth)

    def max_states(self, n: int | None) -> Checker[S]:
        return self._with(max_states=n)

    def timeout(self, seconds: float | None) -> Checker[S]:
        return self._with(timeout=seconds)

    def deadlock(self, on: bool = True) -> Checker[S]:
        return self._with(deadlock=on)

    def stop(self, policy: StopPolicy | str) -> Checker[S]:
        return self._with(stop=policy)

    def progress(self, callback: Callable[[Progress], None] | None,
                 interval: float = 1.0) -> Checker[S]:
        return self._with(progress=callback, progress_interval=interval)

    def run(self) -> CheckResult:
        return run(self.model, self.options)


def check(model: Model[Any], **options: Any) -> CheckResult:
    """Keyword form: ``check(model, strategy="bfs", workers=2, timeout=60)``."""
    try:
        opts = Options(**options)
    except TypeError as e:
        raise ModelError(str(e), field="options") from None
    return run(model, opts)


def run(model: Model[Any], o: Options) -> CheckResult:
    por = o.por if o.strategy is not Strategy.SIMULATE else False
    spec = Spec.build(model, symmetry=o.symmetry, deadlock=o.deadlock,
                      vectorised=o.vectorised and o.strategy is Strategy.BFS, por=por,
                      bounded=o.max_depth is not None)
    result = _search(spec, o)
    if spec.por and o.strategy is Strategy.BFS:
        result = shortest_traces(spec, o, result)
    if spec.notes:
        result = attrs.evolve(result, warnings=result.warnings + spec.notes)
    return result


def _search(spec: Spec, o: Options) -> CheckResult:
    if o.strategy is Strategy.BFS:
        from kstate.verify.checker.bfs import Bfs, Limits

        limits = Limits(max_depth=o.max_depth, max_states=o.max_states, timeout=o.timeout,
                        stop=o.stop, progress=o.progress, progress_interval=o.progress_interval,
                        now=o.clock.now, chunk=o.chunk * (8 if spec.vector else 1))
        return Bfs(spec, o.workers, limits).run()
    if o.strategy is Strategy.DFS:
        from kstate.verify.checker.dfs import Dfs

        return Dfs(spec, o).run()
    from kstate.verify.checker.simulate import Simulation

    return Simulation(spec, o).run()


def shortest_traces(spec: Spec, o: Options, reduced: CheckResult) -> CheckResult:
    """BFS over the reduced graph finds the shortest trace *of that graph*, which may be
    longer than the shortest in the full graph. The verdicts stand (the reduction
    preserves them); each trace is replaced by the first one a BFS *without* reduction
    finds, bounded to the longest reduced trace's depth and stopped once every such
    property has its trace — the same trace a run without reduction reports. A run
    stopped at its first violation takes the full re-search's verdicts too (it stops at
    the level a full run would)."""
    found = {p.name: p for p in reduced.properties if p.trace}
    if not found or not reduced.reduced_states:
        return reduced  # nothing was left out: the explored graph was the full one
    depth = max(len(p.trace) for p in found.values())
    if reduced.stop_reason is StopReason.VIOLATION:
        # stopped at the first violation: which properties a full run reports depends on
        # the level it stops at, so the full re-search (which stops there) decides them
        again = _search(attrs.evolve(spec, por=False), attrs.evolve(
            o, max_depth=depth, max_states=None, progress=None))
        if again.stop_reason is StopReason.VIOLATION:
            return attrs.evolve(reduced, properties=again.properties,
                                elapsed=reduced.elapsed + again.elapsed)
    wanted = tuple(c for c in spec.safety if spec.props[c.index].name in found)
    full = attrs.evolve(spec, por=False, safety=wanted,
                        deadlock=spec.deadlock and DEADLOCK in found)
    again = _search(full, attrs.evolve(o, max_depth=depth, max_states=None,
                                       stop=StopPolicy.DECIDED, progress=None))
    props, warnings = [], list(reduced.warnings)
    for p in reduced.properties:
        if p.name in found:
            short = again.property(p.name)
            if not short.trace and again.stop_reason is StopReason.TIMEOUT:
                warnings.append(f"{p.name}: the search for a shorter trace without "
                                "reduction timed out; the trace shown may not be shortest")
                props.append(p)
                continue
            if not short.trace:
                raise ModelError(
                    f"{p.name!r}: the search without reduction found no trace within the "
                    f"{depth} states of the reduced one, so the model's persistent() is "
                    "not a persistent set", model=spec.label, field="persistent")
            p = attrs.evolve(p, trace=short.trace)
        props.append(p)
    return attrs.evolve(reduced, properties=tuple(props), warnings=tuple(warnings),
                        elapsed=reduced.elapsed + again.elapsed)
