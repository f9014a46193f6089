"""One pod on one node: the kubelet's pod worker as a pure function.

Where it sits: ``kstate/node``. The node agent (``agent.py``) runs one serialized worker
per pod; each round it gathers a ``PodSyncView`` (the pod from its watch cache, what the
runtime has for the pod's uid, probe results, its back-off memory), calls ``sync``, and
executes the returned ``NodeCommand``s against the runtime adapter and the API server.
The model checker (``kstate.verify.system``) calls the *same* ``sync`` on abstract
runtime state, so the lifecycle logic of a pod on a node exists exactly once.

Rules that make it checkable:

* **One lifecycle move per round.** A round fires at most one Pod machine trigger and
  writes the status it projects; the api server checks every write is a single legal
  move (``kstate.api.lifecycle.check_change``). The worker simply runs rounds until one
  returns nothing to do.
* **Level-triggered.** ``sync`` looks only at the current view, never at what it did
  before; anything it must remember across rounds (crash-loop back-off counters) is an
  explicit command (``RememberBackOff``) the executor stores and hands back.
* **Time injected.** Deadlines (back-off, grace periods) are compared with ``now``; the
  round returns ``RequeueAt`` so the worker sleeps on its clock until then.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import attrs

from kstate.api import visible
from kstate.api.frozen import EMPTY, FrozenDict
from kstate.api.helpers import set_condition
from kstate.api.lifecycle import fire, object_name, pod_state
from kstate.api.objects import (
    Container,
    ContainerState,
    ContainerStateRunning,
    ContainerStateTerminated,
    ContainerStateWaiting,
    ContainerStatus,
    Pod,
    PodCondition,
    PodIP,
)
from kstate.api.quantity import parse_quantity
from kstate.clock import parse_rfc3339, rfc3339
from kstate.machines.pod import BackOffPolicy
from kstate.runtime import base as rt

PULL_ERRORS = frozenset({"ErrImagePull", "ErrImageNeverPull", "ImagePullBackOff"})

#: What a waiting container says, by reason (Kubernetes' kubelet wording).
_WAITING_MESSAGES = {
    "CrashLoopBackOff": "back-off restarting failed container={container} pod={pod}",
}


# --------------------------------------------------------------------------- view


@attrs.frozen
class BackOff:
    """Back-off memory of one container (or one image pull): how many restarts in a row,
    and when the last failure happened."""

    count: int
    since: float


@attrs.frozen
class PodSyncView:
    """Everything one round of one pod's worker may look at."""

    node: str
    uid: str
    #: the pod as the agent's watch cache has it; ``None`` once it left the store
    pod: Pod | None
    #: the pod's newest sandbox in the runtime, if any
    sandbox: rt.SandboxStatus | None = None
    #: every container the runtime has for the pod (all attempts)
    containers: tuple[rt.ContainerStatus, ...] = ()
    #: latest readiness result per container name (absent: no result yet)
    readiness: FrozenDict[str, bool] = EMPTY
    #: containers whose liveness probe reached its failure threshold
    liveness_failed: frozenset[str] = frozenset()
    #: the last start failure per container name (ErrImagePull, CreateContainerError...)
    start_errors: FrozenDict[str, str] = EMPTY
    #: back-off memory: container name, or ``pull:<name>`` for image pulls
    backoff: FrozenDict[str, BackOff] = EMPTY
    #: this node's address (``status.hostIP``)
    host_ip: str = ""
    #: Service environment variables (``<NAME>_SERVICE_HOST`` ...) for containers started
    #: this round, computed by the agent from the Services of the pod's namespace
    service_env: tuple[tuple[str, str], ...] = ()


# --------------------------------------------------------------------------- commands
# (They cache their hashes, as kstate.control.commands does, for the model checker's
# memo of the executor's plans.)


@attrs.frozen(cache_hash=True)
class EnsureSandbox:
    spec: rt.SandboxSpec


@attrs.frozen(cache_hash=True)
class StartContainer:
    """Create and start ``spec`` in the current sandbox."""

    sandbox_id: str
    spec: rt.ContainerSpec


