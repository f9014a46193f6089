"""Kubernetes' protobuf wire format, generated from the attrs schema.

Where it sits: beside the JSON codec (``codec.py``). The API server (``server/http.py``)
turns a request body sent as ``application/vnd.kubernetes.protobuf`` into the same JSON
the JSON codec decodes (:func:`decode_object`), and encodes responses, lists and watch
events for clients whose ``Accept`` prefers protobuf (:func:`encode_object`,
:func:`encode_list`, :func:`encode_watch_event`). Everything after the body — decoding
into the attrs class, validation, admission — is shared with JSON, so both encodings
obey the same rules by construction.

One schema, three encodings: the message of each class is derived from the codec's plan
(JSON names, nesting, lists, maps, ints, quantities, times) plus the field-number facts
in ``fieldnumbers.py``; nothing here is written per kind. The ``protobuf`` package does
the wire encoding, through message classes built at first use from a
``FileDescriptorProto`` in a private descriptor pool.

The format (as ``k8s.io/apimachinery`` writes it):

* an object is ``k8s\\x00`` followed by a ``runtime.Unknown``: ``typeMeta``
  (apiVersion, kind), ``raw`` (the kind's message), ``contentEncoding``, ``contentType``;
* a watch stream is frames of a 4-byte big-endian length and a ``meta/v1 WatchEvent``
  message (type, and ``object.raw``: the object encoded as above);
* a ``Time`` is seconds since the epoch (a ``MicroTime`` keeps microseconds), an empty
  ``Time`` is "unset"; a ``Quantity`` is its string; an ``IntOrString`` is a type tag and
  one of ``intVal`` / ``strVal``.

Go writes every non-pointer field, zero or not; JSON leaves most zeros out. Decoding
therefore drops a zero value wherever the JSON codec would omit it, so a body from
``kubectl`` decodes to the JSON ``kubectl`` would have sent.

Lossless or refused: a value kstate cannot express in protobuf (an unmodelled field
whose Kubernetes message kstate has no schema for, such as ``spec.volumes``) raises
:class:`NotRepresentable`; the server then answers in JSON, which every protobuf client
of Kubernetes also accepts. Malformed input raises ``BadRequest`` naming what is wrong.

>>> from kstate.api.codec import to_dict
>>> from kstate.api.objects import Namespace
>>> from kstate.api.meta import ObjectMeta
>>> body = encode_object(to_dict(Namespace(metadata=ObjectMeta(name="dev"))))
>>> body[:4], decode_object(body)
(b'k8s\\x00', {'apiVersion': 'v1', 'kind': 'Namespace', 'metadata': {'name': 'dev'}})
"""

from __future__ import annotations

import functools
import json
import re
import reprlib
import struct
import types
import typing
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError, Message
from google.protobuf.unknown_fields import UnknownFieldSet

from kstate.api import codec
from kstate.api.fieldnumbers import FIELD_NUMBERS, LIST_FIELDS
from kstate.api.meta import RFC3339, DeleteOptions
from kstate.api.registry import REGISTRY
from kstate.errors import BadRequest

MAGIC = b"k8s\x00"
MEDIA_TYPE = "application/vnd.kubernetes.protobuf"
WATCH_MEDIA_TYPE = f"{MEDIA_TYPE};stream=watch"

_PACKAGE = "kstate.k8s"
_SCALARS = {
    "string": descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
    "bool": descriptor_pb2.FieldDescriptorProto.TYPE_BOOL,
    "int32": descriptor_pb2.FieldDescriptorProto.TYPE_INT32,
    "int64": descriptor_pb2.FieldDescriptorProto.TYPE_INT64,
    "bytes": descriptor_pb2.FieldDescriptorProto.TYPE_BYTES,
    # a Kubernetes message kstate has no schema for: kept as its encoded bytes
    "-": descriptor_pb2.FieldDescriptorProto.TYPE_BYTES,
}
_SURROGATE = re.compile("[\ud800-\udfff]")
_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)


