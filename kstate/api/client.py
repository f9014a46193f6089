"""``ApiClient``: the one interface controllers, node agents and the CLI use to reach
the API server — typed objects in, typed objects out, typed errors.

Where it sits: between every component above ``kstate.api`` and the API server::

    controller / scheduler / node agent / CLI
        -> ApiClient
             LocalClient  -> ApiCore (same process: the all-in-one daemon, stateful tests)
             HttpClient   -> HTTPS -> ApiServer -> ApiCore (standalone components)

Both implementations go through the same admission path and raise the same
``KstateError`` types (``NotFound``, ``KeyExists``, ``Conflict``, ``Compacted``,
``InvalidObject``, ``IllegalTransition``, ``BadRequest``, ``Forbidden``, ...), so code
written against one runs unchanged against the other.

Example (a controller step)::

    client = HttpClient.from_kubeconfig("/var/lib/kstate/admin.kubeconfig")
    rc = await client.get(ReplicationController, "web", "default")
    pods = await client.list(Pod, "default", label_selector="app=web")
    async with client.watch(Pod, "default", resource_version=pods.resource_version) as w:
        async for event_type, pod in w:
            ...
    await client.scale(ReplicationController, "web", 3, "default")
"""

from __future__ import annotations

import abc
import json
import ssl
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Generic, TypeVar

import attrs

from kstate.api import writes
from kstate.api.codec import Model, decode, from_dict, to_dict
from kstate.api.meta import DeleteOptions, KubeObject, ObjectMeta, Preconditions
from kstate.api.objects import Namespace, Scale, ScaleSpec
from kstate.api.registry import REGISTRY, KindInfo
from kstate.api.server.core import ApiCore, Deleted, ObjectList, WatchStream, WriteOptions
from kstate.api.server.http import DELETED_HEADER
from kstate.api.server.patch import JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH
from kstate.api.server.selectors import selection
from kstate.api.server.status import CANONICAL, error_from_status, status_of
from kstate.errors import KstateError, Unavailable, UsageError

K = TypeVar("K", bound=KubeObject)

PATCH_TYPES = {"strategic": STRATEGIC_MERGE_PATCH, "merge": MERGE_PATCH, "json": JSON_PATCH}


def _canonical(error: KstateError) -> KstateError:
    """The error a remote client would see for ``error`` (same type over both clients)."""
    if type(error) in CANONICAL:
        return error
    return error_from_status(status_of(error), error.code)


def _info(kind: type[KubeObject]) -> KindInfo:
    return REGISTRY.for_class(kind)


def _ns(info: KindInfo, namespace: str) -> str:
    return (namespace or "default") if info.namespaced else ""


class Watcher(abc.ABC, Generic[K]):
    """An async iterator of ``(event_type, object)``; ``ADDED``, ``MODIFIED``, ``DELETED``,
    ``BOOKMARK`` (object has only ``metadata.resourceVersion``). A watch that can no
    longer continue raises (``Compacted`` when history is gone: relist, then watch again
    from the list's resourceVersion). Use as ``async with client.watch(...) as w``."""

    def __aiter__(self) -> AsyncIterator[tuple[str, K]]:
        return self._events()

    @abc.abstractmethod
    def _events(self) -> AsyncIterator[tuple[str, K]]: ...

    @abc.abstractmethod
    async def start(self) -> None: ...

    @abc.abstractmethod
    async def close(self) -> None: ...

    async def __aenter__(self) -> Watcher[K]:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()


