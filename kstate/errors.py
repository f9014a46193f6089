"""Domain errors shared by every layer.

Where it sits: imported by everyone (machines, store, api, control, node, verify, cli).
Why it exists: one vocabulary of failures so that a store conflict, an illegal lifecycle
trigger or a validation failure reads the same in the daemon, the model checker and the
CLI, and the API server can map each to exactly one Kubernetes ``Status`` code without
guessing. Every error carries enough to say *what* failed, *where*, and *how to fix it*.
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs


class KstateError(Exception):
    """Base of every error kstate raises on purpose.

    ``code`` is the HTTP status the API server answers with; ``reason`` is the
    Kubernetes ``Status.reason``. Anything *not* a ``KstateError`` reaching a user
    boundary is a bug.
    """

    code: int = 500
    reason: str = "InternalError"


# --------------------------------------------------------------------------- lifecycle


class MachineDefinitionError(KstateError):
    """A lifecycle definition is malformed (found when the machine is built)."""

    reason = "InvalidMachine"

    def __init__(self, machine: str, problems: Iterable[str]) -> None:
        self.machine = machine
        self.problems = tuple(problems)
        listed = "; ".join(self.problems)
        super().__init__(f"machine {machine!r} is invalid: {listed}")


class IllegalTransition(KstateError):
    """A trigger was fired in a state where the lifecycle does not allow it.

    Raised identically by the engine (``transitions`` machines) and the model checker
    (compiled tables) — the message names the object, its state and the trigger.
    """

    code = 422
    reason = "Invalid"

    def __init__(
        self,
        machine: str,
        obj: str,
        state: str,
        trigger: str,
        detail: str = "",
    ) -> None:
        self.machine = machine
        self.obj = obj
        self.state = state
        self.trigger = trigger
        msg = f"{machine} {obj}: trigger {trigger!r} is not allowed in state {state!r}"
        if detail:
            msg += f" ({detail})"
        super().__init__(msg)


# --------------------------------------------------------------------------- validation


@attrs.frozen
class Cause:
    """One validation failure, shaped like Kubernetes' ``StatusCause``.

    ``field`` is a JSON path such as ``spec.template.spec.containers[0].image``;
    ``reason`` is one of Kubernetes' cause types (``FieldValueRequired``,
    ``FieldValueInvalid``, ``FieldValueNotSupported``, ``FieldValueDuplicate``,
    ``FieldValueTypeInvalid``, ``FieldValueUnknown``).
    """

    field: str
    reason: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


class InvalidObject(KstateError):
    """An object failed validation; carries every cause found, not only the first."""

    code = 422
    reason = "Invalid"

    def __init__(self, kind: str, name: str, causes: Iterable[Cause]) -> None:
        self.kind = kind
        self.name = name
        self.causes = tuple(causes)
        listed = "; ".join(str(c) for c in self.causes)
        what = f"{kind} {name!r}" if name else kind
        super().__init__(f"{what} is invalid: {listed}")


class ManifestError(KstateError):
    """A manifest file could not be read as Kubernetes objects (bad YAML, wrong shape).

    ``source`` is the file, ``index`` the 0-based YAML document number.
    """

    code = 400
    reason = "BadRequest"

    def __init__(
        self,
        message: str,
        *,
        source: str = "",
        index: int | None = None,
        causes: Iterable[Cause] = (),
    ) -> None:
        self.source = source
        self.index = index
        self.causes = tuple(causes)
        where = source or "<input>"
        if index is not None:
            where += f" (document {index})"
        super().__init__(f"{where}: {message}")


# --------------------------------------------------------------------------- store


class StoreError(KstateError):
    """Base of the store backend's typed errors."""

    def __init__(self, message: str, *, key: str = "") -> None:
        self.key = key
        super().__init__(message)


class KeyExists(StoreError):
    """``create`` of a key that already exists (409 AlreadyExists)."""

    code = 409
    reason = "AlreadyExists"


