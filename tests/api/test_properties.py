"""Properties over generated objects: lossless round trips, idempotent defaulting,
valid-by-construction strategies, and garbage that only ever yields our own errors."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from kstate.api import (
    KubeObject,
    Pod,
    decode_object,
    default,
    from_dict,
    from_json,
    to_dict,
    to_json,
    validate,
    validate_string,
)
from kstate.api.registry import REGISTRY
from kstate.errors import InvalidObject, ManifestError
from kstate.verify import strategies as ks

# Whole generated objects are big (hundreds of draws each): half the profile's examples
# keeps this file fast while still scaling with the ci / dev / long profiles.
big = settings(max_examples=max(10, settings().max_examples // 2))


@big
@given(ks.any_object())
def test_round_trips_are_lossless(obj: KubeObject) -> None:
    text = to_json(obj)
    back = from_json(type(obj), text)
    assert back == obj
    assert hash(back) == hash(obj)
    assert to_json(back) == text
    # through YAML too, picking the class from apiVersion/kind
    assert decode_object(yaml.safe_load(yaml.safe_dump(to_dict(obj)))) == obj


@big
@given(ks.any_object())
def test_generated_objects_are_valid_and_defaulting_is_idempotent(obj: KubeObject) -> None:
    assert validate(obj) == []
    once = default(obj)
    assert default(once) == once
    assert validate(once) == []
    # ... and as a manifest it loads back as the defaulted object. Not strict: generated
    # objects carry made-up extra fields ("x-...") on purpose.
    report = validate_string(json.dumps(to_dict(obj)), "gen.json", strict=False)
    assert report.ok, [str(e) for e in report.errors]
    (m,) = report.manifests
    assert m.obj == once


def _decode_any(data: Any) -> None:
    for info in REGISTRY:
        try:
            obj = from_dict(info.cls, data)
        except InvalidObject:
            continue
        validate(default(obj))
        to_json(obj)


@given(ks.json_garbage())
def test_garbage_only_raises_invalid_object(data: Any) -> None:
    _decode_any(data)
    with contextlib.suppress(InvalidObject):
        decode_object(data)


@big
@given(ks.corrupted())
def test_corrupted_objects_only_raise_invalid_object(data: dict[str, Any]) -> None:
    _decode_any(data)
    try:
        obj = decode_object(data)
    except InvalidObject:
        return
    validate(default(obj))


@big
@given(ks.corrupted())
def test_corrupted_manifests_never_raise(data: dict[str, Any]) -> None:
    try:
        text = json.dumps(data)
    except ValueError:  # NaN / huge numbers: not JSON, try YAML text instead
        text = yaml.safe_dump(data)
        validate_string(text, "x.yaml")
        return
    validate_string(text, "x.json")
    validate_string(text, "x.yaml")  # JSON is (mostly) YAML too


@given(st.text(max_size=300))
def test_arbitrary_text_never_raises(text: str) -> None:
    validate_string(text, "t.yaml")
    validate_string(text, "t.json")
    with contextlib.suppress(InvalidObject, ManifestError):
        from_json(Pod, text)


@given(st.binary(max_size=200))
def test_arbitrary_bytes_to_from_json(data: bytes) -> None:
    with contextlib.suppress(InvalidObject, ManifestError):
        from_json(Pod, data)
