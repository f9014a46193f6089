"""Every rule the API server applies to a write, as pure functions.

Where it sits: between a decoded request and the store. ``ApiCore``
(``kstate.api.server.core``) reads the stored object, calls these functions and writes
what they return with a compare-and-swap; the model checker's ``AbstractApi``
(``kstate.verify.system.world``) calls the very same functions on its abstract store::

    request ─> writes.admit_create / plan_update / plan_delete / bind ─> store (CAS)
                  ^ stored object, request, now, injected uid / name suffix

Why it exists: a rule written twice drifts (issue 14 found four disagreements between
the engine and the checker). Here each rule is written once, as a function of the
stored object, the request and ``now`` — and, where the engine draws randomness, of an
injected value (the uid, the generated name's suffix, the Service allocator). Nothing
here reads a store, a clock or a random generator; the callers keep only that I/O:
reads, compare-and-swap writes, retries and Service IP allocation. Emptying a
terminating namespace is the namespace controller's (``kstate.control.namespace``).

Errors are the project's ``KstateError`` types, each mapping to one HTTP status:
``Conflict`` (409: stale resourceVersion, failed precondition, binding refused),
``NotFound`` (404), ``InvalidObject`` / ``IllegalTransition`` (422), ``Forbidden`` (403),
``BadRequest`` (400). The checker translates them into command outcomes with the
executor's own mapping (``kstate.control.executor.outcome_of``).

Kubernetes' behaviour, where the engine and the checker used to disagree:

* **RC delete without a propagation policy orphans.** core/v1's ReplicationController
  strategy keeps ``DefaultGarbageCollectionPolicy == OrphanDependents`` for
  compatibility (kubectl always sends ``Background``).
* **A second delete of a terminating pod** may only shorten its grace period
  (``rest.BeforeDelete``): ``deletionTimestamp = old deletionTimestamp - old grace +
  new grace``, ``deletionGracePeriodSeconds = new grace``; a longer or no grace period
  changes nothing; grace 0 removes the pod (unless finalizers hold it).
* **Marking an object for deletion bumps ``generation``** when it is > 0
  (``BeforeDelete`` for graceful deletes, ``markAsDeleting`` for finalizers).
* **Binding a pod that is being deleted is refused** (409 Conflict, as the pod
  registry's ``assignPod``), as is binding an already bound pod or a pod whose uid is
  not the binding's.
"""

from __future__ import annotations

import functools
import reprlib
from collections.abc import Callable
from typing import Any, TypeVar

import attrs

from kstate.api import lifecycle, visible
from kstate.api.codec import Model
from kstate.api.defaults import DEFAULT_GRACE_SECONDS, add_default_tolerations, default
from kstate.api.helpers import set_condition
from kstate.api.lifecycle import FOREGROUND, ORPHAN
from kstate.api.meta import DeleteOptions, KubeObject, ObjectMeta, ObjectReference, Preconditions
from kstate.api.objects import (
    Binding,
    Eviction,
    Namespace,
    NamespaceStatus,
    Node,
    Pod,
    PodCondition,
    PodStatus,
    ReplicationController,
    Service,
)
from kstate.api.quantity import QuantityError, parse_quantity
from kstate.api.registry import REGISTRY, KindInfo
from kstate.api.validation import validate, validate_update
from kstate.clock import parse_rfc3339, rfc3339
from kstate.errors import BadRequest, Cause, Conflict, Forbidden, InvalidObject, NotFound
from kstate.machines import KUBERNETES_FINALIZER, POD

K = TypeVar("K", bound=KubeObject)

DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")

#: Kinds whose ``status`` is written only through ``/status`` (the main resource keeps
#: the stored status, whatever the request says).
STATUS_KINDS = frozenset({"Pod", "ReplicationController", "Service", "Node", "Namespace"})
#: Kinds an update may create (Kubernetes' ``AllowCreateOnUpdate``).
CREATE_ON_UPDATE = frozenset({"Endpoints", "Event", "Lease"})
#: Kinds whose request status is discarded on create (the server owns it).
RESET_STATUS_ON_CREATE = frozenset({"Pod", "ReplicationController", "Service"})

FOREGROUND_FINALIZER = FOREGROUND
ORPHAN_FINALIZER = ORPHAN

#: Kubernetes' generateName alphabet (the engine draws the suffix from it).
NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"


# ------------------------------------------------------------------ errors


