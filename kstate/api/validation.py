"""Validation: every rule Kubernetes applies to the kinds kstate serves, as ``Cause``s.

Where it sits: after decoding and defaulting, before an object is stored — the API server
calls :func:`validate` on create and :func:`validate_update` on update; manifests and
``kstate validate`` call it on every document. Pure functions: no I/O, nothing raised
but :class:`~kstate.errors.InvalidObject` by :func:`check`.

One walker does all of it. Per-field rules are declared on the fields themselves
(``field(enum=..., fmt=..., ge=..., required=..., unique=...)`` in ``objects.py``) and
checked generically; rules that span several fields are small functions registered per
class with ``@_rule(Class)``, called with the object and its JSON path wherever that
class appears (a ``Container`` is checked the same in a Pod and in an RC template).

Validation expects *defaulted* objects, as Kubernetes does, but tolerates fields that
defaulting would fill (an empty ``restartPolicy`` means "the default", not an error).

>>> from kstate.api.objects import Container, Pod, PodSpec
>>> from kstate.api.meta import ObjectMeta
>>> bad = Pod(metadata=ObjectMeta(name="Web"), spec=PodSpec(containers=(Container(name="c"),)))
>>> [f"{c.field}: {c.reason}" for c in validate(bad)]
['metadata.name: FieldValueInvalid', 'spec.containers[0].image: FieldValueRequired']
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

import attrs

from kstate.api import objects as o
from kstate.api.codec import NO_OPTS, FieldInfo, FieldOpts, Model, plan
from kstate.api.frozen import FrozenDict
from kstate.api.meta import KubeObject, ObjectMeta
from kstate.api.quantity import QuantityError, parse_quantity
from kstate.api.registry import REGISTRY
from kstate.errors import Cause, InvalidObject

REQUIRED = "FieldValueRequired"
INVALID = "FieldValueInvalid"
NOT_SUPPORTED = "FieldValueNotSupported"
DUPLICATE = "FieldValueDuplicate"
FORBIDDEN = "FieldValueForbidden"
TOO_LONG = "FieldValueTooLong"

NODE_PORT_RANGE = (30000, 32767)
MAX_ANNOTATIONS_SIZE = 256 * 1024

# ------------------------------------------------------------------ formats

_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_LABEL = re.compile(rf"^{_LABEL}$")
_DNS1123_SUBDOMAIN = re.compile(rf"^{_LABEL}(\.{_LABEL})*$")
_DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_QUALIFIED_PART = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_IANA_SVC_NAME = re.compile(r"^[-a-z0-9]+$")
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$"
)
_STANDARD_RESOURCES = frozenset({"cpu", "memory", "ephemeral-storage", "storage", "pods"})

_MSG_LABEL = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or "
    "'-', and must start and end with an alphanumeric character (e.g. 'my-name', or "
    "'123-abc'), at most 63 characters"
)
_MSG_SUBDOMAIN = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
    "'-' or '.', and must start and end with an alphanumeric character (e.g. "
    "'example.com'), at most 253 characters"
)
_MSG_DNS1035 = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start "
    "with an alphabetic character, and end with an alphanumeric character (e.g. "
    "'my-name', or 'abc-123'), at most 63 characters"
)
_MSG_QUALIFIED = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start "
    "and end with an alphanumeric character (e.g. 'MyName', or 'my.name', or "
    "'123-abc'), at most 63 characters, with an optional DNS subdomain prefix and '/' "
    "(e.g. 'example.com/MyName')"
)
_MSG_LABEL_VALUE = (
    "a valid label value must be an empty string or consist of alphanumeric characters, "
    "'-', '_' or '.', and must start and end with an alphanumeric character (e.g. "
    "'MyValue', or 'my_value', or '12345'), at most 63 characters"
)
_MSG_IANA = (
    "a port name must be at most 15 lower case alphanumeric characters or '-', contain "
    "at least one letter, and not start or end with '-' or contain '--' (e.g. 'http')"
)


def dns1123_label(value: str) -> str | None:
    """``None`` if ``value`` is a DNS-1123 label, else how to fix it."""
    if len(value) > 63 or not _DNS1123_LABEL.match(value):
        return _MSG_LABEL
    return None


def dns1123_subdomain(value: str) -> str | None:
    if len(value) > 253 or not _DNS1123_SUBDOMAIN.match(value):
        return _MSG_SUBDOMAIN
    return None


def dns1035_label(value: str) -> str | None:
    if len(value) > 63 or not _DNS1035_LABEL.match(value):
        return _MSG_DNS1035
    return None


def qualified_name(value: str) -> str | None:
    """Label keys and the like: ``[prefix/]name``, prefix a DNS subdomain."""
    prefix, slash, name = value.rpartition("/")
    if slash and not prefix:
        return "prefix part must be non-empty"
    if prefix and dns1123_subdomain(prefix):
        return f"prefix part {_MSG_SUBDOMAIN}"
    if len(name) > 63 or not _QUALIFIED_PART.match(name):
        return _MSG_QUALIFIED
    return None


def label_value(value: str) -> str | None:
    if len(value) > 63 or not _LABEL_VALUE.match(value):
        return _MSG_LABEL_VALUE
    return None


def iana_svc_name(value: str) -> str | None:
    ok = (
        len(value) <= 15
        and _IANA_SVC_NAME.match(value)
        and any("a" <= ch <= "z" for ch in value)
        and not value.startswith("-")
        and not value.endswith("-")
        and "--" not in value
    )
    return None if ok else _MSG_IANA


def ip_address(value: str) -> str | None:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return "must be a valid IP address (e.g. 10.9.8.7 or 2001:db8::ffff)"
    return None


def cidr(value: str) -> str | None:
    try:
        ipaddress.ip_network(value, strict=True)
    except ValueError:
        return "must be a valid CIDR with no host bits set (e.g. 10.244.1.0/24)"
    return None


def rfc3339(value: str) -> str | None:
    if not _RFC3339.match(value):
        return "must be an RFC 3339 timestamp (e.g. 2024-05-01T12:00:00Z)"
    return None


def quantity(value: str) -> str | None:
    try:
        q = parse_quantity(value)
    except QuantityError as e:
        return str(e)
    if q < 0:
        return "must be greater than or equal to 0"
    return None


def port_number(value: int) -> str | None:
    if not 1 <= value <= 65535:
        return "must be between 1 and 65535, inclusive"
    return None


def port_or_name(value: int | str) -> str | None:
    if isinstance(value, int):
        return port_number(value)
    return iana_svc_name(value)


def resource_name(value: str) -> str | None:
    """Resource names in requests/limits/capacity: standard or domain-qualified."""
    problem = qualified_name(value)
    if problem:
        return problem
    if "/" not in value and value not in _STANDARD_RESOURCES and not value.startswith(
        "hugepages-"
    ):
        return (
            "must be a standard resource (cpu, memory, ephemeral-storage, hugepages-<size>) "
            "or a domain-qualified extended resource (e.g. example.com/gpu)"
        )
    return None


def env_name(value: str) -> str | None:
    if not _ENV_NAME.match(value):
        return (
            "a valid environment variable name must consist of alphabetic characters, "
            "digits, '_', '-', or '.', and must not start with a digit (e.g. 'MY_VAR')"
        )
    return None


def annotation_key(value: str) -> str | None:
    return qualified_name(value.lower())


FORMATS: dict[str, Callable[[Any], str | None]] = {
    "dns1123-label": dns1123_label,
    "dns1123-subdomain": dns1123_subdomain,
    "dns1035-label": dns1035_label,
    "qualified-name": qualified_name,
    "label-key": qualified_name,
    "annotation-key": annotation_key,
    "label-value": label_value,
    "iana-svc-name": iana_svc_name,
    "ip": ip_address,
    "cidr": cidr,
    "rfc3339": rfc3339,
    "quantity": quantity,
    "port-or-name": port_or_name,
    "resource-name": resource_name,
    "env-name": env_name,
}


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 70 else text[:67] + "..."


def _invalid(path: str, value: Any, problem: str) -> Cause:
    return Cause(path, INVALID, f"Invalid value: {_short(value)}: {problem}")


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


# ------------------------------------------------------------------ the walker

Rule = Callable[[Any, str], Iterable[Cause]]
_RULES: dict[type, list[Rule]] = {}
T = TypeVar("T", bound=Model)


def _rule(cls: type[T]) -> Callable[[Callable[[T, str], Iterable[Cause]]], Rule]:
    def register(fn: Callable[[T, str], Iterable[Cause]]) -> Rule:
        _RULES.setdefault(cls, []).append(fn)
        return fn

    return register


#: The types whose empty value means "not set" (compared by ``type``, not
#: ``isinstance``: FrozenDict is a ``Mapping``, whose ABC check is slow, and this runs
#: for every field of every object written).
_EMPTY_MEANS_UNSET = frozenset({str, tuple, FrozenDict})


def _is_unset(value: Any) -> bool:
    if value is None:
        return True
    if type(value) in _EMPTY_MEANS_UNSET:
        return not value
    # A subclass (a str enum, say) is rarer: the general test (FrozenDict has none).
    return isinstance(value, (str, tuple)) and not value


def _range_hint(opts: FieldOpts, sep: str = "") -> str:
    if opts.ge is not None and opts.le is not None:
        return f"{sep}must be between {opts.ge} and {opts.le}, inclusive"
    if opts.ge is not None:
        return f"{sep}must be greater than or equal to {opts.ge}"
    if opts.le is not None:
        return f"{sep}must be less than or equal to {opts.le}"
    return ""


def _check_field(f: FieldInfo, value: Any, path: str, out: list[Cause]) -> None:
    opts = f.opts
    if opts.required and (_is_unset(value) or (type(value) is int and value == 0)):
        out.append(Cause(path, REQUIRED, f"Required value{_range_hint(opts, ': ')}"))
        return
    if _is_unset(value):
        return
    if opts.enum and value not in opts.enum:
        allowed = ", ".join(f'"{e}"' for e in opts.enum)
        out.append(Cause(path, NOT_SUPPORTED,
                         f"Unsupported value: {_short(value)}: supported values: {allowed}"))
    if opts.fmt:
        check = FORMATS[opts.fmt]
        if isinstance(value, tuple):
            for i, item in enumerate(value):
                problem = check(item)
                if problem:
                    out.append(_invalid(f"{path}[{i}]", item, problem))
        else:
            problem = check(value)
            if problem:
                out.append(_invalid(path, value, problem))
    if type(value) is int and (
        (opts.ge is not None and value < opts.ge) or (opts.le is not None and value > opts.le)
    ):
        out.append(_invalid(path, value, _range_hint(opts)))
    if opts.unique and isinstance(value, tuple):
        key_json = plan(type(value[0])).by_attr[opts.unique].json if value else ""
        seen: set[Any] = set()
        for i, item in enumerate(value):
            key = getattr(item, opts.unique)
            if _is_unset(key):
                continue
            if key in seen:
                out.append(Cause(f"{path}[{i}].{key_json}", DUPLICATE,
                                 f"Duplicate value: {_short(key)}"))
            seen.add(key)
    if (opts.keys or opts.values) and isinstance(value, FrozenDict):
        kcheck = FORMATS[opts.keys] if opts.keys else None
        vcheck = FORMATS[opts.values] if opts.values else None
        for k, v in value.items():
            if kcheck is not None:
                problem = kcheck(k)
                if problem:
                    out.append(Cause(f"{path}[{k}]", INVALID,
                                     f"Invalid key: {_short(k)}: {problem}"))
            if vcheck is not None:
                problem = vcheck(v)
                if problem:
                    out.append(_invalid(f"{path}[{k}]", v, problem))


_CHECKED: dict[type, tuple[FieldInfo, ...]] = {}


def _checked_fields(cls: type[Model]) -> tuple[FieldInfo, ...]:
    """The fields of ``cls`` validation has work on: constrained ones and nested models.
    Most of a pod's fields are plain scalars with no constraint; visiting them (and
    building their paths) was most of the walk's time."""
    fields = _CHECKED.get(cls)
    if fields is None:
        fields = tuple(f for f in plan(cls).fields if f.opts is not NO_OPTS or f.model)
        _CHECKED[cls] = fields
    return fields


