"""The three PATCH dialects: JSON merge patch, strategic merge patch and JSON patch.

Where it sits: the API server's patch verb reads the current object as Kubernetes JSON,
applies the patch here, and sends the result down the ordinary update path (admission,
validation, lifecycle check, compare-and-swap). ``kubectl apply``/``label``/``annotate``
/``edit`` send strategic merge patches, ``kubectl scale`` a merge patch, and
``kubectl patch --type json`` a JSON patch.

Why it exists: strategic merge patch is Kubernetes' own dialect — lists of structs are
merged element by element on a *merge key* (containers by ``name``, container ports by
``containerPort``, conditions by ``type``, owner references by ``uid``), some lists are
replaced whole (tolerations, taints), and patches carry directives (``$patch``,
``$retainKeys``, ``$setElementOrder/...``, ``$deleteFromPrimitiveList/...``). The merge
keys are derived from the attrs classes (which class a field holds) plus one table of
strategies, the same facts Kubernetes declares as ``patchMergeKey`` tags.

All functions work on plain JSON (``dict``/``list``), never mutate their inputs, and
raise ``BadRequest`` (malformed patch document) or ``InvalidObject`` (a patch that
cannot be applied, 422) — never anything else.

>>> merge_patch({"a": 1, "b": {"c": 2}}, {"b": {"c": None, "d": 3}})
{'a': 1, 'b': {'d': 3}}
>>> json_patch({"a": [1, 2]}, [{"op": "add", "path": "/a/-", "value": 3}])
{'a': [1, 2, 3]}
"""

from __future__ import annotations

import copy
import reprlib
from typing import Any

from kstate.api import objects as o
from kstate.api.codec import Model, plan
from kstate.api.meta import ObjectMeta
from kstate.errors import BadRequest, Cause, InvalidObject

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
PATCH_TYPES = (JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH)


def _unprocessable(message: str, field: str = "") -> InvalidObject:
    """A patch that cannot apply (422); ``field`` is where, in the patch document."""
    return InvalidObject("patch", "", [Cause(field, "FieldValueInvalid", message)])


def _at(err: InvalidObject | BadRequest, field: str) -> InvalidObject | BadRequest:
    """``err`` (raised without a field) about ``field`` of the patch document."""
    if any(c.field for c in err.causes):
        return err
    if isinstance(err, InvalidObject):
        return _unprocessable("; ".join(c.message for c in err.causes), field)
    return BadRequest.at(field, str(err))


# ------------------------------------------------------------------ JSON merge patch


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: maps merge recursively, ``null`` deletes, everything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# ------------------------------------------------------------------ JSON patch


def _pointer(path: Any) -> list[str]:
    if not isinstance(path, str):
        raise BadRequest(f"JSON patch path must be a string, not {type(path).__name__}")
    if path == "":
        return []
    if not path.startswith("/"):
        raise BadRequest(f"JSON patch path {path!r} must start with '/'")
    return [t.replace("~1", "/").replace("~0", "~") for t in path[1:].split("/")]


def _index(token: str, size: int, *, append: bool, path: str) -> int:
    if append and token == "-":
        return size
    if not token.isdigit() or (len(token) > 1 and token[0] == "0"):
        raise _unprocessable(f"JSON patch path {path!r}: {token!r} is not an array index")
    i = int(token)
    if i > size or (i == size and not append):
        raise _unprocessable(f"JSON patch path {path!r}: index {i} is out of range")
    return i


def _parent(doc: Any, tokens: list[str], path: str) -> Any:
    node = doc
    for tok in tokens[:-1]:
        if isinstance(node, dict):
            if tok not in node:
                raise _unprocessable(f"JSON patch path {path!r}: {tok!r} does not exist")
            node = node[tok]
        elif isinstance(node, list):
            node = node[_index(tok, len(node), append=False, path=path)]
        else:
            raise _unprocessable(f"JSON patch path {path!r}: {tok!r} is inside a value")
    return node


def _get(doc: Any, path: str) -> Any:
    tokens = _pointer(path)
    if not tokens:
        return doc
    parent, last = _parent(doc, tokens, path), tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise _unprocessable(f"JSON patch path {path!r} does not exist")
        return parent[last]
    if isinstance(parent, list):
        return parent[_index(last, len(parent), append=False, path=path)]
    raise _unprocessable(f"JSON patch path {path!r} does not exist")


