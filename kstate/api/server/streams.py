"""``pods/<name>/exec|attach|portforward``: kubectl's streams, bridged to the node agent.

Where it sits: kubectl -> **this module** (in the API server) -> the node agent's
``/exec|attach/<ns>/<pod>/<container>`` or ``/portForward/<ns>/<pod>`` WebSocket
(``kstate.node.streams``, one simple channel protocol) -> the runtime.

What kubectl speaks, by version (checked with ``kubectl -v=8``), and what answers it:

* exec / attach / cp: kubectl 1.27-1.29 upgrade to ``SPDY/3.1`` and negotiate
  ``X-Stream-Protocol-Version: v4.channel.k8s.io`` (one SPDY stream per channel,
  named by its ``streamtype`` header); kubectl 1.30+ first try a WebSocket with
  ``v5.channel.k8s.io`` (each message's first byte is its channel; 255 closes one).
  v4 over a WebSocket is served too (it cannot close stdin: that is what v5 added).
* port-forward: ``SPDY/3.1`` with ``portforward.k8s.io`` (a ``data`` and an ``error``
  stream per connection, paired by ``requestID``); kubectl 1.31+ first try a WebSocket
  with ``SPDY/3.1+portforward.k8s.io``, which is the same SPDY session carried in binary
  messages.
* anything else (older channel protocols, a plain request) gets a 400 naming what is
  supported, before any upgrade, so kubectl prints it and falls back where it can.

Attach reaches the container's main process; its stdin (``-i``) only when the container
was created with ``stdin: true``: otherwise a clear 400 (Kubernetes would accept the
request and silently drop the input). Its TTY is the container's own (kubectl reads it
from the pod, as the kubelet does).

The exit code travels as Kubernetes sends it: the error channel carries a ``Status``
(``Success``, or ``Failure`` with reason ``NonZeroExitCode`` and an ``ExitCode`` cause),
which is what makes ``kubectl exec p -- sh -c 'exit 3'`` exit 3.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import aiohttp
from aiohttp import WSMsgType, web

from kstate import spdy
from kstate.api.objects import Node, Pod
from kstate.api.registry import REGISTRY
from kstate.api.server.logs import agent_base_url, choose_container
from kstate.errors import BadRequest, KstateError, NotFound, Unavailable

log = logging.getLogger("kstate.api.streams")

#: Channel numbers of Kubernetes' remote-command protocol (and of the agent's).
STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255
V5, V4 = "v5.channel.k8s.io", "v4.channel.k8s.io"
PORT_FORWARD = "portforward.k8s.io"
PORT_FORWARD_TUNNEL = "SPDY/3.1+portforward.k8s.io"
#: How long kubectl has to open every stream it announced (Kubernetes waits 30 s).
STREAM_SETUP_TIMEOUT = 30.0
#: The node agent's reason for refusing a stream (``kstate.node.streams.ERROR_HEADER``).
AGENT_ERROR_HEADER = "X-Kstate-Error"
_STREAM_TYPES = {"stdin": STDIN, "stdout": STDOUT, "stderr": STDERR, "error": ERROR,
                 "resize": RESIZE}


# ------------------------------------------------------------------ where the pod runs


async def agent_stream_url(core: Any, namespace: str, name: str, subresource: str,
                           query: Mapping[str, str]) -> str:
    """The agent's URL for this request, or the error a user can act on."""
    pod = await core.get(REGISTRY.for_kind("Pod"), namespace, name)
    assert isinstance(pod, Pod)
    verb = {"exec": "exec into", "attach": "attach to"}.get(subresource, "port-forward to")
    phase = pod.status.phase
    if phase in ("Succeeded", "Failed"):
        noun = "a container in " if subresource != "portforward" else ""
        raise BadRequest(f"cannot {verb} {noun}a completed pod; current phase is {phase}")
    if not pod.spec.node_name:
        raise BadRequest(f"pod {name} does not have a host assigned")
    try:
        node = await core.get(REGISTRY.for_kind("Node"), "", pod.spec.node_name)
    except NotFound:
        raise NotFound(f'nodes "{pod.spec.node_name}" not found',
                       key=pod.spec.node_name) from None
    assert isinstance(node, Node)
    quote = urllib.parse.quote
    base = f"{agent_base_url(node)}"
    if subresource == "portforward":
        return f"{base}/portForward/{quote(namespace, safe='')}/{quote(name, safe='')}"
    container = choose_container(pod, query.get("container", ""))
    if subresource == "attach" and _flag(query, "stdin"):
        _require_stdin(pod, container)
    return (f"{base}/{subresource}/{quote(namespace, safe='')}/{quote(name, safe='')}/"
            f"{quote(container, safe='')}")