def _walk(obj: Model, path: str, out: list[Cause]) -> None:
    for f in _checked_fields(type(obj)):
        value = getattr(obj, f.name)
        # A field's path is built only when something is checked under it.
        if f.opts is not NO_OPTS and (f.opts.required or not _is_unset(value)):
            _check_field(f, value, _join(path, f.json), out)
        if f.model is not None and value is not None:
            if f.container == "list":
                if value:
                    fpath = _join(path, f.json)
                    for i, item in enumerate(value):
                        _walk(item, f"{fpath}[{i}]", out)
            else:
                _walk(value, _join(path, f.json), out)
    for rule in _RULES.get(type(obj), ()):
        out.extend(rule(obj, path))


def validate(obj: Model) -> list[Cause]:
    """Every validation failure of ``obj`` (a defaulted object), ``[]`` when valid."""
    out: list[Cause] = []
    if isinstance(obj, KubeObject):
        out.extend(_object_meta(obj))
    _walk(obj, "", out)
    return out


def check(obj: Model) -> None:
    """Raise ``InvalidObject`` carrying *all* causes if ``obj`` is not valid."""
    causes = validate(obj)
    if causes:
        raise InvalidObject(_kind(obj), _name(obj), causes)


def _kind(obj: Model) -> str:
    return type(obj).KIND or type(obj).__name__


