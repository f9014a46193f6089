"""The replication reconciler as a pure function: views in, commands out."""

from __future__ import annotations

import pytest

from kstate.control.commands import Create, Delete, Expect, Update
from kstate.control.expectations import Expectation
from kstate.control.replication import (
    ReplicationSettings,
    ReplicationView,
    pod_event,
    rank_for_deletion,
    reconcile,
)
from tests.control.objects import T0, pod, rc


def creates(commands: list) -> list[Create]:
    return [c for c in commands if isinstance(c, Create)]


def deletes(commands: list) -> list[Delete]:
    return [c for c in commands if isinstance(c, Delete)]


def test_scale_up_creates_owned_pods_from_the_template_after_expecting_them() -> None:
    r = rc(replicas=3)
    out = reconcile(ReplicationView(r, ()), T0)
    assert isinstance(out[0], Expect) and out[0].adds == 3 and out[0].key == "default/web"
    made = creates(out)
    assert len(made) == 3
    p = made[0].obj
    assert p.metadata.generate_name == "web-" and p.metadata.namespace == "default"
    assert p.metadata.labels == {"app": "web"}
    (ref,) = p.metadata.owner_references
    assert (ref.kind, ref.name, ref.uid, ref.controller) == ("ReplicationController", "web",
                                                             "rc-uid", True)
    assert made[0].expectation == "default/web" and made[0].owner is not None


def test_burst_caps_creations_per_sync() -> None:
    out = reconcile(ReplicationView(rc(replicas=20), ()), T0, ReplicationSettings(burst=5))
    assert len(creates(out)) == 5


def test_stale_cache_never_over_creates_while_expectations_are_pending() -> None:
    """The classic bug: creates issued, the cache has not seen them, sync runs again."""
    r = rc(replicas=3)
    pending = Expectation.expect(adds=3, now=T0)
    out = reconcile(ReplicationView(r, (), pending), T0 + 1)
    assert creates(out) == [] and deletes(out) == []
    # After the TTL the controller stops waiting (an event may have been lost).
    out = reconcile(ReplicationView(r, (), pending), T0 + 301)
    assert len(creates(out)) == 3


def test_fulfilled_expectations_let_the_controller_act() -> None:
    r = rc(replicas=2)
    seen = Expectation.expect(adds=1, now=T0).observe("create")
    out = reconcile(ReplicationView(r, (pod("a", owner=r),), seen), T0 + 1)
    assert len(creates(out)) == 1


def test_scale_down_deletes_by_kubernetes_rank() -> None:
    r = rc(replicas=1)
    pods = (
        pod("old-ready", owner=r, node="n1", phase="Running", ready=True, ready_at=T0,
            created=T0),
        pod("pending", owner=r, node="n1", phase="Pending"),
        pod("unassigned", owner=r),
    )
    out = reconcile(ReplicationView(r, pods), T0 + 100)
    assert [d.name for d in deletes(out)] == ["unassigned", "pending"]
    expect = out[0]
    assert isinstance(expect, Expect)
    assert expect.deletes == {"default/unassigned", "default/pending"}
    assert all(d.uid == f"uid-{d.name}" for d in deletes(out))


def test_ranking_rules_in_order() -> None:
    r = rc()
    ranked = rank_for_deletion([
        pod("ready-long", owner=r, node="n1", phase="Running", ready=True, ready_at=T0),
        pod("ready-short", owner=r, node="n2", phase="Running", ready=True, ready_at=T0 + 50),
        pod("unknown", owner=r, node="n3", phase="Unknown"),
        pod("not-ready", owner=r, node="n4", phase="Running", ready=False),
    ])
    assert [p.metadata.name for p in ranked] == ["unknown", "not-ready", "ready-short",
                                                 "ready-long"]
    doubled = rank_for_deletion([
        pod("alone", owner=r, node="n1", phase="Running", ready=True),
        pod("pair-a", owner=r, node="n2", phase="Running", ready=True, created=T0 + 1),
        pod("pair-b", owner=r, node="n2", phase="Running", ready=True, created=T0 + 2),
    ])
    assert [p.metadata.name for p in doubled] == ["pair-b", "pair-a", "alone"]
    restarts = rank_for_deletion([
        pod("calm", owner=r, node="n1", phase="Running", ready=False),
        pod("crashy", owner=r, node="n2", phase="Running", ready=False, restarts=4),
    ])
    assert restarts[0].metadata.name == "crashy"


