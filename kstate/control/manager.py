"""The controller manager: informers, work queues and workers around the pure reconcilers.

Where it sits: the engine's ``kstate/control`` process (``kstate controller-manager``,
and inside the all-in-one daemon). Data flows

    API server -> informers (one shared cache per kind) -> handlers enqueue keys
      -> workers: view from the caches -> reconcile(view, now) -> Executor -> API server

Everything a controller decides comes from ``kstate.control.{replication, endpoints,
nodelifecycle, gc, namespace}`` — the functions the model checker explores; this module
only wires caches, queues and time around them. The pod cache is indexed by controller
(``replication.claim_group``), so an RC sync reads its own pods and the orphans, not the
whole namespace. The namespace controller's view is listed live, not from the caches
(see ``kstate.control.namespace``). The in-memory state (replication expectations, the
node controller's taint rate limiter) is lost on restart, by design: a fresh manager
lists and resumes from the store alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import attrs

from kstate.api.client import ApiClient
from kstate.api.meta import KubeObject
from kstate.api.objects import (
    Endpoints,
    Lease,
    Namespace,
    Node,
    Pod,
    ReplicationController,
    Service,
)
from kstate.clock import Clock, RealClock
from kstate.control import endpoints, gc, namespace, nodelifecycle, replication
from kstate.control.commands import Command
from kstate.control.executor import Executor, Result, kind_class
from kstate.control.expectations import Expectation
from kstate.control.expectations import apply as apply_observations
from kstate.control.informer import EventType, Informer, object_key
from kstate.control.workqueue import WorkQueue
from kstate.errors import KstateError

log = logging.getLogger(__name__)

LEASE_NAMESPACE = "kube-node-lease"
#: The pod informer's index by (namespace, controller uid): what an RC sync reads.
POD_CLAIM_INDEX = "claim"


@attrs.frozen
class ManagerSettings:
    replication: replication.ReplicationSettings = attrs.field(
        factory=replication.ReplicationSettings)
    node_lifecycle: nodelifecycle.NodeLifecycleSettings = attrs.field(
        factory=nodelifecycle.NodeLifecycleSettings)
    gc: gc.GCSettings = attrs.field(factory=gc.GCSettings)
    node_monitor_period: float = 5.0  # --node-monitor-period
    gc_period: float = 20.0
    #: Ownership changes (an RC removed or marked for deletion, the last dependents of a
    #: foreground deletion going) wake the collector early, at most this often: a cascade
    #: takes as long as its pods take to stop, not up to two whole ``gc_period``s.
    gc_min_gap: float = 1.0
    #: A terminating namespace with content left is synced again after this long (and
    #: at once when one of its pods goes: the usual last thing it waits for).
    namespace_recheck: float = 2.0
    workers: int = 2  # per queued controller (--concurrent-rc-syncs defaults to 5)
    resync: float | None = None


Sync = Callable[[str], Awaitable[Result]]
Reconcile = Callable[..., list[Command]]


@attrs.frozen
class Reconcilers:
    """The pure reconcile functions the manager runs: the real ones by default; a replay
    of a seeded bug swaps one, and everything around it (views, executor) stays the
    daemon's."""

    replication: Reconcile = replication.reconcile
    endpoints: Reconcile = endpoints.reconcile
    node_lifecycle: Reconcile = nodelifecycle.reconcile
    gc: Reconcile = gc.reconcile
    #: None: ``namespace.reconcile`` as the module has it at each sync (a seeded-bug
    #: test patches the module's function, and the engine must run the patched one)
    namespace: Reconcile | None = None


