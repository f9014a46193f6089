"""The Docker adapter: pods as containers on the local Docker engine.

Where it sits: node agent -> **runtime adapter (docker)** -> dockerd -> containers. It speaks
the Docker Engine API over the unix socket (or ``DOCKER_HOST``) through ``aiodocker``; this
is the only kstate module that imports it.

Why it exists: it makes the protocol of :mod:`kstate.runtime.base` real. A pod becomes

* a **sandbox**: a tiny long-running container of the base image on the user-defined bridge
  network ``kstate0``, whose network namespace (IP, localhost, hostname = pod name) *is*
  the pod's;
* **app containers** created with ``network_mode=container:<sandbox>``, so they share the
  pod IP and reach each other on localhost, as a Pod's containers do.

Every container carries ``io.kstate.*`` labels (pod uid, namespace, name, node, container
name, attempt), so an agent can adopt its containers after a restart and remove orphans.
An adapter given a ``cluster`` (``kstate up`` passes its data directory's id) also labels
everything it creates with it and sees only that cluster's containers — in listings and
events alike — so clusters sharing one engine (and node names) never adopt, remove or
purge each other's containers.

Why aiodocker and not the ``docker`` SDK: the protocol is async and has long-lived streams
(``events()``, ``logs(follow=True)``, exec output). The SDK is synchronous; wrapped in
``asyncio.to_thread``, each open stream pins a worker of the default thread pool (6 on a
2-core machine), so a handful of ``kubectl logs -f`` would starve every other runtime call,
and a blocked socket read cannot be cancelled. aiodocker is native asyncio over aiohttp's
unix-socket connector: streams cost a socket, not a thread, and cancel cleanly. Its own
wrappers are used where they are lossless; logs, events and image import go through its
request primitive because its wrappers decode logs to text and share one event filter.

Engine facts the mapping relies on (checked against Docker 20.10):

* a start failure (e.g. command not found) leaves the container ``created`` with
  ``State.Error`` set and exit code 127/126: reported as EXITED / ContainerCannotRun;
* an OOM kill sets ``State.OOMKilled`` (exit 137): reported as OOMKilled. On cgroup v1 an
  OOM within the first milliseconds of a container's life (before containerd arms its OOM
  watch) is missed by the engine about one time in twenty: exit 137, reason Error, no
  ``oom`` event. Nothing left to inspect can tell them apart afterwards;
* ``stop`` takes whole seconds: a fractional grace is rounded up.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import struct
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import aiodocker
import aiohttp
from aiodocker.exceptions import DockerError

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
    CLUSTER,
    MANAGED,
    PAUSE_COMMAND,
    ROLE,
    ROLE_CONTAINER,
    ROLE_SANDBOX,
    SANDBOX_ID,
    STDOUT,
    ContainerSpec,
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
    split_lines,
)
from kstate.runtime.image import DEFAULT_TAGS, build_base_image

DEFAULT_NETWORK = "kstate0"
#: The sandbox holds no state worth a graceful stop, and a TERM that lands before the shell
#: has set its trap would be ignored: stopping a sandbox KILLs it, always at once.
SANDBOX_STOP_SIGNAL = "SIGKILL"
#: Kubernetes' container log rotation defaults (containerLogMaxSize 10Mi, 5 files).
LOG_CONFIG = {"Type": "json-file", "Config": {"max-size": "10m", "max-file": "5"}}
#: aiodocker's status for "could not connect" (not an HTTP status).
_UNREACHABLE = 900
_EVENT_KINDS = {"start": EventKind.STARTED, "die": EventKind.DIED, "oom": EventKind.OOM}


class _SetupGone(RuntimeAdapterError):
    """The engine lost the network or image a sandbox needs (internal: triggers a re-check)."""


def parse_docker_time(text: str | None) -> float | None:
    """The engine's UTC RFC 3339 time (nanoseconds) -> epoch seconds; its zero time -> None.

    >>> round(parse_docker_time("2024-01-02T03:04:05.123456789Z") or 0, 3)
    1704164645.123
    >>> parse_docker_time("0001-01-01T00:00:00Z") is None
    True
    """
    if not text or text.startswith("0001-01-01"):
        return None
    whole, _, fraction = text.rstrip("Z").partition(".")
    seconds = datetime.fromisoformat(whole).replace(tzinfo=UTC).timestamp()
    return seconds + float(f"0.{fraction}") if fraction else seconds


def split_reference(image: str) -> tuple[str, str]:
    """``repo:tag`` -> (repo, tag), with Docker's default tag; a registry port is no tag.

    >>> split_reference("localhost:5000/app"), split_reference("kstate/base:1")
    (('localhost:5000/app', 'latest'), ('kstate/base', '1'))
    """
    repo, sep, tag = image.rpartition(":")
    if not sep or "/" in tag:
        return image, "latest"
    return repo, tag


def _label_filters(labels: Mapping[str, str] | None) -> list[str]:
    """The engine's label filter for kstate's containers that carry ``labels``."""
    return [f"{k}={v}" for k, v in {MANAGED: "true", **(labels or {})}.items()]


class DockerRuntime:
    """The Docker implementation of :class:`kstate.runtime.base.ContainerRuntime`.

    >>> # rt = DockerRuntime(); await rt.version(); ...; await rt.close()
    """

    name = "docker"

    def __init__(
        self,
        url: str | None = None,
        *,
        network: str = DEFAULT_NETWORK,
        sandbox_image: str = BASE_IMAGE,
        build_sandbox_image: bool = True,
        pull_timeout: float = 60.0,
        cluster: str = "",
    ) -> None:
        self._url = url
        #: Labels that scope this adapter to one cluster (empty: every kstate container).
        self._scope = {CLUSTER: cluster} if cluster else {}
        self._network_name = network
        self._sandbox_image = sandbox_image
        self._build_sandbox_image = build_sandbox_image
        self._pull_timeout = pull_timeout
        self._docker: aiodocker.Docker | None = None
        self._network: NetworkInfo | None = None
        self._sandbox_image_ok = False
        self._setup_lock = asyncio.Lock()

    # ------------------------------------------------------------------ plumbing

    @property
    def _where(self) -> str:
        return self._url or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"

    def _unreachable(self, detail: object) -> RuntimeUnreachable:
        return RuntimeUnreachable(
            f"cannot reach the Docker engine at {self._where} ({detail}); start it as root "
            "with `dockerd >/tmp/dockerd.log 2>&1 &` (./dev test does), or set DOCKER_HOST"
        )

    def _client(self) -> aiodocker.Docker:
        if self._docker is None:
            try:
                # An explicit address: aiodocker's own search (contexts, several sockets)
                # would make "which engine?" depend on the caller's home directory.
                self._docker = aiodocker.Docker(url=self._where)
            except (ValueError, OSError) as err:
                raise self._unreachable(err) from err
        return self._docker

    @contextlib.contextmanager
    def _translate(
        self,
        what: str,
        *,
        not_found: Callable[[], RuntimeAdapterError] | None = None,
        conflict: Callable[[], RuntimeAdapterError] | None = None,
        other: Callable[[DockerError], RuntimeAdapterError] | None = None,
    ) -> Iterator[None]:
        """Every engine call runs inside this: no raw Docker or aiohttp error escapes."""
        try:
            yield
        except DockerError as err:
            if err.status == _UNREACHABLE:
                raise self._unreachable(err.message) from err
            if err.status == 404 and not_found is not None:
                raise not_found() from err
            if err.status == 409 and conflict is not None:
                raise conflict() from err
            if other is not None:
                raise other(err) from err
            raise RuntimeAdapterError(f"docker {what}: {err.message}") from err
        except (aiohttp.ClientError, OSError) as err:
            raise self._unreachable(err) from err

    def _filters(self, label_filter: Mapping[str, str] | None, role: str) -> list[str]:
        return _label_filters({**self._scope, ROLE: role, **(label_filter or {})})

    def _not_found(self, container_id: str, kind: str = "container") -> Callable[[], Any]:
        return lambda: ContainerNotFound(container_id, kind)

    async def _inspect(self, container_id: str, kind: str = "container") -> dict[str, Any]:
        with self._translate("inspect", not_found=self._not_found(container_id, kind)):
            return await self._client().containers.container(container_id).show()

    async def _list_ids(self, labels: list[str]) -> list[str]:
        with self._translate("list containers"):
            found = await self._client().containers.list(all=True, filters={"label": labels})
        return [c.id for c in found]

    async def _inspect_many(self, ids: Sequence[str], kind: str) -> list[dict[str, Any]]:
        async def one(cid: str) -> dict[str, Any] | None:
            try:
                return await self._inspect(cid, kind)
            except ContainerNotFound:  # removed between list and inspect
                return None

        found = await asyncio.gather(*(one(cid) for cid in ids))
        return [d for d in found if d is not None]

    # ------------------------------------------------------------------ engine and images

    async def version(self) -> RuntimeVersion:
        with self._translate("version"):
            info = await self._client().version()
        return RuntimeVersion("docker", str(info.get("Version", "")),
                              str(info.get("ApiVersion", "")))

    async def _image_info(self, image: str) -> dict[str, Any] | None:
        try:
            with self._translate("inspect image", not_found=lambda: ImageNotPresent(image, "")):
                return await self._client().images.inspect(image)
        except ImageNotPresent:
            return None

    async def image_present(self, image: str) -> bool:
        return await self._image_info(image) is not None

    async def _pull(self, image: str) -> None:
        with self._translate("pull"):
            await self._client().images.pull(image, timeout=self._pull_timeout)

    async def ensure_image(self, image: str, pull_policy: PullPolicy) -> EnsuredImage:
        return await apply_pull_policy(
            image, pull_policy,
            present=lambda: self.image_present(image),
            pull=lambda: self._pull(image),
        )

    async def import_image(
        self, tarball: bytes, tags: Sequence[str], changes: Sequence[str] = ()
    ) -> str:
        """``docker import`` of a root filesystem tarball under every tag in ``tags``."""
        if not tags:
            raise ValueError("import_image needs at least one tag")
        repo, tag = split_reference(tags[0])
        params: dict[str, Any] = {"fromSrc": "-", "repo": repo, "tag": tag}
        if changes:
            # The engine takes one ``changes`` parameter per instruction; one is all we use.
            if len(changes) > 1:
                raise ValueError("import_image supports a single change instruction")
            params["changes"] = changes[0]
        client = self._client()
        replaced = {info["Id"] for t in tags if (info := await self._image_info(t))}
        with self._translate("import image"):
            async with client._query(
                "images/create", "POST", params=params, data=tarball,
                headers={"Content-Type": "application/x-tar"}, timeout=None,
            ) as resp:
                body = await resp.text()
        image_id = ""
        for line in body.splitlines():
            if not line.strip():
                continue
            message = json.loads(line)
            if "error" in message:
                raise RuntimeAdapterError(f"docker import: {message['error']}")
            image_id = str(message.get("status", image_id))
        for extra in tags[1:]:
            extra_repo, extra_tag = split_reference(extra)
            with self._translate("tag image"):
                await client.images.tag(tags[0], extra_repo, tag=extra_tag)
        # A rebuild leaves the image it replaced untagged; drop it if nothing names it any
        # more (a container still using it makes the engine refuse, which is fine).
        for old in replaced - {image_id}:
            info = await self._image_info(old)
            if info is not None and not info.get("RepoTags"):
                with contextlib.suppress(DockerError, aiohttp.ClientError):
                    await client.images.delete(old)
        return image_id

    # ------------------------------------------------------------------ network

    async def _ensure_setup(self) -> NetworkInfo:
        """Network and sandbox image, once per adapter (and race-free across callers)."""
        async with self._setup_lock:
            if not self._sandbox_image_ok:
                if not await self.image_present(self._sandbox_image):
                    if not self._build_sandbox_image:
                        raise ImageNotPresent(self._sandbox_image, PullPolicy.NEVER.value,
                                              "build it with `kstate image build-base`")
                    await build_base_image(self, (self._sandbox_image,))
                self._sandbox_image_ok = True
            if self._network is None:
                self._network = await self._find_or_create_network()
            return self._network

    async def _find_or_create_network(self) -> NetworkInfo:
        name = self._network_name
        info = await self._inspect_network(name)
        if info is None:
            try:
                with self._translate("create network"):
                    await self._client().networks.create({
                        "Name": name, "Driver": "bridge", "CheckDuplicate": True,
                        "Labels": {MANAGED: "true"},
                    })
            except RuntimeAdapterError:
                # Another agent may have made it first; if not, this error is the answer.
                info = await self._inspect_network(name)
                if info is None:
                    raise
            info = info or await self._inspect_network(name)
        if info is None:
            raise RuntimeAdapterError(f"docker: network {name!r} vanished after creation")
        ipam = (info.get("IPAM") or {}).get("Config") or [{}]
        return NetworkInfo(name=name, subnet=ipam[0].get("Subnet", ""),
                           gateway=ipam[0].get("Gateway", ""))

    async def _inspect_network(self, name: str) -> dict[str, Any] | None:
        try:
            with self._translate("inspect network", not_found=lambda: ContainerNotFound(name)):
                info = await (await self._client().networks.get(name)).show()
        except ContainerNotFound:
            return None
        # The engine also resolves id prefixes; only an exact name is ours.
        return info if isinstance(info, dict) and info.get("Name") == name else None

    async def network_info(self) -> NetworkInfo:
        return await self._ensure_setup()

    # ------------------------------------------------------------------ sandboxes

    def _sandbox_status(self, data: dict[str, Any]) -> SandboxStatus:
        state = data.get("State") or {}
        labels = (data.get("Config") or {}).get("Labels") or {}
        networks = (data.get("NetworkSettings") or {}).get("Networks") or {}
        ip = (networks.get(self._network_name) or {}).get("IPAddress", "")
        running = bool(state.get("Running"))
        return SandboxStatus.from_labels(
            data["Id"], labels,
            state=SandboxState.READY if running else SandboxState.NOTREADY,
            ip=ip if running else "",
            created_at=parse_docker_time(data.get("Created")) or 0.0,
        )

    async def create_sandbox(self, spec: SandboxSpec) -> SandboxStatus:
        name = spec.runtime_name()
        config: dict[str, Any] = {
            "Image": self._sandbox_image,
            "Cmd": list(PAUSE_COMMAND),
            "Hostname": spec.effective_hostname(),
            "StopSignal": SANDBOX_STOP_SIGNAL,
            "Labels": {**spec.all_labels(), **self._scope},
            "HostConfig": {"NetworkMode": self._network_name, "LogConfig": LOG_CONFIG},
        }
        try:
            await self._ensure_setup()
            return await self._run_sandbox(config, name)
        except _SetupGone:
            # The network or the sandbox image went away since this adapter checked them
            # (someone pruned them): check again, once.
            self._network, self._sandbox_image_ok = None, False
        await self._ensure_setup()
        try:
            return await self._run_sandbox(config, name)
        except _SetupGone as err:
            raise CreateContainerError(name, str(err)) from err

    async def _run_sandbox(self, config: dict[str, Any], name: str) -> SandboxStatus:
        def gone() -> RuntimeAdapterError:
            return _SetupGone(f"network {self._network_name!r} or image "
                              f"{self._sandbox_image!r} is missing")

        with self._translate("create sandbox", not_found=gone,
                             conflict=lambda: ContainerAlreadyExists(name),
                             other=lambda err: CreateContainerError(name, err.message)):
            container = await self._client().containers.create(config, name=name)
        try:
            # The engine resolves the network only at start: a pruned one is a 404 here.
            with self._translate("start sandbox", not_found=gone,
                                 other=lambda err: ContainerCannotRun(container.id, err.message)):
                await container.start()
        except BaseException:
            with contextlib.suppress(RuntimeAdapterError):
                await self.remove_container(container.id)
            raise
        return await self.inspect_sandbox(container.id)

    async def inspect_sandbox(self, sandbox_id: str) -> SandboxStatus:
        data = await self._inspect(sandbox_id, "sandbox")
        if (data.get("Config") or {}).get("Labels", {}).get(ROLE) != ROLE_SANDBOX:
            raise ContainerNotFound(sandbox_id, "sandbox")
        return self._sandbox_status(data)

    async def remove_sandbox(self, sandbox_id: str) -> None:
        members = await self._list_ids(_label_filters({SANDBOX_ID: sandbox_id}))
        await asyncio.gather(*(self.remove_container(cid) for cid in members))
        await self.remove_container(sandbox_id)

    async def list_sandboxes(
        self, label_filter: Mapping[str, str] | None = None
    ) -> list[SandboxStatus]:
        ids = await self._list_ids(self._filters(label_filter, ROLE_SANDBOX))
        found = [self._sandbox_status(d) for d in await self._inspect_many(ids, "sandbox")]
        return sorted(found, key=lambda s: (s.created_at, s.id))

    # ------------------------------------------------------------------ containers

    def _container_status(self, data: dict[str, Any]) -> ContainerStatus:
        state = data.get("State") or {}
        config = data.get("Config") or {}
        status = state.get("Status", "")
        return container_status(
            data["Id"], config.get("Labels") or {},
            image=config.get("Image", ""),
            running=bool(state.get("Running")),
            created_at=parse_docker_time(data.get("Created")) or 0.0,
            exited=status in ("exited", "dead"),
            exit_code=state.get("ExitCode"),
            started_at=parse_docker_time(state.get("StartedAt")),
            finished_at=parse_docker_time(state.get("FinishedAt")),
            oom_killed=bool(state.get("OOMKilled")),
            error=state.get("Error") or "",
        )

    async def create_container(self, sandbox_id: str, spec: ContainerSpec) -> str:
        sandbox = await self._inspect(sandbox_id, "sandbox")
        sandbox_labels = (sandbox.get("Config") or {}).get("Labels") or {}
        if sandbox_labels.get(ROLE) != ROLE_SANDBOX:
            raise ContainerNotFound(sandbox_id, "sandbox")
        name = spec.runtime_name(sandbox_labels)
        if not (sandbox.get("State") or {}).get("Running"):
            raise CreateContainerError(name, f"sandbox {sandbox_id[:12]} is not running")
        host: dict[str, Any] = {
            "NetworkMode": f"container:{sandbox['Id']}",
            "LogConfig": LOG_CONFIG,
        }
        if spec.cpu_millicores:
            host["NanoCpus"] = spec.cpu_millicores * 1_000_000
        if spec.memory_bytes:
            # Swap equal to memory: no swap, so the limit is a hard OOM line as in Kubernetes.
            host["Memory"] = host["MemorySwap"] = spec.memory_bytes
        config: dict[str, Any] = {
            "Image": spec.image,
            # Kubernetes' rule maps exactly: command -> entrypoint, args -> cmd; the engine
            # drops the image's CMD when an entrypoint is given.
            "Entrypoint": list(spec.command) or None,
            "Cmd": list(spec.args) or None,
            "Env": [f"{k}={v}" for k, v in spec.env],
            "WorkingDir": spec.working_dir,
            "Labels": spec.all_labels(sandbox_labels, sandbox["Id"]),
            # The pod's stdin / stdinOnce / tty (what `docker run -i|-t` asks for): the
            # engine keeps stdin open for attaches, and with StdinOnce closes it when the
            # first one lets go (without a TTY; see the base contract).
            "Tty": spec.tty,
            "OpenStdin": spec.stdin,
            "StdinOnce": spec.stdin_once,
            "AttachStdin": spec.stdin,
            "HostConfig": host,
        }
        with self._translate(
            "create container",
            not_found=lambda: ImageNotPresent(spec.image, spec.image_pull_policy.value),
            conflict=lambda: ContainerAlreadyExists(name),
            other=lambda err: CreateContainerError(name, err.message),
        ):
            container = await self._client().containers.create(config, name=name)
        return str(container.id)

    async def start_container(self, container_id: str) -> None:
        with self._translate("start", not_found=self._not_found(container_id),
                             other=lambda err: ContainerCannotRun(container_id, err.message)):
            await self._client().containers.container(container_id).start()

    async def stop_container(self, container_id: str, grace_seconds: float) -> None:
        grace = max(0, math.ceil(grace_seconds))
        with self._translate("stop", not_found=self._not_found(container_id)):
            await self._client().containers.container(container_id).stop(t=grace)

    async def kill_container(self, container_id: str, signal: str = "SIGKILL") -> None:
        with self._translate("kill", not_found=self._not_found(container_id),
                             conflict=lambda: ContainerNotRunning(container_id)):
            await self._client().containers.container(container_id).kill(signal=signal)

    async def remove_container(self, container_id: str) -> None:
        # Idempotent: gone already (404) or being removed by someone else (409) is success.
        try:
            with self._translate("remove", not_found=self._not_found(container_id),
                                 conflict=self._not_found(container_id)):
                await self._client().containers.container(container_id).delete(force=True, v=True)
        except ContainerNotFound:
            pass

    async def list_containers(
        self, label_filter: Mapping[str, str] | None = None
    ) -> list[ContainerStatus]:
        # The list endpoint lacks exit codes, OOM and times; inspecting every match (in
        # parallel) keeps a relist correct on its own, at one cheap call per container.
        ids = await self._list_ids(self._filters(label_filter, ROLE_CONTAINER))
        found = [self._container_status(d) for d in await self._inspect_many(ids, "container")]
        return sorted(found, key=lambda s: (s.created_at, s.id))

    async def inspect_container(self, container_id: str) -> ContainerStatus:
        data = await self._inspect(container_id)
        if (data.get("Config") or {}).get("Labels", {}).get(ROLE) != ROLE_CONTAINER:
            raise ContainerNotFound(container_id)
        return self._container_status(data)

    # ------------------------------------------------------------------ logs, exec, events

    async def _log_frames(
        self, container_id: str, tail: int | None, follow: bool, since: float | None,
        timestamps: bool,
    ) -> AsyncIterator[bytes]:
        # Docker's timestamps are RFC 3339 with nine fraction digits, as kubectl shows.
        params: dict[str, Any] = {"stdout": True, "stderr": True, "follow": follow,
                  "tail": "all" if tail is None else str(max(0, tail)),
                  "timestamps": timestamps}
        if since is not None:
            params["since"] = f"{since:.9f}"
        tty = bool((await self._inspect(container_id)).get("Config", {}).get("Tty"))
        with self._translate("logs", not_found=self._not_found(container_id)):
            resp = await self._client()._do_query(
                f"containers/{container_id}/logs", "GET", params=params, timeout=None)
        try:
            while True:
                # Non-TTY logs are multiplexed: an 8-byte header (stream, size) per frame;
                # a terminal's output is one stream, sent as it is.
                try:
                    if tty:
                        frame = await resp.content.read(65536)
                        if not frame:
                            return
                    else:
                        header = await resp.content.readexactly(8)
                        (size,) = struct.unpack(">4xL", header)
                        frame = await resp.content.readexactly(size)
                except (asyncio.IncompleteReadError, aiohttp.ClientError):
                    return
                yield frame
        finally:
            resp.release()

    async def logs(
        self, container_id: str, *, tail: int | None = None, follow: bool = False,
        since: float | None = None, timestamps: bool = False,
    ) -> AsyncIterator[bytes]:
        frames = self._log_frames(container_id, tail, follow, since, timestamps)
        async for line in split_lines(frames):
            yield line

    async def exec(
        self, container_id: str, command: Sequence[str], timeout: float
    ) -> ExecResult:
        container = self._client().containers.container(container_id)
        with self._translate("exec", not_found=self._not_found(container_id),
                             conflict=lambda: ContainerNotRunning(container_id)):
            execution = await container.exec(list(command), stdout=True, stderr=True)
        output = bytearray()
        try:
            async with asyncio.timeout(timeout):
                with self._translate("exec", not_found=self._not_found(container_id)):
                    async with execution.start(detach=False) as stream:
                        while (message := await stream.read_out()) is not None:
                            output += message.data
                    info = await execution.inspect()
                    # The stream can end a moment before the engine records the exit code.
                    while info.get("Running"):
                        await asyncio.sleep(0.005)
                        info = await execution.inspect()
        except TimeoutError:
            # The engine cannot kill an exec'd process: it runs on (Kubernetes' dockershim
            # had the same limit); the probe still fails on time.
            raise ExecTimeout(container_id, command, timeout) from None
        code = info.get("ExitCode")
        return ExecResult(exit_code=int(code) if code is not None else 126, output=bytes(output))

    async def exec_session(self, container_id: str, command: Sequence[str], *,
                           stdin: bool, tty: bool) -> ExecSession:
        container = self._client().containers.container(container_id)
        # The engine cannot kill an exec'd process, so each carries a marker in its
        # environment (inherited by its children) that closing the session kills by.
        marker = exec_marker()
        with self._translate("exec", not_found=self._not_found(container_id),
                             conflict=lambda: ContainerNotRunning(container_id)):
            execution = await container.exec(list(command), stdin=stdin, tty=tty,
                                             environment=[marker])
            stream = execution.start(detach=False)
            await stream._init()  # the engine starts the process on this request
        return _DockerSession(self, container_id, stream, tty=tty, execution=execution,
                              marker=marker)

    async def attach(self, container_id: str, *, stdin: bool) -> ExecSession:
        container = self._client().containers.container(container_id)
        with self._translate("attach", not_found=self._not_found(container_id)):
            info = await container.show()
            if not info.get("State", {}).get("Running"):
                raise ContainerNotRunning(container_id)
            # The engine applies the base contract's stdin rules itself: EOF on this
            # connection closes a StdinOnce container's stdin, or else ends the attach.
            stream = container.attach(stdin=stdin and bool(info["Config"].get("OpenStdin")),
                                      stdout=True, stderr=True)
            await stream._init()
        return _DockerSession(self, container_id, stream, tty=bool(info["Config"].get("Tty")))

    async def port_forward(self, sandbox_id: str, port: int
                           ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        sandbox = await self.inspect_sandbox(sandbox_id)
        if not sandbox.ip:
            raise ContainerNotRunning(sandbox_id)
        try:
            async with asyncio.timeout(5):
                return await asyncio.open_connection(sandbox.ip, port)
        except (OSError, TimeoutError) as err:
            reason = (os.strerror(err.errno) if isinstance(err, OSError) and err.errno
                      else "timed out")
            raise RuntimeAdapterError(f"cannot connect to port {port} of the pod "
                                      f"({sandbox.ip}): {reason}") from None

    async def _kill_marked(self, container_id: str, marker: str) -> None:
        """SIGKILL every process in the container whose environment holds ``marker``."""
        with contextlib.suppress(RuntimeAdapterError):
            await self.exec(container_id, kill_marked_command(marker), timeout=10)

    def events(self, label_filter: Mapping[str, str] | None = None) -> EventStream:
        return _DockerEvents(self, {**self._scope, **(label_filter or {})})

    async def close(self) -> None:
        if self._docker is not None:
            docker, self._docker = self._docker, None
            with contextlib.suppress(Exception):
                await docker.close()


class _DockerSession(ExecSession):
    """An exec'd process (``execution`` set) or an attach, over Docker's hijacked stream."""

    def __init__(self, runtime: DockerRuntime, container_id: str, stream: Any, *, tty: bool,
                 execution: Any = None, marker: str = "") -> None:
        self._runtime = runtime
        self._container_id = container_id
        self._stream = stream
        self._execution = execution
        self._marker = marker
        self._closed = False
        self.tty = tty

    async def read(self) -> tuple[int, bytes] | None:
        try:
            message = await self._stream.read_out()
        except (aiohttp.ClientError, DockerError, RuntimeError):
            return None
        if message is None:
            return None
        return (STDOUT if self.tty else message.stream), bytes(message.data)

    async def write(self, data: bytes) -> None:
        with contextlib.suppress(RuntimeError, ConnectionError):
            await self._stream.write_in(data)

    async def close_stdin(self) -> None:
        # Half-close the hijacked connection: the process reads EOF, its output goes on.
        connection = self._stream._resp.connection if self._stream._resp else None
        transport = connection.transport if connection is not None else None
        if transport is not None and transport.can_write_eof():
            transport.write_eof()

    async def resize(self, width: int, height: int) -> None:
        if not self.tty or width <= 0 or height <= 0:
            return
        with contextlib.suppress(DockerError):
            if self._execution is not None:
                await self._execution.resize(w=width, h=height)
            else:
                await self._runtime._client().containers.container(
                    self._container_id).resize(w=width, h=height)

    async def wait(self) -> int | None:
        if self._execution is None:
            return None
        info = await self._execution.inspect()
        while info.get("Running"):  # the stream can end a moment before the exit code
            await asyncio.sleep(0.005)
            info = await self._execution.inspect()
        code = info.get("ExitCode")
        return int(code) if code is not None else 126

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._execution is not None:
            with contextlib.suppress(DockerError, aiohttp.ClientError):
                if (await self._execution.inspect()).get("Running"):
                    await self._runtime._kill_marked(self._container_id, self._marker)
        with contextlib.suppress(Exception):
            await self._stream.close()


class _DockerEvents(EventStream):
    """One ``/events`` stream, filtered by the engine to kstate's container events."""

    def __init__(self, runtime: DockerRuntime, label_filter: Mapping[str, str] | None) -> None:
        super().__init__()
        self._runtime = runtime
        self._filters = {"type": ["container"], "event": sorted(_EVENT_KINDS),
                         "label": _label_filters(label_filter)}
        self._resp: aiohttp.ClientResponse | None = None

    async def _start(self) -> None:
        # ``since`` = now makes the engine replay anything that happens between this call
        # and the moment it registers the listener: subscribing first never loses an event.
        params = {"filters": json.dumps(self._filters), "since": f"{time.time():.9f}"}
        with self._runtime._translate("events"):
            self._resp = await self._runtime._client()._do_query(
                "events", "GET", params=params, timeout=None)

    async def _next(self) -> RuntimeEvent | None:
        assert self._resp is not None
        while True:
            try:
                line = await self._resp.content.readline()
            except (aiohttp.ClientError, OSError) as err:
                if self._closed:
                    return None
                raise self._runtime._unreachable(f"event stream broke: {err}") from err
            if not line:
                if self._closed:
                    return None
                raise self._runtime._unreachable("the engine closed the event stream")
            event = self._convert(json.loads(line))
            if event is not None:
                return event

    @staticmethod
    def _convert(data: dict[str, Any]) -> RuntimeEvent | None:
        kind = _EVENT_KINDS.get(data.get("Action") or data.get("status") or "")
        if kind is None:
            return None
        actor = data.get("Actor") or {}
        attrs = actor.get("Attributes") or {}
        labels = {k: v for k, v in attrs.items() if k.startswith("io.kstate.")}
        code = attrs.get("exitCode")
        nanos = data.get("timeNano")
        return RuntimeEvent(
            container_id=str(actor.get("ID") or data.get("id")),
            kind=kind,
            at=nanos / 1e9 if nanos else float(data.get("time", 0)),
            is_sandbox=labels.get(ROLE) == ROLE_SANDBOX,
            exit_code=int(code) if code is not None and kind is EventKind.DIED else None,
            labels=labels,
        )

    async def _stop(self) -> None:
        if self._resp is not None:
            self._resp.close()



def build_base_image_sync(
    url: str | None = None, *, tags: Sequence[str] = DEFAULT_TAGS, force: bool = False
) -> list[str]:
    """Blocking entry point for ``kstate image build-base`` and ``./dev test``.

    ``python -c 'from kstate.runtime.docker import build_base_image_sync as b; print(b())'``
    """

    async def build() -> list[str]:
        runtime = DockerRuntime(url)
        try:
            return await build_base_image(runtime, tags, force=force)
        finally:
            await runtime.close()

    return asyncio.run(build())
