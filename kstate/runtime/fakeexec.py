"""The fake runtime's interactive processes: ``kubectl exec`` / ``attach`` without Docker.

Where it sits: node agent -> ``FakeRuntime.exec_session`` / ``attach`` -> **a
FakeProcess** (the :class:`~kstate.runtime.base.ExecSession` contract). A fake container
has no process, so an exec runs a tiny stand-in: ``cat`` copies stdin to stdout until
EOF, ``sleep N`` waits on the runtime's clock, and anything else goes to the runtime's
exec handler (``echo``, ``sh -c 'exit N'``, ... see ``fake.default_exec``).

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


class FakeAttach(ExecSession):
    """Attached to a fake container's main process: its new output, until it exits."""

    def __init__(self, lines: Any, *, tty: bool) -> None:
        self.tty = tty
        self._lines = lines  # an async iterator of the container's log lines (follow)

    async def read(self) -> tuple[int, bytes] | None:
        line = await anext(self._lines, None)
        return None if line is None else (STDOUT, line)

    async def write(self, data: bytes) -> None:
        pass  # a fake main process reads no stdin

    async def close_stdin(self) -> None:
        pass

    async def resize(self, width: int, height: int) -> None:
        pass

    async def wait(self) -> int | None:
        return None

    async def close(self) -> None:
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


__all__ = ["FakeAttach", "FakeProcess", "echo_port"]
