"""Metadata every object shares, and the API machinery kinds (Status, List, DeleteOptions).

Where it sits: ``ObjectMeta`` is embedded in every kind of ``objects.py``; ``Status`` is
what the API server answers errors with; ``List`` carries several objects in one
document (``kubectl get -o yaml``, multi-object manifests); ``DeleteOptions`` and
``Preconditions`` travel with deletes and evictions.

Fields follow Kubernetes' JSON names and order (``meta/v1``); see ``codec.py`` for how
the attributes map onto JSON and ``docs/objects.md`` for conventions.
"""

# Every default here is immutable (frozen attrs values, FrozenDict, tuples), so sharing
# one instance between objects is safe: RUF009 does not know ``codec.field``.
# ruff: noqa: RUF009

from __future__ import annotations

import attrs

from kstate.api.codec import AnyObject, Int32, Model, field
from kstate.api.frozen import EMPTY, FrozenDict

RFC3339 = "rfc3339"


@attrs.frozen(cache_hash=True, repr=False)
class OwnerReference(Model):
    """Who owns an object (the RC of its pods); ``controller`` marks the managing owner."""

    api_version: str = field("", required=True)
    kind: str = field("", required=True)
    name: str = field("", required=True)
    uid: str = field("", required=True)
    controller: bool | None = None
    block_owner_deletion: bool | None = None


@attrs.frozen(cache_hash=True, repr=False)
class ObjectMeta(Model):
    """``metadata`` of every object."""

    UNMODELLED = frozenset({"selfLink", "managedFields"})

    name: str = ""
    generate_name: str = ""
    namespace: str = ""
    uid: str = ""
    resource_version: str = ""
    generation: int = field(0, omit_zero=True)
    creation_timestamp: str = field("", fmt=RFC3339)
    deletion_timestamp: str = field("", fmt=RFC3339)
    deletion_grace_period_seconds: int | None = field(None, ge=0)
    labels: FrozenDict[str, str] = field(EMPTY, keys="label-key", values="label-value")
    annotations: FrozenDict[str, str] = field(EMPTY, keys="annotation-key")
    owner_references: tuple[OwnerReference, ...] = ()
    finalizers: tuple[str, ...] = field((), fmt="qualified-name")


@attrs.frozen(cache_hash=True, repr=False)
class KubeObject(Model):
    """Base of every kind with ``ObjectMeta`` (Pod, Service, ..., Binding, Scale)."""

    metadata: ObjectMeta = ObjectMeta()


@attrs.frozen(cache_hash=True, repr=False)
class ObjectReference(Model):
    """A pointer to another object (event subjects, endpoint targets, bindings)."""

    kind: str = ""
    namespace: str = ""
    name: str = ""
    uid: str = ""
    api_version: str = ""
    resource_version: str = ""
    field_path: str = ""


@attrs.frozen(cache_hash=True, repr=False)
class ListMeta(Model):
    """``metadata`` of lists and of ``Status``."""

    UNMODELLED = frozenset({"selfLink"})

    resource_version: str = ""
    continue_: str = ""
    remaining_item_count: int | None = None


@attrs.frozen(cache_hash=True, repr=False)
class StatusCause(Model):
    """One cause of a failure; ``field`` is the JSON path (Kubernetes' ``StatusCause``)."""

    reason: str = ""
    message: str = ""
    field: str = ""


@attrs.frozen(cache_hash=True, repr=False)
class StatusDetails(Model):
    """What a ``Status`` is about: the object and, for 422s, every cause."""

    name: str = ""
    group: str = ""
    kind: str = ""
    uid: str = ""
    causes: tuple[StatusCause, ...] = ()
    retry_after_seconds: Int32 = field(0, omit_zero=True)


@attrs.frozen(cache_hash=True, repr=False)
class Status(Model):
    """The API server's answer to a failed (or some successful) call."""

    KIND = "Status"
    API_VERSION = "v1"

    metadata: ListMeta = ListMeta()
    status: str = field("", enum=("Success", "Failure"))
    message: str = ""
    reason: str = ""
    details: StatusDetails | None = None
    code: Int32 = field(0, omit_zero=True)


@attrs.frozen(cache_hash=True, repr=False)
class Preconditions(Model):
    """Delete only if the object still has this uid / resourceVersion."""

    uid: str = ""
    resource_version: str = ""


@attrs.frozen(cache_hash=True, repr=False)
class DeleteOptions(Model):
    """Options of a delete (grace period, propagation); its TypeMeta is optional."""

    UNMODELLED = frozenset({"ignoreStoreReadErrorWithClusterBreakingPotential"})

    kind: str = ""
    api_version: str = ""
    grace_period_seconds: int | None = field(None, ge=0)
    preconditions: Preconditions | None = None
    orphan_dependents: bool | None = None
    propagation_policy: str = field("", enum=("Orphan", "Background", "Foreground"))
    dry_run: tuple[str, ...] = ()


@attrs.frozen(cache_hash=True, repr=False)
class List(Model):
    """``v1 List``: objects of any kind. Registered kinds decode to their classes, others
    stay frozen JSON; manifests expand it into its items."""

    KIND = "List"
    API_VERSION = "v1"

    metadata: ListMeta = ListMeta()
    items: tuple[AnyObject, ...] = ()


def status_cause(path: str, reason: str, message: str) -> StatusCause:
    """A ``StatusCause`` (helper for building 422 answers from ``errors.Cause``)."""
    return StatusCause(reason=reason, message=message, field=path)

