"""The replication controller: keep ``spec.replicas`` pods running for every RC.

Where it sits: ``kstate/control`` — a pure reconciler. The controller manager (engine)
builds a ``ReplicationView`` from its informer caches and applies the returned commands
through the API server; the model checker (``kstate.verify.system``) builds the same view
from its abstract caches and applies the same commands to abstract state. One function,
two executors — the checker explores exactly what the daemon runs.

Kubernetes' ReplicationManager, made explicit:

* **claim** pods: adopt matching orphans, release owned pods whose labels stopped
  matching, count active owned pods;
* **manage**, only when the controller's expectations are satisfied (its cache has seen
  its own previous creates/deletes, or 5 minutes passed): create the missing pods
  (controller ownerReference, ``generateName``), at most ``burst`` per sync — the executor
  sends them in slow-start batches 1, 2, 4, ... — or delete the surplus, ranked as
  Kubernetes ranks them. Among pods of equal rank Kubernetes' order is arbitrary:
  ``reconcile_choices`` lists every choice (the model checker explores them all),
  ``reconcile`` is the first (the engine's);
* **report** status (replicas, fullyLabeled, ready, available, observedGeneration),
  moving the RC's lifecycle machine (observe / scale / converged).

``pod_event`` is the watch handler: which keys to requeue and which expectations the
event fulfils. It is pure too, so the checker delivers watch events through it.

Cost. A sync acts only on the pods this RC controls and on orphans, so a view needs only
the groups ``claim_groups(rc)`` of pods grouped by ``claim_group`` (the controller manager
keeps its pod cache indexed so): O(the RC's pods), not O(the namespace). And
``pod_event`` requeues the owner only when the pod changed in a way the sync reads.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import attrs

from kstate.api.helpers import (
    controller_of,
    get_condition,
    object_reference,
    owner_reference,
    selector_matches,
    with_meta,
)
from kstate.api.lifecycle import fire, object_name, rc_state
from kstate.api.meta import ObjectMeta
from kstate.api.objects import Pod, ReplicationController
from kstate.clock import parse_rfc3339
from kstate.control.commands import Command, Create, Delete, Expect, Update
from kstate.control.expectations import DEFAULT_TTL, Expectation, Observation
from kstate.control.pods import created_at, is_active, is_ready, pod_key, ready_since, restart_count


@attrs.frozen
class ReplicationSettings:
    """Kubernetes' defaults; every one configurable."""

    burst: int = 500  # BurstReplicas: creations or deletions per sync
    expectations_ttl: float = DEFAULT_TTL


@attrs.frozen
class ReplicationView:
    """What one sync of one RC may look at (all from the controller's cache)."""

    rc: ReplicationController
    #: pods of the RC's namespace the cache holds: all of them, or only those of
    #: ``claim_groups(rc)`` (this RC's and the orphans) — the same commands either way
    pods: tuple[Pod, ...]
    expectation: Expectation | None = None


def rc_key(rc: ReplicationController) -> str:
    return f"{rc.metadata.namespace}/{rc.metadata.name}"


def desired_replicas(rc: ReplicationController) -> int:
    return 1 if rc.spec.replicas is None else rc.spec.replicas


def reconcile(
    view: ReplicationView, now: float, settings: ReplicationSettings = ReplicationSettings()
) -> list[Command]:
    """Commands that move the RC toward ``spec.replicas`` and report its status: the
    first of ``reconcile_choices`` (only that one is computed)."""
    return next(_choices(view, now, settings))


def reconcile_choices(
    view: ReplicationView, now: float, settings: ReplicationSettings = ReplicationSettings()
) -> list[list[Command]]:
    """Every command list Kubernetes' controller might send for this sync: one, except
    for a scale-down among pods of equal rank (``deletion_choices``: which of them go,
    and in which order). The first is the engine's (``reconcile``); the model checker
    explores them all, which also keeps an RC's pods interchangeable for symmetry."""
    return list(_choices(view, now, settings))


