"""The engine's command executor: a reconciler's commands, applied through the API server.

Where it sits: engine side of ``kstate/control``. A controller worker calls
``reconcile(view, now)`` and hands the commands to ``Executor.run``; the model checker
applies the same commands to abstract state instead (``kstate.verify.system``). What
follows a success or a failure — events, lowered expectations — is decided once, in
``commands.follow_ups``, for both.

Every write carries its precondition (the object's resourceVersion, or its uid for
deletes), so a stale cache loses the race cleanly: a 409 becomes ``conflict`` and the
worker requeues the key to sync again from fresher data. Creations go out in Kubernetes'
slow-start batches (1, 2, 4, ...): the first batch with a failure stops the rest, and the
skipped creations are taken off the expectations since no watch event will ever show
them.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
from collections.abc import Sequence
from typing import cast

import attrs

from kstate.api.client import ApiClient
from kstate.api.meta import KubeObject, ObjectMeta, ObjectReference, Preconditions
from kstate.api.objects import Event, EventSource
from kstate.api.registry import REGISTRY
from kstate.clock import Clock, rfc3339
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
    follow_ups,
)
from kstate.control.expectations import Expectation
from kstate.control.expectations import apply as apply_observations
from kstate.errors import (
    Conflict,
    IllegalTransition,
    InvalidObject,
    KeyExists,
    KstateError,
    NotFound,
)

log = logging.getLogger(__name__)


def kind_class(kind: str) -> type[KubeObject]:
    """The object class of a kind name (``"Pod"`` -> ``Pod``)."""
    return cast(type[KubeObject], REGISTRY.for_kind(kind).cls)


def outcome_of(error: BaseException) -> Outcome:
    """The command outcome an API error means."""
    if isinstance(error, Conflict):
        return "conflict"
    if isinstance(error, NotFound):
        return "not_found"
    if isinstance(error, KeyExists):
        return "exists"
    if isinstance(error, InvalidObject | IllegalTransition) or (
            isinstance(error, KstateError) and error.code in (400, 403, 422)):
        return "invalid"
    return "unavailable"


@attrs.frozen
class Result:
    """How a batch of commands went; ``retry`` asks the worker to requeue with back-off."""

    outcomes: tuple[Outcome, ...]

    @property
    def retry(self) -> bool:
        return any(o in ("conflict", "unavailable") for o in self.outcomes)


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


class Executor:
    """Applies commands for one component (its name goes on the events it records)."""

    def __init__(self, client: ApiClient, clock: Clock, component: str) -> None:
        self.client = client
        self.clock = clock
        self.component = component
        # Event name suffixes: unique per event like Kubernetes' timestamped ones, from
        # a PRNG seeded once (a system call per event showed in the scheduler's profile).
        self._event_ids = random.Random(os.urandom(16))

    async def run(
        self,
        commands: Sequence[Command],
        expectations: dict[str, Expectation] | None = None,
        memory: dict[str, float] | None = None,
    ) -> Result:
        expectations = expectations if expectations is not None else {}
        memory = memory if memory is not None else {}
        outcomes: list[Outcome] = []
        i = 0
        while i < len(commands):
            cmd = commands[i]
            if isinstance(cmd, Create):
                creates = [cmd]
                while i + len(creates) < len(commands) and \
                        isinstance(commands[i + len(creates)], Create):
                    creates.append(commands[i + len(creates)])  # type: ignore[arg-type]
                outcomes += await self._create_batches(creates, expectations)
                i += len(creates)
                continue
            if isinstance(cmd, Expect):
                expectations[cmd.key] = Expectation.expect(
                    adds=cmd.adds, deletes=cmd.deletes, now=self.clock.now())
            elif isinstance(cmd, Remember):
                memory[cmd.key] = cmd.value
            elif isinstance(cmd, Record):
                await self.record(cmd)
            else:
                outcome = await self._call(cmd)
                outcomes.append(outcome)
                await self._follow(cmd, outcome, "", expectations)
            i += 1
        return Result(tuple(outcomes))

    # ------------------------------------------------------------------ creates

    async def _create_batches(self, creates: list[Create],
                              expectations: dict[str, Expectation]) -> list[Outcome]:
        outcomes: list[Outcome] = []
        start = 0
        for size in slow_start(len(creates)):
            batch = creates[start:start + size]
            start += size
            results = await asyncio.gather(*(self._create(c) for c in batch))
            for cmd, (outcome, name) in zip(batch, results, strict=True):
                outcomes.append(outcome)
                await self._follow(cmd, outcome, name, expectations)
            if any(o != "ok" for o, _ in results):
                for skipped in creates[start:]:  # never sent: no watch event will come
                    outcomes.append("unavailable")
                    await self._follow(skipped, "unavailable", "", expectations)
                break
        return outcomes

    async def _create(self, cmd: Create) -> tuple[Outcome, str]:
        try:
            created = await self.client.create(cmd.obj)
        except KstateError as err:
            log.info("%s: create %s failed: %s", self.component,
                     cmd.obj.metadata.generate_name or cmd.obj.metadata.name, err)
            return outcome_of(err), ""
        return "ok", created.metadata.name

    # ------------------------------------------------------------------ others

    async def _call(self, cmd: Command) -> Outcome:
        try:
            await self._send(cmd)
        except (KstateError, OSError) as err:
            outcome = outcome_of(err)
            log.info("%s: %s -> %s (%s)", self.component, type(cmd).__name__, outcome, err)
            return outcome
        return "ok"

    async def _send(self, cmd: Command) -> None:
        client = self.client
        if isinstance(cmd, Update):
            if cmd.subresource == "status":
                await client.update_status(cmd.obj)
            else:
                await client.update(cmd.obj)
        elif isinstance(cmd, Delete):
            await client.delete(
                kind_class(cmd.kind), cmd.name, cmd.namespace,
                grace_period_seconds=cmd.grace_seconds,
                propagation_policy=cmd.propagation or "",
                preconditions=Preconditions(uid=cmd.uid, resource_version=cmd.resource_version)
                if cmd.uid or cmd.resource_version else None)
        elif isinstance(cmd, Bind):
            await client.bind(cmd.name, cmd.node, cmd.namespace, uid=cmd.uid)
        elif isinstance(cmd, Evict):
            await client.evict(cmd.name, cmd.namespace)
        elif isinstance(cmd, DeleteIfGone):
            if await self._exists(cmd.gone):
                return
            dep = cmd.dependent
            await client.delete(
                kind_class(dep.kind), dep.name, dep.namespace,
                grace_period_seconds=cmd.grace_seconds,
                propagation_policy=cmd.propagation,
                preconditions=Preconditions(uid=dep.uid) if dep.uid else None)
        else:
            raise TypeError(f"unknown command {cmd!r}")

    async def _exists(self, ref: ObjectReference) -> bool:
        """The live read behind ``DeleteIfGone`` (not the cache: it may lag)."""
        try:
            obj = await self.client.get(kind_class(ref.kind), ref.name, ref.namespace)
        except NotFound:
            return False
        return not ref.uid or obj.metadata.uid == ref.uid

    async def _follow(self, cmd: Command, outcome: Outcome, name: str,
                      expectations: dict[str, Expectation]) -> None:
        records, observed = follow_ups(cmd, outcome, name)
        apply_observations(expectations, observed)
        for record in records:
            await self.record(record)

    async def record(self, rec: Record) -> None:
        """Write an Event (best effort: an event that cannot be written is only logged)."""
        ref = rec.involved
        now = rfc3339(self.clock.now())
        event = Event(
            metadata=ObjectMeta(name=f"{ref.name}.{self._event_ids.getrandbits(64):016x}",
                                namespace=ref.namespace or "default"),
            involved_object=ref, reason=rec.reason, message=rec.message, type=rec.type,
            source=EventSource(component=self.component), first_timestamp=now,
            last_timestamp=now, count=1, reporting_component=self.component,
        )
        try:
            await self.client.create(event)
        except (KstateError, OSError) as err:
            log.debug("%s: event %s not recorded: %s", self.component, rec.reason, err)


__all__ = ["Executor", "Result", "outcome_of", "slow_start"]