def _require_stdin(pod: Pod, container: str) -> None:
    """``attach -i`` needs a container created with ``stdin: true``. Kubernetes accepts
    the request and drops the input (the engines do), so ``echo x | kubectl attach -i``
    waits for the container to end; here the user is told why and what to change."""
    spec = next(c for c in pod.spec.containers if c.name == container)
    if not spec.stdin:
        raise BadRequest(
            f"cannot attach to the stdin of container {container} in pod "
            f"{pod.metadata.name}: it was created without stdin; set stdin: true in the "
            "container's spec (kubectl run -i does), or attach without -i")


def _flag(query: Mapping[str, str], name: str) -> bool:
    return query.get(name, "false") in ("1", "true", "")


async def connect_agent(session: aiohttp.ClientSession, url: str,
                        params: list[tuple[str, str]]) -> aiohttp.ClientWebSocketResponse:
    """Open the agent's WebSocket; its refusal becomes the user's error."""
    try:
        return await session.ws_connect(url, params=params, max_msg_size=0, heartbeat=None)
    except aiohttp.WSServerHandshakeError as err:
        reason = err.headers.get(AGENT_ERROR_HEADER) if err.headers else None
        message = urllib.parse.unquote(reason) if reason else err.message
        raise (NotFound(message) if err.status == 404 else BadRequest(message)
               if err.status == 400 else Unavailable(
                   f"the node agent answered {err.status}: {message}")) from None
    except aiohttp.ClientError as err:
        raise Unavailable(f"cannot reach the node agent at {url}: {err}") from None


# ------------------------------------------------------------------ the entry point


async def serve(core: Any, request: web.Request, namespace: str, name: str,
                subresource: str) -> web.StreamResponse:
    """Answer one exec / attach / portforward request (errors are raised before any
    upgrade, so the caller renders them as a Status)."""
    query = request.query
    upgrade = request.headers.get("Upgrade", "").lower()
    offered = _offered(request)
    if upgrade not in ("websocket", "spdy/3.1"):
        raise BadRequest("Upgrade request required: use kubectl (SPDY/3.1, or a WebSocket "
                         f"with {V5} / {V4} / {PORT_FORWARD_TUNNEL})")
    url = await agent_stream_url(core, namespace, name, subresource, query)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=5)
    async with aiohttp.ClientSession(timeout=timeout) as client:
        if subresource == "portforward":
            return await _port_forward(request, client, url, upgrade, offered)
        return await _exec(request, client, url, upgrade, offered, subresource)


def _offered(request: web.Request) -> list[str]:
    """The protocols the client offers, in its order of preference."""
    if request.headers.get("Upgrade", "").lower() == "websocket":
        raw = request.headers.getall("Sec-WebSocket-Protocol", [])
    else:
        raw = request.headers.getall("X-Stream-Protocol-Version", [])
    return [p.strip() for value in raw for p in value.split(",") if p.strip()]


def _choose(offered: list[str], supported: tuple[str, ...]) -> str:
    for protocol in offered:
        if protocol in supported:
            return protocol
    raise BadRequest(f"none of the stream protocols offered ({', '.join(offered) or 'none'}) "
                     f"is supported; this server speaks {', '.join(supported)}: use kubectl "
                     "1.27 or newer")


# ------------------------------------------------------------------ exec and attach