def info_of(obj: KubeObject | type[KubeObject]) -> KindInfo:
    return REGISTRY.for_class(obj if isinstance(obj, type) else type(obj))


def not_found(info: KindInfo, name: str) -> NotFound:
    return NotFound(f'{info.plural} "{name}" not found', key=name)


def conflict(info: KindInfo, name: str, why: str = "") -> Conflict:
    why = why or ("the object has been modified; please apply your changes to the latest "
                  "version and try again")
    return Conflict(f'Operation cannot be fulfilled on {info.plural} "{name}": {why}', key=name)


def existing(info: KindInfo, name: str, stored: K | None) -> K:
    """The stored object a write applies to (404 when there is none)."""
    if stored is None:
        raise not_found(info, name)
    return stored


def check_valid(obj: Model) -> None:
    """422 with every cause when ``obj`` is not a valid object."""
    causes = validate(obj)
    if causes:
        raise InvalidObject(type(obj).KIND, getattr(obj, "metadata", ObjectMeta()).name, causes)


def check_valid_update(old: KubeObject, new: KubeObject) -> None:
    """422 with every cause when ``old`` may not become ``new``."""
    causes = validate_update(old, new)
    if causes:
        raise InvalidObject(type(new).KIND, new.metadata.name, causes)


def check_subresource(info: KindInfo, subresource: str, allowed: tuple[str, ...]) -> None:
    """404 for a subresource the kind does not serve (``status`` only on STATUS_KINDS)."""
    if subresource == "status" and info.kind not in STATUS_KINDS:
        raise NotFound(f"{info.plural} have no status subresource")
    if subresource == "finalize" and info.kind != "Namespace":
        raise NotFound(f"{info.plural} have no finalize subresource")
    if subresource not in allowed:
        raise NotFound(f"{info.plural}/{subresource} is not a subresource kstate serves")


def creates_on_update(info: KindInfo, subresource: str, resource_version: str) -> bool:
    """An update of a missing object creates it: only kinds that allow it (Kubernetes'
    ``AllowCreateOnUpdate``), on the main resource, with no resourceVersion."""
    return not subresource and info.kind in CREATE_ON_UPDATE and not resource_version


def check_resource_version(info: KindInfo, stored: KubeObject, expected: str) -> None:
    """An update's ``metadata.resourceVersion`` is a precondition (409 when stale);
    none applies the update to the latest version."""
    if expected and expected != stored.metadata.resource_version:
        raise conflict(info, stored.metadata.name)


# ------------------------------------------------------------------ create


def in_namespace(info: KindInfo, obj: K, namespace: str) -> K:
    """``obj`` in the request's namespace: the URL's wins over an empty
    ``metadata.namespace`` and must agree with a set one (cluster-scoped kinds have none)."""
    meta = obj.metadata
    if not info.namespaced:
        if meta.namespace:
            # Kubernetes clears it for cluster-scoped kinds; so do we.
            return attrs.evolve(obj, metadata=attrs.evolve(meta, namespace=""))
        return obj
    if namespace and meta.namespace and meta.namespace != namespace:
        raise BadRequest.at("metadata.namespace",
                            "the namespace of the provided object does not match the "
                            f"namespace sent on the request ({reprlib.repr(meta.namespace)}"
                            f" vs {namespace!r})")
    if not meta.namespace:
        return attrs.evolve(obj, metadata=attrs.evolve(meta, namespace=namespace or "default"))
    return obj


def qos_class(pod: Pod) -> str:
    """Kubernetes' QoS class: Guaranteed (limits == requests for cpu and memory in every
    container), BestEffort (none set), Burstable otherwise."""
    any_set = False
    guaranteed = True
    for c in pod.spec.containers:
        req, lim = c.resources.requests, c.resources.limits
        for res in ("cpu", "memory"):
            limit, request = lim.get(res), req.get(res)
            if limit is None and request is None:
                guaranteed = False
                continue
            any_set = True
            if limit is None:
                guaranteed = False
            elif request is not None and request != limit:
                # Different spellings may still be equal quantities ("1" and "1000m").
                try:
                    guaranteed = guaranteed and parse_quantity(request) == parse_quantity(limit)
                except QuantityError:
                    guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


@functools.lru_cache(maxsize=8)
def _stamp(second: int) -> str:
    # Formatting showed on the create path's profile; a second's stamp is reused.
    return rfc3339(second)


