"""A node's containers as a plain value: the model checker's runtime executor.

Where it sits: ``kstate/node``, beside ``podsync``. The engine's agent executes
``NodeCommand``s against a real runtime adapter (Docker, or the async fake);
``SimulatedNode.apply`` executes the same commands against a frozen value, so the model
checker (and fast unit tests) run the pod worker's ``sync`` unchanged. Faults are
functions too: ``crash`` a container, ``lose`` everything (a node reboot).

Identifiers are derived from the pod uid, container name and attempt, so equal histories
give equal values — which keeps the checker's state space small.

>>> node = SimulatedNode()
>>> node, _ = node.apply(EnsureSandbox(SandboxSpec("u1", "default", "web", "n1")), now=0)
>>> node.sandbox("u1").ip
'10.244.0.1'
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

import attrs

from kstate.node.podsync import (
    EnsureSandbox,
    NodeCommand,
    RemoveSandbox,
    StartContainer,
    StopContainer,
)
from kstate.runtime import base as rt
from kstate.runtime.base import SandboxSpec


@attrs.frozen(cache_hash=True)
class SimulatedNode:
    """Every sandbox and container on one node (sorted tuples: a canonical value)."""

    sandboxes: tuple[rt.SandboxStatus, ...] = ()
    containers: tuple[rt.ContainerStatus, ...] = ()
    #: images present on the node; ``None`` means every image is present
    images: frozenset[str] | None = None

    # ------------------------------------------------------------------ queries

    def sandbox(self, uid: str) -> rt.SandboxStatus | None:
        mine = [s for s in self.sandboxes if s.pod_uid == uid]
        return max(mine, key=lambda s: s.attempt) if mine else None

    def of_pod(self, uid: str) -> tuple[rt.ContainerStatus, ...]:
        return tuple(c for c in self.containers if c.pod_uid == uid)

    def pod_uids(self) -> frozenset[str]:
        return frozenset(s.pod_uid for s in self.sandboxes) | frozenset(
            c.pod_uid for c in self.containers)

    def running(self) -> tuple[rt.ContainerStatus, ...]:
        return tuple(c for c in self.containers if c.state is rt.ContainerState.RUNNING)

    # ------------------------------------------------------------------ commands

    def apply(self, command: NodeCommand, now: float) -> tuple[SimulatedNode, str]:
        """The node after ``command`` and the start error it produced (``""``: none).

        Commands that are not about the runtime (status writes, requeues) leave it as is.
        """
        if isinstance(command, EnsureSandbox):
            return self._sandbox(command.spec, now), ""
        if isinstance(command, StartContainer):
            return self._start(command, now)
        if isinstance(command, StopContainer):
            return self._exit(command.container_id, rt.EXIT_TERMINATED if command.grace
                              else rt.EXIT_KILLED, now), ""
        if isinstance(command, RemoveSandbox):
            return self._remove(command.sandbox_id), ""
        return self, ""

    def _sandbox(self, spec: SandboxSpec, now: float) -> SimulatedNode:
        sid = f"{spec.pod_uid}/sandbox/{spec.attempt}"
        if any(s.id == sid for s in self.sandboxes):
            return self
        index = len({s.pod_uid for s in self.sandboxes} | {spec.pod_uid})
        status = rt.SandboxStatus(
            id=sid, pod_uid=spec.pod_uid, namespace=spec.namespace, name=spec.name,
            node_name=spec.node_name, state=rt.SandboxState.READY,
            ip=f"10.244.0.{index}", created_at=now, attempt=spec.attempt,
        )
        older = tuple(s for s in self.sandboxes if s.pod_uid != spec.pod_uid)
        return attrs.evolve(self, sandboxes=_sorted((*older, status)))

    def _start(self, command: StartContainer, now: float) -> tuple[SimulatedNode, str]:
        spec = command.spec
        sandbox = next((s for s in self.sandboxes if s.id == command.sandbox_id), None)
        if sandbox is None:
            return self, "CreateContainerError"
        if self.images is not None and spec.image not in self.images:
            reason = "ErrImageNeverPull" if spec.image_pull_policy is rt.PullPolicy.NEVER \
                else "ErrImagePull"
            return self, reason
        cid = f"{sandbox.pod_uid}/{spec.name}/{spec.attempt}"
        if any(c.id == cid for c in self.containers):
            return self, ""
        started = rt.ContainerStatus(
            id=cid, name=spec.name, sandbox_id=sandbox.id, state=rt.ContainerState.RUNNING,
            image=spec.image, created_at=now, attempt=spec.attempt, pod_uid=sandbox.pod_uid,
            started_at=now,
        )
        return attrs.evolve(self, containers=_sorted((*self.containers, started))), ""

    def _exit(self, container_id: str, code: int, now: float,
              oom: bool = False) -> SimulatedNode:
        def ended(c: rt.ContainerStatus) -> rt.ContainerStatus:
            if c.id != container_id or c.state is not rt.ContainerState.RUNNING:
                return c
            return attrs.evolve(
                c, state=rt.ContainerState.EXITED, exit_code=code, finished_at=now,
                oom_killed=oom,
                reason=rt.termination_reason(code, oom_killed=oom, cannot_run=False),
            )
        return attrs.evolve(self, containers=tuple(ended(c) for c in self.containers))

    def _remove(self, sandbox_id: str) -> SimulatedNode:
        return attrs.evolve(
            self,
            sandboxes=tuple(s for s in self.sandboxes if s.id != sandbox_id),
            containers=tuple(c for c in self.containers if c.sandbox_id != sandbox_id),
        )

    # ------------------------------------------------------------------ faults

    def crash(self, container_id: str, exit_code: int, now: float) -> SimulatedNode:
        """A container dies on its own (exit code 137 with ``oom`` for an OOM kill)."""
        return self._exit(container_id, exit_code, now)

    def oom(self, container_id: str, now: float) -> SimulatedNode:
        return self._exit(container_id, rt.EXIT_KILLED, now, oom=True)

    def lose(self) -> SimulatedNode:
        """Everything gone: the node rebooted and its runtime was wiped."""
        return attrs.evolve(self, sandboxes=(), containers=())


T = TypeVar("T", rt.SandboxStatus, rt.ContainerStatus)


def _sorted(items: Iterable[T]) -> tuple[T, ...]:
    return tuple(sorted(items, key=lambda x: x.id))


__all__ = ["SimulatedNode"]
