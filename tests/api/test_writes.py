"""The API server's write rules as pure functions (kstate.api.writes), under both ways
of firing the machines: the live ``transitions`` machines (the engine) and the compiled
tables (the checker)."""

from __future__ import annotations

import attrs
import pytest

from kstate.api import writes
from kstate.api.helpers import with_meta
from kstate.api.lifecycle import FOREGROUND, ORPHAN, pod_state, rc_state, use_executor
from kstate.api.meta import DeleteOptions, Preconditions
from kstate.api.registry import REGISTRY
from kstate.clock import parse_rfc3339, rfc3339
from kstate.errors import Conflict, Forbidden, IllegalTransition, InvalidObject, NotFound
from tests.control.objects import T0, pod, rc, service

EXECUTORS = pytest.mark.parametrize("executor", ["live", "compiled"])


def grace(seconds: int | None = None, propagation: str = "") -> DeleteOptions:
    return DeleteOptions(grace_period_seconds=seconds, propagation_policy=propagation)


@EXECUTORS
def test_pod_delete_plans(executor: str) -> None:
    with use_executor(executor):  # type: ignore[arg-type]
        assert writes.plan_delete(pod("a"), grace(), T0).remove  # unbound: at once
        assert writes.plan_delete(pod("a", node="n1", phase="Succeeded"), grace(), T0).remove
        running = with_meta(pod("a", node="n1", phase="Running", ready=True), generation=1)
        plan = writes.plan_delete(running, grace(10), T0)
        assert not plan.remove and plan.updated is not None
        marked = plan.updated
        assert parse_rfc3339(marked.metadata.deletion_timestamp) == T0 + 10
        assert marked.metadata.generation == 2  # BeforeDelete bumps a positive generation
        assert pod_state(marked, T0) == "Terminating"
        assert writes.plan_delete(running, grace(0), T0).remove  # force
        # A second delete (BeforeDelete): none or longer changes nothing ...
        assert writes.plan_delete(marked, grace(), T0 + 4) == writes.DeletePlan(False)
        assert writes.plan_delete(marked, grace(30), T0 + 4) == writes.DeletePlan(False)
        # ... a shorter one moves the deadline by the difference, from the first delete
        shorter = writes.plan_delete(marked, grace(5), T0 + 4).updated
        assert shorter is not None
        assert shorter.metadata.deletion_timestamp == rfc3339(T0 + 10 - 10 + 5)
        assert shorter.metadata.deletion_grace_period_seconds == 5
        assert shorter.metadata.generation == 2
        assert writes.plan_delete(marked, grace(0), T0 + 4).remove  # the agent's last word
        held = with_meta(marked, finalizers=("x/y",))
        kept = writes.plan_delete(held, grace(0), T0 + 4).updated
        assert kept is not None and kept.metadata.deletion_grace_period_seconds == 0


@EXECUTORS
def test_rc_service_and_generic_delete_plans(executor: str) -> None:
    with use_executor(executor):  # type: ignore[arg-type]
        r = rc(observedGeneration=1)
        assert writes.propagation_of(grace()) == "Orphan"  # core/v1's default for RCs
        orphaned = writes.plan_delete(r, grace(), T0).updated
        assert orphaned is not None and orphaned.metadata.finalizers == (ORPHAN,)
        assert orphaned.metadata.generation == 2
        assert writes.plan_delete(r, grace(propagation="Background"), T0).remove
        for policy, finalizer in (("Foreground", FOREGROUND), ("Orphan", ORPHAN)):
            kept = writes.plan_delete(r, grace(propagation=policy), T0).updated
            assert kept is not None and finalizer in kept.metadata.finalizers
            assert rc_state(kept) == "Deleting"
            assert writes.plan_delete(kept, grace(), T0) == writes.DeletePlan(False)
        assert writes.plan_delete(service(), grace(), T0).remove
        held = with_meta(service(), finalizers=("x/y",))
        marked = writes.plan_delete(held, grace(), T0).updated
        assert marked is not None and marked.metadata.deletion_timestamp == rfc3339(T0)
        assert writes.finalized(with_meta(marked, finalizers=()), T0)


def test_preconditions_and_immortal_namespaces() -> None:
    p = pod("a")
    writes.check_preconditions(p, Preconditions(uid=p.metadata.uid))
    with pytest.raises(Conflict, match="UID in precondition"):
        writes.check_preconditions(p, Preconditions(uid="other"))
    with pytest.raises(Conflict, match="ResourceVersion in precondition"):
        writes.check_preconditions(p, Preconditions(resource_version="999"))
    with pytest.raises(Forbidden):
        writes.check_delete_request(REGISTRY.for_kind("Namespace"), "default", grace())
    with pytest.raises(NotFound):
        writes.existing(writes.info_of(p), "a", None)


def test_bind_refusals_and_the_binding_move() -> None:
    unbound = pod("a")
    bound = writes.bind(unbound, "n1", unbound.metadata.uid, T0)
    assert bound.spec.node_name == "n1"
    plan = writes.plan_update(unbound, bound, T0, "binding")
    assert plan.changed and pod_state(plan.obj) == "Scheduled"
    with pytest.raises(Conflict, match="already assigned"):
        writes.bind(bound, "n2", "", T0)
    with pytest.raises(Conflict, match="UID in precondition"):
        writes.bind(unbound, "n1", "someone-else", T0)
    deleting = with_meta(unbound, deletion_timestamp=rfc3339(T0), finalizers=("x/y",))
    with pytest.raises(Conflict, match="being deleted"):
        writes.bind(deleting, "n1", "", T0)


def test_update_merge_keeps_server_fields_and_checks_the_move() -> None:
    old = with_meta(pod("a", node="n1", phase="Succeeded"), generation=1)
    relabelled = with_meta(old, labels=old.metadata.labels.set("x", "y"), uid="forged")
    merged = writes.merge_update(old, relabelled)
    assert merged.metadata.uid == old.metadata.uid and merged.metadata.labels["x"] == "y"
    back = attrs.evolve(old, status=attrs.evolve(old.status, phase="Running"))
    with pytest.raises(IllegalTransition):
        writes.plan_update(old, back, T0, "status")
    deleting = with_meta(old, deletion_timestamp=rfc3339(T0))
    with pytest.raises(InvalidObject, match="no new finalizers"):
        writes.merge_update(deleting, with_meta(deleting, finalizers=("x/y",)))
    r = rc()
    scaled = attrs.evolve(r, spec=attrs.evolve(r.spec, replicas=5))
    assert writes.merge_update(r, scaled).metadata.generation == r.metadata.generation + 1


def test_create_admission_with_injected_uid_and_suffix() -> None:
    request = with_meta(pod("ignored"), name="", generate_name="web-", uid="", resource_version="",
                        creation_timestamp="")
    created = writes.admit_create(request, T0, "u-1")
    assert created.metadata.uid == "u-1" and created.metadata.generation == 1
    assert created.status.phase == "Pending" and created.status.qos_class == "BestEffort"
    assert {t.key for t in created.spec.tolerations} >= {"node.kubernetes.io/unreachable"}
    assert writes.with_generated_name(created, "7").metadata.name == "web-7"
    with pytest.raises(InvalidObject):
        writes.admit_create(with_meta(request, generate_name="Bad_"), T0, "u-2")
