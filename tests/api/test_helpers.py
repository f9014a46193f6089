"""Helpers for reconcilers: pure updates, references, conditions, selectors."""

from __future__ import annotations

from kstate.api import (
    Node,
    NodeCondition,
    ObjectMeta,
    Pod,
    PodCondition,
    ReplicationController,
    controller_of,
    get_condition,
    is_deleting,
    key_of,
    object_reference,
    owner_reference,
    selector_matches,
    set_condition,
    with_annotations,
    with_labels,
    with_meta,
    with_spec,
    with_status,
)


def test_updates_return_new_values() -> None:
    pod = Pod(metadata=ObjectMeta(name="p", namespace="d"))
    running = with_status(pod, phase="Running", pod_ip="10.0.0.1")
    assert running.status.phase == "Running" and pod.status.phase == ""
    assert with_spec(pod, node_name="n1").spec.node_name == "n1"
    assert with_meta(pod, resource_version="7").metadata.resource_version == "7"
    labelled = with_labels(pod, app="web")
    assert labelled.metadata.labels == {"app": "web"}
    assert with_annotations(labelled, **{"example.com/x": "1"}).metadata.annotations == {
        "example.com/x": "1"}


def test_keys_and_deletion() -> None:
    assert key_of(Pod(metadata=ObjectMeta(name="p", namespace="d"))) == "d/p"
    assert key_of(Node(metadata=ObjectMeta(name="n"))) == "n"
    assert not is_deleting(Pod())
    assert is_deleting(Pod(metadata=ObjectMeta(deletion_timestamp="2024-01-01T00:00:00Z")))


def test_references() -> None:
    rc = ReplicationController(metadata=ObjectMeta(name="web", namespace="d", uid="u1"))
    ref = owner_reference(rc)
    assert (ref.api_version, ref.kind, ref.name, ref.uid, ref.controller,
            ref.block_owner_deletion) == ("v1", "ReplicationController", "web", "u1", True, True)
    pod = Pod(metadata=ObjectMeta(name="p", owner_references=(ref,)))
    assert controller_of(pod) == ref
    assert controller_of(Pod()) is None
    oref = object_reference(pod, field_path="spec.containers{c}")
    assert (oref.kind, oref.name, oref.field_path) == ("Pod", "p", "spec.containers{c}")


def test_conditions_keep_transition_time_when_status_is_unchanged() -> None:
    ready = PodCondition(type="Ready", status="True", last_transition_time="t1")
    conds = set_condition((), ready)
    assert conds == (ready,)
    again = set_condition(conds, PodCondition(type="Ready", status="True",
                                              last_transition_time="t2", reason="x"))
    assert again[0].last_transition_time == "t1" and again[0].reason == "x"
    flipped = set_condition(again, PodCondition(type="Ready", status="False",
                                                last_transition_time="t3"))
    assert flipped[0].last_transition_time == "t3"
    node_conds = set_condition((NodeCondition(type="Ready", status="True"),),
                               NodeCondition(type="DiskPressure", status="False"))
    assert [c.type for c in node_conds] == ["Ready", "DiskPressure"]
    assert get_condition(node_conds, "DiskPressure") == node_conds[1]
    assert get_condition(node_conds, "Nope") is None


def test_selector_matches() -> None:
    assert selector_matches({"app": "web"}, {"app": "web", "x": "y"})
    assert not selector_matches({"app": "web"}, {"app": "api"})
    assert not selector_matches({"app": "web"}, {})
    assert selector_matches({}, {"anything": "at all"})


def test_status_from_error() -> None:
    from kstate.api import status_from_error, to_dict
    from kstate.errors import Cause, InvalidObject, NotFound

    s = status_from_error(InvalidObject("Pod", "web", [
        Cause("spec.containers", "FieldValueRequired", "Required value")]))
    out = to_dict(s)
    assert out["code"] == 422 and out["reason"] == "Invalid" and out["status"] == "Failure"
    assert out["details"] == {"name": "web", "kind": "Pod", "causes": [
        {"reason": "FieldValueRequired", "message": "Required value",
         "field": "spec.containers"}]}
    nf = to_dict(status_from_error(NotFound("pods \"x\" not found"), kind="pods", name="x"))
    assert (nf["code"], nf["reason"], nf["details"]) == (404, "NotFound",
                                                         {"name": "x", "kind": "pods"})