@attrs.frozen(cache_hash=True)
class StopContainer:
    """TERM, wait ``grace`` seconds, KILL (the runtime's stop)."""

    container_id: str
    grace: float


@attrs.frozen(cache_hash=True)
class RemoveSandbox:
    """Remove the sandbox and every container in it (pod gone or finished)."""

    sandbox_id: str


@attrs.frozen(cache_hash=True)
class WriteStatus:
    """Write ``pod.status`` (compare-and-swap on its resourceVersion). ``trigger`` names
    the Pod machine move it records (``""`` for a status refresh without a move)."""

    pod: Pod
    trigger: str = ""


@attrs.frozen(cache_hash=True)
class FinishDelete:
    """Every container stopped: remove the pod object (DELETE, grace 0, uid guard)."""

    namespace: str
    name: str
    uid: str


@attrs.frozen(cache_hash=True)
class RememberBackOff:
    key: str
    backoff: BackOff | None  # None forgets


@attrs.frozen(cache_hash=True)
class ClearStartErrors:
    """Forget the pod's recorded start failures: the next start is a fresh attempt."""


@attrs.frozen(cache_hash=True)
class RequeueAt:
    """Nothing to do before ``when`` (a back-off or grace deadline)."""

    when: float


NodeCommand = (EnsureSandbox | StartContainer | StopContainer | RemoveSandbox | WriteStatus
               | FinishDelete | RememberBackOff | ClearStartErrors | RequeueAt)


# --------------------------------------------------------------------------- sync


DEFAULT_BACKOFF = BackOffPolicy()
Commands = list[NodeCommand]


def sync(view: PodSyncView, now: float, policy: BackOffPolicy = DEFAULT_BACKOFF) -> Commands:
    """One round of the pod's worker: what to do next (``[]``: nothing until a change)."""
    pod = view.pod
    if pod is None or pod.spec.node_name != view.node or pod.metadata.uid != view.uid:
        return _teardown(view)
    state = pod_state(pod, now)
    if state in ("Terminating", "Killing"):
        return _terminate(view, pod, now)
    if state in ("Succeeded", "Failed"):
        return _teardown(view, keep_sandbox=False)
    round_ = _ROUNDS.get(state)
    return round_(view, pod, now, policy) if round_ is not None else []


def _teardown(view: PodSyncView, keep_sandbox: bool = False) -> list[NodeCommand]:
    """The pod is gone, not ours, or finished: stop what runs, then remove the sandbox."""
    running = [c for c in view.containers if c.state is rt.ContainerState.RUNNING]
    if running:
        return [StopContainer(c.id, 0) for c in running]
    if view.sandbox is not None and not keep_sandbox:
        return [RemoveSandbox(view.sandbox.id)]
    return []


def _terminate(view: PodSyncView, pod: Pod, now: float) -> list[NodeCommand]:
    """Graceful deletion: TERM with the grace left (KILL once it is over), then finish."""
    running = [c for c in view.containers if c.state is rt.ContainerState.RUNNING]
    if running:
        deadline = parse_rfc3339(pod.metadata.deletion_timestamp)
        grace = max(0.0, deadline - now)
        return [StopContainer(c.id, grace) for c in running]
    before = pod_state(pod, now)
    fire("pod", before, "stopped", obj=object_name(pod))
    out: list[NodeCommand] = []
    if view.sandbox is not None:
        out.append(RemoveSandbox(view.sandbox.id))
    out.append(FinishDelete(pod.metadata.namespace, pod.metadata.name, pod.metadata.uid))
    return out


# --------------------------------------------------------------------------- rounds


def _move(view: PodSyncView, pod: Pod, trigger: str, now: float,
          facts: Mapping[str, object] | None = None,
          waiting: Mapping[str, tuple[str, str]] | None = None) -> WriteStatus:
    """Fire ``trigger`` and project the new state onto the pod's status."""
    before = pod_state(pod, now)
    after = fire("pod", before, trigger, facts, obj=object_name(pod))
    updated = project(view, pod, after, now, waiting or {})
    observed = pod_state(updated, now)
    assert observed == after, f"status projects {observed!r}, machine says {after!r}"
    return WriteStatus(updated, trigger)