class Conflict(StoreError):
    """A compare-and-swap lost: the key's mod revision is not the expected one (409)."""

    code = 409
    reason = "Conflict"


class GuardChanged(Conflict):
    """A guarded ``create`` lost: the guard key no longer has the revision the caller
    read (it was written or deleted since), so nothing was written (409). The caller
    re-reads the guard and decides again."""


class NotFound(StoreError):
    """The key does not exist (404)."""

    code = 404
    reason = "NotFound"


class Compacted(StoreError):
    """The requested revision was compacted away, or a watcher fell too far behind (410).

    The remedy is always the same: relist, then watch from the list's revision.
    """

    code = 410
    reason = "Expired"


class Unavailable(StoreError):
    """The backend cannot be reached or is not accepting writes (503)."""

    code = 503
    reason = "ServiceUnavailable"


class InvalidKey(StoreError):
    """A key outside ``/registry/...``, empty, or otherwise malformed (400)."""

    code = 400
    reason = "BadRequest"


class ValueTooLarge(StoreError):
    """A value over the 1.5 MB object limit Kubernetes enforces (413)."""

    code = 413
    reason = "RequestEntityTooLarge"


class FutureRevision(StoreError):
    """A read or watch asked for a revision the store has not reached yet (504 in k8s;
    kstate answers 400 because it is the caller's mistake, not a timeout)."""

    code = 400
    reason = "BadRequest"


class StoreCorrupt(StoreError):
    """The backing file is not a kstate store, or is damaged (503)."""

    code = 503
    reason = "ServiceUnavailable"


class InvalidContinueToken(StoreError):
    """A list ``continue`` token that this store did not issue for this prefix (400)."""

    code = 400
    reason = "BadRequest"


# --------------------------------------------------------------------------- api server


class ApiError(KstateError):
    """Base of the API server's request errors (the HTTP status is the whole story).

    ``causes`` become ``Status.details.causes`` (the unknown fields of a strict decode,
    for instance); ``retry_after`` becomes ``Retry-After`` / ``retryAfterSeconds``.
    """

    def __init__(self, message: str, *, causes: Iterable[Cause] = (),
                 retry_after: int = 0) -> None:
        self.causes = tuple(causes)
        self.retry_after = retry_after
        super().__init__(message)


class BadRequest(ApiError):
    """Malformed request: bad JSON, bad query parameter, unknown field under Strict (400)."""

    code = 400
    reason = "BadRequest"

    @classmethod
    def at(cls, field: str, message: str) -> BadRequest:
        """A 400 about one field of the request's body, named in ``details.causes``."""
        return cls(message, causes=[Cause(field, "FieldValueInvalid", message)])


class Unauthorized(ApiError):
    """No bearer token, or one the server does not know (401)."""

    code = 401
    reason = "Unauthorized"


class Forbidden(ApiError):
    """Authenticated, but the user's role does not allow the verb on the resource, or the
    namespace is being terminated (403)."""

    code = 403
    reason = "Forbidden"


class MethodNotAllowed(ApiError):
    """The resource exists but does not support this verb (405)."""

    code = 405
    reason = "MethodNotAllowed"


class NotAcceptable(ApiError):
    """No media type in ``Accept`` that the server can produce (406)."""

    code = 406
    reason = "NotAcceptable"


class RequestTooLarge(ApiError):
    """A request body over the server's limit (413)."""

    code = 413
    reason = "RequestEntityTooLarge"


class UnsupportedMediaType(ApiError):
    """A body in a ``Content-Type`` the server does not read (415)."""

    code = 415
    reason = "UnsupportedMediaType"


class ServerTimeout(ApiError):
    """The server could not finish in time (504); safe to retry."""

    code = 504
    reason = "Timeout"


class InternalError(ApiError):
    """A bug in the server, reported as a ``Status`` instead of a dropped connection (500)."""

    code = 500
    reason = "InternalError"


# --------------------------------------------------------------------------- verification


