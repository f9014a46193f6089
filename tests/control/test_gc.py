"""The garbage collector reconciler: cascades in all three modes, pod GC, event TTL."""

from __future__ import annotations

import attrs

from kstate.api.lifecycle import rc_state
from kstate.api.objects import ReplicationController
from kstate.clock import rfc3339
from kstate.control.commands import Delete, DeleteIfGone, Update
from kstate.control.gc import FOREGROUND, ORPHAN, GCSettings, GCView, reconcile
from tests.control.objects import T0, pod, rc


def deleting(r: ReplicationController, finalizer: str) -> ReplicationController:
    meta = attrs.evolve(r.metadata, deletion_timestamp=rfc3339(T0), finalizers=(finalizer,))
    status = attrs.evolve(r.status, observed_generation=1, replicas=1)
    return attrs.evolve(r, metadata=meta, status=status)


def test_dependents_of_a_vanished_owner_are_collected_after_a_live_check() -> None:
    gone = rc(uid="gone")
    p = pod("a", owner=gone, node="n1")
    (cmd,) = reconcile(GCView((p,), frozenset({"n1"})), T0)
    assert isinstance(cmd, DeleteIfGone)
    assert (cmd.dependent.name, cmd.gone.uid, cmd.gone.kind) == ("a", "gone",
                                                                 "ReplicationController")


def test_owned_pods_of_a_live_owner_stay() -> None:
    r = rc()
    assert reconcile(GCView((r, pod("a", owner=r, node="n1")), frozenset({"n1"})), T0) == []


def test_foreground_deletes_dependents_then_releases_the_owner() -> None:
    r = deleting(rc(), FOREGROUND)
    assert rc_state(r) == "Deleting"
    a, b = pod("a", owner=r, node="n1"), pod("b", owner=r, node="n1", deleting=True)
    out = reconcile(GCView((r, a, b), frozenset({"n1"})), T0)
    assert [(c.name, c.uid) for c in out if isinstance(c, Delete)] == [("a", "uid-a")]
    assert not [c for c in out if isinstance(c, Update)]  # b still terminating: wait
    (done,) = reconcile(GCView((r,), frozenset({"n1"})), T0)
    assert isinstance(done, Update) and done.obj.metadata.finalizers == ()


def test_orphan_strips_owner_references_then_the_finalizer() -> None:
    r = deleting(rc(), ORPHAN)
    a = pod("a", owner=r, node="n1")
    (release,) = reconcile(GCView((r, a), frozenset({"n1"})), T0)
    assert isinstance(release, Update)
    assert release.obj.metadata.name == "a" and release.obj.metadata.owner_references == ()
    (done,) = reconcile(GCView((r,), frozenset({"n1"})), T0)
    assert done.obj.metadata.finalizers == ()


def test_pods_on_missing_nodes_are_force_deleted_after_a_live_check() -> None:
    (cmd,) = reconcile(GCView((pod("a", node="ghost"),), frozenset({"n1"})), T0)
    assert isinstance(cmd, DeleteIfGone)
    assert (cmd.gone.kind, cmd.gone.name, cmd.grace_seconds) == ("Node", "ghost", 0)


def test_terminated_pods_beyond_the_threshold_oldest_first() -> None:
    pods = tuple(pod(f"p{i}", node="n1", phase="Succeeded", created=T0 + i) for i in range(5))
    out = reconcile(GCView(pods, frozenset({"n1"})), T0, GCSettings(terminated_pod_threshold=3))
    assert [c.name for c in out if isinstance(c, Delete)] == ["p0", "p1"]
