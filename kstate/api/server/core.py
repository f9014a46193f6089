"""``ApiCore``: every resource semantic of the API server, with no HTTP in sight.

Where it sits: between the API's front doors and the store. The HTTP layer
(``http.py``, for kubectl, the Python client and ``HttpClient``) and ``LocalClient``
(in-process: the all-in-one daemon, model-driven stateful tests) both call the same
methods here, so an object written by a controller in-process goes through exactly the
admission a ``kubectl apply`` gets::

    request -> ApiCore: decoded object -> admission (defaults, DefaultTolerationSeconds,
      field validation, validation, lifecycle check, Service allocation) -> store (CAS)

Why it exists as one class: Kubernetes spreads these rules over generic registries,
per-kind strategies and admission plugins; here the few per-kind differences are small
tables and branches in one place, and every lifecycle decision is taken by firing the
object's machine (``kstate.api.lifecycle``): an update is accepted only if a trigger of
the machine explains it, and deletion is the machine's ``delete`` trigger deciding
between "remove now" and "mark Terminating / Deleting".

Stored values are the object's Kubernetes JSON without ``resourceVersion`` (the store's
``mod_revision`` is the resourceVersion, as in Kubernetes over etcd), ``metadata`` right
after ``kind`` so encoders may splice the version in without decoding.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import json
import os
import random
import reprlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Generic, TypeVar

import attrs

from kstate.api import lifecycle
from kstate.api.codec import Model, decode, from_dict, to_dict, unknown_field_causes
from kstate.api.defaults import DEFAULT_GRACE_SECONDS, add_default_tolerations, default
from kstate.api.helpers import set_condition
from kstate.api.meta import DeleteOptions, KubeObject, ObjectMeta
from kstate.api.objects import (
    Binding,
    Eviction,
    Namespace,
    NamespaceStatus,
    Node,
    Pod,
    PodCondition,
    PodStatus,
    ReplicationController,
    Scale,
    ScaleSpec,
    ScaleStatus,
    Service,
)
from kstate.api.quantity import QuantityError, parse_quantity
from kstate.api.registry import REGISTRY, KindInfo, key_prefix, store_key
from kstate.api.server.alloc import Allocator, NetworkConfig, keep_allocated
from kstate.api.server.patch import apply_patch
from kstate.api.server.selectors import Selection
from kstate.api.validation import validate, validate_update
from kstate.clock import Clock, RealClock, rfc3339
from kstate.errors import (
    BadRequest,
    Cause,
    Compacted,
    Conflict,
    Forbidden,
    InvalidObject,
    KeyExists,
    KstateError,
    NotFound,
)
from kstate.store import Backend, Event, KeyValue

K = TypeVar("K", bound=KubeObject)

DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")

#: Kinds whose ``status`` is written only through ``/status`` (the main resource keeps
#: the stored status, whatever the request says).
STATUS_KINDS = frozenset({"Pod", "ReplicationController", "Service", "Node", "Namespace"})
#: Kinds an update may create (Kubernetes' ``AllowCreateOnUpdate``).
CREATE_ON_UPDATE = frozenset({"Endpoints", "Event", "Lease"})
#: Kinds whose request status is discarded on create (the server owns it).
RESET_STATUS_ON_CREATE = frozenset({"Pod", "ReplicationController", "Service"})

FOREGROUND_FINALIZER = "foregroundDeletion"
ORPHAN_FINALIZER = "orphan"
FIELD_VALIDATIONS = ("Strict", "Warn", "Ignore")

_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"  # Kubernetes' generateName alphabet
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


def not_found(info: KindInfo, name: str) -> NotFound:
    return NotFound(f'{info.plural} "{name}" not found', key=name)


def _conflict(info: KindInfo, name: str, why: str = "") -> Conflict:
    why = why or ("the object has been modified; please apply your changes to the latest "
                  "version and try again")
    return Conflict(f'Operation cannot be fulfilled on {info.plural} "{name}": {why}', key=name)


def qos_class(pod: Pod) -> str:
    """Kubernetes' QoS class: Guaranteed (limits == requests for cpu and memory in every
    container), BestEffort (none set), Burstable otherwise."""
    any_set = False
    guaranteed = True
    for c in pod.spec.containers:
        req, lim = c.resources.requests, c.resources.limits
        for res in ("cpu", "memory"):
            limit, request = lim.get(res), req.get(res)
            if limit is None and request is None:
                guaranteed = False
                continue
            any_set = True
            if limit is None:
                guaranteed = False
            elif request is not None and request != limit:
                # Different spellings may still be equal quantities ("1" and "1000m").
                try:
                    guaranteed = guaranteed and parse_quantity(request) == parse_quantity(limit)
                except QuantityError:
                    guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


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
        #: Namespaces known to exist and not be terminating, followed by a watch (an
        #: informer, as Kubernetes' NamespaceLifecycle admission uses); a miss reads
        #: the store, so it only ever saves reads.
        self._open_namespaces: set[str] = set()
        self._ns_follower: asyncio.Task[None] | None = None
        self._sweeping: set[str] = set()  # namespaces whose sweep checks at its end
        self._now: tuple[int, str] = (-1, "")

    async def start(self) -> None:
        """Create the default namespaces that are missing and resume the sweep of
        namespaces left terminating by a previous run (idempotent)."""
        info = REGISTRY.for_kind("Namespace")
        for name in DEFAULT_NAMESPACES:
            try:
                await self.store.get(store_key(info, "", name))
            except NotFound:
                with contextlib.suppress(KeyExists):  # another starter was first
                    await self.create(Namespace(metadata=ObjectMeta(name=name)))
        listed = await self.list(info)
        for ns in listed.items:
            if ns.metadata.deletion_timestamp:
                await self._sweep_namespace(ns)
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
                            self._open_namespaces.discard(name)
                        else:
                            self._open_namespaces.add(name)
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
                self._open_namespaces.update(n.metadata.name for n in listed.items
                                             if not n.metadata.deletion_timestamp)

    def now(self) -> str:
        """The clock's time as an RFC 3339 timestamp (formatted once per second: the
        formatting is a visible cost on the create path)."""
        second = int(self.clock.now())
        if second != self._now[0]:
            self._now = (second, rfc3339(second))
        return self._now[1]

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
        """
        opts = opts or WriteOptions()
        info = REGISTRY.for_class(type(obj))
        obj = self._in_namespace(info, obj, namespace)
        if obj.metadata.resource_version:
            raise BadRequest.at("metadata.resourceVersion",
                                "resourceVersion should not be set on objects to be created")
        self._check_fields(info, obj, opts)
        obj = self._prepare_create(info, obj)
        check_valid(obj)
        if info.namespaced:
            await self._check_namespace_open(obj.metadata.namespace)
        for _ in range(8):
            candidate = self._generate_name(obj)
            key = self._key(info, candidate.metadata.namespace, candidate.metadata.name)
            try:
                if isinstance(candidate, Service):
                    async with self._alloc_lock:
                        candidate = await self._allocate(candidate, key)  # type: ignore[assignment]
                        return await self._store_new(info, key, candidate, opts)
                return await self._store_new(info, key, candidate, opts)
            except KeyExists:
                if obj.metadata.name:
                    raise KeyExists(f'{info.plural} "{obj.metadata.name}" already exists',
                                    key=obj.metadata.name) from None
        raise KeyExists(f"{info.plural}: could not generate a unique name from "
                        f"{obj.metadata.generate_name!r}; try again")

    async def _store_new(self, info: KindInfo, key: str, obj: K, opts: WriteOptions) -> K:
        if opts.dry_run:
            try:
                await self.store.get(key)
            except NotFound:
                return obj
            raise KeyExists("exists", key=key)
        stored = encode(obj)
        kv = await self.store.create(key, stored)
        if isinstance(obj, Namespace):
            self._open_namespaces.add(obj.metadata.name)
        return self._stored(key, kv.mod_revision, obj, stored)

    def _in_namespace(self, info: KindInfo, obj: K, namespace: str) -> K:
        meta = obj.metadata
        if not info.namespaced:
            if meta.namespace:
                # Kubernetes clears it for cluster-scoped kinds; so do we.
                return attrs.evolve(obj, metadata=attrs.evolve(meta, namespace=""))
            return obj
        if namespace and meta.namespace and meta.namespace != namespace:
            raise BadRequest.at("metadata.namespace",
                                "the namespace of the provided object does not match the "
                                f"namespace sent on the request ({reprlib.repr(meta.namespace)}"
                                f" vs {namespace!r})")
        if not meta.namespace:
            return attrs.evolve(obj, metadata=attrs.evolve(meta, namespace=namespace
                                                           or "default"))
        return obj

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

    def _prepare_create(self, info: KindInfo, obj: K) -> K:
        obj = default(obj)
        meta = attrs.evolve(
            obj.metadata,
            uid=self._uid(),
            creation_timestamp=self.now(),
            generation=1 if hasattr(obj, "spec") else 0,
            deletion_timestamp="",
            deletion_grace_period_seconds=None,
            extra=obj.metadata.extra.without("managedFields", "selfLink"),
        )
        changes: dict[str, Any] = {"metadata": meta}
        if isinstance(obj, Pod):
            obj = add_default_tolerations(obj, self.toleration_seconds)  # type: ignore[assignment]
            changes["status"] = PodStatus(phase="Pending", qos_class=qos_class(obj))
        elif info.kind in RESET_STATUS_ON_CREATE:
            changes["status"] = type(obj.status)()  # type: ignore[attr-defined]
        elif isinstance(obj, Namespace):
            changes["status"] = NamespaceStatus(phase="Active")
        return attrs.evolve(obj, **changes)

    def _uid(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def _generate_name(self, obj: K) -> K:
        meta = obj.metadata
        if meta.name or not meta.generate_name:
            return obj
        suffix = "".join(self._rng.choice(_NAME_CHARS) for _ in range(5))
        name = meta.generate_name[:58] + suffix
        return attrs.evolve(obj, metadata=attrs.evolve(meta, name=name))

    async def _check_namespace_open(self, namespace: str) -> None:
        if namespace in self._open_namespaces:
            return
        info = REGISTRY.for_kind("Namespace")
        try:
            ns, _ = await self._read(info, "", namespace)
        except NotFound:
            raise NotFound(f'namespaces "{namespace}" not found', key=namespace) from None
        if ns.metadata.deletion_timestamp:
            raise Forbidden(f"unable to create new content in namespace {namespace} because "
                            "it is being terminated")

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
        """Replace an object (``subresource="status"``: only its status).

        A set ``metadata.resourceVersion`` is a precondition (409 ``Conflict`` when
        stale); without one the update applies to the latest version.
        """
        opts = opts or WriteOptions()
        info = REGISTRY.for_class(type(obj))
        obj = self._in_namespace(info, obj, namespace)
        self._check_subresource(info, subresource, ("", "status"))
        self._check_fields(info, obj, opts)
        meta = obj.metadata
        expected = parse_resource_version(meta.resource_version) if meta.resource_version \
            else None
        try:
            return await self._update(info, meta.namespace, meta.name,
                                      lambda old: obj, subresource=subresource,
                                      expected=expected, opts=opts)
        except NotFound:
            if subresource or info.kind not in CREATE_ON_UPDATE or expected is not None:
                raise
        return await self.create(attrs.evolve(obj, metadata=attrs.evolve(
            meta, resource_version="")), opts=opts)

    def _check_subresource(self, info: KindInfo, subresource: str,
                           allowed: tuple[str, ...]) -> None:
        if subresource == "status" and info.kind not in STATUS_KINDS:
            raise NotFound(f"{info.plural} have no status subresource")
        if subresource not in allowed:
            raise NotFound(f"{info.plural}/{subresource} is not a subresource kstate serves")

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
        """Read, change, admit, compare-and-swap; retried on a lost race unless the
        caller named the version it changed (``expected``)."""
        while True:
            old, kv = await self._read(info, namespace, name)
            if expected is not None and kv.mod_revision != expected:
                raise _conflict(info, name)
            proposed = change(old)
            if isinstance(old, Service):
                async with self._alloc_lock:
                    new = await self._admit_update(info, old, proposed, subresource)
                    result = await self._write(info, kv, old, new, opts)
            else:
                new = await self._admit_update(info, old, proposed, subresource)
                result = await self._write(info, kv, old, new, opts)
            if result is not None:
                return result
            if expected is not None:
                raise _conflict(info, name)

    async def _admit_update(self, info: KindInfo, old: KubeObject, new: KubeObject,
                            subresource: str) -> KubeObject:
        new = self._merge_update(info, old, new, subresource)
        if subresource != "binding":
            # A binding changes only what ``bind`` sets from a validated Binding (the
            # node name, the PodScheduled condition) on a stored, valid pod; like
            # Kubernetes' binding storage it skips the pod's update validation, whose
            # full walk was the largest part of a binding's cost.
            check_valid_update(old, new)
        if isinstance(new, Service) and isinstance(old, Service):
            key = self._key(info, old.metadata.namespace, old.metadata.name)
            new = self.allocator.assign(new, await self._all_services(exclude=key))
        lifecycle.check_change(old, new, self.clock.now())
        return new

    def _merge_update(self, info: KindInfo, old: KubeObject, new: KubeObject,
                      subresource: str) -> KubeObject:
        """The object the update really proposes: server-owned metadata kept, status or
        spec kept per subresource, generation bumped on a spec change."""
        if subresource == "status":
            return attrs.evolve(old, status=new.status)  # type: ignore[call-arg, attr-defined]
        if subresource == "binding":
            return new  # built from ``old`` by ``bind`` itself
        new = default(new)
        o, n = old.metadata, new.metadata
        if o.deletion_timestamp and set(n.finalizers) - set(o.finalizers):
            raise InvalidObject(info.kind, o.name, [Cause(
                "metadata.finalizers", "FieldValueForbidden",
                "Forbidden: no new finalizers can be added if the object is being deleted")])
        meta = attrs.evolve(
            n,
            namespace=n.namespace or o.namespace,
            uid=o.uid,
            creation_timestamp=o.creation_timestamp,
            deletion_timestamp=o.deletion_timestamp,
            deletion_grace_period_seconds=o.deletion_grace_period_seconds,
            generation=o.generation,
            resource_version=o.resource_version,
            extra=n.extra.without("managedFields", "selfLink"),
        )
        changes: dict[str, Any] = {"metadata": meta}
        if info.kind in STATUS_KINDS:
            changes["status"] = old.status  # type: ignore[attr-defined]
        if hasattr(new, "spec") and new.spec != old.spec:  # type: ignore[attr-defined]
            changes["metadata"] = attrs.evolve(meta, generation=o.generation + 1)
        merged = attrs.evolve(new, **changes)
        if isinstance(merged, Service) and isinstance(old, Service):
            merged = keep_allocated(old, merged)
        return merged

    async def _write(self, info: KindInfo, kv: KeyValue, old: KubeObject,
                     new: KubeObject, opts: WriteOptions) -> KubeObject | None:
        """Store ``new`` over ``kv`` (``None`` if the CAS lost). An update that removes
        the last finalizer of an object being deleted removes it, as in Kubernetes."""
        if new == old:
            return old
        if opts.dry_run:
            return new
        if self._finalized(new):
            try:
                gone = await self.store.delete(kv.key, expected_revision=kv.mod_revision)
            except Conflict:
                return None
            await self._after_removal(info, new)
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

    def _finalized(self, obj: KubeObject) -> bool:
        """Marked for deletion, no finalizer left, and (pods) no grace period running:
        the machine's last step (``finalized`` / ``released`` / ``delete`` with grace 0)
        removes it."""
        meta = obj.metadata
        if not meta.deletion_timestamp or meta.finalizers:
            return False
        name = lifecycle.object_name(obj)
        if isinstance(obj, Pod):
            if meta.deletion_grace_period_seconds:
                return False
            state = lifecycle.pod_state(obj, self.clock.now())
            return lifecycle.fire("pod", state, "delete", {"grace_seconds": 0},
                                  obj=name) == "Deleted"
        if isinstance(obj, ReplicationController):
            return lifecycle.fire("rc", "Deleting", "finalized", obj=name) == "Deleted"
        if isinstance(obj, Service):
            return lifecycle.fire("service", "Deleting", "released", obj=name) == "Deleted"
        # A terminating namespace goes when it is empty (``_remove_if_empty``).
        return not isinstance(obj, Namespace)

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
        self._check_subresource(info, subresource, ("", "status", "scale"))
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
        """Delete as the object's lifecycle machine decides (see the module docstring).

        Preconditions (uid, resourceVersion) are 409 ``Conflict`` when they do not hold.
        """
        options = options or DeleteOptions()
        check_valid(options)
        if info.kind == "Namespace" and name in DEFAULT_NAMESPACES:
            # Kubernetes' NamespaceLifecycle admission: these are immortal.
            raise Forbidden(f'namespaces "{name}" is forbidden: this namespace may not be '
                            "deleted")
        dry_run = "All" in options.dry_run
        while True:
            obj, kv = await self._read(info, namespace, name)
            self._check_preconditions(info, obj, options)
            marked = self._delete_decision(info, obj, options)
            if marked is obj:
                if isinstance(obj, Namespace) and not dry_run:
                    await self._sweep_namespace(obj)  # resume an interrupted sweep
                return Deleted(obj, removed=False)
            if dry_run:
                return Deleted(marked or obj, removed=marked is None)
            if isinstance(obj, Namespace):
                # Before the mark is written: no create may slip past a stale cache.
                self._open_namespaces.discard(obj.metadata.name)
            try:
                if marked is None:
                    gone = await self.store.delete(kv.key, expected_revision=kv.mod_revision)
                    await self._after_removal(info, obj)
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
            if isinstance(marked, Namespace):
                await self._sweep_namespace(marked)
            return Deleted(marked, removed=False)

    def _check_preconditions(self, info: KindInfo, obj: KubeObject,
                             options: DeleteOptions) -> None:
        pre = options.preconditions
        if pre is None:
            return
        meta = obj.metadata
        if pre.uid and pre.uid != meta.uid:
            raise _conflict(info, meta.name, f"Precondition failed: UID in precondition: "
                                             f"{pre.uid}, UID in object meta: {meta.uid}")
        if pre.resource_version and pre.resource_version != meta.resource_version:
            raise _conflict(info, meta.name,
                            f"Precondition failed: ResourceVersion in precondition: "
                            f"{pre.resource_version}, ResourceVersion in object meta: "
                            f"{meta.resource_version}")

    def _delete_decision(self, info: KindInfo, obj: KubeObject,
                         options: DeleteOptions) -> KubeObject | None:
        """``None``: remove now; ``obj`` itself: nothing to do; otherwise the object as
        marked for deletion."""
        now = self.clock.now()
        name = lifecycle.object_name(obj)
        meta = obj.metadata
        if isinstance(obj, Pod):
            return self._delete_pod(obj, options, now)
        if meta.deletion_timestamp:
            return obj  # already being deleted; the finalizers' owners finish the job
        if isinstance(obj, ReplicationController):
            propagation = self._propagation(options)
            state = lifecycle.fire("rc", lifecycle.rc_state(obj), "delete",
                                   {"propagation": propagation}, obj=name)
            if state == "Deleted":
                return self._mark(obj, now) if meta.finalizers else None
            finalizer = ORPHAN_FINALIZER if propagation == "Orphan" else FOREGROUND_FINALIZER
            finalizers = meta.finalizers if finalizer in meta.finalizers else (
                *meta.finalizers, finalizer)
            return self._mark(obj, now, finalizers=finalizers)
        if isinstance(obj, Service):
            state = lifecycle.fire("service", lifecycle.service_state(obj), "delete", obj=name)
            if meta.finalizers:
                return self._mark(obj, now)
            lifecycle.fire("service", state, "released", obj=name)
            return None
        if isinstance(obj, Node):
            lifecycle.fire("node", lifecycle.node_state(obj), "remove", obj=name)
        if isinstance(obj, Namespace):
            marked = self._mark(obj, now)
            return attrs.evolve(marked, status=attrs.evolve(obj.status, phase="Terminating"))
        return self._mark(obj, now) if meta.finalizers else None

    def _propagation(self, options: DeleteOptions) -> str:
        if options.propagation_policy:
            return options.propagation_policy
        if options.orphan_dependents is not None:
            return "Orphan" if options.orphan_dependents else "Background"
        # Kubernetes' default for core/v1 ReplicationControllers, kept for compatibility
        # (kubectl always sends Background).
        return "Orphan"

    def _mark(self, obj: K, now: float, *, grace: int = 0,
              finalizers: tuple[str, ...] | None = None) -> K:
        meta = obj.metadata
        return attrs.evolve(obj, metadata=attrs.evolve(
            meta,
            deletion_timestamp=rfc3339(now + grace),
            deletion_grace_period_seconds=grace,
            finalizers=meta.finalizers if finalizers is None else finalizers,
            generation=meta.generation + 1 if meta.generation else 0,
        ))

    def _delete_pod(self, pod: Pod, options: DeleteOptions, now: float) -> Pod | None:
        meta = pod.metadata
        grace = options.grace_period_seconds
        if grace is None:
            spec_grace = pod.spec.termination_grace_period_seconds
            grace = DEFAULT_GRACE_SECONDS if spec_grace is None else spec_grace
        state = lifecycle.pod_state(pod, now)
        name = lifecycle.object_name(pod)
        if meta.deletion_timestamp and grace > 0:
            # Already Terminating: a second delete may only shorten the grace period.
            current = meta.deletion_grace_period_seconds
            if current is not None and grace >= current:
                return pod
            deadline = min(now + grace, _timestamp(meta.deletion_timestamp, now + grace))
            return attrs.evolve(pod, metadata=attrs.evolve(
                meta, deletion_timestamp=rfc3339(deadline),
                deletion_grace_period_seconds=grace))
        after = lifecycle.fire("pod", state, "delete", {"grace_seconds": grace}, obj=name)
        if after == "Deleted":
            return self._mark(pod, now) if meta.finalizers else None
        return self._mark(pod, now, grace=grace)

    async def _after_removal(self, info: KindInfo, obj: KubeObject) -> None:
        """A namespaced object left the store: a terminating namespace may now be empty."""
        namespace = obj.metadata.namespace
        if not info.namespaced or namespace in self._sweeping or (
                namespace in self._open_namespaces):
            return
        ns_info = REGISTRY.for_kind("Namespace")
        try:
            ns, _ = await self._read(ns_info, "", obj.metadata.namespace)
        except NotFound:
            return
        if ns.metadata.deletion_timestamp:
            await self._remove_if_empty(ns)

    async def _sweep_namespace(self, ns: KubeObject) -> None:
        """Delete everything in a terminating namespace (Kubernetes' namespace
        controller, done inline), then remove the namespace once nothing is left.
        Pods still running keep it Terminating until their node agents finish them."""
        name = ns.metadata.name
        self._sweeping.add(name)
        try:
            for info in _namespaced_kinds():
                listed = await self.list(info, name)
                for obj in listed.items:
                    with contextlib.suppress(NotFound):  # gone meanwhile
                        await self.delete(info, name, obj.metadata.name,
                                          DeleteOptions(propagation_policy="Background"))
        finally:
            self._sweeping.discard(name)
        await self._remove_if_empty(ns)

    async def _remove_if_empty(self, ns: KubeObject) -> None:
        name = ns.metadata.name
        for info in _namespaced_kinds():
            page = await self.store.list(key_prefix(info, name), limit=1)
            if page.items:
                return
        with contextlib.suppress(NotFound):
            await self.store.delete(self._key(REGISTRY.for_kind("Namespace"), "", name))

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
        pod_name = name or binding.metadata.name
        if binding.metadata.name and name and binding.metadata.name != name:
            raise BadRequest.at("metadata.name", f"the name of the binding "
                                f"({reprlib.repr(binding.metadata.name)}) does not match the "
                                f"pod name on the URL ({name})")
        check_valid(attrs.evolve(binding, metadata=attrs.evolve(
            binding.metadata, name=pod_name, namespace=namespace or "default")))
        info = REGISTRY.for_kind("Pod")
        node = binding.target.name
        want_uid = binding.metadata.uid

        def change(old: KubeObject) -> KubeObject:
            assert isinstance(old, Pod)
            if want_uid and want_uid != old.metadata.uid:
                raise _conflict(info, pod_name, "Precondition failed: UID in precondition: "
                                f"{want_uid}, UID in object meta: {old.metadata.uid}")
            if old.metadata.deletion_timestamp:
                raise _conflict(info, pod_name, "pod is being deleted, cannot be assigned "
                                "to a host")
            if old.spec.node_name:
                raise _conflict(info, pod_name, f"pod {pod_name} is already assigned to "
                                f'node "{old.spec.node_name}"')
            scheduled = PodCondition(type="PodScheduled", status="True",
                                     last_transition_time=self.now())
            return attrs.evolve(
                old,
                spec=attrs.evolve(old.spec, node_name=node),
                status=attrs.evolve(old.status,
                                    conditions=set_condition(old.status.conditions, scheduled)),
            )

        return await self._update(info, namespace, pod_name, change, subresource="binding",
                                  opts=opts)

    async def evict(self, namespace: str, name: str, eviction: Eviction | None = None
                    ) -> Deleted:
        """A polite delete of a pod (no disruption budgets exist, so always allowed)."""
        options = (eviction.delete_options if eviction is not None else None) or DeleteOptions()
        return await self.delete(REGISTRY.for_kind("Pod"), namespace, name, options)

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


def _timestamp(text: str, fallback: float) -> float:
    from kstate.clock import parse_rfc3339

    try:
        return parse_rfc3339(text)
    except ValueError:
        return fallback


def _namespaced_kinds() -> list[KindInfo]:
    # Replication controllers first, so they cannot replace pods being swept.
    kinds = [i for i in REGISTRY.resources() if i.namespaced and i.kind != "Binding"]
    return sorted(kinds, key=lambda i: i.kind != "ReplicationController")


def check_valid(obj: Model) -> None:
    causes = validate(obj)
    if causes:
        raise InvalidObject(type(obj).KIND, getattr(obj, "metadata", ObjectMeta()).name, causes)


def check_valid_update(old: KubeObject, new: KubeObject) -> None:
    causes = validate_update(old, new)
    if causes:
        raise InvalidObject(type(new).KIND, new.metadata.name, causes)


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
