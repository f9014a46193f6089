"""Controllers, scheduler and node agents together on one fake clock.

The in-process cluster of issue 5's integration tests: ``ApiCore`` over the memory store,
the controller manager, the scheduler, and two node agents over fake runtimes. Time only
moves when a test lets it (deadline by deadline), so a 40 s grace period and a 300 s
toleration cost no wall time.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import random
from collections.abc import AsyncIterator, Callable
from typing import Any

from kstate.api.client import LocalClient
from kstate.api.codec import from_dict
from kstate.api.lifecycle import DRAINING_ANNOTATION, node_state, pod_state
from kstate.api.objects import Node, Pod, ReplicationController
from kstate.api.server.core import ApiCore
from kstate.clock import FakeClock
from kstate.control.manager import ControllerManager
from kstate.control.schedulerd import Scheduler
from kstate.node.agent import AgentOptions, NodeAgent
from kstate.node.probes import ScriptedProber
from kstate.runtime.fake import FakeRuntime
from kstate.store import open_store

T0 = 1_700_000_000.0


class Cluster:
    def __init__(self) -> None:
        self.clock = FakeClock(T0)
        self.store = open_store("memory://")
        self.core = ApiCore(self.store, self.clock, rng=random.Random(3))
        self.client = LocalClient(self.core)
        self.manager = ControllerManager(self.client, self.clock)
        self.scheduler = Scheduler(self.client, self.clock)
        self.agents: dict[str, NodeAgent] = {}
        self.runtimes: dict[str, FakeRuntime] = {}

    async def start(self, nodes: tuple[str, ...] = ("n1", "n2")) -> None:
        await self.core.start()
        for name in nodes:
            runtime = FakeRuntime(self.clock, seed=len(self.runtimes) + 1,
                                  pod_cidr=f"10.{len(self.runtimes) + 1}.0.0/24")
            self.runtimes[name] = runtime
            options = AgentOptions(capacity={"cpu": "4", "memory": "8Gi", "pods": "110"},
                                   server_port=None, relist_interval=None,
                                   prober=ScriptedProber(runtime=runtime))
            agent = NodeAgent(self.client, runtime, name, self.clock, options)
            await agent.start()
            self.agents[name] = agent
        await self.manager.start()
        await self.scheduler.start()

    async def stop(self) -> None:
        await self.scheduler.stop()
        await self.manager.stop()
        for agent in self.agents.values():
            await agent.stop()
        for runtime in self.runtimes.values():
            await runtime.close()
        await self.core.close()
        await self.store.close()

    @staticmethod
    async def settle() -> None:
        for _ in range(300):
            await asyncio.sleep(0)

    async def until(self, condition: Callable[[], Any], timeout: float = 900.0,
                    what: str = "condition") -> None:
        """Advance fake time deadline by deadline until ``condition()`` holds."""
        deadline = self.clock.now() + timeout
        while True:
            await self.settle()
            value = condition()
            if inspect.isawaitable(value):
                value = await value
            if value:
                return
            nxt = self.clock.next_deadline()
            if nxt is None or nxt > deadline:
                raise AssertionError(f"{what} not reached within {timeout} s of fake time")
            self.clock.advance(max(0.0, nxt - self.clock.now()))

    async def pods(self) -> list[Pod]:
        return list((await self.client.list(Pod)).items)


@contextlib.asynccontextmanager
async def cluster(nodes: tuple[str, ...] = ("n1", "n2")) -> AsyncIterator[Cluster]:
    c = Cluster()
    await c.start(nodes)
    try:
        yield c
    finally:
        await c.stop()


def rc(name: str = "web", replicas: int = 2) -> ReplicationController:
    return from_dict(ReplicationController, {
        "apiVersion": "v1", "kind": "ReplicationController",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"replicas": replicas, "selector": {"app": name},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": "c", "image": "kstate/httpd:1",
                                                         "imagePullPolicy": "Never"}]}}}})


def run(coro: Any) -> Any:
    async def bounded() -> Any:
        async with asyncio.timeout(120):
            return await coro
    return asyncio.run(bounded())


def test_lost_node_pods_are_evicted_and_replaced_on_the_healthy_node() -> None:
    async def go() -> None:
        async with cluster() as c:
            await c.client.create(rc(replicas=2))

            async def two_ready() -> bool:
                return len([p for p in await c.pods() if pod_state(p) == "Ready"]) == 2
            await c.until(two_ready, what="2 ready pods")
            placed = {p.spec.node_name for p in await c.pods()}
            lost = "n1" if "n1" in placed else "n2"
            healthy = "n2" if lost == "n1" else "n1"
            await c.agents.pop(lost).stop()  # the node goes silent (containers stay)

            async def node_unknown() -> bool:
                node = await c.client.get(Node, lost)
                return node_state(node) == "Unknown" and bool(node.spec.taints)
            await c.until(node_unknown, what="the node Unknown and tainted")

            async def replaced() -> bool:
                pods = await c.pods()
                ready = [p for p in pods if pod_state(p, c.clock.now()) == "Ready"]
                return len(ready) == 2 and {p.spec.node_name for p in ready} == {healthy}
            await c.until(replaced, what="2 ready pods on the healthy node")
            # the evicted pods wait, terminating, for their node to come back
            stuck = [p for p in await c.pods() if p.spec.node_name == lost]
            assert stuck and all(p.metadata.deletion_timestamp for p in stuck)
    run(go())


def test_cordon_then_drain_moves_every_pod_off_the_node() -> None:
    async def go() -> None:
        async with cluster() as c:
            await c.client.create(rc(replicas=4))

            async def four_ready() -> bool:
                return len([p for p in await c.pods() if pod_state(p) == "Ready"]) == 4
            await c.until(four_ready, what="4 ready pods")
            node = await c.client.get(Node, "n1")
            annotations = node.metadata.annotations.set(DRAINING_ANNOTATION, "true")
            import attrs
            drained = attrs.evolve(node, spec=attrs.evolve(node.spec, unschedulable=True),
                                   metadata=attrs.evolve(node.metadata,
                                                         annotations=annotations))
            await c.client.update(drained)

            async def moved() -> bool:
                pods = await c.pods()
                ready = [p for p in pods if pod_state(p, c.clock.now()) == "Ready"]
                cordoned = node_state(await c.client.get(Node, "n1")) == "Cordoned"
                return len(ready) == 4 and all(p.spec.node_name == "n2" for p in pods) \
                    and cordoned
            await c.until(moved, what="every pod on n2 and n1 Cordoned")
    run(go())
