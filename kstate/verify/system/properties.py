"""The property library: what must hold of a cluster, named for scenarios to ask for.

Where it sits: ``kstate.verify.system``; a scenario lists property names, ``build``
turns them into checker ``Property`` values over ``World``. Each property is stated
independently of the code it checks (a restatement, not a call into the reconciler it
judges), and ``docs/verify.md`` explains each in one sentence.

Safety (``always``): checked in every reachable state; history facts (an over-creation,
an illegal write) are recorded by the abstract API as they happen (``World.flags``).
Liveness (``converges``): under weak fairness of the system's components, once the
user's script is done and every node is reachable again, the cluster settles.
Reachability (``sometimes``, a scenario's ``reachable:`` list, from ``REACHABLE``): some
explored state gets there — so a scenario whose interesting part never happens (a fault
that never fires, pods that never become Ready) cannot pass vacuously.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from kstate.api.helpers import get_condition, selector_matches
from kstate.api.lifecycle import pod_state
from kstate.api.objects import Endpoints, Node, Pod, ReplicationController, Service
from kstate.api.writes import DEFAULT_NAMESPACES
from kstate.control.pods import is_active
from kstate.control.replication import (
    ReplicationSettings,
    ReplicationView,
    desired_replicas,
    rc_key,
)
from kstate.errors import ModelError
from kstate.verify.checker import Property, always, sometimes
from kstate.verify.checker import converges as converges_to
from kstate.verify.system.world import World

Factory = Callable[["PropertyContext"], Property[World]]


class PropertyContext:
    """What a property may need beyond the state: the reconciler under test."""

    def __init__(self, replication_fn: Callable[..., list[Any]],
                 settings: ReplicationSettings | None = None) -> None:
        self.replication_fn = replication_fn
        self.settings = settings or ReplicationSettings()


# --------------------------------------------------------------------------- safety


def never_overcreates(_: PropertyContext) -> Property[World]:
    """A replication sync that creates pods never leaves the RC with more active pods
    than the replicas it was acting on (the stale-cache over-creation bug)."""
    return always("never_overcreates", lambda w: not w.flags.overcreated)


def legal_transitions(_: PropertyContext) -> Property[World]:
    """Every write any component makes is a legal lifecycle-machine move."""
    return always("legal_transitions", lambda w: not w.flags.illegal)


def bound_once(_: PropertyContext) -> Property[World]:
    """A pod, once bound to a node, is never bound to another."""
    return always("bound_once", lambda w: not w.flags.rebound)


def finished_never_restarts(_: PropertyContext) -> Property[World]:
    """No container starts for a pod that has Succeeded or Failed."""
    return always("finished_never_restarts", lambda w: not w.flags.restarted_finished)


def _one_node_per_pod(w: World) -> bool:
    where: dict[tuple[str, str], str] = {}
    for node, runtime in w.runtimes.items():
        names = {s.id: (s.namespace, s.name) for s in runtime.sandboxes}
        for c in runtime.running():
            pod = names.get(c.sandbox_id)
            if pod is None:
                continue
            if where.setdefault(pod, node) != node:
                return False
    return True


def no_pod_on_two_nodes(_: PropertyContext) -> Property[World]:
    """A pod name never has running containers on two nodes at once."""
    return always("no_pod_on_two_nodes", _one_node_per_pod)


def no_mass_eviction(_: PropertyContext) -> Property[World]:
    """The node lifecycle controller evicts no pod while every node looks down in the
    store (the control plane, not the nodes, is the likelier fault)."""
    return always("no_mass_eviction", lambda w: not w.flags.evicted_in_full_disruption)


def ready_matching(pods: Iterable[Pod], svc: Service, now: float) -> set[str]:
    """The pods ``svc``'s ready addresses must list: matching, with an IP, and in the Pod
    machine's Ready state — read through the one state mapping, never the endpoints
    controller's own readiness test (the replay judges the engine by this too)."""
    return {
        p.metadata.name for p in pods
        if p.metadata.namespace == svc.metadata.namespace and svc.spec.selector
        and selector_matches(svc.spec.selector, p.metadata.labels)
        and pod_state(p, now) == "Ready" and p.status.pod_ip
    }


def endpoint_names(ep: Endpoints) -> set[str]:
    """The pods an Endpoints object sends traffic to (its ready addresses)."""
    return {a.target_ref.name for s in ep.subsets for a in s.addresses if a.target_ref}


