"""The runtime contract, run over the fake and the Docker adapter alike.

Each test states a process's behaviour twice (the real command for Docker, a ``Program`` for
the fake) and asserts what the node agent will rely on: states, Kubernetes reasons, exit
codes, grace periods, labels and filters, logs, exec, image policy, typed errors, events
and clean removal. A difference between the adapters is a bug in one of them.
"""

from __future__ import annotations

import ipaddress

import pytest

from kstate.errors import (
    ContainerAlreadyExists,
    ContainerCannotRun,
    ContainerNotFound,
    ContainerNotRunning,
    CreateContainerError,
    ExecTimeout,
    ImageNotPresent,
)
from kstate.runtime.base import (
    ATTEMPT,
    BASE_IMAGE,
    CONTAINER_NAME,
    HTTPD_IMAGE,
    MANAGED,
    NODE_NAME,
    POD_NAME,
    POD_UID,
    ContainerSpec,
    ContainerState,
    ContainerStatus,
    EventKind,
    PullPolicy,
    Reason,
    SandboxSpec,
    SandboxState,
)
from kstate.runtime.fake import Program
from tests.runtime.conftest import Harness

#: A process that runs until killed and, as PID 1 without a handler, ignores SIGTERM.
SLEEPER = ("sleep", "3600")
SLEEPER_P = Program(on_term=None)
#: A process that handles SIGTERM by exiting 7. It says "ready" once the handler is set: a
#: TERM that lands before that is ignored (PID 1), so tests wait for the word first.
TRAPPER = ("sh", "-c", "trap 'exit 7' TERM; echo ready; while :; do sleep 1 & wait $!; done")
TRAPPER_P = Program(on_term=7, logs=b"ready\n")
MISSING_ID = "0" * 64
#: Allocates 64 MiB under an 8 MiB limit. It waits a moment first: Docker 20.10 on cgroup v1
#: misses an OOM that happens before containerd has armed its OOM watch (~5% of instant
#: OOMs then read as plain exit 137), an engine race the adapter cannot see past.
OOM_HOG = ("sh", "-c", "sleep 0.3; exec dd if=/dev/zero of=/dev/null bs=64M")
OOM_LIMIT = 8 * 1024 * 1024


def exits(code: int) -> tuple[tuple[str, ...], Program]:
    return ("sh", "-c", f"exit {code}"), Program.exits(code)


# ---------------------------------------------------------------------------- engine


def test_version_and_network(h: Harness) -> None:
    async def scenario() -> None:
        version = await h.rt.version()
        assert version.runtime_name == h.kind
        assert version.runtime_version and version.api_version
        net = await h.rt.network_info()
        assert ipaddress.ip_address(net.gateway) in ipaddress.ip_network(net.subnet)

    h.run(scenario())


# ---------------------------------------------------------------------------- sandboxes


def test_sandbox_create_list_inspect_remove(h: Harness) -> None:
    async def scenario() -> None:
        sb = await h.sandbox(name="web-1", tier="front")
        assert sb.state is SandboxState.READY
        net = await h.rt.network_info()
        assert ipaddress.ip_address(sb.ip) in ipaddress.ip_network(net.subnet)
        assert sb.ip != net.gateway
        assert (sb.name, sb.namespace, sb.node_name) == ("web-1", "test", h.node)
        assert sb.labels["tier"] == "front" and sb.labels[MANAGED] == "true"

        assert await h.rt.inspect_sandbox(sb.id) == sb
        other = await h.sandbox()
        assert other.ip != sb.ip
        assert [s.id for s in await h.rt.list_sandboxes({POD_UID: sb.pod_uid})] == [sb.id]
        mine = {s.id for s in await h.rt.list_sandboxes({NODE_NAME: h.node})}
        assert {sb.id, other.id} <= mine
        assert await h.rt.list_sandboxes({"tier": "front", NODE_NAME: h.node}) == [sb]
        # Sandboxes are not containers, and the other way round.
        assert await h.rt.list_containers({POD_UID: sb.pod_uid}) == []
        with pytest.raises(ContainerNotFound):
            await h.rt.inspect_container(sb.id)

        await h.rt.remove_sandbox(sb.id)
        assert await h.rt.list_sandboxes({POD_UID: sb.pod_uid}) == []
        with pytest.raises(ContainerNotFound) as err:
            await h.rt.inspect_sandbox(sb.id)
        assert err.value.kind == "sandbox"
        await h.rt.remove_sandbox(sb.id)  # teardown is idempotent

    h.run(scenario())


