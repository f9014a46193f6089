"""One generic codec between Kubernetes JSON (camelCase) and kstate's immutable objects.

Where it sits: every byte that enters or leaves kstate as an object passes here — the
manifest loader, the API server (request bodies, responses, watch events) and the store's
serialized values. Nothing is hand-written per class: each ``Model`` subclass is an
``attrs`` class whose type hints and field metadata drive a per-class *plan* (computed
once, then cached), so adding a field is one line in ``objects.py``.

Rules the plan implements:

* snake_case attribute <-> camelCase JSON name, with Kubernetes' initialisms
  (``pod_ip`` -> ``podIP``, ``image_id`` -> ``imageID``) and per-field overrides;
* lossless: keys kstate does not model go to the object's ``extra`` (deep-frozen) and come
  back out in the same nested object, in the original key order (``json_order``);
* ``omitempty`` like Kubernetes: ``None``, ``""``, empty lists/maps and empty nested
  structs are left out, explicit zeros (``replicas: 0``, ``exitCode: 0``) are kept;
* wrong types become ``InvalidObject`` causes carrying the JSON path
  (``spec.containers[0].ports[0].containerPort``) and reason ``FieldValueTypeInvalid``,
  with a hint for YAML 1.1 traps (``yes`` read as a boolean, ``0777`` as octal).

>>> from kstate.api.objects import Pod
>>> pod = from_dict(Pod, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"},
...                       "spec": {"containers": [{"name": "c", "image": "nginx"}]}})
>>> pod.spec.containers[0].image
'nginx'
>>> to_dict(pod)["spec"]
{'containers': [{'name': 'c', 'image': 'nginx'}]}
"""

from __future__ import annotations

import difflib
import json
import math
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from typing import Annotated, Any, ClassVar, TypeVar

import attrs

from kstate.api.frozen import EMPTY, FreezeError, FrozenDict, freeze, thaw
from kstate.errors import Cause, InvalidObject, ManifestError

# ------------------------------------------------------------------ type markers

QUANTITY = "quantity"
INT32 = "int32"
OBJECT = "object"

#: A resource quantity: kept as the string written ("100m", "128Mi"); a JSON number is
#: accepted on input (``cpu: 1``) and stored as its string.
Quantity = Annotated[str, QUANTITY]
#: An int that Kubernetes declares int32: out-of-range values are type errors.
Int32 = Annotated[int, INT32]
#: Any Kubernetes object: decoded to its class when its apiVersion/kind is registered,
#: kept as frozen JSON otherwise (``List.items``).
AnyObject = Annotated[Any, OBJECT]

TYPE_INVALID = "FieldValueTypeInvalid"

_META = "kstate"
_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)


@attrs.frozen
class FieldOpts:
    """Per-field metadata: the JSON name override, output policy and validation rules.

    Validation rules are declarative here so one walker (``validation.py``) checks them
    all; rules spanning several fields live there as per-class functions.
    """

    json: str | None = None
    omit_zero: bool = False  # Kubernetes' ``int32 omitempty``: 0 / false is left out
    required: bool = False
    enum: tuple[str, ...] = ()
    fmt: str = ""  # a format name known to validation (dns1123-label, ip, quantity, ...)
    ge: int | None = None
    le: int | None = None
    unique: str = ""  # for a list of structs: the attribute whose values must differ
    keys: str = ""  # for a map: format of its keys
    values: str = ""  # for a map: format of its values


NO_OPTS = FieldOpts()


def field(
    default: Any = None,
    *,
    json: str | None = None,
    omit_zero: bool = False,
    required: bool = False,
    enum: tuple[str, ...] = (),
    fmt: str = "",
    ge: int | None = None,
    le: int | None = None,
    unique: str = "",
    keys: str = "",
    values: str = "",
) -> Any:
    """An attrs field carrying :class:`FieldOpts` (``default`` must be immutable)."""
    opts = FieldOpts(json, omit_zero, required, enum, fmt, ge, le, unique, keys, values)
    return attrs.field(default=default, metadata={_META: opts})


# ------------------------------------------------------------------ the base class


def _compact_repr(obj: Model) -> str:
    # Only fields that differ from their defaults: a pod's repr fits on a screen, which
    # matters in test failures and model-checker counterexample traces.
    parts = []
    for a in attrs.fields(type(obj)):
        if a.name in ("json_order", "extra"):
            continue
        value = getattr(obj, a.name)
        if value is a.default or value == a.default:
            continue
        parts.append(f"{a.name}={value!r}")
    if obj.extra:
        parts.append(f"extra={obj.extra!r}")
    return f"{type(obj).__name__}({', '.join(parts)})"


