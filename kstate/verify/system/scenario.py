"""Scenarios: the cluster, workloads, faults, user script and properties to check, as YAML.

Where it sits: ``kstate.verify.system``; ``kstate verify SCENARIO.yaml`` loads one with
``load_scenario`` and checks ``scenario.model()``. Shipped scenarios live in
``specs/scenarios/``; ``docs/verify.md`` documents every field.

>>> s = parse_scenario({"name": "tiny", "nodes": 1,
...                     "replication_controllers": [{"name": "web", "replicas": 1}],
...                     "properties": ["never_overcreates"]})
>>> s.name, len(s.model().properties())
('tiny', 1)

Every mistake in a scenario is a ``ModelError`` naming the field (``faults.node_crash``,
``script[2].scale.replicas``) and what is allowed; the CLI prints it and exits 2.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import yaml

from kstate.api import writes
from kstate.api.codec import from_dict
from kstate.api.defaults import default
from kstate.api.frozen import EMPTY, FrozenDict
from kstate.api.meta import KubeObject, ObjectMeta
from kstate.api.objects import Namespace, Node, ReplicationController, Service
from kstate.clock import rfc3339
from kstate.control import nodelifecycle, replication
from kstate.errors import KstateError, ModelError
from kstate.machines.pod import BackOffPolicy
from kstate.node.heartbeat import LEASE_NAMESPACE, renew_lease
from kstate.node.simulated import SimulatedNode
from kstate.verify.system import properties as props
from kstate.verify.system.model import Settings, SystemModel
from kstate.verify.system.world import (
    WATCHES,
    AbstractApi,
    ControllerManager,
    Kubelet,
    World,
    caught_up,
)

T0 = 1_700_000_000.0
FAULTS = ("container_crash", "node_partition", "controller_restart", "node_reboot",
          "kubelet_restart", "api_outage", "readiness_failure")
VERBS = ("scale", "delete_pod", "delete_rc", "cordon", "drain", "delete_namespace")
PROPAGATIONS = ("Background", "Foreground", "Orphan")
_TOP = {"name", "description", "nodes", "replication_controllers", "services", "script",
        "faults", "watch_lag", "scheduler_lag", "kubelet_lag", "settings", "properties",
        "reachable", "bounds", "symmetry", "namespace"}


@attrs.frozen
class RcSpec:
    """One replication controller of a scenario and its pod template's knobs."""

    name: str
    replicas: int = 1
    restart_policy: str = "Always"
    #: ``terminationGracePeriodSeconds``; ``None``: the API server's default (30)
    termination_grace_period: int | None = None
    #: container resource requests (``cpu``, ``memory``), used by placement
    requests: FrozenDict[str, str] = EMPTY
    ports: tuple[int, ...] = (8080,)
    #: the container's readiness probe (an HTTP GET on this port); ``None``: no probe
    readiness_port: int | None = None


@attrs.frozen
class Bounds:
    max_depth: int | None = None
    max_states: int | None = None
    timeout: float | None = None


