"""Immutable, hashable JSON values: ``FrozenDict`` and deep freeze / thaw.

Where it sits: the bottom of ``kstate.api``. Every object the control plane passes around
(pods, services, ...) is an immutable value so that reconcilers stay pure and the model
checker can put objects in hashed states. Maps inside those objects (labels, selectors,
resource lists, unmodelled fields) therefore need an immutable, hashable mapping — Python
has none, so this module provides one, plus the conversion between plain JSON
(``dict``/``list``) and its frozen form (``FrozenDict``/``tuple``).

>>> labels = FrozenDict(app="web")
>>> labels["app"], hash(labels) == hash(FrozenDict({"app": "web"}))
('web', True)
>>> labels.set("tier", "front")
FrozenDict({'app': 'web', 'tier': 'front'})
>>> thaw(freeze({"a": [1, {"b": None}]}))
{'a': [1, {'b': None}]}
"""

from __future__ import annotations

import math
from collections.abc import ItemsView, Iterable, Iterator, KeysView, Mapping, ValuesView
from typing import Any, TypeVar, overload

K = TypeVar("K")
V = TypeVar("V")

# Deeper than any real Kubernetes object; guards the recursive freeze/thaw (and anything
# that walks frozen values later) against hostile input such as ``[[[[...]]]]``.
MAX_DEPTH = 100
# Kubernetes numbers are int64 (or float64); anything wider cannot be a real value.
_INT_LIMIT = 2**64


class FrozenDict(Mapping[K, V]):
    """An immutable ``dict`` with a cached hash; insertion order is kept (for output).

    Equality ignores order and compares equal to any ``Mapping`` with the same items,
    exactly like ``dict``. "Updates" return new instances (``set``, ``without``,
    ``merge``, ``|``).
    """

    __slots__ = ("_d", "_h")

    _d: dict[K, V]
    _h: int | None

    @overload
    def __init__(self) -> None: ...
    @overload
    def __init__(self, items: Mapping[K, V] | Iterable[tuple[K, V]], /) -> None: ...
    @overload
    def __init__(self: FrozenDict[str, V], **kwargs: V) -> None: ...

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        _set_d(self, dict(*args, **kwargs))
        _set_h(self, None)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("FrozenDict is immutable")

    def __getitem__(self, key: K) -> V:
        return self._d[key]

    def __contains__(self, key: object) -> bool:
        return key in self._d

    def __iter__(self) -> Iterator[K]:
        return iter(self._d)

    def __len__(self) -> int:
        return len(self._d)

    def get(self, key: K, default: Any = None) -> Any:
        return self._d.get(key, default)

    # The dict's own views (read-only): Mapping's generic ones go through __getitem__
    # per key, and label selectors walk ``items()`` on every pod of every RC sync.
    def keys(self) -> KeysView[K]:
        return self._d.keys()

    def values(self) -> ValuesView[V]:
        return self._d.values()

    def items(self) -> ItemsView[K, V]:
        return self._d.items()

    def __hash__(self) -> int:
        h = self._h
        if h is None:
            h = hash(frozenset(self._d.items()))
            _set_h(self, h)
        return h

    def __eq__(self, other: object) -> bool:
        if other is self:
            return True
        if isinstance(other, FrozenDict):
            if self._h is not None and other._h is not None and self._h != other._h:
                return False
            return self._d == other._d
        if isinstance(other, Mapping):
            return self._d == dict(other)
        return NotImplemented

    def __ne__(self, other: object) -> bool:
        eq = self.__eq__(other)
        return eq if eq is NotImplemented else not eq

    def __repr__(self) -> str:
        return f"FrozenDict({self._d!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (FrozenDict, (self._d,))

    def __or__(self, other: Mapping[K, V]) -> FrozenDict[K, V]:
        return self.merge(other)

    def set(self, key: K, value: V) -> FrozenDict[K, V]:
        """A copy with ``key`` set to ``value``."""
        d = dict(self._d)
        d[key] = value
        return _own(d)

    def without(self, *keys: K) -> FrozenDict[K, V]:
        """A copy without ``keys`` (missing keys are ignored)."""
        if not any(k in self._d for k in keys):
            return self
        return _own({k: v for k, v in self._d.items() if k not in keys})

    def merge(self, other: Mapping[K, V]) -> FrozenDict[K, V]:
        """A copy updated with ``other`` (its values win)."""
        if not other:
            return self
        d = dict(self._d)
        d.update(other)
        return _own(d)

    def to_dict(self) -> dict[K, V]:
        """A plain (shallow) ``dict`` copy."""
        return dict(self._d)


