"""The controller commands' plan (``control.execution``), driven without I/O: what is
sent, in which batches, with which preconditions, and what follows each reply."""

from __future__ import annotations

import asyncio

import pytest

from kstate.api.codec import from_dict
from kstate.api.meta import ObjectMeta, ObjectReference, Preconditions
from kstate.api.objects import Pod
from kstate.control.commands import Create, DeleteIfGone, Evict, Expect, Outcome, Record
from kstate.control.execution import Call, Reply, Step, apply_effect, call_of, drive, execute
from kstate.control.executor import Executor
from kstate.control.expectations import Expectation
from kstate.errors import NotFound
from tests.control.harness import cluster

RC = ObjectReference(kind="ReplicationController", namespace="default", name="web", uid="rc1")


def creates(n: int) -> list[Create]:
    pod = Pod(metadata=ObjectMeta(generate_name="web-", namespace="default"))
    return [Create(pod, owner=RC, expectation="default/web") for _ in range(n)]


class Recorder:
    """Replies from a script, one outcome per call; keeps every step and the state."""

    def __init__(self, outcomes: list[Outcome]) -> None:
        self.outcomes = outcomes
        self.steps: list[Step] = []
        self.expectations: dict[str, Expectation] = {}
        self.memory: dict[str, float] = {}

    def __call__(self, step: Step) -> tuple[Reply, ...]:
        self.steps.append(step)
        for effect in step.effects:
            apply_effect(self.expectations, self.memory, effect, 0.0)
        return tuple(Reply(self.outcomes.pop(0), f"web-{len(self.outcomes)}")
                     for _ in step.calls)

    @property
    def events(self) -> list[Record]:
        return [e for s in self.steps for e in s.events]


def test_creations_go_out_in_slow_start_batches_and_stop_at_a_failed_one() -> None:
    recorder = Recorder(["ok", "ok", "ok", "ok", "conflict", "ok", "ok"])
    outcomes = drive(execute([Expect("default/web", adds=8), *creates(8)]), recorder)
    assert [len(s.calls) for s in recorder.steps if s.calls] == [1, 2, 4]
    # The third batch had a failure: the last creation of the run is never sent.
    assert outcomes == ("ok", "ok", "ok", "ok", "conflict", "ok", "ok", "unavailable")
    # The failed and the skipped one are off the expectations; the 6 created are left
    # for the watch to show.
    assert recorder.expectations["default/web"].adds == 6
    reasons = [e.reason for e in recorder.events]
    # Skipped creations get no event (they were never tried).
    assert reasons.count("SuccessfulCreate") == 6 and reasons.count("FailedCreate") == 1


def test_the_expectation_is_recorded_before_the_first_creation_is_sent() -> None:
    recorder = Recorder(["ok"])
    drive(execute([Expect("default/web", adds=1), *creates(1)]), recorder)
    first = recorder.steps[0]
    assert first.effects == (Expect("default/web", adds=1),) and len(first.calls) == 1


def test_an_eviction_carries_the_pods_uid_as_its_precondition() -> None:
    call = call_of(Evict("default", "web-1", "uid-1"))
    assert call == Call("evict", "Pod", "default", "web-1",
                        preconditions=Preconditions(uid="uid-1"))


def test_delete_if_gone_reads_live_first_and_deletes_only_a_gone_owners_dependent() -> None:
    dependent = ObjectReference(kind="Pod", namespace="default", name="web-1", uid="p1")
    command = DeleteIfGone(dependent, RC)
    still_there = Recorder(["ok"])
    assert drive(execute([command]), still_there) == ("exists",)
    assert [c.verb for s in still_there.steps for c in s.calls] == ["get"]

    gone = Recorder(["not_found", "ok"])
    assert drive(execute([command]), gone) == ("ok",)
    read, delete = (c for s in gone.steps for c in s.calls)
    assert read.preconditions == Preconditions(uid="rc1")
    assert (delete.verb, delete.name, delete.preconditions) == (
        "delete", "web-1", Preconditions(uid="p1"))


def test_the_engine_refuses_an_eviction_from_a_stale_cache() -> None:
    """Through the engine's Executor and API server: an eviction names the pod it saw
    (its uid); a new pod of the same name is not evicted in its place."""
    async def go() -> None:
        async with cluster() as (_, client, clock):
            created = await client.create(from_dict(Pod, {
                "metadata": {"name": "web-1", "namespace": "default"},
                "spec": {"containers": [{"name": "app", "image": "img:1"}]}}))
            executor = Executor(client, clock, "test")
            stale = await executor.run([Evict("default", "web-1", "uid-of-an-older-web-1")])
            assert stale.outcomes == ("conflict",)
            assert not (await client.get(Pod, "web-1", "default")).metadata.deletion_timestamp
            fresh = await executor.run([Evict("default", "web-1", created.metadata.uid)])
            assert fresh.outcomes == ("ok",)
            with pytest.raises(NotFound):  # never scheduled: deleted at once
                await client.get(Pod, "web-1", "default")

    asyncio.run(go())
