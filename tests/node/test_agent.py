"""The node agent over the in-process API server and the fake runtime, on a fake clock.

Every scenario runs the real agent (informers, work queue, per-pod workers, PLEG, probes)
against ``ApiCore`` over the memory store and a ``FakeRuntime``; time passes only when
:meth:`Env.until` advances the ``FakeClock`` to the next sleeper's deadline, so a 30 s
grace period costs no wall time and the back-off delays can be read off exactly.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import random
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, TypeVar

import pytest

from kstate.api.client import LocalClient
from kstate.api.codec import from_dict
from kstate.api.helpers import get_condition
from kstate.api.lifecycle import node_state, pod_state
from kstate.api.objects import Lease, Node, NodeCondition, Pod, Service
from kstate.api.server.core import ApiCore
from kstate.clock import FakeClock, parse_rfc3339
from kstate.control.podports import POD_PORTS_ANNOTATION
from kstate.errors import Conflict, NotFound
from kstate.node.agent import AgentOptions, NodeAgent
from kstate.node.heartbeat import LEASE_NAMESPACE
from kstate.node.probes import ProbeKind, ProbeTarget, ScriptedProber
from kstate.runtime.base import ContainerSpec, ContainerState, SandboxSpec
from kstate.runtime.fake import FakeRuntime, Program
from kstate.store import open_store

T0 = 1_700_000_000.0
T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Each test in its own loop, bounded in wall time (a hang fails, never blocks)."""
    async def bounded() -> T:
        async with asyncio.timeout(60):
            return await coro
    return asyncio.run(bounded())


class Env:
    """An API server, a fake runtime and agents, all on one fake clock."""

    def __init__(self, **runtime: Any) -> None:
        self.clock = FakeClock(T0)
        self.store = open_store("memory://")
        self.core = ApiCore(self.store, self.clock, rng=random.Random(7))
        self.client = LocalClient(self.core)
        self.runtime = FakeRuntime(self.clock, seed=1, **runtime)
        self.prober = ScriptedProber(runtime=self.runtime)
        self.agents: list[NodeAgent] = []

    async def __aenter__(self) -> Env:
        await self.core.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        for agent in self.agents:
            await agent.stop()
        await self.runtime.close()
        await self.core.close()
        await self.store.close()

    def options(self, **changes: Any) -> AgentOptions:
        base: dict[str, Any] = {"capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"},
                                "internal_ip": "192.0.2.10", "server_port": None,
                                "prober": self.prober}
        return AgentOptions(**{**base, **changes})

    async def agent(self, name: str = "n1", runtime: FakeRuntime | None = None,
                    **options: Any) -> NodeAgent:
        agent = NodeAgent(self.client, runtime or self.runtime, name, self.clock,
                          self.options(**options))
        await agent.start()
        self.agents.append(agent)
        return agent

    async def stop(self, agent: NodeAgent) -> None:
        await agent.stop()
        self.agents.remove(agent)

    # ---------------------------------------------------------------- time

    @staticmethod
    async def settle() -> None:
        """Let every runnable task run to its next wait (watch -> queue -> worker chains
        are a few dozen steps deep)."""
        for _ in range(300):
            await asyncio.sleep(0)

    async def until(self, condition: Callable[[], Any], *, timeout: float = 120.0,
                    what: str = "condition") -> None:
        """Return once ``condition()`` holds, advancing fake time deadline by deadline;
        fail once ``timeout`` fake seconds have passed."""
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

    async def elapse(self, seconds: float) -> None:
        """Let exactly ``seconds`` of fake time pass, waking every sleeper on the way."""
        end = self.clock.now() + seconds
        while True:
            await self.settle()
            nxt = self.clock.next_deadline()
            if nxt is None or nxt > end:
                break
            self.clock.advance(max(0.0, nxt - self.clock.now()))
        self.clock.advance(max(0.0, end - self.clock.now()))
        await self.settle()

    # ---------------------------------------------------------------- objects

    async def pod(self, name: str = "web", node: str = "n1", **spec: Any) -> Pod:
        """Create a pod and bind it to ``node`` (what the scheduler does)."""
        spec.setdefault("containers", [{"name": "c0", "image": "kstate/httpd:1"}])
        await self.client.create(from_dict(Pod, {
            "metadata": {"name": name, "namespace": "default"}, "spec": spec}))
        await self.client.bind(name, node)
        return await self.client.get(Pod, name, "default")

    async def get(self, name: str = "web") -> Pod | None:
        try:
            return await self.client.get(Pod, name, "default")
        except NotFound:
            return None

    async def state(self, name: str = "web") -> str:
        pod = await self.get(name)
        return pod_state(pod, self.clock.now()) if pod is not None else "Deleted"

    async def reach(self, state: str, name: str = "web", timeout: float = 120.0) -> Pod:
        async def reached() -> bool:
            return await self.state(name) == state

        await self.until(reached, timeout=timeout, what=f"pod {name} {state}")
        pod = await self.get(name)
        assert pod is not None or state == "Deleted"
        return pod  # type: ignore[return-value]

    def boxes(self, uid: str) -> list[Any]:
        """Every sandbox and container the runtime holds for a pod uid."""
        return [b for b in self.runtime._boxes.values() if b.labels.get("io.kstate.pod.uid")
                == uid]

    async def containers(self, uid: str) -> list[Any]:
        return sorted(await self.runtime.list_containers({"io.kstate.pod.uid": uid}),
                      key=lambda c: c.attempt)


