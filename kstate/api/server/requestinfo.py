"""What a request is about: verb, group, version, namespace, resource, name, subresource.

Where it sits: the HTTP layer parses every request path into a :class:`RequestInfo`
first; authorization decides on it and routing dispatches on it. The parsing follows
Kubernetes' ``RequestInfoFactory`` so URLs mean exactly what kubectl and client-go
expect, including the legacy ``/watch/`` prefix and namespace subresources
(``/api/v1/namespaces/<ns>/status``).

>>> info = parse("GET", "/api/v1/namespaces/default/pods/web/log", {})
>>> (info.verb, info.namespace, info.resource, info.name, info.subresource)
('get', 'default', 'pods', 'web', 'log')
>>> parse("GET", "/apis/coordination.k8s.io/v1/leases", {"watch": "1"}).verb
'watch'
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from kstate.errors import NotFound

NAMESPACE_SUBRESOURCES = frozenset({"status", "finalize"})

_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch"}


@attrs.frozen
class RequestInfo:
    path: str
    verb: str
    is_resource: bool = False
    prefix: str = ""  # "api" | "apis"
    group: str = ""
    version: str = ""
    namespace: str = ""
    resource: str = ""
    name: str = ""
    subresource: str = ""


def _truthy(value: str | None) -> bool:
    return value is not None and value.lower() in ("1", "true")


def parse(method: str, path: str, query: Mapping[str, str]) -> RequestInfo:
    """Parse like Kubernetes; paths that are not resources are non-resource requests
    (verb = lowercase HTTP method), a malformed resource path is ``NotFound``."""
    parts = [p for p in path.split("/") if p]
    non_resource = RequestInfo(path=path, verb=method.lower())
    if not parts or parts[0] not in ("api", "apis"):
        return non_resource
    prefix = parts[0]
    rest = parts[1:]
    if prefix == "api":
        if len(rest) < 2:
            return non_resource
        group, version, rest = "", rest[0], rest[1:]
    else:
        if len(rest) < 3:
            return non_resource
        group, version, rest = rest[0], rest[1], rest[2:]
    watch_prefix = rest[0] == "watch"
    if watch_prefix:
        rest = rest[1:]
        if not rest:
            raise NotFound(f"the server could not find the requested resource ({path})")
    namespace = ""
    if rest[0] == "namespaces" and len(rest) > 1:
        namespace = rest[1]
        if len(rest) > 2 and rest[2] not in NAMESPACE_SUBRESOURCES:
            rest = rest[2:]
    if len(rest) > 3:
        raise NotFound(f"the server could not find the requested resource ({path})")
    resource = rest[0]
    name = rest[1] if len(rest) > 1 else ""
    subresource = rest[2] if len(rest) > 2 else ""
    if subresource in _CONNECT_SUBRESOURCES:
        # A WebSocket upgrade is a GET, SPDY's a POST: either way it runs something in
        # the pod, so it is authorized as a create (Kubernetes does the same).
        verb = "create"
    elif method in ("GET", "HEAD"):
        watching = method == "GET" and (watch_prefix or _truthy(query.get("watch")))
        verb = "watch" if watching else ("get" if name else "list")
    elif method == "DELETE":
        verb = "delete" if name else "deletecollection"
    else:
        verb = _VERBS.get(method, method.lower())
    return RequestInfo(path=path, verb=verb, is_resource=True, prefix=prefix, group=group,
                       version=version, namespace=namespace, resource=resource, name=name,
                       subresource=subresource)


_CONNECT_SUBRESOURCES = ("exec", "attach", "portforward")


__all__ = ["RequestInfo", "parse"]
