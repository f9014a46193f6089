"""How one round of a pod worker is carried out: the one plan both node executors follow.

Where it sits: between ``podsync.sync`` (a round's ``NodeCommand``s) and the I/O.
``execute(commands)`` is a pure generator. It yields what to do next — ``OnRuntime``
(runtime commands, sent together), ``ToApi`` (a status write or the final delete) or
``Store`` (changes to the pod's memory) — and is sent back how it went; it returns how
the round ends (``RoundEnd``). The engine's node agent (``agent.py``) drives it against
its runtime adapter and the API server; the model checker (``kstate.verify.system``)
against a ``SimulatedNode`` and its abstract API. Neither decides anything about a round.

The decisions, each settled on Kubernetes' kubelet:

* **Order.** The round's commands run in the order ``sync`` gave. Consecutive
  ``StopContainer``s go out together: the kubelet's ``killPodWithSyncResult`` stops a
  pod's containers in parallel.
* **A lost status write ends the round.** The write is compare-and-swap on the pod's
  resourceVersion; a 409 (someone wrote since the worker read), a refused move or a pod
  that is gone means the round was decided on stale data. Nothing after it runs, the
  pod is re-read (``RoundEnd.reread``) and the round runs again from fresher data — the
  kubelet's status manager likewise re-reads the pod on a conflict and syncs again.
* **Memory is stored with the round's write.** ``RememberBackOff`` and
  ``ClearStartErrors`` are the memory of a lifecycle move, and the move is the status
  write: they are stored when the round completed, never for a round that was lost
  or failed. ``sync`` is level-triggered, so a lost round is decided again — storing
  its memory anyway would count one container exit twice. (The kubelet calls
  ``backOff.Next`` once per restart it decides in ``doBackOff``; here a round that is
  decided again is the same decision, so it must count once.)
* **Start errors are facts about the runtime.** A container that could not be started
  (image missing, create failed) is remembered at once, whatever happens next in the
  round: the runtime is as it is, and the next round must see why. A start that
  succeeds clears its error.
* **RequeueAt.** The round ends idle until then (``RoundEnd.requeue_at``); the engine
  sleeps on its clock, the model lets time jump to the deadline.
* **A failure of the runtime or of the API server** (not a lost race) ends the round
  for a retry with back-off; its memory is not stored.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator, MutableMapping, Sequence
from typing import Literal

import attrs

from kstate.node.podsync import (
    BackOff,
    ClearStartErrors,
    EnsureSandbox,
    FinishDelete,
    NodeCommand,
    RememberBackOff,
    RemoveSandbox,
    RequeueAt,
    StartContainer,
    StopContainer,
    WriteStatus,
)

RuntimeCommand = EnsureSandbox | StartContainer | StopContainer | RemoveSandbox
WriteOutcome = Literal["ok", "lost", "unavailable"]


@attrs.frozen
class StartError:
    """Remember why container ``name`` could not start (``""``: it did; forget)."""

    name: str
    reason: str


MemoryChange = RememberBackOff | ClearStartErrors | StartError


@attrs.frozen
class OnRuntime:
    """Run these runtime commands (together); reply one ``RuntimeReply`` each."""

    commands: tuple[RuntimeCommand, ...]


@attrs.frozen
class ToApi:
    """Send this write; reply its ``WriteOutcome``. ``resource_version``: the status
    write's compare-and-swap precondition (``""``: none); the final delete is guarded by
    the pod's uid."""

    command: WriteStatus | FinishDelete
    resource_version: str = ""


def write_of(command: WriteStatus | FinishDelete) -> ToApi:
    """The API request a write command is sent as — the one place its precondition is
    decided: a status is written only over the version the round read, so a round
    decided on a stale pod loses instead of overwriting a newer status."""
    if isinstance(command, WriteStatus):
        return ToApi(command, command.pod.metadata.resource_version)
    return ToApi(command)


@attrs.frozen
class Store:
    """Apply these changes to the pod's memory, in order (no reply)."""

    changes: tuple[MemoryChange, ...]


