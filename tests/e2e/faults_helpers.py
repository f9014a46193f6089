"""Plumbing of the process-fault tests (``test_faults.py``): a ``kstate up`` to SIGKILL and
start again, the writes the test issues and what each acknowledgement obliges the store
to keep, and the convergence check over the API and the engine (Docker or containerd).

Nothing here sleeps to synchronise. The daemon is another process: its readiness is read
from its own "kstate is up" line, and the cluster's convergence is a condition polled
through the API with a deadline. The only other sleeps are the *fault schedule* — the
seeded random delays that decide when a write is sent and when the kill lands.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path

import aiohttp
import attrs

from kstate.api.client import HttpClient, Watcher
from kstate.api.codec import from_dict
from kstate.api.lifecycle import pod_state
from kstate.api.objects import Pod, ReplicationController
from kstate.errors import Compacted, Unavailable
from kstate.runtime.base import HTTPD_IMAGE, ROLE_CONTAINER
from kstate.verify.stateful.machine import HTTPD
from tests.e2e.conftest import POLL, ROOT, Container, node_containers, up_args

SEED_ENV = "KSTATE_FAULT_SEED"
#: Short graces keep deletions quick; HTTPD exits on TERM, so they are not even used up.
GRACE_SECONDS = 2
#: How long one convergence may take after a restart (generous: CI machines are slow).
CONVERGE_TIMEOUT = 90.0


def fault_rng() -> tuple[int, random.Random]:
    """The seeded RNG of a fault schedule; ``KSTATE_FAULT_SEED=<seed>`` replays one."""
    seed = int(os.environ.get(SEED_ENV) or random.SystemRandom().randrange(2**32))
    print(f"fault schedule seed: {seed} (replay with {SEED_ENV}={seed})")
    return seed, random.Random(seed)


# ---------------------------------------------------------------------------- the daemon


class DaemonProcess:
    """``kstate up`` (Docker or containerd) as a child process in a session of its own, so
    SIGKILL of its process group takes the whole daemon down at once, as a crash would."""

    def __init__(self, data_dir: Path, node: str, store: str = "",
                 runtime: str = "docker") -> None:
        self.data_dir = data_dir
        self.node = node
        self.runtime = runtime
        self.store = store
        self.log = data_dir / "daemon.log"
        self.proc: subprocess.Popen[str] | None = None
        self.kills = 0
        self.start_seconds: list[float] = []  # process start -> "kstate is up", per start

    def start(self, timeout: float = 60.0) -> None:
        args = [sys.executable, "-m", "kstate.cli", "up", "--data-dir", str(self.data_dir),
                "--listen", "127.0.0.1:0", *up_args(self.runtime), "--node-name", self.node,
                "--node-port-address", "127.0.0.1"]
        if self.store:
            args += ["--store", self.store]
        began = time.monotonic()
        self.proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True,
                                     start_new_session=True)
        up = threading.Event()
        threading.Thread(target=self._pump, args=(self.proc, up), daemon=True).start()
        if not up.wait(timeout) or self.proc.poll() is not None:
            self.kill(count=False)
            raise AssertionError(f"kstate up did not come up within {timeout:.0f} s:\n"
                                 f"{self.log_tail()}")
        self.start_seconds.append(time.monotonic() - began)

    def _pump(self, proc: subprocess.Popen[str], up: threading.Event) -> None:
        """Copy the daemon's output to its log (a full pipe would block it); flag "up"."""
        assert proc.stdout is not None
        with self.log.open("a") as log:
            log.write(f"--- start (pid {proc.pid})\n")
            for line in proc.stdout:
                log.write(line)
                log.flush()
                if line.startswith("kstate is up"):
                    up.set()
        up.set()  # exited: start() sees it through poll()

    def kill(self, count: bool = True) -> None:
        """SIGKILL the daemon's process group and reap it."""
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        if count:
            self.kills += 1

    def client(self) -> HttpClient:
        return HttpClient.from_kubeconfig(self.data_dir / "admin.kubeconfig")

    def log_tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


# ---------------------------------------------------------------------------- the writes


def rc_manifest(name: str, run: str, replicas: int) -> ReplicationController:
    """An RC of HTTPD pods (exits on TERM) labelled with the test run's id."""
    labels = {"app": name, "run": run}
    return from_dict(ReplicationController, {
        "apiVersion": "v1", "kind": "ReplicationController",
        "metadata": {"name": name, "namespace": "default", "labels": labels},
        "spec": {"replicas": replicas, "selector": labels,
                 "template": {"metadata": {"labels": labels},
                              "spec": {"terminationGracePeriodSeconds": GRACE_SECONDS,
                                       "containers": [{
                                           "name": "app", "image": HTTPD_IMAGE,
                                           "imagePullPolicy": "Never",
                                           "command": ["sh", "-c", HTTPD]}]}}}})


