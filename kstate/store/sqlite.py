"""Embedded SQLite backend (``sqlite:///abs/path.db``): the default store.

Where it sits: behind the API server on a single machine, in place of etcd — the way
k3s runs Kubernetes on SQLite. Everything the control plane knows lives in this one file.

Why it exists: users start with nothing to install, yet get etcd's guarantees:

* **Durable acknowledgements.** WAL journal with ``synchronous=FULL``: a write is
  acknowledged only after its transaction's WAL frames are fsynced — the same "fsync
  before reply" rule etcd follows. A SIGKILL or power cut loses no acknowledged write
  and never leaves half of one.
* **Group commit.** Concurrent writers queue their operations; the event loop applies
  everything queued, each as its own revision, inside one transaction, and a commit
  thread pays one fsync for the lot while the next batch gathers. Throughput grows with
  the number of writers instead of collapsing into lock contention, and the loop never
  waits on the disk.
* **MVCC log like etcd's.** Table ``kv`` holds one row per revision (puts and delete
  tombstones) with ``prev_revision`` pointing at the version it replaced, so list at a
  past revision and watch replay are plain queries. Compaction deletes superseded rows
  older than the compaction point; a configurable window is compacted automatically.
* **In-process watch fan-out** through :class:`~kstate.store.watch.LocalHub`, with the
  bounded per-watch buffers shared by every backend.
* **One owner.** An exclusive ``flock`` on ``<file>.lock`` (released by the kernel when
  the owner dies, even by SIGKILL) turns a second opener into ``Unavailable``; a file
  that is not a kstate store, or is damaged, is ``StoreCorrupt`` — never a raw
  ``sqlite3`` traceback.

A point read (``get``) is one indexed SELECT run on the loop; lists and watch history,
which can be large, run on a small thread pool with one connection per thread (WAL
readers never block the writer). Each read is one transaction, so a list and the
revision it reports come from the same snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import queue
import sqlite3
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal, TypeVar

import attrs

from kstate.errors import (
    Compacted,
    Conflict,
    KeyExists,
    NotFound,
    StoreCorrupt,
    StoreError,
    Unavailable,
)
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
#: writes per transaction: enough to amortise an fsync many times over, few enough that
#: a batch's statements (run on the event loop) hold it for a few milliseconds at most
MAX_BATCH = 256
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE kv (
    revision        INTEGER PRIMARY KEY,  -- the write's revision; one row per revision
    key             TEXT    NOT NULL,
    create_revision INTEGER NOT NULL,     -- 0 for a delete tombstone
    version         INTEGER NOT NULL,     -- 0 for a delete tombstone
    deleted         INTEGER NOT NULL,     -- 1: this row is a delete tombstone
    prev_revision   INTEGER,              -- the live row this write replaced (prev_kv)
    value           BLOB    NOT NULL
);
CREATE INDEX kv_key_revision ON kv (key, revision);
"""

_ROW = "key, value, create_revision, revision, version"
_LATEST = f"SELECT {_ROW}, deleted FROM kv WHERE key = ? ORDER BY revision DESC LIMIT 1"
# SQLite's bare-column rule: with exactly one max() aggregate, the other columns come from
# the row holding that max — i.e. each key's newest version at or before the revision.
_LIST = """
SELECT key, value, create_revision, max(revision), version, deleted FROM kv
WHERE key >= ? AND key < ? AND revision <= ?
GROUP BY key HAVING deleted = 0 ORDER BY key LIMIT ?
"""
_HISTORY = """
SELECT e.key, e.value, e.create_revision, e.revision, e.version, e.deleted,
       p.value, p.create_revision, p.revision, p.version
FROM kv AS e LEFT JOIN kv AS p ON p.revision = e.prev_revision
WHERE e.revision >= ? AND e.revision <= ? AND e.key >= ? AND e.key < ?
ORDER BY e.revision LIMIT ?
"""
_COMPACT = """
DELETE FROM kv WHERE revision < :at AND (deleted = 1 OR EXISTS (
    SELECT 1 FROM kv AS newer
    WHERE newer.key = kv.key AND newer.revision > kv.revision AND newer.revision <= :at))
"""

T = TypeVar("T")
OpKind = Literal["create", "update", "delete", "compact"]


@attrs.define
class _Op:
    """One queued write, acknowledged on the event loop once its transaction commits."""

    kind: OpKind
    key: str
    value: bytes
    expected: int | None
    future: asyncio.Future[Any]
    guard: Guard | None = None  # a create's guard, checked in the same transaction


