"""OpenAPI documents generated from the attrs classes (never written by hand).

Where it sits: served at ``/openapi/v3`` (an index) and ``/openapi/v3/<group-version>``
(OpenAPI 3.0, JSON), plus ``/openapi/v2`` (Swagger 2.0, JSON). kubectl reads them:

* ``apply``/``create``/``replace`` with default validation look in the v3 document for
  the ``fieldValidation`` query parameter on the kind's PATCH operation; finding it,
  they leave validation to the server (``?fieldValidation=Strict``), which answers
  unknown fields with a 400 naming each field path;
* ``kubectl explain`` walks the v3 schemas (``x-kubernetes-group-version-kind`` marks
  each kind's root);
* ``apply`` may compute strategic merge patches from the schemas'
  ``x-kubernetes-patch-merge-key`` / ``x-kubernetes-patch-strategy``, which come from
  the same table the server merges with (``patch.MERGE_KEYS``).

Schemas: one per attrs class, named like Kubernetes' (``io.k8s.api.core.v1.PodSpec``),
fields from the codec's plan (JSON names, required, enums), Kubernetes' shared types for
quantities, times and int-or-string. Fields Kubernetes defines but kstate keeps
unmodelled (``spec.volumes``...) are listed too, as free-form values, so ``explain``
shows them and clients do not think them unknown.
"""

from __future__ import annotations

import functools
import hashlib
import json
import types
import typing
from typing import Any

from kstate.api import meta as meta_module
from kstate.api.codec import INT32, OBJECT, QUANTITY, Model, plan
from kstate.api.frozen import FrozenDict
from kstate.api.meta import RFC3339
from kstate.api.server import patch as patch_rules
from kstate.api.server.discovery import SCHEMA_GROUP_VERSIONS, SERVED, SERVER_VERSION, Served

META_V1 = "io.k8s.apimachinery.pkg.apis.meta.v1"
QUANTITY_REF = "io.k8s.apimachinery.pkg.api.resource.Quantity"
TIME_REF = f"{META_V1}.Time"
INT_OR_STRING_REF = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"

_GROUP_PACKAGE = {"coordination.k8s.io": "coordination", "autoscaling": "autoscaling",
                  "policy": "policy"}
_CORE_IN_META = {"ObjectReference"}  # defined in meta.py, but core/v1 in Kubernetes

_SHARED: dict[str, dict[str, Any]] = {
    QUANTITY_REF: {"type": "string", "description": "Quantity is a fixed-point "
                   "representation of a number, e.g. 100m, 128Mi, 2."},
    TIME_REF: {"type": "string", "format": "date-time",
               "description": "Time is an RFC 3339 timestamp (e.g. 2024-05-01T12:00:00Z)."},
    INT_OR_STRING_REF: {"type": "string", "format": "int-or-string",
                        "x-kubernetes-int-or-string": True,
                        "description": "IntOrString is a number or a named port."},
}

UNMODELLED_DOC = ("Defined by Kubernetes; kstate keeps the value as given and does not "
                  "interpret it.")


def schema_name(cls: type[Model]) -> str:
    """Kubernetes' definition name of an attrs class."""
    name = cls.__name__
    if cls.__module__ == meta_module.__name__ and name not in _CORE_IN_META:
        return f"{META_V1}.{name}"
    group = ""
    api_version = cls.API_VERSION or _owner_api_version(cls)
    if "/" in api_version:
        group = api_version.rpartition("/")[0]
    package = _GROUP_PACKAGE.get(group, "core")
    return f"io.k8s.api.{package}.v1.{name}"


def _owner_api_version(cls: type[Model]) -> str:
    # Spec / status classes of kinds outside the core group live in their kind's package.
    for kind_cls, prefix in ((_lease_cls(), "Lease"), (_scale_cls(), "Scale")):
        if cls.__name__.startswith(prefix) and cls is not kind_cls:
            return kind_cls.API_VERSION
    return "v1"


def _lease_cls() -> type[Model]:
    from kstate.api.objects import Lease

    return Lease


def _scale_cls() -> type[Model]:
    from kstate.api.objects import Scale

    return Scale