async def _exec(request: web.Request, client: aiohttp.ClientSession, url: str, upgrade: str,
                offered: list[str], subresource: str) -> web.StreamResponse:
    query = request.query
    tty, stdin = _flag(query, "tty"), _flag(query, "stdin")
    stdout, stderr = _flag(query, "stdout"), _flag(query, "stderr") and not tty
    command = query.getall("command", [])
    if subresource == "exec" and not command:
        raise BadRequest("you must specify at least one command for the container")
    protocol = _choose(offered, (V5, V4))
    params = [("command", c) for c in command]
    params += [("stdin", "1" if stdin else "0"), ("tty", "1" if tty else "0")]
    agent = await connect_agent(client, url, params)
    try:
        if upgrade == "websocket":
            ws = web.WebSocketResponse(protocols=(protocol,), max_msg_size=0,
                                       autoping=True)
            await ws.prepare(request)
            await _bridge_websocket(ws, agent, command)
            return ws
        response, session = await _upgrade_spdy(request, protocol)
        wanted = {ERROR} | ({STDIN} if stdin else set()) | ({STDOUT} if stdout else set()) \
            | ({STDERR} if stderr else set()) | ({RESIZE} if tty else set())
        await _bridge_spdy(session, wanted, agent, command)
        return response
    finally:
        await agent.close()


def exit_status(code: int | None, command: list[str]) -> dict[str, Any]:
    """The v4/v5 error channel's Status for an exit code, as the kubelet writes it."""
    if not code:
        return {"metadata": {}, "status": "Success"}
    return {"metadata": {}, "status": "Failure",
            "message": f"command terminated with non-zero exit code: error executing "
                       f"command [{' '.join(command)}], exit code {code}",
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}


def _error_status(message: str) -> dict[str, Any]:
    return {"metadata": {}, "status": "Failure", "message": message,
            "reason": "InternalError", "code": 500}


class _AgentOutput:
    """The agent's messages, as (channel, bytes); the exit report becomes a Status."""

    def __init__(self, agent: aiohttp.ClientWebSocketResponse, command: list[str]) -> None:
        self.agent = agent
        self.command = command

    async def __aiter__(self) -> Any:
        ended = False
        async for msg in self.agent:
            if msg.type is not WSMsgType.BINARY or not msg.data:
                continue
            channel, data = msg.data[0], bytes(msg.data[1:])
            if channel == ERROR:
                report = json.loads(data)
                status = (_error_status(report["error"]) if "error" in report
                          else exit_status(report.get("exitCode"), self.command))
                yield ERROR, json.dumps(status).encode()
                ended = True
                break
            yield channel, data
        if not ended:  # the agent went away without a report
            yield ERROR, json.dumps(_error_status(
                "the node agent closed the stream before the command finished")).encode()


async def _bridge_websocket(ws: web.WebSocketResponse, agent: aiohttp.ClientWebSocketResponse,
                            command: list[str]) -> None:
    async def output() -> None:
        async for channel, data in _AgentOutput(agent, command):
            await ws.send_bytes(bytes([channel]) + data)

    async def incoming() -> None:
        async for msg in ws:
            if msg.type is WSMsgType.BINARY and msg.data:
                channel = msg.data[0]
                if channel in (STDIN, RESIZE, CLOSE):  # the agent's channels are the same
                    await agent.send_bytes(bytes(msg.data))

    await _until_output_ends(output(), incoming())
    await ws.close()


async def _until_output_ends(output: Awaitable[None], incoming: Awaitable[None]) -> None:
    """Run both directions; the session is over when the output ends (the command
    exited) or the client goes away (then the agent's side is closed, killing it)."""
    out, inc = asyncio.ensure_future(output), asyncio.ensure_future(incoming)
    try:
        await asyncio.wait([out, inc], return_when=asyncio.FIRST_COMPLETED)
    finally:
        inc.cancel()
        if not out.done():
            out.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError, KstateError,
                                 aiohttp.ClientError):
            await asyncio.gather(out, inc)