class ApiClient(abc.ABC):
    """What a component may ask of the API server.

    ``kind`` arguments are classes (``Pod``, ``ReplicationController``...); namespaced
    kinds default to namespace ``default``.
    """

    @abc.abstractmethod
    async def get(self, kind: type[K], name: str, namespace: str = "") -> K: ...

    @abc.abstractmethod
    async def list(self, kind: type[K], namespace: str = "", *, label_selector: str = "",
                   field_selector: str = "", limit: int | None = None,
                   continue_token: str = "", resource_version: str = "") -> ObjectList[K]:
        """One page (all items when no ``limit``); ``namespace=""`` lists every
        namespace of a namespaced kind."""

    @abc.abstractmethod
    async def create(self, obj: K, *, dry_run: bool = False,
                     field_validation: str = "Strict") -> K: ...

    @abc.abstractmethod
    async def update(self, obj: K, *, dry_run: bool = False) -> K:
        """Replace; a set ``metadata.resourceVersion`` must be current (``Conflict``)."""

    @abc.abstractmethod
    async def update_status(self, obj: K) -> K:
        """Replace only ``status`` (``/status``), with the same precondition."""

    @abc.abstractmethod
    async def finalize(self, namespace: Namespace) -> Namespace:
        """Replace only a Namespace's ``spec.finalizers`` (``/finalize``); a terminating
        namespace left with none is removed."""

    @abc.abstractmethod
    async def patch(self, kind: type[K], name: str, patch: Any, *, namespace: str = "",
                    patch_type: str = "strategic", subresource: str = "") -> K:
        """``patch_type``: ``strategic``, ``merge`` or ``json`` (RFC 6902)."""

    @abc.abstractmethod
    async def delete(self, kind: type[K], name: str, namespace: str = "", *,
                     grace_period_seconds: int | None = None, propagation_policy: str = "",
                     preconditions: Preconditions | None = None,
                     dry_run: bool = False) -> Deleted[K]:
        """``Deleted.removed`` says whether it is gone or only marked (graceful pod,
        finalizers). Over HTTP a removed object carries only its metadata."""

    @abc.abstractmethod
    def watch(self, kind: type[K], namespace: str = "", *, resource_version: str = "",
              label_selector: str = "", field_selector: str = "",
              allow_bookmarks: bool = False,
              timeout_seconds: float | None = None) -> Watcher[K]: ...

    @abc.abstractmethod
    async def bind(self, pod: str, node: str, namespace: str = "default", *,
                   uid: str = "") -> None:
        """The scheduler's write: ``pods/<pod>/binding`` to ``node``."""

    @abc.abstractmethod
    async def evict(self, pod: str, namespace: str = "default", *,
                    grace_period_seconds: int | None = None,
                    preconditions: Preconditions | None = None) -> None: ...

    @abc.abstractmethod
    async def get_scale(self, kind: type[KubeObject], name: str,
                        namespace: str = "default") -> Scale: ...

    @abc.abstractmethod
    async def scale(self, kind: type[KubeObject], name: str, replicas: int,
                    namespace: str = "default") -> Scale: ...

    async def close(self) -> None:  # noqa: B027 - optional hook, not abstract
        """Release connections (no-op for in-process clients)."""

    async def __aenter__(self) -> ApiClient:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()


def _delete_options(grace_period_seconds: int | None, propagation_policy: str,
                    preconditions: Preconditions | None, dry_run: bool) -> DeleteOptions:
    return DeleteOptions(grace_period_seconds=grace_period_seconds,
                         propagation_policy=propagation_policy, preconditions=preconditions,
                         dry_run=("All",) if dry_run else ())


# ------------------------------------------------------------------ in process


class _LocalWatcher(Watcher[K]):
    def __init__(self, stream: WatchStream) -> None:
        self._stream = stream

    async def start(self) -> None:
        try:
            await self._stream.start()
        except KstateError as exc:
            raise _canonical(exc) from None

    async def close(self) -> None:
        await self._stream.close()

    async def _events(self) -> AsyncIterator[tuple[str, K]]:
        await self.start()
        async for event in self._stream:
            if event.type == "ERROR":
                assert event.error is not None
                raise _canonical(event.error)
            yield event.type, event.object  # type: ignore[misc]


