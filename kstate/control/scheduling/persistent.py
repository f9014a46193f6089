"""Persistent containers: immutable values whose updates share almost all their memory.

Where it sits: under the scheduler's two big pieces of state, the cluster snapshot
(``snapshot.py``: one entry per node, 5,000 at the scheduler_perf anchor) and the
scheduling queue (``queue.py``: one entry per pending pod, 10,000 in the benchmark).

Why it exists: reconcilers take and return immutable values, but Python's immutable
containers copy everything on update — replacing one node in a 5,000-tuple or one pod in
a 10,000-entry ``FrozenDict`` costs 30-180 µs on the benchmark machine, more than the
whole per-pod scheduling budget allows (1/680 s at the anchor, for everything). These
containers keep the value semantics and make an update copy one small chunk:

* :class:`PVector` — a sequence in chunks of 64: ``set`` copies one chunk and the chunk
  index (~80 entries at 5,000 nodes);
* :class:`PMap` — a ``str``-keyed mapping in 64 shards chosen by CRC-32 of the key (stable
  across processes, so iteration order is reproducible): ``set`` copies one shard;
* a leftist heap (``heap_push`` / ``heap_pop``) built from nested tuples: O(log n) push and
  pop, every version still valid.

>>> v = PVector(range(100)).set(70, -1)
>>> v[70], v[69], len(v)
(-1, 69, 100)
>>> m = PMap().set("a", 1).set("b", 2).remove("a")
>>> dict(m)
{'b': 2}
>>> h = heap_push(heap_push(None, (2, "b")), (1, "a"))
>>> heap_pop(h)[0]
(1, 'a')
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeVar, overload

T = TypeVar("T")
V = TypeVar("V")

_CHUNK = 64
_SHARDS = 64


class PVector(Sequence[T]):
    """An immutable sequence with cheap single-element replacement."""

    __slots__ = ("_chunks", "_len")

    _chunks: tuple[tuple[T, ...], ...]
    _len: int

    def __init__(self, items: Iterable[T] = ()) -> None:
        flat = list(items)
        chunks = tuple(tuple(flat[i:i + _CHUNK]) for i in range(0, len(flat), _CHUNK))
        object.__setattr__(self, "_chunks", chunks)
        object.__setattr__(self, "_len", len(flat))

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("PVector is immutable")

    def __len__(self) -> int:
        return self._len

    @overload
    def __getitem__(self, index: int) -> T: ...
    @overload
    def __getitem__(self, index: slice) -> tuple[T, ...]: ...

    def __getitem__(self, index: int | slice) -> T | tuple[T, ...]:
        if isinstance(index, slice):
            return tuple(self)[index]
        if index < 0:
            index += self._len
        if not 0 <= index < self._len:
            raise IndexError(index)
        return self._chunks[index >> 6][index & (_CHUNK - 1)]

    def __iter__(self) -> Iterator[T]:
        for chunk in self._chunks:
            yield from chunk

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PVector):
            return NotImplemented
        return self._chunks == other._chunks

    def __hash__(self) -> int:
        return hash(self._chunks)

    def __repr__(self) -> str:
        return f"PVector({list(self)!r})"

    def set(self, index: int, value: T) -> PVector[T]:
        """A copy with ``self[index] == value``."""
        if not 0 <= index < self._len:
            raise IndexError(index)
        c, i = index >> 6, index & (_CHUNK - 1)
        chunk = self._chunks[c]
        chunk = (*chunk[:i], value, *chunk[i + 1:])
        new = PVector.__new__(PVector)
        object.__setattr__(new, "_chunks", (*self._chunks[:c], chunk, *self._chunks[c + 1:]))
        object.__setattr__(new, "_len", self._len)
        return new


def _shard(key: str) -> int:
    return zlib.crc32(key.encode()) & (_SHARDS - 1)


_EMPTY_SHARDS: tuple[dict[str, Any], ...] = tuple({} for _ in range(_SHARDS))


class PMap(Mapping[str, V]):
    """An immutable ``str``-keyed mapping with cheap ``set`` / ``remove``.

    Shards are plain dicts that are never mutated after construction. Iteration goes
    shard by shard, so its order depends only on the keys and on insertion order.
    """

    __slots__ = ("_len", "_shards")

    _shards: tuple[dict[str, V], ...]
    _len: int

    def __init__(self, items: Mapping[str, V] | Iterable[tuple[str, V]] = ()) -> None:
        shards: list[dict[str, V]] = [{} for _ in range(_SHARDS)]
        pairs = items.items() if isinstance(items, Mapping) else items
        for k, v in pairs:
            shards[_shard(k)][k] = v
        object.__setattr__(self, "_shards", tuple(shards))
        object.__setattr__(self, "_len", sum(len(s) for s in shards))

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("PMap is immutable")

    def __getitem__(self, key: str) -> V:
        return self._shards[_shard(key)][key]

    def get(self, key: str, default: Any = None) -> Any:
        return self._shards[_shard(key)].get(key, default)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key in self._shards[_shard(key)]

    def __iter__(self) -> Iterator[str]:
        for shard in self._shards:
            yield from shard

    def __len__(self) -> int:
        return self._len

    def __repr__(self) -> str:
        return f"PMap({dict(self)!r})"

    def _with_shard(self, index: int, shard: dict[str, V], size: int) -> PMap[V]:
        new: PMap[V] = PMap.__new__(PMap)
        object.__setattr__(new, "_shards",
                           (*self._shards[:index], shard, *self._shards[index + 1:]))
        object.__setattr__(new, "_len", size)
        return new

    def set(self, key: str, value: V) -> PMap[V]:
        """A copy with ``key`` mapped to ``value``."""
        index = _shard(key)
        old = self._shards[index]
        shard = dict(old)
        shard[key] = value
        return self._with_shard(index, shard, self._len + (key not in old))

    def remove(self, key: str) -> PMap[V]:
        """A copy without ``key`` (the same map when it is absent)."""
        index = _shard(key)
        old = self._shards[index]
        if key not in old:
            return self
        shard = dict(old)
        del shard[key]
        return self._with_shard(index, shard, self._len - 1)


# --------------------------------------------------------------------------- heap

#: A leftist heap: ``None`` (empty) or ``(rank, item, left, right)``; the smallest item
#: is at the root and ``rank`` (the length of the right spine) keeps merges O(log n).
Heap = tuple[int, Any, Any, Any] | None


def _node(item: Any, a: Heap, b: Heap) -> Heap:
    ra = a[0] if a is not None else 0
    rb = b[0] if b is not None else 0
    return (rb + 1, item, a, b) if ra >= rb else (ra + 1, item, b, a)


def heap_merge(a: Heap, b: Heap) -> Heap:
    """One heap holding the items of ``a`` and ``b``."""
    if a is None:
        return b
    if b is None:
        return a
    if b[1] < a[1]:
        a, b = b, a
    return _node(a[1], a[2], heap_merge(a[3], b))


def heap_push(heap: Heap, item: Any) -> Heap:
    """``heap`` with ``item`` added (items must be mutually comparable)."""
    return heap_merge(heap, (1, item, None, None))


def heap_pop(heap: Heap) -> tuple[Any, Heap]:
    """The smallest item and the heap without it; ``IndexError`` when empty."""
    if heap is None:
        raise IndexError("pop from an empty heap")
    return heap[1], heap_merge(heap[2], heap[3])


def heap_peek(heap: Heap) -> Any:
    """The smallest item, ``None`` when empty."""
    return heap[1] if heap is not None else None


__all__ = ["Heap", "PMap", "PVector", "heap_merge", "heap_peek", "heap_pop", "heap_push"]
