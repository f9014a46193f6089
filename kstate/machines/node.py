"""The Node lifecycle.

Where it sits: ``kstate/machines`` — definitions only. Fired by the node agent
(``heartbeat``), the node lifecycle controller (``grace_expired`` when heartbeats stop for
longer than the node-monitor grace period), users (``cordon``, ``uncordon``, ``drain``)
and the node's removal; explored by the model checker; drawn by ``kstate graph node``.

Readiness and schedulability are one flat machine so every state is something a user can
name: a cordoned node that loses its heartbeat becomes Unknown, and when it reports again
the ``cordoned`` fact (``spec.unschedulable``) returns it to Cordoned, not Ready.

``State.visible`` is the one mapping to the Node's fields (the ``Ready`` condition,
``spec.unschedulable``, the drain annotation), interpreted both ways by
``kstate.api.visible``. The health taints are not part of it: the node lifecycle
controller derives them from the Ready condition in a later pass.
"""

from __future__ import annotations

from kstate.machines.definition import Facts, Guard, MachineDef, State, Transition, Trigger


def reports_ready(f: Facts) -> bool:
    """The node agent reports condition Ready=True."""
    return bool(f["ready"])


def cordoned(f: Facts) -> bool:
    """``spec.unschedulable`` is set."""
    return bool(f["cordoned"])


def draining(f: Facts) -> bool:
    """The node carries the drain mark (``kstate.io/draining``); a heartbeat that does
    not say is from a node without one."""
    return bool(f.get("draining", False))


_REPORTING = ("Registered", "Ready", "NotReady", "Unknown", "Cordoned")
_ALIVE = ("Registered", "Ready", "NotReady", "Cordoned", "Draining")

NODE = MachineDef(
    name="node",
    kind="Node",
    doc="A node from registration to removal, as its agent and the node controller see it.",
    states=(
        State("Registered", "the Node object exists; no status reported yet",
              visible={"Ready": "absent"}),
        State("Ready", "heartbeating, Ready=True, schedulable",
              visible={"Ready": "True", "spec.unschedulable": "false"}),
        State("NotReady", "heartbeating but reports Ready=False (taint not-ready)",
              visible={"Ready": "False"}),
        State("Unknown", "no heartbeat within the grace period (taint unreachable)",
              visible={"Ready": "Unknown"}),
        State("Cordoned", "Ready but unschedulable: running pods stay, no new ones",
              visible={"Ready": "True", "spec.unschedulable": "true"}),
        State("Draining", "cordoned and evicting its pods",
              visible={"Ready": "True", "spec.unschedulable": "true",
                       "annotation": "kstate.io/draining"}),
        State("Removed", "the Node object was deleted", terminal=True,
              visible={"object": "absent"}),
    ),
    initial="Registered",
    triggers=(
        Trigger("heartbeat", "the node agent renewed its lease and reported status",
                facts={"ready": (False, True), "cordoned": (False, True),
                       "draining": (False, True)}, actor="kubelet"),
        Trigger("grace_expired", "no heartbeat within node-monitor-grace-period",
                actor="controller"),
        Trigger("cordon", "spec.unschedulable set", actor="user"),
        Trigger("uncordon", "spec.unschedulable cleared", actor="user"),
        Trigger("drain", "evict every pod (after cordon)", actor="user"),
        Trigger("drained", "no evictable pod is left", actor="controller"),
        Trigger("remove", "the Node object is deleted", actor="user"),
    ),
    guards=(
        Guard("ready", reports_ready, "the agent reports Ready=True"),
        Guard("cordoned", cordoned, "spec.unschedulable is set"),
        Guard("draining", draining, "the node carries the drain mark"),
    ),
    transitions=(
        Transition("heartbeat", _REPORTING, "Ready", when=("ready",), unless=("cordoned",)),
        Transition("heartbeat", _REPORTING, "Cordoned", when=("ready", "cordoned"),
                   unless=("draining",)),
        Transition("heartbeat", _REPORTING, "Draining", when=("ready", "cordoned", "draining")),
        Transition("heartbeat", (*_REPORTING, "Draining"), "NotReady", unless=("ready",)),
        Transition("heartbeat", ("Draining",), "Draining", when=("ready",)),
        Transition("grace_expired", _ALIVE, "Unknown"),
        Transition("cordon", ("Ready",), "Cordoned"),
        Transition("cordon", ("NotReady",), "NotReady"),
        Transition("cordon", ("Unknown",), "Unknown"),
        Transition("uncordon", ("Cordoned", "Draining"), "Ready"),
        Transition("uncordon", ("NotReady",), "NotReady"),
        Transition("uncordon", ("Unknown",), "Unknown"),
        Transition("drain", ("Ready", "Cordoned"), "Draining"),
        Transition("drained", ("Draining",), "Cordoned"),
        Transition("remove", (*_ALIVE, "Unknown"), "Removed"),
    ),
)

__all__ = ["NODE"]
