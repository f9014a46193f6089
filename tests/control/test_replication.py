"""The replication reconciler as a pure function: views in, commands out."""

from __future__ import annotations

from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from kstate.api.helpers import controller_of, owner_reference, with_meta
from kstate.api.meta import OwnerReference
from kstate.api.objects import Pod, PodCondition, ReplicationController
from kstate.clock import rfc3339
from kstate.control.commands import Create, Delete, Expect, Update
from kstate.control.expectations import Expectation
from kstate.control.replication import (
    ReplicationSettings,
    ReplicationView,
    claim_group,
    claim_groups,
    deletion_choices,
    pod_event,
    rank_for_deletion,
    reconcile,
    reconcile_choices,
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


def _ready(name: str, r: ReplicationController, node: str, since: float = T0) -> Pod:
    return pod(name, owner=r, node=node, phase="Running", ready=True, ready_at=since,
               created=T0)


def test_equal_rank_gives_every_victim_set_and_order_and_the_engine_takes_the_first() -> None:
    r = rc(replicas=1)
    pods = (_ready("a", r, "n1"), _ready("b", r, "n2"), _ready("c", r, "n3"),
            pod("pending", owner=r))
    # pending ranks first and goes in every choice; two of the three tied at the cut
    # go with it, in either order
    names = [[p.metadata.name for p in v] for v in deletion_choices(pods, 3)]
    assert names == [["pending", "a", "b"], ["pending", "b", "a"],
                     ["pending", "a", "c"], ["pending", "c", "a"],
                     ["pending", "b", "c"], ["pending", "c", "b"]]
    assert names[0] == [p.metadata.name for p in rank_for_deletion(pods)[:3]]
    view = ReplicationView(r, pods)
    choices = reconcile_choices(view, T0 + 100)
    assert [[d.name for d in deletes(c)] for c in choices] == names
    assert choices[0] == reconcile(view, T0 + 100)
    assert all(c[0] == Expect("default/" + r.metadata.name,
                              deletes=frozenset(f"default/{d.name}" for d in deletes(c)))
               for c in choices)


def test_pods_of_equal_rank_before_the_cut_go_in_every_order() -> None:
    r = rc(replicas=1)
    pods = (_ready("a", r, "n1"), _ready("b", r, "n2"), _ready("old", r, "n3", since=T0 - 50))
    assert [[p.metadata.name for p in v] for v in deletion_choices(pods, 2)] == \
        [["a", "b"], ["b", "a"]]


def test_no_tie_is_one_choice() -> None:
    r = rc(replicas=1)
    pods = (pod("old", owner=r, node="n1", phase="Running", ready=True, ready_at=T0),
            pod("new", owner=r, node="n2", phase="Running", ready=True, ready_at=T0 + 50))
    assert [[p.metadata.name for p in v] for v in deletion_choices(pods, 1)] == [["new"]]
    assert len(reconcile_choices(ReplicationView(r, pods), T0 + 100)) == 1
    assert reconcile_choices(ReplicationView(rc(replicas=2), pods), T0 + 100) == \
        [reconcile(ReplicationView(rc(replicas=2), pods), T0 + 100)]


def test_the_engine_never_lists_the_choices_of_many_tied_pods() -> None:
    # 300 tied pods, 150 to delete: listing every choice would never end; the engine's
    # reconcile takes the first alone
    r = rc(replicas=150)
    pods = tuple(_ready(f"p{i:03}", r, "n1") for i in range(300))
    assert [d.name for d in deletes(reconcile(ReplicationView(r, pods), T0 + 100))] == \
        [f"p{i:03}" for i in range(150)]


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


# --------------------------------------------------------------------------- indexed views
#
# The controller manager gives an RC's sync only the pods of ``claim_groups(rc)`` (its own
# and the orphans), read from an index, instead of every pod of the namespace. These
# properties are why that is safe: the commands are the same, on any view.

OTHER_RC = rc(name="api", uid="rc-uid-2")
#: More than the dev profile's 50: the interesting draws (an owned, bound pod finishing)
#: are a few percent of them.
EXAMPLES = max(300, hypothesis_settings().max_examples)


def _owned_by(p: Any, *refs: OwnerReference) -> Any:
    return with_meta(p, owner_references=refs)


_OWNERS = {
    "this RC": lambda r: (owner_reference(r),),
    "another RC": lambda r: (owner_reference(OTHER_RC),),
    "another kind's controller": lambda r: (OwnerReference(
        api_version="apps/v1", kind="ReplicaSet", name="rs", uid="rs-uid", controller=True),),
    "an owner that is not the controller": lambda r: (OwnerReference(
        api_version="v1", kind="ReplicationController", name=r.metadata.name,
        uid=r.metadata.uid, controller=False),),
    "nobody": lambda r: (),
}


@st.composite
def namespace_views(draw: st.DrawFn) -> tuple[ReplicationView, float]:
    """An RC and a namespace of pods of every kind of ownership, in any order, with ties."""
    r = rc(replicas=draw(st.integers(0, 6)))
    if draw(st.booleans()):
        r = with_meta(r, deletion_timestamp=rfc3339(T0 + 50))
    pods = []
    for i in range(draw(st.integers(0, 12))):
        p = pod(f"p{i}", node=draw(st.sampled_from(["", "n1", "n2"])),
                phase=draw(st.sampled_from(["", "Pending", "Running", "Succeeded"])),
                ready=draw(st.sampled_from([None, True, False])),
                ready_at=T0 + draw(st.integers(0, 2)), created=T0 + draw(st.integers(0, 2)),
                restarts=draw(st.integers(0, 1)),
                labels=draw(st.sampled_from([{"app": "web"}, {"app": "api"}, {}])),
                deleting=draw(st.booleans()))
        pods.append(_owned_by(p, *_OWNERS[draw(st.sampled_from(sorted(_OWNERS)))](r)))
    expectation = draw(st.sampled_from([
        None, Expectation.expect(adds=1, now=T0), Expectation.expect(now=T0)]))
    return ReplicationView(r, tuple(pods), expectation), T0 + draw(st.sampled_from([10, 400]))


@hypothesis_settings(max_examples=EXAMPLES)
@given(namespace_views())
def test_a_view_of_only_the_claim_groups_yields_the_same_commands(drawn: Any) -> None:
    full, now = drawn
    groups = claim_groups(full.rc)
    indexed = attrs.evolve(full, pods=tuple(p for p in full.pods if claim_group(p) in groups))
    assert reconcile(indexed, now) == reconcile(full, now)


def _what_syncs_do(commands: list[Any]) -> list[Any]:
    """Commands with each pod reduced to its name and owners (an adoption embeds the
    whole pod) and deletions to their number (which pod goes is the ranking's choice)."""
    out: list[Any] = []
    for c in commands:
        if isinstance(c, Update) and isinstance(c.obj, Pod):
            out.append(("update pod", c.obj.metadata.name, c.obj.metadata.owner_references))
        elif isinstance(c, Delete):
            out.append("delete")
        elif isinstance(c, Expect):
            out.append(("expect", c.key, c.adds, len(c.deletes)))
        else:
            out.append(c)
    return out


_CHANGES = {
    "bound to a node": lambda p: attrs.evolve(p, spec=attrs.evolve(p.spec, node_name="n9")),
    "pod IP set": lambda p: attrs.evolve(p, status=attrs.evolve(p.status, pod_ip="10.0.0.9")),
    "running, same readiness": lambda p: attrs.evolve(
        p, status=attrs.evolve(p.status, phase="Running") if p.spec.node_name else p.status),
    "finished": lambda p: attrs.evolve(p, status=attrs.evolve(p.status, phase="Succeeded")),
    "relabelled": lambda p: with_meta(p, labels={"app": "other"}),
    "orphaned": lambda p: with_meta(p, owner_references=()),
    "marked for deletion": lambda p: with_meta(p, deletion_timestamp=rfc3339(T0 + 60)),
    "became ready": lambda p: attrs.evolve(p, status=attrs.evolve(p.status, conditions=(
        PodCondition(type="Ready", status="True", last_transition_time=rfc3339(T0 + 5)),))),
}


@hypothesis_settings(max_examples=EXAMPLES)
@given(namespace_views(), st.data())
def test_a_pod_event_that_requeues_nothing_changes_no_sync(drawn: Any, data: Any) -> None:
    """``pod_event`` drops updates; for every RC, a sync after the update does what a sync
    before it did (up to which pods a scale-down picks: ranking facts are not a reason
    to sync)."""
    view, now = drawn
    if not view.pods:
        return
    i = data.draw(st.integers(0, len(view.pods) - 1))
    old = view.pods[i]
    new = data.draw(st.sampled_from(sorted(_CHANGES)).map(lambda k: _CHANGES[k]))(old)
    new = attrs.evolve(new, metadata=attrs.evolve(new.metadata, resource_version="6"))
    _, keys = pod_event(old, new, [view.rc, OTHER_RC])
    if keys:
        return
    if controller_of(old) is None and (new.metadata.deletion_timestamp
                                       or new.metadata.labels != old.metadata.labels):
        return  # an orphan that may no longer be adopted: nothing to do, nothing to wake
    after = attrs.evolve(view, pods=(*view.pods[:i], new, *view.pods[i + 1:]))
    assert _what_syncs_do(reconcile(after, now)) == _what_syncs_do(reconcile(view, now))


def test_updates_an_rc_does_not_read_requeue_nothing() -> None:
    r = rc()
    p = pod("a", owner=r)
    bound = pod("a", owner=r, node="n1")
    creating = pod("a", owner=r, node="n1", phase="Pending", waiting="ContainerCreating")
    running = pod("a", owner=r, node="n1", phase="Running", ready=False)
    ready = pod("a", owner=r, node="n1", phase="Running", ready=True)
    assert pod_event(p, bound, [r]) == ([], set())
    assert pod_event(bound, creating, [r]) == ([], set())
    assert pod_event(creating, running, [r])[1] == {"default/web"}  # Ready=False appears
    assert pod_event(running, ready, [r])[1] == {"default/web"}
    assert pod_event(ready, pod("a", owner=r, node="n1", phase="Running", ready=True,
                                restarts=1), [r]) == ([], set())
    relabelled = pod("a", owner=r, labels={"app": "x"})
    assert pod_event(p, relabelled, [r])[1] == {"default/web"}  # to be released
    orphan = pod("stray", labels={"app": "x"})
    assert pod_event(orphan, pod("stray", labels={"app": "web"}), [r])[1] == {"default/web"}
