"""The invariants of the live engine: what must hold after every step, and once settled.

Where it sits: ``kstate.verify.stateful``, read by the rule-based machines (machine.py),
by ``kstate fuzz`` and by ``kstate verify --replay``. Each check reads the running
``Engine`` — the store through a fresh list, the components' caches and memory, the
runtimes' containers, the store's history — never a model's ``World``; where the model
checker has the same property (``kstate.verify.system.properties``) the statement is the
same, re-read on the engine. Every check returns the violations it found, as sentences
(empty: it holds), so a failing run says what broke in words.

After every step (the engine drained, not settled):

* ``replica_bound`` — an RC's own creations never take it above its replicas: if the
  step created pods for an RC, its active pods, less those that became its own otherwise
  (adopted, or back from a lost node), are at most the highest ``replicas`` it had
  during the step (a scale-down in flight or an adoption may leave more pods than
  replicas for a while; creating more never does);
* ``one_node_per_pod`` — no pod has running containers on two nodes;
* ``finished_stay_finished`` — no container runs for a pod the store says Succeeded or
  Failed (and, in the history, no such pod's phase ever moves back);
* ``legal_history`` — every change recorded in the store since revision 1 is a move of
  the object's lifecycle machine, no pod changes node, no uid comes back; and no
  component had a write refused as an illegal move;
* ``caches_match_store`` — every informer cache equals the store, read at the revision
  the informer says it has synced (with the informer's own namespace and selectors);
* ``memory_only_brakes`` — with caches equal to the store, what each running controller
  decides (replication with its expectations, node lifecycle with its rate limiter,
  endpoints, GC, the scheduler with its assume cache) is a subset of what a freshly
  started one — listing the store, remembering nothing — would decide.

Once settled (``Engine.settle`` converged):

* ``settled`` — every RC has exactly ``replicas`` active pods, all Ready on reachable
  nodes (or waiting as Unschedulable), endpoints list exactly the ready matching pods,
  no pod is Terminating on a reachable node, every running container belongs to a pod in
  the store bound to its node, and a freshly started controller manager and scheduler
  would decide nothing at all.
"""

from __future__ import annotations

from typing import Any

import attrs

from kstate.api.lifecycle import pod_state
from kstate.api.meta import KubeObject
from kstate.api.objects import Namespace, Pod, ReplicationController
from kstate.api.registry import REGISTRY, key_prefix
from kstate.api.server.selectors import selection
from kstate.clock import parse_rfc3339
from kstate.control import nodelifecycle, replication
from kstate.control import scheduler as sched
from kstate.control.executor import kind_class
from kstate.control.informer import Informer, object_key
from kstate.control.namespace import content_kinds
from kstate.control.pods import is_active
from kstate.errors import KstateError
from kstate.runtime.base import POD_NAME, POD_NAMESPACE
from kstate.verify.engine import (
    Engine,
    EngineManager,
    Fresh,
    fresh_decisions,
    node_view,
    queue_busy,
)


def _owner_uid(pod: Pod) -> str:
    for ref in pod.metadata.owner_references:
        if ref.controller:
            return ref.uid
    return ""


@attrs.define
class ReplicaBound:
    """State for ``replica_bound`` between steps: call ``saw`` whenever a step writes an
    RC's replicas, ``check`` after the step."""

    #: rc uid -> uids of its active pods after the previous step
    active: dict[str, set[str]] = attrs.Factory(dict)
    #: rc uid -> replicas after the previous step
    replicas: dict[str, int] = attrs.Factory(dict)
    #: every pod uid that existed after the previous step
    known: set[str] = attrs.Factory(set)
    #: rc name -> highest replicas written during this step
    written: dict[str, int] = attrs.Factory(dict)

    def saw(self, rc_name: str, replicas: int) -> None:
        self.written[rc_name] = max(replicas, self.written.get(rc_name, replicas))

    def check(self, rcs: list[ReplicationController], pods: list[Pod]) -> list[str]:
        out = []
        active_now: dict[str, set[str]] = {}
        for pod in pods:
            if is_active(pod) and _owner_uid(pod):
                active_now.setdefault(_owner_uid(pod), set()).add(pod.metadata.uid)
        replicas_now = {}
        for rc in rcs:
            uid = rc.metadata.uid
            want = replication.desired_replicas(rc)
            replicas_now[uid] = want
            mine = active_now.get(uid, set())
            created = {u for u in mine if u not in self.known}
            otherwise = mine - self.active.get(uid, set()) - created
            bound = max(want, self.replicas.get(uid, want),
                        self.written.get(rc.metadata.name, want))
            if created and len(mine) - len(otherwise) > bound:
                out.append(f"rc {rc.metadata.name}: created {len(created)} pod(s) and now has "
                           f"{len(mine)} active ({len(otherwise)} adopted or recovered), "
                           f"above its replicas ({bound})")
        self.active = active_now
        self.replicas = replicas_now
        self.known = {p.metadata.uid for p in pods}
        self.written = {}
        return out


