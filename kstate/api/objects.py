"""The Kubernetes kinds kstate acts on, as immutable attrs values.

Where it sits: manifests and API requests decode into these (``codec.py``), the store
keeps their JSON, and every reconciler reads and returns them. Only the fields kstate
uses are modelled; every other key of the JSON lands in the object's ``extra`` and comes
back on output, so a real-world manifest round-trips unchanged.

Conventions (the codec derives JSON from them, see ``docs/objects.md``):

* attribute ``snake_case`` <-> JSON ``camelCase`` (``pod_ip`` <-> ``podIP``);
* ``str`` fields default to ``""`` (= unset), lists to ``()``, maps to ``FrozenDict()``,
  nested structs to their empty instance; ``X | None = None`` where "absent" differs
  from any value (``replicas``, probes, ``terminationGracePeriodSeconds``);
* ``field(...)`` metadata holds the declarative validation rules (enums, formats,
  ranges, uniqueness); cross-field rules live in ``validation.py``;
* ``UNMODELLED`` lists the Kubernetes fields of a type that kstate keeps in ``extra``.

Build objects with keywords and update them with ``attrs.evolve`` or the helpers in
``helpers.py``:

>>> pod = Pod(metadata=ObjectMeta(name="web"),
...           spec=PodSpec(containers=(Container(name="c", image="nginx:1.25"),)))
>>> pod.spec.containers[0].image
'nginx:1.25'
"""

# Every default here is immutable (frozen attrs values, FrozenDict, tuples), so sharing
# one instance between objects is safe: RUF009 does not know ``codec.field``.
# ruff: noqa: RUF009

from __future__ import annotations

import attrs

from kstate.api.codec import Int32, Model, Quantity, field
from kstate.api.frozen import EMPTY, FrozenDict
from kstate.api.meta import RFC3339, DeleteOptions, KubeObject, ObjectMeta, ObjectReference

# ------------------------------------------------------------------ enumerations

RESTART_POLICIES = ("Always", "OnFailure", "Never")
PULL_POLICIES = ("Always", "IfNotPresent", "Never")
PROTOCOLS = ("TCP", "UDP", "SCTP")
POD_PHASES = ("Pending", "Running", "Succeeded", "Failed", "Unknown")
CONDITION_STATUSES = ("True", "False", "Unknown")
QOS_CLASSES = ("Guaranteed", "Burstable", "BestEffort")
SERVICE_TYPES = ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName")
SESSION_AFFINITIES = ("None", "ClientIP")
TRAFFIC_POLICIES = ("Cluster", "Local")
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
TOLERATION_OPERATORS = ("Exists", "Equal")
NODE_SELECTOR_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt")
URI_SCHEMES = ("HTTP", "HTTPS")
NAMESPACE_PHASES = ("Active", "Terminating")
EVENT_TYPES = ("Normal", "Warning")

# ------------------------------------------------------------------ probes


@attrs.frozen(cache_hash=True, repr=False)
class ExecAction(Model):
    command: tuple[str, ...] = ()


@attrs.frozen(cache_hash=True, repr=False)
class HTTPHeader(Model):
    name: str = field("", required=True)
    value: str = ""


@attrs.frozen(cache_hash=True, repr=False)
class HTTPGetAction(Model):
    path: str = ""
    port: int | str | None = field(None, required=True, fmt="port-or-name")
    host: str = ""
    scheme: str = field("", enum=URI_SCHEMES)
    http_headers: tuple[HTTPHeader, ...] = ()


@attrs.frozen(cache_hash=True, repr=False)
class TCPSocketAction(Model):
    port: int | str | None = field(None, required=True, fmt="port-or-name")
    host: str = ""


@attrs.frozen(cache_hash=True, repr=False)
class Probe(Model):
    """Liveness / readiness / startup check: exactly one of exec, httpGet, tcpSocket."""

    UNMODELLED = frozenset({"grpc"})

    exec: ExecAction | None = None
    http_get: HTTPGetAction | None = None
    tcp_socket: TCPSocketAction | None = None
    initial_delay_seconds: Int32 | None = field(None, ge=0)
    timeout_seconds: Int32 | None = field(None, ge=0)
    period_seconds: Int32 | None = field(None, ge=0)
    success_threshold: Int32 | None = field(None, ge=0)
    failure_threshold: Int32 | None = field(None, ge=0)
    termination_grace_period_seconds: int | None = field(None, ge=1)