def admit_create(obj: K, now: float, uid: str, toleration_seconds: int = 300) -> K:
    """The object a create stores, before its name is generated: defaults, server-owned
    metadata (``uid`` injected), the status the server owns reset (pods Pending with
    their QoS class, namespaces Active), DefaultTolerationSeconds — then validated.

    >>> from kstate.api.objects import Namespace
    >>> ns = admit_create(Namespace(metadata=ObjectMeta(name="prod")), 0.0, "u-1")
    >>> ns.metadata.uid, ns.metadata.creation_timestamp, ns.status.phase
    ('u-1', '1970-01-01T00:00:00Z', 'Active')
    """
    if obj.metadata.resource_version:
        raise BadRequest.at("metadata.resourceVersion",
                            "resourceVersion should not be set on objects to be created")
    obj = default(obj)
    meta = attrs.evolve(
        obj.metadata,
        uid=uid,
        creation_timestamp=_stamp(int(now)),
        generation=1 if hasattr(obj, "spec") else 0,
        deletion_timestamp="",
        deletion_grace_period_seconds=None,
        extra=obj.metadata.extra.without("managedFields", "selfLink"),
    )
    changes: dict[str, Any] = {"metadata": meta}
    if isinstance(obj, Pod):
        obj = add_default_tolerations(obj, toleration_seconds)  # type: ignore[assignment]
        # The fields of the Pod machine's initial state, from the one mapping.
        fresh = attrs.evolve(obj, status=PodStatus(qos_class=qos_class(obj)))
        changes["status"] = visible.show(fresh, POD.initial, now).status
    elif type(obj).__name__ in RESET_STATUS_ON_CREATE:
        changes["status"] = type(obj.status)()  # type: ignore[attr-defined]
    elif isinstance(obj, Namespace):
        # Kubernetes' namespace strategy: Active, and the ``kubernetes`` finalizer the
        # namespace controller removes once the namespace is empty.
        changes["status"] = NamespaceStatus(phase=lifecycle.namespace_phase("Active"))
        finalizers = obj.spec.finalizers
        if KUBERNETES_FINALIZER not in finalizers:
            changes["spec"] = attrs.evolve(obj.spec, finalizers=(*finalizers,
                                                                 KUBERNETES_FINALIZER))
    created = attrs.evolve(obj, **changes)
    check_valid(created)
    return created


def check_namespace_open(namespace: str, stored: Namespace | None) -> None:
    """Kubernetes' NamespaceLifecycle admission of new content in ``namespace`` (its
    stored object ``stored``): 404 when it does not exist, 403 while it terminates."""
    if stored is None:
        raise NotFound(f'namespaces "{namespace}" not found', key=namespace)
    if stored.metadata.deletion_timestamp:
        raise Forbidden(f"unable to create new content in namespace {namespace} because "
                        "it is being terminated")


def with_generated_name(obj: K, suffix: str) -> K:
    """``metadata.name`` from ``generateName`` and an injected ``suffix`` (the engine
    draws five letters of ``NAME_CHARS``, the checker counts); a set name stays."""
    meta = obj.metadata
    if meta.name or not meta.generate_name:
        return obj
    return attrs.evolve(obj, metadata=attrs.evolve(meta, name=meta.generate_name[:58] + suffix))


# ------------------------------------------------------------------ update