@attrs.define
class _Batch:
    """What one group commit hands back to the event loop."""

    events: list[Event] = attrs.Factory(list)
    outcomes: list[tuple[asyncio.Future[Any], Any, StoreError | None]] = attrs.Factory(list)


class SqliteBackend(Backend):
    """The default store: one SQLite file, owned by one process.

    ``history``: revisions of history kept by automatic compaction (``None``: never
    compact automatically). ``watch_buffer``: events a watcher may lag before it gets
    ``Compacted``. ``readers``: read threads. ``verify``: run ``PRAGMA quick_check``
    when opening (reads the whole file once; turn off for very large stores).
    """

    def __init__(
        self,
        path: str,
        *,
        history: int | None = DEFAULT_HISTORY,
        watch_buffer: int = DEFAULT_WATCH_BUFFER,
        readers: int = 2,
        verify: bool = True,
    ) -> None:
        self.path = os.path.abspath(path)
        self.url = f"sqlite://{self.path}"
        self._window = history
        self._lock_fd = _lock(self.path)
        try:
            self._wconn = _connect(self.path)
            self._rev, self._compacted = _open_schema(self._wconn, self.path, verify=verify)
        except BaseException:
            os.close(self._lock_fd)
            raise
        self._committed = self._rev  # newest revision committed or being committed
        self.commits = 0  # transactions committed: with ``writes``, shows group commit at work
        self.writes = 0  # writes applied (each one revision)
        self._hub = LocalHub(self, self._rev, watch_buffer)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._pending: list[_Op] = []  # writes waiting for the next transaction
        self._busy = False  # a transaction is being built or committed
        self._idle = asyncio.Event()
        self._idle.set()
        self._commits: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._committer = threading.Thread(
            target=self._commit_loop, name=f"kstate-sqlite-commit:{self.path}", daemon=True
        )
        self._committer.start()
        # Point reads run on the loop (see ``_get``), on their own connection.
        self._lconn = _connect(self.path)
        self._lconn.execute("PRAGMA query_only = ON")
        self._local = threading.local()
        self._rconns: list[sqlite3.Connection] = []
        self._rconns_lock = threading.Lock()
        self._readers = ThreadPoolExecutor(readers, thread_name_prefix="kstate-sqlite-read")

    # ------------------------------------------------------------------ reads

    async def _get(self, key: str) -> KeyValue:
        # On the loop itself: one indexed SELECT costs microseconds, and the hand-over
        # to a read thread and back costs hundreds (measured: a third of a GET's CPU).
        self._check_open()
        try:
            rows = self._lconn.execute(_LATEST, (key,)).fetchall()
        except sqlite3.Error as exc:
            raise _translate(exc, self.path) from None
        if not rows or rows[0][5]:
            raise NotFound(f"key {key!r} not found", key=key)
        return KeyValue(*rows[0][:5])

    async def _list(
        self, prefix: str, *, after: str | None, revision: int | None, limit: int | None
    ) -> tuple[Sequence[KeyValue], int]:
        low = max(prefix, after + "\0") if after is not None else prefix

        def read(conn: sqlite3.Connection) -> tuple[Sequence[KeyValue], int]:
            current, compacted = _meta(conn)
            at = current if revision is None else revision
            check_revision(at, compacted=compacted, current=current, what="list")
            rows = conn.execute(_LIST, (low, prefix_end(prefix), at, limit or -1))
            return [KeyValue(*row[:5]) for row in rows], at

        return await self._read(read)

    async def _revision(self) -> int:
        self._check_open()
        return self._hub.published  # durable and visible to every read

    async def history(self, prefix: str, start: int, until: int, limit: int) -> Sequence[Event]:
        def read(conn: sqlite3.Connection) -> Sequence[Event]:
            _, compacted = _meta(conn)
            if start < compacted:
                raise Compacted(f"watch history from {start} was compacted (at {compacted})")
            rows = conn.execute(_HISTORY, (start, until, prefix, prefix_end(prefix), limit))
            return [_event(row) for row in rows]

        return await self._read(read)

    def compacted_revision(self) -> int:
        return self._compacted

    def committed_revision(self) -> int:
        return self._committed

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        self._check_open()

        def run() -> T:
            conn = self._reader()
            try:
                conn.execute("BEGIN")  # one snapshot for the whole read
                try:
                    return fn(conn)
                finally:
                    conn.execute("ROLLBACK")
            except sqlite3.Error as exc:
                raise _translate(exc, self.path) from None

        return await asyncio.get_running_loop().run_in_executor(self._readers, run)

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = _connect(self.path)
            conn.execute("PRAGMA query_only = ON")
            self._local.conn = conn
            with self._rconns_lock:
                self._rconns.append(conn)
        return conn

    # ------------------------------------------------------------------ writes

    async def _create(self, key: str, value: bytes, guard: Guard | None) -> KeyValue:
        result: KeyValue = await self._submit("create", key, value, None, guard)
        return result

    async def _update(self, key: str, value: bytes, expected: int | None) -> KeyValue:
        result: KeyValue = await self._submit("update", key, value, expected)
        return result

    async def _delete(self, key: str, expected: int | None) -> KeyValue:
        result: KeyValue = await self._submit("delete", key, b"", expected)
        return result

    async def _compact(self, revision: int) -> None:
        await self._submit("compact", "", b"", revision)

    async def _submit(self, kind: OpKind, key: str, value: bytes, expected: int | None,
                      guard: Guard | None = None) -> Any:
        self._check_open()
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
        elif self._loop is not loop:
            raise RuntimeError("a SqliteBackend serves the event loop that first used it")
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append(_Op(kind, key, value, expected, future, guard))
        if not self._busy:
            self._busy = True
            self._idle.clear()
            self._next_batch()
        return await future

    # Group commit, in two halves. A batch's statements (a point SELECT and an INSERT per
    # write, microseconds against pages SQLite has cached) run on the event loop, at once
    # when no commit is in flight; only the COMMIT — the fsync — goes to the commit
    # thread, which hands the outcome straight back to the loop, and writes submitted
    # meanwhile gather for the next batch. Each step costs a write as few loop turns as
    # it can: under load a turn of the loop serves every ready request, and a write's
    # latency is counted in turns. (A writer thread that ran every statement itself paid
    # a GIL hand-over per statement while the loop was busy making more writes:
    # measured, a quarter of an in-process create's CPU and 10-40 ms commits.)
    # Compactions are long DELETEs, so their whole transaction runs on the commit thread.

    def _next_batch(self) -> None:
        """On the loop: start the next transaction, or go idle when nothing is queued."""
        while True:
            target = compaction_due(self._rev, self._compacted, self._window)
            if target is not None or (self._pending and self._pending[0].kind == "compact"):
                ops = [] if target is not None else [self._pending.pop(0)]
                undo = self._snapshot()

                def whole(ops: list[_Op] = ops, target: int | None = target) -> _Batch:
                    batch = self._statements(ops, auto_compact=target)
                    self._wconn.execute("COMMIT")
                    return batch

                self._commits.put((whole, ops, undo, None))
                return
            if not self._pending:
                self._busy = False
                self._idle.set()
                return
            ops = []
            for op in self._pending[:MAX_BATCH]:
                if op.kind == "compact":  # a compaction is a transaction of its own
                    break
                ops.append(op)
            del self._pending[:len(ops)]
            undo = self._snapshot()
            try:
                batch = self._statements(ops)
            except Exception as exc:
                self._fail(ops, undo, exc)
                continue
            self._commits.put((self._commit_now, ops, undo, batch))
            return

    def _commit_now(self) -> None:
        self._wconn.execute("COMMIT")

    def _commit_loop(self) -> None:
        """The commit thread: run each job (a COMMIT, or a whole compaction that
        returns its batch) and hand the outcome straight to the loop's ``_settle``."""
        while (job := self._commits.get()) is not None:
            work, ops, undo, batch = job
            error: BaseException | None = None
            try:
                done = work()
            except BaseException as exc:  # every failure is the loop's to report
                error = exc
            else:
                batch = batch if batch is not None else done
            assert self._loop is not None
            with contextlib.suppress(RuntimeError):  # the loop is gone; nobody is waiting
                self._loop.call_soon_threadsafe(self._settle, batch, error, ops, undo)

    def _snapshot(self) -> tuple[int, int]:
        return self._rev, self._compacted

    def _statements(self, ops: list[_Op], auto_compact: int | None = None) -> _Batch:
        """BEGIN and every op's statements, one revision each; the COMMIT is the
        caller's. A failing op fails alone; a failing statement raises (roll back)."""
        batch, conn, start_rev = _Batch(), self._wconn, self._rev
        conn.execute("BEGIN IMMEDIATE")
        for op in ops:
            try:
                batch.outcomes.append((op.future, self._apply(conn, op, batch.events), None))
            except StoreError as exc:  # this op's own failure; the others go on
                batch.outcomes.append((op.future, None, exc))
        if auto_compact is not None:
            self._compact_rows(conn, auto_compact)
        if self._rev != start_rev:
            conn.execute("UPDATE meta SET value = ? WHERE name = 'revision'", (self._rev,))
        self._committed = self._rev  # before COMMIT: a reader may see it right after
        return batch

    def _settle(self, batch: _Batch | None, error: BaseException | None, ops: list[_Op],
                undo: tuple[int, int]) -> None:
        """On the loop, once the commit thread is done: publish the batch's events,
        then acknowledge (a writer watching from its own revision + 1 never sees a
        FutureRevision) — or, if the transaction failed, fail every op in it. Then the
        next batch."""
        if error is not None:
            self._fail(ops, undo, error)
        else:
            assert batch is not None
            self.commits += 1
            self.writes += len(batch.events)
            self._hub.publish(batch.events)
            for future, result, failure in batch.outcomes:
                if future.cancelled():
                    continue
                if failure is not None:
                    future.set_exception(failure)
                else:
                    future.set_result(result)
        self._next_batch()

    def _fail(self, ops: list[_Op], undo: tuple[int, int], exc: BaseException) -> None:
        """The transaction failed as a whole: roll back, nobody is acknowledged."""
        with contextlib.suppress(sqlite3.Error):
            self._wconn.execute("ROLLBACK")
        self._rev, self._compacted = undo
        self._committed = self._rev
        error = (
            _translate(exc, self.path)
            if isinstance(exc, sqlite3.Error)
            else Unavailable(f"sqlite store {self.path}: write failed: {exc!r}")
        )
        for op in ops:
            if not op.future.cancelled():
                op.future.set_exception(error)

    def _apply(self, conn: sqlite3.Connection, op: _Op, events: list[Event]) -> Any:
        if op.kind == "compact":
            assert op.expected is not None
            check_compact(op.expected, compacted=self._compacted, current=self._rev)
            self._compact_rows(conn, op.expected)
            return None
        prev = _latest(conn, op.key)
        rev = self._rev + 1
        if op.kind == "create":
            # Inside the batch's transaction, after the ops before it: the guard is read
            # as this write will commit over it.
            if op.guard is not None:
                found = _latest(conn, op.guard.key)
                check_guard(op.key, op.guard, None if found is None else found.mod_revision)
            if prev is not None:
                raise KeyExists(f"key {op.key!r} already exists", key=op.key)
            kv = KeyValue(op.key, op.value, rev, rev, 1)
            event = Event("PUT", kv, None)
        else:
            if prev is None:
                raise NotFound(f"cannot {op.kind} {op.key!r}: not found", key=op.key)
            if op.expected is not None and prev.mod_revision != op.expected:
                raise Conflict(
                    f"cannot {op.kind} {op.key!r}: expected revision {op.expected},"
                    f" found {prev.mod_revision}",
                    key=op.key,
                )
            if op.kind == "update":
                kv = KeyValue(op.key, op.value, prev.create_revision, rev, prev.version + 1)
                event = Event("PUT", kv, prev)
            else:
                kv = tombstone(op.key, rev)
                event = Event("DELETE", kv, prev)
        conn.execute(
            "INSERT INTO kv VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                rev,
                op.key,
                kv.create_revision,
                kv.version,
                int(event.type == "DELETE"),
                prev.mod_revision if prev is not None else None,
                kv.value,
            ),
        )
        self._rev = rev
        events.append(event)
        return kv if event.type == "PUT" else prev

    def _compact_rows(self, conn: sqlite3.Connection, revision: int) -> None:
        conn.execute(_COMPACT, {"at": revision})
        conn.execute("UPDATE meta SET value = ? WHERE name = 'compacted'", (revision,))
        self._compacted = revision

    # ------------------------------------------------------------------ watch, lifecycle

    def _watch(self, prefix: str, start_revision: int | None) -> Watch:
        self._check_open()
        return self._hub.watch(prefix, start_revision)

    def _check_open(self) -> None:
        if self._closed:
            raise Unavailable(f"sqlite store {self.path} is closed")

    async def _close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._idle.wait()  # queued writes before it still commit and are acknowledged
        self._commits.put(None)
        await asyncio.to_thread(self._committer.join)
        self._wconn.close()
        self._lconn.close()
        self._hub.close()
        self._readers.shutdown(wait=True)
        with self._rconns_lock:
            for conn in self._rconns:
                conn.close()
            self._rconns.clear()
        os.close(self._lock_fd)


