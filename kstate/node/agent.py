"""The node agent (kubelet): the engine executor of the pure pod worker.

Where it sits: API server -> watch -> **node agent** -> runtime adapter -> containers.
The agent registers its Node, heartbeats through its Lease, watches the pods bound to it
and runs one serialized worker per pod uid. A worker's round gathers a
:class:`~kstate.node.podsync.PodSyncView` (the pod from the watch cache, the pod's
sandbox and containers from the runtime, probe results, the back-off memory the agent
keeps), calls :func:`~kstate.node.podsync.sync`, and executes the commands it returns —
runtime calls, status writes, the final delete — until a round has nothing left to do.

The agent decides nothing about a pod's lifecycle: that lives only in ``podsync`` (which
the model checker runs too). What the agent owns is execution and plumbing:

* **which pods to look at** — every uid the watch cache or the runtime knows (so the
  containers of a pod that vanished, or is bound elsewhere, get a worker that tears
  them down: never an orphan), re-enqueued on pod events, runtime events (PLEG) and a
  cheap periodic relist of the runtime (kubelet's PLEG relists every second);
* **I/O of a round** — how a round's commands are carried out (order, parallel stops,
  what a lost status write or a failure does, when back-off memory and start errors are
  stored) is planned in ``node.execution``, which the model checker follows too; the
  agent sends what it asks to the runtime and the API server and reports how it went;
* **adoption** — containers are found by their runtime labels, so a restarted agent
  resumes the pods it ran: nothing is restarted needlessly, nothing is duplicated
  (a container's name includes its attempt; creating it twice fails in the runtime).

Embedding (the all-in-one daemon, tests)::

    agent = NodeAgent(LocalClient(core), open_runtime("docker"), "node-1",
                      options=AgentOptions(server_port=10250))
    await agent.start()        # registered, Ready, informers synced, workers running
    ...
    await agent.stop()         # containers keep running; a new agent adopts them
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import platform
from collections.abc import AsyncIterator, Iterable, Mapping
from enum import Enum
from typing import Any

import attrs

from kstate.api.client import ApiClient
from kstate.api.frozen import FrozenDict, freeze
from kstate.api.meta import KubeObject, ObjectMeta, Preconditions
from kstate.api.objects import (
    Lease,
    Node,
    NodeAddress,
    NodeSpec,
    NodeStatus,
    NodeSystemInfo,
    Pod,
    Service,
)
from kstate.api.server.discovery import SERVER_VERSION
from kstate.api.server.logs import AGENT_URL_ANNOTATION
from kstate.clock import Clock, RealClock
from kstate.control.informer import EventType, Informer, object_key
from kstate.control.podports import service_env
from kstate.control.workqueue import WorkQueue
from kstate.errors import (
    BadRequest,
    Conflict,
    ContainerAlreadyExists,
    ContainerCannotRun,
    CreateContainerError,
    IllegalTransition,
    ImageNotPresent,
    KeyExists,
    KstateError,
    NotFound,
    RuntimeAdapterError,
)
from kstate.machines.pod import BackOffPolicy
from kstate.node import execution, podsync
from kstate.node.heartbeat import LEASE_NAMESPACE, renew_lease, report_ready
from kstate.node.probes import NetworkProber, ProbeManager, Prober, ScriptedProber
from kstate.node.server import AgentServer
from kstate.node.streams import PodLocation, container_instances
from kstate.runtime.base import (
    NODE_NAME,
    POD_UID,
    ContainerRuntime,
    ContainerState,
    ContainerStatus,
    SandboxStatus,
)

log = logging.getLogger("kstate.node.agent")

DEFAULT_PORT = 10250
MAX_PODS = 110


def machine_capacity() -> dict[str, str]:
    """This machine's CPUs and memory, and Kubernetes' default pod limit."""
    memory = ""
    with contextlib.suppress(OSError, ValueError, IndexError), \
            open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1])}Ki"
                break
    out = {"cpu": str(os.cpu_count() or 1), "pods": str(MAX_PODS)}
    if memory:
        out["memory"] = memory
    return out


def _architecture() -> str:
    machine = platform.machine().lower()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


def _frozen_str_map(value: Mapping[str, str] | None) -> FrozenDict[str, str] | None:
    return None if value is None else FrozenDict({str(k): str(v) for k, v in value.items()})


def _frozen_labels(value: Mapping[str, str]) -> FrozenDict[str, str]:
    return FrozenDict({str(k): str(v) for k, v in value.items()})


@attrs.frozen
class AgentOptions:
    """How one node agent behaves; every default is Kubernetes' (or kubelet's) own."""

    #: ``status.capacity``; ``None``: this machine's (cpu, memory, pods=110)
    capacity: FrozenDict[str, str] | None = attrs.field(default=None,
                                                        converter=_frozen_str_map)
    #: ``status.allocatable``; ``None``: the capacity
    allocatable: FrozenDict[str, str] | None = attrs.field(default=None,
                                                           converter=_frozen_str_map)
    #: the node's InternalIP (also each pod's ``status.hostIP``)
    internal_ip: str = "127.0.0.1"
    #: extra Node labels (``kubernetes.io/hostname``, ``/os``, ``/arch`` are always set)
    labels: FrozenDict[str, str] = attrs.field(factory=FrozenDict, converter=_frozen_labels)
    #: ``spec.podCIDR`` written at registration (``""``: the runtime network's subnet)
    pod_cidr: str = ""
    #: crash-loop and image-pull back-off
    backoff: BackOffPolicy = attrs.field(factory=BackOffPolicy)
    #: seconds between Lease renewals
    lease_interval: float = 10.0
    #: seconds between checks of the Node's Ready condition (written only on change)
    status_interval: float = 10.0
    #: False: the owner calls :meth:`NodeAgent.heartbeat` (a simulated cluster's one timer)
    heartbeat_loop: bool = True
    #: seconds between runtime relists (PLEG); ``None``: events only (in-process fakes)
    relist_interval: float | None = 1.0
    #: the log endpoint (``None``: no server; 0: any free port)
    server_port: int | None = DEFAULT_PORT
    server_host: str = "127.0.0.1"
    #: published as the ``kstate.io/agent-url`` annotation instead of the own server's
    agent_url: str = ""
    #: answers probes; ``None``: :func:`default_prober` for the runtime
    prober: Prober | None = attrs.field(default=None, eq=False)
    #: rounds one sync may take before it gives up and retries with back-off
    max_rounds: int = 64
    #: seconds to wait before retrying a broken watch or runtime event stream
    retry_delay: float = 1.0
    #: exited instances of each container kept for ``logs --previous`` (kubelet keeps 1)
    keep_exited: int = 1


class _Outcome(Enum):
    AGAIN = "again"  # run another round
    IDLE = "idle"  # nothing to do until an event (or the requeue that was scheduled)
    RETRY = "retry"  # a runtime or API failure: retry with back-off


_OUTCOMES = {"again": _Outcome.AGAIN, "idle": _Outcome.IDLE, "retry": _Outcome.RETRY}


@attrs.define
class _Memory:
    """What a pod's worker remembers between rounds (podsync asks for it explicitly)."""

    start_errors: dict[str, str] = attrs.field(factory=dict)
    backoff: dict[str, podsync.BackOff] = attrs.field(factory=dict)


