"""The Kubernetes system model: the daemon's own reconcilers, explored exhaustively.

Where it sits: ``kstate.verify.system`` — a ``Model`` for the generic checker
(``kstate.verify.checker``). Built from a ``Scenario`` (scenario.py), it composes the
Pod, RC, Service and Node machines with the *same* functions the engine runs:

* ``kstate.control.replication.reconcile``, ``endpoints.reconcile``,
  ``nodelifecycle.reconcile``, ``gc.reconcile`` and the scheduler, on the controller
  manager's (possibly stale) cache; ``namespace.reconcile`` on a namespace from that
  cache and its content listed live (as the engine's manager lists it);
* ``kstate.node.podsync.sync`` for every pod on every node, over a ``SimulatedNode``;
* ``kstate.node.heartbeat`` for leases and Ready conditions;
* the executors' plans, ``kstate.control.execution`` and ``kstate.node.execution``, for
  how commands are carried out (this module only applies each step to the World);
* the abstract API of world.py, which applies every write with the api server's own
  rules (``kstate.api.writes``).

Actions (their names are the trace a user reads):

``Sync(rc)`` (``Sync(rc, a+b)`` where a scale-down among pods of equal rank may go
several ways: it deletes a, then b), ``Endpoints(svc)``, ``NodeLifecycle``, ``GC``,
``Namespace(ns)`` (``NodeLifecycle(a+b)``, ``GC(a+b)``, ``Namespace(ns, a+b)`` where the
round writes several objects of a kind, which Kubernetes' cache lists in no order: it
writes a, then b — ``kstate.control.orders``), ``Schedule(pod)``,
``Kubelet(node, pod)``, ``NodeReady(node)`` — components doing one round of work, enabled
only when that round would change something; ``Deliver(watcher, kind)`` — a watch event
reaches a cache; ``Tick`` — time jumps to the next deadline (a heartbeat grace period, a
toleration, a back-off, a grace period, an expectation TTL), reachable nodes renewing
their leases on the way; ``ProbePass(node, pod)`` — a readiness probe starts passing;
faults within the scenario's bounds — ``Crash(node, container)``, ``Partition(node)`` /
``Heal(node)``, ``RestartControllerManager``, ``Reboot(node)``, ``RestartKubelet(node)``,
``ApiOutage`` / ``ApiBack``, ``ProbeFail(node, pod)`` (one method each, touching the
World parts its docstring names); and the user's script (``Scale``, ``DeletePod``,
``ForceDeletePod``, ``DeleteRC``, ``Cordon``, ``Drain``, ``DeleteNamespace``), in order.

What a component lists from a cache or the store comes in key order (world.py's
``in_key_order``), never a FrozenDict's insertion order: equal states have the same
successors (tests/verify/test_system_order.py), whichever of them the checker met first.

Components are weakly fair (a round that stays possible eventually happens), faults are
not, and partitions heal, outages end and probes pass fairly — so liveness is checked
"once faults stop".
"""

from __future__ import annotations

import functools
import gc as python_gc
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from typing import Any, TypeVar, cast

import attrs

from kstate.api.frozen import FrozenDict
from kstate.api.helpers import get_condition
from kstate.api.lifecycle import DRAINING_ANNOTATION, pod_state, use_executor
from kstate.api.meta import KubeObject, ObjectReference, Preconditions
from kstate.api.objects import (
    Endpoints,
    Lease,
    Namespace,
    Node,
    Pod,
    ReplicationController,
    Service,
)
from kstate.clock import parse_rfc3339
from kstate.control import (
    endpoints,
    execution,
    gc,
    namespace,
    nodelifecycle,
    orders,
    replication,
)
from kstate.control.commands import Bind, Command, Create, Delete, Evict, Outcome, Record
from kstate.control.pods import is_active
from kstate.control.taints import eviction_time
from kstate.machines.pod import FINISHED_STATES, BackOffPolicy
from kstate.node import execution as node_execution
from kstate.node import podsync
from kstate.node.execution import WriteOutcome
from kstate.node.heartbeat import renew_lease, report_ready
from kstate.node.simulated import SimulatedNode
from kstate.runtime.base import ContainerState
from kstate.verify.checker import Model, Property
from kstate.verify.system.memo import Memo
from kstate.verify.system.world import (
    WATCHES,
    AbstractApi,
    ControllerManager,
    Kubelet,
    Watcher,
    World,
    caught_up,
    cm_delivers,
    deliver,
    delivered_to,
    key,
    key_of,
    lease_of,
    replace,
)

R = TypeVar("R")
#: the real replication reconciler, as imported (a test may swap the module's name)
_RECONCILE = replication.reconcile
_NO_PRECONDITIONS = Preconditions()
ReplicationFn = Callable[..., list[Command]]
NodeLifecycleFn = Callable[..., list[Command]]
#: every way to place a pod: one command list per choice (ties are explored)
ScheduleFn = Callable[[Pod, Sequence[Node], Sequence[Pod], float], list[list[Command]]]
#: one reconciler's round: its action name, its commands, the RC it acted on (a sync),
#: whether it evicts pods (the node lifecycle)
CmRound = tuple[str, list[Command], ReplicationController | None, bool]

#: Action families that are weakly fair: the system's own components, and healing.
FAIR = ("Sync", "Endpoints", "NodeLifecycle", "GC", "Namespace", "Schedule", "Kubelet",
        "NodeReady", "Deliver", "Tick", "Heal", "ProbePass", "ApiBack")

#: fault budget -> the action family that spends it; script verb -> its action family
#: (for the coverage report; a fault or verb missing here is still counted when it fires)
_FAULT_FAMILIES = (("container_crash", "Crash"), ("node_partition", "Partition"),
                   ("controller_restart", "RestartControllerManager"),
                   ("node_reboot", "Reboot"), ("kubelet_restart", "RestartKubelet"),
                   ("api_outage", "ApiOutage"), ("readiness_failure", "ProbeFail"))
_VERB_FAMILIES = {"scale": "Scale", "delete_pod": "DeletePod", "delete_rc": "DeleteRC",
                  "cordon": "Cordon", "drain": "Drain", "delete_namespace": "DeleteNamespace"}