def _add(doc: Any, path: str, value: Any) -> Any:
    tokens = _pointer(path)
    if not tokens:
        return value
    parent, last = _parent(doc, tokens, path), tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_index(last, len(parent), append=True, path=path), value)
    else:
        raise _unprocessable(f"JSON patch path {path!r}: parent is not an object or array")
    return doc


def _remove(doc: Any, path: str) -> Any:
    tokens = _pointer(path)
    if not tokens:
        raise _unprocessable("JSON patch cannot remove the whole document")
    parent, last = _parent(doc, tokens, path), tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise _unprocessable(f"JSON patch path {path!r} does not exist")
        del parent[last]
    elif isinstance(parent, list):
        del parent[_index(last, len(parent), append=False, path=path)]
    else:
        raise _unprocessable(f"JSON patch path {path!r} does not exist")
    return doc


def json_patch(doc: Any, operations: Any) -> Any:
    """RFC 6902: ``add``, ``remove``, ``replace``, ``move``, ``copy``, ``test``."""
    if not isinstance(operations, list):
        raise BadRequest("a JSON patch must be an array of operations")
    doc = copy.deepcopy(doc)
    for n, op in enumerate(operations):
        if not isinstance(op, dict):
            raise BadRequest.at(f"[{n}]", f"JSON patch operation {n} must be an object")
        kind, path = op.get("op"), op.get("path")
        if not isinstance(path, str):
            raise BadRequest.at(f"[{n}].path", f"JSON patch operation {n} needs a string "
                                "'path'")
        if kind not in ("add", "remove", "replace", "move", "copy", "test"):
            raise BadRequest.at(f"[{n}].op", f"JSON patch operation {n}: unknown op "
                                f"{reprlib.repr(kind)}")
        if kind in ("add", "replace", "test") and "value" not in op:
            raise BadRequest.at(f"[{n}].value", f"JSON patch operation {n} ({kind}) needs "
                                "a 'value'")
        member = "path"  # which member of the operation a failure is about
        try:
            if kind in ("move", "copy"):
                member = "from"
                source = op.get("from")
                if not isinstance(source, str):
                    raise BadRequest(f"JSON patch operation {n} ({kind}) needs a string "
                                     "'from'")
                moved = copy.deepcopy(_get(doc, source))
                if kind == "move":
                    if path.startswith(source + "/"):
                        raise _unprocessable(f"JSON patch cannot move {source!r} into "
                                             "itself")
                    doc = _remove(doc, source)
                member = "path"
                doc = _add(doc, path, moved)
            elif kind == "test":
                if _get(doc, path) != op["value"]:
                    member = "value"
                    raise _unprocessable(f"JSON patch test failed at {path!r}")
            else:
                doc = _add_remove_replace(doc, kind, path, op.get("value"))
        except (InvalidObject, BadRequest) as err:
            raise _at(err, f"[{n}].{member}") from None
    return doc


def _add_remove_replace(doc: Any, kind: str, path: str, value: Any) -> Any:
    value = copy.deepcopy(value)
    if kind == "add":
        return _add(doc, path, value)
    if kind == "remove":
        return _remove(doc, path)
    _get(doc, path)
    return _add(_remove(doc, path), path, value) if _pointer(path) else value


# ------------------------------------------------------------------ strategic merge patch