@attrs.frozen
class Scenario:
    name: str
    description: str
    nodes: tuple[str, ...]
    rcs: tuple[RcSpec, ...]
    services: tuple[str, ...]
    script: tuple[tuple[Any, ...], ...]
    faults: FrozenDict[str, int]
    watch_lag: int
    settings: Settings
    properties: tuple[str, ...]
    bounds: Bounds
    symmetry: bool = False
    #: ``sometimes`` goals (names in ``properties.REACHABLE``): states the search must
    #: reach, so the scenario cannot pass vacuously.
    reachable: tuple[str, ...] = ()
    #: The namespace the workloads live in; set, namespaces are modelled (``default``
    #: and this one exist, creates pass the namespace admission) and the script may
    #: ``delete_namespace`` it. Unset: everything is in ``default``, unmodelled.
    namespace: str = ""

    def model(
        self,
        *,
        replication_fn: Callable[..., list[Any]] | None = None,
        nodelifecycle_fn: Callable[..., list[Any]] | None = None,
        symmetry: bool | None = None,
        properties: Sequence[str] | None = None,
    ) -> SystemModel:
        """The model of this scenario; the reconcilers can be swapped (seeded bugs) and
        the checked properties narrowed (``properties``: names from the scenario's
        ``properties`` and ``reachable`` lists)."""
        from kstate.verify.system.symmetry import ClusterSymmetry

        rep = replication_fn or replication.reconcile
        ctx = props.PropertyContext(rep, self.settings.replication)
        use_symmetry = self.symmetry if symmetry is None else symmetry
        wanted = set(self.properties + self.reachable if properties is None else properties)
        checked = props.build([p for p in self.properties if p in wanted], ctx) + \
            props.build([r for r in self.reachable if r in wanted], ctx, field="reachable")
        unknown = wanted - set(self.properties) - set(self.reachable)
        if unknown:
            raise ModelError(f"not in the scenario's properties or reachable goals: "
                             f"{', '.join(sorted(unknown))}", model=self.name,
                             field="properties")
        return SystemModel(
            self.initial_world(),
            checked,
            self.settings,
            name=self.name,
            replication_fn=rep,
            nodelifecycle_fn=nodelifecycle_fn or nodelifecycle.reconcile,
            symmetry=ClusterSymmetry(self.nodes) if use_symmetry else None,
        )

    def initial_world(self) -> World:
        """Nodes Ready with fresh leases, workloads created, every cache current."""
        api = AbstractApi(watch_lag=10**9)
        world = World(store=FrozenDict(), now=T0,
                      kubelets=FrozenDict({n: Kubelet() for n in self.nodes}),
                      runtimes=FrozenDict({n: SimulatedNode() for n in self.nodes}),
                      budget=self.faults, script=self.script)
        for obj in self._objects():
            out = api.create(world, obj)
            if out.result != "ok":
                raise ModelError(f"could not create {obj.metadata.name}: {out.result}",
                                 model=self.name)
            world = out.world
        for node in self.nodes:
            world = api.put(world, renew_lease(None, node, T0))
        store = world.store
        kubelets = FrozenDict({n: Kubelet(watcher=caught_up(store, WATCHES["kubelet"]))
                               for n in self.nodes})
        return attrs.evolve(
            world, seq=0,
            cm=ControllerManager(watcher=caught_up(store, WATCHES["cm"])),
            sched=caught_up(store, WATCHES["sched"]), kubelets=kubelets)

    def _objects(self) -> list[KubeObject]:
        objects: list[KubeObject] = [_node(n) for n in self.nodes]
        if self.namespace:
            # the defaults the objects live in (leases: kube-node-lease), and its own
            objects += [Namespace(metadata=ObjectMeta(name=name)) for name in dict.fromkeys(
                ("default", LEASE_NAMESPACE, self.namespace))]
        objects += [_rc(spec, self.namespace or "default") for spec in self.rcs]
        objects += [_service(name, i) for i, name in enumerate(self.services)]
        return objects


def _node(name: str) -> Node:
    stamp = rfc3339(T0)
    resources = {"cpu": "4", "memory": "8Gi", "pods": "110"}
    return from_dict(Node, {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "status": {
            "capacity": resources, "allocatable": resources,
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                            "lastHeartbeatTime": stamp, "lastTransitionTime": stamp}],
            "addresses": [{"type": "InternalIP", "address": "192.0.2.1"}],
        },
    })


def _rc(spec: RcSpec, namespace: str = "default") -> ReplicationController:
    container: dict[str, Any] = {
        "name": "app", "image": "kstate/httpd:1",
        "ports": [{"containerPort": port} for port in spec.ports]}
    if spec.requests:
        container["resources"] = {"requests": dict(spec.requests)}
    if spec.readiness_port is not None:
        container["readinessProbe"] = {"httpGet": {"path": "/", "port": spec.readiness_port}}
    pod_spec: dict[str, Any] = {"containers": [container],
                                "restartPolicy": spec.restart_policy}
    if spec.termination_grace_period is not None:
        pod_spec["terminationGracePeriodSeconds"] = spec.termination_grace_period
    return default(from_dict(ReplicationController, {
        "apiVersion": "v1", "kind": "ReplicationController",
        "metadata": {"name": spec.name, "namespace": namespace},
        "spec": {"replicas": spec.replicas, "selector": {"app": spec.name},
                 "template": {"metadata": {"labels": {"app": spec.name}},
                              "spec": pod_spec}},
    }))


def _service(name: str, index: int) -> Service:
    return default(from_dict(Service, {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"selector": {"app": name}, "clusterIP": f"10.96.0.{index + 10}",
                 "ports": [{"port": 80, "targetPort": 8080}]},
    }))


# --------------------------------------------------------------------------- parsing


