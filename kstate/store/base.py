"""The store contract: records, the backend base class, key rules and continue tokens.

Where it sits: the bottom of the runtime path. The API server reads and writes
Kubernetes objects (JSON bytes) through a :class:`Backend`; informers follow changes with
:meth:`Backend.watch`. Everything above the store is rebuilt from it after a crash.

Why it exists: one contract, shaped like etcd v3, that every backend (memory, SQLite,
etcd) honours identically. The public methods live here and do all argument checking,
continue-token handling and limit arithmetic once; a backend only implements the small
``_``-prefixed primitives. That keeps the three backends from drifting apart in exactly
the places (validation, pagination) where drift would be invisible until production.

Revisions work as in etcd: one counter per store, every successful write bumps it by
exactly one, an empty store is at revision 1, and a key's ``mod_revision`` is the
revision of the write that produced it.

A create may be *guarded* by another key (:class:`Guard`): it happens only if that key
still has the ``mod_revision`` the caller read, in the same transaction as the write
(etcd: one ``Txn`` comparing both keys). That is how the API server makes a namespace's
admission check and the write of new content in it one step.

>>> kv = KeyValue("/registry/pods/default/web", b"{}", 2, 2, 1)
>>> kv.mod_revision
2
"""

from __future__ import annotations

import abc
import base64
import binascii
import json
from collections.abc import Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Literal

import attrs

from kstate.errors import (
    Compacted,
    FutureRevision,
    GuardChanged,
    InvalidContinueToken,
    InvalidKey,
    ValueTooLarge,
)

if TYPE_CHECKING:
    from kstate.store.watch import Watch

KEY_ROOT = "/registry/"
MAX_KEY_BYTES = 2048
MAX_VALUE_BYTES = 1_572_864  # 1.5 MiB: Kubernetes' object limit (etcd's request limit)
INITIAL_REVISION = 1  # like etcd: an empty store is at revision 1, the first write is 2

EventType = Literal["PUT", "DELETE"]


@attrs.frozen
class KeyValue:
    """One stored version of a key, field for field like etcd's ``mvccpb.KeyValue``.

    ``version`` counts writes since the key was (re)created; a delete resets it.
    """

    key: str
    value: bytes
    create_revision: int
    mod_revision: int
    version: int


@attrs.frozen
class Event:
    """A change seen by a watcher.

    For ``PUT``, ``kv`` is the new record and ``prev_kv`` the one it replaced (``None``
    on create). For ``DELETE``, ``kv`` is a tombstone as etcd sends it (only ``key`` and
    ``mod_revision`` — the deletion revision — are set) and ``prev_kv`` the deleted
    record. ``prev_kv`` may also be ``None`` when the previous version was compacted
    away (an event at exactly the compaction revision), as in etcd.
    """

    type: EventType
    kv: KeyValue
    prev_kv: KeyValue | None = None

    @property
    def revision(self) -> int:
        return self.kv.mod_revision


def tombstone(key: str, revision: int) -> KeyValue:
    """The ``kv`` of a DELETE event: the key and the deletion revision, nothing else."""
    return KeyValue(key, b"", 0, revision, 0)


@attrs.frozen
class Guard:
    """The precondition of a guarded create: ``key`` still exists with ``mod_revision``.

    Any write to ``key`` since it was read (an update bumps ``mod_revision``, a delete
    removes it) makes the create fail with ``GuardChanged`` and write nothing.
    """

    key: str
    mod_revision: int


def check_guard(key: str, guard: Guard, found: int | None) -> None:
    """The one rule for a guarded create of ``key``, given the guard key's current
    ``mod_revision`` (``found``; ``None`` if absent): ``GuardChanged`` unless it holds."""
    if found == guard.mod_revision:
        return
    now = "is gone" if found is None else f"is at revision {found}"
    raise GuardChanged(
        f"cannot create {key!r}: its guard {guard.key!r} was expected at revision"
        f" {guard.mod_revision} but {now}; re-read it and decide again",
        key=guard.key,
    )