def _scheduled(view: PodSyncView, pod: Pod, now: float, policy: BackOffPolicy) -> Commands:
    return [_move(view, pod, "start", now)]


def _unknown(view: PodSyncView, pod: Pod, now: float, policy: BackOffPolicy) -> Commands:
    # The agent is syncing, so its node reports again: resume from what the runtime says
    # — except for containers whose current instance has exited (it died while the node
    # was cut off, or the pod was in CrashLoopBackOff when the node was lost). Recovery
    # lands in Running, where an exit shown as terminated looks handled and nobody would
    # ever restart it; so they are shown as still running, and the next round (Running)
    # puts each exit through the restart policy (and the back-off) like any other exit.
    sandbox_id = view.sandbox.id if view.sandbox is not None else ""
    exited = {
        inst.id: attrs.evolve(inst, state=rt.ContainerState.RUNNING, exit_code=None,
                              finished_at=None, reason=None)
        for inst in _current(view.containers, sandbox_id).values()
        if inst.state is rt.ContainerState.EXITED
    }
    if exited:
        view = attrs.evolve(view, containers=tuple(exited.get(c.id, c)
                                                   for c in view.containers))
    return [_move(view, pod, "node_recovered", now)]


def _creating(view: PodSyncView, pod: Pod, now: float, policy: BackOffPolicy) -> Commands:
    sandbox = view.sandbox
    if sandbox is None or sandbox.state is not rt.SandboxState.READY:
        attempt = sandbox.attempt + 1 if sandbox is not None else 0
        return [EnsureSandbox(sandbox_spec(pod, view.node, attempt))]
    for name, reason in view.start_errors.items():
        if reason in PULL_ERRORS:
            memo = view.backoff.get(f"pull:{name}")
            count = memo.count + 1 if memo is not None else 1
            return [RememberBackOff(f"pull:{name}", BackOff(count, now)),
                    _move(view, pod, "pull_failed", now,
                          waiting={name: (reason, f"image {_image(pod, name)!r} is not present")})]
    current = _current(view.containers, sandbox.id)
    exited = _exited(pod, current)
    if exited is not None:
        return _exit(view, pod, exited, current, now, policy)
    out: list[NodeCommand] = []
    for container in pod.spec.containers:
        inst = current.get(container.name)
        if inst is None or inst.state is rt.ContainerState.EXITED:  # exit already handled
            previous = _latest(view.containers, container.name)
            attempt = previous.attempt + 1 if previous is not None else 0
            out.append(StartContainer(sandbox.id, container_spec(pod, container, attempt,
                                                                 view.service_env)))
    if out:
        return out
    if all(current[c.name].state is rt.ContainerState.RUNNING for c in pod.spec.containers):
        return [_move(view, pod, "started", now)]
    return []


def _pull_backoff(view: PodSyncView, pod: Pod, now: float, policy: BackOffPolicy) -> Commands:
    due = min((_due(memo, policy) for key, memo in view.backoff.items()
               if key.startswith("pull:")), default=now)
    if now < due:
        return [RequeueAt(due)]
    return [ClearStartErrors(), _move(view, pod, "pull_retry", now)]


def _running(view: PodSyncView, pod: Pod, now: float, policy: BackOffPolicy) -> Commands:
    sandbox = view.sandbox
    if sandbox is None or sandbox.state is not rt.SandboxState.READY:
        # The pod's network namespace is gone (node rebooted, runtime wiped): every
        # container went with it. Report it as an exit so restartPolicy decides.
        return _exit(view, pod, _lost(pod.spec.containers[0], now), {}, now, policy)
    current = _current(view.containers, sandbox.id)
    for name in sorted(view.liveness_failed):
        inst = current.get(name)
        if inst is not None and inst.state is rt.ContainerState.RUNNING:
            return [StopContainer(inst.id, _grace(pod))]
    exited = _exited(pod, current)
    if exited is not None:
        return _exit(view, pod, exited, current, now, policy)
    missing = [c for c in pod.spec.containers if c.name not in current]
    if missing:
        return _exit(view, pod, _lost(missing[0], now), current, now, policy)
    ready = all_ready(pod, current, view.readiness)
    state = pod_state(pod, now)
    if state == "Running" and ready:
        return [_move(view, pod, "ready", now)]
    if state == "Ready" and not ready:
        return [_move(view, pod, "unready", now)]
    refreshed = project(view, pod, state, now, {})
    return [WriteStatus(refreshed)] if refreshed.status != pod.status else []


