"""The fake runtime: containers without processes, driven by an injected clock.

Where it sits: node agent -> **runtime adapter (fake)** -> nothing. It stands where the
Docker adapter stands, for tests (time driven by :class:`~kstate.clock.FakeClock`) and
for simulated clusters (``kstate up --nodes 1000 --runtime fake``: one instance per
simulated node, thousands in one process, kwok-style).

Why it exists: the agent, the daemon and the scale work must run the *same* agent code
without Docker. So the fake honours the Docker adapter's contract exactly (same states,
reasons, exit codes, errors, idempotent teardown, events), which the contract suite proves,
and adds what Docker cannot give: exact control of time and faults.

What a container "does" is a :class:`Program`, chosen per container name, per image, or
by a callable (``program_for``): run until stopped, exit with a code after N seconds, be
OOM-killed after N seconds, react to SIGTERM or ignore it, fail to start. Randomness
(ids, ranged run times) comes from one seeded generator: same seed, same run.

Cheap by construction: a container that runs until stopped costs a record and nothing
else; only containers with a scheduled exit hold a task, and it sleeps on the clock.
Such a timer registers with a ``FakeClock`` when its task first runs, so a driver yields
once (``await asyncio.sleep(0)``) before reading ``clock.next_deadline()``.

>>> from kstate.clock import FakeClock
>>> rt = FakeRuntime(FakeClock(), programs={"job": Program.exits(1, after=5)})
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import ipaddress
import random
import socket
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

import attrs

from kstate.clock import Clock, RealClock
from kstate.errors import (
    ContainerAlreadyExists,
    ContainerCannotRun,
    ContainerNotFound,
    ContainerNotRunning,
    CreateContainerError,
    ExecTimeout,
    ImageNotPresent,
    RuntimeAdapterError,
    RuntimeUnreachable,
)
from kstate.runtime.base import (
    BASE_IMAGE,
    EXIT_KILLED,
    EXIT_TERMINATED,
    HTTPD_IMAGE,
    MANAGED,
    ROLE_CONTAINER,
    ROLE_SANDBOX,
    ContainerSpec,
    ContainerState,
    ContainerStatus,
    EnsuredImage,
    EventKind,
    EventStream,
    ExecResult,
    ExecSession,
    NetworkInfo,
    PullPolicy,
    RuntimeEvent,
    RuntimeVersion,
    SandboxSpec,
    SandboxState,
    SandboxStatus,
    apply_pull_policy,
    container_status,
    log_timestamp,
    matches,
    tail_lines,
)
from kstate.runtime.fakeexec import FakeAttach, FakeProcess, FakeStdin, echo_port

ExecHandler = Callable[[str, tuple[str, ...]], "ExecResult | Awaitable[ExecResult]"]

#: Docker refuses memory limits under 6 MiB; the fake refuses them too (same contract).
MIN_MEMORY = 6 * 1024 * 1024
#: Docker's exit code for a container whose command cannot be found.
EXIT_NOT_FOUND = 127
#: ... and for an exec whose command cannot be found.
EXIT_CANNOT_EXEC = 126
_KILL_SIGNALS = {"SIGKILL", "KILL", "9"}


def default_exec(container_id: str, command: tuple[str, ...]) -> ExecResult:
    """A minimal stand-in for a shell: ``true``, ``false``, ``echo ...``, ``sh -c 'exit N'``
    (and ``sleep N``, which the runtime answers on its clock).

    Anything else fails as a missing binary does under Docker's exec (126). Tests and
    simulations script probes with their own handler (``FakeRuntime(exec_handler=...)``).
    """
    if not command:
        return ExecResult(EXIT_CANNOT_EXEC, b"no command given\n")
    head, *rest = command
    if head == "true":
        return ExecResult(0, b"")
    if head == "false":
        return ExecResult(1, b"")
    if head == "echo":
        return ExecResult(0, (" ".join(rest) + "\n").encode())
    if head == "sh" and rest[:1] == ["-c"] and len(rest) == 2:
        words = rest[1].split()
        if len(words) == 2 and words[0] == "exit" and words[1].isdigit():
            return ExecResult(int(words[1]), b"")
    return ExecResult(EXIT_CANNOT_EXEC, f'exec: "{head}": executable file not found in $PATH\n'
                      .encode())


@attrs.frozen
class Program:
    """What a fake container does once started (the fake's stand-in for a process)."""

    #: None: runs until signalled. Otherwise exits with this code after ``run_for``.
    exit_code: int | None = None
    #: Seconds from start to exit; a (low, high) pair is drawn from the seeded generator.
    run_for: float | tuple[float, float] = 0.0
    #: OOM-killed (exit 137, OOMKilled) this long after start, unless it exited before.
    oom_after: float | None = None
    #: Exit code on SIGTERM (143: the default action); None: ignores TERM, like a PID 1
    #: without a handler, so only the KILL at the end of the grace period stops it.
    on_term: int | None = EXIT_TERMINATED
    #: Seconds it takes to shut down after TERM (past the grace period it is KILLed).
    term_delay: float = 0.0
    #: Non-empty: start fails with this message (ContainerCannotRun, exit 127).
    cannot_run: str = ""
    #: Seconds between start and running; None: the runtime's default.
    start_delay: float | None = None
    #: Written to the log when it starts.
    logs: bytes = b""
    #: Written later: (seconds after start, bytes) pairs, while it still runs.
    log_schedule: tuple[tuple[float, bytes], ...] = ()
    #: Answers execs in this container; None: the runtime's handler.
    exec: ExecHandler | None = None
    #: Copies its stdin to its output and exits 0 at stdin's EOF, as ``cat`` does (at
    #: once in a container created without stdin: it reads EOF).
    echoes_stdin: bool = False

    @classmethod
    def serves(cls, **kw: Any) -> Program:
        """Runs until stopped (a server)."""
        return cls(**kw)

    @classmethod
    def exits(cls, code: int, *, after: float | tuple[float, float] = 0.0,
              **kw: Any) -> Program:
        """Exits with ``code`` ``after`` seconds (0: at once)."""
        return cls(exit_code=code, run_for=after, **kw)

    @classmethod
    def ooms(cls, *, after: float = 0.0, **kw: Any) -> Program:
        """Is OOM-killed ``after`` seconds after it starts."""
        return cls(oom_after=after, **kw)


#: Docker's sandboxes stop with SIGKILL (see docker.SANDBOX_STOP_SIGNAL): exit 137.
_SANDBOX_PROGRAM = Program(on_term=EXIT_KILLED)


@attrs.define(eq=False)
class _Box:
    """One engine-side container (sandbox or app), mutable, private to the fake."""

    id: str
    name: str
    role: str
    labels: dict[str, str]
    image: str
    created_at: float
    program: Program
    sandbox_id: str = ""
    state: ContainerState = ContainerState.CREATED
    ip: str = ""
    exit_code: int | None = None
    started_at: float | None = None
    finished_at: float | None = None
    oom_killed: bool = False
    error: str = ""
    log: list[bytes] = attrs.field(factory=list)
    #: When each line of ``log`` was begun (epoch seconds on the runtime's clock).
    log_times: list[float] = attrs.field(factory=list)
    #: Exec'd processes still running in it (the fake's ``docker top``).
    processes: set[FakeProcess] = attrs.field(factory=set)
    #: The main process's stdin (created with ``stdin``) and terminal (``tty``).
    stdin: FakeStdin | None = None
    tty: bool = False
    timers: list[asyncio.Task[None]] = attrs.field(factory=list)
    #: Resolved (and dropped) on any change that waiters care about: exit, new log lines.
    changed: asyncio.Future[None] | None = None
    removed: bool = False

    def notify(self) -> None:
        if self.changed is not None and not self.changed.done():
            self.changed.set_result(None)
        self.changed = None

    def wait_changed(self) -> asyncio.Future[None]:
        """Shared by every waiter: await it shielded, so one cancelled waiter (a log
        follower that goes away) does not cancel it for the others."""
        if self.changed is None or self.changed.done():
            self.changed = asyncio.get_running_loop().create_future()
        return self.changed


def _normalize(image: str) -> str:
    # Docker's reading of a bare name: "busybox" is "busybox:latest".
    last = image.rsplit("/", 1)[-1]
    return image if (":" in last or "@" in image) else f"{image}:latest"


def _lines(data: bytes) -> list[bytes]:
    return data.splitlines(keepends=True)


class FakeRuntime:
    """The fake implementation of :class:`kstate.runtime.base.ContainerRuntime`."""

    name = "fake"

    def __init__(
        self,
        clock: Clock | None = None,
        *,
        seed: int = 0,
        programs: Mapping[str, Program] | None = None,
        program_for: Callable[[ContainerSpec], Program | None] | None = None,
        default_program: Program = Program(),
        start_delay: float = 0.0,
        images: Iterable[str] = (BASE_IMAGE, HTTPD_IMAGE),
        registry: Iterable[str] = (),
        exec_handler: ExecHandler = default_exec,
        pod_cidr: str = "10.88.0.0/16",
    ) -> None:
        """``pod_cidr``: give each simulated node its own (its Node's podCIDR), or pod IPs
        repeat across nodes."""
        self.clock: Clock = clock or RealClock()
        self._rng = random.Random(seed)
        #: Keyed by container name first, then by image.
        self.programs: dict[str, Program] = dict(programs or {})
        self.program_for = program_for
        self.default_program = default_program
        self.start_delay = start_delay
        self.images: set[str] = {_normalize(i) for i in images}
        #: Images a pull can fetch (the fake's registry; empty: pulls fail as here).
        self.registry: set[str] = {_normalize(i) for i in registry}
        self.exec_handler = exec_handler
        self.reachable = True
        self._net = ipaddress.ip_network(pod_cidr)
        if self._net.num_addresses < 4:
            raise ValueError(f"pod_cidr {pod_cidr} has no room for a gateway and pods")
        self._gateway = next(self._net.hosts())
        self._ips_in_use: set[str] = set()
        self._ip_cursor = 1
        self._boxes: dict[str, _Box] = {}
        self._names: dict[str, str] = {}
        self._subscribers: list[_FakeEvents] = []

    # ------------------------------------------------------------------ fault hooks

    def set_reachable(self, reachable: bool) -> None:
        """Cut (False) or restore (True) the engine; cutting breaks every event stream."""
        self.reachable = reachable
        if not reachable:
            for sub in list(self._subscribers):
                sub.fail(self._unreachable())

    # Fault hooks act on the containers themselves, so they work during a cut as well.

    def crash(self, container_id: str, exit_code: int = 1) -> None:
        """The process exits now with ``exit_code`` (0 is a clean exit: Completed)."""
        self._exit(self._lookup(container_id), exit_code)

    def oom(self, container_id: str) -> None:
        """The kernel OOM-kills the process now."""
        self._exit(self._lookup(container_id), EXIT_KILLED, oom=True)

    def kill_sandbox(self, sandbox_id: str) -> None:
        """The sandbox dies (its namespace with it); its containers are left alone."""
        self._exit(self._lookup(sandbox_id, "sandbox"), EXIT_KILLED)

    def write_log(self, container_id: str, data: bytes) -> None:
        """Append output, as if the process wrote it."""
        self._write(self._lookup(container_id), data)

    def add_image(self, image: str) -> None:
        self.images.add(_normalize(image))

    def remove_image(self, image: str) -> None:
        self.images.discard(_normalize(image))

    def set_program(self, key: str, program: Program) -> None:
        """Program for containers named ``key`` or, failing that, of image ``key``."""
        self.programs[key] = program

    def counts(self) -> dict[str, int]:
        """How many boxes per role and state (cheap; for simulations' dashboards)."""
        out: dict[str, int] = {}
        for box in self._boxes.values():
            key = f"{box.role}/{box.state.value}"
            out[key] = out.get(key, 0) + 1
        return out

    # ------------------------------------------------------------------ plumbing

    def _unreachable(self) -> RuntimeUnreachable:
        return RuntimeUnreachable(
            "fake runtime: the engine is unreachable (fault injected; set_reachable(True))")

    def _write(self, box: _Box, data: bytes) -> None:
        now = self.clock.now()
        if box.log and not box.log[-1].endswith(b"\n"):  # continue a partial line
            data = box.log.pop() + data
            now = box.log_times.pop()
        lines = _lines(data)
        box.log.extend(lines)
        box.log_times.extend([now] * len(lines))
        box.notify()

    def _check(self) -> None:
        if not self.reachable:
            raise self._unreachable()

    def _new_id(self) -> str:
        return f"{self._rng.getrandbits(256):064x}"

    def _lookup(self, box_id: str, kind: str = "container") -> _Box:
        box = self._boxes.get(box_id)
        if box is None:
            raise ContainerNotFound(box_id, kind)
        return box

    def _get(self, box_id: str, kind: str = "container") -> _Box:
        """A box for an engine call: the engine must answer first."""
        self._check()
        return self._lookup(box_id, kind)

    def _program(self, spec: ContainerSpec) -> Program:
        if self.program_for is not None:
            chosen = self.program_for(spec)
            if chosen is not None:
                return chosen
        return (self.programs.get(spec.name) or self.programs.get(spec.image)
                or self.programs.get(_normalize(spec.image)) or self.default_program)

    def _emit(self, box: _Box, kind: EventKind, exit_code: int | None = None) -> None:
        if not self._subscribers:
            return
        labels = {k: v for k, v in box.labels.items() if k.startswith("io.kstate.")}
        event = RuntimeEvent(container_id=box.id, kind=kind, at=self.clock.now(),
                             is_sandbox=box.role == ROLE_SANDBOX, exit_code=exit_code,
                             labels=labels)
        for sub in self._subscribers:
            if matches(box.labels, sub.label_filter):
                sub.push(event)

    def _allocate_ip(self) -> str:
        size = self._net.num_addresses
        for _ in range(size):
            self._ip_cursor = self._ip_cursor % (size - 2) + 1  # skip network and broadcast
            candidate = str(self._net.network_address + self._ip_cursor)
            if candidate != str(self._gateway) and candidate not in self._ips_in_use:
                self._ips_in_use.add(candidate)
                return candidate
        raise RuntimeAdapterError(f"fake runtime: pod network {self._net} is full")

    def _schedule(self, box: _Box, delay: float, action: Callable[[], None]) -> None:
        async def fire() -> None:
            await self.clock.sleep(delay)
            action()

        def forget(task: asyncio.Task[None]) -> None:
            if task in box.timers:
                box.timers.remove(task)

        task = asyncio.get_running_loop().create_task(fire())
        box.timers.append(task)
        task.add_done_callback(forget)

    def _run(self, box: _Box) -> None:
        """created -> running, then arm the program's schedule."""
        box.state = ContainerState.RUNNING
        box.started_at = self.clock.now()
        box.exit_code, box.finished_at, box.oom_killed, box.error = None, None, False, ""
        if box.role == ROLE_SANDBOX:
            box.ip = self._allocate_ip()
        if program_logs := box.program.logs:
            self._write(box, program_logs)
        self._emit(box, EventKind.STARTED)
        box.notify()
        program = box.program
        for at, data in program.log_schedule:
            self._schedule(box, at, functools.partial(self._write, box, data))
        run_for = program.run_for
        if isinstance(run_for, tuple):
            run_for = self._rng.uniform(*run_for)
        plans: list[tuple[float, Callable[[], None]]] = []
        if program.echoes_stdin and box.stdin is None:
            plans.append((0.0, lambda: self._exit(box, 0)))  # it reads EOF at once
        if program.exit_code is not None:
            code = program.exit_code
            plans.append((run_for, lambda: self._exit(box, code)))
        if program.oom_after is not None:
            plans.append((program.oom_after, lambda: self._exit(box, EXIT_KILLED, oom=True)))
        if plans:
            delay, action = min(plans, key=lambda p: p[0])
            if delay <= 0:
                action()
            else:
                self._schedule(box, delay, action)

    def _exit(self, box: _Box, code: int, *, oom: bool = False) -> None:
        if box.state is not ContainerState.RUNNING:
            return
        box.state = ContainerState.EXITED
        box.exit_code, box.oom_killed, box.finished_at = code, oom, self.clock.now()
        current = asyncio.current_task() if _loop_running() else None
        for task in box.timers:
            if task is not current:
                task.cancel()
        if box.ip:
            self._ips_in_use.discard(box.ip)
            box.ip = ""
        for process in list(box.processes):  # a container's processes die with it
            process.kill()
        if oom:
            self._emit(box, EventKind.OOM)
        self._emit(box, EventKind.DIED, code)
        box.notify()

    def _signal(self, box: _Box, signal: str) -> None:
        if signal.upper() in _KILL_SIGNALS:
            self._exit(box, EXIT_KILLED)
            return
        on_term = box.program.on_term
        if on_term is None:
            return  # ignored, as a PID 1 without a handler ignores it
        if box.program.term_delay <= 0:
            self._exit(box, on_term)
        else:
            self._schedule(box, box.program.term_delay, lambda: self._exit(box, on_term))

    async def _wait_exit(self, box: _Box, timeout: float) -> None:
        sleeper = asyncio.ensure_future(self.clock.sleep(timeout))
        try:
            while box.state is ContainerState.RUNNING and not sleeper.done():
                await asyncio.wait([box.wait_changed(), sleeper],
                                   return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()

    # ------------------------------------------------------------------ engine and images

    async def version(self) -> RuntimeVersion:
        self._check()
        return RuntimeVersion("fake", "0.1.0", "1")

    async def image_present(self, image: str) -> bool:
        self._check()
        return _normalize(image) in self.images

    async def _pull(self, image: str) -> None:
        self._check()
        if _normalize(image) not in self.registry:
            raise RuntimeAdapterError(f"fake registry: no image {image!r}")
        self.images.add(_normalize(image))

    async def ensure_image(self, image: str, pull_policy: PullPolicy) -> EnsuredImage:
        return await apply_pull_policy(
            image, pull_policy,
            present=lambda: self.image_present(image),
            pull=lambda: self._pull(image),
        )

    async def import_image(
        self, tarball: bytes, tags: Sequence[str], changes: Sequence[str] = ()
    ) -> str:
        self._check()
        for tag in tags:
            self.images.add(_normalize(tag))
        return f"sha256:{self._new_id()}"

    async def network_info(self) -> NetworkInfo:
        self._check()
        return NetworkInfo(name="fake0", subnet=str(self._net), gateway=str(self._gateway))

    # ------------------------------------------------------------------ sandboxes

    def _new_box(self, name: str, role: str, labels: dict[str, str], image: str,
                 program: Program, sandbox_id: str = "") -> _Box:
        if name in self._names:
            raise ContainerAlreadyExists(name)
        box = _Box(id=self._new_id(), name=name, role=role, labels=labels, image=image,
                   created_at=self.clock.now(), program=program, sandbox_id=sandbox_id)
        self._boxes[box.id] = box
        self._names[name] = box.id
        return box

    def _sandbox_status(self, box: _Box) -> SandboxStatus:
        ready = box.state is ContainerState.RUNNING
        return SandboxStatus.from_labels(
            box.id, box.labels,
            state=SandboxState.READY if ready else SandboxState.NOTREADY,
            ip=box.ip, created_at=box.created_at,
        )

    async def create_sandbox(self, spec: SandboxSpec) -> SandboxStatus:
        self._check()
        if _normalize(BASE_IMAGE) not in self.images:
            raise ImageNotPresent(BASE_IMAGE, PullPolicy.NEVER.value,
                                  "build it with `kstate image build-base`")
        box = self._new_box(spec.runtime_name(), ROLE_SANDBOX, spec.all_labels(),
                            BASE_IMAGE, _SANDBOX_PROGRAM)
        self._run(box)
        return self._sandbox_status(box)

    async def inspect_sandbox(self, sandbox_id: str) -> SandboxStatus:
        box = self._get(sandbox_id, "sandbox")
        if box.role != ROLE_SANDBOX:
            raise ContainerNotFound(sandbox_id, "sandbox")
        return self._sandbox_status(box)

    async def remove_sandbox(self, sandbox_id: str) -> None:
        self._check()
        box = self._boxes.get(sandbox_id)
        if box is None:
            return
        for member in [b for b in self._boxes.values() if b.sandbox_id == box.id]:
            await self.remove_container(member.id)
        await self.remove_container(box.id)

    async def list_sandboxes(
        self, label_filter: Mapping[str, str] | None = None
    ) -> list[SandboxStatus]:
        self._check()
        return [self._sandbox_status(b) for b in self._boxes.values()
                if b.role == ROLE_SANDBOX and matches(b.labels, label_filter)]

    # ------------------------------------------------------------------ containers

    async def create_container(self, sandbox_id: str, spec: ContainerSpec) -> str:
        sandbox = self._get(sandbox_id, "sandbox")
        if sandbox.role != ROLE_SANDBOX:
            raise ContainerNotFound(sandbox_id, "sandbox")
        name = spec.runtime_name(sandbox.labels)
        if sandbox.state is not ContainerState.RUNNING:
            raise CreateContainerError(name, f"sandbox {sandbox.id[:12]} is not running")
        if _normalize(spec.image) not in self.images:
            raise ImageNotPresent(spec.image, spec.image_pull_policy.value)
        if spec.memory_bytes is not None and 0 < spec.memory_bytes < MIN_MEMORY:
            raise CreateContainerError(name, "Minimum memory limit allowed is 6MB")
        box = self._new_box(name, ROLE_CONTAINER, spec.all_labels(sandbox.labels, sandbox.id),
                            spec.image, self._program(spec), sandbox_id=sandbox.id)
        box.tty = spec.tty
        if spec.stdin:
            box.stdin = FakeStdin(once=spec.stdin_once,
                                  on_data=functools.partial(self._read_stdin, box),
                                  on_eof=functools.partial(self._stdin_eof, box))
        return box.id

    def _read_stdin(self, box: _Box, data: bytes) -> None:
        if box.program.echoes_stdin and box.state is ContainerState.RUNNING:
            self._write(box, data)

    def _stdin_eof(self, box: _Box) -> None:
        if box.program.echoes_stdin:
            self._exit(box, 0)

    async def start_container(self, container_id: str) -> None:
        box = self._get(container_id)
        if box.state is ContainerState.RUNNING:
            return
        sandbox = self._boxes.get(box.sandbox_id)
        if box.role == ROLE_CONTAINER and (
                sandbox is None or sandbox.state is not ContainerState.RUNNING):
            box.error, box.exit_code = "cannot join network of a non running container", 128
            raise ContainerCannotRun(box.id, box.error)
        if box.program.cannot_run:
            box.error, box.exit_code = box.program.cannot_run, EXIT_NOT_FOUND
            raise ContainerCannotRun(box.id, box.error)
        delay = box.program.start_delay
        delay = self.start_delay if delay is None else delay
        if delay > 0:
            await self.clock.sleep(delay)
            self._check()
            if box.removed:
                raise ContainerNotFound(box.id)
        self._run(box)

    async def stop_container(self, container_id: str, grace_seconds: float) -> None:
        box = self._get(container_id)
        if box.state is not ContainerState.RUNNING:
            return
        self._signal(box, "SIGTERM")
        if box.state is ContainerState.RUNNING:
            await self._wait_exit(box, max(0.0, grace_seconds))
        self._exit(box, EXIT_KILLED)  # no-op when it already exited

    async def kill_container(self, container_id: str, signal: str = "SIGKILL") -> None:
        box = self._get(container_id)
        if box.state is not ContainerState.RUNNING:
            raise ContainerNotRunning(box.id)
        self._signal(box, signal)

    async def remove_container(self, container_id: str) -> None:
        self._check()
        box = self._boxes.get(container_id)
        if box is None:
            return
        self._exit(box, EXIT_KILLED)  # force removal kills, and the engine says so
        for task in box.timers:
            task.cancel()
        box.removed = True
        del self._boxes[box.id]
        self._names.pop(box.name, None)
        box.notify()

    def _status(self, box: _Box) -> ContainerStatus:
        return container_status(
            box.id, box.labels, image=box.image,
            running=box.state is ContainerState.RUNNING,
            created_at=box.created_at,
            exited=box.state is ContainerState.EXITED,
            exit_code=box.exit_code,
            started_at=box.started_at,
            finished_at=box.finished_at,
            oom_killed=box.oom_killed,
            error=box.error,
        )

    async def list_containers(
        self, label_filter: Mapping[str, str] | None = None
    ) -> list[ContainerStatus]:
        self._check()
        return [self._status(b) for b in self._boxes.values()
                if b.role == ROLE_CONTAINER and matches(b.labels, label_filter)]

    async def inspect_container(self, container_id: str) -> ContainerStatus:
        box = self._get(container_id)
        if box.role != ROLE_CONTAINER:
            raise ContainerNotFound(container_id)
        return self._status(box)

    # ------------------------------------------------------------------ logs, exec, events

    async def logs(
        self, container_id: str, *, tail: int | None = None, follow: bool = False,
        since: float | None = None, timestamps: bool = False,
    ) -> AsyncIterator[bytes]:
        box = self._get(container_id)
        sent = len(box.log)
        for line in tail_lines(_shown(box, 0, since, timestamps), tail):
            yield line
        if follow:
            async for line in _follow(box, sent, since, timestamps):
                yield line

    async def exec(
        self, container_id: str, command: Sequence[str], timeout: float
    ) -> ExecResult:
        command = list(command)
        box = self._get(container_id)
        if box.state is not ContainerState.RUNNING:
            raise ContainerNotRunning(box.id)
        handler = box.program.exec or self.exec_handler
        answer = (self._sleep_exec(command) if handler is default_exec and command[0:1] == ["sleep"]
                  else handler(box.id, tuple(command)))
        if not inspect.isawaitable(answer):
            return answer
        work = asyncio.ensure_future(answer)
        sleeper = asyncio.ensure_future(self.clock.sleep(timeout))
        try:
            await asyncio.wait([work, sleeper], return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
        if not work.done():
            work.cancel()
            raise ExecTimeout(box.id, command, timeout)
        return work.result()

    async def _sleep_exec(self, command: Sequence[str]) -> ExecResult:
        await self.clock.sleep(float(command[1]) if len(command) > 1 else 0.0)
        return ExecResult(0, b"")

    async def exec_session(self, container_id: str, command: Sequence[str], *,
                           stdin: bool, tty: bool) -> ExecSession:
        box = self._get(container_id)
        if box.role != ROLE_CONTAINER:
            raise ContainerNotFound(container_id)
        if box.state is not ContainerState.RUNNING:
            raise ContainerNotRunning(box.id)
        handler = box.program.exec or self.exec_handler
        return FakeProcess(command, handler=functools.partial(handler, box.id),
                           sleep=self.clock.sleep, table=box.processes, tty=tty)

    async def attach(self, container_id: str, *, stdin: bool) -> ExecSession:
        box = self._get(container_id)
        if box.state is not ContainerState.RUNNING:
            raise ContainerNotRunning(box.id)
        follow = _follow(box, len(box.log))  # its output from now on
        attached = box.stdin if stdin and box.stdin is not None and box.stdin.open else None
        return FakeAttach(follow, tty=box.tty, stdin=attached)

    def processes(self, container_id: str) -> list[tuple[str, ...]]:
        """The commands of the exec'd processes running in a container."""
        return sorted(p.command for p in self._lookup(container_id).processes)

    async def port_forward(self, sandbox_id: str, port: int
                           ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        box = self._get(sandbox_id, "sandbox")
        if box.state is not ContainerState.RUNNING:
            raise ContainerNotRunning(box.id)
        ours, theirs = socket.socketpair()
        server = await asyncio.open_connection(sock=theirs)
        task = asyncio.ensure_future(echo_port(*server))
        box.timers.append(task)  # the sandbox's death ends its echo server

        def forget(done: asyncio.Task[None]) -> None:
            if done in box.timers:
                box.timers.remove(done)

        task.add_done_callback(forget)
        return await asyncio.open_connection(sock=ours)

    def events(self, label_filter: Mapping[str, str] | None = None) -> EventStream:
        return _FakeEvents(self, {MANAGED: "true", **(label_filter or {})})

    async def close(self) -> None:
        for box in self._boxes.values():
            for task in box.timers:
                task.cancel()
        for sub in list(self._subscribers):
            await sub.close()


def _shown(box: _Box, start: int, since: float | None = None, timestamps: bool = False
           ) -> list[bytes]:
    """A container's log lines from index ``start``, as ``logs`` shows them."""
    picked = [(t, line) for t, line in zip(box.log_times[start:], box.log[start:], strict=True)
              if since is None or t >= since]
    return [log_timestamp(t) + line if timestamps else line for t, line in picked]


async def _follow(box: _Box, start: int, since: float | None = None,
                  timestamps: bool = False) -> AsyncIterator[bytes]:
    """The lines a container writes from log index ``start`` on, until it is not running
    (then what it wrote last, and the end), as the engine follows a log."""
    while True:
        lines, start = _shown(box, start, since, timestamps), len(box.log)
        for line in lines:
            yield line
        if box.state is not ContainerState.RUNNING or box.removed:
            return
        await asyncio.shield(box.wait_changed())


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


class _FakeEvents(EventStream):
    def __init__(self, runtime: FakeRuntime, label_filter: Mapping[str, str]) -> None:
        super().__init__()
        self._runtime = runtime
        self.label_filter = dict(label_filter)
        self._queue: deque[RuntimeEvent | RuntimeAdapterError] = deque()
        self._waiter: asyncio.Future[None] | None = None

    def push(self, item: RuntimeEvent | RuntimeAdapterError) -> None:
        self._queue.append(item)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def fail(self, error: RuntimeAdapterError) -> None:
        self.push(error)
        if self in self._runtime._subscribers:
            self._runtime._subscribers.remove(self)

    async def _start(self) -> None:
        self._runtime._check()
        self._runtime._subscribers.append(self)

    async def _next(self) -> RuntimeEvent | None:
        while not self._queue:
            if self._closed:
                return None
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
        item = self._queue.popleft()
        if isinstance(item, RuntimeAdapterError):
            raise item
        return item

    async def _stop(self) -> None:
        if self in self._runtime._subscribers:
            self._runtime._subscribers.remove(self)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


__all__ = ["ExecHandler", "FakeRuntime", "Program", "default_exec"]
