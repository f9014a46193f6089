"""The scheduler as the system model calls it: the engine's ``schedule`` over a snapshot
built from the scheduler's cache.

Where it sits: ``kstate.verify.system``; the only glue between the model's cache (plain
lists of nodes and pods) and ``kstate.control.scheduler``'s view type. The decision
itself is the engine's function with the engine's default settings — ``scheduler.place``,
which picks its own engine by cluster size — and the ties explored are that function's
(``scheduler.tied``).
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from kstate.api.objects import Node, Pod
from kstate.control import scheduler
from kstate.control.commands import Bind, Command


def schedule_pod(pod: Pod, nodes: Sequence[Node], pods: Sequence[Pod],
                 now: float) -> list[list[Command]]:
    """Each way the scheduler may place ``pod``: one command list per equally good node
    (the engine breaks such ties by a hash, Kubernetes at random — the checker explores
    them all, which also keeps nodes interchangeable for symmetry reduction), or the
    single unschedulable outcome."""
    view = scheduler.SchedulingView(pod, scheduler.ClusterSnapshot.build(nodes, pods))
    decided = scheduler.schedule(view, now)
    binds = [c for c in decided if isinstance(c, Bind)]
    if not binds:
        return [decided] if decided else []
    return [[attrs.evolve(binds[0], node=node)] for node in scheduler.tied(view)]


__all__ = ["schedule_pod"]
