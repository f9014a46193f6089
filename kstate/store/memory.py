"""In-memory backend (``memory://``): the store contract with no durability.

Where it sits: behind the API server in unit tests and throwaway demos, in place of the
SQLite or etcd backend.

Why it exists: fast, dependency-free tests of everything above the store. It keeps the
same MVCC log as the durable backends (every write one revision, history kept for a
window, watches replayed from it), so a test that passes here exercises the same
contract the contract suite proves for SQLite and etcd. Everything runs on the event
loop: a write is applied and published before its coroutine returns.
"""

from __future__ import annotations

import collections
import itertools
from collections.abc import Sequence

from kstate.errors import Compacted, Conflict, KeyExists, NotFound
from kstate.store.base import (
    INITIAL_REVISION,
    Backend,
    Event,
    Guard,
    KeyValue,
    check_compact,
    check_guard,
    check_revision,
    compaction_due,
    prefix_end,
    tombstone,
)
from kstate.store.watch import DEFAULT_WATCH_BUFFER, LocalHub, Watch

DEFAULT_HISTORY = 10_000


class MemoryBackend(Backend):
    """The whole store in two structures: the live keys, and the log of recent events.

    ``history`` is how many revisions of log to keep (``None``: keep everything).
    """

    def __init__(
        self, *, history: int | None = DEFAULT_HISTORY, watch_buffer: int = DEFAULT_WATCH_BUFFER
    ) -> None:
        self.url = "memory://"
        self._current: dict[str, KeyValue] = {}
        self._log: collections.deque[Event] = collections.deque()  # revisions contiguous
        self._rev = INITIAL_REVISION
        self._compacted = 0
        self._window = history
        self._hub = LocalHub(self, INITIAL_REVISION, watch_buffer)

    # -- reads

    async def _get(self, key: str) -> KeyValue:
        kv = self._current.get(key)
        if kv is None:
            raise NotFound(f"key {key!r} not found", key=key)
        return kv

    async def _list(
        self, prefix: str, *, after: str | None, revision: int | None, limit: int | None
    ) -> tuple[Sequence[KeyValue], int]:
        at = self._rev if revision is None else revision
        check_revision(at, compacted=self._compacted, current=self._rev, what="list")
        state = self._state_at(at)
        low = max(prefix, after + "\0") if after is not None else prefix
        high = prefix_end(prefix)
        keys = sorted(k for k in state if low <= k < high)
        if limit is not None:
            keys = keys[:limit]
        return [state[k] for k in keys], at

    def _state_at(self, revision: int) -> dict[str, KeyValue]:
        # Undo the log back to ``revision``: cheaper than a full snapshot per revision.
        if revision == self._rev:
            return self._current
        state = dict(self._current)
        for event in reversed(self._log):
            if event.revision <= revision:
                break
            if event.prev_kv is None:
                state.pop(event.kv.key, None)
            else:
                state[event.kv.key] = event.prev_kv
        return state

    async def _revision(self) -> int:
        return self._rev

    # -- writes

    async def _create(self, key: str, value: bytes, guard: Guard | None) -> KeyValue:
        # No await before the commit: the guard check and the write are one step.
        if guard is not None:
            found = self._current.get(guard.key)
            check_guard(key, guard, None if found is None else found.mod_revision)
        if key in self._current:
            raise KeyExists(f"key {key!r} already exists", key=key)
        kv = KeyValue(key, value, self._rev + 1, self._rev + 1, 1)
        self._commit(Event("PUT", kv, None))
        return kv

    async def _update(self, key: str, value: bytes, expected: int | None) -> KeyValue:
        prev = self._check_expected(key, expected, "update")
        kv = KeyValue(key, value, prev.create_revision, self._rev + 1, prev.version + 1)
        self._commit(Event("PUT", kv, prev))
        return kv

    async def _delete(self, key: str, expected: int | None) -> KeyValue:
        prev = self._check_expected(key, expected, "delete")
        self._commit(Event("DELETE", tombstone(key, self._rev + 1), prev))
        return prev

    def _check_expected(self, key: str, expected: int | None, verb: str) -> KeyValue:
        prev = self._current.get(key)
        if prev is None:
            raise NotFound(f"cannot {verb} {key!r}: not found", key=key)
        if expected is not None and prev.mod_revision != expected:
            raise Conflict(
                f"cannot {verb} {key!r}: expected revision {expected}, found {prev.mod_revision}",
                key=key,
            )
        return prev

    def _commit(self, event: Event) -> None:
        self._rev = event.revision
        if event.type == "PUT":
            self._current[event.kv.key] = event.kv
        else:
            del self._current[event.kv.key]
        self._log.append(event)
        self._hub.publish((event,))
        target = compaction_due(self._rev, self._compacted, self._window)
        if target is not None:
            self._compact_to(target)

    # -- history

    async def _compact(self, revision: int) -> None:
        check_compact(revision, compacted=self._compacted, current=self._rev)
        self._compact_to(revision)

    def _compact_to(self, revision: int) -> None:
        while self._log and self._log[0].revision < revision:
            self._log.popleft()
        self._compacted = revision

    def compacted_revision(self) -> int:
        return self._compacted

    def committed_revision(self) -> int:
        return self._rev

    async def history(self, prefix: str, start: int, until: int, limit: int) -> Sequence[Event]:
        if start < self._compacted:
            raise Compacted(f"history from {start} was compacted (at {self._compacted})")
        if not self._log:
            return []
        # Every revision has exactly one event, so the log index is an offset.
        first = max(0, start - self._log[0].revision)
        out: list[Event] = []
        for event in itertools.islice(self._log, first, None):
            if event.revision > until or len(out) >= limit:
                break
            if event.kv.key.startswith(prefix):
                out.append(event)
        return out

    # -- watch and lifecycle

    def _watch(self, prefix: str, start_revision: int | None) -> Watch:
        return self._hub.watch(prefix, start_revision)

    async def _close(self) -> None:
        self._hub.close()