class NotRepresentable(Exception):
    """The value has a field kstate cannot express in protobuf (the caller falls back
    to JSON); ``path`` is its JSON path."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path


# ------------------------------------------------------------------ the schema


@attrs.define
class Field:
    """One field of a message: its JSON key, number and wire type."""

    json: str
    number: int
    #: a scalar of ``_SCALARS``, or a message name ("Time", "Quantity", "PodSpec", ...)
    type: str
    repeated: bool = False
    map: bool = False
    #: the message's fields are the enclosing object's own keys (Go's inline embedding)
    inline: bool = False
    #: on input, a zero value is kept (the JSON codec writes it: ``ready: false``, a
    #: set pointer such as ``replicas: 0``) instead of being read as "not set"
    keep_zero: bool = False

    @property
    def scalar(self) -> bool:
        return self.type in _SCALARS


@attrs.define
class Schema:
    """A message: its fields, by JSON key too."""

    name: str
    fields: list[Field]
    by_json: dict[str, Field] = attrs.field(factory=dict)
    #: keys that live in an inline message field, with that field
    inlined: dict[str, Field] = attrs.field(factory=dict)


_SPEC = re.compile(r"(\w+)=(\d+)(?::(\S+))?$")


def _parse_spec(name: str, spec: str) -> list[tuple[str, int, str]]:
    out = []
    for part in spec.split():
        m = _SPEC.match(part)
        if m is None:
            raise ValueError(f"fieldnumbers.{name}: cannot read {part!r}")
        out.append((m.group(1), int(m.group(2)), m.group(3) or ""))
    return out


def _classes() -> dict[str, type[codec.Model]]:
    """Every attrs class the served kinds reach, by name (the message names)."""
    found: dict[str, type[codec.Model]] = {}

    def visit(cls: type[codec.Model]) -> None:
        if found.setdefault(cls.__name__, cls) is not cls:
            raise TypeError(f"two classes named {cls.__name__}: message names must differ")
        for f in codec.plan(cls).fields:
            if f.model is not None and f.model.__name__ not in found:
                visit(f.model)

    for info in REGISTRY:
        visit(info.cls)
    visit(DeleteOptions)
    return found


def _schema_type(cls: type[codec.Model], info: codec.FieldInfo) -> tuple[str, bool, bool]:
    """(type, repeated, map) of a modelled field, from its type hint."""
    tp = typing.get_type_hints(cls, include_extras=True)[info.name]
    repeated = info.container == "list"
    is_map = info.container == "map"
    if repeated or is_map:  # tuple[T, ...] / FrozenDict[str, T]
        tp = typing.get_args(tp)[0 if repeated else 1]
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        if set(args) == {int, str}:
            return "IntOrString", repeated, is_map
        tp = args[0]
    marker = ""
    if typing.get_origin(tp) is typing.Annotated:
        tp, marker = typing.get_args(tp)[:2]
    if info.model is not None:
        return info.model.__name__, repeated, is_map
    if marker == codec.QUANTITY:
        return "Quantity", repeated, is_map
    if marker == codec.OBJECT:
        return "RawExtension", repeated, is_map
    if marker == codec.INT32:
        return "int32", repeated, is_map
    if tp is str:
        return ("Time" if info.opts.fmt == RFC3339 else "string"), repeated, is_map
    if tp is bool:
        return "bool", repeated, is_map
    if tp is int:
        return "int64", repeated, is_map
    raise TypeError(f"{cls.__name__}.{info.name}: no protobuf type for {tp!r}")


def _unmodelled_type(text: str) -> tuple[str, bool, bool]:
    if text.startswith("[") and text.endswith("]"):
        return text[1:-1], True, False
    if text.startswith("{") and text.endswith("}"):
        return text[1:-1], False, True
    return text, False, False


@functools.cache
def _schemas() -> dict[str, Schema]:
    """Every message, by name: the table's entries typed by the attrs schema."""
    classes = _classes()
    missing = sorted(set(classes) - set(FIELD_NUMBERS))
    if missing:
        raise TypeError(f"fieldnumbers.py has no entry for {', '.join(missing)}")
    entries = {name: _parse_spec(name, spec) for name, spec in FIELD_NUMBERS.items()}
    # An inline message's modelled keys belong to the class that embeds it.
    owners = {name: classes[name] for name in entries if name in classes}
    for name, parsed in entries.items():
        for _, _, text in parsed:
            if text.startswith("<") and name in classes:
                owners[text[1:-1]] = classes[name]
    schemas = {name: _schema(name, parsed, owners.get(name))
               for name, parsed in entries.items()}
    for name, cls in classes.items():
        schema = schemas[name]
        covered = set(schema.by_json)
        for f in schema.fields:
            if f.inline:
                inner = schemas[f.type].by_json
                covered |= set(inner)
                schema.inlined.update(dict.fromkeys(inner, f))
        lacking = [f.json for f in codec.plan(cls).fields if f.json not in covered]
        if lacking:
            raise TypeError(f"fieldnumbers.{name} has no number for {', '.join(lacking)}")
    for info in REGISTRY.resources():
        schemas[f"{info.kind}List"] = _schema(
            f"{info.kind}List", _parse_spec(info.kind, LIST_FIELDS.format(kind=info.kind)),
            None)
    for schema in schemas.values():
        for f in schema.fields:
            if not f.scalar and f.type not in schemas:
                raise TypeError(f"{schema.name}.{f.json}: unknown message {f.type!r}")
    return schemas


