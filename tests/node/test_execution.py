"""One round's plan (``node.execution``), driven without I/O: order, stop groups, what a
lost status write does, and when memory is stored."""

from __future__ import annotations

from kstate.api.meta import ObjectMeta
from kstate.api.objects import Pod
from kstate.control.execution import drive
from kstate.node.execution import (
    NodeStep,
    OnRuntime,
    RoundEnd,
    RuntimeReply,
    StartError,
    Store,
    ToApi,
    WriteOutcome,
    execute,
)
from kstate.node.podsync import (
    BackOff,
    NodeCommand,
    RememberBackOff,
    RequeueAt,
    StartContainer,
    StopContainer,
    WriteStatus,
)
from kstate.runtime.base import ContainerSpec

POD = Pod(metadata=ObjectMeta(name="web-1", namespace="default", uid="u1",
                              resource_version="7"))


def run(commands: list[NodeCommand], write: WriteOutcome = "ok", start_error: str = ""
        ) -> tuple[list[NodeStep], RoundEnd]:
    steps: list[NodeStep] = []

    def perform(step: NodeStep) -> tuple[RuntimeReply, ...] | WriteOutcome | None:
        steps.append(step)
        if isinstance(step, OnRuntime):
            return tuple(RuntimeReply(start_error=start_error
                                      if isinstance(c, StartContainer) else None)
                         for c in step.commands)
        return write if isinstance(step, ToApi) else None

    return steps, drive(execute(commands), perform)


def test_a_lost_status_write_ends_the_round_rereads_and_stores_no_memory() -> None:
    memo = RememberBackOff("app", BackOff(1, 0.0))
    steps, end = run([memo, WriteStatus(POD, "container_exited")], write="lost")
    assert steps == [ToApi(WriteStatus(POD, "container_exited"), "7")]
    assert end == RoundEnd("again", reread=WriteStatus(POD, "container_exited"))


def test_memory_is_stored_once_the_rounds_write_landed() -> None:
    memo = RememberBackOff("app", BackOff(1, 0.0))
    steps, end = run([memo, WriteStatus(POD, "container_exited")])
    assert steps == [ToApi(WriteStatus(POD, "container_exited"), "7"), Store((memo,))]
    assert end == RoundEnd("again")


def test_a_pods_stops_go_out_together() -> None:
    steps, _ = run([StopContainer("a", 30), StopContainer("b", 30)])
    assert steps == [OnRuntime((StopContainer("a", 30), StopContainer("b", 30)))]


def test_a_start_error_is_remembered_at_once() -> None:
    start = StartContainer("sb", ContainerSpec(name="app", image="missing:1"))
    steps, _ = run([start], start_error="ErrImagePull")
    assert steps == [OnRuntime((start,)), Store((StartError("app", "ErrImagePull"),))]


def test_a_back_off_round_idles_until_its_deadline() -> None:
    steps, end = run([RequeueAt(42.0)])
    assert steps == [] and end == RoundEnd("idle", 42.0)
