"""The kind registry: names, plurals, short names, scope, store keys, polymorphic decode."""

from __future__ import annotations

import pytest

from kstate.api import (
    REGISTRY,
    Lease,
    Node,
    ObjectMeta,
    Pod,
    decode_object,
    key_prefix,
    store_key,
)
from kstate.errors import InvalidObject


@pytest.mark.parametrize(
    ("name", "kind"),
    [("po", "Pod"), ("pods", "Pod"), ("pod", "Pod"), ("Pod", "Pod"),
     ("rc", "ReplicationController"),
     ("replicationcontrollers", "ReplicationController"), ("svc", "Service"),
     ("services", "Service"), ("ep", "Endpoints"), ("endpoints", "Endpoints"),
     ("no", "Node"), ("nodes", "Node"), ("ns", "Namespace"), ("namespaces", "Namespace"),
     ("ev", "Event"), ("events", "Event"), ("leases", "Lease"), ("bindings", "Binding"),
     ("PODS", "Pod")],
)
def test_lookup(name: str, kind: str) -> None:
    info = REGISTRY.lookup(name)
    assert info is not None and info.kind == kind


def test_lookup_unknown_and_non_resources() -> None:
    assert REGISTRY.lookup("deployments") is None
    assert REGISTRY.lookup("status") is None  # not a resource
    with pytest.raises(KeyError, match="known: Pod"):
        REGISTRY.for_kind("Deployment")


def test_scope_group_version() -> None:
    assert REGISTRY.for_kind("Node").namespaced is False
    assert REGISTRY.for_kind("Namespace").namespaced is False
    assert REGISTRY.for_kind("Pod").namespaced is True
    lease = REGISTRY.for_class(Lease)
    assert (lease.group, lease.version, lease.plural) == ("coordination.k8s.io", "v1", "leases")
    assert REGISTRY.for_kind("Pod").group == ""
    assert REGISTRY.for_api("policy/v1", "Eviction") is not None
    assert {i.kind for i in REGISTRY.resources()} == {
        "Pod", "ReplicationController", "Service", "Endpoints", "Node", "Namespace", "Event",
        "Lease", "Binding"}


def test_store_keys() -> None:
    assert store_key(REGISTRY.for_kind("Pod"), "default", "web") == "/registry/pods/default/web"
    assert store_key(Node(metadata=ObjectMeta(name="n1"))) == "/registry/nodes/n1"
    assert store_key(Pod(metadata=ObjectMeta(name="p", namespace="x"))) == "/registry/pods/x/p"
    assert key_prefix(REGISTRY.for_kind("Service")) == "/registry/services/"
    assert key_prefix(REGISTRY.for_kind("Service"), "a") == "/registry/services/a/"
    with pytest.raises(ValueError, match="namespace"):
        store_key(Pod(metadata=ObjectMeta(name="p")))
    with pytest.raises(ValueError, match="name"):
        store_key(REGISTRY.for_kind("Node"))
    with pytest.raises(ValueError, match="not a stored resource"):
        store_key(REGISTRY.for_kind("Scale"), "a", "b")


def test_decode_object_picks_the_class() -> None:
    lease = decode_object({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                           "metadata": {"name": "node-1"}, "spec": {"holderIdentity": "n"}})
    assert isinstance(lease, Lease) and lease.spec.holder_identity == "n"


@pytest.mark.parametrize(
    ("data", "field", "reason", "text"),
    [
        ({"apiVersion": "v1"}, "kind", "FieldValueRequired", "one of: Pod (v1)"),
        ({"kind": "Pod"}, "apiVersion", "FieldValueRequired", "apiVersion is required"),
        ({"apiVersion": "v1", "kind": 3}, "kind", "FieldValueTypeInvalid", "string"),
        ({"apiVersion": "v2", "kind": "Pod"}, "apiVersion", "FieldValueNotSupported",
         "served as apiVersion 'v1'"),
        ({"apiVersion": "apps/v1", "kind": "Deployment"}, "kind", "FieldValueNotSupported",
         "kstate supports: Pod (v1), ReplicationController (v1)"),
    ],
)
def test_decode_object_errors(data: dict[str, object], field: str, reason: str, text: str
                              ) -> None:
    with pytest.raises(InvalidObject) as e:
        decode_object(data)
    cause = e.value.causes[0]
    assert (cause.field, cause.reason) == (field, reason)
    assert text in cause.message
