"""The engine's command executor: the I/O behind ``execution.execute``'s plan.

Where it sits: engine side of ``kstate/control``. A controller worker calls
``reconcile(view, now)`` and hands the commands to ``Executor.run``. What is written, in
which order (creations in slow-start batches), what a failure skips, how expectations and
memory change and which events follow is planned once, in ``execution.py``, and the
model checker (``kstate.verify.system``) follows the same plan against its abstract API.
This module only sends each step's calls to the API server — concurrently, as
Kubernetes' slowStartBatch does — turns errors into outcomes (a 409 is ``conflict``: the
worker requeues the key to sync again from fresher data), and writes the events.
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
from kstate.api.meta import KubeObject, ObjectMeta
from kstate.api.objects import Event, EventSource, Namespace
from kstate.api.registry import REGISTRY
from kstate.clock import Clock, rfc3339
from kstate.control.commands import Command, Outcome, Record
from kstate.control.execution import Call, Reply, apply_effect, execute, read_reply
from kstate.control.expectations import Expectation
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
        """Follow ``execution.execute``'s plan: each step's effects on the controller's
        in-memory state (the dicts the caller keeps; its watch handlers lower the same
        expectations meanwhile), its events, then its calls, sent concurrently."""
        expectations = expectations if expectations is not None else {}
        memory = memory if memory is not None else {}
        plan = execute(commands)
        try:
            step = next(plan)
            while True:
                for effect in step.effects:
                    apply_effect(expectations, memory, effect, self.clock.now())
                for event in step.events:
                    await self.record(event)
                replies = await asyncio.gather(*(self._send(call) for call in step.calls))
                step = plan.send(tuple(replies))
        except StopIteration as done:
            return Result(done.value)

    async def _send(self, call: Call) -> Reply:
        try:
            return await self._request(call)
        except (KstateError, OSError) as err:
            outcome = outcome_of(err)
            log.info("%s: %s %s/%s -> %s (%s)", self.component, call.verb, call.kind,
                     call.name or (call.obj.metadata.generate_name if call.obj else ""),
                     outcome, err)
            return Reply(outcome)

    async def _request(self, call: Call) -> Reply:
        client = self.client
        if call.verb == "create":
            assert call.obj is not None
            created = await client.create(call.obj)
            return Reply("ok", created.metadata.name)
        if call.verb == "update":
            assert call.obj is not None
            if call.subresource == "status":
                await client.update_status(call.obj)
            elif call.subresource == "finalize":
                assert isinstance(call.obj, Namespace)
                await client.finalize(call.obj)
            else:
                await client.update(call.obj)
        elif call.verb == "delete":
            await client.delete(kind_class(call.kind), call.name, call.namespace,
                                grace_period_seconds=call.grace_seconds,
                                propagation_policy=call.propagation or "",
                                preconditions=call.preconditions)
        elif call.verb == "bind":
            uid = call.preconditions.uid if call.preconditions is not None else ""
            await client.bind(call.name, call.node, call.namespace, uid=uid)
        elif call.verb == "evict":
            await client.evict(call.name, call.namespace, preconditions=call.preconditions)
        elif call.verb == "get":  # a live read, not the cache: it may lag
            try:
                obj = await client.get(kind_class(call.kind), call.name, call.namespace)
            except NotFound:
                return read_reply(False)
            uid = call.preconditions.uid if call.preconditions is not None else ""
            return read_reply(not uid or obj.metadata.uid == uid)
        else:
            raise TypeError(f"unknown call {call!r}")
        return Reply("ok")

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


__all__ = ["Executor", "Result", "kind_class", "outcome_of"]
