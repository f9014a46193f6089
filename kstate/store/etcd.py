"""etcd v3 backend (``etcd://host:port[,host:port...]``): kstate on a real etcd cluster.

Where it sits: behind the API server when a cluster outgrows one machine's SQLite file.
This is the only module in kstate that imports an etcd client library.

Why this client — **aetcd** (PyPI ``aetcd``, Apache-2.0). Options weighed:

* ``aetcd`` 1.0 — native asyncio over ``grpc.aio``; the maintained line of
  python-etcd3 -> etcd3aio -> aetcd; current ``grpcio`` (>1.66) and ``protobuf`` (4-7)
  pins; ships the full generated KV/Watch/Cluster stubs; its watch multiplexes streams
  and *reports* a broken stream instead of silently resuming. Chosen.
* ``etcd3`` (python-etcd3) — unmaintained since 2020, synchronous, its generated
  protobuf code breaks on protobuf >= 4.
* ``etcetra`` — asyncio, but pins ``grpcio==1.62`` and ``protobuf~=4.25``: cannot live
  beside current gRPC.
* ``etcd3gw`` — maintained (OpenStack) but synchronous over the HTTP/JSON gateway
  (``requests``); would need a thread per watch.
* ``etcd3aio`` — young (0.x), typed, multi-endpoint round robin, but it edits
  ``sys.path`` to load its protos, and its watch auto-resumes from the response header
  revision, which can skip events when etcd delivers history in several batches — a gap
  our contract forbids.

How the contract maps onto etcd:

* Reads and writes use aetcd's generated KV stub directly (aetcd's convenience ``get``
  has no revision/limit, and its ``transaction`` hides the response header we need).
* create = Txn(create_revision == 0 -> put); a guarded create adds the compare
  mod_revision(guard) == expected and reads the guard on failure, so one round trip
  tells GuardChanged from KeyExists. update/delete = Txn(mod_revision == expected ->
  put/delete with prev_kv, else range) so one round trip tells Conflict from NotFound.
  Every kstate write touches one key, so every revision is one event.
* Failover: one channel per member, one *active* member. A read or compaction that
  fails with UNAVAILABLE/DEADLINE_EXCEEDED moves to the next member and retries. A
  write is retried on the next member only when it provably never left the client
  ("failed to connect"); otherwise the outcome is unknown and the caller gets
  ``Unavailable`` saying so — the same rule etcd's Go client follows, since retrying a
  compare-and-swap that did apply would report a false Conflict.
* Watch: a pump task feeds etcd events into the shared bounded :class:`EventBuffer`
  and remembers the last revision handed out; when the stream breaks it re-creates the
  watch on the next member from that revision + 1, so the consumer sees no gap and no
  duplicate. A compacted start revision is ``Compacted``.
* Compaction is explicit only (``compact``); etcd's own ``--auto-compaction-*`` flags
  are the operator's business.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from typing import Any

import aetcd
import aetcd.exceptions
from aetcd import rpc

from kstate.errors import (
    Compacted,
    Conflict,
    FutureRevision,
    KeyExists,
    NotFound,
    StoreError,
    Unavailable,
    UsageError,
    ValueTooLarge,
)
from kstate.store.base import (
    KEY_ROOT,
    Backend,
    Event,
    Guard,
    KeyValue,
    check_guard,
    prefix_end,
    tombstone,
)
from kstate.store.watch import DEFAULT_WATCH_BUFFER, Watch

_TRANSIENT = {rpc.StatusCode.UNAVAILABLE, rpc.StatusCode.DEADLINE_EXCEEDED}
_CHANNEL_OPTIONS = {
    "grpc.max_receive_message_length": 2**31 - 1,  # a big list may exceed gRPC's 4 MiB
    "grpc.initial_reconnect_backoff_ms": 100,  # a restarted member is used again soon
    "grpc.min_reconnect_backoff_ms": 100,
    "grpc.max_reconnect_backoff_ms": 1000,
    "grpc.keepalive_time_ms": 10_000,  # notice a silently dead member
    "grpc.keepalive_timeout_ms": 5_000,
}


class EtcdBackend(Backend):
    """The store contract over an etcd v3 cluster.

    ``endpoints``: ``host:port`` of each member (loopback in tests). ``timeout``: seconds
    per RPC attempt. ``watch_retry``: seconds a watch keeps trying to re-establish
    itself across members before failing with ``Unavailable``.
    """

    def __init__(
        self,
        endpoints: Sequence[str],
        *,
        timeout: float = 5.0,
        watch_buffer: int = DEFAULT_WATCH_BUFFER,
        watch_retry: float = 30.0,
    ) -> None:
        self._endpoints = [_endpoint(e) for e in endpoints if e]
        if not self._endpoints:
            raise UsageError("etcd store URL names no endpoint; use etcd://host:port[,host:port]")
        self.url = "etcd://" + ",".join(f"{h}:{p}" for h, p in self._endpoints)
        self._timeout = timeout
        self._watch_buffer = watch_buffer
        self._watch_retry = watch_retry
        self._clients: dict[int, aetcd.Client] = {}
        self._active = 0
        self._watches: dict[EtcdWatch, None] = {}  # ordered: see LocalHub._watches
        self._closed = False

    # ------------------------------------------------------------------ plumbing

    async def client(self, index: int) -> aetcd.Client:
        if self._closed:
            raise Unavailable(f"etcd store {self.url} is closed")
        client = self._clients.get(index)
        if client is None:
            host, port = self._endpoints[index]
            client = aetcd.Client(host, port, timeout=self._timeout, options=_CHANNEL_OPTIONS)
            await client.connect()  # builds the channel; no network round trip yet
            self._clients[index] = client
        return client

    def failover(self, index: int) -> None:
        """Member ``index`` failed: move on, unless someone already did."""
        if self._active == index:
            self._active = (index + 1) % len(self._endpoints)

    def member(self, index: int) -> str:
        host, port = self._endpoints[index]
        return f"{host}:{port}"

    async def _call(self, method: str, request: Any, *, write: bool = False) -> Any:
        """One KV RPC, failing over across members as the module docstring describes."""
        failures: list[str] = []
        for _ in range(len(self._endpoints)):
            index = self._active
            client = await self.client(index)
            try:
                return await getattr(client.kvstub, method)(
                    request, timeout=self._timeout, metadata=client.metadata
                )
            except rpc.AioRpcError as exc:
                if exc.code() not in _TRANSIENT:
                    raise _translate(exc, request) from None
                detail = exc.details() or exc.code().name
                if write and "failed to connect" not in detail:
                    raise Unavailable(
                        f"etcd member {self.member(index)} failed during a write, which may or"
                        f" may not have been applied: {detail}"
                    ) from None
                failures.append(f"{self.member(index)}: {detail}")
                self.failover(index)
        raise Unavailable(f"etcd unreachable ({'; '.join(failures)})")

    # ------------------------------------------------------------------ reads

    async def _get(self, key: str) -> KeyValue:
        response = await self._call("Range", rpc.RangeRequest(key=key.encode()))
        if not response.kvs:
            raise NotFound(f"key {key!r} not found", key=key)
        return _kv(response.kvs[0])

    async def _list(
        self, prefix: str, *, after: str | None, revision: int | None, limit: int | None
    ) -> tuple[Sequence[KeyValue], int]:
        low = max(prefix, after + "\0") if after is not None else prefix
        request = rpc.RangeRequest(
            key=low.encode(),
            range_end=prefix_end(prefix).encode(),
            revision=revision or 0,
            limit=limit or 0,
        )
        response = await self._call("Range", request)
        return [_kv(kv) for kv in response.kvs], revision or response.header.revision

    async def _revision(self) -> int:
        request = rpc.RangeRequest(key=KEY_ROOT.encode(), count_only=True)
        response = await self._call("Range", request)
        return int(response.header.revision)

    # ------------------------------------------------------------------ writes

    async def _create(self, key: str, value: bytes, guard: Guard | None) -> KeyValue:
        absent = rpc.Compare(
            key=key.encode(),
            target=rpc.Compare.CREATE,
            result=rpc.Compare.EQUAL,
            create_revision=0,
        )
        put = rpc.RequestOp(request_put=rpc.PutRequest(key=key.encode(), value=value))
        request = rpc.TxnRequest(compare=[absent], success=[put])
        if guard is not None:
            # An absent guard key compares as mod_revision 0, so it fails too.
            request.compare.append(rpc.Compare(
                key=guard.key.encode(),
                target=rpc.Compare.MOD,
                result=rpc.Compare.EQUAL,
                mod_revision=guard.mod_revision,
            ))
            read = rpc.RangeRequest(key=guard.key.encode(), keys_only=True)
            request.failure.append(rpc.RequestOp(request_range=read))
        response = await self._call("Txn", request, write=True)
        if not response.succeeded:
            if guard is not None:
                found = response.responses[0].response_range.kvs
                check_guard(key, guard, found[0].mod_revision if found else None)
            raise KeyExists(f"key {key!r} already exists", key=key)
        rev = response.header.revision
        return KeyValue(key, value, rev, rev, 1)

    async def _update(self, key: str, value: bytes, expected: int | None) -> KeyValue:
        put = rpc.PutRequest(key=key.encode(), value=value, prev_kv=True)
        response = await self._cas(key, expected, rpc.RequestOp(request_put=put), "update")
        prev = response.responses[0].response_put.prev_kv
        rev = response.header.revision
        return KeyValue(key, value, prev.create_revision, rev, prev.version + 1)

    async def _delete(self, key: str, expected: int | None) -> KeyValue:
        delete = rpc.DeleteRangeRequest(key=key.encode(), prev_kv=True)
        response = await self._cas(
            key, expected, rpc.RequestOp(request_delete_range=delete), "delete"
        )
        return _kv(response.responses[0].response_delete_range.prev_kvs[0])

    async def _cas(self, key: str, expected: int | None, op: Any, verb: str) -> Any:
        """Run ``op`` if ``key`` exists (at ``expected`` mod revision, when given)."""
        if expected is None:
            compare = rpc.Compare(
                key=key.encode(), target=rpc.Compare.VERSION, result=rpc.Compare.GREATER, version=0
            )
        else:
            compare = rpc.Compare(
                key=key.encode(),
                target=rpc.Compare.MOD,
                result=rpc.Compare.EQUAL,
                mod_revision=expected,
            )
        read = rpc.RequestOp(request_range=rpc.RangeRequest(key=key.encode(), keys_only=True))
        request = rpc.TxnRequest(compare=[compare], success=[op], failure=[read])
        response = await self._call("Txn", request, write=True)
        if response.succeeded:
            return response
        found = response.responses[0].response_range.kvs
        if not found:
            raise NotFound(f"cannot {verb} {key!r}: not found", key=key)
        raise Conflict(
            f"cannot {verb} {key!r}: expected revision {expected}, found {found[0].mod_revision}",
            key=key,
        )

    async def _compact(self, revision: int) -> None:
        await self._call("Compact", rpc.CompactionRequest(revision=revision), write=True)

    # ------------------------------------------------------------------ watch, lifecycle

    def _watch(self, prefix: str, start_revision: int | None) -> Watch:
        if self._closed:
            raise Unavailable(f"etcd store {self.url} is closed")
        return EtcdWatch(self, prefix, start_revision, self._watch_buffer)

    async def _close(self) -> None:
        if self._closed:
            return
        for watch in tuple(self._watches):
            await watch.close()
        self._closed = True
        for client in self._clients.values():
            with contextlib.suppress(Exception):
                await client.close()
        self._clients.clear()


class EtcdWatch(Watch):
    """An etcd watch that survives member failures without gaps (see module docstring)."""

    def __init__(
        self, backend: EtcdBackend, prefix: str, start_revision: int | None, capacity: int
    ) -> None:
        super().__init__(prefix, start_revision, capacity)
        self._backend = backend
        self._resume_at = 0  # the next revision this watch must deliver
        self._task: asyncio.Task[None] | None = None

    async def _start(self) -> None:
        backend = self._backend
        current = await backend._revision()
        start = self.start_revision if self.start_revision is not None else current + 1
        if start > current + 1:
            raise FutureRevision(f"watch from revision {start}: etcd is only at revision {current}")
        if start <= current:  # a read at the start revision fails exactly when it is compacted
            await backend._call(
                "Range", rpc.RangeRequest(key=KEY_ROOT.encode(), count_only=True, revision=start)
            )
        self.start_revision = self._resume_at = start
        backend._watches[self] = None
        self._task = asyncio.create_task(self._pump(), name=f"etcd-watch:{self.prefix}")

    async def _pump(self) -> None:
        backend, buffer = self._backend, self._buffer
        key, end = self.prefix.encode(), prefix_end(self.prefix).encode()
        backoff, last_ok = 0.05, time.monotonic()
        while not buffer.finished:
            index = backend._active
            try:
                client = await backend.client(index)
                stream = await client.watch(
                    key, range_end=end, start_revision=self._resume_at, prev_kv=True
                )
                try:
                    last_ok, backoff = time.monotonic(), 0.05
                    async for raw in stream:
                        event = _event(raw)
                        if not buffer.put(event):
                            return
                        self._resume_at = event.revision + 1
                        last_ok = time.monotonic()
                finally:
                    with contextlib.suppress(Exception):
                        await stream.cancel()
            except aetcd.exceptions.RevisionCompactedError as exc:
                buffer.fail(
                    Compacted(
                        f"etcd watch from revision {self._resume_at}: compacted at"
                        f" {exc.compacted_revision}; relist and watch again"
                    )
                )
                return
            except StoreError as exc:
                buffer.fail(exc)
                return
            except (TimeoutError, aetcd.exceptions.ClientError, rpc.AioRpcError) as exc:
                backend.failover(index)
                if time.monotonic() - last_ok > backend._watch_retry:
                    buffer.fail(
                        Unavailable(
                            f"etcd watch on {self.prefix} lost at revision {self._resume_at} and no"
                            f" member of {backend.url} took it back within"
                            f" {backend._watch_retry:.0f}s: {exc}"
                        )
                    )
                    return
                # Back off before retrying the cluster: the only timer here, and it paces
                # reconnection to a remote system, not a test.
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 1.0)

    async def _stop(self) -> None:
        self._backend._watches.pop(self, None)
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


# ---------------------------------------------------------------------- conversions


def _endpoint(text: str) -> tuple[str, int]:
    host, sep, port = text.strip().rpartition(":")
    if not sep or not host or not port.isdigit():
        raise UsageError(f"etcd endpoint {text!r} is not host:port")
    return host, int(port)


def _kv(kv: Any) -> KeyValue:
    return KeyValue(
        kv.key.decode("utf-8", "replace"),
        bytes(kv.value),
        kv.create_revision,
        kv.mod_revision,
        kv.version,
    )


def _event(raw: Any) -> Event:
    """aetcd's event (protobuf-backed) as the store's :class:`Event`."""
    prev = _kv(raw.prev_kv) if raw.prev_kv is not None and raw.prev_kv.key else None
    if raw.kind == "DELETE":
        return Event(
            "DELETE", tombstone(raw.kv.key.decode("utf-8", "replace"), raw.kv.mod_revision), prev
        )
    return Event("PUT", _kv(raw.kv), prev)


def _translate(exc: rpc.AioRpcError, request: Any) -> StoreError:
    """etcd's non-transient gRPC errors as the store's typed errors."""
    detail = exc.details() or exc.code().name
    if "compacted" in detail:
        return Compacted(f"etcd: {detail}; relist at the current revision")
    if "future revision" in detail:
        return FutureRevision(f"etcd: {detail}")
    if "too large" in detail:
        return ValueTooLarge(f"etcd rejected the request: {detail}")
    return Unavailable(f"etcd refused {type(request).__name__}: {detail}")