def merge_update(old: KubeObject, new: KubeObject, subresource: str = "") -> KubeObject:
    """The object an update really proposes: ``/status`` keeps everything but the
    status; the main resource keeps server-owned metadata and (for status kinds) the
    stored status, and bumps ``generation`` on a spec change. No finalizer may be added
    to an object being deleted (422)."""
    if subresource == "status":
        return attrs.evolve(old, status=new.status)  # type: ignore[call-arg, attr-defined]
    if subresource == "finalize":
        # Only ``spec.finalizers`` changes (Kubernetes' namespace finalize strategy).
        assert isinstance(old, Namespace) and isinstance(new, Namespace)
        return attrs.evolve(old, spec=attrs.evolve(old.spec, finalizers=new.spec.finalizers))
    if subresource == "binding":
        return new  # built from ``old`` by ``bind`` itself
    new = default(new)
    o, n = old.metadata, new.metadata
    if o.deletion_timestamp and set(n.finalizers) - set(o.finalizers):
        raise InvalidObject(type(old).KIND, o.name, [Cause(
            "metadata.finalizers", "FieldValueForbidden",
            "Forbidden: no new finalizers can be added if the object is being deleted")])
    meta = attrs.evolve(
        n,
        namespace=n.namespace or o.namespace,
        uid=o.uid,
        creation_timestamp=o.creation_timestamp,
        deletion_timestamp=o.deletion_timestamp,
        deletion_grace_period_seconds=o.deletion_grace_period_seconds,
        generation=o.generation,
        resource_version=o.resource_version,
        extra=n.extra.without("managedFields", "selfLink"),
    )
    changes: dict[str, Any] = {"metadata": meta}
    if type(old).__name__ in STATUS_KINDS:
        changes["status"] = old.status  # type: ignore[attr-defined]
    if isinstance(old, Namespace) and isinstance(new, Namespace):
        # spec.finalizers changes only through /finalize (the namespace strategy).
        changes["spec"] = old.spec
        new = attrs.evolve(new, spec=old.spec)
    if hasattr(new, "spec") and new.spec != old.spec:  # type: ignore[attr-defined]
        changes["metadata"] = attrs.evolve(meta, generation=o.generation + 1)
    merged = attrs.evolve(new, **changes)
    if isinstance(merged, Service) and isinstance(old, Service):
        from kstate.api.server.alloc import keep_allocated

        merged = keep_allocated(old, merged)
    return merged


Allocate = Callable[[Service], Service]


def admit_update(old: KubeObject, proposed: KubeObject, subresource: str, now: float,
                 allocate: Allocate | None = None) -> KubeObject:
    """Merge (:func:`merge_update`), validate, allocate a Service's addresses
    (``allocate``: the engine's allocator over the store's Services; the checker's
    Services carry theirs), and check the lifecycle move (``IllegalTransition``, 422).

    A binding skips the pod's update validation: it changes only what :func:`bind` sets
    from a validated Binding on a stored, valid pod (Kubernetes' binding storage).
    """
    new = merge_update(old, proposed, subresource)
    if subresource != "binding":
        check_valid_update(old, new)
    if allocate is not None and isinstance(new, Service):
        new = allocate(new)
    lifecycle.check_change(old, new, now)
    return new


def finalized(obj: KubeObject, now: float) -> bool:
    """Marked for deletion, no finalizer left, and (pods) no grace period running: the
    machine's last step (``finalized`` / ``released`` / ``delete`` with grace 0) removes
    it — an update that leaves an object so is a removal, as in Kubernetes."""
    meta = obj.metadata
    if not meta.deletion_timestamp or meta.finalizers:
        return False
    name = lifecycle.object_name(obj)
    if isinstance(obj, Pod):
        if meta.deletion_grace_period_seconds:
            return False
        return lifecycle.fire("pod", lifecycle.pod_state(obj, now), "delete",
                              {"grace_seconds": 0}, obj=name) == "Deleted"
    if isinstance(obj, ReplicationController):
        return lifecycle.fire("rc", "Deleting", "finalized", obj=name) == "Deleted"
    if isinstance(obj, Service):
        return lifecycle.fire("service", "Deleting", "released", obj=name) == "Deleted"
    if isinstance(obj, Namespace):
        # Gone with its last spec.finalizers entry (the namespace controller removes
        # ``kubernetes`` through /finalize once the namespace is empty).
        if obj.spec.finalizers:
            return False
        return lifecycle.fire("namespace", "Terminating", "finalize",
                              {"finalizers_left": False}, obj=name) == "Gone"
    return True


@attrs.frozen
class UpdatePlan:
    """What an update does: store ``obj`` (``changed``), remove it (``remove``: the last
    finalizer went), or nothing (the merged object equals the stored one)."""

    obj: KubeObject
    changed: bool
    remove: bool = False


def plan_update(old: KubeObject, proposed: KubeObject, now: float, subresource: str = "",
                allocate: Allocate | None = None) -> UpdatePlan:
    """An update of ``old`` (the stored object, its resourceVersion already checked) to
    ``proposed`` at ``now``: :func:`admit_update`, then write, remove or nothing."""
    new = admit_update(old, proposed, subresource, now, allocate)
    if new == old:
        return UpdatePlan(old, changed=False)
    return UpdatePlan(new, changed=True, remove=finalized(new, now))


# ------------------------------------------------------------------ bind, evict


def binding_of(namespace: str, pod: str, node: str, uid: str = "") -> Binding:
    """The Binding a scheduler posts for ``pod`` (``uid``: the pod it decided for)."""
    return Binding(metadata=ObjectMeta(name=pod, namespace=namespace, uid=uid),
                   target=ObjectReference(kind="Node", name=node))