class LocalClient(ApiClient):
    """Calls :class:`ApiCore` directly: same admission, no HTTP, no auth (in-process
    components are trusted)."""

    def __init__(self, core: ApiCore) -> None:
        self.core = core

    async def _call(self, coro: Any) -> Any:
        try:
            return await coro
        except KstateError as exc:
            raise _canonical(exc) from None

    async def get(self, kind: type[K], name: str, namespace: str = "") -> K:
        info = _info(kind)
        return await self._call(self.core.get(info, _ns(info, namespace), name))

    async def list(self, kind: type[K], namespace: str = "", *, label_selector: str = "",
                   field_selector: str = "", limit: int | None = None,
                   continue_token: str = "", resource_version: str = "") -> ObjectList[K]:
        info = _info(kind)
        try:
            sel = selection(info.kind, label_selector, field_selector)
        except KstateError as exc:
            raise _canonical(exc) from None
        return await self._call(self.core.list(
            info, namespace if info.namespaced else "", selection=sel, limit=limit,
            continue_token=continue_token, resource_version=resource_version))

    async def create(self, obj: K, *, dry_run: bool = False,
                     field_validation: str = "Strict") -> K:
        opts = WriteOptions(dry_run=dry_run, field_validation=field_validation)
        return await self._call(self.core.create(obj, opts=opts))

    async def update(self, obj: K, *, dry_run: bool = False) -> K:
        return await self._call(self.core.update(
            obj, opts=WriteOptions(dry_run=dry_run)))

    async def update_status(self, obj: K) -> K:
        return await self._call(self.core.update(obj, subresource="status"))

    async def finalize(self, namespace: Namespace) -> Namespace:
        return await self._call(self.core.update(namespace, subresource="finalize"))

    async def patch(self, kind: type[K], name: str, patch: Any, *, namespace: str = "",
                    patch_type: str = "strategic", subresource: str = "") -> K:
        info = _info(kind)
        content_type = _patch_type(patch_type)
        return await self._call(self.core.patch(
            info, _ns(info, namespace), name, content_type, _plain(patch),
            subresource=subresource))

    async def delete(self, kind: type[K], name: str, namespace: str = "", *,
                     grace_period_seconds: int | None = None, propagation_policy: str = "",
                     preconditions: Preconditions | None = None,
                     dry_run: bool = False) -> Deleted[K]:
        info = _info(kind)
        options = _delete_options(grace_period_seconds, propagation_policy, preconditions,
                                  dry_run)
        return await self._call(self.core.delete(info, _ns(info, namespace), name, options))

    def watch(self, kind: type[K], namespace: str = "", *, resource_version: str = "",
              label_selector: str = "", field_selector: str = "",
              allow_bookmarks: bool = False,
              timeout_seconds: float | None = None) -> Watcher[K]:
        info = _info(kind)
        try:
            sel = selection(info.kind, label_selector, field_selector)
        except KstateError as exc:
            raise _canonical(exc) from None
        stream = self.core.watch(info, namespace if info.namespaced else "", selection=sel,
                                 resource_version=resource_version,
                                 allow_bookmarks=allow_bookmarks,
                                 timeout_seconds=timeout_seconds)
        return _LocalWatcher(stream)

    async def bind(self, pod: str, node: str, namespace: str = "default", *,
                   uid: str = "") -> None:
        binding = writes.binding_of(namespace, pod, node, uid)
        await self._call(self.core.bind(namespace, binding, name=pod))

    async def evict(self, pod: str, namespace: str = "default", *,
                    grace_period_seconds: int | None = None,
                    preconditions: Preconditions | None = None) -> None:
        eviction = writes.eviction_of(namespace, pod, grace_period_seconds,
                                      preconditions.uid if preconditions else "")
        await self._call(self.core.evict(namespace, pod, eviction))

    async def get_scale(self, kind: type[KubeObject], name: str,
                        namespace: str = "default") -> Scale:
        return await self._call(self.core.get_scale(_info(kind), namespace, name))

    async def scale(self, kind: type[KubeObject], name: str, replicas: int,
                    namespace: str = "default") -> Scale:
        scale = Scale(metadata=ObjectMeta(name=name, namespace=namespace),
                      spec=ScaleSpec(replicas=replicas))
        return await self._call(self.core.update_scale(_info(kind), namespace, name, scale))


def _patch_type(patch_type: str) -> str:
    if patch_type in PATCH_TYPES.values():
        return patch_type
    try:
        return PATCH_TYPES[patch_type]
    except KeyError:
        raise UsageError(f"patch_type must be one of {', '.join(PATCH_TYPES)}, not "
                         f"{patch_type!r}") from None