@attrs.frozen
class Write:
    """One RC write: create (``replicas``), scale (``replicas``) or delete (``None``)."""

    verb: str  # create | scale | delete
    rc: str
    replicas: int | None = None
    propagation: str = "Background"  # of a delete: Background | Foreground

    def __str__(self) -> str:
        if self.verb == "delete":
            return f"delete {self.rc} ({self.propagation})"
        return f"{self.verb} {self.rc} replicas={self.replicas}"


class Acknowledged:
    """What the store must show for each RC, given the writes it answered 2xx.

    ``allowed[rc]`` is the set of ``spec.replicas`` the store may hold (``None``: the RC
    is gone). An acknowledged write narrows it to its own value; a write whose answer a
    kill cut off leaves both outcomes open; a convergence's observation settles it again.

    ``bound[rc]`` is the most pods the RC may have active at once: the largest count it
    was asked for since the last convergence. Bounds are kept per convergence (with the
    store revision it was observed at), so a pod event is judged by the bound in force
    at *its* revision, however late the watch delivers it.
    """

    def __init__(self, run: str) -> None:
        self.run = run
        self.allowed: dict[str, set[int | None]] = {}
        self._bounds: list[tuple[int, dict[str, int]]] = [(0, {})]
        self.acked = 0
        self.in_doubt: list[Write] = []
        #: Safety violations the pod watch saw between polls (see :class:`PodMonitor`).
        self.violations: list[str] = []

    @property
    def bound(self) -> dict[str, int]:
        return self._bounds[-1][1]

    def bound_at(self, revision: int) -> dict[str, int]:
        return next(b for settled, b in reversed(self._bounds) if settled < revision)

    async def send(self, client: HttpClient, write: Write) -> bool:
        """Issue ``write``; False if the daemon died before answering (outcome unknown)."""
        self.bound[write.rc] = max(self.bound.get(write.rc, 0), write.replicas or 0)
        try:
            if write.verb == "create":
                assert write.replicas is not None
                await client.create(rc_manifest(write.rc, self.run, write.replicas))
            elif write.verb == "scale":
                assert write.replicas is not None
                await client.scale(ReplicationController, write.rc, write.replicas)
            else:
                await client.delete(ReplicationController, write.rc, "default",
                                    propagation_policy=write.propagation)
        except (Unavailable, aiohttp.ClientError):  # the answer was cut off: in doubt
            self.allowed.setdefault(write.rc, {None}).add(write.replicas)
            self.in_doubt.append(write)
            return False
        self.allowed[write.rc] = {write.replicas}
        self.acked += 1
        return True

    def live(self) -> set[str]:
        return {rc for rc, values in self.allowed.items() if values != {None}}

    def settle(self, observed: dict[str, int], revision: int) -> None:
        """After a convergence observed at ``revision``: the store's values are the truth."""
        for rc in list(self.allowed):
            self.allowed[rc] = {observed.get(rc)}
        self._bounds.append((revision, {rc: observed.get(rc, 0) for rc in self.allowed}))


def active_over_bound(pods: Iterable[Pod], bound: dict[str, int]) -> list[str]:
    """Duplicate pods: an RC with more active (not terminating) pods than its bound."""
    active = Counter(p.metadata.labels.get("app", "") for p in pods
                     if not p.metadata.deletion_timestamp)
    return [f"duplicate pods: {count} active pods of {rc}, "
            f"at most {bound.get(rc, 0)} ever asked for"
            for rc, count in active.items() if count > bound.get(rc, 0)]


class PodMonitor:
    """Watches this run's pods for the whole test, across daemon restarts (resuming at
    the last revision it saw), and checks the pod bound at every event — transient
    duplicates that a poll would miss included."""

    def __init__(self, daemon: DaemonProcess, model: Acknowledged) -> None:
        self.daemon = daemon
        self.model = model
        self.pods: dict[str, Pod] = {}
        self.revision = ""
        self.events = 0
        self.last_error = ""
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> PodMonitor:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _run(self) -> None:
        selector = f"run={self.model.run}"
        while True:
            client: HttpClient | None = None
            try:
                client = self.daemon.client()
                if not self.revision:
                    listed = await client.list(Pod, "default", label_selector=selector)
                    self.pods = {p.metadata.name: p for p in listed.items}
                    self.revision = listed.resource_version
                    self._check(int(self.revision))
                async with client.watch(Pod, "default", resource_version=self.revision,
                                        label_selector=selector) as stream:
                    async for kind, pod in stream:
                        self._apply(kind, pod)
            except Compacted:
                self.revision = ""  # relist
            except Exception as err:  # the daemon is down or restarting: retry
                self.last_error = repr(err)
            finally:
                if client is not None:
                    await client.close()
            await asyncio.sleep(0.1)  # retry interval while the daemon is down

    def _apply(self, kind: str, pod: Pod) -> None:
        self.revision = pod.metadata.resource_version or self.revision
        if kind == "BOOKMARK":
            return
        self.events += 1
        if kind == "DELETED":
            self.pods.pop(pod.metadata.name, None)
        else:
            self.pods[pod.metadata.name] = pod
        self._check(int(self.revision))

    def _check(self, revision: int) -> None:
        for problem in active_over_bound(self.pods.values(), self.model.bound_at(revision)):
            self.model.violations.append(f"at revision {revision}: {problem}")


