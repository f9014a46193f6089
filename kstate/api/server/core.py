"""``ApiCore``: every resource semantic of the API server, with no HTTP in sight.

Where it sits: between the API's front doors and the store. The HTTP layer
(``http.py``, for kubectl, the Python client and ``HttpClient``) and ``LocalClient``
(in-process: the all-in-one daemon, model-driven stateful tests) both call the same
methods here, so an object written by a controller in-process goes through exactly the
admission a ``kubectl apply`` gets::

    request -> ApiCore: read the stored object -> kstate.api.writes (defaults,
      DefaultTolerationSeconds, validation, namespace admission, update merge,
      lifecycle check, delete decision, bind) -> Service allocation -> store (CAS;
      a create guarded by its namespace's admitted revision)

Why it exists as one class: Kubernetes spreads these rules over generic registries,
per-kind strategies and admission plugins. Here every rule is a pure function in
``kstate.api.writes`` — the model checker's abstract API calls the same ones — and this
class keeps only the I/O around them: store reads, compare-and-swap writes and their
retries, uids and generated names drawn from its generator, Service address allocation,
the namespace admission's cache, dry runs. A terminating namespace is emptied and
finalized (``/finalize``) by the namespace controller (``kstate.control.namespace``).

Stored values are the object's Kubernetes JSON without ``resourceVersion`` (the store's
``mod_revision`` is the resourceVersion, as in Kubernetes over etcd), ``metadata`` right
after ``kind`` so encoders may splice the version in without decoding.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import functools
import json
import os
import random
import reprlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Generic, TypeVar

import attrs

from kstate.api import lifecycle, writes
from kstate.api.codec import decode, from_dict, to_dict, unknown_field_causes
from kstate.api.meta import DeleteOptions, KubeObject, ObjectMeta
from kstate.api.objects import (
    Binding,
    Eviction,
    Namespace,
    Node,
    Pod,
    ReplicationController,
    Scale,
    ScaleSpec,
    ScaleStatus,
    Service,
)
from kstate.api.registry import REGISTRY, KindInfo, key_prefix, store_key
from kstate.api.server.alloc import Allocator, NetworkConfig
from kstate.api.server.patch import apply_patch
from kstate.api.server.selectors import Selection
from kstate.api.writes import (
    CREATE_ON_UPDATE,
    DEFAULT_NAMESPACES,
    FOREGROUND_FINALIZER,
    NAME_CHARS,
    ORPHAN_FINALIZER,
    STATUS_KINDS,
    not_found,
    qos_class,
)
from kstate.api.writes import conflict as _conflict
from kstate.clock import Clock, RealClock
from kstate.errors import (
    BadRequest,
    Cause,
    Compacted,
    Conflict,
    GuardChanged,
    InvalidObject,
    KeyExists,
    KstateError,
    NotFound,
)
from kstate.store import Backend, Event, Guard, KeyValue

K = TypeVar("K", bound=KubeObject)

FIELD_VALIDATIONS = ("Strict", "Warn", "Ignore")

_CACHE_SIZE = 20_000


@attrs.define
class WriteOptions:
    """Per-call write options, plus the warnings the call produced (for ``Warning:``)."""

    dry_run: bool = False
    #: Unknown fields: ``Strict`` rejects (400), ``Warn`` (Kubernetes' default) warns,
    #: ``Ignore`` keeps them silently.
    field_validation: str = "Warn"
    warnings: list[str] = attrs.Factory(list)

    def __attrs_post_init__(self) -> None:
        if self.field_validation not in FIELD_VALIDATIONS:
            raise BadRequest(f"fieldValidation must be one of Strict, Warn, Ignore, not "
                             f"{self.field_validation!r}")


@attrs.frozen
class ObjectList(Generic[K]):
    """One page of a list: the items, the revision read at, and the continue token."""

    items: tuple[K, ...]
    resource_version: str
    continue_token: str = ""


@attrs.frozen
class WatchEvent:
    """``ADDED`` / ``MODIFIED`` / ``DELETED`` / ``BOOKMARK`` with its object, or
    ``ERROR`` with the error (a 410 ``Compacted`` when history is gone)."""

    type: str
    object: KubeObject | None = None
    error: KstateError | None = None


@attrs.frozen
class Deleted(Generic[K]):
    """What a delete did: ``removed`` (gone from the store) or the object as marked
    for deletion (graceful pods, finalizers, Foreground/Orphan propagation)."""

    object: K
    removed: bool


# ------------------------------------------------------------------ helpers


def resource_version(kv_or_rev: KeyValue | int) -> str:
    return str(kv_or_rev.mod_revision if isinstance(kv_or_rev, KeyValue) else kv_or_rev)


def parse_resource_version(text: str, what: str = "resourceVersion") -> int:
    """A resourceVersion the client sent, as a store revision (400 if not a number)."""
    if not text.isdigit() or len(text) > 19:
        raise BadRequest(f"{what} {text!r} is not a valid resource version: expected a "
                         "decimal store revision")
    return int(text)


def _with_rv(obj: K, rev: int | str) -> K:
    rv = str(rev)
    if obj.metadata.resource_version == rv:
        return obj
    return attrs.evolve(obj, metadata=attrs.evolve(obj.metadata, resource_version=rv))


def encode(obj: KubeObject) -> bytes:
    """The stored form: JSON without resourceVersion, ``metadata`` third."""
    data = to_dict(obj)
    meta = data.get("metadata")
    if isinstance(meta, dict) and "resourceVersion" in meta:
        data["metadata"] = {k: v for k, v in meta.items() if k != "resourceVersion"}
    if list(data)[2:3] != ["metadata"] and "metadata" in data:
        data = {"apiVersion": data.pop("apiVersion"), "kind": data.pop("kind"),
                "metadata": data.pop("metadata"), **data}
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()


_METADATA = b'"metadata":{'


def with_resource_version(stored: bytes, rv: str) -> bytes:
    """Stored JSON (see :func:`encode`) with ``metadata.resourceVersion`` spliced in:
    how reads answer without decoding and re-encoding the object."""
    i = stored.find(_METADATA)
    if i < 0:
        return stored
    j = i + len(_METADATA)
    sep = b"" if stored[j:j + 1] == b"}" else b","
    return b"".join((stored[:j], b'"resourceVersion":"', rv.encode(), b'"', sep, stored[j:]))


class Versions:
    """Decoded objects and their stored JSON by ``(key, mod_revision)``.

    A version never changes, so caching is safe; it saves decoding on every read and
    re-encoding on every response. Bounded: the oldest entries go first.
    """

    def __init__(self, size: int = _CACHE_SIZE) -> None:
        self.size = size
        self._entries: dict[tuple[str, int], tuple[KubeObject, bytes]] = {}

    def get(self, key: str, rev: int) -> tuple[KubeObject, bytes] | None:
        return self._entries.get((key, rev))

    def put(self, key: str, rev: int, obj: KubeObject, stored: bytes) -> None:
        entries = self._entries
        if len(entries) >= self.size:
            for old in list(entries)[: self.size // 10]:
                del entries[old]
        entries[(key, rev)] = (obj, stored)


def _scale_selector(rc: ReplicationController) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(rc.spec.selector.items()))


# ------------------------------------------------------------------ the core


class ApiCore:
    """Resource semantics over a store ``Backend`` and a ``Clock``.

    ``start()`` creates the default namespaces; everything else is request-scoped.
    Randomness (uids, generated names, allocated addresses) comes from ``rng`` so
    tests can make it deterministic.

    >>> import asyncio
    >>> from kstate.store import open_store
    >>> from kstate.clock import FakeClock
    >>> from kstate.api import Namespace, ObjectMeta
    >>> async def demo():
    ...     core = ApiCore(open_store("memory://"), FakeClock())
    ...     await core.start()
    ...     ns = await core.create(Namespace(metadata=ObjectMeta(name="prod")))
    ...     return ns.metadata.generation, ns.status.phase
    >>> asyncio.run(demo())
    (1, 'Active')
    """

    def __init__(
        self,
        store: Backend,
        clock: Clock | None = None,
        *,
        network: NetworkConfig | None = None,
        rng: random.Random | None = None,
        toleration_seconds: int = 300,
    ) -> None:
        self.store = store
        self.clock: Clock = clock or RealClock()
        self.network = network or NetworkConfig()
        # Not a cryptographic generator: uids and names must be unique, not secret, and
        # SystemRandom costs a system call per draw on the create path.
        self._rng = rng or random.Random(os.urandom(32))
        self.allocator = Allocator(self.network, self._rng)
        self.toleration_seconds = toleration_seconds
        self._alloc_lock = asyncio.Lock()
        self.versions = Versions()
        #: Namespaces known to exist and not be terminating, with the revision seen,
        #: followed by a watch (an informer, as Kubernetes' NamespaceLifecycle admission
        #: uses). It only ever saves reads: a miss reads the store, and the revision is
        #: the guard of the create's write, so a stale entry costs a retry, never a
        #: create in a namespace that closed meanwhile.
        self._open_namespaces: dict[str, int] = {}
        self._ns_follower: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Create the default namespaces that are missing and follow the namespaces for
        the admission's cache (idempotent)."""
        info = REGISTRY.for_kind("Namespace")
        for name in DEFAULT_NAMESPACES:
            try:
                await self.store.get(store_key(info, "", name))
            except NotFound:
                with contextlib.suppress(KeyExists):  # another starter was first
                    await self.create(Namespace(metadata=ObjectMeta(name=name)))
        listed = await self.list(info)
        if self._ns_follower is None:
            self._ns_follower = asyncio.ensure_future(
                self._follow_namespaces(int(listed.resource_version)))

    async def close(self) -> None:
        """Stop background work (the namespace follower); the store stays open."""
        task, self._ns_follower = self._ns_follower, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._open_namespaces.clear()

    async def _follow_namespaces(self, revision: int) -> None:
        info = REGISTRY.for_kind("Namespace")
        while True:
            try:
                async with self.store.watch(key_prefix(info), revision + 1) as events:
                    async for event in events:
                        revision = event.revision
                        name = event.kv.key.rpartition("/")[2]
                        gone = event.type == "DELETE" or bool(
                            self.decode_kv(info, event.kv).metadata.deletion_timestamp)
                        if gone:
                            self._open_namespaces.pop(name, None)
                        else:
                            self._open_namespaces[name] = event.kv.mod_revision
            except KstateError:
                # Fell behind or lost the store: forget (reads go to the store) and
                # start again from a fresh list.
                self._open_namespaces.clear()
                try:
                    listed = await self.list(info)
                except KstateError:
                    await self.clock.sleep(1.0)
                    continue
                revision = int(listed.resource_version)
                self._open_namespaces.update(
                    (n.metadata.name, int(n.metadata.resource_version)) for n in listed.items
                    if not n.metadata.deletion_timestamp)

    # -------------------------------------------------------------- decoding

    def decode_kv(self, info: KindInfo, kv: KeyValue) -> KubeObject:
        """The object stored in ``kv`` with its resourceVersion (decoded once per version)."""
        hit = self.versions.get(kv.key, kv.mod_revision)
        if hit is not None:
            return hit[0]
        try:
            data = json.loads(kv.value)
        except ValueError:
            raise KstateError(f"stored value of {kv.key} is not JSON") from None
        decoded = from_dict(info.cls, data)
        assert isinstance(decoded, KubeObject)
        obj = _with_rv(decoded, kv.mod_revision)
        self.versions.put(kv.key, kv.mod_revision, obj, kv.value)
        return obj

    def json_of(self, obj: KubeObject) -> bytes:
        """The JSON of an object this core returned, from the stored bytes when it can
        (no re-encoding), else encoded afresh."""
        meta = obj.metadata
        rv = meta.resource_version
        info = REGISTRY.get_for_class(type(obj))
        if rv.isdigit() and info is not None and info.resource and meta.name:
            key = store_key(info, meta.namespace if info.namespaced else "", meta.name)
            hit = self.versions.get(key, int(rv))
            if hit is not None and (hit[0] is obj or hit[0] == obj):
                return with_resource_version(hit[1], rv)
        return json.dumps(to_dict(obj), separators=(",", ":"), ensure_ascii=False).encode()

    def _stored(self, key: str, rev: int, obj: K, stored: bytes) -> K:
        """``obj`` as written at ``rev`` (remembered with its bytes)."""
        obj = _with_rv(obj, rev)
        self.versions.put(key, rev, obj, stored)
        return obj

    async def _read(self, info: KindInfo, namespace: str, name: str
                    ) -> tuple[KubeObject, KeyValue]:
        key = self._key(info, namespace, name)
        try:
            kv = await self.store.get(key)
        except NotFound:
            raise not_found(info, name) from None
        return self.decode_kv(info, kv), kv

    def _key(self, info: KindInfo, namespace: str, name: str) -> str:
        if not name:
            raise BadRequest(f"a {info.kind} name is required")
        if info.namespaced and not namespace:
            raise BadRequest(f"{info.kind} is namespaced: a namespace is required")
        return store_key(info, namespace if info.namespaced else "", name)

    # -------------------------------------------------------------- reads

    async def get(self, info: KindInfo, namespace: str, name: str) -> KubeObject:
        """The object (404 ``NotFound`` if absent)."""
        obj, _ = await self._read(info, namespace, name)
        return obj

    async def list(
        self,
        info: KindInfo,
        namespace: str = "",
        *,
        selection: Selection | None = None,
        limit: int | None = None,
        continue_token: str = "",
        resource_version: str = "",
        resource_version_match: str = "",
    ) -> ObjectList:
        """Objects of a kind (in a namespace, or all), filtered by ``selection``.

        ``limit`` counts *matching* objects; the continue token resumes after the last
        object examined, at the first page's revision (Kubernetes' semantics).
        ``resource_version`` with ``resource_version_match="Exact"`` reads the past.
        """
        sel = selection or Selection()
        prefix = key_prefix(info, namespace)
        revision: int | None = None
        if continue_token and resource_version not in ("", "0"):
            raise BadRequest("specifying resource version is not allowed when using continue")
        if resource_version_match not in ("", "Exact", "NotOlderThan"):
            raise BadRequest(f"resourceVersionMatch {resource_version_match!r} is not "
                             "supported: use Exact or NotOlderThan")
        if resource_version_match and not resource_version:
            raise BadRequest("resourceVersionMatch is forbidden unless resourceVersion is "
                             "provided")
        if resource_version and resource_version != "0":
            rv = parse_resource_version(resource_version)
            if resource_version_match == "Exact":
                revision = rv
            elif rv > await self.store.revision():
                raise BadRequest(f"Too large resource version: {rv}, current: "
                                 f"{await self.store.revision()}")
        if limit is not None and limit < 0:
            raise BadRequest("limit must not be negative")
        items: list[KubeObject] = []
        token: str | None = continue_token or None
        read_at = 0
        while True:
            want = None if not limit else limit - len(items)
            page = await self.store.list(prefix, revision=revision, limit=want,
                                         continue_token=token)
            read_at = page.revision
            revision = page.revision
            for kv in page.items:
                obj = self.decode_kv(info, kv)
                if not sel or sel.matches(obj):
                    items.append(obj)
            token = page.continue_token
            if token is None or (limit and len(items) >= limit):
                break
        return ObjectList(tuple(items), str(read_at), token or "")

    # -------------------------------------------------------------- create

    async def create(self, obj: K, *, namespace: str = "",
                     opts: WriteOptions | None = None) -> K:
        """Admit and store a new object; the stored object (uid, resourceVersion, ...).

        ``namespace`` (the request URL's) wins over an empty ``metadata.namespace`` and
        must agree with a set one. 409 ``AlreadyExists``, 404 when the namespace is
        missing, 403 when it is terminating, 422 ``Invalid`` with every cause.

        The namespace's admission and the write are one store transaction: the write is
        guarded by the namespace's revision the admission read (see :meth:`_store_new`).
        """
        opts = opts or WriteOptions()
        info = REGISTRY.for_class(type(obj))
        obj = writes.in_namespace(info, obj, namespace)
        self._check_fields(info, obj, opts)
        obj = writes.admit_create(obj, self.clock.now(), self._uid(), self.toleration_seconds)
        guard = await self._admit_to_namespace(obj.metadata.namespace) if info.namespaced \
            else None
        for _ in range(8):
            candidate = writes.with_generated_name(
                obj, "".join(self._rng.choice(NAME_CHARS) for _ in range(5)))
            key = self._key(info, candidate.metadata.namespace, candidate.metadata.name)
            try:
                if isinstance(candidate, Service):
                    async with self._alloc_lock:
                        candidate = await self._allocate(candidate, key)  # type: ignore[assignment]
                        return await self._store_new(key, candidate, opts, guard)
                return await self._store_new(key, candidate, opts, guard)
            except KeyExists:
                if obj.metadata.name:
                    raise KeyExists(f'{info.plural} "{obj.metadata.name}" already exists',
                                    key=obj.metadata.name) from None
        raise KeyExists(f"{info.plural}: could not generate a unique name from "
                        f"{obj.metadata.generate_name!r}; try again")

    async def _store_new(self, key: str, obj: K, opts: WriteOptions, guard: Guard | None) -> K:
        """Write a new object: the one store create of the API server.

        Namespaced content carries its namespace's admission as the ``guard`` (the
        namespace's revision it admitted), so the namespace cannot be marked (or
        finalized and removed) between the check and the write. When the guard lost,
        the namespace changed meanwhile: admit again against what is stored now — 403 if
        it is now terminating, 404 if gone, else write again (each retry means another
        write to the namespace went through). A dry run writes nothing, so the admission
        alone decides it.
        """
        namespace = obj.metadata.namespace
        if opts.dry_run:
            try:
                await self.store.get(key)
            except NotFound:
                return obj
            raise KeyExists("exists", key=key)
        stored = encode(obj)
        while True:
            try:
                kv = await self.store.create(key, stored, guard=guard)
                break
            except GuardChanged:
                assert guard is not None
                if self._open_namespaces.get(namespace) == guard.mod_revision:
                    del self._open_namespaces[namespace]  # stale: the follower is behind
                guard = await self._admit_to_namespace(namespace, cached=False)
        if isinstance(obj, Namespace):
            self._open_namespaces[obj.metadata.name] = kv.mod_revision
        return self._stored(key, kv.mod_revision, obj, stored)

    def _check_fields(self, info: KindInfo, obj: KubeObject, opts: WriteOptions) -> None:
        if opts.field_validation == "Ignore":
            return
        causes = unknown_field_causes(obj)
        if not causes:
            return
        listed = ", ".join(f'unknown field "{c.field}"' for c in causes)
        if opts.field_validation == "Strict":
            raise BadRequest(
                f'{info.kind} in version "{info.version}" cannot be handled as a '
                f"{info.kind}: strict decoding error: {listed}", causes=causes)
        opts.warnings.extend(f'unknown field "{c.field}"' for c in causes)

    def _uid(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    async def _admit_to_namespace(self, namespace: str, *, cached: bool = True) -> Guard:
        """NamespaceLifecycle admission (``writes.check_namespace_open``: 404 missing, 403
        terminating) of new content in ``namespace``; the guard its write must carry."""
        info = REGISTRY.for_kind("Namespace")
        key = store_key(info, "", namespace)
        revision = self._open_namespaces.get(namespace) if cached else None
        if revision is not None:
            return Guard(key, revision)
        kv: KeyValue | None
        try:
            kv = await self.store.get(key)
        except NotFound:
            kv = None
        ns = None if kv is None else self.decode_kv(info, kv)
        writes.check_namespace_open(namespace, ns if isinstance(ns, Namespace) else None)
        assert kv is not None  # a missing namespace was refused (404)
        return Guard(key, kv.mod_revision)

    async def _allocate(self, svc: Service, key: str) -> Service:
        """Fire ``allocate`` and fill addresses from what the store's Services hold."""
        others = await self._all_services(exclude=key)
        allocated = self.allocator.assign(svc, others)
        if allocated.spec.cluster_ip and lifecycle.service_state(svc) == "Created":
            lifecycle.fire("service", "Created", "allocate",
                           obj=lifecycle.object_name(svc))
        return allocated

    async def _all_services(self, exclude: str = "") -> builtins.list[Service]:
        info = REGISTRY.for_kind("Service")
        out: builtins.list[Service] = []
        token: str | None = None
        while True:
            page = await self.store.list(key_prefix(info), limit=1000, continue_token=token)
            out.extend(self.decode_kv(info, kv) for kv in page.items  # type: ignore[misc]
                       if kv.key != exclude)
            token = page.continue_token
            if token is None:
                return out

    # -------------------------------------------------------------- update

    async def update(self, obj: K, *, namespace: str = "", subresource: str = "",
                     opts: WriteOptions | None = None) -> K:
        """Replace an object (``subresource="status"``: only its status; ``"finalize"``:
        only a Namespace's ``spec.finalizers``, which removes a terminating namespace
        with the last one).

        A set ``metadata.resourceVersion`` is a precondition (409 ``Conflict`` when
        stale); without one the update applies to the latest version.
        """
        opts = opts or WriteOptions()
        info = REGISTRY.for_class(type(obj))
        obj = writes.in_namespace(info, obj, namespace)
        writes.check_subresource(info, subresource, ("", "status", "finalize"))
        self._check_fields(info, obj, opts)
        meta = obj.metadata
        expected = parse_resource_version(meta.resource_version) if meta.resource_version \
            else None
        try:
            return await self._update(info, meta.namespace, meta.name,
                                      lambda old: obj, subresource=subresource,
                                      expected=expected, opts=opts)
        except NotFound:
            if not writes.creates_on_update(info, subresource, meta.resource_version):
                raise
        return await self.create(attrs.evolve(obj, metadata=attrs.evolve(
            meta, resource_version="")), opts=opts)

    async def _update(
        self,
        info: KindInfo,
        namespace: str,
        name: str,
        change: Callable[[KubeObject], KubeObject],
        *,
        subresource: str = "",
        expected: int | None = None,
        opts: WriteOptions,
    ) -> Any:
        """Read, change, admit (``writes.plan_update``), compare-and-swap; retried on a
        lost race unless the caller named the version it changed (``expected``)."""
        while True:
            old, kv = await self._read(info, namespace, name)
            if expected is not None:
                writes.check_resource_version(info, old, str(expected))
            proposed = change(old)
            if isinstance(old, Service):
                async with self._alloc_lock:
                    others = await self._all_services(exclude=kv.key)
                    plan = writes.plan_update(
                        old, proposed, self.clock.now(), subresource,
                        allocate=functools.partial(self.allocator.assign, others=others))
                    result = await self._write(info, kv, plan, opts)
            else:
                plan = writes.plan_update(old, proposed, self.clock.now(), subresource)
                result = await self._write(info, kv, plan, opts)
            if result is not None:
                return result
            if expected is not None:
                raise _conflict(info, name)

    async def _write(self, info: KindInfo, kv: KeyValue, plan: writes.UpdatePlan,
                     opts: WriteOptions) -> KubeObject | None:
        """Carry out an update's plan over ``kv`` (``None`` if the CAS lost)."""
        new = plan.obj
        if not plan.changed or opts.dry_run:
            return new
        if plan.remove:
            try:
                gone = await self.store.delete(kv.key, expected_revision=kv.mod_revision)
            except Conflict:
                return None
            return _with_rv(new, gone.mod_revision)
        stored = encode(new)
        try:
            written = await self.store.update(kv.key, stored,
                                              expected_revision=kv.mod_revision)
        except Conflict:
            return None
        except NotFound:
            raise not_found(info, new.metadata.name) from None
        return self._stored(kv.key, written.mod_revision, new, stored)

    # -------------------------------------------------------------- patch

    async def patch(
        self,
        info: KindInfo,
        namespace: str,
        name: str,
        patch_type: str,
        patch: Any,
        *,
        subresource: str = "",
        opts: WriteOptions | None = None,
    ) -> KubeObject:
        """Apply a JSON merge / strategic merge / JSON patch (``patch_type`` is the
        ``Content-Type``) to the latest version and update. A ``resourceVersion`` the
        patch sets is a precondition."""
        opts = opts or WriteOptions()
        writes.check_subresource(info, subresource, ("", "status", "scale"))
        if subresource == "scale":
            return await self._patch_scale(info, namespace, name, patch_type, patch, opts)
        checked = [False]

        def change(old: KubeObject) -> KubeObject:
            doc = to_dict(old)
            patched = apply_patch(patch_type, doc, patch, info.cls)
            new = self._decode_patched(info, patched, name)
            rv = new.metadata.resource_version
            if rv and rv != old.metadata.resource_version:
                parse_resource_version(rv)
                raise _conflict(info, name)
            if not checked[0]:
                checked[0] = True
                self._check_fields(info, new, opts)
            return new

        return await self._update(info, namespace, name, change, subresource=subresource,
                                  opts=opts)

    def _decode_patched(self, info: KindInfo, data: Any, name: str) -> KubeObject:
        if not isinstance(data, dict):
            raise InvalidObject(info.kind, name, [Cause("", "FieldValueTypeInvalid",
                                                        "the patched object is not an object")])
        obj, errs = decode(info.cls, data)
        if errs or obj is None:
            raise InvalidObject(info.kind, name, errs)
        assert isinstance(obj, KubeObject)
        if obj.metadata.name != name:
            raise BadRequest.at("metadata.name", f"the name of the object "
                                f"({reprlib.repr(obj.metadata.name)}) does not match the "
                                f"name on the URL ({name})")
        return obj

    # -------------------------------------------------------------- scale

    async def get_scale(self, info: KindInfo, namespace: str, name: str) -> Scale:
        """The ``autoscaling/v1`` Scale view of a replication controller."""
        self._check_scalable(info)
        rc, _ = await self._read(info, namespace, name)
        return self._scale_of(rc)  # type: ignore[arg-type]

    def _check_scalable(self, info: KindInfo) -> None:
        if info.kind != "ReplicationController":
            raise NotFound(f"{info.plural}/scale is not a subresource kstate serves")

    def _scale_of(self, rc: ReplicationController) -> Scale:
        m = rc.metadata
        return Scale(
            metadata=ObjectMeta(name=m.name, namespace=m.namespace, uid=m.uid,
                                resource_version=m.resource_version,
                                creation_timestamp=m.creation_timestamp),
            spec=ScaleSpec(replicas=rc.spec.replicas or 0),
            status=ScaleStatus(replicas=rc.status.replicas, selector=_scale_selector(rc)),
        )

    async def update_scale(self, info: KindInfo, namespace: str, name: str, scale: Scale,
                           opts: WriteOptions | None = None) -> Scale:
        """Set ``spec.replicas`` through the Scale (its resourceVersion is a precondition)."""
        self._check_scalable(info)
        opts = opts or WriteOptions()
        if scale.metadata.name and scale.metadata.name != name:
            raise BadRequest.at("metadata.name", f"the name of the object "
                                f"({reprlib.repr(scale.metadata.name)}) does not match the "
                                f"name on the URL ({name})")
        if scale.spec.replicas < 0:
            raise InvalidObject("Scale", name, [Cause("spec.replicas", "FieldValueInvalid",
                                                      "must be greater than or equal to 0")])
        rv = scale.metadata.resource_version
        expected = parse_resource_version(rv) if rv else None

        def change(old: KubeObject) -> KubeObject:
            assert isinstance(old, ReplicationController)
            return attrs.evolve(old, spec=attrs.evolve(old.spec, replicas=scale.spec.replicas))

        rc = await self._update(info, namespace, name, change, expected=expected, opts=opts)
        return self._scale_of(rc)

    async def _patch_scale(self, info: KindInfo, namespace: str, name: str, patch_type: str,
                           patch: Any, opts: WriteOptions) -> KubeObject:
        current = await self.get_scale(info, namespace, name)
        patched = apply_patch(patch_type, to_dict(current), patch, Scale)
        obj, errs = decode(Scale, patched)
        if errs or obj is None:
            raise InvalidObject("Scale", name, errs)
        if obj.metadata.resource_version == current.metadata.resource_version:
            obj = attrs.evolve(obj, metadata=attrs.evolve(obj.metadata, resource_version=""))
        return await self.update_scale(info, namespace, name, obj, opts)

    # -------------------------------------------------------------- delete

    async def delete(self, info: KindInfo, namespace: str, name: str,
                     options: DeleteOptions | None = None) -> Deleted:
        """Delete as ``writes.plan_delete`` decides (the object's lifecycle machine).

        Preconditions (uid, resourceVersion) are 409 ``Conflict`` when they do not hold.
        """
        options = options or DeleteOptions()
        writes.check_delete_request(info, name, options)
        dry_run = "All" in options.dry_run
        while True:
            obj, kv = await self._read(info, namespace, name)
            writes.check_preconditions(obj, options.preconditions)
            plan = writes.plan_delete(obj, options, self.clock.now())
            marked = None if plan.remove else (plan.updated or obj)
            if marked is obj:
                return Deleted(obj, removed=False)
            if dry_run:
                return Deleted(marked or obj, removed=marked is None)
            if isinstance(obj, Namespace):
                # Before the mark is written: creates read the store from now on (the
                # guard would refuse them anyway, after a wasted write).
                self._open_namespaces.pop(obj.metadata.name, None)
            try:
                if marked is None:
                    gone = await self.store.delete(kv.key, expected_revision=kv.mod_revision)
                    return Deleted(self._stored(kv.key, gone.mod_revision, obj, kv.value),
                                   removed=True)
                stored = encode(marked)
                written = await self.store.update(kv.key, stored,
                                                  expected_revision=kv.mod_revision)
            except Conflict:
                continue
            except NotFound:
                raise not_found(info, name) from None
            marked = self._stored(kv.key, written.mod_revision, marked, stored)
            return Deleted(marked, removed=False)

    async def delete_collection(self, info: KindInfo, namespace: str = "", *,
                                selection: Selection | None = None,
                                options: DeleteOptions | None = None) -> ObjectList:
        """Delete every matching object (one by one, each as :meth:`delete` would)."""
        listed = await self.list(info, namespace, selection=selection)
        done = []
        for obj in listed.items:
            try:
                result = await self.delete(info, obj.metadata.namespace, obj.metadata.name,
                                           options)
            except NotFound:
                continue
            done.append(result.object)
        return ObjectList(tuple(done), listed.resource_version)

    # -------------------------------------------------------------- pod subresources

    async def bind(self, namespace: str, binding: Binding, *, name: str = "",
                   opts: WriteOptions | None = None) -> Pod:
        """Assign a pod to a node (the scheduler's write): ``spec.nodeName`` and the
        ``PodScheduled`` condition, through the Pod machine's ``schedule`` trigger.
        409 if the pod is already bound or being deleted."""
        opts = opts or WriteOptions()
        pod_name, node, uid = writes.binding_request(namespace, binding, name)
        now = self.clock.now()
        return await self._update(
            REGISTRY.for_kind("Pod"), namespace, pod_name,
            lambda old: writes.bind(old, node, uid, now),  # type: ignore[arg-type]
            subresource="binding", opts=opts)

    async def evict(self, namespace: str, name: str, eviction: Eviction | None = None
                    ) -> Deleted:
        """A polite delete of a pod (no disruption budgets exist, so always allowed)."""
        return await self.delete(REGISTRY.for_kind("Pod"), namespace, name,
                                 writes.eviction_options(eviction))

    async def log_location(self, namespace: str, name: str, container: str = "") -> str:
        """The node agent URL serving this pod container's log (see ``logs.py``)."""
        from kstate.api.server.logs import agent_log_url, choose_container

        pod = await self.get(REGISTRY.for_kind("Pod"), namespace, name)
        assert isinstance(pod, Pod)
        node_name = pod.spec.node_name
        if not node_name:
            raise BadRequest(f'pod "{name}" is not scheduled to a node yet: no logs')
        container = choose_container(pod, container)
        try:
            node = await self.get(REGISTRY.for_kind("Node"), "", node_name)
        except NotFound:
            raise NotFound(f'nodes "{node_name}" not found', key=node_name) from None
        assert isinstance(node, Node)
        return agent_log_url(node, namespace, name, container)

    # -------------------------------------------------------------- watch

    def watch(
        self,
        info: KindInfo,
        namespace: str = "",
        *,
        selection: Selection | None = None,
        resource_version: str = "",
        allow_bookmarks: bool = False,
        send_initial_events: bool | None = None,
        timeout_seconds: float | None = None,
        bookmark_interval: float = 60.0,
    ) -> WatchStream:
        """A stream of changes (see :class:`WatchStream`); call ``start()`` (or enter it)
        before iterating so bad arguments surface as errors, not as a broken stream."""
        return WatchStream(self, info, namespace, selection or Selection(), resource_version,
                           allow_bookmarks, send_initial_events, timeout_seconds,
                           bookmark_interval)


# ------------------------------------------------------------------ watch streams


#: buffered watch events a stream takes before it lets the loop run other tasks
_DIRECT_BURST = 64


class WatchStream:
    """Kubernetes watch semantics over a store watch.

    * no resourceVersion (or ``"0"``): "get state and start at most recent" — a synthetic
      ``ADDED`` per existing object, then changes after the list's revision;
    * a resourceVersion: every change after it (an ``ERROR`` event carrying a 410
      ``Compacted`` if that history is gone);
    * selectors apply to both the old and the new object: an object that stops matching
      arrives as ``DELETED``, one that starts matching as ``ADDED``;
    * ``allow_bookmarks``: a ``BOOKMARK`` (only ``metadata.resourceVersion``) every
      ``bookmark_interval`` seconds of the core's clock, and after the initial events
      when ``send_initial_events`` is asked for;
    * ``timeout_seconds`` (core clock) ends the stream cleanly.
    """

    def __init__(self, core: ApiCore, info: KindInfo, namespace: str, selection: Selection,
                 resource_version: str, allow_bookmarks: bool,
                 send_initial_events: bool | None, timeout_seconds: float | None,
                 bookmark_interval: float) -> None:
        self.core = core
        self.info = info
        self.namespace = namespace
        self.selection = selection
        self.resource_version = resource_version
        self.allow_bookmarks = allow_bookmarks
        self.send_initial_events = send_initial_events
        self.timeout_seconds = timeout_seconds
        self.bookmark_interval = bookmark_interval
        self._initial: list[KubeObject] = []
        self._store_watch: Any = None
        self._start_error: KstateError | None = None
        self._last_rev = 0
        self._started = False
        self._closed = False

    async def start(self) -> WatchStream:
        """Check the arguments and open the store watch (errors raise here)."""
        if self._started:
            return self
        self._started = True
        rv = self.resource_version
        if self.send_initial_events and not self.allow_bookmarks:
            raise BadRequest("sendInitialEvents requires allowWatchBookmarks=true")
        if self.timeout_seconds is not None and self.timeout_seconds < 0:
            raise BadRequest("timeoutSeconds must not be negative")
        initial = self.send_initial_events if self.send_initial_events is not None else (
            rv in ("", "0"))
        if initial:
            listed = await self.core.list(self.info, self.namespace, selection=self.selection)
            self._initial = list(listed.items)
            start = int(listed.resource_version)
        else:
            start = parse_resource_version(rv) if rv else await self.core.store.revision()
        self._last_rev = start
        prefix = key_prefix(self.info, self.namespace)
        watch = self.core.store.watch(prefix, start + 1)
        try:
            await watch.start()
        except Compacted as exc:
            self._start_error = Compacted(
                f"too old resource version: {start} ({exc})")
        self._store_watch = watch
        return self

    async def close(self) -> None:
        self._closed = True
        if self._store_watch is not None:
            await self._store_watch.close()

    async def __aenter__(self) -> WatchStream:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __aiter__(self) -> AsyncIterator[WatchEvent]:
        return self._events()

    def _bookmark(self) -> WatchEvent:
        obj = self.info.cls(metadata=ObjectMeta(  # type: ignore[call-arg]
            resource_version=str(self._last_rev)))
        assert isinstance(obj, KubeObject)
        return WatchEvent("BOOKMARK", obj)

    async def _events(self) -> AsyncIterator[WatchEvent]:
        await self.start()
        try:
            for obj in self._initial:
                yield WatchEvent("ADDED", obj)
            if self.send_initial_events and self.allow_bookmarks:
                mark = self._bookmark()
                assert mark.object is not None
                meta = attrs.evolve(mark.object.metadata, annotations=mark.object.metadata
                                    .annotations.set("k8s.io/initial-events-end", "true"))
                yield WatchEvent("BOOKMARK", attrs.evolve(mark.object, metadata=meta))
            if self._start_error is not None:
                yield WatchEvent("ERROR", error=self._start_error)
                return
            async for event in self._changes():
                yield event
        finally:
            await self.close()

    async def _changes(self) -> AsyncIterator[WatchEvent]:
        clock = self.core.clock
        deadline = None if self.timeout_seconds is None else (
            clock.monotonic() + self.timeout_seconds)
        pending: asyncio.Task[Event] | None = None
        timer: asyncio.Task[None] | None = None
        next_mark = clock.monotonic() + self.bookmark_interval
        direct = 0  # events taken in a row without yielding to the loop
        try:
            while not self._closed:
                if pending is None and direct < _DIRECT_BURST and self._store_watch.ready():
                    # Already buffered (most events under load): taken directly, with
                    # no task and no wait racing the timer — but only a burst at a time,
                    # so that a watcher far behind does not hold the loop.
                    direct += 1
                    next_event: Awaitable[Event] | None = self._store_watch.__anext__()
                else:
                    direct = 0
                    waits: list[float] = []
                    if deadline is not None:
                        waits.append(deadline - clock.monotonic())
                    if self.allow_bookmarks:
                        waits.append(next_mark - clock.monotonic())
                    if pending is None:
                        pending = asyncio.ensure_future(self._store_watch.__anext__())
                    if waits and timer is None:
                        timer = asyncio.ensure_future(clock.sleep(max(0.0, min(waits))))
                    done, _ = await asyncio.wait([t for t in (pending, timer) if t is not None],
                                                 return_when=asyncio.FIRST_COMPLETED)
                    if timer is not None and timer in done:
                        timer = None
                    next_event, pending = (pending, None) if pending in done else (None, pending)
                if next_event is not None:
                    try:
                        event = await next_event
                    except StopAsyncIteration:
                        return
                    except Compacted as exc:
                        yield WatchEvent("ERROR", error=exc)
                        return
                    self._last_rev = event.revision
                    out = self._translate(event)
                    if out is not None:
                        yield out
                now = clock.monotonic()
                if deadline is not None and now >= deadline:
                    return
                if self.allow_bookmarks and now >= next_mark:
                    next_mark = now + self.bookmark_interval
                    yield self._bookmark()
        finally:
            for task in (pending, timer):
                if task is not None and not task.done():
                    task.cancel()

    def _translate(self, event: Event) -> WatchEvent | None:
        decode_kv, info, sel = self.core.decode_kv, self.info, self.selection
        old = decode_kv(info, event.prev_kv) if event.prev_kv is not None else None
        if event.type == "DELETE":
            if old is None or (sel and not sel.matches(old)):
                return None
            assert event.prev_kv is not None
            return WatchEvent("DELETED", self.core._stored(event.kv.key, event.revision, old,
                                                          event.prev_kv.value))
        new = decode_kv(info, event.kv)
        new_in = not sel or sel.matches(new)
        old_in = old is not None and (not sel or sel.matches(old))
        if new_in:
            return WatchEvent("MODIFIED" if old_in else "ADDED", new)
        if old_in:
            return WatchEvent("DELETED", new)
        return None


__all__ = [
    "CREATE_ON_UPDATE",
    "DEFAULT_NAMESPACES",
    "FOREGROUND_FINALIZER",
    "ORPHAN_FINALIZER",
    "STATUS_KINDS",
    "ApiCore",
    "Deleted",
    "ObjectList",
    "WatchEvent",
    "WatchStream",
    "WriteOptions",
    "encode",
    "parse_resource_version",
    "qos_class",
]
