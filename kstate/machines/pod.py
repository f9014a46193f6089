"""The Pod lifecycle, and the crash-loop back-off policy that times its restarts.

Where it sits: ``kstate/machines`` — definitions only. Fired by the scheduler
(``schedule``), the node agent (everything between ``start`` and ``stopped``), the api
server (``delete``) and the node lifecycle controller (``node_lost``); explored by the
model checker through the compiled table; drawn by ``kstate graph pod``.

The states are the ones a Kubernetes user sees in ``kubectl get pods`` (Pending,
ContainerCreating, Running, CrashLoopBackOff, Terminating, ...), each with the object
fields it shows as (``State.visible``: ``phase``, the ``Ready`` condition, the
containers' ``waiting`` reason, ``spec.nodeName``, ``deletionTimestamp``; ``A|B`` means
either reads as the state and ``A`` is written). ``kstate.api.visible`` interprets these
declarations in both directions — reading a state from a pod, and writing the fields of a
state — so they are the only place the mapping exists. ``restartPolicy`` decides how a
container exit leaves Running: Always restarts, OnFailure restarts only non-zero exits,
Never never does.

A deleted pod passes through Terminating (TERM sent, grace period running) and, if the
grace period expires, Killing (KILL sent); pods not bound to a node, and pods already
Succeeded or Failed, are deleted at once — as the Kubernetes api server does.
"""

from __future__ import annotations

import attrs

from kstate.machines.definition import (
    Facts,
    Guard,
    MachineDef,
    State,
    StateGroup,
    Transition,
    Trigger,
)

RESTART_POLICIES = ("Always", "OnFailure", "Never")

#: Container waiting reasons that show ImagePullBackOff (the first is what a pod waiting
#: out a pull back-off shows; the node agent writes the runtime's own reason).
PULL_REASONS = ("ImagePullBackOff", "ErrImagePull", "ErrImageNeverPull", "InvalidImageName")

#: Representative exit codes for the checker and the agreement test: success, error,
#: SIGKILL (OOM / liveness kill), and ContainerCannotRun.
EXIT_CODES = (0, 1, 137, 128)

# States a pod can be in while bound to a live node with its containers being managed.
_ON_NODE = ("Scheduled", "ContainerCreating", "ImagePullBackOff", "Running", "Ready",
            "CrashLoopBackOff")


def should_restart(f: Facts) -> bool:
    """restartPolicy decides: Always restarts every exit, OnFailure only failures."""
    policy = f["restart_policy"]
    return policy == "Always" or (policy == "OnFailure" and f["exit_code"] != 0)


def others_running(f: Facts) -> bool:
    """Another container of the pod is still running, so the pod stays Running."""
    return bool(f["others_running"])


def all_succeeded(f: Facts) -> bool:
    """This container and every other one exited 0."""
    return f["exit_code"] == 0 and not f["others_failed"]


def immediate(f: Facts) -> bool:
    """A delete with grace period 0 (``--force --grace-period=0``) skips Terminating."""
    return f["grace_seconds"] == 0


_EXIT_FACTS = {
    "restart_policy": RESTART_POLICIES,
    "exit_code": EXIT_CODES,
    "others_running": (False, True),
    "others_failed": (False, True),
}
_DELETE_FACTS = {"grace_seconds": (0, 30)}

