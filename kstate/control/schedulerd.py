"""The scheduler process: informers and a scheduling queue around the pure ``schedule``.

Where it sits: engine side of ``kstate/control`` (``kstate scheduler``, and inside the
all-in-one daemon)::

    pod / node informers -> ClusterSnapshot + SchedulingQueue (immutable values)
      -> pop a pod -> decide(view) -> assume -> next pod ...
                                        \\-> binding task: POST .../binding (<= 64 in flight)
                                               ok: done | rejected: forget, back-off

The decision is ``kstate.control.scheduler.decide`` — the same function the model
checker calls. The snapshot carries the *assume cache*: a pod is placed on its node in
the snapshot before its binding is sent, so the next decision already counts it.

**Bindings are asynchronous, as in Kubernetes** (its binding cycle runs on its own
goroutine): once the pod is assumed the loop goes on to the next pod, and the binding
runs in a background task. Waiting for each binding would leave one write in flight, so
every binding would pay its own store commit while the scheduler idles; with many in
flight the store's group commit shares them. ``bindings_in_flight`` bounds them (the
loop waits for a free slot before it pops the next pod): that bounds the assumptions a
crash can lose and the load one scheduler puts on the API server. A rejected binding
(pod deleted, already bound, node gone, API unavailable) is handled as Kubernetes'
``handleBindingCycleError`` does: the assumption is forgotten (the room is free again,
which is an ``AssignedPodDelete`` for waiting pods), a ``FailedScheduling`` event says
``binding rejected`` (``execution.follow_ups``), and the pod goes to back-off and is
decided again on the cluster as it is then.

Assumptions do not expire on a timer. A binding that succeeded is confirmed by the
watch (``with_pod``), one that failed is forgotten here, a pod deleted meanwhile frees
its room through its DELETED event, and an informer relist reports the same changes as
events; Kubernetes disabled its assumed-pod TTL for the same reasons
(``durationToExpireAssumedPod = 0``). A binding that never returns holds its slot, and
only a restart (a fresh scheduler rebuilds everything from the store) clears it.

**Node events are applied lazily.** A node that joins or leaves changes the snapshot's
sorted node vector and its numpy columns, O(nodes); applied one event at a time, an
informer listing 5,000 nodes costs O(nodes²) (tens of seconds). Node events are
collected instead and applied in one ``ClusterSnapshot.with_nodes`` batch when the
snapshot is next read (``Scheduler.snapshot``, before every decision). Pod events still
apply at once: a pod on a node not applied yet waits in the snapshot's ``detached``
map, as for any node the view does not have, and counts when the node arrives.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from kstate.api.client import ApiClient
from kstate.api.meta import KubeObject
from kstate.api.objects import Node, Pod
from kstate.clock import Clock, RealClock
from kstate.control import scheduler as s
from kstate.control.commands import Command
from kstate.control.executor import Executor
from kstate.control.informer import EventType, Informer, object_key
from kstate.control.scheduling import queue as sq

log = logging.getLogger(__name__)

#: Bindings in flight at once (the store's group commit batches them; more adds latency
#: to each without adding throughput on one SQLite writer).
BINDINGS_IN_FLIGHT = 64
#: How long ``stop`` lets bindings already sent finish before it cancels them (s).
SHUTDOWN_GRACE = 5.0


class Scheduler:
    def __init__(self, client: ApiClient, clock: Clock | None = None,
                 settings: s.SchedulerSettings = s.DEFAULTS, *,
                 bindings_in_flight: int = BINDINGS_IN_FLIGHT,
                 shutdown_grace: float = SHUTDOWN_GRACE) -> None:
        if bindings_in_flight < 1:
            raise ValueError("bindings_in_flight must be at least 1")
        self.client = client
        self.clock = clock or RealClock()
        self.settings = settings
        self.bindings_in_flight = bindings_in_flight
        self.shutdown_grace = shutdown_grace
        self.executor = Executor(client, self.clock, "default-scheduler")
        self.pods = Informer(client, Pod, clock=self.clock)
        self.nodes = Informer(client, Node, clock=self.clock)
        self.queue = sq.SchedulingQueue()
        self._snapshot = s.ClusterSnapshot.build([], [])
        #: node events not applied to the snapshot yet: name -> latest node, None if gone
        self._node_changes: dict[str, Node | None] = {}
        #: every binding task still running (the bound, and what ``stop`` waits for)
        self._bindings: set[asyncio.Task[None]] = set()
        #: pod key -> the binding that owns its assumption; a task that is no longer
        #: here (the pod was deleted, perhaps re-created and assumed again) must not
        #: touch the snapshot or the queue when it ends
        self._binding_of: dict[str, asyncio.Task[None]] = {}
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._loop_task: asyncio.Task[None] | None = None
        self.pods.add_handler(self._on_pod)
        self.nodes.add_handler(self._on_node)

    @property
    def snapshot(self) -> s.ClusterSnapshot:
        """The cluster as the next decision sees it: node events collected since the
        last read are applied now, in one batch (see the module docstring)."""
        if self._node_changes:
            changes, self._node_changes = self._node_changes, {}
            self._snapshot = self._snapshot.with_nodes(
                (node for node in changes.values() if node is not None),
                removed=[name for name, node in changes.items() if node is None])
        return self._snapshot

    @property
    def bindings(self) -> int:
        """Bindings sent and not answered yet."""
        return len(self._bindings)

    # ------------------------------------------------------------------ informers

    def _on_pod(self, kind: EventType, old: KubeObject | None, new: KubeObject | None) -> None:
        now = self.clock.now()
        pod = new if isinstance(new, Pod) else None
        gone = old if isinstance(old, Pod) else None
        current = pod or gone
        assert current is not None, "an event carries a pod"
        key = object_key(current)
        if pod is None:
            assert gone is not None
            self._snapshot = self._snapshot.without_pod(gone)
            self.queue = sq.delete(self.queue, key)
            self._binding_of.pop(key, None)  # its binding, if any, can only fail now
        else:
            self._snapshot = self._snapshot.with_pod(pod)
            if s.wants(pod, self.settings):
                self.queue = sq.enqueue(self.queue, key, now, pod.spec.priority or 0)
            else:
                self.queue = sq.delete(self.queue, key)
        for event in sq.pod_events(gone, pod):
            self.queue, _ = sq.on_cluster_event(self.queue, event, now)
        self._wake.set()

    def _on_node(self, kind: EventType, old: KubeObject | None, new: KubeObject | None) -> None:
        node = new if isinstance(new, Node) else None
        before = old if isinstance(old, Node) else None
        current = node or before
        assert current is not None, "an event carries a node"
        self._node_changes[current.metadata.name] = node
        if node is None:  # a node going away helps no waiting pod
            return
        now = self.clock.now()
        for event in sq.node_events(before, node):
            self.queue, _ = sq.on_cluster_event(self.queue, event, now)
        self._wake.set()

    # ------------------------------------------------------------------ loop

    async def schedule_one(self) -> bool:
        """Place the next due pod; ``False`` when nothing is due. A binding is sent in
        the background: this returns once the pod is assumed (after waiting for a free
        binding slot, if all are taken)."""
        await self._binding_slot()
        now = self.clock.now()
        self.queue, key = sq.pop(self.queue, now)
        if key is None:
            return False
        pod = self.pods.get(key)
        if pod is None:
            self.queue = sq.done(self.queue, key)
            return True
        view = s.SchedulingView(pod, self.snapshot)
        decision = s.decide(view, self.settings)
        commands = s.commands_for(view, decision, now)
        if decision.node:
            self._snapshot = self._snapshot.assume(pod, decision.node)
            task = asyncio.ensure_future(self._bind(key, commands))
            self._bindings.add(task)
            task.add_done_callback(self._bindings.discard)
            self._binding_of[key] = task
        elif decision.message:
            await self.executor.run(commands)
            self.queue = sq.mark_unschedulable(self.queue, key, self.clock.now(),
                                               decision.rejected_by)
        else:
            self.queue = sq.done(self.queue, key)
        return True

    async def _binding_slot(self) -> None:
        """Wait until fewer than ``bindings_in_flight`` bindings are in flight."""
        while len(self._bindings) >= self.bindings_in_flight:
            await asyncio.wait(self._bindings, return_when=asyncio.FIRST_COMPLETED)

    async def _bind(self, key: str, commands: list[Command]) -> None:
        """One binding cycle: the Bind (and its event) through the executor, then done,
        or forget + back-off."""
        try:
            result = await self.executor.run(commands)
            bound = bool(result.outcomes) and all(o == "ok" for o in result.outcomes)
        except Exception:  # a bug, not an API answer: the pod must not stay assumed
            log.exception("binding %s failed", key)
            bound = False
        if self._binding_of.get(key) is not asyncio.current_task():
            return  # the pod was deleted meanwhile: its DELETED event freed the room
        del self._binding_of[key]
        if bound:
            self.queue = sq.done(self.queue, key)  # the watch will confirm the assumption
            return
        # Forget only what is still assumed: a watch event may already have shown where
        # the pod really is (then ``with_pod`` moved it and this is a no-op).
        self._snapshot = self._snapshot.forget(key)
        now = self.clock.now()
        self.queue = sq.retry(self.queue, key, now)
        # The room it held is free again: for waiting pods that is like an assigned pod
        # deleted (Kubernetes moves them on the same event).
        self.queue, _ = sq.on_cluster_event(self.queue, "AssignedPodDelete", now)
        self._wake.set()

    async def _loop(self) -> None:
        while True:
            self._wake.clear()
            try:
                while await self.schedule_one():
                    pass
            except Exception:
                log.exception("scheduling cycle failed")
            wakeup = sq.next_wakeup(self.queue)
            waiters: set[asyncio.Future[object]] = {asyncio.ensure_future(self._wake.wait())}
            if wakeup is not None:
                waiters.add(asyncio.ensure_future(
                    self.clock.sleep(max(0.0, wakeup - self.clock.now()))))
            try:
                await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waiters:
                    w.cancel()

    async def start(self) -> None:
        for informer in (self.nodes, self.pods):
            self._tasks.append(asyncio.ensure_future(informer.run()))
        await asyncio.gather(self.nodes.synced(), self.pods.synced())
        self._loop_task = asyncio.ensure_future(self._loop())
        self._tasks.append(self._loop_task)

    async def stop(self) -> None:
        """Stop deciding, let the bindings already sent finish (up to
        ``shutdown_grace`` seconds; each is one API call), cancel the rest, then stop
        the informers. A cancelled binding either reached the store or not; the store
        is the truth and the next scheduler lists it, so nothing is left half done."""
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._loop_task
        if self._bindings:
            _, late = await asyncio.wait(set(self._bindings), timeout=self.shutdown_grace)
            for task in late:
                task.cancel()
            for task in late:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self.pods.stop()
        self.nodes.stop()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        self._loop_task = None


__all__ = ["BINDINGS_IN_FLIGHT", "SHUTDOWN_GRACE", "Scheduler"]
