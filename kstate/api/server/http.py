"""The Kubernetes-compatible HTTP API: aiohttp in front of :class:`ApiCore`.

Where it sits: kubectl / the Python client / ``HttpClient`` -> **here** (parse the
path, authenticate, authorize, negotiate content, decode the body) -> ``ApiCore``
(semantics) -> store. Nothing here knows what a Pod is beyond its kind's class: every
resource rule lives in the core, so in-process callers (``LocalClient``) get identical
behaviour.

What this layer owns:

* request routing by Kubernetes' URL scheme (``requestinfo.py``) and discovery;
* bearer-token authentication and the role matrix (``auth.py``) on every request;
* bodies: JSON, YAML, or Kubernetes protobuf (``protobuf.py``) for creates, updates
  and delete options — patches stay JSON, as in Kubernetes —, at most
  :data:`MAX_BODY_BYTES` (Kubernetes' 3 MiB request limit; stored objects are further
  limited to 1.5 MiB by the store, both 413);
  duplicate and unknown fields per ``fieldValidation`` (``Strict`` 400, ``Warn``
  ``Warning`` header — Kubernetes' default —, ``Ignore``);
* responses: JSON, YAML, protobuf (objects, lists, Status errors, and watch streams of
  length-prefixed frames), ``Table`` for kubectl, ``PartialObjectMetadata``; chunked
  watch streams (one JSON event per line); the pod log proxy;
* every error as a ``Status`` object; an unexpected exception is logged and answered
  with a 500 ``Status`` — a bug, which the fuzz test shows clients cannot trigger;
* ``/healthz``, ``/livez``, ``/readyz``, ``/version``, ``/metrics``, ``/openapi``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import reprlib
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs
import yaml
from aiohttp import web

from kstate.api import protobuf
from kstate.api.codec import decode, to_dict
from kstate.api.meta import DeleteOptions, KubeObject, Preconditions
from kstate.api.objects import Binding, Eviction, Scale
from kstate.api.registry import KindInfo
from kstate.api.server import discovery, openapi, streams, tables
from kstate.api.server.auth import Authenticator, authorize
from kstate.api.server.core import ApiCore, ObjectList, WatchEvent, WriteOptions
from kstate.api.server.logs import log_query, stream_log
from kstate.api.server.metrics import Metrics
from kstate.api.server.patch import APPLY_PATCH, PATCH_TYPES
from kstate.api.server.requestinfo import RequestInfo, parse
from kstate.api.server.selectors import Selection, selection
from kstate.api.server.status import status_of, success_status
from kstate.errors import (
    ApiError,
    BadRequest,
    Cause,
    InternalError,
    KstateError,
    MethodNotAllowed,
    NotAcceptable,
    NotFound,
    RequestTooLarge,
    Unauthorized,
    UnsupportedMediaType,
)

log = logging.getLogger("kstate.api")

#: Subresources answered by an upgraded, streaming connection (``streams.py``).
STREAM_SUBRESOURCES = ("exec", "attach", "portforward")

MAX_BODY_BYTES = 3 * 1024 * 1024
DEFAULT_WATCH_TIMEOUT = 1800.0

#: Says whether a DELETE removed the object or only marked it (for ``HttpClient``).
DELETED_HEADER = "Kstate-Deleted"

JSON = "application/json"
YAML = "application/yaml"
PROTOBUF = protobuf.MEDIA_TYPE
_JSON_TYPES = ("application/json", "*/*", "application/*", "")
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"})


# ------------------------------------------------------------------ content negotiation


@attrs.frozen
class Wanted:
    """The response format the client accepts (first acceptable in its ``Accept``)."""

    format: str  # "json" | "yaml" | "table" | "partial" | "protobuf"
    #: JSON is acceptable too (``application/vnd.kubernetes.protobuf,application/json``,
    #: what Kubernetes' clients send): the answer for an object protobuf cannot carry
    json_ok: bool = True


def _media(part: str) -> tuple[str, dict[str, str]]:
    kind, *params = (p.strip() for p in part.split(";"))
    out = {}
    for p in params:
        k, _, v = p.partition("=")
        out[k.strip().lower()] = v.strip().strip('"')
    return kind.lower(), out


def negotiate(accept: str) -> Wanted:
    """Pick the response format; ``NotAcceptable`` (406) if nothing offered fits.

    >>> negotiate("application/vnd.kubernetes.protobuf,application/json")
    Wanted(format='protobuf', json_ok=True)
    >>> negotiate("application/vnd.kubernetes.protobuf")
    Wanted(format='protobuf', json_ok=False)
    >>> negotiate("application/json;as=Table;v=v1;g=meta.k8s.io,application/json").format
    'table'
    """
    if not accept.strip():
        return Wanted("json")
    parts = accept.split(",")
    for i, part in enumerate(parts):
        kind, params = _media(part)
        if params.get("q") in ("0", "0.0"):
            continue
        as_, group = params.get("as", ""), params.get("g", "")
        if kind == PROTOBUF and not as_:  # (Table and partial metadata stay JSON)
            later = [_media(rest) for rest in parts[i + 1:]]
            return Wanted("protobuf", json_ok=any(
                k in _JSON_TYPES and not p.get("as") and p.get("q") not in ("0", "0.0")
                for k, p in later))
        if kind == JSON and as_:
            if as_ == "Table" and group == "meta.k8s.io" and params.get("v") in (
                    "v1", "v1beta1"):
                return Wanted("table")
            if as_ in ("PartialObjectMetadata", "PartialObjectMetadataList") and (
                    group == "meta.k8s.io"):
                return Wanted("partial")
            continue
        if kind in _JSON_TYPES:
            return Wanted("json")
        if kind == YAML:
            return Wanted("yaml")
    raise NotAcceptable(f"only the following media types are accepted: {JSON}, {YAML}, "
                        f"{PROTOBUF}, {JSON};as=Table;v=v1;g=meta.k8s.io")


def _render(data: Any, wanted: Wanted, pretty: bool = False) -> tuple[bytes, str]:
    if wanted.format == "protobuf":
        try:
            return protobuf.encode_object(data), PROTOBUF
        except protobuf.NotRepresentable as exc:
            if not wanted.json_ok:
                raise NotAcceptable(f"{data.get('kind', 'the object')} cannot be served as "
                                    f"protobuf ({exc}); accept {JSON}") from None
            wanted = Wanted("json")
    if wanted.format == "yaml":
        return yaml.safe_dump(data, sort_keys=False).encode(), YAML
    if pretty:
        return json.dumps(data, indent=2, ensure_ascii=False).encode(), JSON
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode(), JSON


# ------------------------------------------------------------------ body decoding


def _pairs(duplicates: list[str]) -> Callable[[list[tuple[str, Any]]], dict[str, Any]]:
    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in pairs:
            if k in out:
                duplicates.append(k)
            out[k] = v
        return out

    return hook


def parse_json(body: bytes, *, duplicates: list[str] | None = None) -> Any:
    """JSON from a request body (``BadRequest`` on anything malformed). With
    ``duplicates``, repeated keys are recorded there (for ``fieldValidation``)."""
    try:
        if duplicates is None:
            data = json.loads(body)
        else:
            data = json.loads(body, object_pairs_hook=_pairs(duplicates))
    except RecursionError:  # deeper than Python's parser goes: far too deep
        raise _too_deep(_deepest_field(body)) from None
    except ValueError as exc:
        raise BadRequest(f"the request body is not valid JSON: {str(exc)[:200]}") from None
    if body.count(b"{") + body.count(b"[") > MAX_NESTING:
        check_nesting(data)
    return replace_lone_surrogates(data) if _SURROGATE_ESCAPE.search(body) else data


#: How deep a request body may nest objects and arrays. The served kinds need about a
#: dozen levels; the limit keeps every recursive walk (decoding, patching, validation)
#: far from Python's recursion limit, where a deeper body would end in a 500.
MAX_NESTING = 100


def _too_deep(path: Sequence[str | int]) -> BadRequest:
    field = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")
    return BadRequest(f"the request body nests more than {MAX_NESTING} levels deep",
                      causes=[Cause(field, "FieldValueInvalid",
                                    f"nested more than {MAX_NESTING} levels deep")])


def check_nesting(data: Any) -> None:
    """``BadRequest`` naming the field where ``data`` nests deeper than
    :data:`MAX_NESTING` (iterative: the check must not recurse itself)."""
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(data, ())]
    while stack:
        node, path = stack.pop()
        if len(path) > MAX_NESTING:
            raise _too_deep(path)
        if isinstance(node, dict):
            stack.extend((v, (*path, str(k))) for k, v in node.items()
                         if isinstance(v, dict | list))
        elif isinstance(node, list):
            stack.extend((v, (*path, i)) for i, v in enumerate(node)
                         if isinstance(v, dict | list))


#: ``\uD800``-``\uDFFF`` in a JSON text: the only way a lone surrogate gets in.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")


_JSON_TOKEN = re.compile(rb'"(?:[^"\\]|\\.)*"|[{}\[\],:]')


def _deepest_field(body: bytes) -> list[str | int]:
    """Where a JSON text too deep to parse first nests deeper than :data:`MAX_NESTING`,
    found by scanning its tokens (strings, brackets, commas, colons)."""
    open_: list[list[Any]] = []  # per open container: [is an object, key or index now]
    path: list[str | int] = []
    last_string = b'""'
    for match in _JSON_TOKEN.finditer(body):
        token = match.group()
        if token in (b"{", b"["):
            if open_:
                path.append(open_[-1][1])
            open_.append([token == b"{", "" if token == b"{" else 0])
            if len(open_) > MAX_NESTING + 1:
                return path
        elif token in (b"}", b"]"):
            if open_:
                open_.pop()
            if path:
                path.pop()
        elif token == b"," and open_ and not open_[-1][0]:
            open_[-1][1] += 1
        elif token == b":" and open_ and open_[-1][0]:
            try:
                open_[-1][1] = json.loads(last_string)
            except ValueError:
                open_[-1][1] = "?"
        elif token.startswith(b'"'):
            last_string = token
    return path


def replace_lone_surrogates(data: Any) -> Any:
    r"""``data`` with every lone UTF-16 surrogate (an escape such as ``"\udfff"`` that
    pairs with nothing) replaced by U+FFFD, in keys and values, as Go's JSON decoder —
    so Kubernetes — does. Python keeps them, and a string holding one cannot be encoded
    as UTF-8: the store write would fail. Iterative: a body may be nested deep.

    >>> replace_lone_surrogates({"a\udfff": ["x\ud800", 1]})
    {'a\ufffd': ['x\ufffd', 1]}
    """
    def fix(value: Any) -> Any:
        return _SURROGATE.sub("\ufffd", value) if isinstance(value, str) else value

    if isinstance(data, str):
        return fix(data)
    stack = [data]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            items = [(fix(k), fix(v)) for k, v in node.items()]
            node.clear()
            node.update(items)
            stack.extend(v for _, v in items if isinstance(v, dict | list))
        elif isinstance(node, list):
            node[:] = [fix(v) for v in node]
            stack.extend(v for v in node if isinstance(v, dict | list))
    return data


def _parse_yaml(body: bytes) -> Any:
    # The manifest loader's YAML reader: strings stay strings, duplicate keys and alias
    # bombs are errors — the same rules for a body as for a file.
    from kstate.api.manifests import _yaml_documents

    try:
        text = body.decode()
    except UnicodeDecodeError:
        raise BadRequest("the request body is not valid UTF-8") from None
    docs = list(_yaml_documents(text, "request body"))
    for doc in docs:
        if isinstance(doc, KstateError):
            raise BadRequest(str(doc)) from None
    datas = [d.data for d in docs if not isinstance(d, KstateError) and d.data is not None]
    if len(datas) != 1:
        raise BadRequest("the request body must hold exactly one YAML document")
    check_nesting(datas[0])  # (the reader refuses surrogate escapes itself)
    return datas[0]


def warning_header(warnings: list[str]) -> str:
    """RFC 7234 ``Warning`` values (code 299, as Kubernetes sends them); field names in
    warnings come from the request, so they are escaped to printable ASCII."""
    return ", ".join(f'299 - "{json.dumps(w, ensure_ascii=True)[1:-1]}"'
                     for w in warnings[:20])


def _bool(query: Mapping[str, str], name: str) -> bool | None:
    value = query.get(name)
    if value is None:
        return None
    if value.lower() in ("true", "1", ""):
        return True
    if value.lower() in ("false", "0"):
        return False
    raise BadRequest(f"{name} must be true or false, not {value!r}")


def _int(query: Mapping[str, str], name: str) -> int | None:
    value = query.get(name)
    if value is None or value == "":
        return None
    text = value.strip()
    if not text.lstrip("-").isdigit() or len(text) > 18:
        raise BadRequest(f"{name} must be an integer, not {value!r}")
    return int(text)


def _dry_run(query: Mapping[str, str]) -> bool:
    values = [v for k, v in query.items() if k == "dryRun"]
    for v in values:
        if v != "All":
            raise BadRequest(f'dryRun: Unsupported value: "{v}": supported values: "All"')
    return bool(values)


# ------------------------------------------------------------------ Status objects


def _status_response(error: KstateError, info: RequestInfo | None,
                     accept: str = "") -> web.Response:
    status = status_of(error, info)
    body, ctype = json.dumps(status, separators=(",", ":")).encode(), JSON
    if PROTOBUF in accept:  # a protobuf client reads its errors as protobuf too
        with contextlib.suppress(KstateError):
            if negotiate(accept).format == "protobuf":
                body, ctype = _render(status, Wanted("protobuf"))
    headers = {}
    if isinstance(error, ApiError) and error.retry_after:
        headers["Retry-After"] = str(error.retry_after)
    return web.Response(status=error.code, body=body, content_type=ctype, headers=headers)


# ------------------------------------------------------------------ the application


class _LastFrame(Exception):  # not an error: the stream's closing words
    """The last frame of a watch stream, to be written before it ends."""

    def __init__(self, frame: bytes) -> None:
        super().__init__("the watch stream ends")
        self.frame = frame



class HttpApi:
    """The aiohttp application over an :class:`ApiCore` (build it with :meth:`app`)."""

    def __init__(self, core: ApiCore, authenticator: Authenticator, *,
                 metrics: Metrics | None = None, max_body_bytes: int = MAX_BODY_BYTES,
                 watch_timeout: float = DEFAULT_WATCH_TIMEOUT) -> None:
        self.core = core
        self.auth = authenticator
        self.metrics = metrics or Metrics()
        self.max_body_bytes = max_body_bytes
        self.watch_timeout = watch_timeout
        self._streams: set[asyncio.Task[Any]] = set()

    def app(self) -> web.Application:
        app = web.Application(client_max_size=self.max_body_bytes,
                              middlewares=[_aiohttp_errors_as_status])
        app.router.add_route("*", r"/{tail:[\s\S]*}", self.handle)
        app.on_shutdown.append(self._close_streams)
        return app

    async def _close_streams(self, app: web.Application) -> None:
        for task in list(self._streams):
            task.cancel()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        info: RequestInfo | None = None
        try:
            user = self.auth.authenticate(request.headers.get("Authorization"))
            try:
                info = parse(request.method, request.path, request.query)
            except NotFound:
                if user is None:  # who you are comes before what exists
                    raise Unauthorized("Unauthorized") from None
                raise
            if request.method not in _METHODS:
                raise MethodNotAllowed(f"{request.method} is not supported")
            authorize(user, info)
            if info.is_resource:
                response = await self._resource(request, info)
            else:
                response = await self._non_resource(request, info)
        except KstateError as exc:
            response = _status_response(exc, info, request.headers.get("Accept", ""))
        except web.HTTPRequestEntityTooLarge:
            response = _status_response(RequestTooLarge(
                f"the request body is larger than {self.max_body_bytes:,} bytes"), info,
                request.headers.get("Accept", ""))
        except web.HTTPException as exc:  # aiohttp's own (bad requests it parsed)
            response = _status_response(_http_error(exc), info,
                                        request.headers.get("Accept", ""))
        except (ConnectionResetError, asyncio.CancelledError):
            raise
        except Exception:
            log.exception("bug: unexpected error serving %s %s", request.method,
                          request.path_qs[:300])
            response = _status_response(InternalError(
                "internal error; the server logged the details"), info)
        verb = info.verb if info is not None else request.method.lower()
        resource = info.resource if info is not None and info.is_resource else "nonresource"
        sub = info.subresource if info is not None else ""
        self.metrics.observe(verb, resource, sub, response.status,
                             time.perf_counter() - started)
        return response

    # ------------------------------------------------------------- non-resource paths

    async def _non_resource(self, request: web.Request, info: RequestInfo) -> web.StreamResponse:
        path = request.path.rstrip("/") or "/"
        if request.method not in ("GET", "HEAD"):
            if self._known_path(path):
                raise MethodNotAllowed(f"{request.method} is not supported on {path}")
            raise NotFound(f"the server could not find the requested resource ({path})")
        if path in ("/healthz", "/livez", "/readyz"):
            if path == "/readyz":
                await self.core.store.revision()  # Unavailable (503) when the store is down
            return web.Response(text="ok", content_type="text/plain")
        if path == "/version":
            return self._json(request, discovery.SERVER_VERSION)
        if path == "/metrics":
            return web.Response(text=self.metrics.render(),
                                content_type="text/plain", charset="utf-8",
                                headers={"X-Content-Type-Options": "nosniff"})
        if path == "/api":
            return self._json(request, discovery.api_versions(request.host))
        if path == "/apis":
            return self._json(request, discovery.api_groups())
        if path.startswith("/api/") or path.startswith("/apis/"):
            parts = path.strip("/").split("/")
            if parts[0] == "apis" and len(parts) == 2:
                group = discovery.api_group(parts[1])
                if group is not None:
                    return self._json(request, group)
            gv = "/".join(parts[1:])
            resources = discovery.resource_list(gv)
            if resources is not None:
                return self._json(request, resources)
        if path == "/openapi/v2":
            accept = request.headers.get("Accept", "")
            if "protobuf" in accept:
                # kubectl <= 1.28 reads only this (gnostic's protobuf of Swagger 2.0).
                return web.Response(body=openapi.v2_protobuf(),
                                    content_type=openapi.V2_PROTOBUF_RESPONSE)
            return web.Response(body=openapi.v2_document(), content_type=JSON)
        if path == "/openapi/v3":
            return web.Response(body=openapi.v3_index(), content_type=JSON)
        if path.startswith("/openapi/v3/"):
            doc = openapi.v3_for_path(path[len("/openapi/v3/"):])
            if doc is not None:
                return web.Response(body=doc, content_type=JSON,
                                    headers={"Cache-Control": "public, immutable"})
        raise NotFound(f"the server could not find the requested resource ({path})")

    def _known_path(self, path: str) -> bool:
        return path in ("/healthz", "/livez", "/readyz", "/version", "/metrics", "/api",
                        "/apis") or path.startswith(("/api/", "/apis/", "/openapi/"))

    def _json(self, request: web.Request, data: Any, status: int = 200) -> web.Response:
        wanted = negotiate(request.headers.get("Accept", ""))
        if wanted.format in ("table", "partial", "protobuf"):  # discovery is JSON
            wanted = Wanted("json")
        body, ctype = _render(data, wanted, pretty=_bool(request.query, "pretty") or False)
        return web.Response(status=status, body=body, content_type=ctype)

    # ------------------------------------------------------------- resources

    async def _resource(self, request: web.Request, info: RequestInfo) -> web.StreamResponse:
        served = discovery.lookup(info.group, info.version, info.resource)
        if served is None:
            raise NotFound(f"the server could not find the requested resource "
                           f"({request.path})")
        kind = served.info
        if info.namespace and not kind.namespaced and info.resource != "namespaces":
            raise NotFound(f"the server could not find the requested resource "
                           f"({request.path}): {kind.plural} are not namespaced")
        verbs = served.verbs
        if info.subresource:
            sub = served.subresource(info.subresource)
            if sub is None:
                raise NotFound(f"the server could not find the requested resource "
                               f"({request.path})")
            verbs = sub.verbs
        if info.verb not in verbs and not (info.verb == "watch" and "watch" in served.verbs
                                           and not info.subresource):
            raise MethodNotAllowed(f"the server does not allow this method on the requested "
                                   f"resource ({info.verb} {request.path})")
        namespace = info.namespace if kind.namespaced else ""
        if kind.kind == "Namespace":
            namespace = ""
        handler = getattr(self, f"_{info.verb}")
        response: web.StreamResponse = await handler(request, info, kind, namespace)
        return response

    def _respond(self, request: web.Request, info: RequestInfo, kind: KindInfo,
                 obj: KubeObject | dict[str, Any], status: int = 200,
                 opts: WriteOptions | None = None) -> web.Response:
        wanted = negotiate(request.headers.get("Accept", ""))
        if isinstance(obj, dict):
            data: Any = obj
        elif wanted.format == "table" and type(obj) is kind.cls:
            data = tables.table(kind, [obj], self.core.clock.now(),
                                include_object=request.query.get("includeObject",
                                                                 "Metadata"))
            wanted = Wanted("json")
        elif wanted.format == "partial":
            data = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                    "metadata": to_dict(obj.metadata)}
            wanted = Wanted("json")
        else:
            data = obj
            if wanted.format == "table":
                wanted = Wanted("json")
        body, ctype = self._render(data, wanted, request)
        headers = {}
        if opts is not None and opts.warnings:
            headers["Warning"] = warning_header(opts.warnings)
        return web.Response(status=status, body=body, content_type=ctype, headers=headers)

    async def _body(self, request: web.Request, *, patch: bool = False
                    ) -> tuple[Any, str, list[str]]:
        """The parsed body, its media type, and the keys it repeats."""
        # No Content-Type means JSON, as in Kubernetes (the official Python client sends
        # create and update bodies without one).
        ctype = request.content_type.lower() if request.headers.get("Content-Type") else JSON
        if patch:
            if ctype == APPLY_PATCH:
                raise UnsupportedMediaType("server-side apply (application/apply-patch+yaml)"
                                           " is not supported; use client-side kubectl apply")
            if ctype not in PATCH_TYPES:
                raise UnsupportedMediaType(
                    f"the body of the request was in an unknown format - accepted media "
                    f"types include: {', '.join(PATCH_TYPES)}")
        elif ctype not in (JSON, YAML, "application/x-yaml", "text/yaml", PROTOBUF):
            raise UnsupportedMediaType(
                f"the body of the request was in an unknown format - accepted media types "
                f"include: {JSON}, {YAML}, {PROTOBUF}")
        body = await request.read()
        if not body.strip():
            raise BadRequest("the request body is empty")
        duplicates: list[str] = []
        if ctype == PROTOBUF:  # (protobuf has no duplicate keys)
            return protobuf.decode_object(body), ctype, duplicates
        if "yaml" in ctype:
            return _parse_yaml(body), ctype, duplicates
        return parse_json(body, duplicates=duplicates), ctype, duplicates

    def _options(self, request: web.Request, duplicates: list[str]) -> WriteOptions:
        opts = WriteOptions(dry_run=_dry_run(request.query),
                            field_validation=request.query.get("fieldValidation", "Warn")
                            or "Warn")
        if duplicates and opts.field_validation != "Ignore":
            listed = ", ".join(f'duplicate field "{d}"' for d in dict.fromkeys(duplicates))
            if opts.field_validation == "Strict":
                raise BadRequest(f"strict decoding error: {listed}")
            opts.warnings.append(listed)
        return opts

    def _decode(self, cls: type[Any], data: Any, what: str) -> Any:
        if not isinstance(data, dict):
            raise BadRequest(f"the request body must be a JSON object ({what})")
        kind = data.get("kind")
        if kind not in (None, "", cls.KIND or cls.__name__):
            raise BadRequest.at("kind", f"the body is a {reprlib.repr(kind)}, but this "
                                f"request takes a {cls.KIND or cls.__name__}")
        api = data.get("apiVersion")
        if api not in (None, "", cls.API_VERSION) and not (
                cls is DeleteOptions or (cls is Eviction and api == "policy/v1beta1")):
            raise BadRequest.at("apiVersion", f"the apiVersion in the body "
                                f"({reprlib.repr(api)}) does not match the expected "
                                f"{cls.API_VERSION!r}")
        obj, errs = decode(cls, data)
        if errs or obj is None:
            listed = "; ".join(str(c) for c in errs)
            raise BadRequest(f'{cls.KIND or cls.__name__} in version "{cls.API_VERSION or "v1"}"'
                             f" cannot be handled as a {cls.KIND or cls.__name__}: {listed}",
                             causes=errs)
        return obj

    # ------------------------------------------------------------- verbs

    async def _get(self, request: web.Request, info: RequestInfo, kind: KindInfo,
                   namespace: str) -> web.StreamResponse:
        if info.subresource == "log":
            return await self._log(request, info, namespace)
        if info.subresource == "scale":
            return self._respond(request, info, kind,
                                 await self.core.get_scale(kind, namespace, info.name))
        obj = await self.core.get(kind, namespace, info.name)
        return self._respond(request, info, kind, obj)

    def _selection(self, request: web.Request, kind: KindInfo, info: RequestInfo) -> Selection:
        fields = request.query.get("fieldSelector", "")
        if info.name:  # a watch on one object (legacy form)
            pin = f"metadata.name={info.name}"
            fields = f"{fields},{pin}" if fields else pin
        return selection(kind.kind, request.query.get("labelSelector", ""), fields)

    async def _list(self, request: web.Request, info: RequestInfo, kind: KindInfo,
                    namespace: str) -> web.StreamResponse:
        q = request.query
        listed = await self.core.list(
            kind, namespace, selection=self._selection(request, kind, info),
            limit=_int(q, "limit"), continue_token=q.get("continue", ""),
            resource_version=q.get("resourceVersion", ""),
            resource_version_match=q.get("resourceVersionMatch", ""))
        wanted = negotiate(request.headers.get("Accept", ""))
        return self._list_response(request, kind, listed, wanted)

    def _list_response(self, request: web.Request, kind: KindInfo, listed: ObjectList,
                       wanted: Wanted) -> web.Response:
        if wanted.format == "table":
            data = tables.table(kind, listed.items, self.core.clock.now(),
                                include_object=request.query.get("includeObject", "Metadata"),
                                resource_version=listed.resource_version,
                                continue_token=listed.continue_token)
            wanted = Wanted("json")
        else:
            meta: dict[str, Any] = {"resourceVersion": listed.resource_version}
            if listed.continue_token:
                meta["continue"] = listed.continue_token
            if wanted.format == "partial":
                items = [{"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                          "metadata": to_dict(o.metadata)} for o in listed.items]
                data = {"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1",
                        "metadata": meta, "items": items}
                wanted = Wanted("json")
            elif wanted.format == "protobuf":
                try:
                    return web.Response(body=protobuf.encode_list(
                        kind.kind, kind.api_version, meta,
                        [to_dict(o) for o in listed.items]), content_type=PROTOBUF)
                except protobuf.NotRepresentable as exc:
                    if not wanted.json_ok:
                        raise NotAcceptable(f"{kind.kind}List cannot be served as protobuf "
                                            f"({exc}); accept {JSON}") from None
                    return self._list_response(request, kind, listed, Wanted("json"))
            elif wanted.format == "json" and not _bool(request.query, "pretty"):
                # The hot path (informers' relists): items are the stored bytes with
                # their resourceVersion spliced in, never decoded and re-encoded.
                head = json.dumps({"kind": f"{kind.kind}List", "apiVersion": kind.api_version,
                                   "metadata": meta}, separators=(",", ":"))
                body = b"".join((head[:-1].encode(), b',"items":[',
                                 b",".join(self.core.json_of(o) for o in listed.items),
                                 b"]}"))
                return web.Response(body=body, content_type=JSON)
            else:
                data = {"kind": f"{kind.kind}List", "apiVersion": kind.api_version,
                        "metadata": meta, "items": [to_dict(o) for o in listed.items]}
        body, ctype = self._render(data, wanted, request)
        return web.Response(body=body, content_type=ctype)

    def _render(self, data: Any, wanted: Wanted, request: web.Request) -> tuple[bytes, str]:
        """Encode a response body; objects in plain JSON come from the stored bytes."""
        pretty = _bool(request.query, "pretty") or False
        if isinstance(data, KubeObject):
            if wanted.format == "json" and not pretty:
                return self.core.json_of(data), JSON
            data = to_dict(data)
        return _render(data, wanted, pretty)

    async def _watch(self, request: web.Request, info: RequestInfo, kind: KindInfo,
                     namespace: str) -> web.StreamResponse:
        q = request.query
        wanted = negotiate(request.headers.get("Accept", ""))
        timeout = _int(q, "timeoutSeconds")
        stream = self.core.watch(
            kind, namespace, selection=self._selection(request, kind, info),
            resource_version=q.get("resourceVersion", ""),
            allow_bookmarks=bool(_bool(q, "allowWatchBookmarks")),
            send_initial_events=_bool(q, "sendInitialEvents"),
            timeout_seconds=float(timeout) if timeout is not None else self.watch_timeout)
        await stream.start()
        ctype = protobuf.WATCH_MEDIA_TYPE if wanted.format == "protobuf" else JSON
        response = web.StreamResponse(status=200, headers={
            "Content-Type": ctype, "Cache-Control": "no-cache, private"})
        response.enable_chunked_encoding()
        task = asyncio.current_task()
        if task is not None:
            self._streams.add(task)
        self.metrics.inflight_watches += 1
        first = True
        try:
            await response.prepare(request)
            async for event in stream:
                try:
                    line = self._watch_line(kind, event, wanted, first, request)
                except _LastFrame as last:
                    await response.write(last.frame)
                    break
                first = first and event.type in ("BOOKMARK", "ERROR")
                await response.write(line)
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self.metrics.inflight_watches -= 1
            await stream.close()
            if task is not None:
                self._streams.discard(task)
        return response

    def _watch_line(self, kind: KindInfo, event: WatchEvent, wanted: Wanted, first: bool,
                    request: web.Request) -> bytes:
        if wanted.format == "protobuf":
            return self._watch_frame(event)
        if event.type == "ERROR":
            assert event.error is not None
            obj: Any = status_of(event.error)
        elif wanted.format == "table" and event.type != "BOOKMARK":
            assert event.object is not None
            obj = tables.table(kind, [event.object], self.core.clock.now(),
                               include_object=request.query.get("includeObject", "Metadata"),
                               columns=first)
        elif wanted.format == "partial":
            assert event.object is not None
            obj = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                   "metadata": to_dict(event.object.metadata)}
        else:
            assert event.object is not None
            return b"".join((b'{"type":"', event.type.encode(), b'","object":',
                             self.core.json_of(event.object), b"}\n"))
        return json.dumps({"type": event.type, "object": obj}, separators=(",", ":"),
                          ensure_ascii=False).encode() + b"\n"

    def _watch_frame(self, event: WatchEvent) -> bytes:
        """A protobuf watch frame; an object protobuf cannot carry ends the stream with
        an ERROR event saying so (:class:`_LastFrame`: the stream's media type cannot
        change mid-way)."""
        if event.type == "ERROR":
            assert event.error is not None
            return protobuf.encode_watch_event("ERROR", status_of(event.error))
        assert event.object is not None
        try:
            return protobuf.encode_watch_event(event.type, to_dict(event.object))
        except protobuf.NotRepresentable as exc:
            error = NotAcceptable(f"{event.object.KIND} {event.object.metadata.name!r} "
                                  f"cannot be sent as protobuf ({exc}); watch with "
                                  f"Accept: {JSON}")
            raise _LastFrame(protobuf.encode_watch_event("ERROR", status_of(error))) from None

    async def _create(self, request: web.Request, info: RequestInfo, kind: KindInfo,
                      namespace: str) -> web.StreamResponse:
        if info.subresource in STREAM_SUBRESOURCES:  # no body: the request upgrades
            return await self._stream(request, info, namespace)
        data, _, dups = await self._body(request)
        opts = self._options(request, dups)
        if info.subresource == "binding" or kind.kind == "Binding":
            binding = self._decode(Binding, data, "a Binding")
            await self.core.bind(namespace, binding, name=info.name, opts=opts)
            return self._respond(request, info, kind,
                                 success_status(binding.metadata.name or info.name,
                                                "pods/binding", code=201), 201)
        if info.subresource == "eviction":
            eviction = self._decode(Eviction, data, "an Eviction")
            if eviction.metadata.name and eviction.metadata.name != info.name:
                raise BadRequest.at("metadata.name", f"name in URL ({info.name}) does not "
                                    "match the name in the Eviction "
                                    f"({reprlib.repr(eviction.metadata.name)})")
            await self.core.evict(namespace, info.name, eviction)
            return self._respond(request, info, kind,
                                 success_status(info.name, "pods", code=201), 201)
        obj = self._decode(kind.cls, data, f"a {kind.kind}")
        created = await self.core.create(obj, namespace=namespace, opts=opts)
        return self._respond(request, info, kind, created, 201, opts)

    async def _update(self, request: web.Request, info: RequestInfo, kind: KindInfo,
                      namespace: str) -> web.StreamResponse:
        data, _, dups = await self._body(request)
        opts = self._options(request, dups)
        if info.subresource == "scale":
            scale = self._decode(Scale, data, "a Scale")
            result = await self.core.update_scale(kind, namespace, info.name, scale, opts)
            return self._respond(request, info, kind, result, 200, opts)
        obj = self._decode(kind.cls, data, f"a {kind.kind}")
        if obj.metadata.name != info.name:
            raise BadRequest.at("metadata.name", f"the name of the object "
                                f"({reprlib.repr(obj.metadata.name)}) does not match the "
                                f"name on the URL ({info.name})")
        updated = await self.core.update(obj, namespace=namespace,
                                         subresource=info.subresource, opts=opts)
        return self._respond(request, info, kind, updated, 200, opts)

    async def _patch(self, request: web.Request, info: RequestInfo, kind: KindInfo,
                     namespace: str) -> web.StreamResponse:
        data, ctype, dups = await self._body(request, patch=True)
        opts = self._options(request, dups)
        result = await self.core.patch(kind, namespace, info.name, ctype, data,
                                       subresource=info.subresource, opts=opts)
        return self._respond(request, info, kind, result, 200, opts)

    async def _delete_options(self, request: web.Request) -> DeleteOptions:
        q = request.query
        options = DeleteOptions()
        if request.can_read_body:
            body = await request.read()
            if body.strip():
                data = (protobuf.decode_object(body) if request.content_type == PROTOBUF
                        else parse_json(body))
                options = self._decode(DeleteOptions, data, "DeleteOptions")
        changes: dict[str, Any] = {}
        grace = _int(q, "gracePeriodSeconds")
        if grace is not None:
            changes["grace_period_seconds"] = grace
        if "propagationPolicy" in q:
            changes["propagation_policy"] = q["propagationPolicy"]
        orphan = _bool(q, "orphanDependents")
        if orphan is not None:
            changes["orphan_dependents"] = orphan
        if _dry_run(q):
            changes["dry_run"] = ("All",)
        if "preconditions.uid" in q or "preconditions.resourceVersion" in q:
            changes["preconditions"] = Preconditions(
                uid=q.get("preconditions.uid", ""),
                resource_version=q.get("preconditions.resourceVersion", ""))
        return attrs.evolve(options, **changes) if changes else options

    async def _delete(self, request: web.Request, info: RequestInfo, kind: KindInfo,
                      namespace: str) -> web.StreamResponse:
        options = await self._delete_options(request)
        result = await self.core.delete(kind, namespace, info.name, options)
        # Pods and Services answer with the deleted object, the rest with a Status
        # (Kubernetes' ReturnDeletedObject; the official client's types depend on it).
        if result.removed and kind.kind not in ("Pod", "Service"):
            response = self._respond(request, info, kind, success_status(
                info.name, kind.plural, result.object.metadata.uid))
        else:
            status = 202 if options.orphan_dependents is False else 200
            response = self._respond(request, info, kind, result.object, status)
        response.headers[DELETED_HEADER] = "removed" if result.removed else "marked"
        return response

    async def _deletecollection(self, request: web.Request, info: RequestInfo,
                                kind: KindInfo, namespace: str) -> web.StreamResponse:
        options = await self._delete_options(request)
        await self.core.delete_collection(
            kind, namespace, selection=self._selection(request, kind, info), options=options)
        return self._respond(request, info, kind, {
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"})

    async def _stream(self, request: web.Request, info: RequestInfo,
                      namespace: str) -> web.StreamResponse:
        """exec / attach / portforward: a long-lived upgraded connection (closed with the
        server, like a watch)."""
        task = asyncio.current_task()
        if task is not None:
            self._streams.add(task)
        try:
            return await streams.serve(self.core, request, namespace, info.name,
                                       info.subresource)
        finally:
            if task is not None:
                self._streams.discard(task)

    async def _log(self, request: web.Request, info: RequestInfo,
                   namespace: str) -> web.StreamResponse:
        query = log_query(request.query)
        url = await self.core.log_location(namespace, info.name,
                                           request.query.get("container", ""))
        follow = query.get("follow") in ("true", "1", "")
        chunks = stream_log(url, query, timeout=None if follow else 60)
        try:
            first = await chunks.__anext__()
        except StopAsyncIteration:
            first = b""
        response = web.StreamResponse(status=200, headers={
            "Content-Type": "text/plain; charset=utf-8"})
        response.enable_chunked_encoding()
        task = asyncio.current_task()
        if task is not None:
            self._streams.add(task)
        try:
            await response.prepare(request)
            if first:
                await response.write(first)
            async for chunk in chunks:
                await response.write(chunk)
        except (ConnectionResetError, asyncio.CancelledError, KstateError):
            pass
        finally:
            await chunks.aclose()  # type: ignore[attr-defined]
            if task is not None:
                self._streams.discard(task)
        return response


@web.middleware
async def _aiohttp_errors_as_status(request: web.Request, handler: Any) -> web.StreamResponse:
    """Errors aiohttp raises before our handler runs (no route matched) as Status too."""
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except web.HTTPException as exc:
        return _status_response(_http_error(exc), None)


def _http_error(exc: web.HTTPException) -> KstateError:
    code = exc.status
    if code == 413:
        return RequestTooLarge(exc.reason or "request entity too large")
    if code == 405:
        return MethodNotAllowed(exc.reason or "method not allowed")
    if code == 404:
        return NotFound(exc.reason or "not found")
    if code == 415:
        return UnsupportedMediaType(exc.reason or "unsupported media type")
    if 400 <= code < 500:
        return BadRequest(exc.text or exc.reason or "bad request")
    return InternalError(exc.reason or "internal error")


__all__ = ["DELETED_HEADER", "MAX_BODY_BYTES", "HttpApi", "Wanted", "negotiate", "parse_json"]
