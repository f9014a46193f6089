"""The pod worker as a pure function, driven against a simulated node.

Every status write is checked by the api server's rule (``check_change``): one legal
Pod machine move per write.
"""

from __future__ import annotations

from typing import Any

import attrs
import pytest

from kstate.api.codec import from_dict
from kstate.api.defaults import default
from kstate.api.frozen import FrozenDict
from kstate.api.lifecycle import check_change, pod_state
from kstate.api.objects import Pod
from kstate.clock import rfc3339
from kstate.control.execution import drive
from kstate.machines import compiled
from kstate.machines.pod import BackOffPolicy
from kstate.node.execution import NodeStep, OnRuntime, RuntimeReply, Store, execute, remember
from kstate.node.podsync import (
    FinishDelete,
    PodSyncView,
    StartContainer,
    StopContainer,
    sync,
)
from kstate.node.simulated import SimulatedNode

T0 = 1_700_000_000.0


def make_pod(restart: str = "Always", containers: int = 1, probe: bool = False,
             image: str = "img:1") -> Pod:
    spec_containers = []
    for i in range(containers):
        c: dict[str, Any] = {"name": f"c{i}", "image": image}
        if probe:
            c["readinessProbe"] = {"httpGet": {"port": 8080}}
        spec_containers.append(c)
    return default(from_dict(Pod, {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "namespace": "default", "uid": "u1",
                     "resourceVersion": "1"},
        "spec": {"nodeName": "n1", "restartPolicy": restart, "containers": spec_containers},
        "status": {"phase": "Pending"},
    }))


class Driver:
    """The agent's loop without I/O: rounds until nothing is left to do."""

    def __init__(self, pod: Pod, node: SimulatedNode | None = None) -> None:
        self.pod: Pod | None = pod
        self.node = node or SimulatedNode()
        self.errors: dict[str, str] = {}
        self.backoff: dict[str, Any] = {}
        self.readiness: dict[str, bool] = {}
        self.now = T0
        self.moves: list[str] = []
        self.requeue: float | None = None

    def view(self) -> PodSyncView:
        return PodSyncView(
            node="n1", uid="u1", pod=self.pod, sandbox=self.node.sandbox("u1"),
            containers=self.node.of_pod("u1"), readiness=FrozenDict(self.readiness),
            start_errors=FrozenDict(self.errors), backoff=FrozenDict(self.backoff),
            host_ip="192.0.2.1",
        )

    def settle(self, limit: int = 50) -> None:
        self.requeue = None
        for _ in range(limit):
            commands = sync(self.view(), self.now, BackOffPolicy())
            if not commands:
                return
            end = drive(execute(commands), self._perform)
            if end.requeue_at is not None:
                self.requeue = end.requeue_at
                return
        raise AssertionError(f"no fixed point after {limit} rounds: {self.moves}")

    def _perform(self, step: NodeStep) -> tuple[RuntimeReply, ...] | str | None:
        """The node plan's I/O, against the simulated node and this pod."""
        if isinstance(step, OnRuntime):
            replies = []
            for cmd in step.commands:
                self.node, error = self.node.apply(cmd, self.now)
                replies.append(RuntimeReply(
                    start_error=error if isinstance(cmd, StartContainer) else None))
            return tuple(replies)
        if isinstance(step, Store):
            for change in step.changes:
                remember(self.backoff, self.errors, change)
            return None
        cmd = step.command
        if isinstance(cmd, FinishDelete):
            self.moves.append("stopped")
            self.pod = None
            return "ok"
        assert self.pod is not None
        # The api server's rule: the write is one legal move, and the move the worker
        # fired is one of the triggers joining the two states.
        explained = check_change(self.pod, cmd.pod, self.now)
        assert (explained is None) == (not cmd.trigger)
        if cmd.trigger:
            before = pod_state(self.pod, self.now)
            after = pod_state(cmd.pod, self.now)
            assert cmd.trigger in compiled("pod").triggers_between(before, after)
            self.moves.append(cmd.trigger)
        self.pod = cmd.pod
        return "ok"

    @property
    def state(self) -> str:
        return pod_state(self.pod, self.now) if self.pod is not None else "Deleted"

    def crash(self, code: int, name: str = "c0") -> None:
        inst = max((c for c in self.node.of_pod("u1") if c.name == name),
                   key=lambda c: c.attempt)
        self.node = self.node.crash(inst.id, code, self.now)

    def delete(self, grace: int = 30) -> None:
        assert self.pod is not None
        meta = attrs.evolve(self.pod.metadata, deletion_timestamp=rfc3339(self.now + grace),
                            deletion_grace_period_seconds=grace)
        self.pod = attrs.evolve(self.pod, metadata=meta)