def _name(obj: Model) -> str:
    return obj.metadata.name if isinstance(obj, KubeObject) else ""


# ------------------------------------------------------------------ object metadata


def _object_meta(obj: KubeObject) -> Iterator[Cause]:
    """Rules on ``metadata`` that depend on the kind (name format, namespace scope)."""
    info = REGISTRY.get_for_class(type(obj))
    meta = obj.metadata
    name_format = info.name_format if info else "dns1123-subdomain"
    check_name = FORMATS[name_format]
    if meta.name:
        problem = check_name(meta.name)
        if problem:
            yield _invalid("metadata.name", meta.name, problem)
    elif meta.generate_name:
        # The server appends a random suffix: the prefix, minus a trailing '-', must
        # itself be a valid name.
        problem = check_name(meta.generate_name.rstrip("-") or "a")
        if problem:
            yield _invalid("metadata.generateName", meta.generate_name, problem)
    else:
        yield Cause("metadata.name", REQUIRED,
                    "Required value: name or generateName is required")
    if info is not None and info.resource:
        if info.namespaced:
            if meta.namespace:
                problem = dns1123_label(meta.namespace)
                if problem:
                    yield _invalid("metadata.namespace", meta.namespace, problem)
        elif meta.namespace:
            yield Cause("metadata.namespace", FORBIDDEN,
                        f"Forbidden: not allowed on this type ({info.kind} is cluster-scoped);"
                        " remove metadata.namespace")