class NodeAgent:
    """One node: registration, heartbeat, and a serialized worker per pod uid.

    ``pod_informer`` / ``service_informer``: shared informers run by the caller (a
    simulated cluster hosting many agents). The pod informer's owner routes every event
    of it, the initial list included, to :meth:`pod_changed` of the pod's node agent;
    :meth:`start` only waits for it to be synced. Without one the agent watches the
    pods bound to it itself (field selector ``spec.nodeName``).
    """

    def __init__(
        self,
        client: ApiClient,
        runtime: ContainerRuntime,
        node_name: str,
        clock: Clock | None = None,
        options: AgentOptions | None = None,
        *,
        pod_informer: Informer[Pod] | None = None,
        service_informer: Informer[Service] | None = None,
    ) -> None:
        self.client = client
        self.runtime = runtime
        self.node_name = node_name
        self.clock: Clock = clock or RealClock()
        self.options = options or AgentOptions()
        self._own_pods = pod_informer is None
        self.pods: Informer[Pod] = pod_informer or Informer(
            client, Pod, field_selector=f"spec.nodeName={node_name}", clock=self.clock,
            retry_delay=self.options.retry_delay)
        if self._own_pods:
            self.pods.add_handler(self._on_pod_event)
        self._own_services = service_informer is None
        self.services: Informer[Service] = service_informer or Informer(
            client, Service, clock=self.clock, retry_delay=self.options.retry_delay)
        self.queue = WorkQueue(self.clock, base_delay=0.05, max_delay=30.0)
        self.prober: Prober = self.options.prober or default_prober(runtime)
        self.probes = ProbeManager(self.prober, self.clock, self.queue.add)
        self.server: AgentServer | None = None
        self.node: Node | None = None
        #: where containers reach the host (and the proxy's pod-facing listeners)
        self.gateway = ""
        self._by_uid: dict[str, Pod] = {}
        self._uid_of: dict[str, str] = {}  # "ns/name" -> uid
        self._gone: set[str] = set()  # uids this agent deleted, until the watch agrees
        self._memory: dict[str, _Memory] = {}
        self._fingerprints: dict[str, frozenset[tuple[str, str]]] = {}
        self._lease: Lease | None = None
        self._last_status = float("-inf")
        self._tasks: list[asyncio.Task[Any]] = []
        self._workers: set[asyncio.Task[None]] = set()
        self._events_ready: asyncio.Event = asyncio.Event()
        self._started = False

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Register, heartbeat, sync the caches, reconcile the runtime, start workers.

        Returns once the agent is fully running: the Node is Ready, every pod bound here
        and every pod the runtime still holds has been enqueued.
        """
        if self._started:
            return
        self._started = True
        opts = self.options
        if opts.server_port is not None:
            self.server = AgentServer(self, opts.server_host, opts.server_port,
                                      clock=self.clock)
            await self.server.start()
        await self.register()
        await self.renew_lease()
        spawn = self._spawn
        if self._own_pods:
            spawn(self.pods.run(), "pods")
        if self._own_services:
            spawn(self.services.run(), "services")
        # Pods start only once both caches are complete: a partial pod cache would make
        # the startup reconciliation tear down the containers of pods it has not seen,
        # and a partial service cache would start containers with missing env vars.
        await self.pods.synced()
        await self.services.synced()
        spawn(self._watch_runtime(), "runtime events")
        await self._events_ready.wait()  # subscribed, and the first relist enqueued
        spawn(self._dispatch(), "dispatch")
        if opts.heartbeat_loop:
            spawn(self._heartbeat_loop(), "heartbeat")
        if opts.relist_interval is not None:
            spawn(self._relist_loop(opts.relist_interval), "relist")
        log.info("node agent %s started (%d pods bound, %d in the runtime)",
                 self.node_name, len(self._by_uid), len(self._fingerprints))

    async def stop(self) -> None:
        """Stop watching and working. Containers keep running: the next agent adopts them."""
        self.queue.shutdown()
        if self._own_pods:
            self.pods.stop()
        if self._own_services:
            self.services.stop()
        tasks = [*self._tasks, *self._workers]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        self._workers.clear()
        await self.probes.close()
        if isinstance(self.prober, NetworkProber) and self.options.prober is None:
            await self.prober.close()
        if self.server is not None:
            await self.server.stop()
        self._started = False

    def _spawn(self, work: Any, name: str) -> None:
        self._tasks.append(asyncio.get_running_loop().create_task(
            work, name=f"agent {self.node_name}: {name}"))

    # ------------------------------------------------------------------ the node

    @property
    def agent_url(self) -> str:
        if self.options.agent_url:
            return self.options.agent_url
        return self.server.url if self.server is not None else ""

    async def _desired_node(self) -> Node:
        opts = self.options
        version = await self.runtime.version()
        network = await self.runtime.network_info()
        self.gateway = network.gateway
        cidr = opts.pod_cidr or network.subnet
        capacity = opts.capacity if opts.capacity is not None else FrozenDict(
            machine_capacity())
        allocatable = opts.allocatable if opts.allocatable is not None else capacity
        labels = {"kubernetes.io/hostname": self.node_name, "kubernetes.io/os": "linux",
                  "kubernetes.io/arch": _architecture(), **opts.labels}
        annotations = {AGENT_URL_ANNOTATION: self.agent_url} if self.agent_url else {}
        port = self.server.port if self.server is not None else 0
        extra = freeze({"daemonEndpoints": {"kubeletEndpoint": {"Port": port}}}) \
            if port else FrozenDict()
        return Node(
            metadata=ObjectMeta(name=self.node_name, labels=FrozenDict(labels),
                                annotations=FrozenDict(annotations)),
            spec=NodeSpec(pod_cidr=cidr),
            status=NodeStatus(
                capacity=FrozenDict(capacity), allocatable=FrozenDict(allocatable),
                addresses=(NodeAddress(type="InternalIP", address=opts.internal_ip),
                           NodeAddress(type="Hostname", address=self.node_name)),
                node_info=NodeSystemInfo(
                    kubelet_version=str(SERVER_VERSION["gitVersion"]),
                    container_runtime_version=f"{version.runtime_name}://"
                                              f"{version.runtime_version}",
                    operating_system="linux", architecture=_architecture()),
                extra=extra,
            ),
        )

    async def register(self) -> Node:
        """Create the Node (or bring an existing one up to date) and report it Ready."""
        desired = await self._desired_node()
        for _ in range(5):
            try:
                node = await self._register_once(desired)
            except (Conflict, KeyExists, NotFound):
                continue  # raced with a controller or an earlier agent: read again
            self.node = node
            self._last_status = self.clock.monotonic()
            return node
        raise Conflict(f"node {self.node_name}: registration kept conflicting")

    async def _register_once(self, desired: Node) -> Node:
        try:
            node = await self.client.create(desired)
        except KeyExists:
            node = await self.client.get(Node, self.node_name)
            # Whatever a previous agent published about its endpoint is replaced.
            annotations = node.metadata.annotations.without(AGENT_URL_ANNOTATION)
            meta = attrs.evolve(
                node.metadata,
                labels=FrozenDict({**node.metadata.labels, **desired.metadata.labels}),
                annotations=FrozenDict({**annotations, **desired.metadata.annotations}))
            spec = node.spec if node.spec.pod_cidr else attrs.evolve(
                node.spec, pod_cidr=desired.spec.pod_cidr)
            updated = attrs.evolve(node, metadata=meta, spec=spec)
            if updated != node:
                node = await self.client.update(updated)
            want = desired.status
            status = attrs.evolve(
                node.status, capacity=want.capacity, allocatable=want.allocatable,
                addresses=want.addresses, node_info=want.node_info,
                extra=FrozenDict({**node.status.extra.without("daemonEndpoints"),
                                  **want.extra}))
            if status != node.status:
                node = await self.client.update_status(attrs.evolve(node, status=status))
        ready = report_ready(node, self.clock.now())
        if ready is not None:
            node = await self.client.update_status(ready)
        return node

    async def renew_lease(self) -> None:
        """Renew ``kube-node-lease/<node>`` (create it when missing)."""
        for _ in range(3):
            renewed = renew_lease(self._lease, self.node_name, self.clock.now())
            try:
                self._lease = await self.client.update(renewed)
                return
            except (Conflict, NotFound, KeyExists):
                try:
                    self._lease = await self.client.get(Lease, self.node_name,
                                                        LEASE_NAMESPACE)
                except NotFound:
                    self._lease = None

    async def report_status(self) -> None:
        """Re-assert Ready if a controller marked the node otherwise; re-register a
        deleted Node. Writes only on change (the Lease is the frequent heartbeat)."""
        self._last_status = self.clock.monotonic()
        try:
            node = await self.client.get(Node, self.node_name)
        except NotFound:
            await self.register()
            return
        ready = report_ready(node, self.clock.now())
        self.node = node if ready is None else await self.client.update_status(ready)

    async def heartbeat(self) -> None:
        """One heartbeat: renew the Lease, and check the Node when its interval is due."""
        try:
            await self.renew_lease()
            if self.clock.monotonic() - self._last_status >= self.options.status_interval:
                await self.report_status()
        except KstateError as err:
            log.warning("node %s heartbeat failed: %s", self.node_name, err)

    async def _heartbeat_loop(self) -> None:
        while True:
            await self.clock.sleep(self.options.lease_interval)
            await self.heartbeat()

    # ------------------------------------------------------------------ pods in

    def _on_pod_event(self, kind: EventType, old: KubeObject | None,
                      new: KubeObject | None) -> None:
        self.pod_changed(_as_pod(old), _as_pod(new))

    def pod_changed(self, old: Pod | None, new: Pod | None) -> None:
        """A watch event about a pod of this node (``new`` None: gone or moved away)."""
        if old is not None and (new is None or old.metadata.uid != new.metadata.uid
                                or new.spec.node_name != self.node_name):
            uid = old.metadata.uid
            self._drop(uid)
            self._gone.discard(uid)
            self.queue.add(uid)
        # The echo of the agent's own status write is already cached: nothing new.
        if new is not None and new.spec.node_name == self.node_name and self._remember(new):
            self.queue.add(new.metadata.uid)

    def _remember(self, pod: Pod) -> bool:
        """Cache ``pod`` unless the cache has it already or a newer write of it (our
        own); True when the cache changed."""
        uid = pod.metadata.uid
        if uid in self._gone:
            return False
        cached = self._by_uid.get(uid)
        if cached is not None and _rv(cached) >= _rv(pod):
            return False
        self._by_uid[uid] = pod
        self._uid_of[object_key(pod)] = uid
        return True

    def _drop(self, uid: str) -> None:
        pod = self._by_uid.pop(uid, None)
        # The name may belong to a newer pod already (deleted, then created again).
        if pod is not None and self._uid_of.get(object_key(pod)) == uid:
            del self._uid_of[object_key(pod)]

    def _forget(self, uid: str) -> None:
        """This agent saw the pod go (its own delete, a 404): ignore stale events of it
        until the watch reports the deletion too."""
        self._drop(uid)
        self._gone.add(uid)

    def pod(self, uid: str) -> Pod | None:
        """The pod as this agent's cache has it."""
        return self._by_uid.get(uid)

    # ------------------------------------------------------------------ runtime in

    async def _watch_runtime(self) -> None:
        """PLEG: runtime events enqueue the affected pod; each (re)subscription is
        followed by a relist, so nothing that happened while unsubscribed is missed."""
        while True:
            try:
                async with self.runtime.events({NODE_NAME: self.node_name}) as stream:
                    await self.relist()
                    self._events_ready.set()
                    async for event in stream:
                        uid = event.labels.get(POD_UID)
                        if uid:
                            self.queue.add(uid)
            except RuntimeAdapterError as err:
                log.warning("node %s: runtime events: %s; resubscribing", self.node_name, err)
            self._events_ready.set()  # a runtime that is down must not block start()
            await self.clock.sleep(self.options.retry_delay)

    async def relist(self) -> None:
        """List the node's sandboxes and containers; enqueue every pod whose set of
        instances or their states changed since the last relist (the first relist
        enqueues all of them: the startup reconciliation)."""
        labels = {NODE_NAME: self.node_name}
        try:
            sandboxes = await self.runtime.list_sandboxes(labels)
            containers = await self.runtime.list_containers(labels)
        except RuntimeAdapterError as err:
            log.warning("node %s: relist failed: %s", self.node_name, err)
            return
        seen: dict[str, set[tuple[str, str]]] = {}
        for s in sandboxes:
            seen.setdefault(s.pod_uid, set()).add((s.id, s.state.value))
        for c in containers:
            seen.setdefault(c.pod_uid, set()).add((c.id, c.state.value))
        fingerprints = {uid: frozenset(v) for uid, v in seen.items() if uid}
        previous, self._fingerprints = self._fingerprints, fingerprints
        for uid in fingerprints.keys() | previous.keys():
            if fingerprints.get(uid) != previous.get(uid):
                self.queue.add(uid)

    async def _relist_loop(self, interval: float) -> None:
        while True:
            await self.clock.sleep(interval)
            await self.relist()

    # ------------------------------------------------------------------ workers

    async def _dispatch(self) -> None:
        """Hand each queued uid to its own task; the queue guarantees one per uid."""
        while True:
            uid = await self.queue.get()
            task = asyncio.get_running_loop().create_task(
                self._work(uid), name=f"agent {self.node_name}: pod {uid}")
            self._workers.add(task)
            task.add_done_callback(self._workers.discard)

    async def _work(self, uid: str) -> None:
        try:
            ok = await self.sync_pod(uid)
        except KstateError as err:  # the runtime or the API server is unreachable
            log.warning("node %s: sync of pod %s: %s", self.node_name, uid, err)
            ok = False
        except Exception:
            log.exception("node %s: sync of pod %s failed", self.node_name, uid)
            ok = False
        finally:
            self.queue.done(uid)
        if ok:
            self.queue.forget(uid)
        else:
            self.queue.add_rate_limited(uid)

    async def sync_pod(self, uid: str) -> bool:
        """Run rounds of the pod worker until it is idle; False: retry later."""
        for _ in range(self.options.max_rounds):
            now = self.clock.now()
            view = await self.view(uid)
            commands = podsync.sync(view, now, self.options.backoff)
            if not commands:
                await self._tidy(view)
                return True
            outcome = await self._execute(uid, view, commands, now)
            if outcome is _Outcome.IDLE:  # waiting out a back-off: a crash loop tidies too
                await self._tidy(view)
                return True
            if outcome is _Outcome.RETRY:
                return False
        log.warning("node %s: pod %s did not settle in %d rounds", self.node_name, uid,
                    self.options.max_rounds)
        return False

    async def view(self, uid: str) -> podsync.PodSyncView:
        """Everything one round may look at, read fresh from the cache and the runtime."""
        labels = {NODE_NAME: self.node_name, POD_UID: uid}
        sandboxes = await self.runtime.list_sandboxes(labels)
        containers = tuple(await self.runtime.list_containers(labels))
        if any(c.state is ContainerState.CREATED for c in containers):
            containers = await self._remove_unstarted(containers)
        sandbox = max(sandboxes, key=lambda s: (s.attempt, s.created_at)) \
            if sandboxes else None
        pod = self._by_uid.get(uid)
        memory = self._memory.get(uid) or _Memory()
        if pod is None or pod.metadata.deletion_timestamp or \
                pod.status.phase in ("Succeeded", "Failed"):
            self.probes.forget(uid)
        else:
            running = {name: c for name, c in _current(containers, sandbox).items()
                       if c.state is ContainerState.RUNNING}
            self.probes.sync_pod(uid, pod, running, sandbox.ip if sandbox else "")
        return podsync.PodSyncView(
            node=self.node_name, uid=uid, pod=pod, sandbox=sandbox, containers=containers,
            readiness=self.probes.readiness(uid),
            liveness_failed=self.probes.liveness_failed(uid),
            start_errors=FrozenDict(memory.start_errors),
            backoff=FrozenDict(memory.backoff),
            host_ip=self.options.internal_ip,
            service_env=self.service_env(pod) if pod is not None else (),
        )

    async def _remove_unstarted(
            self, containers: tuple[ContainerStatus, ...]) -> tuple[ContainerStatus, ...]:
        """Finish an interrupted start (an agent killed between create and start): the
        worker is serialized per pod, so a created-but-never-started instance is never
        one of its own starts in flight. Removed, podsync simply starts that attempt."""
        for c in containers:
            if c.state is ContainerState.CREATED:
                log.info("node %s: removing container %s of pod %s, created but never "
                         "started", self.node_name, c.id[:12], c.pod_uid)
                await self.runtime.remove_container(c.id)
        return tuple(c for c in containers if c.state is not ContainerState.CREATED)

    async def _execute(self, uid: str, view: podsync.PodSyncView,
                       commands: list[podsync.NodeCommand], now: float) -> _Outcome:
        """Carry out one round: ``node.execution``'s plan, with the runtime and API I/O."""
        plan = execution.execute(commands)
        reply: tuple[execution.RuntimeReply, ...] | execution.WriteOutcome | None = None
        try:
            while True:
                step = plan.send(reply)
                reply = await self._perform(uid, view, step)
        except StopIteration as done:
            end: execution.RoundEnd = done.value
        if end.reread is not None:
            await self._reread(uid, end.reread.pod)
        if end.requeue_at is not None:
            self.queue.add_after(uid, end.requeue_at - now)
        return _OUTCOMES[end.next]

    async def _perform(self, uid: str, view: podsync.PodSyncView, step: execution.NodeStep
                       ) -> tuple[execution.RuntimeReply, ...] | execution.WriteOutcome | None:
        if isinstance(step, execution.OnRuntime):
            return tuple(await asyncio.gather(*(self._on_runtime(uid, view, cmd)
                                                for cmd in step.commands)))
        if isinstance(step, execution.ToApi):
            try:
                return await self._write(uid, step)
            except KstateError as err:  # the API server is unreachable or refused
                log.warning("node %s: pod %s: %s", self.node_name, _name(view), err)
                return "unavailable"
        memory = self._memory.setdefault(uid, _Memory())
        for change in step.changes:
            execution.remember(memory.backoff, memory.start_errors, change)
        return None

    async def _on_runtime(self, uid: str, view: podsync.PodSyncView,
                          cmd: execution.RuntimeCommand) -> execution.RuntimeReply:
        try:
            if isinstance(cmd, podsync.StopContainer):
                await self.runtime.stop_container(cmd.container_id, cmd.grace)
            elif isinstance(cmd, podsync.EnsureSandbox):
                with contextlib.suppress(ContainerAlreadyExists):
                    await self.runtime.create_sandbox(cmd.spec)
            elif isinstance(cmd, podsync.StartContainer):
                return await self._start_container(cmd)
            else:
                await self.runtime.remove_sandbox(cmd.sandbox_id)
        except RuntimeAdapterError as err:
            log.warning("node %s: pod %s: %s", self.node_name, _name(view), err)
            return execution.RuntimeReply(failed=True)
        return execution.RuntimeReply()

    async def _start_container(self, cmd: podsync.StartContainer) -> execution.RuntimeReply:
        """Pull (per policy), create, start. An image that is not there is a start error
        podsync turns into ErrImagePull / ImagePullBackOff; a process that cannot run
        stays as an exited ContainerCannotRun instance podsync handles as an exit."""
        spec = cmd.spec
        try:
            await self.runtime.ensure_image(spec.image, spec.image_pull_policy)
            container_id = await self.runtime.create_container(cmd.sandbox_id, spec)
        except ImageNotPresent as err:
            return execution.RuntimeReply(start_error=err.reason)
        except ContainerAlreadyExists:
            return execution.RuntimeReply()  # this attempt exists: the next view shows it
        except CreateContainerError as err:
            log.warning("node %s: container %s: %s", self.node_name, spec.name, err)
            return execution.RuntimeReply(failed=True, start_error="CreateContainerError")
        try:
            await self.runtime.start_container(container_id)
        except ContainerCannotRun:
            pass
        except BaseException:
            # Never leave a created-but-not-started instance behind: podsync would wait
            # for it to run. The next round creates the attempt afresh.
            with contextlib.suppress(RuntimeAdapterError):
                await self.runtime.remove_container(container_id)
            raise
        return execution.RuntimeReply(start_error="")

    async def _write(self, uid: str, step: execution.ToApi) -> execution.WriteOutcome:
        """Status: compare-and-swap (``lost`` when someone wrote first, the move was
        refused, or the pod is gone). Final delete: grace 0, guarded by the uid — gone
        already, or the name taken by a new pod, ours is done either way."""
        cmd = step.command
        if isinstance(cmd, podsync.FinishDelete):
            try:
                await self.client.delete(Pod, cmd.name, cmd.namespace, grace_period_seconds=0,
                                         preconditions=Preconditions(uid=cmd.uid))
            except (NotFound, Conflict):
                self._forget(cmd.uid)
                return "lost"
            self._forget(cmd.uid)
            return "ok"
        pod = cmd.pod
        if pod.metadata.resource_version != step.resource_version:
            pod = attrs.evolve(pod, metadata=attrs.evolve(
                pod.metadata, resource_version=step.resource_version))
        try:
            written = await self.client.update_status(pod)
        except (Conflict, IllegalTransition, NotFound) as err:
            log.debug("node %s: status of %s: %s; re-reading", self.node_name,
                      object_key(cmd.pod), err)
            return "lost"
        self._remember(written)
        return "ok"

    async def _reread(self, uid: str, pod: Pod) -> None:
        try:
            fresh = await self.client.get(Pod, pod.metadata.name, pod.metadata.namespace)
        except NotFound:
            self._forget(uid)
            return
        if fresh.metadata.uid != uid or fresh.spec.node_name != self.node_name:
            self._forget(uid)
        else:
            self._remember(fresh)

    async def _tidy(self, view: podsync.PodSyncView) -> None:
        """A pod at rest: drop the memory of a pod that is fully gone, and remove exited
        instances beyond the newest ``keep_exited`` per container (kubelet's container
        GC; restart counts come from the attempt labels, so nothing is lost)."""
        uid = view.uid
        if view.pod is None and view.sandbox is None and not view.containers:
            self._memory.pop(uid, None)
            self.probes.forget(uid)
            self._fingerprints.pop(uid, None)
            return
        newest: dict[str, int] = {}
        for c in view.containers:
            newest[c.name] = max(newest.get(c.name, -1), c.attempt)
        exited = sorted((c for c in view.containers if c.state is ContainerState.EXITED
                         and c.attempt < newest[c.name]),
                        key=lambda c: -c.attempt)
        kept: dict[str, int] = {}
        for c in exited:
            kept[c.name] = kept.get(c.name, 0) + 1
            if kept[c.name] > self.options.keep_exited:
                with contextlib.suppress(RuntimeAdapterError):
                    await self.runtime.remove_container(c.id)

    # ------------------------------------------------------------------ services

    def service_env(self, pod: Pod) -> tuple[tuple[str, str], ...]:
        """Kubernetes' service links for ``pod``: the Services of its namespace (unless
        ``enableServiceLinks: false``) plus ``default/kubernetes``, sorted by name.

        Containers reach Services through the proxy on the runtime network's gateway, at
        the pod port the proxy recorded on each Service (``kstate.control.podports``):
        a ClusterIP lives on the host's loopback, which a container cannot reach. A
        Service the proxy has not allocated a pod port for yet gets no variables.
        """
        namespace = pod.metadata.namespace
        links = pod.spec.extra.get("enableServiceLinks", True) is not False
        chosen: dict[str, Service] = {}
        for svc in self.services.list():
            meta = svc.metadata
            if links and meta.namespace == namespace:
                chosen[meta.name] = svc
            elif meta.namespace == "default" and meta.name == "kubernetes":
                chosen.setdefault(meta.name, svc)
        return service_env((chosen[name] for name in sorted(chosen)), self.gateway)

    # ------------------------------------------------------------------ logs

    def locate_pod(self, namespace: str, pod: str) -> PodLocation:
        """Where a pod of this node lives in the runtime (for logs and streams)."""
        uid = self._uid_of.get(f"{namespace}/{pod}")
        cached = self._by_uid.get(uid) if uid else None
        if uid is None or cached is None:
            raise NotFound(f'pod "{pod}" not found on node {self.node_name}')
        return PodLocation(self.runtime, self.node_name, uid,
                           tuple(c.name for c in cached.spec.containers))

    async def container_log(self, namespace: str, pod: str, container: str, *,
                            previous: bool = False, tail: int | None = None,
                            follow: bool = False, since: float | None = None,
                            timestamps: bool = False) -> AsyncIterator[bytes]:
        """The log of a pod's container (``previous``: the instance before the current)."""
        instances = await container_instances(self.locate_pod(namespace, pod), pod,
                                              container)
        if previous:
            instances = instances[1:]
            if not instances:
                raise BadRequest(f'previous terminated container "{container}" in pod '
                                 f'"{pod}" not found')
        elif not instances:
            raise BadRequest(f'container "{container}" in pod "{pod}" is waiting to start: '
                             "ContainerCreating")
        chosen = instances[0]
        async for line in self.runtime.logs(chosen.id, tail=tail,
                                            follow=follow and not previous, since=since,
                                            timestamps=timestamps):
            yield line

    # ------------------------------------------------------------------ tests and tools

    def counts(self) -> dict[str, int]:
        """Pods cached, workers in flight, probe workers (for dashboards and tests)."""
        return {"pods": len(self._by_uid), "workers": len(self._workers),
                "probes": self.probes.worker_count(), "queued": len(self.queue)}