def eviction_of(namespace: str, pod: str, grace_period_seconds: int | None = None,
                uid: str = "") -> Eviction:
    """The Eviction a client posts for ``pod`` (``uid``: a precondition, when given)."""
    return Eviction(metadata=ObjectMeta(name=pod, namespace=namespace),
                    delete_options=DeleteOptions(
                        grace_period_seconds=grace_period_seconds,
                        preconditions=Preconditions(uid=uid) if uid else None))


def binding_request(namespace: str, binding: Binding, name: str = "") -> tuple[str, str, str]:
    """(pod name, node, uid precondition) of a Binding posted for pod ``name`` (400 when
    the two names differ, 422 when the Binding is invalid)."""
    pod_name = name or binding.metadata.name
    if binding.metadata.name and name and binding.metadata.name != name:
        raise BadRequest.at("metadata.name", f"the name of the binding "
                            f"({reprlib.repr(binding.metadata.name)}) does not match the "
                            f"pod name on the URL ({name})")
    check_valid(attrs.evolve(binding, metadata=attrs.evolve(
        binding.metadata, name=pod_name, namespace=namespace or "default")))
    return pod_name, binding.target.name, binding.metadata.uid


def bind(pod: Pod, node: str, uid: str, now: float) -> Pod:
    """The pod assigned to ``node`` (``spec.nodeName`` and the PodScheduled condition);
    :func:`admit_update` with ``subresource="binding"`` then checks the machine's
    ``schedule`` move. 409 when ``uid`` is not the pod's, when the pod is being
    deleted, or when it is already bound (Kubernetes' ``assignPod``)."""
    info = info_of(Pod)
    name = pod.metadata.name
    if uid and uid != pod.metadata.uid:
        raise conflict(info, name, "Precondition failed: UID in precondition: "
                       f"{uid}, UID in object meta: {pod.metadata.uid}")
    if pod.metadata.deletion_timestamp:
        raise conflict(info, name, "pod is being deleted, cannot be assigned to a host")
    if pod.spec.node_name:
        raise conflict(info, name, f"pod {name} is already assigned to node "
                       f'"{pod.spec.node_name}"')
    scheduled = PodCondition(type="PodScheduled", status="True",
                             last_transition_time=_stamp(int(now)))
    return attrs.evolve(
        pod,
        spec=attrs.evolve(pod.spec, node_name=node),
        status=attrs.evolve(pod.status,
                            conditions=set_condition(pod.status.conditions, scheduled)),
    )


def eviction_options(eviction: Eviction | None) -> DeleteOptions:
    """The delete an Eviction asks for (no disruption budgets exist: always allowed)."""
    return (eviction.delete_options if eviction is not None else None) or DeleteOptions()


# ------------------------------------------------------------------ delete


def check_delete_request(info: KindInfo, name: str, options: DeleteOptions) -> None:
    """The request alone: valid DeleteOptions (422); the default namespaces may not be
    deleted (403, Kubernetes' NamespaceLifecycle admission)."""
    check_valid(options)
    if info.kind == "Namespace" and name in DEFAULT_NAMESPACES:
        raise Forbidden(f'namespaces "{name}" is forbidden: this namespace may not be '
                        "deleted")


def check_preconditions(obj: KubeObject, preconditions: Preconditions | None) -> None:
    """A delete's uid and resourceVersion preconditions (409 when they do not hold)."""
    if preconditions is None:
        return
    info, meta = info_of(obj), obj.metadata
    if preconditions.uid and preconditions.uid != meta.uid:
        raise conflict(info, meta.name, f"Precondition failed: UID in precondition: "
                                        f"{preconditions.uid}, UID in object meta: {meta.uid}")
    rv = preconditions.resource_version
    if rv and rv != meta.resource_version:
        raise conflict(info, meta.name,
                       f"Precondition failed: ResourceVersion in precondition: {rv}, "
                       f"ResourceVersion in object meta: {meta.resource_version}")


def propagation_of(options: DeleteOptions) -> str:
    """The propagation policy a delete asks for. Without one (nor the deprecated
    ``orphanDependents``) it is Orphan: Kubernetes' core/v1 ReplicationController
    strategy defaults to OrphanDependents for compatibility (kubectl always sends
    Background, and so do the checker's scenarios unless they say otherwise)."""
    if options.propagation_policy:
        return options.propagation_policy
    if options.orphan_dependents is not None:
        return "Orphan" if options.orphan_dependents else "Background"
    return "Orphan"


