"""Validation: every rule, each with a failing example and the exact field path."""

from __future__ import annotations

import copy
import re
from typing import Any

import attrs
import pytest

from kstate.api import (
    REGISTRY,
    Container,
    FrozenDict,
    Pod,
    PodSpec,
    Service,
    Toleration,
    check,
    default,
    from_dict,
    validate,
    validate_update,
)
from kstate.errors import InvalidObject

DELETE = object()

BASES: dict[str, dict[str, Any]] = {
    "Pod": {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {"containers": [{
            "name": "web", "image": "kstate/httpd:1",
            "ports": [{"name": "http", "containerPort": 8080}],
            "resources": {"requests": {"cpu": "100m"}, "limits": {"cpu": "1"}},
            "livenessProbe": {"httpGet": {"port": 8080}},
            "readinessProbe": {"tcpSocket": {"port": "http"}},
        }]},
    },
    "ReplicationController": {
        "apiVersion": "v1", "kind": "ReplicationController",
        "metadata": {"name": "web"},
        "spec": {"replicas": 2, "selector": {"app": "web"},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "web", "image": "x:1"}]}}},
    },
    "Service": {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"},
                 "ports": [{"name": "http", "port": 80, "targetPort": 8080}]},
    },
    "Endpoints": {
        "apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "web"},
        "subsets": [{"addresses": [{"ip": "10.244.0.5"}], "ports": [{"port": 8080}]}],
    },
    "Node": {
        "apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-1"},
        "spec": {"podCIDR": "10.244.1.0/24", "taints": []},
        "status": {"capacity": {"cpu": "2", "memory": "4Gi"},
                   "conditions": [{"type": "Ready", "status": "True"}]},
    },
    "Namespace": {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "prod"}},
    "Event": {
        "apiVersion": "v1", "kind": "Event", "metadata": {"name": "web.17a"},
        "involvedObject": {"kind": "Pod", "name": "web"}, "reason": "Scheduled",
        "type": "Normal", "count": 1, "lastTimestamp": "2024-05-01T10:00:00Z",
    },
    "Lease": {
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "node-1", "namespace": "kube-node-lease"},
        "spec": {"holderIdentity": "node-1", "leaseDurationSeconds": 40,
                 "renewTime": "2024-05-01T10:00:00.000000Z"},
    },
    "Binding": {
        "apiVersion": "v1", "kind": "Binding", "metadata": {"name": "web"},
        "target": {"kind": "Node", "name": "node-1"},
    },
}

_TOKEN = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def patched(kind: str, path: str, value: Any) -> dict[str, Any]:
    """The base object of ``kind`` with ``value`` at ``path`` (``DELETE`` removes it)."""
    data = copy.deepcopy(BASES[kind])
    tokens = [m.group(1) if m.group(1) is not None else int(m.group(2))
              for m in _TOKEN.finditer(path)]
    node: Any = data
    for t in tokens[:-1]:
        node = node.setdefault(t, {}) if isinstance(node, dict) else node[t]
    if value is DELETE:
        del node[tokens[-1]]
    else:
        node[tokens[-1]] = value
    return data


def causes(data: dict[str, Any]) -> list[tuple[str, str]]:
    cls = REGISTRY.for_kind(data["kind"]).cls
    obj = default(from_dict(cls, data))
    return [(c.field, c.reason) for c in validate(obj)]


@pytest.mark.parametrize("kind", sorted(BASES))
def test_bases_are_valid(kind: str) -> None:
    assert causes(BASES[kind]) == []


REQ, INV, NS, DUP, FORB, LONG = (
    "FieldValueRequired", "FieldValueInvalid", "FieldValueNotSupported",
    "FieldValueDuplicate", "FieldValueForbidden", "FieldValueTooLong")
C0 = "spec.containers[0]"
WEB = {"name": "web", "image": "x"}