def _schema(name: str, parsed: list[tuple[str, int, str]],
            cls: type[codec.Model] | None) -> Schema:
    plan = codec.plan(cls) if cls is not None else None
    fields = []
    for key, number, text in parsed:
        info = plan.by_json.get(key) if plan is not None else None
        if text.startswith("<"):
            fields.append(Field(key, number, text[1:-1], inline=True))
        elif info is not None:
            assert cls is not None
            tp, repeated, is_map = _schema_type(cls, info)
            # Zeros the JSON codec writes (``ready: false``) or that a pointer makes
            # meaningful (``replicas: 0``) are kept on input; others mean "not set".
            keep = info.default is None or (
                info.omit == 0  # the codec's "omit only None": always written
                and info.model is None and not repeated and not is_map)
            fields.append(Field(key, number, text or tp, repeated, is_map, keep_zero=keep))
        elif text:
            fields.append(Field(key, number, *_unmodelled_type(text)))
        else:
            raise TypeError(f"fieldnumbers.{name}.{key}: not in the schema; give its type")
    return Schema(name, fields, {f.json: f for f in fields})


# ------------------------------------------------------------------ message classes


def _descriptor(schema: Schema) -> descriptor_pb2.DescriptorProto:
    FDP = descriptor_pb2.FieldDescriptorProto
    message = descriptor_pb2.DescriptorProto(name=schema.name)
    for f in schema.fields:
        if f.number == 0:
            continue
        field = message.field.add(name=f.json, number=f.number, json_name=f.json)
        field.label = FDP.LABEL_REPEATED if f.repeated or f.map else FDP.LABEL_OPTIONAL
        if f.map:  # map<string, T> is a repeated entry message {key = 1, value = 2}
            entry = message.nested_type.add(name=f"{f.json[:1].upper()}{f.json[1:]}Entry")
            entry.options.map_entry = True
            entry.field.add(name="key", number=1, label=FDP.LABEL_OPTIONAL,
                            type=FDP.TYPE_STRING)
            value = entry.field.add(name="value", number=2, label=FDP.LABEL_OPTIONAL)
            _set_type(value, f.type)
            field.type = FDP.TYPE_MESSAGE
            field.type_name = f".{_PACKAGE}.{schema.name}.{entry.name}"
        else:
            _set_type(field, f.type)
    return message


def _set_type(field: descriptor_pb2.FieldDescriptorProto, type_: str) -> None:
    if type_ in _SCALARS:
        field.type = _SCALARS[type_]
    else:
        field.type = descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE
        field.type_name = f".{_PACKAGE}.{type_}"


@functools.cache
def _messages() -> dict[str, type[Message]]:
    """A protobuf message class per schema, from one file in a private pool."""
    schemas = _schemas()
    file = descriptor_pb2.FileDescriptorProto(name="kstate/k8s.proto", package=_PACKAGE,
                                              syntax="proto2")
    file.message_type.extend(_descriptor(s) for s in schemas.values())
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return {name: message_factory.GetMessageClass(
        pool.FindMessageTypeByName(f"{_PACKAGE}.{name}")) for name in schemas}


def _new(name: str) -> Message:
    return _messages()[name]()


