"""exec / attach / port-forward end to end without Docker: a client speaking kubectl's
protocols (WebSocket v5 and v4, SPDY/3.1 with v4 and portforward.k8s.io) -> the API
server (``kstate.api.server.streams``) -> the node agent's stream endpoints
(``kstate.node.streams``) -> the fake runtime, whose process table shows what runs."""

from __future__ import annotations

import asyncio
import contextlib
import json
import struct
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient, TestServer

from kstate import spdy
from kstate.api.server.auth import Authenticator, User
from kstate.api.server.http import HttpApi
from kstate.runtime.base import EXIT_KILLED, log_timestamp
from kstate.runtime.fake import Program
from tests.node.test_agent import Env, run

AUTH = {"Authorization": "Bearer t"}
EXEC = "/api/v1/namespaces/default/pods/web/exec"
STDIN, STDOUT, STDERR, ERROR, CLOSE = 0, 1, 2, 3, 255


@contextlib.asynccontextmanager
async def cluster() -> AsyncIterator[tuple[Env, TestClient[Any, Any]]]:
    """A running pod ``web`` (container c0) on an agent with its stream server, and an
    HTTP client of the API server."""
    async with Env() as env:
        await env.agent(server_port=0)
        await env.pod()
        await env.reach("Ready")
        api = HttpApi(env.core, Authenticator.from_tokens({
            "t": User("admin", "1", ("admin",)), "viewer": User("viewer", "2", ("view",))}))
        http: TestClient[Any, Any] = TestClient(TestServer(api.app()))
        await http.start_server()
        try:
            yield env, http
        finally:
            await http.close()


def processes(env: Env) -> list[tuple[str, ...]]:
    (box,) = [b for b in env.runtime._boxes.values() if b.role == "container"]
    return env.runtime.processes(box.id)


async def ws_exec(http: TestClient[Any, Any], command: list[str], *, stdin: bytes | None,
                  protocol: str = "v5.channel.k8s.io", tty: bool = False
                  ) -> dict[int, bytes]:
    """One exec over a WebSocket, as kubectl 1.30+ runs it: output by channel."""
    params = [("command", c) for c in command] + [("stdout", "1"), ("stderr", "1")]
    params += [("stdin", "1")] if stdin is not None else []
    params += [("tty", "1")] if tty else []
    out: dict[int, bytes] = {}
    async with http.ws_connect(EXEC, params=params, headers=AUTH,
                               protocols=(protocol,)) as ws:
        assert ws.protocol == protocol
        if stdin is not None:
            await ws.send_bytes(bytes([STDIN]) + stdin)
            await ws.send_bytes(bytes([CLOSE, STDIN]))
        async for msg in ws:
            if msg.type is aiohttp.WSMsgType.BINARY:
                out[msg.data[0]] = out.get(msg.data[0], b"") + msg.data[1:]
    return out


def test_exec_over_websocket_v5_carries_stdin_output_and_exit_codes() -> None:
    async def go() -> None:
        async with cluster() as (env, http):
            hi = await ws_exec(http, ["echo", "hi"], stdin=None)
            assert hi[STDOUT] == b"hi\n"
            assert json.loads(hi[ERROR])["status"] == "Success"
            piped = await ws_exec(http, ["cat"], stdin=b"piped\n")
            assert piped[STDOUT] == b"piped\n"
            failed = json.loads((await ws_exec(http, ["sh", "-c", "exit 3"],
                                               stdin=None))[ERROR])
            assert (failed["status"], failed["reason"]) == ("Failure", "NonZeroExitCode")
            assert failed["details"]["causes"] == [{"reason": "ExitCode", "message": "3"}]
            v4 = await ws_exec(http, ["echo", "v4"], stdin=None, protocol="v4.channel.k8s.io")
            assert v4[STDOUT] == b"v4\n"
            assert processes(env) == []
    run(go())