CASES: list[tuple[str, str, Any, str, str]] = [
    # --- object metadata
    ("Pod", "metadata.name", "Web", "metadata.name", INV),
    ("Pod", "metadata.name", "a" * 254, "metadata.name", INV),
    ("Pod", "metadata.name", DELETE, "metadata.name", REQ),
    ("Pod", "metadata", {"generateName": "Web-"}, "metadata.generateName", INV),
    ("Pod", "metadata.namespace", "Bad_NS", "metadata.namespace", INV),
    ("Pod", "metadata.labels", {"bad key!": "x"}, "metadata.labels[bad key!]", INV),
    ("Pod", "metadata.labels", {"Example.com/app": "x"}, "metadata.labels[Example.com/app]",
     INV),
    ("Pod", "metadata.labels", {"/app": "x"}, "metadata.labels[/app]", INV),
    ("Pod", "metadata.labels.app", "-web", "metadata.labels[app]", INV),
    ("Pod", "metadata.labels.app", "a" * 64, "metadata.labels[app]", INV),
    ("Pod", "metadata.annotations", {"a": "x" * (256 * 1024)}, "metadata.annotations", LONG),
    ("Pod", "metadata.annotations", {"bad key!": "x"}, "metadata.annotations[bad key!]", INV),
    ("Pod", "metadata.ownerReferences", [
        {"apiVersion": "v1", "kind": "ReplicationController", "name": n, "uid": n,
         "controller": True} for n in ("a", "b")], "metadata.ownerReferences", INV),
    ("Pod", "metadata.ownerReferences", [{"apiVersion": "v1", "kind": "Node", "name": "a"}],
     "metadata.ownerReferences[0].uid", REQ),
    ("Pod", "metadata.finalizers", ["bad finalizer"], "metadata.finalizers[0]", INV),
    ("Pod", "metadata.creationTimestamp", "yesterday", "metadata.creationTimestamp", INV),
    # --- pod spec
    ("Pod", "spec.containers", [], "spec.containers", REQ),
    ("Pod", "spec.containers", [WEB, WEB], "spec.containers[1].name", DUP),
    ("Pod", f"{C0}.image", DELETE, f"{C0}.image", REQ),
    ("Pod", f"{C0}.name", "Web", f"{C0}.name", INV),
    ("Pod", f"{C0}.name", DELETE, f"{C0}.name", REQ),
    ("Pod", f"{C0}.ports[0].containerPort", 70000, f"{C0}.ports[0].containerPort", INV),
    ("Pod", f"{C0}.ports[0].containerPort", 0, f"{C0}.ports[0].containerPort", REQ),
    ("Pod", f"{C0}.ports[0].hostPort", 70000, f"{C0}.ports[0].hostPort", INV),
    ("Pod", f"{C0}.ports[0].name", "http-metrics-port", f"{C0}.ports[0].name", INV),
    ("Pod", f"{C0}.ports[0].name", "1234", f"{C0}.ports[0].name", INV),
    ("Pod", f"{C0}.ports[0].name", "a--b", f"{C0}.ports[0].name", INV),
    ("Pod", f"{C0}.ports", [{"name": "a", "containerPort": 1}, {"name": "a", "containerPort": 2}],
     f"{C0}.ports[1].name", DUP),
    ("Pod", f"{C0}.ports[0].protocol", "HTTP", f"{C0}.ports[0].protocol", NS),
    ("Pod", f"{C0}.ports[0].hostIP", "nope", f"{C0}.ports[0].hostIP", INV),
    ("Pod", f"{C0}.imagePullPolicy", "Sometimes", f"{C0}.imagePullPolicy", NS),
    ("Pod", "spec.restartPolicy", "Sometimes", "spec.restartPolicy", NS),
    ("Pod", "spec.terminationGracePeriodSeconds", -1, "spec.terminationGracePeriodSeconds",
     INV),
    ("Pod", "spec.activeDeadlineSeconds", 0, "spec.activeDeadlineSeconds", INV),
    ("Pod", f"{C0}.resources.requests.cpu", "2", f"{C0}.resources.requests[cpu]", INV),
    ("Pod", f"{C0}.resources.limits.memory", "lots", f"{C0}.resources.limits[memory]", INV),
    ("Pod", f"{C0}.resources.requests.cpu", "-1", f"{C0}.resources.requests[cpu]", INV),
    ("Pod", f"{C0}.resources.limits.gpu", "1", f"{C0}.resources.limits[gpu]", INV),
    ("Pod", f"{C0}.env", [{"name": "1BAD", "value": "x"}], f"{C0}.env[0].name", INV),
    ("Pod", f"{C0}.env", [{"value": "x"}], f"{C0}.env[0].name", REQ),
    ("Pod", f"{C0}.livenessProbe", {"periodSeconds": 3}, f"{C0}.livenessProbe", REQ),
    ("Pod", f"{C0}.livenessProbe.tcpSocket", {"port": 80}, f"{C0}.livenessProbe.tcpSocket",
     FORB),
    ("Pod", f"{C0}.livenessProbe.httpGet.port", 70000, f"{C0}.livenessProbe.httpGet.port",
     INV),
    ("Pod", f"{C0}.livenessProbe.httpGet.port", "HTTP", f"{C0}.livenessProbe.httpGet.port",
     INV),
    ("Pod", f"{C0}.livenessProbe.httpGet.port", DELETE, f"{C0}.livenessProbe.httpGet.port",
     REQ),
    ("Pod", f"{C0}.livenessProbe.httpGet.scheme", "FTP", f"{C0}.livenessProbe.httpGet.scheme",
     NS),
    ("Pod", f"{C0}.livenessProbe.httpGet.httpHeaders", [{"value": "x"}],
     f"{C0}.livenessProbe.httpGet.httpHeaders[0].name", REQ),
    ("Pod", f"{C0}.livenessProbe.initialDelaySeconds", -1,
     f"{C0}.livenessProbe.initialDelaySeconds", INV),
    ("Pod", f"{C0}.livenessProbe.failureThreshold", -3, f"{C0}.livenessProbe.failureThreshold",
     INV),
    ("Pod", f"{C0}.livenessProbe.successThreshold", 2, f"{C0}.livenessProbe.successThreshold",
     INV),
    ("Pod", f"{C0}.livenessProbe.terminationGracePeriodSeconds", 0,
     f"{C0}.livenessProbe.terminationGracePeriodSeconds", INV),
    ("Pod", f"{C0}.readinessProbe.terminationGracePeriodSeconds", 5,
     f"{C0}.readinessProbe.terminationGracePeriodSeconds", FORB),
    ("Pod", f"{C0}.startupProbe", {"exec": {"command": ["true"]}, "successThreshold": 3},
     f"{C0}.startupProbe.successThreshold", INV),
    ("Pod", "spec.nodeSelector", {"disk": "-ssd"}, "spec.nodeSelector[disk]", INV),
    ("Pod", "spec.nodeName", "Node_1", "spec.nodeName", INV),
    ("Pod", "spec.tolerations", [{"operator": "Equal", "value": "x"}],
     "spec.tolerations[0].operator", INV),
    ("Pod", "spec.tolerations", [{"key": "k", "operator": "Exists", "value": "x"}],
     "spec.tolerations[0].value", INV),
    ("Pod", "spec.tolerations", [{"key": "k", "effect": "NoSchedule", "tolerationSeconds": 5}],
     "spec.tolerations[0].effect", INV),
    ("Pod", "spec.tolerations", [{"key": "k", "effect": "Never"}], "spec.tolerations[0].effect",
     NS),
    ("Pod", "spec.tolerations", [{"key": "k", "operator": "Maybe"}],
     "spec.tolerations[0].operator", NS),
    ("Pod", "spec.containers", [
        {"name": "a", "image": "x", "ports": [{"containerPort": 80, "hostPort": 8080}]},
        {"name": "b", "image": "x", "ports": [{"containerPort": 81, "hostPort": 8080}]}],
     "spec.containers[1].ports[0].hostPort", DUP),
    ("Pod", "status.phase", "Sleeping", "status.phase", NS),
    ("Pod", "status.containerStatuses", [{"name": "c", "restartCount": -1}],
     "status.containerStatuses[0].restartCount", INV),
    ("Pod", "status.conditions", [{"type": "Ready", "status": "Yes"}],
     "status.conditions[0].status", NS),
    ("Pod", "status.podIP", "10.0.0.300", "status.podIP", INV),
    # --- pod node affinity
    *[("Pod", "spec.affinity", {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
                                                 {"nodeSelectorTerms": terms}}},
       "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution."
       + field, reason)
      for terms, field, reason in [
          ([], "nodeSelectorTerms", REQ),
          ([{"matchExpressions": [{"key": "k", "operator": "In"}]}],
           "nodeSelectorTerms[0].matchExpressions[0].values", REQ),
          ([{"matchExpressions": [{"key": "k", "operator": "Exists", "values": ["a"]}]}],
           "nodeSelectorTerms[0].matchExpressions[0].values", FORB),
          ([{"matchExpressions": [{"key": "k", "operator": "Gt", "values": ["abc"]}]}],
           "nodeSelectorTerms[0].matchExpressions[0].values[0]", INV),
          ([{"matchExpressions": [{"key": "k", "operator": "Lt", "values": ["1", "2"]}]}],
           "nodeSelectorTerms[0].matchExpressions[0].values", REQ),
          ([{"matchExpressions": [{"key": "k", "operator": "Near", "values": ["a"]}]}],
           "nodeSelectorTerms[0].matchExpressions[0].operator", NS),
          ([{"matchExpressions": [{"key": "bad key", "operator": "Exists"}]}],
           "nodeSelectorTerms[0].matchExpressions[0].key", INV),
          ([{"matchExpressions": [{"operator": "Exists"}]}],
           "nodeSelectorTerms[0].matchExpressions[0].key", REQ),
          ([{"matchFields": [{"key": "metadata.labels", "operator": "In", "values": ["a"]}]}],
           "nodeSelectorTerms[0].matchFields[0].key", INV),
          ([{"matchFields": [{"key": "metadata.name", "operator": "Exists"}]}],
           "nodeSelectorTerms[0].matchFields[0].operator", NS),
      ]],
    # --- replication controllers
    ("ReplicationController", "spec.selector", {"app": "api"}, "spec.template.metadata.labels",
     INV),
    ("ReplicationController", "spec.template.spec.restartPolicy", "OnFailure",
     "spec.template.spec.restartPolicy", NS),
    ("ReplicationController", "spec.template", DELETE, "spec.template", REQ),
    ("ReplicationController", "spec.replicas", -1, "spec.replicas", INV),
    ("ReplicationController", "spec.minReadySeconds", -1, "spec.minReadySeconds", INV),
    ("ReplicationController", "spec", {"template": {"spec": {"containers": [WEB]}}},
     "spec.selector", REQ),
    ("ReplicationController", "spec.selector", {"bad key": "web"}, "spec.selector[bad key]",
     INV),
    ("ReplicationController", "spec.template.spec.activeDeadlineSeconds", 10,
     "spec.template.spec.activeDeadlineSeconds", FORB),
    ("ReplicationController", "spec.template.spec.containers[0].image", DELETE,
     "spec.template.spec.containers[0].image", REQ),
    ("ReplicationController", "spec.template.metadata.labels.app", "-web",
     "spec.template.metadata.labels[app]", INV),
    # --- services
    ("Service", "metadata.name", "1svc", "metadata.name", INV),
    ("Service", "metadata.name", "my.svc", "metadata.name", INV),
    ("Service", "spec.ports", [], "spec.ports", REQ),
    ("Service", "spec.ports[0].port", 0, "spec.ports[0].port", REQ),
    ("Service", "spec.ports[0].port", 70000, "spec.ports[0].port", INV),
    ("Service", "spec.ports[0].targetPort", 70000, "spec.ports[0].targetPort", INV),
    ("Service", "spec.ports[0].targetPort", "HTTP_PORT", "spec.ports[0].targetPort", INV),
    ("Service", "spec.ports[0].nodePort", 30080, "spec.ports[0].nodePort", FORB),
    ("Service", "spec", {"type": "NodePort", "ports": [{"port": 80, "nodePort": 80}]},
     "spec.ports[0].nodePort", INV),
    ("Service", "spec", {"type": "NodePort", "ports": [
        {"name": "a", "port": 80, "nodePort": 30080},
        {"name": "b", "port": 81, "nodePort": 30080}]}, "spec.ports[1].nodePort", DUP),
    ("Service", "spec.ports", [{"port": 80}, {"port": 81}], "spec.ports[0].name", REQ),
    ("Service", "spec.ports", [{"name": "a", "port": 80}, {"name": "a", "port": 81}],
     "spec.ports[1].name", DUP),
    ("Service", "spec.ports", [{"name": "a", "port": 80}, {"name": "b", "port": 80}],
     "spec.ports[1]", DUP),
    ("Service", "spec.ports[0].name", "HTTP", "spec.ports[0].name", INV),
    ("Service", "spec.ports[0].protocol", "ICMP", "spec.ports[0].protocol", NS),
    ("Service", "spec.type", "Ingress", "spec.type", NS),
    ("Service", "spec.sessionAffinity", "Sticky", "spec.sessionAffinity", NS),
    ("Service", "spec.sessionAffinityConfig", {"clientIP": {"timeoutSeconds": 60}},
     "spec.sessionAffinityConfig", FORB),
    ("Service", "spec", {"sessionAffinity": "ClientIP", "ports": [{"port": 80}],
                         "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 0}}},
     "spec.sessionAffinityConfig.clientIP.timeoutSeconds", INV),
    ("Service", "spec.clusterIP", "not-an-ip", "spec.clusterIP", INV),
    ("Service", "spec", {"type": "NodePort", "clusterIP": "None", "ports": [{"port": 80}]},
     "spec.clusterIP", INV),
    ("Service", "spec", {"clusterIP": "10.0.0.1", "clusterIPs": ["10.0.0.2"],
                         "ports": [{"port": 80}]}, "spec.clusterIPs[0]", INV),
    ("Service", "spec.externalTrafficPolicy", "Local", "spec.externalTrafficPolicy", INV),
    ("Service", "spec", {"type": "NodePort", "externalTrafficPolicy": "Nearest",
                         "ports": [{"port": 80}]}, "spec.externalTrafficPolicy", NS),
    ("Service", "spec.selector", {"app": "-web"}, "spec.selector[app]", INV),
    ("Service", "spec", {"type": "ExternalName"}, "spec.externalName", REQ),
    # --- endpoints
    ("Endpoints", "subsets[0].addresses[0].ip", "10.0.0", "subsets[0].addresses[0].ip", INV),
    ("Endpoints", "subsets[0].addresses", [], "subsets[0].addresses", REQ),
    ("Endpoints", "subsets[0].addresses[0].ip", DELETE, "subsets[0].addresses[0].ip", REQ),
    ("Endpoints", "subsets[0].ports[0].port", 0, "subsets[0].ports[0].port", REQ),
    ("Endpoints", "subsets[0].ports", [{"port": 80}, {"port": 81}], "subsets[0].ports[0].name",
     REQ),
    ("Endpoints", "subsets[0].ports", [{"name": "a", "port": 80}, {"name": "a", "port": 81}],
     "subsets[0].ports[1].name", DUP),
    ("Endpoints", "subsets[0].ports[0].protocol", "ICMP", "subsets[0].ports[0].protocol", NS),
    ("Endpoints", "metadata.name", "Web", "metadata.name", INV),
    # --- nodes
    ("Node", "metadata.namespace", "default", "metadata.namespace", FORB),
    ("Node", "metadata.name", "Node_1", "metadata.name", INV),
    ("Node", "spec.taints", [{"key": "k"}], "spec.taints[0].effect", REQ),
    ("Node", "spec.taints", [{"key": "k", "effect": "Sometimes"}], "spec.taints[0].effect", NS),
    ("Node", "spec.taints", [{"effect": "NoSchedule"}], "spec.taints[0].key", REQ),
    ("Node", "spec.taints", [{"key": "k", "effect": "NoSchedule"}] * 2, "spec.taints[1]", DUP),
    ("Node", "spec.podCIDR", "10.0.0.1/24", "spec.podCIDR", INV),
    ("Node", "status.capacity.cpu", "lots", "status.capacity[cpu]", INV),
    ("Node", "status.conditions[0].status", "Maybe", "status.conditions[0].status", NS),
    ("Node", "status.conditions", [{"type": "Ready", "status": "True"}] * 2,
     "status.conditions[1].type", DUP),
    ("Node", "status.addresses", [{"type": "InternalIP"}], "status.addresses[0].address", REQ),
    # --- namespaces, events, leases, bindings
    ("Namespace", "metadata.name", "my.ns", "metadata.name", INV),
    ("Namespace", "metadata.namespace", "x", "metadata.namespace", FORB),
    ("Namespace", "spec", {"finalizers": ["bad name!"]}, "spec.finalizers[0]", INV),
    ("Namespace", "status", {"phase": "Gone"}, "status.phase", NS),
    ("Event", "type", "Error", "type", NS),
    ("Event", "count", -1, "count", INV),
    ("Event", "lastTimestamp", "yesterday", "lastTimestamp", INV),
    ("Lease", "spec.leaseDurationSeconds", 0, "spec.leaseDurationSeconds", INV),
    ("Lease", "spec.renewTime", "later", "spec.renewTime", INV),
    ("Binding", "target.name", DELETE, "target.name", REQ),
    ("Binding", "target.kind", "Pod", "target.kind", NS),
]


