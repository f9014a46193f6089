"""Controller expectations: what a controller has asked for but not yet seen in its cache.

Where it sits: controller-local state of the replication controller (and any controller
that creates or deletes in bulk). The reconciler reads it through its view and returns
new expectations with its commands; watch handlers lower it as the cache catches up.
Both the engine and the model checker hold it as plain values of this module.

Why it exists: a controller's cache lags the store. Right after creating 3 pods, the
next sync may still see none of them and create 3 more. Kubernetes' answer is to
remember "I expect 3 creations" and not act on the key until the cache has shown them —
or until a TTL (5 minutes) passes, in case an event was lost. Expectations never cause an
action; they only hold one back, which is why they do not break the single source of
truth: the store still decides everything a controller does.

Expectations are lost when the controller restarts; that is safe because a fresh
controller lists (its cache is current at start) — the model checker checks exactly
this with its "controller restart" fault.

>>> e = Expectation.expect(adds=2, now=0.0)
>>> e.satisfied(now=1.0, ttl=300)
False
>>> e.observe("create").observe("create").satisfied(now=1.0, ttl=300)
True
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Literal

import attrs

DEFAULT_TTL = 300.0  # Kubernetes' ExpectationsTimeout: 5 minutes


@attrs.frozen
class Observation:
    """The cache saw a creation, or the deletion of ``pod`` (``ns/name``), for ``key``."""

    key: str
    what: Literal["create", "delete"]
    pod: str = ""


@attrs.frozen
class Expectation:
    """Pending creations (a count) and deletions (pod keys) of one controller key."""

    adds: int
    deletes: frozenset[str]
    timestamp: float

    @classmethod
    def expect(cls, *, adds: int = 0, deletes: Iterable[str] = (), now: float) -> Expectation:
        return cls(adds, frozenset(deletes), now)

    def fulfilled(self) -> bool:
        return self.adds <= 0 and not self.deletes

    def expired(self, now: float, ttl: float) -> bool:
        return now - self.timestamp > ttl

    def satisfied(self, now: float, ttl: float = DEFAULT_TTL) -> bool:
        """May the controller act? Yes once everything was seen, or after the TTL."""
        return self.fulfilled() or self.expired(now, ttl)

    def observe(self, what: Literal["create", "delete"], pod: str = "") -> Expectation:
        if what == "create":
            return attrs.evolve(self, adds=self.adds - 1)
        return attrs.evolve(self, deletes=self.deletes - {pod})


Expectations = Mapping[str, Expectation]


def satisfied(expectations: Expectations, key: str, now: float, ttl: float = DEFAULT_TTL) -> bool:
    """No record counts as satisfied (a fresh controller, or nothing pending)."""
    record = expectations.get(key)
    return record is None or record.satisfied(now, ttl)


def apply(expectations: dict[str, Expectation], observations: Iterable[Observation]) -> None:
    """Lower the engine's mutable expectations table by what the cache has shown."""
    for seen in observations:
        record = expectations.get(seen.key)
        if record is not None:
            expectations[seen.key] = record.observe(seen.what, seen.pod)


__all__ = ["DEFAULT_TTL", "Expectation", "Expectations", "Observation", "apply", "satisfied"]