def test_terminating_and_finished_pods_are_not_counted() -> None:
    r = rc(replicas=2)
    pods = (pod("dying", owner=r, node="n1", phase="Running", deleting=True),
            pod("done", owner=r, node="n1", phase="Succeeded"),
            pod("live", owner=r, node="n1", phase="Running", ready=True))
    out = reconcile(ReplicationView(r, pods), T0)
    assert len(creates(out)) == 1


def test_adopts_matching_orphans_and_releases_mismatched_pods() -> None:
    r = rc(replicas=2)
    orphan = pod("orphan", node="n1", phase="Running")
    strayed = pod("strayed", owner=r, labels={"app": "other"})
    out = reconcile(ReplicationView(r, (orphan, strayed)), T0)
    updates = {u.obj.metadata.name: u for u in out if isinstance(u, Update) and not u.subresource}
    assert updates["orphan"].obj.metadata.owner_references[0].uid == "rc-uid"
    assert updates["orphan"].obj.metadata.resource_version == "5"  # CAS precondition kept
    assert updates["strayed"].obj.metadata.owner_references == ()
    assert len(creates(out)) == 1  # the adopted orphan counts


def test_pods_of_another_controller_are_left_alone() -> None:
    r = rc(replicas=1)
    other = rc(name="web", uid="someone-else")
    out = reconcile(ReplicationView(r, (pod("theirs", owner=other),)), T0)
    assert not [u for u in out if isinstance(u, Update) and not u.subresource]
    assert len(creates(out)) == 1


def test_deleting_rc_manages_nothing() -> None:
    r = rc(replicas=3)
    from kstate.api.helpers import with_meta
    dying = with_meta(r, deletion_timestamp="2023-11-14T22:13:20Z",
                      finalizers=("foregroundDeletion",))
    out = reconcile(ReplicationView(dying, ()), T0)
    assert creates(out) == [] and deletes(out) == []


def test_status_report_fires_the_rc_machine() -> None:
    r = rc(replicas=2)  # never synced: state Created
    pods = (pod("a", owner=r, node="n1", phase="Running", ready=True),
            pod("b", owner=r, node="n1", phase="Running", ready=False))
    (status,) = [c for c in reconcile(ReplicationView(r, pods), T0)
                 if isinstance(c, Update) and c.subresource == "status"]
    s = status.obj.status
    assert (s.replicas, s.ready_replicas, s.available_replicas, s.fully_labeled_replicas,
            s.observed_generation) == (2, 1, 1, 2, 1)
    # Re-running on the reported status changes nothing: the reconciler is idempotent.
    assert reconcile(ReplicationView(status.obj, pods), T0) == []


def test_min_ready_seconds_gates_availability() -> None:
    import attrs
    r = rc(replicas=1)
    r = attrs.evolve(r, spec=attrs.evolve(r.spec, min_ready_seconds=30))
    p = pod("a", owner=r, node="n1", phase="Running", ready=True, ready_at=T0)
    for now, available in ((T0 + 10, 0), (T0 + 31, 1)):
        (status,) = [c for c in reconcile(ReplicationView(r, (p,)), now)
                     if isinstance(c, Update)]
        assert status.obj.status.available_replicas == available


@pytest.mark.parametrize("gone", ["deleted", "terminating"])
def test_pod_events_fulfil_expectations(gone: str) -> None:
    r = rc()
    p = pod("a", owner=r)
    observed, keys = pod_event(None, p, [r])
    assert [(o.key, o.what) for o in observed] == [("default/web", "create")]
    assert keys == {"default/web"}
    if gone == "deleted":
        observed, keys = pod_event(p, None, [r])
    else:
        observed, keys = pod_event(p, pod("a", owner=r, deleting=True), [r])
    assert [(o.key, o.what, o.pod) for o in observed] == [("default/web", "delete",
                                                             "default/a")]
    assert keys == {"default/web"}


def test_orphan_event_wakes_every_matching_rc() -> None:
    a, b = rc(name="web", uid="u1"), rc(name="api", uid="u2")
    _, keys = pod_event(None, pod("stray", labels={"app": "web"}), [a, b])
    assert keys == {"default/web"}
