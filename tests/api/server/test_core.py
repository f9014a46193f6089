"""ApiCore semantics on the memory store with a FakeClock: CRUD, CAS, generation,
status, field validation, selectors, pagination, subresources and lifecycle checks."""

from __future__ import annotations

import attrs
import pytest

from kstate.api import (
    Binding,
    ContainerState,
    ContainerStateWaiting,
    ContainerStatus,
    DeleteOptions,
    Endpoints,
    Event,
    Lease,
    ObjectMeta,
    ObjectReference,
    Pod,
    PodCondition,
    Scale,
    ScaleSpec,
    from_dict,
    with_labels,
    with_meta,
    with_spec,
    with_status,
)
from kstate.api.server.core import WriteOptions, qos_class
from kstate.api.server.selectors import selection
from kstate.clock import FakeClock, rfc3339
from kstate.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    IllegalTransition,
    InvalidContinueToken,
    InvalidObject,
    KeyExists,
    NotFound,
)
from tests.api.server.conftest import START, running_core
from tests.api.server.helpers import (
    ENDPOINTS,
    EVENT,
    LEASE,
    NS,
    POD,
    RC,
    namespace,
    node,
    pod,
    rc,
)

# ------------------------------------------------------------------ create / get


async def test_create_sets_server_fields() -> None:
    async with running_core() as core:
        created = await core.create(pod("web", namespace=""))
        meta = created.metadata
        assert meta.namespace == "default"
        assert meta.uid and meta.resource_version.isdigit()
        assert meta.creation_timestamp == rfc3339(START)
        assert meta.generation == 1
        assert created.status.phase == "Pending" and created.status.qos_class == "BestEffort"
        # DefaultTolerationSeconds admission
        assert {t.key for t in created.spec.tolerations} == {
            "node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"}
        assert await core.get(POD, "default", "web") == created


async def test_generate_name_and_conflicts() -> None:
    async with running_core() as core:
        generated = await core.create(with_meta(pod(""), generate_name="web-"))
        assert generated.metadata.name.startswith("web-")
        assert len(generated.metadata.name) == len("web-") + 5
        await core.create(pod("web"))
        with pytest.raises(KeyExists, match='pods "web" already exists'):
            await core.create(pod("web"))
        with pytest.raises(NotFound, match='namespaces "nowhere" not found'):
            await core.create(pod("web", namespace="nowhere"))
        with pytest.raises(BadRequest, match="resourceVersion should not be set"):
            await core.create(with_meta(pod("x"), resource_version="5"))
        with pytest.raises(NotFound, match='pods "ghost" not found'):
            await core.get(POD, "default", "ghost")


async def test_create_validates_with_every_cause() -> None:
    async with running_core() as core:
        bad = with_spec(with_meta(pod("Web"), labels={"bad key!": "x"}),
                        restart_policy="Sometimes")
        with pytest.raises(InvalidObject) as info:
            await core.create(bad)
        fields = {c.field for c in info.value.causes}
        assert {"metadata.name", "spec.restartPolicy"} <= fields


async def test_field_validation_strict_warn_ignore() -> None:
    async with running_core() as core:
        data = {"metadata": {"name": "p"}, "spec": {"containers": [
            {"name": "c", "image": "x", "imagePolicy": "Always"}], "hostnme": "h"}}
        obj = from_dict(Pod, data)
        with pytest.raises(BadRequest) as info:
            await core.create(obj, opts=WriteOptions(field_validation="Strict"))
        assert {c.field for c in info.value.causes} == {
            "spec.containers[0].imagePolicy", "spec.hostnme"}
        assert 'unknown field "spec.hostnme"' in str(info.value)
        warn = WriteOptions(field_validation="Warn")
        await core.create(obj, opts=warn)
        assert sorted(warn.warnings) == ['unknown field "spec.containers[0].imagePolicy"',
                                         'unknown field "spec.hostnme"']
        ignore = WriteOptions(field_validation="Ignore")
        await core.create(with_meta(obj, name="q"), opts=ignore)
        assert ignore.warnings == []
        with pytest.raises(BadRequest):
            WriteOptions(field_validation="Loose")


async def test_dry_run_writes_nothing() -> None:
    async with running_core() as core:
        before = await core.store.revision()
        created = await core.create(pod("dry"), opts=WriteOptions(dry_run=True))
        assert created.metadata.uid
        assert await core.store.revision() == before
        with pytest.raises(NotFound):
            await core.get(POD, "default", "dry")


