"""Kubernetes' protobuf encoding: every served kind round-trips JSON -> protobuf -> JSON
(Hypothesis over the schema's strategies), the wire layout matches Kubernetes' (magic,
``runtime.Unknown``, field numbers, watch frames), and malformed input is a 400 naming
what is wrong."""

from __future__ import annotations

import contextlib
import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kstate.api import protobuf
from kstate.api.codec import from_dict, to_dict, unknown_fields
from kstate.api.meta import (
    DeleteOptions,
    KubeObject,
    List,
    ObjectMeta,
    ObjectReference,
    Preconditions,
    Status,
    StatusCause,
    StatusDetails,
)
from kstate.api.objects import (
    Binding,
    Eviction,
    Namespace,
    Pod,
    Probe,
    Scale,
    ScaleSpec,
    ScaleStatus,
    Service,
    ServicePort,
    ServiceSpec,
    TCPSocketAction,
)
from kstate.api.registry import REGISTRY
from kstate.errors import BadRequest
from kstate.verify import strategies as ks

big = settings(max_examples=max(10, settings().max_examples // 2))


def _round_trip(obj: Any) -> Any:
    body = protobuf.encode_object(to_dict(obj))
    assert body.startswith(protobuf.MAGIC)
    return from_dict(type(obj), protobuf.decode_object(body))


def _check_round_trip(obj: KubeObject) -> None:
    if unknown_fields(obj):  # made-up keys ("x-...") have no field number: refused
        with pytest.raises(protobuf.NotRepresentable):
            protobuf.encode_object(to_dict(obj))
        return
    assert _round_trip(obj) == obj


@big
@given(ks.any_object())
def test_every_stored_kind_round_trips_json_protobuf_json(obj: KubeObject) -> None:
    _check_round_trip(obj)


@given(ks.object_meta(), ks.subdomains)
def test_binding_round_trips(meta: ObjectMeta, node: str) -> None:
    _check_round_trip(Binding(metadata=meta, target=ObjectReference(kind="Node", name=node)))


def test_subresource_and_machinery_kinds_round_trip() -> None:
    scale = Scale(metadata=ObjectMeta(name="web", namespace="default"),
                  spec=ScaleSpec(replicas=3), status=ScaleStatus(replicas=2, selector="a=b"))
    status = Status(status="Failure", message="nope", reason="Invalid", code=422,
                    details=StatusDetails(name="web", kind="pods", causes=(
                        StatusCause(reason="FieldValueInvalid", message="bad",
                                    field="spec.x"),)))
    eviction = Eviction(metadata=ObjectMeta(name="p", namespace="default"),
                        delete_options=DeleteOptions(grace_period_seconds=0, preconditions=(
                            Preconditions(uid="u", resource_version="7"))))
    listed = List(items=(scale, eviction))  # items travel as RawExtension
    for obj in (scale, status, eviction, listed):
        assert _round_trip(obj) == obj


def test_every_served_kind_has_a_message_and_a_list() -> None:
    for info in REGISTRY.resources():
        obj = info.cls(metadata=ObjectMeta(name="x"))  # type: ignore[call-arg]
        body = protobuf.encode_list(info.kind, info.api_version, {"resourceVersion": "7"},
                                    [to_dict(obj)])
        data = protobuf.decode_object(body)
        assert data["kind"] == f"{info.kind}List"
        assert data["metadata"] == {"resourceVersion": "7"}
        assert data["items"] == [{"metadata": {"name": "x"}}]


# ------------------------------------------------------------------ the wire layout


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def _len(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _envelope(api: str, kind: str, raw: bytes, *, extra: bytes = b"") -> bytes:
    type_meta = _len(1, api.encode()) + _len(2, kind.encode())
    return protobuf.MAGIC + _len(1, type_meta) + _len(2, raw) + extra


def test_bytes_match_the_published_field_numbers() -> None:
    # Namespace{metadata(1){name(1)="dev"}}; Service spec(2){ports(1){port(3)=80,
    # targetPort(4){type(1)=1, strVal(3)="http"}}}: numbers of core/v1 generated.proto.
    body = protobuf.encode_object(to_dict(Namespace(metadata=ObjectMeta(name="dev"))))
    assert body == _envelope("v1", "Namespace", _len(1, _len(1, b"dev")),
                             extra=_len(3, b"") + _len(4, b""))
    svc = Service(spec=ServiceSpec(ports=(ServicePort(port=80, target_port="http"),)))
    raw = _len(2, _len(1, b"\x18\x50" + _len(4, b"\x08\x01" + _len(3, b"http"))))
    assert protobuf.encode_object(to_dict(svc)) == _envelope(
        "v1", "Service", raw, extra=_len(3, b"") + _len(4, b""))


def test_container_stdin_stdin_once_and_tty_have_their_published_numbers() -> None:
    # Container{name(1)="c", image(2)="i", stdin(16)=true, stdinOnce(17)=true,
    # tty(18)=true} (core/v1 generated.proto): what kubectl run -it sends as protobuf.
    fields = _len(1, b"c") + _len(2, b"i") + b"\x80\x01\x01\x88\x01\x01\x90\x01\x01"
    container = protobuf.decode_object(_envelope("v1", "Pod", _len(2, _len(2, fields))))[
        "spec"]["containers"][0]
    assert container == {"name": "c", "image": "i", "stdin": True, "stdinOnce": True,
                         "tty": True}
    pod = from_dict(Pod, {"spec": {"containers": [container]}})
    assert fields in protobuf.encode_object(to_dict(pod))


def test_go_zero_values_decode_as_unset() -> None:
    # What Go writes for a fresh Namespace: every non-pointer field, empty.
    meta = (_len(1, b"foo") + _len(2, b"") + _len(3, b"") + _len(4, b"") + _len(5, b"")
            + _len(6, b"") + b"\x38\x00" + _len(8, b""))
    raw = _len(1, meta) + _len(2, b"") + _len(3, _len(1, b""))
    data = protobuf.decode_object(_envelope("v1", "Namespace", raw))
    assert data == {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "foo"}}


def test_probe_handler_is_inlined_and_times_are_seconds() -> None:
    pod = from_dict(Pod, {"metadata": {"name": "p", "creationTimestamp": "2024-05-01T12:00:00Z"},
                          "spec": {"containers": [{"name": "c", "image": "i",
                                                   "readinessProbe": {"tcpSocket": {
                                                       "port": 8080}}}]}})
    assert _round_trip(pod) == pod
    assert pod.spec.containers[0].readiness_probe == Probe(
        tcp_socket=TCPSocketAction(port=8080))
    body = protobuf.encode_object(to_dict(pod))
    # creationTimestamp(8){seconds(1)=1714564800, nanos(2)=0}
    assert _len(8, b"\x08" + _varint(1714564800) + b"\x10\x00") in body


def test_watch_frames_are_length_prefixed_watch_events() -> None:
    data = to_dict(Namespace(metadata=ObjectMeta(name="a")))
    frame = protobuf.encode_watch_event("ADDED", data)
    (length,) = struct.unpack(">I", frame[:4])
    assert length == len(frame) - 4
    assert frame[4:] == _len(1, b"ADDED") + _len(2, _len(1, protobuf.encode_object(data)))
    assert list(protobuf.decode_watch_frames(frame * 2)) == [("ADDED", data)] * 2


# ------------------------------------------------------------------ bad input


def _ns_raw() -> bytes:
    return _len(1, _len(1, b"foo"))


@pytest.mark.parametrize(("body", "words"), [
    (b"", "must start with"),
    (b'{"kind":"Namespace"}', "must start with"),
    (b"k8s\x01" + _envelope("v1", "Namespace", _ns_raw())[4:], "must start with"),
    (_envelope("v1", "Namespace", _ns_raw())[:-3], "malformed protobuf"),
    (protobuf.MAGIC + _len(1, b"\x0a\x7fv1"), "malformed protobuf"),  # length > data
    (_envelope("v1", "Namespace", _len(1, _len(1, b"foo"))[:-1]), "malformed protobuf"),
    (_envelope("v1", "", _ns_raw()), "names no kind"),
    (_envelope("v1", "ConfigMap", _ns_raw()), "does not serve"),
    (_envelope("v2", "Namespace", _ns_raw()), "does not serve"),
    (_envelope("v1", "Namespace", _ns_raw() + _len(9, b"x")), "unknown field number 9"),
    (_envelope("v1", "Namespace", _len(1, _len(99, b"x"))), "unknown field number 99"),
    (_envelope("v1", "Namespace", _ns_raw(), extra=_len(3, b"gzip")), "content encoding"),
    (_envelope("v1", "Namespace", _ns_raw(), extra=_len(4, b"application/json")),
     "content type"),
    (_envelope("v1", "Pod", _len(2, _len(1, _len(1, b"vol")))), "cannot read this field"),
])
def test_malformed_protobuf_is_a_clear_bad_request(body: bytes, words: str) -> None:
    with pytest.raises(BadRequest) as err:
        protobuf.decode_object(body)
    assert words in str(err.value)


def test_a_watch_frame_longer_than_the_stream_is_refused() -> None:
    frame = protobuf.encode_watch_event("ADDED", to_dict(Namespace()))
    with pytest.raises(BadRequest, match="larger than"):
        list(protobuf.decode_watch_frames(frame[:-1]))


@given(st.binary(max_size=200))
def test_garbage_after_the_magic_is_only_ever_a_bad_request(tail: bytes) -> None:
    with contextlib.suppress(BadRequest):
        protobuf.decode_object(protobuf.MAGIC + tail)


@given(ks.any_object(), st.data())
def test_corrupted_bytes_are_only_ever_a_bad_request(obj: KubeObject, data: st.DataObject
                                                     ) -> None:
    try:
        body = bytearray(protobuf.encode_object(to_dict(obj)))
    except protobuf.NotRepresentable:
        return
    i = data.draw(st.integers(4, len(body) - 1))
    body[i] = data.draw(st.integers(0, 255))
    with contextlib.suppress(BadRequest):
        protobuf.decode_object(bytes(body))