@contextlib.asynccontextmanager
async def states_of(env: Env, name: str = "web") -> AsyncIterator[list[str]]:
    """Every distinct machine state the pod passes through, as its watch shows them."""
    seen: list[str] = []

    async def follow() -> None:
        async with env.client.watch(Pod, "default",
                                    field_selector=f"metadata.name={name}") as w:
            async for kind, pod in w:
                state = "Deleted" if kind == "DELETED" else pod_state(pod, env.clock.now())
                if not seen or seen[-1] != state:
                    seen.append(state)

    task = asyncio.ensure_future(follow())
    await env.settle()
    try:
        yield seen
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def restarts(pod: Pod) -> int:
    return pod.status.container_statuses[0].restart_count


# =============================================================================== node


def test_registration_reports_capacity_addresses_and_ready() -> None:
    async def go() -> None:
        async with Env() as env:
            await env.agent(labels={"zone": "a"})
            node = await env.client.get(Node, "n1")
            assert node_state(node) == "Ready"
            assert dict(node.status.capacity) == {"cpu": "4", "memory": "8Gi", "pods": "110"}
            assert node.status.allocatable == node.status.capacity
            addresses = {a.type: a.address for a in node.status.addresses}
            assert addresses == {"InternalIP": "192.0.2.10", "Hostname": "n1"}
            assert node.metadata.labels["kubernetes.io/hostname"] == "n1"
            assert node.metadata.labels["zone"] == "a"
            assert node.status.node_info.container_runtime_version.startswith("fake://")
            assert node.spec.pod_cidr == "10.88.0.0/16"  # the runtime's pod network
    run(go())


def test_lease_is_renewed_every_interval() -> None:
    async def go() -> None:
        async with Env() as env:
            await env.agent(lease_interval=10.0)
            lease = await env.client.get(Lease, "n1", LEASE_NAMESPACE)
            assert lease.spec.holder_identity == "n1"
            first = parse_rfc3339(lease.spec.renew_time)
            assert first == pytest.approx(T0, abs=1)
            await env.elapse(25)
            lease = await env.client.get(Lease, "n1", LEASE_NAMESPACE)
            assert parse_rfc3339(lease.spec.renew_time) == pytest.approx(T0 + 20, abs=1)
    run(go())


