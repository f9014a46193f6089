"""``kstate fuzz``: the stateful machines outside pytest, with progress and a memory.

Where it sits: ``kstate.verify.stateful``; the CLI parses, calls :func:`run_fuzz`,
prints. A run is Hypothesis driving :class:`~kstate.verify.stateful.machine.ClusterMachine`
(or the Docker one) for ``examples`` random programs of up to ``steps`` rules each.

* **A failure** is shrunk by Hypothesis and returned as its minimal program — Python
  that replays it as it reads (``state = ClusterMachine(); state.boot(seed=3); ...``)
  — with the violated invariant.
* **Memory**: failures are saved in Hypothesis' example database, a directory
  (default ``~/.kstate/fuzz-db``, or ``KSTATE_FUZZ_DB``, or ``--database DIR``); the
  next run replays every saved failure first, so a bug stays found until it is fixed.
* **Progress** counts the programs that count (``Tally``): Hypothesis also runs programs
  it discards and, once one fails, many more to shrink it; each is reported as such.
* **Reproduction**: ``--seed S`` fixes Hypothesis' random choices. The engine is
  deterministic for a seed, but some components iterate Python sets of strings, whose
  order depends on the interpreter's hash seed — so :func:`pin_hash_seed` restarts the
  process with ``PYTHONHASHSEED=0`` unless the caller chose one.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import attrs
from hypothesis import HealthCheck, Phase, settings
from hypothesis import seed as hypothesis_seed
from hypothesis.database import DirectoryBasedExampleDatabase
from hypothesis.reporting import with_reporter
from hypothesis.stateful import run_state_machine_as_test

from kstate.errors import UsageError
from kstate.verify.stateful.machine import (
    ClusterMachine,
    DockerClusterMachine,
    budget,
    docker_problem,
    quiet_logs,
)

RUNTIMES = {"fake": ClusterMachine, "docker": DockerClusterMachine}
DEFAULT_EXAMPLES = 50
DEFAULT_STEPS = 40


def default_database() -> Path:
    return Path(os.environ.get("KSTATE_FUZZ_DB") or Path.home() / ".kstate" / "fuzz-db")


@attrs.define
class Tally:
    """How the programs of a run ended, counted as they end.

    Hypothesis runs more programs than ``max_examples``: it discards some (they ran out
    of data to draw from; they do not count towards the budget) and, once one fails,
    runs many more to shrink it. ``valid`` counts the ones that count.
    """

    asked: int
    valid: int = 0  # passed (or failed) programs: what --examples asks for
    discarded: int = 0
    runs: int = 0  # every program started
    steps: int = 0  # rules run, in every program
    failed_at: int = 0  # the valid example that failed first (0: none yet)
    failed_run: int = 0  # ... and which program that was, of all started

    def ended(self, machine: ClusterMachine) -> None:
        self.steps += machine.steps
        if machine.outcome == "discarded":
            self.discarded += 1
            return
        if not self.failed_at:
            self.valid += 1
            if machine.outcome == "failed":
                self.failed_at, self.failed_run = self.valid, self.runs


@attrs.frozen
class Progress:
    """A progress report, at the start of every program."""

    tally: Tally
    elapsed: float

    def line(self) -> str:
        t = self.tally
        if t.failed_at:
            what = (f"shrinking the failure of example {t.failed_at}: run "
                    f"{t.runs - t.failed_run}")
        else:
            what = f"example {t.valid + 1}/{t.asked}"
            if t.discarded:
                what += f" ({t.discarded} discarded)"
        return f"{what}  {t.steps} steps  {self.elapsed:.1f}s"


@attrs.frozen
class FuzzOutcome:
    """What a run found: nothing (``failed`` False) or a minimal failing program."""

    runtime: str
    examples: int  # valid examples run (up to the failing one)
    steps: int  # rules run, in every program (shrinking included)
    elapsed: float
    database: Path
    seed: int | None
    failed: bool = False
    error: str = ""
    program: str = ""
    discarded: int = 0
    runs: int = 0  # programs started: valid, discarded and shrinking runs
    failed_at: int = 0  # the valid example that failed first (1: a saved failure)
    shrink_runs: int = 0  # programs run after it, to shrink it
    step_budget: int = 0  # --steps: rules per program at most
    machine_module: str = "kstate.verify.stateful"
    machine_name: str = "ClusterMachine"

    def text(self) -> str:
        head = f"kstate fuzz ({self.runtime}): "
        counts = f"{self.steps} steps in {self.elapsed:.1f}s"
        if not self.failed:
            discarded = f" ({self.discarded} discarded)" if self.discarded else ""
            return f"{head}{self.examples} examples{discarded}, {counts}: every invariant held"
        where = (f"at example {self.failed_at}, shrunk in {self.shrink_runs} more runs"
                 if self.failed_at else f"after {self.runs} runs")
        lines = [f"{head}FAILED {where}; {counts}", "", self.error, "",
                 "Minimal failing program (runs as it reads, e.g. in `python -i`):", "",
                 f"from {self.machine_module} import {self.machine_name}",
                 self.program, "",
                 f"Saved in {self.database}: the next `kstate fuzz` replays it first."]
        if self.seed is not None:
            lines.append(f"Reproduce this run: kstate fuzz --runtime {self.runtime} "
                         f"--steps {self.step_budget} --seed {self.seed}")
        return "\n".join(lines)


def pin_hash_seed(argv: Sequence[str]) -> None:
    """Restart the ``kstate`` program with ``PYTHONHASHSEED=0`` unless a hash seed is
    set (returns only when nothing needs doing): set iteration order must not differ
    between a run and its reproduction. Called from elsewhere (a test calling
    ``cli.main``), it does nothing."""
    if os.environ.get("PYTHONHASHSEED") is not None or Path(sys.argv[0]).name != "kstate":
        return
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    code = "import sys; from kstate.cli import main; sys.exit(main(sys.argv[1:]))"
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, "-c", code, *argv], env)


@contextlib.contextmanager
def _hooked(machine: type[ClusterMachine], hook: Callable[[ClusterMachine], None],
            seed: int | None) -> Iterator[None]:
    before_hook = machine.on_example
    before_seed = getattr(machine, "_hypothesis_internal_use_seed", None)
    machine.on_example = hook
    if seed is not None:
        hypothesis_seed(seed)(machine)
    try:
        yield
    finally:
        machine.on_example = before_hook
        machine._hypothesis_internal_use_seed = before_seed


def _check_docker() -> None:
    """Fail early, as bad usage, when the Docker run cannot start at all."""
    problem = docker_problem()
    if problem is not None:
        raise UsageError(f"--runtime docker: {problem}")


def run_fuzz(
    runtime: str = "fake",
    examples: int | None = None,
    steps: int | None = None,
    seed: int | None = None,
    database: Path | None = None,
    progress: Callable[[Progress], None] | None = None,
    machine: type[ClusterMachine] | None = None,
    profile: str | None = None,
) -> FuzzOutcome:
    """Run the stateful machine of ``runtime`` (or ``machine``, a subclass of it: the
    same rules over an engine with a seeded bug) for ``examples`` programs of up to
    ``steps`` rules — by default ``profile``'s budget (``BUDGETS``), or 50 x 40 without
    one; see the module docstring."""
    if runtime not in RUNTIMES:
        raise UsageError(f"--runtime {runtime!r}: choose one of {', '.join(RUNTIMES)}")
    if profile is not None:
        chosen = budget(runtime, profile)
        examples = chosen.examples if examples is None else examples
        steps = chosen.steps if steps is None else steps
    examples = DEFAULT_EXAMPLES if examples is None else examples
    steps = DEFAULT_STEPS if steps is None else steps
    if examples < 1 or steps < 1:
        raise UsageError(f"--examples and --steps must be at least 1 (got {examples} "
                         f"examples of {steps} steps)")
    if seed is not None and seed < 0:
        raise UsageError("--seed must not be negative")
    if runtime == "docker":
        _check_docker()
    quiet_logs()
    database = database or default_database()
    database.mkdir(parents=True, exist_ok=True)
    machine = machine or RUNTIMES[runtime]
    started = time.perf_counter()
    tally = Tally(asked=examples)
    current: list[ClusterMachine] = []

    def hook(m: ClusterMachine) -> None:
        if current:
            tally.ended(current[-1])
        current[:] = [m]
        tally.runs += 1
        if progress is not None:
            progress(Progress(attrs.evolve(tally), time.perf_counter() - started))

    run_settings = settings(
        max_examples=examples, stateful_step_count=steps, deadline=None,
        database=DirectoryBasedExampleDatabase(str(database)), derandomize=False,
        suppress_health_check=list(HealthCheck), print_blob=False,
        phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink])
    report: list[str] = []

    def collect(value: object) -> None:
        report.append(str(value))
    failure: BaseException | None = None
    with _hooked(machine, hook, seed), with_reporter(collect):
        try:
            run_state_machine_as_test(machine, settings=run_settings)
        except Exception as exc:  # a violated invariant, or the engine broke
            failure = exc
    if current:
        tally.ended(current[-1])
    outcome = FuzzOutcome(runtime, tally.valid, tally.steps, time.perf_counter() - started,
                          database, seed, discarded=tally.discarded, runs=tally.runs,
                          step_budget=steps, machine_module=_module_of(machine),
                          machine_name=machine.__name__,
                          failed_at=tally.failed_at,
                          shrink_runs=tally.runs - tally.failed_run if tally.failed_at else 0)
    if failure is None:
        return outcome
    return attrs.evolve(outcome, failed=True, error=_error_text(failure),
                        program="\n\n".join(_programs(failure, report)))


def load_machine(spec: str, runtime: str = "fake") -> type[ClusterMachine]:
    """The machine class ``MODULE:CLASS`` names: a subclass of ``runtime``'s machine
    (``--machine``); a ``UsageError`` saying what is wrong otherwise."""
    module_name, _, class_name = spec.partition(":")
    if not module_name or not class_name:
        raise UsageError(f"--machine {spec!r}: want MODULE:CLASS, e.g. "
                         "tests.verify.test_fuzz_seeded_bugs:RcWithoutExpectations")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise UsageError(f"--machine {spec!r}: cannot import {module_name}: {err}") from None
    machine = getattr(module, class_name, None)
    base = RUNTIMES.get(runtime, ClusterMachine)
    if not (isinstance(machine, type) and issubclass(machine, base)):
        raise UsageError(f"--machine {spec!r}: {module_name} has no subclass of "
                         f"{base.__name__} named {class_name}")
    return machine


def _module_of(machine: type[ClusterMachine]) -> str:
    """Where the failing program imports its machine from (the package, for ours)."""
    return "kstate.verify.stateful" if machine in RUNTIMES.values() else machine.__module__


def _programs(failure: BaseException, report: list[str]) -> list[str]:
    """The failing program(s): Hypothesis attaches each to its exception as notes (one
    per distinct failure, in an exception group), or — older versions — reports them."""
    failures = list(failure.exceptions) if isinstance(failure, BaseExceptionGroup) \
        else [failure]
    found = [_program(getattr(f, "__notes__", [])) for f in failures]
    return [p for p in found if p] or [p for p in [_program(report)] if p]


def _program(chunks: list[str]) -> str:
    """Python that replays the failure as it reads: Hypothesis' ``state...`` lines, its
    notes (what a rule picked, how long settling took) as comments, without its banner
    and its explanation of which lines only failing cases ran."""
    out = []
    for line in (line for chunk in chunks for line in str(chunk).splitlines()):
        if line.startswith("Explanation:"):
            break
        if line.startswith(("Falsifying", "Failing test case", "Trying example")) \
                or not line.strip():
            continue
        out.append(line if line.startswith("state") else f"#   {line.strip()}")
    return "\n".join(out) if any(line.startswith("state") for line in out) else ""


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup):
        return "\n".join(_error_text(e) for e in exc.exceptions)
    text = str(exc).strip() or type(exc).__name__
    return f"{type(exc).__name__}: {text}"


__all__ = ["FuzzOutcome", "Progress", "Tally", "default_database", "load_machine",
           "pin_hash_seed", "run_fuzz"]
