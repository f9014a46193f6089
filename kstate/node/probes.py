"""Container probes: readiness, liveness and startup checks, on the injected clock.

Where it sits: ``kstate/node``, beside the agent. The agent's pod worker asks the
:class:`ProbeManager` which probe workers should exist (one per running container and
probe kind), and reads their results into the ``PodSyncView`` (``readiness``,
``liveness_failed``); ``podsync`` decides what a result means (Ready / not ready, kill
and restart). A worker calls back when its result changes, so the agent re-syncs the pod.

Kubernetes' semantics, kept exactly:

* defaults: ``initialDelaySeconds`` 0, ``periodSeconds`` 10, ``timeoutSeconds`` 1,
  ``successThreshold`` 1, ``failureThreshold`` 3; a result flips only after that many
  identical answers in a row;
* readiness starts as *failure* (unknown means not ready), liveness as *success*;
* while a startup probe has not succeeded, readiness and liveness are not run; a startup
  or liveness failure is final for that container (the worker holds, reporting the failure
  until podsync has killed the container and a new one replaced it);
* handlers: ``exec`` (through ``runtime.exec``: exit 0 passes), ``httpGet`` (to the pod IP;
  status 200-399 passes), ``tcpSocket`` (a connection passes).

How a probe is answered is pluggable (:class:`Prober`): :class:`NetworkProber` does it
for real (Docker: the host reaches pod IPs on the bridge), :class:`ScriptedProber` lets a
test or a simulated cluster decide results for fake-runtime pods.

>>> prober = ScriptedProber()
>>> prober.set("default/web", "c0", "liveness", False)
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import attrs

from kstate.api.frozen import FrozenDict
from kstate.api.objects import Container, Pod, Probe
from kstate.clock import Clock
from kstate.errors import RuntimeAdapterError
from kstate.runtime.base import ContainerRuntime, ContainerStatus

log = logging.getLogger("kstate.node.probes")


class ProbeKind(enum.StrEnum):
    READINESS = "readiness"
    LIVENESS = "liveness"
    STARTUP = "startup"


@attrs.frozen
class ProbeSettings:
    """A probe's timings with Kubernetes' defaults applied (0 counts as unset)."""

    initial_delay: float = 0.0
    period: float = 10.0
    timeout: float = 1.0
    success_threshold: int = 1
    failure_threshold: int = 3

    @classmethod
    def of(cls, probe: Probe) -> ProbeSettings:
        return cls(
            initial_delay=float(probe.initial_delay_seconds or 0),
            period=float(probe.period_seconds or 10),
            timeout=float(probe.timeout_seconds or 1),
            success_threshold=int(probe.success_threshold or 1),
            failure_threshold=int(probe.failure_threshold or 3),
        )


@attrs.frozen
class ProbeTarget:
    """What one probe runs against: the pod, its container, the running instance."""

    pod: Pod
    container: Container
    container_id: str
    pod_ip: str

    @property
    def pod_key(self) -> str:
        return f"{self.pod.metadata.namespace}/{self.pod.metadata.name}"


class Prober(Protocol):
    """Runs one probe once: ``True`` passes, ``False`` fails (errors and timeouts fail)."""

    async def probe(self, kind: ProbeKind, target: ProbeTarget, probe: Probe,
                    timeout: float) -> bool: ...


def resolve_port(port: int | str | None, container: Container) -> int | None:
    """A probe's port: a number, or the name of one of the container's ports."""
    if isinstance(port, int):
        return port
    if isinstance(port, str):
        if port.isdigit():
            return int(port)
        for p in container.ports:
            if p.name == port:
                return p.container_port
    return None


class NetworkProber:
    """Probes for real: ``exec`` through the runtime, ``httpGet``/``tcpSocket`` over the
    network to the pod IP (the host reaches pod IPs on Docker's bridge)."""

    def __init__(self, runtime: ContainerRuntime) -> None:
        self.runtime = runtime
        self._session: Any = None

    async def probe(self, kind: ProbeKind, target: ProbeTarget, probe: Probe,
                    timeout: float) -> bool:
        try:
            if probe.exec is not None:
                result = await self.runtime.exec(target.container_id, probe.exec.command,
                                                 timeout)
                return result.exit_code == 0
            if probe.http_get is not None:
                return await self._http(target, probe, timeout)
            if probe.tcp_socket is not None:
                return await self._tcp(target, probe, timeout)
        except (RuntimeAdapterError, OSError, TimeoutError) as err:
            log.debug("%s probe of %s/%s failed: %s", kind, target.pod_key,
                      target.container.name, err)
            return False
        log.warning("%s probe of %s/%s has no supported handler (exec, httpGet, tcpSocket)",
                    kind, target.pod_key, target.container.name)
        return False

    async def _http(self, target: ProbeTarget, probe: Probe, timeout: float) -> bool:
        import aiohttp

        action = probe.http_get
        assert action is not None
        host = action.host or target.pod_ip
        port = resolve_port(action.port, target.container)
        if not host or port is None:
            return False
        scheme = (action.scheme or "HTTP").lower()
        path = action.path or "/"
        if not path.startswith("/"):
            path = "/" + path
        if ":" in host:
            host = f"[{host}]"
        headers = {"User-Agent": "kstate-probe/1.0", "Accept": "*/*"}
        headers.update({h.name: h.value for h in action.http_headers})
        if self._session is None or self._session.closed:
            # The kubelet does not verify probe certificates; neither do we.
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=False, force_close=True))
        try:
            async with asyncio.timeout(timeout), self._session.get(
                    f"{scheme}://{host}:{port}{path}", headers=headers,
                    allow_redirects=False) as resp:
                return 200 <= resp.status < 400
        except aiohttp.ClientError:
            return False

    async def _tcp(self, target: ProbeTarget, probe: Probe, timeout: float) -> bool:
        action = probe.tcp_socket
        assert action is not None
        host = action.host or target.pod_ip
        port = resolve_port(action.port, target.container)
        if not host or port is None:
            return False
        async with asyncio.timeout(timeout):
            _, writer = await asyncio.open_connection(host, port)
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return True

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