def _crash_backoff(view: PodSyncView, pod: Pod, now: float, policy: BackOffPolicy) -> Commands:
    due = min((_due(memo, policy) for key, memo in view.backoff.items()
               if not key.startswith("pull:")), default=now)
    if now < due:
        return [RequeueAt(due)]
    return [_move(view, pod, "backoff_expired", now)]


def _due(memo: BackOff, policy: BackOffPolicy) -> float:
    """When the next restart (or pull) may happen: ``count`` failures in a row wait
    ``policy.delay(count - 1)`` — the first restart is immediate."""
    return memo.since + policy.delay(max(0, memo.count - 1))


_ROUNDS = {
    "Scheduled": _scheduled,
    "Unknown": _unknown,
    "ContainerCreating": _creating,
    "ImagePullBackOff": _pull_backoff,
    "Running": _running,
    "Ready": _running,
    "CrashLoopBackOff": _crash_backoff,
}


def _exit(view: PodSyncView, pod: Pod, exited: rt.ContainerStatus,
          current: Mapping[str, rt.ContainerStatus], now: float,
          policy: BackOffPolicy) -> list[NodeCommand]:
    """A container of the current attempt exited: the restart policy decides, through
    the machine's ``container_exited`` guards."""
    others = [c for name, c in current.items() if name != exited.name]
    facts = {
        "restart_policy": pod.spec.restart_policy or "Always",
        "exit_code": exited.exit_code if exited.exit_code is not None else 128,
        "others_running": any(c.state is rt.ContainerState.RUNNING for c in others),
        "others_failed": any(c.state is rt.ContainerState.EXITED and c.exit_code != 0
                             for c in others),
    }
    write = _move(view, pod, "container_exited", now, facts)
    out: list[NodeCommand] = []
    if pod_state(write.pod, now) == "CrashLoopBackOff":
        memo = view.backoff.get(exited.name)
        started = exited.started_at if exited.started_at is not None else now
        finished = exited.finished_at if exited.finished_at is not None else now
        count = policy.restarts_after_run(memo.count if memo else 0, finished - started)
        out.append(RememberBackOff(exited.name, BackOff(count + 1, now)))
    out.append(write)
    return out


# --------------------------------------------------------------------------- helpers


def _lost(container: Container, now: float) -> rt.ContainerStatus:
    """A stand-in for a container the runtime no longer has (Kubernetes reports it as
    ``ContainerStatusUnknown``, exit code 137)."""
    return rt.ContainerStatus(id="", name=container.name, sandbox_id="",
                              state=rt.ContainerState.EXITED, image=container.image,
                              created_at=now, exit_code=rt.EXIT_KILLED,
                              reason=rt.Reason.ERROR, message="the container was lost")


def _latest(containers: Iterable[rt.ContainerStatus], name: str) -> rt.ContainerStatus | None:
    mine = [c for c in containers if c.name == name]
    return max(mine, key=lambda c: c.attempt) if mine else None


def _current(
    containers: Sequence[rt.ContainerStatus], sandbox_id: str
) -> dict[str, rt.ContainerStatus]:
    """The newest instance of each container in the current sandbox.

    An instance that exited and was already handled (the pod moved on to a new attempt)
    is superseded by the newer one; one that is the newest and exited is an exit to
    handle — unless the pod's status already records it as handled (same container id
    terminated), which ``_exited`` checks.
    """
    out: dict[str, rt.ContainerStatus] = {}
    for c in containers:
        if c.sandbox_id != sandbox_id:
            continue
        if c.name not in out or c.attempt > out[c.name].attempt:
            out[c.name] = c
    return out