def _choices(view: ReplicationView, now: float, settings: ReplicationSettings
             ) -> Iterator[list[Command]]:
    rc = view.rc
    key = rc_key(rc)
    deleting = bool(rc.metadata.deletion_timestamp)
    owned, claimed = _claim(rc, view.pods, deleting)
    active = [p for p in owned if is_active(p)]

    satisfied = view.expectation is None or view.expectation.satisfied(
        now, settings.expectations_ttl
    )
    managed = _manage(rc, key, active, settings) if satisfied and not deleting else iter([[]])
    report = _report(rc, owned, active, now)
    return (claimed + manage + report for manage in managed)


# --------------------------------------------------------------------------- claim


#: (namespace, uid of the controlling owner, "" for an orphan)
ClaimGroup = tuple[str, str]


def claim_group(pod: Pod) -> ClaimGroup:
    """The group ``pod`` belongs to for the RC views: its namespace and controller uid."""
    ref = controller_of(pod)
    return pod.metadata.namespace, "" if ref is None else ref.uid


def claim_groups(rc: ReplicationController) -> tuple[ClaimGroup, ClaimGroup]:
    """The only pods ``reconcile`` of ``rc`` acts on: those it controls, and orphans.

    ``_claim`` skips a pod another controller owns, whatever its labels (Kubernetes'
    ClaimPods does the same), so a view without those pods yields the same commands.
    """
    namespace = rc.metadata.namespace
    return (namespace, rc.metadata.uid), (namespace, "")


def _claim(
    rc: ReplicationController, pods: Iterable[Pod], deleting: bool
) -> tuple[list[Pod], list[Command]]:
    """Owned pods (after adoption and release) and the updates that make it so."""
    selector = rc.spec.selector
    owned: list[Pod] = []
    commands: list[Command] = []
    for pod in pods:
        ref = controller_of(pod)
        matches = bool(selector) and selector_matches(selector, pod.metadata.labels)
        if ref is not None and ref.uid == rc.metadata.uid:
            if matches or deleting:
                owned.append(pod)
            elif not pod.metadata.deletion_timestamp:
                # Labels changed under us: let go, as Kubernetes' ReleasePod does.
                refs = tuple(r for r in pod.metadata.owner_references if r.uid != ref.uid)
                commands.append(Update(with_meta(pod, owner_references=refs)))
        elif ref is None and matches and not deleting and not pod.metadata.deletion_timestamp:
            adopted = with_meta(
                pod, owner_references=(*pod.metadata.owner_references, owner_reference(rc))
            )
            commands.append(Update(adopted))
            owned.append(adopted)
    return owned, commands


# --------------------------------------------------------------------------- manage


def _manage(
    rc: ReplicationController, key: str, active: Sequence[Pod], settings: ReplicationSettings
) -> Iterator[list[Command]]:
    diff = len(active) - desired_replicas(rc)
    if diff < 0:
        count = min(-diff, settings.burst)
        owner = object_reference(rc)
        template = _pod_from_template(rc)
        created: list[Command] = [Expect(key, adds=count)]
        created += [Create(template, owner=owner, expectation=key) for _ in range(count)]
        yield created
    elif diff > 0:
        owner = object_reference(rc)
        for victims in deletion_choices(active, min(diff, settings.burst)):
            deleted: list[Command] = [Expect(key, deletes=frozenset(pod_key(p) for p in victims))]
            deleted += [Delete("Pod", p.metadata.namespace, p.metadata.name, uid=p.metadata.uid,
                               owner=owner, expectation=key) for p in victims]
            yield deleted
    else:
        yield []


def _pod_from_template(rc: ReplicationController) -> Pod:
    """A pod from the RC's template, owned by the RC (Kubernetes' GetPodFromTemplate)."""
    template = rc.spec.template
    assert template is not None  # validation requires it
    meta = template.metadata
    return Pod(
        metadata=ObjectMeta(
            generate_name=f"{rc.metadata.name}-",
            namespace=rc.metadata.namespace,
            labels=meta.labels,
            annotations=meta.annotations,
            finalizers=meta.finalizers,
            owner_references=(owner_reference(rc),),
        ),
        spec=template.spec,
    )


