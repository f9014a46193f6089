"""Many simulated nodes in one process: shared informers, one heartbeat timer, one log
endpoint; every pod still goes through a real agent's podsync rounds."""

from __future__ import annotations

import time

import aiohttp

from kstate.api.lifecycle import node_state, pod_state
from kstate.api.objects import Lease, Node, Pod
from kstate.clock import parse_rfc3339
from kstate.node.heartbeat import LEASE_NAMESPACE
from kstate.node.sim import SimOptions, SimulatedCluster
from kstate.runtime.fake import Program
from tests.node.test_agent import T0, Env, run

NODES = 20
PODS = 200


def test_a_simulated_cluster_runs_pods_on_every_node() -> None:
    async def go() -> None:
        async with Env() as env:
            sim = SimulatedCluster(env.client, SimOptions(
                nodes=NODES, log_port=0, lease_interval=10,
                programs={"c0": Program(logs=b"simulated\n")}), clock=env.clock)
            await sim.start()
            try:
                nodes = (await env.client.list(Node)).items
                assert len(nodes) == NODES and all(node_state(n) == "Ready" for n in nodes)
                assert len({a.address for n in nodes for a in n.status.addresses
                            if a.type == "InternalIP"}) == NODES
                assert all(n.status.capacity["pods"] == "110" for n in nodes)

                started = time.perf_counter()
                for i in range(PODS):
                    await env.pod(f"p{i}", node=f"sim-node-{i % NODES}")

                async def all_ready() -> bool:
                    pods = (await env.client.list(Pod, "default")).items
                    return sum(pod_state(p, env.clock.now()) == "Ready" for p in pods) == PODS

                await env.until(all_ready, timeout=10, what="every pod Ready")
                elapsed = time.perf_counter() - started
                pods = (await env.client.list(Pod, "default")).items
                assert len({p.status.pod_ip for p in pods}) == PODS  # per-node pod CIDRs
                counts = sim.counts()
                assert counts["container/running"] == PODS
                assert counts["sandbox/running"] == PODS
                assert elapsed < 30, f"{PODS} pods on {NODES} nodes took {elapsed:.1f} s"

                # One timer renews every node's Lease within the interval.
                await env.elapse(10)
                leases = (await env.client.list(Lease, LEASE_NAMESPACE)).items
                assert len(leases) == NODES
                renewed = sorted(parse_rfc3339(lease.spec.renew_time) for lease in leases)
                assert renewed[0] >= env.clock.now() - 10  # every one within the interval
                assert renewed[0] > T0  # ... and not just at registration
                assert len(set(renewed)) == NODES  # spread out, not all at once

                # One log endpoint serves every simulated node's containers.
                node = await env.client.get(Node, "sim-node-3")
                url = node.metadata.annotations["kstate.io/agent-url"]
                async with aiohttp.ClientSession() as session, session.get(
                        f"{url}/containerLogs/default/p3/c0") as resp:
                    assert resp.status == 200 and await resp.text() == "simulated\n"

                for i in range(PODS):
                    await env.client.delete(Pod, f"p{i}", "default")

                async def all_gone() -> bool:
                    return not (await env.client.list(Pod, "default")).items \
                        and sim.counts().get("container/running", 0) == 0

                await env.until(all_gone, timeout=10, what="every pod deleted")
                assert sim.counts().get("sandbox/running", 0) == 0
            finally:
                await sim.stop()
    run(go())