async def test_terminating_namespace_refuses_new_content() -> None:
    async with running_core() as core:
        await core.create(namespace("prod"))
        await core.create(pod("bound", namespace="prod", node="n1"))
        await core.delete(NS, "", "prod")
        ns = await core.get(NS, "", "prod")
        assert ns.status.phase == "Terminating"
        with pytest.raises(Forbidden, match="being terminated"):
            await core.create(pod("late", namespace="prod"))


# ------------------------------------------------------------------ update


async def test_update_is_compare_and_swap() -> None:
    async with running_core() as core:
        first = await core.create(pod("web"))
        second = await core.update(with_labels(first, tier="front"))
        assert int(second.metadata.resource_version) > int(first.metadata.resource_version)
        with pytest.raises(Conflict, match="the object has been modified"):
            await core.update(with_labels(first, tier="back"))
        # no resourceVersion: applies to the latest
        third = await core.update(with_meta(with_labels(first, tier="back"),
                                            resource_version=""))
        assert third.metadata.labels["tier"] == "back"
        # nothing changed: no write, same version
        again = await core.update(third)
        assert again.metadata.resource_version == third.metadata.resource_version


async def test_generation_bumps_on_spec_change_only() -> None:
    async with running_core() as core:
        created = await core.create(rc("web", 2))
        labelled = await core.update(with_labels(created, x="y"))
        assert labelled.metadata.generation == 1
        scaled = await core.update(with_spec(labelled, replicas=5))
        assert scaled.metadata.generation == 2


async def test_main_resource_ignores_status_and_status_ignores_the_rest() -> None:
    async with running_core() as core:
        created = await core.create(pod("web", node="n1"))
        sneaky = with_labels(with_status(created, phase="Running"), a="b")
        updated = await core.update(sneaky)
        assert updated.status.phase == "Pending" and updated.metadata.labels["a"] == "b"
        creating = ContainerStatus(name="c", state=ContainerState(
            waiting=ContainerStateWaiting(reason="ContainerCreating")))
        started = with_status(with_labels(updated, c="d"), container_statuses=(creating,))
        status_only = await core.update(started, subresource="status")
        assert status_only.status.container_statuses == (creating,)
        assert "c" not in status_only.metadata.labels


async def test_update_missing_object() -> None:
    async with running_core() as core:
        with pytest.raises(NotFound):
            await core.update(pod("ghost"))
        # Kinds Kubernetes lets an update create: events, endpoints, leases.
        ev = Event(metadata=ObjectMeta(name="e1", namespace="default"), reason="Test")
        assert (await core.update(ev)).metadata.uid
        ep = await core.update(Endpoints(metadata=ObjectMeta(name="ep", namespace="default")))
        lease = await core.update(Lease(metadata=ObjectMeta(name="n1",
                                                            namespace="kube-node-lease")))
        assert ep.metadata.uid and lease.metadata.uid
        assert (await core.get(EVENT, "default", "e1")).reason == "Test"
        assert await core.get(ENDPOINTS, "default", "ep")
        assert await core.get(LEASE, "kube-node-lease", "n1")


async def test_pod_spec_is_mostly_immutable() -> None:
    async with running_core() as core:
        created = await core.create(pod("web"))
        with pytest.raises(InvalidObject) as info:
            await core.update(with_spec(created, restart_policy="Never"))
        assert info.value.causes[0].field == "spec.restartPolicy"
        with pytest.raises(InvalidObject, match="binding subresource"):
            await core.update(with_spec(created, node_name="n1"))
        image = attrs.evolve(created.spec.containers[0], image="nginx:1.26")
        updated = await core.update(with_spec(created, containers=(image,)))
        assert updated.spec.containers[0].image == "nginx:1.26"


# ------------------------------------------------------------------ lifecycle checks


async def test_illegal_phase_change_names_state_and_change() -> None:
    async with running_core() as core:
        bound = await core.create(pod("web", node="n1"))  # Scheduled
        with pytest.raises(IllegalTransition) as info:
            await core.update(with_status(bound, phase="Succeeded"), subresource="status")
        err = info.value
        assert err.state == "Scheduled" and "Succeeded" in err.trigger
        assert err.code == 422
        assert "triggers allowed in 'Scheduled'" in str(err)


