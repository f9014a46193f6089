"""Defaulting: fill in what Kubernetes fills in when an object is created.

Where it sits: in the API server's write path between decoding and validation (and in
manifest loading, so ``kstate validate`` judges what would actually be stored). A pure
function: ``default(obj)`` returns a new object, or the same one when nothing was
missing, and ``default(default(x)) == default(x)``.

One bottom-up walker applies small per-class defaulters (``@_defaulter(Class)``), so a
``Container`` is defaulted the same inside a Pod and inside an RC's template; the walker
skips subtrees with nothing to default (statuses).

Separately, :func:`add_default_tolerations` is *admission* (Kubernetes'
DefaultTolerationSeconds plugin), not defaulting: the API server calls it on pod create.

>>> from kstate.api.objects import Container, Pod, PodSpec
>>> pod = default(Pod(spec=PodSpec(containers=(Container(name="c", image="nginx"),))))
>>> pod.metadata.namespace, pod.spec.restart_policy, pod.spec.containers[0].image_pull_policy
('default', 'Always', 'Always')
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import attrs

from kstate.api import objects as o
from kstate.api.codec import Model, plan
from kstate.api.frozen import FrozenDict
from kstate.api.meta import KubeObject
from kstate.api.quantity import is_quantity
from kstate.api.registry import REGISTRY

DEFAULT_NAMESPACE = "default"
DEFAULT_GRACE_SECONDS = 30
DEFAULT_SCHEDULER = "default-scheduler"
CLIENT_IP_TIMEOUT_SECONDS = 10800
NOT_READY_TAINT = "node.kubernetes.io/not-ready"
UNREACHABLE_TAINT = "node.kubernetes.io/unreachable"

M = TypeVar("M", bound=Model)

_DEFAULTERS: dict[type, Callable[[Any], Any]] = {}
_NEEDS: dict[type, bool] = {}


def _defaulter(cls: type[M]) -> Callable[[Callable[[M], M]], Callable[[M], M]]:
    def register(fn: Callable[[M], M]) -> Callable[[M], M]:
        _DEFAULTERS[cls] = fn
        return fn

    return register


def _needs(cls: type[Model]) -> bool:
    """Whether ``cls`` or anything nested in it has a defaulter (memoized)."""
    got = _NEEDS.get(cls)
    if got is None:
        _NEEDS[cls] = False  # breaks cycles, should a type ever contain itself
        got = cls in _DEFAULTERS or any(
            f.model is not None and _needs(f.model) for f in plan(cls).fields
        )
        _NEEDS[cls] = got
    return got


def _apply(obj: M) -> M:
    cls = type(obj)
    changes: dict[str, Any] = {}
    for f in plan(cls).fields:
        if f.model is None or not _needs(f.model):
            continue
        value = getattr(obj, f.name)
        if value is None:
            continue
        if f.container == "list":
            new = tuple(_apply(item) for item in value)
            if any(a is not b for a, b in zip(new, value, strict=True)):
                changes[f.name] = new
        else:
            new = _apply(value)
            if new is not value:
                changes[f.name] = new
    if changes:
        obj = attrs.evolve(obj, **changes)
    fn = _DEFAULTERS.get(cls)
    return fn(obj) if fn is not None else obj


def _evolve(obj: M, **changes: Any) -> M:
    """``attrs.evolve`` only if something really changes (keeps identity and hash cache)."""
    real = {k: v for k, v in changes.items() if getattr(obj, k) != v}
    return attrs.evolve(obj, **real) if real else obj


def default(obj: M) -> M:
    """``obj`` with Kubernetes' defaults filled in (idempotent, pure).

    Namespaced kinds get namespace ``default``; see the per-class defaulters below for
    the rest (pod restartPolicy Always, grace period 30 s, imagePullPolicy, protocol TCP,
    probe timings, Service type ClusterIP and targetPort = port, RC replicas 1 and
    selector = template labels, ...).
    """
    obj = _apply(obj)
    if isinstance(obj, KubeObject) and not obj.metadata.namespace:
        info = REGISTRY.get_for_class(type(obj))
        if info is not None and info.namespaced:
            obj = attrs.evolve(obj, metadata=attrs.evolve(obj.metadata,
                                                         namespace=DEFAULT_NAMESPACE))
    return obj


# ------------------------------------------------------------------ pods


def image_pull_policy_for(image: str) -> str:
    """Kubernetes' default pull policy: ``Always`` for ``:latest`` or no tag, else
    ``IfNotPresent`` (a digest pins the image, so it needs no re-pull).

    >>> image_pull_policy_for("nginx"), image_pull_policy_for("nginx:1.25")
    ('Always', 'IfNotPresent')
    >>> image_pull_policy_for("registry:5000/app"), image_pull_policy_for("app@sha256:ab")
    ('Always', 'IfNotPresent')
    """
    name, at, _digest = image.partition("@")
    last = name.rsplit("/", 1)[-1]
    tag = last.rpartition(":")[2] if ":" in last else ""
    if not tag:
        return "IfNotPresent" if at else "Always"
    return "Always" if tag == "latest" else "IfNotPresent"


@_defaulter(o.Container)
def _container(c: o.Container) -> o.Container:
    changes: dict[str, Any] = {}
    if not c.image_pull_policy and c.image:
        changes["image_pull_policy"] = image_pull_policy_for(c.image)
    res = c.resources
    # (An unparsable limit is not copied: its own error says it all.)
    missing = {k: v for k, v in res.limits.items() if k not in res.requests and is_quantity(v)}
    if missing:
        changes["resources"] = attrs.evolve(res, requests=res.requests.merge(missing))
    return _evolve(c, **changes)


@_defaulter(o.ContainerPort)
def _container_port(p: o.ContainerPort) -> o.ContainerPort:
    return p if p.protocol else attrs.evolve(p, protocol="TCP")


@_defaulter(o.Probe)
def _probe(p: o.Probe) -> o.Probe:
    # Kubernetes treats 0 like unset for these (its fields are plain int32).
    return _evolve(
        p,
        timeout_seconds=p.timeout_seconds or 1,
        period_seconds=p.period_seconds or 10,
        success_threshold=p.success_threshold or 1,
        failure_threshold=p.failure_threshold or 3,
    )


@_defaulter(o.HTTPGetAction)
def _http_get(h: o.HTTPGetAction) -> o.HTTPGetAction:
    return _evolve(h, scheme=h.scheme or "HTTP", path=h.path or "/")


@_defaulter(o.PodSpec)
def _pod_spec(s: o.PodSpec) -> o.PodSpec:
    extra = s.extra if "dnsPolicy" in s.extra else s.extra.set("dnsPolicy", "ClusterFirst")
    grace = s.termination_grace_period_seconds
    return _evolve(
        s,
        restart_policy=s.restart_policy or "Always",
        termination_grace_period_seconds=DEFAULT_GRACE_SECONDS if grace is None else grace,
        scheduler_name=s.scheduler_name or DEFAULT_SCHEDULER,
        extra=extra,
    )


# ------------------------------------------------------------------ replication controllers


@_defaulter(o.ReplicationController)
def _rc(rc: o.ReplicationController) -> o.ReplicationController:
    spec = rc.spec
    labels = spec.template.metadata.labels if spec.template is not None else FrozenDict()
    new_spec = _evolve(
        spec,
        replicas=1 if spec.replicas is None else spec.replicas,
        selector=spec.selector or labels,
    )
    meta = rc.metadata if rc.metadata.labels else _evolve(rc.metadata, labels=labels)
    return _evolve(rc, spec=new_spec, metadata=meta)


# ------------------------------------------------------------------ services and endpoints


@_defaulter(o.ServicePort)
def _service_port(p: o.ServicePort) -> o.ServicePort:
    target = p.target_port
    if target in (None, 0, "") and 1 <= p.port <= 65535:
        # (An invalid port is not copied: its own error says it all.)
        target = p.port
    return _evolve(p, protocol=p.protocol or "TCP", target_port=target)


@_defaulter(o.ServiceSpec)
def _service_spec(s: o.ServiceSpec) -> o.ServiceSpec:
    stype = s.type or "ClusterIP"
    affinity = s.session_affinity or "None"
    config = s.session_affinity_config
    if affinity == "ClientIP":
        client = (config.client_ip if config is not None else None) or o.ClientIPConfig()
        if client.timeout_seconds is None:
            client = attrs.evolve(client, timeout_seconds=CLIENT_IP_TIMEOUT_SECONDS)
        config = _evolve(config or o.SessionAffinityConfig(), client_ip=client)
    policy = s.external_traffic_policy
    if not policy and stype in ("NodePort", "LoadBalancer"):
        policy = "Cluster"
    return _evolve(s, type=stype, session_affinity=affinity, session_affinity_config=config,
                   external_traffic_policy=policy)


@_defaulter(o.EndpointPort)
def _endpoint_port(p: o.EndpointPort) -> o.EndpointPort:
    return p if p.protocol else attrs.evolve(p, protocol="TCP")


# ------------------------------------------------------------------ namespaces


@_defaulter(o.NamespaceStatus)
def _namespace_status(s: o.NamespaceStatus) -> o.NamespaceStatus:
    return s if s.phase else attrs.evolve(s, phase="Active")


# ------------------------------------------------------------------ admission


def tolerates(tolerations: tuple[o.Toleration, ...], key: str, effect: str) -> bool:
    """Whether some toleration covers a taint with ``key`` and ``effect`` (any value)."""
    for t in tolerations:
        if t.effect not in ("", effect):
            continue
        if t.key == key or (not t.key and t.operator == "Exists"):
            return True
    return False


def add_default_tolerations(pod: o.Pod, seconds: int = 300) -> o.Pod:
    """Kubernetes' DefaultTolerationSeconds admission: tolerate ``not-ready`` and
    ``unreachable`` (NoExecute) for ``seconds``, unless the pod already says otherwise —
    so pods ride out a short node outage before being evicted.

    >>> pod = add_default_tolerations(o.Pod())
    >>> [(t.key, t.toleration_seconds) for t in pod.spec.tolerations]
    [('node.kubernetes.io/not-ready', 300), ('node.kubernetes.io/unreachable', 300)]
    """
    added = tuple(
        o.Toleration(key=key, operator="Exists", effect="NoExecute", toleration_seconds=seconds)
        for key in (NOT_READY_TAINT, UNREACHABLE_TAINT)
        if not tolerates(pod.spec.tolerations, key, "NoExecute")
    )
    if not added:
        return pod
    spec = attrs.evolve(pod.spec, tolerations=pod.spec.tolerations + added)
    return attrs.evolve(pod, spec=spec)