# ---------------------------------------------------------------------- file handling


def _lock(path: str) -> int:
    """Take the store's ownership lock, or say who to blame."""
    lock_path = path + ".lock"
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise Unavailable(f"cannot open sqlite store {path}: {exc.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise Unavailable(
            f"sqlite store {path} is in use by another process or store instance"
            f" ({lock_path} is locked); stop it or point kstate at another file"
        ) from None
    return fd


def _connect(path: str) -> sqlite3.Connection:
    try:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout = 5000")
        return conn
    except sqlite3.Error as exc:
        raise _translate(exc, path) from None


def _open_schema(conn: sqlite3.Connection, path: str, *, verify: bool) -> tuple[int, int]:
    """Create or check the schema; return (revision, compacted)."""
    try:
        if verify:
            problems = [r[0] for r in conn.execute("PRAGMA quick_check(5)")]
            if problems != ["ok"]:
                raise StoreCorrupt(f"sqlite store {path} is damaged: {'; '.join(problems)}")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode != "wal":
            raise Unavailable(f"sqlite store {path}: cannot enable WAL (journal mode {mode})")
        # FULL: fsync the WAL on every commit — the durability etcd gives every write.
        conn.execute("PRAGMA synchronous = FULL")
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if not tables:
            conn.executescript(
                "BEGIN IMMEDIATE;"
                + _SCHEMA
                + f"INSERT INTO meta VALUES ('schema', {SCHEMA_VERSION}),"
                f" ('revision', {INITIAL_REVISION}), ('compacted', 0); COMMIT;"
            )
        elif not {"meta", "kv"} <= tables:
            raise StoreCorrupt(
                f"{path} is an SQLite database but not a kstate store"
                f" (tables: {', '.join(sorted(tables))})"
            )
        meta = dict(conn.execute("SELECT name, value FROM meta").fetchall())
        if meta.get("schema") != SCHEMA_VERSION:
            raise StoreCorrupt(
                f"sqlite store {path} has schema {meta.get('schema')!r};"
                f" this kstate reads schema {SCHEMA_VERSION}"
            )
        revision, compacted = meta["revision"], meta["compacted"]
        newest = conn.execute("SELECT max(revision) FROM kv").fetchone()[0] or 0
        if newest > revision:
            raise StoreCorrupt(f"sqlite store {path}: rows up to {newest} but revision {revision}")
        return revision, compacted
    except sqlite3.Error as exc:
        raise _translate(exc, path) from None
    except KeyError as exc:
        raise StoreCorrupt(f"sqlite store {path} lacks meta entry {exc}") from None


