"""The node agent's streaming endpoints: exec, attach and port-forward.

Where it sits: kubectl -> API server (``pods/<name>/exec|attach|portforward``, which
speaks kubectl's SPDY or WebSocket protocols, see ``kstate.api.server.streams``) ->
**these endpoints** (one WebSocket each) -> the runtime's
:class:`~kstate.runtime.base.ExecSession` or ``port_forward`` connection.

The API server is the only client, so the agent speaks one simple protocol, modelled on
Kubernetes' ``v5.channel.k8s.io``: binary messages whose first byte is a channel.

==========  =====================================================================
channel     payload
==========  =====================================================================
0  stdin    bytes for the process (API server -> agent)
1  stdout   bytes the process wrote (agent -> API server)
2  stderr   idem; a TTY merges it into stdout
3  exit     JSON ``{"exitCode": N}`` (exec) or ``{"error": "..."}``, then the close
4  resize   JSON ``{"Width": w, "Height": h}``
255 close   one byte, the channel closed: ``[255, 0]`` is stdin's EOF
==========  =====================================================================

Port-forward is plain bytes both ways (binary messages); a text message is an error.

Anything wrong before the process starts (no such pod, container or port; a container
that is not running) is an HTTP error *before* the upgrade, with a message for the user;
the API server passes it on as a Status. When the API server's side goes away, the
session is closed, which kills an exec'd process still running: nothing is left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import urllib.parse
from typing import Any, Protocol

import attrs
from aiohttp import WSMsgType, web

from kstate.errors import (
    BadRequest,
    KstateError,
    NotFound,
    RuntimeAdapterError,
    RuntimeUnreachable,
)
from kstate.runtime.base import (
    NODE_NAME,
    POD_UID,
    ContainerRuntime,
    ContainerState,
    ContainerStatus,
    ExecSession,
    SandboxState,
)

log = logging.getLogger("kstate.node.streams")

STDIN, STDOUT, STDERR, EXIT, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255
#: Why a stream was refused (URL-quoted), besides the body.
ERROR_HEADER = "X-Kstate-Error"


@attrs.frozen
class PodLocation:
    """Where a pod this node runs lives in its runtime."""

    runtime: ContainerRuntime
    node_name: str
    uid: str
    containers: tuple[str, ...]


class PodLocator(Protocol):
    def locate_pod(self, namespace: str, pod: str) -> PodLocation:
        """``NotFound`` when this node does not run the pod."""
        ...


async def container_instances(where: PodLocation, pod: str, container: str
                              ) -> list[ContainerStatus]:
    """The runtime's instances of a pod's container, newest first (``BadRequest`` for a
    name the pod does not have)."""
    if container not in where.containers:
        raise BadRequest(f"container {container} is not valid for pod {pod}")
    return sorted((c for c in await where.runtime.list_containers(
        {NODE_NAME: where.node_name, POD_UID: where.uid}) if c.name == container),
        key=lambda c: c.attempt, reverse=True)


async def running_container(where: PodLocation, pod: str, container: str) -> str:
    """The id of the container's running instance (``BadRequest`` with the reason)."""
    current = next(iter(await container_instances(where, pod, container)), None)
    if current is None or current.state is not ContainerState.RUNNING:
        state = "waiting to start" if current is None else current.state.value
        raise BadRequest(f'container "{container}" in pod "{pod}" is not running '
                         f"(it is {state})")
    return current.id


async def pod_sandbox(where: PodLocation, pod: str) -> str:
    sandboxes = [s for s in await where.runtime.list_sandboxes(
        {NODE_NAME: where.node_name, POD_UID: where.uid}) if s.state is SandboxState.READY]
    if not sandboxes:
        raise BadRequest(f'pod "{pod}" has no running sandbox (it is not running)')
    return max(sandboxes, key=lambda s: s.attempt).id


def _flag(query: Any, name: str) -> bool:
    return query.get(name, "false") in ("1", "true", "")


def _error_response(err: KstateError) -> web.Response:
    # The pod's state (no such container, not running, nothing on the port) is the
    # user's to act on: 400; only an engine that cannot be reached is 503.
    status = 404 if isinstance(err, NotFound) else 503 if isinstance(
        err, RuntimeUnreachable) or not isinstance(
        err, BadRequest | RuntimeAdapterError) else 400
    # The API server reads the reason from the header: a failed WebSocket handshake
    # hands its client the headers, not the body.
    return web.Response(status=status, text=f"{err}\n",
                        headers={ERROR_HEADER: urllib.parse.quote(str(err))})