#: the fair action that ends a fault's effect, for the faults that have one
_RECOVERY = {"node_partition": "Heal", "api_outage": "ApiBack"}


def _step_family(step: tuple[Any, ...]) -> str:
    """A script step's action family: a delete with grace 0 is a force delete."""
    if step[0] == "delete_pod" and len(step) > 2 and step[2] == 0:
        return "ForceDeletePod"
    return _VERB_FAMILIES[step[0]]


@attrs.frozen
class Settings:
    """Knobs of the system model (a scenario sets them)."""

    watch_lag: int = 1  # controller manager's caches: events that may be in flight
    scheduler_lag: int = 0
    kubelet_lag: int = 0
    #: Time only passes once every cache has caught up: watch delivery is assumed far
    #: faster than any timeout. False lets a timeout (say, an expectation's TTL) fire
    #: while events are in flight — Kubernetes' documented over-creation window.
    time_waits_for_watches: bool = True
    grace_period: float = 40.0
    backoff: BackOffPolicy = attrs.field(factory=BackOffPolicy)
    replication: replication.ReplicationSettings = attrs.field(
        factory=replication.ReplicationSettings)
    node_lifecycle: nodelifecycle.NodeLifecycleSettings = attrs.field(
        factory=nodelifecycle.NodeLifecycleSettings)