POD = MachineDef(
    name="pod",
    kind="Pod",
    doc="A pod from creation to deletion, as the scheduler, kubelet and api server move it.",
    states=(
        State("Pending", "accepted, waiting for the scheduler",
              visible={"spec.nodeName": "unset", "phase": "Pending"}),
        State("Scheduled", "bound to a node; the node agent has not started it",
              visible={"spec.nodeName": "set", "phase": "Pending"}),
        State("ContainerCreating", "sandbox and containers being created",
              visible={"spec.nodeName": "set", "phase": "Pending|Running", "Ready": "False",
                       "waiting": "ContainerCreating"}),
        State("ImagePullBackOff", "an image is missing; retried with back-off",
              visible={"spec.nodeName": "set", "phase": "Pending|Running", "Ready": "False",
                       "waiting": "|".join(PULL_REASONS)}),
        State("Running", "containers running, not ready (probe failing or starting)",
              visible={"spec.nodeName": "set", "phase": "Running", "Ready": "False"}),
        State("Ready", "containers running and ready: receives Service traffic",
              visible={"spec.nodeName": "set", "phase": "Running", "Ready": "True"}),
        State("CrashLoopBackOff", "a container exited; waiting out the restart back-off",
              visible={"spec.nodeName": "set", "phase": "Running", "Ready": "False",
                       "waiting": "CrashLoopBackOff"}),
        State("Succeeded", "every container exited 0 and will not restart",
              visible={"spec.nodeName": "set", "phase": "Succeeded", "Ready": "False"}),
        State("Failed", "containers ended and at least one failed; will not restart",
              visible={"spec.nodeName": "set", "phase": "Failed", "Ready": "False"}),
        State("Unknown", "the node stopped reporting; the pod's real state is unknown",
              visible={"spec.nodeName": "set", "phase": "Unknown", "Ready": "False"}),
        State("Terminating", "deletion requested: TERM sent, grace period running",
              visible={"deletionTimestamp": "future"}),
        State("Killing", "grace period over: KILL sent",
              visible={"deletionTimestamp": "past"}),
        State("Deleted", "removed from the store", terminal=True,
              visible={"object": "absent"}),
    ),
    initial="Pending",
    triggers=(
        Trigger("schedule", "the scheduler bound the pod to a node", actor="scheduler"),
        Trigger("start", "the node agent began creating the sandbox", actor="kubelet"),
        Trigger("reject", "the node agent refused the pod (admission)", actor="kubelet"),
        Trigger("pull_failed", "an image is not present and cannot be pulled",
                actor="kubelet"),
        Trigger("pull_retry", "image pull back-off expired", actor="kubelet"),
        Trigger("started", "every container is running", actor="kubelet"),
        Trigger("ready", "readiness probes pass", actor="kubelet"),
        Trigger("unready", "a readiness probe fails", actor="kubelet"),
        Trigger("container_exited", "a container exited (crash, completion, liveness kill)",
                facts=_EXIT_FACTS, actor="kubelet"),
        Trigger("backoff_expired", "the crash-loop back-off delay passed; restart",
                actor="kubelet"),
        Trigger("node_lost", "the node lifecycle controller lost the node", actor="controller"),
        Trigger("node_recovered", "the node reports again", actor="kubelet"),
        Trigger("delete", "deletion requested (kubectl delete, eviction, GC)",
                facts=_DELETE_FACTS, actor="apiserver"),
        Trigger("grace_expired", "the termination grace period ran out", actor="kubelet"),
        Trigger("stopped", "every container stopped; the object is removed", actor="kubelet"),
    ),
    guards=(
        Guard("should_restart", should_restart, "restartPolicy asks for a restart"),
        Guard("others_running", others_running, "another container still runs"),
        Guard("all_succeeded", all_succeeded, "every container exited 0"),
        Guard("immediate", immediate, "grace period 0"),
    ),
    groups=(StateGroup("on node", _ON_NODE, "bound to a node that reports"),),
    transitions=(
        Transition("schedule", ("Pending",), "Scheduled"),
        Transition("start", ("Scheduled",), "ContainerCreating"),
        Transition("reject", ("Scheduled",), "Failed"),
        Transition("pull_failed", ("ContainerCreating",), "ImagePullBackOff"),
        Transition("pull_retry", ("ImagePullBackOff",), "ContainerCreating"),
        Transition("started", ("ContainerCreating",), "Running"),
        Transition("ready", ("Running",), "Ready"),
        Transition("unready", ("Ready",), "Running"),
        Transition("container_exited", ("ContainerCreating", "Running", "Ready"),
                   "CrashLoopBackOff", when=("should_restart",)),
        Transition("container_exited", ("ContainerCreating", "Running", "Ready"), "Running",
                   when=("others_running",), unless=("should_restart",)),
        Transition("container_exited", ("ContainerCreating", "Running", "Ready"), "Succeeded",
                   when=("all_succeeded",), unless=("should_restart", "others_running")),
        Transition("container_exited", ("ContainerCreating", "Running", "Ready"), "Failed",
                   unless=("should_restart", "others_running", "all_succeeded")),
        Transition("backoff_expired", ("CrashLoopBackOff",), "ContainerCreating"),
        Transition("node_lost", _ON_NODE, "Unknown"),
        Transition("node_recovered", ("Unknown",), "Running"),
        Transition("delete", ("Pending", "Succeeded", "Failed"), "Deleted"),
        Transition("delete", (*_ON_NODE, "Unknown", "Terminating", "Killing"), "Deleted",
                   when=("immediate",)),
        Transition("delete", (*_ON_NODE, "Unknown"), "Terminating", unless=("immediate",)),
        Transition("grace_expired", ("Terminating",), "Killing"),
        Transition("stopped", ("Terminating", "Killing"), "Deleted"),
    ),
)

#: States in which the pod counts as *active* for its controller (Kubernetes'
#: ``IsPodActive``: not Succeeded/Failed and not being deleted).
ACTIVE_STATES = frozenset(
    {"Pending", "Scheduled", "ContainerCreating", "ImagePullBackOff", "Running", "Ready",
     "CrashLoopBackOff", "Unknown"}
)
#: States whose containers may be running on a node right now.
RUNNING_ON_NODE = frozenset(
    {"Running", "Ready", "CrashLoopBackOff", "Unknown", "Terminating", "Killing"}
)
#: States after which no container of the pod ever runs again.
FINISHED_STATES = frozenset({"Succeeded", "Failed", "Deleted"})


@attrs.frozen
class BackOffPolicy:
    """Crash-loop back-off (Kubernetes' kubelet defaults; every number configurable).

    The first restart is immediate; then ``initial`` seconds, doubling up to ``cap``.
    A container that ran cleanly for ``reset_after`` seconds starts again from zero.

    >>> p = BackOffPolicy()
    >>> [p.delay(n) for n in range(7)]
    [0.0, 10.0, 20.0, 40.0, 80.0, 160.0, 300.0]
    """

    initial: float = 10.0
    factor: float = 2.0
    cap: float = 300.0
    reset_after: float = 600.0
    first_restart_immediate: bool = True

    def delay(self, restarts: int) -> float:
        """Seconds to wait before restart number ``restarts + 1``."""
        if restarts < 0:
            raise ValueError(f"restarts must be >= 0, got {restarts}")
        step = restarts - 1 if self.first_restart_immediate else restarts
        if step < 0:
            return 0.0
        return float(min(self.cap, self.initial * self.factor**step))

    def restarts_after_run(self, restarts: int, ran_for: float) -> int:
        """The back-off counter after a container that ran ``ran_for`` seconds exited."""
        return 0 if ran_for >= self.reset_after else restarts


__all__ = [
    "ACTIVE_STATES",
    "EXIT_CODES",
    "FINISHED_STATES",
    "POD",
    "PULL_REASONS",
    "RESTART_POLICIES",
    "RUNNING_ON_NODE",
    "BackOffPolicy",
]
