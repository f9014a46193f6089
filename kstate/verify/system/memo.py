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


class _Refused:
    """A remembered refusal (results are stored bare: a hit is one dict lookup)."""

    __slots__ = ("error",)

    def __init__(self, error: KstateError) -> None:
        self.error = error


class Memo:
    """Bounded: cleared when full (each worker process keeps its own). ``hits`` and
    ``misses`` are for the benchmark's hit-rate figures (a hit is counted as calls less
    misses, so that the hit path does no bookkeeping)."""

    def __init__(self, limit: int = 200_000) -> None:
        self.limit = limit
        self.calls = 0
        self.misses = 0
        self._d: dict[Any, Any] = {}

    @property
    def hits(self) -> int:
        return self.calls - self.misses

    def __call__(self, fn: Callable[..., Any], *args: Any) -> Any:
        self.calls += 1
        k = (fn, *args)
        found = self._d.get(k, _MISSING)
        if found is _MISSING:
            self.misses += 1
            try:
                found = fn(*args)
            except KstateError as err:
                found = _Refused(err)
            if len(self._d) >= self.limit:
                self._d.clear()
            self._d[k] = found
        if type(found) is _Refused:
            raise found.error.with_traceback(None)
        return found

    def hit_rate(self) -> float:
        return self.hits / self.calls if self.calls else 0.0


_MISSING = object()


__all__ = ["Memo"]