# ------------------------------------------------------------------ containers


@attrs.frozen(cache_hash=True, repr=False)
class ContainerPort(Model):
    name: str = field("", fmt="iana-svc-name")
    host_port: Int32 = field(0, omit_zero=True, ge=0, le=65535)
    container_port: Int32 = field(0, required=True, ge=1, le=65535)
    protocol: str = field("", enum=PROTOCOLS)
    host_ip: str = field("", fmt="ip")


@attrs.frozen(cache_hash=True, repr=False)
class EnvVar(Model):
    UNMODELLED = frozenset({"valueFrom"})

    name: str = field("", required=True, fmt="env-name")
    value: str = ""


@attrs.frozen(cache_hash=True, repr=False)
class ResourceRequirements(Model):
    """Requests and limits: resource name -> quantity string ("100m", "128Mi")."""

    UNMODELLED = frozenset({"claims"})

    limits: FrozenDict[str, Quantity] = field(EMPTY, keys="resource-name", values="quantity")
    requests: FrozenDict[str, Quantity] = field(EMPTY, keys="resource-name", values="quantity")


@attrs.frozen(cache_hash=True, repr=False)
class Container(Model):
    UNMODELLED = frozenset(
        {
            "envFrom",
            "resizePolicy",
            "restartPolicy",
            "volumeMounts",
            "volumeDevices",
            "lifecycle",
            "terminationMessagePath",
            "terminationMessagePolicy",
            "securityContext",
        }
    )

    name: str = field("", required=True, fmt="dns1123-label")
    image: str = field("", required=True)
    command: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    working_dir: str = ""
    ports: tuple[ContainerPort, ...] = field((), unique="name")
    env: tuple[EnvVar, ...] = ()
    resources: ResourceRequirements = ResourceRequirements()
    liveness_probe: Probe | None = None
    readiness_probe: Probe | None = None
    startup_probe: Probe | None = None
    image_pull_policy: str = field("", enum=PULL_POLICIES)
    #: The runtime keeps the container's stdin open, for ``kubectl attach -i``
    #: (``kubectl run -i`` sets it); without it the process reads EOF at once.
    stdin: bool = field(False, omit_zero=True)
    #: The first attach that closes stdin closes the container's stdin for good (until
    #: the container restarts); without it stdin stays open across attaches.
    stdin_once: bool = field(False, omit_zero=True)
    #: The container's process runs on a terminal (``kubectl run -it``).
    tty: bool = field(False, omit_zero=True)


# ------------------------------------------------------------------ scheduling constraints


@attrs.frozen(cache_hash=True, repr=False)
class Toleration(Model):
    key: str = field("", fmt="label-key")
    operator: str = field("", enum=TOLERATION_OPERATORS)
    value: str = field("", fmt="label-value")
    effect: str = field("", enum=TAINT_EFFECTS)
    toleration_seconds: int | None = None


@attrs.frozen(cache_hash=True, repr=False)
class NodeSelectorRequirement(Model):
    key: str = field("", required=True)
    operator: str = field("", required=True, enum=NODE_SELECTOR_OPERATORS)
    values: tuple[str, ...] = ()


@attrs.frozen(cache_hash=True, repr=False)
class NodeSelectorTerm(Model):
    match_expressions: tuple[NodeSelectorRequirement, ...] = ()
    match_fields: tuple[NodeSelectorRequirement, ...] = ()


@attrs.frozen(cache_hash=True, repr=False)
class NodeSelector(Model):
    node_selector_terms: tuple[NodeSelectorTerm, ...] = field((), required=True)


@attrs.frozen(cache_hash=True, repr=False)
class NodeAffinity(Model):
    UNMODELLED = frozenset({"preferredDuringSchedulingIgnoredDuringExecution"})

    required_during_scheduling_ignored_during_execution: NodeSelector | None = None


@attrs.frozen(cache_hash=True, repr=False)
class Affinity(Model):
    UNMODELLED = frozenset({"podAffinity", "podAntiAffinity"})

    node_affinity: NodeAffinity | None = None


