"""Plumbing for the runtime tests: one harness over the fake, Docker and containerd adapters.

The contract suite is written once against :class:`Harness`. The harness hides the one
real difference between the adapters, *how time passes*:

* fake: time is a :class:`FakeClock`; ``until``/``wait`` let due tasks run, then jump the
  clock to the next sleeper's deadline, so "a 2 s grace period" takes no wall time and
  exactly 2 s of clock time;
* docker and containerd: time is real; ``until`` polls a condition (bounded), ``wait`` awaits with a
  timeout. Nothing sleeps to synchronise.

A fake container has no process, so each test states what its process *does* twice: as
the real command (Docker) and as a :class:`Program` (fake). The contract is that both
adapters then report the same states, reasons, codes, events and errors.

Docker and containerd tests skip outside CI when no engine answers and fail under
``CI=true``. Every object a session makes carries the session's node name label (Docker's
also live on a session-only network); teardown removes them by label. containerd is
kstate's own (``python -m kstate.runtime.containerd_host start``; ``./dev test`` starts it)
on its default socket or ``KSTATE_CONTAINERD_SOCKET``. The base image is built once and
kept (it is the shared artifact ``./dev test`` builds anyway).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import inspect
import itertools
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from typing import Any, TypeVar

import pytest

from kstate.clock import Clock, FakeClock, RealClock
from kstate.errors import RuntimeAdapterError
from kstate.runtime.base import (
    HTTPD_IMAGE,
    NODE_NAME,
    ContainerRuntime,
    ContainerSpec,
    ContainerState,
    ContainerStatus,
    EventStream,
    PullPolicy,
    RuntimeEvent,
    SandboxSpec,
    SandboxStatus,
)
from kstate.runtime.fake import FakeRuntime, Program
from tests.conftest import require

T = TypeVar("T")

#: Wall-time cap on one Docker scenario (a hung engine fails the test, not the session).
DOCKER_SCENARIO_TIMEOUT = 90.0
_names = itertools.count()


class Harness:
    """One adapter plus the means to let time pass on it."""

    def __init__(self, kind: str, rt: ContainerRuntime, clock: Clock, node: str,
                 runner: asyncio.Runner) -> None:
        self.kind = kind
        self.rt = rt
        self.clock = clock
        self.node = node
        self._runner = runner
        self.sandboxes: list[str] = []

    @property
    def fake(self) -> FakeRuntime:
        assert isinstance(self.rt, FakeRuntime), "fake-only helper used on Docker"
        return self.rt

    @property
    def fake_clock(self) -> FakeClock:
        assert isinstance(self.clock, FakeClock), "fake-only helper used on Docker"
        return self.clock

    @property
    def docker(self) -> Any:
        """The Docker adapter itself (its image import and raw inspect are not protocol)."""
        assert self.kind == "docker", "docker-only helper used on the fake"
        return self.rt

    # ---------------------------------------------------------------- running scenarios

    def run(self, scenario: Awaitable[T]) -> T:
        async def bounded() -> T:
            async with asyncio.timeout(DOCKER_SCENARIO_TIMEOUT):
                return await scenario

        return self._runner.run(bounded())

    async def until(
        self,
        condition: Callable[[], Any],
        *,
        timeout: float = 20.0,
        what: str = "condition",
    ) -> None:
        """Return once ``condition()`` (sync or async) is true; fail after ``timeout``
        seconds of the runtime's time."""
        async def check() -> bool:
            value = condition()
            return bool(await value if inspect.isawaitable(value) else value)

        deadline = self.clock.now() + timeout
        while not await check():
            if isinstance(self.clock, FakeClock):
                for _ in range(20):  # let every task whose wake-up is due run
                    await asyncio.sleep(0)
                if await check():
                    return
                nxt = self.clock.next_deadline()
                if nxt is None or nxt > deadline:
                    raise AssertionError(f"{what} not reached: nothing left to happen "
                                         f"within {timeout} s of fake time")
                self.clock.advance(max(0.0, nxt - self.clock.now()))
            else:
                if self.clock.now() > deadline:
                    raise AssertionError(f"{what} not reached within {timeout} s")
                await asyncio.sleep(0.02)

    async def wait(self, aw: Awaitable[T], *, timeout: float = 20.0, what: str = "") -> T:
        """Await ``aw`` while time passes (fake: the clock is driven until it is done)."""
        task = asyncio.ensure_future(aw)
        try:
            if isinstance(self.clock, FakeClock):
                await self.until(task.done, timeout=timeout, what=what or "operation")
            else:
                await asyncio.wait_for(task, timeout)
            return task.result()
        finally:
            if not task.done():
                task.cancel()

    async def next_event(self, stream: EventStream, timeout: float = 20.0) -> RuntimeEvent:
        return await self.wait(stream.__anext__(), timeout=timeout, what="event")

    # ---------------------------------------------------------------- building blocks

    def uid(self) -> str:
        return f"{self.node}-pod{next(_names)}"

    async def sandbox(self, name: str = "", uid: str = "", **labels: str) -> SandboxStatus:
        uid = uid or self.uid()
        spec = SandboxSpec(pod_uid=uid, namespace="test", name=name or f"p{next(_names)}",
                           node_name=self.node, labels=labels)
        status = await self.rt.create_sandbox(spec)
        self.sandboxes.append(status.id)
        return status

    async def container(
        self,
        sandbox: SandboxStatus,
        command: Sequence[str],
        program: Program | None = None,
        *,
        name: str = "",
        start: bool = True,
        **spec: Any,
    ) -> str:
        """Create (and by default start) a container whose process is ``command`` on
        Docker and ``program`` on the fake."""
        name = name or f"c{next(_names)}"
        if isinstance(self.rt, FakeRuntime):
            self.rt.set_program(name, program or Program())
        spec.setdefault("image", HTTPD_IMAGE)
        spec.setdefault("image_pull_policy", PullPolicy.NEVER)
        cid = await self.rt.create_container(
            sandbox.id, ContainerSpec(name=name, command=tuple(command), **spec))
        if start:
            await self.rt.start_container(cid)
        return cid

    async def state(self, cid: str, state: ContainerState, timeout: float = 20.0
                    ) -> ContainerStatus:
        async def reached() -> bool:
            return (await self.rt.inspect_container(cid)).state is state

        await self.until(reached, timeout=timeout, what=f"{cid[:12]} {state.value}")
        return await self.rt.inspect_container(cid)

    async def collect(self, lines: AsyncIterator[bytes], timeout: float = 20.0) -> list[bytes]:
        async def drain() -> list[bytes]:
            return [line async for line in lines]

        return await self.wait(drain(), timeout=timeout, what="log stream end")

    async def cleanup(self) -> None:
        for sid in self.sandboxes:
            with contextlib.suppress(RuntimeAdapterError):
                await self.rt.remove_sandbox(sid)


