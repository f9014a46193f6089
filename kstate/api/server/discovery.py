"""What the server serves, as Kubernetes discovery documents.

Where it sits: kubectl and client-go read ``/api``, ``/apis`` and each group-version's
resource list before anything else, to map ``kubectl get rc`` to
``/api/v1/namespaces/<ns>/replicationcontrollers`` and to learn that ``/scale`` is an
``autoscaling/v1 Scale``. The HTTP router (``http.py``) and the OpenAPI generator
(``openapi.py``) read the same :data:`SERVED` table, so a resource is routable exactly
when it is discoverable.

Only the legacy (per group-version) discovery is served: clients that ask for the
aggregated format (kubectl >= 1.26) get plain ``application/json`` and fall back to it,
which costs them one request per group-version.
"""

from __future__ import annotations

import hashlib
from typing import Any

import attrs

from kstate.api.registry import REGISTRY, KindInfo

SERVER_VERSION = {"major": "1", "minor": "32", "gitVersion": "v1.32.0-kstate",
                  "gitCommit": "0000000000000000000000000000000000000000",
                  "gitTreeState": "clean", "buildDate": "2025-01-01T00:00:00Z",
                  "goVersion": "python3", "compiler": "cpython", "platform": "linux/amd64"}

RW = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
STATUS_VERBS = ("get", "patch", "update")


@attrs.frozen
class Subresource:
    name: str
    kind: str
    verbs: tuple[str, ...]
    group: str = ""
    version: str = "v1"
    #: An upgraded stream (exec, attach, portforward): options in the query, no body
    #: schema of its own ("connect" in Kubernetes' terms).
    connect: bool = False


@attrs.frozen
class Served:
    """A resource the server serves: its kind, verbs, and subresources."""

    info: KindInfo
    verbs: tuple[str, ...] = RW
    subresources: tuple[Subresource, ...] = ()
    categories: tuple[str, ...] = ()

    @property
    def group_version(self) -> str:
        return self.info.api_version

    def subresource(self, name: str) -> Subresource | None:
        return next((s for s in self.subresources if s.name == name), None)


def _status(kind: str) -> Subresource:
    return Subresource("status", kind, STATUS_VERBS)


SERVED: dict[str, Served] = {
    s.info.plural: s
    for s in (
        Served(REGISTRY.for_kind("Pod"), subresources=(
            _status("Pod"),
            Subresource("binding", "Binding", ("create",)),
            Subresource("eviction", "Eviction", ("create",), group="policy"),
            Subresource("log", "Pod", ("get",)),
            # kubectl 1.30+ upgrade with a GET (WebSocket), older ones with a POST (SPDY).
            Subresource("exec", "PodExecOptions", ("create", "get"), connect=True),
            Subresource("attach", "PodAttachOptions", ("create", "get"), connect=True),
            Subresource("portforward", "PodPortForwardOptions", ("create", "get"),
                        connect=True),
        ), categories=("all",)),
        Served(REGISTRY.for_kind("ReplicationController"), subresources=(
            _status("ReplicationController"),
            Subresource("scale", "Scale", STATUS_VERBS, group="autoscaling"),
        ), categories=("all",)),
        Served(REGISTRY.for_kind("Service"), subresources=(_status("Service"),),
               categories=("all",)),
        Served(REGISTRY.for_kind("Endpoints")),
        Served(REGISTRY.for_kind("Node"), subresources=(_status("Node"),)),
        Served(REGISTRY.for_kind("Namespace"),
               verbs=("create", "delete", "get", "list", "patch", "update", "watch"),
               subresources=(Subresource("finalize", "Namespace", ("update",)),
                             _status("Namespace"))),
        Served(REGISTRY.for_kind("Event")),
        Served(REGISTRY.for_kind("Lease")),
        Served(REGISTRY.for_kind("Binding"), verbs=("create",)),
    )
}

#: Group versions with resources of their own, in discovery order.
GROUP_VERSIONS = ("v1", "coordination.k8s.io/v1")
#: ... plus those that only name subresource kinds (Eviction, Scale): they have OpenAPI
#: schemas, but discovery does not list them, since they hold no resources (clients find
#: the subresources in ``/api/v1``'s list).
SCHEMA_GROUP_VERSIONS = (*GROUP_VERSIONS, "policy/v1", "autoscaling/v1")


def lookup(group: str, version: str, resource: str) -> Served | None:
    served = SERVED.get(resource)
    if served is None:
        return None
    gv = f"{group}/{version}" if group else version
    return served if served.group_version == gv else None


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _resource_entries(served: Served) -> list[dict[str, Any]]:
    info = served.info
    entry: dict[str, Any] = {"name": info.plural, "singularName": info.singular,
                             "namespaced": info.namespaced, "kind": info.kind,
                             "verbs": list(served.verbs)}
    if info.short_names:
        entry["shortNames"] = list(info.short_names)
    if served.categories:
        entry["categories"] = list(served.categories)
    entry["storageVersionHash"] = _hash(info.api_version + info.kind)
    out = [entry]
    for sub in served.subresources:
        item: dict[str, Any] = {"name": f"{info.plural}/{sub.name}", "singularName": "",
                                "namespaced": info.namespaced, "kind": sub.kind,
                                "verbs": list(sub.verbs)}
        if sub.group:
            item["group"], item["version"] = sub.group, sub.version
        out.append(item)
    return out


def resource_list(group_version: str) -> dict[str, Any] | None:
    """``APIResourceList`` of one group-version (``None`` if not served)."""
    if group_version not in GROUP_VERSIONS:
        return None
    resources = [e for s in SERVED.values() if s.group_version == group_version
                 for e in _resource_entries(s)]
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version,
            "resources": resources}


def api_versions(server_address: str) -> dict[str, Any]:
    """``/api``."""
    return {"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0",
                                            "serverAddress": server_address}]}


def _group(name: str) -> dict[str, Any]:
    versions = [{"groupVersion": gv, "version": gv.rpartition("/")[2]}
                for gv in GROUP_VERSIONS if gv.rpartition("/")[0] == name]
    return {"name": name, "versions": versions, "preferredVersion": versions[0]}


def group_names() -> list[str]:
    return list(dict.fromkeys(gv.rpartition("/")[0] for gv in GROUP_VERSIONS if "/" in gv))


def api_groups() -> dict[str, Any]:
    """``/apis``."""
    return {"kind": "APIGroupList", "apiVersion": "v1",
            "groups": [_group(g) for g in group_names()]}


def api_group(name: str) -> dict[str, Any] | None:
    """``/apis/<group>``."""
    if name not in group_names():
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group(name)}


__all__ = ["GROUP_VERSIONS", "SCHEMA_GROUP_VERSIONS", "SERVED", "SERVER_VERSION", "Served",
           "Subresource",
           "api_group", "api_groups", "api_versions", "lookup", "resource_list"]
