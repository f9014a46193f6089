"""The scheduler process: informers and a scheduling queue around the pure ``schedule``.

Where it sits: engine side of ``kstate/control`` (``kstate scheduler``, and inside the
all-in-one daemon)::

    pod / node informers -> ClusterSnapshot + SchedulingQueue (immutable values)
      -> pop a pod -> decide(view) -> assume -> Bind through the API server

The decision is ``kstate.control.scheduler.decide`` — the same function the model
checker calls. The snapshot carries the *assume cache*: a pod is placed on its node in
the snapshot before its binding is sent, so the next decision already counts it, and is
forgotten if the binding fails (Kubernetes' assume/forget).
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
from kstate.control.executor import Executor
from kstate.control.informer import EventType, Informer, object_key
from kstate.control.scheduling import queue as sq

log = logging.getLogger(__name__)


class Scheduler:
    def __init__(self, client: ApiClient, clock: Clock | None = None,
                 settings: s.SchedulerSettings = s.DEFAULTS) -> None:
        self.client = client
        self.clock = clock or RealClock()
        self.settings = settings
        self.executor = Executor(client, self.clock, "default-scheduler")
        self.pods = Informer(client, Pod, clock=self.clock)
        self.nodes = Informer(client, Node, clock=self.clock)
        self.snapshot = s.ClusterSnapshot.build([], [])
        self.queue = sq.SchedulingQueue()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.pods.add_handler(self._on_pod)
        self.nodes.add_handler(self._on_node)

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
            self.snapshot = self.snapshot.without_pod(gone)
            self.queue = sq.delete(self.queue, key)
        else:
            self.snapshot = self.snapshot.with_pod(pod)
            if s.wants(pod, self.settings):
                self.queue = sq.enqueue(self.queue, key, now, pod.spec.priority or 0)
            else:
                self.queue = sq.delete(self.queue, key)
        for event in sq.pod_events(gone, pod):
            self.queue, _ = sq.on_cluster_event(self.queue, event, now)
        self._wake.set()

    def _on_node(self, kind: EventType, old: KubeObject | None, new: KubeObject | None) -> None:
        now = self.clock.now()
        node = new if isinstance(new, Node) else None
        before = old if isinstance(old, Node) else None
        if node is None:  # a node going away helps no waiting pod
            assert before is not None
            self.snapshot = self.snapshot.without_node(before.metadata.name)
            return
        self.snapshot = self.snapshot.with_node(node)
        for event in sq.node_events(before, node):
            self.queue, _ = sq.on_cluster_event(self.queue, event, now)
        self._wake.set()

    # ------------------------------------------------------------------ loop

    async def schedule_one(self) -> bool:
        """Place the next due pod; ``False`` when nothing is due."""
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
            self.snapshot = self.snapshot.assume(pod, decision.node)
            result = await self.executor.run(commands)
            if all(o == "ok" for o in result.outcomes):
                self.queue = sq.done(self.queue, key)
            else:
                self.snapshot = self.snapshot.forget(pod)
                self.queue = sq.retry(self.queue, key, self.clock.now())
        elif decision.message:
            await self.executor.run(commands)
            self.queue = sq.mark_unschedulable(self.queue, key, self.clock.now(),
                                               decision.rejected_by)
        else:
            self.queue = sq.done(self.queue, key)
        return True

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
        self._tasks.append(asyncio.ensure_future(self._loop()))

    async def stop(self) -> None:
        self.pods.stop()
        self.nodes.stop()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()


__all__ = ["Scheduler"]