# ------------------------------------------------------------------ pods


@attrs.frozen(cache_hash=True, repr=False)
class PodSpec(Model):
    UNMODELLED = frozenset(
        {
            "volumes",
            "initContainers",
            "ephemeralContainers",
            "dnsPolicy",
            "serviceAccountName",
            "serviceAccount",
            "automountServiceAccountToken",
            "hostPID",
            "hostIPC",
            "shareProcessNamespace",
            "securityContext",
            "imagePullSecrets",
            "hostname",
            "subdomain",
            "hostAliases",
            "priorityClassName",
            "dnsConfig",
            "readinessGates",
            "runtimeClassName",
            "enableServiceLinks",
            "preemptionPolicy",
            "overhead",
            "topologySpreadConstraints",
            "setHostnameAsFQDN",
            "os",
            "hostUsers",
            "schedulingGates",
            "resourceClaims",
            "resources",
        }
    )

    containers: tuple[Container, ...] = field((), required=True, unique="name")
    restart_policy: str = field("", enum=RESTART_POLICIES)
    termination_grace_period_seconds: int | None = field(None, ge=0)
    active_deadline_seconds: int | None = field(None, ge=1)
    node_selector: FrozenDict[str, str] = field(EMPTY, keys="label-key", values="label-value")
    node_name: str = field("", fmt="dns1123-subdomain")
    host_network: bool = field(False, omit_zero=True)
    affinity: Affinity | None = None
    scheduler_name: str = ""
    tolerations: tuple[Toleration, ...] = ()
    priority: Int32 | None = None


@attrs.frozen(cache_hash=True, repr=False)
class PodCondition(Model):
    UNMODELLED = frozenset({"observedGeneration"})

    type: str = field("", required=True)
    status: str = field("", required=True, enum=CONDITION_STATUSES)
    last_probe_time: str = field("", fmt=RFC3339)
    last_transition_time: str = field("", fmt=RFC3339)
    reason: str = ""
    message: str = ""


@attrs.frozen(cache_hash=True, repr=False)
class ContainerStateWaiting(Model):
    reason: str = ""
    message: str = ""


@attrs.frozen(cache_hash=True, repr=False)
class ContainerStateRunning(Model):
    started_at: str = field("", fmt=RFC3339)


@attrs.frozen(cache_hash=True, repr=False)
class ContainerStateTerminated(Model):
    exit_code: Int32 = 0
    signal: Int32 = field(0, omit_zero=True)
    reason: str = ""
    message: str = ""
    started_at: str = field("", fmt=RFC3339)
    finished_at: str = field("", fmt=RFC3339)
    container_id: str = ""


@attrs.frozen(cache_hash=True, repr=False)
class ContainerState(Model):
    """At most one of waiting / running / terminated is set (none: Waiting by default)."""

    waiting: ContainerStateWaiting | None = None
    running: ContainerStateRunning | None = None
    terminated: ContainerStateTerminated | None = None


@attrs.frozen(cache_hash=True, repr=False)
class ContainerStatus(Model):
    UNMODELLED = frozenset(
        {
            "allocatedResources",
            "allocatedResourcesStatus",
            "resources",
            "volumeMounts",
            "user",
            "stopSignal",
        }
    )

    name: str = field("", required=True)
    state: ContainerState = ContainerState()
    last_state: ContainerState = ContainerState()
    ready: bool = False
    restart_count: Int32 = field(0, ge=0)
    image: str = ""
    image_id: str = ""
    container_id: str = ""
    started: bool | None = None


@attrs.frozen(cache_hash=True, repr=False)
class PodIP(Model):
    ip: str = field("", fmt="ip")


@attrs.frozen(cache_hash=True, repr=False)
class PodStatus(Model):
    UNMODELLED = frozenset(
        {
            "observedGeneration",
            "nominatedNodeName",
            "hostIPs",
            "initContainerStatuses",
            "ephemeralContainerStatuses",
            "resize",
            "resourceClaimStatuses",
        }
    )

    phase: str = field("", enum=POD_PHASES)
    conditions: tuple[PodCondition, ...] = field((), unique="type")
    message: str = ""
    reason: str = ""
    host_ip: str = field("", fmt="ip")
    pod_ip: str = field("", fmt="ip")
    pod_ips: tuple[PodIP, ...] = ()
    start_time: str = field("", fmt=RFC3339)
    container_statuses: tuple[ContainerStatus, ...] = field((), unique="name")
    qos_class: str = field("", enum=QOS_CLASSES)


