"""``kstate up``: the whole control plane and a node in one process.

Where it sits: the top layer, beside ``cli``. It composes, inside one asyncio loop:

    store (SQLite in the data dir)  ->  ApiCore  ->  ApiServer (HTTPS, kubectl's door)
                                          |  LocalClient (same admission path, no HTTP)
        controller manager, scheduler, node agent(s) + runtime, service proxy

Every component talks to the API core — the store stays the single source of truth, so
``kill -9`` and ``kstate up`` again resumes from the store alone: informers relist, the
node agent adopts its containers, the proxy rebuilds its listeners.

``kstate up --apply specs/manifests/`` creates (or updates) the quick-start objects once
the cluster is up, like ``kubectl apply``; ``kstate down`` stops a running daemon through
the pid file in its data directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

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

log = logging.getLogger("kstate.daemon")

PID_FILE = "kstate.pid"


@attrs.frozen
class DaemonConfig:
    data_dir: Path = Path("kstate-data")
    store: str = ""  # default: sqlite:///<data_dir>/state.db
    listen: str = "127.0.0.1:6443"
    insecure_http: bool = False
    runtime: str = "docker"  # docker | fake
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
        if cfg.runtime != "docker":
            raise UsageError(f"--runtime {cfg.runtime!r}: choose docker or fake")
        from kstate.machines.pod import BackOffPolicy
        from kstate.node.agent import AgentOptions, NodeAgent
        from kstate.runtime import open_runtime

        runtime = open_runtime("docker")
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
    """Run until SIGINT/SIGTERM; the pid file lets ``kstate down`` find us."""
    pid_file = config.data_dir / PID_FILE
    config.data_dir.mkdir(parents=True, exist_ok=True)
    if _running(pid_file):
        raise UsageError(f"a kstate daemon already runs from {config.data_dir} "
                         f"(pid {pid_file.read_text().strip()}); run 'kstate down' first")
    pid_file.write_text(f"{os.getpid()}\n")
    tune_gc()  # a long-lived server of many small objects: fewer, larger GC passes
    try:
        return asyncio.run(_serve(config, ready))
    finally:
        with contextlib.suppress(FileNotFoundError):
            pid_file.unlink()


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


def stop_daemon(data_dir: Path, timeout: float = 60.0) -> bool:
    """Ask the daemon of ``data_dir`` to stop and wait for it; False if none runs."""
    import time

    pid_file = data_dir / PID_FILE
    if not _running(pid_file):
        return False
    pid = int(pid_file.read_text().strip())
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.1)
    raise KstateError(f"the daemon (pid {pid}) did not stop within {timeout:.0f} s")


def _running(pid_file: Path) -> bool:
    try:
        pid = int(pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return False
    return _alive(pid)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


__all__ = ["Daemon", "DaemonConfig", "apply_manifests", "run_component", "run_daemon",
           "stop_daemon"]
