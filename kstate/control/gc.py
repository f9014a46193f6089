"""The garbage collector: ownerReference cascades, pod GC and event expiry.

Where it sits: ``kstate/control`` — a pure reconciler over the cache of owned objects,
run by the controller manager periodically and early when ownership changes (an owner
removed or marked for deletion, a foreground owner's dependent gone), and as one action
by the model checker.

* **Orphaned dependents.** An object all of whose owners are gone is deleted
  (Background). The cache may simply not have seen the owner yet, so the command is
  ``DeleteIfGone``: the executor confirms the owner's absence with a live read first.
* **Foreground.** An owner being deleted with the ``foregroundDeletion`` finalizer has
  its dependents deleted; once none is left in the store the finalizer is removed and
  the api server completes the deletion (RC machine: ``finalized``).
* **Orphan.** An owner being deleted with the ``orphan`` finalizer has its reference
  removed from every dependent, then its finalizer removed.
* **Pod GC.** Pods bound to nodes that no longer exist are force-deleted (after the same
  live check); terminated pods beyond a threshold are deleted oldest first.
* **Events** older than their TTL (1 hour, as the api server's default) are deleted.

Objects are taken in the order the view lists them (the cache's, which has none in
Kubernetes): ``reconcile_choices`` gives every order of the objects a pass writes, for
the model checker; ``reconcile`` is the first, the engine's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import attrs

from kstate.api.helpers import object_reference
from kstate.api.lifecycle import (
    FOREGROUND,
    MACHINE_OF_KIND,
    ORPHAN,
    fire,
    object_name,
    state_of,
)
from kstate.api.meta import KubeObject, ObjectReference
from kstate.api.objects import Event, Pod
from kstate.clock import parse_rfc3339
from kstate.control import orders
from kstate.control.commands import Command, Delete, DeleteIfGone, Update


@attrs.frozen
class GCSettings:
    terminated_pod_threshold: int = 12_500  # --terminated-pod-gc-threshold
    event_ttl: float = 3600.0  # --event-ttl


@attrs.frozen
class GCView:
    """Everything the collector looks at, from the controller manager's caches."""

    objects: tuple[KubeObject, ...]  # owners and dependents (RCs, pods, ...)
    nodes: frozenset[str]  # names of the nodes that exist
    events: tuple[Event, ...] = ()


def reconcile(view: GCView, now: float, settings: GCSettings = GCSettings()) -> list[Command]:
    by_uid = {o.metadata.uid: o for o in view.objects if o.metadata.uid}
    dependents: dict[str, list[KubeObject]] = {}
    for obj in view.objects:
        for ref in obj.metadata.owner_references:
            dependents.setdefault(ref.uid, []).append(obj)

    commands: list[Command] = []
    for obj in view.objects:
        refs = obj.metadata.owner_references
        if refs and not obj.metadata.deletion_timestamp and \
                all(ref.uid not in by_uid for ref in refs):
            ref = refs[0]
            gone = ObjectReference(kind=ref.kind, name=ref.name, uid=ref.uid,
                                   namespace=obj.metadata.namespace,
                                   api_version=ref.api_version)
            commands.append(DeleteIfGone(object_reference(obj), gone))
        if obj.metadata.deletion_timestamp:
            finalizers = obj.metadata.finalizers
            if FOREGROUND in finalizers:
                commands += _foreground(obj, dependents.get(obj.metadata.uid, ()))
            elif ORPHAN in finalizers:
                commands += _orphan(obj, dependents.get(obj.metadata.uid, ()))

    pods = [o for o in view.objects if isinstance(o, Pod)]
    commands += _pods_on_missing_nodes(pods, view.nodes)
    commands += _terminated_pods(pods, settings.terminated_pod_threshold)
    commands += _expired_events(view.events, now, settings.event_ttl)
    return commands


def reconcile_choices(view: GCView, now: float, settings: GCSettings = GCSettings(), *,
                      reconcile: Callable[..., list[Command]] = reconcile
                      ) -> list[list[Command]]:
    """Every command list a pass may send: the objects it writes, of each kind, in every
    order (the cache lists them in none: ``orders``); the first is ``reconcile``'s (the
    engine's; a swapped one gets its every order too)."""
    return orders.every_order(reconcile, view, "objects", now, settings)


def _without_finalizer(owner: KubeObject, finalizer: str) -> list[Command]:
    """Remove ``finalizer``; the last one gone lets the api server delete the owner."""
    machine = MACHINE_OF_KIND.get(type(owner).__name__)
    if machine == "rc":
        fire("rc", state_of(owner) or "Deleting", "finalized", obj=object_name(owner))
    finalizers = tuple(f for f in owner.metadata.finalizers if f != finalizer)
    return [Update(attrs.evolve(owner, metadata=attrs.evolve(owner.metadata,
                                                             finalizers=finalizers)))]


def _foreground(owner: KubeObject, dependents: Iterable[KubeObject]) -> list[Command]:
    waiting = list(dependents)
    if not waiting:
        return _without_finalizer(owner, FOREGROUND)
    return [
        Delete(type(d).__name__, d.metadata.namespace, d.metadata.name, uid=d.metadata.uid,
               propagation="Background")
        for d in waiting if not d.metadata.deletion_timestamp
    ]


def _orphan(owner: KubeObject, dependents: Iterable[KubeObject]) -> list[Command]:
    waiting = list(dependents)
    if not waiting:
        return _without_finalizer(owner, ORPHAN)
    uid = owner.metadata.uid
    return [
        Update(attrs.evolve(d, metadata=attrs.evolve(
            d.metadata,
            owner_references=tuple(r for r in d.metadata.owner_references if r.uid != uid),
        )))
        for d in waiting
    ]


def _pods_on_missing_nodes(pods: Iterable[Pod], nodes: frozenset[str]) -> list[Command]:
    out: list[Command] = []
    for pod in pods:
        node = pod.spec.node_name
        if node and node not in nodes:
            out.append(DeleteIfGone(object_reference(pod), ObjectReference(kind="Node",
                                                                           name=node),
                                    grace_seconds=0))
    return out


def _terminated_pods(pods: Iterable[Pod], threshold: int) -> list[Command]:
    done = [p for p in pods if p.status.phase in ("Succeeded", "Failed")
            and not p.metadata.deletion_timestamp]
    excess = len(done) - threshold
    if excess <= 0:
        return []
    oldest = sorted(done, key=lambda p: (p.metadata.creation_timestamp, p.metadata.name))
    return [Delete("Pod", p.metadata.namespace, p.metadata.name, uid=p.metadata.uid)
            for p in oldest[:excess]]


def _expired_events(events: Iterable[Event], now: float, ttl: float) -> list[Command]:
    out: list[Command] = []
    for ev in events:
        stamp = ev.last_timestamp or ev.event_time or ev.metadata.creation_timestamp
        if stamp and now - parse_rfc3339(stamp) > ttl:
            out.append(Delete("Event", ev.metadata.namespace, ev.metadata.name,
                              uid=ev.metadata.uid))
    return out


__all__ = ["FOREGROUND", "ORPHAN", "GCSettings", "GCView", "reconcile", "reconcile_choices"]
