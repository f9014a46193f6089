"""Facts about pods that several reconcilers need, read from the object as the store has it.

Where it sits: ``kstate/control``, used by the replication, endpoints, node lifecycle and
GC reconcilers and the scheduler. Pure functions of one pod; "active" is the Pod
machine's notion (``kstate.machines.pod.ACTIVE_STATES``), so controllers and the model
checker's properties count pods the same way.
"""

from __future__ import annotations

from kstate.api.helpers import get_condition
from kstate.api.lifecycle import pod_state
from kstate.api.objects import Pod
from kstate.clock import parse_rfc3339
from kstate.machines.pod import ACTIVE_STATES


def is_active(pod: Pod) -> bool:
    """Counts toward its controller's replicas: not finished and not being deleted."""
    return pod_state(pod) in ACTIVE_STATES


def is_ready(pod: Pod) -> bool:
    """Condition Ready=True (a pod without readiness probe is ready once running)."""
    ready = get_condition(pod.status.conditions, "Ready")
    return ready is not None and ready.status == "True"


def ready_since(pod: Pod) -> float | None:
    """When the pod last became ready, ``None`` if it is not ready."""
    ready = get_condition(pod.status.conditions, "Ready")
    if ready is None or ready.status != "True" or not ready.last_transition_time:
        return None
    return parse_rfc3339(ready.last_transition_time)


def restart_count(pod: Pod) -> int:
    return sum(c.restart_count for c in pod.status.container_statuses)


def created_at(pod: Pod) -> float | None:
    ts = pod.metadata.creation_timestamp
    return parse_rfc3339(ts) if ts else None


def pod_key(pod: Pod) -> str:
    return f"{pod.metadata.namespace}/{pod.metadata.name}"


__all__ = ["created_at", "is_active", "is_ready", "pod_key", "ready_since", "restart_count"]
