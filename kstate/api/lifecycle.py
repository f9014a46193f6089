"""Where a lifecycle machine meets the Kubernetes object: observe a state, check a change.

Where it sits: between ``kstate.machines`` (definitions) and everything that writes
objects — the api server's admission (every write of a Pod, RC, Service or Node is checked
here), the controllers' executors, the node agent and the model checker's system model.

Why it exists: the machine state of an object is *persisted with the object*, mapped onto
the fields users see (``status.phase``, conditions, container reasons,
``deletionTimestamp``, ``spec.unschedulable``). ``state_of`` reads it back, so a restarted
component resumes exactly where the store says the object is, and ``check_change``
rejects any write whose before/after states are not joined by a trigger of the machine —
the same rule whether the writer is the kubelet, a controller or a user with kubectl.

Which executor fires triggers is a context setting: the engine uses the ``transitions``
machines (``live``), the model checker switches to the compiled tables for speed
(``use_executor("compiled")``). A test proves the two agree on every move.

>>> from kstate.api.objects import Pod
>>> state_of(Pod())
'Pending'
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator, Mapping
from typing import Any, Literal, Protocol

from kstate import machines
from kstate.api import visible
from kstate.api.facts import FOREGROUND, ORPHAN, facts_for
from kstate.api.meta import KubeObject
from kstate.api.objects import Endpoints, Namespace, Node, Pod, ReplicationController, Service
from kstate.errors import IllegalTransition

Executor = Literal["live", "compiled"]

_executor: contextvars.ContextVar[Executor] = contextvars.ContextVar(
    "kstate_lifecycle_executor", default="live"
)

#: Kinds whose lifecycle is a machine, by kind name -> machine name.
MACHINE_OF_KIND = {"Pod": "pod", "ReplicationController": "rc", "Service": "service",
                   "Node": "node", "Namespace": "namespace"}

#: The drain mark, as the Node machine's Draining state declares it.
DRAINING_ANNOTATION = visible.shown("node", "Draining").annotation


class _Fires(Protocol):
    def fire(self, state: str, trigger: str, facts: Mapping[str, Any] | None = None,
             obj: str = "") -> str: ...


@contextlib.contextmanager
def use_executor(name: Executor) -> Iterator[None]:
    """Fire triggers through ``name`` (``live`` or ``compiled``) inside the block."""
    token = _executor.set(name)
    try:
        yield
    finally:
        _executor.reset(token)


def executor(machine: str) -> _Fires:
    """The executor for ``machine`` in the current context."""
    return machines.live(machine) if _executor.get() == "live" else machines.compiled(machine)


def fire(machine: str, state: str, trigger: str, facts: Mapping[str, Any] | None = None,
         obj: str = "") -> str:
    """Fire ``trigger`` on ``machine`` from ``state``; the new state or ``IllegalTransition``."""
    return executor(machine).fire(state, trigger, facts, obj=obj)


def object_name(obj: KubeObject) -> str:
    meta = obj.metadata
    return f"{meta.namespace}/{meta.name}" if meta.namespace else meta.name


# ------------------------------------------------------------------------ observe


def pod_state(pod: Pod, now: float | None = None) -> str:
    """The Pod machine state its fields show (the one mapping: ``kstate.api.visible``).

    ``now`` distinguishes Killing (the deletion deadline — Kubernetes stores
    ``deletionTimestamp`` as *request time + grace* — has passed) from Terminating.
    """
    return visible.read(pod, now)


def rc_state(rc: ReplicationController) -> str:
    """The RC machine state: Created until first synced, then Stable / Progressing."""
    if rc.metadata.deletion_timestamp:
        return "Deleting"
    status = rc.status
    if status.observed_generation == 0:
        return "Created"
    desired = 1 if rc.spec.replicas is None else rc.spec.replicas
    synced = status.observed_generation >= rc.metadata.generation
    return "Stable" if synced and status.replicas == desired else "Progressing"


def service_state(service: Service, endpoints: Endpoints | None = None) -> str:
    """The Service machine state; NoEndpoints / Active need the service's Endpoints."""
    if service.metadata.deletion_timestamp:
        return "Deleting"
    if not service.spec.cluster_ip:
        return "Created"
    if endpoints is None:
        return "Allocated"
    ready = any(subset.addresses for subset in endpoints.subsets)
    return "Active" if ready else "NoEndpoints"