# -------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def runner() -> Iterator[asyncio.Runner]:
    with asyncio.Runner() as r:
        yield r


def _unreachable_because(runner: asyncio.Runner, rt: Any) -> str:
    try:
        runner.run(rt.version())
    except RuntimeAdapterError as err:
        return str(err)
    return ""


@pytest.fixture(scope="session")
def docker_session(runner: asyncio.Runner) -> Iterator[tuple[Any, str]]:
    """A Docker adapter on a private network, plus this session's node label."""
    require(importlib.util.find_spec("aiodocker") is not None,
            "aiodocker (pip install -e '.[docker]')")
    from kstate.runtime.docker import DockerRuntime
    from kstate.runtime.image import build_base_image

    session = uuid.uuid4().hex[:8]
    network = f"kstate-test-{session}"
    rt = DockerRuntime(network=network)
    problem = _unreachable_because(runner, rt)
    if problem:
        runner.run(rt.close())
    require(not problem, f"Docker engine ({problem})")
    if not runner.run(rt.image_present(HTTPD_IMAGE)):
        require(os.path.exists("/bin/busybox"), "busybox-static (/bin/busybox)")
    runner.run(build_base_image(rt))
    node = f"test-{session}"
    try:
        yield rt, node
    finally:
        runner.run(_docker_teardown(rt, node, network))


async def _docker_teardown(rt: Any, node: str, network: str) -> None:
    for c in await rt.list_containers({NODE_NAME: node}):
        await rt.remove_container(c.id)
    for s in await rt.list_sandboxes({NODE_NAME: node}):
        await rt.remove_sandbox(s.id)
    try:
        client = rt._client()
        await (await client.networks.get(network)).delete()
    except Exception:  # the network exists only if a sandbox was made
        pass
    await rt.close()


@pytest.fixture(scope="session")
def containerd_session(runner: asyncio.Runner) -> Iterator[tuple[Any, str]]:
    """A containerd (CRI) adapter, plus this session's node label."""
    require(importlib.util.find_spec("grpc") is not None,
            "grpcio (pip install -e '.[containerd]')")
    from kstate.runtime.containerd import ContainerdRuntime

    rt = ContainerdRuntime()
    problem = _unreachable_because(runner, rt)
    if problem:
        runner.run(rt.close())
    require(not problem, f"containerd ({problem})")
    node = f"test-{uuid.uuid4().hex[:8]}"
    try:
        yield rt, node
    finally:
        runner.run(_containerd_teardown(rt, node))


async def _containerd_teardown(rt: Any, node: str) -> None:
    for s in await rt.list_sandboxes({NODE_NAME: node}):
        await rt.remove_sandbox(s.id)
    for c in await rt.list_containers({NODE_NAME: node}):
        await rt.remove_container(c.id)
    await rt.close()


def _make(kind: str, request: pytest.FixtureRequest, runner: asyncio.Runner) -> Iterator[Harness]:
    if kind == "fake":
        clock = FakeClock()
        fake = FakeRuntime(clock, seed=7)
        h = Harness("fake", fake, clock, f"fake-{uuid.uuid4().hex[:6]}", runner)
        yield h
        runner.run(h.cleanup())
        runner.run(fake.close())
        return
    rt, node = request.getfixturevalue(f"{kind}_session")
    h = Harness(kind, rt, RealClock(), node, runner)
    try:
        yield h
    finally:
        runner.run(h.cleanup())


@pytest.fixture(params=["fake", pytest.param("docker", marks=pytest.mark.docker),
                        pytest.param("containerd", marks=pytest.mark.containerd)])
def h(request: pytest.FixtureRequest, runner: asyncio.Runner) -> Iterator[Harness]:
    """The contract harness, once per adapter."""
    yield from _make(request.param, request, runner)


@pytest.fixture
def fake_h(request: pytest.FixtureRequest, runner: asyncio.Runner) -> Iterator[Harness]:
    yield from _make("fake", request, runner)


@pytest.fixture
def containerd_h(request: pytest.FixtureRequest, runner: asyncio.Runner) -> Iterator[Harness]:
    yield from _make("containerd", request, runner)


@pytest.fixture
def docker_h(request: pytest.FixtureRequest, runner: asyncio.Runner) -> Iterator[Harness]:
    yield from _make("docker", request, runner)