def test_a_node_marked_unknown_reports_ready_again() -> None:
    async def go() -> None:
        async with Env() as env:
            await env.agent(status_interval=10.0)
            node = await env.client.get(Node, "n1")
            # What the node lifecycle controller writes when heartbeats stop arriving.
            lost = NodeCondition(type="Ready", status="Unknown", reason="NodeStatusUnknown")
            await env.client.update_status(_with_ready(node, lost))
            assert node_state(await env.client.get(Node, "n1")) == "Unknown"

            async def ready() -> bool:
                return node_state(await env.client.get(Node, "n1")) == "Ready"

            await env.until(ready, timeout=15, what="node Ready again")
    run(go())


def test_an_existing_node_is_updated_not_duplicated() -> None:
    async def go() -> None:
        async with Env() as env:
            agent = await env.agent()
            await env.stop(agent)
            await env.agent(capacity={"cpu": "2", "memory": "1Gi", "pods": "10"})
            node = await env.client.get(Node, "n1")
            assert node.status.capacity["cpu"] == "2"
            assert node_state(node) == "Ready"
    run(go())


def _with_ready(node: Node, condition: NodeCondition) -> Node:
    import attrs

    others = tuple(c for c in node.status.conditions if c.type != "Ready")
    return attrs.evolve(node, status=attrs.evolve(node.status,
                                                  conditions=(*others, condition)))


# =============================================================================== pods


def test_a_bound_pod_runs_and_becomes_ready() -> None:
    async def go() -> None:
        async with Env() as env:
            await env.agent()
            async with states_of(env) as seen:
                await env.pod()
                pod = await env.reach("Ready")
            assert seen == ["Pending", "Scheduled", "ContainerCreating", "Running", "Ready"]
            s = pod.status
            assert s.phase == "Running" and s.host_ip == "192.0.2.10"
            assert s.pod_ip.startswith("10.88.") and s.pod_ips[0].ip == s.pod_ip
            cs = s.container_statuses[0]
            assert cs.ready and cs.state.running is not None and cs.restart_count == 0
            assert {c.type: c.status for c in s.conditions} == {
                "PodScheduled": "True", "Initialized": "True", "ContainersReady": "True",
                "Ready": "True"}
            running = [c for c in await env.containers(pod.metadata.uid)
                       if c.state is ContainerState.RUNNING]
            assert len(running) == 1
    run(go())


def test_pods_of_other_nodes_are_left_alone() -> None:
    async def go() -> None:
        async with Env() as env:
            await env.agent("n1")
            other = await env.pod("elsewhere", node="n2")
            await env.pod("here", node="n1")
            await env.reach("Ready", "here")
            assert await env.state("elsewhere") == "Scheduled"
            assert env.boxes(other.metadata.uid) == []
    run(go())


def test_crash_loop_back_off_grows_and_counts_restarts() -> None:
    async def go() -> None:
        created: list[tuple[int, float]] = []
        env = Env()

        def program(spec: ContainerSpec) -> Program:
            created.append((spec.attempt, env.clock.now()))
            return Program.exits(1, after=1)

        env.runtime.program_for = program
        async with env:
            await env.agent()
            async with states_of(env) as seen:
                await env.pod()

                async def five_attempts() -> bool:
                    return len(created) >= 5

                await env.until(five_attempts, timeout=200, what="5 attempts")
            # Each attempt runs 1 s; the wait before the next one is the back-off:
            # first restart immediate, then 10 s doubling (Kubernetes' kubelet defaults).
            gaps = [round(b[1] - a[1] - 1, 3) for a, b in itertools.pairwise(created)]
            assert [a for a, _ in created] == [0, 1, 2, 3, 4]
            assert gaps == [0.0, 10.0, 20.0, 40.0]
            assert "CrashLoopBackOff" in seen
            pod = await env.get()
            assert pod is not None and restarts(pod) == 4
            last = pod.status.container_statuses[0].last_state.terminated
            assert last is not None and last.exit_code == 1 and last.reason == "Error"
            # Garbage collection keeps the current instance and one exited before it.
            assert [c.attempt for c in await env.containers(pod.metadata.uid)] == [3, 4]
    run(go())


