"""The scheduler process against a real ApiCore: binds through /binding, explains
unschedulable pods with Kubernetes' event, and retries them when nodes change."""

from __future__ import annotations

from typing import Any

from kstate.api.codec import from_dict
from kstate.api.objects import Event, Node, Pod
from kstate.clock import rfc3339
from kstate.control.schedulerd import Scheduler
from tests.control.harness import START, Observer, cluster, run, settle_loop


def node(name: str, cpu: str = "2", **spec: Any) -> Node:
    stamp = rfc3339(START)
    return from_dict(Node, {
        "apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
        "spec": spec,
        "status": {"allocatable": {"cpu": cpu, "memory": "4Gi", "pods": "110"},
                   "capacity": {"cpu": cpu, "memory": "4Gi", "pods": "110"},
                   "conditions": [{"type": "Ready", "status": "True",
                                   "lastHeartbeatTime": stamp, "lastTransitionTime": stamp}]}})


def pod(name: str, cpu: str = "500m") -> Pod:
    return from_dict(Pod, {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"containers": [{"name": "c", "image": "img:1",
                                 "resources": {"requests": {"cpu": cpu}}}]}})


def test_pods_are_bound_and_unschedulable_ones_explained_then_retried() -> None:
    async def go() -> None:
        async with cluster() as (_, client, clock):
            await client.create(node("n1", cpu="1"))
            await client.create(node("n2", cpu="1", unschedulable=True))
            sched = Scheduler(client, clock)
            await sched.start()
            pods = await Observer(client, Pod).start()
            events = await Observer(client, Event).start()
            try:
                await client.create(pod("a", cpu="600m"))
                await pods.until(lambda ps: ps and ps[0].spec.node_name == "n1")
                await client.create(pod("b", cpu="600m"))
                got = await events.until(lambda es: any(e.reason == "FailedScheduling"
                                                        for e in es))
                (failed,) = [e for e in got if e.reason == "FailedScheduling"]
                assert failed.message.startswith("0/2 nodes are available:")
                assert "1 Insufficient cpu" in failed.message
                assert "1 node(s) were unschedulable" in failed.message
                assert any(e.reason == "Scheduled" for e in got)
                # a new node arrives: the waiting pod is retried and bound there
                await client.create(node("n3", cpu="1"))
                await settle_loop()
                clock.advance(10)  # past the pod's scheduling back-off
                await pods.until(lambda ps: any(p.metadata.name == "b"
                                                and p.spec.node_name == "n3" for p in ps))
            finally:
                await events.stop()
                await pods.stop()
                await sched.stop()
    run(go())
