"""The client end of containerd's streaming server: exec, attach and port-forward over CRI.

Where it sits: node agent -> containerd adapter (:mod:`kstate.runtime.containerd`) -> CRI
``Exec``/``Attach``/``PortForward`` -> a one-use URL on containerd's streaming server
(``stream_server_address`` 127.0.0.1 in :mod:`kstate.runtime.containerd_host`) -> **this
module** speaks Kubernetes' protocols there, exactly as the kubelet's client would:

* ``Upgrade: SPDY/3.1`` with ``X-Stream-Protocol-Version: v4.channel.k8s.io`` (exec,
  attach) or ``portforward.k8s.io``; the framing is kstate's one SPDY implementation
  (:mod:`kstate.spdy`, whose server end the API server uses for kubectl);
* remote command: one SPDY stream per channel (``error``, ``stdin``, ``stdout``,
  ``stderr``, ``resize``); FIN on ``stdin`` is EOF; the ``error`` stream ends with a
  ``metav1.Status`` (``Success``, or ``NonZeroExitCode`` with an ``ExitCode`` cause), which
  is how an exit code travels; ``resize`` carries ``{"Width": w, "Height": h}``;
* port-forward: an ``error`` and a ``data`` stream per connection, paired by ``port`` and
  ``requestID`` headers; containerd writes why it could not connect on ``error``.

Why SPDY rather than WebSocket: containerd 1.6's server speaks WebSocket only up to
``v4.channel.k8s.io``, which has no way to close stdin; SPDY half-closes a stream.

Plain asyncio streams carry the HTTP upgrade (the runtime package speaks no aiohttp).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from kstate import spdy
from kstate.errors import RuntimeAdapterError
from kstate.runtime.base import STDERR, STDOUT, ExecSession

log = logging.getLogger("kstate.runtime.containerd")

REMOTE_COMMAND = "v4.channel.k8s.io"
PORT_FORWARD = "portforward.k8s.io"
LOOPBACK = ("127.0.0.1", "::1", "localhost")
#: Bound on the connect + upgrade handshake with the local streaming server.
HANDSHAKE_SECONDS = 10.0


async def connect(url: str, protocol: str) -> tuple[spdy.Session, asyncio.StreamWriter]:
    """Upgrade an HTTP request to ``url`` to a SPDY session speaking ``protocol``; its
    reader runs as a task until the server ends the connection."""
    where = urlsplit(url)
    if where.scheme != "http" or not where.hostname or where.port is None:
        raise RuntimeAdapterError(f"containerd gave an unusable streaming URL {url!r}")
    if where.hostname not in LOOPBACK:
        # kstate's containerd config binds it to 127.0.0.1; anything else is not ours.
        raise RuntimeAdapterError(
            f"containerd's streaming server is at {where.netloc}, not on loopback; set "
            'stream_server_address = "127.0.0.1" in its CRI config (kstate.runtime.'
            "containerd_host generates that)")
    try:
        async with asyncio.timeout(HANDSHAKE_SECONDS):
            reader, writer = await asyncio.open_connection(where.hostname, where.port)
            path = where.path + (f"?{where.query}" if where.query else "")
            writer.write(
                f"POST {path} HTTP/1.1\r\nHost: {where.netloc}\r\nContent-Length: 0\r\n"
                f"Connection: Upgrade\r\nUpgrade: SPDY/3.1\r\n"
                f"X-Stream-Protocol-Version: {protocol}\r\n\r\n".encode())
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
    except (OSError, TimeoutError, asyncio.IncompleteReadError,
            asyncio.LimitOverrunError) as err:
        raise RuntimeAdapterError(f"containerd's streaming server at {where.netloc}: "
                                  f"{err or type(err).__name__}") from None
    status = head.split(b"\r\n", 1)[0].decode(errors="replace")
    if " 101 " not in f"{status} ":
        body = await _rest(reader)
        writer.close()
        raise RuntimeAdapterError(f"containerd's streaming server refused the upgrade: "
                                  f"{status} {body}".strip())

    async def write(frame: bytes) -> None:
        writer.write(frame)
        await writer.drain()

    session = spdy.Session(reader.readexactly, write)
    _keep(asyncio.ensure_future(session.serve())).add_done_callback(lambda _: writer.close())
    return session, writer


#: Running session readers and forwards (the loop holds tasks only weakly).
_RUNNING: set[asyncio.Task[None]] = set()


def _keep(task: asyncio.Task[None]) -> asyncio.Task[None]:
    _RUNNING.add(task)
    task.add_done_callback(_RUNNING.discard)
    return task


async def _rest(reader: asyncio.StreamReader) -> str:
    with contextlib.suppress(Exception):
        async with asyncio.timeout(1):
            return (await reader.read(500)).decode(errors="replace").strip()
    return ""


def exit_code(status: bytes, cannot_run_code: Callable[[str], int]) -> int:
    """The exit code a v4 ``error`` stream reports: 0 for ``Success`` (or nothing), the
    ``ExitCode`` cause of ``NonZeroExitCode``; a process that never ran gets
    ``cannot_run_code(message)`` (127/126, as Docker reports it)."""
    if not status.strip():
        return 0
    try:
        parsed: dict[str, Any] = json.loads(status)
    except ValueError:
        return cannot_run_code(status.decode(errors="replace"))
    if parsed.get("status") == "Success":
        return 0
    if parsed.get("reason") == "NonZeroExitCode":
        for cause in (parsed.get("details") or {}).get("causes") or []:
            if cause.get("reason") == "ExitCode":
                with contextlib.suppress(ValueError):
                    return int(cause.get("message", ""))
    return cannot_run_code(str(parsed.get("message", "")))


class CriSession(ExecSession):
    """An exec'd process or an attach, over one remote-command SPDY session."""

    def __init__(self, session: spdy.Session, connection: asyncio.StreamWriter,
                 streams: Mapping[str, spdy.Stream], *, tty: bool, is_exec: bool,
                 cannot_run_code: Callable[[str], int],
                 kill: Callable[[], Any] | None = None) -> None:
        self.tty = tty
        self._session = session
        self._connection = connection
        self._streams = streams
        self._is_exec = is_exec
        self._kill = kill
        self._closed = False
        self._output: asyncio.Queue[tuple[int, bytes] | None] = asyncio.Queue()
        self._status = asyncio.ensure_future(_read_all(streams["error"]))
        outputs = [(STDOUT, streams["stdout"])]
        if "stderr" in streams:
            outputs.append((STDERR, streams["stderr"]))
        self._pumps = asyncio.ensure_future(self._pump_outputs(outputs))
        self._cannot_run_code = cannot_run_code

    async def _pump_outputs(self, outputs: list[tuple[int, spdy.Stream]]) -> None:
        async def pump(channel: int, stream: spdy.Stream) -> None:
            while data := await stream.read():
                self._output.put_nowait((channel, data))

        try:
            await asyncio.gather(*(pump(channel, stream) for channel, stream in outputs))
        finally:
            self._output.put_nowait(None)

    @classmethod
    async def open(cls, url: str, *, stdin: bool, tty: bool, is_exec: bool,
                   cannot_run_code: Callable[[str], int],
                   kill: Callable[[], Any] | None = None) -> CriSession:
        session, connection = await connect(url, REMOTE_COMMAND)
        # The server waits for exactly the channels the CRI request announced.
        kinds = ["error", *(["stdin"] if stdin else []), "stdout",
                 "resize" if tty else "stderr"]
        try:
            async with asyncio.timeout(HANDSHAKE_SECONDS):
                streams = {kind: await session.open({"streamtype": kind}) for kind in kinds}
        except (spdy.ProtocolError, TimeoutError) as err:
            connection.close()
            raise RuntimeAdapterError(f"containerd's streaming server: {err or 'timed out'}"
                                      ) from None
        return cls(session, connection, streams, tty=tty, is_exec=is_exec,
                   cannot_run_code=cannot_run_code, kill=kill)

    async def read(self) -> tuple[int, bytes] | None:
        item = await self._output.get()
        if item is None:
            self._output.put_nowait(None)  # every later read sees the end too
        return item

    async def write(self, data: bytes) -> None:
        if (stdin := self._streams.get("stdin")) is not None:
            await stdin.write(data)

    async def close_stdin(self) -> None:
        if (stdin := self._streams.get("stdin")) is not None:
            await stdin.close()

    async def resize(self, width: int, height: int) -> None:
        if (resize := self._streams.get("resize")) is not None and width > 0 and height > 0:
            await resize.write(json.dumps({"Width": width, "Height": height}).encode())

    async def wait(self) -> int | None:
        if not self._is_exec:
            return None  # an attach's process goes on after the session
        return exit_code(await self._status, self._cannot_run_code)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._is_exec and not self._status.done() and self._kill is not None:
            # CRI cannot kill an exec'd process: the adapter kills it by its marker.
            await self._kill()
        with contextlib.suppress(Exception):
            await self._session.goaway()
        self._connection.close()
        self._status.cancel()
        self._pumps.cancel()