def _plain(value: Any) -> Any:
    """A patch given as objects or frozen values becomes plain JSON."""
    if isinstance(value, Model):
        return to_dict(value)
    return json.loads(json.dumps(value, default=_default))


def _default(value: Any) -> Any:
    from kstate.api.frozen import thaw

    if isinstance(value, Model):
        return to_dict(value)
    thawed = thaw(value)
    if thawed is value:
        raise TypeError(f"{type(value).__name__} is not JSON")
    return thawed


# ------------------------------------------------------------------ over HTTP(S)


def _path(info: KindInfo, namespace: str = "", name: str = "", subresource: str = "") -> str:
    root = f"/api/{info.version}" if not info.group else f"/apis/{info.api_version}"
    path = root
    if info.namespaced and namespace:
        path += f"/namespaces/{namespace}"
    path += f"/{info.plural}"
    if name:
        path += f"/{name}"
    if subresource:
        path += f"/{subresource}"
    return path


class _HttpWatcher(Watcher[K]):
    def __init__(self, client: HttpClient, info: KindInfo, path: str,
                 params: dict[str, str]) -> None:
        self._client = client
        self._info = info
        self._path = path
        self._params = params
        self._response: Any = None

    async def start(self) -> None:
        if self._response is None:
            self._response = await self._client._open("GET", self._path, self._params,
                                                      timeout=None)

    async def close(self) -> None:
        if self._response is not None:
            self._response.release()
            self._response.close()

    async def _events(self) -> AsyncIterator[tuple[str, K]]:
        import aiohttp

        await self.start()
        buffer = b""
        try:
            async for chunk in self._response.content.iter_any():
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if line.strip():
                        yield self._event(line)
        except (TimeoutError, OSError, aiohttp.ClientError) as exc:
            if not self._response.closed:
                raise Unavailable(f"watch stream broke: {exc or type(exc).__name__}"
                                  ) from None
        finally:
            await self.close()

    def _event(self, line: bytes) -> tuple[str, K]:
        try:
            data = json.loads(line)
            kind, raw = data["type"], data["object"]
        except (ValueError, KeyError, TypeError):
            raise Unavailable(f"malformed watch event: {line[:200]!r}") from None
        if kind == "ERROR":
            raise error_from_status(raw)
        return kind, self._client._decode(self._info.cls, raw)


