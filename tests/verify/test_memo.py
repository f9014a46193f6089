"""The system model's memo (kstate/verify/system/memo.py): a hit returns what the
function returned, a refusal is raised again, and the table stays bounded."""

from __future__ import annotations

import pytest

from kstate.errors import KeyExists
from kstate.verify.system.memo import Memo


def test_a_hit_returns_the_first_result_without_calling_again() -> None:
    calls: list[int] = []

    def double(n: int) -> int:
        calls.append(n)
        return 2 * n

    memo = Memo()
    assert memo(double, 3) == memo(double, 3) == 6
    assert calls == [3]
    assert (memo.hits, memo.misses) == (1, 1)


def test_a_refusal_is_remembered_and_raised_again() -> None:
    calls: list[str] = []

    def create(name: str) -> None:
        calls.append(name)
        raise KeyExists(f'pods "{name}" already exists', key=name)

    memo = Memo()
    for _ in range(2):
        with pytest.raises(KeyExists, match="already exists"):
            memo(create, "web-0")
    assert calls == ["web-0"]


def test_the_table_is_cleared_when_full() -> None:
    memo = Memo(limit=2)
    for n in range(3):
        memo(abs, n)
    memo(abs, 0)  # forgotten when the third entry arrived
    assert (memo.hits, memo.misses) == (0, 4)