def _endpoints_match(w: World) -> bool:
    for svc in w.objects("Service"):
        if not isinstance(svc, Service) or not svc.spec.selector:
            continue
        ep = w.get(f"Endpoints/{svc.metadata.namespace}/{svc.metadata.name}")
        names = endpoint_names(ep) if isinstance(ep, Endpoints) else set()
        if names != ready_matching(w.pods(), svc, w.now):
            return False
    return True


def _settled_endpoints(w: World) -> bool:
    """Endpoints list exactly the ready, matching pods — whenever the controller manager
    has seen everything (its cache is the store) and has nothing left to write."""
    if w.cm.watcher.backlog():
        return True
    return _endpoints_match(w) or _endpoint_writes_pending(w)


def _endpoint_writes_pending(w: World) -> bool:
    from kstate.control import endpoints as ep_controller

    pods = tuple(p for p in w.pods())
    for svc in w.objects("Service"):
        if not isinstance(svc, Service):
            continue
        current = w.get(f"Endpoints/{svc.metadata.namespace}/{svc.metadata.name}")
        view = ep_controller.EndpointsView(
            svc.metadata.namespace, svc.metadata.name, svc, pods,
            current if isinstance(current, Endpoints) else None)
        if ep_controller.reconcile(view, w.now):
            return True
    return False


def endpoints_ready_only(_: PropertyContext) -> Property[World]:
    """Once the endpoints controller is idle on a current cache, each Service's ready
    addresses are exactly its Ready, non-terminating, matching pods."""
    return always("endpoints_ready_only", _settled_endpoints)


def single_source_of_truth(ctx: PropertyContext) -> Property[World]:
    """Memory only brakes: with a current cache, a controller's in-memory state
    (expectations) never makes it do anything a freshly started one would not."""
    def holds(w: World) -> bool:
        if w.cm.watcher.backlog():
            return True
        pods = tuple(p for p in w.pods())
        for rc in w.objects("ReplicationController"):
            if not isinstance(rc, ReplicationController):
                continue
            mine = tuple(p for p in pods if p.metadata.namespace == rc.metadata.namespace)
            with_memory = ctx.replication_fn(
                ReplicationView(rc, mine, w.cm.expectations.get(rc_key(rc))), w.now,
                ctx.settings)
            fresh = ctx.replication_fn(ReplicationView(rc, mine, None), w.now, ctx.settings)
            if not set(with_memory) <= set(fresh):
                return False
        return True
    return always("single_source_of_truth", holds)


# --------------------------------------------------------------------------- liveness


def _calm(w: World) -> bool:
    """Faults have stopped: the script is done and every node is reachable."""
    return not w.script and all(k.up for k in w.kubelets.values())


def _at_replicas(w: World) -> bool:
    for rc in w.objects("ReplicationController"):
        if not isinstance(rc, ReplicationController) or rc.metadata.deletion_timestamp:
            continue
        mine = [p for p in w.pods() if is_active(p)
                and any(r.uid == rc.metadata.uid for r in p.metadata.owner_references)]
        ready = [p for p in mine if pod_state(p, w.now) == "Ready"]
        if len(mine) != desired_replicas(rc) or len(ready) != len(mine):
            return False
    return True


def converges(_: PropertyContext) -> Property[World]:
    """Once faults stop, every RC settles on exactly ``replicas`` Ready pods, for good."""
    return _converges_to("converges", _at_replicas)


def endpoints_converge(_: PropertyContext) -> Property[World]:
    """Once faults stop, every Service's endpoints settle on its Ready matching pods."""
    return _converges_to("endpoints_converge", _endpoints_match)


def _converges_to(name: str, q: Callable[[World], bool]) -> Property[World]:
    return converges_to(name, _calm, q)


def _no_content_in_gone_namespace(w: World) -> bool:
    namespaces = {o.metadata.name for o in w.objects("Namespace")}
    if not namespaces:
        return True  # the scenario does not model namespaces
    return all(o.metadata.namespace in namespaces for o in w.store.values()
               if o.metadata.namespace) and all(
        s.namespace in namespaces for runtime in w.runtimes.values()
        for s in runtime.sandboxes
        if any(c.pod_uid == s.pod_uid for c in runtime.running()))


def no_content_in_gone_namespace(_: PropertyContext) -> Property[World]:
    """No object, and no running container, is ever left in a namespace that is gone
    (a create racing the namespace's deletion is refused or swept)."""
    return always("no_content_in_gone_namespace", _no_content_in_gone_namespace)


def _no_orphan_containers(w: World) -> bool:
    bound = {(p.spec.node_name, p.metadata.uid) for p in w.pods()}
    return all((node, c.pod_uid) in bound
               for node, runtime in w.runtimes.items() for c in runtime.running())


