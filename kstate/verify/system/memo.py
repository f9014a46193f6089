"""Results of pure functions by their (hashable) arguments, for the system model.

Where it sits: ``kstate.verify.system`` — used by ``SystemModel`` (model.py) for the
reconcilers, the pod worker and the scheduler, and by ``AbstractApi`` (world.py) for the
api server's write rules (``kstate.api.writes``: admission, the update merge, the delete
decision, bind) and for content-addressed resourceVersions. All of them are pure
functions of frozen values, and neighbouring states mostly hand them the same
arguments, so most calls repeat exactly. Nothing is decided here: a miss runs the
engine's own function.

A write rule may refuse (an ``kstate.errors.KstateError``); the refusal is remembered
like a result and raised again (without the old traceback) on a hit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kstate.errors import KstateError


class Memo:
    """Bounded: cleared when full (each worker process keeps its own). ``hits`` and
    ``misses`` are for the benchmark's hit-rate figures."""

    def __init__(self, limit: int = 200_000) -> None:
        self.limit = limit
        self.hits = 0
        self.misses = 0
        self._d: dict[Any, tuple[bool, Any]] = {}

    def __call__(self, fn: Callable[..., Any], *args: Any) -> Any:
        k = (fn, *args)
        found = self._d.get(k)
        if found is None:
            self.misses += 1
            try:
                found = (True, fn(*args))
            except KstateError as err:
                found = (False, err)
            if len(self._d) >= self.limit:
                self._d.clear()
            self._d[k] = found
        else:
            self.hits += 1
        ok, value = found
        if ok:
            return value
        raise value.with_traceback(None)

    def hit_rate(self) -> float:
        calls = self.hits + self.misses
        return self.hits / calls if calls else 0.0


__all__ = ["Memo"]
