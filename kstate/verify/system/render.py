"""How a World reads in a counterexample: one line per object, the way kubectl lists it.

Where it sits: ``kstate.verify.system``; ``SystemModel.describe`` uses it for every state
of a trace (the checker's JSON, the CLI's numbered trace, ``--trace-graph`` labels).
"""

from __future__ import annotations

from typing import Any

from kstate.api.helpers import get_condition
from kstate.api.lifecycle import node_state, pod_state, rc_state
from kstate.api.objects import Endpoints, Node, Pod, ReplicationController
from kstate.verify.system.world import World


def _pod(p: Pod, now: float) -> str:
    owner = p.metadata.owner_references[0].name if p.metadata.owner_references else "-"
    node = p.spec.node_name or "-"
    state = pod_state(p, now)
    scheduled = get_condition(p.status.conditions, "PodScheduled")
    if state == "Pending" and scheduled is not None and scheduled.reason:
        state += f"({scheduled.reason})"  # the scheduler's verdict: Unschedulable
    return f"{p.metadata.name} {state} node={node} owner={owner}"


def _rc(rc: ReplicationController) -> str:
    desired = 1 if rc.spec.replicas is None else rc.spec.replicas
    return (f"{rc.metadata.name} {rc_state(rc)} desired={desired} "
            f"current={rc.status.replicas} ready={rc.status.ready_replicas}")


def _node(n: Node) -> str:
    ready = get_condition(n.status.conditions, "Ready")
    taints = ",".join(t.key.rsplit("/", 1)[-1] for t in n.spec.taints) or "-"
    return f"{n.metadata.name} {node_state(n)} ready={ready.status if ready else '-'} " \
           f"taints={taints}"


def _endpoints(e: Endpoints) -> str:
    ready = sorted(a.target_ref.name for s in e.subsets for a in s.addresses if a.target_ref)
    waiting = sorted(a.target_ref.name for s in e.subsets for a in s.not_ready_addresses
                     if a.target_ref)
    return f"{e.metadata.name} ready=[{','.join(ready)}] notReady=[{','.join(waiting)}]"


def describe(w: World) -> dict[str, Any]:
    """A JSON-able summary of ``w``: what the store holds, who lags, what runs where."""
    flags = {k: v for k, v in (
        ("overcreated", w.flags.overcreated), ("illegal", w.flags.illegal),
        ("rebound", w.flags.rebound), ("restarted_finished", w.flags.restarted_finished),
        ("evicted_in_full_disruption", w.flags.evicted_in_full_disruption)) if v}
    return {
        "now": w.now,
        "nodes": [_node(n) for n in sorted(w.nodes(), key=lambda n: n.metadata.name)],
        "rcs": [_rc(o) for o in w.objects("ReplicationController")
                if isinstance(o, ReplicationController)],
        "pods": [_pod(p, w.now) for p in sorted(w.pods(), key=lambda p: p.metadata.name)],
        "endpoints": [_endpoints(e) for e in w.objects("Endpoints")
                      if isinstance(e, Endpoints)],
        "running": {node: sorted(c.id for c in rt.running())
                    for node, rt in sorted(w.runtimes.items()) if rt.running()},
        "unreachable": sorted(n for n, k in w.kubelets.items() if not k.up),
        "probes_passing": {n: sorted(k.probes_passing)
                           for n, k in sorted(w.kubelets.items()) if k.probes_passing},
        "cache_lag": {"cm": w.cm.watcher.backlog(), "scheduler": w.sched.backlog(),
                      **{n: k.watcher.backlog() for n, k in sorted(w.kubelets.items())}},
        "expectations": {k: f"adds={e.adds} deletes={len(e.deletes)}"
                         for k, e in sorted(w.cm.expectations.items())},
        "script_left": len(w.script),
        "faults_left": dict(w.budget),
        **({} if w.api_available else {"api_server": "not answering (outage)"}),
        **({"violations": flags} if flags else {}),
    }


__all__ = ["describe"]