@attrs.frozen
class ListResult:
    """A page of a prefix listing, read at one consistent ``revision``.

    ``continue_token`` is set when ``limit`` cut the page short; pass it back to
    :meth:`Backend.list` to get the next page *at the same revision*.
    """

    items: tuple[KeyValue, ...]
    revision: int
    continue_token: str | None = None


# --------------------------------------------------------------------------- key rules


def check_key(key: str) -> str:
    """Reject anything that is not ``/registry/<segment>[/<segment>...]``.

    Segments are non-empty printable ASCII without whitespace and never ``.``/``..``,
    which covers every Kubernetes name (DNS labels, ``system:...`` RBAC names) while
    ruling out control characters, traversal tricks and byte-order surprises between
    backends (SQLite and etcd both order keys bytewise; ASCII makes that unambiguous).

    >>> check_key("/registry/pods/default/web")
    '/registry/pods/default/web'
    """
    _check_path(key, what="key")
    if key.endswith("/"):
        raise InvalidKey(f"key {key!r} must not end with '/'", key=key)
    return key


def check_prefix(prefix: str) -> str:
    """Like :func:`check_key`, but ``/registry/`` itself and a trailing ``/`` are fine."""
    if prefix == KEY_ROOT:
        return prefix
    _check_path(prefix.removesuffix("/"), what="prefix")
    return prefix


def _check_path(path: str, *, what: str) -> None:
    if not isinstance(path, str):
        raise InvalidKey(f"{what} must be a str, not {type(path).__name__}")
    if not path:
        raise InvalidKey(f"{what} is empty; store keys look like {KEY_ROOT}<plural>/<ns>/<name>")
    if not path.startswith(KEY_ROOT) or len(path) == len(KEY_ROOT):
        raise InvalidKey(
            f"{what} {path!r} is outside the store's key space {KEY_ROOT}...", key=path
        )
    if len(path) > MAX_KEY_BYTES:
        raise InvalidKey(
            f"{what} is {len(path)} bytes long; the limit is {MAX_KEY_BYTES}", key=path
        )
    bad = next((c for c in path if not "!" <= c <= "~"), None)
    if bad is not None:
        raise InvalidKey(
            f"{what} {path!r} contains {bad!r}; only printable ASCII without spaces is allowed",
            key=path,
        )
    for segment in path[len(KEY_ROOT) :].split("/"):
        if segment in ("", ".", ".."):
            raise InvalidKey(f"{what} {path!r} has an empty, '.' or '..' segment", key=path)


def check_value(key: str, value: bytes) -> bytes:
    """Values are bytes (the API server stores JSON) of at most 1.5 MiB."""
    if not isinstance(value, bytes | bytearray | memoryview):
        raise TypeError(f"store values are bytes, not {type(value).__name__}")
    if len(value) > MAX_VALUE_BYTES:
        raise ValueTooLarge(
            f"value for {key!r} is {len(value):,} bytes; the limit is {MAX_VALUE_BYTES:,}",
            key=key,
        )
    return bytes(value)


def prefix_end(prefix: str) -> str:
    """The first key after every key that starts with ``prefix`` (exclusive bound).

    Keys are printable ASCII, so bumping the last character never overflows.

    >>> prefix_end("/registry/pods/")
    '/registry/pods0'
    """
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


# --------------------------------------------------------------------------- revisions


def check_revision(revision: int, *, compacted: int, current: int, what: str) -> None:
    """The one rule for reading at a revision: not before the compaction point, not
    after the current revision. ``compacted`` is 0 for a store never compacted."""
    if revision < compacted:
        raise Compacted(
            f"{what} at revision {revision}: history before {compacted} was compacted;"
            " relist at the current revision"
        )
    if revision > current:
        raise FutureRevision(f"{what} at revision {revision}: the store is at {current}")


def check_compact(revision: int, *, compacted: int, current: int) -> None:
    """``compact(revision)`` must move the compaction point forward, like etcd."""
    if revision <= compacted:
        raise Compacted(f"revision {revision} is already compacted (compacted at {compacted})")
    if revision > current:
        raise FutureRevision(f"cannot compact at {revision}: the store is at {current}")


