"""The runtime contract for ``kubectl exec|attach|port-forward`` and ``logs`` options, over
the fake and the Docker adapter alike (see ``test_contract.py`` for the harness's rules).

What the node agent relies on: an :class:`ExecSession` carries stdin (with EOF), output
tagged by stream, the exit code and a TTY; closing a session mid-command leaves no process
behind; attach streams the main process's output; ``port_forward`` reaches a pod port;
``logs`` keeps lines since a time and prefixes Kubernetes' timestamps.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest

from kstate.errors import ContainerNotRunning, RuntimeAdapterError
from kstate.runtime.base import STDERR, STDOUT, ContainerState, ExecSession
from kstate.runtime.fake import Program
from tests.runtime.conftest import Harness

SLEEPER = ("sleep", "3600")
SLEEPER_P = Program(on_term=None)
#: RFC 3339 with nanoseconds, then a space: what ``kubectl logs --timestamps`` prints.
TIMESTAMP = re.compile(rb"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z ")


async def drain(h: Harness, session: ExecSession) -> list[tuple[int, bytes]]:
    async def read_all() -> list[tuple[int, bytes]]:
        out = []
        while (item := await session.read()) is not None:
            out.append(item)
        return out

    return await h.wait(read_all(), what="exec output end")


def joined(items: list[tuple[int, bytes]], stream: int) -> bytes:
    return b"".join(data for channel, data in items if channel == stream)


async def exec_processes(h: Harness, cid: str) -> list[str]:
    """What is running in the container besides its main process (``docker top``; on
    containerd, ``ps`` in the container, which lists itself too)."""
    if h.kind == "fake":
        return [" ".join(command) for command in h.fake.processes(cid)]
    if h.kind == "containerd":
        listed = await h.rt.exec(cid, ["ps", "-o", "args"], timeout=10)
        return listed.output.decode().splitlines()[2:]
    top = await h.docker._client()._query_json(f"containers/{cid}/top", "GET")
    return [row[-1] for row in top["Processes"]][1:]


def test_exec_session_stdin_output_and_exit_code(h: Harness) -> None:
    async def scenario() -> None:
        sb = await h.sandbox()
        cid = await h.container(sb, SLEEPER, SLEEPER_P)
        await h.state(cid, ContainerState.RUNNING)
        cat = await h.rt.exec_session(cid, ["cat"], stdin=True, tty=False)
        await cat.write(b"hi\n")
        await cat.close_stdin()
        assert joined(await drain(h, cat), STDOUT) == b"hi\n"
        assert await h.wait(cat.wait()) == 0
        await cat.close()
        failing = await h.rt.exec_session(cid, ["sh", "-c", "exit 3"], stdin=False, tty=False)
        await drain(h, failing)
        assert await h.wait(failing.wait()) == 3
        await failing.close()
        await failing.close()  # idempotent

    h.run(scenario())


def test_exec_session_separates_stderr_unless_tty(h: Harness) -> None:
    async def scenario() -> None:
        sb = await h.sandbox()
        cid = await h.container(sb, SLEEPER, SLEEPER_P)
        await h.state(cid, ContainerState.RUNNING)
        if h.kind == "fake":
            h.fake.exec_handler = _stderr_handler
        plain = await h.rt.exec_session(cid, ["sh", "-c", "echo oops >&2"], stdin=False,
                                        tty=False)
        # A fake process's output is one stream (ExecResult's); real runtimes keep them apart.
        expected = STDOUT if h.kind == "fake" else STDERR
        assert joined(await drain(h, plain), expected).strip() == b"oops"
        await plain.close()
        tty = await h.rt.exec_session(cid, ["sh", "-c", "echo oops >&2"], stdin=False,
                                      tty=True)
        await tty.resize(100, 30)
        out = await drain(h, tty)
        assert {channel for channel, _ in out} == {STDOUT}
        assert b"oops" in joined(out, STDOUT)
        await tty.close()

    h.run(scenario())


def _stderr_handler(container_id: str, command: tuple[str, ...]) -> Any:
    from kstate.runtime.base import ExecResult

    return ExecResult(0, b"oops\n")


def test_closing_a_session_mid_command_leaves_no_process(h: Harness) -> None:
    async def scenario() -> None:
        sb = await h.sandbox()
        cid = await h.container(sb, SLEEPER, SLEEPER_P)
        await h.state(cid, ContainerState.RUNNING)
        # A child of the exec'd shell too: the whole tree goes.
        session = await h.rt.exec_session(cid, ["sleep", "777"], stdin=True, tty=False)

        async def running() -> bool:
            return any("777" in p for p in await exec_processes(h, cid))

        await h.until(running, what="the exec'd process running")
        await session.close()

        async def gone() -> bool:
            return not any("777" in p for p in await exec_processes(h, cid))

        await h.until(gone, timeout=10, what="the exec'd process gone")

    h.run(scenario())


def test_exec_session_refusals(h: Harness) -> None:
    async def scenario() -> None:
        sb = await h.sandbox()
        cid = await h.container(sb, ("sh", "-c", "exit 0"), Program.exits(0))
        await h.state(cid, ContainerState.EXITED)
        with pytest.raises(ContainerNotRunning):
            await h.rt.exec_session(cid, ["true"], stdin=False, tty=False)
        with pytest.raises(ContainerNotRunning):
            await h.rt.attach(cid, stdin=False)

    h.run(scenario())


def test_attach_streams_new_output(h: Harness) -> None:
    async def scenario() -> None:
        sb = await h.sandbox()
        cid = await h.container(
            sb, ("sh", "-c", "echo ready; sleep 1; echo later; sleep 3600"),
            Program(on_term=None, logs=b"ready\n", log_schedule=((1.0, b"later\n"),)))
        await h.state(cid, ContainerState.RUNNING)

        async def ready() -> bool:
            return b"ready\n" in await h.collect(h.rt.logs(cid))

        await h.until(ready, what="first line")
        session = await h.rt.attach(cid, stdin=False)
        item = await h.wait(session.read(), what="attached output")
        assert item == (STDOUT, b"later\n")
        assert await session.wait() is None
        await session.close()

    h.run(scenario())


#: A container whose main process is ``cat``: what ``kubectl run -i -- cat`` makes.
CAT, CAT_P = ("cat",), Program(on_term=None, echoes_stdin=True)


async def read_until(h: Harness, session: ExecSession, wanted: bytes) -> bytes:
    """Output until ``wanted`` shows (a TTY echoes input too, and may split it)."""
    async def read() -> bytes:
        seen = b""
        while wanted not in seen:
            item = await session.read()
            assert item is not None, f"output ended before {wanted!r}: {seen!r}"
            seen += item[1]
        return seen

    return await h.wait(read(), what=f"{wanted!r} in the attached output")


async def running_cat(h: Harness, **spec: bool) -> str:
    sb = await h.sandbox()
    cid = await h.container(sb, CAT, CAT_P, stdin=True, **spec)
    await h.state(cid, ContainerState.RUNNING)
    return cid


def test_attach_with_stdin_round_trip(h: Harness) -> None:
    """stdin without stdinOnce: an attach's EOF ends that attach, and the container's
    stdin stays open for the next one."""
    async def scenario() -> None:
        cid = await running_cat(h)
        for word in (b"first\n", b"second\n"):
            session = await h.rt.attach(cid, stdin=True)
            assert not session.tty
            await session.write(word)
            assert await read_until(h, session, word) == word
            await session.close_stdin()
            assert await h.wait(session.read(), what="the attach's end") is None
            await session.close()
            assert (await h.rt.inspect_container(cid)).state is ContainerState.RUNNING

    h.run(scenario())


def test_stdin_once_closes_the_containers_stdin_after_the_first_attach(h: Harness) -> None:
    async def scenario() -> None:
        cid = await running_cat(h, stdin_once=True)
        session = await h.rt.attach(cid, stdin=True)
        await session.write(b"only\n")
        assert await read_until(h, session, b"only\n") == b"only\n"
        await session.close_stdin()  # cat reads EOF and exits: the output ends
        assert await drain(h, session) == []
        await session.close()
        status = await h.state(cid, ContainerState.EXITED)
        assert status.exit_code == 0

    h.run(scenario())


def test_attach_to_a_terminal(h: Harness) -> None:
    async def scenario() -> None:
        cid = await running_cat(h, tty=True)
        session = await h.rt.attach(cid, stdin=True)
        assert session.tty
        await session.write(b"typed\n")
        await read_until(h, session, b"typed")
        await session.resize(100, 30)

        async def resized() -> bool:
            if h.kind == "fake":
                return getattr(session, "size", None) == (100, 30)
            # The main process's terminal, seen from a second process in the container.
            size = await h.rt.exec(cid, ["stty", "-F", "/proc/1/fd/0", "size"], timeout=10)
            return size.output.strip() == b"30 100"

        await h.until(resized, what="the terminal resized")
        await session.close()
        # A terminal's output is one stream in the log too (Docker's is not framed).
        assert b"typed" in b"".join(await h.collect(h.rt.logs(cid)))

    h.run(scenario())


def test_a_container_without_stdin_reads_eof(h: Harness) -> None:
    """``cat`` without ``stdin: true`` ends at once: there is no input to wait for."""
    async def scenario() -> None:
        sb = await h.sandbox()
        cid = await h.container(sb, CAT, CAT_P)
        status = await h.state(cid, ContainerState.EXITED)
        assert status.exit_code == 0

    h.run(scenario())


def test_port_forward_reaches_a_pod_port(h: Harness) -> None:
    async def scenario() -> None:
        sb = await h.sandbox()
        cid = await h.container(sb, ("httpd", "-f", "-p", "8080", "-h", "/"), SLEEPER_P)
        await h.state(cid, ContainerState.RUNNING)

        async def connected() -> bool:
            try:
                reader, writer = await h.rt.port_forward(sb.id, 8080)
            except RuntimeAdapterError:
                return False  # httpd not listening yet
            writer.write(b"GET / HTTP/1.0\r\n\r\n")
            await writer.drain()
            reply = await asyncio.wait_for(reader.read(100), 10)
            writer.close()
            return bool(reply)  # the fake echoes, httpd answers: bytes came back

        await h.until(connected, what="a reply through the forwarded port")
        if h.kind == "docker":
            with pytest.raises(RuntimeAdapterError, match="port 9"):
                await h.rt.port_forward(sb.id, 9)
        if h.kind == "containerd":
            # containerd reports a refused port on the session's error stream, after the
            # connection was handed over: the local side reads the end at once.
            reader, writer = await h.rt.port_forward(sb.id, 9)
            assert await h.wait(reader.read(100), what="the refused port's end") == b""
            writer.close()

    h.run(scenario())


def test_logs_since_and_timestamps(h: Harness) -> None:
    async def scenario() -> None:
        sb = await h.sandbox()
        cid = await h.container(sb, ("sh", "-c", "echo one; echo two"),
                                Program.exits(0, logs=b"one\ntwo\n"))
        await h.state(cid, ContainerState.EXITED)
        stamped = await h.collect(h.rt.logs(cid, timestamps=True))
        assert [TIMESTAMP.sub(b"", line) for line in stamped] == [b"one\n", b"two\n"]
        assert all(TIMESTAMP.match(line) for line in stamped)
        assert await h.collect(h.rt.logs(cid, since=h.clock.now() + 3600)) == []
        assert await h.collect(h.rt.logs(cid, since=0.0, tail=1)) == [b"two\n"]

    h.run(scenario())