# ----------------------------------------------------------------------- the engine's view


@attrs.frozen
class Snapshot:
    rcs: dict[str, ReplicationController]
    pods: list[Pod]
    containers: list[Container]
    revision: int  # of the pod list


async def snapshot(client: HttpClient, run: str, node: str, runtime: str = "docker"
                   ) -> Snapshot:
    rcs = await client.list(ReplicationController, "default", label_selector=f"run={run}")
    pods = await client.list(Pod, "default", label_selector=f"run={run}")
    containers = await asyncio.to_thread(node_containers, node, runtime)
    return Snapshot({rc.metadata.name: rc for rc in rcs.items}, list(pods.items), containers,
                    int(pods.resource_version))


def lost_writes(snap: Snapshot, model: Acknowledged) -> list[str]:
    """Acknowledged writes the store does not show. The store is durable, so this is
    checked at the first answer after a restart — not left to convergence. An RC marked
    for (foreground) deletion counts as deleted."""
    found = []
    for rc, allowed in sorted(model.allowed.items()):
        live = snap.rcs.get(rc)
        value = None if live is None or live.metadata.deletion_timestamp \
            else live.spec.replicas
        if value not in allowed:
            found.append(f"acknowledged write lost: {rc} replicas={value}, expected one of "
                         f"{sorted(allowed, key=str)}")
    return found


def safety_violations(snap: Snapshot, model: Acknowledged) -> list[str]:
    """What may never be seen, converged or not: a lost acknowledged write, more active
    pods than an RC was ever asked for since the last convergence (here or at any event
    the pod watch saw), two running containers (or sandboxes) for one pod."""
    found = lost_writes(snap, model) + model.violations
    found += active_over_bound(snap.pods, model.bound)
    running = Counter((c.pod_uid, c.role) for c in snap.containers if c.state == "running")
    for (uid, role), count in running.items():
        if count > 1:
            found.append(f"duplicate containers: {count} running {role}s for pod uid {uid}")
    return found


def convergence_gaps(snap: Snapshot, node: str) -> list[str]:
    """Why the cluster is not (yet) converged to its RCs; [] when it is."""
    gaps = [f"{name} is still being deleted" for name, rc in sorted(snap.rcs.items())
            if rc.metadata.deletion_timestamp]
    owners = {obj.metadata.uid: name for name, obj in snap.rcs.items()}
    by_owner: dict[str, list[Pod]] = defaultdict(list)
    for pod in snap.pods:
        name = pod.metadata.name
        owner = next((o.uid for o in pod.metadata.owner_references if o.controller), "")
        state = pod_state(pod)
        if owner not in owners:
            gaps.append(f"pod {name} ({state}) has no live RC")
        elif state != "Ready" or pod.spec.node_name != node:
            gaps.append(f"pod {name} is {state} on {pod.spec.node_name or 'no node'}")
        else:
            by_owner[owners[owner]].append(pod)
    for name, obj in snap.rcs.items():
        if len(by_owner[name]) != obj.spec.replicas:
            gaps.append(f"{name}: {len(by_owner[name])} ready pods, "
                        f"spec.replicas={obj.spec.replicas}")
    uids = {p.metadata.uid for p in snap.pods}
    orphans = [c for c in snap.containers if c.pod_uid not in uids]
    if orphans:
        gaps.append(f"orphan containers: {[(c.id, c.role, c.state) for c in orphans]}")
    running = Counter((c.pod_uid, c.role) for c in snap.containers if c.state == "running")
    for pod in snap.pods:
        for role in ("sandbox", ROLE_CONTAINER):
            if running[(pod.metadata.uid, role)] != 1:
                gaps.append(f"pod {pod.metadata.name}: "
                            f"{running[(pod.metadata.uid, role)]} running {role}s")
    return gaps