def test_sandbox_attempt_is_unique(h: Harness) -> None:
    async def scenario() -> None:
        sb = await h.sandbox(name="once")
        spec = SandboxSpec(pod_uid=sb.pod_uid, namespace="test", name="once",
                           node_name=h.node)
        with pytest.raises(ContainerAlreadyExists):
            await h.rt.create_sandbox(spec)
        again = await h.rt.create_sandbox(SandboxSpec(
            pod_uid=sb.pod_uid, namespace="test", name="once", node_name=h.node, attempt=1))
        h.sandboxes.append(again.id)
        assert again.attempt == 1 and again.id != sb.id

    h.run(scenario())


def test_containers_share_the_sandbox_network(h: Harness) -> None:
    async def scenario() -> None:
        sb = await h.sandbox(name="shared")
        server = await h.container(
            sb, ("sh", "-c", 'echo "hello from $HOSTNAME" > /www/index.html && '
                 "exec httpd -f -p 8080 -h /www"), name="server")
        client = await h.container(sb, SLEEPER, SLEEPER_P, name="client")
        for cid in (server, client):
            status = await h.state(cid, ContainerState.RUNNING)
            assert status.sandbox_id == sb.id and status.pod_uid == sb.pod_uid
        if h.kind != "fake":  # the fake has no network to prove it on
            async def answered() -> bool:
                got = await h.rt.exec(client, ["wget", "-qO-", "http://localhost:8080/"], 5)
                return got.exit_code == 0 and got.output == b"hello from shared\n"

            await h.until(answered, what="client reaches server on localhost")

    h.run(scenario())


# ---------------------------------------------------------------------------- containers


def test_create_start_inspect(h: Harness) -> None:
    async def scenario() -> None:
        sb = await h.sandbox()
        spec = ContainerSpec(
            name="app", image=HTTPD_IMAGE, image_pull_policy=PullPolicy.NEVER,
            command=SLEEPER, attempt=2,
            labels={"team": "a", POD_UID: "spoofed"},
        )
        if h.kind == "fake":
            h.fake.set_program("app", SLEEPER_P)
        cid = await h.rt.create_container(sb.id, spec)
        created = await h.rt.inspect_container(cid)
        assert created.state is ContainerState.CREATED
        assert created.exit_code is None and created.started_at is None
        assert created.reason is None
        assert (created.name, created.image, created.attempt) == ("app", HTTPD_IMAGE, 2)
        assert created.labels["team"] == "a"
        assert created.labels[POD_UID] == sb.pod_uid  # kstate's labels cannot be spoofed
        assert created.labels[CONTAINER_NAME] == "app" and created.labels[ATTEMPT] == "2"

        await h.rt.start_container(cid)
        running = await h.state(cid, ContainerState.RUNNING)
        assert running.started_at is not None
        assert running.started_at >= created.created_at - 1
        assert running.finished_at is None and running.exit_code is None
        await h.rt.start_container(cid)  # starting a running container is a no-op
        assert [c.id for c in await h.rt.list_containers({POD_UID: sb.pod_uid})] == [cid]

    h.run(scenario())


def test_same_container_attempt_is_never_duplicated(h: Harness) -> None:
    async def scenario() -> None:
        sb = await h.sandbox()
        spec = ContainerSpec(name="app", image=BASE_IMAGE, command=SLEEPER)
        await h.rt.create_container(sb.id, spec)
        with pytest.raises(ContainerAlreadyExists):
            await h.rt.create_container(sb.id, spec)
        retry = ContainerSpec(name="app", image=BASE_IMAGE, command=SLEEPER, attempt=1)
        await h.rt.create_container(sb.id, retry)
        statuses = await h.rt.list_containers({POD_UID: sb.pod_uid})
        assert sorted(c.attempt for c in statuses) == [0, 1]

    h.run(scenario())


@pytest.mark.parametrize(("code", "reason"), [(0, Reason.COMPLETED), (3, Reason.ERROR)])
def test_exit_code_and_reason(h: Harness, code: int, reason: Reason) -> None:
    async def scenario() -> None:
        sb = await h.sandbox()
        command, program = exits(code)
        cid = await h.container(sb, command, program)
        status = await h.state(cid, ContainerState.EXITED)
        assert status.exit_code == code
        assert status.reason is reason
        assert not status.oom_killed
        assert status.started_at is not None and status.finished_at is not None
        assert status.finished_at >= status.started_at

    h.run(scenario())