class ModelError(KstateError):
    """A model handed to the checker, or the checker's options, cannot be used.

    Unknown property kind, an unhashable state, no initial states, an impossible bound,
    a malformed result/trace document... ``field`` names the culprit (``"workers"``,
    ``"property 'safe'"``, ``"trace[3].action"``) so the CLI can print it and exit 2.
    """

    code = 400
    reason = "BadRequest"

    def __init__(self, message: str, *, model: str = "", field: str = "") -> None:
        self.model = model
        self.field = field
        where = ": ".join(part for part in (model, field) if part)
        super().__init__(f"{where}: {message}" if where else message)


# --------------------------------------------------------------------------- runtime


class RuntimeAdapterError(KstateError):
    """A container runtime call failed (engine not reachable, image missing, ...)."""

    code = 503
    reason = "ServiceUnavailable"


class RuntimeUnreachable(RuntimeAdapterError):
    """The container engine does not answer (dockerd stopped, socket missing, fault)."""


class ImageNotPresent(RuntimeAdapterError):
    """An image is not on the node and could not be pulled under its pull policy.

    ``reason`` is the Kubernetes waiting reason the agent shows: ``ErrImageNeverPull``
    for ``imagePullPolicy: Never``, ``ErrImagePull`` otherwise (the agent turns repeats
    into ``ImagePullBackOff``).
    """

    code = 404

    def __init__(self, image: str, pull_policy: str, detail: str = "") -> None:
        self.image = image
        self.pull_policy = pull_policy
        self.reason = "ErrImageNeverPull" if pull_policy == "Never" else "ErrImagePull"
        msg = f"image {image!r} is not present (imagePullPolicy {pull_policy})"
        if detail:
            msg += f": {detail}"
        super().__init__(msg)


class ContainerNotFound(RuntimeAdapterError):
    """No container (or sandbox, per ``kind``) with this id exists in the runtime."""

    code = 404
    reason = "NotFound"

    def __init__(self, container_id: str, kind: str = "container") -> None:
        self.container_id = container_id
        self.kind = kind
        super().__init__(f"{kind} {container_id!r} not found in the runtime")


class ContainerAlreadyExists(RuntimeAdapterError):
    """A container of the same pod, name and attempt exists already (never a duplicate)."""

    code = 409
    reason = "AlreadyExists"

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"container {name!r} already exists in the runtime")


class ContainerNotRunning(RuntimeAdapterError):
    """The operation (exec, kill) needs a running container."""

    code = 409
    reason = "Conflict"

    def __init__(self, container_id: str) -> None:
        self.container_id = container_id
        super().__init__(f"container {container_id!r} is not running")


class CreateContainerError(RuntimeAdapterError):
    """The runtime refused to create a container (bad limits, sandbox not ready, ...)."""

    code = 422
    reason = "CreateContainerError"

    def __init__(self, name: str, detail: str) -> None:
        self.name = name
        self.detail = detail
        super().__init__(f"cannot create container {name!r}: {detail}")


class ContainerCannotRun(RuntimeAdapterError):
    """Start failed before the process ran (e.g. command not found).

    The container stays inspectable as exited with reason ``ContainerCannotRun``.
    """

    code = 422
    reason = "ContainerCannotRun"

    def __init__(self, container_id: str, detail: str) -> None:
        self.container_id = container_id
        self.detail = detail
        super().__init__(f"container {container_id!r} cannot run: {detail}")


class ExecTimeout(RuntimeAdapterError):
    """An exec (probe) did not finish within its timeout."""

    code = 504
    reason = "Timeout"

    def __init__(self, container_id: str, command: Iterable[str], timeout: float) -> None:
        self.container_id = container_id
        self.command = tuple(command)
        self.timeout = timeout
        super().__init__(
            f"exec {list(self.command)!r} in container {container_id!r} "
            f"timed out after {timeout:g} s"
        )


class UsageError(KstateError):
    """Bad command-line input (CLI exits 2)."""

    code = 400
    reason = "BadRequest"
