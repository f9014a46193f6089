"""The container runtime protocol: what a node agent may ask of a container engine.

Where it sits: node agent -> **runtime adapter** (docker | fake | containerd) -> containers.
The agent translates Pods into the small value types below, drives the adapter through
:class:`ContainerRuntime`, and turns what comes back (states, exit codes, reasons,
events) into Pod status. This module knows nothing of the Kubernetes object model, so a
runtime can be tested, benchmarked and faked on its own.

Why it exists: the agent must run the same code over a real engine and over a simulated
one (thousands of nodes in one process). Everything both adapters must agree on lives
here, once: the label vocabulary that ties containers to pods, how a termination reason
is derived, what imagePullPolicy means without a registry, how log bytes become lines.
The contract suite (``tests/runtime/test_contract.py``, and ``test_contract_streams.py``
for exec / attach / port-forward) proves both adapters honour it.

A sketch of the agent's use (one pod, one container)::

    sandbox = await rt.create_sandbox(SandboxSpec(pod_uid=uid, namespace="default",
                                                  name="web-1", node_name="n1"))
    await rt.ensure_image("kstate/httpd:1", PullPolicy.NEVER)
    cid = await rt.create_container(sandbox.id, ContainerSpec(name="web",
                                    image="kstate/httpd:1", command=("httpd", "-f")))
    await rt.start_container(cid)
    status = await rt.inspect_container(cid)    # state RUNNING, started_at, ...
    await rt.stop_container(cid, grace_seconds=30)
    await rt.remove_sandbox(sandbox.id)         # removes its containers too
"""

from __future__ import annotations

import abc
import asyncio
import enum
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from types import TracebackType
from typing import Protocol, TypeVar, runtime_checkable

import attrs

from kstate.errors import ImageNotPresent, RuntimeAdapterError

log = logging.getLogger("kstate.runtime")

# --------------------------------------------------------------------------- labels

#: Every label kstate writes on a container or sandbox starts with this prefix; user
#: labels under it are overwritten, so identity cannot be spoofed by a pod's own labels.
LABEL_PREFIX = "io.kstate."
#: Present (``"true"``) on everything kstate created: the runtime's own inventory.
MANAGED = "io.kstate.managed"
#: ``"sandbox"`` or ``"container"``.
ROLE = "io.kstate.role"
POD_UID = "io.kstate.pod.uid"
POD_NAMESPACE = "io.kstate.pod.namespace"
POD_NAME = "io.kstate.pod.name"
NODE_NAME = "io.kstate.node.name"
#: The cluster (one ``kstate up`` data directory) whose adapter made the container, when
#: the adapter was given one: what scopes adoption and ``kstate down --purge`` to it on an
#: engine other clusters share.
CLUSTER = "io.kstate.cluster"
SANDBOX_ID = "io.kstate.sandbox.id"
SANDBOX_ATTEMPT = "io.kstate.sandbox.attempt"
CONTAINER_NAME = "io.kstate.container.name"
#: The restart attempt (0, 1, 2, ...): with pod uid and container name it names one
#: incarnation of a container, which is what lets an agent adopt after a restart.
ATTEMPT = "io.kstate.container.attempt"

ROLE_SANDBOX = "sandbox"
ROLE_CONTAINER = "container"

#: The image every sandbox runs (and the quick start's default); built locally.
BASE_IMAGE = "kstate/base:1"
HTTPD_IMAGE = "kstate/httpd:1"

#: The sandbox's process (Docker's sandbox command, containerd's pause image): sleeps
#: forever, exits at once on TERM (a PID 1 without a handler would ignore it and cost the
#: whole grace period).
PAUSE_COMMAND = ("sh", "-c", "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done")

#: Exit code of a process killed by SIGKILL (128 + 9), as engines report it.
EXIT_KILLED = 137
#: Exit code of a process that died of SIGTERM's default action (128 + 15).
EXIT_TERMINATED = 143