# ------------------------------------------------------------------ JSON -> message


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _fill(msg: Message, schema: Schema, data: Mapping[str, Any], path: str) -> None:
    """Set ``msg`` from the JSON object ``data`` (``NotRepresentable`` if it cannot)."""
    if not isinstance(data, Mapping):
        raise NotRepresentable(path, "expected an object")
    inline: dict[str, dict[str, Any]] = {}
    for key, value in data.items():
        f = schema.by_json.get(key)
        if f is None and key in schema.inlined:
            f = schema.inlined[key]
            if value is not None:
                inline.setdefault(f.json, {})[key] = value
            continue
        if f is None:
            raise NotRepresentable(_join(path, key), f"no protobuf field in {schema.name}")
        if value is None or f.number == 0:
            continue
        where = _join(path, key)
        if f.map:
            if not isinstance(value, Mapping):
                raise NotRepresentable(where, "expected an object")
            entries = getattr(msg, key)
            for k, v in value.items():
                k = _scalar("string", k, where)
                if f.scalar:
                    entries[k] = _scalar(f.type, v, f"{where}[{k}]")
                else:
                    _fill_value(entries[k], f.type, v, f"{where}[{k}]")
        elif f.repeated:
            if not isinstance(value, list | tuple):
                raise NotRepresentable(where, "expected an array")
            items = getattr(msg, key)
            for i, v in enumerate(value):
                if f.scalar:
                    items.append(_scalar(f.type, v, f"{where}[{i}]"))
                else:
                    _fill_value(items.add(), f.type, v, f"{where}[{i}]")
        elif f.scalar:
            setattr(msg, key, _scalar(f.type, value, where))
        else:
            sub = getattr(msg, key)
            sub.SetInParent()
            _fill_value(sub, f.type, value, where)
    for key, values in inline.items():
        f = schema.by_json[key]
        sub = getattr(msg, key)
        sub.SetInParent()
        _fill(sub, _schemas()[f.type], values, path)


def _scalar(type_: str, value: Any, path: str) -> Any:
    if type_ == "-":
        if value in ({}, [], ""):
            return b""
        raise NotRepresentable(path, "kstate has no protobuf schema for this field")
    if type_ == "string" and isinstance(value, str):
        if _SURROGATE.search(value):  # not UTF-8: no protobuf string can hold it
            raise NotRepresentable(path, "a lone UTF-16 surrogate is not valid UTF-8")
        return value
    if type_ == "bool" and isinstance(value, bool):
        return value
    if type_ in ("int32", "int64") and type(value) is int:
        lo, hi = _INT32 if type_ == "int32" else _INT64
        if lo <= value <= hi:
            return value
    if type_ == "bytes" and isinstance(value, bytes):
        return value
    raise NotRepresentable(path, f"expected {type_}, got {codec.describe(value)}")


def _fill_value(msg: Message, type_: str, value: Any, path: str) -> None:
    if type_ in ("Time", "MicroTime"):
        if not isinstance(value, str):
            raise NotRepresentable(path, f"expected a time, got {codec.describe(value)}")
        if value:
            seconds, micros = _parse_time(value, path)
            msg.seconds = seconds
            msg.nanos = micros * 1000 if type_ == "MicroTime" else 0
    elif type_ == "Quantity":
        msg.string = _scalar("string", value, path)
    elif type_ == "IntOrString":
        if isinstance(value, str):
            msg.type, msg.strVal = 1, _scalar("string", value, path)
        else:
            msg.type, msg.intVal = 0, _scalar("int32", value, path)
    elif type_ == "RawExtension":  # (List items: JSON inside, which Go's decoders sniff)
        try:
            msg.raw = json.dumps(codec.thaw(value), separators=(",", ":"),
                                 allow_nan=False).encode()
        except ValueError as exc:
            raise NotRepresentable(path, str(exc)) from None
    else:
        _fill(msg, _schemas()[type_], value, path)


