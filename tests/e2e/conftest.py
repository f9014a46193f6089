"""End-to-end plumbing shared by the tests that run ``kstate up`` on a real runtime.

The e2e tests run on Docker and on kstate's containerd alike: a test takes a runtime name
(:data:`RUNTIMES` parametrises it, each with its marker), calls :func:`require_runtime`
(skip on a dev machine without the engine, fail under ``CI=true``), gets the local base
images from :func:`prepare_images` (once a session), and removes every container of its
node name with :func:`remove_node_containers` at the end — each test uses a node name of
its own, so runs never see each other's containers.

What a test observes of the engine (which containers run, killing one, exec in one) goes
through the engine's own command-line client — ``docker``, or ``ctr`` against kstate's
containerd in CRI's ``k8s.io`` namespace — so the observer is independent of the runtime
adapter under test.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import json
import subprocess
import sys
from pathlib import Path

import attrs
import pytest

from kstate.runtime.base import NODE_NAME, POD_UID, ROLE
from tests.conftest import require

ROOT = Path(__file__).resolve().parents[2]

#: Parametrise an e2e test (or fixture) over both real runtimes.
RUNTIMES = [pytest.param("docker", marks=pytest.mark.docker),
            pytest.param("containerd", marks=pytest.mark.containerd)]
#: Seconds between two polls of another process (its API through kubectl, the engine's
#: CLI) for a condition: a poll is itself a process start or a few requests, so a tenth of
#: a second keeps a wait's overshoot small without flooding the daemon under test.
POLL = 0.1
_exec_ids = itertools.count()


def docker_ok() -> bool:
    return subprocess.run(["docker", "info"], capture_output=True, check=False).returncode == 0


def require_docker() -> None:
    require(docker_ok(), "a Docker engine")


def containerd_socket() -> str:
    from kstate.runtime.containerd_host import default_socket

    return default_socket()


def require_runtime(runtime: str) -> None:
    if runtime == "docker":
        require_docker()
        return
    from kstate.runtime.containerd_host import ContainerdHost

    host = ContainerdHost(state_dir=Path(containerd_socket()).parent)
    require(host.answers(), f"kstate's containerd on {host.socket} "
            "(python -m kstate.runtime.containerd_host start)")


def build_base_images() -> None:
    """``kstate image build-base``: kstate/base:1 and kstate/httpd:1 (idempotent)."""
    subprocess.run([sys.executable, "-m", "kstate.cli", "image", "build-base"], cwd=ROOT,
                   check=True, capture_output=True)


@functools.cache
def prepare_images(runtime: str) -> None:
    """The base images on ``runtime``, once a session: no test removes them, and every
    further build would find them present (each docker call is a whole ``kstate``
    process start)."""
    if runtime == "docker":
        build_base_images()
        return
    from kstate.runtime.containerd_host import ContainerdHost

    ContainerdHost(state_dir=Path(containerd_socket()).parent).import_base_images()


def up_args(runtime: str) -> list[str]:
    """``kstate up``'s runtime options."""
    if runtime == "docker":
        return ["--runtime", "docker"]
    return ["--runtime", "containerd", "--containerd-socket", containerd_socket()]


def _ctr(*args: str) -> str:
    return subprocess.run(["ctr", "--address", containerd_socket(), "-n", "k8s.io", *args],
                          capture_output=True, text=True, check=True, timeout=60).stdout


@attrs.frozen
class Container:
    id: str
    state: str  # Docker's words: created, running, exited, ...
    pod_uid: str
    role: str  # sandbox | container


def node_containers(node: str, runtime: str = "docker") -> list[Container]:
    """Every container (any state) kstate labelled with ``node``, from the engine's CLI."""
    return labelled_containers(runtime, NODE_NAME, node)


def labelled_containers(runtime: str, label: str, value: str) -> list[Container]:
    """Every container (any state, sandboxes too) labelled ``label=value``."""
    if runtime == "docker":
        fmt = "\t".join(["{{.ID}}", "{{.State}}", f'{{{{.Label "{POD_UID}"}}}}',
                         f'{{{{.Label "{ROLE}"}}}}'])
        out = subprocess.run(["docker", "ps", "-a", "--filter", f"label={label}={value}",
                              "--format", fmt], capture_output=True, text=True,
                             check=True).stdout
        return [Container(*line.split("\t")) for line in out.splitlines() if line]
    tasks = {line.split()[0]: line.split()[-1].lower()
             for line in _ctr("tasks", "ls").splitlines()[1:] if line.strip()}
    found = []
    for cid in _ctr("containers", "ls", "-q", f'labels."{label}"=={value}').split():
        try:
            labels = json.loads(_ctr("containers", "info", cid)).get("Labels") or {}
        except subprocess.CalledProcessError:  # removed meanwhile
            continue
        found.append(Container(cid, tasks.get(cid, "exited"), labels.get(POD_UID, ""),
                               labels.get(ROLE, "")))
    return found


def running_app_containers(runtime: str, label: str, value: str) -> list[str]:
    """Ids of the running app containers (not sandboxes) labelled ``label=value``."""
    if runtime == "docker":
        return subprocess.run(["docker", "ps", "-q", "--filter", f"label={label}={value}",
                               "--filter", f"label={ROLE}=container"],
                              capture_output=True, text=True, check=True).stdout.split()
    running = {line.split()[0] for line in _ctr("tasks", "ls").splitlines()[1:]
               if line.strip().endswith("RUNNING")}
    listed = _ctr("containers", "ls", "-q", f'labels."{label}"=={value},labels."{ROLE}"=='
                  "container").split()
    return [cid for cid in listed if cid in running]


def kill_container(runtime: str, cid: str) -> None:
    if runtime == "docker":
        subprocess.run(["docker", "kill", cid], check=True, capture_output=True)
    else:
        _ctr("tasks", "kill", "--signal", "SIGKILL", cid)


def exec_in(runtime: str, cid: str, *command: str) -> None:
    if runtime == "docker":
        subprocess.run(["docker", "exec", cid, *command], check=True)
    else:
        _ctr("tasks", "exec", "--exec-id", f"e2e-{next(_exec_ids)}", cid, *command)


def processes(runtime: str, cid: str) -> str:
    """The container's process table, one process a line (``docker top``; on containerd,
    ``ps`` run in the container, which lists itself too)."""
    if runtime == "docker":
        return subprocess.run(["docker", "top", cid], capture_output=True, text=True,
                              check=True).stdout
    return _ctr("tasks", "exec", "--exec-id", f"e2e-{next(_exec_ids)}", cid, "ps", "-o", "args")


def remove_node_containers(node: str, runtime: str = "docker") -> None:
    """Remove every container (sandboxes too) kstate labelled with ``node``."""
    if runtime == "docker":
        ids = subprocess.run(["docker", "ps", "-aq", "--filter", f"label={NODE_NAME}={node}"],
                             capture_output=True, text=True, check=False).stdout.split()
        if ids:
            subprocess.run(["docker", "rm", "-f", *ids], capture_output=True, check=False)
        return
    asyncio.run(_remove_containerd_node(node))


async def _remove_containerd_node(node: str) -> None:
    from kstate.runtime.containerd import ContainerdRuntime

    rt = ContainerdRuntime(containerd_socket())
    try:
        for sandbox in await rt.list_sandboxes({NODE_NAME: node}):
            await rt.remove_sandbox(sandbox.id)
        for container in await rt.list_containers({NODE_NAME: node}):
            await rt.remove_container(container.id)
    finally:
        await rt.close()