def test_oom_killed(h: Harness) -> None:
    async def scenario() -> None:
        sb = await h.sandbox()
        cid = await h.container(sb, OOM_HOG, Program.ooms(after=0.5), memory_bytes=OOM_LIMIT)
        status = await h.state(cid, ContainerState.EXITED)
        assert status.oom_killed
        assert status.reason is Reason.OOM_KILLED
        assert status.exit_code == 137

    h.run(scenario())


def test_command_that_cannot_run(h: Harness) -> None:
    async def scenario() -> None:
        sb = await h.sandbox()
        async with h.rt.events({POD_UID: sb.pod_uid}) as events:
            with pytest.raises(ContainerCannotRun) as err:
                await h.container(sb, ("no-such-binary",),
                                  Program(cannot_run='exec: "no-such-binary": not found'))
            status = await h.rt.inspect_container(err.value.container_id)
            assert status.state is ContainerState.EXITED
            assert status.reason is Reason.CANNOT_RUN
            assert status.exit_code == 127
            assert "no-such-binary" in status.message
            assert status.started_at is None and status.finished_at is None
            # No process ran, so the engine reports no start and no death: the raise is it.
            survivor = await h.container(sb, *exits(0))
            first = await h.next_event(events)
            assert (first.container_id, first.kind) == (survivor, EventKind.STARTED)

    h.run(scenario())


def test_create_refusals(h: Harness) -> None:
    async def scenario() -> None:
        sb = await h.sandbox()
        with pytest.raises(CreateContainerError):  # engines refuse limits under 6 MiB
            await h.container(sb, SLEEPER, start=False, memory_bytes=1024 * 1024)
        with pytest.raises(ContainerNotFound) as err:
            await h.rt.create_container(MISSING_ID, ContainerSpec(name="a", image=BASE_IMAGE))
        assert err.value.kind == "sandbox"
        await h.rt.stop_container(sb.id, 0)
        assert (await h.rt.inspect_sandbox(sb.id)).state is SandboxState.NOTREADY
        assert (await h.rt.inspect_sandbox(sb.id)).ip == ""
        with pytest.raises(CreateContainerError):
            await h.container(sb, SLEEPER, start=False)

    h.run(scenario())


# ---------------------------------------------------------------------------- stop and kill


def test_stop_lets_a_term_handler_exit_with_its_own_code(h: Harness) -> None:
    async def scenario() -> None:
        sb = await h.sandbox()
        cid = await h.container(sb, TRAPPER, TRAPPER_P)

        async def ready() -> bool:
            return await h.collect(h.rt.logs(cid)) == [b"ready\n"]

        await h.until(ready, what="TERM handler installed")
        began = h.clock.monotonic()
        await h.wait(h.rt.stop_container(cid, grace_seconds=20), what="stop")
        assert h.clock.monotonic() - began < 10  # it did not wait for the grace period
        status = await h.rt.inspect_container(cid)
        assert (status.state, status.exit_code, status.reason) == (
            ContainerState.EXITED, 7, Reason.ERROR)

    h.run(scenario())


def test_stop_kills_a_process_ignoring_term_after_the_grace_period(h: Harness) -> None:
    async def scenario() -> None:
        sb = await h.sandbox()
        cid = await h.container(sb, SLEEPER, SLEEPER_P)
        await h.state(cid, ContainerState.RUNNING)
        began = h.clock.monotonic()
        await h.wait(h.rt.stop_container(cid, grace_seconds=2), what="stop")
        assert h.clock.monotonic() - began >= 1.9
        status = await h.rt.inspect_container(cid)
        assert (status.exit_code, status.reason, status.oom_killed) == (137, Reason.ERROR, False)
        await h.rt.stop_container(cid, 2)  # stopping an exited container is a no-op

    h.run(scenario())


def test_kill(h: Harness) -> None:
    async def scenario() -> None:
        sb = await h.sandbox()
        cid = await h.container(sb, SLEEPER, SLEEPER_P)
        await h.state(cid, ContainerState.RUNNING)
        await h.rt.kill_container(cid, "SIGKILL")
        status = await h.state(cid, ContainerState.EXITED)
        assert (status.exit_code, status.reason) == (137, Reason.ERROR)
        with pytest.raises(ContainerNotRunning):
            await h.rt.kill_container(cid)

    h.run(scenario())


# ---------------------------------------------------------------------------- labels