Script = Callable[[ProbeKind, ProbeTarget], "bool | None"]


class ScriptedProber:
    """Probe results decided by a test or a simulation (fake-runtime pods have no
    network). Lookup order: a result ``set`` for (``ns/pod``, container, kind), then
    ``script(kind, target)`` (``None``: no opinion), then ``exec`` probes through the
    runtime when one is given (so a FakeRuntime's exec handler can answer), then
    ``default``."""

    def __init__(self, default: bool = True, *, script: Script | None = None,
                 runtime: ContainerRuntime | None = None) -> None:
        self.default = default
        self.script = script
        self.runtime = runtime
        self.results: dict[tuple[str, str, str], bool] = {}
        #: every probe run, in order: (kind, "ns/pod", container) — for assertions
        self.calls: list[tuple[str, str, str]] = []

    def set(self, pod: str, container: str, kind: ProbeKind | str, ok: bool | None) -> None:
        """Fix the answer for ``pod`` (``ns/name``); ``None`` goes back to the default."""
        key = (pod, container, str(kind))
        if ok is None:
            self.results.pop(key, None)
        else:
            self.results[key] = ok

    async def probe(self, kind: ProbeKind, target: ProbeTarget, probe: Probe,
                    timeout: float) -> bool:
        self.calls.append((str(kind), target.pod_key, target.container.name))
        fixed = self.results.get((target.pod_key, target.container.name, str(kind)))
        if fixed is not None:
            return fixed
        if self.script is not None:
            scripted = self.script(kind, target)
            if scripted is not None:
                return scripted
        if probe.exec is not None and self.runtime is not None:
            try:
                result = await self.runtime.exec(target.container_id, probe.exec.command,
                                                 timeout)
            except RuntimeAdapterError:
                return False
            return result.exit_code == 0
        return self.default


# --------------------------------------------------------------------------- workers


_INITIAL: dict[ProbeKind, bool | None] = {
    ProbeKind.READINESS: False,  # unknown: not ready
    ProbeKind.LIVENESS: True,
    ProbeKind.STARTUP: None,
}


class _Worker:
    """One probe of one container instance, run every period until cancelled."""

    def __init__(self, manager: ProbeManager, uid: str, kind: ProbeKind, target: ProbeTarget,
                 probe: Probe, started_at: float | None) -> None:
        self.manager = manager
        self.uid = uid
        self.kind = kind
        self.target = target
        self.probe = probe
        self.settings = ProbeSettings.of(probe)
        self.started_at = started_at
        self.result: bool | None = _INITIAL[kind]
        self._last: bool | None = None
        self._run = 0
        self.task: asyncio.Task[None] | None = None

    def observe(self, ok: bool) -> bool:
        """Count an answer; True when the reported result changed."""
        if ok == self._last:
            self._run += 1
        else:
            self._last, self._run = ok, 1
        threshold = self.settings.success_threshold if ok else self.settings.failure_threshold
        if self._run < threshold or self.result == ok:
            return False
        self.result = ok
        return True

    @property
    def holding(self) -> bool:
        """A failed liveness/startup probe is final for this container instance."""
        return self.kind is not ProbeKind.READINESS and self.result is False

    async def run(self) -> None:
        clock = self.manager.clock
        started = self.started_at if self.started_at is not None else clock.now()
        await clock.sleep(max(0.0, started + self.settings.initial_delay - clock.now()))
        while True:
            if self.kind is ProbeKind.STARTUP or self.manager.started(self.uid,
                                                                       self.target):
                ok = await self.manager.prober.probe(self.kind, self.target, self.probe,
                                                     self.settings.timeout)
                if self.observe(ok):
                    self.manager.changed(self.uid)
                if self.holding or (self.kind is ProbeKind.STARTUP and self.result):
                    return  # nothing more to learn about this instance
            await clock.sleep(self.settings.period)


