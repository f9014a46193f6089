"""The scheduler as the system model calls it: the engine's ``schedule`` over a snapshot
built from the scheduler's cache.

Where it sits: ``kstate.verify.system``; the only glue between the model's cache (plain
lists of nodes and pods) and ``kstate.control.scheduler``'s view type. The decision
itself is the engine's function, unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

from kstate.api.objects import Node, Pod
from kstate.control import scheduler
from kstate.control.commands import Command

#: The model's clusters have a handful of nodes: the plain-Python engine beats numpy's
#: per-call overhead there, and decides identically (a Hypothesis test proves it).
SETTINGS = scheduler.SchedulerSettings(vectorised=False)


def schedule_pod(pod: Pod, nodes: Sequence[Node], pods: Sequence[Pod],
                 now: float) -> list[Command]:
    snapshot = scheduler.ClusterSnapshot.build(nodes, pods)
    return scheduler.schedule(scheduler.SchedulingView(pod, snapshot), now, SETTINGS)


__all__ = ["schedule_pod"]
