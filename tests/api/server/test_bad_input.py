"""Bad input runs: Hypothesis-damaged manifests against the live API server, over HTTP.

test_fuzz.py throws random *requests* at the server (methods, paths, headers, content
types); this file keeps the requests right and damages the *objects*: a valid Pod,
ReplicationController, Service or Node document with values of the wrong type, huge
numbers and strings, unicode (combining marks, right-to-left overrides, NULs, lone
surrogates), NaN and infinities, deep nesting, fields missing or made up — created
(POST), replaced (PUT), merge / strategic-merge / JSON patched (PATCH). Creates and
updates also go as Kubernetes protobuf: the damaged document where protobuf can express
the damage (a removed field), else the intact document's bytes cut short, changed or
lengthened. For every answer:

* no 5xx, and the server never logs a bug;
* every rejection is a ``Status`` (``kind: Status``, ``status: Failure``, the HTTP
  code, a reason, a message) and names what is wrong with a field path: an Invalid
  (422) and a JSON body that does not decode (400) carry ``details.causes[].field``
  (protobuf bytes that do not decode often have no field to name: the message says
  what is wrong with the bytes);
* nothing half-written: after a rejection the store's revision has not moved (no key
  was written, no address allocated); after a success the stored object is valid;
* the server still answers afterwards.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import copy
import json
import logging
import os
from collections.abc import Callable
from typing import Any

from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kstate.api import from_dict, protobuf, to_dict, validate
from kstate.api.registry import REGISTRY
from kstate.api.server.core import ApiCore
from tests.api.server.conftest import ADMIN, http_client, running_core
from tests.api.server.helpers import BugLog, as_protobuf, node, pod, rc, svc

Path = tuple[str | int, ...]

#: kind -> (a valid object by name, its collection URL)
KINDS: dict[str, tuple[Callable[[str], Any], str]] = {
    "Pod": (pod, "/api/v1/namespaces/default/pods"),
    "ReplicationController": (rc, "/api/v1/namespaces/default/replicationcontrollers"),
    "Service": (svc, "/api/v1/namespaces/default/services"),
    "Node": (node, "/api/v1/nodes"),
}
#: The object of each kind every update and patch works on (created before the run).
TARGET = "target"

#: Real field names (of the four kinds): a made-up field named like a real one at the
#: wrong level is the interesting kind of extra field.
FIELD_NAMES = ["apiVersion", "kind", "metadata", "name", "namespace", "generateName",
               "labels", "annotations", "finalizers", "ownerReferences", "uid",
               "resourceVersion", "deletionTimestamp", "spec", "containers", "image",
               "ports", "containerPort", "protocol", "env", "value", "nodeName",
               "tolerations", "replicas", "selector", "template", "status", "phase",
               "conditions", "type", "clusterIP", "nodePort", "port", "targetPort",
               "unschedulable", "taints", "effect", "key", "command", "args",
               "resources", "limits", "requests", "cpu", "memory",
               "terminationGracePeriodSeconds", "restartPolicy", "podCIDR"]

#: Values where a deep-nesting sentinel is replaced by raw JSON text in the body (the
#: test's own ``json.dumps`` would hit the recursion limit first).
DEEP = "\x00deep:"

unicode_text = st.sampled_from([
    "ß", "名前", "🙂", "é", "e\u0301", "\u202eevil", "a\x00b", "\ud800", "\udfff",
    "\ufeff", "Ω" * 300, "x\ny", " ", "", "\t", "..", "-a-", "A", "a" * 254,
]) | st.text(min_size=1, max_size=12)
huge_numbers = st.sampled_from([
    2**31, -(2**31) - 1, 2**53 + 1, 2**63, -(2**63) - 1, 2**64, 10**30, 10**400,
    -1, 0, 65536, 1e308, -1e-308, 0.5, float("nan"), float("inf"), float("-inf"),
])
huge_strings = st.sampled_from(["x" * 70_000, "9" * 5000, "a," * 2000, "🙂" * 10_000])
deep = st.builds(lambda depth, shape: f"{DEEP}{shape}:{depth}",
                 st.sampled_from([30, 200, 900, 5000, 200_000]),
                 st.sampled_from(["list", "object"]))
wrong_types = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=False, width=32),
    st.lists(st.integers(0, 3) | st.text(max_size=3), max_size=3),
    st.dictionaries(st.sampled_from(FIELD_NAMES) | st.text(max_size=4),
                    st.integers() | st.text(max_size=4) | st.none(), max_size=3),
)
bad_values = st.one_of(wrong_types, unicode_text, huge_numbers, huge_strings, deep)


def paths(value: Any, prefix: Path = ()) -> list[Path]:
    """Every path into a JSON document, interior ones included."""
    out = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, child in value.items():
            out += paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            out += paths(child, (*prefix, index))
    return out


def parent_of(doc: Any, path: Path) -> Any:
    for step in path[:-1]:
        doc = doc[step]  # type: ignore[index]
    return doc


@st.composite
def damaged(draw: st.DrawFn, doc: dict[str, Any]) -> tuple[dict[str, Any], Path]:
    """``doc`` with one to three values replaced, removed or made up; and the path of
    the first damage (what a patch sends)."""
    doc = copy.deepcopy(doc)
    first: Path | None = None
    for _ in range(draw(st.integers(1, 3))):
        how = draw(st.sampled_from(["replace", "replace", "remove", "add"]))
        where = draw(st.sampled_from(paths(doc)))
        parent = parent_of(doc, where)
        if how == "add" or not isinstance(parent, dict | list):
            holder = parent if isinstance(parent, dict) else doc
            key = draw(st.sampled_from(FIELD_NAMES) | unicode_text)
            holder[key] = draw(bad_values)
            where = (*where[:-1], key) if holder is parent else (key,)
        elif how == "remove":
            del parent[where[-1]]
        else:
            parent[where[-1]] = draw(bad_values)
        first = first or where
    assert first is not None
    return doc, first


def encode(doc: Any) -> bytes:
    """JSON text, deep-nesting sentinels expanded, lone surrogates as ``\\udXXX``."""
    text = json.dumps(doc, allow_nan=True)
    while DEEP in text or json.dumps(DEEP)[1:-1] in text:
        marker = json.dumps(DEEP)[1:-1]
        start = text.index(marker)
        end = text.index('"', start)
        shape, depth = text[start + len(marker):end].split(":")
        n = int(depth)
        raw = "[" * n + "]" * n if shape == "list" else '{"a":' * n + "1" + "}" * n
        text = text[:start - 1] + raw + text[end + 1:]
    return text.encode()


def merge_patch_for(doc: dict[str, Any], path: Path) -> dict[str, Any]:
    """A merge patch carrying ``doc``'s value at ``path`` (lists are replaced whole)."""
    keys: list[str] = []
    for step in path:
        if not isinstance(step, str):
            break
        keys.append(step)
    value: Any = doc
    for key in keys:
        value = value.get(key) if isinstance(value, dict) else None
    for key in reversed(keys):
        value = {key: value}
    return value