@pytest.mark.parametrize(("kind", "path", "value", "field", "reason"), CASES,
                         ids=[f"{c[0]}:{c[3]}:{c[4]}" for c in CASES])
def test_rule(kind: str, path: str, value: Any, field: str, reason: str) -> None:
    got = causes(patched(kind, path, value))
    assert (field, reason) in got, got


def test_messages_say_how_to_fix() -> None:
    pod = default(from_dict(Pod, patched("Pod", "metadata.name", "Web")))
    (cause,) = validate(pod)
    assert "lower case alphanumeric" in cause.message and "'Web'" in cause.message
    svc = default(from_dict(Service, patched("Service", "spec", {
        "type": "NodePort", "ports": [{"port": 80, "nodePort": 80}]})))
    (cause,) = validate(svc)
    assert "30000-32767" in cause.message


def test_rc_selector_mismatch_names_the_missing_labels() -> None:
    data = patched("ReplicationController", "spec.selector", {"app": "web", "tier": "x"})
    rc = default(from_dict(REGISTRY.for_kind("ReplicationController").cls, data))
    (cause,) = validate(rc)
    assert "add tier=x" in cause.message


def test_host_network_requires_matching_host_port() -> None:
    data = patched("Pod", "spec.hostNetwork", True)
    data["spec"]["containers"][0]["ports"] = [{"containerPort": 80, "hostPort": 81}]
    assert (f"{C0}.ports[0].hostPort", INV) in causes(data)