class SystemModel(Model[World]):
    """A cluster scenario as a model. See the module docstring for the actions."""

    def __init__(
        self,
        initial: World,
        properties: Sequence[Property[World]] = (),
        settings: Settings = Settings(),
        *,
        name: str = "system",
        replication_fn: ReplicationFn = replication.reconcile,
        nodelifecycle_fn: NodeLifecycleFn = nodelifecycle.reconcile,
        schedule_fn: ScheduleFn | None = None,
        symmetry: Any = None,
    ) -> None:
        from kstate.verify.system.scheduling import schedule_pod

        self.name = name
        self._initial = initial
        self._properties = tuple(properties)
        self.settings = settings
        self._memo = Memo()
        self.api = AbstractApi(settings.watch_lag, settings.scheduler_lag,
                               settings.kubelet_lag, memo=self._memo)
        self.replication_fn = replication_fn
        # The real reconciler's every choice (a scale-down tied at the cut may delete any
        # of the tied pods, in any order); a swapped one (a seeded bug) decides alone.
        self._sync_choices: Callable[..., list[list[Command]]] = \
            replication.reconcile_choices if replication_fn is _RECONCILE \
            else functools.partial(_one_choice, replication_fn)
        self.nodelifecycle_fn = nodelifecycle_fn
        # Every order of the pods a pass writes (``orders``), for a swapped reconciler too.
        self._lifecycle_choices = functools.partial(nodelifecycle.reconcile_choices,
                                                    reconcile=nodelifecycle_fn)
        # the module's reconciler as it is now (a seeded-bug test patches it)
        self._namespace_choices = functools.partial(namespace.reconcile_choices,
                                                    reconcile=namespace.reconcile)
        self.schedule_fn = schedule_fn or schedule_pod
        self._symmetry = symmetry
        # Exact: renaming nodes and each RC's pods commutes with every action, on every
        # shipped scenario, Services included (tests/verify/test_system_symmetry.py): a
        # scale-down explores every choice and order among pods of equal rank, so no
        # decision follows a pod's name (docs/verify.md, "Symmetry").
        self.symmetry_exact = bool(getattr(symmetry, "exact", False))
        self._footprints: Any = None  # independence.Footprints, built on first use
        # A search allocates millions of acyclic frozen values and keeps most of them
        # (the frontier, the memo): the cyclic collector finds next to nothing (a few
        # hundred objects in 10,000 states) while its passes over that heap cost 15-20%
        # of the search. Collect seldom, as the API server does at start-up (server.py).
        python_gc.set_threshold(50_000, 20, 100)
        #: whether any pod of a run may carry a readiness probe (else ``_probes`` has
        #: nothing to look at, in any state)
        self._probing = _may_probe(initial)

    # ------------------------------------------------------------------ Model API

    def initial_states(self) -> Iterable[World]:
        return [self._initial]

    def properties(self) -> Sequence[Property[World]]:
        return self._properties

    #: FAIR names every component; most scenarios leave some idle (no Service, no fault).
    warn_unused_fairness = False

    def fairness(self) -> Sequence[str]:
        return FAIR

    def action_families(self) -> Sequence[str]:
        """What this scenario may fire, for the coverage report's "never fired": the
        components (Endpoints only with a Service), the faults it allows, its script."""
        w = self._initial
        services = bool(w.objects("Service"))
        deletes_namespace = any(step[0] == "delete_namespace" for step in w.script)
        probes = self._probing
        recoveries = set(_RECOVERY.values())
        out = [f for f in FAIR if f not in recoveries and (f != "Endpoints" or services)
               and (f != "ProbePass" or probes) and (f != "Namespace" or deletes_namespace)]
        out += [family for fault, family in _FAULT_FAMILIES if w.budget.get(fault, 0) > 0]
        out += [family for fault, family in _RECOVERY.items() if w.budget.get(fault, 0) > 0]
        out += [_step_family(step) for step in w.script if step[0] in _VERB_FAMILIES]
        return tuple(dict.fromkeys(out))

    def canonical(self, state: World) -> World:
        return self._symmetry.canonical(state) if self._symmetry is not None else state

    def terminal(self, state: World) -> bool:
        return True  # a settled cluster has nothing to do: not a deadlock

    def persistent(self, state: World, actions: Sequence[tuple[str, World]]
                   ) -> Sequence[int] | None:
        """Partial-order reduction from static footprints (independence.py)."""
        if self._footprints is None:
            from kstate.verify.system.independence import Footprints

            self._footprints = Footprints(sorted(self._initial.kubelets),
                                          [p.name for p in self._properties])
        return self._footprints.persistent([name for name, _ in actions])

    def describe(self, state: World) -> Any:
        from kstate.verify.system.render import describe

        return describe(state)

    def actions(self, w: World) -> list[tuple[str, World]]:
        # The checker fires triggers through the compiled tables (a test proves they
        # agree with the engine's transitions machines on every move).
        with use_executor("compiled"):
            return list(self._actions(w))

    def _actions(self, w: World) -> Iterator[tuple[str, World]]:
        yield from self._controller_manager(w)
        yield from self._namespace_controller(w)
        yield from self._scheduler(w)
        yield from self._kubelets(w)
        yield from self._deliveries(w)
        yield from self._probes(w)
        yield from self._tick(w)
        yield from self._faults(w)
        yield from self._user(w)

    # ------------------------------------------------------------------ controllers

    def _controller_manager(self, w: World) -> Iterator[tuple[str, World]]:
        cm = w.cm
        reached: dict[str, set[World]] = {}
        for label, cmds, acted_on, evicts in self._memo(
                self._cm_rounds, cm.watcher.cache, cm.expectations, cm.memory, w.now):
            after = self.apply(w, cmds)
            if acted_on is not None and any(isinstance(c, Create) for c in cmds):
                after = _check_overcreation(after, acted_on)
            if evicts and nodelifecycle.full_disruption(w.nodes()):
                after = after.with_flag(evicted_in_full_disruption=True)
            same = reached.setdefault(label.partition("(")[0], set())
            if after in same:
                continue  # another choice (victims, order) of this round came out the same
            same.add(after)
            yield label, after

    def _cm_rounds(self, cached: FrozenDict[str, KubeObject],
                   expectations: FrozenDict[str, Any], memory: FrozenDict[str, float],
                   now: float) -> tuple[CmRound, ...]:
        """What each reconciler of the controller manager would do at ``now`` on what it
        reads: its cache (not the events still in flight to it) and its memory. Many
        states share those (they differ in events in flight, in the other components),
        so the rounds are memoised whole, and each reconciler's call on its view too."""
        cache = Watcher(cached)
        out: list[CmRound] = []
        pods = [p for p in cache.objects("Pod") if isinstance(p, Pod)]
        for rc in cache.objects("ReplicationController"):
            assert isinstance(rc, ReplicationController)
            k = replication.rc_key(rc)
            view = replication.ReplicationView(
                rc, tuple(p for p in pods if p.metadata.namespace == rc.metadata.namespace),
                expectations.get(k))
            choices = self._memo(self._sync_choices, view, now, self.settings.replication)
            for cmds in choices:
                if cmds:
                    out.append((sync_label(rc.metadata.name, cmds, len(choices) > 1),
                                cmds, rc, False))
        services = {s.metadata.name: s for s in cache.objects("Service")
                    if isinstance(s, Service)}
        eps = {e.metadata.name: e for e in cache.objects("Endpoints")
               if isinstance(e, Endpoints)}
        for name in sorted(set(services) | set(eps)):
            svc = services.get(name)
            ns = (svc or eps[name]).metadata.namespace
            view_e = endpoints.EndpointsView(
                ns, name, svc, tuple(p for p in pods if p.metadata.namespace == ns),
                eps.get(name))
            cmds = self._memo(endpoints.reconcile, view_e, now)
            if cmds:
                out.append((f"Endpoints({name})", cmds, None, False))
        leases = FrozenDict({lease.metadata.name: lease for lease in cache.objects("Lease")
                             if isinstance(lease, Lease)})
        nodes = tuple(n for n in cache.objects("Node") if isinstance(n, Node))
        view_n = nodelifecycle.NodeLifecycleView(
            nodes, leases, tuple(p for p in pods if p.spec.node_name),
            memory.get(nodelifecycle.LIMITER))
        choices = self._memo(self._lifecycle_choices, view_n, now,
                             self.settings.node_lifecycle)
        for cmds in choices:
            if cmds:
                evicts = any(isinstance(c, Delete | Evict) and c.kind == "Pod"
                             if isinstance(c, Delete) else isinstance(c, Evict) for c in cmds)
                out.append((ordered_label("NodeLifecycle", cmds, len(choices) > 1), cmds,
                            None, evicts))
        owned: tuple[KubeObject, ...] = tuple(pods) + tuple(
            cache.objects("ReplicationController"))
        choices = self._memo(gc.reconcile_choices, gc.GCView(
            owned, frozenset(n.metadata.name for n in nodes)), now)
        for cmds in choices:
            if cmds:
                out.append((ordered_label("GC", cmds, len(choices) > 1), cmds, None, False))
        return tuple(out)

    def _namespace_controller(self, w: World) -> Iterator[tuple[str, World]]:
        """The namespace controller on each terminating namespace the controller
        manager's cache shows; what it holds is listed live from the store."""
        for ns in w.cm.watcher.objects("Namespace"):
            if not isinstance(ns, Namespace) or not ns.metadata.deletion_timestamp:
                continue
            name = ns.metadata.name
            content = tuple(obj for _, obj in sorted(w.store.items())
                            if obj.metadata.namespace == name)
            choices = self._memo(self._namespace_choices,
                                 namespace.NamespaceView(ns, content), w.now)
            reached: set[World] = set()
            for cmds in (c for c in choices if c):
                after = self.apply(w, cmds)
                if after not in reached:  # one per distinct outcome
                    reached.add(after)
                    yield ordered_label("Namespace", cmds, len(choices) > 1, name), after

    def _scheduler(self, w: World) -> Iterator[tuple[str, World]]:
        for label, cmds in self._memo(self._scheduler_rounds, w.sched, w.now):
            yield label, self.apply(w, cmds)

    def _scheduler_rounds(self, cache: Watcher, now: float
                          ) -> tuple[tuple[str, list[Command]], ...]:
        """Every placement the scheduler may make from its cache at ``now`` (ties are
        explored): a function of its cache alone, which many states share (the
        scheduler watches only pods and nodes), so it is memoised whole."""
        out = []
        nodes = [n for n in cache.objects("Node") if isinstance(n, Node)]
        pods = [p for p in cache.objects("Pod") if isinstance(p, Pod)]
        for pod in pods:
            if pod.spec.node_name or pod.metadata.deletion_timestamp:
                continue
            choices = self._memo(self.schedule_fn, pod, tuple(nodes), tuple(pods), now)
            for decided in choices:
                cmds = [c for c in decided if not isinstance(c, Record)]
                if not cmds:
                    continue
                target = next((c.node for c in cmds if isinstance(c, Bind)), "")
                label = f"{pod.metadata.name}, {target}" if len(choices) > 1 else \
                    pod.metadata.name
                out.append((f"Schedule({label})", cmds))
        return tuple(out)

    # ------------------------------------------------------------------ applying

    def apply(self, w: World, commands: Sequence[Command]) -> World:
        """Carry out a controller's commands: the engine's plan (``execution.execute``),
        each step's calls applied in order to the abstract API. Events are not stored
        (no controller reads them)."""
        world = [w]

        def perform(step: execution.Step) -> tuple[execution.Reply, ...]:
            w = world[0]
            if step.effects:
                expectations, memory = dict(w.cm.expectations), dict(w.cm.memory)
                for effect in step.effects:
                    execution.apply_effect(expectations, memory, effect, w.now)
                w = replace(w, cm=replace(w.cm, expectations=FrozenDict(expectations),
                                                    memory=FrozenDict(memory)))
            replies = []
            for call in step.calls:
                w, reply = self._api_call(w, call)
                replies.append(reply)
            world[0] = w
            return tuple(replies)

        self._drive(execution.execute, commands, perform)
        return world[0]

    def _drive(self, plan: Callable[[Sequence[Any]], Generator[Any, Any, R]],
               commands: Sequence[Any], perform: Callable[[Any], Any]) -> R:
        """``execution.drive`` for an executor's plan, with each step looked up in the
        memo instead of resuming the generator: a plan is a pure function of its
        commands and the replies so far (``_plan_step`` replays it on a miss)."""
        key, replies = tuple(commands), cast(tuple[Any, ...], ())
        while True:
            step = self._memo(_plan_step, plan, key, replies)
            if type(step) is _Done:
                return cast(R, step.value)
            replies = (*replies, perform(step))

    def _api_call(self, w: World, call: execution.Call) -> tuple[World, execution.Reply]:
        """One call on the abstract API (its verbs keep their own argument order)."""
        api = self.api
        pre = call.preconditions or _NO_PRECONDITIONS
        if call.verb == "get":
            if not api.available(w):
                return w, execution.Reply(_outcome(api.outage(w).result))
            ref = ObjectReference(kind=call.kind, namespace=call.namespace, name=call.name,
                                  uid=pre.uid)
            return w, execution.read_reply(api.exists(w, ref))
        if call.verb == "create":
            assert call.obj is not None
            out = api.create(w, call.obj)
            return out.world, execution.Reply(_outcome(out.result), out.obj.metadata.name
                                              if out.obj is not None else "")
        if call.verb == "update":
            assert call.obj is not None
            out = api.update(w, call.obj, call.subresource)
        elif call.verb == "delete":
            out = api.delete(w, call.kind, call.namespace, call.name, pre.uid,
                             call.grace_seconds, call.propagation,
                             resource_version=pre.resource_version)
        elif call.verb == "bind":
            out = api.bind(w, call.namespace, call.name, pre.uid, call.node)
        elif call.verb == "evict":
            out = api.evict(w, call.namespace, call.name, pre.uid)
        else:
            raise TypeError(f"unknown call {call!r}")
        return out.world, execution.Reply(_outcome(out.result))

    # ------------------------------------------------------------------ nodes

    def _kubelets(self, w: World) -> Iterator[tuple[str, World]]:
        for node_name, kubelet in w.kubelets.items():
            if not kubelet.up:
                continue
            node = w.get(key("Node", "", node_name))
            if isinstance(node, Node):
                ready = self._memo(report_ready, node, w.now)
                if ready is not None:
                    out = self.api.update(w, ready, "status")
                    yield f"NodeReady({node_name})", out.world
            mine = self._memo(_own_pods, kubelet, node_name)
            for uid in sorted(set(mine) | w.runtimes[node_name].pod_uids()):
                pod = mine.get(uid)
                after = self._pod_worker(w, node_name, uid)
                if after is not None:
                    label = pod.metadata.name if pod is not None else uid
                    yield f"Kubelet({node_name}, {label})", after

    def _pod_worker(self, w: World, node: str, uid: str) -> World | None:
        """One pod worker step: its rounds up to and including the next one that writes
        to the store (or ends idle).

        Rounds that only touch the node's own runtime (create the sandbox, start or stop
        containers) run atomically with the round that reports them — Promela's
        ``atomic``. Sound because no other component reads a node's runtime (they see
        it only through the status the worker writes) and no time passes within a step;
        what remains observable is the properties that read runtimes, and within one
        step those change one way only (a pod's containers started, or stopped), so the
        step's end state is the extreme one. The fault that acts on a runtime, a
        container crash, is the exception: a crash between a container's start and the
        round that reports it is a history of its own (the exit is seen while the pod is
        still ContainerCreating), so while crashes remain in the budget a round that
        started a container ends the step. (A partition never falls between rounds: the
        model's partitioned kubelet stops altogether.)
        """
        start = w
        crashes = w.budget.get("container_crash", 0) > 0
        for _ in range(8):
            cmds = self._memo(self._pod_round, w.kubelets[node], w.runtimes[node], node, uid,
                              w.now)
            if not any(not isinstance(c, podsync.RequeueAt) for c in cmds):
                break
            w, end = self._run_pod(w, node, uid, cmds)
            if end.next != "again" or any(
                    isinstance(c, podsync.WriteStatus | podsync.FinishDelete)
                    or (crashes and isinstance(c, podsync.StartContainer)) for c in cmds):
                break
        w = _forget_probes(w, node)
        return None if w is start or w == start else w

    def _pod_round(self, kubelet: Kubelet, runtime: SimulatedNode, node: str, uid: str,
                   now: float) -> list[podsync.NodeCommand]:
        """The pod worker's next round for pod ``uid``: the engine's ``podsync.sync`` on
        the view the kubelet builds from its cache, its memory and the node's runtime.
        Memoised on those (shared by many states) besides on the view itself."""
        pod = self._memo(_own_pods, kubelet, node).get(uid)
        view = self._pod_view(node, uid, pod, kubelet, runtime)
        return cast(list[podsync.NodeCommand],
                    self._memo(podsync.sync, view, now, self.settings.backoff))

    def _pod_view(self, node: str, uid: str, pod: Pod | None, kubelet: Kubelet,
                  runtime: SimulatedNode) -> podsync.PodSyncView:
        containers = runtime.of_pod(uid)
        return podsync.PodSyncView(
            node=node, uid=uid, pod=pod, sandbox=runtime.sandbox(uid),
            containers=containers,
            readiness=_readiness(pod, containers, kubelet.probes_passing),
            start_errors=kubelet.start_errors.get(uid, FrozenDict()),
            backoff=_backoff_of(kubelet, uid),
        )

    def _run_pod(self, w: World, node: str, uid: str, cmds: list[podsync.NodeCommand]
                 ) -> tuple[World, node_execution.RoundEnd]:
        """Carry out one round: the engine's plan (``node.execution``) against the
        node's ``SimulatedNode`` and the abstract API."""
        world = [w]

        def perform(step: node_execution.NodeStep
                    ) -> tuple[node_execution.RuntimeReply, ...] | WriteOutcome | None:
            w = world[0]
            if isinstance(step, node_execution.OnRuntime):
                if any(isinstance(cmd, podsync.StartContainer) for cmd in step.commands) \
                        and _finished(w, uid):
                    w = w.with_flag(restarted_finished=True)
                runtimes, replies = self._memo(_on_runtime, w.runtimes, node,
                                               tuple(step.commands), w.now)
                world[0] = replace(w, runtimes=runtimes)
                return replies
            if isinstance(step, node_execution.ToApi):
                write = step.command
                out = self.api.update(w, _versioned(w, write.pod, step.resource_version),
                                      "status") \
                    if isinstance(write, podsync.WriteStatus) else \
                    self.api.delete(w, "Pod", write.namespace, write.name, write.uid, 0)
                world[0] = out.world
                return _write_outcome(out.result)
            world[0] = replace(w, kubelets=self._memo(_remembered, w.kubelets, node, uid,
                                                      tuple(step.changes)))
            return None

        end = self._drive(node_execution.execute, cmds, perform)
        w = world[0]
        if end.reread is not None:
            w = _reread(w, node, end.reread.pod)
        return w, end

    # ------------------------------------------------------------------ watches

    def _deliveries(self, w: World) -> Iterator[tuple[str, World]]:
        memo = self._memo
        for kind in sorted(w.cm.watcher.pending):
            yield f"Deliver(cm, {kind})", replace(w, cm=cm_delivers(w.cm, kind, memo))
        for kind in sorted(w.sched.pending):
            yield f"Deliver(scheduler, {kind})", replace(
                w, sched=memo(delivered_to, w.sched, kind))
        for node, kubelet in w.kubelets.items():
            if not kubelet.up:
                continue
            for kind in sorted(kubelet.watcher.pending):
                yield f"Deliver({node}, {kind})", replace(
                    w, kubelets=memo(_kubelet_delivered, w.kubelets, node, kind))

    # ------------------------------------------------------------------ time

    def deadlines(self, w: World) -> list[float]:
        """Future instants at which something happens by itself."""
        now, out = w.now, []
        grace = self.settings.node_lifecycle.grace_period
        for name, kubelet in w.kubelets.items():
            if not kubelet.up:
                lease = lease_of(w, name)
                renewed = parse_rfc3339(lease.spec.renew_time) if lease is not None and \
                    lease.spec.renew_time else now
                out.append(renewed + grace + 1)
            else:
                out.extend(self._requeues(w, name, kubelet))
        nodes = {n.metadata.name: n for n in w.nodes()}
        for pod in w.pods():
            node = nodes.get(pod.spec.node_name)
            if node is not None:
                due = eviction_time(pod.spec.tolerations, node.spec.taints)
                if due is not None:
                    out.append(due)
            if pod.metadata.deletion_timestamp:
                out.append(parse_rfc3339(pod.metadata.deletion_timestamp))
        ttl = self.settings.replication.expectations_ttl
        for record in w.cm.expectations.values():
            if not record.fulfilled():
                out.append(record.timestamp + ttl + 1)
        last = w.cm.memory.get(nodelifecycle.LIMITER)
        rate = self.settings.node_lifecycle.eviction_rate
        if last is not None and rate > 0:
            out.append(last + 1.0 / rate)
        return sorted(t for t in out if t > now)

    def _requeues(self, w: World, node: str, kubelet: Kubelet) -> Iterator[float]:
        """When the node's idle pod workers run again: the plan's ``requeue_at`` for a
        round with nothing to do before then (a back-off). The engine's worker sleeps
        until then on its clock; here time may jump there."""
        runtime = w.runtimes[node]
        mine = self._memo(_own_pods, kubelet, node)
        for uid in sorted(set(mine) | runtime.pod_uids()):
            cmds = self._memo(self._pod_round, kubelet, runtime, node, uid, w.now)
            if cmds and all(isinstance(c, podsync.RequeueAt) for c in cmds):
                end = self._drive(node_execution.execute, cmds, _idle_round)
                if end.requeue_at is not None:
                    yield end.requeue_at

    def _tick(self, w: World) -> Iterator[tuple[str, World]]:
        # An outage is assumed shorter than any timeout (time stands still until the
        # API server is back), so it shows how components ride out failed requests,
        # not the node lifecycle's reaction to leases no one could renew.
        if not w.api_available:
            return
        if self.settings.time_waits_for_watches and (
                w.cm.watcher.backlog() or w.sched.backlog()
                or any(k.watcher.backlog() for k in w.kubelets.values() if k.up)):
            return
        future = self.deadlines(w)
        if not future:
            return
        w = replace(w, now=future[0])
        for name, kubelet in sorted(w.kubelets.items()):
            if kubelet.up:
                w = self.api.put(w, renew_lease(lease_of(w, name), name, w.now))
        # Heartbeats arrive as time passes, not after it: the renewals are in every
        # cache before anyone acts on the new time.
        watcher = w.cm.watcher
        while "Lease" in watcher.pending:
            watcher, _ = deliver(watcher, "Lease")
        yield "Tick", replace(w, cm=replace(w.cm, watcher=watcher))

    # ------------------------------------------------------------------ faults

    def _faults(self, w: World) -> Iterator[tuple[str, World]]:
        budget = w.budget
        if budget.get("container_crash", 0) > 0:
            for node, runtime in sorted(w.runtimes.items()):
                for c in runtime.running():
                    crashed = runtime.crash(c.id, 1, w.now)
                    yield (f"Crash({node}, {c.id})",
                           replace(w, runtimes=w.runtimes.set(node, crashed),
                                        budget=_spend(budget, "container_crash")))
        if budget.get("node_partition", 0) > 0:
            for node, kubelet in sorted(w.kubelets.items()):
                if kubelet.up:
                    cut = replace(kubelet, up=False)
                    yield (f"Partition({node})",
                           replace(w, kubelets=w.kubelets.set(node, cut),
                                        budget=_spend(budget, "node_partition")))
        for node, kubelet in sorted(w.kubelets.items()):
            if not kubelet.up:
                healed = replace(kubelet, up=True,
                                      watcher=caught_up(w.store, WATCHES["kubelet"]))
                yield f"Heal({node})", replace(w, kubelets=w.kubelets.set(node, healed))
        if budget.get("controller_restart", 0) > 0:
            fresh = ControllerManager(watcher=caught_up(w.store, WATCHES["cm"]))
            yield ("RestartControllerManager",
                   replace(w, cm=fresh, budget=_spend(budget, "controller_restart")))
        yield from self._reboot(w)
        yield from self._restart_kubelet(w)
        yield from self._api_outage(w)

    def _reboot(self, w: World) -> Iterator[tuple[str, World]]:
        """``Reboot(node)``: the machine restarts. Its containers and sandboxes are gone
        (the runtime is wiped) and its agent comes back with empty memory and a fresh
        list of its pods. The reboot is quicker than the node grace period (a longer
        outage is a reboot during a partition). Touches ``runtimes[node]`` and
        ``kubelets[node]``."""
        return _restarted_agents(w, "node_reboot", "Reboot", wipe_runtime=True)

    def _restart_kubelet(self, w: World) -> Iterator[tuple[str, World]]:
        """``RestartKubelet(node)``: the node agent restarts. Its memory (back-off,
        start errors, probe results) is lost and its cache is listed afresh; the
        containers keep running. Touches ``kubelets[node]``."""
        return _restarted_agents(w, "kubelet_restart", "RestartKubelet", wipe_runtime=False)

    def _api_outage(self, w: World) -> Iterator[tuple[str, World]]:
        """``ApiOutage``: the API server stops answering; every request fails as
        ``unavailable`` (the executors' plans decide what that means) until ``ApiBack``
        (fair). Touches ``api_available``."""
        if not w.api_available:
            yield "ApiBack", replace(w, api_available=True)
        elif w.budget.get("api_outage", 0) > 0:
            yield "ApiOutage", replace(w, api_available=False,
                                            budget=_spend(w.budget, "api_outage"))

    # ------------------------------------------------------------------ probes

    def _probes(self, w: World) -> Iterator[tuple[str, World]]:
        """Readiness probe results, a fact about the application: a running container
        with a readiness probe starts failing it; ``ProbePass(node, pod)`` (fair) is
        the probe passing — the application eventually answers — and, within the
        fault budget, ``ProbeFail(node, pod)`` is it failing again later. The result
        goes into the kubelet's memory, which the pod worker reads. Touches
        ``kubelets[node].probes_passing``."""
        if not self._probing:
            return
        failures = w.budget.get("readiness_failure", 0) > 0
        for node, kubelet in sorted(w.kubelets.items()):
            if not kubelet.up:
                continue
            runtime = w.runtimes[node]
            for pod in sorted(self._memo(_own_pods, kubelet, node).values(),
                              key=lambda p: p.metadata.name):
                probed = {c.name for c in pod.spec.containers if _probed(c)}
                for inst in _current_running(runtime, pod.metadata.uid):
                    if inst.name not in probed:
                        continue
                    passing = kubelet.probes_passing
                    if inst.id not in passing:
                        changed = passing | {inst.id}
                        action = f"ProbePass({node}, {pod.metadata.name})"
                        after = w
                    elif failures:
                        changed = passing - {inst.id}
                        action = f"ProbeFail({node}, {pod.metadata.name})"
                        after = replace(w, budget=_spend(w.budget, "readiness_failure"))
                    else:
                        continue
                    kubelets = w.kubelets.set(node, replace(kubelet,
                                                                 probes_passing=changed))
                    yield action, replace(after, kubelets=kubelets)

    # ------------------------------------------------------------------ user

    def _user(self, w: World) -> Iterator[tuple[str, World]]:
        if not w.script or not w.api_available:
            return  # during an outage the user's request is retried until it is back
        step, rest = w.script[0], w.script[1:]
        verb = step[0]
        if verb == "scale":
            _, name, replicas = step
            rc = w.get(key("ReplicationController", "default", name))
            if isinstance(rc, ReplicationController):
                out = self.api.update(w, self._memo(_scaled, rc, replicas))
                yield f"Scale({name}, {replicas})", replace(out.world, script=rest)
        elif verb == "delete_pod":
            _, owner, grace = step
            family = _step_family(step)
            for pod in sorted(w.pods(), key=lambda p: p.metadata.name):
                ref = pod.metadata.owner_references
                if ref and ref[0].name == owner and is_active(pod):
                    out = self.api.delete(w, "Pod", "default", pod.metadata.name,
                                          pod.metadata.uid, grace)
                    label = pod.metadata.name if grace in (None, 0) else \
                        f"{pod.metadata.name}, {grace}"
                    yield f"{family}({label})", replace(out.world, script=rest)
        elif verb == "delete_rc":
            _, name, policy = step
            out = self.api.delete(w, "ReplicationController", "default", name,
                                  propagation=policy)
            yield f"DeleteRC({name}, {policy})", replace(out.world, script=rest)
        elif verb in ("cordon", "drain"):
            _, name = step
            node = w.get(key("Node", "", name))
            if isinstance(node, Node):
                annotations = node.metadata.annotations
                if verb == "drain":
                    annotations = annotations.set(DRAINING_ANNOTATION, "true")
                marked = attrs.evolve(
                    node, metadata=attrs.evolve(node.metadata, annotations=annotations),
                    spec=attrs.evolve(node.spec, unschedulable=True))
                out = self.api.update(w, marked)
                label = "Cordon" if verb == "cordon" else "Drain"
                yield f"{label}({name})", replace(out.world, script=rest)
        elif verb == "delete_namespace":
            yield from self._delete_namespace(w, step[1], rest)

    def _delete_namespace(self, w: World, name: str, rest: tuple[tuple[Any, ...], ...]
                          ) -> Iterator[tuple[str, World]]:
        """``kubectl delete namespace <name>`` (the script's ``delete_namespace``)."""
        out = self.api.delete(w, "Namespace", "", name)
        yield f"DeleteNamespace({name})", replace(out.world, script=rest)


