"""Hypothesis fuzz of the HTTP layer: random methods, paths, query strings, headers,
content types and bodies (JSON, and Kubernetes protobuf whole, truncated or with bytes
flipped) never get a 5xx or crash the server, and never reach the catch-all that logs a
bug; every error is a ``Status`` (in protobuf when the client prefers it). The real
aiohttp application runs in-process on loopback, over a core holding one object of each
kind (so updates, patches, deletes and subresources have something to work on)."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import os
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from yarl import URL

from kstate.api import Namespace, ObjectMeta, protobuf, to_dict, with_meta
from kstate.api.server.discovery import SERVED, Served
from kstate.api.server.patch import merge_patch
from tests.api.server.conftest import http_client, running_core
from tests.api.server.helpers import BugLog, as_protobuf, node, pod, rc, svc

SEGMENTS = ["api", "apis", "v1", "v2", "v3", "namespaces", "default", "x", "pods", "watch",
            "status", "scale", "log", "binding", "bindings", "eviction", "finalize",
            "coordination.k8s.io", "leases", "policy", "autoscaling", "openapi", "nodes",
            "services", "replicationcontrollers", "endpoints", "events", "version", "healthz",
            "metrics", "readyz", "..", ".", "%2F", "", "kube-system"]
QUERY_KEYS = ["watch", "labelSelector", "fieldSelector", "limit", "continue",
              "resourceVersion", "resourceVersionMatch", "timeoutSeconds", "fieldValidation",
              "dryRun", "gracePeriodSeconds", "propagationPolicy", "orphanDependents",
              "allowWatchBookmarks", "sendInitialEvents", "includeObject", "container",
              "tailLines", "follow", "pretty", "preconditions.uid", "hash"]
FIELD_KEYS = ["apiVersion", "kind", "metadata", "name", "namespace", "generateName", "labels",
              "annotations", "finalizers", "ownerReferences", "uid", "resourceVersion",
              "deletionTimestamp", "spec", "containers", "image", "ports", "containerPort",
              "env", "value", "nodeName", "tolerations", "replicas", "selector", "template",
              "status", "phase", "conditions", "type", "target", "clusterIP", "nodePort",
              "port", "deleteOptions", "gracePeriodSeconds", "propagationPolicy",
              "preconditions", "$patch", "$retainKeys", "$setElementOrder/containers",
              "$deleteFromPrimitiveList/finalizers", "op", "path", "from", "items",
              "subsets", "addresses", "ip", "unschedulable", "taints", "effect", "key"]
CONTENT_TYPES = ["application/json", "application/yaml", "application/merge-patch+json",
                 "application/strategic-merge-patch+json", "application/json-patch+json",
                 "application/apply-patch+yaml", "text/plain", "application/x-www-form-urlencoded",
                 "", "application/json; charset=utf-8", "*/*",
                 "application/vnd.kubernetes.protobuf"]
ACCEPTS = ["application/json", "application/yaml", "*/*", "",
           "application/json;as=Table;v=v1;g=meta.k8s.io",
           "application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json",
           "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io",
           "application/vnd.kubernetes.protobuf", "text/html;q=0", "application/json;as=Nope",
           "application/vnd.kubernetes.protobuf,application/json"]
PROTOBUF = protobuf.MEDIA_TYPE
TOKENS = ["Bearer admin-token", "Bearer view-token", "Bearer nope", "", "Bearer ",
          "Basic eA=="]

text = st.text(max_size=8)
scalars = st.none() | st.booleans() | st.integers(-2**70, 2**70) | \
    st.floats(allow_nan=True, allow_infinity=True) | text | \
    st.sampled_from(["x", "default", "n1", "Always", "TCP", "All", "Orphan", "1", "-1", "/",
                     "/spec/replicas", "add", "remove", "replace", "move", "copy", "test",
                     "delete", "replace", "merge", "v1", "Pod", "Node", "Binding"])
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from(FIELD_KEYS) | text, children, max_size=5),
    max_leaves=8)



def _object_for(served: Served, ns: str, name: str) -> Any:
    makers = {"Pod": pod, "ReplicationController": rc, "Service": svc}
    kind = served.info.kind
    if kind in makers:
        return makers[kind](name, namespace=ns)
    if kind == "Node":
        return node(name)
    meta = ObjectMeta(name=name, namespace=ns if served.info.namespaced else "")
    return served.info.cls(metadata=meta)


def _path_for(served: Served, ns: str, name: str, sub: int, watch: bool) -> list[str]:
    info = served.info
    root = ["api", info.version] if not info.group else ["apis", info.group, info.version]
    parts = [*root, *(["watch"] if watch else [])]
    if info.namespaced:
        parts += ["namespaces", ns]
    parts.append(info.plural)
    if name:
        parts.append(name)
        subs = [s.name for s in served.subresources]
        if subs and sub % (len(subs) + 1):
            parts.append(subs[sub % (len(subs) + 1) - 1])
    return parts


#: Well-formed resource paths of every served resource and subresource (most random
#: segment lists are 404s before any handler runs).
resource_paths = st.builds(
    _path_for,
    st.sampled_from(list(SERVED.values())),
    st.sampled_from(["default", "x", "kube-system", "nowhere"]),
    st.sampled_from(["", "x", "bound", "n1", "ghost", "default"]),
    st.integers(0, 8),
    st.booleans())


def encode(value: Any) -> bytes:
    try:
        return json.dumps(value, allow_nan=True).encode()
    except (ValueError, OverflowError):
        return b"{}"


valid_objects = st.builds(
    lambda make, name, patch: encode(merge_patch(to_dict(make(name)), patch)),
    st.sampled_from([pod, rc, svc, node]),
    st.sampled_from(["x", "y", "bound", "n1"]) | st.text("abc-", min_size=1, max_size=8),
    st.dictionaries(st.sampled_from(["metadata", "spec", "status"]), json_values,
                    max_size=1))

bodies = st.one_of(
    valid_objects,
    valid_objects,
    st.none(),
    st.binary(max_size=200),
    json_values.map(encode),
    st.builds(lambda meta, spec: encode({"apiVersion": "v1", "kind": "Pod", "metadata": meta,
                                         "spec": spec}),
              json_values, json_values),
    st.just(b"[" * 5000 + b"]" * 5000),
    st.just(b'{"a":' + b"9" * 5000 + b"}"),
    st.just(b"a: &a [*a]"),
)


SEEN: collections.Counter[str] = collections.Counter()


def test_no_input_gets_a_server_error() -> None:
    """One server for the whole run: state left by earlier examples (objects created,
    patched, deleted) is part of what later examples meet."""
    loop = asyncio.new_event_loop()
    bug_log = BugLog()
    logging.getLogger("kstate.api").addHandler(bug_log)
    stack = contextlib.AsyncExitStack()
    try:
        client = loop.run_until_complete(_start(stack))

        @settings(max_examples=int(os.environ.get("KSTATE_FUZZ_EXAMPLES", "400")),
                  deadline=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
        @given(data=st.data())
        def check(data: st.DataObject) -> None:
            # Most examples are well-formed around the edges (a real resource path, the
            # admin token, JSON, a real verb) so they reach the handlers; the rest are chaos.
            structured = data.draw(st.sampled_from([True, True, True, False]))
            verbs = ["GET", "POST", "PUT", "PATCH", "DELETE"]
            method = data.draw(st.sampled_from(
                verbs if structured else [*verbs, "HEAD", "OPTIONS", "TRACE", "PROPFIND"]))
            if structured:
                served = data.draw(st.sampled_from(list(SERVED.values())))
                ns = data.draw(st.sampled_from(["default", "x", "kube-system", "nowhere"]))
                name = data.draw(st.sampled_from(["", "x", "bound", "n1", "ghost"])
                                 | st.text("abc", min_size=1, max_size=3))
                segments = _path_for(served, ns, name, data.draw(st.integers(0, 8)),
                                     data.draw(st.booleans()))
            else:
                segments = data.draw(st.lists(st.sampled_from(SEGMENTS) | text, max_size=7))
            query = data.draw(st.dictionaries(
                st.sampled_from(QUERY_KEYS) | text,
                text | st.sampled_from(["1", "true", "0", "-5", "x=y", "Strict", "All",
                                        "99999999999"]), max_size=3))
            if structured:
                ctype = "application/merge-patch+json" if method == "PATCH" else \
                    "application/json"
                headers = {"Authorization": "Bearer admin-token", "Content-Type": ctype,
                           "Accept": data.draw(st.sampled_from(
                               ["application/json", PROTOBUF,
                                f"{PROTOBUF},application/json"]))}
            else:
                headers = {"Authorization": data.draw(st.sampled_from(TOKENS)),
                           "Content-Type": data.draw(st.sampled_from(CONTENT_TYPES) | text),
                           "Accept": data.draw(st.sampled_from(ACCEPTS) | text)}
            if structured and method in ("POST", "PUT") and data.draw(st.booleans()):
                # The right kind, namespace and name, then perhaps damaged.
                obj = merge_patch(to_dict(_object_for(served, ns, name or "new")),
                                  data.draw(st.dictionaries(
                                      st.sampled_from(["metadata", "spec", "status"]),
                                      json_values, max_size=1)))
                body = encode(obj)
                if isinstance(obj, dict) and data.draw(st.booleans()):
                    pb = data.draw(as_protobuf(obj))
                    if pb is not None:
                        body, headers["Content-Type"] = pb, PROTOBUF
            elif structured and method == "PATCH":
                body = encode(data.draw(json_values))
            else:
                body = data.draw(bodies)
            loop.run_until_complete(_send(client, method, segments, query, headers, body))
            assert not bug_log.records, bug_log.records

        check()
        # Not vacuous: requests got through to handlers and succeeded, and were refused.
        assert SEEN["2xx"] > 10 and SEEN["4xx"] > 10, SEEN
    finally:
        loop.run_until_complete(stack.aclose())
        loop.close()
        logging.getLogger("kstate.api").removeHandler(bug_log)


async def _start(stack: contextlib.AsyncExitStack) -> Any:
    core = await stack.enter_async_context(running_core())
    await core.create(pod("x"))
    await core.create(pod("bound", node="n1"))
    await core.create(rc("x"))
    await core.create(svc("x", type_="NodePort"))
    await core.create(node("n1"))
    await core.create(with_meta(Namespace(metadata=ObjectMeta(name="x")), labels={}))
    return await stack.enter_async_context(http_client(core, watch_timeout=0.2))


async def _send(client: Any, method: str, segments: list[str], query: dict[str, str],
                headers: dict[str, str], body: bytes | None) -> None:
    path = "/" + "/".join(segments)
    try:
        url = URL.build(path=path, query=query)
    except (ValueError, TypeError):
        return
    clean = {k: v for k, v in headers.items()
             if v.isprintable() and "\n" not in v and "\r" not in v}
    try:
        response = await asyncio.wait_for(
            client.request(method, url, data=body, headers=clean), 10)
    except ValueError:
        return  # the client refused to send it (bad header or URL): not server input
    SEEN[f"{response.status // 100}xx"] += 1
    try:
        assert response.status < 500, (method, str(url), response.status,
                                       await response.text())
        if response.status >= 400 and method != "HEAD":
            raw = await response.read()
            status = (protobuf.decode_object(raw) if response.content_type == PROTOBUF
                      else json.loads(raw))
            assert status["kind"] == "Status", status
    finally:
        response.close()
