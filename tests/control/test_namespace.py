"""The namespace controller as a function: view in, commands out."""

from __future__ import annotations

import attrs

from kstate.api.meta import ObjectMeta
from kstate.api.objects import Namespace, NamespaceSpec, NamespaceStatus
from kstate.clock import rfc3339
from kstate.control.commands import Delete, Update
from kstate.control.namespace import (
    CONTENT_FAILURE,
    CONTENT_REMAINING,
    DISCOVERY_FAILURE,
    FINALIZERS_REMAINING,
    GROUP_VERSION_PARSING_FAILURE,
    NamespaceView,
    reconcile,
)
from tests.control.objects import T0, pod, rc


def terminating(*finalizers: str, conditions: tuple = ()) -> Namespace:
    return Namespace(
        metadata=ObjectMeta(name="default", uid="ns-uid", resource_version="7",
                            deletion_timestamp=rfc3339(T0)),
        spec=NamespaceSpec(finalizers=finalizers or ("kubernetes",)),
        status=NamespaceStatus(phase="Terminating", conditions=conditions))


def conditions_of(commands: list) -> dict[str, tuple[str, str, str]]:
    (status,) = [c for c in commands if isinstance(c, Update) and c.subresource == "status"]
    return {c.type: (c.status, c.reason, c.message) for c in status.obj.status.conditions}


def test_an_active_namespace_is_left_alone() -> None:
    active = Namespace(metadata=ObjectMeta(name="default"),
                       spec=NamespaceSpec(finalizers=("kubernetes",)),
                       status=NamespaceStatus(phase="Active"))
    assert reconcile(NamespaceView(active, (pod("a"),)), T0) == []


def test_content_is_deleted_and_reported_in_kubernetes_conditions() -> None:
    owner = rc("web")
    held = attrs.evolve(pod("b", deleting=True), metadata=attrs.evolve(
        pod("b", deleting=True).metadata, finalizers=("example.com/hold",)))
    view = NamespaceView(terminating(), (owner, pod("a", owner=owner), held))
    commands = reconcile(view, T0)
    deletes = [c for c in commands if isinstance(c, Delete)]
    # everything not already on its way out, each guarded by its uid, in the background
    assert {(d.kind, d.name, d.uid, d.propagation) for d in deletes} == {
        ("ReplicationController", "web", "rc-uid", "Background"),
        ("Pod", "a", "uid-a", "Background")}
    assert not [c for c in commands if isinstance(c, Update) and c.subresource == "finalize"]
    got = conditions_of(commands)
    assert list(got) == [DISCOVERY_FAILURE, GROUP_VERSION_PARSING_FAILURE, CONTENT_FAILURE,
                         CONTENT_REMAINING, FINALIZERS_REMAINING]
    assert got[DISCOVERY_FAILURE] == ("False", "ResourcesDiscovered",
                                      "All resources successfully discovered")
    assert got[CONTENT_FAILURE] == (
        "False", "ContentDeleted",
        "All content successfully deleted, may be waiting on finalization")
    assert got[CONTENT_REMAINING] == (
        "True", "SomeResourcesRemain", "Some resources are remaining: pods. has 2 resource "
        "instances, replicationcontrollers. has 1 resource instances")
    assert got[FINALIZERS_REMAINING] == (
        "True", "SomeFinalizerRemain",
        "Some finalizers are remaining: example.com/hold in 1 resource instances")


def test_unchanged_conditions_are_not_written_again() -> None:
    first = reconcile(NamespaceView(terminating(), (pod("a", deleting=True),)), T0)
    (status,) = [c for c in first if isinstance(c, Update)]
    again = NamespaceView(status.obj, (pod("a", deleting=True),))
    assert reconcile(again, T0 + 5) == []


def test_a_list_failure_is_a_content_failure_and_blocks_finalizing() -> None:
    view = NamespaceView(terminating(), (), ("pods.: the server is unavailable",))
    commands = reconcile(view, T0)
    assert not [c for c in commands if isinstance(c, Update) and c.subresource == "finalize"]
    assert conditions_of(commands)[CONTENT_FAILURE] == (
        "True", "ContentDeletionFailed",
        "Failed to delete all resource types, 1 remaining: pods.: the server is unavailable")


def test_an_empty_namespace_is_finalized_keeping_other_finalizers() -> None:
    ns = terminating("example.com/audit", "kubernetes")
    (cmd,) = reconcile(NamespaceView(ns), T0)
    assert isinstance(cmd, Update) and cmd.subresource == "finalize"
    assert cmd.obj.spec.finalizers == ("example.com/audit",)
    # the namespace's resourceVersion is the precondition: a stale view loses (409)
    assert cmd.obj.metadata.resource_version == "7"
    # once the kubernetes finalizer is gone, the controller has nothing left to do
    assert reconcile(NamespaceView(cmd.obj), T0) == []