def test_headless_service_needs_no_ports_and_generate_name_is_enough() -> None:
    assert causes(patched("Service", "spec", {"clusterIP": "None"})) == []
    assert causes(patched("Pod", "metadata", {"generateName": "web-"})) == []


def test_validation_tolerates_fields_defaulting_would_fill() -> None:
    raw = from_dict(Pod, {"metadata": {"name": "p"},
                          "spec": {"containers": [{"name": "c", "image": "x"}]}})
    assert validate(raw) == []


def test_check_raises_with_all_causes() -> None:
    bad = Pod(spec=PodSpec(containers=(Container(name="Bad"),)))
    with pytest.raises(InvalidObject) as e:
        check(bad)
    assert {c.field for c in e.value.causes} == {
        "metadata.name", "spec.containers[0].name", "spec.containers[0].image"}
    assert e.value.code == 422


# ------------------------------------------------------------------ updates


def _pod() -> Pod:
    return default(from_dict(Pod, BASES["Pod"]))


def test_update_allows_image_deadline_and_toleration_additions() -> None:
    old = attrs.evolve(_pod(), spec=attrs.evolve(_pod().spec, active_deadline_seconds=100))
    c = attrs.evolve(old.spec.containers[0], image="kstate/httpd:2")
    new_tol = Toleration(key="k", operator="Exists", effect="NoSchedule")
    new = attrs.evolve(old, spec=attrs.evolve(old.spec, containers=(c,),
                                              active_deadline_seconds=50,
                                              tolerations=(*old.spec.tolerations, new_tol)))
    assert validate_update(old, new) == []


