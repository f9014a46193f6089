"""The shared rules of ``kstate.runtime.base``: reasons, status assembly, pull policy, lines.

These are decided once for every adapter, so they are pinned here on their own; the
contract suite then shows each adapter feeding them the right facts.
"""

from __future__ import annotations

import asyncio

import pytest

from kstate.errors import ImageNotPresent, RuntimeAdapterError
from kstate.runtime.base import (
    CONTAINER_NAME,
    MANAGED,
    POD_UID,
    ROLE,
    SANDBOX_ID,
    ContainerSpec,
    ContainerState,
    ContainerStatus,
    PullPolicy,
    Reason,
    SandboxSpec,
    apply_pull_policy,
    container_status,
    matches,
    split_lines,
    tail_lines,
    termination_reason,
)


@pytest.mark.parametrize(
    ("code", "oom", "cannot_run", "reason"),
    [
        (0, False, False, Reason.COMPLETED),
        (1, False, False, Reason.ERROR),
        (137, False, False, Reason.ERROR),
        (137, True, False, Reason.OOM_KILLED),
        (0, True, False, Reason.OOM_KILLED),
        (127, False, True, Reason.CANNOT_RUN),
    ],
)
def test_termination_reason(code: int, oom: bool, cannot_run: bool, reason: Reason) -> None:
    assert termination_reason(code, oom_killed=oom, cannot_run=cannot_run) is reason


def _status(
    *,
    running: bool = False,
    exited: bool = False,
    exit_code: int | None = 0,
    started_at: float | None = None,
    finished_at: float | None = None,
    oom_killed: bool = False,
    error: str = "",
) -> ContainerStatus:
    labels = {CONTAINER_NAME: "web", SANDBOX_ID: "sb", POD_UID: "u"}
    return container_status(
        "id", labels, image="i", running=running, created_at=1.0, exited=exited,
        exit_code=exit_code, started_at=started_at, finished_at=finished_at,
        oom_killed=oom_killed, error=error)


def test_container_status_assembly() -> None:
    created = _status()
    assert (created.state, created.exit_code, created.reason) == (
        ContainerState.CREATED, None, None)
    running = _status(running=True, started_at=2.0, oom_killed=True)
    assert running.state is ContainerState.RUNNING
    assert not running.oom_killed
    exited = _status(exited=True, exit_code=3, started_at=2.0, finished_at=4.0)
    assert (exited.state, exited.reason, exited.finished_at) == (
        ContainerState.EXITED, Reason.ERROR, 4.0)
    failed = _status(exit_code=127, error="exec: not found")
    assert (failed.state, failed.reason, failed.message) == (
        ContainerState.EXITED, Reason.CANNOT_RUN, "exec: not found")
    assert (failed.name, failed.sandbox_id, failed.pod_uid) == ("web", "sb", "u")
    # Docker can stamp FinishedAt before StartedAt for an instant exit: kept monotonic.
    instant = _status(exited=True, started_at=5.0, finished_at=4.9)
    assert instant.finished_at == 5.0


def _policy(policy: PullPolicy, present: bool, pull_ok: bool) -> object:
    state = {"present": present, "pulls": 0}

    async def is_present() -> bool:
        return bool(state["present"])

    async def pull() -> None:
        state["pulls"] += 1
        if not pull_ok:
            raise RuntimeAdapterError("no registry")
        state["present"] = True

    try:
        got = asyncio.run(apply_pull_policy("img:1", policy, present=is_present, pull=pull))
    except ImageNotPresent as err:
        return err.reason, state["pulls"]
    return got.pulled, state["pulls"]


@pytest.mark.parametrize(
    ("policy", "present", "pull_ok", "outcome"),
    [
        (PullPolicy.NEVER, True, False, (False, 0)),
        (PullPolicy.NEVER, False, True, ("ErrImageNeverPull", 0)),
        (PullPolicy.IF_NOT_PRESENT, True, False, (False, 0)),
        (PullPolicy.IF_NOT_PRESENT, False, True, (True, 1)),
        (PullPolicy.IF_NOT_PRESENT, False, False, ("ErrImagePull", 1)),
        (PullPolicy.ALWAYS, True, True, (True, 1)),
        (PullPolicy.ALWAYS, True, False, (False, 1)),  # local fallback, with a warning
        (PullPolicy.ALWAYS, False, False, ("ErrImagePull", 1)),
    ],
)
def test_pull_policy(policy: PullPolicy, present: bool, pull_ok: bool, outcome: object) -> None:
    assert _policy(policy, present, pull_ok) == outcome


def test_split_and_tail_lines() -> None:
    async def chunks() -> object:
        for part in (b"a\nb", b"c\n", b"", b"d\ne"):
            yield part

    async def collect() -> list[bytes]:
        return [line async for line in split_lines(chunks())]  # type: ignore[arg-type]

    lines = asyncio.run(collect())
    assert lines == [b"a\n", b"bc\n", b"d\n", b"e"]
    assert tail_lines(lines, None) == lines
    assert tail_lines(lines, 2) == [b"d\n", b"e"]
    assert tail_lines(lines, 0) == []
    assert tail_lines(lines, 10) == lines


def test_specs_are_frozen_values() -> None:
    c = ContainerSpec(name="a", image="i", command=["sh"], env={"A": "1", "B": "2"},
                      labels={"x": "1"})
    assert c.command == ("sh",) and c.env == (("A", "1"), ("B", "2"))
    assert hash(c) == hash(ContainerSpec(name="a", image="i", command=("sh",),
                                         env=(("A", "1"), ("B", "2")), labels={"x": "1"}))
    with pytest.raises(TypeError):
        c.labels["x"] = "2"  # type: ignore[index]
    with pytest.raises(TypeError, match="string"):
        ContainerSpec(name="a", image="i", command="sh -c true")


def test_labels_tie_everything_to_the_pod() -> None:
    sb = SandboxSpec(pod_uid="u1", namespace="ns", name="web", node_name="n1",
                     labels={"app": "web", POD_UID: "spoof"})
    labels = sb.all_labels()
    assert labels[POD_UID] == "u1" and labels[MANAGED] == "true" and labels["app"] == "web"
    assert labels[ROLE] == "sandbox"
    c = ContainerSpec(name="app", image="i", attempt=2)
    clabels = c.all_labels(labels, "sbid")
    assert clabels[POD_UID] == "u1" and clabels[SANDBOX_ID] == "sbid"
    assert "app" not in clabels  # pod labels stay on the sandbox
    assert sb.runtime_name() == "kstate_POD_web_ns_u1_0"
    assert c.runtime_name(labels) == "kstate_app_web_ns_u1_2"
    assert matches(clabels, {POD_UID: "u1"}) and not matches(clabels, {POD_UID: "u2"})