@attrs.frozen
class _Done:
    """A plan's result (its generator returned ``value``)."""

    value: Any


def _plan_step(plan: Callable[[Sequence[Any]], Generator[Any, Any, Any]],
               commands: tuple[Any, ...], replies: tuple[Any, ...]) -> Any:
    """The step ``plan`` takes on ``commands`` after ``replies`` (``_Done`` when it
    has returned instead): the engine's own generator, replayed from the start."""
    steps = plan(commands)
    try:
        step = next(steps)
        for reply in replies:
            step = steps.send(reply)
    except StopIteration as done:
        return _Done(done.value)
    return step


def _scaled(rc: ReplicationController, replicas: int) -> ReplicationController:
    """``kubectl scale``'s replace of ``rc``."""
    return attrs.evolve(rc, spec=attrs.evolve(rc.spec, replicas=replicas))


def sync_label(rc: str, commands: Sequence[Command], tied: bool) -> str:
    """``Sync(rc)``, or where the sync had several choices ``Sync(rc, a+b)``: the pods
    this choice deletes, in the order it deletes them (the replay makes the engine's
    reconciler take the same choice)."""
    if not tied:
        return f"Sync({rc})"
    return f"Sync({rc}, {'+'.join(c.name for c in commands if isinstance(c, Delete))})"