def rank_for_deletion(pods: Sequence[Pod]) -> list[Pod]:
    """Pods in the order Kubernetes deletes them when scaling down.

    Unassigned before assigned; Pending before Unknown before Running; not ready before
    ready; more pods of this owner on the same node first; ready for less time first;
    more restarts first; newer first. Pods equal on all of these keep their given order
    (Kubernetes' order among them is arbitrary: ``deletion_choices``).
    """
    rank = _deletion_rank(pods)
    return sorted(pods, key=rank)


def deletion_choices(pods: Sequence[Pod], count: int) -> Iterator[tuple[Pod, ...]]:
    """Every way a scale-down may delete ``count`` of ``pods``, as the pods in the order
    their deletes go out. Kubernetes ranks the pods (``rank_for_deletion``), but its order
    among pods of equal rank is arbitrary (a cache's iteration order): which of the pods
    tied at the cut go, and in which order pods of equal rank are deleted, are both free —
    and with a lagging watch the order decides which event is still in flight. The first
    choice is ``rank_for_deletion(pods)[:count]``, the engine's."""
    rank = _deletion_rank(pods)
    ranked = sorted(pods, key=rank)
    count = max(0, min(count, len(ranked)))
    if count == 0:
        yield ()
        return
    cut = rank(ranked[count - 1])
    classes = [list(tied) for _, tied in itertools.groupby(ranked, key=rank)]
    taken = [c for c in classes if rank(c[0]) < cut]
    at_cut = next(c for c in classes if rank(c[0]) == cut)
    for last in itertools.combinations(at_cut, count - sum(map(len, taken))):
        yield from _orders([*taken, list(last)])


def _orders(classes: Sequence[Sequence[Pod]]) -> Iterator[tuple[Pod, ...]]:
    """Every order of the pods keeping ``classes`` in sequence, given order first. Lazy
    (itertools.product would list every factor's permutations up front): the engine
    takes only the first, of possibly hundreds of tied pods."""
    if not classes:
        yield ()
        return
    for first in itertools.permutations(classes[0]):
        for rest in _orders(classes[1:]):
            yield first + rest


def _deletion_rank(pods: Sequence[Pod]) -> Callable[[Pod], tuple[Any, ...]]:
    per_node: dict[str, int] = {}
    for p in pods:
        per_node[p.spec.node_name] = per_node.get(p.spec.node_name, 0) + 1
    phase_order = {"Pending": 0, "Unknown": 1, "Running": 2}

    def rank(p: Pod) -> tuple[Any, ...]:
        since = ready_since(p)
        born = created_at(p)
        return (
            1 if p.spec.node_name else 0,
            phase_order.get(p.status.phase or "Pending", 3),
            1 if is_ready(p) else 0,
            -per_node[p.spec.node_name] if p.spec.node_name else 0,
            -(since or 0.0),
            -restart_count(p),
            1 if born is not None else 0,
            -(born or 0.0),
        )

    return rank


# --------------------------------------------------------------------------- report


def _report(
    rc: ReplicationController, owned: Sequence[Pod], active: Sequence[Pod], now: float
) -> list[Command]:
    template_labels = rc.spec.template.metadata.labels if rc.spec.template else {}
    ready = [p for p in active if is_ready(p)]
    status = attrs.evolve(
        rc.status,
        replicas=len(active),
        fully_labeled_replicas=sum(
            1 for p in active if selector_matches(template_labels, p.metadata.labels)
        ),
        ready_replicas=len(ready),
        available_replicas=sum(1 for p in ready if _available(p, rc.spec.min_ready_seconds, now)),
        observed_generation=rc.metadata.generation,
    )
    if status == rc.status:
        return []
    updated = attrs.evolve(rc, status=status)
    _move(rc, updated)
    return [Update(updated, subresource="status")]


def _available(pod: Pod, min_ready_seconds: int, now: float) -> bool:
    if min_ready_seconds <= 0:
        return True
    cond = get_condition(pod.status.conditions, "Ready")
    if cond is None or not cond.last_transition_time:
        return False
    return now - parse_rfc3339(cond.last_transition_time) >= min_ready_seconds