def test_labels_and_filters(h: Harness) -> None:
    async def scenario() -> None:
        a = await h.sandbox()
        b = await h.sandbox()
        a1 = await h.container(a, SLEEPER, SLEEPER_P, name="web", labels={"v": "1"})
        a2 = await h.container(a, SLEEPER, SLEEPER_P, name="log", start=False)
        b1 = await h.container(b, SLEEPER, SLEEPER_P, name="web")

        def ids(found: list[ContainerStatus]) -> list[str]:
            return [c.id for c in found]

        assert ids(await h.rt.list_containers({POD_UID: a.pod_uid})) == [a1, a2]
        assert ids(await h.rt.list_containers({POD_UID: b.pod_uid})) == [b1]
        assert set(ids(await h.rt.list_containers({NODE_NAME: h.node}))) >= {a1, a2, b1}
        web = await h.rt.list_containers({CONTAINER_NAME: "web", NODE_NAME: h.node})
        assert {c.id for c in web} >= {a1, b1} and a2 not in {c.id for c in web}
        assert ids(await h.rt.list_containers({"v": "1", NODE_NAME: h.node})) == [a1]
        assert await h.rt.list_containers({POD_NAME: "nobody", NODE_NAME: h.node}) == []
        listed = {c.id: c for c in await h.rt.list_containers({POD_UID: a.pod_uid})}
        assert listed[a1] == await h.rt.inspect_container(a1)
        assert listed[a2].state is ContainerState.CREATED

    h.run(scenario())


# ---------------------------------------------------------------------------- logs


def test_logs_and_tail(h: Harness) -> None:
    async def scenario() -> None:
        sb = await h.sandbox()
        cid = await h.container(
            sb, ("sh", "-c", "echo one; echo two; echo three; printf four"),
            Program.exits(0, logs=b"one\ntwo\nthree\nfour"))
        # stderr is captured too (its order against stdout is not: two pipes).
        err = await h.container(sb, ("sh", "-c", "echo oops >&2"), Program.exits(0, logs=b"oops\n"))
        await h.state(cid, ContainerState.EXITED)
        await h.state(err, ContainerState.EXITED)
        assert await h.collect(h.rt.logs(err)) == [b"oops\n"]
        assert await h.collect(h.rt.logs(cid)) == [b"one\n", b"two\n", b"three\n", b"four"]
        assert await h.collect(h.rt.logs(cid, tail=2)) == [b"three\n", b"four"]
        assert await h.collect(h.rt.logs(cid, tail=0)) == []
        assert len(await h.collect(h.rt.logs(cid, tail=100))) == 4

    h.run(scenario())


def test_logs_follow_streams_until_exit(h: Harness) -> None:
    async def scenario() -> None:
        sb = await h.sandbox()
        cid = await h.container(
            sb, ("sh", "-c", "echo first; sleep 1; echo second; sleep 1"),
            Program.exits(0, after=2, logs=b"first\n", log_schedule=((1.0, b"second\n"),)))
        await h.state(cid, ContainerState.RUNNING)
        lines = await h.collect(h.rt.logs(cid, follow=True))
        assert lines == [b"first\n", b"second\n"]
        assert (await h.rt.inspect_container(cid)).state is ContainerState.EXITED
        # Following a container that never started ends at once, with nothing.
        idle = await h.container(sb, ("echo", "x"), Program.exits(0, logs=b"x\n"), start=False)
        assert await h.collect(h.rt.logs(idle, follow=True), timeout=5) == []

    h.run(scenario())


# ---------------------------------------------------------------------------- exec


def test_exec(h: Harness) -> None:
    async def scenario() -> None:
        sb = await h.sandbox()
        cid = await h.container(sb, SLEEPER, SLEEPER_P)
        await h.state(cid, ContainerState.RUNNING)
        ok = await h.rt.exec(cid, ["echo", "hello"], timeout=10)
        assert (ok.exit_code, ok.output) == (0, b"hello\n")
        failed = await h.rt.exec(cid, ["sh", "-c", "exit 3"], timeout=10)
        assert failed.exit_code == 3
        missing = await h.rt.exec(cid, ["no-such-binary"], timeout=10)
        assert missing.exit_code == 126 and b"no-such-binary" in missing.output
        with pytest.raises(ExecTimeout):
            await h.wait(h.rt.exec(cid, ["sleep", "30"], timeout=0.5), what="exec timeout")
        await h.rt.kill_container(cid)
        await h.state(cid, ContainerState.EXITED)
        with pytest.raises(ContainerNotRunning):
            await h.rt.exec(cid, ["true"], timeout=10)

    h.run(scenario())


# ---------------------------------------------------------------------------- images