def ordered_label(action: str, commands: Sequence[Command], several: bool,
                  *args: str) -> str:
    """``NodeLifecycle`` / ``Namespace(foo)``, or where the round could write its objects
    in several orders ``NodeLifecycle(web-1+web-0)`` / ``Namespace(foo, web-1+web-0)``:
    the order this choice writes them in (``orders.order_of``; the replay makes the
    engine take it)."""
    params = [*args, "+".join(orders.order_of(commands))] if several else list(args)
    return f"{action}({', '.join(params)})" if params else action


def _one_choice(reconcile: ReplicationFn, *args: Any) -> list[list[Command]]:
    return [reconcile(*args)]


def _restarted_agents(w: World, fault: str, action: str, *, wipe_runtime: bool
                      ) -> Iterator[tuple[str, World]]:
    """Each reachable node's agent restarted (within ``fault``'s budget): no memory, its
    cache listed from the store; with ``wipe_runtime`` the machine rebooted too."""
    if w.budget.get(fault, 0) <= 0:
        return
    budget = _spend(w.budget, fault)
    fresh = Kubelet(watcher=caught_up(w.store, WATCHES["kubelet"]))
    for node, kubelet in sorted(w.kubelets.items()):
        if kubelet.up:
            runtimes = w.runtimes.set(node, w.runtimes[node].lose()) if wipe_runtime \
                else w.runtimes
            yield (f"{action}({node})", replace(
                w, runtimes=runtimes, kubelets=w.kubelets.set(node, fresh), budget=budget))


