"""The facts a trigger's guards read, taken from a write: (stored object, proposed object).

Where it sits: beside the machines' fact declarations (``Trigger.facts`` in
``kstate/machines``), in the api layer because it reads Kubernetes objects. The api
server's lifecycle check (``kstate.api.lifecycle.check_change``) fires each candidate
trigger through the machine with these facts and admits a write only when the machine
lands on the state the write shows; the node agent's heartbeat builds its facts here too.

Why it exists: asking only "is there a trigger from A to B" ignores the guards — a status
write Running -> Succeeded on a ``restartPolicy: Always`` pod would pass as
``container_exited`` although that trigger, fired with ``restart_policy=Always``, leads to
CrashLoopBackOff. One function per (machine, trigger) says where each fact comes from;
a test checks every declared fact has one, and that each returns exactly the declared
names.

>>> from kstate.api.objects import Pod
>>> facts_for("pod", "schedule", Pod(), Pod())
{}
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from kstate.api.helpers import get_condition
from kstate.api.meta import KubeObject
from kstate.api.objects import (
    ContainerStateTerminated,
    ContainerStatus,
    Namespace,
    Node,
    Pod,
    ReplicationController,
)
from kstate.api.visible import shown

Facts = dict[str, Any]
FactsOf = Callable[[Any, Any], Facts]

#: The finalizers a propagation policy leaves on a deleted owner (Kubernetes' names).
FOREGROUND = "foregroundDeletion"
ORPHAN = "orphan"

#: The exit code assumed when a write records no exit at all. Not derivable from the
#: objects: a pod whose containers show no terminated state never said how it ended.
#: Kubernetes' kubelet reports such a container as ContainerCannotRun (exit 128); the
#: node agent uses the same code for a container the runtime gave no code for.
UNRECORDED_EXIT = 128


# --------------------------------------------------------------------------- pod


def _latest_exit(status: ContainerStatus) -> ContainerStateTerminated | None:
    return status.state.terminated or status.last_state.terminated


def exit_facts(old: Pod, new: Pod) -> Facts:
    """``container_exited``: the exited container is the one whose newest termination
    the write adds (a container waiting out a back-off shows it as ``lastState``); the
    others' running/failed states and ``restartPolicy`` are read from the new object."""
    before = {s.name: _latest_exit(s) for s in old.status.container_statuses}
    statuses = new.status.container_statuses
    exited = next((s for s in statuses
                   if _latest_exit(s) is not None and _latest_exit(s) != before.get(s.name)),
                  None)
    if exited is None:
        exited = next((s for s in statuses if s.state.terminated is not None), None)
    record = _latest_exit(exited) if exited is not None else None
    others = [s for s in statuses if exited is None or s.name != exited.name]
    return {
        "restart_policy": new.spec.restart_policy or "Always",
        "exit_code": record.exit_code if record is not None else UNRECORDED_EXIT,
        "others_running": any(s.state.running is not None for s in others),
        "others_failed": any(s.state.terminated is not None and s.state.terminated.exit_code
                             for s in others),
    }


def pod_delete_facts(old: Pod, new: Pod) -> Facts:
    """``delete``: the grace period the delete stored (Kubernetes' default 30 s)."""
    grace = new.metadata.deletion_grace_period_seconds
    return {"grace_seconds": 30 if grace is None else grace}


# --------------------------------------------------------------------------- node


def heartbeat_facts(node: Node, ready: bool) -> Facts:
    """``heartbeat``: what the agent reports (``ready``) on the node as stored."""
    return {"ready": ready, "cordoned": bool(node.spec.unschedulable),
            "draining": shown("node", "Draining").annotation in node.metadata.annotations}


def _heartbeat_write_facts(old: Node, new: Node) -> Facts:
    ready = get_condition(new.status.conditions, "Ready")
    return heartbeat_facts(new, ready is not None and ready.status == "True")


# --------------------------------------------------------------------------- rc


def _observe_facts(old: ReplicationController, new: ReplicationController) -> Facts:
    """``observe``: the first sync found ``spec.replicas`` pods (its status says)."""
    desired = 1 if new.spec.replicas is None else new.spec.replicas
    return {"at_desired": new.status.replicas == desired}


def rc_delete_facts(old: ReplicationController, new: ReplicationController) -> Facts:
    """``delete``: the propagation policy, as the finalizer the delete left shows it."""
    finalizers = new.metadata.finalizers
    policy = ("Foreground" if FOREGROUND in finalizers
              else "Orphan" if ORPHAN in finalizers else "Background")
    return {"propagation": policy}


# --------------------------------------------------------------------------- namespace


def finalize_facts(old: Namespace, new: Namespace) -> Facts:
    """``finalize``: whether ``spec.finalizers`` still holds one after the write."""
    return {"finalizers_left": bool(new.spec.finalizers)}


#: (machine, trigger) -> the facts of a write that fires it. Triggers without declared
#: facts need none.
FROM_WRITE: Mapping[tuple[str, str], FactsOf] = {
    ("pod", "container_exited"): exit_facts,
    ("pod", "delete"): pod_delete_facts,
    ("node", "heartbeat"): _heartbeat_write_facts,
    ("rc", "observe"): _observe_facts,
    ("rc", "delete"): rc_delete_facts,
    ("namespace", "finalize"): finalize_facts,
}


def facts_for(machine: str, trigger: str, old: KubeObject, new: KubeObject) -> Facts:
    """The facts ``trigger`` of ``machine`` reads, for the write ``old`` -> ``new``."""
    of = FROM_WRITE.get((machine, trigger))
    return of(old, new) if of is not None else {}


__all__ = ["FOREGROUND", "FROM_WRITE", "ORPHAN", "UNRECORDED_EXIT", "exit_facts",
           "facts_for", "finalize_facts", "heartbeat_facts", "pod_delete_facts", "rc_delete_facts"]
