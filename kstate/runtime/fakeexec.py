"""The fake runtime's interactive processes: ``kubectl exec`` / ``attach`` without Docker.

Where it sits: node agent -> ``FakeRuntime.exec_session`` / ``attach`` -> **a
FakeProcess** (the :class:`~kstate.runtime.base.ExecSession` contract). A fake container
has no process, so an exec runs a tiny stand-in: ``cat`` copies stdin to stdout until
EOF, ``sleep N`` waits on the runtime's clock, and anything else goes to the runtime's
exec handler (``echo``, ``sh -c 'exit N'``, ... see ``fake.default_exec``).

An attach reaches the container's main process: its output (the container's log) and,
for a container created with ``stdin``, its :class:`FakeStdin`, which a
:class:`~kstate.runtime.fake.Program` with ``echoes_stdin`` copies to its output, as
``cat`` would.

Every running exec is in its container's process table (``FakeRuntime.processes``) until
it exits or its session is closed, which is what tests check to prove nothing leaks.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from kstate.runtime.base import EXIT_KILLED, STDOUT, ExecResult, ExecSession

Handler = Callable[[tuple[str, ...]], "ExecResult | Awaitable[ExecResult]"]


class FakeProcess(ExecSession):
    """One exec'd stand-in process, run as a task; ``table`` holds it while it runs."""

    def __init__(self, command: Sequence[str], *, handler: Handler,
                 sleep: Callable[[float], Awaitable[Any]], table: set[FakeProcess],
                 tty: bool) -> None:
        self.command = tuple(command)
        self.tty = tty
        self._handler = handler
        self._sleep = sleep
        self._table = table
        self._stdin: asyncio.Queue[bytes] = asyncio.Queue()
        self._output: asyncio.Queue[tuple[int, bytes] | None] = asyncio.Queue()
        self.size: tuple[int, int] | None = None
        table.add(self)
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> int:
        try:
            head, *rest = self.command or ("",)
            if head == "cat" and not rest:
                while chunk := await self._stdin.get():
                    self._output.put_nowait((STDOUT, chunk))
                return 0
            if head == "sleep":
                await self._sleep(float(rest[0]) if rest else 0.0)
                return 0
            answer = self._handler(self.command)
            result = await answer if inspect.isawaitable(answer) else answer
            if result.output:
                self._output.put_nowait((STDOUT, result.output))
            return result.exit_code
        finally:
            if self in self._table:  # not killed: its output ends here
                self._table.discard(self)
                self._output.put_nowait(None)

    async def read(self) -> tuple[int, bytes] | None:
        return await self._output.get()

    async def write(self, data: bytes) -> None:
        if data:
            self._stdin.put_nowait(data)

    async def close_stdin(self) -> None:
        self._stdin.put_nowait(b"")

    async def resize(self, width: int, height: int) -> None:
        self.size = (width, height)

    async def wait(self) -> int | None:
        try:
            return await asyncio.shield(self._task)
        except asyncio.CancelledError:
            if self._task.cancelled():  # killed, as SIGKILL would have
                return EXIT_KILLED
            raise

    def kill(self) -> None:
        """The process dies (its container stopped, or its session closed)."""
        self._table.discard(self)  # now: a task cancelled before it ran has no finally
        self._task.cancel()
        self._output.put_nowait(None)

    async def close(self) -> None:
        self.kill()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._task


class FakeStdin:
    """A fake container's stdin (``stdin: true``): open from creation until closed, which
    ``stdin_once`` does when its first attach lets go of it. What the process does with
    the bytes is its :class:`~kstate.runtime.fake.Program`'s (``on_data``, ``on_eof``)."""

    def __init__(self, *, once: bool, on_data: Callable[[bytes], None],
                 on_eof: Callable[[], None]) -> None:
        self.once = once
        self.open = True
        self._on_data = on_data
        self._on_eof = on_eof

    def feed(self, data: bytes) -> None:
        if self.open and data:
            self._on_data(data)

    def close(self) -> None:
        if self.open:
            self.open = False
            self._on_eof()


class FakeAttach(ExecSession):
    """Attached to a fake container's main process: its new output until it exits, and
    its stdin when attached with one (the base contract's EOF rules: a ``stdin_once``
    container without a TTY has its stdin closed; otherwise this attach ends)."""

    def __init__(self, lines: Any, *, tty: bool, stdin: FakeStdin | None) -> None:
        self.tty = tty
        self._lines = lines  # an async iterator of the container's log lines (follow)
        self._stdin = stdin
        self._detached = asyncio.Event()
        self._pending: asyncio.Future[Any] | None = None
        self.size: tuple[int, int] | None = None

    async def read(self) -> tuple[int, bytes] | None:
        if self._pending is None:
            self._pending = asyncio.ensure_future(anext(self._lines, None))
        detached: asyncio.Future[Any] = asyncio.ensure_future(self._detached.wait())
        try:
            await asyncio.wait([self._pending, detached], return_when=asyncio.FIRST_COMPLETED)
        finally:
            detached.cancel()
        if not self._pending.done():
            return None
        line, self._pending = self._pending.result(), None
        return None if line is None else (STDOUT, line)

    async def write(self, data: bytes) -> None:
        if self._stdin is not None:
            self._stdin.feed(data)

    async def close_stdin(self) -> None:
        stdin, self._stdin = self._stdin, None
        if stdin is None:
            return
        if stdin.once and not self.tty:
            stdin.close()  # the process reads EOF; its output goes on to the end
        else:
            self._detached.set()  # stdin stays open for the next attach

    async def resize(self, width: int, height: int) -> None:
        if self.tty:
            self.size = (width, height)

    async def wait(self) -> int | None:
        return None

    async def close(self) -> None:
        if self._stdin is not None and self._stdin.once and not self.tty:
            self._stdin.close()  # an attach that goes away lets go of stdin too
        self._stdin = None
        self._detached.set()
        if self._pending is not None:
            self._pending.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._pending
        await self._lines.aclose()


async def echo_port(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """The fake's stand-in for a server on any pod port: it echoes what it reads."""
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


__all__ = ["FakeAttach", "FakeProcess", "FakeStdin", "echo_port"]