def _on_runtime(runtimes: FrozenDict[str, SimulatedNode], node: str,
                commands: tuple[podsync.NodeCommand, ...], now: float
                ) -> tuple[FrozenDict[str, SimulatedNode],
                           tuple[node_execution.RuntimeReply, ...]]:
    """A round's runtime step on ``node``: the runtimes after ``commands`` and the
    replies the plan reads (a start's error). Pure, so memoised (``_run_pod``)."""
    runtime, replies = runtimes[node], []
    for cmd in commands:
        runtime, error = runtime.apply(cmd, now)
        replies.append(node_execution.RuntimeReply(
            start_error=error if isinstance(cmd, podsync.StartContainer) else None))
    return runtimes.set(node, runtime), tuple(replies)


def _probed(container: Any) -> bool:
    return container.readiness_probe is not None


def _may_probe(w: World) -> bool:
    """May a pod of a run from ``w`` have a readiness probe? Its pods are there from the
    start or made from an RC's template, which no action changes."""
    specs = [rc.spec.template.spec for rc in w.objects("ReplicationController")
             if isinstance(rc, ReplicationController) and rc.spec.template]
    specs += [pod.spec for pod in w.pods()]
    return any(_probed(c) for spec in specs for c in spec.containers)


def _current_running(runtime: SimulatedNode, uid: str) -> list[Any]:
    """The pod's running containers in its current sandbox (what is probed)."""
    sandbox = runtime.sandbox(uid)
    return [c for c in runtime.of_pod(uid) if sandbox is not None
            and c.sandbox_id == sandbox.id and c.state is ContainerState.RUNNING]


