"""The stateful machines under pytest: random operations and faults against the live
engine, invariants after every step and after settling (see kstate.verify.stateful).

Budgets come from ``KSTATE_HYPOTHESIS_PROFILE`` (``dev`` / ``ci`` / ``long``; see
``kstate.verify.stateful.machine.BUDGETS``); ``ci`` is derandomised, so every CI run
explores the same programs. The Docker machine runs real containers: it skips outside
CI without a Docker engine and fails under ``CI=true``.
"""

from __future__ import annotations

import pytest
from hypothesis.stateful import run_state_machine_as_test

from kstate.verify.stateful.machine import (
    ClusterMachine,
    DockerClusterMachine,
    docker_problem,
    quiet_logs,
    stateful_settings,
)
from tests.conftest import require

quiet_logs()

#: Hypothesis runs this as a unittest TestCase: one stateful test, ``max_examples``
#: programs of up to ``stateful_step_count`` rules each.
TestClusterOnFakeRuntimes = ClusterMachine.TestCase


@pytest.mark.docker
def test_the_same_machine_on_docker() -> None:
    problem = docker_problem()
    require(problem is None, f"the Docker machine ({problem})")
    run_state_machine_as_test(DockerClusterMachine, settings=stateful_settings("docker"))