def node_state(node: Node) -> str:
    """The Node machine state from its Ready condition, cordon and drain marks (the one
    mapping: ``kstate.api.visible``)."""
    return visible.read(node)


def namespace_state(namespace: Namespace) -> str:
    """The Namespace machine state: its phase and deletion mark (``kstate.api.visible``)."""
    return visible.read(namespace)


def namespace_phase(state: str) -> str:
    """The ``status.phase`` a Namespace machine state shows."""
    return visible.shown("namespace", state).phase[0]


def state_of(obj: KubeObject, now: float | None = None) -> str | None:
    """The machine state of any object (``None`` for kinds without a lifecycle machine)."""
    if isinstance(obj, Pod):
        return pod_state(obj, now)
    if isinstance(obj, ReplicationController):
        return rc_state(obj)
    if isinstance(obj, Service):
        return service_state(obj)
    if isinstance(obj, Node):
        return node_state(obj)
    if isinstance(obj, Namespace):
        return namespace_state(obj)
    return None


# ------------------------------------------------------------------------ check


def check_change(old: KubeObject, new: KubeObject, now: float | None = None) -> str | None:
    """The trigger that makes the move ``old`` -> ``new``, ``None`` when the state is
    unchanged; ``IllegalTransition`` when no trigger, fired with the facts of this write
    (``kstate.api.facts``), lands on the state the new object shows.

    The api server calls this on every update of a kind with a machine, so an illegal
    lifecycle change is refused (422) whoever sends it — with the current state, the
    requested one, and the guard that stopped each candidate trigger.
    """
    machine = MACHINE_OF_KIND.get(type(new).__name__)
    if machine is None:
        return None
    before, after = state_of(old, now), state_of(new, now)
    if before is None or after is None or before == after:
        return None
    # Killing is Terminating with its deadline passed: time moved it, not a writer.
    if (before, after) == ("Terminating", "Killing"):
        return "grace_expired"
    name = object_name(new)
    missed: list[str] = []
    for trigger in machines.compiled(machine).triggers_between(before, after):
        facts = facts_for(machine, trigger, old, new)
        try:
            reached = fire(machine, before, trigger, facts, obj=name)
        except IllegalTransition:
            reached = ""
        if reached == after:
            return trigger
        missed.append(_why_not(machine, before, after, trigger, facts, reached))
    definition = machines.resolve(machine)
    if not missed:
        allowed = ", ".join(machines.compiled(machine).allowed(before)) or "none"
        missed.append(f"no trigger moves a {definition.kind} from {before!r} to {after!r}; "
                      f"triggers allowed in {before!r}: {allowed}")
    raise IllegalTransition(definition.kind, name, before, f"-> {after}", "; ".join(missed))


def _why_not(machine: str, before: str, after: str, trigger: str,
             facts: Mapping[str, Any], reached: str) -> str:
    """Which guard kept ``trigger`` from moving ``before`` -> ``after``, in words."""
    definition = machines.resolve(machine)
    failed = [
        f"{t.label()} needs {', '.join(definition.failed_guards(t, facts))}"
        for t in definition.outgoing(before, trigger) if t.dest == after
    ]
    lands = f"it leads to {reached!r}" if reached else "no transition accepts them"
    shown_facts = ", ".join(f"{k}={v}" for k, v in sorted(facts.items()))
    return (f"{trigger} with {shown_facts or 'no facts'}: {lands}, not {after!r} "
            f"({'; '.join(failed)})")


# ------------------------------------------------------------------------ delete



__all__ = [
    "DRAINING_ANNOTATION",
    "FOREGROUND",
    "MACHINE_OF_KIND",
    "ORPHAN",
    "check_change",
    "executor",
    "fire",
    "namespace_phase",
    "namespace_state",
    "node_state",
    "pod_state",
    "rc_state",
    "service_state",
    "state_of",
    "use_executor",
]