@attrs.frozen(cache_hash=True, repr=False)
class Pod(KubeObject):
    KIND = "Pod"
    API_VERSION = "v1"

    spec: PodSpec = PodSpec()
    status: PodStatus = PodStatus()


@attrs.frozen(cache_hash=True, repr=False)
class PodTemplateSpec(Model):
    metadata: ObjectMeta = ObjectMeta()
    spec: PodSpec = PodSpec()


# ------------------------------------------------------------------ replication controllers


@attrs.frozen(cache_hash=True, repr=False)
class ReplicationControllerSpec(Model):
    replicas: Int32 | None = field(None, ge=0)
    min_ready_seconds: Int32 = field(0, omit_zero=True, ge=0)
    selector: FrozenDict[str, str] = field(EMPTY, keys="label-key", values="label-value")
    template: PodTemplateSpec | None = None


@attrs.frozen(cache_hash=True, repr=False)
class ReplicationControllerCondition(Model):
    type: str = field("", required=True)
    status: str = field("", required=True, enum=CONDITION_STATUSES)
    last_transition_time: str = field("", fmt=RFC3339)
    reason: str = ""
    message: str = ""


@attrs.frozen(cache_hash=True, repr=False)
class ReplicationControllerStatus(Model):
    replicas: Int32 = field(0, ge=0)
    fully_labeled_replicas: Int32 = field(0, omit_zero=True, ge=0)
    ready_replicas: Int32 = field(0, omit_zero=True, ge=0)
    available_replicas: Int32 = field(0, omit_zero=True, ge=0)
    observed_generation: int = field(0, omit_zero=True, ge=0)
    conditions: tuple[ReplicationControllerCondition, ...] = field((), unique="type")


@attrs.frozen(cache_hash=True, repr=False)
class ReplicationController(KubeObject):
    KIND = "ReplicationController"
    API_VERSION = "v1"

    spec: ReplicationControllerSpec = ReplicationControllerSpec()
    status: ReplicationControllerStatus = ReplicationControllerStatus()


# ------------------------------------------------------------------ services and endpoints


@attrs.frozen(cache_hash=True, repr=False)
class ServicePort(Model):
    name: str = field("", fmt="dns1123-label")
    protocol: str = field("", enum=PROTOCOLS)
    app_protocol: str = ""
    port: Int32 = field(0, required=True, ge=1, le=65535)
    target_port: int | str | None = field(None, fmt="port-or-name")
    node_port: Int32 = field(0, omit_zero=True)


@attrs.frozen(cache_hash=True, repr=False)
class ClientIPConfig(Model):
    timeout_seconds: Int32 | None = field(None, ge=1, le=86400)


@attrs.frozen(cache_hash=True, repr=False)
class SessionAffinityConfig(Model):
    client_ip: ClientIPConfig | None = None


@attrs.frozen(cache_hash=True, repr=False)
class ServiceSpec(Model):
    UNMODELLED = frozenset(
        {
            "externalIPs",
            "loadBalancerIP",
            "loadBalancerSourceRanges",
            "externalName",
            "healthCheckNodePort",
            "ipFamilies",
            "ipFamilyPolicy",
            "allocateLoadBalancerNodePorts",
            "loadBalancerClass",
            "internalTrafficPolicy",
            "trafficDistribution",
        }
    )

    ports: tuple[ServicePort, ...] = ()
    selector: FrozenDict[str, str] = field(EMPTY, keys="label-key", values="label-value")
    cluster_ip: str = ""
    cluster_ips: tuple[str, ...] = ()
    type: str = field("", enum=SERVICE_TYPES)
    session_affinity: str = field("", enum=SESSION_AFFINITIES)
    external_traffic_policy: str = field("", enum=TRAFFIC_POLICIES)
    publish_not_ready_addresses: bool = field(False, omit_zero=True)
    session_affinity_config: SessionAffinityConfig | None = None


