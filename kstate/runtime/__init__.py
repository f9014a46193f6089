"""kstate.runtime: container runtime adapters (see ARCHITECTURE §4 and docs/runtime.md).

Where it sits: node agent -> **runtime adapter** (docker | containerd | fake) -> containers.
The agent depends on the protocol in :mod:`kstate.runtime.base` only and gets an adapter
from :func:`open_runtime`, so ``kstate node --runtime docker|containerd|fake`` is one
string away.

The real adapters' client libraries (aiodocker; grpcio for containerd's CRI) are imported
only when such a runtime is opened, so the fake (and the model checker) work on machines
without them.
"""

from __future__ import annotations

from typing import Any

from kstate.clock import Clock
from kstate.runtime.base import (
    BASE_IMAGE,
    HTTPD_IMAGE,
    ContainerRuntime,
    ContainerSpec,
    ContainerState,
    ContainerStatus,
    EnsuredImage,
    EventKind,
    EventStream,
    ExecResult,
    ExecSession,
    NetworkInfo,
    PullPolicy,
    Reason,
    RuntimeEvent,
    RuntimeVersion,
    SandboxSpec,
    SandboxState,
    SandboxStatus,
)

RUNTIMES = ("docker", "containerd", "fake")


def open_runtime(kind: str, *, clock: Clock | None = None, **options: Any) -> ContainerRuntime:
    """An adapter by name: ``"docker"`` (options: url, network, cluster, ...),
    ``"containerd"`` (options: socket, cluster, ...) or ``"fake"`` (options: seed,
    programs, start_delay, ...; ``clock`` drives its time).

    >>> open_runtime("fake").name
    'fake'
    """
    if kind == "docker":
        from kstate.runtime.docker import DockerRuntime

        return DockerRuntime(**options)
    if kind == "containerd":
        from kstate.runtime.containerd import ContainerdRuntime

        return ContainerdRuntime(**options)
    if kind == "fake":
        from kstate.runtime.fake import FakeRuntime

        return FakeRuntime(clock, **options)
    raise ValueError(f"unknown runtime {kind!r} (choose one of {', '.join(RUNTIMES)})")


__all__ = [
    "BASE_IMAGE",
    "HTTPD_IMAGE",
    "RUNTIMES",
    "ContainerRuntime",
    "ContainerSpec",
    "ContainerState",
    "ContainerStatus",
    "EnsuredImage",
    "EventKind",
    "EventStream",
    "ExecResult",
    "ExecSession",
    "NetworkInfo",
    "PullPolicy",
    "Reason",
    "RuntimeEvent",
    "RuntimeVersion",
    "SandboxSpec",
    "SandboxState",
    "SandboxStatus",
    "open_runtime",
]
