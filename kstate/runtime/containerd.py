"""The containerd adapter: pods as CRI sandboxes and containers, over gRPC.

Where it sits: node agent -> **runtime adapter (containerd)** -> containerd's CRI plugin
-> runc containers on a CNI bridge. It is a client of the Kubernetes Container Runtime
Interface ``runtime.v1`` (RuntimeService and ImageService), the API the kubelet itself
uses, spoken over containerd's unix socket with ``grpcio``; this is the only kstate module
that imports it. The message and stub modules are generated from kstate's own subset of
the published API (``kstate/runtime/cri/api.proto``: names and field numbers of
k8s.io/cri-api ``pkg/apis/runtime/v1/api.proto``; see docs/runtime.md).

Why it exists: the design card runs the lifecycles "against a containerd/Docker runtime
adapter". A pod maps onto CRI one to one:

* a **sandbox** is ``RunPodSandbox``: containerd starts the pause image
  (:data:`~kstate.runtime.containerd_host.PAUSE_IMAGE`), and CNI's bridge plugin gives it
  the pod's own IP; ``StopPodSandbox``/``RemovePodSandbox`` take it down;
* **app containers** are ``CreateContainer``/``StartContainer`` in that sandbox (shared
  network namespace: localhost and the pod IP), ``StopContainer`` with the grace period,
  ``RemoveContainer``; ``ContainerStatus`` gives state, exit code, times and OOM;
* **probes** are ``ExecSync``; **logs** are read from the files containerd writes in CRI's
  format (``<RFC3339Nano> <stream> <P|F> <text>``), as the kubelet reads them (the
  record times serve ``since`` and ``timestamps``);
* **images** are checked with ``ImageStatus`` and never pulled: a kstate node has no
  registry and no network, so "pull" fails locally (ErrImagePull, then the agent's
  ImagePullBackOff) and ``imagePullPolicy: Never`` gives ErrImageNeverPull. Local images
  come from ``ctr -n k8s.io images import`` (:mod:`kstate.runtime.containerd_host`);
* ``ContainerStats`` backs :meth:`ContainerdRuntime.stats` (for resource metrics).

Every sandbox and container carries kstate's ``io.kstate.*`` labels as CRI labels, so the
agent adopts after a restart exactly as on Docker, and an adapter given a ``cluster``
sees only that cluster's objects (``kstate down --purge`` relies on it).

What CRI lacks, and how it is bridged:

* **events**: containerd 1.6 (Debian 12) has no ``GetContainerEvents``; the stream polls
  ``ListContainers``/``ListPodSandbox`` (every :data:`EVENT_POLL_SECONDS`) and reports the
  differences from the snapshot it took when it started, so an agent that subscribes
  before acting still misses nothing;
* **signals**: CRI stops containers but cannot signal them; SIGKILL is ``StopContainer``
  with timeout 0 (CRI's "kill now"), any other signal goes through containerd's task API
  with ``ctr tasks kill``;
* **start failures**: containerd reports ``StartError`` with exit code 128; the adapter
  derives Docker's codes (127 not found, 126 not executable) from the message, so
  ContainerCannotRun reads the same on both runtimes;
* **memory floor**: runc only fails a too-small memory limit when the task starts, so the
  adapter refuses limits under Docker's 6 MiB floor at create (CreateContainerError).

* **streams**: ``kubectl exec|attach|port-forward`` are CRI ``Exec``/``Attach``/
  ``PortForward``, whose URLs :mod:`kstate.runtime.containerd_streams` connects to; CRI
  cannot kill an exec'd process, so each runs under ``env`` with a marker that closing
  the session kills by (as on Docker). Probes use ``ExecSync``.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import re
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import attrs
import grpc
import grpc.aio

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
    CLUSTER,
    MANAGED,
    POD_NAME,
    POD_NAMESPACE,
    POD_UID,
    ROLE,
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
    exec_marker,
    kill_marked_command,
    tail_lines,
)
from kstate.runtime.containerd_host import (
    BRIDGE,
    CRI_NAMESPACE,
    GATEWAY,
    PAUSE_IMAGE,
    SUBNET,
    ContainerdHost,
    default_socket,
)
from kstate.runtime.containerd_streams import CriSession
from kstate.runtime.containerd_streams import port_forward as cri_port_forward
from kstate.runtime.cri import api_pb2 as cri
from kstate.runtime.cri import api_pb2_grpc as cri_grpc

T = TypeVar("T")
S = TypeVar("S", SandboxStatus, ContainerStatus)

#: How often an event stream compares containerd's listings (containerd 1.6 pushes none).
EVENT_POLL_SECONDS = 0.1
#: Docker's (and so kstate's) smallest memory limit; runc would only fail at start.
MIN_MEMORY_BYTES = 6 * 1024 * 1024
#: CFS period the CPU limit is expressed in (the kubelet's default, 100 ms).
CPU_PERIOD_US = 100_000
#: How long a log follower waits between reads of a growing file.
LOG_POLL_SECONDS = 0.05
#: containerd's refusal to remove a container whose start has not returned yet
STARTING = "in starting state"
_NANO = 1e-9
IMAGE_ANNOTATION = "io.kstate.image"
HOSTNAME_ANNOTATION = "io.kstate.hostname"
#: How the container was created ("stdin", "tty"): CRI's status does not say, and an
#: attach must ask for exactly the streams the container has.
STREAMS_ANNOTATION = "io.kstate.streams"
#: The kubelet's namespaces for a pod: network and IPC shared, each container its own PID
#: namespace (CRI's default is a shared one; Kubernetes' is not, so a container's process
#: is PID 1 and ignores a TERM it has no handler for, as on Docker).
_POD_NAMESPACES = cri.NamespaceOption(network=cri.POD, pid=cri.CONTAINER, ipc=cri.POD)


@attrs.frozen
class ContainerUsage:
    """One ``ContainerStats`` sample: cumulative CPU time and memory working set."""

    container_id: str
    at: float
    cpu_core_nanoseconds: int
    memory_working_set_bytes: int


def _seconds(nanos: int) -> float | None:
    return nanos * _NANO if nanos else None


def _cannot_run_code(message: str) -> int:
    """Docker's exit code for a process that never started, from the runtime's message."""
    text = message.lower()
    if "not found" in text or "no such file" in text:
        return 127
    if "permission denied" in text or "not executable" in text:
        return 126
    return 128


#: A CRI log record's time: RFC 3339 with up to nine fraction digits and a zone.
_CRI_TIME = re.compile(rb"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)")


@attrs.frozen
class LogLine:
    """One output line of a CRI log file, with the time of its first record."""

    at: float  # epoch seconds, for ``since``
    stamp: bytes  # ``kubectl logs --timestamps``' prefix (nine digits, UTC)
    text: bytes  # with its newline (a line still being written has none)


def cri_time(stamp: bytes) -> tuple[float, bytes]:
    """Epoch seconds and the normalised prefix of a record's RFC3339Nano time (containerd
    drops trailing zeros and may write a zone offset; kubectl shows nine digits in UTC).

    >>> cri_time(b"2024-01-01T01:00:00.5+01:00")
    (1704067200.5, b'2024-01-01T00:00:00.500000000Z ')
    """
    match = _CRI_TIME.fullmatch(stamp)
    if match is None:
        return 0.0, b""
    zone = "+00:00" if match[3] == b"Z" else match[3].decode()
    when = datetime.fromisoformat(match[1].decode() + zone).astimezone(UTC)
    nanos = int((match[2] or b"").ljust(9, b"0"))
    text = f"{when:%Y-%m-%dT%H:%M:%S}.{nanos:09d}Z "
    return when.timestamp() + nanos * _NANO, text.encode()


class CriLogReader:
    """Turns CRI log records (``<RFC3339Nano> <stream> <P|F> <text>``) into lines, fed as
    the file grows: partial (``P``) records join the next one; a full (``F``) record ends
    a line. Only complete records are read (the last may still be being written)."""

    def __init__(self) -> None:
        self._partial: LogLine | None = None
        self.consumed = 0

    def feed(self, data: bytes) -> list[LogLine]:
        """The lines the complete records in ``data`` finish; returns how far it read in
        :attr:`consumed`."""
        lines = []
        complete = data.rfind(b"\n") + 1
        self.consumed = complete
        for record in data[:complete].split(b"\n")[:-1]:
            parts = record.split(b" ", 3)
            if len(parts) < 3:
                continue
            text = parts[3] if len(parts) == 4 else b""
            if self._partial is None:
                at, stamp = cri_time(parts[0])
                self._partial = LogLine(at, stamp, b"")
            self._partial = attrs.evolve(self._partial, text=self._partial.text + text)
            if parts[2] != b"P":
                lines.append(attrs.evolve(self._partial, text=self._partial.text + b"\n"))
                self._partial = None
        return lines

    def flush(self) -> list[LogLine]:
        """The last line, if partial records began it and the writer stopped."""
        partial, self._partial = self._partial, None
        return [partial] if partial is not None and partial.text else []


def parse_cri_log(data: bytes) -> Iterator[bytes]:
    """The output bytes of a CRI log file, in order (a torn last record is left out).

    >>> b"".join(parse_cri_log(b"2024-01-01T00:00:00.1Z stdout F one\\n"
    ...                        b"2024-01-01T00:00:00.2Z stderr P fo\\n"
    ...                        b"2024-01-01T00:00:00.3Z stderr P ur\\n"))
    b'one\\nfour'
    """
    reader = CriLogReader()
    for line in [*reader.feed(data), *reader.flush()]:
        yield line.text


class ContainerdRuntime:
    """The containerd (CRI) implementation of :class:`kstate.runtime.base.ContainerRuntime`.

    >>> # rt = ContainerdRuntime("/run/kstate-containerd/containerd.sock"); await rt.version()
    """

    name = "containerd"

    def __init__(
        self,
        socket: str | None = None,
        *,
        cluster: str = "",
        log_dir: str | None = None,
        build_sandbox_image: bool = True,
        call_timeout: float = 60.0,
    ) -> None:
        self.socket = socket or default_socket()
        self._scope = {CLUSTER: cluster} if cluster else {}
        self._host = ContainerdHost(state_dir=Path(self.socket).parent)
        self._log_dir = Path(log_dir) if log_dir else ContainerdHost().pod_log_dir
        self._build_sandbox_image = build_sandbox_image
        self._call_timeout = call_timeout
        self._channel: grpc.aio.Channel | None = None
        self._runtime: cri_grpc.RuntimeServiceStub | None = None
        self._images: cri_grpc.ImageServiceStub | None = None
        self._images_ok = False
        self._setup_lock = asyncio.Lock()

    # ------------------------------------------------------------------ plumbing

    def _unreachable(self, detail: object) -> RuntimeUnreachable:
        return RuntimeUnreachable(
            f"cannot reach containerd's CRI at {self.socket} ({detail}); start kstate's "
            "containerd with `python -m kstate.runtime.containerd_host start` (./dev up "
            "--runtime containerd does), or point --containerd-socket at a containerd "
            "whose CRI plugin is enabled"
        )

    def _stubs(self) -> tuple[cri_grpc.RuntimeServiceStub, cri_grpc.ImageServiceStub]:
        if self._runtime is None or self._images is None:
            if not os.path.exists(self.socket):
                raise self._unreachable("no such socket")
            self._channel = grpc.aio.insecure_channel(f"unix://{self.socket}")
            self._runtime = cri_grpc.RuntimeServiceStub(self._channel)
            self._images = cri_grpc.ImageServiceStub(self._channel)
        return self._runtime, self._images

    async def _call(
        self,
        what: str,
        call: Callable[[], Awaitable[T]],
        *,
        not_found: Callable[[], RuntimeAdapterError] | None = None,
        other: Callable[[str], RuntimeAdapterError] | None = None,
    ) -> T:
        """Every CRI call runs through here: no raw gRPC error escapes."""
        try:
            return await call()
        except grpc.aio.AioRpcError as err:
            code, detail = err.code(), err.details() or ""
            if code is grpc.StatusCode.UNAVAILABLE:
                raise self._unreachable(detail) from err
            if code is grpc.StatusCode.UNIMPLEMENTED:  # e.g. the containerd dockerd runs
                raise self._unreachable(f"no CRI runtime.v1 service there: {detail}") from err
            if code is grpc.StatusCode.NOT_FOUND and not_found is not None:
                raise not_found() from err
            if other is not None:
                raise other(detail) from err
            raise RuntimeAdapterError(f"containerd {what}: {detail}") from err

    async def _removing(
        self,
        what: str,
        call: Callable[[], Awaitable[T]],
        *,
        not_found: Callable[[], RuntimeAdapterError] | None = None,
    ) -> T:
        """A remove, waiting out a start still in flight: containerd refuses to remove a
        container whose StartContainer has not returned ("in starting state" — say, the
        daemon was killed in the middle of one, and ``kstate down --purge`` cleans up
        after it). The start settles by itself, so the remove is retried until it does,
        within one call timeout; CRI offers no event to wait on for it."""
        deadline = time.monotonic() + self._call_timeout
        delay = 0.05
        while True:
            try:
                return await self._call(what, call, not_found=not_found)
            except RuntimeAdapterError as err:
                if STARTING not in str(err) or time.monotonic() >= deadline:
                    raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.5)

    def _rt(self) -> cri_grpc.RuntimeServiceStub:
        return self._stubs()[0]

    def _img(self) -> cri_grpc.ImageServiceStub:
        return self._stubs()[1]

    def _selector(self, label_filter: Mapping[str, str] | None, role: str) -> dict[str, str]:
        return {MANAGED: "true", **self._scope, ROLE: role, **(label_filter or {})}

    @staticmethod
    def _not_found(object_id: str, kind: str = "container") -> Callable[[], RuntimeAdapterError]:
        return lambda: ContainerNotFound(object_id, kind)

    # ------------------------------------------------------------------ engine and images

    async def version(self) -> RuntimeVersion:
        got = await self._call("version", lambda: self._rt().Version(
            cri.VersionRequest(version="v1"), timeout=self._call_timeout))
        return RuntimeVersion(got.runtime_name, got.runtime_version, got.runtime_api_version)

    async def image_present(self, image: str) -> bool:
        got = await self._call("image status", lambda: self._img().ImageStatus(
            cri.ImageStatusRequest(image=cri.ImageSpec(image=image)),
            timeout=self._call_timeout))
        return got.HasField("image")

    async def _pull(self, image: str) -> None:
        # No registry is reachable from a kstate node, and nothing here may try one.
        raise RuntimeAdapterError(
            "no registry on a kstate node; load the image into containerd's k8s.io "
            f"namespace (ctr --address {self.socket} -n k8s.io images import IMAGE.tar)")

    async def ensure_image(self, image: str, pull_policy: PullPolicy) -> EnsuredImage:
        return await apply_pull_policy(
            image, pull_policy,
            present=lambda: self.image_present(image),
            pull=lambda: self._pull(image),
        )

    async def _ensure_images(self) -> None:
        """The pause image (and base/httpd with it), loaded once if missing."""
        async with self._setup_lock:
            if self._images_ok:
                return
            if not await self.image_present(PAUSE_IMAGE):
                if not self._build_sandbox_image:
                    raise ImageNotPresent(PAUSE_IMAGE, PullPolicy.NEVER.value,
                                          "load it with `python -m kstate.runtime."
                                          "containerd_host import-images`")
                await asyncio.to_thread(self._host.import_base_images)
            self._images_ok = True

    async def network_info(self) -> NetworkInfo:
        return NetworkInfo(name=BRIDGE, subnet=SUBNET, gateway=GATEWAY)

    # ------------------------------------------------------------------ sandboxes

    def _pod_log_dir(self, labels: Mapping[str, str], attempt: int) -> str:
        """Kubernetes' ``<namespace>_<name>_<uid>`` pod log directory, per sandbox attempt."""
        return str(self._log_dir / (f"{labels.get(POD_NAMESPACE, '')}_{labels.get(POD_NAME, '')}"
                                    f"_{labels.get(POD_UID, '')}_{attempt}"))

    def _sandbox_config(self, spec: SandboxSpec) -> cri.PodSandboxConfig:
        labels = {**spec.all_labels(), **self._scope}
        hostname = spec.effective_hostname()
        return cri.PodSandboxConfig(
            metadata=cri.PodSandboxMetadata(name=spec.name, uid=spec.pod_uid,
                                            namespace=spec.namespace, attempt=spec.attempt),
            hostname=hostname,
            log_directory=self._pod_log_dir(labels, spec.attempt),
            labels=labels,
            # Kept for create_container, which must send the sandbox's config again.
            annotations={HOSTNAME_ANNOTATION: hostname},
            linux=cri.LinuxPodSandboxConfig(security_context=cri.LinuxSandboxSecurityContext(
                namespace_options=_POD_NAMESPACES)),
        )

    def _sandbox_status(self, status: Any) -> SandboxStatus:
        ready = status.state == cri.SANDBOX_READY
        return SandboxStatus.from_labels(
            status.id, dict(status.labels),
            state=SandboxState.READY if ready else SandboxState.NOTREADY,
            ip=status.network.ip if ready else "",
            created_at=status.created_at * _NANO,
        )

    async def _sandbox_raw(self, sandbox_id: str) -> Any:
        got = await self._call(
            "sandbox status", lambda: self._rt().PodSandboxStatus(
                cri.PodSandboxStatusRequest(pod_sandbox_id=sandbox_id),
                timeout=self._call_timeout),
            not_found=self._not_found(sandbox_id, "sandbox"))
        status = got.status
        # Ids are matched by prefix by containerd; only an exact kstate sandbox is one.
        if status.id != sandbox_id or status.labels.get(ROLE) != ROLE_SANDBOX:
            raise ContainerNotFound(sandbox_id, "sandbox")
        return status

    async def create_sandbox(self, spec: SandboxSpec) -> SandboxStatus:
        await self._ensure_images()
        config = self._sandbox_config(spec)
        Path(config.log_directory).mkdir(parents=True, exist_ok=True)
        name = spec.runtime_name()

        def refused(detail: str) -> RuntimeAdapterError:
            if "reserve" in detail:  # containerd reserves the name of a live sandbox
                return ContainerAlreadyExists(name)
            return CreateContainerError(name, detail)

        got = await self._call("run sandbox", lambda: self._rt().RunPodSandbox(
            cri.RunPodSandboxRequest(config=config), timeout=self._call_timeout),
            other=refused)
        return await self.inspect_sandbox(got.pod_sandbox_id)

    async def inspect_sandbox(self, sandbox_id: str) -> SandboxStatus:
        return self._sandbox_status(await self._sandbox_raw(sandbox_id))

    async def _stop_sandbox(self, sandbox_id: str) -> None:
        await self._call("stop sandbox", lambda: self._rt().StopPodSandbox(
            cri.StopPodSandboxRequest(pod_sandbox_id=sandbox_id), timeout=self._call_timeout),
            not_found=self._not_found(sandbox_id, "sandbox"))

    async def remove_sandbox(self, sandbox_id: str) -> None:
        # Idempotent (CRI's rule too): a sandbox already gone is success.
        try:
            status = await self._sandbox_raw(sandbox_id)
        except ContainerNotFound:
            return
        with contextlib.suppress(ContainerNotFound):
            await self._stop_sandbox(sandbox_id)
            await self._removing("remove sandbox", lambda: self._rt().RemovePodSandbox(
                cri.RemovePodSandboxRequest(pod_sandbox_id=sandbox_id),
                timeout=self._call_timeout), not_found=self._not_found(sandbox_id, "sandbox"))
        # The pod's log files go with it, as the kubelet removes a pod's log directory.
        log_dir = self._pod_log_dir(dict(status.labels), status.metadata.attempt)
        await asyncio.to_thread(shutil.rmtree, log_dir, True)

    async def _list_sandbox_items(self, selector: Mapping[str, str]) -> list[Any]:
        got = await self._call("list sandboxes", lambda: self._rt().ListPodSandbox(
            cri.ListPodSandboxRequest(filter=cri.PodSandboxFilter(label_selector=selector)),
            timeout=self._call_timeout))
        return list(got.items)

    async def list_sandboxes(
        self, label_filter: Mapping[str, str] | None = None
    ) -> list[SandboxStatus]:
        items = await self._list_sandbox_items(self._selector(label_filter, ROLE_SANDBOX))
        return await _each_still_there([i.id for i in items], self.inspect_sandbox)

    # ------------------------------------------------------------------ containers

    def _container_status(self, status: Any) -> ContainerStatus:
        start_error = status.reason == "StartError"
        exit_code = status.exit_code
        if start_error:
            exit_code = _cannot_run_code(status.message)
        exited = status.state == cri.CONTAINER_EXITED
        return container_status(
            status.id, dict(status.labels),
            image=status.annotations.get(IMAGE_ANNOTATION) or status.image.image,
            running=status.state == cri.CONTAINER_RUNNING,
            created_at=status.created_at * _NANO,
            exited=exited,
            exit_code=exit_code if exited else None,
            started_at=None if start_error else _seconds(status.started_at),
            finished_at=None if start_error else _seconds(status.finished_at),
            oom_killed=status.reason == "OOMKilled",
            error=status.message if start_error else "",
        )

    async def _container_raw(self, container_id: str) -> Any:
        got = await self._call("container status", lambda: self._rt().ContainerStatus(
            cri.ContainerStatusRequest(container_id=container_id), timeout=self._call_timeout),
            not_found=self._not_found(container_id))
        status = got.status
        if status.id != container_id or status.labels.get(ROLE) != ROLE_CONTAINER:
            raise ContainerNotFound(container_id)
        return status

    async def inspect_container(self, container_id: str) -> ContainerStatus:
        return self._container_status(await self._container_raw(container_id))

    async def create_container(self, sandbox_id: str, spec: ContainerSpec) -> str:
        sandbox = await self._sandbox_raw(sandbox_id)
        sandbox_labels = dict(sandbox.labels)
        name = spec.runtime_name(sandbox_labels)
        if sandbox.state != cri.SANDBOX_READY:
            raise CreateContainerError(name, f"sandbox {sandbox_id[:12]} is not running")
        if spec.memory_bytes is not None and spec.memory_bytes < MIN_MEMORY_BYTES:
            raise CreateContainerError(
                name, f"memory limit {spec.memory_bytes} bytes is under the minimum 6 MiB")
        if not await self.image_present(spec.image):
            raise ImageNotPresent(spec.image, spec.image_pull_policy.value)
        resources = cri.LinuxContainerResources()
        if spec.cpu_millicores:
            resources.cpu_period = CPU_PERIOD_US
            resources.cpu_quota = spec.cpu_millicores * CPU_PERIOD_US // 1000
        if spec.memory_bytes:
            # Swap equal to memory: no swap, so the limit is a hard OOM line as in Kubernetes.
            resources.memory_limit_in_bytes = spec.memory_bytes
            resources.memory_swap_limit_in_bytes = spec.memory_bytes
        config = cri.ContainerConfig(
            metadata=cri.ContainerMetadata(name=spec.name, attempt=spec.attempt),
            image=cri.ImageSpec(image=spec.image),
            # Kubernetes' rule, which CRI takes as is: command -> entrypoint, args -> cmd.
            command=list(spec.command),
            args=list(spec.args),
            working_dir=spec.working_dir,
            envs=[cri.KeyValue(key=k, value=v) for k, v in spec.env],
            labels=spec.all_labels(sandbox_labels, sandbox.id),
            # The image as the pod names it: CRI reports the name it resolved, which for
            # one image under several tags may be another of them.
            annotations={IMAGE_ANNOTATION: spec.image, STREAMS_ANNOTATION: " ".join(
                name for name, wanted in (("stdin", spec.stdin), ("tty", spec.tty)) if wanted)},
            log_path=f"{spec.name}/{spec.attempt}.log",
            # containerd keeps stdin open for attaches (closing it after the first one
            # with stdin_once) and runs the process on a terminal with tty.
            stdin=spec.stdin,
            stdin_once=spec.stdin_once,
            tty=spec.tty,
            linux=cri.LinuxContainerConfig(
                resources=resources,
                security_context=cri.LinuxContainerSecurityContext(
                    namespace_options=_POD_NAMESPACES)),
        )
        # containerd takes the log directory and $HOSTNAME from the sandbox config sent
        # with the request, not from the sandbox.
        sandbox_config = cri.PodSandboxConfig(
            metadata=sandbox.metadata,
            hostname=sandbox.annotations.get(HOSTNAME_ANNOTATION, ""),  # $HOSTNAME's value
            log_directory=self._pod_log_dir(sandbox_labels, sandbox.metadata.attempt),
            labels=sandbox_labels,
        )

        def refused(detail: str) -> RuntimeAdapterError:
            if "reserve" in detail:  # (name, attempt) is unique within a sandbox
                return ContainerAlreadyExists(name)
            return CreateContainerError(name, detail)

        got = await self._call("create container", lambda: self._rt().CreateContainer(
            cri.CreateContainerRequest(pod_sandbox_id=sandbox.id, config=config,
                                       sandbox_config=sandbox_config),
            timeout=self._call_timeout),
            not_found=lambda: ImageNotPresent(spec.image, spec.image_pull_policy.value),
            other=refused)
        return str(got.container_id)

    async def start_container(self, container_id: str) -> None:
        try:
            await self._call("start", lambda: self._rt().StartContainer(
                cri.StartContainerRequest(container_id=container_id),
                timeout=self._call_timeout),
                not_found=self._not_found(container_id),
                other=lambda detail: ContainerCannotRun(container_id, detail))
        except ContainerCannotRun as err:
            # CRI refuses to start a running container; the protocol makes it a no-op.
            if "CONTAINER_RUNNING" not in err.detail:
                raise

    async def _is_sandbox(self, object_id: str) -> bool:
        try:
            await self._sandbox_raw(object_id)
        except ContainerNotFound:
            return False
        return True

    async def stop_container(self, container_id: str, grace_seconds: float) -> None:
        grace = max(0, math.ceil(grace_seconds))
        try:
            await self._call("stop", lambda: self._rt().StopContainer(
                cri.StopContainerRequest(container_id=container_id, timeout=grace),
                # containerd returns once the process is gone: allow the grace period.
                timeout=self._call_timeout + grace), not_found=self._not_found(container_id))
        except ContainerNotFound:
            # A sandbox id: stopping it ends the pod's network namespace (as on Docker).
            if not await self._is_sandbox(container_id):
                raise
            await self._stop_sandbox(container_id)

    async def kill_container(self, container_id: str, signal: str = "SIGKILL") -> None:
        try:
            status = await self.inspect_container(container_id)
        except ContainerNotFound:
            if not await self._is_sandbox(container_id):
                raise
            await self._stop_sandbox(container_id)  # a sandbox dies of any signal
            return
        if status.state is not ContainerState.RUNNING:
            raise ContainerNotRunning(container_id)
        if signal in ("SIGKILL", "KILL", "9"):
            await self.stop_container(container_id, 0)  # CRI's "kill now"
            return
        await self._task_kill(container_id, signal)

    async def _task_kill(self, container_id: str, signal: str) -> None:
        ctr = shutil.which("ctr")
        if ctr is None:
            raise RuntimeAdapterError("ctr not found: apt-get install containerd")
        proc = await asyncio.create_subprocess_exec(
            ctr, "--address", self.socket, "-n", CRI_NAMESPACE, "tasks", "kill",
            "--signal", signal, container_id,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        _, err = await proc.communicate()
        if proc.returncode != 0:
            text = err.decode(errors="replace").strip()
            if "not found" in text:
                raise ContainerNotRunning(container_id)
            raise RuntimeAdapterError(f"ctr tasks kill {container_id[:12]}: {text}")

    async def remove_container(self, container_id: str) -> None:
        # A sandbox id removes the pod (as on Docker). CRI's RemoveContainer succeeds on
        # any unknown id (idempotent teardown), so the sandbox case is asked first.
        if await self._is_sandbox(container_id):
            await self.remove_sandbox(container_id)
            return
        with contextlib.suppress(ContainerNotFound):
            await self._removing("remove", lambda: self._rt().RemoveContainer(
                cri.RemoveContainerRequest(container_id=container_id),
                timeout=self._call_timeout), not_found=self._not_found(container_id))

    async def _list_container_items(self, selector: Mapping[str, str]) -> list[Any]:
        got = await self._call("list containers", lambda: self._rt().ListContainers(
            cri.ListContainersRequest(filter=cri.ContainerFilter(label_selector=selector)),
            timeout=self._call_timeout))
        return list(got.containers)

    async def list_containers(
        self, label_filter: Mapping[str, str] | None = None
    ) -> list[ContainerStatus]:
        # The list lacks exit codes, OOM and times: one status call per container, in
        # parallel, keeps a relist correct on its own.
        items = await self._list_container_items(self._selector(label_filter, ROLE_CONTAINER))
        return await _each_still_there([i.id for i in items], self.inspect_container)

    async def stats(self, container_id: str) -> ContainerUsage:
        got = await self._call("stats", lambda: self._rt().ContainerStats(
            cri.ContainerStatsRequest(container_id=container_id), timeout=self._call_timeout),
            not_found=self._not_found(container_id))
        stats = got.stats
        return ContainerUsage(
            container_id=container_id,
            at=(stats.cpu.timestamp or stats.memory.timestamp) * _NANO,
            cpu_core_nanoseconds=stats.cpu.usage_core_nano_seconds.value,
            memory_working_set_bytes=stats.memory.working_set_bytes.value,
        )

    # ------------------------------------------------------------------ logs, exec, events

    async def logs(
        self, container_id: str, *, tail: int | None = None, follow: bool = False,
        since: float | None = None, timestamps: bool = False,
    ) -> AsyncIterator[bytes]:
        status = await self._container_raw(container_id)
        # The file carries each record's time, so ``since`` and ``timestamps`` read it.
        async for line in self._log_lines(container_id, Path(status.log_path), tail,
                                          follow, since):
            yield line.stamp + line.text if timestamps else line.text

    async def _log_lines(self, container_id: str, path: Path, tail: int | None,
                         follow: bool, since: float | None) -> AsyncIterator[LogLine]:
        """The file's lines (``since`` and ``tail`` applied to what is there), then, when
        following, each line as it is written until the container exits."""
        reader = CriLogReader()
        data = await asyncio.to_thread(_read_file, path)
        backlog = reader.feed(data) + ([] if follow else reader.flush())
        offset = reader.consumed
        for line in tail_lines([x for x in backlog if since is None or x.at >= since], tail):
            yield line
        while follow:
            running = (await self.inspect_container(container_id)).state is ContainerState.RUNNING
            data = await asyncio.to_thread(_read_file, path, offset)
            for line in reader.feed(data) + ([] if running else reader.flush()):
                if since is None or line.at >= since:
                    yield line
            offset += reader.consumed
            if not running:
                return
            await asyncio.sleep(LOG_POLL_SECONDS)

    async def exec(
        self, container_id: str, command: Sequence[str], timeout: float
    ) -> ExecResult:
        await self._running(container_id)

        try:
            async with asyncio.timeout(timeout):
                got = await self._call("exec", lambda: self._rt().ExecSync(
                    cri.ExecSyncRequest(container_id=container_id, cmd=list(command),
                                        timeout=max(1, math.ceil(timeout)))),
                    not_found=self._not_found(container_id), other=self._refused(container_id))
        except TimeoutError:
            raise ExecTimeout(container_id, command, timeout) from None
        except ContainerNotRunning:
            raise
        except RuntimeAdapterError as err:
            if isinstance(err, ContainerNotFound | RuntimeUnreachable):
                raise
            # The process could not be started (e.g. not found): what Docker reports as
            # exit 126 with the reason as output, and what a probe counts as a failure.
            return ExecResult(exit_code=126, output=str(err).encode())
        return ExecResult(exit_code=got.exit_code, output=bytes(got.stdout) + bytes(got.stderr))

    async def _running(self, container_id: str) -> None:
        if (await self.inspect_container(container_id)).state is not ContainerState.RUNNING:
            raise ContainerNotRunning(container_id)

    def _refused(self, container_id: str) -> Callable[[str], RuntimeAdapterError]:
        def refused(detail: str) -> RuntimeAdapterError:
            if "not running" in detail or "CONTAINER_EXITED" in detail:
                return ContainerNotRunning(container_id)
            return RuntimeAdapterError(detail)
        return refused

    async def exec_session(self, container_id: str, command: Sequence[str], *,
                           stdin: bool, tty: bool) -> ExecSession:
        await self._running(container_id)
        # CRI cannot kill an exec'd process: like Docker's, each carries a marker in its
        # environment (``env`` sets it; children inherit it) that closing kills by.
        marker = exec_marker()
        got = await self._call("exec", lambda: self._rt().Exec(cri.ExecRequest(
            container_id=container_id, cmd=["env", marker, *command], tty=tty, stdin=stdin,
            stdout=True, stderr=not tty)),  # CRI: a TTY has one output stream
            not_found=self._not_found(container_id), other=self._refused(container_id))

        async def kill() -> None:
            with contextlib.suppress(RuntimeAdapterError):
                await self.exec(container_id, kill_marked_command(marker), timeout=10)

        return await CriSession.open(got.url, stdin=stdin, tty=tty, is_exec=True,
                                     cannot_run_code=_cannot_run_code, kill=kill)

    async def attach(self, container_id: str, *, stdin: bool) -> ExecSession:
        raw = await self._container_raw(container_id)
        if self._container_status(raw).state is not ContainerState.RUNNING:
            raise ContainerNotRunning(container_id)
        # CRI attaches as the container was created: its TTY (then one output stream),
        # and stdin only if it has one. containerd applies the base contract's rules on
        # stdin's EOF itself.
        created = raw.annotations.get(STREAMS_ANNOTATION, "").split()
        tty, stdin = "tty" in created, stdin and "stdin" in created
        got = await self._call("attach", lambda: self._rt().Attach(cri.AttachRequest(
            container_id=container_id, stdin=stdin, tty=tty, stdout=True, stderr=not tty)),
            not_found=self._not_found(container_id), other=self._refused(container_id))
        return await CriSession.open(got.url, stdin=stdin, tty=tty, is_exec=False,
                                     cannot_run_code=_cannot_run_code)

    async def port_forward(self, sandbox_id: str, port: int
                           ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        sandbox = await self.inspect_sandbox(sandbox_id)
        if sandbox.state is not SandboxState.READY:
            raise ContainerNotRunning(sandbox_id)
        got = await self._call("port-forward", lambda: self._rt().PortForward(
            cri.PortForwardRequest(pod_sandbox_id=sandbox_id, port=[port])),
            not_found=self._not_found(sandbox_id, "sandbox"))
        return await cri_port_forward(got.url, port)

    def events(self, label_filter: Mapping[str, str] | None = None) -> EventStream:
        return _PolledEvents(self, {MANAGED: "true", **self._scope, **(label_filter or {})})

    async def close(self) -> None:
        if self._channel is not None:
            channel, self._channel = self._channel, None
            self._runtime = self._images = None
            with contextlib.suppress(Exception):
                await channel.close()


async def _each_still_there(ids: Sequence[str], inspect: Callable[[str], Awaitable[S]]
                            ) -> list[S]:
    """The status of every id (in parallel), sorted by creation; one removed between the
    list and its status call is left out."""
    async def one(object_id: str) -> S | None:
        try:
            return await inspect(object_id)
        except ContainerNotFound:
            return None

    found = [s for s in await asyncio.gather(*(one(i) for i in ids)) if s is not None]
    return sorted(found, key=lambda s: (s.created_at, s.id))


def _read_file(path: Path, offset: int = 0) -> bytes:
    try:
        with path.open("rb") as f:
            f.seek(offset)
            return f.read()
    except FileNotFoundError:  # nothing written yet (the container never started)
        return b""


@attrs.frozen
class _Seen:
    running: bool
    finished: bool
    labels: Mapping[str, str] = attrs.field(factory=dict)


class _PolledEvents(EventStream):
    """Lifecycle events derived from successive CRI listings (see the module docstring)."""

    def __init__(self, runtime: ContainerdRuntime, label_filter: Mapping[str, str]) -> None:
        super().__init__()
        self._runtime = runtime
        self._filter = dict(label_filter)
        self._containers: dict[str, _Seen] = {}
        self._sandboxes: dict[str, bool] = {}
        self._queue: list[RuntimeEvent] = []

    async def _start(self) -> None:
        await self._poll(emit=False)

    async def _poll(self, *, emit: bool) -> None:
        rt = self._runtime
        containers, sandboxes = await asyncio.gather(
            rt._list_container_items(self._filter), rt._list_sandbox_items(self._filter))
        for item in containers:
            if item.labels.get(ROLE) != ROLE_CONTAINER:
                continue
            before = self._containers.get(item.id, _Seen(False, False))
            running = item.state == cri.CONTAINER_RUNNING
            exited = item.state == cri.CONTAINER_EXITED
            if not (running or exited) or (before.finished and exited):
                continue
            if running and before.running:
                continue
            try:
                status = await rt.inspect_container(item.id)
            except ContainerNotFound:
                continue
            labels = {k: v for k, v in status.labels.items() if k.startswith("io.kstate.")}
            started = status.started_at is not None
            if emit and started and not before.running:
                self._queue.append(RuntimeEvent(item.id, EventKind.STARTED,
                                                status.started_at or 0.0, labels=labels))
            if exited and emit and started:
                at = status.finished_at or status.started_at or 0.0
                self._queue.append(RuntimeEvent(item.id, EventKind.DIED, at,
                                                exit_code=status.exit_code, labels=labels))
                if status.oom_killed:
                    self._queue.append(RuntimeEvent(item.id, EventKind.OOM, at, labels=labels))
            self._containers[item.id] = _Seen(running, exited, labels)
        # A running container removed between two polls died with its removal.
        listed = {item.id for item in containers}
        for gone in [c for c in self._containers if c not in listed]:
            seen = self._containers.pop(gone)
            if emit and seen.running:
                self._queue.append(RuntimeEvent(gone, EventKind.DIED, time.time(),
                                                exit_code=137, labels=seen.labels))
        live = {item.id for item in sandboxes if item.labels.get(ROLE) == ROLE_SANDBOX}
        for item in sandboxes:
            if item.id not in live:
                continue
            ready = item.state == cri.SANDBOX_READY
            if emit and self._sandboxes.get(item.id) and not ready:
                self._died_sandbox(item.id, dict(item.labels))
            self._sandboxes[item.id] = ready
        for gone in [s for s in self._sandboxes if s not in live]:
            if emit and self._sandboxes[gone]:
                self._died_sandbox(gone, {})
            del self._sandboxes[gone]

    def _died_sandbox(self, sandbox_id: str, labels: Mapping[str, str]) -> None:
        self._queue.append(RuntimeEvent(
            sandbox_id, EventKind.DIED, time.time(), is_sandbox=True,
            labels={k: v for k, v in labels.items() if k.startswith("io.kstate.")}))

    async def _next(self) -> RuntimeEvent | None:
        while not self._queue:
            if self._closed:
                return None
            await asyncio.sleep(EVENT_POLL_SECONDS)
            if self._closed:
                return None
            await self._poll(emit=True)
        return self._queue.pop(0)

    async def _stop(self) -> None:
        self._queue.clear()
