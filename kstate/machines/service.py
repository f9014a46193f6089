"""The Service lifecycle.

Where it sits: ``kstate/machines`` — definitions only. Fired by the api server
(``allocate`` on create: cluster IP and node ports; ``delete``), the endpoints controller
(``endpoints_ready`` / ``endpoints_gone``) and the proxy (``released`` once its listeners
are closed); drawn by ``kstate graph service``.

A Service is Active exactly when its Endpoints hold at least one ready address; the
proxy only routes to Active services, and a Service losing its last ready pod drops back
to NoEndpoints (connections are refused rather than sent to a pod shutting down).
"""

from __future__ import annotations

from kstate.machines.definition import MachineDef, State, Transition, Trigger

SERVICE = MachineDef(
    name="service",
    kind="Service",
    doc="A service from creation to deletion.",
    states=(
        State("Created", "accepted; addresses not yet allocated",
              visible={"spec.clusterIP": "unset"}),
        State("Allocated", "cluster IP (and node ports) allocated; endpoints not computed",
              visible={"spec.clusterIP": "set"}),
        State("NoEndpoints", "no ready pod matches the selector",
              visible={"endpoints.addresses": "empty"}),
        State("Active", "at least one ready endpoint; the proxy routes traffic",
              visible={"endpoints.addresses": "non-empty"}),
        State("Deleting", "deletion requested; listeners and addresses being released",
              visible={"deletionTimestamp": "set"}),
        State("Deleted", "removed; addresses returned to their pools", terminal=True,
              visible={"object": "absent"}),
    ),
    initial="Created",
    triggers=(
        Trigger("allocate", "cluster IP and node ports reserved", actor="apiserver"),
        Trigger("endpoints_ready", "endpoints hold a ready address", actor="controller"),
        Trigger("endpoints_gone", "endpoints hold no ready address", actor="controller"),
        Trigger("delete", "deletion requested", actor="apiserver"),
        Trigger("released", "proxy listeners closed, addresses released", actor="proxy"),
    ),
    transitions=(
        Transition("allocate", ("Created",), "Allocated"),
        Transition("endpoints_ready", ("Allocated", "NoEndpoints"), "Active"),
        Transition("endpoints_gone", ("Allocated", "Active"), "NoEndpoints"),
        Transition("delete", ("Created", "Allocated", "NoEndpoints", "Active"), "Deleting"),
        Transition("released", ("Deleting",), "Deleted"),
    ),
)

__all__ = ["SERVICE"]