def load_scenario(path: str | Path) -> Scenario:
    """Read and check a scenario file; every problem names its field."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise ModelError(f"cannot read scenario: {exc.strerror or exc}", model=str(p)) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ModelError(f"invalid YAML: {exc}", model=str(p)) from None
    try:
        return parse_scenario(data, default_name=p.stem)
    except ModelError as err:
        raise ModelError(str(err), model=str(p)) from None


def parse_scenario(data: Any, default_name: str = "scenario") -> Scenario:
    if not isinstance(data, Mapping):
        raise ModelError("a scenario is a mapping (name, nodes, replication_controllers, ...)")
    unknown = sorted(set(data) - _TOP)
    if unknown:
        raise ModelError(f"unknown field {unknown[0]!r}; known: {', '.join(sorted(_TOP))}",
                         field=unknown[0])
    name = _str(data.get("name", default_name), "name")
    nodes = _nodes(data.get("nodes", 1))
    rcs = _rcs(data.get("replication_controllers", []))
    services = tuple(_str(s, f"services[{i}]") for i, s in
                     enumerate(_list(data.get("services", []), "services")))
    rc_names = {r.name for r in rcs}
    for i, svc in enumerate(services):
        if svc not in rc_names:
            raise ModelError(f"service {svc!r} selects app={svc}, but no RC has that name",
                             field=f"services[{i}]")
    faults = _faults(data.get("faults", {}), nodes, rcs)
    watch_lag = _int(data.get("watch_lag", 1), "watch_lag", minimum=0)
    scheduler_lag = _int(data.get("scheduler_lag", 0), "scheduler_lag", minimum=0)
    namespace = _str(data["namespace"], "namespace") if "namespace" in data else ""
    kubelet_lag = _int(data.get("kubelet_lag", 0), "kubelet_lag", minimum=0)
    script = _script(data.get("script", []), rc_names, set(nodes), namespace)
    properties = tuple(_str(p, f"properties[{i}]") for i, p in
                       enumerate(_list(data.get("properties", []), "properties")))
    reachable = tuple(_str(p, f"reachable[{i}]") for i, p in
                      enumerate(_list(data.get("reachable", []), "reachable")))
    ctx = props.PropertyContext(replication.reconcile)
    props.build(properties, ctx)  # the names exist
    props.build(reachable, ctx, field="reachable")
    clash = sorted(set(properties) & set(reachable))
    if clash:
        raise ModelError(f"{clash[0]!r} is both a property and a reachable goal",
                         field="reachable")
    settings = attrs.evolve(_settings(data.get("settings", {}), watch_lag),
                            scheduler_lag=scheduler_lag, kubelet_lag=kubelet_lag)
    bounds = _bounds(data.get("bounds", {}))
    symmetry = data.get("symmetry", False)
    if not isinstance(symmetry, bool):
        raise ModelError("must be true or false", field="symmetry")
    return Scenario(name, str(data.get("description", "")), nodes, rcs, services, script,
                    faults, watch_lag, settings, properties, bounds, symmetry, reachable,
                    namespace)


_STEP_ARGS = {"scale": ("rc", "replicas"), "delete_pod": ("rc", "grace"),
              "delete_rc": ("rc", "propagation")}


def _known_keys(value: Mapping[str, Any], known: Sequence[str], where: str) -> None:
    for k in value:
        if k not in known:
            raise ModelError(f"unknown field {k!r}; known: {', '.join(known)}",
                             field=f"{where}.{k}")


def _list(value: Any, field: str) -> list[Any]:
    if not isinstance(value, list):
        raise ModelError(f"expected a list, got {type(value).__name__}", field=field)
    return value


def _str(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value:
        raise ModelError(f"expected a non-empty string, got {value!r}", field=field)
    return value


def _int(value: Any, field: str, minimum: int = 0, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ModelError(f"expected an integer, got {value!r}", field=field)
    if value < minimum or (maximum is not None and value > maximum):
        upper = f" and <= {maximum}" if maximum is not None else ""
        raise ModelError(f"must be >= {minimum}{upper}, got {value}", field=field)
    return value


def _nodes(value: Any) -> tuple[str, ...]:
    if isinstance(value, int) and not isinstance(value, bool):
        count = _int(value, "nodes", minimum=1, maximum=6)
        return tuple(f"node-{i}" for i in range(1, count + 1))
    names = tuple(_str(n, f"nodes[{i}]") for i, n in enumerate(_list(value, "nodes")))
    if not names or len(set(names)) != len(names):
        raise ModelError("node names must be distinct and at least one", field="nodes")
    return names


_RC_KEYS = ("name", "replicas", "restart_policy", "termination_grace_period", "requests",
            "ports", "readiness_probe")


def _rcs(value: Any) -> tuple[RcSpec, ...]:
    out = [_rc_spec(item, f"replication_controllers[{i}]")
           for i, item in enumerate(_list(value, "replication_controllers"))]
    if len({r.name for r in out}) != len(out):
        raise ModelError("RC names must be distinct", field="replication_controllers")
    return tuple(out)


def _rc_spec(item: Any, where: str) -> RcSpec:
    """One RC entry; the template is then put through the API server's own admission
    (defaults and validation), so whatever Kubernetes refuses is refused here."""
    if not isinstance(item, Mapping):
        raise ModelError("expected {name: ..., replicas: N}", field=where)
    _known_keys(item, _RC_KEYS, where)
    grace = item.get("termination_grace_period")
    requests = item.get("requests", {})
    if not isinstance(requests, Mapping):
        raise ModelError("expected a mapping such as {cpu: 500m, memory: 1Gi}",
                         field=f"{where}.requests")
    _known_keys(requests, ("cpu", "memory"), f"{where}.requests")
    ports = tuple(_int(p, f"{where}.ports[{i}]", minimum=1, maximum=65535)
                  for i, p in enumerate(_list(item.get("ports", [8080]), f"{where}.ports")))
    spec = RcSpec(
        name=_str(item.get("name"), f"{where}.name"),
        replicas=_int(item.get("replicas", 1), f"{where}.replicas", maximum=5),
        restart_policy=_str(item.get("restart_policy", "Always"), f"{where}.restart_policy"),
        termination_grace_period=None if grace is None else
        _int(grace, f"{where}.termination_grace_period", minimum=0),
        requests=FrozenDict({k: str(v) for k, v in requests.items()}),
        ports=ports,
        readiness_port=_probe_port(item.get("readiness_probe"), ports,
                                   f"{where}.readiness_probe"))
    try:
        writes.admit_create(_rc(spec), T0, "uid-check")
    except KstateError as err:
        causes = getattr(err, "causes", ())
        path = causes[0].field if causes else ""
        knob = next((k for marker, k in _TEMPLATE_FIELDS if marker in path), "")
        raise ModelError(f"the API server refuses this RC: {err}",
                         field=f"{where}.{knob}" if knob else where) from None
    return spec


#: where the API server's validation points in the template -> the scenario's knob
_TEMPLATE_FIELDS = (("restartPolicy", "restart_policy"),
                    ("terminationGracePeriodSeconds", "termination_grace_period"),
                    ("requests[cpu]", "requests.cpu"), ("requests[memory]", "requests.memory"),
                    ("readinessProbe", "readiness_probe"), ("ports", "ports"),
                    ("replicas", "replicas"))


def _probe_port(value: Any, ports: tuple[int, ...], where: str) -> int | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ModelError("expected {port: N}", field=where)
    _known_keys(value, ("port",), where)
    port = _int(value.get("port"), f"{where}.port", minimum=1, maximum=65535)
    if port not in ports:
        raise ModelError(f"the container does not declare port {port} (its ports: "
                         f"{', '.join(map(str, ports)) or 'none'}); probe a declared port",
                         field=f"{where}.port")
    return port


def _faults(value: Any, nodes: Sequence[str], rcs: Sequence[RcSpec]) -> FrozenDict[str, int]:
    if not isinstance(value, Mapping):
        raise ModelError("expected a mapping of fault name -> bound", field="faults")
    out = {}
    for name, bound in value.items():
        if name not in FAULTS:
            raise ModelError(f"unknown fault {name!r}; known: {', '.join(FAULTS)}",
                             field=f"faults.{name}")
        out[name] = _int(bound, f"faults.{name}", maximum=5)
    if out.get("node_partition", 0) > len(nodes):
        raise ModelError(f"more partitions ({out['node_partition']}) than nodes "
                         f"({len(nodes)}); use at most {len(nodes)}",
                         field="faults.node_partition")
    if out.get("readiness_failure", 0) and not any(r.readiness_port for r in rcs):
        raise ModelError("no RC has a readiness_probe, so no probe can fail; add one or "
                         "drop the fault", field="faults.readiness_failure")
    return FrozenDict(out)


def _script(value: Any, rcs: set[str], nodes: set[str], namespace: str = ""
            ) -> tuple[tuple[Any, ...], ...]:
    steps: list[tuple[Any, ...]] = []
    for i, item in enumerate(_list(value, "script")):
        where = f"script[{i}]"
        if not isinstance(item, Mapping) or len(item) != 1:
            raise ModelError(f"each step is one of {', '.join(VERBS)}: {{verb: args}}",
                             field=where)
        ((verb, args),) = item.items()
        if verb not in VERBS:
            raise ModelError(f"unknown step {verb!r}; known: {', '.join(VERBS)}", field=where)
        if verb == "delete_namespace":
            name = _str(args, f"{where}.{verb}")
            if name != namespace:
                raise ModelError(f"no namespace {name!r}: the scenario's workloads are in "
                                 f"{namespace or 'default'!r} (set the top-level "
                                 "'namespace' to model namespaces)", field=f"{where}.{verb}")
            steps.append((verb, name))
            continue
        if namespace and verb in _STEP_ARGS:
            raise ModelError(f"{verb} acts on the default namespace's workloads; a scenario "
                             "with 'namespace' takes cordon, drain and delete_namespace "
                             "steps only", field=where)
        if verb in ("cordon", "drain"):
            node = _str(args, f"{where}.{verb}")
            if node not in nodes:
                raise ModelError(f"no node {node!r}", field=f"{where}.{verb}")
            steps.append((verb, node))
            continue
        if not isinstance(args, Mapping):
            raise ModelError("expected a mapping", field=f"{where}.{verb}")
        _known_keys(args, _STEP_ARGS[verb], f"{where}.{verb}")
        rc = _str(args.get("rc"), f"{where}.{verb}.rc")
        if rc not in rcs:
            raise ModelError(f"no RC {rc!r}", field=f"{where}.{verb}.rc")
        if verb == "scale":
            steps.append(("scale", rc, _int(args.get("replicas"), f"{where}.scale.replicas",
                                            maximum=5)))
        elif verb == "delete_pod":
            grace = args.get("grace")
            steps.append(("delete_pod", rc, None if grace is None else
                          _int(grace, f"{where}.delete_pod.grace", minimum=0)))
        else:
            policy = args.get("propagation", "Background")
            if policy not in PROPAGATIONS:
                raise ModelError(f"must be one of {', '.join(PROPAGATIONS)}",
                                 field=f"{where}.delete_rc.propagation")
            steps.append(("delete_rc", rc, policy))
    return tuple(steps)


def _settings(value: Any, watch_lag: int) -> Settings:
    if not isinstance(value, Mapping):
        raise ModelError("expected a mapping", field="settings")
    known = {"grace_period", "expectations_ttl", "backoff_initial", "backoff_cap"}
    for k in value:
        if k not in known:
            raise ModelError(f"unknown setting {k!r}; known: {', '.join(sorted(known))}",
                             field=f"settings.{k}")
    try:
        grace = float(value.get("grace_period", 40.0))
        ttl = float(value.get("expectations_ttl", 300.0))
        backoff = BackOffPolicy(initial=float(value.get("backoff_initial", 10.0)),
                                cap=float(value.get("backoff_cap", 300.0)))
    except (TypeError, ValueError) as exc:
        raise ModelError(f"settings must be numbers: {exc}", field="settings") from None
    return Settings(
        watch_lag=watch_lag, grace_period=grace, backoff=backoff,
        replication=replication.ReplicationSettings(expectations_ttl=ttl),
        node_lifecycle=nodelifecycle.NodeLifecycleSettings(grace_period=grace),
    )


def _bounds(value: Any) -> Bounds:
    if not isinstance(value, Mapping):
        raise ModelError("expected a mapping", field="bounds")
    for k in value:
        if k not in ("max_depth", "max_states", "timeout"):
            raise ModelError(f"unknown bound {k!r}; known: max_depth, max_states, timeout",
                             field=f"bounds.{k}")
    def opt(k: str) -> int | None:
        return _int(value[k], f"bounds.{k}", minimum=1) if k in value else None
    timeout = value.get("timeout")
    if timeout is not None and (isinstance(timeout, bool)
                                or not isinstance(timeout, int | float) or timeout <= 0):
        raise ModelError(f"must be a positive number, got {timeout!r}", field="bounds.timeout")
    return Bounds(opt("max_depth"), opt("max_states"), timeout)


__all__ = ["FAULTS", "T0", "VERBS", "Bounds", "RcSpec", "Scenario", "load_scenario",
           "parse_scenario"]
