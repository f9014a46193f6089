"""The endpoints reconciler: ready matching pods in, exactly the right Endpoints out."""

from __future__ import annotations

import attrs

from kstate.api.codec import from_dict
from kstate.api.objects import ContainerPort, Pod
from kstate.control.commands import Create, Delete, Update
from kstate.control.endpoints import EndpointsView, pod_event, reconcile
from tests.control.objects import pod, service


def with_ip(p: Pod, ip: str, ports: list[dict] | None = None) -> Pod:
    p = attrs.evolve(p, status=attrs.evolve(p.status, pod_ip=ip))
    if ports:
        c = attrs.evolve(p.spec.containers[0],
                         ports=tuple(from_dict(ContainerPort, x) for x in ports))
        p = attrs.evolve(p, spec=attrs.evolve(p.spec, containers=(c,)))
    return p


def view(pods: tuple[Pod, ...], endpoints=None, svc=None) -> EndpointsView:
    svc = svc or service()
    return EndpointsView("default", "web", svc, pods, endpoints)


def test_ready_and_not_ready_addresses() -> None:
    ready = with_ip(pod("a", node="n1", phase="Running", ready=True), "10.0.0.2")
    slow = with_ip(pod("b", node="n1", phase="Running", ready=False), "10.0.0.3")
    other = with_ip(pod("c", node="n1", phase="Running", ready=True, labels={"app": "x"}),
                    "10.0.0.4")
    (cmd,) = reconcile(view((ready, slow, other)), 0)
    assert isinstance(cmd, Create)
    (subset,) = cmd.obj.subsets
    assert [a.ip for a in subset.addresses] == ["10.0.0.2"]
    assert [a.ip for a in subset.not_ready_addresses] == ["10.0.0.3"]
    assert subset.addresses[0].target_ref.name == "a"
    assert [(p.port, p.protocol) for p in subset.ports] == [(8080, "TCP")]
    # Idempotent: the same view over the written object changes nothing.
    written = attrs.evolve(cmd.obj, metadata=attrs.evolve(cmd.obj.metadata,
                                                          resource_version="9", uid="e1"))
    assert reconcile(view((ready, slow, other), written), 0) == []


def test_terminating_and_unscheduled_pods_leave_endpoints() -> None:
    dying = with_ip(pod("a", node="n1", phase="Running", ready=True, deleting=True), "10.0.0.2")
    (cmd,) = reconcile(view((dying,)), 0)
    assert cmd.obj.subsets == ()


def test_publish_not_ready_addresses_keeps_everyone() -> None:
    svc = service()
    svc = attrs.evolve(svc, spec=attrs.evolve(svc.spec, publish_not_ready_addresses=True))
    slow = with_ip(pod("b", node="n1", phase="Running", ready=False), "10.0.0.3")
    (cmd,) = reconcile(view((slow,), svc=svc), 0)
    assert [a.ip for a in cmd.obj.subsets[0].addresses] == ["10.0.0.3"]


def test_named_target_port_resolved_per_pod() -> None:
    svc = service(ports=[{"name": "http", "port": 80, "targetPort": "web"}])
    a = with_ip(pod("a", node="n1", phase="Running", ready=True), "10.0.0.2",
                [{"name": "web", "containerPort": 8080}])
    b = with_ip(pod("b", node="n1", phase="Running", ready=True), "10.0.0.3",
                [{"name": "web", "containerPort": 9090}])
    nameless = with_ip(pod("c", node="n1", phase="Running", ready=True), "10.0.0.4")
    (cmd,) = reconcile(view((a, b, nameless), svc=svc), 0)
    got = {(s.ports[0].port, tuple(x.ip for x in s.addresses)) for s in cmd.obj.subsets}
    assert got == {(8080, ("10.0.0.2",)), (9090, ("10.0.0.3",))}


def test_update_uses_the_current_resource_version() -> None:
    a = with_ip(pod("a", node="n1", phase="Running", ready=True), "10.0.0.2")
    (first,) = reconcile(view((a,)), 0)
    stored = attrs.evolve(first.obj, metadata=attrs.evolve(first.obj.metadata,
                                                           resource_version="42", uid="e1"))
    (cmd,) = reconcile(view((), stored), 0)  # the pod went away
    assert isinstance(cmd, Update)
    assert cmd.obj.metadata.resource_version == "42" and cmd.obj.subsets == ()


def test_deleted_service_deletes_its_endpoints() -> None:
    a = with_ip(pod("a", node="n1", phase="Running", ready=True), "10.0.0.2")
    (first,) = reconcile(view((a,)), 0)
    stored = attrs.evolve(first.obj, metadata=attrs.evolve(first.obj.metadata, uid="e1"))
    (cmd,) = reconcile(EndpointsView("default", "web", None, (a,), stored), 0)
    assert isinstance(cmd, Delete) and cmd.uid == "e1"


def test_pod_event_requeues_services_selecting_old_or_new_labels() -> None:
    web, api = service("web"), service("api")
    before = pod("a", labels={"app": "web"})
    after = pod("a", labels={"app": "api"})
    assert pod_event(before, after, [web, api]) == {"default/web", "default/api"}
    assert pod_event(None, after, [web, api]) == {"default/api"}
