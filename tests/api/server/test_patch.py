"""The three patch dialects on plain JSON, and through the core."""

from __future__ import annotations

from typing import Any

import pytest

from kstate.api import ObjectMeta, Pod, ReplicationController, Service, to_dict
from kstate.api.server.patch import (
    JSON_PATCH,
    MERGE_PATCH,
    STRATEGIC_MERGE_PATCH,
    json_patch,
    merge_patch,
    strategic_merge_patch,
)
from kstate.errors import BadRequest, InvalidObject
from tests.api.server.conftest import running_core
from tests.api.server.helpers import POD, RC, pod, rc


def container(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "image": f"{name}:1", **extra}


POD_JSON: dict[str, Any] = {
    "metadata": {"name": "p", "labels": {"a": "1", "b": "2"}, "finalizers": ["x", "y"],
                 "ownerReferences": [{"apiVersion": "v1", "kind": "ReplicationController",
                                      "name": "rc", "uid": "u1"}]},
    "spec": {
        "containers": [
            container("app", env=[{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                      ports=[{"containerPort": 80}, {"containerPort": 443, "name": "tls"}]),
            container("side"),
        ],
        "tolerations": [{"key": "k1", "operator": "Exists"}],
        "volumes": [{"name": "v1", "emptyDir": {}}, {"name": "v2", "hostPath": {"path": "/x"}}],
    },
}


def test_merge_patch_rfc7386() -> None:
    assert merge_patch({"a": "b"}, {"a": "c"}) == {"a": "c"}
    assert merge_patch({"a": "b"}, {"b": "c"}) == {"a": "b", "b": "c"}
    assert merge_patch({"a": "b"}, {"a": None}) == {}
    assert merge_patch({"a": ["b"]}, {"a": "c"}) == {"a": "c"}
    assert merge_patch({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}) == {"a": {"b": "d"}}
    assert merge_patch({"a": [{"b": "c"}]}, {"a": [1]}) == {"a": [1]}
    assert merge_patch(["a", "b"], {"a": "b"}) == {"a": "b"}


def test_strategic_lists_merge_on_their_keys() -> None:
    patch = {"spec": {"containers": [
        {"name": "app", "image": "app:2",
         "env": [{"name": "B", "value": "3"}, {"name": "C", "value": "4"}],
         "ports": [{"containerPort": 443, "protocol": "TCP"}]}]}}
    out = strategic_merge_patch(POD_JSON, patch, Pod)
    app, side = out["spec"]["containers"]
    assert app["image"] == "app:2" and side == container("side")
    assert app["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "3"},
                          {"name": "C", "value": "4"}]
    assert app["ports"] == [{"containerPort": 80},
                            {"containerPort": 443, "name": "tls", "protocol": "TCP"}]
    assert POD_JSON["spec"]["containers"][0]["image"] == "app:1"  # input untouched


def test_strategic_atomic_lists_and_maps() -> None:
    patch = {"metadata": {"labels": {"a": None, "c": "3"}},
             "spec": {"tolerations": [{"key": "k2", "operator": "Exists"}]}}
    out = strategic_merge_patch(POD_JSON, patch, Pod)
    assert out["metadata"]["labels"] == {"b": "2", "c": "3"}
    assert out["spec"]["tolerations"] == [{"key": "k2", "operator": "Exists"}]


def test_strategic_directives() -> None:
    delete_side = {"spec": {"containers": [{"name": "side", "$patch": "delete"}]}}
    out = strategic_merge_patch(POD_JSON, delete_side, Pod)
    assert [c["name"] for c in out["spec"]["containers"]] == ["app"]
    replace = {"spec": {"containers": [{"$patch": "replace"}, container("only")]}}
    out = strategic_merge_patch(POD_JSON, replace, Pod)
    assert out["spec"]["containers"] == [container("only")]
    order = {"spec": {"$setElementOrder/containers": [{"name": "side"}, {"name": "app"}]}}
    out = strategic_merge_patch(POD_JSON, order, Pod)
    assert [c["name"] for c in out["spec"]["containers"]] == ["side", "app"]
    drop = {"metadata": {"$deleteFromPrimitiveList/finalizers": ["x"]}}
    assert strategic_merge_patch(POD_JSON, drop, Pod)["metadata"]["finalizers"] == ["y"]
    add = {"metadata": {"finalizers": ["y", "z"]}}
    assert strategic_merge_patch(POD_JSON, add, Pod)["metadata"]["finalizers"] == \
        ["x", "y", "z"]
    owners = {"metadata": {"ownerReferences": [{"uid": "u1", "controller": True}]}}
    refs = strategic_merge_patch(POD_JSON, owners, Pod)["metadata"]["ownerReferences"]
    assert refs[0]["controller"] is True and refs[0]["name"] == "rc"
    retain = {"spec": {"volumes": [{"name": "v1", "$retainKeys": ["name", "hostPath"],
                                    "hostPath": {"path": "/y"}}]}}
    vols = strategic_merge_patch(POD_JSON, retain, Pod)["spec"]["volumes"]
    assert vols[0] == {"name": "v1", "hostPath": {"path": "/y"}} and vols[1]["name"] == "v2"
    replace_map = {"metadata": {"labels": {"$patch": "replace", "z": "9"}}}
    assert strategic_merge_patch(POD_JSON, replace_map, Pod)["metadata"]["labels"] == {"z": "9"}
    with pytest.raises(BadRequest):
        strategic_merge_patch(POD_JSON, {"spec": {"$patch": "explode"}}, Pod)
    with pytest.raises(InvalidObject, match="merge key"):
        strategic_merge_patch(POD_JSON, {"spec": {"containers": [{"image": "x"}]}}, Pod)


def test_strategic_service_ports_merge_on_port() -> None:
    svc = {"spec": {"ports": [{"port": 80, "name": "http"}, {"port": 443, "name": "https"}]}}
    out = strategic_merge_patch(svc, {"spec": {"ports": [{"port": 443, "nodePort": 30443}]}},
                                Service)
    assert out["spec"]["ports"][1] == {"port": 443, "name": "https", "nodePort": 30443}


def test_json_patch_rfc6902() -> None:
    doc = {"a": {"b": [1, 2]}, "c": "d"}
    assert json_patch(doc, [{"op": "add", "path": "/a/b/1", "value": 9}]) == \
        {"a": {"b": [1, 9, 2]}, "c": "d"}
    assert json_patch(doc, [{"op": "remove", "path": "/c"}]) == {"a": {"b": [1, 2]}}
    assert json_patch(doc, [{"op": "replace", "path": "/c", "value": "e"}])["c"] == "e"
    assert json_patch(doc, [{"op": "move", "from": "/c", "path": "/x"}]) == \
        {"a": {"b": [1, 2]}, "x": "d"}
    assert json_patch(doc, [{"op": "copy", "from": "/a/b/0", "path": "/a/b/-"}])["a"]["b"] == \
        [1, 2, 1]
    assert json_patch({"a/b": {"~": 1}}, [{"op": "test", "path": "/a~1b/~0", "value": 1}])
    with pytest.raises(InvalidObject, match="test failed"):
        json_patch(doc, [{"op": "test", "path": "/c", "value": "z"}])
    with pytest.raises(InvalidObject):
        json_patch(doc, [{"op": "remove", "path": "/nope"}])
    with pytest.raises(InvalidObject):
        json_patch(doc, [{"op": "add", "path": "/a/b/7", "value": 1}])
    with pytest.raises(BadRequest):
        json_patch(doc, {"op": "add"})
    with pytest.raises(BadRequest):
        json_patch(doc, [{"op": "frobnicate", "path": "/a"}])
    with pytest.raises(BadRequest):
        json_patch(doc, [{"op": "add", "path": "/a"}])


async def test_every_patch_type_through_the_core() -> None:
    async with running_core() as core:
        await core.create(rc("web", 2))
        merged = await core.patch(RC, "default", "web", MERGE_PATCH,
                                  {"metadata": {"labels": {"x": "1"}}, "spec": {"replicas": 3}})
        assert isinstance(merged, ReplicationController) and merged.spec.replicas == 3
        smp = {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "n:2"}]}}}}
        strategic = await core.patch(RC, "default", "web", STRATEGIC_MERGE_PATCH, smp)
        assert isinstance(strategic, ReplicationController)
        assert strategic.spec.template is not None
        assert strategic.spec.template.spec.containers[0].image == "n:2"
        assert strategic.metadata.generation == 3
        ops = [{"op": "replace", "path": "/spec/replicas", "value": 1}]
        patched = await core.patch(RC, "default", "web", JSON_PATCH, ops)
        assert isinstance(patched, ReplicationController) and patched.spec.replicas == 1
        await core.create(pod("p"))
        with pytest.raises(InvalidObject, match="containerPort"):
            await core.patch(POD, "default", "p", MERGE_PATCH,
                             {"spec": {"containers": [{"name": "c", "image": "x",
                                                       "ports": [{"containerPort": "80"}]}]}})
        labelled = await core.patch(POD, "default", "p", STRATEGIC_MERGE_PATCH,
                                    {"metadata": {"labels": {"k": "v"}}})
        assert labelled.metadata.labels["k"] == "v"
        assert to_dict(labelled)["spec"]["containers"][0]["ports"] == [
            {"containerPort": 80, "protocol": "TCP"}]
        assert ObjectMeta(name="p").name == "p"
