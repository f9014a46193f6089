"""kstate/control/orders.py: every order a round may write its objects in — the view's
own first (the engine's), one per order of the objects written among those of a kind,
nothing for objects the round leaves alone."""

from __future__ import annotations

from kstate.api.meta import ObjectReference
from kstate.control import gc, orders
from kstate.control.commands import Delete, Record, Update
from tests.control.objects import T0, pod, rc


def test_every_order_of_the_written_pods_the_views_first() -> None:
    gone = rc(uid="gone")
    pods = tuple(pod(n, owner=gone, node="n1") for n in ("a", "b", "c"))
    view = gc.GCView(pods, frozenset({"n1"}))
    choices = gc.reconcile_choices(view, T0)
    assert choices[0] == gc.reconcile(view, T0)
    assert sorted(orders.order_of(c) for c in choices) == [
        ("a", "b", "c"), ("a", "c", "b"), ("b", "a", "c"), ("b", "c", "a"),
        ("c", "a", "b"), ("c", "b", "a")]


def test_objects_the_round_does_not_write_are_not_permuted() -> None:
    live, gone = rc(), rc(name="old", uid="gone")
    view = gc.GCView((pod("a", owner=live, node="n1"), pod("b", owner=gone, node="n1"),
                      pod("c", owner=live, node="n1"), live), frozenset({"n1"}))
    (only,) = gc.reconcile_choices(view, T0)
    assert orders.order_of(only) == ()  # one pod written: no order to choose


def test_order_of_names_each_kind_written_several_times_in_first_write_order() -> None:
    a = ObjectReference(kind="Pod", name="a", namespace="default")
    commands = [Update(pod("b")), Record(a, "Killing", "evicted"),
                Delete("Pod", "default", "a"), Delete("ReplicationController", "default", "web"),
                Update(pod("b"))]
    assert orders.order_of(commands) == ("b", "a")  # one RC written: its order is moot
    assert orders.written(Record(a, "Killing", "evicted")) is None