#: Lists merged element by element on a key (Kubernetes' ``patchMergeKey``).
MERGE_KEYS: dict[tuple[type[Model], str], str] = {
    (o.PodSpec, "containers"): "name",
    (o.PodSpec, "initContainers"): "name",
    (o.PodSpec, "ephemeralContainers"): "name",
    (o.PodSpec, "volumes"): "name",
    (o.PodSpec, "imagePullSecrets"): "name",
    (o.PodSpec, "hostAliases"): "ip",
    (o.Container, "ports"): "containerPort",
    (o.Container, "env"): "name",
    (o.Container, "volumeMounts"): "mountPath",
    (o.Container, "volumeDevices"): "devicePath",
    (ObjectMeta, "ownerReferences"): "uid",
    (o.PodStatus, "conditions"): "type",
    (o.PodStatus, "podIPs"): "ip",
    (o.PodStatus, "hostIPs"): "ip",
    (o.NodeStatus, "conditions"): "type",
    (o.NodeStatus, "addresses"): "type",
    (o.ReplicationControllerStatus, "conditions"): "type",
    (o.ServiceSpec, "ports"): "port",
    (o.ServiceStatus, "conditions"): "type",
    (o.NamespaceStatus, "conditions"): "type",
}
#: Lists of scalars merged as sets (``patchStrategy: merge`` on a primitive list).
MERGE_SETS: frozenset[tuple[type[Model], str]] = frozenset({
    (ObjectMeta, "finalizers"),
    (o.NodeSpec, "podCIDRs"),
})
#: Unmodelled list fields whose items are a modelled class.
ITEM_CLASS: dict[tuple[type[Model], str], type[Model]] = {
    (o.PodSpec, "initContainers"): o.Container,
    (o.PodSpec, "ephemeralContainers"): o.Container,
}

_DELETE: Any = object()  # a map-level ``$patch: delete``


def _child(cls: type[Model] | None, key: str) -> type[Model] | None:
    if cls is None:
        return None
    f = plan(cls).by_json.get(key)
    if f is not None:
        return f.model
    return ITEM_CLASS.get((cls, key))


def strategic_merge_patch(original: Any, patch: Any, cls: type[Model]) -> Any:
    """Apply a strategic merge patch to ``original`` (JSON of a ``cls``)."""
    if not isinstance(patch, dict):
        raise BadRequest("a strategic merge patch must be a JSON object")
    result = _merge_map(original if isinstance(original, dict) else {}, patch, cls, "")
    return {} if result is _DELETE else result


def _field(at: str, key: str | int) -> str:
    """A field path one step down: ``_field("spec", "containers")``, ``_field(.., 0)``."""
    if isinstance(key, int):
        return f"{at}[{key}]"
    return f"{at}.{key}" if at else key


def _directive(patch: dict[str, Any], at: str) -> str | None:
    d = patch.get("$patch")
    if d is None:
        return None
    if d not in ("replace", "delete", "merge"):
        raise BadRequest.at(_field(at, "$patch"), "unknown strategic merge patch directive "
                            f"$patch: {reprlib.repr(d)}")
    return str(d)


def _strip(value: Any, cls: type[Model] | None, at: str) -> Any:
    """A patch value with no original to merge into: apply it to nothing."""
    if isinstance(value, dict):
        merged = _merge_map({}, value, cls, at)
        return None if merged is _DELETE else merged
    if isinstance(value, list):
        return [_strip(v, cls, _field(at, i)) for i, v in enumerate(value) if not (
            isinstance(v, dict) and v.get("$patch") in ("delete", "replace") and len(v) == 1)]
    return value


def _merge_map(original: dict[str, Any], patch: dict[str, Any],
               cls: type[Model] | None, at: str) -> Any:
    """Merge ``patch`` (found at field path ``at`` of the patch) into ``original``."""
    directive = _directive(patch, at)
    if directive == "delete":
        return _DELETE
    if directive == "replace":
        return {k: _strip(v, _child(cls, k), _field(at, k)) for k, v in patch.items()
                if not k.startswith("$")}
    result = dict(original)
    retain = patch.get("$retainKeys")
    if retain is not None:
        if not isinstance(retain, list) or not all(isinstance(k, str) for k in retain):
            raise BadRequest.at(_field(at, "$retainKeys"),
                                "$retainKeys must be a list of strings")
        result = {k: v for k, v in result.items() if k in retain}
    orders: dict[str, Any] = {}
    for key, value in patch.items():
        if key.startswith("$setElementOrder/"):
            orders[key.partition("/")[2]] = value
        elif key.startswith("$deleteFromPrimitiveList/"):
            name = key.partition("/")[2]
            if not isinstance(value, list):
                raise BadRequest.at(_field(at, key), f"{key} must be a list")
            current = result.get(name)
            if isinstance(current, list):
                result[name] = [v for v in current if v not in value]
        elif key.startswith("$"):
            continue
        elif value is None:
            result.pop(key, None)
        else:
            merged = _merge_value(result.get(key), value, cls, key, _field(at, key))
            if merged is _DELETE:
                result.pop(key, None)
            else:
                result[key] = merged
    for name, order in orders.items():
        if isinstance(result.get(name), list):
            result[name] = _reorder(result[name], order, _merge_key(cls, name),
                                    _field(at, f"$setElementOrder/{name}"))
    return result


