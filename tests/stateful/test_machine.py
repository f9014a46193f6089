"""The stateful machines under pytest: random operations and faults against the live
engine, invariants after every step and after settling (see kstate.verify.stateful).

Budgets come from ``KSTATE_HYPOTHESIS_PROFILE`` (``dev`` / ``ci`` / ``long``; see
``kstate.verify.stateful.machine.BUDGETS``); ``ci`` is derandomised, so every CI run
explores the same programs. The Docker machine runs real containers: it skips outside
CI without a Docker engine and fails under ``CI=true``.
"""

from __future__ import annotations

import asyncio
import importlib.util

import pytest
from hypothesis.stateful import run_state_machine_as_test

from kstate.verify.stateful.machine import (
    ClusterMachine,
    DockerClusterMachine,
    quiet_logs,
    stateful_settings,
)
from tests.conftest import require

quiet_logs()

#: Hypothesis runs this as a unittest TestCase: one stateful test, ``max_examples``
#: programs of up to ``stateful_step_count`` rules each.
TestClusterOnFakeRuntimes = ClusterMachine.TestCase


def _docker_ready() -> tuple[bool, str]:
    if importlib.util.find_spec("aiodocker") is None:
        return False, "aiodocker (pip install -e '.[docker]')"
    from kstate.errors import RuntimeAdapterError
    from kstate.runtime import HTTPD_IMAGE, open_runtime

    async def probe() -> bool:
        runtime = open_runtime("docker")
        try:
            await runtime.version()
            return await runtime.image_present(HTTPD_IMAGE)
        finally:
            await runtime.close()
    try:
        present = asyncio.run(probe())
    except RuntimeAdapterError as err:
        return False, f"Docker engine ({err})"
    return present, "image kstate/httpd:1 (kstate image build-base)"


@pytest.mark.docker
def test_the_same_machine_on_docker() -> None:
    ok, what = _docker_ready()
    require(ok, what)
    run_state_machine_as_test(DockerClusterMachine, settings=stateful_settings("docker"))
