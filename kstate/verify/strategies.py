"""Hypothesis strategies for kstate objects: valid ones, and garbage.

Where it sits: in ``verify`` (the property-testing side of the definition path). Tests
of every layer draw objects from here — the codec's lossless round trip, defaulting's
idempotence, validation, the store's serialization, reconcilers' properties and the
stateful tests that drive the live engine — so "a valid Pod" means one thing everywhere.

* ``pods()``, ``replication_controllers()``, ``services()``, ``endpoints()``,
  ``nodes()``, ``namespaces()``, ``events()``, ``leases()`` generate objects that pass
  :func:`kstate.api.validate` (with statuses, unknown extra fields and the corner values
  Kubernetes keeps: ``replicas: 0``, ``exitCode: 0``);
* ``any_object()`` draws one of them;
* ``json_garbage()`` is arbitrary JSON-ish input (wrong types, huge numbers, NaN,
  unicode, deep nesting) and ``corrupted(objects)`` is a valid object's JSON with one
  subtree replaced by garbage — for "bad input never raises anything but our errors".

>>> from hypothesis import given
>>> from kstate.api import validate
>>> @given(pods())
... def test_valid(pod):
...     assert validate(pod) == []
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from hypothesis import strategies as st

from kstate.api import objects as o
from kstate.api.codec import Model, to_dict
from kstate.api.frozen import FrozenDict, freeze
from kstate.api.meta import KubeObject, ObjectMeta, ObjectReference, OwnerReference
from kstate.clock import rfc3339

T = TypeVar("T")
M = TypeVar("M", bound=Model)

# ------------------------------------------------------------------ scalars

_LOWER = "abcdefghijklmnopqrstuvwxyz"
_DIGITS = "0123456789"
_ALNUM = _LOWER + _DIGITS


def _word(first: str, middle: str, last: str, max_middle: int = 10) -> st.SearchStrategy[str]:
    """``first`` char, then optionally ``middle`` chars and a ``last`` char (cheaper for
    Hypothesis than ``from_regex``, which filters)."""
    tail = st.one_of(
        st.just(""),
        st.builds(str.__add__, st.text(alphabet=middle, max_size=max_middle),
                  st.sampled_from(last)),
    )
    return st.builds(str.__add__, st.sampled_from(first), tail)


dns_labels = _word(_ALNUM, _ALNUM + "-", _ALNUM)
dns1035_labels = _word(_LOWER, _ALNUM + "-", _ALNUM)
subdomains = st.lists(dns_labels, min_size=1, max_size=3).map(".".join)
_name_parts = _word(_ALNUM + _LOWER.upper(), _ALNUM + _LOWER.upper() + "-_.",
                    _ALNUM + _LOWER.upper(), max_middle=8)
label_keys = st.one_of(
    _name_parts,
    st.builds(lambda prefix, name: f"{prefix}/{name}", subdomains, _name_parts),
)
label_values = st.one_of(st.just(""), _name_parts)
iana_names = st.builds(
    lambda first, parts: first + "".join(parts),
    st.sampled_from(_LOWER),
    st.lists(st.builds(str.__add__, st.sampled_from(["", "-"]), st.sampled_from(_ALNUM)),
             max_size=6),
)
env_names = st.builds(str.__add__, st.sampled_from(_LOWER.upper() + "_"),
                      st.text(alphabet=_LOWER.upper() + _DIGITS + "_", max_size=10))
ports = st.integers(1, 65535)
node_ports = st.integers(30000, 32767)
timestamps = st.integers(0, 4_000_000_000).map(rfc3339)
uids = st.uuids().map(str)
resource_versions = st.integers(1, 10**12).map(str)
ipv4 = st.ip_addresses(v=4).map(str)
ips = st.one_of(ipv4, st.ip_addresses(v=6).map(str))
images = st.builds(
    lambda repo, tag: repo + tag,
    st.sampled_from(["nginx", "kstate/httpd", "registry.local:5000/team/app", "busybox"]),
    st.sampled_from(["", ":latest", ":1", ":1.25.3", "@sha256:" + "a" * 64]),
)
short_text = st.text(max_size=30)


def _frozen_map(keys: st.SearchStrategy[str], values: st.SearchStrategy[T], max_size: int = 3
                ) -> st.SearchStrategy[FrozenDict[str, T]]:
    return st.dictionaries(keys, values, max_size=max_size).map(FrozenDict)


label_maps = _frozen_map(label_keys, label_values)
annotation_maps = _frozen_map(label_keys, short_text, max_size=2)


def _cpu(millis: int) -> str:
    return f"{millis // 1000}" if millis % 1000 == 0 else f"{millis}m"


def _mem(mib: int) -> str:
    return f"{mib // 1024}Gi" if mib % 1024 == 0 else f"{mib}Mi"


cpu_millis = st.integers(1, 64_000)
memory_mib = st.integers(1, 256 * 1024)
quantities = st.one_of(
    cpu_millis.map(_cpu),
    memory_mib.map(_mem),
    st.integers(0, 10**9).map(str),
    st.sampled_from(["0.5", "1e3", "2E6", "100k", "1.5Gi", "250M", "3Ti"]),
)

# Unknown fields ride along in ``extra`` and must survive every round trip.
_json_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**53), 2**53),
    st.floats(allow_nan=False, allow_infinity=False),
    short_text,
)
json_values = st.recursive(
    _json_leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(short_text, inner, max_size=3)
    ),
    max_leaves=8,
)
extras = st.dictionaries(
    st.text(alphabet=_LOWER + _LOWER.upper(), min_size=1, max_size=8).map("x-".__add__),
    json_values, max_size=2,
).map(freeze)


def _maybe(strategy: st.SearchStrategy[T]) -> st.SearchStrategy[T | None]:
    return st.one_of(st.none(), strategy)


def _unique_names(items: list[M], attr: str = "name") -> list[M]:
    seen: set[Any] = set()
    out = []
    for item in items:
        key = getattr(item, attr)
        if key not in seen:
            seen.add(key)
            out.append(item)
    return out


# ------------------------------------------------------------------ metadata


@st.composite
def owner_references(draw: st.DrawFn, controller: bool | None = None) -> OwnerReference:
    return OwnerReference(
        api_version="v1",
        kind=draw(st.sampled_from(["ReplicationController", "Node", "Service"])),
        name=draw(subdomains),
        uid=draw(uids),
        controller=draw(st.sampled_from([None, False])) if controller is None else controller,
        block_owner_deletion=draw(_maybe(st.booleans())),
    )


@st.composite
def object_meta(draw: st.DrawFn, name: st.SearchStrategy[str] = subdomains,
                namespaced: bool = True) -> ObjectMeta:
    refs = draw(st.lists(owner_references(), max_size=2))
    with_controller = draw(st.booleans())
    if refs and with_controller:
        refs[0] = draw(owner_references(controller=True))
    return ObjectMeta(
        name=draw(name),
        namespace=draw(dns_labels) if namespaced else "",
        uid=draw(st.one_of(st.just(""), uids)),
        labels=draw(label_maps),
        annotations=draw(annotation_maps),
        resource_version=draw(st.one_of(st.just(""), resource_versions)),
        generation=draw(st.integers(0, 1000)),
        creation_timestamp=draw(st.one_of(st.just(""), timestamps)),
        deletion_timestamp=draw(st.one_of(st.just(""), timestamps)),
        deletion_grace_period_seconds=draw(_maybe(st.integers(0, 3600))),
        owner_references=tuple(refs),
        finalizers=tuple(draw(st.lists(label_keys, max_size=2, unique=True))),
        extra=draw(extras),
    )


object_references = st.builds(
    ObjectReference,
    kind=st.sampled_from(["Pod", "Node", "ReplicationController", ""]),
    namespace=st.one_of(st.just(""), dns_labels),
    name=subdomains,
    uid=st.one_of(st.just(""), uids),
    api_version=st.sampled_from(["v1", ""]),
    resource_version=st.one_of(st.just(""), resource_versions),
    field_path=st.sampled_from(["", "spec.containers{web}"]),
)

# ------------------------------------------------------------------ containers


@st.composite
def probes(draw: st.DrawFn, kind: str = "readiness") -> o.Probe:
    handler = draw(st.sampled_from(["exec", "http", "tcp"]))
    port = draw(st.one_of(ports, iana_names))
    return o.Probe(
        exec=o.ExecAction(command=tuple(draw(st.lists(short_text, min_size=1, max_size=3))))
        if handler == "exec" else None,
        http_get=o.HTTPGetAction(
            path=draw(st.sampled_from(["", "/", "/healthz"])),
            port=port,
            host=draw(st.one_of(st.just(""), ipv4)),
            scheme=draw(st.sampled_from(["", "HTTP", "HTTPS"])),
            http_headers=tuple(draw(st.lists(
                st.builds(o.HTTPHeader, name=env_names, value=short_text), max_size=2))),
        ) if handler == "http" else None,
        tcp_socket=o.TCPSocketAction(port=port) if handler == "tcp" else None,
        initial_delay_seconds=draw(_maybe(st.integers(0, 300))),
        timeout_seconds=draw(_maybe(st.integers(0, 60))),
        period_seconds=draw(_maybe(st.integers(0, 60))),
        success_threshold=(draw(_maybe(st.just(1))) if kind != "readiness"
                           else draw(_maybe(st.integers(0, 5)))),
        failure_threshold=draw(_maybe(st.integers(0, 10))),
        termination_grace_period_seconds=(None if kind == "readiness"
                                          else draw(_maybe(st.integers(1, 600)))),
    )


@st.composite
def resource_requirements(draw: st.DrawFn) -> o.ResourceRequirements:
    requests: dict[str, str] = {}
    limits: dict[str, str] = {}
    for res, fmt, base in (("cpu", _cpu, cpu_millis), ("memory", _mem, memory_mib)):
        shape = draw(st.sampled_from(["none", "request", "limit", "both"]))
        low = draw(base)
        high = low + draw(st.integers(0, 1000))
        if shape in ("request", "both"):
            requests[res] = fmt(low)
        if shape in ("limit", "both"):
            limits[res] = fmt(high)
    return o.ResourceRequirements(requests=FrozenDict(requests), limits=FrozenDict(limits))


@st.composite
def containers(draw: st.DrawFn, name: st.SearchStrategy[str] = dns_labels) -> o.Container:
    port_list = _unique_names(draw(st.lists(st.builds(
        o.ContainerPort,
        name=iana_names,
        container_port=ports,
        protocol=st.sampled_from(["", "TCP", "UDP", "SCTP"]),
        host_ip=st.one_of(st.just(""), ipv4),
    ), max_size=3)))
    return o.Container(
        name=draw(name),
        image=draw(images),
        command=tuple(draw(st.lists(short_text, max_size=3))),
        args=tuple(draw(st.lists(short_text, max_size=3))),
        working_dir=draw(st.sampled_from(["", "/", "/srv"])),
        ports=tuple(port_list),
        env=tuple(draw(st.lists(st.builds(o.EnvVar, name=env_names, value=short_text),
                                max_size=3))),
        resources=draw(resource_requirements()),
        liveness_probe=draw(_maybe(probes("liveness"))),
        readiness_probe=draw(_maybe(probes("readiness"))),
        startup_probe=draw(_maybe(probes("startup"))),
        image_pull_policy=draw(st.sampled_from(["", *o.PULL_POLICIES])),
        extra=draw(extras),
    )


# ------------------------------------------------------------------ scheduling


@st.composite
def tolerations(draw: st.DrawFn) -> o.Toleration:
    key = draw(st.one_of(st.just(""), label_keys))
    operator = "Exists" if not key else draw(st.sampled_from(["", "Equal", "Exists"]))
    effect = draw(st.sampled_from(["", *o.TAINT_EFFECTS]))
    return o.Toleration(
        key=key,
        operator=operator,
        value="" if operator == "Exists" else draw(label_values),
        effect=effect,
        toleration_seconds=draw(_maybe(st.integers(0, 3600))) if effect == "NoExecute"
        else None,
    )


@st.composite
def node_selector_requirements(draw: st.DrawFn) -> o.NodeSelectorRequirement:
    op = draw(st.sampled_from(o.NODE_SELECTOR_OPERATORS))
    if op in ("In", "NotIn"):
        values = draw(st.lists(label_values, min_size=1, max_size=3))
    elif op in ("Gt", "Lt"):
        values = [str(draw(st.integers(-1000, 1000)))]
    else:
        values = []
    return o.NodeSelectorRequirement(key=draw(label_keys), operator=op, values=tuple(values))


@st.composite
def affinities(draw: st.DrawFn) -> o.Affinity:
    terms = draw(st.lists(st.builds(
        o.NodeSelectorTerm,
        match_expressions=st.lists(node_selector_requirements(), max_size=2).map(tuple),
        match_fields=st.lists(st.builds(
            o.NodeSelectorRequirement, key=st.just("metadata.name"),
            operator=st.sampled_from(["In", "NotIn"]),
            values=subdomains.map(lambda n: (n,))), max_size=1).map(tuple),
    ), min_size=1, max_size=2))
    return o.Affinity(node_affinity=o.NodeAffinity(
        required_during_scheduling_ignored_during_execution=o.NodeSelector(
            node_selector_terms=tuple(terms))))


# ------------------------------------------------------------------ pods


@st.composite
def pod_specs(draw: st.DrawFn, restart_policies: tuple[str, ...] = ("", *o.RESTART_POLICIES),
              template: bool = False) -> o.PodSpec:
    cs = _unique_names(draw(st.lists(containers(), min_size=1, max_size=3)))
    return o.PodSpec(
        containers=tuple(cs),
        restart_policy=draw(st.sampled_from(restart_policies)),
        termination_grace_period_seconds=draw(_maybe(st.integers(0, 3600))),
        active_deadline_seconds=None if template else draw(_maybe(st.integers(1, 10**6))),
        node_selector=draw(label_maps),
        node_name="" if template else draw(st.one_of(st.just(""), subdomains)),
        affinity=draw(_maybe(affinities())),
        scheduler_name=draw(st.sampled_from(["", "default-scheduler"])),
        tolerations=tuple(draw(st.lists(tolerations(), max_size=3))),
        priority=draw(_maybe(st.integers(-1000, 10**9))),
        extra=draw(extras),
    )


conditions_status = st.sampled_from(o.CONDITION_STATUSES)


@st.composite
def container_states(draw: st.DrawFn) -> o.ContainerState:
    which = draw(st.sampled_from(["none", "waiting", "running", "terminated"]))
    return o.ContainerState(
        waiting=o.ContainerStateWaiting(
            reason=draw(st.sampled_from(["ContainerCreating", "CrashLoopBackOff",
                                         "ErrImagePull", ""])),
            message=draw(short_text)) if which == "waiting" else None,
        running=o.ContainerStateRunning(started_at=draw(st.one_of(st.just(""), timestamps)))
        if which == "running" else None,
        terminated=o.ContainerStateTerminated(
            exit_code=draw(st.sampled_from([0, 1, 137, 143, -1])),
            signal=draw(st.sampled_from([0, 9, 15])),
            reason=draw(st.sampled_from(["Completed", "Error", "OOMKilled", ""])),
            message=draw(short_text),
            started_at=draw(timestamps),
            finished_at=draw(timestamps),
            container_id=draw(st.sampled_from(["", "docker://abc123"])),
        ) if which == "terminated" else None,
    )


@st.composite
def container_statuses(draw: st.DrawFn) -> o.ContainerStatus:
    return o.ContainerStatus(
        name=draw(dns_labels),
        state=draw(container_states()),
        last_state=draw(container_states()),
        ready=draw(st.booleans()),
        restart_count=draw(st.integers(0, 1000)),
        image=draw(images),
        image_id=draw(st.sampled_from(["", "sha256:" + "b" * 64])),
        container_id=draw(st.sampled_from(["", "containerd://0f0f"])),
        started=draw(_maybe(st.booleans())),
    )


@st.composite
def pod_statuses(draw: st.DrawFn) -> o.PodStatus:
    conds = _unique_names(draw(st.lists(st.builds(
        o.PodCondition,
        type=st.sampled_from(["PodScheduled", "Initialized", "ContainersReady", "Ready"]),
        status=conditions_status,
        last_probe_time=st.one_of(st.just(""), timestamps),
        last_transition_time=st.one_of(st.just(""), timestamps),
        reason=st.sampled_from(["", "Unschedulable", "ContainersNotReady"]),
        message=short_text,
    ), max_size=4)), "type")
    pod_ip = draw(st.one_of(st.just(""), ipv4))
    return o.PodStatus(
        phase=draw(st.sampled_from(["", *o.POD_PHASES])),
        conditions=tuple(conds),
        message=draw(short_text),
        reason=draw(st.sampled_from(["", "Evicted", "DeadlineExceeded", "NodeLost"])),
        host_ip=draw(st.one_of(st.just(""), ipv4)),
        pod_ip=pod_ip,
        pod_ips=(o.PodIP(ip=pod_ip),) if pod_ip else (),
        start_time=draw(st.one_of(st.just(""), timestamps)),
        container_statuses=tuple(_unique_names(draw(st.lists(container_statuses(),
                                                             max_size=3)))),
        qos_class=draw(st.sampled_from(["", *o.QOS_CLASSES])),
    )


@st.composite
def pods(draw: st.DrawFn) -> o.Pod:
    """Valid pods, with or without status."""
    return o.Pod(
        metadata=draw(object_meta()),
        spec=draw(pod_specs()),
        status=draw(st.one_of(st.just(o.PodStatus()), pod_statuses())),
        extra=draw(extras),
    )


# ------------------------------------------------------------------ replication controllers


@st.composite
def replication_controllers(draw: st.DrawFn) -> o.ReplicationController:
    """Valid RCs: the selector (possibly empty, i.e. defaulted) matches the template."""
    template_labels = draw(st.dictionaries(label_keys, label_values, min_size=1, max_size=3))
    keys = draw(st.lists(st.sampled_from(sorted(template_labels)), unique=True))
    selector = FrozenDict({k: template_labels[k] for k in keys})
    template_meta = ObjectMeta(labels=FrozenDict(template_labels),
                               annotations=draw(annotation_maps))
    conds = _unique_names(draw(st.lists(st.builds(
        o.ReplicationControllerCondition, type=st.just("ReplicaFailure"),
        status=conditions_status, last_transition_time=st.one_of(st.just(""), timestamps),
        reason=st.sampled_from(["", "FailedCreate"]), message=short_text), max_size=1)), "type")
    return o.ReplicationController(
        metadata=draw(object_meta()),
        spec=o.ReplicationControllerSpec(
            replicas=draw(_maybe(st.integers(0, 500))),
            min_ready_seconds=draw(st.integers(0, 600)),
            selector=selector,
            template=o.PodTemplateSpec(
                metadata=template_meta,
                spec=draw(pod_specs(restart_policies=("", "Always"), template=True)),
            ),
        ),
        status=o.ReplicationControllerStatus(
            replicas=draw(st.integers(0, 500)),
            fully_labeled_replicas=draw(st.integers(0, 500)),
            ready_replicas=draw(st.integers(0, 500)),
            available_replicas=draw(st.integers(0, 500)),
            observed_generation=draw(st.integers(0, 1000)),
            conditions=tuple(conds),
        ),
    )


# ------------------------------------------------------------------ services and endpoints


@st.composite
def services(draw: st.DrawFn) -> o.Service:
    """Valid services of every type but ExternalName, headless ones included."""
    stype = draw(st.sampled_from(["", "ClusterIP", "NodePort", "LoadBalancer"]))
    external = stype in ("NodePort", "LoadBalancer")
    headless = not external and draw(st.booleans())
    n = draw(st.integers(0 if headless else 1, 3))
    names = draw(st.lists(dns_labels, min_size=n, max_size=n, unique=True))
    numbers = draw(st.lists(ports, min_size=n, max_size=n, unique=True))
    nps = draw(st.lists(node_ports, min_size=n, max_size=n, unique=True))
    port_list = []
    for i in range(n):
        port_list.append(o.ServicePort(
            name=names[i] if n > 1 or draw(st.booleans()) else "",
            protocol=draw(st.sampled_from(["", "TCP"])),
            app_protocol=draw(st.sampled_from(["", "http"])),
            port=numbers[i],
            target_port=draw(st.one_of(st.none(), ports, iana_names)),
            node_port=nps[i] if external and draw(st.booleans()) else 0,
        ))
    affinity = draw(st.sampled_from(["", "None", "ClientIP"]))
    config = None
    if affinity == "ClientIP" and draw(st.booleans()):
        config = o.SessionAffinityConfig(client_ip=o.ClientIPConfig(
            timeout_seconds=draw(_maybe(st.integers(1, 86400)))))
    cluster_ip = "None" if headless else draw(st.one_of(st.just(""), ipv4))
    return o.Service(
        metadata=draw(object_meta(name=dns1035_labels)),
        spec=o.ServiceSpec(
            ports=tuple(port_list),
            selector=draw(label_maps),
            cluster_ip=cluster_ip,
            cluster_ips=(cluster_ip,) if cluster_ip and draw(st.booleans()) else (),
            type=stype,
            session_affinity=affinity,
            external_traffic_policy=draw(st.sampled_from(["", *o.TRAFFIC_POLICIES]))
            if external else "",
            publish_not_ready_addresses=draw(st.booleans()),
            session_affinity_config=config,
            extra=draw(extras),
        ),
    )


@st.composite
def endpoint_subsets(draw: st.DrawFn) -> o.EndpointSubset:
    address = st.builds(
        o.EndpointAddress, ip=ips, hostname=st.one_of(st.just(""), dns_labels),
        node_name=st.one_of(st.just(""), subdomains),
        target_ref=_maybe(object_references))
    ready = draw(st.lists(address, max_size=3))
    not_ready = draw(st.lists(address, min_size=0 if ready else 1, max_size=2))
    n = draw(st.integers(0, 3))
    names = draw(st.lists(dns_labels, min_size=n, max_size=n, unique=True))
    port_list = tuple(
        o.EndpointPort(name=names[i] if n > 1 or draw(st.booleans()) else "",
                       port=draw(ports), protocol=draw(st.sampled_from(["", *o.PROTOCOLS])))
        for i in range(n)
    )
    return o.EndpointSubset(addresses=tuple(ready), not_ready_addresses=tuple(not_ready),
                            ports=port_list)


@st.composite
def endpoints(draw: st.DrawFn) -> o.Endpoints:
    return o.Endpoints(metadata=draw(object_meta(name=dns1035_labels)),
                       subsets=tuple(draw(st.lists(endpoint_subsets(), max_size=3))))


# ------------------------------------------------------------------ nodes and namespaces


@st.composite
def nodes(draw: st.DrawFn) -> o.Node:
    """Valid nodes, with capacity, conditions and taints."""
    taints = _unique_names(draw(st.lists(st.builds(
        o.Taint, key=label_keys, value=label_values, effect=st.sampled_from(o.TAINT_EFFECTS),
        time_added=st.one_of(st.just(""), timestamps)), max_size=3)), "key")
    capacity = {"cpu": _cpu(draw(cpu_millis)), "memory": _mem(draw(memory_mib)),
                "pods": str(draw(st.integers(1, 250)))}
    conds = _unique_names(draw(st.lists(st.builds(
        o.NodeCondition,
        type=st.sampled_from(["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"]),
        status=conditions_status,
        last_heartbeat_time=st.one_of(st.just(""), timestamps),
        last_transition_time=st.one_of(st.just(""), timestamps),
        reason=st.sampled_from(["", "KubeletReady", "NodeStatusUnknown"]),
        message=short_text,
    ), max_size=4)), "type")
    return o.Node(
        metadata=draw(object_meta(namespaced=False)),
        spec=o.NodeSpec(
            pod_cidr=draw(st.one_of(st.just(""), st.integers(0, 255).map(
                lambda i: f"10.244.{i}.0/24"))),
            provider_id=draw(st.sampled_from(["", "kstate://node-1"])),
            unschedulable=draw(st.booleans()),
            taints=tuple(taints),
        ),
        status=o.NodeStatus(
            capacity=FrozenDict(capacity),
            allocatable=FrozenDict(capacity) if draw(st.booleans()) else FrozenDict(),
            conditions=tuple(conds),
            addresses=tuple(draw(st.lists(st.builds(
                o.NodeAddress, type=st.sampled_from(["InternalIP", "Hostname"]),
                address=st.one_of(ipv4, subdomains)), max_size=2))),
            node_info=o.NodeSystemInfo(
                kubelet_version=draw(st.sampled_from(["", "v1.30.0-kstate"])),
                container_runtime_version=draw(st.sampled_from(["", "docker://24.0.5"])),
                operating_system=draw(st.sampled_from(["", "linux"])),
                architecture=draw(st.sampled_from(["", "amd64", "arm64"])),
                extra=draw(st.sampled_from([FrozenDict(), FrozenDict(machineID="abc")])),
            ),
        ),
    )


@st.composite
def namespaces(draw: st.DrawFn) -> o.Namespace:
    return o.Namespace(
        metadata=draw(object_meta(name=dns_labels, namespaced=False)),
        spec=o.NamespaceSpec(finalizers=tuple(draw(st.lists(
            st.sampled_from(["kubernetes", "example.com/cleanup"]), unique=True)))),
        status=o.NamespaceStatus(phase=draw(st.sampled_from(["", *o.NAMESPACE_PHASES]))),
    )


# ------------------------------------------------------------------ events and leases


@st.composite
def events(draw: st.DrawFn) -> o.Event:
    return o.Event(
        metadata=draw(object_meta()),
        involved_object=draw(object_references),
        reason=draw(st.sampled_from(["Scheduled", "Pulled", "Killing", "BackOff", ""])),
        message=draw(short_text),
        source=o.EventSource(component=draw(st.sampled_from(["", "kubelet", "scheduler"])),
                             host=draw(st.one_of(st.just(""), subdomains))),
        first_timestamp=draw(st.one_of(st.just(""), timestamps)),
        last_timestamp=draw(st.one_of(st.just(""), timestamps)),
        count=draw(st.integers(0, 10**6)),
        type=draw(st.sampled_from(["", *o.EVENT_TYPES])),
        event_time=draw(st.one_of(st.just(""), timestamps)),
        action=draw(st.sampled_from(["", "Binding"])),
        reporting_component=draw(st.sampled_from(["", "kstate-scheduler"])),
        reporting_instance=draw(st.sampled_from(["", "node-1"])),
    )


@st.composite
def leases(draw: st.DrawFn) -> o.Lease:
    return o.Lease(
        metadata=draw(object_meta()),
        spec=o.LeaseSpec(
            holder_identity=draw(st.one_of(st.just(""), subdomains)),
            lease_duration_seconds=draw(_maybe(st.integers(1, 3600))),
            acquire_time=draw(st.one_of(st.just(""), timestamps)),
            renew_time=draw(st.one_of(st.just(""), timestamps)),
            lease_transitions=draw(_maybe(st.integers(0, 10**6))),
        ),
    )


#: Every valid-object strategy, by kind.
BY_KIND: dict[str, Callable[[], st.SearchStrategy[Any]]] = {
    "Pod": pods,
    "ReplicationController": replication_controllers,
    "Service": services,
    "Endpoints": endpoints,
    "Node": nodes,
    "Namespace": namespaces,
    "Event": events,
    "Lease": leases,
}


def any_object() -> st.SearchStrategy[KubeObject]:
    """A valid object of any kind kstate stores."""
    return st.one_of(*(make() for make in BY_KIND.values()))


# ------------------------------------------------------------------ garbage

_garbage_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=2**31 - 2, max_value=2**31 + 2),
    st.integers(min_value=2**63 - 2, max_value=2**70),
    st.floats(),  # NaN and infinities included
    st.text(),
    st.sampled_from(["", "yes", "0777", "1e999", "-1", "None", "\x00", "ü" * 300, "a" * 10_000,
                     "v1", "Pod", "100m", "99999999999999999999Gi"]),
)


def json_garbage(max_leaves: int = 30) -> st.SearchStrategy[Any]:
    """Arbitrary JSON-ish values: every type in every place, huge numbers, NaN, unicode,
    Kubernetes-looking keys, and occasionally very deep nesting."""
    keys = st.one_of(st.text(max_size=12), st.sampled_from([
        "apiVersion", "kind", "metadata", "name", "spec", "status", "containers", "ports",
        "labels", "items", "selector", "template", "replicas", "port", "targetPort"]))
    tree = st.recursive(
        _garbage_leaves,
        lambda inner: st.one_of(st.lists(inner, max_size=4),
                                st.dictionaries(keys, inner, max_size=5)),
        max_leaves=max_leaves,
    )
    deep = st.integers(50, 400).map(_nest)
    return st.one_of(tree, deep)


def _nest(depth: int) -> Any:
    value: Any = "bottom"
    for i in range(depth):
        value = [value] if i % 2 else {"spec": value}
    return value


@st.composite
def corrupted(draw: st.DrawFn, objects: st.SearchStrategy[Model] | None = None
              ) -> dict[str, Any]:
    """The JSON of a valid object with one subtree (or key) replaced by garbage: gets
    past the first type check, so it exercises the decoder and validation deep down."""
    obj = draw(objects if objects is not None else any_object())
    data = to_dict(obj)
    slots: list[tuple[Any, Any]] = []

    def collect(node: Any) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                slots.append((node, k))
                collect(v)
        elif isinstance(node, list):
            for i, v in enumerate(node):
                slots.append((node, i))
                collect(v)

    collect(data)
    if slots:
        parent, key = draw(st.sampled_from(slots))
        parent[key] = draw(json_garbage(max_leaves=5))
    return data


__all__ = [
    "BY_KIND",
    "any_object",
    "containers",
    "corrupted",
    "endpoints",
    "events",
    "json_garbage",
    "leases",
    "namespaces",
    "nodes",
    "object_meta",
    "pod_specs",
    "pods",
    "replication_controllers",
    "services",
]
