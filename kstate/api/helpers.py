"""Small helpers that make reconciler code over immutable objects read well.

Where it sits: used by controllers, the scheduler, node agents and the model checker's
system model — everyone that derives a new object from an old one. Each helper returns a
new value; nothing is mutated.

>>> from kstate.api.meta import ObjectMeta
>>> from kstate.api.objects import Pod
>>> pod = with_status(Pod(metadata=ObjectMeta(name="web", namespace="default")),
...                   phase="Running")
>>> pod.status.phase, key_of(pod)
('Running', 'default/web')
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, TypeVar

import attrs

from kstate.api.meta import (
    KubeObject,
    ObjectReference,
    OwnerReference,
    Status,
    StatusCause,
    StatusDetails,
)
from kstate.api.registry import REGISTRY
from kstate.errors import InvalidObject, KstateError, ManifestError

K = TypeVar("K", bound=KubeObject)


def with_meta(obj: K, **changes: Any) -> K:
    """``obj`` with ``metadata`` fields replaced: ``with_meta(pod, resource_version="7")``."""
    return attrs.evolve(obj, metadata=attrs.evolve(obj.metadata, **changes))


def with_spec(obj: K, **changes: Any) -> K:
    """``obj`` with ``spec`` fields replaced: ``with_spec(pod, node_name="node-1")``."""
    spec = obj.spec  # type: ignore[attr-defined]
    return attrs.evolve(obj, **{"spec": attrs.evolve(spec, **changes)})


def with_status(obj: K, **changes: Any) -> K:
    """``obj`` with ``status`` fields replaced: ``with_status(pod, phase="Running")``."""
    status = obj.status  # type: ignore[attr-defined]
    return attrs.evolve(obj, **{"status": attrs.evolve(status, **changes)})


def with_labels(obj: K, **labels: str) -> K:
    """``obj`` with labels added or replaced."""
    return with_meta(obj, labels=obj.metadata.labels.merge(labels))


def with_annotations(obj: K, **annotations: str) -> K:
    """``obj`` with annotations added or replaced (keys with '/' need ``**{...}``)."""
    return with_meta(obj, annotations=obj.metadata.annotations.merge(annotations))


def key_of(obj: KubeObject) -> str:
    """The work-queue key: ``namespace/name`` (just ``name`` when cluster-scoped)."""
    meta = obj.metadata
    return f"{meta.namespace}/{meta.name}" if meta.namespace else meta.name


def is_deleting(obj: KubeObject) -> bool:
    """Whether deletion has begun (``deletionTimestamp`` is set)."""
    return bool(obj.metadata.deletion_timestamp)


def object_reference(obj: KubeObject, field_path: str = "") -> ObjectReference:
    """An ``ObjectReference`` to ``obj`` (event subjects, endpoint targets)."""
    info = REGISTRY.for_class(type(obj))
    meta = obj.metadata
    return ObjectReference(
        kind=info.kind,
        namespace=meta.namespace,
        name=meta.name,
        uid=meta.uid,
        api_version=info.api_version,
        resource_version=meta.resource_version,
        field_path=field_path,
    )


def owner_reference(owner: KubeObject, *, controller: bool = True) -> OwnerReference:
    """A reference from a dependent to ``owner`` (controller refs block owner deletion,
    as Kubernetes' controllers set them)."""
    info = REGISTRY.for_class(type(owner))
    return OwnerReference(
        api_version=info.api_version,
        kind=info.kind,
        name=owner.metadata.name,
        uid=owner.metadata.uid,
        controller=controller or None,
        block_owner_deletion=controller or None,
    )


def controller_of(obj: KubeObject) -> OwnerReference | None:
    """The owner reference with ``controller: true``, if any."""
    for ref in obj.metadata.owner_references:
        if ref.controller:
            return ref
    return None


def selector_matches(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    """Equality-based selector match: every ``key=value`` of ``selector`` is in ``labels``.

    An empty selector matches everything (Kubernetes' ``SelectorFromSet({})``); callers
    for which "no selector" means "nothing" (Services) check that first.

    >>> selector_matches({"app": "web"}, {"app": "web", "tier": "front"})
    True
    """
    # A loop, not all(genexpr), which costs twice as much: this runs per pod per RC sync.
    for key, value in selector.items():  # noqa: SIM110
        if labels.get(key) != value:
            return False
    return True


class _Condition(Protocol):
    @property
    def type(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def last_transition_time(self) -> str: ...


C = TypeVar("C", bound=_Condition)


def get_condition(conditions: tuple[C, ...], type_: str) -> C | None:
    """The condition of ``type_`` (e.g. "Ready"), or ``None``."""
    for c in conditions:
        if c.type == type_:
            return c
    return None


def set_condition(conditions: tuple[C, ...], new: C) -> tuple[C, ...]:
    """``conditions`` with ``new`` replacing the one of the same type (or appended).

    As in Kubernetes, ``lastTransitionTime`` only moves when ``status`` changes: if the
    status is unchanged the old transition time is kept.
    """
    out = []
    found = False
    for c in conditions:
        if c.type != new.type:
            out.append(c)
            continue
        found = True
        if c.status == new.status and c.last_transition_time:
            new = attrs.evolve(new, last_transition_time=c.last_transition_time)  # type: ignore[misc]
        out.append(new)
    if not found:
        out.append(new)
    return tuple(out)


def status_from_error(error: KstateError, *, kind: str = "", name: str = "") -> Status:
    """The Kubernetes ``Status`` answering ``error``: code and reason from the error class,
    every validation cause in ``details.causes`` (what kubectl prints for a 422).

    >>> from kstate.errors import Cause, InvalidObject
    >>> s = status_from_error(InvalidObject("Pod", "web", [Cause("spec.containers",
    ...                       "FieldValueRequired", "Required value")]))
    >>> s.code, s.reason, s.details.causes[0].field
    (422, 'Invalid', 'spec.containers')
    """
    causes: tuple[StatusCause, ...] = ()
    if isinstance(error, InvalidObject | ManifestError):
        causes = tuple(StatusCause(reason=c.reason, message=c.message, field=c.field)
                       for c in error.causes)
    if isinstance(error, InvalidObject):
        kind, name = kind or error.kind, name or error.name
    details = StatusDetails(name=name, kind=kind, causes=causes) if (
        name or kind or causes) else None
    return Status(status="Failure", message=str(error), reason=error.reason,
                  details=details, code=error.code)


__all__ = [
    "controller_of",
    "get_condition",
    "is_deleting",
    "key_of",
    "object_reference",
    "owner_reference",
    "selector_matches",
    "set_condition",
    "status_from_error",
    "with_annotations",
    "with_labels",
    "with_meta",
    "with_spec",
    "with_status",
]