def test_a_pod_without_probe_becomes_ready() -> None:
    d = Driver(make_pod())
    d.settle()
    assert d.moves == ["start", "started", "ready"]
    assert d.state == "Ready"
    s = d.pod.status
    assert s.phase == "Running" and s.pod_ip == "10.244.0.1" and s.host_ip == "192.0.2.1"
    assert s.container_statuses[0].ready and s.container_statuses[0].state.running


def test_readiness_probe_gates_ready() -> None:
    d = Driver(make_pod(probe=True))
    d.settle()
    assert d.state == "Running"
    d.readiness["c0"] = True
    d.settle()
    assert d.state == "Ready"
    d.readiness["c0"] = False
    d.settle()
    assert d.state == "Running" and d.moves[-1] == "unready"


def test_crash_loop_back_off_grows_and_restart_count_counts() -> None:
    d = Driver(make_pod())
    d.settle()
    delays = []
    for n in range(1, 5):
        d.crash(1)
        d.settle()
        if d.requeue is not None:  # waiting out the back-off
            assert d.state == "CrashLoopBackOff"
            assert d.pod.status.container_statuses[0].state.waiting.reason == "CrashLoopBackOff"
            delays.append(d.requeue - d.now)
            d.now = d.requeue
            d.settle()
        else:
            delays.append(0.0)
        assert d.state == "Ready"
        assert d.pod.status.container_statuses[0].restart_count == n
        last = d.pod.status.container_statuses[0].last_state.terminated
        assert last is not None and last.exit_code == 1 and last.reason == "Error"
    assert delays == [0.0, 10.0, 20.0, 40.0]


@pytest.mark.parametrize(("policy", "code", "final"), [
    ("Never", 0, "Succeeded"), ("Never", 1, "Failed"), ("OnFailure", 0, "Succeeded"),
])
def test_exits_that_do_not_restart(policy: str, code: int, final: str) -> None:
    d = Driver(make_pod(restart=policy))
    d.settle()
    d.crash(code)
    d.settle()
    assert d.state == final
    term = d.pod.status.container_statuses[0].state.terminated
    assert term is not None and term.exit_code == code
    assert term.reason == ("Completed" if code == 0 else "Error")
    assert d.node.sandboxes == ()  # a finished pod's sandbox is removed


def test_multi_container_never_waits_for_every_container() -> None:
    d = Driver(make_pod(restart="Never", containers=2))
    d.settle()
    d.crash(0, "c0")
    d.settle()
    assert d.state == "Running"
    d.crash(3, "c1")
    d.settle()
    assert d.state == "Failed"


def test_graceful_deletion_stops_then_removes() -> None:
    d = Driver(make_pod())
    d.settle()
    d.delete(grace=30)
    d.settle()
    assert d.pod is None and d.moves[-1] == "stopped"
    assert d.node.running() == () and d.node.sandboxes == ()


def test_deletion_uses_the_remaining_grace() -> None:
    d = Driver(make_pod())
    d.settle()
    d.delete(grace=30)
    d.now += 10
    stop = sync(d.view(), d.now)
    assert stop == [StopContainer("u1/c0/0", 20.0)]
    d.now += 100  # past the deadline: Killing, grace 0
    assert pod_state(d.pod, d.now) == "Killing"
    assert sync(d.view(), d.now) == [StopContainer("u1/c0/0", 0.0)]


def test_missing_image_backs_off_then_recovers() -> None:
    d = Driver(make_pod(), SimulatedNode(images=frozenset()))
    d.settle()
    assert d.state == "ImagePullBackOff"
    assert d.pod.status.container_statuses[0].state.waiting.reason == "ErrImagePull"
    d.node = attrs.evolve(d.node, images=None)  # the image was built meanwhile
    if d.requeue is not None:
        d.now = d.requeue
    d.settle()
    assert d.state == "Ready"


def test_node_reboot_loses_containers_and_restart_policy_decides() -> None:
    d = Driver(make_pod())
    d.settle()
    d.node = d.node.lose()
    d.settle()
    if d.requeue is not None:
        d.now = d.requeue
        d.settle()
    assert d.state == "Ready"
    assert d.node.sandbox("u1") is not None and len(d.node.running()) == 1


def test_orphaned_containers_are_torn_down() -> None:
    d = Driver(make_pod())
    d.settle()
    d.pod = None  # force-deleted from the store
    d.settle()
    assert d.node.containers == () and d.node.sandboxes == ()


def test_unknown_pod_recovers_when_its_agent_syncs_again() -> None:
    d = Driver(make_pod())
    d.settle()
    lost = attrs.evolve(d.pod.status, phase="Unknown")
    d.pod = attrs.evolve(d.pod, status=lost)
    assert d.state == "Unknown"
    d.settle()
    assert d.state == "Ready" and "node_recovered" in d.moves