@pytest.mark.parametrize(
    ("change", "field", "reason"),
    [
        ({"restart_policy": "Never"}, "spec.restartPolicy", FORB),
        ({"node_name": "node-1"}, "spec.nodeName", FORB),
        ({"termination_grace_period_seconds": 5}, "spec.terminationGracePeriodSeconds", FORB),
        ({"active_deadline_seconds": None}, "spec.activeDeadlineSeconds", INV),
        ({"active_deadline_seconds": 200}, "spec.activeDeadlineSeconds", INV),
        ({"tolerations": ()}, "spec.tolerations", FORB),
        ({"extra": {"volumes": ()}}, "spec.volumes", FORB),
    ],
)
def test_pod_update_rules(change: dict[str, Any], field: str, reason: str) -> None:
    base = _pod()
    old = attrs.evolve(base, spec=attrs.evolve(
        base.spec, active_deadline_seconds=100,
        tolerations=(Toleration(key="k", operator="Exists"),)))
    if "extra" in change:
        change = {"extra": old.spec.extra.set("volumes", ())}
    new = attrs.evolve(old, spec=attrs.evolve(old.spec, **change))
    got = [(c.field, c.reason) for c in validate_update(old, new)]
    assert (field, reason) in got, got


def test_pod_update_container_change_other_than_image_is_forbidden() -> None:
    old = _pod()
    c = attrs.evolve(old.spec.containers[0], command=("sh",))
    new = attrs.evolve(old, spec=attrs.evolve(old.spec, containers=(c,)))
    assert [(c.field, c.reason) for c in validate_update(old, new)] == [
        ("spec.containers", FORB)]


