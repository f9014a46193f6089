"""The one state <-> field mapping (kstate/api/visible.py) and the facts of a write
(kstate/api/facts.py): both directions agree, the declarations are understood, and every
fact a trigger declares comes from somewhere."""

from __future__ import annotations

import attrs
import pytest

from kstate import machines
from kstate.api import facts, visible
from kstate.api.helpers import get_condition, with_meta, with_spec, with_status
from kstate.api.lifecycle import node_state, pod_state
from kstate.api.objects import Namespace, NamespaceSpec, Node, Pod
from kstate.machines import MachineDef, State
from tests.control.objects import T0, node, pod, rc

#: States a status write shows (the rest are read from fields other verbs write:
#: spec.nodeName by bind, deletionTimestamp by delete, spec.unschedulable by cordon).
POD_WRITTEN = ("Running", "Ready", "Succeeded", "Failed", "Unknown", "CrashLoopBackOff",
               "ContainerCreating", "ImagePullBackOff")
NODE_WRITTEN = ("Ready", "NotReady", "Unknown")


def _waiting(p: Pod, state: str) -> Pod:
    """What the node agent adds to a written state: the containers' waiting reason."""
    reason = visible.waiting_reason(state)
    if not reason:
        return p
    statuses = pod("a", node="n1", waiting=reason).status.container_statuses
    return with_status(p, container_statuses=statuses)


@pytest.mark.parametrize("start", ["Scheduled", "Running", "Ready"])
@pytest.mark.parametrize("state", POD_WRITTEN)
def test_a_written_pod_state_reads_back(start: str, state: str) -> None:
    base = {"Scheduled": pod("a", node="n1"),
            "Running": pod("a", node="n1", phase="Running", ready=False),
            "Ready": pod("a", node="n1", phase="Running", ready=True)}[start]
    written = _waiting(visible.show(base, state, T0), state)
    assert pod_state(written, T0) == state


@pytest.mark.parametrize("state", NODE_WRITTEN)
def test_a_written_node_state_reads_back(state: str) -> None:
    for before in (node("n"), visible.show(node("n"), "Ready", T0)):
        assert node_state(visible.show(before, state, T0)) == state
    cordoned = with_spec(node("n"), unschedulable=True)
    assert node_state(visible.show(cordoned, "Ready", T0)) == "Cordoned"
    draining = with_meta(cordoned, annotations={"kstate.io/draining": "true"})
    assert node_state(visible.show(draining, "Ready", T0)) == "Draining"


def test_show_writes_kubernetes_fields_and_keeps_a_restarting_pod_running() -> None:
    running = pod("a", node="n1", phase="Running", ready=True)
    lost = visible.show(running, "Unknown", T0, reason="NodeLost", message="gone")
    ready = get_condition(lost.status.conditions, "Ready")
    assert lost.status.phase == "Unknown"
    assert ready is not None and (ready.status, ready.reason) == ("False", "NodeLost")
    # a container being recreated: the pod stays Running, as in Kubernetes
    assert visible.show(running, "ContainerCreating", T0).status.phase == "Running"
    assert visible.show(pod("a", node="n1"), "ContainerCreating", T0).status.phase == \
        "Pending"
    unknown = visible.show(node("n"), "Unknown", T0, reason="NodeStatusUnknown",
                           heartbeat="")
    cond = get_condition(unknown.status.conditions, "Ready")
    assert cond is not None and (cond.status, cond.last_heartbeat_time) == ("Unknown", "")


def test_a_phase_the_conditions_contradict_still_reads_by_its_phase() -> None:
    # A client wrote only the phase: the pod shows what its phase says.
    done = pod("a", node="n1", phase="Succeeded", ready=True)
    assert pod_state(done) == "Succeeded"


def test_every_declaration_is_understood_and_nonsense_is_refused() -> None:
    for name in ("pod", "node"):
        d = machines.resolve(name)
        assert set(visible.SHOWN[name]) == set(d.state_names)
        readable = [s.name for s in d.states if not s.terminal]
        assert sorted(visible.READ_ORDER[name]) == sorted(readable)
    broken = MachineDef(name="x", kind="X", states=(State("A", visible={"colour": "red"}),),
                        initial="A", triggers=(), transitions=())
    with pytest.raises(ValueError, match="state 'A', visible 'colour'"):
        visible._table(broken)


def test_reading_and_writing_use_one_table(monkeypatch: pytest.MonkeyPatch) -> None:
    """Change the mapping and both directions follow (nothing else holds a copy)."""
    unknown = visible.SHOWN["pod"]["Unknown"]
    monkeypatch.setitem(visible.SHOWN["pod"], "Unknown",
                        attrs.evolve(unknown, conditions=(("Ready", "True"),)))
    lost = visible.show(pod("a", node="n1", phase="Running", ready=False), "Unknown", T0)
    assert pod_state(lost) == "Unknown"
    ready = get_condition(lost.status.conditions, "Ready")
    assert ready is not None and ready.status == "True"


# --------------------------------------------------------------------------- facts


def test_every_declared_fact_comes_from_the_write() -> None:
    samples: dict[str, tuple[object, object]] = {
        "pod": (pod("a", node="n1", phase="Running"), pod("a", node="n1", phase="Failed")),
        "node": (node("n"), visible.show(node("n"), "Ready", T0)),
    }
    samples["rc"] = (rc(), rc(observedGeneration=1))
    samples["namespace"] = (Namespace(spec=NamespaceSpec(finalizers=("kubernetes",))),
                            Namespace())
    for name, d in machines.MACHINES.items():
        for trigger in d.triggers:
            if not trigger.facts:
                continue
            assert (name, trigger.name) in facts.FROM_WRITE, (
                f"{name}.{trigger.name} declares facts {sorted(trigger.facts)} but "
                "kstate/api/facts.py does not say where they come from")
            old, new = samples[name]
            got = facts.facts_for(name, trigger.name, old, new)  # type: ignore[arg-type]
            assert set(got) == set(trigger.facts), (name, trigger.name)
            for key, value in got.items():
                assert value in trigger.facts[key], (name, trigger.name, key, value)


def test_heartbeat_facts_read_the_node() -> None:
    draining = with_meta(with_spec(node("n"), unschedulable=True),
                         annotations={"kstate.io/draining": "true"})
    assert facts.heartbeat_facts(draining, True) == {
        "ready": True, "cordoned": True, "draining": True}
    assert isinstance(draining, Node)