class _Builder:
    """Collects the schemas reachable from some roots; ``ref`` is ``#/components/schemas/``
    (v3) or ``#/definitions/`` (v2)."""

    def __init__(self, ref_prefix: str, v3: bool) -> None:
        self.ref_prefix = ref_prefix
        self.v3 = v3
        self.schemas: dict[str, dict[str, Any]] = {}

    def ref(self, name: str) -> dict[str, Any]:
        target = {"$ref": self.ref_prefix + name}
        # Kubernetes' v3 wraps references in allOf so descriptions can sit beside them.
        return {"allOf": [target]} if self.v3 else target

    def add(self, cls: type[Model]) -> str:
        name = schema_name(cls)
        if name in self.schemas:
            return name
        self.schemas[name] = {}  # placeholder: breaks cycles
        self.schemas[name] = self._model(cls)
        return name

    def _model(self, cls: type[Model]) -> dict[str, Any]:
        hints = typing.get_type_hints(cls, include_extras=True)
        p = plan(cls)
        props: dict[str, Any] = {}
        required = []
        if cls.KIND:
            props["apiVersion"] = {"type": "string", "description":
                                   "APIVersion defines the versioned schema of this object."}
            props["kind"] = {"type": "string", "description":
                             "Kind is a string value representing the REST resource."}
        for f in p.fields:
            schema = self._type(hints[f.name], f.opts.fmt)
            if f.opts.enum:
                schema = {**schema, "enum": list(f.opts.enum)}
            schema.update(self._patch_meta(cls, f.json, f.container))
            props[f.json] = schema
            if f.opts.required:
                required.append(f.json)
        for name in sorted(cls.UNMODELLED):
            if name not in props:
                extra: dict[str, Any] = {"description": UNMODELLED_DOC,
                                         "x-kubernetes-preserve-unknown-fields": True}
                extra.update(self._patch_meta(cls, name, ""))
                props[name] = extra
        out: dict[str, Any] = {"type": "object", "properties": props}
        doc = (cls.__doc__ or "").strip().split("\n\n")[0]
        if doc and not doc.startswith(("Model(", f"{cls.__name__}(")):
            out["description"] = " ".join(doc.split())
        if required:
            out["required"] = required
        if cls.KIND and cls.API_VERSION:
            group, _, version = cls.API_VERSION.rpartition("/")
            out["x-kubernetes-group-version-kind"] = [
                {"group": group, "version": version, "kind": cls.KIND}]
        return out

    def _patch_meta(self, cls: type[Model], field: str, container: str) -> dict[str, Any]:
        key = patch_rules.MERGE_KEYS.get((cls, field))
        if key is not None:
            strategy = "merge,retainKeys" if field == "volumes" else "merge"
            return {"x-kubernetes-patch-merge-key": key, "x-kubernetes-patch-strategy": strategy,
                    "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": [key]}
        if (cls, field) in patch_rules.MERGE_SETS:
            return {"x-kubernetes-patch-strategy": "merge", "x-kubernetes-list-type": "set"}
        if container == "list":
            return {"x-kubernetes-list-type": "atomic"}
        return {}

    def _type(self, tp: Any, fmt: str) -> dict[str, Any]:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            base, *marks = typing.get_args(tp)
            if QUANTITY in marks:
                return self._shared(QUANTITY_REF)
            if INT32 in marks:
                return {"type": "integer", "format": "int32"}
            if OBJECT in marks:
                return {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
            return self._type(base, fmt)
        if origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            if set(args) == {int, str}:
                return self._shared(INT_OR_STRING_REF)
            return self._type(args[0], fmt)
        if origin is tuple:
            return {"type": "array", "items": self._type(typing.get_args(tp)[0], fmt)}
        if origin is FrozenDict:
            return {"type": "object",
                    "additionalProperties": self._type(typing.get_args(tp)[1], "")}
        if tp is Any:
            return {"x-kubernetes-preserve-unknown-fields": True}
        if isinstance(tp, type) and issubclass(tp, Model):
            return self.ref(self.add(tp))
        if tp is str:
            return self._shared(TIME_REF) if fmt == RFC3339 else {"type": "string"}
        if tp is bool:
            return {"type": "boolean"}
        if tp is int:
            return {"type": "integer", "format": "int64"}
        if tp is float:
            return {"type": "number", "format": "double"}
        return {}

    def _shared(self, name: str) -> dict[str, Any]:
        self.schemas.setdefault(name, _SHARED[name])
        return self.ref(name)


# ------------------------------------------------------------------ operations


def _param(name: str, where: str, description: str, type_: str = "string",
           required: bool = False, v3: bool = True) -> dict[str, Any]:
    p: dict[str, Any] = {"name": name, "in": where, "description": description}
    if required:
        p["required"] = True
    if v3:
        p["schema"] = {"type": type_, "uniqueItems": True}
    else:
        p["type"] = type_
        p["uniqueItems"] = True
    return p


def _params(v3: bool) -> dict[str, dict[str, Any]]:
    def q(name: str, doc: str, type_: str = "string") -> dict[str, Any]:
        return _param(name, "query", doc, type_, v3=v3)

    return {
        "dryRun": q("dryRun", "When present, indicates that modifications should not be "
                              "persisted. Valid values are: All"),
        "fieldManager": q("fieldManager", "fieldManager is a name associated with the actor "
                                          "or entity that is making these changes."),
        "fieldValidation": q("fieldValidation", "fieldValidation instructs the server on how "
                             "to handle objects in the request containing unknown or "
                             "duplicate fields: Ignore, Warn (default) or Strict."),
        "pretty": q("pretty", "If 'true', then the output is pretty printed."),
        "labelSelector": q("labelSelector", "A selector to restrict the list of returned "
                                            "objects by their labels."),
        "fieldSelector": q("fieldSelector", "A selector to restrict the list of returned "
                                            "objects by their fields."),
        "limit": q("limit", "limit is a maximum number of responses to return.", "integer"),
        "continue": q("continue", "The continue option should be set when retrieving more "
                                  "results from the server."),
        "resourceVersion": q("resourceVersion", "resourceVersion sets a constraint on what "
                                                "resource versions a request may be served "
                                                "from."),
        "watch": q("watch", "Watch for changes to the described resources.", "boolean"),
        "allowWatchBookmarks": q("allowWatchBookmarks", "Request watch events with type "
                                                        "BOOKMARK.", "boolean"),
        "timeoutSeconds": q("timeoutSeconds", "Timeout for the list/watch call.", "integer"),
        "gracePeriodSeconds": q("gracePeriodSeconds", "The duration in seconds before the "
                                                      "object should be deleted.", "integer"),
        "propagationPolicy": q("propagationPolicy", "Whether and how garbage collection will "
                                                    "be performed: Orphan, Background, "
                                                    "Foreground."),
        "force": q("force", "Force is going to force apply requests.", "boolean"),
    }


def _operation_id(action: str, served: Served, sub: str, namespaced: bool) -> str:
    info = served.info
    group = info.group.split(".")[0].title() if info.group else "Core"
    ns = "Namespaced" if namespaced else ""
    suffix = sub.title() if sub else ""
    return f"{action}{group}{info.version.title()}{ns}{info.kind}{suffix}"


def _json(schema: dict[str, Any], v3: bool) -> dict[str, Any]:
    if not v3:
        return {"description": "OK", "schema": schema}
    return {"description": "OK", "content": {
        "application/json": {"schema": schema},
        "application/yaml": {"schema": schema}}}


def _paths(served: Served, b: _Builder, v3: bool) -> dict[str, Any]:
    info = served.info
    params = _params(v3)
    kind_ref = b.ref(b.add(info.cls))
    list_schema = {"type": "object", "properties": {
        "apiVersion": {"type": "string"}, "kind": {"type": "string"},
        "metadata": b.ref(b.add(meta_module.ListMeta)),
        "items": {"type": "array", "items": kind_ref}}}
    gvk = {"group": info.group, "version": info.version, "kind": info.kind}
    root = f"/api/{info.version}" if not info.group else f"/apis/{info.api_version}"
    ns_part = "/namespaces/{namespace}" if info.namespaced else ""
    base = f"{root}{ns_part}/{info.plural}"
    path_params = []
    if info.namespaced:
        path_params.append(_param("namespace", "path", "object name and auth scope",
                                  required=True, v3=v3))
    name_param = _param("name", "path", f"name of the {info.kind}", required=True, v3=v3)
    writes = [params["dryRun"], params["fieldManager"], params["fieldValidation"]]
    reads = [params[n] for n in ("labelSelector", "fieldSelector", "limit", "continue",
                                 "resourceVersion", "watch", "allowWatchBookmarks",
                                 "timeoutSeconds")]

    def op(action: str, verb: str, parameters: list[dict[str, Any]],
           schema: dict[str, Any], sub: str = "", sub_gvk: dict[str, str] | None = None,
           patch: bool = False, body: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "description": f"{verb} {info.kind}{'/' + sub if sub else ''}",
            "operationId": _operation_id(action, served, sub, info.namespaced),
            "parameters": [params["pretty"], *parameters],
            "responses": {"200": _json(schema, v3),
                          "401": {"description": "Unauthorized"}},
            "tags": [f"{info.group or 'core'}_{info.version}"],
            "x-kubernetes-action": verb,
            "x-kubernetes-group-version-kind": sub_gvk or gvk,
        }
        if body and v3:
            types_ = (patch_rules.PATCH_TYPES if patch else ("application/json",
                                                             "application/yaml"))
            out["requestBody"] = {"required": True, "content": {
                t: {"schema": {"type": "object"} if patch else schema} for t in types_}}
        elif body:
            out["parameters"].append({"name": "body", "in": "body", "required": True,
                                      "schema": {"type": "object"} if patch else schema})
            if patch:
                out["consumes"] = list(patch_rules.PATCH_TYPES)
        return out

    paths: dict[str, Any] = {}
    verbs = set(served.verbs)
    collection: dict[str, Any] = {"parameters": path_params}
    if "list" in verbs:
        collection["get"] = op("list", "list", reads, list_schema)
    if "create" in verbs:
        collection["post"] = op("create", "post", writes, kind_ref, body=True)
    if "deletecollection" in verbs:
        collection["delete"] = op("deleteCollection", "deletecollection",
                                  [params["labelSelector"], params["fieldSelector"],
                                   params["gracePeriodSeconds"],
                                   params["propagationPolicy"], params["dryRun"]],
                                  b.ref(b.add(meta_module.Status)))
    paths[base] = collection
    if info.namespaced and "list" in verbs:
        paths[f"{root}/{info.plural}"] = {"get": op("list", "list", reads, list_schema)}
    if "get" in verbs:
        paths[f"{base}/{{name}}"] = {
            "parameters": [name_param, *path_params],
            "get": op("read", "get", [], kind_ref),
            "put": op("replace", "put", writes, kind_ref, body=True),
            "patch": op("patch", "patch", [*writes, params["force"]], kind_ref, patch=True,
                        body=True),
            "delete": op("delete", "delete", [params["gracePeriodSeconds"],
                                              params["propagationPolicy"], params["dryRun"]],
                         kind_ref),
        }
    for sub in served.subresources:
        if sub.connect:  # kubectl's streams: documented as connect operations
            text, options = {"type": "string"}, {"group": sub.group, "version": sub.version,
                                                 "kind": sub.kind}
            paths[f"{base}/{{name}}/{sub.name}"] = {
                "parameters": [name_param, *path_params],
                "get": op("connectget", "connect", [], text, sub.name, options),
                "post": op("connectpost", "connect", [], text, sub.name, options)}
            continue
        sub_cls = _kind_class(sub.kind, sub.group, sub.version)
        sub_ref = b.ref(b.add(sub_cls))
        sub_gvk = {"group": sub.group, "version": sub.version, "kind": sub.kind}
        entry: dict[str, Any] = {"parameters": [name_param, *path_params]}
        if "get" in sub.verbs:
            schema = {"type": "string"} if sub.name == "log" else sub_ref
            entry["get"] = op("read", "get", [], schema, sub.name, sub_gvk)
        if "update" in sub.verbs:
            entry["put"] = op("replace", "put", writes, sub_ref, sub.name, sub_gvk, body=True)
        if "patch" in sub.verbs:
            entry["patch"] = op("patch", "patch", writes, sub_ref, sub.name, sub_gvk,
                                patch=True, body=True)
        if "create" in sub.verbs:
            entry["post"] = op("create", "post", writes, sub_ref, sub.name, sub_gvk, body=True)
        paths[f"{base}/{{name}}/{sub.name}"] = entry
    return paths


def _kind_class(kind: str, group: str, version: str) -> type[Model]:
    from kstate.api.registry import REGISTRY

    return REGISTRY.for_kind(kind).cls


# ------------------------------------------------------------------ documents


def _gv_path(gv: str) -> str:
    return f"api/{gv}" if "/" not in gv else f"apis/{gv}"


@functools.cache
def v3_document(group_version: str) -> bytes | None:
    """The OpenAPI 3.0 document of one group-version (JSON bytes), ``None`` if unknown."""
    if group_version not in SCHEMA_GROUP_VERSIONS:
        return None
    b = _Builder("#/components/schemas/", v3=True)
    paths: dict[str, Any] = {}
    for served in SERVED.values():
        if served.group_version == group_version:
            paths.update(_paths(served, b, v3=True))
    for sub_owner in SERVED.values():  # subresource kinds served from another group
        for sub in sub_owner.subresources:
            if sub.connect:
                continue
            gv = f"{sub.group}/{sub.version}" if sub.group else sub.version
            if gv == group_version:
                b.add(_kind_class(sub.kind, sub.group, sub.version))
    b.add(meta_module.Status)
    b.add(meta_module.DeleteOptions)
    doc = {"openapi": "3.0.0",
           "info": {"title": "Kubernetes (kstate)", "version": SERVER_VERSION["gitVersion"]},
           "paths": paths,
           "components": {"schemas": dict(sorted(b.schemas.items()))}}
    return json.dumps(doc, separators=(",", ":")).encode()


@functools.cache
def v3_hash(group_version: str) -> str:
    doc = v3_document(group_version) or b""
    return hashlib.sha512(doc).hexdigest().upper()[:128]


@functools.cache
def v3_index() -> bytes:
    """``/openapi/v3``: where each group-version's document is (with a content hash,
    which clients use as a cache key)."""
    paths = {_gv_path(gv): {"serverRelativeURL": f"/openapi/v3/{_gv_path(gv)}?hash="
                                                 f"{v3_hash(gv)}"}
             for gv in SCHEMA_GROUP_VERSIONS}
    return json.dumps({"paths": paths}, separators=(",", ":")).encode()


def v3_for_path(path: str) -> bytes | None:
    """The document at ``/openapi/v3/<path>`` (``api/v1``, ``apis/<group>/<version>``)."""
    path = path.strip("/")
    for gv in SCHEMA_GROUP_VERSIONS:
        if _gv_path(gv) == path:
            return v3_document(gv)
    return None


@functools.cache
def v2_document() -> bytes:
    """One Swagger 2.0 document for everything (``/openapi/v2``, JSON)."""
    b = _Builder("#/definitions/", v3=False)
    paths: dict[str, Any] = {}
    for served in SERVED.values():
        paths.update(_paths(served, b, v3=False))
    b.add(meta_module.Status)
    b.add(meta_module.DeleteOptions)
    doc = {"swagger": "2.0",
           "info": {"title": "Kubernetes (kstate)", "version": SERVER_VERSION["gitVersion"]},
           "paths": paths, "definitions": dict(sorted(b.schemas.items()))}
    return json.dumps(doc, separators=(",", ":")).encode()


# ------------------------------------------------------------------ Swagger 2.0 as protobuf
#
# kubectl 1.27 and 1.28 fetch /openapi/v2 only as protobuf: gnostic's ``openapi.v2``
# messages (github.com/google/gnostic, OpenAPIv2.proto). Only the fields the JSON
# document above uses are encoded; field numbers are that schema's. Vendor extensions
# travel as YAML text in ``Any.yaml`` (JSON is YAML), which is how kube-openapi reads them.

V2_PROTOBUF = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"
#: What the response says (Go's MIME parser rejects the "@" of the requested type).
V2_PROTOBUF_RESPONSE = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _msg(field: int, payload: bytes) -> bytes:
    return _varint(field << 3 | 2) + _varint(len(payload)) + payload


def _str(field: int, text: str) -> bytes:
    return _msg(field, text.encode()) if text else b""


def _flag(field: int, value: bool) -> bytes:
    return _varint(field << 3) + b"\x01" if value else b""


def _any(value: Any) -> bytes:
    return _str(2, json.dumps(value, separators=(",", ":")))  # Any.yaml


def _extensions(field: int, obj: dict[str, Any]) -> bytes:
    return b"".join(_msg(field, _str(1, k) + _msg(2, _any(v)))
                    for k, v in obj.items() if k.startswith("x-"))


def _pb_schema(s: dict[str, Any]) -> bytes:
    out = [_str(1, s.get("$ref", "")), _str(2, s.get("format", "")),
           _str(4, s.get("description", ""))]
    out += [_str(19, r) for r in s.get("required", ())]
    out += [_msg(20, _any(e)) for e in s.get("enum", ())]
    extra = s.get("additionalProperties")
    if isinstance(extra, dict):
        out.append(_msg(21, _msg(1, _pb_schema(extra))))
    if s.get("type"):
        out.append(_msg(22, _str(1, s["type"])))
    if isinstance(s.get("items"), dict):
        out.append(_msg(23, _msg(1, _pb_schema(s["items"]))))
    out += [_msg(24, _pb_schema(x)) for x in s.get("allOf", ())]
    if s.get("properties"):
        out.append(_msg(25, b"".join(_msg(1, _str(1, k) + _msg(2, _pb_schema(v)))
                                     for k, v in s["properties"].items())))
    out.append(_extensions(31, s))
    return b"".join(out)


def _pb_parameter(p: dict[str, Any]) -> bytes:
    if p["in"] == "body":
        body = (_str(1, p.get("description", "")) + _str(2, p["name"]) + _str(3, "body")
                + _flag(4, p.get("required", False)) + _msg(5, _pb_schema(p["schema"])))
        return _msg(1, _msg(1, body))  # ParametersItem.parameter.body_parameter
    common = (_flag(1, p.get("required", False)) + _str(2, p["in"])
              + _str(3, p.get("description", "")) + _str(4, p["name"]))
    if p["in"] == "path":  # PathParameterSubSchema: type 5, unique_items 19
        sub = _msg(4, common + _str(5, p.get("type", "")) + _flag(19, p.get("uniqueItems",
                                                                             False)))
    else:  # QueryParameterSubSchema: type 6, unique_items 20
        sub = _msg(3, common + _str(6, p.get("type", "")) + _flag(20, p.get("uniqueItems",
                                                                             False)))
    return _msg(1, _msg(2, sub))  # ParametersItem.parameter.non_body_parameter


def _pb_operation(op: dict[str, Any]) -> bytes:
    out = [_str(1, t) for t in op.get("tags", ())]
    out += [_str(3, op.get("description", "")), _str(5, op.get("operationId", ""))]
    out += [_str(6, t) for t in op.get("produces", ())]
    out += [_str(7, t) for t in op.get("consumes", ())]
    out += [_msg(8, _pb_parameter(p)) for p in op.get("parameters", ())]
    codes = []
    for code, resp in op.get("responses", {}).items():
        body = _str(1, resp.get("description", ""))
        if "schema" in resp:
            body += _msg(2, _msg(1, _pb_schema(resp["schema"])))
        codes.append(_msg(1, _str(1, code) + _msg(2, _msg(1, body))))
    out.append(_msg(9, b"".join(codes)))
    out.append(_extensions(13, op))
    return b"".join(out)


_PATH_OPS = {"get": 2, "put": 3, "post": 4, "delete": 5, "patch": 8}


@functools.cache
def v2_protobuf() -> bytes:
    """:func:`v2_document` in gnostic's protobuf encoding."""
    doc = json.loads(v2_document())
    paths = []
    for path, item in doc["paths"].items():
        body = [_msg(n, _pb_operation(item[verb])) for verb, n in _PATH_OPS.items()
                if verb in item]
        body += [_msg(9, _pb_parameter(p)) for p in item.get("parameters", ())]
        paths.append(_msg(2, _str(1, path) + _msg(2, b"".join(body))))
    definitions = b"".join(_msg(1, _str(1, name) + _msg(2, _pb_schema(schema)))
                           for name, schema in doc["definitions"].items())
    info = _str(1, doc["info"]["title"]) + _str(2, doc["info"]["version"])
    return (_str(1, doc["swagger"]) + _msg(2, info) + _msg(8, b"".join(paths))
            + _msg(9, definitions))


__all__ = ["V2_PROTOBUF", "V2_PROTOBUF_RESPONSE", "schema_name", "v2_document", "v2_protobuf",
           "v3_document", "v3_for_path", "v3_hash",
           "v3_index"]
