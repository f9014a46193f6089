"""Authentication (bearer tokens) and authorization (a fixed role matrix).

Where it sits: the first thing the HTTP layer does with a request, before any
resource code runs: who is this (``Authenticator``), may they do this (``authorize``).
``LocalClient`` callers are in-process components and are trusted; they never come here.

Tokens file: Kubernetes' static token CSV (``--token-auth-file``), one user a line::

    token,user,uid,"group1,group2"

Roles come from groups: a group named after a role (``admin``, ``edit``, ``view``,
``node``, ``controller``, ``scheduler``) grants it; ``system:masters`` means admin and
``system:nodes`` means node, as in Kubernetes. The matrix (also in docs/apiserver.md):

============  ==========================================================================
role          may
============  ==========================================================================
admin         everything, including ``/metrics``
edit          read everything; write pods (+eviction), replicationcontrollers (+scale),
              services, endpoints, events; exec / attach / port-forward into pods —
              not nodes, namespaces or any ``/status``
view          get / list / watch everything (including ``pods/log``); never writes,
              never execs
node          read everything; write nodes (+status), pods (+status; delete), leases,
              events
controller    read everything; write pods (+status, +eviction), replicationcontrollers
              (+status, +scale), endpoints, events, nodes (+status), services/status,
              leases, namespaces (+status, +finalize)
scheduler     read everything; create ``pods/binding``; write pods/status, events, leases
============  ==========================================================================

Anyone (no token needed): ``/healthz``, ``/livez``, ``/readyz``, ``/version``. Any
authenticated user: discovery (``/api``, ``/apis``...) and ``/openapi/...``.
Comparison is on SHA-256 digests of the tokens, so lookups do not leak a token's
prefix through timing.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import secrets
from collections.abc import Iterable
from pathlib import Path

import attrs

from kstate.api.server.requestinfo import RequestInfo
from kstate.errors import Forbidden, Unauthorized, UsageError

READ = frozenset({"get", "list", "watch"})
WRITE = frozenset({"create", "update", "patch", "delete", "deletecollection"})
ALL = READ | WRITE

PUBLIC_PATHS = frozenset({"/healthz", "/livez", "/readyz", "/version"})
DISCOVERY_PREFIXES = ("/api", "/apis", "/openapi")

ROLES = ("admin", "edit", "view", "node", "controller", "scheduler")
GROUP_ALIASES = {"system:masters": "admin", "system:nodes": "node"}


@attrs.frozen
class Rule:
    """``verbs`` on ``resources`` (``"pods"``, ``"pods/status"``; ``"*"`` = any)."""

    resources: frozenset[str]
    verbs: frozenset[str]

    def allows(self, resource: str, verb: str) -> bool:
        return verb in self.verbs and ("*" in self.resources or resource in self.resources)


def _rule(resources: Iterable[str], verbs: Iterable[str]) -> Rule:
    return Rule(frozenset(resources), frozenset(verbs))


READ_ALL = _rule(["*"], READ)

MATRIX: dict[str, tuple[Rule, ...]] = {
    "admin": (_rule(["*"], ALL),),
    "edit": (READ_ALL, _rule(["pods", "pods/eviction", "replicationcontrollers",
                              "replicationcontrollers/scale", "services", "endpoints",
                              "events"], WRITE),
             # Running things in pods, as Kubernetes' edit role may.
             _rule(["pods/exec", "pods/attach", "pods/portforward"], {"create"})),
    "view": (READ_ALL,),
    "node": (READ_ALL,
             _rule(["nodes", "nodes/status", "pods/status", "leases", "events"], WRITE),
             _rule(["pods"], {"create", "delete", "patch", "update"})),
    "controller": (READ_ALL, _rule([
        "pods", "pods/status", "pods/eviction", "replicationcontrollers",
        "replicationcontrollers/status", "replicationcontrollers/scale", "endpoints",
        "events", "nodes", "nodes/status", "services/status", "leases", "namespaces",
        "namespaces/status", "namespaces/finalize"], WRITE)),
    "scheduler": (READ_ALL, _rule(["pods/binding"], {"create"}),
                  _rule(["pods/status", "events", "leases"], WRITE)),
}


@attrs.frozen
class User:
    name: str
    uid: str = ""
    groups: tuple[str, ...] = ()

    @property
    def roles(self) -> frozenset[str]:
        roles = {GROUP_ALIASES.get(g, g) for g in self.groups}
        return frozenset(r for r in roles if r in MATRIX)


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()


class Authenticator:
    """Bearer tokens -> users, from a static token CSV."""

    def __init__(self, users: dict[bytes, User]) -> None:
        self._users = users

    @classmethod
    def from_file(cls, path: str | Path) -> Authenticator:
        return cls(parse_tokens(Path(path).read_text()))

    @classmethod
    def from_tokens(cls, tokens: dict[str, User]) -> Authenticator:
        return cls({_digest(t): u for t, u in tokens.items()})

    def authenticate(self, header: str | None) -> User | None:
        """The user of an ``Authorization`` header; ``None`` when there is none;
        ``Unauthorized`` (401) for anything but a known bearer token."""
        if not header:
            return None
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("Unauthorized: only bearer tokens are accepted")
        user = self._users.get(_digest(token.strip()))
        if user is None:
            raise Unauthorized("Unauthorized")
        return user


def parse_tokens(text: str) -> dict[bytes, User]:
    """Parse the static token CSV (``UsageError`` naming the bad line)."""
    users: dict[bytes, User] = {}
    for n, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
            continue
        if len(row) < 3:
            raise UsageError(f"tokens file line {n}: expected token,user,uid[,\"groups\"]")
        token, name, uid = (c.strip() for c in row[:3])
        if not token or not name:
            raise UsageError(f"tokens file line {n}: token and user must not be empty")
        groups = tuple(g.strip() for g in row[3].split(",") if g.strip()) if len(row) > 3 \
            else ()
        users[_digest(token)] = User(name, uid, groups)
    return users


def ensure_tokens_file(path: Path) -> str:
    """Create the tokens file with an admin token if it does not exist; returns the
    admin token (the first ``admin`` user's) for the kubeconfig."""
    if not path.exists():
        token = secrets.token_urlsafe(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(f'{token},admin,admin,"admin,system:masters"\n')
        return token
    for row in csv.reader(io.StringIO(path.read_text())):
        if len(row) > 3 and row[0] and not row[0].startswith("#"):
            groups = {GROUP_ALIASES.get(g.strip(), g.strip()) for g in row[3].split(",")}
            if "admin" in groups:
                return row[0].strip()
    raise UsageError(f"{path} has no admin user; add a line token,admin,admin,\"admin\"")


def authorize(user: User | None, info: RequestInfo) -> None:
    """Raise ``Unauthorized`` (no user) or ``Forbidden`` unless ``user`` may do ``info``."""
    path = info.path
    if not info.is_resource:
        if path in PUBLIC_PATHS:
            return
        if user is None:
            raise Unauthorized("Unauthorized")
        roles = user.roles
        if "admin" in roles:
            return
        if info.verb == "get" and path.startswith(DISCOVERY_PREFIXES):
            return
        raise Forbidden(f'forbidden: User "{user.name}" cannot {info.verb} path "{path}"')
    if user is None:
        raise Unauthorized("Unauthorized")
    resource = f"{info.resource}/{info.subresource}" if info.subresource else info.resource
    for role in user.roles:
        if any(rule.allows(resource, info.verb) for rule in MATRIX[role]):
            return
    where = f' in the namespace "{info.namespace}"' if info.namespace else " at the cluster scope"
    raise Forbidden(f'{info.resource} is forbidden: User "{user.name}" cannot {info.verb} '
                    f'resource "{resource}" in API group "{info.group}"{where}')


__all__ = [
    "MATRIX",
    "ROLES",
    "Authenticator",
    "Rule",
    "User",
    "authorize",
    "ensure_tokens_file",
    "parse_tokens",
]
