"""The kind registry: which kinds exist, how they are named in URLs, and where they live.

Where it sits: between the object classes and everything that names a kind by a string —
manifests (``apiVersion`` + ``kind``), the API server (URL plural, discovery, short names
for kubectl), the CLI (``kstate get po``) and the store (``/registry/<plural>/...`` keys).
One table, so a kind added here is reachable by every one of those names at once.

>>> REGISTRY.lookup("po").kind, REGISTRY.lookup("replicationcontrollers").kind
('Pod', 'ReplicationController')
>>> store_key(REGISTRY.for_kind("Pod"), "default", "web")
'/registry/pods/default/web'
>>> store_key(REGISTRY.for_kind("Node"), "", "node-1")
'/registry/nodes/node-1'
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import attrs

from kstate.api import meta, objects
from kstate.api.codec import Model, register_kind
from kstate.api.meta import KubeObject
from kstate.errors import Cause, InvalidObject


@attrs.frozen
class KindInfo:
    """Everything the system needs to know about one kind."""

    kind: str
    api_version: str
    cls: type[Model]
    #: URL/storage name ("pods"); "" for kinds that are not stored resources
    plural: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    #: format of ``metadata.name`` (a format name known to ``validation``)
    name_format: str = "dns1123-subdomain"
    #: False for subresource and machinery kinds (Scale, Eviction, Status, List)
    resource: bool = True

    @property
    def group(self) -> str:
        """API group ("" for the core group)."""
        return self.api_version.rpartition("/")[0]

    @property
    def version(self) -> str:
        return self.api_version.rpartition("/")[2]

    @property
    def singular(self) -> str:
        return self.kind.lower()


def _infos() -> list[KindInfo]:
    o, m = objects, meta
    return [
        KindInfo("Pod", "v1", o.Pod, "pods", True, ("po",)),
        KindInfo("ReplicationController", "v1", o.ReplicationController,
                 "replicationcontrollers", True, ("rc",)),
        KindInfo("Service", "v1", o.Service, "services", True, ("svc",),
                 name_format="dns1035-label"),
        KindInfo("Endpoints", "v1", o.Endpoints, "endpoints", True, ("ep",)),
        KindInfo("Node", "v1", o.Node, "nodes", False, ("no",)),
        KindInfo("Namespace", "v1", o.Namespace, "namespaces", False, ("ns",),
                 name_format="dns1123-label"),
        KindInfo("Event", "v1", o.Event, "events", True, ("ev",)),
        KindInfo("Lease", "coordination.k8s.io/v1", o.Lease, "leases", True),
        KindInfo("Binding", "v1", o.Binding, "bindings", True),
        KindInfo("Scale", "autoscaling/v1", o.Scale, "", True, resource=False),
        KindInfo("Eviction", "policy/v1", o.Eviction, "", True, resource=False),
        KindInfo("Status", "v1", m.Status, "", False, resource=False),
        KindInfo("List", "v1", m.List, "", False, resource=False),
    ]


class Registry:
    """Lookups over :class:`KindInfo` by kind, (apiVersion, kind), class, plural or alias."""

    def __init__(self, infos: list[KindInfo]) -> None:
        self._infos: list[KindInfo] = []
        self._by_kind: dict[str, KindInfo] = {}
        self._by_api: dict[tuple[str, str], KindInfo] = {}
        self._by_cls: dict[type, KindInfo] = {}
        self._by_name: dict[str, KindInfo] = {}
        for info in infos:
            self.register(info)

    def register(self, info: KindInfo) -> None:
        """Add a kind (and make it decodable inside ``List.items``)."""
        self._infos.append(info)
        self._by_kind[info.kind] = info
        self._by_api[(info.api_version, info.kind)] = info
        self._by_cls[info.cls] = info
        register_kind(info.cls)
        if info.resource:
            for alias in (info.kind, info.plural, info.singular, *info.short_names):
                self._by_name[alias.lower()] = info

    def __iter__(self) -> Iterator[KindInfo]:
        return iter(self._infos)

    def resources(self) -> list[KindInfo]:
        """Kinds stored under ``/registry`` (the ones manifests and ``kubectl`` create)."""
        return [i for i in self._infos if i.resource]

    def for_kind(self, kind: str) -> KindInfo:
        """By exact kind; ``KeyError`` names the supported kinds."""
        try:
            return self._by_kind[kind]
        except KeyError:
            raise KeyError(f"unknown kind {kind!r}; known: {self.kind_names()}") from None

    def for_api(self, api_version: str, kind: str) -> KindInfo | None:
        return self._by_api.get((api_version, kind))

    def for_class(self, cls: type) -> KindInfo:
        return self._by_cls[cls]

    def get_for_class(self, cls: type) -> KindInfo | None:
        return self._by_cls.get(cls)

    def lookup(self, name: str) -> KindInfo | None:
        """A resource by any of its names, case-insensitively: kind, plural, singular or
        short name (``po``, ``rc``, ``svc``, ``ep``, ``no``, ``ns``, ``ev``)."""
        return self._by_name.get(name.lower())

    def kind_names(self, *, resources_only: bool = True) -> str:
        """"Pod, ReplicationController, ..." for error messages."""
        infos = self.resources() if resources_only else self._infos
        return ", ".join(f"{i.kind} ({i.api_version})" for i in infos)


REGISTRY = Registry(_infos())


def info_of(obj: Model) -> KindInfo:
    """The registry entry of an object's class."""
    return REGISTRY.for_class(type(obj))


