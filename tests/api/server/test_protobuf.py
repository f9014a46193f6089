"""The API server speaking Kubernetes protobuf: create and update bodies, responses,
lists, Status errors and watch streams when ``Accept`` prefers it; JSON where protobuf
cannot carry an object and the client accepts JSON; and malformed protobuf refused with
a 400 that says what is wrong, leaving the store untouched."""

from __future__ import annotations

import asyncio
import struct
from typing import Any

from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient

from kstate.api import protobuf, to_dict
from kstate.api.server.core import ApiCore
from kstate.api.server.http import Wanted, negotiate
from tests.api.server.conftest import ADMIN, http_client, running_core
from tests.api.server.helpers import pod, svc

PB = protobuf.MEDIA_TYPE
KUBECTL = {**ADMIN, "Accept": f"{PB},application/json", "Content-Type": PB}
NAMESPACES = "/api/v1/namespaces"
SERVICES = "/api/v1/namespaces/default/services"
PODS = "/api/v1/namespaces/default/pods"


def namespace(name: str) -> bytes:
    return protobuf.encode_object({"apiVersion": "v1", "kind": "Namespace",
                                   "metadata": {"name": name}})


async def decoded(response: ClientResponse) -> dict[str, Any]:
    assert response.content_type == PB, await response.text()
    return protobuf.decode_object(await response.read())


async def test_create_get_list_update_in_protobuf() -> None:
    async with running_core() as core, http_client(core) as client:
        created = await client.post(NAMESPACES, data=namespace("dev"), headers=KUBECTL)
        assert created.status == 201
        ns = await decoded(created)
        assert ns["kind"] == "Namespace" and ns["metadata"]["name"] == "dev"
        assert ns["metadata"]["uid"] and ns["status"] == {"phase": "Active"}

        got = await decoded(await client.get(f"{NAMESPACES}/dev", headers=KUBECTL))
        as_json = await (await client.get(f"{NAMESPACES}/dev", headers=ADMIN)).json()
        assert got == as_json  # one object, two encodings

        listed = await decoded(await client.get(NAMESPACES, headers=KUBECTL))
        assert listed["kind"] == "NamespaceList" and listed["metadata"]["resourceVersion"]
        assert "dev" in [item["metadata"]["name"] for item in listed["items"]]

        service = to_dict(svc("web", type_="NodePort"))
        made = await client.post(SERVICES, data=protobuf.encode_object(service),
                                 headers=KUBECTL)
        assert made.status == 201, await made.text()
        current = await decoded(made)
        assert current["spec"]["ports"][0]["nodePort"] >= 30000
        current["metadata"]["labels"] = {"tier": "web"}
        updated = await client.put(f"{SERVICES}/web", data=protobuf.encode_object(current),
                                   headers=KUBECTL)
        assert updated.status == 200, await updated.text()
        assert (await decoded(updated))["metadata"]["labels"] == {"tier": "web"}


async def test_errors_are_protobuf_status_objects() -> None:
    async with running_core() as core, http_client(core) as client:
        missing = await client.get(f"{NAMESPACES}/ghost", headers=KUBECTL)
        assert missing.status == 404
        status = await decoded(missing)
        assert (status["kind"], status["reason"], status["code"]) == ("Status", "NotFound", 404)
        await client.post(NAMESPACES, data=namespace("dev"), headers=KUBECTL)
        again = await client.post(NAMESPACES, data=namespace("dev"), headers=KUBECTL)
        assert again.status == 409 and (await decoded(again))["reason"] == "AlreadyExists"
        invalid = await client.post(NAMESPACES, data=namespace("Not_Valid"), headers=KUBECTL)
        status = await decoded(invalid)
        assert invalid.status == 422
        assert status["details"]["causes"][0]["field"] == "metadata.name"


async def test_a_protobuf_watch_is_length_prefixed_frames() -> None:
    async with running_core() as core, http_client(core) as client:
        response = await client.get(f"{NAMESPACES}?watch=1", headers=KUBECTL)
        assert response.content_type == PB
        assert response.headers["Content-Type"] == protobuf.WATCH_MEDIA_TYPE
        await client.post(NAMESPACES, data=namespace("dev"), headers=KUBECTL)
        names = set()
        while "dev" not in names:  # the initial namespaces first, then dev
            head = await asyncio.wait_for(response.content.readexactly(4), 5)
            (length,) = struct.unpack(">I", head)
            body = await asyncio.wait_for(response.content.readexactly(length), 5)
            ((kind, obj),) = protobuf.decode_watch_frames(head + body)
            assert kind == "ADDED" and obj["kind"] == "Namespace"
            names.add(obj["metadata"]["name"])
        response.close()