async def _bridge_spdy(session: spdy.Session, wanted: set[int],
                       agent: aiohttp.ClientWebSocketResponse, command: list[str]) -> None:
    serving = asyncio.ensure_future(session.serve())
    streams: dict[int, spdy.Stream] = {}
    try:
        async with asyncio.timeout(STREAM_SETUP_TIMEOUT):
            while not wanted <= streams.keys():
                stream = await session.accept()
                if stream is None:
                    return  # the client went away while opening its streams
                kind = _STREAM_TYPES.get(stream.headers.get("streamtype", ""))
                if kind is None:
                    await session.reset(stream, spdy.RST_PROTOCOL_ERROR)
                else:
                    streams[kind] = stream
    except TimeoutError:
        log.info("exec: the client did not open its streams in %s s", STREAM_SETUP_TIMEOUT)
        await session.goaway()
        serving.cancel()
        return

    async def output() -> None:
        async for channel, data in _AgentOutput(agent, command):
            target = streams.get(channel) or streams.get(STDOUT)
            if target is not None:
                await target.write(data)
        for stream in streams.values():
            await stream.close()

    async def stdin_pump() -> None:
        stream = streams[STDIN]
        while data := await stream.read():
            await agent.send_bytes(bytes([STDIN]) + data)
        await agent.send_bytes(bytes([CLOSE, STDIN]))

    async def resize_pump() -> None:
        stream, pending, decoder = streams[RESIZE], "", json.JSONDecoder()
        while data := await stream.read():
            pending += data.decode(errors="replace")
            while pending.strip():
                try:
                    size, end = decoder.raw_decode(pending.lstrip())
                except ValueError:
                    break
                pending = pending.lstrip()[end:]
                await agent.send_bytes(bytes([RESIZE]) + json.dumps(size).encode())

    async def incoming() -> None:
        pumps = [asyncio.ensure_future(p()) for kind, p in
                 ((STDIN, stdin_pump), (RESIZE, resize_pump)) if kind in streams]
        try:
            await asyncio.gather(*pumps)
            await serving  # input done: the session lasts while the client is there
        finally:
            for pump in pumps:
                pump.cancel()

    try:
        await _until_output_ends(output(), incoming())
    finally:
        await session.goaway()
        serving.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await serving


# ------------------------------------------------------------------ SPDY upgrade


class _RawReader:
    """aiohttp's protocol hands the upgraded connection's bytes here (the role its
    WebSocket reader plays): ``feed_data`` / ``feed_eof``, read with ``read_exactly``."""

    def __init__(self) -> None:
        self.stream = asyncio.StreamReader(limit=spdy.MAX_FRAME + 16)

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        self.stream.feed_data(data)
        return False, b""

    def feed_eof(self) -> None:
        self.stream.feed_eof()


async def _upgrade_spdy(request: web.Request, protocol: str
                        ) -> tuple[web.StreamResponse, spdy.Session]:
    """Answer 101 and take the connection over as a SPDY session."""
    transport = request.transport
    if transport is None:
        raise ConnectionResetError("the client went away")
    handler: Any = request.protocol
    # aiohttp upgrades only to WebSocket on its own: from here on it must hand every byte
    # to us rather than parse it as HTTP (kubectl sends nothing before the 101).
    handler._upgraded = True
    response = web.StreamResponse(status=101, headers={
        "Connection": "Upgrade", "Upgrade": "SPDY/3.1", "X-Stream-Protocol-Version": protocol})
    response.force_close()
    await response.prepare(request)
    reader = _RawReader()
    handler.set_parser(reader)

    async def write(frame: bytes) -> None:
        if transport.is_closing():
            raise ConnectionResetError("the client went away")
        transport.write(frame)
        await handler._drain_helper()

    return response, spdy.Session(reader.stream.readexactly, write)