#: The trigger a status report fires, by the RC's state before it.
_REPORT_TRIGGER = {"Created": "observe", "Stable": "scale", "Progressing": "converged"}


def _move(old: ReplicationController, new: ReplicationController) -> None:
    """Fire the RC machine for a status report; an illegal move raises before any write."""
    before, after = rc_state(old), rc_state(new)
    if before == after or before not in _REPORT_TRIGGER:
        return
    facts = {"at_desired": after == "Stable"}
    moved = fire("rc", before, _REPORT_TRIGGER[before], facts, obj=object_name(old))
    assert moved == after, (before, after, moved)


# --------------------------------------------------------------------------- watch


def pod_event(
    old: Pod | None, new: Pod | None, rcs: Iterable[ReplicationController]
) -> tuple[list[Observation], set[str]]:
    """What a pod ADDED (``old`` None) / MODIFIED / DELETED (``new`` None) event means.

    Returns the expectation observations it fulfils — a creation seen, or a pod of the
    RC seen going away (deleted, or marked for deletion) — and the RC keys to requeue:
    the controlling RC before and after, or, for a live orphan, every RC in its
    namespace whose selector matches it (one of them may adopt it) — none at all for an
    update that changed nothing a sync reads (``_seen_by_rc``).
    """
    current = new if new is not None else old
    assert current is not None, "an event has an object"
    if old is not None and new is not None and _seen_by_rc(old) == _seen_by_rc(new):
        # Nothing a sync counts or reports changed (the pod was bound, a container
        # restarted, its IP set): neither its RC nor an RC that might adopt it would do
        # anything new, and such updates are most of a busy cluster's pod events.
        # (An informer resync of pods is dropped here too; the RC informer's resync
        # requeues every RC.)
        return [], set()
    old_owner, new_owner = _rc_owner(old), _rc_owner(new)
    owner = new_owner or old_owner
    was_live = old is not None and not old.metadata.deletion_timestamp
    is_live = new is not None and not new.metadata.deletion_timestamp

    observed: list[Observation] = []
    if old is None and new_owner is not None:
        observed.append(Observation(new_owner, "create"))
    if was_live and not is_live and owner is not None:
        observed.append(Observation(owner, "delete", pod_key(current)))

    keys = {k for k in (old_owner, new_owner) if k is not None}
    if new is not None and new_owner is None and is_live:
        ns = new.metadata.namespace
        keys.update(
            rc_key(rc) for rc in rcs
            if rc.metadata.namespace == ns and rc.spec.selector
            and selector_matches(rc.spec.selector, new.metadata.labels)
        )
    return observed, keys


def _seen_by_rc(pod: Pod) -> tuple[object, ...]:
    """What ``reconcile`` reads from a pod to claim it, count it and report status.

    Not here: what only ranks victims for a scale-down (node, phase among the active
    ones, restarts, age) — read when a sync deletes, never a reason to sync. Changing
    this changes which events requeue an RC, never what a sync does.
    """
    meta = pod.metadata
    ready = get_condition(pod.status.conditions, "Ready")
    return (meta.uid, meta.owner_references, meta.labels, meta.deletion_timestamp,
            is_active(pod),
            None if ready is None else (ready.status, ready.last_transition_time))


def _rc_owner(pod: Pod | None) -> str | None:
    """``ns/name`` of the RC controlling ``pod``, if one does."""
    if pod is None:
        return None
    ref = controller_of(pod)
    if ref is None or ref.kind != "ReplicationController":
        return None
    return f"{pod.metadata.namespace}/{ref.name}"


__all__ = [
    "ClaimGroup",
    "ReplicationSettings",
    "ReplicationView",
    "claim_group",
    "claim_groups",
    "deletion_choices",
    "desired_replicas",
    "pod_event",
    "rank_for_deletion",
    "rc_key",
    "reconcile",
    "reconcile_choices",
]
