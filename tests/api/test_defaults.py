"""Defaulting: what Kubernetes fills in, idempotently; and DefaultTolerationSeconds."""

from __future__ import annotations

from typing import Any

import pytest

from kstate.api import (
    Endpoints,
    Namespace,
    Node,
    Pod,
    ReplicationController,
    Service,
    Toleration,
    add_default_tolerations,
    default,
    from_dict,
    image_pull_policy_for,
    to_dict,
)


def pod(**spec: Any) -> Pod:
    spec.setdefault("containers", [{"name": "c", "image": "nginx:1.25"}])
    return default(from_dict(Pod, {"metadata": {"name": "p"}, "spec": spec}))


def test_pod_defaults() -> None:
    p = pod()
    assert p.metadata.namespace == "default"
    assert p.spec.restart_policy == "Always"
    assert p.spec.termination_grace_period_seconds == 30
    assert p.spec.scheduler_name == "default-scheduler"
    assert p.spec.extra["dnsPolicy"] == "ClusterFirst"
    assert p.spec.containers[0].image_pull_policy == "IfNotPresent"


def test_pod_defaults_keep_what_is_set() -> None:
    p = pod(restartPolicy="Never", terminationGracePeriodSeconds=0, dnsPolicy="Default",
            schedulerName="mine")
    assert p.spec.restart_policy == "Never"
    assert p.spec.termination_grace_period_seconds == 0  # explicit 0 is not "unset"
    assert p.spec.extra["dnsPolicy"] == "Default"
    assert p.spec.scheduler_name == "mine"


def test_namespace_is_kept_and_cluster_scoped_kinds_get_none() -> None:
    assert default(from_dict(Pod, {"metadata": {"namespace": "x"}})).metadata.namespace == "x"
    assert default(Node()).metadata.namespace == ""
    assert default(Namespace()).metadata.namespace == ""


@pytest.mark.parametrize(
    ("image", "policy"),
    [("nginx", "Always"), ("nginx:latest", "Always"), ("nginx:1.25", "IfNotPresent"),
     ("registry:5000/nginx", "Always"), ("registry:5000/nginx:2", "IfNotPresent"),
     ("nginx@sha256:abc", "IfNotPresent"), ("nginx:latest@sha256:abc", "Always"),
     ("kstate/httpd:1", "IfNotPresent")],
)
def test_image_pull_policy(image: str, policy: str) -> None:
    assert image_pull_policy_for(image) == policy
    assert pod(containers=[{"name": "c", "image": image}]).spec.containers[0] \
        .image_pull_policy == policy


def test_explicit_pull_policy_is_kept() -> None:
    c = pod(containers=[{"name": "c", "image": "x", "imagePullPolicy": "Never"}]).spec.containers[0]
    assert c.image_pull_policy == "Never"


def test_container_port_protocol_and_probe_defaults() -> None:
    c = pod(containers=[{
        "name": "c", "image": "x:1",
        "ports": [{"containerPort": 80}, {"containerPort": 53, "protocol": "UDP"}],
        "livenessProbe": {"httpGet": {"port": 80}},
        "readinessProbe": {"tcpSocket": {"port": 80}, "periodSeconds": 3, "timeoutSeconds": 0},
    }]).spec.containers[0]
    assert [p.protocol for p in c.ports] == ["TCP", "UDP"]
    lp = c.liveness_probe
    assert lp is not None and lp.http_get is not None
    assert (lp.timeout_seconds, lp.period_seconds, lp.success_threshold,
            lp.failure_threshold) == (1, 10, 1, 3)
    assert (lp.http_get.scheme, lp.http_get.path) == ("HTTP", "/")
    rp = c.readiness_probe
    assert rp is not None and (rp.period_seconds, rp.timeout_seconds) == (3, 1)


def test_requests_default_to_limits_per_resource() -> None:
    c = pod(containers=[{"name": "c", "image": "x:1", "resources": {
        "limits": {"cpu": "500m", "memory": "128Mi"}, "requests": {"cpu": "100m"}}}]
    ).spec.containers[0]
    assert c.resources.requests == {"cpu": "100m", "memory": "128Mi"}