@_rule(ObjectMeta)
def _meta(meta: ObjectMeta, path: str) -> Iterator[Cause]:
    size = sum(len(k) + len(v) for k, v in meta.annotations.items())
    if size > MAX_ANNOTATIONS_SIZE:
        yield Cause(_join(path, "annotations"), TOO_LONG,
                    f"Too long: annotations are {size} bytes, must have at most "
                    f"{MAX_ANNOTATIONS_SIZE} bytes")
    controllers = [r for r in meta.owner_references if r.controller]
    if len(controllers) > 1:
        names = ", ".join(f"{r.kind}/{r.name}" for r in controllers)
        yield Cause(_join(path, "ownerReferences"), INVALID,
                    f"Invalid value: only one reference can have controller set to true, "
                    f"found: {names}")


# ------------------------------------------------------------------ pods and containers


def _probe_handlers(probe: o.Probe) -> list[str]:
    return [n for n, v in (("exec", probe.exec), ("httpGet", probe.http_get),
                           ("tcpSocket", probe.tcp_socket)) if v is not None]


@_rule(o.Probe)
def _probe(probe: o.Probe, path: str) -> Iterator[Cause]:
    handlers = _probe_handlers(probe)
    if "grpc" in probe.extra:
        handlers.append("grpc")
    if not handlers:
        yield Cause(path, REQUIRED,
                    "Required value: must specify a handler type (exec, httpGet or tcpSocket)")
    for extra in handlers[1:]:
        yield Cause(_join(path, extra), FORBIDDEN,
                    f"Forbidden: may not specify more than 1 handler type "
                    f"(already has {handlers[0]})")


