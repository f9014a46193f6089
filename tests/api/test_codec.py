"""The generic codec: lossless Kubernetes JSON, unknown fields, omitempty, type errors."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import attrs
import pytest
import yaml

from kstate.api import (
    Container,
    ContainerPort,
    ContainerState,
    ContainerStateRunning,
    ContainerStateTerminated,
    ContainerStatus,
    FrozenDict,
    List,
    Namespace,
    ObjectMeta,
    Pod,
    PodSpec,
    PodStatus,
    ReplicationController,
    ReplicationControllerSpec,
    Service,
    ServicePort,
    Status,
    StatusCause,
    StatusDetails,
    decode,
    extra_fields,
    freeze,
    from_dict,
    from_json,
    thaw,
    to_dict,
    to_json,
    unknown_field_causes,
    unknown_fields,
    walk,
)
from kstate.api.codec import json_name, plan
from kstate.api.frozen import MAX_DEPTH, FreezeError
from kstate.errors import InvalidObject, ManifestError

FIXTURES = Path(__file__).parent / "fixtures"


def causes_of(cls: type, data: object) -> list[tuple[str, str]]:
    with pytest.raises(InvalidObject) as e:
        from_dict(cls, data)  # type: ignore[arg-type]
    return [(c.field, c.reason) for c in e.value.causes]


# ------------------------------------------------------------------ lossless


def test_real_world_pod_round_trips_byte_for_byte() -> None:
    text = (FIXTURES / "realworld-pod.json").read_text()
    pod = from_json(Pod, text)
    assert to_json(pod, indent=4) + "\n" == text
    assert to_json(pod) == json.dumps(json.loads(text), separators=(",", ":"))
    # ... while the modelled parts are really decoded
    assert pod.spec.containers[0].readiness_probe is not None
    assert pod.spec.containers[0].readiness_probe.http_get.port == "http"  # type: ignore[union-attr]
    assert pod.status.container_statuses[0].state.running is not None
    assert pod.status.conditions[0].last_probe_time == ""  # null in, "" in the model


def test_real_world_pod_unmodelled_fields_are_kept_in_place() -> None:
    pod = from_json(Pod, (FIXTURES / "realworld-pod.json").read_text())
    assert pod.spec.extra["volumes"][0]["emptyDir"]["sizeLimit"] == "64Mi"
    assert pod.spec.containers[0].extra["securityContext"]["runAsUser"] == 101
    assert "spec.volumes" in extra_fields(pod)
    assert "spec.containers[0].securityContext" in extra_fields(pod)
    assert unknown_fields(pod) == []  # all of them are Kubernetes fields


def test_real_world_rc_with_null_timestamp_and_zero_replicas() -> None:
    data = yaml.safe_load((FIXTURES / "realworld-rc.yaml").read_text())
    rc = from_dict(ReplicationController, data)
    assert rc.spec.replicas == 0
    assert to_dict(rc) == data
    assert to_dict(rc)["spec"]["template"]["metadata"]["creationTimestamp"] is None


def test_null_comes_back_as_the_value_once_set() -> None:
    meta = from_dict(ObjectMeta, {"name": "a", "creationTimestamp": None})
    assert to_dict(meta) == {"name": "a", "creationTimestamp": None}
    later = attrs.evolve(meta, creation_timestamp="2024-01-01T00:00:00Z")
    assert to_dict(later) == {"name": "a", "creationTimestamp": "2024-01-01T00:00:00Z"}


def test_key_order_is_kept_and_new_keys_follow() -> None:
    data = {"spec": {"containers": [{"image": "x", "name": "c"}]}, "metadata": {"name": "p"},
            "kind": "Pod", "apiVersion": "v1"}
    pod = from_dict(Pod, data)
    assert list(to_dict(pod)) == ["spec", "metadata", "kind", "apiVersion"]
    assert list(to_dict(pod)["spec"]["containers"][0]) == ["image", "name"]
    changed = attrs.evolve(pod, status=PodStatus(phase="Running"))
    assert list(to_dict(changed)) == ["spec", "metadata", "kind", "apiVersion", "status"]


def test_key_order_and_nulls_do_not_affect_equality_or_hash() -> None:
    a = from_dict(ObjectMeta, {"name": "a", "namespace": "b", "uid": None})
    b = from_dict(ObjectMeta, {"namespace": "b", "name": "a"})
    assert a == b
    assert hash(a) == hash(b)
    assert a == ObjectMeta(name="a", namespace="b")


def test_canonical_output_for_objects_built_in_code() -> None:
    pod = Pod(metadata=ObjectMeta(name="p"),
              spec=PodSpec(containers=(Container(name="c", image="x"),)))
    assert to_dict(pod) == {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "image": "x"}]},
    }


def test_unknown_fields_round_trip_deep_frozen() -> None:
    data = {"metadata": {"name": "p", "x-custom": {"a": [1, {"b": None}], "c": 1.5}},
            "spec": {"containers": [], "futureField": [[]]}}
    pod = from_dict(Pod, data)
    assert isinstance(pod.metadata.extra["x-custom"], FrozenDict)
    assert isinstance(pod.metadata.extra["x-custom"]["a"], tuple)
    assert hash(pod)  # everything inside is hashable
    out = to_dict(pod)
    assert out["metadata"]["x-custom"] == {"a": [1, {"b": None}], "c": 1.5}
    assert out["spec"]["futureField"] == [[]]
    assert unknown_fields(pod) == ["metadata.x-custom", "spec.futureField"]


def test_unknown_field_causes_suggest_the_right_name() -> None:
    pod = from_dict(Pod, {"spec": {"contianers": [], "restartPolicy": "Always",
                                   "containers": [{"name": "c", "imagee": "x"}]}})
    causes = unknown_field_causes(pod)
    assert [(c.field, c.reason) for c in causes] == [
        ("spec.contianers", "FieldValueUnknown"),
        ("spec.containers[0].imagee", "FieldValueUnknown"),
    ]
    assert 'did you mean "containers"' in causes[0].message
    assert 'did you mean "image"' in causes[1].message


# ------------------------------------------------------------------ omitempty


def test_explicit_zeros_are_kept() -> None:
    rc = ReplicationController(spec=ReplicationControllerSpec(replicas=0))
    assert to_dict(rc)["spec"] == {"replicas": 0}
    status = ContainerStatus(
        name="c", state=ContainerState(terminated=ContainerStateTerminated(exit_code=0)))
    out = to_dict(status)
    assert out["restartCount"] == 0
    assert out["ready"] is False
    assert out["state"] == {"terminated": {"exitCode": 0}}


def test_empty_values_are_omitted() -> None:
    out = to_dict(Service(metadata=ObjectMeta(name="s")))
    assert out == {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}}
    assert to_dict(ServicePort(port=80)) == {"port": 80}  # nodePort 0 omitted


def test_present_but_empty_struct_is_kept() -> None:
    # An optional struct that is set is emitted even when empty (running: {} is a state).
    assert to_dict(ContainerState(running=ContainerStateRunning())) == {"running": {}}
    # A struct with a default instance is omitted when empty, unless the input had it.
    assert to_dict(Container(name="c")) == {"name": "c"}
    assert to_dict(from_dict(Container, {"name": "c", "resources": {}})) == {
        "name": "c", "resources": {}}


# ------------------------------------------------------------------ names


@pytest.mark.parametrize(
    ("attr", "json"),
    [("pod_ip", "podIP"), ("pod_ips", "podIPs"), ("host_ip", "hostIP"),
     ("cluster_ip", "clusterIP"), ("cluster_ips", "clusterIPs"), ("image_id", "imageID"),
     ("container_id", "containerID"), ("provider_id", "providerID"),
     ("pod_cidr", "podCIDR"), ("client_ip", "clientIP"), ("api_version", "apiVersion"),
     ("continue_", "continue"), ("http_get", "httpGet"),
     ("required_during_scheduling_ignored_during_execution",
      "requiredDuringSchedulingIgnoredDuringExecution")],
)
def test_json_names(attr: str, json: str) -> None:
    assert json_name(attr) == json


def test_every_model_field_has_a_json_name_matching_kubernetes() -> None:
    fields = {f.json for f in plan(PodStatus).fields}
    assert {"hostIP", "podIP", "podIPs", "qosClass", "containerStatuses"} <= fields


# ------------------------------------------------------------------ type errors


def test_wrong_types_report_paths_and_hints() -> None:
    data = {
        "metadata": {"name": 5, "labels": {"on": True, "mode": 777}},
        "spec": {
            "replicas": "3",
            "template": {"spec": {"containers": [{"name": "c", "ports": [
                {"containerPort": "8080"}, {"containerPort": 1.5}]}]}},
        },
    }
    with pytest.raises(InvalidObject) as e:
        from_dict(ReplicationController, data)
    got = {c.field: c.message for c in e.value.causes}
    assert set(got) == {
        "metadata.name",
        "metadata.labels[on]",
        "metadata.labels[mode]",
        "spec.replicas",
        "spec.template.spec.containers[0].ports[0].containerPort",
        "spec.template.spec.containers[0].ports[1].containerPort",
    }
    assert all(c.reason == "FieldValueTypeInvalid" for c in e.value.causes)
    assert "quote it" in got["metadata.labels[on]"]
    assert "booleans" in got["metadata.labels[on]"]
    assert "octal" in got["metadata.labels[mode]"]
    assert "remove the quotes" in got["spec.replicas"]
    assert "whole number" in got["spec.template.spec.containers[0].ports[1].containerPort"]


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"spec": "x"}, "spec"),
        ({"spec": {"containers": {"name": "c"}}}, "spec.containers"),
        ({"spec": {"containers": ["c"]}}, "spec.containers[0]"),
        ({"spec": {"containers": [None]}}, "spec.containers[0]"),
        ({"spec": {"hostNetwork": "true"}}, "spec.hostNetwork"),
        ({"spec": {"nodeSelector": ["a"]}}, "spec.nodeSelector"),
        ({"spec": {"containers": [{"ports": [{"containerPort": 2**31}]}]}},
         "spec.containers[0].ports[0].containerPort"),
        ({"spec": {"activeDeadlineSeconds": 2**64}}, "spec.activeDeadlineSeconds"),
        ({"spec": {"containers": [{"livenessProbe": {"httpGet": {"port": True}}}]}},
         "spec.containers[0].livenessProbe.httpGet.port"),
        ({"spec": {"containers": [{"resources": {"limits": {"cpu": True}}}]}},
         "spec.containers[0].resources.limits[cpu]"),
        ({"kind": "Service"}, "kind"),
        ({"apiVersion": "v2"}, "apiVersion"),
        ({"metadata": {"x": float("nan")}}, "metadata.x"),
    ],
)
def test_type_error_paths(data: dict[str, object], field: str) -> None:
    assert [f for f, _ in causes_of(Pod, data)] == [field]


def test_non_object_input() -> None:
    assert causes_of(Pod, [1, 2]) == [("", "FieldValueTypeInvalid")]
    obj, causes = decode(Pod, "text")
    assert obj is None and causes


def test_lenient_decode_keeps_the_good_parts() -> None:
    obj, causes = decode(Pod, {"metadata": {"name": "p", "namespace": 3}})
    assert obj is not None and obj.metadata.name == "p" and obj.metadata.namespace == ""
    assert [c.field for c in causes] == ["metadata.namespace"]


def test_quantities_accept_numbers_and_keep_strings() -> None:
    c = from_dict(Container, {"resources": {"limits": {"cpu": 1, "memory": "1Gi"},
                                            "requests": {"cpu": 0.5}}})
    assert c.resources.limits == {"cpu": "1", "memory": "1Gi"}
    assert c.resources.requests == {"cpu": "0.5"}


def test_int_or_string() -> None:
    assert from_dict(ServicePort, {"port": 80, "targetPort": "http"}).target_port == "http"
    assert from_dict(ServicePort, {"port": 80, "targetPort": 8080}).target_port == 8080
    assert causes_of(ServicePort, {"targetPort": 1.0}) == [
        ("targetPort", "FieldValueTypeInvalid")]


def test_from_json_bad_json_is_a_manifest_error() -> None:
    with pytest.raises(ManifestError, match="line 1, column"):
        from_json(Pod, "{not json")
    with pytest.raises(ManifestError):
        from_json(Pod, "[" * 100_000)
    with pytest.raises(ManifestError):
        from_json(Pod, b"\xff\xfe")


# ------------------------------------------------------------------ polymorphic lists


def test_list_items_decode_to_their_kinds() -> None:
    data = {"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a"}},
        {"apiVersion": "example.com/v1", "kind": "Widget", "spec": {"size": 3}},
    ]}
    lst = from_dict(List, data)
    assert isinstance(lst.items[0], Namespace)
    assert lst.items[1]["spec"]["size"] == 3
    assert to_dict(lst) == data


def test_status_object_shape() -> None:
    status = Status(status="Failure", message="bad", reason="Invalid", code=422,
                    details=StatusDetails(name="p", kind="Pod", causes=(
                        StatusCause(reason="FieldValueRequired", message="Required value",
                                    field="spec.containers"),)))
    assert to_dict(status) == {
        "apiVersion": "v1", "kind": "Status", "status": "Failure", "message": "bad",
        "reason": "Invalid",
        "details": {"name": "p", "kind": "Pod", "causes": [
            {"reason": "FieldValueRequired", "message": "Required value",
             "field": "spec.containers"}]},
        "code": 422,
    }


# ------------------------------------------------------------------ values


def test_objects_are_immutable_hashable_and_picklable() -> None:
    pod = from_json(Pod, (FIXTURES / "realworld-pod.json").read_text())
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        pod.spec = PodSpec()  # type: ignore[misc]
    assert {pod: 1}[pod] == 1
    assert pickle.loads(pickle.dumps(pod)) == pod
    assert to_dict(pickle.loads(pickle.dumps(pod))) == to_dict(pod)


def test_repr_shows_only_what_is_set() -> None:
    assert repr(ContainerPort(container_port=80)) == "ContainerPort(container_port=80)"


def test_frozendict() -> None:
    d = FrozenDict(a="1")
    assert d == {"a": "1"} and d == FrozenDict({"a": "1"})
    assert hash(d) == hash(FrozenDict([("a", "1")]))
    assert d.set("b", "2") == {"a": "1", "b": "2"} and d == {"a": "1"}
    assert d.without("a") == {} and d.without("zz") is d
    assert (d | {"a": "3"}) == {"a": "3"}
    with pytest.raises(AttributeError):
        d.x = 1  # type: ignore[attr-defined]
    with pytest.raises(TypeError):
        d["a"] = "2"  # type: ignore[index]
    assert pickle.loads(pickle.dumps(d)) == d


def test_freeze_rejects_what_json_cannot_carry() -> None:
    for bad in (b"x", {1: "a"}, float("inf"), 2**70, {1, 2}):
        with pytest.raises(FreezeError):
            freeze(bad)
    deep: object = "x"
    for _ in range(MAX_DEPTH + 1):
        deep = [deep]
    with pytest.raises(FreezeError, match="nested"):
        freeze(deep)
    assert thaw(freeze({"a": [1, {"b": 2}]})) == {"a": [1, {"b": 2}]}


def test_walk_visits_every_struct_with_its_path() -> None:
    pod = from_dict(Pod, {"spec": {"containers": [{"name": "a", "ports": [{}]}]}})
    paths = [p for p, _ in walk(pod)]
    assert "spec.containers[0].ports[0]" in paths
    assert paths[0] == ""
