"""``kstate up``: the whole control plane and a node in one process.

Where it sits: the top layer, beside ``cli``. It composes, inside one asyncio loop:

    store (SQLite in the data dir)  ->  ApiCore  ->  ApiServer (HTTPS, kubectl's door)
                                          |  LocalClient (same admission path, no HTTP)
        controller manager, scheduler, node agent(s) + runtime, service proxy

Every component talks to the API core — the store stays the single source of truth, so
``kill -9`` and ``kstate up`` again resumes from the store alone: informers relist, the
node agent adopts its containers, the proxy rebuilds its listeners.

``kstate up --apply specs/manifests/`` creates (or updates) the quick-start objects once
the cluster is up, like ``kubectl apply``.

One daemon per data directory: it holds an exclusive ``flock`` on ``DATA/kstate.lock``
for its whole life, with its pid written inside. The kernel drops the lock the moment the
process dies — SIGKILL included, before anyone reaps it — so a crashed daemon (a zombie,
or a pid since reused by another process) never blocks a restart. ``kstate down`` finds
the daemon by that lock: held means running, and the pid inside is the one to signal.

``kstate down --purge`` also removes every container and sandbox the cluster created.
They are found by the ``io.kstate.cluster`` label its Docker adapter puts on everything,
whose value is the data directory's id (``DATA/cluster-id``, made at the first start on
Docker), so it works with the daemon already dead and never touches another cluster's
containers on a shared engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import shutil
import signal
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from kstate.api.client import ApiClient, LocalClient
from kstate.api.manifests import load_path
from kstate.api.meta import KubeObject
from kstate.api.server.core import ApiCore
from kstate.api.server.server import ApiServer, ServerConfig, tune_gc
from kstate.clock import Clock, RealClock
from kstate.control.manager import ControllerManager
from kstate.control.schedulerd import Scheduler
from kstate.errors import KeyExists, KstateError, UsageError
from kstate.store import open_store

if TYPE_CHECKING:
    from kstate.runtime.base import ContainerRuntime

log = logging.getLogger("kstate.daemon")

#: Held (``flock``) by the running daemon, which writes its pid inside.
LOCK_FILE = "kstate.lock"
#: The id every container of this data directory's cluster is labelled with.
CLUSTER_ID_FILE = "cluster-id"
#: The real runtimes this data directory's cluster ran on (and containerd's socket), so
#: ``kstate down --purge`` finds its containers on each.
RUNTIMES_FILE = "runtimes.json"


@attrs.frozen
class DaemonConfig:
    data_dir: Path = Path("kstate-data")
    store: str = ""  # default: sqlite:///<data_dir>/state.db
    listen: str = "127.0.0.1:6443"
    insecure_http: bool = False
    runtime: str = "docker"  # docker | containerd | fake
    containerd_socket: str = ""  # default: kstate's own containerd
    nodes: int = 1
    node_name: str = "node-1"
    node_port_address: str = "0.0.0.0"
    apply: tuple[str, ...] = ()
    backoff_initial: float = 10.0  # crash-loop back-off: first non-immediate delay
    backoff_cap: float = 300.0


class Daemon:
    """The all-in-one cluster; ``start`` brings it up, ``stop`` takes it down."""

    def __init__(self, config: DaemonConfig, clock: Clock | None = None) -> None:
        self.config = config
        self.clock = clock or RealClock()
        self._stops: list[Callable[[], Awaitable[None]]] = []
        self.url = ""
        self.kubeconfig = config.data_dir / "admin.kubeconfig"

    async def start(self) -> None:
        cfg = self.config
        cfg.data_dir.mkdir(parents=True, exist_ok=True)
        store = open_store(cfg.store or f"sqlite:///{cfg.data_dir.resolve()}/state.db")
        self._stops.append(store.close)
        core = ApiCore(store, self.clock)
        await core.start()
        self._stops.append(core.close)
        server = ApiServer(core, ServerConfig(listen=cfg.listen, data_dir=cfg.data_dir,
                                              insecure_http=cfg.insecure_http))
        self.url = await server.start()
        self._stops.append(server.stop)
        client = LocalClient(core)
        self.client = client

        manager = ControllerManager(client, self.clock)
        await manager.start()
        self._stops.append(manager.stop)
        scheduler = Scheduler(client, self.clock)
        await scheduler.start()
        self._stops.append(scheduler.stop)
        gateway = await self._start_nodes(client)
        await self._start_proxy(client, gateway)
        for path in cfg.apply:
            try:
                for line in await apply_manifests(client, path):
                    print(line, flush=True)
            except KstateError as err:  # a bad manifest is the user's to fix, not fatal
                log.error("applying %s failed: %s", path, err)
                print(f"error: applying {path}: {err}", flush=True)

    async def _start_nodes(self, client: ApiClient) -> str:
        cfg = self.config
        if cfg.runtime == "fake":
            from kstate.node.sim import SimOptions, SimulatedCluster

            cluster = SimulatedCluster(client, SimOptions(nodes=cfg.nodes), clock=self.clock)
            await cluster.start()
            self._stops.append(cluster.stop)
            return ""
        if cfg.runtime not in ("docker", "containerd"):
            raise UsageError(f"--runtime {cfg.runtime!r}: choose docker, containerd or fake")
        from kstate.machines.pod import BackOffPolicy
        from kstate.node.agent import AgentOptions, NodeAgent

        runtime = open_cluster_runtime(cfg.data_dir, cfg.runtime, cfg.containerd_socket,
                                       create=True)
        try:
            await runtime.version()  # a missing or wrong socket stops the start, by name
        except KstateError:
            await runtime.close()
            raise
        record_runtime(cfg.data_dir, cfg.runtime, cfg.containerd_socket)
        self._stops.append(runtime.close)
        backoff = BackOffPolicy(initial=cfg.backoff_initial, cap=cfg.backoff_cap)
        agent = NodeAgent(client, runtime, cfg.node_name, self.clock,
                          AgentOptions(server_port=0, backoff=backoff))
        await agent.start()
        self._stops.append(agent.stop)
        return agent.gateway

    async def _start_proxy(self, client: ApiClient, gateway: str) -> None:
        from kstate.proxy import ServiceProxy

        proxy = ServiceProxy(client, self.clock, bind_address=self.config.node_port_address,
                             pod_facing_address=gateway or None)
        await proxy.start()
        self._stops.append(proxy.stop)

    async def stop(self) -> None:
        while self._stops:
            stop = self._stops.pop()
            try:
                await stop()
            except Exception:  # keep taking the rest down
                log.exception("error while stopping %s", getattr(stop, "__qualname__", stop))


async def apply_manifests(client: ApiClient, path: str) -> list[str]:
    """Create each object in ``path`` (file or directory), or update it if it exists —
    the part of ``kubectl apply`` the quick start needs."""
    applied = []
    for manifest in load_path(path):
        obj: KubeObject = manifest.obj
        kind = type(obj)
        try:
            await client.create(obj)
            verb = "created"
        except KeyExists:
            current = await client.get(kind, obj.metadata.name, obj.metadata.namespace)
            meta = attrs.evolve(obj.metadata,
                                resource_version=current.metadata.resource_version)
            await client.update(attrs.evolve(obj, metadata=meta))
            verb = "configured"
        name = f"{kind.__name__.lower()}/{obj.metadata.name}"
        log.info("%s %s", name, verb)
        applied.append(f"{name} {verb}")
    return applied


# ----------------------------------------------------------------------- processes


def run_component(kubeconfig: str, build: Callable[[ApiClient, Clock], Any]) -> int:
    """Run one component (controller manager, scheduler, node agent) standalone against a
    remote API server until SIGINT/SIGTERM — the same objects the daemon embeds, over
    ``HttpClient`` instead of ``LocalClient``."""
    from kstate.api.client import HttpClient

    async def serve() -> int:
        client = HttpClient.from_kubeconfig(kubeconfig)
        clock = RealClock()
        component = build(client, clock)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await component.start()
            print(f"{type(component).__name__} running against {kubeconfig}", flush=True)
            await stop.wait()
        finally:
            with contextlib.suppress(Exception):
                await component.stop()
            await client.close()
        return 0

    return asyncio.run(serve())



def run_daemon(config: DaemonConfig, ready: Callable[[Daemon], None] | None = None) -> int:
    """Run until SIGINT/SIGTERM, holding the data directory's lock (see the module doc)."""
    config.data_dir.mkdir(parents=True, exist_ok=True)
    lock = DataDirLock(config.data_dir)
    lock.acquire(record_pid=True)
    tune_gc()  # a long-lived server of many small objects: fewer, larger GC passes
    try:
        return asyncio.run(_serve(config, ready))
    finally:
        lock.release()