class _FrozenMap(Mapping[str, str]):
    """A read-only mapping that pickles: statuses travel inside model-checker states,
    which the checker's worker processes pickle (``MappingProxyType`` cannot be)."""

    __slots__ = ("_items",)

    def __init__(self, items: Mapping[str, str]) -> None:
        self._items = dict(items)

    def __getitem__(self, key: str) -> str:
        return self._items[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return repr(self._items)

    def __reduce__(self) -> tuple[type[_FrozenMap], tuple[dict[str, str]]]:
        return (_FrozenMap, (self._items,))


def _frozen_map(value: Mapping[str, str] | None) -> Mapping[str, str]:
    return _FrozenMap(value or {})


def _str_tuple(value: Sequence[str] | None) -> tuple[str, ...]:
    if isinstance(value, str):  # a bare string would become one argument per character
        raise TypeError(f"expected a sequence of strings, got the string {value!r}")
    return tuple(value or ())


def _env_tuple(
    value: Sequence[tuple[str, str]] | Mapping[str, str] | None,
) -> tuple[tuple[str, str], ...]:
    items = value.items() if isinstance(value, Mapping) else (value or ())
    return tuple((str(k), str(v)) for k, v in items)


def user_labels(labels: Mapping[str, str]) -> dict[str, str]:
    """The labels a caller asked for, without kstate's reserved ones."""
    return {k: v for k, v in labels.items() if not k.startswith(LABEL_PREFIX)}


def matches(labels: Mapping[str, str], label_filter: Mapping[str, str] | None) -> bool:
    """Equality match on every key of ``label_filter`` (what list/event filters mean).

    >>> matches({"a": "1", "b": "2"}, {"a": "1"}), matches({"a": "1"}, {"a": "2"})
    (True, False)
    """
    return all(labels.get(k) == v for k, v in (label_filter or {}).items())


# --------------------------------------------------------------------------- enums


class PullPolicy(enum.StrEnum):
    """Kubernetes' ``imagePullPolicy`` values."""

    ALWAYS = "Always"
    IF_NOT_PRESENT = "IfNotPresent"
    NEVER = "Never"


class SandboxState(enum.StrEnum):
    READY = "ready"
    NOTREADY = "notready"


class ContainerState(enum.StrEnum):
    CREATED = "created"
    RUNNING = "running"
    EXITED = "exited"
    UNKNOWN = "unknown"


class Reason(enum.StrEnum):
    """Kubernetes' terminated reasons, exactly as ``containerStatuses`` shows them."""

    COMPLETED = "Completed"
    ERROR = "Error"
    OOM_KILLED = "OOMKilled"
    CANNOT_RUN = "ContainerCannotRun"


class EventKind(enum.StrEnum):
    STARTED = "started"
    DIED = "died"
    OOM = "oom"


def termination_reason(exit_code: int, *, oom_killed: bool, cannot_run: bool) -> Reason:
    """The one place a terminated container's reason is decided (both adapters use it).

    A start failure wins (there was no process to exit); an OOM kill wins over the exit
    code it produced (137), exactly as Kubernetes reports it.

    >>> termination_reason(137, oom_killed=True, cannot_run=False).value
    'OOMKilled'
    >>> termination_reason(0, oom_killed=False, cannot_run=False).value
    'Completed'
    """
    if cannot_run:
        return Reason.CANNOT_RUN
    if oom_killed:
        return Reason.OOM_KILLED
    return Reason.COMPLETED if exit_code == 0 else Reason.ERROR


# --------------------------------------------------------------------------- value types


@attrs.frozen
class SandboxSpec:
    """A pod's sandbox: the network namespace (IP, localhost, hostname) its containers share."""

    pod_uid: str
    namespace: str
    name: str
    node_name: str
    #: Defaults to the pod name, as Kubernetes does.
    hostname: str = ""
    #: Re-creating a dead sandbox bumps this, so the new one never collides with the old.
    attempt: int = 0
    labels: Mapping[str, str] = attrs.field(factory=dict, converter=_frozen_map, hash=False)

    def effective_hostname(self) -> str:
        """The hostname the pod gets: Kubernetes truncates it to 63 characters (a DNS
        label)."""
        return (self.hostname or self.name)[:63].rstrip("-.")

    def identity_labels(self) -> dict[str, str]:
        """The labels every container of this pod carries."""
        return {
            MANAGED: "true",
            POD_UID: self.pod_uid,
            POD_NAMESPACE: self.namespace,
            POD_NAME: self.name,
            NODE_NAME: self.node_name,
        }

    def all_labels(self) -> dict[str, str]:
        return {
            **user_labels(self.labels),
            **self.identity_labels(),
            ROLE: ROLE_SANDBOX,
            SANDBOX_ATTEMPT: str(self.attempt),
        }

    def runtime_name(self) -> str:
        """A unique, readable engine-side name (dockershim's scheme): one per attempt."""
        return f"kstate_POD_{self.name}_{self.namespace}_{self.pod_uid}_{self.attempt}"


@attrs.frozen
class SandboxStatus:
    id: str
    pod_uid: str
    namespace: str
    name: str
    node_name: str
    state: SandboxState
    #: Empty when the sandbox is not running (its namespace is gone).
    ip: str
    created_at: float
    attempt: int = 0
    labels: Mapping[str, str] = attrs.field(factory=dict, converter=_frozen_map, hash=False)

    @classmethod
    def from_labels(
        cls,
        id: str,
        labels: Mapping[str, str],
        *,
        state: SandboxState,
        ip: str,
        created_at: float,
    ) -> SandboxStatus:
        return cls(
            id=id,
            pod_uid=labels.get(POD_UID, ""),
            namespace=labels.get(POD_NAMESPACE, ""),
            name=labels.get(POD_NAME, ""),
            node_name=labels.get(NODE_NAME, ""),
            state=state,
            ip=ip,
            created_at=created_at,
            attempt=int(labels.get(SANDBOX_ATTEMPT, "0") or 0),
            labels=labels,
        )


@attrs.frozen
class ContainerSpec:
    """One container of a pod, as the runtime needs it.

    ``command`` replaces the image's entrypoint and ``args`` its default arguments, with
    Kubernetes' rules (``args`` alone keep the image's entrypoint).
    """

    name: str
    image: str
    image_pull_policy: PullPolicy = PullPolicy.IF_NOT_PRESENT
    command: tuple[str, ...] = attrs.field(default=(), converter=_str_tuple)
    args: tuple[str, ...] = attrs.field(default=(), converter=_str_tuple)
    #: Ordered pairs: later entries may refer to earlier ones, so order matters.
    env: tuple[tuple[str, str], ...] = attrs.field(default=(), converter=_env_tuple)
    working_dir: str = ""
    cpu_millicores: int | None = None
    memory_bytes: int | None = None
    #: Keep the process's stdin open for attaches (``stdin: true``); ``stdin_once``: the
    #: first attach that closes it closes it for good; ``tty``: run on a terminal.
    stdin: bool = False
    stdin_once: bool = False
    tty: bool = False
    attempt: int = 0
    labels: Mapping[str, str] = attrs.field(factory=dict, converter=_frozen_map, hash=False)

    def all_labels(self, sandbox_labels: Mapping[str, str], sandbox_id: str) -> dict[str, str]:
        identity = {k: sandbox_labels[k] for k in
                    (MANAGED, POD_UID, POD_NAMESPACE, POD_NAME, NODE_NAME, CLUSTER)
                    if k in sandbox_labels}
        return {
            **user_labels(self.labels),
            **identity,
            ROLE: ROLE_CONTAINER,
            SANDBOX_ID: sandbox_id,
            CONTAINER_NAME: self.name,
            ATTEMPT: str(self.attempt),
        }

    def runtime_name(self, sandbox_labels: Mapping[str, str]) -> str:
        pod = sandbox_labels.get(POD_NAME, "")
        ns = sandbox_labels.get(POD_NAMESPACE, "")
        uid = sandbox_labels.get(POD_UID, "")
        return f"kstate_{self.name}_{pod}_{ns}_{uid}_{self.attempt}"


@attrs.frozen
class ContainerStatus:
    """What the runtime knows about one container; times are epoch seconds."""

    id: str
    name: str
    sandbox_id: str
    state: ContainerState
    image: str
    created_at: float
    attempt: int = 0
    pod_uid: str = ""
    #: Set once EXITED.
    exit_code: int | None = None
    started_at: float | None = None
    #: None also when the process never ran (ContainerCannotRun).
    finished_at: float | None = None
    oom_killed: bool = False
    #: Set once EXITED: Completed, Error, OOMKilled or ContainerCannotRun.
    reason: Reason | None = None
    message: str = ""
    labels: Mapping[str, str] = attrs.field(factory=dict, converter=_frozen_map, hash=False)


def container_status(
    id: str,
    labels: Mapping[str, str],
    *,
    image: str,
    running: bool,
    created_at: float,
    exited: bool,
    exit_code: int | None,
    started_at: float | None,
    finished_at: float | None,
    oom_killed: bool,
    error: str,
) -> ContainerStatus:
    """Assemble a status from an engine's raw facts; both adapters go through here so
    state, reason and the ContainerCannotRun rule cannot drift apart."""
    cannot_run = bool(error) and not running
    if running:
        state = ContainerState.RUNNING
    elif exited or cannot_run:
        state = ContainerState.EXITED
    else:
        state = ContainerState.CREATED
    if started_at is not None and finished_at is not None and finished_at < started_at:
        # Docker stamps StartedAt after its start call returns, so a process that exits
        # at once can "finish" before it "started"; keep time monotonic for the agent.
        finished_at = started_at
    reason = None
    if state is ContainerState.EXITED:
        exit_code = exit_code if exit_code is not None else 128
        reason = termination_reason(exit_code, oom_killed=oom_killed, cannot_run=cannot_run)
    else:
        exit_code = None
    return ContainerStatus(
        id=id,
        name=labels.get(CONTAINER_NAME, ""),
        sandbox_id=labels.get(SANDBOX_ID, ""),
        state=state,
        image=image,
        created_at=created_at,
        attempt=int(labels.get(ATTEMPT, "0") or 0),
        pod_uid=labels.get(POD_UID, ""),
        exit_code=exit_code,
        started_at=started_at,
        finished_at=finished_at if state is ContainerState.EXITED else None,
        oom_killed=oom_killed and state is ContainerState.EXITED,
        reason=reason,
        message=error if cannot_run else "",
        labels=labels,
    )


@attrs.frozen
class ExecResult:
    exit_code: int
    #: stdout and stderr interleaved as the process wrote them.
    output: bytes


@attrs.frozen
class RuntimeEvent:
    """A container lifecycle change, pushed so the agent can react without polling."""

    container_id: str
    kind: EventKind
    at: float
    #: True for a sandbox (its death means the pod lost its network namespace).
    is_sandbox: bool = False
    #: For DIED.
    exit_code: int | None = None
    #: kstate's labels of the container (pod uid, container name, attempt, ...).
    labels: Mapping[str, str] = attrs.field(factory=dict, converter=_frozen_map, hash=False)


@attrs.frozen
class RuntimeVersion:
    runtime_name: str
    runtime_version: str
    api_version: str


@attrs.frozen
class NetworkInfo:
    """The pod network: containers reach the host on ``gateway`` (where the proxy listens)."""

    name: str
    subnet: str
    gateway: str


@attrs.frozen
class EnsuredImage:
    """What ``ensure_image`` did; ``message`` is Kubernetes' event text for it."""

    image: str
    pulled: bool
    message: str


# --------------------------------------------------------------------------- events


class EventStream(abc.ABC):
    """A subscription to runtime events: an async iterator and an async context manager.

    The subscription is in place once :meth:`start` returns (``async with`` calls it), so
    an agent that subscribes *before* acting never misses the consequence of its action.
    Iteration ends when the stream is closed; an engine that goes away raises
    :class:`~kstate.errors.RuntimeUnreachable` (relist, then subscribe again).
    """

    def __init__(self) -> None:
        self._started = False
        self._closed = False

    async def start(self) -> EventStream:
        if not self._started:
            self._started = True
            await self._start()
        return self

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            await self._stop()

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> RuntimeEvent:
        await self.start()
        if self._closed:
            raise StopAsyncIteration
        event = await self._next()
        if event is None:
            raise StopAsyncIteration
        return event

    async def __aenter__(self) -> EventStream:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @abc.abstractmethod
    async def _start(self) -> None: ...

    @abc.abstractmethod
    async def _next(self) -> RuntimeEvent | None:
        """The next event, or None once closed."""

    @abc.abstractmethod
    async def _stop(self) -> None: ...


# --------------------------------------------------------------------------- streams

#: :meth:`ExecSession.read` tags output with the stream it came from.
STDOUT, STDERR = 1, 2


class ExecSession(abc.ABC):
    """One interactive process (``kubectl exec``) or a container's main process
    (``kubectl attach``), with the streams Kubernetes' remote-command protocol carries.

    The contract every adapter keeps (the contract suite checks it):

    * :meth:`read` yields ``(STDOUT | STDERR, bytes)`` as the process writes, and None
      once its output ends (with a TTY everything is STDOUT, as on a terminal);
    * :meth:`write` feeds stdin (only when the session was opened with ``stdin=True``);
      :meth:`close_stdin` sends EOF, so ``cat`` ends. An attach's stdin is the
      container's own: its EOF (or the session's close) closes the container's stdin
      for a ``stdin_once`` container without a TTY, whose output then goes on to the
      end; otherwise it ends the attach's output and leaves stdin open for the next one
      (what Docker and containerd both do);
    * :meth:`resize` sets the TTY's size (ignored without a TTY);
    * :meth:`wait` returns the exit code once the process exited (None for attach: the
      container's process goes on);
    * :meth:`close` ends the session; an exec'd process still running is killed with its
      children, so a client that goes away mid-command leaks nothing. It is idempotent.
    """

    tty: bool = False

    @abc.abstractmethod
    async def read(self) -> tuple[int, bytes] | None: ...

    @abc.abstractmethod
    async def write(self, data: bytes) -> None: ...

    @abc.abstractmethod
    async def close_stdin(self) -> None: ...

    @abc.abstractmethod
    async def resize(self, width: int, height: int) -> None: ...

    @abc.abstractmethod
    async def wait(self) -> int | None: ...

    @abc.abstractmethod
    async def close(self) -> None: ...


# --------------------------------------------------------------------------- protocol


@runtime_checkable
class ContainerRuntime(Protocol):
    """The operations a node agent uses. Every adapter raises only kstate errors.

    Teardown is idempotent (CRI's rule): removing something already gone succeeds, so an
    agent restarting mid-teardown can simply repeat it. Everything else on an unknown id
    raises :class:`~kstate.errors.ContainerNotFound`.
    """

    name: str

    async def version(self) -> RuntimeVersion: ...

    async def image_present(self, image: str) -> bool: ...

    async def ensure_image(self, image: str, pull_policy: PullPolicy) -> EnsuredImage:
        """Make ``image`` usable under ``pull_policy`` or raise ``ImageNotPresent``."""
        ...

    async def create_sandbox(self, spec: SandboxSpec) -> SandboxStatus: ...

    async def inspect_sandbox(self, sandbox_id: str) -> SandboxStatus: ...

    async def remove_sandbox(self, sandbox_id: str) -> None:
        """Remove the sandbox and every container in it (force: no grace)."""
        ...

    async def list_sandboxes(
        self, label_filter: Mapping[str, str] | None = None
    ) -> list[SandboxStatus]: ...

    async def create_container(self, sandbox_id: str, spec: ContainerSpec) -> str:
        """Create (not start) a container in the sandbox's namespaces; returns its id."""
        ...

    async def start_container(self, container_id: str) -> None:
        """Start it; ``ContainerCannotRun`` if the process could not be started."""
        ...

    async def stop_container(self, container_id: str, grace_seconds: float) -> None:
        """SIGTERM, wait up to ``grace_seconds``, then SIGKILL; returns once exited."""
        ...

    async def kill_container(self, container_id: str, signal: str = "SIGKILL") -> None: ...

    async def remove_container(self, container_id: str) -> None: ...

    async def list_containers(
        self, label_filter: Mapping[str, str] | None = None
    ) -> list[ContainerStatus]:
        """App containers (not sandboxes) with full status, sorted by creation."""
        ...

    async def inspect_container(self, container_id: str) -> ContainerStatus: ...

    def logs(
        self, container_id: str, *, tail: int | None = None, follow: bool = False,
        since: float | None = None, timestamps: bool = False,
    ) -> AsyncIterator[bytes]:
        """Output lines (with their newline; the last may lack it), stdout and stderr
        interleaved. ``follow`` keeps streaming until the container exits; ``since``
        (epoch seconds) keeps lines written at or after it (before ``tail`` applies);
        ``timestamps`` prefixes each line with its RFC 3339 time and a space, as
        Kubernetes shows it (:func:`log_timestamp`)."""
        ...

    async def exec(
        self, container_id: str, command: Sequence[str], timeout: float
    ) -> ExecResult:
        """Run ``command`` in a running container; ``ExecTimeout`` past ``timeout``."""
        ...

    async def exec_session(self, container_id: str, command: Sequence[str], *,
                           stdin: bool, tty: bool) -> ExecSession:
        """Start ``command`` in a running container, interactively (see
        :class:`ExecSession`); ``ContainerNotRunning`` if it is not running."""
        ...

    async def attach(self, container_id: str, *, stdin: bool) -> ExecSession:
        """The running container's main process: its output from now on, and with
        ``stdin`` its stdin when the container was created with one (input for a
        container without is discarded, as every engine does; the API server refuses
        such a request first). The session has a TTY when the container was created
        with one: a process's terminal cannot change once it runs."""
        ...

    async def port_forward(self, sandbox_id: str, port: int
                           ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A TCP connection to ``port`` in the sandbox's network namespace
        (``RuntimeAdapterError`` with the engine's reason if nothing listens)."""
        ...

    def events(self, label_filter: Mapping[str, str] | None = None) -> EventStream:
        """Lifecycle events of matching containers and sandboxes. ``started`` precedes
        ``died``; an ``oom`` may come before or after its ``died`` (Docker sends either)."""
        ...

    async def network_info(self) -> NetworkInfo: ...

    async def close(self) -> None: ...


# --------------------------------------------------------------------------- shared logic


async def apply_pull_policy(
    image: str,
    policy: PullPolicy,
    *,
    present: Callable[[], Awaitable[bool]],
    pull: Callable[[], Awaitable[None]],
) -> EnsuredImage:
    """imagePullPolicy over local images, the same for every adapter.

    * ``Never``: the local image or ``ImageNotPresent`` (reason ErrImageNeverPull).
    * ``IfNotPresent``: the local image; else a pull, whose failure is ErrImagePull.
    * ``Always``: a pull. There is no registry on a kstate node, so the pull usually
      fails; then a *local* image is used with a warning (what a user who built the
      image locally means), and only a missing image is ErrImagePull. Kubernetes would
      fail here; kstate prefers the quick start to work and says so in the log.
    """
    policy = PullPolicy(policy)
    local = EnsuredImage(image, False, f'Container image "{image}" already present on machine')
    if policy is PullPolicy.NEVER:
        if await present():
            return local
        raise ImageNotPresent(image, policy.value, "the pull policy forbids pulling; "
                              "build or load it locally (kstate image build-base)")
    if policy is PullPolicy.IF_NOT_PRESENT and await present():
        return local
    try:
        await pull()
    except RuntimeAdapterError as err:
        if policy is PullPolicy.ALWAYS and await present():
            message = (f'Failed to pull image "{image}" ({err}); using the local image '
                       "(imagePullPolicy Always, no registry reachable)")
            log.warning("%s", message)
            return EnsuredImage(image, False, message)
        raise ImageNotPresent(image, policy.value, f"pull failed: {err}") from err
    return EnsuredImage(image, True, f'Successfully pulled image "{image}"')


async def split_lines(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """Re-cut a byte stream at newlines, so every adapter's logs yield whole lines."""
    pending = b""
    async for chunk in chunks:
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            yield line + b"\n"
    if pending:
        yield pending


#: The environment variable marking an exec'd process (and its children) for kill: neither
#: Docker nor CRI can kill an exec'd process, so closing a session kills by this marker.
EXEC_MARKER = "KSTATE_EXEC_SESSION"


def exec_marker() -> str:
    """A fresh ``NAME=value`` marker for one exec session's environment."""
    return f"{EXEC_MARKER}={secrets.token_hex(16)}"


def kill_marked_command(marker: str) -> list[str]:
    """The in-container command that SIGKILLs every process whose environment holds
    ``marker`` (run through the adapter's own one-shot exec)."""
    script = (f'for p in /proc/[0-9]*; do grep -q "{marker}" "$p/environ" 2>/dev/null '
              '&& kill -9 "${p#/proc/}" 2>/dev/null; done; true')
    return ["sh", "-c", script]


def log_timestamp(at: float) -> bytes:
    """RFC 3339 with nanoseconds in UTC, the prefix ``kubectl logs --timestamps`` shows.

    >>> log_timestamp(0.5)
    b'1970-01-01T00:00:00.500000000Z '
    """
    whole = int(at)
    nanos = round((at - whole) * 1e9)
    if nanos >= 1_000_000_000:
        whole, nanos = whole + 1, nanos - 1_000_000_000
    stamp = datetime.fromtimestamp(whole, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{nanos:09d}Z ".encode()


_Line = TypeVar("_Line")


def tail_lines(lines: Sequence[_Line], tail: int | None) -> Sequence[_Line]:
    """The last ``tail`` lines (all when ``tail`` is None; none for 0)."""
    if tail is None:
        return lines
    return lines[max(0, len(lines) - tail):] if tail > 0 else []