def _exited(pod: Pod, current: Mapping[str, rt.ContainerStatus]) -> rt.ContainerStatus | None:
    """The first exited container whose exit the pod's status has not recorded yet."""
    recorded = {
        s.name: s for s in pod.status.container_statuses
    }
    for container in pod.spec.containers:
        inst = current.get(container.name)
        if inst is None or inst.state is not rt.ContainerState.EXITED:
            continue
        status = recorded.get(container.name)
        handled = status is not None and (
            (status.state.terminated is not None
             and status.state.terminated.container_id == _container_id(inst))
            or (status.last_state.terminated is not None
                and status.last_state.terminated.container_id == _container_id(inst)
                and status.state.terminated is None)
        )
        if not handled:
            return inst
    return None


def all_ready(pod: Pod, current: Mapping[str, rt.ContainerStatus],
              readiness: Mapping[str, bool]) -> bool:
    """Every container runs, and passes its readiness probe when it has one (a container
    without a probe is ready as soon as it runs — Kubernetes' rule)."""
    for container in pod.spec.containers:
        inst = current.get(container.name)
        if inst is None or inst.state is not rt.ContainerState.RUNNING:
            return False
        if container.readiness_probe is not None and not readiness.get(container.name, False):
            return False
    return True


def _grace(pod: Pod) -> float:
    g = pod.spec.termination_grace_period_seconds
    return float(30 if g is None else g)


def _image(pod: Pod, name: str) -> str:
    return next((c.image for c in pod.spec.containers if c.name == name), "")


def _container_id(inst: rt.ContainerStatus) -> str:
    return f"kstate://{inst.id}"


def sandbox_spec(pod: Pod, node: str, attempt: int = 0) -> rt.SandboxSpec:
    meta = pod.metadata
    return rt.SandboxSpec(pod_uid=meta.uid, namespace=meta.namespace, name=meta.name,
                          node_name=node, hostname=meta.name, attempt=attempt,
                          labels=dict(meta.labels))


def container_spec(pod: Pod, container: Container, attempt: int,
                   extra_env: Sequence[tuple[str, str]] = ()) -> rt.ContainerSpec:
    """The runtime's view of a pod container (limits parsed, env ordered)."""
    limits = container.resources.limits
    cpu = parse_quantity(limits["cpu"]) if "cpu" in limits else None
    memory = parse_quantity(limits["memory"]) if "memory" in limits else None
    return rt.ContainerSpec(
        name=container.name,
        image=container.image,
        image_pull_policy=rt.PullPolicy(container.image_pull_policy or "IfNotPresent"),
        command=container.command,
        args=container.args,
        env=(*extra_env, *((e.name, e.value) for e in container.env)),
        working_dir=container.working_dir,
        cpu_millicores=int(cpu * 1000) if cpu is not None else None,
        memory_bytes=int(memory) if memory is not None else None,
        stdin=container.stdin,
        stdin_once=container.stdin_once,
        tty=container.tty,
        attempt=attempt,
    )


# --------------------------------------------------------------------------- status


def project(view: PodSyncView, pod: Pod, state: str, now: float,
            waiting: Mapping[str, tuple[str, str]]) -> Pod:
    """The pod with a status that shows ``state`` and what the runtime reports.

    The phase, the Ready condition and the waiting reason come from the one state
    mapping (``kstate.api.visible``); the container details from the runtime.

    ``waiting`` overrides a container's waiting reason and message (image pull errors).
    """
    stamp = rfc3339(now)
    sandbox_id = view.sandbox.id if view.sandbox is not None else ""
    current = _current(view.containers, sandbox_id)
    statuses = tuple(
        _container_status(view, pod, c, current.get(c.name), state, waiting.get(c.name))
        for c in pod.spec.containers
    )
    ready = visible.shown("pod", state).condition("Ready") == "True"
    conditions = pod.status.conditions
    # Scheduled and initialized (kstate has no init containers) hold for every pod a node
    # agent runs; ContainersReady follows Ready (no readiness gates), as in Kubernetes.
    for type_, ok in (("PodScheduled", True), ("Initialized", True),
                      ("ContainersReady", ready)):
        conditions = set_condition(conditions, PodCondition(
            type=type_, status="True" if ok else "False", last_transition_time=stamp))
    shows = visible.show(attrs.evolve(pod, status=attrs.evolve(pod.status,
                                                                conditions=conditions)),
                         state, now)
    ip = view.sandbox.ip if view.sandbox is not None and view.sandbox.ip else \
        pod.status.pod_ip
    status = attrs.evolve(
        shows.status,
        container_statuses=statuses,
        host_ip=view.host_ip or pod.status.host_ip,
        pod_ip=ip,
        pod_ips=(PodIP(ip=ip),) if ip else (),
        start_time=pod.status.start_time or stamp,
        reason="",
        message="",
    )
    return attrs.evolve(pod, status=status)