def _translate(exc: sqlite3.Error, path: str) -> StoreError:
    """sqlite3's exceptions, as the store's typed errors."""
    message = str(exc)
    corrupt = ("not a database", "malformed", "corrupt", "file is encrypted")
    if isinstance(exc, sqlite3.DatabaseError) and any(s in message for s in corrupt):
        return StoreCorrupt(f"sqlite store {path} is damaged or not a database: {message}")
    if "locked" in message or "busy" in message:
        return Unavailable(f"sqlite store {path} is locked by another process: {message}")
    return Unavailable(f"sqlite store {path}: {message}")


def _latest(conn: sqlite3.Connection, key: str) -> KeyValue | None:
    """``key``'s live record as the connection sees it (``None``: absent or deleted)."""
    row = conn.execute(_LATEST, (key,)).fetchone()
    return None if row is None or row[5] else KeyValue(*row[:5])


def _meta(conn: sqlite3.Connection) -> tuple[int, int]:
    meta = dict(conn.execute("SELECT name, value FROM meta WHERE name != 'schema'").fetchall())
    return meta["revision"], meta["compacted"]


def _event(row: tuple[Any, ...]) -> Event:
    key, value, create_rev, rev, version, deleted = row[:6]
    prev = None if row[8] is None else KeyValue(key, row[6], row[7], row[8], row[9])
    if deleted:
        return Event("DELETE", tombstone(key, rev), prev)
    return Event("PUT", KeyValue(key, value, create_rev, rev, version), prev)