async def handle_exec(request: web.Request, locator: PodLocator) -> web.StreamResponse:
    """``/exec|attach/<namespace>/<pod>/<container>?command=...&stdin=1&tty=1``."""
    info, query = request.match_info, request.query
    attach = request.path.startswith("/attach/")
    stdin, tty = _flag(query, "stdin"), _flag(query, "tty")
    command = query.getall("command", [])
    try:
        if not attach and not command:
            raise BadRequest("you must specify at least one command for the container")
        where = locator.locate_pod(info["namespace"], info["pod"])
        cid = await running_container(where, info["pod"], info["container"])
        session = (await where.runtime.attach(cid, stdin=stdin) if attach else
                   await where.runtime.exec_session(cid, command, stdin=stdin, tty=tty))
    except KstateError as err:
        return _error_response(err)
    ws = web.WebSocketResponse(max_msg_size=0)
    try:
        await ws.prepare(request)
        await pump_session(ws, session)
    finally:
        await session.close()
    return ws


async def pump_session(ws: web.WebSocketResponse, session: ExecSession) -> None:
    """Copy the session's output out and the client's stdin and resizes in, until the
    process ends (then its exit code) or the client goes (then the session is closed)."""

    async def output() -> None:
        while (item := await session.read()) is not None:
            channel, data = item
            await ws.send_bytes(bytes([channel]) + data)
        code = await session.wait()
        await ws.send_bytes(bytes([EXIT]) + json.dumps({"exitCode": code}).encode())

    async def incoming() -> None:
        async for msg in ws:
            if msg.type is not WSMsgType.BINARY or not msg.data:
                continue
            channel, data = msg.data[0], msg.data[1:]
            if channel == STDIN:
                await session.write(data)
            elif channel == CLOSE and data[:1] == bytes([STDIN]):
                await session.close_stdin()
            elif channel == RESIZE:
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    size = json.loads(data)
                    await session.resize(int(size["Width"]), int(size["Height"]))

    out = asyncio.ensure_future(output())
    inc = asyncio.ensure_future(incoming())
    try:
        await asyncio.wait([out, inc], return_when=asyncio.FIRST_COMPLETED)
    finally:
        inc.cancel()
        if not out.done():  # the client went away first
            out.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError, KstateError):
            await asyncio.gather(out, inc)
        await ws.close()


async def handle_port_forward(request: web.Request, locator: PodLocator
                              ) -> web.StreamResponse:
    """``/portForward/<namespace>/<pod>?port=N``: one TCP connection, as bytes."""
    info, port_text = request.match_info, request.query.get("port", "")
    try:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise BadRequest(f"port must be a number from 1 to 65535, not {port_text!r}")
        where = locator.locate_pod(info["namespace"], info["pod"])
        sandbox = await pod_sandbox(where, info["pod"])
        reader, writer = await where.runtime.port_forward(sandbox, int(port_text))
    except KstateError as err:
        return _error_response(err)
    ws = web.WebSocketResponse(max_msg_size=0)
    await ws.prepare(request)

    async def upstream() -> None:
        async for msg in ws:
            if msg.type is not WSMsgType.BINARY:
                continue
            if not msg.data:  # the client is done sending; replies may still come
                if writer.can_write_eof():
                    writer.write_eof()
                continue
            writer.write(msg.data)
            await writer.drain()

    async def downstream() -> None:
        while data := await reader.read(65536):
            await ws.send_bytes(data)

    # Over when the pod's side closes (all its replies sent) or the client goes away.
    up, down = asyncio.ensure_future(upstream()), asyncio.ensure_future(downstream())
    try:
        await asyncio.wait([up, down], return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (up, down):
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError, OSError):
            await asyncio.gather(up, down)
        writer.close()
        await ws.close()
    return ws


__all__ = ["PodLocation", "PodLocator", "container_instances", "handle_exec", "handle_port_forward",
           "pod_sandbox", "pump_session", "running_container"]