@attrs.frozen(cache_hash=True, repr=False)
class Model:
    """Base of every kstate object: an immutable, hashable value.

    ``extra`` holds the JSON keys this class does not model, deep-frozen; ``json_order``
    remembers the key order of the decoded JSON so output matches input byte for byte.
    ``json_order`` takes no part in equality or hashing: two objects with the same content
    are equal however their JSON was laid out. It also records which keys were present
    (so ``"resources": {}`` is written back) and which were ``null``.
    """

    #: Set on top-level kinds: ``apiVersion`` and ``kind`` are class constants, emitted
    #: first on output and checked on input.
    KIND: ClassVar[str] = ""
    API_VERSION: ClassVar[str] = ""
    #: JSON names Kubernetes defines on this type that kstate keeps in ``extra`` — they
    #: are not "unknown fields" for ``fieldValidation=Strict``.
    UNMODELLED: ClassVar[frozenset[str]] = frozenset()

    extra: FrozenDict[str, Any] = attrs.field(default=EMPTY, kw_only=True)
    json_order: tuple[str, ...] = attrs.field(default=(), kw_only=True, eq=False, repr=False)

    def __repr__(self) -> str:
        return _compact_repr(self)


M = TypeVar("M", bound=Model)


# ------------------------------------------------------------------ naming

_INITIALISMS = {
    "ip": "IP",
    "ips": "IPs",
    "id": "ID",
    "cidr": "CIDR",
    "cidrs": "CIDRs",
    "uuid": "UUID",
}


def json_name(attr: str) -> str:
    """Kubernetes' camelCase for a snake_case attribute.

    >>> json_name("pod_ips"), json_name("api_version"), json_name("continue_")
    ('podIPs', 'apiVersion', 'continue')
    """
    head, *rest = attr.rstrip("_").split("_")
    return head + "".join(_INITIALISMS.get(p, p[:1].upper() + p[1:]) for p in rest)


# ------------------------------------------------------------------ type errors