# --------------------------------------------------------------------------- helpers


def default_prober(runtime: ContainerRuntime) -> Prober:
    """Real probes (:class:`NetworkProber`); for the fake runtime, whose pods have no
    network, a :class:`ScriptedProber` passing every httpGet / tcpSocket probe and
    running exec probes through the fake's exec handler."""
    if runtime.name == "fake":
        return ScriptedProber(default=True, runtime=runtime)
    return NetworkProber(runtime)


def _as_pod(obj: KubeObject | None) -> Pod | None:
    assert obj is None or isinstance(obj, Pod)
    return obj


def _rv(pod: Pod) -> int:
    rv = pod.metadata.resource_version
    return int(rv) if rv.isdigit() else 0


def _name(view: podsync.PodSyncView) -> str:
    return object_key(view.pod) if view.pod is not None else view.uid


def _current(containers: Iterable[ContainerStatus],
             sandbox: SandboxStatus | None) -> dict[str, ContainerStatus]:
    """The newest instance of each container in the pod's current sandbox."""
    out: dict[str, ContainerStatus] = {}
    if sandbox is None:
        return out
    for c in containers:
        if c.sandbox_id == sandbox.id and (c.name not in out or c.attempt > out[c.name].attempt):
            out[c.name] = c
    return out


__all__ = ["DEFAULT_PORT", "AgentOptions", "NodeAgent", "default_prober", "machine_capacity"]