@attrs.frozen(cache_hash=True, repr=False)
class ServiceStatus(Model):
    UNMODELLED = frozenset({"loadBalancer", "conditions"})


@attrs.frozen(cache_hash=True, repr=False)
class Service(KubeObject):
    KIND = "Service"
    API_VERSION = "v1"

    spec: ServiceSpec = ServiceSpec()
    status: ServiceStatus = ServiceStatus()


@attrs.frozen(cache_hash=True, repr=False)
class EndpointAddress(Model):
    ip: str = field("", required=True, fmt="ip")
    hostname: str = field("", fmt="dns1123-label")
    node_name: str = ""
    target_ref: ObjectReference | None = None


@attrs.frozen(cache_hash=True, repr=False)
class EndpointPort(Model):
    name: str = field("", fmt="dns1123-label")
    port: Int32 = field(0, required=True, ge=1, le=65535)
    protocol: str = field("", enum=PROTOCOLS)
    app_protocol: str = ""


@attrs.frozen(cache_hash=True, repr=False)
class EndpointSubset(Model):
    addresses: tuple[EndpointAddress, ...] = ()
    not_ready_addresses: tuple[EndpointAddress, ...] = ()
    ports: tuple[EndpointPort, ...] = field((), unique="name")


@attrs.frozen(cache_hash=True, repr=False)
class Endpoints(KubeObject):
    KIND = "Endpoints"
    API_VERSION = "v1"

    subsets: tuple[EndpointSubset, ...] = ()


# ------------------------------------------------------------------ nodes


@attrs.frozen(cache_hash=True, repr=False)
class Taint(Model):
    key: str = field("", required=True, fmt="label-key")
    value: str = field("", fmt="label-value")
    effect: str = field("", required=True, enum=TAINT_EFFECTS)
    time_added: str = field("", fmt=RFC3339)


@attrs.frozen(cache_hash=True, repr=False)
class NodeSpec(Model):
    UNMODELLED = frozenset({"podCIDRs", "configSource", "externalID"})

    pod_cidr: str = field("", fmt="cidr")
    provider_id: str = ""
    unschedulable: bool = field(False, omit_zero=True)
    taints: tuple[Taint, ...] = ()


@attrs.frozen(cache_hash=True, repr=False)
class NodeCondition(Model):
    type: str = field("", required=True)
    status: str = field("", required=True, enum=CONDITION_STATUSES)
    last_heartbeat_time: str = field("", fmt=RFC3339)
    last_transition_time: str = field("", fmt=RFC3339)
    reason: str = ""
    message: str = ""


@attrs.frozen(cache_hash=True, repr=False)
class NodeAddress(Model):
    type: str = field("", required=True)
    address: str = field("", required=True)


@attrs.frozen(cache_hash=True, repr=False)
class NodeSystemInfo(Model):
    UNMODELLED = frozenset(
        {"machineID", "systemUUID", "bootID", "kernelVersion", "osImage", "kubeProxyVersion",
         "swap"}
    )

    kubelet_version: str = ""
    container_runtime_version: str = ""
    operating_system: str = ""
    architecture: str = ""


@attrs.frozen(cache_hash=True, repr=False)
class NodeStatus(Model):
    UNMODELLED = frozenset(
        {
            "phase",
            "daemonEndpoints",
            "images",
            "volumesInUse",
            "volumesAttached",
            "config",
            "runtimeHandlers",
            "features",
        }
    )

    capacity: FrozenDict[str, Quantity] = field(EMPTY, keys="resource-name", values="quantity")
    allocatable: FrozenDict[str, Quantity] = field(
        EMPTY, keys="resource-name", values="quantity"
    )
    conditions: tuple[NodeCondition, ...] = field((), unique="type")
    addresses: tuple[NodeAddress, ...] = ()
    node_info: NodeSystemInfo = NodeSystemInfo()


@attrs.frozen(cache_hash=True, repr=False)
class Node(KubeObject):
    KIND = "Node"
    API_VERSION = "v1"

    spec: NodeSpec = NodeSpec()
    status: NodeStatus = NodeStatus()


# ------------------------------------------------------------------ namespaces


