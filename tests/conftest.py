"""Shared test plumbing: the CI rule for real components, and Hypothesis profiles.

``async def`` tests run in a fresh event loop each (the hook below), so no asyncio plugin
is needed. Tests that need a real component (Docker engine, etcd, kubectl, graphviz, spin) call
``require(...)``. Outside CI a missing component skips the test; under ``CI=true`` it
fails it — CI installs and starts everything, so absence there is a broken pipeline,
not a reason to go green.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import shutil

import pytest
from hypothesis import HealthCheck, settings

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}

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
