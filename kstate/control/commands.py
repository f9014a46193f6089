"""What a reconciler may ask for: the command vocabulary of every controller.

Where it sits: the output of every pure ``reconcile(view, now) -> list[Command]`` in
``kstate/control`` (replication, endpoints, node lifecycle, GC, scheduler). How they are
carried out — the API requests with their preconditions, their order, what a failure
skips, what follows — is planned once, in ``execution.py``; the engine's executor
(``executor.py``) and the model checker (``kstate.verify.system``) only do the I/O.

Why a vocabulary instead of API calls: a reconciler that returns data can be unit-tested
as a function, explored exhaustively by the checker, and replayed; one that performs I/O
can only be mocked. Every command that changes an object carries the preconditions
(uid, resourceVersion) that make it safe against a stale cache: a lost race is a 409,
the key is requeued, and the next sync starts from fresher data.
"""

from __future__ import annotations

from typing import Literal

import attrs

from kstate.api.meta import KubeObject, ObjectReference

# Commands cache their hashes: the model checker looks up the same command lists (a
# reconciler's memoised answer) in its memo of the executors' plans again and again.


@attrs.frozen(cache_hash=True)
class Create:
    """Create ``obj`` (``generateName`` allowed: the API server picks the name).

    ``owner`` receives a SuccessfulCreate / FailedCreate event; ``expectation`` is the
    controller key whose pending creations this one counts against.
    """

    obj: KubeObject
    owner: ObjectReference | None = None
    expectation: str = ""


@attrs.frozen(cache_hash=True)
class Update:
    """Replace ``obj``; its ``metadata.resourceVersion`` is the compare-and-swap
    precondition. ``subresource="status"`` writes only the status, ``"finalize"`` only
    a Namespace's ``spec.finalizers`` (the namespace controller)."""

    obj: KubeObject
    subresource: Literal["", "status", "finalize"] = ""


@attrs.frozen(cache_hash=True)
class Delete:
    """Delete an object, guarded by its uid (and resourceVersion when given)."""

    kind: str
    namespace: str
    name: str
    uid: str = ""
    resource_version: str = ""
    grace_seconds: int | None = None
    propagation: Literal["Background", "Foreground", "Orphan"] | None = None
    owner: ObjectReference | None = None
    expectation: str = ""


@attrs.frozen(cache_hash=True)
class Bind:
    """Bind a pod to a node through the ``/binding`` subresource (scheduler)."""

    namespace: str
    name: str
    uid: str
    node: str


@attrs.frozen(cache_hash=True)
class Evict:
    """Evict a pod through the ``/eviction`` subresource (node lifecycle, drain)."""

    namespace: str
    name: str
    uid: str
    reason: str = ""


@attrs.frozen(cache_hash=True)
class DeleteIfGone:
    """Delete ``dependent`` because the object it refers to (its owner, or its node)
    looks absent from the cache.

    A cache can lag, so the executor first confirms with a live read that no object
    named like ``gone`` with ``gone.uid`` (when set) exists, then deletes the dependent
    guarded by its uid — Kubernetes' garbage collector and pod GC do the same check.
    """

    dependent: ObjectReference
    gone: ObjectReference
    propagation: Literal["Background", "Foreground", "Orphan"] = "Background"
    grace_seconds: int | None = None


@attrs.frozen(cache_hash=True)
class Record:
    """Emit an Event about ``involved`` (type Normal or Warning)."""

    involved: ObjectReference
    reason: str
    message: str
    type: Literal["Normal", "Warning"] = "Normal"


@attrs.frozen(cache_hash=True)
class Expect:
    """Controller-local: remember pending creations/deletions for ``key`` *before* the
    API calls are made, so a fast watch event cannot be missed (see expectations.py)."""

    key: str
    adds: int = 0
    deletes: frozenset[str] = frozenset()


@attrs.frozen(cache_hash=True)
class Remember:
    """Controller-local: keep ``value`` under ``key`` for the next sync (e.g. when the
    node lifecycle controller last used its eviction rate limit). Lost on restart, like
    every in-memory controller state; the model checker explores that loss."""

    key: str
    value: float


Command = (Create | Update | Delete | Bind | Evict | DeleteIfGone | Record | Expect
           | Remember)


# ----------------------------------------------------------------------- outcomes

Outcome = Literal["ok", "conflict", "not_found", "exists", "invalid", "unavailable"]
