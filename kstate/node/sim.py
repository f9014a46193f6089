"""Many simulated nodes in one process (kwok-style): real agents over fake runtimes.

Where it sits: ``kstate up --nodes 1000 --runtime fake`` and the scale benchmarks. Each
simulated node is a real :class:`~kstate.node.agent.NodeAgent` — the same registration,
heartbeat, per-pod workers and ``podsync`` rounds as on a Docker node — over its own
:class:`~kstate.runtime.fake.FakeRuntime` (containers without processes). Only what
would cost per node is shared, so a thousand nodes are cheap:

* **one** pod informer (every bound pod) whose events are routed to the pod's agent,
  instead of a watch per node, and **one** Service informer;
* **one** heartbeat timer that renews the nodes' Leases spread evenly over the interval,
  instead of a timer per node firing all at once;
* no runtime relist loops (a fake runtime's events are in-process and never lost);
* probes answered by one :class:`~kstate.node.probes.ScriptedProber`;
* optionally **one** log endpoint serving every simulated node's containers.

Per node there remain two idle tasks (the runtime event subscription and the work
dispatcher) plus one task per pod while it is being synced.

>>> # cluster = SimulatedCluster(LocalClient(core), SimOptions(nodes=1000))
>>> # await cluster.start(); ...; await cluster.stop()
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any

import attrs

from kstate.api.client import ApiClient
from kstate.api.frozen import FrozenDict
from kstate.api.meta import KubeObject
from kstate.api.objects import Pod, Service
from kstate.clock import Clock, RealClock
from kstate.control.informer import EventType, Informer
from kstate.errors import NotFound
from kstate.machines.pod import BackOffPolicy
from kstate.node.agent import AgentOptions, NodeAgent
from kstate.node.probes import ScriptedProber
from kstate.node.server import AgentServer
from kstate.node.streams import PodLocation
from kstate.runtime.fake import FakeRuntime, Program

log = logging.getLogger("kstate.node.sim")

#: Pod networks of simulated nodes: node i gets 10.(128 + i // 256).(i % 256).0/24.
MAX_NODES = 128 * 256
_FIRST_NODE_IP = ipaddress.ip_address("100.64.0.1")  # shared address space: never routed


def _frozen(value: Mapping[str, str]) -> FrozenDict[str, str]:
    return FrozenDict(value)


def _programs(value: Mapping[str, Program]) -> FrozenDict[str, Program]:
    return FrozenDict(value)


@attrs.frozen
class SimOptions:
    nodes: int = 10
    prefix: str = "sim-node-"
    #: every simulated node's capacity (and allocatable)
    capacity: FrozenDict[str, str] = attrs.field(
        default=FrozenDict({"cpu": "32", "memory": "256Gi", "pods": "110"}),
        converter=_frozen)
    labels: FrozenDict[str, str] = attrs.field(
        default=FrozenDict({"type": "kstate-simulated"}), converter=_frozen)
    lease_interval: float = 10.0
    #: the Node's Ready condition is checked this often (a GET each: keep it rare)
    status_interval: float = 60.0
    backoff: BackOffPolicy = attrs.field(factory=BackOffPolicy)
    #: fake runtime: seconds from start to running, and what containers "do"
    start_delay: float = 0.0
    programs: FrozenDict[str, Program] = attrs.field(default=FrozenDict(),
                                                     converter=_programs)
    seed: int = 0
    #: answer of every probe not scripted otherwise
    probe_default: bool = True
    #: one shared log endpoint on this port (None: no logs; 0: any free port)
    log_port: int | None = None
    log_host: str = "127.0.0.1"
    #: agents registered concurrently while starting
    start_batch: int = 100


class SimulatedCluster:
    """``options.nodes`` node agents over fake runtimes, sharing one client."""

    def __init__(self, client: ApiClient, options: SimOptions | None = None,
                 clock: Clock | None = None) -> None:
        self.client = client
        self.options = options or SimOptions()
        if not 0 < self.options.nodes <= MAX_NODES:
            raise ValueError(f"nodes must be between 1 and {MAX_NODES}")
        self.clock: Clock = clock or RealClock()
        self.prober = ScriptedProber(default=self.options.probe_default)
        # Unbound pods are the scheduler's business: only bound ones are watched.
        self.pods: Informer[Pod] = Informer(client, Pod, field_selector="spec.nodeName!=",
                                            clock=self.clock)
        self.services: Informer[Service] = Informer(client, Service, clock=self.clock)
        self.pods.add_handler(self._route)
        self.agents: dict[str, NodeAgent] = {}
        self.runtimes: dict[str, FakeRuntime] = {}
        self.server: AgentServer | None = None
        self._tasks: list[asyncio.Task[None]] = []

    def node_names(self) -> list[str]:
        return [f"{self.options.prefix}{i}" for i in range(self.options.nodes)]

    async def start(self) -> None:
        """Register every node and start its agent; returns once all are Ready."""
        opts = self.options
        if opts.log_port is not None:
            self.server = AgentServer(self, opts.log_host, opts.log_port,
                                      clock=self.clock)
            await self.server.start()
        for i, name in enumerate(self.node_names()):
            runtime = FakeRuntime(self.clock, seed=opts.seed + i, pod_cidr=_pod_cidr(i),
                                  start_delay=opts.start_delay, programs=opts.programs)
            self.runtimes[name] = runtime
            self.agents[name] = NodeAgent(
                self.client, runtime, name, self.clock, AgentOptions(
                    capacity=opts.capacity, internal_ip=str(_FIRST_NODE_IP + i),
                    labels=opts.labels, pod_cidr=_pod_cidr(i), backoff=opts.backoff,
                    lease_interval=opts.lease_interval,
                    status_interval=opts.status_interval, heartbeat_loop=False,
                    relist_interval=None, server_port=None,
                    agent_url=self.server.url if self.server else "",
                    prober=self.prober),
                pod_informer=self.pods, service_informer=self.services)
        # Agents exist before the informers list, so the initial events reach them.
        self._spawn(self.pods.run())
        self._spawn(self.services.run())
        agents = list(self.agents.values())
        for first in range(0, len(agents), opts.start_batch):
            await asyncio.gather(*(a.start() for a in agents[first:first + opts.start_batch]))
        self._spawn(self._heartbeats())
        log.info("simulated cluster: %d nodes started", len(agents))

    async def stop(self) -> None:
        self.pods.stop()
        self.services.stop()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        await asyncio.gather(*(a.stop() for a in self.agents.values()))
        await asyncio.gather(*(r.close() for r in self.runtimes.values()))
        if self.server is not None:
            await self.server.stop()

    def _spawn(self, work: Any) -> None:
        self._tasks.append(asyncio.get_running_loop().create_task(work))

    def _route(self, kind: EventType, old: KubeObject | None,
               new: KubeObject | None) -> None:
        """Hand a pod event to the agent(s) of the node(s) it concerns."""
        assert (old is None or isinstance(old, Pod)) and (new is None or isinstance(new, Pod))
        for node in {p.spec.node_name for p in (old, new) if p is not None}:
            agent = self.agents.get(node)
            if agent is not None:
                agent.pod_changed(old, new)

    async def _heartbeats(self) -> None:
        """Every node's heartbeat, evenly spread over the lease interval."""
        agents = list(self.agents.values())
        step = self.options.lease_interval / len(agents)
        while True:
            for agent in agents:
                await self.clock.sleep(step)
                await agent.heartbeat()

    # ------------------------------------------------------------------ logs

    def _agent_of(self, namespace: str, pod: str) -> NodeAgent:
        cached = self.pods.get(f"{namespace}/{pod}")
        agent = self.agents.get(cached.spec.node_name) if cached is not None else None
        if agent is None:
            raise NotFound(f'pod "{pod}" not found on any simulated node')
        return agent

    def locate_pod(self, namespace: str, pod: str) -> PodLocation:
        """The shared stream endpoint: the pod's node's agent knows."""
        return self._agent_of(namespace, pod).locate_pod(namespace, pod)

    async def container_log(self, namespace: str, pod: str, container: str, *,
                            previous: bool, tail: int | None, follow: bool,
                            since: float | None = None,
                            timestamps: bool = False) -> AsyncIterator[bytes]:
        """The shared log endpoint: find the pod's node, ask its agent."""
        agent = self._agent_of(namespace, pod)
        async for line in agent.container_log(namespace, pod, container, previous=previous,
                                              tail=tail, follow=follow, since=since,
                                              timestamps=timestamps):
            yield line

    # ------------------------------------------------------------------ numbers

    def counts(self) -> dict[str, int]:
        """Totals over every node: pods known, containers by state, workers busy."""
        out: dict[str, int] = {"nodes": len(self.agents)}
        for agent in self.agents.values():
            for key, value in agent.counts().items():
                out[key] = out.get(key, 0) + value
        for runtime in self.runtimes.values():
            for key, value in runtime.counts().items():
                out[key] = out.get(key, 0) + value
        return out


def _pod_cidr(index: int) -> str:
    return f"10.{128 + index // 256}.{index % 256}.0/24"


__all__ = ["MAX_NODES", "SimOptions", "SimulatedCluster"]