async def _read_all(stream: spdy.Stream) -> bytes:
    data = b""
    while chunk := await stream.read():
        data += chunk
    return data


async def port_forward(url: str, port: int
                       ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """One TCP connection to ``port`` through containerd's port-forward session at ``url``,
    handed over as a local socket pair; the session ends when either side closes."""
    session, connection = await connect(url, PORT_FORWARD)
    headers = {"port": str(port), "requestid": "0"}
    try:
        async with asyncio.timeout(HANDSHAKE_SECONDS):
            error = await session.open({"streamtype": "error", **headers})
            data = await session.open({"streamtype": "data", **headers})
    except (spdy.ProtocolError, TimeoutError) as err:
        connection.close()
        raise RuntimeAdapterError(f"containerd's streaming server: {err or 'timed out'}"
                                  ) from None
    ours, theirs = socket.socketpair()
    pod_side = await asyncio.open_connection(sock=theirs)
    _keep(asyncio.ensure_future(_forward(port, session, connection, error, data, *pod_side)))
    return await asyncio.open_connection(sock=ours)


async def _forward(port: int, session: spdy.Session, connection: asyncio.StreamWriter,
                   error: spdy.Stream, data: spdy.Stream, reader: asyncio.StreamReader,
                   writer: asyncio.StreamWriter) -> None:
    async def upstream() -> None:
        while chunk := await reader.read(32 * 1024):
            await data.write(chunk)
        await data.close()

    async def downstream() -> None:
        while chunk := await data.read():
            writer.write(chunk)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()

    async def failure() -> None:
        if message := (await _read_all(error)).strip():
            # e.g. nothing listens on the port: the local side just sees the end.
            log.info("port-forward to port %d: %s", port, message.decode(errors="replace"))
            raise RuntimeAdapterError(message.decode(errors="replace"))

    try:
        done = asyncio.gather(upstream(), downstream(), failure())
        with contextlib.suppress(RuntimeAdapterError, ConnectionError):
            await done
    finally:
        done.cancel()
        with contextlib.suppress(Exception):
            await session.goaway()
        connection.close()
        writer.close()


__all__ = ["CriSession", "connect", "exit_code", "port_forward"]