_WorkerKey = tuple[str, ProbeKind]  # (container id, kind)


class ProbeManager:
    """Every probe worker of one node, keyed by pod uid, container instance and kind.

    ``on_change(uid)`` is called when a result changes (the agent enqueues the pod).
    """

    def __init__(self, prober: Prober, clock: Clock, on_change: Callable[[str], None]) -> None:
        self.prober = prober
        self.clock = clock
        self.on_change = on_change
        self._workers: dict[str, dict[_WorkerKey, _Worker]] = {}

    def changed(self, uid: str) -> None:
        self.on_change(uid)

    def started(self, uid: str, target: ProbeTarget) -> bool:
        """Has this container's startup probe (if any) succeeded?"""
        worker = self._workers.get(uid, {}).get((target.container_id, ProbeKind.STARTUP))
        return worker is None or worker.result is True

    def sync_pod(self, uid: str, pod: Pod, running: Mapping[str, ContainerStatus],
                 pod_ip: str) -> None:
        """Make the workers match the pod's running containers: start one per probe of
        a new instance, cancel those of instances that stopped or were replaced."""
        wanted: dict[_WorkerKey, tuple[Container, Probe, ContainerStatus]] = {}
        for container in pod.spec.containers:
            inst = running.get(container.name)
            if inst is None:
                continue
            for kind, probe in ((ProbeKind.STARTUP, container.startup_probe),
                                (ProbeKind.READINESS, container.readiness_probe),
                                (ProbeKind.LIVENESS, container.liveness_probe)):
                if probe is not None:
                    wanted[(inst.id, kind)] = (container, probe, inst)
        workers = self._workers.get(uid, {})
        for key in [k for k in workers if k not in wanted]:
            self._cancel(workers.pop(key))
        for key, (container, probe, inst) in wanted.items():
            if key in workers:
                continue
            target = ProbeTarget(pod=pod, container=container, container_id=inst.id,
                                 pod_ip=pod_ip)
            worker = _Worker(self, uid, key[1], target, probe, inst.started_at)
            worker.task = asyncio.get_running_loop().create_task(
                self._guard(worker), name=f"probe {key[1]} {target.pod_key}")
            workers[key] = worker
        if workers:
            self._workers[uid] = workers
        else:
            self._workers.pop(uid, None)

    async def _guard(self, worker: _Worker) -> None:
        try:
            await worker.run()
        except asyncio.CancelledError:
            raise
        except Exception:  # a prober bug must not kill the agent; the result just stays
            log.exception("probe worker failed")

    def forget(self, uid: str) -> None:
        """The pod is gone or terminating: stop all of its probes."""
        for worker in self._workers.pop(uid, {}).values():
            self._cancel(worker)

    def _results(self, uid: str, kind: ProbeKind) -> dict[str, bool | None]:
        return {w.target.container.name: w.result
                for (_, k), w in self._workers.get(uid, {}).items() if k is kind}

    def readiness(self, uid: str) -> FrozenDict[str, bool]:
        """Readiness per container name (containers with a readiness probe only)."""
        return FrozenDict({name: bool(ok) for name, ok in
                           self._results(uid, ProbeKind.READINESS).items()})

    def liveness_failed(self, uid: str) -> frozenset[str]:
        """Containers whose liveness or startup probe reached its failure threshold."""
        return frozenset(
            w.target.container.name for w in self._workers.get(uid, {}).values()
            if w.holding)

    def worker_count(self) -> int:
        return sum(len(w) for w in self._workers.values())

    @staticmethod
    def _cancel(worker: _Worker) -> None:
        if worker.task is not None:
            worker.task.cancel()

    async def close(self) -> None:
        tasks = [w.task for ws in self._workers.values() for w in ws.values() if w.task]
        self._workers.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


__all__ = [
    "NetworkProber",
    "ProbeKind",
    "ProbeManager",
    "ProbeSettings",
    "ProbeTarget",
    "Prober",
    "ScriptedProber",
    "resolve_port",
]
