"""Rule-based state machines over the live engine: random operations, faults, invariants.

Where it sits: ``kstate.verify.stateful``; ``tests/stateful/`` runs these classes under
pytest (``ClusterMachine.TestCase``), ``kstate fuzz`` runs them outside it (fuzz.py).

Each example boots a fresh :class:`~kstate.verify.engine.Engine` (three nodes on fake
runtimes, a seed drawn by Hypothesis) in its own event loop, then applies rules — a
user's operations (create / scale / delete RCs and Services, delete, relabel and create
pods), faults (crash a container, cut a node off and reconnect it, restart the controller
manager, the scheduler, an agent, or the whole daemon from the store), time (advance the
fake clock), conflicting concurrent updates and cordon / drain. Between rules the engine
is *drained* (every runnable task has run) and the per-step invariants of checks.py are
asserted; the ``settle`` rule, and the teardown of every example, drive the cluster to
rest and assert the convergence invariants. A failure prints as Hypothesis' minimal
program (``state = ClusterMachine(); state.boot(seed=3); state.create_rc(...)``), which
runs again as it reads.

``DockerClusterMachine`` is the same machine on the Docker runtime (two nodes, one
engine), for the profile with fewer, longer runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar, TypeVar

import attrs
from hypothesis import HealthCheck, settings
from hypothesis import note as hypothesis_note
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument, StopTest
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from kstate.api.codec import from_dict
from kstate.api.frozen import FrozenDict
from kstate.api.lifecycle import DRAINING_ANNOTATION
from kstate.api.objects import Node, Pod, ReplicationController, Service
from kstate.errors import (
    Conflict,
    IllegalTransition,
    InvalidObject,
    KeyExists,
    NotFound,
    UsageError,
)
from kstate.machines.pod import BackOffPolicy
from kstate.verify.engine import WRITE_FAILURES, Engine, EngineConfig
from kstate.verify.faults import MAX_SKEW
from kstate.verify.stateful.checks import (
    ReplicaBound,
    settled_violations,
    step_violations,
    terminating_pods_finish,
)

T = TypeVar("T")

log = logging.getLogger("kstate.verify.stateful")

RC_NAMES = ("web", "api")
IMAGE = "kstate/httpd:1"
#: What the RC's containers run. Busybox httpd as PID 1 ignores TERM, so on Docker every
#: stop would wait out the grace period; the trap makes it exit at once (the fake runtime
#: ignores commands: its containers exit on TERM by default).
HTTPD = ("echo serving; mkdir -p /www; echo hello > /www/index.html; "
         "trap 'exit 0' TERM; httpd -f -p 8080 -h /www & wait")
GRACE_SECONDS = 5
#: The components whose watches, writes and clocks the fault rules reach ("node": one
#: agent, picked by index), and the kinds each one watches ("*": all at once).
COMPONENTS = ("controller-manager", "scheduler", "node")
WATCHED = {
    "controller-manager": ("Pod", "ReplicationController", "Service", "Endpoints", "Node",
                           "Lease", "*"),
    "scheduler": ("Pod", "Node", "*"),
    "node": ("Pod", "Service", "*"),
}
HOLD_SECONDS = (5, 15, 30)
#: The watches a program may run with a lag, and how late (below the node monitor's
#: 40 s grace less the 10 s lease interval: a lagging lease watch alone must not make a
#: healthy node look dead — in Kubernetes as here).
LAGS = ("", "controller-manager/Pod", "controller-manager/ReplicationController",
        "controller-manager/Node", "controller-manager/Lease", "scheduler/Pod",
        "scheduler/Node", "node/Pod")
LAG_SECONDS = (5.0, 15.0)
WORKLOAD_REPLICAS = 2
#: Fake seconds the same things may stay undone before a settle gives up on them.
STALL_SECONDS = 400.0
SKEWS = (-MAX_SKEW, -3.0, 0.0, 3.0, MAX_SKEW)
#: Wall-clock bound on one rule (a hang fails, never blocks CI).
STEP_TIMEOUT = 300.0


#: The RC whose pods have a readiness probe (``fail_readiness`` acts on them); the other
#: one's pods are ready as soon as they run (Kubernetes' rule without a probe).
PROBED_RC = "api"
READINESS_PROBE = {"exec": {"command": ["true"]}, "periodSeconds": 5,
                   "failureThreshold": 1, "successThreshold": 1}


def rc_manifest(name: str, replicas: int) -> ReplicationController:
    container: dict[str, Any] = {"name": "app", "image": IMAGE,
                                 "command": ["sh", "-c", HTTPD],
                                 "ports": [{"containerPort": 8080}]}
    if name == PROBED_RC:
        container["readinessProbe"] = READINESS_PROBE
    return from_dict(ReplicationController, {
        "apiVersion": "v1", "kind": "ReplicationController",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"replicas": replicas, "selector": {"app": name},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"terminationGracePeriodSeconds": GRACE_SECONDS,
                                       "containers": [container]}}}})


def service_manifest(name: str) -> Service:
    return from_dict(Service, {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"selector": {"app": name}, "ports": [{"port": 80, "targetPort": 8080}]}})


def bare_pod(name: str, app: str) -> Pod:
    return from_dict(Pod, {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": {"app": app}},
        "spec": {"terminationGracePeriodSeconds": GRACE_SECONDS,
                 "containers": [{"name": "app", "image": IMAGE,
                                 "command": ["sh", "-c", HTTPD]}]}})


def _pick(options: tuple[str, ...], index: int) -> str:
    return options[index % len(options)]


def note(text: str) -> None:
    """Hypothesis' ``note`` inside a test (printed with a failing case); outside one
    (a program replayed by hand) a log line."""
    try:
        hypothesis_note(text)
    except InvalidArgument:
        log.info("%s", text.strip())


# --------------------------------------------------------------------------- profiles


@attrs.frozen
class Budget:
    examples: int
    steps: int


#: Examples and steps per run, by ``KSTATE_HYPOTHESIS_PROFILE`` (tests/conftest.py's
#: profiles give derandomisation and deadlines; these give the stateful budget).
BUDGETS: dict[str, dict[str, Budget]] = {
    "fake": {"dev": Budget(10, 25), "ci": Budget(30, 30), "long": Budget(200, 1000)},
    "docker": {"dev": Budget(2, 12), "ci": Budget(3, 15), "long": Budget(20, 100)},
}


def profile_name() -> str:
    ci = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
    return os.environ.get("KSTATE_HYPOTHESIS_PROFILE", "ci" if ci else "dev")


def budget(runtime: str, profile: str | None = None) -> Budget:
    """The budget of ``profile`` (default: ``KSTATE_HYPOTHESIS_PROFILE``, else ``ci``
    under CI and ``dev`` elsewhere); an unknown name is a ``UsageError``."""
    table = BUDGETS[runtime]
    name = profile or profile_name()
    if name not in table:
        where = "--profile" if profile else "KSTATE_HYPOTHESIS_PROFILE"
        raise UsageError(f"{where}: unknown profile {name!r}; choose one of "
                         f"{', '.join(table)}")
    return table[name]


def stateful_settings(runtime: str, **changes: Any) -> settings:
    """The loaded profile with the stateful budget of ``runtime`` (and ``changes``)."""
    b = budget(runtime)
    return settings(settings.default, max_examples=b.examples, stateful_step_count=b.steps,
                    deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much],
                    **changes)


# --------------------------------------------------------------------------- machine


class ClusterMachine(RuleBasedStateMachine):
    """Random operations and faults on a three-node engine; invariants after each."""

    runtime: ClassVar[str] = "fake"
    node_count: ClassVar[int] = 3
    #: called with the machine at the start of every example (``kstate fuzz`` progress)
    on_example: ClassVar[Callable[[ClusterMachine], None] | None] = None

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.engine: Engine | None = None
        self.bound = ReplicaBound()
        self.checks = 0  # invariant checks: one after boot, then one after every rule
        self.bare = 0
        #: how the example ended (set by teardown): "passed", "failed", or "discarded"
        #: (Hypothesis gave up on the program: it ran out of data to draw from)
        self.outcome = ""

    @property
    def steps(self) -> int:
        """Rules run so far in this example."""
        return max(0, self.checks - 1)

    # ------------------------------------------------------------------ plumbing

    def run(self, work: Awaitable[T]) -> T:
        async def bounded() -> T:
            async with asyncio.timeout(STEP_TIMEOUT):
                return await work
        return self.loop.run_until_complete(bounded())

    @property
    def e(self) -> Engine:
        assert self.engine is not None, "boot runs first"
        return self.engine

    def names(self) -> list[str]:
        return self.e.node_names

    async def _then_drain(self, work: Awaitable[Any]) -> Any:
        try:
            return await work
        finally:
            await self.e.drain()

    def act(self, work: Awaitable[Any], *, tolerate: tuple[type[BaseException], ...] = ()
            ) -> Any:
        """A user's call, then let the cluster react; ``tolerate``d errors are the
        user's bad luck (the object is gone, someone else changed it first)."""
        try:
            return self.run(self._then_drain(work))
        except tolerate as err:
            note(f"  -> {type(err).__name__}: {err}")
            self.run(self.e.drain())
            return None

    def config(self, seed: int) -> EngineConfig:
        return EngineConfig(nodes=self.node_count, seed=seed, runtime=self.runtime,
                            node_prefix="node-" if self.runtime == "fake" else
                            f"fuzz{os.getpid()}-{seed}-",
                            backoff=BackOffPolicy(initial=10.0, cap=60.0))

    # ------------------------------------------------------------------ boot

    @initialize(seed=st.integers(0, 15), workload=st.booleans(),
                lag=st.sampled_from(LAGS), lag_seconds=st.sampled_from(LAG_SECONDS))
    def boot(self, seed: int, workload: bool = False, lag: str = "",
             lag_seconds: float = 0.0) -> None:
        """A fresh engine; with ``workload``, already running both RCs (two replicas
        each) behind their Services, so that a fault is one rule away from mattering;
        with ``lag`` (``<component>/<kind>``), that watch delivers every event
        ``lag_seconds`` late for the whole program (a lagging informer: Sieve's stale
        view, the bug class expectations and live reads exist for)."""
        hook = type(self).on_example
        if hook is not None:
            hook(self)
        config = self.config(seed)
        if lag and lag_seconds:
            config = attrs.evolve(config, delays={**config.delays, lag: lag_seconds})
        self.engine = Engine(config)
        self.run(self.e.start())
        if workload:
            for name in RC_NAMES:
                self.bound.saw(name, WORKLOAD_REPLICAS)
                self.act(self.e.client.create(rc_manifest(name, WORKLOAD_REPLICAS)))
                self.act(self.e.client.create(service_manifest(name)))

    def teardown(self) -> None:
        # Whatever ends the example is on its way out while teardown runs (Hypothesis
        # calls it from a ``finally``): a violated invariant or a broken rule, its
        # StopTest for a discarded program, or nothing. Only a program that got through
        # is settled and checked once more: a failure of the final check must not
        # replace the failure that ended the program.
        ending = sys.exc_info()[1]
        self.outcome = ("passed" if ending is None else
                        "discarded" if isinstance(ending, StopTest) else "failed")
        try:
            if self.outcome == "passed" and self.engine is not None and self.engine._running:
                self._final_check()
        except BaseException:
            self.outcome = "failed"
            raise
        finally:
            try:
                if self.engine is not None:
                    self.run(self.engine.stop())
            finally:
                self.loop.close()

    def _final_check(self) -> None:
        for name in self.names():
            if not self.e.reachable(name):
                self.run(self.e.heal(name))
        self._settle_and_check()

    def _settle_and_check(self) -> None:
        async def stuck() -> list[str]:
            return terminating_pods_finish(self.e, await self.e.objects(Pod))
        # Nothing the engine does waits longer than the expectations' TTL (300 s): what
        # stayed undone for STALL_SECONDS never will be, so do not wait out the bound.
        settled = self.run(self.e.settle(stall=STALL_SECONDS, stop=stuck))
        note(f"  settled in {settled.elapsed:.0f} fake s ({settled.steps} clock moves)")
        assert settled.converged, ("the cluster did not settle (gave up after "
                                   f"{settled.elapsed:.0f} s of fake time): "
                                   + "; ".join(settled.unmet))
        violations = self.run(settled_violations(self.e))
        assert not violations, "once settled: " + "; ".join(violations)

    # ------------------------------------------------------------------ invariants

    @invariant()
    def every_step_invariant(self) -> None:
        if self.engine is None:
            return
        self.checks += 1
        violations = self.run(step_violations(self.e, self.bound))
        assert not violations, "; ".join(violations)

    # ------------------------------------------------------------------ workloads

    @rule(name=st.sampled_from(RC_NAMES), replicas=st.integers(0, 4))
    def create_rc(self, name: str, replicas: int) -> None:
        self.bound.saw(name, replicas)
        self.act(self.e.client.create(rc_manifest(name, replicas)), tolerate=(KeyExists,))

    @rule(name=st.sampled_from(RC_NAMES), replicas=st.integers(0, 4))
    def scale_rc(self, name: str, replicas: int) -> None:
        self.bound.saw(name, replicas)
        self.act(self.e.client.scale(ReplicationController, name, replicas, "default"),
                 tolerate=(NotFound,))

    @rule(name=st.sampled_from(RC_NAMES),
          policy=st.sampled_from(["Background", "Foreground", "Orphan"]))
    def delete_rc(self, name: str, policy: str) -> None:
        self.act(self.e.client.delete(ReplicationController, name, "default",
                                      propagation_policy=policy), tolerate=(NotFound,))

    @rule(name=st.sampled_from(RC_NAMES), replicas=st.integers(1, 4))
    def recreate_rc(self, name: str, replicas: int) -> None:
        """Delete an RC and create it again at once under the same name (``kubectl
        replace --force``): a new uid behind an old name, its predecessor's pods left
        for the garbage collector."""
        self.bound.saw(name, replicas)
        self.run(self._recreate_rc(name, replicas))

    async def _recreate_rc(self, name: str, replicas: int) -> None:
        with contextlib.suppress(NotFound):
            await self.e.client.delete(ReplicationController, name, "default",
                                       propagation_policy="Background")
        await self._then_drain(self._create_tolerating(rc_manifest(name, replicas)))

    async def _create_tolerating(self, rc: ReplicationController) -> None:
        with contextlib.suppress(KeyExists):  # still being deleted (a finalizer)
            await self.e.client.create(rc)

    @rule(name=st.sampled_from(RC_NAMES), a=st.integers(0, 4), b=st.integers(0, 4))
    def conflicting_scales(self, name: str, a: int, b: int) -> None:
        """Two clients update the same RC from the same read: exactly one wins, and the
        store holds the winner's replicas."""
        self.bound.saw(name, a)
        self.bound.saw(name, b)
        self.run(self._conflicting_scales(name, a, b))

    async def _conflicting_scales(self, name: str, a: int, b: int) -> None:
        client = self.e.client
        try:
            rc = await client.get(ReplicationController, name, "default")
        except NotFound:
            return
        writes = [attrs.evolve(rc, spec=attrs.evolve(rc.spec, replicas=n)) for n in (a, b)]
        results = await asyncio.gather(*(client.update(w) for w in writes),
                                       return_exceptions=True)
        await self.e.drain()
        lost = [r for r in results if isinstance(r, BaseException)]
        if any(isinstance(r, NotFound) for r in lost):
            return  # deleted under us (a Background delete in flight)
        assert all(isinstance(r, Conflict) for r in lost), f"unexpected errors: {lost!r}"
        # An update that changes nothing is a no-op that succeeds whenever it is read
        # at the current version; of the two that change something, exactly one wins.
        current = rc.spec.replicas
        changing = [(n, r) for n, r in zip((a, b), results, strict=True) if n != current]
        winners = [n for n, r in changing if isinstance(r, ReplicationController)]
        if changing:
            assert len(winners) == 1, (f"{len(winners)} of {len(changing)} conflicting "
                                       f"updates from replicas {current} succeeded")
            note(f"  -> replicas {winners[0]} won")
        with contextlib.suppress(NotFound):
            stored = await client.get(ReplicationController, name, "default")
            if stored.metadata.uid == rc.metadata.uid:
                want = winners[0] if winners else current
                assert stored.spec.replicas == want, (
                    f"the store holds replicas {stored.spec.replicas}, the winner wrote {want}")

    @rule(name=st.sampled_from(RC_NAMES))
    def create_service(self, name: str) -> None:
        self.act(self.e.client.create(service_manifest(name)), tolerate=(KeyExists,))

    @rule(name=st.sampled_from(RC_NAMES))
    def delete_service(self, name: str) -> None:
        self.act(self.e.client.delete(Service, name, "default"), tolerate=(NotFound,))

    # ------------------------------------------------------------------ pods

    def _pods(self) -> list[Pod]:
        return sorted(self.run(self.e.objects(Pod)), key=lambda p: p.metadata.name)

    @rule(pick=st.integers(0, 7), grace=st.sampled_from([None, 0, 1]))
    def delete_pod(self, pick: int, grace: int | None) -> None:
        pods = self._pods()
        if not pods:
            return
        pod = pods[pick % len(pods)]
        note(f"  -> pod {pod.metadata.name}")
        self.act(self.e.client.delete(Pod, pod.metadata.name, "default",
                                      grace_period_seconds=grace), tolerate=(NotFound,))

    @rule(pick=st.integers(0, 7), app=st.sampled_from([*RC_NAMES, "other"]))
    def relabel_pod(self, pick: int, app: str) -> None:
        """Change a pod's labels: its RC lets go of it (or another adopts it)."""
        pods = self._pods()
        if not pods:
            return
        pod = pods[pick % len(pods)]
        note(f"  -> pod {pod.metadata.name}")
        meta = attrs.evolve(pod.metadata, labels=FrozenDict({"app": app}))
        self.act(self.e.client.update(attrs.evolve(pod, metadata=meta)),
                 tolerate=(NotFound, Conflict, InvalidObject, IllegalTransition))

    @rule(app=st.sampled_from(RC_NAMES))
    def create_orphan_pod(self, app: str) -> None:
        """A bare pod matching an RC's selector: the RC adopts it."""
        self.bare += 1
        self.act(self.e.client.create(bare_pod(f"bare-{app}-{self.bare}", app)),
                 tolerate=(KeyExists,))

    @rule(pick=st.integers(0, 7))
    def crash_container(self, pick: int) -> None:
        running = [(node, c) for node, cs in sorted(self.run(self.e.containers()).items())
                   for c in sorted(cs, key=lambda c: (c.labels.get("io.kstate.pod.name", ""),
                                                      c.name))]
        if not running:
            return
        node, container = running[pick % len(running)]
        note(f"  -> {container.labels.get('io.kstate.pod.name')}/{container.name} on {node}")
        self.run(self.e.crash(node, container.id))

    # ------------------------------------------------------------------ nodes

    @rule(index=st.integers(0, 7))
    def partition_node(self, index: int) -> None:
        name = self.names()[index % len(self.names())]
        note(f"  -> {name}")
        self.e.partition(name)
        self.run(self.e.drain())

    @rule(seconds=st.sampled_from([0, 60, 400]))
    def partition_control_plane(self, seconds: int) -> None:
        """The control plane loses every node at once (its network, not the nodes,
        failed): Kubernetes' full disruption, where nothing may be evicted. With
        ``seconds``, an outage: that much time passes, then every node is back."""
        for name in self.names():
            self.e.partition(name)
        self.run(self.e.drain())
        if seconds:
            self.run(self.e.advance(seconds))
            for name in self.names():
                self.run(self.e.heal(name))

    @precondition(lambda self: self.engine is not None and any(
        not self.e.reachable(n) for n in self.e.node_names))
    @rule(index=st.integers(0, 7))
    def heal_node(self, index: int) -> None:
        cut = [n for n in self.names() if not self.e.reachable(n)]
        name = cut[index % len(cut)]
        note(f"  -> {name}")
        self.run(self.e.heal(name))

    async def _mark_node(self, name: str, unschedulable: bool, draining: bool) -> None:
        client = self.e.client
        for _ in range(5):
            node = await client.get(Node, name)
            annotations = node.metadata.annotations.without(DRAINING_ANNOTATION)
            if draining:
                annotations = annotations.set(DRAINING_ANNOTATION, "true")
            marked = attrs.evolve(
                node, metadata=attrs.evolve(node.metadata, annotations=annotations),
                spec=attrs.evolve(node.spec, unschedulable=unschedulable))
            try:
                await client.update(marked)
                return
            except Conflict:
                continue

    @rule(index=st.integers(0, 7), how=st.sampled_from(["cordon", "drain", "uncordon"]))
    def cordon_node(self, index: int, how: str) -> None:
        name = self.names()[index % len(self.names())]
        note(f"  -> {how} {name}")
        self.act(self._mark_node(name, how != "uncordon", how == "drain"),
                 tolerate=(InvalidObject, IllegalTransition, NotFound))

    # ------------------------------------------------------------------ restarts

    @rule()
    def restart_controller_manager(self) -> None:
        self.run(self.e.restart_controller_manager())

    @rule()
    def restart_scheduler(self) -> None:
        self.run(self.e.restart_scheduler())

    @rule(index=st.integers(0, 7))
    def restart_node_agent(self, index: int) -> None:
        name = self.names()[index % len(self.names())]
        note(f"  -> {name}")
        self.run(self.e.restart_agent(name))

    @rule()
    def restart_daemon(self) -> None:
        """``kill -9`` and start again: every component rebuilt from the store alone."""
        self.run(self.e.restart_all())

    # ------------------------------------------------------------------ watch faults
    # Sieve's stale views, per component (``Channel`` in kstate/verify/engine.py). A hold
    # lasts at most HOLD_SECONDS of fake time: less than the node monitor's grace period
    # (40 s) and the expectations' TTL (300 s), the bounds within which Kubernetes
    # promises correct decisions on a lagging cache.

    def _component(self, component: str, index: int) -> str:
        if component != "node":
            return component
        return f"node {self.names()[index % len(self.names())]}"

    def _running(self, who: str) -> bool:
        """A write fault or a crash is armed only on a running component: an agent
        restarted while cut off starts (registers) once healed, and that start is the
        harness's, not a sync of the agent's own."""
        node = self.e.nodes.get(who.split(" ", 1)[-1]) if who.startswith("node ") else None
        if node is not None and not node.started:
            note(f"  -> {who} is not running")
            return False
        return True

    @rule(component=st.sampled_from(COMPONENTS), index=st.integers(0, 7),
          kind=st.integers(0, 7), seconds=st.sampled_from(HOLD_SECONDS),
          reorder=st.booleans())
    def hold_watch(self, component: str, index: int, kind: int, seconds: int,
                   reorder: bool) -> None:
        """Hold one of a component's watches (or all of them) back for a while, then
        deliver what they held — in order, or ``reorder``ed: each kind's backlog in
        turn, the kind that fell behind last first (a later change of one kind seen
        before an earlier change of another)."""
        who = self._component(component, index)
        what = _pick(WATCHED[component], kind)
        note(f"  -> {who}: {what} for {seconds} s")
        self.run(self.e.hold(who, what, seconds, reorder=reorder))

    @rule(component=st.sampled_from(COMPONENTS), index=st.integers(0, 7),
          kind=st.integers(0, 7), expire=st.booleans())
    def break_watch(self, component: str, index: int, kind: int, expire: bool) -> None:
        """Drop a component's watch (it resumes from its revision after its retry
        delay), or expire it (410 Gone: it relists at once)."""
        who = self._component(component, index)
        what = _pick(WATCHED[component], kind)
        note(f"  -> {who}: {what}")
        channel = self.e.channels()[who]
        if expire:
            channel.expire(what)
        else:
            channel.drop(what)
        self.run(self.e.drain())

    # ------------------------------------------------------------------ write faults

    @rule(component=st.sampled_from(COMPONENTS), index=st.integers(0, 7),
          after=st.integers(0, 3), how=st.sampled_from((*WRITE_FAILURES, "crash")))
    def fail_write(self, component: str, index: int, after: int, how: str) -> None:
        """One of a component's next writes fails: 409, 500, or a timeout after the
        write was applied — or ``crash``: the component dies after ``after + 1`` more
        writes (say, two creates of a slow-start batch of four) and is restarted from
        the store."""
        who = self._component(component, index)
        if not self._running(who):
            return
        note(f"  -> {who}: write {after + 1} from now")
        channel = self.e.channels()[who]
        if how == "crash":
            channel.crash_after(after + 1)
        else:
            channel.fail_write(after, how)
        self.run(self.e.drain())

    # ------------------------------------------------------------------ state faults

    @rule(pick=st.integers(0, 7), seconds=st.sampled_from([5, 20, 60]))
    def fail_readiness(self, pick: int, seconds: int) -> None:
        """A pod's readiness probe fails for a while, then passes again."""
        pods = [p for p in self._pods() if p.metadata.labels.get("app") == PROBED_RC]
        if not pods:
            return
        pod = pods[pick % len(pods)]
        note(f"  -> pod {pod.metadata.name}")
        self.e.fail_readiness(f"default/{pod.metadata.name}", seconds)
        self.run(self.e.drain())

    @rule(component=st.sampled_from(COMPONENTS), index=st.integers(0, 7),
          seconds=st.sampled_from(SKEWS))
    def skew_clock(self, component: str, index: int, seconds: float) -> None:
        """One component's clock jumps ahead or back (within ``MAX_SKEW``)."""
        who = self._component(component, index)
        note(f"  -> {who}")
        self.e.skew(who, seconds)
        self.run(self.e.drain())

    # ------------------------------------------------------------------ time

    @rule(seconds=st.sampled_from([1, 5, 10, 30, 45, 120, 330]))
    def advance_time(self, seconds: int) -> None:
        self.run(self.e.advance(seconds))

    @rule()
    def settle(self) -> None:
        """Let the cluster come to rest, then check the convergence invariants."""
        self._settle_and_check()