@attrs.frozen(cache_hash=True, repr=False)
class NamespaceSpec(Model):
    finalizers: tuple[str, ...] = field((), fmt="qualified-name")


@attrs.frozen(cache_hash=True, repr=False)
class NamespaceCondition(Model):
    """What the namespace controller reports while it empties a terminating namespace
    (``NamespaceContentRemaining``, ``NamespaceDeletionContentFailure``, ...)."""

    type: str = field("", required=True)
    status: str = field("", required=True, enum=CONDITION_STATUSES)
    last_transition_time: str = field("", fmt=RFC3339)
    reason: str = ""
    message: str = ""


@attrs.frozen(cache_hash=True, repr=False)
class NamespaceStatus(Model):
    phase: str = field("", enum=NAMESPACE_PHASES)
    conditions: tuple[NamespaceCondition, ...] = field((), unique="type")


@attrs.frozen(cache_hash=True, repr=False)
class Namespace(KubeObject):
    KIND = "Namespace"
    API_VERSION = "v1"

    spec: NamespaceSpec = NamespaceSpec()
    status: NamespaceStatus = NamespaceStatus()


# ------------------------------------------------------------------ events


@attrs.frozen(cache_hash=True, repr=False)
class EventSource(Model):
    component: str = ""
    host: str = ""


@attrs.frozen(cache_hash=True, repr=False)
class Event(KubeObject):
    """``core/v1`` Event: something that happened to ``involved_object``."""

    KIND = "Event"
    API_VERSION = "v1"
    UNMODELLED = frozenset({"series", "related"})

    involved_object: ObjectReference = ObjectReference()
    reason: str = ""
    message: str = ""
    source: EventSource = EventSource()
    first_timestamp: str = field("", fmt=RFC3339)
    last_timestamp: str = field("", fmt=RFC3339)
    count: Int32 = field(0, omit_zero=True, ge=0)
    type: str = field("", enum=EVENT_TYPES)
    event_time: str = field("", fmt=RFC3339)
    action: str = ""
    reporting_component: str = ""
    reporting_instance: str = ""


# ------------------------------------------------------------------ coordination


@attrs.frozen(cache_hash=True, repr=False)
class LeaseSpec(Model):
    UNMODELLED = frozenset({"strategy", "preferredHolder"})

    holder_identity: str = ""
    lease_duration_seconds: Int32 | None = field(None, ge=1)
    acquire_time: str = field("", fmt=RFC3339)
    renew_time: str = field("", fmt=RFC3339)
    lease_transitions: Int32 | None = field(None, ge=0)


@attrs.frozen(cache_hash=True, repr=False)
class Lease(KubeObject):
    """``coordination.k8s.io/v1`` Lease: node heartbeats and leader election."""

    KIND = "Lease"
    API_VERSION = "coordination.k8s.io/v1"

    spec: LeaseSpec = LeaseSpec()


# ------------------------------------------------------------------ subresource kinds


@attrs.frozen(cache_hash=True, repr=False)
class Binding(KubeObject):
    """Assigns a pod to a node: ``POST .../pods/<name>/binding`` (the scheduler's write)."""

    KIND = "Binding"
    API_VERSION = "v1"

    target: ObjectReference = ObjectReference()


@attrs.frozen(cache_hash=True, repr=False)
class ScaleSpec(Model):
    replicas: Int32 = field(0, omit_zero=True, ge=0)


@attrs.frozen(cache_hash=True, repr=False)
class ScaleStatus(Model):
    replicas: Int32 = 0
    selector: str = ""


@attrs.frozen(cache_hash=True, repr=False)
class Scale(KubeObject):
    """``autoscaling/v1`` Scale: the ``/scale`` subresource of an RC (``kubectl scale``)."""

    KIND = "Scale"
    API_VERSION = "autoscaling/v1"

    spec: ScaleSpec = ScaleSpec()
    status: ScaleStatus = ScaleStatus()


@attrs.frozen(cache_hash=True, repr=False)
class Eviction(KubeObject):
    """``policy/v1`` Eviction: a polite delete of a pod (``.../pods/<name>/eviction``)."""

    KIND = "Eviction"
    API_VERSION = "policy/v1"

    delete_options: DeleteOptions | None = None