@attrs.frozen
class DeletePlan:
    """What a delete does to the stored object: ``remove`` it now; or store ``updated``
    (marked for deletion); or neither (``updated is None``: nothing changes — already
    on its way out, or a longer grace period asked of a terminating pod)."""

    remove: bool
    updated: KubeObject | None = None


def plan_delete(obj: KubeObject, options: DeleteOptions, now: float) -> DeletePlan:
    """Kubernetes' deletion of ``obj`` (stored, preconditions checked), decided by its
    lifecycle machine.

    Pods: unbound and finished pods and grace 0 go at once, others enter Terminating
    with ``deletionTimestamp = now + grace`` (grace: the request's, else the pod's
    ``terminationGracePeriodSeconds``, else 30); a terminating pod only shortens (see
    :func:`_shorten`). RCs: Background removes now (the garbage collector takes the
    pods), Foreground and Orphan keep the RC behind their finalizer. Namespaces are
    marked Terminating (the namespace controller empties and finalizes them); a
    second delete removes one with no ``spec.finalizers`` left, else 409. Anything
    else with finalizers is marked; without, removed. Every mark bumps a positive ``generation``.

    >>> from kstate.api.objects import PodSpec
    >>> pod = Pod(metadata=ObjectMeta(name="p", namespace="default", generation=1),
    ...           spec=PodSpec(node_name="n1"))
    >>> plan = plan_delete(pod, DeleteOptions(grace_period_seconds=10), 0.0)
    >>> m = plan.updated.metadata
    >>> m.deletion_timestamp, m.deletion_grace_period_seconds, m.generation
    ('1970-01-01T00:00:10Z', 10, 2)
    """
    meta = obj.metadata
    name = lifecycle.object_name(obj)
    if isinstance(obj, Pod):
        return _delete_pod(obj, options.grace_period_seconds, now)
    if isinstance(obj, Namespace):
        return _delete_namespace(obj, now)
    if meta.deletion_timestamp:
        return DeletePlan(False)  # already being deleted; the finalizers' owners finish
    if isinstance(obj, ReplicationController):
        propagation = propagation_of(options)
        state = lifecycle.fire("rc", lifecycle.rc_state(obj), "delete",
                               {"propagation": propagation}, obj=name)
        if state == "Deleted":
            return _remove_or_mark(obj, now)
        finalizer = ORPHAN_FINALIZER if propagation == "Orphan" else FOREGROUND_FINALIZER
        finalizers = meta.finalizers if finalizer in meta.finalizers else (
            *meta.finalizers, finalizer)
        return DeletePlan(False, _mark(obj, now, finalizers=finalizers))
    if isinstance(obj, Service):
        state = lifecycle.fire("service", lifecycle.service_state(obj), "delete", obj=name)
        if meta.finalizers:
            return DeletePlan(False, _mark(obj, now))
        lifecycle.fire("service", state, "released", obj=name)
        return DeletePlan(True)
    if isinstance(obj, Node):
        lifecycle.fire("node", lifecycle.node_state(obj), "remove", obj=name)
    return _remove_or_mark(obj, now)


#: Kubernetes' answer to a delete of a namespace still being emptied.
NAMESPACE_PURGE_PENDING = ("The system is ensuring all content is removed from this "
                           "namespace.  Upon completion, this namespace will automatically "
                           "be purged by the system.")


def _delete_namespace(ns: Namespace, now: float) -> DeletePlan:
    """Kubernetes' namespace REST delete: the first marks it Terminating (the namespace
    controller empties it); a later one removes it only when ``spec.finalizers`` is
    empty, else 409."""
    meta = ns.metadata
    if meta.deletion_timestamp:
        if ns.spec.finalizers:
            raise conflict(info_of(ns), meta.name, NAMESPACE_PURGE_PENDING)
        return DeletePlan(False) if meta.finalizers else DeletePlan(True)
    state = lifecycle.fire("namespace", lifecycle.namespace_state(ns), "delete",
                           obj=lifecycle.object_name(ns))
    marked = _mark(ns, now)
    return DeletePlan(False, attrs.evolve(marked, status=attrs.evolve(
        ns.status, phase=lifecycle.namespace_phase(state))))