def no_orphans(_: PropertyContext) -> Property[World]:
    """Once faults stop, every running container belongs to a pod in the store that is
    bound to that node, for good."""
    return _converges_to("no_orphans", _no_orphan_containers)


def _no_pod_terminating(w: World) -> bool:
    return not any(p.metadata.deletion_timestamp for p in w.pods())


def deletions_complete(_: PropertyContext) -> Property[World]:
    """Once faults stop, every pod marked for deletion is stopped and gone, for good
    (graceful deletion completes: the node stops its containers and removes the pod)."""
    return _converges_to("deletions_complete", _no_pod_terminating)


LIBRARY: dict[str, Factory] = {
    "never_overcreates": never_overcreates,
    "legal_transitions": legal_transitions,
    "bound_once": bound_once,
    "finished_never_restarts": finished_never_restarts,
    "no_pod_on_two_nodes": no_pod_on_two_nodes,
    "no_mass_eviction": no_mass_eviction,
    "endpoints_ready_only": endpoints_ready_only,
    "single_source_of_truth": single_source_of_truth,
    "converges": converges,
    "endpoints_converge": endpoints_converge,
    "no_orphans": no_orphans,
    "deletions_complete": deletions_complete,
    "no_content_in_gone_namespace": no_content_in_gone_namespace,
}


# --------------------------------------------------------------------------- reachability


def _replicas_ready(w: World) -> bool:
    return bool(w.objects("ReplicationController")) and _at_replicas(w)


def _node_not_ready(w: World) -> bool:
    for node in w.nodes():
        cond = get_condition(node.status.conditions, "Ready") if isinstance(node, Node) \
            else None
        if cond is None or cond.status != "True":
            return True
    return False


def _container_restarted(w: World) -> bool:
    return any(s.restart_count > 0 for p in w.pods() if isinstance(p, Pod)
               for s in p.status.container_statuses)


def _endpoints_ready(w: World) -> bool:
    return any(endpoint_names(e) for e in w.objects("Endpoints") if isinstance(e, Endpoints))


def _namespace_terminating_with_pods(w: World) -> bool:
    terminating = {o.metadata.name for o in w.objects("Namespace")
                   if o.metadata.deletion_timestamp}
    return any(p.metadata.namespace in terminating for p in w.pods())


def _namespace_gone(w: World) -> bool:
    """Namespaces are modelled and only the default ones are left."""
    names = {o.metadata.name for o in w.objects("Namespace")}
    return bool(names) and names <= set(DEFAULT_NAMESPACES)


#: name -> (predicate, what a witness shows). Each becomes ``sometimes(name, predicate)``.
REACHABLE: dict[str, tuple[Callable[[World], bool], str]] = {
    "replicas_ready": (_replicas_ready,
                       "every RC has exactly its replicas, all Ready"),
    "script_done": (lambda w: not w.script, "the user's script ran to its end"),
    "faults_spent": (lambda w: all(n == 0 for n in w.budget.values()),
                     "every fault the scenario allows has happened"),
    "node_not_ready": (_node_not_ready, "some node is marked not Ready (Unknown or False)"),
    "container_restarted": (_container_restarted,
                            "some pod reports a container restart"),
    "endpoints_ready": (_endpoints_ready, "some Service has a ready endpoint"),
    "namespace_terminating_with_pods": (_namespace_terminating_with_pods,
                                        "a terminating namespace still holds pods"),
    "namespace_gone": (_namespace_gone, "the deleted namespace is gone, and all it held"),
}


def build(names: Sequence[str], ctx: PropertyContext, *,
          field: str = "properties") -> list[Property[World]]:
    """The named properties — from ``LIBRARY``, or with ``field="reachable"`` from
    ``REACHABLE`` — and an unknown name is a ``ModelError`` listing the library."""
    out: list[Property[World]] = []
    for i, name in enumerate(names):
        if field == "reachable":
            goal = REACHABLE.get(name)
            if goal is not None:
                out.append(sometimes(name, goal[0]))
                continue
            known = ", ".join(REACHABLE)
        else:
            factory = LIBRARY.get(name)
            if factory is not None:
                out.append(factory(ctx))
                continue
            known = ", ".join(LIBRARY)
        raise ModelError(f"unknown {'goal' if field == 'reachable' else 'property'} "
                         f"{name!r}; the library has: {known}", field=f"{field}[{i}]")
    return out


__all__ = ["LIBRARY", "REACHABLE", "PropertyContext", "build"]
