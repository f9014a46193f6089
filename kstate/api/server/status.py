"""Errors <-> Kubernetes ``Status`` objects, both ways.

Where it sits: the HTTP layer answers every failure with :func:`status_of`; the clients
turn a ``Status`` back into the same typed error with :func:`error_from_status`, so a
controller sees ``Conflict`` / ``NotFound`` / ``IllegalTransition`` whether it talks to
the server in-process or over HTTPS.

>>> from kstate.errors import NotFound
>>> s = status_of(NotFound('pods "web" not found'))
>>> s["code"], s["reason"], type(error_from_status(s)).__name__
(404, 'NotFound', 'NotFound')
"""

from __future__ import annotations

import re
from typing import Any

from kstate.api.server.requestinfo import RequestInfo
from kstate.errors import (
    ApiError,
    BadRequest,
    Cause,
    Compacted,
    Conflict,
    Forbidden,
    IllegalTransition,
    InternalError,
    InvalidObject,
    KeyExists,
    KstateError,
    ManifestError,
    MethodNotAllowed,
    NotAcceptable,
    NotFound,
    ServerTimeout,
    StoreError,
    Unauthorized,
    Unavailable,
    UnsupportedMediaType,
    ValueTooLarge,
)

ILLEGAL_TRANSITION = "IllegalTransition"


def status_of(error: KstateError, info: RequestInfo | None = None) -> dict[str, Any]:
    """The ``Status`` answer for ``error`` (JSON), with details from the request."""
    details: dict[str, Any] = {}
    if info is not None and info.is_resource:
        # The object's name: from the URL, or (a create) from the error itself.
        name = info.name or (error.key if isinstance(error, StoreError)
                             and not error.key.startswith("/") else "")
        if name:
            details["name"] = name
        if info.group:
            details["group"] = info.group
        details["kind"] = info.resource
    message = str(error)
    causes: tuple[Cause, ...] = ()
    if isinstance(error, InvalidObject):
        details["kind"] = error.kind
        if error.name:
            details["name"] = error.name
        listed = [str(c) for c in error.causes]
        what = f'{error.kind} "{error.name}"' if error.name else error.kind
        body = listed[0] if len(listed) == 1 else "[" + ", ".join(listed) + "]"
        message = f"{what} is invalid: {body}"
        causes = error.causes
    elif isinstance(error, IllegalTransition):
        details["kind"] = error.machine
        details["name"] = error.obj
        # One cause a user can read (kubectl prints "field: message"); the message has
        # the fixed shape IllegalTransition gives it, which the client parses back.
        causes = (Cause("metadata", ILLEGAL_TRANSITION, message),)
        # Kubernetes' 422 shape: '<Kind> "<name>" is invalid: <what is wrong>'.
        message = f'{error.machine} "{error.obj.rsplit("/", 1)[-1]}" is invalid: {message}'
    elif isinstance(error, ApiError | ManifestError):
        causes = error.causes
    if causes:
        details["causes"] = [{"reason": c.reason, "message": c.message, "field": c.field}
                             for c in causes]
    if isinstance(error, ApiError) and error.retry_after:
        details["retryAfterSeconds"] = error.retry_after
    out: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {},
                           "status": "Failure", "message": message, "reason": error.reason,
                           "code": error.code}
    if details:
        out["details"] = details
    return out


def success_status(name: str, kind: str, uid: str = "", code: int = 200) -> dict[str, Any]:
    details = {"name": name, "kind": kind}
    if uid:
        details["uid"] = uid
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
            "details": details, "code": code}


_BY_REASON: dict[str, type[KstateError]] = {
    "NotFound": NotFound,
    "AlreadyExists": KeyExists,
    "Conflict": Conflict,
    "Expired": Compacted,
    "Gone": Compacted,
    "BadRequest": BadRequest,
    "Unauthorized": Unauthorized,
    "Forbidden": Forbidden,
    "MethodNotAllowed": MethodNotAllowed,
    "NotAcceptable": NotAcceptable,
    "RequestEntityTooLarge": ValueTooLarge,
    "UnsupportedMediaType": UnsupportedMediaType,
    "ServiceUnavailable": Unavailable,
    "Timeout": ServerTimeout,
    "InternalError": InternalError,
}
_BY_CODE: dict[int, type[KstateError]] = {
    400: BadRequest, 401: Unauthorized, 403: Forbidden, 404: NotFound, 405: MethodNotAllowed,
    406: NotAcceptable, 409: Conflict, 410: Compacted, 413: ValueTooLarge,
    415: UnsupportedMediaType, 503: Unavailable, 504: ServerTimeout,
}

#: The error classes clients raise (what :func:`error_from_status` can produce).
CANONICAL: frozenset[type[KstateError]] = frozenset(
    {*_BY_REASON.values(), *_BY_CODE.values(), InvalidObject, IllegalTransition})

_TRANSITION = re.compile(
    r"^(?P<machine>\S+) (?P<obj>.*?): trigger (?P<trigger>'[^']*'|\"[^\"]*\") is not "
    r"allowed in state (?P<state>'[^']*'|\"[^\"]*\")(?: \((?P<detail>.*)\))?$", re.S)


def _causes(details: dict[str, Any]) -> list[Cause]:
    out = []
    for c in details.get("causes") or ():
        if isinstance(c, dict):
            out.append(Cause(str(c.get("field", "")), str(c.get("reason", "")),
                             str(c.get("message", ""))))
    return out


def error_from_status(status: Any, http_code: int = 0) -> KstateError:
    """The typed error a ``Status`` (JSON) stands for; unknown shapes still give a
    ``KstateError`` of the right HTTP code."""
    if not isinstance(status, dict):
        status = {}
    code = status.get("code") if isinstance(status.get("code"), int) else http_code
    reason = str(status.get("reason") or "")
    message = str(status.get("message") or f"HTTP {code}")
    details = status.get("details") if isinstance(status.get("details"), dict) else {}
    assert isinstance(details, dict)
    causes = _causes(details)
    if reason == "Invalid" or (code == 422 and not reason):
        for c in causes:
            m = _TRANSITION.match(c.message) if c.reason == ILLEGAL_TRANSITION else None
            if m is not None:
                return IllegalTransition(m["machine"], m["obj"], m["state"][1:-1],
                                         m["trigger"][1:-1], m["detail"] or "")
        return InvalidObject(str(details.get("kind") or "object"),
                             str(details.get("name") or ""), causes)
    cls = _BY_REASON.get(reason) or _BY_CODE.get(code or 0)
    if cls is None:
        err = KstateError(message)
        err.code = code or 500
        err.reason = reason or "Unknown"
        return err
    if issubclass(cls, ApiError):
        return cls(message, causes=causes)
    key = str(details.get("name") or "")
    return cls(message, key=key)  # type: ignore[call-arg]


__all__ = ["CANONICAL", "ILLEGAL_TRANSITION", "error_from_status", "status_of",
           "success_status"]
