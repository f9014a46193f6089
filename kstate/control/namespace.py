"""The namespace controller: a terminating namespace is emptied, then finalized.

Where it sits: ``kstate/control`` — a pure reconciler run by the controller manager (one
sync per terminating namespace) and as one action by the model checker. Data flows

    namespace marked (DELETE: Terminating) -> live list of every namespaced kind in it
      -> reconcile(view, now): delete what is left, report the status conditions,
         and once nothing is left remove ``kubernetes`` from spec.finalizers (/finalize)
      -> the api server removes the namespace with its last finalizer (machine: Gone)

Why a live list and not the manager's caches: a cache that lags would show an empty
namespace while an object created just before the mark is still on its way, and the
finalize would leave that object in a namespace that is gone — Kubernetes' namespace
deleter lists every resource from the API server for the same reason. The checker's
namespace-delete scenario explores exactly that race.

The conditions are Kubernetes' own (``pkg/controller/namespace/deletion``), with its
reasons and messages; a condition with nothing to report shows its "ok" variant
(status False). kstate serves a fixed set of kinds, so discovery and group-version
parsing cannot fail: those two always show ok. A kind whose content could not be listed
is a content failure, as in Kubernetes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping

import attrs

from kstate.api import writes
from kstate.api.helpers import set_condition
from kstate.api.lifecycle import namespace_state
from kstate.api.meta import KubeObject
from kstate.api.objects import Namespace, NamespaceCondition
from kstate.api.registry import REGISTRY, KindInfo
from kstate.clock import rfc3339
from kstate.control import orders
from kstate.control.commands import Command, Delete, Update
from kstate.machines import KUBERNETES_FINALIZER

DISCOVERY_FAILURE = "NamespaceDeletionDiscoveryFailure"
GROUP_VERSION_PARSING_FAILURE = "NamespaceDeletionGroupVersionParsingFailure"
CONTENT_FAILURE = "NamespaceDeletionContentFailure"
CONTENT_REMAINING = "NamespaceContentRemaining"
FINALIZERS_REMAINING = "NamespaceFinalizersRemaining"

#: Kubernetes' order of the conditions, with the reason and message of each "ok" variant.
OK: Mapping[str, tuple[str, str]] = {
    DISCOVERY_FAILURE: ("ResourcesDiscovered", "All resources successfully discovered"),
    GROUP_VERSION_PARSING_FAILURE: ("ParsedGroupVersions",
                                    "All legacy kube types successfully parsed"),
    CONTENT_FAILURE: ("ContentDeleted",
                      "All content successfully deleted, may be waiting on finalization"),
    CONTENT_REMAINING: ("ContentRemoved", "All content successfully removed"),
    FINALIZERS_REMAINING: ("ContentRemoved", "All content successfully removed"),
}


def content_kinds() -> list[KindInfo]:
    """Every namespaced kind the server stores (what a namespace can hold)."""
    return [i for i in REGISTRY.resources() if i.namespaced and i.kind != "Binding"]


@attrs.frozen
class NamespaceView:
    """A namespace and what it holds, listed live (see the module docstring).

    ``list_errors``: one message per kind whose content could not be listed.
    """

    namespace: Namespace
    content: tuple[KubeObject, ...] = ()
    list_errors: tuple[str, ...] = ()


def reconcile(view: NamespaceView, now: float) -> list[Command]:
    """Delete what a terminating namespace still holds and report it in the status
    conditions; finalize it once nothing is left.

    >>> from kstate.api.meta import ObjectMeta
    >>> from kstate.api.objects import NamespaceSpec
    >>> ns = Namespace(metadata=ObjectMeta(name="foo", deletion_timestamp=rfc3339(0)),
    ...                spec=NamespaceSpec(finalizers=("kubernetes",)))
    >>> [type(c).__name__ + ":" + c.subresource for c in reconcile(NamespaceView(ns), 0)]
    ['Update:finalize']
    """
    ns = view.namespace
    if namespace_state(ns) != "Terminating" or KUBERNETES_FINALIZER not in ns.spec.finalizers:
        return []  # active, or already finalized (another finalizer holds it)
    if not view.content and not view.list_errors:
        left = tuple(f for f in ns.spec.finalizers if f != KUBERNETES_FINALIZER)
        return [Update(writes.finalize_request(ns, left), subresource="finalize")]
    commands: list[Command] = [
        Delete(type(obj).__name__, obj.metadata.namespace, obj.metadata.name,
               uid=obj.metadata.uid, propagation="Background")
        for obj in view.content if not obj.metadata.deletion_timestamp
    ]
    conditions = status_conditions(ns.status.conditions, view.content, view.list_errors, now)
    if conditions != ns.status.conditions:
        commands.append(Update(attrs.evolve(ns, status=attrs.evolve(
            ns.status, conditions=conditions)), subresource="status"))
    return commands


def reconcile_choices(view: NamespaceView, now: float, *,
                      reconcile: Callable[..., list[Command]] = reconcile
                      ) -> list[list[Command]]:
    """Every command list a sync may send: the content it deletes, of each kind, in
    every order (Kubernetes deletes a collection in no order: ``orders``); the first is
    ``reconcile``'s on the content as listed (the engine's)."""
    return orders.every_order(reconcile, view, "content", now)


def status_conditions(current: tuple[NamespaceCondition, ...],
                      content: Iterable[KubeObject], list_errors: Iterable[str],
                      now: float) -> tuple[NamespaceCondition, ...]:
    """The conditions Kubernetes' namespace deleter reports for what is left:
    ``NamespaceContentRemaining`` counts the objects by resource, and
    ``NamespaceFinalizersRemaining`` the finalizers holding them."""
    by_resource: Counter[str] = Counter()
    by_finalizer: Counter[str] = Counter()
    for obj in content:
        info = REGISTRY.for_class(type(obj))
        by_resource[f"{info.plural}.{info.group}"] += 1
        by_finalizer.update(obj.metadata.finalizers)
    failing: dict[str, tuple[str, str]] = {}
    errors = sorted(list_errors)
    if errors:
        failing[CONTENT_FAILURE] = (
            "ContentDeletionFailed",
            f"Failed to delete all resource types, {len(errors)} remaining: "
            f"{', '.join(errors)}")
    if by_resource:
        failing[CONTENT_REMAINING] = ("SomeResourcesRemain", "Some resources are remaining: "
                                      + ", ".join(sorted(f"{r} has {n} resource instances"
                                                         for r, n in by_resource.items())))
    if by_finalizer:
        failing[FINALIZERS_REMAINING] = ("SomeFinalizerRemain", "Some finalizers are "
                                         "remaining: " + ", ".join(sorted(
                                             f"{f} in {n} resource instances"
                                             for f, n in by_finalizer.items())))
    conditions = current
    stamp = rfc3339(now)
    for type_, ok in OK.items():
        status, (reason, message) = ("True", failing[type_]) if type_ in failing \
            else ("False", ok)
        old = next((c for c in current if c.type == type_), None)
        if old is not None and (old.status, old.reason, old.message) == (
                status, reason, message):
            continue  # unchanged: no write (Kubernetes' updateConditions)
        conditions = set_condition(conditions, NamespaceCondition(
            type=type_, status=status, reason=reason, message=message,
            last_transition_time=stamp))
    return conditions


__all__ = [
    "CONTENT_FAILURE",
    "CONTENT_REMAINING",
    "DISCOVERY_FAILURE",
    "FINALIZERS_REMAINING",
    "GROUP_VERSION_PARSING_FAILURE",
    "OK",
    "NamespaceView",
    "content_kinds",
    "reconcile",
    "reconcile_choices",
    "status_conditions",
]
