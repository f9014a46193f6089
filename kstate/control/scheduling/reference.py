"""The reference placement: Kubernetes' scheduling cycle, node by node, in plain Python.

Where it sits: one of the two interchangeable engines behind ``scheduler.decide``; the
other is ``vectorised.py``. This one is the specification — short, obviously Kubernetes'
algorithm, and what the Hypothesis tests compare the fast path against:

1. scan the nodes in name order starting at a pod-dependent index (see below), run the
   filters (``plugins.rejection``) and stop once ``nodes_to_find`` feasible nodes are
   found (``percentageOfNodesToScore``);
2. score the feasible nodes (``plugins.scores``);
3. keep the nodes with the highest total; ``scheduler.place`` gives a tie to the largest
   ``tie_key`` (a stable hash of pod uid and node name), never to chance, so the model
   checker can replay every run.

Start index: Kubernetes continues each scan where the previous pod's stopped
(``nextStartNodeIndex``), which is scheduler-local mutable state. kstate starts at
``hash(pod uid) mod nodes`` instead: every node gets its turn just as evenly, and the
decision stays a function of (pod, snapshot) alone — nothing hidden for the checker to
track.
"""

from __future__ import annotations

from collections.abc import Sequence

from kstate.control.scheduling.facts import PodFacts
from kstate.control.scheduling.nodeinfo import NodeInfo
from kstate.control.scheduling.plugins import (
    Rejection,
    SchedulerSettings,
    nodes_to_find,
    rejection,
    scores,
)

#: What a placement engine returns: the indices of the best-scoring feasible nodes, or
#: none and every node's rejection (name, (plugin, reasons)) so the caller can explain.
Top = tuple[list[int], list[tuple[str, Rejection]]]


def start_index(pod: PodFacts, total: int) -> int:
    return pod.hash % total if total else 0


def scan(
    pod: PodFacts, nodes: Sequence[NodeInfo], start: int, limit: int
) -> tuple[list[int], list[tuple[str, Rejection]]]:
    """Indices of the first ``limit`` feasible nodes from ``start`` (wrapping), and the
    rejections met on the way."""
    total = len(nodes)
    feasible: list[int] = []
    rejected: list[tuple[str, Rejection]] = []
    for step in range(total):
        index = (start + step) % total
        info = nodes[index]
        found = rejection(pod, info)
        if found is None:
            feasible.append(index)
            if len(feasible) >= limit:
                break
        else:
            rejected.append((info.name, found))
    return feasible, rejected


def diagnose(pod: PodFacts, nodes: Sequence[NodeInfo]) -> list[tuple[str, Rejection]]:
    """Every node's rejection (all of them, when nothing fits)."""
    return scan(pod, nodes, 0, len(nodes) + 1)[1]


def best(pod: PodFacts, nodes: Sequence[NodeInfo], settings: SchedulerSettings) -> Top:
    """Every feasible node sharing the top score, in scan order — or none, and every
    node's rejection so the caller can explain.

    ``scheduler.place`` settles the choice among them by ``tie_key``; Kubernetes picks at
    random, and the model checker explores each of them, so its verdicts hold whichever
    one a run picks.
    """
    total = len(nodes)
    if total == 0:
        return [], []
    feasible, rejected = scan(pod, nodes, start_index(pod, total),
                              nodes_to_find(total, settings))
    if not feasible:
        return [], rejected
    totals = scores(pod, [nodes[i] for i in feasible], settings.weights)
    top = max(totals)
    return [i for i, t in zip(feasible, totals, strict=True) if t == top], []


__all__ = ["Top", "best", "diagnose", "scan", "start_index"]
