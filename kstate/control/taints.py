"""Taints and tolerations: who may stay on (or be placed on) a tainted node, and for how long.

Where it sits: ``kstate/control``, shared by the scheduler (TaintToleration filter) and
the node lifecycle controller (NoExecute evictions) so both read a toleration the same
way — Kubernetes' ``ToleratesTaint``.

>>> from kstate.api.objects import Taint, Toleration
>>> t = Taint(key="node.kubernetes.io/unreachable", effect="NoExecute")
>>> tolerates(Toleration(operator="Exists"), t)
True
"""

from __future__ import annotations

from collections.abc import Iterable

from kstate.api.objects import Taint, Toleration
from kstate.clock import parse_rfc3339

NOT_READY = "node.kubernetes.io/not-ready"
UNREACHABLE = "node.kubernetes.io/unreachable"
UNSCHEDULABLE = "node.kubernetes.io/unschedulable"


def tolerates(toleration: Toleration, taint: Taint) -> bool:
    """Kubernetes' ``Toleration.ToleratesTaint``: an empty effect matches every effect, an
    empty key every key; ``Equal`` (or no operator) compares values, ``Exists`` does not."""
    if toleration.effect and toleration.effect != taint.effect:
        return False
    if toleration.key and toleration.key != taint.key:
        return False
    if toleration.operator in ("", "Equal"):
        return toleration.value == taint.value
    return toleration.operator == "Exists"


def untolerated(tolerations: Iterable[Toleration], taints: Iterable[Taint],
                effects: frozenset[str]) -> list[Taint]:
    """Taints with an effect in ``effects`` that no toleration covers."""
    tols = tuple(tolerations)
    return [t for t in taints if t.effect in effects and not any(tolerates(x, t) for x in tols)]


def eviction_time(tolerations: Iterable[Toleration], taints: Iterable[Taint]) -> float | None:
    """When a pod must leave a node with these taints; ``None`` = it may stay forever.

    Kubernetes' taint manager: an untolerated NoExecute taint evicts at once (at the
    taint's ``timeAdded``); otherwise the pod stays for the smallest
    ``tolerationSeconds`` among the tolerations it used, counted from the earliest taint,
    and forever when none of them sets ``tolerationSeconds``.
    """
    tols = tuple(tolerations)
    no_execute = [t for t in taints if t.effect == "NoExecute"]
    if not no_execute:
        return None
    start = min(parse_rfc3339(t.time_added) if t.time_added else float("-inf")
                for t in no_execute)
    used: list[Toleration] = []
    for taint in no_execute:
        matching = [t for t in tols if tolerates(t, taint)]
        if not matching:
            return start
        used += matching
    seconds = [t.toleration_seconds for t in used if t.toleration_seconds is not None]
    if not seconds:
        return None
    return start + max(0, min(seconds))


__all__ = ["NOT_READY", "UNREACHABLE", "UNSCHEDULABLE", "eviction_time", "tolerates",
           "untolerated"]