def _container_status(view: PodSyncView, pod: Pod, container: Container,
                      inst: rt.ContainerStatus | None, state: str,
                      waiting: tuple[str, str] | None) -> ContainerStatus:
    """One ``containerStatuses`` entry showing ``state`` for this container.

    While the pod waits (creating, pulling, backing off) a container that is not running
    shows ``waiting`` with the reason the pod state shows (``kstate.api.visible``) and
    its newest exit as ``lastState``;
    otherwise it shows what the runtime says — running, or terminated (a container the
    runtime lost shows ``ContainerStatusUnknown``, exit 137, as in Kubernetes).
    """
    history = sorted((c for c in view.containers if c.name == container.name),
                     key=lambda c: c.attempt)
    exited = [c for c in history if c.state is rt.ContainerState.EXITED]
    running = inst is not None and inst.state is rt.ContainerState.RUNNING
    reason = visible.waiting_reason(state)
    if waiting is not None or (reason and not running):
        reason, message = waiting or (reason, _WAITING_MESSAGES.get(reason, "").format(
            container=container.name, pod=pod.metadata.name))
        shown = ContainerState(waiting=ContainerStateWaiting(reason=reason, message=message))
        last = exited[-1] if exited else None
    elif running:
        assert inst is not None
        shown = ContainerState(running=ContainerStateRunning(started_at=_ts(inst.started_at)))
        last = next((c for c in reversed(exited) if c.attempt < inst.attempt), None)
    elif inst is not None and inst.state is rt.ContainerState.EXITED:
        shown = ContainerState(terminated=_terminated(inst))
        last = next((c for c in reversed(exited) if c.attempt < inst.attempt), None)
    else:
        shown = ContainerState(terminated=ContainerStateTerminated(
            exit_code=rt.EXIT_KILLED, reason="ContainerStatusUnknown",
            message="The container could not be located"))
        last = exited[-1] if exited else None
    restarts = history[-1].attempt if history else 0
    return ContainerStatus(
        name=container.name,
        state=shown,
        last_state=ContainerState(terminated=_terminated(last)) if last is not None
        else ContainerState(),
        ready=state == "Ready" and running,
        restart_count=restarts,
        image=container.image,
        image_id=container.image if inst is not None else "",
        container_id=_container_id(inst) if inst is not None else "",
        started=running,
    )


def _terminated(inst: rt.ContainerStatus) -> ContainerStateTerminated:
    return ContainerStateTerminated(
        exit_code=inst.exit_code if inst.exit_code is not None else 128,
        reason=inst.reason.value if inst.reason is not None else "Error",
        message=inst.message,
        started_at=_ts(inst.started_at),
        finished_at=_ts(inst.finished_at),
        container_id=_container_id(inst),
    )


def _ts(at: float | None) -> str:
    return rfc3339(at) if at is not None else ""


__all__ = [
    "BackOff",
    "ClearStartErrors",
    "EnsureSandbox",
    "FinishDelete",
    "NodeCommand",
    "PodSyncView",
    "RememberBackOff",
    "RemoveSandbox",
    "RequeueAt",
    "StartContainer",
    "StopContainer",
    "WriteStatus",
    "all_ready",
    "container_spec",
    "project",
    "sandbox_spec",
    "sync",
]