@_rule(o.Container)
def _container(c: o.Container, path: str) -> Iterator[Cause]:
    req, lim = c.resources.requests, c.resources.limits
    for res, text in req.items():
        if res not in lim:
            continue
        try:
            over = parse_quantity(text) > parse_quantity(lim[res])
        except QuantityError:
            continue  # already reported by the quantity format
        if over:
            yield _invalid(f"{path}.resources.requests[{res}]", text,
                           f"must be less than or equal to {res} limit of {lim[res]}")
    for name, probe in (("livenessProbe", c.liveness_probe),
                        ("startupProbe", c.startup_probe)):
        if probe is not None and probe.success_threshold not in (None, 0, 1):
            yield _invalid(f"{path}.{name}.successThreshold", probe.success_threshold,
                           "must be 1")
    rp = c.readiness_probe
    if rp is not None and rp.termination_grace_period_seconds is not None:
        yield Cause(f"{path}.readinessProbe.terminationGracePeriodSeconds", FORBIDDEN,
                    "Forbidden: may not be set for readinessProbes")


@_rule(o.PodSpec)
def _pod_spec(spec: o.PodSpec, path: str) -> Iterator[Cause]:
    seen: dict[tuple[str, int, str], str] = {}
    for i, c in enumerate(spec.containers):
        for j, p in enumerate(c.ports):
            ppath = f"{_join(path, 'containers')}[{i}].ports[{j}]"
            if spec.host_network and p.host_port and p.host_port != p.container_port:
                yield _invalid(f"{ppath}.hostPort", p.host_port,
                               "must match `containerPort` when `hostNetwork` is true")
            host_port = p.host_port or (p.container_port if spec.host_network else 0)
            if not host_port:
                continue
            key = (p.host_ip, host_port, p.protocol or "TCP")
            if key in seen:
                yield Cause(f"{ppath}.hostPort", DUPLICATE,
                            f"Duplicate value: \"{host_port}/{key[2]}\" (also used by "
                            f"{seen[key]})")
            else:
                seen[key] = ppath


@_rule(o.Toleration)
def _toleration(t: o.Toleration, path: str) -> Iterator[Cause]:
    if not t.key and t.operator != "Exists":
        yield _invalid(_join(path, "operator"), t.operator,
                       "operator must be Exists when `key` is empty, which means "
                       "\"match all values and all keys\"")
    if t.operator == "Exists" and t.value:
        yield _invalid(_join(path, "value"), t.value,
                       "value must be empty when `operator` is 'Exists'")
    if t.toleration_seconds is not None and t.effect != "NoExecute":
        yield _invalid(_join(path, "effect"), t.effect,
                       "effect must be 'NoExecute' when `tolerationSeconds` is set")


def _requirement(r: o.NodeSelectorRequirement, path: str, *, field_selector: bool
                 ) -> Iterator[Cause]:
    if field_selector:
        if r.key and r.key != "metadata.name":
            yield _invalid(_join(path, "key"), r.key,
                           "not a valid field selector key; supported: metadata.name")
        if r.operator and r.operator not in ("In", "NotIn"):
            yield Cause(_join(path, "operator"), NOT_SUPPORTED,
                        f'Unsupported value: {_short(r.operator)}: supported values: '
                        f'"In", "NotIn"')
        if len(r.values) != 1:
            yield Cause(_join(path, "values"), REQUIRED,
                        "Required value: must be only one value when `operator` is 'In' or "
                        "'NotIn' for node field selector")
        return
    if r.key:
        problem = qualified_name(r.key)
        if problem:
            yield _invalid(_join(path, "key"), r.key, problem)
    vpath = _join(path, "values")
    if r.operator in ("In", "NotIn") and not r.values:
        yield Cause(vpath, REQUIRED,
                    "Required value: must be specified when `operator` is 'In' or 'NotIn'")
    elif r.operator in ("Exists", "DoesNotExist") and r.values:
        yield Cause(vpath, FORBIDDEN,
                    "Forbidden: may not be specified when `operator` is 'Exists' or "
                    "'DoesNotExist'")
    elif r.operator in ("Gt", "Lt"):
        if len(r.values) != 1:
            yield Cause(vpath, REQUIRED,
                        "Required value: must be specified single value when `operator` is "
                        "'Lt' or 'Gt'")
        elif not r.values[0].lstrip("-").isdigit():
            yield _invalid(f"{vpath}[0]", r.values[0], "must be an integer for 'Gt' and 'Lt'")
    for i, v in enumerate(r.values):
        if r.operator in ("In", "NotIn"):
            problem = label_value(v)
            if problem:
                yield _invalid(f"{vpath}[{i}]", v, problem)