def test_back_off_policy_is_configurable() -> None:
    async def go() -> None:
        from kstate.machines.pod import BackOffPolicy

        created: list[float] = []
        env = Env()

        def program(spec: ContainerSpec) -> Program:
            created.append(env.clock.now())
            return Program.exits(1, after=1)

        env.runtime.program_for = program
        async with env:
            await env.agent(backoff=BackOffPolicy(initial=1, cap=2))
            await env.pod()

            async def five() -> bool:
                return len(created) >= 5

            await env.until(five, timeout=60, what="5 attempts")
            gaps = [round(b - a - 1, 3) for a, b in itertools.pairwise(created)]
            assert gaps == [0.0, 1.0, 2.0, 2.0]
    run(go())


def test_restart_policy_never_ends_in_succeeded_and_cleans_up() -> None:
    async def go() -> None:
        async with Env(programs={"job": Program.exits(0, after=5)}) as env:
            await env.agent()
            pod = await env.pod(restartPolicy="Never",
                                containers=[{"name": "job", "image": "kstate/httpd:1"}])
            done = await env.reach("Succeeded", timeout=30)
            term = done.status.container_statuses[0].state.terminated
            assert term is not None and term.reason == "Completed" and term.exit_code == 0
            await env.until(lambda: env.boxes(pod.metadata.uid) == [], timeout=5,
                            what="sandbox removed")
    run(go())


def test_graceful_delete_terms_waits_the_grace_then_kills_and_removes() -> None:
    async def go() -> None:
        # A process that ignores TERM (a PID 1 without a handler): only KILL stops it.
        async with Env(programs={"c0": Program(on_term=None)}) as env:
            await env.agent()
            pod = await env.pod(terminationGracePeriodSeconds=20)
            await env.reach("Ready")
            start = env.clock.now()
            await env.client.delete(Pod, "web", "default")
            assert await env.state() == "Terminating"
            await env.elapse(19)
            assert await env.state() in ("Terminating", "Killing")
            assert any(c.state is ContainerState.RUNNING
                       for c in await env.containers(pod.metadata.uid))
            await env.reach("Deleted", timeout=30)
            assert env.clock.now() - start == pytest.approx(20, abs=1)
            assert env.boxes(pod.metadata.uid) == []
    run(go())


def test_delete_of_a_pod_that_stops_on_term_is_prompt() -> None:
    async def go() -> None:
        async with Env() as env:
            await env.agent()
            pod = await env.pod()
            await env.reach("Ready")
            start = env.clock.now()
            async with states_of(env) as seen:
                await env.client.delete(Pod, "web", "default")
                await env.reach("Deleted", timeout=5)
            assert env.clock.now() - start < 1
            assert seen == ["Ready", "Terminating", "Deleted"]
            assert env.boxes(pod.metadata.uid) == []
    run(go())


def test_liveness_failure_kills_and_restarts_the_container() -> None:
    async def go() -> None:
        env = Env()
        first: list[str] = []

        def liveness(kind: ProbeKind, target: ProbeTarget) -> bool | None:
            if kind is ProbeKind.LIVENESS and target.container_id in first:
                return False
            return None

        env.prober.script = liveness
        async with env:
            await env.agent()
            pod = await env.pod(containers=[{
                "name": "c0", "image": "kstate/httpd:1",
                "livenessProbe": {"exec": {"command": ["true"]}, "periodSeconds": 10,
                                  "failureThreshold": 3}}])
            await env.reach("Ready")
            first.extend(c.id for c in await env.containers(pod.metadata.uid))
            start = env.clock.now()

            async def restarted() -> bool:
                p = await env.get()
                return p is not None and restarts(p) == 1 and \
                    pod_state(p, env.clock.now()) == "Ready"

            await env.until(restarted, timeout=60, what="restart after liveness failure")
            # The probe at start passed; then three failures in a row, 10 s apart
            # (t = 10, 20, 30): killed at the third, restarted at once (first restart).
            assert 30 <= env.clock.now() - start <= 31
            instances = await env.containers(pod.metadata.uid)
            assert [c.attempt for c in instances] == [0, 1]
            assert instances[0].state is ContainerState.EXITED
            assert instances[1].state is ContainerState.RUNNING
    run(go())


