"""Crash-loop back-off: Kubernetes' defaults and every knob configurable."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kstate.machines.pod import BackOffPolicy


def test_kubernetes_defaults() -> None:
    p = BackOffPolicy()
    assert [p.delay(n) for n in range(8)] == [0, 10, 20, 40, 80, 160, 300, 300]
    assert p.restarts_after_run(5, ran_for=599) == 5
    assert p.restarts_after_run(5, ran_for=600) == 0


def test_configurable() -> None:
    p = BackOffPolicy(initial=0.1, factor=3, cap=1, reset_after=5,
                      first_restart_immediate=False)
    assert [p.delay(n) for n in range(4)] == pytest.approx([0.1, 0.3, 0.9, 1.0])


def test_negative_restart_count_is_rejected() -> None:
    with pytest.raises(ValueError, match="restarts must be >= 0"):
        BackOffPolicy().delay(-1)


@given(st.integers(0, 200))
def test_delay_is_monotone_and_capped(n: int) -> None:
    p = BackOffPolicy()
    assert p.delay(n) <= p.delay(n + 1) <= p.cap
