"""The HTTP layer: Status objects for every error, content negotiation (JSON, YAML,
Table), discovery and OpenAPI, watch streams, delete answers, limits, health, metrics."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from kstate.api.server import openapi
from tests.api.server.conftest import ADMIN, http_client, running_core

PODS = "/api/v1/namespaces/default/pods"
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"


def pod_body(name: str = "web", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [{"name": "c", "image": "nginx:1.25"}], **spec}}


async def test_crud_round_trip_and_error_statuses() -> None:
    async with running_core() as core, http_client(core) as client:
        created = await client.post(PODS, json=pod_body(), headers=ADMIN)
        assert created.status == 201
        body = await created.json()
        assert body["metadata"]["resourceVersion"].isdigit()
        assert body["kind"] == "Pod" and body["status"]["phase"] == "Pending"

        dup = await client.post(PODS, json=pod_body(), headers=ADMIN)
        status = await dup.json()
        assert dup.status == 409 and status["reason"] == "AlreadyExists"
        assert status["kind"] == "Status" and status["details"] == {"name": "web",
                                                                    "kind": "pods"}

        missing = await client.get(f"{PODS}/ghost", headers=ADMIN)
        assert missing.status == 404
        assert (await missing.json())["message"] == 'pods "ghost" not found'

        stale = dict(body, metadata=dict(body["metadata"], resourceVersion="1"))
        conflict = await client.put(f"{PODS}/web", json=stale, headers=ADMIN)
        assert conflict.status == 409 and (await conflict.json())["reason"] == "Conflict"

        invalid = await client.post(PODS, json=pod_body("Bad_Name"), headers=ADMIN)
        status = await invalid.json()
        assert invalid.status == 422 and status["reason"] == "Invalid"
        assert status["details"]["causes"][0]["field"] == "metadata.name"
        assert status["message"].startswith('Pod "Bad_Name" is invalid: metadata.name:')

        typed = await client.post(PODS, json=pod_body("x", terminationGracePeriodSeconds="30"),
                                  headers=ADMIN)
        status = await typed.json()
        assert typed.status == 400
        assert status["details"]["causes"][0]["field"] == "spec.terminationGracePeriodSeconds"

        not_json = await client.post(PODS, data=b"{nope", headers={
            **ADMIN, "Content-Type": "application/json"})
        assert not_json.status == 400 and (await not_json.json())["reason"] == "BadRequest"

        wrong_type = await client.post(PODS, data=b"x", headers={
            **ADMIN, "Content-Type": "text/plain"})
        assert wrong_type.status == 415

        method = await client.post("/api/v1/namespaces/default/pods/web/log", json={},
                                   headers=ADMIN)
        assert method.status == 405 and (await method.json())["reason"] == "MethodNotAllowed"

        accept = await client.get(PODS, headers={**ADMIN, "Accept": "application/cbor"})
        assert accept.status == 406

        deleted = await client.delete(f"{PODS}/web", headers=ADMIN)
        assert deleted.status == 200 and (await deleted.json())["kind"] == "Pod"
        assert deleted.headers["Kstate-Deleted"] == "removed"


async def test_no_content_type_means_json_and_yaml_works() -> None:
    async with running_core() as core, http_client(core) as client:
        raw = json.dumps(pod_body("plain")).encode()
        created = await client.post(PODS, data=raw, headers={**ADMIN, "Content-Type": ""})
        assert created.status == 201, await created.text()
        yaml_body = "apiVersion: v1\nkind: Pod\nmetadata: {name: y}\nspec:\n" \
                    "  containers: [{name: c, image: 'x:1'}]\n"
        made = await client.post(PODS, data=yaml_body, headers={
            **ADMIN, "Content-Type": "application/yaml"})
        assert made.status == 201
        as_yaml = await client.get(f"{PODS}/y", headers={**ADMIN, "Accept": "application/yaml"})
        assert as_yaml.content_type == "application/yaml"
        assert "name: y" in await as_yaml.text()


async def test_field_validation_over_http() -> None:
    async with running_core() as core, http_client(core) as client:
        body = pod_body("strict", hostnme="x")
        strict = await client.post(f"{PODS}?fieldValidation=Strict", json=body, headers=ADMIN)
        status = await strict.json()
        assert strict.status == 400
        assert 'unknown field "spec.hostnme"' in status["message"]
        assert status["details"]["causes"][0]["field"] == "spec.hostnme"
        warned = await client.post(PODS, json=body, headers=ADMIN)  # default: Warn
        assert warned.status == 201
        assert warned.headers["Warning"] == '299 - "unknown field \\"spec.hostnme\\""'
        dup = b'{"apiVersion":"v1","kind":"Pod","metadata":{"name":"d","name":"d"},' \
              b'"spec":{"containers":[{"name":"c","image":"x"}]}}'
        refused = await client.post(f"{PODS}?fieldValidation=Strict", data=dup, headers={
            **ADMIN, "Content-Type": "application/json"})
        assert refused.status == 400 and 'duplicate field "name"' in (await refused.json())[
            "message"]


async def test_table_output() -> None:
    async with running_core() as core, http_client(core) as client:
        await client.post(PODS, json=pod_body("a"), headers=ADMIN)
        listed = await client.get(PODS, headers={**ADMIN, "Accept": TABLE})
        table = await listed.json()
        assert table["kind"] == "Table" and table["apiVersion"] == "meta.k8s.io/v1"
        assert [c["name"] for c in table["columnDefinitions"]][:5] == [
            "Name", "Ready", "Status", "Restarts", "Age"]
        assert table["rows"][0]["cells"][:4] == ["a", "0/1", "Pending", "0"]
        assert table["metadata"]["resourceVersion"].isdigit()
        one = await client.get(f"{PODS}/a?includeObject=Object",
                               headers={**ADMIN, "Accept": TABLE})
        row = (await one.json())["rows"][0]
        assert row["object"]["kind"] == "Pod"


async def test_discovery_and_openapi() -> None:
    async with running_core() as core, http_client(core) as client:
        api = await (await client.get("/api", headers=ADMIN)).json()
        assert api["versions"] == ["v1"]
        groups = await (await client.get("/apis", headers=ADMIN)).json()
        assert [g["name"] for g in groups["groups"]] == ["coordination.k8s.io"]
        v1 = await (await client.get("/api/v1", headers=ADMIN)).json()
        names = {r["name"]: r for r in v1["resources"]}
        assert names["replicationcontrollers/scale"]["group"] == "autoscaling"
        assert names["pods/eviction"]["kind"] == "Eviction"
        assert names["pods"]["shortNames"] == ["po"]
        assert "replicationcontrollers" in names and "leases" not in names
        leases = await (await client.get("/apis/coordination.k8s.io/v1", headers=ADMIN)).json()
        assert leases["resources"][0]["name"] == "leases"
        version = await (await client.get("/version")).json()
        assert version["major"] == "1"

        index = await (await client.get("/openapi/v3", headers=ADMIN)).json()
        url = index["paths"]["api/v1"]["serverRelativeURL"]
        doc = await (await client.get(url, headers=ADMIN)).json()
        patch = doc["paths"]["/api/v1/namespaces/{namespace}/pods/{name}"]["patch"]
        assert "fieldValidation" in [p["name"] for p in patch["parameters"]]
        assert patch["x-kubernetes-group-version-kind"] == {"group": "", "version": "v1",
                                                            "kind": "Pod"}
        spec = doc["components"]["schemas"]["io.k8s.api.core.v1.PodSpec"]["properties"]
        assert spec["containers"]["x-kubernetes-patch-merge-key"] == "name"
        assert spec["tolerations"]["x-kubernetes-list-type"] == "atomic"
        assert "volumes" in spec  # unmodelled, still known
        v2 = await client.get("/openapi/v2", headers={
            **ADMIN, "Accept": "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"})
        assert v2.content_type == openapi.V2_PROTOBUF_RESPONSE
        raw = await v2.read()
        assert raw.startswith(b"\x0a\x032.0")  # field 1 (swagger) = "2.0"
        swagger = await (await client.get("/openapi/v2", headers=ADMIN)).json()
        assert "io.k8s.api.core.v1.Pod" in swagger["definitions"]


async def test_watch_stream_over_http() -> None:
    async with running_core() as core, http_client(core) as client:
        await client.post(PODS, json=pod_body("a"), headers=ADMIN)
        response = await client.get(f"{PODS}?watch=1", headers=ADMIN)
        assert response.status == 200
        first = json.loads(await asyncio.wait_for(response.content.readline(), 5))
        assert first["type"] == "ADDED" and first["object"]["metadata"]["name"] == "a"
        await client.delete(f"{PODS}/a", headers=ADMIN)
        second = json.loads(await asyncio.wait_for(response.content.readline(), 5))
        assert second["type"] == "DELETED"
        assert second["object"]["metadata"]["resourceVersion"].isdigit()
        response.close()

        table = await client.get(f"{PODS}?watch=1&resourceVersion=0",
                                 headers={**ADMIN, "Accept": TABLE})
        await client.post(PODS, json=pod_body("b"), headers=ADMIN)
        event = json.loads(await asyncio.wait_for(table.content.readline(), 5))
        assert event["object"]["kind"] == "Table"
        assert event["object"]["rows"][0]["cells"][0] == "b"
        table.close()

        gone = await client.get(f"{PODS}?watch=1&resourceVersion=1", headers=ADMIN)
        await core.store.compact(await core.store.revision())
        assert gone.status == 200
        gone.close()
        old = await client.get(f"{PODS}?watch=1&resourceVersion=2", headers=ADMIN)
        error = json.loads(await asyncio.wait_for(old.content.readline(), 5))
        assert error["type"] == "ERROR" and error["object"]["code"] == 410
        bad = await client.get(f"{PODS}?watch=1&labelSelector=a%20in", headers=ADMIN)
        assert bad.status == 400


async def test_limits_health_and_metrics() -> None:
    async with running_core() as core, http_client(core, max_body_bytes=10_000) as client:
        big = await client.post(PODS, data=b"x" * 20_000, headers={
            **ADMIN, "Content-Type": "application/json"})
        assert big.status == 413 and (await big.json())["reason"] == "RequestEntityTooLarge"
        for path in ("/healthz", "/livez", "/readyz"):
            answer = await client.get(path)
            assert answer.status == 200 and await answer.text() == "ok"
        await client.get(f"{PODS}/none", headers=ADMIN)
        metrics = await (await client.get("/metrics", headers=ADMIN)).text()
        assert 'apiserver_request_total{code="404",resource="pods",subresource="",' \
               'verb="get"} 1' in metrics
        assert "apiserver_request_duration_seconds_bucket" in metrics
        unknown = await client.get("/nowhere", headers=ADMIN)
        assert unknown.status == 404 and (await unknown.json())["kind"] == "Status"


async def test_subresources_over_http() -> None:
    async with running_core() as core, http_client(core) as client:
        rc = {"apiVersion": "v1", "kind": "ReplicationController", "metadata": {"name": "w"},
              "spec": {"replicas": 1, "template": {"metadata": {"labels": {"a": "b"}},
                                                   "spec": pod_body()["spec"]}}}
        rcs = "/api/v1/namespaces/default/replicationcontrollers"
        assert (await client.post(rcs, json=rc, headers=ADMIN)).status == 201
        scale = await client.patch(f"{rcs}/w/scale", json={"spec": {"replicas": 3}}, headers={
            **ADMIN, "Content-Type": "application/merge-patch+json"})
        body = await scale.json()
        assert body["kind"] == "Scale" and body["apiVersion"] == "autoscaling/v1"
        assert body["spec"]["replicas"] == 3
        await client.post(PODS, json=pod_body("p"), headers=ADMIN)
        binding = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"},
                   "target": {"kind": "Node", "name": "n1"}}
        bound = await client.post(f"{PODS}/p/binding", json=binding, headers=ADMIN)
        assert bound.status == 201 and (await bound.json())["status"] == "Success"
        eviction = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "p"}}
        evicted = await client.post(f"{PODS}/p/eviction", json=eviction, headers=ADMIN)
        assert evicted.status == 201
        marked = await (await client.get(f"{PODS}/p", headers=ADMIN)).json()
        assert marked["metadata"]["deletionTimestamp"]
        orphan = await client.delete(f"{rcs}/w?propagationPolicy=Foreground", headers=ADMIN)
        assert orphan.status == 200
        assert (await orphan.json())["metadata"]["finalizers"] == ["foregroundDeletion"]
        assert orphan.headers["Kstate-Deleted"] == "marked"
        ns = await client.delete("/api/v1/namespaces/default/replicationcontrollers",
                                 headers=ADMIN)
        assert ns.status == 200