def test_readiness_failure_keeps_the_pod_running_but_not_ready() -> None:
    async def go() -> None:
        async with Env() as env:
            env.prober.set("default/web", "c0", "readiness", False)
            await env.agent()
            await env.pod(containers=[{
                "name": "c0", "image": "kstate/httpd:1",
                "readinessProbe": {"httpGet": {"port": 8080}, "periodSeconds": 5}}])
            await env.reach("Running")
            await env.elapse(30)
            now = await env.get()
            assert now is not None and pod_state(now, env.clock.now()) == "Running"
            ready = get_condition(now.status.conditions, "Ready")
            assert ready is not None and ready.status == "False"
            assert not now.status.container_statuses[0].ready
            env.prober.set("default/web", "c0", "readiness", True)
            await env.reach("Ready", timeout=6)
            env.prober.set("default/web", "c0", "readiness", False)
            pod = await env.reach("Running", timeout=16)  # three failures, 5 s apart
            assert restarts(pod) == 0  # readiness never restarts anything
    run(go())


def test_fake_runtime_pods_pass_network_probes_by_default() -> None:
    async def go() -> None:
        async with Env() as env:
            await env.agent(prober=None)  # the fake's pods have no network to probe
            await env.pod(containers=[{
                "name": "c0", "image": "kstate/httpd:1",
                "readinessProbe": {"httpGet": {"port": 8080}},
                "livenessProbe": {"exec": {"command": ["true"]}}}])
            await env.reach("Ready", timeout=5)
            await env.elapse(60)
            pod = await env.get()
            assert pod is not None and restarts(pod) == 0
    run(go())


def test_a_missing_image_backs_off_then_starts_once_it_exists() -> None:
    async def go() -> None:
        async with Env() as env:
            await env.agent()
            await env.pod(containers=[{"name": "c0", "image": "missing:1",
                                       "imagePullPolicy": "IfNotPresent"}])
            pod = await env.reach("ImagePullBackOff", timeout=5)
            waiting = pod.status.container_statuses[0].state.waiting
            assert waiting is not None and waiting.reason == "ErrImagePull"
            assert pod.status.phase == "Pending"
            env.runtime.add_image("missing:1")  # built locally meanwhile
            await env.reach("Ready", timeout=60)
    run(go())


def test_never_pull_policy_reports_err_image_never_pull() -> None:
    async def go() -> None:
        async with Env() as env:
            await env.agent()
            await env.pod(containers=[{"name": "c0", "image": "missing:1",
                                       "imagePullPolicy": "Never"}])
            pod = await env.reach("ImagePullBackOff", timeout=5)
            waiting = pod.status.container_statuses[0].state.waiting
            assert waiting is not None and waiting.reason == "ErrImageNeverPull"
    run(go())


# =============================================================================== restarts