@_rule(o.NodeSelectorTerm)
def _node_selector_term(term: o.NodeSelectorTerm, path: str) -> Iterator[Cause]:
    for i, r in enumerate(term.match_expressions):
        yield from _requirement(r, f"{_join(path, 'matchExpressions')}[{i}]",
                                field_selector=False)
    for i, r in enumerate(term.match_fields):
        yield from _requirement(r, f"{_join(path, 'matchFields')}[{i}]", field_selector=True)


# ------------------------------------------------------------------ replication controllers


@_rule(o.ReplicationControllerSpec)
def _rc_spec(spec: o.ReplicationControllerSpec, path: str) -> Iterator[Cause]:
    template = spec.template
    if template is None:
        yield Cause(_join(path, "template"), REQUIRED,
                    "Required value: an RC needs a pod template (spec.template)")
        if not spec.selector:
            yield Cause(_join(path, "selector"), REQUIRED, "Required value")
        return
    labels = template.metadata.labels
    # Defaulting copies the template's labels into an empty selector.
    selector = spec.selector or labels
    if not selector:
        yield Cause(_join(path, "selector"), REQUIRED,
                    "Required value: set spec.selector (or labels on the pod template, "
                    "which the selector defaults to)")
    else:
        missing = {k: v for k, v in selector.items() if labels.get(k) != v}
        if missing:
            want = ", ".join(f"{k}={v}" for k, v in missing.items())
            yield _invalid(_join(path, "template.metadata.labels"), dict(labels),
                           f"`selector` does not match template `labels`: add {want}")
    tspec = _join(path, "template.spec")
    if template.spec.restart_policy not in ("", "Always"):
        yield Cause(f"{tspec}.restartPolicy", NOT_SUPPORTED,
                    f"Unsupported value: {_short(template.spec.restart_policy)}: supported "
                    'values: "Always" (an RC restarts its pods\' containers forever)')
    if template.spec.active_deadline_seconds is not None:
        yield Cause(f"{tspec}.activeDeadlineSeconds", FORBIDDEN,
                    "Forbidden: activeDeadlineSeconds in ReplicationController is not Supported")


# ------------------------------------------------------------------ services and endpoints


@_rule(o.ServiceSpec)
def _service_spec(spec: o.ServiceSpec, path: str) -> Iterator[Cause]:
    stype = spec.type or "ClusterIP"
    headless = spec.cluster_ip == "None"
    external = stype in ("NodePort", "LoadBalancer")
    ports_path = _join(path, "ports")
    if stype == "ExternalName":
        if not isinstance(spec.extra.get("externalName"), str) or not spec.extra["externalName"]:
            yield Cause(_join(path, "externalName"), REQUIRED, "Required value")
    elif not spec.ports and not headless:
        yield Cause(ports_path, REQUIRED,
                    "Required value: a service needs at least one port (or clusterIP: None "
                    "for a headless service)")
    names: set[str] = set()
    port_keys: set[tuple[int, str]] = set()
    node_ports: set[tuple[int, str]] = set()
    for i, p in enumerate(spec.ports):
        pp = f"{ports_path}[{i}]"
        proto = p.protocol or "TCP"
        if len(spec.ports) > 1 and not p.name:
            yield Cause(f"{pp}.name", REQUIRED,
                        "Required value: every port must be named when a service has "
                        "more than one")
        if p.name:
            if p.name in names:
                yield Cause(f"{pp}.name", DUPLICATE, f"Duplicate value: {_short(p.name)}")
            names.add(p.name)
        if p.port:
            if (p.port, proto) in port_keys:
                yield Cause(pp, DUPLICATE, f'Duplicate value: "{p.port}/{proto}"')
            port_keys.add((p.port, proto))
        if p.node_port:
            if not external:
                yield Cause(f"{pp}.nodePort", FORBIDDEN,
                            f"Forbidden: may not be used when `type` is '{stype}' (use "
                            "type: NodePort)")
            lo, hi = NODE_PORT_RANGE
            if not lo <= p.node_port <= hi:
                yield _invalid(f"{pp}.nodePort", p.node_port,
                               f"provided port is not in the valid range. The range of "
                               f"valid ports is {lo}-{hi}")
            if (p.node_port, proto) in node_ports:
                yield Cause(f"{pp}.nodePort", DUPLICATE,
                            f'Duplicate value: "{p.node_port}/{proto}"')
            node_ports.add((p.node_port, proto))
    cip = _join(path, "clusterIP")
    if spec.cluster_ip and not headless and ip_address(spec.cluster_ip):
        yield _invalid(cip, spec.cluster_ip, "must be a valid IP address or 'None'")
    if headless and external:
        yield _invalid(cip, spec.cluster_ip, f"may not be set to 'None' for {stype} services")
    for i, ip in enumerate(spec.cluster_ips):
        if ip != "None" and ip_address(ip):
            yield _invalid(f"{_join(path, 'clusterIPs')}[{i}]", ip,
                           "must be a valid IP address or 'None'")
    if spec.cluster_ip and spec.cluster_ips and spec.cluster_ips[0] != spec.cluster_ip:
        yield _invalid(f"{_join(path, 'clusterIPs')}[0]", spec.cluster_ips[0],
                       "must match `clusterIP` when both are set")
    cfg = spec.session_affinity_config
    if spec.session_affinity in ("", "None") and cfg is not None and cfg.client_ip is not None:
        yield Cause(_join(path, "sessionAffinityConfig"), FORBIDDEN,
                    "Forbidden: must not be set when `sessionAffinity` is None")
    if spec.external_traffic_policy and not external:
        yield _invalid(_join(path, "externalTrafficPolicy"), spec.external_traffic_policy,
                       "may only be set for NodePort or LoadBalancer services")