async def test_binding_schedules_through_the_machine() -> None:
    async with running_core() as core:
        await core.create(pod("web"))
        binding = Binding(metadata=ObjectMeta(name="web"),
                          target=ObjectReference(kind="Node", name="n1"))
        bound = await core.bind("default", binding)
        assert bound.spec.node_name == "n1"
        assert [c.type for c in bound.status.conditions] == ["PodScheduled"]
        with pytest.raises(Conflict, match='already assigned to node "n1"'):
            await core.bind("default", binding)
        with pytest.raises(InvalidObject):
            await core.bind("default", Binding(metadata=ObjectMeta(name="web")))


async def test_binding_rejects_a_node_name_that_could_not_be_stored() -> None:
    # Binding skips the pod's update validation, so the Binding's own check is what
    # keeps an invalid spec.nodeName out of the store.
    async with running_core() as core:
        created = await core.create(pod("web"))
        binding = Binding(metadata=ObjectMeta(name="web"),
                          target=ObjectReference(kind="Node", name="Not_A_Node"))
        with pytest.raises(InvalidObject) as info:
            await core.bind("default", binding)
        assert [c.field for c in info.value.causes] == ["target.name"]
        assert await core.get(POD, "default", "web") == created


async def test_node_cordon_is_a_machine_move() -> None:
    async with running_core() as core:
        created = await core.create(node("n1"))
        ready = await core.update(with_status(created, conditions=(
            node("n1", "True").status.conditions)), subresource="status")
        cordoned = await core.update(with_spec(ready, unschedulable=True))
        assert cordoned.spec.unschedulable


# ------------------------------------------------------------------ list, selectors, pages


async def test_list_with_label_and_field_selectors() -> None:
    async with running_core() as core:
        await core.create(pod("a", labels={"app": "web", "tier": "front"}, node="n1"))
        await core.create(pod("b", labels={"app": "web", "tier": "back"}))
        await core.create(pod("c", labels={"app": "db"}, node="n2"))

        async def names(labels: str = "", fields: str = "") -> list[str]:
            listed = await core.list(POD, "default",
                                     selection=selection("Pod", labels, fields))
            return [p.metadata.name for p in listed.items]

        assert await names("app=web") == ["a", "b"]
        assert await names("app!=web") == ["c"]
        assert await names("tier in (front,back),app") == ["a", "b"]
        assert await names("tier notin (front)") == ["b", "c"]
        assert await names("!tier") == ["c"]
        assert await names(fields="spec.nodeName=n1") == ["a"]
        assert await names(fields="spec.nodeName=") == ["b"]
        assert await names("app=web", "metadata.name!=a") == ["b"]
        assert await names(fields="status.phase=Pending") == ["a", "b", "c"]
        with pytest.raises(BadRequest, match=r"field label not supported: spec\.image"):
            selection("Pod", "", "spec.image=x")
        with pytest.raises(BadRequest):
            selection("Pod", "app in (web", "")
        everywhere = await core.list(POD)
        assert len(everywhere.items) == 3


async def test_pagination_counts_matches_and_reads_one_revision() -> None:
    async with running_core() as core:
        for i in range(7):
            await core.create(pod(f"p{i}", labels={"even": str(i % 2 == 0).lower()}))
        sel = selection("Pod", "even=true")
        first = await core.list(POD, "default", selection=sel, limit=2)
        assert [p.metadata.name for p in first.items] == ["p0", "p2"]
        assert first.continue_token
        await core.create(pod("p10", labels={"even": "true"}))  # after the first page
        rest = await core.list(POD, "default", selection=sel, limit=10,
                               continue_token=first.continue_token)
        assert [p.metadata.name for p in rest.items] == ["p4", "p6"]
        assert rest.resource_version == first.resource_version
        assert not rest.continue_token
        past = await core.list(POD, "default", resource_version=first.resource_version,
                               resource_version_match="Exact")
        assert "p10" not in [p.metadata.name for p in past.items]
        with pytest.raises(InvalidContinueToken):
            await core.list(POD, "default", continue_token="garbage")


# ------------------------------------------------------------------ subresources