def describe(value: Any) -> str:
    """A short description of a JSON value for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {'true' if value else 'false'}"
    if isinstance(value, int) and value.bit_length() > 128:
        return "a very large number"
    if isinstance(value, int | float):
        text = repr(value)
        return f"number {text if len(text) <= 40 else text[:37] + '...'}"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"string {json.dumps(shown)}"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list | tuple):
        return "an array"
    return f"a {type(value).__name__}"


def _hint(expected: str, value: Any) -> str:
    if expected == "string":
        if isinstance(value, bool):
            return (
                "; quote it in YAML: unquoted yes/no/on/off/true/false are read as booleans"
            )
        if isinstance(value, int | float):
            return "; quote it in YAML: unquoted numbers (and octal like 0777) are numbers"
    if (
        expected.startswith("integer")
        and isinstance(value, str)
        and value.strip().lstrip("+-").isdigit()
    ):
        return "; remove the quotes"
    if expected == "boolean" and isinstance(value, str) and value.lower() in (
        "true",
        "false",
    ):
        return "; write true or false without quotes"
    return ""


def type_cause(path: str, expected: str, value: Any) -> Cause:
    """A ``FieldValueTypeInvalid`` cause: what was expected, what came, how to fix."""
    return Cause(
        path, TYPE_INVALID, f"expected {expected}, got {describe(value)}{_hint(expected, value)}"
    )


# ------------------------------------------------------------------ the per-class plan

Decoder = Callable[[Any, str, list[Cause]], Any]
Encoder = Callable[[Any], Any]

#: Prefix, in ``json_order``, of a modelled key the input gave as ``null``.
NULL_MARK = "\x00"

_BAD: Any = object()  # a decoder's "this value was rejected; use the field's default"

# Output policies.
_KEEP = 0  # omit only None
_OMIT_FALSY = 1  # "", empty list/map, and 0/false when omit_zero
_OMIT_EMPTY_STRUCT = 2  # a nested struct equal to its default (empty) instance


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


@attrs.define(slots=True)
class FieldInfo:
    """One field of a model class as the codec, validation and defaulting see it."""

    name: str
    json: str
    opts: FieldOpts
    default: Any
    #: the model class of a struct field, or of the items of a list-of-structs field
    model: type[Model] | None
    #: "", "list" or "map"
    container: str
    decode: Decoder
    encode: Encoder | None
    omit: int
    fast: type | None  # values of exactly this type are stored without a decoder call


@attrs.define(slots=True)
class Plan:
    """Everything the codec needs about one class, computed once."""

    cls: type[Model]
    fields: tuple[FieldInfo, ...]
    by_json: dict[str, FieldInfo]
    by_attr: dict[str, FieldInfo]
    #: JSON names Kubernetes defines on this type (modelled or not)
    known: frozenset[str]


_PLANS: dict[type, Plan] = {}
_KINDS: dict[tuple[str, str], type[Model]] = {}
_ORDERS: dict[tuple[str, ...], tuple[str, ...]] = {}


def register_kind(cls: type[Model]) -> None:
    """Make ``cls`` decodable where any object may appear (``List.items``)."""
    _KINDS[(cls.API_VERSION, cls.KIND)] = cls


def plan(cls: type[Model]) -> Plan:
    """The cached plan of ``cls`` (built on first use)."""
    p = _PLANS.get(cls)
    if p is None:
        p = _build_plan(cls)
        _PLANS[cls] = p
    return p


def _build_plan(cls: type[Model]) -> Plan:
    hints = typing.get_type_hints(cls, include_extras=True)
    infos = []
    for a in attrs.fields(cls):
        if a.name in ("extra", "json_order"):
            continue
        opts = a.metadata.get(_META, NO_OPTS)
        tp = hints[a.name]
        decode, encode, model, container, fast = _analyze(tp, opts)
        default = a.default
        if default is None:
            omit = _KEEP
        elif model is not None and container == "":
            omit = _OMIT_EMPTY_STRUCT
        elif isinstance(default, str | tuple | FrozenDict) or opts.omit_zero:
            omit = _OMIT_FALSY
        else:
            omit = _KEEP
        infos.append(
            FieldInfo(
                name=a.name,
                json=opts.json or json_name(a.name),
                opts=opts,
                default=default,
                model=model,
                container=container,
                decode=decode,
                encode=encode,
                omit=omit,
                fast=fast,
            )
        )
    by_json = {f.json: f for f in infos}
    known = frozenset(by_json) | cls.UNMODELLED
    if cls.KIND:
        known |= {"apiVersion", "kind"}
    by_attr = {f.name: f for f in infos}
    return Plan(cls=cls, fields=tuple(infos), by_json=by_json, by_attr=by_attr, known=known)


def _analyze(
    tp: Any, opts: FieldOpts
) -> tuple[Decoder, Encoder | None, type[Model] | None, str, type | None]:
    """(decoder, encoder, struct class, container kind, fast type) for a type hint."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return _analyze(args[0], opts)
        if set(args) == {int, str}:
            return _dec_int_or_string, None, None, "", None
        raise TypeError(f"unsupported union {tp!r}")
    if origin is Annotated:
        base, marker = typing.get_args(tp)[:2]
        if marker == QUANTITY:
            return _dec_quantity, None, None, "", str
        if marker == INT32:
            return _int_decoder(_INT32, "integer (32-bit)"), None, None, "", None
        if marker == OBJECT:
            return _dec_object, _enc_object, None, "", None
        return _analyze(base, opts)
    if origin is tuple:
        item = typing.get_args(tp)[0]
        idec, ienc, imodel, _, _ = _analyze(item, opts)
        return _list_decoder(idec), _list_encoder(ienc), imodel, "list", None
    if origin is FrozenDict:
        _, value = typing.get_args(tp)
        vdec, venc, _, _, _ = _analyze(value, opts)
        return _map_decoder(vdec), _map_encoder(venc), None, "map", None
    if tp is Any:
        return _dec_any, thaw, None, "", None
    if isinstance(tp, type) and issubclass(tp, Model):
        return _model_decoder(tp), _model_encoder(tp), tp, "", None
    if tp is str:
        return _dec_str, None, None, "", str
    if tp is bool:
        return _dec_bool, None, None, "", bool
    if tp is int:
        return _int_decoder(_INT64, "integer"), None, None, "", None
    if tp is float:
        return _dec_float, None, None, "", float
    raise TypeError(f"unsupported field type {tp!r}")


# ------------------------------------------------------------------ decoders


def _dec_str(value: Any, path: str, errs: list[Cause]) -> Any:
    if isinstance(value, str):
        return value
    errs.append(type_cause(path, "string", value))
    return _BAD