def test_image_pull_policies(h: Harness) -> None:
    absent = "kstate/absent:1"

    async def scenario() -> None:
        assert await h.rt.image_present(BASE_IMAGE)
        assert not await h.rt.image_present(absent)
        with pytest.raises(ImageNotPresent) as never:
            await h.rt.ensure_image(absent, PullPolicy.NEVER)
        assert (never.value.image, never.value.reason) == (absent, "ErrImageNeverPull")
        for policy in (PullPolicy.IF_NOT_PRESENT, PullPolicy.ALWAYS):
            with pytest.raises(ImageNotPresent) as err:
                await h.rt.ensure_image(absent, policy)
            assert err.value.reason == "ErrImagePull"
            assert absent in str(err.value) and policy.value in str(err.value)
        for policy in (PullPolicy.NEVER, PullPolicy.IF_NOT_PRESENT):
            got = await h.rt.ensure_image(BASE_IMAGE, policy)
            assert not got.pulled and "already present" in got.message
        # Always with no registry: the pull fails, the local image is used, with a warning.
        always = await h.rt.ensure_image(BASE_IMAGE, PullPolicy.ALWAYS)
        assert not always.pulled and "using the local image" in always.message

        sb = await h.sandbox()
        with pytest.raises(ImageNotPresent):
            await h.rt.create_container(sb.id, ContainerSpec(name="a", image=absent))

    h.run(scenario())


# ---------------------------------------------------------------------------- errors


def test_unknown_ids(h: Harness) -> None:
    async def scenario() -> None:
        calls = [
            h.rt.inspect_container(MISSING_ID),
            h.rt.start_container(MISSING_ID),
            h.rt.stop_container(MISSING_ID, 1),
            h.rt.kill_container(MISSING_ID),
            h.rt.exec(MISSING_ID, ["true"], 1),
            h.collect(h.rt.logs(MISSING_ID)),
            h.rt.inspect_sandbox(MISSING_ID),
        ]
        for call in calls:
            with pytest.raises(ContainerNotFound) as err:
                await call
            assert err.value.container_id == MISSING_ID
        await h.rt.remove_container(MISSING_ID)  # idempotent teardown
        await h.rt.remove_sandbox(MISSING_ID)

    h.run(scenario())


# ---------------------------------------------------------------------------- events


def test_events_for_start_death_and_oom(h: Harness) -> None:
    async def scenario() -> None:
        sb = await h.sandbox()
        other = await h.sandbox()
        async with h.rt.events({POD_UID: sb.pod_uid}) as events:
            await h.container(other, *exits(0))  # filtered out
            cid = await h.container(sb, *exits(3))
            started = await h.next_event(events)
            assert (started.container_id, started.kind, started.is_sandbox) == (
                cid, EventKind.STARTED, False)
            died = await h.next_event(events)
            assert (died.container_id, died.kind, died.exit_code) == (cid, EventKind.DIED, 3)
            assert died.labels[POD_UID] == sb.pod_uid and died.at >= started.at

            oom = await h.container(sb, OOM_HOG, Program.ooms(after=0.5),
                                    memory_bytes=OOM_LIMIT)
            kinds = [(await h.next_event(events)).kind for _ in range(3)]
            # Docker sends "oom" before or after "died" (two engine paths): both, any order.
            assert kinds[0] is EventKind.STARTED
            assert sorted(kinds[1:]) == sorted([EventKind.OOM, EventKind.DIED])
            assert (await h.rt.inspect_container(oom)).reason is Reason.OOM_KILLED

            await h.rt.stop_container(sb.id, 5)
            gone = await h.next_event(events)
            assert (gone.container_id, gone.kind, gone.is_sandbox) == (
                sb.id, EventKind.DIED, True)

    h.run(scenario())


# ---------------------------------------------------------------------------- removal


def test_remove_cleans_up(h: Harness) -> None:
    async def scenario() -> None:
        sb = await h.sandbox()
        running = await h.container(sb, SLEEPER, SLEEPER_P)
        exited = await h.container(sb, *exits(0))
        await h.state(exited, ContainerState.EXITED)
        await h.rt.remove_container(exited)
        with pytest.raises(ContainerNotFound):
            await h.rt.inspect_container(exited)
        await h.rt.remove_container(exited)

        await h.rt.remove_sandbox(sb.id)  # takes the running container with it
        assert await h.rt.list_containers({POD_UID: sb.pod_uid}) == []
        assert await h.rt.list_sandboxes({POD_UID: sb.pod_uid}) == []
        with pytest.raises(ContainerNotFound):
            await h.rt.inspect_container(running)

    h.run(scenario())
