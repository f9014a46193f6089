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
  (Kubernetes stores request time + grace, so a passed deadline means KILL is due) for
  pods, ``set`` / ``unset`` for namespaces (no grace period: marked is all there is);
  ``spec.unschedulable``: ``true`` / ``false``; ``annotation``: the key is present;
  ``object: absent`` — the terminal state, never read from an object.

The spec and metadata fields are read here but written by their own verbs (bind,
delete, cordon, drain); only status fields are written through :func:`show`.

>>> from kstate.api.objects import Pod
>>> read(Pod())
'Pending'
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import attrs

from kstate.api.helpers import set_condition
from kstate.api.objects import Namespace, Node, NodeCondition, Pod, PodCondition
from kstate.clock import parse_rfc3339, rfc3339
from kstate.machines import NAMESPACE, NODE, POD, MachineDef

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
        elif key == "deletionTimestamp" and value in ("future", "past", "set", "unset"):
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


class Table(dict[str, Shown]):
    """state -> what it shows, remembering which states an object's deletion mark, node
    and phase leave possible (the checker reads millions of objects; a dozen attribute
    tests per state were most of the cost). Replacing an entry forgets what it knew."""

    def __init__(self, shown: Mapping[str, Shown]) -> None:
        super().__init__(shown)
        self.candidates: dict[tuple[str, str, str], tuple[Shown, ...]] = {}

    def __setitem__(self, state: str, shown: Shown) -> None:
        super().__setitem__(state, shown)
        self.candidates.clear()

    def remember(self, key: tuple[str, str, str],
                 candidates: tuple[Shown, ...]) -> tuple[Shown, ...]:
        if len(self.candidates) > 256:  # phases are free text: stay small whatever comes
            self.candidates.clear()
        self.candidates[key] = candidates
        return candidates


def _table(machine: MachineDef) -> Table:
    return Table({s.name: _parse(machine, s.name, s.visible) for s in machine.states})


#: machine name -> state -> what it shows; the pod and node machines' whole mapping.
SHOWN: dict[str, Table] = {"pod": _table(POD), "node": _table(NODE),
                           "namespace": _table(NAMESPACE)}

#: The order states are tried when reading an object: a state whose fields are a special
#: case of another's comes first (a terminating pod is still Running underneath; a
#: crash-looping one has phase Running too). Nothing matching means the last one.
READ_ORDER: dict[str, tuple[str, ...]] = {
    "pod": ("Killing", "Terminating", "Pending", "Succeeded", "Failed", "Unknown",
            "CrashLoopBackOff", "ImagePullBackOff", "ContainerCreating", "Ready", "Running",
            "Scheduled"),
    "node": ("Registered", "Unknown", "NotReady", "Draining", "Cordoned", "Ready"),
    "namespace": ("Terminating", "Active"),
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


def _identity(s: Shown, key: tuple[str, str, str], *, by_phase: bool = True) -> bool:
    """Whether ``s`` can be the state of an object whose deletion mark, node and phase
    are ``key`` (``""``: the machine has no such field); ``by_phase=False`` leaves the
    phase out."""
    deletion, bound, phase = key
    return not (s.absent or (s.deletion and s.deletion != deletion)
                or (s.node_name and s.node_name != bound)
                or (by_phase and s.phase and phase not in s.phase))


def _candidates(machine: str, key: tuple[str, str, str]) -> tuple[Shown, ...]:
    table = SHOWN[machine]
    order = READ_ORDER[machine]
    found = tuple(table[name] for name in order if _identity(table[name], key))
    if not found:
        # The phase contradicts the node and the deletion mark (a client wrote a phase
        # only a bound pod can have, then unbound it): where the pod is decides, as the
        # scheduler and the kubelet read it — an unbound pod is Pending.
        found = tuple(table[name] for name in order
                      if _identity(table[name], key, by_phase=False))
    return table.remember(key, found)


def read(obj: Pod | Node | Namespace, now: float | None = None) -> str:
    """The state ``obj``'s fields show. ``now`` tells a pod whose deletion deadline has
    passed (Killing) from one still in its grace period (Terminating).

    A pod whose conditions or waiting reasons contradict its phase (a client wrote only
    ``phase``) shows the first state its phase, node and deletion mark match: the phase
    is what a user reads first — unless the phase contradicts the node (a Running pod
    with no node): then the node decides.
    """
    if isinstance(obj, Pod):
        machine = "pod"
        meta = obj.metadata
        deletion = ""
        if meta.deletion_timestamp:
            passed = now is not None and parse_rfc3339(meta.deletion_timestamp) <= now
            deletion = "past" if passed else "future"
        # Kubernetes sets phase Pending on create; an object without one is that.
        key = (deletion, "set" if obj.spec.node_name else "unset", obj.status.phase or "Pending")
    elif isinstance(obj, Namespace):
        # Kubernetes sets phase Active on create; an object without one is that.
        machine = "namespace"
        key = ("set" if obj.metadata.deletion_timestamp else "unset", "",
               obj.status.phase or "Active")
    else:
        machine, key = "node", ("", "", "")
    candidates = SHOWN[machine].candidates.get(key)
    if candidates is None:
        candidates = _candidates(machine, key)
    waiting: set[str] | None = None
    conditions: dict[str, str] | None = None
    for s in candidates:
        if s.waiting:
            if waiting is None:
                waiting = {c.state.waiting.reason for c in obj.status.container_statuses
                           if c.state.waiting} if isinstance(obj, Pod) else set()
            if waiting.isdisjoint(s.waiting):
                continue
        if s.unschedulable or s.annotation:
            assert isinstance(obj, Node)
            if s.unschedulable != ("true" if obj.spec.unschedulable else "false") or (
                    s.annotation and s.annotation not in obj.metadata.annotations):
                continue
        if s.conditions:
            if conditions is None:
                conditions = {c.type: c.status for c in obj.status.conditions}
            for type_, declared in s.conditions:
                if not _condition_matches(declared, conditions.get(type_)):
                    break
            else:
                return s.state
            continue
        return s.state
    return candidates[0].state if candidates else READ_ORDER[machine][-1]


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
    condition: Callable[[str, str], PodCondition | NodeCondition]
    if isinstance(obj, Pod):
        s = shown("pod", state)
        phase = obj.status.phase
        phase = phase if phase in s.phase or not s.phase else s.phase[0]
        changes: dict[str, Any] = {"phase": phase}
        def condition(type_: str, status: str) -> PodCondition | NodeCondition:
            return PodCondition(type=type_, status=status, reason=reason, message=message,
                                last_transition_time=stamp)
    else:
        s = shown("node", state)
        changes = {}
        def condition(type_: str, status: str) -> PodCondition | NodeCondition:
            return NodeCondition(type=type_, status=status, reason=reason, message=message,
                                 last_heartbeat_time=stamp if heartbeat is None else heartbeat,
                                 last_transition_time=stamp)
    conditions = obj.status.conditions
    for type_, value in s.conditions:
        if value == "absent":
            conditions = tuple(c for c in conditions if c.type != type_)
        else:
            conditions = set_condition(conditions, condition(type_, value))  # type: ignore[arg-type]
    return attrs.evolve(obj, status=attrs.evolve(obj.status, conditions=conditions,
                                                 **changes))


def waiting_reason(state: str) -> str:
    """The reason a pod's containers that do not run show while the pod is in ``state``
    (``""``: they show what the runtime says)."""
    waiting = shown("pod", state).waiting
    return waiting[0] if waiting else ""


__all__ = ["READ_ORDER", "SHOWN", "Shown", "read", "show", "shown", "waiting_reason"]