def _dec_bool(value: Any, path: str, errs: list[Cause]) -> Any:
    if isinstance(value, bool):
        return value
    errs.append(type_cause(path, "boolean", value))
    return _BAD


def _dec_float(value: Any, path: str, errs: list[Cause]) -> Any:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    errs.append(type_cause(path, "number", value))
    return _BAD


def _int_decoder(bounds: tuple[int, int], expected: str) -> Decoder:
    lo, hi = bounds

    def dec(value: Any, path: str, errs: list[Cause]) -> Any:
        if type(value) is int:
            if lo <= value <= hi:
                return value
            errs.append(Cause(path, TYPE_INVALID,
                              f"{describe(value)} is out of range for an {expected}"))
            return _BAD
        if isinstance(value, float) and not isinstance(value, bool):
            errs.append(Cause(path, TYPE_INVALID, f"expected {expected}, got {value!r}"
                              " (must be a whole number)"))
            return _BAD
        errs.append(type_cause(path, expected, value))
        return _BAD

    return dec


def _dec_int_or_string(value: Any, path: str, errs: list[Cause]) -> Any:
    if type(value) is int:
        if _INT32[0] <= value <= _INT32[1]:
            return value
        errs.append(Cause(path, TYPE_INVALID, f"{describe(value)} is out of range"))
        return _BAD
    if isinstance(value, str):
        return value
    errs.append(type_cause(path, "integer or string", value))
    return _BAD


def _dec_quantity(value: Any, path: str, errs: list[Cause]) -> Any:
    if isinstance(value, str):
        return value
    # Kubernetes' Quantity accepts a JSON number (``cpu: 1``, ``cpu: 0.5``).
    if type(value) is int and value.bit_length() <= 64:
        return str(value)
    if type(value) is float and math.isfinite(value):
        return repr(value)
    errs.append(type_cause(path, "quantity (a string like 100m or 128Mi)", value))
    return _BAD


def _dec_any(value: Any, path: str, errs: list[Cause]) -> Any:
    try:
        return freeze(value, path)
    except FreezeError as e:
        errs.append(Cause(e.path or path, TYPE_INVALID, e.problem))
        return _BAD
    except RecursionError:
        errs.append(Cause(path, TYPE_INVALID, "nested too deeply"))
        return _BAD


def _dec_object(value: Any, path: str, errs: list[Cause]) -> Any:
    if isinstance(value, Mapping):
        api, kind = value.get("apiVersion"), value.get("kind")
        if isinstance(api, str) and isinstance(kind, str):
            cls = _KINDS.get((api, kind))
            if cls is not None:
                return _decode_model(cls, value, path, errs)
    return _dec_any(value, path, errs)


def _enc_object(value: Any) -> Any:
    if isinstance(value, Model):
        return to_dict(value)
    return thaw(value)


def _list_decoder(item: Decoder) -> Decoder:
    def dec(value: Any, path: str, errs: list[Cause]) -> Any:
        if not isinstance(value, list | tuple):
            errs.append(type_cause(path, "array", value))
            return _BAD
        out = []
        for i, v in enumerate(value):
            if v is None:
                errs.append(Cause(f"{path}[{i}]", TYPE_INVALID, "null is not allowed here"))
                continue
            d = item(v, f"{path}[{i}]", errs)
            if d is not _BAD:
                out.append(d)
        return tuple(out)

    return dec


def _map_decoder(item: Decoder) -> Decoder:
    def dec(value: Any, path: str, errs: list[Cause]) -> Any:
        if not isinstance(value, Mapping):
            errs.append(type_cause(path, "object (a map)", value))
            return _BAD
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                errs.append(Cause(path, TYPE_INVALID, f"key {describe(k)} must be a string"
                                  f"{_hint('string', k)}"))
                continue
            d = item(v, f"{path}[{k}]", errs)
            if d is not _BAD:
                out[k] = d
        return FrozenDict(out)

    return dec


def _model_decoder(cls: type[Model]) -> Decoder:
    def dec(value: Any, path: str, errs: list[Cause]) -> Any:
        return _decode_model(cls, value, path, errs)

    return dec


def _intern(order: tuple[str, ...]) -> tuple[str, ...]:
    # Thousands of pods share a handful of key layouts; one tuple each saves memory.
    got = _ORDERS.get(order)
    if got is not None:
        return got
    if len(_ORDERS) < 10_000:
        _ORDERS[order] = order
    return order