def json_pointer(path: Path) -> str:
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in path)


SEEN: collections.Counter[str] = collections.Counter()


def test_damaged_manifests_are_refused_cleanly_and_leave_nothing_behind() -> None:
    loop = asyncio.new_event_loop()
    bug_log = BugLog()
    logging.getLogger("kstate.api").addHandler(bug_log)
    stack = contextlib.AsyncExitStack()
    try:
        core, client = loop.run_until_complete(_start(stack))
        created = collections.Counter[str]()

        @settings(max_examples=int(os.environ.get("KSTATE_FUZZ_EXAMPLES", "400")),
                  deadline=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
        @given(data=st.data())
        def check(data: st.DataObject) -> None:
            kind = data.draw(st.sampled_from(sorted(KINDS)))
            make, collection = KINDS[kind]
            verb = data.draw(st.sampled_from(["POST", "PUT", "merge", "strategic", "json"]))
            in_protobuf = verb in ("POST", "PUT") and data.draw(st.booleans())
            # Damage a fixed document (what is drawn must not depend on the server's
            # state); a create gets a fresh name, an update the current resourceVersion.
            doc, where = data.draw(damaged(to_dict(make(TARGET))))
            if verb == "POST":
                created[kind] += 1
                _set_if_missing(doc, "name", f"new-{created[kind]}")
                request = ("POST", collection,
                           *_body(data, doc, make("new"), in_protobuf))
            elif verb == "PUT":
                current = loop.run_until_complete(_current(client, f"{collection}/{TARGET}"))
                _set_if_missing(doc, "resourceVersion",
                                current["metadata"]["resourceVersion"])
                request = ("PUT", f"{collection}/{TARGET}",
                           *_body(data, doc, make(TARGET), in_protobuf))
            elif verb == "json":
                op = data.draw(st.sampled_from(["replace", "add", "remove", "test"]))
                value = data.draw(bad_values)
                patch = [{"op": op, "path": json_pointer(where), "value": value}]
                request = ("PATCH", f"{collection}/{TARGET}", encode(patch),
                           "application/json-patch+json")
            else:
                ctype = ("application/merge-patch+json" if verb == "merge"
                         else "application/strategic-merge-patch+json")
                request = ("PATCH", f"{collection}/{TARGET}",
                           encode(merge_patch_for(doc, where)), ctype)
            loop.run_until_complete(_send(core, client, kind, *request))
            assert not bug_log.records, bug_log.records

        check()
        # Not vacuous: damaged documents were refused, and some damage was harmless.
        assert SEEN["422"] > 5 and SEEN["400"] > 5 and SEEN["2xx"] > 5, SEEN
        assert SEEN["protobuf bytes"] > 5, SEEN  # (most damage has no protobuf form)
        # And the server still answers.
        for _, collection in KINDS.values():
            response = loop.run_until_complete(client.get(collection, headers=ADMIN))
            assert response.status == 200
    finally:
        loop.run_until_complete(stack.aclose())
        loop.close()
        logging.getLogger("kstate.api").removeHandler(bug_log)


async def _start(stack: contextlib.AsyncExitStack) -> tuple[ApiCore, TestClient[Any, Any]]:
    core = await stack.enter_async_context(running_core())
    for make, _ in KINDS.values():
        await core.create(make(TARGET))
    client = await stack.enter_async_context(http_client(core, watch_timeout=0.2))
    return core, client


def _body(data: st.DataObject, doc: dict[str, Any], intact: Any, in_protobuf: bool
          ) -> tuple[bytes, str]:
    """The request body: ``doc`` in JSON or protobuf; when protobuf cannot carry the
    damage (a wrong type, a made-up field), the intact object's damaged bytes."""
    if not in_protobuf:
        return encode(doc), "application/json"
    try:
        body = protobuf.encode_object(doc)
        SEEN["protobuf document"] += 1
    except protobuf.NotRepresentable:
        body = data.draw(as_protobuf(to_dict(intact)))
        SEEN["protobuf bytes"] += 1
    return body, protobuf.MEDIA_TYPE


def _set_if_missing(doc: dict[str, Any], field: str, value: str) -> None:
    """``metadata.<field> = value`` unless the damage removed metadata or set the field."""
    meta = doc.get("metadata")
    if isinstance(meta, dict):
        if field == "name" and meta.get("name") == TARGET:
            meta["name"] = value
        else:
            meta.setdefault(field, value)


async def _current(client: TestClient[Any, Any], url: str) -> dict[str, Any]:
    response = await client.get(url, headers=ADMIN)
    assert response.status == 200, await response.text()
    data: dict[str, Any] = await response.json()
    return data


async def _send(core: ApiCore, client: TestClient[Any, Any], kind: str, method: str,
                url: str, body: bytes, ctype: str) -> None:
    before = await core.store.revision()
    response = await client.request(method, url, data=body,
                                    headers={**ADMIN, "Content-Type": ctype})
    try:
        text = await response.text()
        assert response.status < 500, (method, url, body[:300], response.status, text)
        if response.status >= 400:
            SEEN[str(response.status)] += 1
            _assert_status(response.status, json.loads(text), ctype)
            assert await core.store.revision() == before, (
                "a refused request wrote to the store", method, url, body[:300], text)
        else:
            SEEN["2xx"] += 1
            stored = from_dict(REGISTRY.for_kind(kind).cls, json.loads(text))
            assert validate(stored) == [], (method, url, body[:300], text)
    finally:
        response.close()


def _assert_status(code: int, status: dict[str, Any], ctype: str) -> None:
    assert status["kind"] == "Status" and status["status"] == "Failure", status
    assert status["code"] == code and status["reason"] and status["message"], status
    if code == 422 or (code == 400 and ctype != protobuf.MEDIA_TYPE):  # say where
        causes = status.get("details", {}).get("causes", [])
        assert causes and all(c.get("field") for c in causes), status


# --------------------------------------------------------------------------- regressions
# What the run above found (each a 500, or a rejection naming no field), pinned.


async def _answer(method: str, url: str, body: bytes | str,
                  ctype: str = "application/json") -> tuple[int, dict[str, Any], int]:
    """The status code and JSON answer to one request, and how far the store's revision
    moved, against a server holding one object of each kind named ``target``."""
    async with running_core() as core:
        for make, _ in KINDS.values():
            await core.create(make(TARGET))
        async with http_client(core) as client:
            before = await core.store.revision()
            response = await client.request(method, url, data=body,
                                            headers={**ADMIN, "Content-Type": ctype})
            answer = await response.json(content_type=None)
            return response.status, answer, await core.store.revision() - before


def _fields(status: dict[str, Any]) -> list[str]:
    return [c["field"] for c in status.get("details", {}).get("causes", [])]


PODS = KINDS["Pod"][1]


async def test_a_lone_surrogate_becomes_a_replacement_character_as_in_go() -> None:
    """Found: ``"\\udfff"`` decoded to a string UTF-8 cannot encode: the store write
    raised UnicodeEncodeError (500). Go's decoder, so Kubernetes, substitutes U+FFFD."""
    doc = to_dict(pod("lonely"))
    doc["metadata"]["labels"] = {"app": "x"}
    doc["metadata"]["annotations"] = {"note": "a\ud800b\udfff"}
    code, created, moved = await _answer("POST", PODS, json.dumps(doc))
    assert code == 201 and moved == 1, created
    assert created["metadata"]["annotations"] == {"note": "a\ufffdb\ufffd"}
    # In a key, too (not a valid annotation key: refused, naming it as it now reads).
    doc["metadata"]["annotations"] = {"note\udfff": "a"}
    code, status, moved = await _answer("POST", PODS, json.dumps(doc))
    assert (code, moved) == (422, 0) and _fields(status) == [
        "metadata.annotations[note\ufffd]"], status
    # A surrogate pair is one character, not two replacements.
    doc["metadata"]["name"] = "paired"
    doc["metadata"]["annotations"] = {"smile": "\U0001f642"}
    code, created, _ = await _answer("POST", PODS, json.dumps(doc))
    assert code == 201 and created["metadata"]["annotations"] == {"smile": "\U0001f642"}
    # The YAML reader refuses the escape outright.
    code, status, moved = await _answer(
        "POST", PODS, 'apiVersion: v1\nkind: Pod\nmetadata: {name: y, annotations: '
        '{a: "\\udfff"}}\nspec: {containers: [{name: c, image: nginx}]}\n',
        "application/yaml")
    assert (code, moved) == (400, 0) and "invalid Unicode" in status["message"]


def _nested(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


async def test_a_body_nested_too_deep_is_a_400_naming_where() -> None:
    """Found: a strategic merge patch 900 objects deep recursed past Python's limit in
    the patch code (500); 3000 deep, the JSON parser's RecursionError was reported as
    "not valid JSON" with no field. Both are now the same 400, naming the field where
    the body passes the nesting limit."""
    want = "spec.x." + ".".join(["a"] * 99)
    for depth in (150, 900, 3000):
        patch = '{"spec": {"x": ' + _nested(depth) + "}}"
        code, status, moved = await _answer("PATCH", f"{PODS}/{TARGET}", patch,
                                            "application/strategic-merge-patch+json")
        assert (code, moved) == (400, 0), status
        assert status["message"] == "the request body nests more than 100 levels deep"
        assert _fields(status) == [want], (depth, _fields(status)[0][:60])
    code, status, moved = await _answer("POST", PODS, "[" * 5000 + "]" * 5000)
    assert (code, moved) == (400, 0) and _fields(status) == ["[0]" * 101]
    yaml_body = ("apiVersion: v1\nkind: Pod\nmetadata: {name: y}\nspec: {nodeSelector: "
                 + "{a: " * 150 + "1" + "}" * 150 + "}\n")
    code, status, moved = await _answer("POST", PODS, yaml_body, "application/yaml")
    assert (code, moved) == (400, 0)
    assert _fields(status) == ["spec.nodeSelector." + ".".join(["a"] * 99)]
    # Deep, but within the limit: an ordinary (here: Invalid) answer.
    code, status, _ = await _answer("PATCH", f"{PODS}/{TARGET}",
                                    '{"spec": {"nodeSelector": ' + _nested(90) + "}}",
                                    "application/merge-patch+json")
    assert code == 422 and _fields(status) == ["spec.nodeSelector[a]"]


async def test_a_body_of_the_wrong_kind_or_name_says_which_field() -> None:
    node_doc = json.dumps({**to_dict(node("n2")), "kind": ["Pod"]})
    for method, url, body, field in [
        ("POST", PODS, json.dumps({**to_dict(pod("p")), "kind": "Node"}), "kind"),
        ("POST", KINDS["Node"][1], node_doc, "kind"),
        ("POST", PODS, json.dumps({**to_dict(pod("p")), "apiVersion": "v2"}), "apiVersion"),
        ("PUT", f"{PODS}/{TARGET}", json.dumps(to_dict(pod("other"))), "metadata.name"),
        ("POST", PODS, json.dumps(to_dict(pod("p", namespace="elsewhere"))),
         "metadata.namespace"),
    ]:
        code, status, moved = await _answer(method, url, body)
        assert (code, moved) == (400, 0), status
        assert _fields(status) == [field], status
    # The offending value is quoted short, however long it is.
    code, status, _ = await _answer("POST", PODS,
                                    json.dumps({**to_dict(pod("p")), "kind": "K" * 70_000}))
    assert code == 400 and len(status["message"]) < 200


async def test_a_patch_that_cannot_apply_names_the_operation_or_the_list_item() -> None:
    target = f"{PODS}/{TARGET}"
    json_patch = "application/json-patch+json"
    for ops, field in [
        ([{"op": "replace", "path": "/spec/nope/x", "value": 1}], "[0].path"),
        ([{"op": "add", "path": "/metadata/labels", "value": {}},
          {"op": "test", "path": "/metadata/labels", "value": {"a": "b"}}], "[1].value"),
        ([{"op": "copy", "from": "/spec/ghost", "path": "/spec/x"}], "[0].from"),
        ([{"op": "move", "from": "/metadata/name", "path": "/spec/containers/9/name"}],
         "[0].path"),
        ([{"op": "frobnicate", "path": "/spec"}], "[0].op"),
        ([{"op": "add", "path": "/spec"}], "[0].value"),
        ([7], "[0]"),
    ]:
        code, status, moved = await _answer("PATCH", target, json.dumps(ops), json_patch)
        assert code in (400, 422) and moved == 0, status
        assert _fields(status) == [field], (ops, status)
    strategic = "application/strategic-merge-patch+json"
    for patch, field in [
        ({"spec": {"containers": ["nginx"]}}, "spec.containers[0]"),
        ({"spec": {"containers": [{"name": "c"}, {"image": "x"}]}}, "spec.containers[1]"),
        ({"spec": {"$patch": "explode"}}, "spec.$patch"),
        ({"metadata": {"$retainKeys": "name"}}, "metadata.$retainKeys"),
    ]:
        code, status, moved = await _answer("PATCH", target, json.dumps(patch), strategic)
        assert code in (400, 422) and moved == 0, status
        assert _fields(status) == [field], (patch, status)