async def one_node_per_pod(engine: Engine) -> list[str]:
    """No pod has running containers on two nodes."""
    where: dict[tuple[str, str], set[str]] = {}
    for node, running in (await engine.containers()).items():
        for c in running:
            key = (c.labels.get(POD_NAMESPACE, ""), c.labels.get(POD_NAME, ""))
            where.setdefault(key, set()).add(node)
    return [f"pod {ns}/{name} runs on {', '.join(sorted(nodes))}"
            for (ns, name), nodes in sorted(where.items()) if len(nodes) > 1]


async def content_in_gone_namespaces(engine: Engine) -> list[str]:
    """No object, and no running container, in a namespace that does not exist."""
    namespaces = {n.metadata.name for n in await engine.objects(Namespace)}
    out = []
    for info in content_kinds():
        for obj in await engine.objects(kind_class(info.kind)):
            if obj.metadata.namespace not in namespaces:
                out.append(f"{info.kind} {obj.metadata.namespace}/{obj.metadata.name} is in "
                           "a namespace that is gone")
    for node, running in (await engine.containers()).items():
        for c in running:
            namespace = c.labels.get(POD_NAMESPACE, "")
            if namespace not in namespaces:
                out.append(f"container {c.name} of pod {namespace}/"
                           f"{c.labels.get(POD_NAME, '')} runs on {node} in a namespace "
                           "that is gone")
    return out


async def finished_stay_finished(engine: Engine, pods: list[Pod]) -> list[str]:
    """No container runs for a pod the store says Succeeded or Failed."""
    finished = {p.metadata.uid: p for p in pods if p.status.phase in ("Succeeded", "Failed")}
    out = []
    for node, running in (await engine.containers()).items():
        for c in running:
            pod = finished.get(c.pod_uid)
            if pod is not None:
                out.append(f"pod {pod.metadata.name} is {pod.status.phase} but container "
                           f"{c.name} runs on {node}")
    return out


def legal_history(engine: Engine) -> list[str]:
    """Every recorded change a legal machine move; no illegal write even attempted."""
    return [*engine.history.violations,
            *(f"refused as illegal: {r}" for r in engine.refused)]


#: How long past its deletion deadline a pod may stay Terminating on a node whose agent
#: is up and connected: the longest watch hold (30 s) plus a lag (15 s) plus the write
#: retries a fault causes, with room to spare.
TERMINATING_SLACK = 120.0


def terminating_pods_finish(engine: Engine, pods: list[Pod]) -> list[str]:
    """A pod being deleted on a node whose agent is up and connected is gone within
    ``TERMINATING_SLACK`` of its deletion deadline (or of the agent coming back) —
    checked after every step, so a stuck deletion fails the step, not only the settle."""
    now = engine.clock.now()
    out = []
    for pod in pods:
        node = engine.nodes.get(pod.spec.node_name)
        if not pod.metadata.deletion_timestamp or node is None or node.partitioned \
                or not node.started:
            continue
        since = max(parse_rfc3339(pod.metadata.deletion_timestamp), node.up_since)
        if now - since > TERMINATING_SLACK:
            out.append(f"pod {pod.metadata.name}: still {pod_state(pod, now)} on "
                       f"{node.name} {now - since:.0f} s after its deletion deadline")
    return out


def no_mass_eviction(engine: Engine) -> list[str]:
    """The node lifecycle controller evicted no pod while its view showed every node
    down (the control plane, not the nodes, is the likelier fault)."""
    return list(engine.mass_evictions)