def _decode_model(cls: type[Model], data: Any, path: str, errs: list[Cause]) -> Any:
    if type(data) is not dict and not isinstance(data, Mapping):
        errs.append(type_cause(path, "object", data))
        return _BAD
    p = _PLANS.get(cls) or plan(cls)
    by_json = p.by_json
    kwargs: dict[str, Any] = {}
    extra: dict[str, Any] | None = None
    irregular = False  # a null or a non-string key: json_order needs the slow build
    for key, value in data.items():
        f = by_json.get(key)
        if f is None:
            if cls.KIND and key in ("apiVersion", "kind"):
                _check_type_meta(cls, key, value, path, errs)
                continue
            if type(key) is not str:
                errs.append(Cause(path, TYPE_INVALID, f"key {describe(key)} must be a string"
                                  f"{_hint('string', key)}"))
                irregular = True
                continue
            v = _dec_any(value, _join(path, key), errs)
            if v is not _BAD:
                if extra is None:
                    extra = {}
                extra[key] = v
            continue
        if value is None:
            irregular = True
            continue  # JSON null means "not set", as in Go
        if type(value) is f.fast:
            kwargs[f.name] = value
            continue
        v = f.decode(value, _join(path, key), errs)
        if v is not _BAD:
            kwargs[f.name] = v
    if extra:
        kwargs["extra"] = FrozenDict(extra)
    if data:
        if irregular:
            order = tuple(
                (NULL_MARK + k if data[k] is None and k in by_json else k)
                for k in data if type(k) is str
            )
        else:
            order = tuple(data)
        kwargs["json_order"] = _intern(order)
    return cls(**kwargs)


def _check_type_meta(cls: type[Model], key: str, value: Any, path: str, errs: list[Cause]) -> None:
    want = cls.KIND if key == "kind" else cls.API_VERSION
    if value == want:
        return
    where = _join(path, key)
    if not isinstance(value, str):
        errs.append(type_cause(where, "string", value))
    else:
        errs.append(Cause(where, "FieldValueInvalid",
                          f"{key} is {value!r}, expected {want!r} for a {cls.KIND}"))


# ------------------------------------------------------------------ encoders


def _list_encoder(item: Encoder | None) -> Encoder:
    if item is None:
        return list
    return lambda v: [item(x) for x in v]


def _map_encoder(item: Encoder | None) -> Encoder:
    if item is None:
        return dict
    return lambda v: {k: item(x) for k, x in v.items()}


def _model_encoder(cls: type[Model]) -> Encoder:
    return to_dict


def to_dict(obj: Model) -> dict[str, Any]:
    """Kubernetes JSON (plain ``dict``/``list``) for ``obj``.

    Empty values are left out (``omitempty``) unless the decoded input had the key —
    ``"resources": {}`` in a real pod stays — and keys the input had as ``null`` come
    back as ``null`` while still unset; both are remembered in ``json_order``.

    >>> from kstate.api.objects import ServicePort
    >>> to_dict(ServicePort(port=80, target_port="http"))
    {'port': 80, 'targetPort': 'http'}
    """
    cls = type(obj)
    p = _PLANS.get(cls) or plan(cls)
    order = obj.json_order
    out: dict[str, Any] = {}
    if cls.KIND:
        out["apiVersion"] = cls.API_VERSION
        out["kind"] = cls.KIND
    for f in p.fields:
        v = getattr(obj, f.name)
        if v is None:
            continue
        omit = f.omit
        if omit == _OMIT_FALSY:
            if not v and f.json not in order:
                continue
        elif (
            omit == _OMIT_EMPTY_STRUCT
            and (v is f.default or v == f.default)
            and f.json not in order
        ):
            continue
        if f.encode is not None:
            v = f.encode(v)
        out[f.json] = v
    for k, v in obj.extra.items():
        if k not in out:
            out[k] = thaw(v)
    if not order:
        return out
    ordered: dict[str, Any] = {}
    for k in order:
        if k in out:
            ordered[k] = out[k]
        elif k[:1] == NULL_MARK:
            ordered[k[1:]] = out.get(k[1:])  # null again, unless it has been set since
    ordered.update(out)  # keys the input did not have go after the remembered ones
    return ordered


# ------------------------------------------------------------------ public entry points