@_rule(o.EndpointSubset)
def _endpoint_subset(subset: o.EndpointSubset, path: str) -> Iterator[Cause]:
    if not subset.addresses and not subset.not_ready_addresses:
        yield Cause(_join(path, "addresses"), REQUIRED,
                    "Required value: must specify `addresses` or `notReadyAddresses`")
    if len(subset.ports) > 1:
        for i, p in enumerate(subset.ports):
            if not p.name:
                yield Cause(f"{_join(path, 'ports')}[{i}].name", REQUIRED,
                            "Required value: every port must be named when there is more "
                            "than one")


# ------------------------------------------------------------------ nodes and bindings


@_rule(o.NodeSpec)
def _node_spec(spec: o.NodeSpec, path: str) -> Iterator[Cause]:
    seen: set[tuple[str, str]] = set()
    for i, t in enumerate(spec.taints):
        key = (t.key, t.effect)
        if key in seen:
            yield Cause(f"{_join(path, 'taints')}[{i}]", DUPLICATE,
                        f'Duplicate value: taints must be unique by key and effect pair '
                        f'("{t.key}:{t.effect}")')
        seen.add(key)


@_rule(o.Binding)
def _binding(b: o.Binding, path: str) -> Iterator[Cause]:
    if not b.target.name:
        yield Cause("target.name", REQUIRED, "Required value: the node to bind to")
    elif problem := FORMATS["dns1123-subdomain"](b.target.name):
        # It becomes the pod's spec.nodeName, which binding does not re-validate.
        yield _invalid("target.name", b.target.name, problem)
    if b.target.kind not in ("", "Node"):
        yield Cause("target.kind", NOT_SUPPORTED,
                    f'Unsupported value: {_short(b.target.kind)}: supported values: "Node"')


# ------------------------------------------------------------------ updates


def validate_update(old: Model, new: Model) -> list[Cause]:
    """Causes for updating ``old`` into ``new``: the immutability rules Kubernetes
    enforces on update, followed by :func:`validate` of ``new``.

    >>> from kstate.api.meta import ObjectMeta
    >>> from kstate.api.objects import Service, ServiceSpec, ServicePort
    >>> a = Service(metadata=ObjectMeta(name="s", namespace="default"),
    ...             spec=ServiceSpec(cluster_ip="10.0.0.1", ports=(ServicePort(port=80),)))
    >>> b = attrs.evolve(a, spec=attrs.evolve(a.spec, cluster_ip="10.0.0.2"))
    >>> [c.field for c in validate_update(a, b)]
    ['spec.clusterIP']
    """
    out: list[Cause] = []
    if type(old) is not type(new):
        out.append(_invalid("kind", _kind(new), f"may not change kind from {_kind(old)}"))
        return out
    if isinstance(old, KubeObject) and isinstance(new, KubeObject):
        out.extend(_meta_update(old.metadata, new.metadata))
    for rule in _UPDATE_RULES.get(type(old), ()):
        out.extend(rule(old, new))
    out.extend(validate(new))
    return out