def test_exec_refusals_are_statuses_before_any_upgrade() -> None:
    async def go() -> None:
        async with cluster() as (env, http):
            async def refused(path: str, **params: str) -> tuple[int, str]:
                resp = await http.post(path, params=params, headers={
                    **AUTH, "Connection": "Upgrade", "Upgrade": "SPDY/3.1",
                    "X-Stream-Protocol-Version": "v4.channel.k8s.io"})
                body = await resp.json()
                return resp.status, body["message"]

            assert await refused(EXEC, command="true", container="nope") == (
                400, "container nope is not valid for pod web")
            assert (await refused("/api/v1/namespaces/default/pods/gone/exec",
                                  command="true"))[0] == 404
            assert await refused(EXEC, container="c0") == (
                400, "you must specify at least one command for the container")
            plain = await http.post(EXEC, params={"command": "true"}, headers=AUTH)
            assert plain.status == 400
            assert "Upgrade request required" in (await plain.json())["message"]
            old = await http.post(EXEC, params={"command": "true"}, headers={
                **AUTH, "Connection": "Upgrade", "Upgrade": "SPDY/3.1",
                "X-Stream-Protocol-Version": "v2.channel.k8s.io"})
            assert old.status == 400 and "kubectl 1.27 or newer" in (await old.json())[
                "message"]
            # Reading is not running: the view role may not exec, even with a GET.
            denied = await http.get(EXEC, params={"command": "true"},
                                    headers={"Authorization": "Bearer viewer"})
            assert denied.status == 403
            assert 'cannot create resource "pods/exec"' in (await denied.json())["message"]
            # A pod whose container never started: the agent refuses, and says why.
            await env.pod("pending", containers=[{"name": "c0", "image": "kstate/missing:1",
                                                  "imagePullPolicy": "Never"}])
            await env.settle()
            status, message = await refused("/api/v1/namespaces/default/pods/pending/exec",
                                            command="true")
            assert (status, message) == (400, 'container "c0" in pod "pending" is not '
                                              "running (it is waiting to start)")
    run(go())


async def sleeping(env: Env, http: TestClient[Any, Any]) -> aiohttp.ClientWebSocketResponse:
    """``kubectl exec web -- sleep 100``, running."""
    ws = await http.ws_connect(EXEC, params=[("command", "sleep"), ("command", "100"),
                                             ("stdout", "1")],
                               headers=AUTH, protocols=("v5.channel.k8s.io",))
    await env.until(lambda: processes(env) == [("sleep", "100")], what="the exec running")
    return ws


def test_a_client_gone_mid_command_leaves_no_process() -> None:
    async def go() -> None:
        async with cluster() as (env, http):
            ws = await sleeping(env, http)
            await ws.close()
            await env.until(lambda: processes(env) == [], what="the exec killed")
    run(go())


# ------------------------------------------------------------------ SPDY