NodeStep = OnRuntime | ToApi | Store


@attrs.frozen
class RuntimeReply:
    """How a runtime command went: ``failed`` when the runtime could not do it;
    ``start_error`` for a ``StartContainer`` — the reason it did not start, ``""`` when
    it did, ``None`` when nothing is known (the runtime failed before trying)."""

    failed: bool = False
    start_error: str | None = None


@attrs.frozen
class RoundEnd:
    """``again``: run the next round now; ``idle``: nothing to do before ``requeue_at``
    (or an event); ``retry``: a failure, retry with back-off. ``reread``: the pod whose
    status write was lost — read it again before the next round."""

    next: Literal["again", "idle", "retry"]
    requeue_at: float | None = None
    reread: WriteStatus | None = None


NodeExecution = Generator[NodeStep, "tuple[RuntimeReply, ...] | WriteOutcome | None", RoundEnd]


def units(commands: Sequence[NodeCommand]) -> Iterator[tuple[NodeCommand, ...]]:
    """The round's commands in the units they are carried out, in order: each run of
    consecutive ``StopContainer``s together, every other command on its own."""
    stops: list[NodeCommand] = []
    for cmd in commands:
        if isinstance(cmd, StopContainer):
            stops.append(cmd)
            continue
        if stops:
            yield tuple(stops)
            stops = []
        yield (cmd,)
    if stops:
        yield tuple(stops)


def execute(commands: Sequence[NodeCommand]) -> NodeExecution:
    """The plan for one round's ``commands`` (see the module docstring)."""
    memory: list[MemoryChange] = []
    requeue_at: float | None = None
    for unit in units(commands):
        cmd = unit[0]
        if isinstance(cmd, StopContainer):
            replies = yield OnRuntime(unit)  # type: ignore[arg-type]
            assert isinstance(replies, tuple)
            if any(r.failed for r in replies):
                return RoundEnd("retry")
        elif isinstance(cmd, EnsureSandbox | StartContainer | RemoveSandbox):
            replies = yield OnRuntime((cmd,))
            assert isinstance(replies, tuple)
            (reply,) = replies
            if isinstance(cmd, StartContainer) and reply.start_error is not None:
                yield Store((StartError(cmd.spec.name, reply.start_error),))
            if reply.failed:
                return RoundEnd("retry")
        elif isinstance(cmd, WriteStatus | FinishDelete):
            outcome = yield write_of(cmd)
            if outcome == "unavailable":
                return RoundEnd("retry")
            if outcome == "lost" and isinstance(cmd, WriteStatus):
                return RoundEnd("again", reread=cmd)
        elif isinstance(cmd, RememberBackOff | ClearStartErrors):
            memory.append(cmd)
        elif isinstance(cmd, RequeueAt):
            requeue_at = cmd.when if requeue_at is None else min(requeue_at, cmd.when)
        else:
            raise TypeError(f"unknown node command {cmd!r}")
    if memory:
        yield Store(tuple(memory))
    return completed(requeue_at)


def completed(requeue_at: float | None) -> RoundEnd:
    """How a round that ran to its end ends: idle until its earliest ``RequeueAt``, or
    on to the next round now."""
    return RoundEnd("again" if requeue_at is None else "idle", requeue_at)


def remember(backoff: MutableMapping[str, BackOff], start_errors: MutableMapping[str, str],
             change: MemoryChange) -> None:
    """What a memory change does to one pod's back-off memory and start errors."""
    if isinstance(change, RememberBackOff):
        if change.backoff is None:
            backoff.pop(change.key, None)
        else:
            backoff[change.key] = change.backoff
    elif isinstance(change, ClearStartErrors):
        start_errors.clear()
    elif change.reason:
        start_errors[change.name] = change.reason
    else:
        start_errors.pop(change.name, None)


__all__ = ["MemoryChange", "NodeExecution", "NodeStep", "OnRuntime", "RoundEnd",
           "RuntimeCommand", "RuntimeReply", "StartError", "Store", "ToApi", "WriteOutcome",
           "completed", "execute", "remember", "units", "write_of"]