def decode(cls: type[M], data: Any, path: str = "") -> tuple[M | None, list[Cause]]:
    """Lenient decode: the object (rejected fields left at their defaults) and the causes.

    Manifests use this to report type errors *and* validation errors of one document in
    one go. ``None`` only when ``data`` is not an object at all.
    """
    errs: list[Cause] = []
    try:
        obj = _decode_model(cls, data, path, errs)
    except RecursionError:
        return None, [Cause(path, TYPE_INVALID, "nested too deeply")]
    return (None if obj is _BAD else obj), errs


def object_name(data: Any) -> str:
    """``metadata.name`` of raw JSON, if it is there and a string (for messages)."""
    meta = data.get("metadata") if isinstance(data, Mapping) else None
    name = meta.get("name") if isinstance(meta, Mapping) else None
    return name if isinstance(name, str) else ""


def from_dict(cls: type[M], data: Any) -> M:
    """Decode Kubernetes JSON into ``cls``; raises ``InvalidObject`` with every cause.

    >>> from kstate.api.objects import ContainerPort
    >>> from_dict(ContainerPort, {"containerPort": "80"})
    Traceback (most recent call last):
    ...
    kstate.errors.InvalidObject: ContainerPort is invalid: containerPort: expected integer\
 (32-bit), got string "80"; remove the quotes
    """
    obj, errs = decode(cls, data)
    if errs or obj is None:
        raise InvalidObject(cls.KIND or cls.__name__, object_name(data), errs)
    return obj


def to_json(obj: Model, *, indent: int | None = None) -> str:
    """Kubernetes JSON text (compact unless ``indent``)."""
    if indent is None:
        return json.dumps(to_dict(obj), separators=(",", ":"), ensure_ascii=False)
    return json.dumps(to_dict(obj), indent=indent, ensure_ascii=False)


def from_json(cls: type[M], text: str | bytes) -> M:
    """Decode JSON text; bad JSON is a ``ManifestError`` (400), bad fields ``InvalidObject``."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ManifestError(f"invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}") from e
    except (RecursionError, ValueError) as e:  # too deep, undecodable bytes, huge ints
        raise ManifestError(f"unreadable JSON: {e}") from e
    return from_dict(cls, data)


# ------------------------------------------------------------------ walking


def walk(obj: Model, path: str = "") -> Iterator[tuple[str, Model]]:
    """Every struct in ``obj`` (itself first) with its JSON path, depth first."""
    yield path, obj
    for f in plan(type(obj)).fields:
        if f.model is None:
            continue
        v = getattr(obj, f.name)
        if v is None:
            continue
        p = _join(path, f.json)
        if f.container == "list":
            for i, item in enumerate(v):
                yield from walk(item, f"{p}[{i}]")
        else:
            yield from walk(v, p)


def extra_fields(obj: Model, *, unknown_only: bool = False) -> list[str]:
    """JSON paths of the keys kept in ``extra`` anywhere in ``obj``.

    With ``unknown_only`` only keys Kubernetes itself does not define are listed — what
    ``fieldValidation=Strict`` rejects (``spec.contianers``), not what kstate merely does
    not model (``spec.volumes``). Keys *inside* an unmodelled subtree (a typo under
    ``spec.volumes[0]``) cannot be checked: kstate has no schema for them.

    >>> from kstate.api.objects import Pod
    >>> pod = from_dict(Pod, {"spec": {"volumes": [], "contianers": []}})
    >>> extra_fields(pod), unknown_fields(pod)
    (['spec.volumes', 'spec.contianers'], ['spec.contianers'])
    """
    paths = []
    for path, model in walk(obj):
        if not model.extra:
            continue
        known = plan(type(model)).known
        for key in model.extra:
            if unknown_only and key in known:
                continue
            paths.append(_join(path, key))
    return paths


def unknown_fields(obj: Model) -> list[str]:
    """JSON paths of fields Kubernetes does not define (see :func:`extra_fields`)."""
    return extra_fields(obj, unknown_only=True)


def unknown_field_causes(obj: Model) -> list[Cause]:
    """``FieldValueUnknown`` causes for :func:`unknown_fields`, with a "did you mean"
    hint when a known field of the same object is spelled alike (what the API server
    answers under ``fieldValidation=Strict`` and ``kstate validate`` reports).
    """
    causes = []
    for path, model in walk(obj):
        if not model.extra:
            continue
        known = plan(type(model)).known
        for key in model.extra:
            if key in known:
                continue
            close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.75)
            hint = f' (did you mean "{close[0]}"?)' if close else ""
            causes.append(Cause(_join(path, key), "FieldValueUnknown",
                                f'unknown field "{key}"{hint}'))
    return causes