class HttpClient(ApiClient):
    """The API over HTTP(S) with a bearer token; aiohttp underneath.

    ``ca_file`` verifies the server (the API server's ``<data-dir>/ca.crt``);
    :meth:`from_kubeconfig` reads server, CA and token from a kubeconfig.
    """

    def __init__(self, url: str, *, token: str = "", ca_file: str | Path | None = None,
                 ca_data: bytes | None = None, timeout: float = 30.0,
                 connections: int = 100) -> None:
        self.url = url.rstrip("/")
        self._token = token
        self._timeout = timeout
        self._connections = connections
        self._ssl: ssl.SSLContext | None = None
        if self.url.startswith("https://"):
            self._ssl = ssl.create_default_context(
                cafile=str(ca_file) if ca_file else None,
                cadata=ca_data.decode() if ca_data else None)
        self._session: Any = None

    @classmethod
    def from_kubeconfig(cls, path: str | Path, *, context: str = "") -> HttpClient:
        """A client for the current (or named) context of a kubeconfig file."""
        import base64

        import yaml

        config = yaml.safe_load(Path(path).read_text()) or {}
        ctx_name = context or config.get("current-context", "")

        def pick(section: str, name: str) -> dict[str, Any]:
            for entry in config.get(section) or ():
                if entry.get("name") == name:
                    return dict(entry.get(section[:-1]) or {})
            raise UsageError(f"{path}: no {section[:-1]} named {name!r}")

        ctx = pick("contexts", ctx_name)
        cluster, user = pick("clusters", ctx["cluster"]), pick("users", ctx["user"])
        ca_data = cluster.get("certificate-authority-data")
        return cls(cluster["server"], token=user.get("token", ""),
                   ca_file=cluster.get("certificate-authority"),
                   ca_data=base64.b64decode(ca_data) if ca_data else None)

    async def _get_session(self) -> Any:
        import aiohttp

        if self._session is None or self._session.closed:
            headers = {"Accept": "application/json", "User-Agent": "kstate-client"}
            if self._token:
                headers["Authorization"] = f"Bearer {self._token}"
            self._session = aiohttp.ClientSession(
                headers=headers,
                connector=aiohttp.TCPConnector(ssl=self._ssl if self._ssl else False,
                                               limit=self._connections),
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=10))
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _open(self, method: str, path: str, params: Mapping[str, str] | None = None,
                    body: Any = None, content_type: str = "application/json",
                    timeout: float | None = -1.0) -> Any:
        import aiohttp

        session = await self._get_session()
        data = None if body is None else json.dumps(body, separators=(",", ":")).encode()
        headers = {"Content-Type": content_type} if data is not None else {}
        limit = self._timeout if timeout == -1.0 else timeout
        try:
            response = await session.request(
                method, self.url + path, params=dict(params or {}), data=data,
                headers=headers, timeout=aiohttp.ClientTimeout(total=limit))
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise Unavailable(f"cannot reach the API server at {self.url}: {exc}") from None
        if response.status >= 400:
            try:
                status = await response.json(content_type=None)
            except (ValueError, aiohttp.ClientError):
                status = {}
            finally:
                response.release()
            raise error_from_status(status, response.status)
        return response

    async def _request(self, method: str, path: str, params: Mapping[str, str] | None = None,
                       body: Any = None, content_type: str = "application/json") -> Any:
        import aiohttp

        response = await self._open(method, path, params, body, content_type)
        try:
            return await response.json(content_type=None)
        except ValueError:
            raise Unavailable("the API server sent a body that is not JSON") from None
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            # The server died mid-answer: the request may or may not have taken effect.
            raise Unavailable(f"the connection to {self.url} broke during the answer: "
                              f"{exc or type(exc).__name__}") from None
        finally:
            response.release()

    def _decode(self, cls: type[Model], data: Any) -> Any:
        obj, errs = decode(cls, data)
        if errs or obj is None:
            raise Unavailable(f"the API server sent a {cls.__name__} kstate cannot read: "
                              f"{'; '.join(str(c) for c in errs)[:300]}")
        return obj

    async def get(self, kind: type[K], name: str, namespace: str = "") -> K:
        info = _info(kind)
        return self._decode(kind, await self._request("GET", _path(info, _ns(info, namespace),
                                                                  name)))

    async def list(self, kind: type[K], namespace: str = "", *, label_selector: str = "",
                   field_selector: str = "", limit: int | None = None,
                   continue_token: str = "", resource_version: str = "") -> ObjectList[K]:
        info = _info(kind)
        params = {k: v for k, v in (("labelSelector", label_selector),
                                    ("fieldSelector", field_selector),
                                    ("limit", str(limit) if limit else ""),
                                    ("continue", continue_token),
                                    ("resourceVersion", resource_version)) if v}
        data = await self._request("GET", _path(info, namespace if info.namespaced else ""),
                                   params)
        meta = data.get("metadata") or {}
        items = tuple(self._decode(kind, item) for item in data.get("items") or ())
        return ObjectList(items, str(meta.get("resourceVersion", "")),
                          str(meta.get("continue", "")))

    async def create(self, obj: K, *, dry_run: bool = False,
                     field_validation: str = "Strict") -> K:
        info = _info(type(obj))
        params = {"fieldValidation": field_validation}
        if dry_run:
            params["dryRun"] = "All"
        path = _path(info, _ns(info, obj.metadata.namespace))
        return self._decode(type(obj), await self._request("POST", path, params,
                                                          to_dict(obj)))

    async def _put(self, obj: K, subresource: str, dry_run: bool) -> K:
        info = _info(type(obj))
        params = {"fieldValidation": "Strict"}
        if dry_run:
            params["dryRun"] = "All"
        path = _path(info, _ns(info, obj.metadata.namespace), obj.metadata.name, subresource)
        return self._decode(type(obj), await self._request("PUT", path, params, to_dict(obj)))

    async def update(self, obj: K, *, dry_run: bool = False) -> K:
        return await self._put(obj, "", dry_run)

    async def update_status(self, obj: K) -> K:
        return await self._put(obj, "status", False)

    async def finalize(self, namespace: Namespace) -> Namespace:
        return await self._put(namespace, "finalize", False)

    async def patch(self, kind: type[K], name: str, patch: Any, *, namespace: str = "",
                    patch_type: str = "strategic", subresource: str = "") -> K:
        info = _info(kind)
        path = _path(info, _ns(info, namespace), name, subresource)
        data = await self._request("PATCH", path, {}, _plain(patch), _patch_type(patch_type))
        return self._decode(Scale if subresource == "scale" else kind, data)

    async def delete(self, kind: type[K], name: str, namespace: str = "", *,
                     grace_period_seconds: int | None = None, propagation_policy: str = "",
                     preconditions: Preconditions | None = None,
                     dry_run: bool = False) -> Deleted[K]:
        info = _info(kind)
        options = _delete_options(grace_period_seconds, propagation_policy, preconditions,
                                  dry_run)
        body = to_dict(attrs.evolve(options, kind="DeleteOptions", api_version="v1"))
        response = await self._open("DELETE", _path(info, _ns(info, namespace), name), {},
                                    body)
        try:
            data = await response.json(content_type=None)
        finally:
            response.release()
        # Kubernetes answers a delete with the object (pods, services; and anything only
        # marked for deletion) or a Status; the header says which happened.
        removed = response.headers.get(DELETED_HEADER) == "removed"
        if isinstance(data, dict) and data.get("kind") == "Status":
            details = data.get("details") or {}
            meta = ObjectMeta(name=name, namespace=_ns(info, namespace),
                              uid=str(details.get("uid", "")))
            return Deleted(kind(metadata=meta), removed=True)
        return Deleted(self._decode(kind, data), removed=removed)

    def watch(self, kind: type[K], namespace: str = "", *, resource_version: str = "",
              label_selector: str = "", field_selector: str = "",
              allow_bookmarks: bool = False,
              timeout_seconds: float | None = None) -> Watcher[K]:
        info = _info(kind)
        params = {"watch": "1"}
        for key, value in (("resourceVersion", resource_version),
                           ("labelSelector", label_selector),
                           ("fieldSelector", field_selector),
                           ("allowWatchBookmarks", "true" if allow_bookmarks else ""),
                           ("timeoutSeconds", str(int(timeout_seconds))
                            if timeout_seconds is not None else "")):
            if value:
                params[key] = value
        return _HttpWatcher(self, info, _path(info, namespace if info.namespaced else ""),
                            params)

    async def bind(self, pod: str, node: str, namespace: str = "default", *,
                   uid: str = "") -> None:
        binding = writes.binding_of(namespace, pod, node, uid)
        await self._request("POST", _path(_info(_pod()), namespace, pod, "binding"), {},
                            to_dict(binding))

    async def evict(self, pod: str, namespace: str = "default", *,
                    grace_period_seconds: int | None = None,
                    preconditions: Preconditions | None = None) -> None:
        eviction = writes.eviction_of(namespace, pod, grace_period_seconds,
                                      preconditions.uid if preconditions else "")
        await self._request("POST", _path(_info(_pod()), namespace, pod, "eviction"), {},
                            to_dict(eviction))

    async def get_scale(self, kind: type[KubeObject], name: str,
                        namespace: str = "default") -> Scale:
        path = _path(_info(kind), namespace, name, "scale")
        return from_dict(Scale, await self._request("GET", path))

    async def scale(self, kind: type[KubeObject], name: str, replicas: int,
                    namespace: str = "default") -> Scale:
        path = _path(_info(kind), namespace, name, "scale")
        data = await self._request("PATCH", path, {}, {"spec": {"replicas": replicas}},
                                   MERGE_PATCH)
        return from_dict(Scale, data)


def _pod() -> type[KubeObject]:
    from kstate.api.objects import Pod

    return Pod


__all__ = ["ApiClient", "HttpClient", "LocalClient", "Watcher"]