def _readiness(pod: Pod | None, containers: Sequence[Any],
               passing: frozenset[str]) -> FrozenDict[str, bool]:
    """The pod worker's readiness input, as the engine's ``ProbeManager.readiness``
    gives it: per probed container name, whether its running instance passes."""
    if pod is None or not passing:
        return FrozenDict()
    probed = {c.name for c in pod.spec.containers if _probed(c)}
    return FrozenDict({c.name: c.id in passing for c in containers
                       if c.name in probed and c.state is ContainerState.RUNNING})


def _forget_probes(w: World, node: str) -> World:
    """Drop the results of instances that no longer run (the engine's ProbeManager
    cancels their workers), so that equal clusters are equal states."""
    kubelet = w.kubelets[node]
    if not kubelet.probes_passing:
        return w
    running = {c.id for c in w.runtimes[node].running()}
    kept = kubelet.probes_passing & running
    if kept == kubelet.probes_passing:
        return w
    return replace(w, kubelets=w.kubelets.set(node, replace(
        kubelet, probes_passing=kept)))


def _own_pods(kubelet: Kubelet, node: str) -> dict[str, Pod]:
    return {p.metadata.uid: p for p in kubelet.watcher.objects("Pod")
            if isinstance(p, Pod) and p.spec.node_name == node}