async def endpoints_when_idle(engine: Engine, fresh: Fresh) -> list[str]:
    """Endpoints list exactly the ready, matching, non-terminating pods whenever the
    endpoints controller has nothing left to do on a current cache: its queue is empty
    (no sync running, none waiting for a retry) and its pod, Service and Endpoints
    caches equal the store. Between a change and its sync they may differ; at rest on
    a current view they may not — checked after every step, not only once settled."""
    manager = engine.manager
    if manager is None or queue_busy(manager.endpoints_queue):
        return []
    if not (_same(manager.pods, fresh.pods) and _same(manager.services, fresh.services)
            and _same(manager.endpoints, fresh.endpoints)):
        return []
    return [f"{m} (the endpoints controller is idle on a current cache)"
            for m in await engine.endpoints_mismatch(list(fresh.pods))]


# --------------------------------------------------------------------------- caches


async def _store_at(engine: Engine, informer: Informer[Any]) -> dict[str, str] | None:
    """``{key: resourceVersion}`` the informer should hold: the store at its revision,
    through its namespace and selectors. None when that revision is gone (compacted)."""
    info = REGISTRY.for_class(informer.kind)
    prefix = key_prefix(info, informer.namespace)
    sel = selection(info.kind, informer.label_selector, informer.field_selector)
    out: dict[str, str] = {}
    token: str | None = None
    try:
        while True:
            page = await engine.store.list(prefix, revision=int(informer.revision),
                                           continue_token=token)
            for kv in page.items:
                obj = engine.core.decode_kv(info, kv)
                if not sel or sel.matches(obj):
                    out[object_key(obj)] = str(kv.mod_revision)
            token = page.continue_token
            if token is None:
                return out
    except KstateError:
        return None


async def caches_match_store(engine: Engine) -> list[str]:
    """Every informer cache equals the store at the revision it has synced."""
    out = []
    for name, informer in engine.informers().items():
        if not informer.has_synced or not informer.revision.isdigit():
            continue
        want = await _store_at(engine, informer)
        if want is None:
            continue
        have = {k: o.metadata.resource_version for k, o in informer.cache.items()}
        if have != want:
            missing = sorted(set(want) - set(have))
            extra = sorted(set(have) - set(want))
            stale = sorted(k for k in set(have) & set(want) if have[k] != want[k])
            out.append(f"{name} cache differs from the store at revision "
                       f"{informer.revision}: missing {missing}, extra {extra}, stale {stale}")
    return out


# --------------------------------------------------------------------------- decisions


def _same(informer: Informer[Any], objects: tuple[KubeObject, ...]) -> bool:
    have = {k: o.metadata.resource_version for k, o in informer.cache.items()}
    return have == {object_key(o): o.metadata.resource_version for o in objects}


def _manager_current(manager: EngineManager, fresh: Fresh) -> bool:
    return (_same(manager.pods, fresh.pods) and _same(manager.rcs, fresh.rcs)
            and _same(manager.services, fresh.services)
            and _same(manager.endpoints, fresh.endpoints)
            and _same(manager.nodes, fresh.nodes) and _same(manager.leases, fresh.leases))


async def memory_only_brakes(engine: Engine, fresh: Fresh | None = None) -> list[str]:
    """With caches equal to the store, the running components decide a subset of what
    fresh ones (fresh list, no memory) would. Skipped while a cache lags (a gated
    replay) — the running manager then acts on what it has, by design."""
    manager, scheduler = engine.manager, engine.scheduler
    if manager is None or scheduler is None:
        return []
    fresh = fresh or await Fresh.read(engine)
    out: list[str] = []
    now = engine.clock.now()
    if _manager_current(manager, fresh):
        settings = manager.settings
        for rc in fresh.rcs:
            key = replication.rc_key(rc)
            pods = tuple(p for p in fresh.pods if p.metadata.namespace == rc.metadata.namespace)
            remembered = manager.reconcilers.replication(
                replication.ReplicationView(rc, pods, manager.expectations.get(key)), now,
                settings.replication)
            forgetful = manager.reconcilers.replication(replication.ReplicationView(rc, pods, None),
                                               now, settings.replication)
            if not set(remembered) <= set(forgetful):
                out.append(f"replication {key}: with its expectations the manager would do "
                           f"what a fresh one would not: {_diff(remembered, forgetful)}")
        limiter = manager.memory.get(nodelifecycle.LIMITER)
        remembered = nodelifecycle.reconcile(node_view(fresh, limiter), now,
                                             settings.node_lifecycle)
        forgetful = nodelifecycle.reconcile(node_view(fresh, None), now,
                                            settings.node_lifecycle)
        if not set(remembered) <= set(forgetful):
            out.append("node lifecycle: with its rate limiter the manager would do what a "
                       f"fresh one would not: {_diff(remembered, forgetful)}")
    if _same(scheduler.pods, fresh.pods) and _same(scheduler.nodes, fresh.nodes):
        snapshot = sched.ClusterSnapshot.build(fresh.nodes, fresh.pods)
        for pod in fresh.pods:
            mine = sched.decide(sched.SchedulingView(pod, scheduler.snapshot))
            theirs = sched.decide(sched.SchedulingView(pod, snapshot))
            if mine.outcome == "bind" and (theirs.outcome, theirs.node) != ("bind", mine.node):
                out.append(f"scheduler: would bind {object_key(pod)} to {mine.node}; a fresh "
                           f"one would {theirs.outcome} {theirs.node}".rstrip())
    return out