def test_a_restarted_agent_adopts_its_containers_and_removes_orphans() -> None:
    async def go() -> None:
        async with Env() as env:
            first = await env.agent()
            kept = await env.pod("kept")
            doomed = await env.pod("doomed")
            elsewhere = await env.pod("elsewhere", node="n2")
            await env.reach("Ready", "kept")
            await env.reach("Ready", "doomed")
            before = await env.containers(kept.metadata.uid)
            await env.stop(first)

            # While the agent is down: a pod is force-deleted, and containers appear for
            # a pod bound to another node (a stale leftover labelled with this node).
            await env.client.delete(Pod, "doomed", "default", grace_period_seconds=0)
            stray = await env.runtime.create_sandbox(SandboxSpec(
                pod_uid=elsewhere.metadata.uid, namespace="default", name="elsewhere",
                node_name="n1"))
            cid = await env.runtime.create_container(stray.id, ContainerSpec(
                name="c0", image="kstate/httpd:1"))
            await env.runtime.start_container(cid)

            await env.agent()

            async def reconciled() -> bool:
                return env.boxes(doomed.metadata.uid) == [] and \
                    env.boxes(elsewhere.metadata.uid) == []

            await env.until(reconciled, timeout=10, what="orphans removed")
            await env.elapse(30)
            after = await env.containers(kept.metadata.uid)
            assert after == before  # same instances, same states: nothing restarted
            pod = await env.get("kept")
            assert pod is not None and restarts(pod) == 0
            assert pod_state(pod, env.clock.now()) == "Ready"
            assert len([b for b in env.boxes(kept.metadata.uid) if b.role == "sandbox"]) == 1
    run(go())


def test_a_container_that_died_while_the_agent_was_down_is_restarted() -> None:
    async def go() -> None:
        async with Env() as env:
            first = await env.agent()
            pod = await env.pod()
            await env.reach("Ready")
            await env.stop(first)
            (inst,) = await env.containers(pod.metadata.uid)
            env.runtime.crash(inst.id, 2)
            await env.agent()

            async def restarted() -> bool:
                p = await env.get()
                return p is not None and restarts(p) == 1 and \
                    pod_state(p, env.clock.now()) == "Ready"

            await env.until(restarted, timeout=10, what="restarted once")
            p = await env.get()
            assert p is not None
            last = p.status.container_statuses[0].last_state.terminated
            assert last is not None and last.exit_code == 2
    run(go())


def test_a_start_interrupted_by_an_agent_restart_is_finished() -> None:
    async def go() -> None:
        async with Env() as env:
            first = await env.agent()
            pod = await env.pod()
            await env.reach("Ready")
            await env.stop(first)
            # What an agent killed between create and start leaves: the next attempt
            # created, never started (the container had exited; its exit was handled).
            (inst,) = await env.containers(pod.metadata.uid)
            env.runtime.crash(inst.id, 1)
            spec = ContainerSpec(name="c0", image="kstate/httpd:1", attempt=1)
            leftover = await env.runtime.create_container(inst.sandbox_id, spec)
            await env.agent()

            async def running_again() -> bool:
                p = await env.get()
                return p is not None and pod_state(p, env.clock.now()) == "Ready" and \
                    restarts(p) == 1

            await env.until(running_again, timeout=10, what="restarted after the leftover")
            attempts = [(c.attempt, c.state) for c in await env.containers(pod.metadata.uid)]
            assert attempts == [(0, ContainerState.EXITED), (1, ContainerState.RUNNING)]
            assert leftover not in {c.id for c in await env.containers(pod.metadata.uid)}
    run(go())


def test_runtime_events_drive_restarts_without_relisting() -> None:
    async def go() -> None:
        async with Env() as env:
            await env.agent(relist_interval=None)
            pod = await env.pod()
            await env.reach("Ready")
            (inst,) = await env.containers(pod.metadata.uid)
            env.runtime.crash(inst.id, 1)
            await env.settle()
            p = await env.get()
            assert p is not None and restarts(p) == 1
    run(go())


def test_a_runtime_outage_is_survived_and_caught_up_by_relist() -> None:
    async def go() -> None:
        async with Env() as env:
            await env.agent(relist_interval=1.0, retry_delay=1.0)
            pod = await env.pod()
            await env.reach("Ready")
            (inst,) = await env.containers(pod.metadata.uid)
            env.runtime.set_reachable(False)  # every call and event stream fails
            env.runtime.crash(inst.id, 3)  # ... and meanwhile the container dies
            await env.elapse(5)
            p = await env.get()
            assert p is not None and restarts(p) == 0  # nothing could be done yet
            env.runtime.set_reachable(True)

            async def caught_up() -> bool:
                p = await env.get()
                return p is not None and restarts(p) == 1 and \
                    pod_state(p, env.clock.now()) == "Ready"

            await env.until(caught_up, timeout=30, what="restart after the outage")
    run(go())