def test_rc_defaults() -> None:
    rc = default(from_dict(ReplicationController, {
        "metadata": {"name": "r"},
        "spec": {"template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "c", "image": "x"}]}}}}))
    assert rc.spec.replicas == 1
    assert rc.spec.selector == {"app": "web"}
    assert rc.metadata.labels == {"app": "web"}
    assert rc.metadata.namespace == "default"
    tspec = rc.spec.template.spec  # type: ignore[union-attr]
    assert tspec.restart_policy == "Always"
    assert tspec.containers[0].image_pull_policy == "Always"
    assert tspec.termination_grace_period_seconds == 30


def test_rc_keeps_replicas_zero_and_its_own_selector_and_labels() -> None:
    rc = default(from_dict(ReplicationController, {
        "metadata": {"name": "r", "labels": {"team": "a"}},
        "spec": {"replicas": 0, "selector": {"app": "web"},
                 "template": {"metadata": {"labels": {"app": "web", "v": "2"}}}}}))
    assert rc.spec.replicas == 0
    assert rc.spec.selector == {"app": "web"}
    assert rc.metadata.labels == {"team": "a"}


def svc(**spec: Any) -> Service:
    spec.setdefault("ports", [{"port": 80}])
    return default(from_dict(Service, {"metadata": {"name": "s"}, "spec": spec}))


def test_service_defaults() -> None:
    s = svc()
    assert s.spec.type == "ClusterIP"
    assert s.spec.session_affinity == "None"
    assert s.spec.session_affinity_config is None
    assert s.spec.external_traffic_policy == ""
    assert (s.spec.ports[0].protocol, s.spec.ports[0].target_port) == ("TCP", 80)


def test_service_target_port_kept_and_node_port_policy() -> None:
    s = svc(type="NodePort", ports=[{"port": 80, "targetPort": "http"}])
    assert s.spec.ports[0].target_port == "http"
    assert s.spec.external_traffic_policy == "Cluster"
    assert svc(type="LoadBalancer", externalTrafficPolicy="Local").spec \
        .external_traffic_policy == "Local"


def test_client_ip_affinity_timeout() -> None:
    s = svc(sessionAffinity="ClientIP")
    cfg = s.spec.session_affinity_config
    assert cfg is not None and cfg.client_ip is not None
    assert cfg.client_ip.timeout_seconds == 10800
    s2 = svc(sessionAffinity="ClientIP",
             sessionAffinityConfig={"clientIP": {"timeoutSeconds": 60}})
    assert s2.spec.session_affinity_config.client_ip.timeout_seconds == 60  # type: ignore


def test_endpoint_port_protocol_and_namespace_phase() -> None:
    ep = default(from_dict(Endpoints, {"subsets": [{"addresses": [{"ip": "10.0.0.1"}],
                                                    "ports": [{"port": 80}]}]}))
    assert ep.subsets[0].ports[0].protocol == "TCP"
    assert default(Namespace()).status.phase == "Active"


def test_defaulting_is_idempotent_and_identity_preserving() -> None:
    p = pod()
    assert default(p) is p
    assert to_dict(default(p)) == to_dict(p)


def test_defaulting_does_not_touch_status() -> None:
    p = from_dict(Pod, {"metadata": {"namespace": "a"},
                        "status": {"phase": "Running", "containerStatuses": [{"name": "c"}]}})
    assert default(p).status is p.status


def test_add_default_tolerations() -> None:
    p = add_default_tolerations(pod())
    assert [(t.key, t.operator, t.effect, t.toleration_seconds) for t in p.spec.tolerations] == [
        ("node.kubernetes.io/not-ready", "Exists", "NoExecute", 300),
        ("node.kubernetes.io/unreachable", "Exists", "NoExecute", 300),
    ]
    assert add_default_tolerations(p) is p


def test_add_default_tolerations_respects_existing_ones() -> None:
    own = Toleration(key="node.kubernetes.io/unreachable", operator="Exists",
                     effect="NoExecute", toleration_seconds=6000)
    p = pod(tolerations=[{"key": own.key, "operator": "Exists", "effect": "NoExecute",
                          "tolerationSeconds": 6000}])
    p = add_default_tolerations(p, seconds=60)
    assert [t.key for t in p.spec.tolerations] == [own.key, "node.kubernetes.io/not-ready"]
    assert p.spec.tolerations[0] == own
    everything = pod(tolerations=[{"operator": "Exists"}])
    assert add_default_tolerations(everything) is everything