def _diff(a: list[Any], b: list[Any]) -> str:
    extra = [c for c in a if c not in b]
    return "; ".join(_command_text(c) for c in extra[:3])


def _command_text(cmd: Any) -> str:
    obj = getattr(cmd, "obj", None)
    name = getattr(cmd, "name", "") or (obj.metadata.name or obj.metadata.generate_name
                                        if obj is not None else "")
    return f"{type(cmd).__name__}({name})"


def describe_decisions(decisions: dict[str, list[Any]]) -> list[str]:
    return [f"{key}: {', '.join(_command_text(c) if not isinstance(c, str) else c for c in cmds)}"
            for key, cmds in sorted(decisions.items())]


# --------------------------------------------------------------------------- together


async def step_violations(engine: Engine, bound: ReplicaBound) -> list[str]:
    """Every per-step invariant (see the module docstring)."""
    pods = await engine.objects(Pod)
    rcs = await engine.objects(ReplicationController)
    out = bound.check(rcs, pods)
    out += await one_node_per_pod(engine)
    out += await finished_stay_finished(engine, pods)
    out += terminating_pods_finish(engine, pods)
    out += legal_history(engine)
    out += no_mass_eviction(engine)
    out += await caches_match_store(engine)
    fresh = await Fresh.read(engine)
    out += await memory_only_brakes(engine, fresh)
    out += await endpoints_when_idle(engine, fresh)
    return out


async def replicas_not_ready(engine: Engine) -> list[str]:
    """RCs (not being deleted) without exactly ``replicas`` active pods, all Ready — the
    model's ``converges`` goal, read on the engine (a pod waiting as Unschedulable
    counts against it, though ``Engine.settle`` calls that rest)."""
    pods = await engine.objects(Pod)
    now = engine.clock.now()
    out = []
    for rc in await engine.objects(ReplicationController):
        if rc.metadata.deletion_timestamp:
            continue
        active = [p for p in pods if is_active(p) and _owner_uid(p) == rc.metadata.uid]
        ready = [p for p in active if pod_state(p, now) == "Ready"]
        want = replication.desired_replicas(rc)
        if len(active) != want or len(ready) != len(active):
            out.append(f"rc {rc.metadata.name}: {len(active)} active pods "
                       f"({len(ready)} Ready), replicas {want}")
    return out


async def settled_violations(engine: Engine) -> list[str]:
    """The convergence checks, for an engine ``settle`` reported converged."""
    out = []
    pods = await engine.objects(Pod)
    for rc in await engine.objects(ReplicationController):
        if rc.metadata.deletion_timestamp:
            continue
        active = [p for p in pods if is_active(p) and _owner_uid(p) == rc.metadata.uid]
        want = replication.desired_replicas(rc)
        if len(active) != want:
            out.append(f"rc {rc.metadata.name}: settled with {len(active)} active pods, "
                       f"replicas {want}")
    out += await engine.endpoints_mismatch(pods)
    # A node cut off cannot remove the containers of a pod force-deleted meanwhile.
    out += [o for o in await engine.orphans(pods) if engine.reachable(o.split()[1])]
    now = engine.clock.now()
    stuck = [p.metadata.name for p in pods if p.metadata.deletion_timestamp
             and engine.reachable(p.spec.node_name) and pod_state(p, now)]
    out += [f"pod {name}: stuck terminating" for name in stuck]
    if all(engine.reachable(n) for n in engine.node_names):
        decisions = fresh_decisions(engine, await Fresh.read(engine))
        out += [f"a fresh component would still act: {d}"
                for d in describe_decisions(decisions)]
    return out


__all__ = ["ReplicaBound", "caches_match_store", "finished_stay_finished",
           "legal_history", "memory_only_brakes", "one_node_per_pod", "replicas_not_ready",
           "settled_violations", "step_violations"]