def _idle_round(step: node_execution.NodeStep) -> None:
    raise AssertionError(f"a round of RequeueAt only asked for I/O: {step!r}")


def _backoff_of(kubelet: Kubelet, uid: str) -> FrozenDict[str, Any]:
    """One pod's back-off memory (the kubelet keeps every pod's, keyed ``uid/key``)."""
    prefix = uid + "/"
    return FrozenDict({k[len(prefix):]: v for k, v in kubelet.backoff.items()
                       if k.startswith(prefix)})


def _remembering(kubelet: Kubelet, uid: str,
                 changes: tuple[node_execution.MemoryChange, ...]) -> Kubelet:
    """The kubelet after the pod worker stored ``changes`` in its memory."""
    backoff = dict(_backoff_of(kubelet, uid))
    errors = dict(kubelet.start_errors.get(uid, FrozenDict()))
    for change in changes:
        node_execution.remember(backoff, errors, change)
    prefix = uid + "/"
    others = {k: v for k, v in kubelet.backoff.items() if not k.startswith(prefix)}
    return replace(
        kubelet,
        backoff=FrozenDict({**others, **{prefix + k: v for k, v in backoff.items()}}),
        start_errors=kubelet.start_errors.set(uid, FrozenDict(errors)) if errors
        else kubelet.start_errors.without(uid))


def _remembered(kubelets: FrozenDict[str, Kubelet], node: str, uid: str,
                changes: tuple[node_execution.MemoryChange, ...]) -> FrozenDict[str, Kubelet]:
    """The kubelets after ``node``'s pod worker for ``uid`` stored ``changes``."""
    return kubelets.set(node, _remembering(kubelets[node], uid, changes))


def _kubelet_delivered(kubelets: FrozenDict[str, Kubelet], node: str, kind: str
                       ) -> FrozenDict[str, Kubelet]:
    """The kubelets after ``Deliver(node, kind)``."""
    kubelet = kubelets[node]
    return kubelets.set(node, replace(kubelet, watcher=delivered_to(kubelet.watcher, kind)))


def _versioned(w: World, pod: Pod, resource_version: str) -> Pod:
    """``pod`` carrying the write's precondition; none (``""``) writes over whatever
    version is stored, as the API server does (the abstract API always compares)."""
    if not resource_version:
        stored = w.get(key_of(pod))
        resource_version = stored.metadata.resource_version if stored is not None else ""
    if pod.metadata.resource_version == resource_version:
        return pod
    return attrs.evolve(pod, metadata=attrs.evolve(pod.metadata,
                                                   resource_version=resource_version))


def _reread(w: World, node: str, pod: Pod) -> World:
    """A lost status write re-reads the pod: the kubelet's cache takes in the watch
    events in flight up to the pod's latest (a read sees the store; the events before
    it in the queue arrive first, as a watch delivers each kind in order)."""
    kubelet = w.kubelets[node]
    watcher = kubelet.watcher
    k = key_of(pod)
    queue = watcher.pending.get("Pod", ())
    last = max((i for i, (changed, _) in enumerate(queue) if changed == k), default=-1)
    for _ in range(last + 1):
        watcher, _ = deliver(watcher, "Pod")
    if watcher is kubelet.watcher:
        return w
    return replace(w, kubelets=w.kubelets.set(node, replace(kubelet,
                                                                       watcher=watcher)))


def _write_outcome(result: str) -> WriteOutcome:
    """The API's outcome as the pod worker's executor sees it: a server that did not
    answer passes through (the plan retries the round later); any refusal means the
    write lost its race (the plan re-reads), as in the agent's ``_write``."""
    if result in ("ok", "unavailable"):
        return cast(WriteOutcome, result)
    return "lost"


def _spend(budget: FrozenDict[str, int], fault: str) -> FrozenDict[str, int]:
    return budget.set(fault, budget[fault] - 1)


def _outcome(result: str) -> Outcome:
    return cast(Outcome, result)


def _finished(w: World, uid: str) -> bool:
    for pod in w.pods():
        if pod.metadata.uid == uid:
            return pod_state(pod, w.now) in FINISHED_STATES
    return False


def _check_overcreation(w: World, acted_on: ReplicationController) -> World:
    """After a sync that created pods: more active pods in the store than the replicas
    the controller was acting on is over-creation (a stale view of its own pods).

    Judged against the RC *as the controller saw it*: acting on a stale spec (a scale
    it has not seen yet) is eventual consistency, not a bug — the next sync corrects it.
    """
    uid = acted_on.metadata.uid
    active = sum(1 for p in w.pods()
                 if is_active(p) and any(r.uid == uid for r in p.metadata.owner_references))
    if active > replication.desired_replicas(acted_on):
        return w.with_flag(overcreated=True)
    return w


def ready_condition(node: Node) -> str:
    cond = get_condition(node.status.conditions, "Ready")
    return cond.status if cond is not None else "Unknown"


__all__ = ["FAIR", "Settings", "SystemModel", "Watcher", "ready_condition"]