async def _serve(config: DaemonConfig, ready: Callable[[Daemon], None] | None) -> int:
    daemon = Daemon(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await daemon.start()
        if ready is not None:
            ready(daemon)
        await stop.wait()
    finally:
        await daemon.stop()
    return 0


# ----------------------------------------------------------------- the data dir's lock


class DataDirLock:
    """The exclusive ``flock`` on ``DATA/kstate.lock`` that makes a daemon the only one.

    Only the lock says whether a daemon runs — never a pid, which may belong to a zombie
    or to an unrelated process by now. The pid written inside is read only while the lock
    is held, when it is the holder's.
    """

    #: Another process may hold the lock for a moment without being a daemon (``holder``
    #: probing it, ``kstate down --purge`` at work): how long to keep trying before
    #: calling it taken.
    PATIENCE = 1.0

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.path = data_dir / LOCK_FILE
        self._fd: int | None = None

    def acquire(self, *, record_pid: bool) -> None:
        """Take the lock (``record_pid``: as the daemon) or raise ``UsageError`` naming
        the daemon that holds it."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        deadline = time.monotonic() + self.PATIENCE
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    os.close(fd)
                    pid = self.holder()
                    who = f"(pid {pid}) " if pid else ""
                    raise UsageError(f"a kstate daemon {who}already runs from "
                                     f"{self.data_dir}; run 'kstate down' first") from None
                time.sleep(0.05)
        os.ftruncate(fd, 0)
        if record_pid:
            os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)  # no stale pid left behind
            os.close(self._fd)
            self._fd = None

    def held(self) -> bool:
        """Whether some process holds the lock right now (without taking it)."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return False  # closing the file drops the probe's shared lock
        except BlockingIOError:
            return True
        finally:
            os.close(fd)

    def holder(self) -> int | None:
        """The pid of the daemon holding the lock; ``None`` when none runs; 0 when the
        holder recorded no pid (a ``kstate down --purge`` at work)."""
        deadline = time.monotonic() + self.PATIENCE
        while self.held():
            with contextlib.suppress(FileNotFoundError, ValueError):
                return int(self.path.read_text().strip())
            if time.monotonic() > deadline:  # locked, pid not written (yet)
                return 0
            time.sleep(0.05)
        return None


def stop_daemon(data_dir: Path, timeout: float = 60.0) -> bool:
    """Ask the daemon of ``data_dir`` to stop and wait until it is gone; False if none runs."""
    lock = DataDirLock(data_dir)
    pid = lock.holder()
    if pid is None:
        return False
    if not pid:
        raise KstateError(f"{lock.path} is held by a process that is not a daemon (a "
                          "'kstate down --purge' still at work?); try again when it is done")
    with contextlib.suppress(ProcessLookupError):  # died since: the wait below sees it
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while lock.held():  # the lock outlives nothing of the process, zombies included
        if time.monotonic() > deadline:
            raise KstateError(f"the daemon (pid {pid}) did not stop within {timeout:.0f} s")
        time.sleep(0.1)
    return True


# ----------------------------------------------------------------- the cluster's containers


def cluster_id(data_dir: Path, *, create: bool = False) -> str | None:
    """The id the containers of ``data_dir``'s cluster are labelled with (made on first
    use when ``create``); ``None`` when it has none, i.e. never ran on Docker."""
    path = data_dir / CLUSTER_ID_FILE
    with contextlib.suppress(FileNotFoundError):
        if found := path.read_text().strip():
            return found
    if not create:
        return None
    # Written whole or not at all: an empty id would be no scope, i.e. every cluster's.
    new = uuid.uuid4().hex
    partial = path.with_suffix(".new")
    partial.write_text(f"{new}\n")
    partial.replace(path)
    return new


def purge(data_dir: Path, *, delete_data: bool = False) -> int:
    """Remove every container and sandbox, running or stopped, that ``data_dir``'s cluster
    created — and with ``delete_data`` the directory itself. The daemon must be stopped
    first: this holds the data directory's lock meanwhile, so none starts during it.
    Returns how many containers (sandboxes included) were removed."""
    if not (data_dir / LOCK_FILE).exists():  # every daemon made one at its start
        raise UsageError(f"{data_dir} is not the data directory of a kstate daemon (it has "
                         f"no {LOCK_FILE}); give the one 'kstate up' used with --data-dir")
    lock = DataDirLock(data_dir)
    lock.acquire(record_pid=False)
    try:
        removed = asyncio.run(_remove_cluster_containers(data_dir)) if cluster_id(data_dir) else 0
        if delete_data:
            shutil.rmtree(data_dir)
    finally:
        lock.release()
    return removed


def open_cluster_runtime(data_dir: Path, kind: str, containerd_socket: str = "", *,
                         create: bool = False) -> ContainerRuntime:
    """The ``kind`` adapter scoped to ``data_dir``'s cluster (its id made first if missing
    and ``create``)."""
    from kstate.runtime import open_runtime

    if create and not (data_dir / RUNTIMES_FILE).exists():
        # A cluster id without a record ran before the record existed: on Docker.
        _write_runtimes(data_dir, {"docker": {}} if cluster_id(data_dir) else {})
    cluster = cluster_id(data_dir, create=create) or ""
    if kind == "containerd" and containerd_socket:
        return open_runtime(kind, cluster=cluster, socket=containerd_socket)
    return open_runtime(kind, cluster=cluster)


def record_runtime(data_dir: Path, kind: str, containerd_socket: str = "") -> None:
    """Note that the cluster ran on ``kind`` (once it answered), for ``kstate down
    --purge``."""
    used = _read_runtimes(data_dir) or {}
    used[kind] = {"socket": containerd_socket} if kind == "containerd" else {}
    _write_runtimes(data_dir, used)


def recorded_runtimes(data_dir: Path) -> dict[str, dict[str, str]]:
    """The runtimes ``data_dir``'s cluster ran on; a directory from before the record
    existed ran on Docker only."""
    found = _read_runtimes(data_dir)
    if found is None:
        return {"docker": {}} if cluster_id(data_dir) else {}
    return found


def _read_runtimes(data_dir: Path) -> dict[str, dict[str, str]] | None:
    path = data_dir / RUNTIMES_FILE
    try:
        found = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except ValueError as err:
        raise UsageError(f"{path} is not valid JSON ({err}); delete it and remove the "
                         "cluster's containers by their io.kstate.cluster label") from err
    return {str(k): dict(v) for k, v in found.items()} if isinstance(found, dict) else {}


def _write_runtimes(data_dir: Path, used: dict[str, dict[str, str]]) -> None:
    partial = data_dir / f"{RUNTIMES_FILE}.new"  # written whole or not at all
    partial.write_text(json.dumps(used, sort_keys=True) + "\n")
    partial.replace(data_dir / RUNTIMES_FILE)


async def _remove_cluster_containers(data_dir: Path) -> int:
    removed = 0
    for kind, options in recorded_runtimes(data_dir).items():
        runtime = open_cluster_runtime(data_dir, kind, options.get("socket", ""))
        try:
            # App containers first: each lives in its sandbox's network namespace.
            for listing in (runtime.list_containers, runtime.list_sandboxes):
                ids = [found.id for found in await listing()]
                await asyncio.gather(*(runtime.remove_container(cid) for cid in ids))
                removed += len(ids)
        finally:
            await runtime.close()
    return removed


__all__ = ["Daemon", "DaemonConfig", "DataDirLock", "apply_manifests", "cluster_id",
           "purge", "run_component", "run_daemon", "stop_daemon"]