async def converge(client: HttpClient, model: Acknowledged, node: str,
                   on_timeout: Callable[[], str], runtime: str = "docker") -> Snapshot:
    """Poll until the cluster shows exactly what was acknowledged (bounded); fail at once
    on a safety violation. Settles ``model`` on the observed values."""
    deadline = time.monotonic() + CONVERGE_TIMEOUT
    gaps: list[str] = ["never observed"]
    while time.monotonic() < deadline:
        try:
            snap = await snapshot(client, model.run, node, runtime)
        except Unavailable:  # the API server may still be warming up a connection
            await asyncio.sleep(POLL)
            continue
        bad = safety_violations(snap, model)
        assert not bad, "\n".join(bad) + f"\n--- daemon log\n{on_timeout()}"
        gaps = convergence_gaps(snap, node)
        if not gaps:
            model.settle({name: rc.spec.replicas or 0 for name, rc in snap.rcs.items()},
                         snap.revision)
            return snap
        await asyncio.sleep(POLL)
    raise AssertionError(f"no convergence within {CONVERGE_TIMEOUT:.0f} s:\n"
                         + "\n".join(gaps) + f"\n--- daemon log\n{on_timeout()}")


# ------------------------------------------------------------------------------- a round


#: Watch events of one pod's start (ADDED, bound, ContainerCreating, Running and Ready)
#: and of its graceful stop (deletionTimestamp, terminated, DELETED) — roughly.
EVENTS_PER_START = 4
EVENTS_PER_STOP = 3


def pod_events(model: Acknowledged, writes: list[Write]) -> int:
    """About how many pod events ``writes`` cause, from the settled replica counts."""
    replicas = {rc: next(iter(values)) or 0 for rc, values in model.allowed.items()}
    events = 0
    for write in writes:
        before, after = replicas.get(write.rc, 0), write.replicas or 0
        events += (after - before) * (EVENTS_PER_START if after > before else -EVENTS_PER_STOP)
        replicas[write.rc] = after
    return events


async def faulty_round(daemon: DaemonProcess, model: Acknowledged, writes: list[Write],
                       rng: random.Random, *, window: float = 3.0,
                       also: Callable[[], Awaitable[None]] | None = None) -> str:
    """Send ``writes`` (the first at once, the others at random moments) and SIGKILL the
    daemon after a random number of watch events on this run's pods, fewer than the
    writes should cause (:func:`pod_events`) — in the middle of the work they started —
    or ``window`` seconds after the first answer if the work ends sooner; start it again
    and wait for convergence.

    ``also`` (e.g. kill an etcd member) runs concurrently with the writes. Returns a
    one-line account of the round for the test's log.
    """
    client = daemon.client()
    gaps = [0.0] + [rng.uniform(0.0, window / 4) for _ in writes[1:]]
    kill_after = rng.randint(0, max(pod_events(model, writes) - 1, 0))
    first_answered = asyncio.Event()
    sent: list[str] = []
    seen = 0

    async def writer() -> None:
        for gap, write in zip(gaps, writes, strict=True):
            await asyncio.sleep(gap)  # the fault schedule, not synchronisation
            acked = await model.send(client, write)
            first_answered.set()
            sent.append(str(write) if acked else f"{write} (in doubt)")
            if not acked:
                return

    async def killer(stream: Watcher[Pod]) -> None:
        nonlocal seen

        async def count() -> None:
            nonlocal seen
            async for _ in stream:
                seen += 1
                if seen >= kill_after:
                    return

        await first_answered.wait()
        with contextlib.suppress(TimeoutError):
            if kill_after:
                await asyncio.wait_for(count(), window)
        await asyncio.to_thread(daemon.kill)

    try:
        listed = await client.list(Pod, "default", label_selector=f"run={model.run}")
        async with client.watch(Pod, "default", resource_version=listed.resource_version,
                                label_selector=f"run={model.run}") as stream:
            await asyncio.gather(writer(), killer(stream), *([also()] if also else []))
    finally:
        await client.close()
    await asyncio.to_thread(daemon.start)
    client = daemon.client()
    try:
        began = time.monotonic()
        snap = await converge(client, model, daemon.node, daemon.log_tail, daemon.runtime)
    finally:
        await client.close()
    pods = Counter(p.metadata.labels.get("app", "") for p in snap.pods)
    when = f"after {seen} pod events" if seen >= kill_after else f"{window:.0f}s in"
    return (f"kill {when} of [{', '.join(sent)}]; up in {daemon.start_seconds[-1]:.2f}s, "
            f"converged in {time.monotonic() - began:.1f}s to {dict(sorted(pods.items()))}")


async def calm_round(daemon: DaemonProcess, model: Acknowledged, writes: list[Write]) -> None:
    """Send ``writes`` with no fault and wait for convergence (a test's starting point)."""
    client = daemon.client()
    try:
        for write in writes:
            assert await model.send(client, write), f"{write} failed with no fault injected"
        await converge(client, model, daemon.node, daemon.log_tail, daemon.runtime)
    finally:
        await client.close()


def replicas_of(model: Acknowledged, rc: str) -> int:
    """The settled ``spec.replicas`` of a live RC."""
    (value,) = model.allowed[rc]
    assert value is not None, f"{rc} is deleted"
    return value