class SpdyClient:
    """kubectl's side of a SPDY/3.1 upgrade, as little as the tests need."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.codec = spdy.HeaderCodec()
        self.next_id = 1
        self.data: dict[int, bytes] = {}
        self.finished: set[int] = set()

    @classmethod
    async def connect(cls, http: TestClient[Any, Any], path: str, protocol: str,
                      query: str) -> SpdyClient:
        reader, writer = await asyncio.open_connection(http.host, http.port)
        writer.write((f"POST {path}?{query} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t"
                      "\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n"
                      f"X-Stream-Protocol-Version: {protocol}\r\nContent-Length: 0\r\n\r\n"
                      ).encode())
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head
        assert f"X-Stream-Protocol-Version: {protocol}".encode() in head
        return cls(reader, writer)

    async def open(self, headers: dict[str, str], fin: bool = False) -> int:
        stream_id, self.next_id = self.next_id, self.next_id + 2
        payload = struct.pack(">IIH", stream_id, 0, 0) + self.codec.encode(headers)
        self.writer.write(spdy.control_frame(spdy.SYN_STREAM, 1 if fin else 0, payload))
        await self.writer.drain()
        return stream_id

    async def send(self, stream_id: int, data: bytes, fin: bool = False) -> None:
        self.writer.write(spdy.data_frame(stream_id, data, fin=fin))
        await self.writer.drain()

    async def until_finished(self, *stream_ids: int) -> None:
        """Read frames until every stream named was half-closed by the server."""
        while not set(stream_ids) <= self.finished:
            await self._frame()

    async def until_data(self, stream_id: int, wanted: bytes) -> None:
        """Read frames until ``wanted`` arrived on the stream."""
        while wanted not in self.data.get(stream_id, b""):
            await self._frame()

    async def _frame(self) -> None:
        first, second = struct.unpack(">II", await self.reader.readexactly(8))
        payload = await self.reader.readexactly(second & 0xFFFFFF)
        if not first & 0x80000000:
            self.data[first] = self.data.get(first, b"") + payload
            if second >> 24 & spdy.FLAG_FIN:
                self.finished.add(first)


def test_exec_over_spdy_v4() -> None:
    async def go() -> None:
        async with cluster() as (env, http):
            client = await SpdyClient.connect(
                http, EXEC, "v4.channel.k8s.io",
                "command=cat&stdin=1&stdout=1&stderr=1&container=c0")
            error = await client.open({"streamtype": "error"})
            stdin = await client.open({"streamtype": "stdin"})
            stdout = await client.open({"streamtype": "stdout"})
            stderr = await client.open({"streamtype": "stderr"})
            await client.send(stdin, b"over spdy\n", fin=True)
            await client.until_finished(error, stdout, stderr)
            assert client.data[stdout] == b"over spdy\n"
            assert json.loads(client.data[error])["status"] == "Success"
            client.writer.close()

            failing = await SpdyClient.connect(http, EXEC, "v4.channel.k8s.io",
                                               "command=sh&command=-c&command=exit+5&stdout=1")
            error = await failing.open({"streamtype": "error"})
            await failing.open({"streamtype": "stdout"})
            await failing.until_finished(error)
            status = json.loads(failing.data[error])
            assert status["details"]["causes"] == [{"reason": "ExitCode", "message": "5"}]
            failing.writer.close()
            assert processes(env) == []
    run(go())


def test_port_forward_over_spdy_and_over_a_websocket_tunnel() -> None:
    async def go() -> None:
        async with cluster() as (_env, http):
            path = "/api/v1/namespaces/default/pods/web/portforward"
            client = await SpdyClient.connect(http, path, "portforward.k8s.io", "ports=8080")
            error = await client.open({"streamtype": "error", "port": "8080",
                                       "requestid": "0"})
            data = await client.open({"streamtype": "data", "port": "8080", "requestid": "0"})
            await client.send(data, b"ping", fin=True)  # the fake's pod port echoes
            await client.until_finished(data, error)
            assert client.data[data] == b"ping"
            assert client.data.get(error, b"") == b""
            client.writer.close()

            # kubectl 1.31+: the same SPDY session inside a WebSocket's binary messages.
            async with http.ws_connect(path, params={"ports": "8080"}, headers=AUTH,
                                       protocols=("SPDY/3.1+portforward.k8s.io",)) as ws:
                codec, frames = spdy.HeaderCodec(), bytearray()
                for stream_id, kind in ((1, "error"), (3, "data")):
                    payload = struct.pack(">IIH", stream_id, 0, 0) + codec.encode(
                        {"streamtype": kind, "port": "8080", "requestid": "1"})
                    await ws.send_bytes(spdy.control_frame(spdy.SYN_STREAM, 0, payload))
                await ws.send_bytes(spdy.data_frame(3, b"tunnelled", fin=True))
                while b"tunnelled" not in frames:
                    frames += (await ws.receive_bytes())
    run(go())


def test_port_forward_refuses_a_bad_port() -> None:
    async def go() -> None:
        async with cluster() as (_env, http):
            resp = await http.post("/api/v1/namespaces/default/pods/web/portforward",
                                   params={"ports": "99999"}, headers={
                                       **AUTH, "Connection": "Upgrade", "Upgrade": "SPDY/3.1",
                                       "X-Stream-Protocol-Version": "portforward.k8s.io"})
            assert resp.status == 400
            assert "1 to 65535" in (await resp.json())["message"]
    run(go())


def test_a_killed_container_ends_its_exec_sessions() -> None:
    async def go() -> None:
        async with cluster() as (env, http):
            ws = await sleeping(env, http)
            (box,) = [b for b in env.runtime._boxes.values() if b.role == "container"]
            env.runtime.crash(box.id, 1)
            error = b""
            async for msg in ws:
                if msg.type is aiohttp.WSMsgType.BINARY and msg.data[0] == ERROR:
                    error = msg.data[1:]
            assert json.loads(error)["details"]["causes"][0]["message"] == str(EXIT_KILLED)
    run(go())


def test_a_terminal_resize_reaches_the_process() -> None:
    async def go() -> None:
        async with cluster() as (env, http):
            params = [("command", "sleep"), ("command", "100"), ("stdin", "1"), ("tty", "1"),
                      ("stdout", "1")]
            async with http.ws_connect(EXEC, params=params, headers=AUTH,
                                       protocols=("v5.channel.k8s.io",)) as ws:
                await ws.send_bytes(bytes([4]) + b'{"Width":80,"Height":24}')
                (box,) = [b for b in env.runtime._boxes.values() if b.role == "container"]
                await env.until(lambda: [p.size for p in box.processes] == [(80, 24)],
                                what="the resize applied")
    run(go())


def test_logs_since_and_timestamps_on_the_runtimes_clock() -> None:
    async def go() -> None:
        async with cluster() as (env, http):
            (box,) = [b for b in env.runtime._boxes.values() if b.role == "container"]
            env.runtime.write_log(box.id, b"early\n")
            await env.elapse(100)
            env.runtime.write_log(box.id, b"late\n")

            async def log(**query: str) -> str:
                resp = await http.get("/api/v1/namespaces/default/pods/web/log",
                                      params=query, headers=AUTH)
                assert resp.status == 200, await resp.text()
                return str(await resp.text())

            assert await log(sinceSeconds="50") == "late\n"
            assert await log(tailLines="2") == "early\nlate\n"
            stamp = log_timestamp(env.clock.now()).decode()
            assert await log(sinceSeconds="50", timestamps="true") == f"{stamp}late\n"
            since = log_timestamp(env.clock.now() - 1).decode().split(".")[0] + "Z"
            assert await log(sinceTime=since) == "late\n"
    run(go())


# ------------------------------------------------------------------ attach with stdin


async def cat_pod(env: Env, name: str, **container: Any) -> str:
    """A running pod whose process is ``cat`` (the fake's program echoes its stdin), as
    ``kubectl run NAME -i --restart=Never -- cat`` makes it."""
    env.runtime.set_program(f"{name}-c", Program(on_term=None, echoes_stdin=True))
    await env.pod(name, restartPolicy="Never",
                  containers=[{"name": f"{name}-c", "image": "kstate/httpd:1",
                               "command": ["cat"], **container}])
    await env.reach("Ready", name)
    return f"/api/v1/namespaces/default/pods/{name}/attach"


def test_attach_carries_stdin_over_websocket_and_spdy() -> None:
    async def go() -> None:
        async with cluster() as (env, http):
            path = await cat_pod(env, "echo", stdin=True)
            params = [("stdin", "1"), ("stdout", "1"), ("stderr", "1")]
            async with http.ws_connect(path, params=params, headers=AUTH,
                                       protocols=("v5.channel.k8s.io",)) as ws:
                await ws.send_bytes(bytes([STDIN]) + b"over v5\n")
                msg = await ws.receive_bytes()
                assert msg == bytes([STDOUT]) + b"over v5\n"
                # stdin's EOF ends this attach (the container's stdin stays open): Success.
                await ws.send_bytes(bytes([CLOSE, STDIN]))
                out = {m.data[0]: m.data[1:] async for m in ws
                       if m.type is aiohttp.WSMsgType.BINARY}
                assert json.loads(out[ERROR])["status"] == "Success"
            client = await SpdyClient.connect(http, path, "v4.channel.k8s.io",
                                              "stdin=1&stdout=1&stderr=1")
            error = await client.open({"streamtype": "error"})
            stdin = await client.open({"streamtype": "stdin"})
            stdout = await client.open({"streamtype": "stdout"})
            stderr = await client.open({"streamtype": "stderr"})
            await client.send(stdin, b"over spdy\n")
            await client.until_data(stdout, b"over spdy\n")
            await client.send(stdin, b"", fin=True)  # EOF: this attach ends
            await client.until_finished(error, stdout, stderr)
            assert client.data[stdout] == b"over spdy\n"
            assert json.loads(client.data[error])["status"] == "Success"
            client.writer.close()
            assert (await env.state("echo")) == "Ready"

            once = await cat_pod(env, "once", stdin=True, stdinOnce=True)
            async with http.ws_connect(once, params=params, headers=AUTH,
                                       protocols=("v5.channel.k8s.io",)) as ws:
                await ws.send_bytes(bytes([STDIN]) + b"last\n")
                await ws.send_bytes(bytes([CLOSE, STDIN]))
                out = {m.data[0]: m.data[1:] async for m in ws
                       if m.type is aiohttp.WSMsgType.BINARY}
                assert out[STDOUT] == b"last\n"
            # stdinOnce: the first attach's EOF closed cat's stdin, so cat is done.
            await env.until(lambda: _terminated(env, "once"), what="cat exited")
    run(go())


async def _terminated(env: Env, name: str) -> bool:
    pod = await env.get(name)
    assert pod is not None
    states = [s.state for s in pod.status.container_statuses]
    return bool(states) and states[0].terminated is not None


def test_attach_with_stdin_to_a_container_without_stdin_is_refused() -> None:
    async def go() -> None:
        async with cluster() as (_env, http):
            path = "/api/v1/namespaces/default/pods/web/attach"
            headers = {**AUTH, "Connection": "Upgrade", "Upgrade": "SPDY/3.1",
                       "X-Stream-Protocol-Version": "v4.channel.k8s.io"}
            resp = await http.post(path, params={"stdin": "true", "stdout": "true"},
                                   headers=headers)
            assert resp.status == 400
            assert (await resp.json())["message"] == (
                "cannot attach to the stdin of container c0 in pod web: it was created "
                "without stdin; set stdin: true in the container's spec (kubectl run -i "
                "does), or attach without -i")
            # Without -i the same attach is fine: it shows the output.
            async with http.ws_connect(path, params={"stdout": "1"}, headers=AUTH,
                                       protocols=("v5.channel.k8s.io",)) as ws:
                assert ws.protocol == "v5.channel.k8s.io"
    run(go())
