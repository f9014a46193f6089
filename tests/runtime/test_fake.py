"""What only the fake runtime offers: scripted time, crash schedules, faults, scale.

The shared contract is in ``test_contract.py``. These tests pin the knobs a simulation or
an agent test turns: start delays, exits and OOMs at exact clock times, programs per
attempt (crash loops), fault hooks, scripted exec and logs, seeded determinism, and that
thousands of containers cost no tasks.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from kstate.clock import FakeClock
from kstate.errors import ImageNotPresent, RuntimeAdapterError, RuntimeUnreachable
from kstate.runtime import open_runtime
from kstate.runtime.base import (
    BASE_IMAGE,
    POD_UID,
    ContainerSpec,
    ContainerState,
    EventKind,
    ExecResult,
    PullPolicy,
    Reason,
    SandboxSpec,
    SandboxState,
)
from kstate.runtime.fake import FakeRuntime, Program, default_exec
from tests.runtime.conftest import Harness


def spec(name: str = "app", attempt: int = 0, **kw: object) -> ContainerSpec:
    return ContainerSpec(name=name, image=BASE_IMAGE, attempt=attempt, **kw)  # type: ignore[arg-type]


def test_crash_schedule_fires_at_the_exact_clock_time(fake_h: Harness) -> None:
    h = fake_h

    async def scenario() -> None:
        sb = await h.sandbox()
        cid = await h.container(sb, (), Program.exits(1, after=5))
        assert (await h.rt.inspect_container(cid)).state is ContainerState.RUNNING
        started = (await h.rt.inspect_container(cid)).started_at
        status = await h.state(cid, ContainerState.EXITED)
        assert status.finished_at == started + 5  # type: ignore[operator]
        assert (status.exit_code, status.reason) == (1, Reason.ERROR)

    h.run(scenario())


def test_oom_schedule_and_earliest_plan_wins(fake_h: Harness) -> None:
    h = fake_h

    async def scenario() -> None:
        sb = await h.sandbox()
        cid = await h.container(sb, (), Program(exit_code=0, run_for=10, oom_after=3))
        status = await h.state(cid, ContainerState.EXITED)
        assert status.reason is Reason.OOM_KILLED
        assert status.finished_at - status.started_at == 3  # type: ignore[operator]

    h.run(scenario())


def test_start_delay_holds_start_until_the_clock_moves(fake_h: Harness) -> None:
    h = fake_h
    h.fake.start_delay = 2.0

    async def scenario() -> None:
        sb = await h.sandbox()
        cid = await h.container(sb, (), start=False)
        began = h.clock.now()
        await h.wait(h.rt.start_container(cid), what="start")
        assert h.clock.now() - began == 2.0
        assert (await h.rt.inspect_container(cid)).started_at == began + 2.0

    h.run(scenario())


def test_programs_per_attempt_make_a_crash_loop(fake_h: Harness) -> None:
    h = fake_h
    h.fake.program_for = lambda s: Program.exits(1, after=1) if s.attempt < 2 else None

    async def scenario() -> None:
        sb = await h.sandbox()
        codes = []
        for attempt in range(3):
            cid = await h.rt.create_container(sb.id, spec(attempt=attempt))
            await h.rt.start_container(cid)
            if attempt < 2:
                codes.append((await h.state(cid, ContainerState.EXITED)).exit_code)
            else:
                await h.until(lambda: h.fake_clock.next_deadline() is None, what="quiet")
                assert (await h.rt.inspect_container(cid)).state is ContainerState.RUNNING
        assert codes == [1, 1]

    h.run(scenario())


def test_fault_hooks(fake_h: Harness) -> None:
    h = fake_h

    async def scenario() -> None:
        sb = await h.sandbox()
        a = await h.container(sb, ())
        b = await h.container(sb, ())
        async with h.rt.events({POD_UID: sb.pod_uid}) as events:
            h.fake.crash(a, 0)
            assert (await h.rt.inspect_container(a)).reason is Reason.COMPLETED
            h.fake.oom(b)
            assert (await h.rt.inspect_container(b)).reason is Reason.OOM_KILLED
            h.fake.kill_sandbox(sb.id)
            after = await h.rt.inspect_sandbox(sb.id)
            assert (after.state, after.ip) == (SandboxState.NOTREADY, "")
            kinds = [(await h.next_event(events)).kind for _ in range(4)]
            assert kinds == [EventKind.DIED, EventKind.OOM, EventKind.DIED, EventKind.DIED]

            h.fake.set_reachable(False)
            with pytest.raises(RuntimeUnreachable):
                await h.next_event(events)
            for call in (h.rt.version(), h.rt.list_containers(), h.rt.inspect_container(a)):
                with pytest.raises(RuntimeUnreachable):
                    await call
            h.fake.set_reachable(True)
            assert len(await h.rt.list_containers({POD_UID: sb.pod_uid})) == 2

    h.run(scenario())


def test_scripted_exec_and_logs(fake_h: Harness) -> None:
    h = fake_h

    async def slow(cid: str, command: tuple[str, ...]) -> ExecResult:
        await h.clock.sleep(3)
        return ExecResult(0, b"late\n")

    async def scenario() -> None:
        sb = await h.sandbox()
        probe = Program(exec=lambda cid, cmd: ExecResult(0 if cmd == ("ready",) else 1, b""))
        cid = await h.container(sb, (), probe)
        assert (await h.rt.exec(cid, ["ready"], 1)).exit_code == 0
        assert (await h.rt.exec(cid, ["other"], 1)).exit_code == 1
        h.fake.exec_handler = slow
        other = await h.container(sb, ())
        assert await h.wait(h.rt.exec(other, ["x"], 5)) == ExecResult(0, b"late\n")

        follow = asyncio.ensure_future(h.collect(h.rt.logs(other, follow=True)))
        await asyncio.sleep(0)
        h.fake.write_log(other, b"par")
        h.fake.write_log(other, b"tial\nnext\n")
        h.fake.crash(other, 0)
        assert await follow == [b"partial\n", b"next\n"]

    h.run(scenario())


def test_default_exec() -> None:
    assert default_exec("c", ("echo", "a", "b")) == ExecResult(0, b"a b\n")
    assert default_exec("c", ("sh", "-c", "exit 4")).exit_code == 4
    assert default_exec("c", ("true",)).exit_code == 0
    assert default_exec("c", ("false",)).exit_code == 1
    assert default_exec("c", ("nope",)).exit_code == 126


def test_registry_pull(fake_h: Harness) -> None:
    h = fake_h
    h.fake.registry.add("example/app:2")

    async def scenario() -> None:
        pulled = await h.rt.ensure_image("example/app:2", PullPolicy.IF_NOT_PRESENT)
        assert pulled.pulled and "Successfully pulled" in pulled.message
        assert await h.rt.image_present("example/app:2")
        always = await h.rt.ensure_image("example/app:2", PullPolicy.ALWAYS)
        assert always.pulled
        h.fake.remove_image("example/app:2")
        with pytest.raises(ImageNotPresent):
            await h.rt.ensure_image("example/app:2", PullPolicy.NEVER)
        assert await h.rt.image_present("busybox") is False
        h.fake.add_image("busybox")
        assert await h.rt.image_present("busybox:latest")

    h.run(scenario())


def test_same_seed_same_run() -> None:
    async def run(seed: int) -> tuple[list[str], list[float]]:
        clock = FakeClock()
        rt = FakeRuntime(clock, seed=seed, default_program=Program.exits(1, after=(1.0, 9.0)))
        sb = await rt.create_sandbox(SandboxSpec("u", "ns", "p", "n"))
        ids, ends = [sb.id], []
        for i in range(5):
            cid = await rt.create_container(sb.id, spec(f"c{i}"))
            await rt.start_container(cid)
            ids.append(cid)
        await asyncio.sleep(0)  # timers register with the clock once their task first runs
        while (nxt := clock.next_deadline()) is not None:
            clock.advance(nxt - clock.now())
            for _ in range(5):
                await asyncio.sleep(0)
        for cid in ids[1:]:
            status = await rt.inspect_container(cid)
            assert status.state is ContainerState.EXITED
            ends.append(status.finished_at - status.started_at)  # type: ignore[operator]
        await rt.close()
        return ids, ends

    first, again, other = (asyncio.run(run(s)) for s in (1, 1, 2))
    assert first == again
    assert first != other
    assert all(1.0 <= e <= 9.0 for e in first[1]) and len(set(first[1])) == 5


def test_ip_allocation_is_unique_reused_and_bounded() -> None:
    async def scenario() -> None:
        rt = FakeRuntime(FakeClock(), pod_cidr="10.9.0.0/29")  # 6 hosts, one is the gateway
        made = [await rt.create_sandbox(SandboxSpec(f"u{i}", "ns", f"p{i}", "n"))
                for i in range(5)]
        ips = {s.ip for s in made}
        assert len(ips) == 5 and "10.9.0.1" not in ips
        with pytest.raises(RuntimeAdapterError, match="full"):
            await rt.create_sandbox(SandboxSpec("u9", "ns", "p9", "n"))
        await rt.remove_sandbox(made[0].id)
        again = await rt.create_sandbox(SandboxSpec("u9", "ns", "p9", "n", attempt=1))
        assert again.ip == made[0].ip

    asyncio.run(scenario())


def test_thousands_of_pods_cost_no_tasks() -> None:
    """kwok-style: 200 simulated nodes x 50 pods on one loop, no task per running pod."""

    async def scenario() -> float:
        clock = FakeClock()
        runtimes = [open_runtime("fake", clock=clock, seed=n) for n in range(200)]
        began = time.perf_counter()
        baseline = len(asyncio.all_tasks())
        for n, rt in enumerate(runtimes):
            for p in range(50):
                sb = await rt.create_sandbox(SandboxSpec(f"{n}-{p}", "ns", f"p{p}", f"n{n}"))
                cid = await rt.create_container(sb.id, spec())
                await rt.start_container(cid)
        elapsed = time.perf_counter() - began
        assert len(asyncio.all_tasks()) == baseline
        counts = [rt.counts() for rt in runtimes]  # type: ignore[attr-defined]
        assert all(c == {"sandbox/running": 50, "container/running": 50} for c in counts)
        return elapsed

    assert asyncio.run(scenario()) < 10.0


def test_open_runtime_rejects_unknown_kinds() -> None:
    with pytest.raises(ValueError, match="docker, containerd, fake"):
        open_runtime("podman")
