"""The one mapping between machine states and the fields a user sees, both directions.

Where it sits: between ``kstate.machines`` (each ``State`` declares how it shows in
``visible``) and every component that reads or writes those fields: the api server's
lifecycle check (``kstate.api.lifecycle``), the node agent's pod worker
(``kstate.node.podsync``) and heartbeat, the node lifecycle controller, the model checker
and the graphs (which print the declarations themselves).

Why it exists: the machine state of an object is persisted *as* Kubernetes' own fields —
``status.phase``, the ``Ready`` condition, the containers' waiting reasons,
``spec.nodeName``, ``deletionTimestamp``, ``spec.unschedulable``. Written by hand in each
component and read back by hand elsewhere, the two directions drift apart silently. Here
the declarations are parsed once into :class:`Shown` values, and:

* :func:`read` finds the state an object shows: the first state, in the machine's reading
  order (:data:`READ_ORDER`: the most specific first), whose every declared field
  matches;
* :func:`show` writes the *status* fields of a state (phase, Ready condition);
  :func:`waiting_reason` gives the waiting reason the pod's containers show.

The declaration vocabulary (anything else is refused when this module is imported):

* ``phase``: ``A|B`` — either reads as the state; writing keeps the current phase when
  it is one of them (a restarting pod stays Running, as in Kubernetes), else writes ``A``;
* a condition type (``Ready``, ``PodScheduled``...): ``True`` / ``Unknown`` / ``absent``
  exactly, ``False`` for anything but True (Kubernetes treats a missing condition so);
* ``waiting``: ``A|B`` — some container waits with one of these reasons;
* ``spec.nodeName``: ``set`` / ``unset``; ``deletionTimestamp``: ``future`` / ``past``
  (Kubernetes stores request time + grace, so a passed deadline means KILL is due);
  ``spec.unschedulable``: ``true`` / ``false``; ``annotation``: the key is present;
  ``object: absent`` — the terminal state, never read from an object.

The spec and metadata fields are read here but written by their own verbs (bind,
delete, cordon, drain); only status fields are written through :func:`show`.

>>> from kstate.api.objects import Pod
>>> read(Pod())
'Pending'
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import TypeVar

import attrs

from kstate.api.helpers import get_condition, set_condition
from kstate.api.objects import Node, NodeCondition, Pod, PodCondition
from kstate.clock import parse_rfc3339, rfc3339
from kstate.machines import NODE, POD, MachineDef

_CONDITION_VALUES = frozenset({"True", "False", "Unknown", "absent"})
_FIELDS = {"phase", "waiting", "spec.nodeName", "deletionTimestamp", "spec.unschedulable",
           "annotation", "object"}


@attrs.frozen
class Shown:
    """The fields one state shows, parsed from its ``visible`` declaration."""

    state: str
    phase: tuple[str, ...] = ()
    conditions: tuple[tuple[str, str], ...] = ()
    waiting: tuple[str, ...] = ()
    node_name: str = ""
    deletion: str = ""
    unschedulable: str = ""
    annotation: str = ""
    absent: bool = False

    def condition(self, type_: str) -> str:
        """The declared status of condition ``type_`` (``""``: not declared)."""
        return dict(self.conditions).get(type_, "")


def _alternatives(value: str) -> tuple[str, ...]:
    return tuple(v for v in value.split("|") if v)


def _parse(machine: MachineDef, state: str, visible: Mapping[str, str]) -> Shown:
    fields: dict[str, object] = {}
    conditions: list[tuple[str, str]] = []
    for key, value in visible.items():
        where = f"machine {machine.name!r}, state {state!r}, visible {key!r}"
        if key == "phase":
            fields["phase"] = _alternatives(value)
        elif key == "waiting":
            fields["waiting"] = _alternatives(value)
        elif key == "spec.nodeName" and value in ("set", "unset"):
            fields["node_name"] = value
        elif key == "deletionTimestamp" and value in ("future", "past"):
            fields["deletion"] = value
        elif key == "spec.unschedulable" and value in ("true", "false"):
            fields["unschedulable"] = value
        elif key == "annotation":
            fields["annotation"] = value
        elif key == "object" and value == "absent":
            fields["absent"] = True
        elif key not in _FIELDS and key[:1].isupper() and value in _CONDITION_VALUES:
            conditions.append((key, value))
        else:
            raise ValueError(f"{where}: cannot read or write {value!r}")
    return Shown(state, conditions=tuple(conditions), **fields)  # type: ignore[arg-type]


def _table(machine: MachineDef) -> dict[str, Shown]:
    return {s.name: _parse(machine, s.name, s.visible) for s in machine.states}


#: machine name -> state -> what it shows; the pod and node machines' whole mapping.
SHOWN: dict[str, dict[str, Shown]] = {"pod": _table(POD), "node": _table(NODE)}

#: The order states are tried when reading an object: a state whose fields are a special
#: case of another's comes first (a terminating pod is still Running underneath; a
#: crash-looping one has phase Running too). Nothing matching means the last one.
READ_ORDER: dict[str, tuple[str, ...]] = {
    "pod": ("Killing", "Terminating", "Pending", "Succeeded", "Failed", "Unknown",
            "CrashLoopBackOff", "ImagePullBackOff", "ContainerCreating", "Ready", "Running",
            "Scheduled"),
    "node": ("Registered", "Unknown", "NotReady", "Draining", "Cordoned", "Ready"),
}


def shown(machine: str, state: str) -> Shown:
    """What ``state`` of ``machine`` shows (``KeyError`` for an unknown one)."""
    return SHOWN[machine][state]


# --------------------------------------------------------------------------- read


def _condition_matches(declared: str, status: str | None) -> bool:
    if declared == "absent":
        return status is None
    if declared == "False":
        return status != "True"
    return status == declared


def _pod_matches(s: Shown, pod: Pod, now: float | None, strict: bool = True) -> bool:
    meta, status = pod.metadata, pod.status
    if s.absent:
        return False
    if s.deletion:
        deadline_passed = (now is not None and bool(meta.deletion_timestamp)
                           and parse_rfc3339(meta.deletion_timestamp) <= now)
        if not meta.deletion_timestamp or (s.deletion == "past") != deadline_passed:
            return False
    if s.node_name and (s.node_name == "set") != bool(pod.spec.node_name):
        return False
    # Kubernetes sets phase Pending on create; an object without one is that.
    if s.phase and (status.phase or "Pending") not in s.phase:
        return False
    if not strict:
        return True
    if s.waiting and not any(c.state.waiting and c.state.waiting.reason in s.waiting
                             for c in status.container_statuses):
        return False
    for type_, declared in s.conditions:
        cond = get_condition(status.conditions, type_)
        if not _condition_matches(declared, cond.status if cond is not None else None):
            return False
    return True


def _node_matches(s: Shown, node: Node) -> bool:
    if s.absent:
        return False
    if s.unschedulable and (s.unschedulable == "true") != bool(node.spec.unschedulable):
        return False
    if s.annotation and s.annotation not in node.metadata.annotations:
        return False
    for type_, declared in s.conditions:
        cond = get_condition(node.status.conditions, type_)
        if not _condition_matches(declared, cond.status if cond is not None else None):
            return False
    return True


def read(obj: Pod | Node, now: float | None = None) -> str:
    """The state ``obj``'s fields show. ``now`` tells a pod whose deletion deadline has
    passed (Killing) from one still in its grace period (Terminating).

    A pod whose conditions or waiting reasons contradict its phase (a client wrote only
    ``phase``) shows the first state its phase, node and deletion mark match: the phase
    is what a user reads first.
    """
    if isinstance(obj, Pod):
        order = READ_ORDER["pod"]
        table = SHOWN["pod"]
        found = itertools.chain(
            (name for name in order if _pod_matches(table[name], obj, now)),
            (name for name in order if _pod_matches(table[name], obj, now, strict=False)))
    else:
        order = READ_ORDER["node"]
        table = SHOWN["node"]
        found = (name for name in order if _node_matches(table[name], obj))
    return next(found, order[-1])


# --------------------------------------------------------------------------- write

Shows = TypeVar("Shows", Pod, Node)


def show(obj: Shows, state: str, now: float, *, reason: str = "", message: str = "",
         heartbeat: str | None = None) -> Shows:
    """``obj`` with the status fields ``state`` shows: the phase, and each declared
    condition (with ``reason``/``message``; ``lastTransitionTime`` moves only when the
    status does, as in Kubernetes; ``heartbeat`` is a node condition's
    ``lastHeartbeatTime``, ``now`` when not given). Fields a state does not declare are
    kept."""
    stamp = rfc3339(now)
    if isinstance(obj, Pod):
        s = shown("pod", state)
        status = obj.status
        phase = status.phase if status.phase in s.phase or not s.phase else s.phase[0]
        conditions = status.conditions
        for type_, value in s.conditions:
            if value == "absent":
                conditions = tuple(c for c in conditions if c.type != type_)
                continue
            conditions = set_condition(conditions, PodCondition(
                type=type_, status=value, reason=reason, message=message,
                last_transition_time=stamp))
        return attrs.evolve(obj, status=attrs.evolve(status, phase=phase,
                                                     conditions=conditions))
    s = shown("node", state)
    node_conditions = obj.status.conditions
    for type_, value in s.conditions:
        if value == "absent":
            node_conditions = tuple(c for c in node_conditions if c.type != type_)
            continue
        node_conditions = set_condition(node_conditions, NodeCondition(
            type=type_, status=value, reason=reason, message=message,
            last_heartbeat_time=stamp if heartbeat is None else heartbeat,
            last_transition_time=stamp))
    return attrs.evolve(obj, status=attrs.evolve(obj.status, conditions=node_conditions))


def waiting_reason(state: str) -> str:
    """The reason a pod's containers that do not run show while the pod is in ``state``
    (``""``: they show what the runtime says)."""
    waiting = shown("pod", state).waiting
    return waiting[0] if waiting else ""


__all__ = ["READ_ORDER", "SHOWN", "Shown", "read", "show", "shown", "waiting_reason"]