def finalize_request(ns: Namespace, finalizers: tuple[str, ...]) -> Namespace:
    """The object a ``/finalize`` write proposes: ``ns`` with ``spec.finalizers`` set
    (what the namespace controller sends once the namespace is empty)."""
    return attrs.evolve(ns, spec=attrs.evolve(ns.spec, finalizers=finalizers))


def _remove_or_mark(obj: KubeObject, now: float) -> DeletePlan:
    """Gone now, unless finalizers hold it (then marked, removed with the last one)."""
    return DeletePlan(False, _mark(obj, now)) if obj.metadata.finalizers else DeletePlan(True)


def _mark(obj: K, now: float, *, grace: int = 0,
          finalizers: tuple[str, ...] | None = None) -> K:
    """Marked for deletion at ``now + grace``; a positive generation is bumped
    (Kubernetes' BeforeDelete / markAsDeleting: controllers must see the change)."""
    meta = obj.metadata
    return attrs.evolve(obj, metadata=attrs.evolve(
        meta,
        deletion_timestamp=rfc3339(now + grace),
        deletion_grace_period_seconds=grace,
        finalizers=meta.finalizers if finalizers is None else finalizers,
        generation=meta.generation + 1 if meta.generation else 0,
    ))


def _delete_pod(pod: Pod, requested: int | None, now: float) -> DeletePlan:
    meta = pod.metadata
    if meta.deletion_timestamp and meta.deletion_grace_period_seconds:
        return _shorten(pod, requested, now)
    grace = requested
    if grace is None:
        spec_grace = pod.spec.termination_grace_period_seconds
        grace = DEFAULT_GRACE_SECONDS if spec_grace is None else spec_grace
    if meta.deletion_timestamp:
        # Marked with grace 0 already (a force delete held by finalizers): nothing to
        # wait for — removed once no finalizer holds it (BeforeDelete: not graceful).
        return DeletePlan(False) if meta.finalizers else DeletePlan(True)
    state = lifecycle.pod_state(pod, now)
    after = lifecycle.fire("pod", state, "delete", {"grace_seconds": grace},
                           obj=lifecycle.object_name(pod))
    if after == "Deleted":
        return _remove_or_mark(pod, now)
    return DeletePlan(False, _mark(pod, now, grace=grace))


def _shorten(pod: Pod, requested: int | None, now: float) -> DeletePlan:
    """A second delete of a terminating pod (Kubernetes' ``rest.BeforeDelete``): only a
    shorter grace period changes anything. The deadline moves by the difference —
    ``old deletionTimestamp - old grace + new grace``, i.e. counted from the first
    delete's time, not this one's — and grace 0 removes the pod unless finalizers hold
    it."""
    meta = pod.metadata
    current = meta.deletion_grace_period_seconds or 0
    if requested is None or requested >= current:
        return DeletePlan(False)  # graceful deletion pending: nothing changes
    deadline = parse_rfc3339(meta.deletion_timestamp) - current + requested
    if requested == 0:
        lifecycle.fire("pod", lifecycle.pod_state(pod, now), "delete", {"grace_seconds": 0},
                       obj=lifecycle.object_name(pod))
        if not meta.finalizers:
            return DeletePlan(True)
    return DeletePlan(False, attrs.evolve(pod, metadata=attrs.evolve(
        meta, deletion_timestamp=rfc3339(deadline), deletion_grace_period_seconds=requested)))


__all__ = [
    "CREATE_ON_UPDATE",
    "DEFAULT_NAMESPACES",
    "FOREGROUND_FINALIZER",
    "NAMESPACE_PURGE_PENDING",
    "NAME_CHARS",
    "ORPHAN_FINALIZER",
    "RESET_STATUS_ON_CREATE",
    "STATUS_KINDS",
    "DeletePlan",
    "UpdatePlan",
    "admit_create",
    "admit_update",
    "bind",
    "binding_of",
    "binding_request",
    "check_delete_request",
    "check_namespace_open",
    "check_preconditions",
    "check_resource_version",
    "check_subresource",
    "check_valid",
    "check_valid_update",
    "conflict",
    "creates_on_update",
    "eviction_of",
    "eviction_options",
    "existing",
    "finalize_request",
    "finalized",
    "in_namespace",
    "info_of",
    "merge_update",
    "not_found",
    "plan_delete",
    "plan_update",
    "propagation_of",
    "qos_class",
    "with_generated_name",
]