def store_key(kind: KindInfo | KubeObject, namespace: str = "", name: str = "") -> str:
    """The store key ``/registry/<plural>/<namespace>/<name>`` (no namespace part for
    cluster-scoped kinds). Given an object, its own namespace and name are used.

    >>> from kstate.api.objects import Pod
    >>> from kstate.api.meta import ObjectMeta
    >>> store_key(Pod(metadata=ObjectMeta(name="web", namespace="prod")))
    '/registry/pods/prod/web'
    """
    if isinstance(kind, KubeObject):
        info = info_of(kind)
        namespace = namespace or kind.metadata.namespace
        name = name or kind.metadata.name
    else:
        info = kind
    if not info.resource:
        raise ValueError(f"{info.kind} is not a stored resource")
    if not name:
        raise ValueError(f"a {info.kind} store key needs a name")
    if info.namespaced:
        if not namespace:
            raise ValueError(f"{info.kind} is namespaced: its store key needs a namespace")
        return f"/registry/{info.plural}/{namespace}/{name}"
    return f"/registry/{info.plural}/{name}"


def key_prefix(kind: KindInfo, namespace: str = "") -> str:
    """Prefix of every key of a kind (in one namespace when given), for list and watch.

    >>> key_prefix(REGISTRY.for_kind("Pod"), "default")
    '/registry/pods/default/'
    """
    if kind.namespaced and namespace:
        return f"/registry/{kind.plural}/{namespace}/"
    return f"/registry/{kind.plural}/"


def kind_of(data: Any) -> KindInfo:
    """The registered kind of raw JSON, from its ``apiVersion`` and ``kind``.

    Raises ``InvalidObject`` saying what is missing or which kinds are supported.
    """
    if not isinstance(data, Mapping):
        raise InvalidObject("object", "", [Cause("", "FieldValueTypeInvalid",
                                                 "expected an object (a map)")])
    api, kind = data.get("apiVersion"), data.get("kind")
    causes = []
    if kind is None or kind == "":
        causes.append(Cause("kind", "FieldValueRequired",
                            f"kind is required (one of: {REGISTRY.kind_names()})"))
    elif not isinstance(kind, str):
        causes.append(Cause("kind", "FieldValueTypeInvalid", "kind must be a string"))
    if api is None or api == "":
        causes.append(Cause("apiVersion", "FieldValueRequired",
                            "apiVersion is required (e.g. apiVersion: v1)"))
    elif not isinstance(api, str):
        causes.append(Cause("apiVersion", "FieldValueTypeInvalid", "apiVersion must be a string"))
    if causes:
        raise InvalidObject(kind if isinstance(kind, str) and kind else "object", "", causes)
    assert isinstance(api, str) and isinstance(kind, str)
    info = REGISTRY.for_api(api, kind)
    if info is not None:
        return info
    known = REGISTRY._by_kind.get(kind)
    if known is not None:
        raise InvalidObject(kind, "", [Cause(
            "apiVersion", "FieldValueNotSupported",
            f"{kind} is served as apiVersion {known.api_version!r}, not {api!r}")])
    raise InvalidObject(kind, "", [Cause(
        "kind", "FieldValueNotSupported",
        f"kind {kind!r} (apiVersion {api!r}) is not supported; kstate supports: "
        f"{REGISTRY.kind_names()}")])


def decode_object(data: Any) -> Model:
    """Decode raw JSON of any registered kind (picked by ``apiVersion``/``kind``).

    >>> decode_object({"apiVersion": "v1", "kind": "Namespace",
    ...                "metadata": {"name": "prod"}}).metadata.name
    'prod'
    """
    from kstate.api.codec import from_dict

    return from_dict(kind_of(data).cls, data)
