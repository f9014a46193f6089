"""How a reconciler's commands are carried out: the one plan both executors follow.

Where it sits: between ``reconcile(view, now) -> list[Command]`` (commands.py) and the
API. ``execute(commands)`` is a pure generator. It yields ``Step``s — controller-local
``effects`` to apply first (expectations, memory), ``events`` to record, then ``calls``:
API requests as data (``Call``: verb, arguments, preconditions) — and is sent back one
``Reply`` per call. From the replies it decides everything else: which calls come next,
what a failure skips, how expectations and memory change and which events follow. It
returns the outcome of every command.

Two drivers add only I/O: the engine's ``Executor`` (executor.py) sends the calls of a
step to the API server concurrently; the model checker (``kstate.verify.system.model``)
applies them to its abstract API one after the other, and does not store events (no
controller reads them). That difference — concurrency and atomicity within one step —
is plumbing: the calls of a step are independent writes (creations of distinct
objects), and the plan hears every reply before it decides anything further.

The decisions, each settled on Kubernetes' behaviour:

* **Slow start.** A run of creations goes out in batches of 1, 2, 4, ...
  (``slowStartBatch``, pkg/controller/controller_utils.go); the first batch with a
  failure stops the run. The skipped creations are taken off the expectations — no watch
  event will ever show them — and get no event: they were never tried
  (``manageReplicas`` in pkg/controller/replication lowers ``skippedPods`` the same way).
* **Preconditions.** Every write carries what makes it safe against a stale cache:
  an update its resourceVersion, a delete the uid (and resourceVersion when the command
  has one), a binding the pod's uid, and an eviction the pod's uid — Kubernetes'
  Eviction carries ``DeleteOptions.preconditions`` for exactly this: a pod evicted on a
  stale view must not take a new pod of the same name with it.
* **Confirm before deleting a dependent.** ``DeleteIfGone`` reads the object it depends
  on live first (a cache can lag) and deletes only when it is gone, guarded by the
  dependent's uid (the garbage collector's ``attemptToDeleteItem``).
* **What follows.** ``follow_ups``: the events and expectation observations a command's
  outcome implies.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, MutableMapping, Sequence
from typing import Literal, TypeVar

import attrs

from kstate.api.meta import KubeObject, ObjectReference, Preconditions
from kstate.control.commands import (
    Bind,
    Command,
    Create,
    Delete,
    DeleteIfGone,
    Evict,
    Expect,
    Outcome,
    Record,
    Remember,
    Update,
)
from kstate.control.expectations import Expectation, Observation

S = TypeVar("S")
R = TypeVar("R")
T = TypeVar("T")
Verb = Literal["create", "update", "delete", "bind", "evict", "get"]


@attrs.frozen
class Call:
    """One API request, as data. ``get`` is the live read behind ``DeleteIfGone``: its
    reply is ``ok`` when an object named ``kind/namespace/name`` with ``preconditions.uid``
    (when set) exists, ``not_found`` otherwise."""

    verb: Verb
    kind: str = ""
    namespace: str = ""
    name: str = ""
    obj: KubeObject | None = None  # create / update (its resourceVersion: the precondition)
    subresource: Literal["", "status", "finalize"] = ""
    preconditions: Preconditions | None = None
    grace_seconds: int | None = None
    propagation: Literal["Background", "Foreground", "Orphan"] | None = None
    node: str = ""  # bind


@attrs.frozen
class Reply:
    """How a call went; ``name`` is the created object's name (the API server may have
    generated it)."""

    outcome: Outcome
    name: str = ""


Effect = Expect | Remember | Observation  # controller-local changes


@attrs.frozen
class Step:
    """Apply ``effects`` in order, record ``events``, then send ``calls`` (one reply each,
    in the same order)."""

    effects: tuple[Effect, ...] = ()
    events: tuple[Record, ...] = ()
    calls: tuple[Call, ...] = ()


Execution = Generator[Step, tuple[Reply, ...], tuple[Outcome, ...]]


def slow_start(count: int) -> list[int]:
    """Batch sizes 1, 2, 4, ... covering ``count`` (Kubernetes' slowStartBatch).

    >>> slow_start(10)
    [1, 2, 4, 3]
    """
    sizes, size = [], 1
    while count > 0:
        sizes.append(min(size, count))
        count -= size
        size *= 2
    return sizes


def call_of(command: Create | Update | Delete | Bind | Evict) -> Call:
    """The API request a write command is sent as — the one place its preconditions are
    decided."""
    if isinstance(command, Create):
        return Call("create", obj=command.obj)
    if isinstance(command, Update):
        return Call("update", obj=command.obj, subresource=command.subresource)
    if isinstance(command, Delete):
        return Call("delete", command.kind, command.namespace, command.name,
                    preconditions=_guard(command.uid, command.resource_version),
                    grace_seconds=command.grace_seconds, propagation=command.propagation)
    if isinstance(command, Bind):
        return Call("bind", "Pod", command.namespace, command.name,
                    preconditions=_guard(command.uid), node=command.node)
    return Call("evict", "Pod", command.namespace, command.name,
                preconditions=_guard(command.uid))


def read_reply(found: bool) -> Reply:
    """The reply of a ``get``: is an object with that name (and uid, when given) there?"""
    return Reply("ok" if found else "not_found")


def _guard(uid: str, resource_version: str = "") -> Preconditions | None:
    return Preconditions(uid=uid, resource_version=resource_version) \
        if uid or resource_version else None


def _read(ref: ObjectReference) -> Call:
    return Call("get", ref.kind, ref.namespace if ref.kind != "Node" else "", ref.name,
                preconditions=_guard(ref.uid))


def _delete_dependent(cmd: DeleteIfGone) -> Call:
    dep = cmd.dependent
    return Call("delete", dep.kind, dep.namespace, dep.name, preconditions=_guard(dep.uid),
                grace_seconds=cmd.grace_seconds, propagation=cmd.propagation)


def execute(commands: Sequence[Command]) -> Execution:
    """The plan for one sync's ``commands`` (see the module docstring)."""
    outcomes: list[Outcome] = []
    effects: list[Effect] = []
    events: list[Record] = []

    def send(*calls: Call) -> Step:
        step = Step(tuple(effects), tuple(events), calls)
        effects.clear()
        events.clear()
        return step

    def follow(command: Command, reply: Reply) -> None:
        outcomes.append(reply.outcome)
        records, observed = follow_ups(command, reply.outcome, reply.name)
        events.extend(records)
        effects.extend(observed)

    i = 0
    while i < len(commands):
        cmd = commands[i]
        i += 1
        if isinstance(cmd, Expect | Remember):
            effects.append(cmd)
        elif isinstance(cmd, Record):
            events.append(cmd)
        elif isinstance(cmd, Create):
            run = [cmd]
            while i < len(commands) and isinstance(commands[i], Create):
                run.append(commands[i])  # type: ignore[arg-type]
                i += 1
            sent = 0
            for size in slow_start(len(run)):
                batch = run[sent:sent + size]
                sent += size
                replies = yield send(*(call_of(c) for c in batch))
                for create, reply in zip(batch, replies, strict=True):
                    follow(create, reply)
                if any(r.outcome != "ok" for r in replies):
                    for skipped in run[sent:]:
                        outcomes.append("unavailable")
                        effects.extend(skipped_observations(skipped))
                    break
        elif isinstance(cmd, DeleteIfGone):
            (seen,) = yield send(_read(cmd.gone))
            if seen.outcome == "not_found":
                (reply,) = yield send(_delete_dependent(cmd))
                outcomes.append(reply.outcome)
            else:  # still there ("ok"), or the read failed: not gone as far as we know
                outcomes.append("exists" if seen.outcome == "ok" else seen.outcome)
        elif isinstance(cmd, Update | Delete | Bind | Evict):
            (reply,) = yield send(call_of(cmd))
            follow(cmd, reply)
        else:
            raise TypeError(f"unknown command {cmd!r}")
    if effects or events:
        yield send()
    return tuple(outcomes)


def drive(plan: Generator[S, R, T], perform: Callable[[S], R]) -> T:
    """Follow a plan synchronously: ``perform`` does each step and gives its reply."""
    try:
        step = next(plan)
        while True:
            step = plan.send(perform(step))
    except StopIteration as done:
        return done.value


def apply_effect(expectations: MutableMapping[str, Expectation],
                 memory: MutableMapping[str, float], effect: Effect, now: float) -> None:
    """What an effect does to a controller's in-memory state."""
    if isinstance(effect, Expect):
        expectations[effect.key] = Expectation.expect(adds=effect.adds,
                                                      deletes=effect.deletes, now=now)
    elif isinstance(effect, Remember):
        memory[effect.key] = effect.value
    else:
        record = expectations.get(effect.key)
        if record is not None:
            expectations[effect.key] = record.observe(effect.what, effect.pod)


# ----------------------------------------------------------------------- follow-ups


def unseen(command: Create | Delete, outcome: Outcome) -> bool:
    """Did ``command`` end so that no watch event will ever show it? Then its expectation
    is lowered by the executor: a creation that failed, a deletion that failed for any
    reason but "already gone"."""
    if isinstance(command, Create):
        return outcome != "ok"
    return outcome not in ("ok", "not_found")


def skipped_observations(command: Create) -> list[Observation]:
    """A creation slow start never sent: off the expectations, and no event."""
    return [Observation(command.expectation, "create")] if command.expectation else []


def follow_ups(
    command: Command, outcome: Outcome, name: str = ""
) -> tuple[list[Record], list[Observation]]:
    """Events and expectation observations that follow ``command`` ending in ``outcome``.

    ``name`` is the created object's name (generated by the API server).
    """
    records: list[Record] = []
    observed: list[Observation] = []
    if isinstance(command, Create):
        kind = type(command.obj).__name__.lower()
        if unseen(command, outcome) and command.expectation:
            observed.append(Observation(command.expectation, "create"))
        if command.owner is not None:
            records.append(
                Record(command.owner, "SuccessfulCreate", f"Created {kind}: {name}")
                if outcome == "ok" else
                Record(command.owner, "FailedCreate", f"Error creating: {outcome}", "Warning"))
    elif isinstance(command, Bind):
        pod = ObjectReference(kind="Pod", api_version="v1", namespace=command.namespace,
                              name=command.name, uid=command.uid)
        if outcome == "ok":
            records.append(Record(pod, "Scheduled", f"Successfully assigned "
                                  f"{command.namespace}/{command.name} to {command.node}"))
        else:  # Kubernetes' handleBindingCycleError: the scheduler forgets and retries
            records.append(Record(pod, "FailedScheduling", f"binding rejected: pod "
                                  f"{command.namespace}/{command.name} to {command.node}: "
                                  f"{outcome}", "Warning"))
    elif isinstance(command, Delete):
        kind = command.kind.lower()
        if unseen(command, outcome) and command.expectation:
            observed.append(Observation(command.expectation, "delete",
                                        f"{command.namespace}/{command.name}"))
        if command.owner is not None:
            if outcome in ("ok", "not_found"):
                records.append(Record(command.owner, "SuccessfulDelete",
                                      f"Deleted {kind}: {command.name}"))
            else:
                records.append(Record(command.owner, "FailedDelete",
                                      f"Error deleting {kind} {command.name}: {outcome}",
                                      "Warning"))
    return records, observed


__all__ = ["Call", "Effect", "Execution", "Reply", "Step", "apply_effect", "call_of",
           "drive", "execute", "follow_ups", "read_reply", "skipped_observations",
           "slow_start", "unseen"]