def _parse_time(text: str, path: str) -> tuple[int, int]:
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise NotRepresentable(path, f"not an RFC 3339 time: {text!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    delta = parsed - _EPOCH
    return delta.days * 86400 + delta.seconds, delta.microseconds


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# ------------------------------------------------------------------ message -> JSON


def _read(msg: Message, schema: Schema, path: str) -> dict[str, Any]:
    """The JSON object of ``msg``; zeros the JSON codec would omit are left out."""
    _no_unknown_fields(msg, schema.name, path)
    out: dict[str, Any] = {}
    for f in schema.fields:
        if f.number == 0:
            continue
        key = f.json
        where = _join(path, key)
        if f.map or f.repeated:
            values = getattr(msg, key)
            if not len(values):
                continue
            if f.map:
                value: Any = {_text(k, where): (
                    _read_scalar(f.type, v, f"{where}[{k}]") if f.scalar
                    else _read_value(v, f.type, f"{where}[{k}]")) for k, v in values.items()}
            else:
                value = [(_read_scalar(f.type, v, f"{where}[{i}]") if f.scalar
                          else _read_value(v, f.type, f"{where}[{i}]"))
                         for i, v in enumerate(values)]
        elif not msg.HasField(key):
            continue
        elif f.scalar:
            value = _read_scalar(f.type, getattr(msg, key), where)
        elif f.inline:
            out.update(_read(getattr(msg, key), _schemas()[f.type], path))
            continue
        else:
            value = _read_value(getattr(msg, key), f.type, where)
        if value is None or (not f.keep_zero and value in ("", 0, False, {}, [])):
            continue
        out[key] = value
    return out


def _text(value: Any, path: str) -> str:
    # protobuf hands a proto2 string that is not UTF-8 back as bytes
    if not isinstance(value, str):
        raise BadRequest.at(path, f"{path or 'a string'}: not valid UTF-8")
    return value


def _read_scalar(type_: str, value: Any, path: str) -> Any:
    if type_ == "string":
        return _text(value, path)
    if type_ == "-":
        if value:
            raise BadRequest.at(path, f"{path}: kstate cannot read this field from "
                                "protobuf (it keeps no schema for it); send the object "
                                "as JSON (Content-Type: application/json)")
        return None
    return value


def _read_value(msg: Message, type_: str, path: str) -> Any:
    if type_ in ("Time", "MicroTime"):
        _no_unknown_fields(msg, type_, path)
        if not msg.ByteSize():
            return None  # Go's zero time: not set
        seconds, nanos = msg.seconds, msg.nanos
        try:
            moment = _EPOCH + timedelta(seconds=seconds)
        except OverflowError:
            raise BadRequest.at(path, f"{path}: time {seconds} s is out of range") from None
        if type_ == "MicroTime" and nanos:
            moment += timedelta(microseconds=nanos // 1000)
            return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    if type_ == "Quantity":
        _no_unknown_fields(msg, type_, path)
        return _text(msg.string, path)
    if type_ == "IntOrString":
        _no_unknown_fields(msg, type_, path)
        if msg.type == 1:
            return _text(msg.strVal, path)
        return msg.intVal or None  # Go's zero: not set
    if type_ == "RawExtension":
        _no_unknown_fields(msg, type_, path)
        raw = msg.raw
        if raw.startswith(MAGIC):
            return decode_object(raw, path=path)
        try:
            return json.loads(raw)
        except ValueError:
            raise BadRequest.at(path, f"{path}: an embedded object is neither protobuf "
                                "nor JSON") from None
    return _read(msg, _schemas()[type_], path)


def _no_unknown_fields(msg: Message, name: str, path: str) -> None:
    unknown = UnknownFieldSet(msg)
    if len(unknown):
        numbers = ", ".join(str(u.field_number) for u in unknown)
        raise BadRequest.at(path, f"{path or name}: unknown field number {numbers} in a "
                            f"{name} message (kstate reads the field numbers of the "
                            "published Kubernetes API)")


def _parse(name: str, data: bytes, path: str) -> Message:
    msg = _new(name)
    try:
        msg.ParseFromString(data)
    except DecodeError as exc:
        raise BadRequest(f"{path or 'the request body'}: malformed protobuf {name} "
                         f"(truncated, or a length larger than the data): {exc}") from None
    return msg


# ------------------------------------------------------------------ the envelope


def _schema_for(api_version: str, kind: str) -> str:
    """The message name of an envelope's kind ("" if kstate has none)."""
    if kind == "DeleteOptions" or REGISTRY.for_api(api_version, kind) is not None:
        return kind
    listed = REGISTRY.for_api(api_version, kind.removesuffix("List"))
    return kind if kind.endswith("List") and listed is not None and listed.resource else ""


def _envelope(api_version: str, kind: str, raw: bytes) -> bytes:
    unknown = _new("Unknown")
    unknown.typeMeta.apiVersion = api_version
    unknown.typeMeta.kind = kind
    unknown.raw = raw
    unknown.contentEncoding = ""
    unknown.contentType = ""
    return MAGIC + unknown.SerializeToString()


def encode_object(data: Mapping[str, Any]) -> bytes:
    """Protobuf (``k8s\\x00`` + ``Unknown``) of an object's JSON, ``kind`` included;
    ``NotRepresentable`` if a field has no protobuf form in kstate."""
    api_version, kind = data.get("apiVersion", ""), data.get("kind", "")
    if not isinstance(api_version, str) or not isinstance(kind, str):
        raise NotRepresentable("kind", "apiVersion and kind must be strings")
    name = _schema_for(api_version, kind)
    if not name:
        raise NotRepresentable("kind", f"kstate has no protobuf message for {kind!r}")
    body = {k: v for k, v in data.items() if k not in ("apiVersion", "kind")}
    msg = _new(name)
    _fill(msg, _schemas()[name], body, "")
    return _envelope(api_version, kind, msg.SerializeToString())


def encode_list(kind: str, api_version: str, metadata: Mapping[str, Any],
                items: list[dict[str, Any]]) -> bytes:
    """A ``<Kind>List`` (``metadata``: the list's ``ListMeta`` JSON)."""
    return encode_object({"apiVersion": api_version, "kind": f"{kind}List",
                          "metadata": metadata,
                          "items": [{k: v for k, v in item.items()
                                     if k not in ("apiVersion", "kind")} for item in items]})


def encode_watch_event(event_type: str, data: Mapping[str, Any]) -> bytes:
    """One frame of a protobuf watch stream: a 4-byte big-endian length, then the
    ``WatchEvent`` message whose ``object.raw`` is :func:`encode_object` of ``data``."""
    event = _new("WatchEvent")
    event.type = event_type
    event.object.raw = encode_object(data)
    body = event.SerializeToString()
    return struct.pack(">I", len(body)) + body


def decode_object(body: bytes, *, path: str = "") -> dict[str, Any]:
    """The JSON object of a protobuf-encoded object (``BadRequest`` on anything
    malformed, naming what: the magic, the envelope, the kind, a field)."""
    where = path or "the request body"
    if not body.startswith(MAGIC):
        raise BadRequest(f"{where} is not Kubernetes protobuf: it must start with the "
                         f"4 bytes 'k8s\\x00', not {bytes(body[:4])!r}")
    unknown = _parse("Unknown", body[len(MAGIC):], path)
    _no_unknown_fields(unknown, "Unknown", path)
    _no_unknown_fields(unknown.typeMeta, "TypeMeta", path)
    api_version = _text(unknown.typeMeta.apiVersion, "typeMeta.apiVersion")
    kind = _text(unknown.typeMeta.kind, "typeMeta.kind")
    if unknown.contentEncoding:
        raise BadRequest(f"{where}: content encoding "
                         f"{reprlib.repr(unknown.contentEncoding)} is not supported")
    if unknown.contentType not in ("", MEDIA_TYPE):
        raise BadRequest(f"{where}: the envelope's content type "
                         f"{reprlib.repr(unknown.contentType)} is not {MEDIA_TYPE}")
    if not kind:
        raise BadRequest(f"{where}: the protobuf envelope names no kind (typeMeta.kind)")
    name = _schema_for(api_version, kind)
    if not name:
        raise BadRequest(f"{where}: kstate does not serve {reprlib.repr(kind)} in "
                         f"{reprlib.repr(api_version or 'no apiVersion')}")
    msg = _parse(name, unknown.raw, path)
    try:
        data = _read(msg, _schemas()[name], path)
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadRequest(f"{where}: unreadable protobuf {kind}: {exc}") from None
    return {"apiVersion": api_version, "kind": kind, **data}


def decode_watch_frames(stream: bytes) -> Iterator[tuple[str, dict[str, Any]]]:
    """The (type, object JSON) events of a protobuf watch stream's bytes (a client's
    view; ``BadRequest`` if a frame's length runs past the data)."""
    offset = 0
    while offset < len(stream):
        if offset + 4 > len(stream):
            raise BadRequest(f"watch frame at byte {offset}: truncated length prefix")
        (length,) = struct.unpack_from(">I", stream, offset)
        if offset + 4 + length > len(stream):
            raise BadRequest(f"watch frame at byte {offset}: length {length} is larger "
                             f"than the {len(stream) - offset - 4} bytes that follow")
        event = _parse("WatchEvent", stream[offset + 4:offset + 4 + length], "")
        yield _text(event.type, "type"), decode_object(event.object.raw,
                                        path="the watch event's object")
        offset += 4 + length


__all__ = ["MAGIC", "MEDIA_TYPE", "WATCH_MEDIA_TYPE", "NotRepresentable",
           "decode_object", "decode_watch_frames", "encode_list", "encode_object",
           "encode_watch_event"]