def _merge_key(cls: type[Model] | None, key: str) -> str | None:
    return MERGE_KEYS.get((cls, key)) if cls is not None else None


def _merge_value(current: Any, value: Any, cls: type[Model] | None, key: str,
                 at: str) -> Any:
    child = _child(cls, key)
    if isinstance(value, dict):
        if isinstance(current, dict):
            return _merge_map(current, value, child, at)
        return _strip(value, child, at)
    if isinstance(value, list):
        merge_key = _merge_key(cls, key)
        if merge_key is not None and isinstance(current, list):
            return _merge_list(current, value, merge_key, child, at)
        if cls is not None and (cls, key) in MERGE_SETS and isinstance(current, list):
            return current + [v for v in value if v not in current]
        return _strip(value, child, at)
    return value


def _merge_list(current: list[Any], patch: list[Any], key: str,
                cls: type[Model] | None, at: str) -> list[Any]:
    if any(isinstance(p, dict) and p.get("$patch") == "replace" for p in patch):
        return [_strip(p, cls, _field(at, i)) for i, p in enumerate(patch)
                if not (isinstance(p, dict) and p.get("$patch") == "replace")]
    result = [copy.deepcopy(c) for c in current]
    for i, item in enumerate(patch):
        if not isinstance(item, dict):
            raise _unprocessable(f"strategic merge patch: list items merged on {key!r} "
                                 f"must be objects, got {reprlib.repr(item)}",
                                 _field(at, i))
        if key not in item:
            raise _unprocessable(f"strategic merge patch: a list item has no merge key "
                                 f"{key!r}: {reprlib.repr(item)}", _field(at, i))
        found = next((i for i, c in enumerate(result)
                      if isinstance(c, dict) and c.get(key) == item[key]), None)
        if item.get("$patch") == "delete":
            if found is not None:
                del result[found]
            continue
        if found is None:
            stripped = _strip(item, cls, _field(at, i))
            if stripped is not None:
                result.append(stripped)
        else:
            merged = _merge_map(result[found], item, cls, _field(at, i))
            if merged is _DELETE:
                del result[found]
            else:
                result[found] = merged
    return result


def _reorder(items: list[Any], order: Any, key: str | None, at: str) -> list[Any]:
    """``$setElementOrder``: listed items first, in the listed order; the rest after."""
    if not isinstance(order, list):
        raise BadRequest.at(at, "$setElementOrder must be a list")

    def ident(v: Any) -> str:
        return repr(v.get(key)) if key is not None and isinstance(v, dict) else repr(v)

    rank: dict[str, int] = {}
    for i, v in enumerate(order):
        rank.setdefault(ident(v), i)
    ranked = sorted(enumerate(items), key=lambda p: rank.get(ident(p[1]), len(order) + p[0]))
    return [v for _, v in ranked]


def apply_patch(content_type: str, original: dict[str, Any], patch: Any,
                cls: type[Model]) -> Any:
    """Dispatch on the PATCH ``Content-Type`` (one of :data:`PATCH_TYPES`)."""
    if content_type == MERGE_PATCH:
        if not isinstance(patch, dict):
            raise BadRequest("a JSON merge patch must be a JSON object")
        return merge_patch(original, patch)
    if content_type == STRATEGIC_MERGE_PATCH:
        return strategic_merge_patch(original, patch, cls)
    if content_type == JSON_PATCH:
        return json_patch(original, patch)
    raise BadRequest(f"unsupported patch type {content_type!r}")


__all__ = [
    "APPLY_PATCH",
    "JSON_PATCH",
    "MERGE_KEYS",
    "MERGE_PATCH",
    "MERGE_SETS",
    "PATCH_TYPES",
    "STRATEGIC_MERGE_PATCH",
    "apply_patch",
    "json_patch",
    "merge_patch",
    "strategic_merge_patch",
]