# The slots' own setters: FrozenDict refuses attribute assignment, and these are about
# twice as fast as ``object.__setattr__`` (the model checker builds FrozenDicts by the
# hundred thousand: every store write, cache delivery and budget change is one).
_set_d = FrozenDict.__dict__["_d"].__set__
_set_h = FrozenDict.__dict__["_h"].__set__


def _own(d: dict[Any, Any]) -> FrozenDict[Any, Any]:
    """A FrozenDict over ``d`` itself, not a copy: for dicts built here and never
    shared (the copy ``FrozenDict(d)`` would make is the cost of most updates)."""
    out: FrozenDict[Any, Any] = object.__new__(FrozenDict)
    _set_d(out, d)
    _set_h(out, None)
    return out


EMPTY: FrozenDict[Any, Any] = FrozenDict()


class FreezeError(ValueError):
    """A value that is not JSON (bytes, a date, NaN, a non-string key, too deep)."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.problem = message
        super().__init__(f"{path}: {message}" if path else message)


class _Fail(Exception):
    # Raised deep inside _freeze; each level adds its key while unwinding, so the happy
    # path builds no path strings at all.
    def __init__(self, message: str) -> None:
        self.message = message
        self.segments: list[str | int] = []


def freeze(value: Any, path: str = "") -> Any:
    """Deep-freeze plain JSON: ``dict`` -> ``FrozenDict``, ``list`` -> ``tuple``.

    Raises :class:`FreezeError` (with the JSON path, prefixed by ``path``) for anything
    JSON cannot carry, so a YAML ``!!binary`` or ``.nan`` is reported instead of stored.
    """
    try:
        return _freeze(value, 0)
    except _Fail as e:
        full = path
        for seg in reversed(e.segments):
            full = f"{full}[{seg}]" if isinstance(seg, int) else (
                f"{full}.{seg}" if full else seg)
        raise FreezeError(full, e.message) from None


def _freeze(value: Any, depth: int) -> Any:
    t = type(value)
    if t is str or t is bool or value is None:
        return value
    if t is int:
        if -_INT_LIMIT < value < _INT_LIMIT:
            return value
        raise _Fail("number is too large for JSON (over 64 bits)")
    if depth >= MAX_DEPTH:
        raise _Fail(f"nested more than {MAX_DEPTH} levels deep")
    if t is dict or t is FrozenDict or isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if type(k) is not str:
                raise _Fail(f"key {k!r} is not a string (quote it in YAML, e.g. \"{k}\")")
            try:
                out[k] = _freeze(v, depth + 1)
            except _Fail as e:
                e.segments.append(k)
                raise
        return _own(out)
    if t is list or t is tuple:
        items = []
        for i, v in enumerate(value):
            try:
                items.append(_freeze(v, depth + 1))
            except _Fail as e:
                e.segments.append(i)
                raise
        return tuple(items)
    if t is float:
        if not math.isfinite(value):
            raise _Fail(f"{value} is not a JSON number")
        return value
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return _freeze(int(value), depth)
    raise _Fail(f"a {type(value).__name__} is not a JSON value")


def thaw(value: Any) -> Any:
    """Inverse of :func:`freeze`: plain ``dict``/``list`` JSON (order preserved)."""
    if isinstance(value, FrozenDict):
        return {k: thaw(v) for k, v in value._d.items()}
    if isinstance(value, tuple):
        return [thaw(v) for v in value]
    return value
