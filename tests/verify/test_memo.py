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


def test_a_lagging_cache_catches_up_to_the_very_store_it_lagged_behind() -> None:
    """Through the memo, the controller manager's cache after its oldest event arrives
    is the FrozenDict the store was after that write (hash cached, compared by
    identity), not an equal copy: what keeps the fingerprint and the lookups keyed on
    the cache cheap (world.py, ``_enqueue``)."""
    from pathlib import Path

    from kstate.node.heartbeat import renew_lease
    from kstate.verify.system import load_scenario
    from kstate.verify.system.world import lease_of

    scenario = load_scenario(Path(__file__).parents[2] / "specs/scenarios/quickstart.yaml")
    model = scenario.model()
    assert model.settings.watch_lag == 1
    start = next(iter(model.initial_states()))
    first, second = sorted(start.kubelets)
    after_one = model.api.put(start, renew_lease(lease_of(start, first), first, 7.0))
    assert after_one.cm.watcher.cache is start.cm.watcher.cache  # the event is in flight
    after_two = model.api.put(after_one, renew_lease(lease_of(start, second), second, 7.0))
    assert after_two.cm.watcher.pending["Lease"][0][1] == lease_of(after_two, second)
    assert after_two.cm.watcher.cache is after_one.store
