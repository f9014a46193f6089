"""What both pod benchmarks share: the watch that times pods, RCs, statistics, machine.

Where it sits: ``bench/pods``. A :class:`PodTracker` is the measuring device — one watch
on pods (through the same ``ApiClient`` the components use), recording for every pod the
moment this process first *sees* it created, Running, and Ready. Kubernetes' pod startup
SLI is the same shape: creation to Running observed through a watch.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Sequence
from typing import Any

from bench.machine import describe_machine
from kstate.api.client import ApiClient
from kstate.api.codec import from_dict
from kstate.api.helpers import get_condition
from kstate.api.objects import Pod, ReplicationController
from kstate.errors import Compacted

#: The quick start's server, with a TERM trap so pods stop at once (busybox httpd as PID
#: 1 ignores TERM); the same command runs in the bare ``docker run`` floor.
HTTPD_COMMAND = ("sh", "-c", 'mkdir -p /www && echo "hello from $HOSTNAME" > /www/index.html;'
                 ' trap "exit 0" TERM; httpd -f -p 8080 -h /www & wait')


def rc(name: str, replicas: int, *, image: str = "kstate/httpd:1",
       command: Sequence[str] = HTTPD_COMMAND) -> ReplicationController:
    """An RC of the quick start's server, without a readiness probe: Kubernetes counts
    such a pod ready as soon as its container runs, so Ready = Running here."""
    return from_dict(ReplicationController, {
        "apiVersion": "v1", "kind": "ReplicationController",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"replicas": replicas, "selector": {"app": name},
                 "template": {"metadata": {"labels": {"app": name}}, "spec": {
                     "terminationGracePeriodSeconds": 5,
                     "containers": [{"name": "web", "image": image,
                                     "imagePullPolicy": "Never", "command": list(command),
                                     "ports": [{"containerPort": 8080}]}]}}},
    })


class PodTracker:
    """Times every pod of ``namespace`` matching ``label_selector`` through one watch."""

    def __init__(self, client: ApiClient, label_selector: str = "",
                 namespace: str = "default") -> None:
        self.client = client
        self.selector = label_selector
        self.namespace = namespace
        self.added: dict[str, float] = {}
        self.scheduled: dict[str, float] = {}
        self.running: dict[str, float] = {}
        self.ready: dict[str, float] = {}
        self.gone: set[str] = set()
        self.relists = 0
        self.events = 0
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def _see(self, kind: str, pod: Pod) -> None:
        now = time.perf_counter()
        name = pod.metadata.name
        self.events += 1
        if kind == "DELETED":
            self.gone.add(name)
        self.added.setdefault(name, now)
        if pod.spec.node_name and name not in self.scheduled:
            self.scheduled[name] = now
        if pod.status.phase == "Running" and name not in self.running:
            self.running[name] = now
        cond = get_condition(pod.status.conditions, "Ready")
        if cond is not None and cond.status == "True" and name not in self.ready:
            self.ready[name] = now
        self._changed.set()

    async def start(self) -> None:
        listing = await self.client.list(Pod, self.namespace, label_selector=self.selector)
        for pod in listing.items:
            self._see("ADDED", pod)
        self._task = asyncio.ensure_future(self._run(listing.resource_version))

    async def _run(self, revision: str) -> None:
        while True:
            try:
                async with self.client.watch(Pod, self.namespace, resource_version=revision,
                                             label_selector=self.selector) as w:
                    async for kind, pod in w:
                        if kind != "BOOKMARK":
                            self._see(kind, pod)
                            revision = pod.metadata.resource_version or revision
                return
            except Compacted:
                # Fell a watch buffer behind (a burst): relist, as an informer would.
                # A pod first seen Running here is timed at the relist: counted.
                self.relists += 1
                listing = await self.client.list(Pod, self.namespace,
                                                 label_selector=self.selector)
                for pod in listing.items:
                    self._see("MODIFIED", pod)
                revision = listing.resource_version

    async def wait(self, predicate: Any, timeout: float, what: str) -> None:
        deadline = time.perf_counter() + timeout
        while not predicate():
            self._changed.clear()
            left = deadline - time.perf_counter()
            if left <= 0:
                raise TimeoutError(f"{what}: not reached within {timeout:.0f} s "
                                   f"({len(self.added)} seen, {len(self.running)} running, "
                                   f"{len(self.ready)} ready)")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(left, 1.0))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    def latencies(self, until: str = "ready", since: str = "added") -> list[float]:
        end = {"ready": self.ready, "running": self.running,
               "scheduled": self.scheduled}[until]
        start = {"added": self.added, "scheduled": self.scheduled}[since]
        return [end[n] - start[n] for n in end if n in start]


def rss_kib(pid: int | str = "self") -> tuple[int, int]:
    """(VmRSS, VmHWM) of a process in KiB."""
    rss = hwm = 0
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("VmHWM:"):
                hwm = int(line.split()[1])
    return rss, hwm


def machine() -> dict[str, str]:
    return {
        **describe_machine(),
        "load average (1 min) at start": f"{os.getloadavg()[0]:.1f}",
    }


