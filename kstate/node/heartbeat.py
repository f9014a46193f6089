"""The node agent's heartbeat: its Lease, and its Node's Ready condition.

Where it sits: ``kstate/node``; the agent calls these every few seconds, the model
checker calls them when it lets time pass for a reachable node. Pure functions: the
caller writes the results through the API.

Since Kubernetes 1.17 the Lease (``kube-node-lease/<node>``) is the cheap, frequent
heartbeat; the Node's status is written when something changes (Ready flips, a new
address) — the node lifecycle controller reads both.
"""

from __future__ import annotations

import attrs

from kstate.api import visible
from kstate.api.facts import heartbeat_facts
from kstate.api.helpers import get_condition
from kstate.api.lifecycle import fire, node_state, object_name
from kstate.api.meta import ObjectMeta
from kstate.api.objects import Lease, LeaseSpec, Node
from kstate.clock import rfc3339

LEASE_NAMESPACE = "kube-node-lease"
LEASE_DURATION = 40


def micro(now: float) -> str:
    """``renewTime`` is a MicroTime in Kubernetes."""
    return rfc3339(now).replace("Z", f".{int((now % 1) * 1_000_000):06d}Z")


def renew_lease(lease: Lease | None, node: str, now: float) -> Lease:
    """The node's Lease renewed at ``now`` (created when missing)."""
    spec = LeaseSpec(holder_identity=node, lease_duration_seconds=LEASE_DURATION,
                     renew_time=micro(now))
    if lease is None:
        return Lease(metadata=ObjectMeta(name=node, namespace=LEASE_NAMESPACE), spec=spec)
    return attrs.evolve(lease, spec=attrs.evolve(lease.spec, holder_identity=node,
                                                 renew_time=micro(now)))


def report_ready(node: Node, now: float, ready: bool = True,
                 message: str = "kubelet is posting ready status") -> Node | None:
    """The Node with its Ready condition as the agent sees itself, or ``None`` when the
    stored condition already says so (the Lease is the heartbeat; no write needed).

    Fires the Node machine's ``heartbeat`` so a write is always a legal move, and shows
    the state it leads to through the one mapping (``kstate.api.visible``).
    """
    current = get_condition(node.status.conditions, "Ready")
    if current is not None and current.status == ("True" if ready else "False"):
        return None  # the agent's own report, unchanged: nothing to write
    after = fire("node", node_state(node), "heartbeat", heartbeat_facts(node, ready),
                 obj=object_name(node))
    return visible.show(node, after, now,
                        reason="KubeletReady" if ready else "KubeletNotReady",
                        message=message)


__all__ = ["LEASE_DURATION", "LEASE_NAMESPACE", "micro", "renew_lease", "report_ready"]