async def test_an_object_protobuf_cannot_carry_is_served_as_json() -> None:
    async with running_core() as core, http_client(core) as client:
        body = to_dict(pod("p"))
        body["spec"]["volumes"] = [{"name": "v", "emptyDir": {}}]  # no schema in kstate
        created = await client.post(PODS, json=body, headers=ADMIN)
        assert created.status == 201
        fallback = await client.get(f"{PODS}/p", headers=KUBECTL)
        assert fallback.content_type == "application/json"
        assert (await fallback.json())["spec"]["volumes"][0]["name"] == "v"
        listed = await client.get(PODS, headers=KUBECTL)
        assert listed.content_type == "application/json"
        only = await client.get(f"{PODS}/p", headers={**ADMIN, "Accept": PB})
        assert only.status == 406
        assert "spec.volumes" in (await decoded(only))["message"]
        # A watch cannot change its media type mid-stream: it ends with an ERROR event.
        watch = await client.get(f"{PODS}?watch=1", headers=KUBECTL)
        head = await asyncio.wait_for(watch.content.readexactly(4), 5)
        body = await asyncio.wait_for(watch.content.readexactly(struct.unpack(">I", head)[0]),
                                      5)
        ((kind, status),) = protobuf.decode_watch_frames(head + body)
        assert (kind, status["code"]) == ("ERROR", 406) and "spec.volumes" in status["message"]
        assert await asyncio.wait_for(watch.content.read(), 5) == b""  # and it ends there
        watch.close()


async def test_patches_stay_json_and_table_requests_stay_json() -> None:
    async with running_core() as core, http_client(core) as client:
        await client.post(NAMESPACES, data=namespace("dev"), headers=KUBECTL)
        patch = await client.patch(f"{NAMESPACES}/dev", data=namespace("dev"), headers=KUBECTL)
        assert patch.status == 415
        table = await client.get(NAMESPACES, headers={
            **ADMIN, "Accept": f"{PB};as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;"
                               "v=v1;g=meta.k8s.io,application/json"})
        assert (await table.json())["kind"] == "Table"


async def test_delete_options_in_protobuf() -> None:
    async with running_core() as core, http_client(core) as client:
        await client.post(PODS, json=to_dict(pod("p")), headers=ADMIN)
        options = protobuf.encode_object({"apiVersion": "v1", "kind": "DeleteOptions",
                                          "gracePeriodSeconds": 0})
        deleted = await client.delete(f"{PODS}/p", data=options, headers=KUBECTL)
        assert deleted.status == 200
        gone = await client.get(f"{PODS}/p", headers=ADMIN)
        assert gone.status == 404


# ------------------------------------------------------------------ bad input


def _len(number: int, payload: bytes) -> bytes:
    assert number < 16 and len(payload) < 128  # (one-byte tag and length)
    return bytes([number << 3 | 2, len(payload)]) + payload


def _envelope(kind: str, raw: bytes) -> bytes:
    type_meta = _len(1, b"v1") + _len(2, kind.encode())
    return protobuf.MAGIC + _len(1, type_meta) + _len(2, raw)


async def _refused(core: ApiCore, client: TestClient[Any, Any], url: str, body: bytes,
                   method: str = "POST") -> str:
    before = await core.store.revision()
    response = await client.request(method, url, data=body, headers=KUBECTL)
    status = await decoded(response)
    assert response.status == 400, status
    assert status["reason"] == "BadRequest" and status["code"] == 400
    assert await core.store.revision() == before, "a refused body wrote to the store"
    return str(status["message"])


async def test_malformed_protobuf_is_a_400_and_nothing_is_stored() -> None:
    async with running_core() as core, http_client(core) as client:
        good = namespace("dev")
        meta = _len(1, _len(1, b"dev"))
        cases = [
            (good[:-5], "malformed protobuf"),  # truncated
            (b"k8s\x01" + good[4:], "must start with the 4 bytes"),  # wrong magic
            (b"\x00" + good, "must start with"),
            (_envelope("Service", _len(1, _len(1, b"web"))), "takes a Namespace"),
            (_envelope("Namespace", meta + _len(15, b"?")), "unknown field number 15"),
            (_envelope("Namespace", _len(1, _len(1, b"dev") + _len(15, b"?"))),
             "unknown field number 15"),
            (_envelope("Namespace", b"\x0a\x7fdev"), "a length larger than the data"),
            (protobuf.MAGIC + b"\x12\x7f", "a length larger than the data"),
            (_envelope("ConfigMap", meta), "does not serve 'ConfigMap'"),
        ]
        for body, words in cases:
            message = await _refused(core, client, NAMESPACES, body)
            assert words in message, (body, message)
        await client.post(NAMESPACES, data=good, headers=KUBECTL)
        message = await _refused(core, client, f"{NAMESPACES}/dev",
                                 _envelope("Namespace", _len(1, _len(1, b"other"))), "PUT")
        assert "does not match the name on the URL" in message


def test_negotiation_prefers_protobuf_only_when_asked_first() -> None:
    assert negotiate(f"{PB},application/json") == Wanted("protobuf", json_ok=True)
    assert negotiate(PB) == Wanted("protobuf", json_ok=False)
    assert negotiate(f"{PB},application/json;q=0") == Wanted("protobuf", json_ok=False)
    assert negotiate(f"application/json,{PB}") == Wanted("json")
    assert negotiate(f"{PB};as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1;"
                     "g=meta.k8s.io").format == "table"