async def test_scale_subresource() -> None:
    async with running_core() as core:
        created = await core.create(rc("web", 2))
        scale = await core.get_scale(RC, "default", "web")
        assert scale.spec.replicas == 2 and scale.status.selector == "app=web"
        assert scale.metadata.resource_version == created.metadata.resource_version
        updated = await core.update_scale(RC, "default", "web", attrs.evolve(
            scale, spec=ScaleSpec(replicas=4)))
        assert updated.spec.replicas == 4
        assert (await core.get(RC, "default", "web")).metadata.generation == 2
        with pytest.raises(Conflict):
            await core.update_scale(RC, "default", "web", attrs.evolve(
                scale, spec=ScaleSpec(replicas=1)))
        patched = await core.patch(RC, "default", "web", "application/merge-patch+json",
                                   {"spec": {"replicas": 0}}, subresource="scale")
        assert isinstance(patched, Scale) and patched.spec.replicas == 0
        with pytest.raises(NotFound):
            await core.get_scale(POD, "default", "web")


async def test_eviction_deletes_gracefully() -> None:
    async with running_core() as core:
        await core.create(pod("web", node="n1"))
        result = await core.evict("default", "web")
        assert not result.removed and result.object.metadata.deletion_timestamp
        with pytest.raises(NotFound):
            await core.evict("default", "ghost")


async def test_log_location_comes_from_the_node() -> None:
    async with running_core() as core:
        await core.create(pod("web", node="n1"))
        await core.create(with_meta(node("n1"),
                                    annotations={"kstate.io/agent-url": "http://127.0.0.1:1"}))
        assert await core.log_location("default", "web") == \
            "http://127.0.0.1:1/containerLogs/default/web/c"
        with pytest.raises(BadRequest, match="not valid"):
            await core.log_location("default", "web", "nope")
        await core.create(pod("floating"))
        with pytest.raises(BadRequest, match="not scheduled"):
            await core.log_location("default", "floating")


async def test_status_conditions_patch_merges_by_type() -> None:
    async with running_core() as core:
        await core.create(pod("web", node="n1"))
        patch = {"status": {"conditions": [{"type": "Ready", "status": "False"}]}}
        first = await core.patch(POD, "default", "web",
                                 "application/strategic-merge-patch+json", patch,
                                 subresource="status")
        patch2 = {"status": {"conditions": [{"type": "Initialized", "status": "True"}]}}
        second = await core.patch(POD, "default", "web",
                                  "application/strategic-merge-patch+json", patch2,
                                  subresource="status")
        assert [c.type for c in first.status.conditions] == ["Ready"]
        assert [c.type for c in second.status.conditions] == ["Ready", "Initialized"]


async def test_patch_with_stale_resource_version_conflicts() -> None:
    async with running_core() as core:
        created = await core.create(pod("web"))
        await core.update(with_labels(created, a="1"))
        with pytest.raises(Conflict):
            await core.patch(POD, "default", "web", "application/merge-patch+json",
                             {"metadata": {"resourceVersion": created.metadata.resource_version,
                                           "labels": {"b": "2"}}})
        with pytest.raises(BadRequest, match="does not match the name"):
            await core.patch(POD, "default", "web", "application/merge-patch+json",
                             {"metadata": {"name": "other"}})


async def test_clock_drives_timestamps() -> None:
    clock = FakeClock(START)
    async with running_core(clock=clock) as core:
        clock.advance(3600)
        created = await core.create(pod("late"))
        assert created.metadata.creation_timestamp == rfc3339(START + 3600)
        condition = PodCondition(type="PodScheduled", status="True")
        assert condition.type == "PodScheduled"


async def test_delete_options_are_validated() -> None:
    async with running_core() as core:
        await core.create(rc("web"))
        with pytest.raises(InvalidObject):
            await core.delete(RC, "default", "web", DeleteOptions(propagation_policy="Eager"))
        assert (await core.get(RC, "default", "web")).metadata.name == "web"


def test_qos_class() -> None:
    def make(resources: dict[str, object]) -> Pod:
        return from_dict(Pod, {"spec": {"containers": [
            {"name": "c", "image": "x", "resources": resources}]}})

    guaranteed = {"limits": {"cpu": "1", "memory": "1Gi"},
                  "requests": {"cpu": "1000m", "memory": "1Gi"}}
    assert qos_class(make({})) == "BestEffort"
    assert qos_class(make({"requests": {"cpu": "1"}})) == "Burstable"
    assert qos_class(make(guaranteed)) == "Guaranteed"
    assert qos_class(make({"limits": {"cpu": "1"}})) == "Burstable"