class ControllerManager:
    """Replication, endpoints, node lifecycle, namespaces and garbage collection over one
    client."""

    def __init__(self, client: ApiClient, clock: Clock | None = None,
                 settings: ManagerSettings = ManagerSettings(), *,
                 reconcilers: Reconcilers = Reconcilers()) -> None:
        self.client = client
        self.reconcilers = reconcilers
        self.clock = clock or RealClock()
        self.settings = settings
        self.executor = Executor(client, self.clock, "controller-manager")
        resync = settings.resync
        self.pods = Informer(client, Pod, clock=self.clock, resync=resync)
        self.pods.add_index(POD_CLAIM_INDEX, replication.claim_group)
        self.rcs = Informer(client, ReplicationController, clock=self.clock, resync=resync)
        self.services = Informer(client, Service, clock=self.clock, resync=resync)
        self.endpoints = Informer(client, Endpoints, clock=self.clock, resync=resync)
        self.nodes = Informer(client, Node, clock=self.clock, resync=resync)
        self.leases = Informer(client, Lease, namespace=LEASE_NAMESPACE, clock=self.clock)
        self.namespaces = Informer(client, Namespace, clock=self.clock, resync=resync)
        self.informers: list[Informer] = [self.pods, self.rcs, self.services,
                                          self.endpoints, self.nodes, self.leases,
                                          self.namespaces]
        self.rc_queue = WorkQueue(self.clock)
        self.endpoints_queue = WorkQueue(self.clock)
        self.namespace_queue = WorkQueue(self.clock)
        self.expectations: dict[str, Expectation] = {}
        self.memory: dict[str, float] = {}
        #: RC key -> the expectation timestamp whose expiry will wake that RC.
        self._expiry_timers: dict[str, float] = {}
        self._node_pass = asyncio.Event()
        self._gc_pass = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._wire()

    # ------------------------------------------------------------------ handlers

    def _wire(self) -> None:
        def on_rc(kind: EventType, old: KubeObject | None, new: KubeObject | None) -> None:
            key = object_key(new or old)  # type: ignore[arg-type]
            if new is None:
                self.expectations.pop(key, None)
                self._expiry_timers.pop(key, None)
            if new is None or new.metadata.deletion_timestamp:
                self._gc_pass.set()  # dependents to delete, or to wait for
            self.rc_queue.add(key)

        def on_pod(kind: EventType, old: KubeObject | None, new: KubeObject | None) -> None:
            o = old if isinstance(old, Pod) else None
            n = new if isinstance(new, Pod) else None
            observed, keys = replication.pod_event(o, n, self.rcs.list())
            apply_observations(self.expectations, observed)
            for key in keys:
                self.rc_queue.add(key)
            for key in endpoints.pod_event(o, n, self.services.list()):
                self.endpoints_queue.add(key)
            if o is not None and n is None and self._owner_deleting(o):
                self._gc_pass.set()  # maybe the last dependent a foreground owner waits for
            if o is not None and n is None:
                self._namespace_content_gone(o.metadata.namespace)

        def on_service(kind: EventType, old: KubeObject | None, new: KubeObject | None) -> None:
            self.endpoints_queue.add(object_key(new or old))  # type: ignore[arg-type]

        def on_node(kind: EventType, old: KubeObject | None, new: KubeObject | None) -> None:
            self._node_pass.set()

        def on_namespace(kind: EventType, old: KubeObject | None,
                         new: KubeObject | None) -> None:
            if new is not None and new.metadata.deletion_timestamp:
                self.namespace_queue.add(new.metadata.name)

        self.rcs.add_handler(on_rc)
        self.pods.add_handler(on_pod)
        self.services.add_handler(on_service)
        self.endpoints.add_handler(on_service)
        self.nodes.add_handler(on_node)
        self.namespaces.add_handler(on_namespace)

    def _namespace_content_gone(self, name: str) -> None:
        ns = self.namespaces.get(name)
        if ns is not None and ns.metadata.deletion_timestamp:
            self.namespace_queue.add(name)

    def _owner_deleting(self, pod: Pod) -> bool:
        namespace = pod.metadata.namespace
        return any(rc is not None and bool(rc.metadata.deletion_timestamp)
                   for rc in (self.rcs.get(f"{namespace}/{ref.name}")
                              for ref in pod.metadata.owner_references
                              if ref.kind == "ReplicationController"))

    # ------------------------------------------------------------------ syncs

    async def sync_rc(self, key: str) -> Result:
        rc = self.rcs.get(key)
        if rc is None:
            self.expectations.pop(key, None)
            return Result(())
        view = replication.ReplicationView(rc, self.rc_pods(rc), self.expectations.get(key))
        commands = self.reconcilers.replication(view, self.clock.now(),
                                                self.settings.replication)
        result = await self.executor.run(commands, self.expectations, self.memory)
        self._sync_when_expectations_expire(key)
        return result

    def _sync_when_expectations_expire(self, key: str) -> None:
        """An RC waits while its expectations are unfulfilled; if the events that would
        fulfil them never come (a create that failed silently, a pod deleted before the
        cache saw it), only their TTL frees it — so sync once it has run out, rather than
        waiting for an unrelated event (pod updates that change nothing an RC counts no
        longer wake it)."""
        expectation = self.expectations.get(key)
        if expectation is None or expectation.fulfilled():
            return
        if self._expiry_timers.get(key) == expectation.timestamp:
            return  # this expectation's timer is already set
        self._expiry_timers[key] = expectation.timestamp
        ttl = self.settings.replication.expectations_ttl
        # ``expired`` is strict (now - timestamp > ttl): aim just past the deadline.
        remaining = expectation.timestamp + ttl - self.clock.now()
        self.rc_queue.add_after(key, max(remaining, 0.0) + 1e-3)

    def rc_pods(self, rc: ReplicationController) -> tuple[Pod, ...]:
        """The pods an RC's sync can act on — its own and the orphans of its namespace —
        in cache order, read from the index: O(those pods), not O(every pod)."""
        return tuple(self.pods.by_index(POD_CLAIM_INDEX, *replication.claim_groups(rc)))

    async def sync_endpoints(self, key: str) -> Result:
        namespace, _, name = key.partition("/")
        service = self.services.get(key)
        current = self.endpoints.get(key)
        pods = tuple(p for p in self.pods.list() if p.metadata.namespace == namespace)
        view = endpoints.EndpointsView(namespace, name, service, pods, current)
        return await self.executor.run(self.reconcilers.endpoints(view, self.clock.now()))

    async def node_lifecycle_pass(self) -> Result:
        leases = {lease.metadata.name: lease for lease in self.leases.list()}
        view = nodelifecycle.NodeLifecycleView(
            tuple(self.nodes.list()), leases,
            tuple(p for p in self.pods.list() if p.spec.node_name),
            self.memory.get(nodelifecycle.LIMITER))
        commands = self.reconcilers.node_lifecycle(view, self.clock.now(),
                                                   self.settings.node_lifecycle)
        return await self.executor.run(commands, self.expectations, self.memory)

    async def gc_pass(self) -> Result:
        owned: tuple[KubeObject, ...] = (*self.pods.list(), *self.rcs.list())
        nodes = frozenset(n.metadata.name for n in self.nodes.list())
        view = gc.GCView(owned, nodes)
        return await self.executor.run(self.reconcilers.gc(view, self.clock.now(),
                                                           self.settings.gc))

    async def sync_namespace(self, name: str) -> Result:
        """Empty and finalize a terminating namespace; its content is listed live."""
        ns = self.namespaces.get(name)
        if ns is None or not ns.metadata.deletion_timestamp:
            return Result(())
        content: list[KubeObject] = []
        errors: list[str] = []
        for info in namespace.content_kinds():
            try:
                listed = await self.client.list(kind_class(info.kind), name)
            except KstateError as err:
                errors.append(f"{info.plural}.{info.group}: {err}")
                continue
            content.extend(listed.items)
        view = namespace.NamespaceView(ns, tuple(content), tuple(errors))
        reconcile = self.reconcilers.namespace or namespace.reconcile
        result = await self.executor.run(reconcile(view, self.clock.now()))
        if content or errors:
            self.namespace_queue.add_after(name, self.settings.namespace_recheck)
        return result

    # ------------------------------------------------------------------ running

    async def start(self) -> None:
        """Start informers, wait for their first lists, then start the workers."""
        for informer in self.informers:
            self._spawn(informer.run())
        await asyncio.gather(*(informer.synced() for informer in self.informers))
        for _ in range(self.settings.workers):
            self._spawn(self._worker(self.rc_queue, self.sync_rc))
            self._spawn(self._worker(self.endpoints_queue, self.sync_endpoints))
            self._spawn(self._worker(self.namespace_queue, self.sync_namespace))
        self._spawn(self._periodic(self.node_lifecycle_pass,
                                   self.settings.node_monitor_period, self._node_pass))
        self._spawn(self._periodic(self.gc_pass, self.settings.gc_period, self._gc_pass,
                                   min_gap=self.settings.gc_min_gap))

    async def stop(self) -> None:
        for informer in self.informers:
            informer.stop()
        self.rc_queue.shutdown()
        self.endpoints_queue.shutdown()
        self.namespace_queue.shutdown()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()

    def _spawn(self, coro: Awaitable[None]) -> None:
        self._tasks.append(asyncio.ensure_future(coro))

    async def _worker(self, queue: WorkQueue, sync: Sync) -> None:
        while True:
            try:
                key = await queue.get()
            except asyncio.CancelledError:
                return
            try:
                result = await sync(key)
            except Exception:  # a bug in a sync must not kill the worker
                log.exception("sync of %s failed", key)
                queue.add_rate_limited(key)
            else:
                if result.retry:
                    queue.add_rate_limited(key)
                else:
                    queue.forget(key)
            finally:
                queue.done(key)

    async def _periodic(self, run: Callable[[], Awaitable[Result]], period: float,
                        early: asyncio.Event | None = None, min_gap: float = 0.0) -> None:
        """Run ``run`` every ``period`` seconds, and sooner (but not within ``min_gap`` of
        the last pass) when ``early`` is set."""
        while True:
            if early is not None:
                early.clear()  # before the pass: a wake-up during it is not lost
            try:
                await run()
            except Exception:
                log.exception("periodic pass %s failed", getattr(run, "__name__", run))
            if early is None:
                await self.clock.sleep(period)
                continue
            if min_gap > 0:
                await self.clock.sleep(min_gap)
            sleeper = asyncio.ensure_future(self.clock.sleep(max(period - min_gap, 0.0)))
            waker = asyncio.ensure_future(early.wait())
            try:
                await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                sleeper.cancel()
                waker.cancel()


__all__ = ["ControllerManager", "ManagerSettings", "Reconcilers"]