def docker_problem() -> str | None:
    """Why the Docker machine cannot run here (no aiodocker, no engine, no image), or
    None when it can."""
    import importlib.util

    if importlib.util.find_spec("aiodocker") is None:
        return "aiodocker is not installed (pip install -e '.[docker]')"
    from kstate.errors import RuntimeAdapterError
    from kstate.runtime import HTTPD_IMAGE, open_runtime

    async def image_present() -> bool:
        runtime = open_runtime("docker")
        try:
            await runtime.version()
            return await runtime.image_present(HTTPD_IMAGE)
        finally:
            await runtime.close()
    try:
        present = asyncio.run(image_present())
    except RuntimeAdapterError as err:
        return f"the Docker engine is not reachable ({err})"
    if not present:
        return f"image {HTTPD_IMAGE} is missing; run 'kstate image build-base' first"
    return None


class DockerClusterMachine(ClusterMachine):
    """The same machine over real containers: one Docker engine hosting two nodes."""

    runtime: ClassVar[str] = "docker"
    node_count: ClassVar[int] = 2


ClusterMachine.TestCase.settings = stateful_settings("fake")
DockerClusterMachine.TestCase.settings = stateful_settings("docker")


def quiet_logs() -> None:
    """The components log every retry a fault causes; a fuzz run wants only errors."""
    for name in ("kstate", "transitions"):
        logging.getLogger(name).setLevel(logging.ERROR)


__all__ = ["BUDGETS", "Budget", "ClusterMachine", "DockerClusterMachine", "bare_pod",
           "budget", "profile_name", "quiet_logs", "rc_manifest", "service_manifest",
           "stateful_settings"]