def test_metadata_is_immutable_on_update() -> None:
    old = attrs.evolve(_pod(), metadata=attrs.evolve(_pod().metadata, uid="u1"))
    new = attrs.evolve(old, metadata=attrs.evolve(old.metadata, name="other", namespace="x",
                                                  uid="u2"))
    fields = [c.field for c in validate_update(old, new)]
    assert fields[:3] == ["metadata.name", "metadata.namespace", "metadata.uid"]


def test_service_cluster_ip_is_immutable() -> None:
    cls = REGISTRY.for_kind("Service").cls
    old = default(from_dict(cls, patched("Service", "spec.clusterIP", "10.96.0.10")))
    new = default(from_dict(cls, patched("Service", "spec.clusterIP", "10.96.0.11")))
    assert [(c.field, c.reason) for c in validate_update(old, new)] == [
        ("spec.clusterIP", INV)]
    assigned = default(from_dict(cls, BASES["Service"]))
    assert validate_update(assigned, old) == []  # "" -> allocated is how it gets one


def test_node_pod_cidr_is_set_once() -> None:
    cls = REGISTRY.for_kind("Node").cls
    old = default(from_dict(cls, BASES["Node"]))
    new = default(from_dict(cls, patched("Node", "spec.podCIDR", "10.244.9.0/24")))
    assert [c.field for c in validate_update(old, new)] == ["spec.podCIDR"]


def test_update_kind_change() -> None:
    assert [c.field for c in validate_update(_pod(), Service())] == ["kind"]


def test_update_includes_validation_of_the_new_object() -> None:
    old = _pod()
    new = attrs.evolve(old, metadata=attrs.evolve(old.metadata, labels=FrozenDict(a="-")))
    assert [c.field for c in validate_update(old, new)] == ["metadata.labels[a]"]
