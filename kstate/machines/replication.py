"""The ReplicationController lifecycle.

Where it sits: ``kstate/machines`` — definitions only. Fired by the replication controller
(``observe``, ``scale``, ``converged``), the api server (``delete``) and the garbage
collector (``finalized``); explored by the model checker; drawn by ``kstate graph rc``.

An RC is Progressing while its observed pods differ from ``spec.replicas`` (scaling up or
down, or replacing lost pods) and Stable when they match. Deletion follows the request's
``propagationPolicy``: Background removes the RC at once and lets the garbage collector
delete its pods; Foreground and Orphan keep it in Deleting (behind the
``foregroundDeletion`` / ``orphan`` finalizer) until its pods are gone or released.
"""

from __future__ import annotations

from kstate.machines.definition import Facts, Guard, MachineDef, State, Transition, Trigger

PROPAGATION_POLICIES = ("Background", "Foreground", "Orphan")


def at_desired(f: Facts) -> bool:
    """The controller observes exactly ``spec.replicas`` ready-or-not active pods."""
    return bool(f["at_desired"])


def background(f: Facts) -> bool:
    """Background propagation: the owner goes first, dependents are collected later."""
    return f["propagation"] == "Background"


_LIVE = ("Created", "Progressing", "Stable")

RC = MachineDef(
    name="rc",
    kind="ReplicationController",
    doc="A replication controller from creation to deletion.",
    states=(
        State("Created", "stored; the controller has not synced it yet",
              visible={"status.observedGeneration": "0"}),
        State("Progressing", "creating or deleting pods to reach spec.replicas",
              visible={"status.replicas": "!= spec.replicas"}),
        State("Stable", "status.replicas == spec.replicas at the current generation",
              visible={"status.replicas": "== spec.replicas"}),
        State("Deleting", "deletion requested; waiting for dependents (finalizer held)",
              visible={"deletionTimestamp": "set"}),
        State("Deleted", "removed from the store", terminal=True,
              visible={"object": "absent"}),
    ),
    initial="Created",
    triggers=(
        Trigger("observe", "first sync by the replication controller",
                facts={"at_desired": (False, True)}, actor="controller"),
        Trigger("scale", "spec.replicas changed or pods were lost", actor="controller"),
        Trigger("converged", "observed pods match spec.replicas", actor="controller"),
        Trigger("delete", "deletion requested with a propagation policy",
                facts={"propagation": PROPAGATION_POLICIES}, actor="apiserver"),
        Trigger("finalized", "dependents deleted (Foreground) or released (Orphan)",
                actor="gc"),
    ),
    guards=(
        Guard("at_desired", at_desired, "already at spec.replicas"),
        Guard("background", background, "propagationPolicy=Background"),
    ),
    transitions=(
        Transition("observe", ("Created",), "Stable", when=("at_desired",)),
        Transition("observe", ("Created",), "Progressing", unless=("at_desired",)),
        Transition("scale", ("Stable",), "Progressing"),
        Transition("converged", ("Progressing",), "Stable"),
        Transition("delete", _LIVE, "Deleted", when=("background",)),
        Transition("delete", _LIVE, "Deleting", unless=("background",)),
        Transition("finalized", ("Deleting",), "Deleted"),
    ),
)

__all__ = ["PROPAGATION_POLICIES", "RC"]