class RacingClient(LocalClient):
    """A client whose next ``races`` status writes lose a race: just before each, someone
    else updates the pod (a label), so the write carries a stale resourceVersion."""

    races = 0
    conflicts = 0

    async def update_status(self, obj: Any) -> Any:
        if self.races > 0 and isinstance(obj, Pod):
            import attrs

            self.races -= 1
            current = await self.get(Pod, obj.metadata.name, obj.metadata.namespace)
            await self.update(attrs.evolve(current, metadata=attrs.evolve(
                current.metadata, labels=current.metadata.labels.set("touched", str(self.races)))))
            try:
                return await super().update_status(obj)
            except Conflict:
                self.conflicts += 1
                raise
        return await super().update_status(obj)


def test_a_status_write_conflict_is_retried_on_a_fresh_read() -> None:
    async def go() -> None:
        async with Env() as env:
            racing = RacingClient(env.core)
            env.client = racing
            await env.agent()
            racing.races = 3
            await env.pod()
            pod = await env.reach("Ready")
            assert racing.conflicts == 3
            assert pod.metadata.labels["touched"] == "0"
            assert restarts(pod) == 0
    run(go())


# =============================================================================== services


def test_service_environment_variables_reach_the_container() -> None:
    async def go() -> None:
        env = Env()
        specs: list[ContainerSpec] = []

        def capture(spec: ContainerSpec) -> None:
            specs.append(spec)

        env.runtime.program_for = capture
        # What the proxy records: a pod-facing port per Service port on the gateway.
        ports = {POD_PORTS_ANNOTATION: '{"5432": 20001, "8080": 20002}'}
        async with env:
            await env.client.create(from_dict(Service, {
                "metadata": {"name": "my-db", "namespace": "default", "annotations": ports},
                "spec": {"selector": {"app": "db"},
                         "ports": [{"name": "sql", "port": 5432},
                                   {"name": "admin", "port": 8080, "protocol": "TCP"}]}}))
            await env.client.create(from_dict(Service, {
                "metadata": {"name": "other", "namespace": "kube-system",
                             "annotations": {POD_PORTS_ANNOTATION: '{"53": 20003}'}},
                "spec": {"ports": [{"port": 53}]}}))
            agent = await env.agent()
            gateway = (await env.runtime.network_info()).gateway
            assert agent.gateway == gateway == "10.88.0.1"
            await env.pod(containers=[{"name": "c0", "image": "kstate/httpd:1",
                                       "env": [{"name": "MY_DB_SERVICE_PORT",
                                                "value": "own"}]}])
            await env.reach("Ready")
            got = dict(specs[0].env)  # later entries win, as in the runtime
            assert got["MY_DB_SERVICE_HOST"] == gateway
            assert got["MY_DB_SERVICE_PORT"] == "own"  # the container's own value wins
            assert got["MY_DB_SERVICE_PORT_SQL"] == "20001"
            assert got["MY_DB_SERVICE_PORT_ADMIN"] == "20002"
            assert got["MY_DB_PORT"] == f"tcp://{gateway}:20001"
            assert got["MY_DB_PORT_8080_TCP"] == f"tcp://{gateway}:20002"
            assert got["MY_DB_PORT_8080_TCP_ADDR"] == gateway
            assert not any(k.startswith("OTHER_") for k in got)  # another namespace
            # The container's own variables come last, so they override.
            assert specs[0].env[-1] == ("MY_DB_SERVICE_PORT", "own")
    run(go())


