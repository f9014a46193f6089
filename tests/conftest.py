"""Shared test plumbing: the CI rule for real components, Hypothesis profiles, and child
processes started together.

``async def`` tests run in a fresh event loop each (the hook below), so no asyncio plugin
is needed. Tests that need a real component (Docker engine, etcd, kubectl, graphviz, spin)
call ``require(...)``. Outside CI a missing component skips the test; under ``CI=true`` it
fails it — CI installs and starts everything, so absence there is a broken pipeline,
not a reason to go green. Independent child processes of one test are started together
(:class:`Started`, :func:`run_together`): pytest runs one test at a time, so one after the
other they would leave the machine's other cores idle.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import shutil
import subprocess
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
#: Expander processes for the model checker's largest searches in tests (tens of thousands
#: of states): BFS gives the same counts, verdicts and counterexamples for any number of
#: workers (test_checker_core.py pins it), and there two workers take about 0.6x the time
#: of one (docs/benchmarks/verify.md); on searches of a few thousand states they do not pay.
SEARCH_WORKERS = 2

settings.register_profile(
    "ci",
    derandomize=True,
    deadline=None,
    max_examples=100,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", deadline=None, max_examples=50)
settings.register_profile("long", deadline=None, max_examples=2000)
settings.load_profile(os.environ.get("KSTATE_HYPOTHESIS_PROFILE", "ci" if IN_CI else "dev"))


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Run ``async def`` tests to completion, each in its own event loop (no plugin)."""
    if not inspect.iscoroutinefunction(pyfuncitem.obj):
        return None
    names = pyfuncitem._fixtureinfo.argnames
    kwargs = {name: pyfuncitem.funcargs[name] for name in names}
    asyncio.run(pyfuncitem.obj(**kwargs))
    return True


def require(ok: bool, what: str) -> None:
    """Skip (dev machine) or fail (CI) when a real component is missing."""
    if ok:
        return
    if IN_CI:
        pytest.fail(f"{what} is required under CI=true but is not available", pytrace=False)
    pytest.skip(f"{what} not available")


def require_binary(name: str) -> str:
    """Path of an executable on PATH, or skip/fail per the CI rule."""
    path = shutil.which(name)
    require(path is not None, f"executable {name!r}")
    assert path is not None
    return path


class Started:
    """A child process started now (output captured, as text) whose result is awaited
    later: start several, then ask each for its :meth:`result`."""

    def __init__(self, args: Sequence[str], **popen: Any) -> None:
        self.args = list(args)
        self.process = subprocess.Popen(self.args, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True, **popen)

    def result(self, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        """Wait for it (killed if it outlives ``timeout``, which then raises)."""
        try:
            stdout, stderr = self.process.communicate(timeout=timeout)
        finally:
            self.stop()
        return subprocess.CompletedProcess(self.args, self.process.returncode, stdout, stderr)

    def stop(self) -> None:
        """Kill it if it still runs (a test that failed early leaves it no use)."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.communicate()


def run_together(commands: Sequence[Sequence[str]], *, check: bool = False,
                 **popen: Any) -> list[subprocess.CompletedProcess[str]]:
    """Run independent ``commands`` at the same time; their results, in order."""
    started = [Started(command, **popen) for command in commands]
    try:
        done = [s.result() for s in started]
    finally:
        for s in started:
            s.stop()
    if check:
        for run in done:
            run.check_returncode()
    return done