def _immutable(path: str, value: Any) -> Cause:
    return _invalid(path, value, "field is immutable")


def _meta_update(old: ObjectMeta, new: ObjectMeta) -> Iterator[Cause]:
    if new.name != old.name:
        yield _immutable("metadata.name", new.name)
    if new.namespace != old.namespace:
        yield _immutable("metadata.namespace", new.namespace)
    if old.uid and new.uid != old.uid:
        yield _immutable("metadata.uid", new.uid)


UpdateRule = Callable[[Any, Any], Iterable[Cause]]
_UPDATE_RULES: dict[type, list[UpdateRule]] = {}


def _update_rule(cls: type[T]) -> Callable[[Callable[[T, T], Iterable[Cause]]], UpdateRule]:
    def register(fn: Callable[[T, T], Iterable[Cause]]) -> UpdateRule:
        _UPDATE_RULES.setdefault(cls, []).append(fn)
        return fn

    return register


@_update_rule(o.Pod)
def _pod_update(old: o.Pod, new: o.Pod) -> Iterator[Cause]:
    a, b = old.spec, new.spec
    if b.node_name != a.node_name:
        how = ("can only be set through the pods/binding subresource (the scheduler's "
               "write)" if not a.node_name else "field is immutable")
        yield Cause("spec.nodeName", FORBIDDEN, f"Forbidden: {how}")
    ad_old, ad_new = a.active_deadline_seconds, b.active_deadline_seconds
    if ad_old is not None and ad_new is None:
        yield _invalid("spec.activeDeadlineSeconds", ad_new, "must not be unset once set")
    elif ad_old is not None and ad_new is not None and ad_new > ad_old:
        yield _invalid("spec.activeDeadlineSeconds", ad_new,
                       f"must be less than or equal to the previous value ({ad_old})")
    missing = [t for t in a.tolerations if t not in b.tolerations]
    if missing:
        yield Cause("spec.tolerations", FORBIDDEN,
                    "Forbidden: existing tolerations may not be removed or changed; only "
                    "additions are allowed")
    # Mask everything that may change, then any remaining difference is forbidden.
    if len(a.containers) == len(b.containers):
        masked_containers = tuple(
            attrs.evolve(nc, image=oc.image) for oc, nc in zip(a.containers, b.containers,
                                                             strict=True)
        )
    else:
        masked_containers = b.containers
    masked = attrs.evolve(b, containers=masked_containers, node_name=a.node_name,
                          active_deadline_seconds=a.active_deadline_seconds,
                          tolerations=a.tolerations)
    if masked != a:
        changed = [f.json for f in plan(o.PodSpec).fields
                   if getattr(masked, f.name) != getattr(a, f.name)]
        changed += sorted(k for k in set(a.extra) | set(b.extra)
                          if a.extra.get(k) != b.extra.get(k))
        for name in changed:
            yield Cause(f"spec.{name}", FORBIDDEN,
                        "Forbidden: pod updates may not change fields other than "
                        "`spec.containers[*].image`, `spec.activeDeadlineSeconds` and "
                        "`spec.tolerations` (only additions to existing tolerations)")


@_update_rule(o.Service)
def _service_update(old: o.Service, new: o.Service) -> Iterator[Cause]:
    if old.spec.cluster_ip and new.spec.cluster_ip != old.spec.cluster_ip:
        yield _immutable("spec.clusterIP", new.spec.cluster_ip)
    if old.spec.cluster_ips and new.spec.cluster_ips[:1] != old.spec.cluster_ips[:1]:
        yield _immutable("spec.clusterIPs[0]", new.spec.cluster_ips[:1])


@_update_rule(o.Node)
def _node_update(old: o.Node, new: o.Node) -> Iterator[Cause]:
    if old.spec.pod_cidr and new.spec.pod_cidr != old.spec.pod_cidr:
        yield _invalid("spec.podCIDR", new.spec.pod_cidr,
                       "node updates may not change podCIDR except from \"\" to valid")
    if old.spec.provider_id and new.spec.provider_id != old.spec.provider_id:
        yield _invalid("spec.providerID", new.spec.provider_id,
                       "node updates may not change providerID except from \"\" to valid")