def compaction_due(current: int, compacted: int, window: int | None) -> int | None:
    """Where automatic compaction should move to, keeping ``window`` revisions of history.

    Runs only once history exceeds the window by 10 % so the cost is amortised over
    many writes rather than paid on every one.

    >>> compaction_due(1_200, 0, 1_000), compaction_due(1_050, 0, 1_000)
    (200, None)
    """
    if window is None or current - max(compacted, INITIAL_REVISION) <= window + window // 10:
        return None
    return current - window


# --------------------------------------------------------------------------- continue tokens


@attrs.frozen
class Continue:
    """What a continue token carries: the revision of the first page and the last key seen."""

    revision: int
    after: str


def encode_continue(prefix: str, revision: int, last_key: str) -> str:
    """An opaque, URL-safe token; the key is stored relative to the prefix so a token
    can never be replayed to read outside the prefix it was issued for."""
    body = json.dumps({"v": 1, "rev": revision, "after": last_key[len(prefix) :]})
    return base64.urlsafe_b64encode(body.encode()).decode().rstrip("=")


def decode_continue(prefix: str, token: str) -> Continue:
    """Inverse of :func:`encode_continue`; anything malformed is ``InvalidContinueToken``.

    >>> decode_continue("/registry/a/", encode_continue("/registry/a/", 7, "/registry/a/x"))
    Continue(revision=7, after='/registry/a/x')
    """
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        body = json.loads(raw)
        revision, after = body["rev"], body["after"]
        if body.get("v") != 1 or not isinstance(revision, int) or not isinstance(after, str):
            raise ValueError("unexpected fields")
    except (ValueError, KeyError, TypeError, binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidContinueToken(f"continue token is not valid: {exc}") from None
    if revision < INITIAL_REVISION or not after:
        raise InvalidContinueToken("continue token is not valid: bad revision or key")
    key = prefix + after
    check_key(key)
    return Continue(revision, key)


# --------------------------------------------------------------------------- the backend


class Backend(abc.ABC):
    """What the API server may ask of a store; one instance per store URL.

    Public methods check their arguments and then call the backend's primitives. All
    methods are coroutines except :meth:`watch`, which returns a :class:`Watch` that
    starts on ``async with`` (or on first iteration) — so ``Compacted`` and
    ``FutureRevision`` surface before the first event, like a refused etcd watch.

    Usage::

        async with open_store("sqlite:///var/lib/kstate/state.db") as store:
            kv = await store.create("/registry/pods/default/web", b"{...}")
            kv = await store.update(kv.key, b"{...}", expected_revision=kv.mod_revision)
            async with store.watch("/registry/pods/", kv.mod_revision + 1) as events:
                async for event in events:
                    ...
    """

    url: str = ""

    # -- reads

    async def get(self, key: str) -> KeyValue:
        """The current record of ``key``; ``NotFound`` if it does not exist."""
        return await self._get(check_key(key))

    async def list(
        self,
        prefix: str,
        *,
        revision: int | None = None,
        limit: int | None = None,
        continue_token: str | None = None,
    ) -> ListResult:
        """Every live key under ``prefix`` in key order, read at one revision.

        ``revision`` (default: current) must not be compacted (``Compacted``) nor in the
        future (``FutureRevision``). ``limit`` <= 0 or ``None`` means no limit. A
        ``continue_token`` resumes a previous page at that page's revision.
        """
        check_prefix(prefix)
        after: str | None = None
        if continue_token:
            token = decode_continue(prefix, continue_token)
            revision, after = token.revision, token.after
        page = limit if limit is not None and limit > 0 else None
        items, read_at = await self._list(
            prefix, after=after, revision=revision, limit=None if page is None else page + 1
        )
        if page is not None and len(items) > page:
            items = items[:page]
            return ListResult(
                tuple(items), read_at, encode_continue(prefix, read_at, items[-1].key)
            )
        return ListResult(tuple(items), read_at)

    async def revision(self) -> int:
        """The store's current revision (the last write's, or 1 when empty)."""
        return await self._revision()

    # -- writes

    async def create(self, key: str, value: bytes, *, guard: Guard | None = None) -> KeyValue:
        """Store a new key; ``KeyExists`` if it is already there.

        With ``guard``, one transaction: the key is created only if ``guard.key`` still
        exists with ``guard.mod_revision``; otherwise ``GuardChanged`` (a ``Conflict``)
        and nothing is written. The guard is checked first: when both fail the caller
        gets ``GuardChanged``.
        """
        check_key(key)
        if guard is not None:
            check_key(guard.key)
            if guard.key == key:
                raise InvalidKey(f"a create of {key!r} cannot be guarded by itself", key=key)
            if guard.mod_revision <= INITIAL_REVISION:
                raise ValueError(f"guard revision must be a write's (> {INITIAL_REVISION}),"
                                 f" not {guard.mod_revision}")
        return await self._create(key, check_value(key, value), guard)

    async def update(
        self, key: str, value: bytes, *, expected_revision: int | None = None
    ) -> KeyValue:
        """Replace ``key``'s value. With ``expected_revision`` it is a compare-and-swap on
        the key's ``mod_revision`` (``Conflict`` on mismatch); ``NotFound`` if absent."""
        check_key(key)
        return await self._update(key, check_value(key, value), expected_revision)

    async def delete(self, key: str, *, expected_revision: int | None = None) -> KeyValue:
        """Remove ``key`` and return the record that was deleted.

        With ``expected_revision`` it is a compare-and-swap like :meth:`update`. The
        deletion's own revision is the DELETE event's ``kv.mod_revision``.
        """
        return await self._delete(check_key(key), expected_revision)

    async def compact(self, revision: int) -> None:
        """Forget history before ``revision``: reads at older revisions and watches
        starting before it get ``Compacted``; the state at ``revision`` stays readable."""
        await self._compact(revision)

    # -- watch

    def watch(self, prefix: str, start_revision: int | None = None) -> Watch:
        """Every change under ``prefix`` with revision >= ``start_revision``, in order,
        without gaps or duplicates. ``None`` means "changes after now".

        A start before the compaction point gets ``Compacted``; one beyond the next
        revision gets ``FutureRevision``; a watcher too slow to keep up with its bounded
        buffer gets ``Compacted`` after the events it was already given — relist, then
        watch again from the list's revision + 1.
        """
        check_prefix(prefix)
        if start_revision is not None and start_revision < 0:
            raise ValueError(f"start_revision must be >= 0, not {start_revision}")
        return self._watch(prefix, start_revision or None)

    # -- lifecycle

    async def close(self) -> None:
        """Release files, threads and connections; open watches end."""
        await self._close()

    async def __aenter__(self) -> Backend:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- what a backend implements

    @abc.abstractmethod
    async def _get(self, key: str) -> KeyValue: ...

    @abc.abstractmethod
    async def _list(
        self, prefix: str, *, after: str | None, revision: int | None, limit: int | None
    ) -> tuple[Sequence[KeyValue], int]:
        """Live keys in ``[prefix, prefix_end)`` greater than ``after``, at ``revision``
        (``None``: current), at most ``limit``; plus the revision actually read at."""

    @abc.abstractmethod
    async def _revision(self) -> int: ...

    @abc.abstractmethod
    async def _create(self, key: str, value: bytes, guard: Guard | None) -> KeyValue:
        """Create ``key`` (``KeyExists``) if ``guard`` holds (``GuardChanged``), atomically."""

    @abc.abstractmethod
    async def _update(self, key: str, value: bytes, expected: int | None) -> KeyValue: ...

    @abc.abstractmethod
    async def _delete(self, key: str, expected: int | None) -> KeyValue: ...

    @abc.abstractmethod
    async def _compact(self, revision: int) -> None: ...

    @abc.abstractmethod
    def _watch(self, prefix: str, start_revision: int | None) -> Watch: ...

    @abc.abstractmethod
    async def _close(self) -> None: ...