def _tunnel(ws: web.WebSocketResponse) -> tuple[Callable[[int], Awaitable[bytes]],
                                                Callable[[bytes], Awaitable[None]]]:
    """SPDY carried in a WebSocket's binary messages (kubectl 1.31+ port-forward)."""
    buffer = bytearray()

    async def read_exactly(n: int) -> bytes:
        while len(buffer) < n:
            msg = await ws.receive()
            if msg.type is not WSMsgType.BINARY:
                raise asyncio.IncompleteReadError(bytes(buffer), n)
            buffer.extend(msg.data)
        out = bytes(buffer[:n])
        del buffer[:n]
        return out

    async def write(frame: bytes) -> None:
        await ws.send_bytes(frame)

    return read_exactly, write


# ------------------------------------------------------------------ port-forward


async def _port_forward(request: web.Request, client: aiohttp.ClientSession, url: str,
                        upgrade: str, offered: list[str]) -> web.StreamResponse:
    ports = [p for value in request.query.getall("ports", []) for p in value.split(",") if p]
    for port in ports:
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise BadRequest(f"invalid port {port!r}: a port is a number from 1 to 65535")
    if upgrade == "websocket":
        _choose(offered, (PORT_FORWARD_TUNNEL,))
        ws = web.WebSocketResponse(protocols=(PORT_FORWARD_TUNNEL,), max_msg_size=0)
        await ws.prepare(request)
        read_exactly, write = _tunnel(ws)
        await _serve_port_forward(spdy.Session(read_exactly, write), client, url)
        await ws.close()
        return ws
    _choose(offered, (PORT_FORWARD,))
    response, session = await _upgrade_spdy(request, PORT_FORWARD)
    await _serve_port_forward(session, client, url)
    return response


async def _serve_port_forward(session: spdy.Session, client: aiohttp.ClientSession,
                              url: str) -> None:
    """Pair each connection's ``error`` and ``data`` streams, and carry its bytes."""
    serving = asyncio.ensure_future(session.serve())
    pending: dict[str, spdy.Stream] = {}
    forwards: set[asyncio.Task[None]] = set()
    try:
        while (stream := await session.accept()) is not None:
            request_id = stream.headers.get("requestid", "")
            kind = stream.headers.get("streamtype", "")
            if kind not in ("error", "data") or not request_id:
                await session.reset(stream, spdy.RST_PROTOCOL_ERROR)
                continue
            other = pending.pop(request_id, None)
            if other is None:
                pending[request_id] = stream
                continue
            error, data = (stream, other) if kind == "error" else (other, stream)
            task = asyncio.ensure_future(_forward(client, url, error, data))
            forwards.add(task)
            task.add_done_callback(forwards.discard)
    finally:
        for task in list(forwards):
            task.cancel()
        await asyncio.gather(*forwards, return_exceptions=True)
        await session.goaway()
        serving.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await serving


async def _forward(client: aiohttp.ClientSession, url: str, error: spdy.Stream,
                   data: spdy.Stream) -> None:
    port = data.headers.get("port", "")
    try:
        if not port.isdigit():
            raise BadRequest(f"invalid port {port!r} in the stream's headers")
        agent = await connect_agent(client, url, [("port", port)])
    except KstateError as err:
        await error.write(f"error forwarding port {port} to pod: {err}".encode())
        await error.close()
        await data.close()
        return

    async def upstream() -> None:
        while chunk := await data.read():
            await agent.send_bytes(chunk)
        await agent.send_bytes(b"")  # the client is done sending: the pod reads EOF

    async def downstream() -> None:
        async for msg in agent:
            if msg.type is WSMsgType.BINARY:
                await data.write(bytes(msg.data))
            elif msg.type is WSMsgType.TEXT:
                await error.write(msg.data.encode())

    # The connection lasts until the pod's side ends (its replies may follow the
    # client's EOF); a client that goes away ends the whole session, cancelling this.
    sending = asyncio.ensure_future(upstream())
    try:
        await downstream()
    except (ConnectionError, aiohttp.ClientError) as err:
        log.debug("port-forward to %s ended: %s", url, err)
    finally:
        sending.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError,
                                 aiohttp.ClientError):
            await sending
        await agent.close()
        await data.close()
        await error.close()


__all__ = ["PORT_FORWARD", "PORT_FORWARD_TUNNEL", "V4", "V5", "agent_stream_url",
           "exit_status", "serve"]