def test_service_links_can_be_disabled() -> None:
    async def go() -> None:
        env = Env()
        specs: list[ContainerSpec] = []
        env.runtime.program_for = specs.append
        async with env:
            await env.client.create(from_dict(Service, {
                "metadata": {"name": "db", "namespace": "default",
                             "annotations": {POD_PORTS_ANNOTATION: '{"80": 20001}'}},
                "spec": {"ports": [{"port": 80}]}}))
            await env.agent()
            await env.pod(enableServiceLinks=False)
            await env.reach("Ready")
            assert specs[0].env == ()
    run(go())


# =============================================================================== logs


def test_logs_through_the_api_server() -> None:
    async def go() -> None:
        from aiohttp.test_utils import TestClient, TestServer

        from kstate.api.server.auth import Authenticator, User
        from kstate.api.server.http import HttpApi

        env = Env()

        def program(spec: ContainerSpec) -> Program:
            return Program(logs=f"attempt {spec.attempt}\nline two\n".encode())

        env.runtime.program_for = program
        async with env:
            agent = await env.agent(server_port=0)
            node = await env.client.get(Node, "n1")
            assert node.metadata.annotations["kstate.io/agent-url"] == agent.agent_url
            assert node.status.extra["daemonEndpoints"]["kubeletEndpoint"]["Port"] > 0
            pod = await env.pod()
            await env.reach("Ready")

            api = HttpApi(env.core, Authenticator.from_tokens(
                {"t": User("admin", "1", ("admin",))}))
            http: TestClient[Any, Any] = TestClient(TestServer(api.app()))
            await http.start_server()
            try:
                async def log(**query: str) -> tuple[int, str]:
                    resp = await http.get("/api/v1/namespaces/default/pods/web/log",
                                          params=query, headers={"Authorization": "Bearer t"})
                    return resp.status, await resp.text()

                assert await log() == (200, "attempt 0\nline two\n")
                assert await log(tailLines="1") == (200, "line two\n")
                assert await log(limitBytes="4") == (200, "atte")
                status, _ = await log(previous="true")
                assert status >= 400  # no previous instance yet
                (inst,) = await env.containers(pod.metadata.uid)
                env.runtime.crash(inst.id, 1)

                async def restarted() -> bool:
                    p = await env.get()
                    return p is not None and restarts(p) == 1
                await env.until(restarted, timeout=10, what="restart")
                assert await log() == (200, "attempt 1\nline two\n")
                assert await log(previous="true") == (200, "attempt 0\nline two\n")
            finally:
                await http.close()
    run(go())


def test_logs_follow_streams_until_the_container_exits() -> None:
    async def go() -> None:
        import aiohttp

        async with Env(programs={"c0": Program(logs=b"first\n")}) as env:
            agent = await env.agent(server_port=0)
            pod = await env.pod()
            await env.reach("Ready")
            (inst,) = await env.containers(pod.metadata.uid)
            async with aiohttp.ClientSession() as session, session.get(
                    f"{agent.agent_url}/containerLogs/default/web/c0",
                    params={"follow": "true"}) as resp:
                assert resp.status == 200
                assert await resp.content.readline() == b"first\n"
                env.runtime.write_log(inst.id, b"second\n")
                assert await resp.content.readline() == b"second\n"
                env.runtime.crash(inst.id, 0)
                assert await resp.content.read() == b""  # the stream ends with it
    run(go())


def test_log_endpoint_errors() -> None:
    async def go() -> None:
        import aiohttp

        async with Env() as env:
            agent = await env.agent(server_port=0)
            await env.pod()
            await env.reach("Ready")
            async with aiohttp.ClientSession() as session:
                async def status(path: str) -> int:
                    async with session.get(agent.agent_url + path) as resp:
                        return resp.status
                assert await status("/healthz") == 200
                assert await status("/containerLogs/default/nope/c0") == 404
                assert await status("/containerLogs/default/web/nope") == 400
                assert await status("/containerLogs/default/web/c0?tailLines=x") == 400
                assert await status("/containerLogs/default/web/c0") == 200
    run(go())
