"""``kstate down --purge`` on Docker and on containerd: after it, no container the cluster
created remains, running or stopped — whether the daemon was alive or already killed —
and a container of another cluster on the same engine (same node name even) is untouched.

What is left is asked of the engine itself (``docker ps -a``, or ``ctr`` in containerd's
``k8s.io`` namespace, filtered by the cluster label), not of kstate. The daemon is another
process: the tests wait for its containers by polling the engine with a deadline.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kstate.daemon import CLUSTER_ID_FILE
from kstate.runtime.base import CLUSTER, MANAGED, NODE_NAME, POD_UID, ROLE, ROLE_SANDBOX
from tests.e2e.conftest import (
    POLL,
    ROOT,
    RUNTIMES,
    labelled_containers,
    prepare_images,
    remove_node_containers,
    require_runtime,
    up_args,
)

#: Two pods of two containers each: one keeps running, one exits and (after one
#: immediate restart) waits out a long back-off — so the cluster has stopped containers.
RC = """
apiVersion: v1
kind: ReplicationController
metadata: {name: purge-me}
spec:
  replicas: 2
  selector: {app: purge-me}
  template:
    metadata:
      labels: {app: purge-me}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: server
        image: kstate/base:1
        imagePullPolicy: Never
        command: [sh, -c, "trap 'exit 0' TERM; sleep 3600 & wait"]
      - name: quitter
        image: kstate/base:1
        imagePullPolicy: Never
        command: [sh, -c, "exit 3"]
"""


def engine_ps(runtime: str, label: str) -> list[tuple[str, str]]:
    """(state, role) of every container, running or not, labelled ``label`` (key=value)."""
    key, _, value = label.partition("=")
    return [(c.state, c.role) for c in labelled_containers(runtime, key, value)]


def until(what: str, condition: Callable[[], bool], timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(POLL)  # polling another process's containers; not synchronisation by delay


class Daemon:
    """``kstate up`` with the RC above applied, in a session of its own."""

    def __init__(self, data_dir: Path, node: str, runtime: str) -> None:
        self.data_dir = data_dir
        self.node = node
        self.runtime = runtime
        self.proc: subprocess.Popen[str] | None = None

    def up(self) -> None:
        manifest = self.data_dir.parent / "rc.yaml"
        manifest.write_text(RC)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "kstate.cli", "up", "--data-dir", str(self.data_dir),
             "--listen", "127.0.0.1:0", *up_args(self.runtime), "--node-name", self.node,
             "--node-port-address",
             "127.0.0.1", "--backoff-initial", "300", "--apply", str(manifest)],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            start_new_session=True)
        assert self.proc.stdout is not None
        output = []
        for line in self.proc.stdout:
            output.append(line)
            if line.startswith("kstate is up"):
                return
        raise AssertionError(f"kstate up exited with {self.proc.wait()}:\n{''.join(output)}")

    @property
    def cluster_label(self) -> str:
        return f"{CLUSTER}={(self.data_dir / CLUSTER_ID_FILE).read_text().strip()}"

    def wait_for_running_and_stopped_containers(self) -> None:
        def both() -> bool:
            found = engine_ps(self.runtime, self.cluster_label)
            running_apps = [s for s, role in found if s == "running" and role == "container"]
            stopped = [s for s, _ in found if s != "running"]
            sandboxes = [s for s, role in found if role == ROLE_SANDBOX]
            return len(running_apps) == 2 and len(sandboxes) == 2 and len(stopped) >= 1
        until("2 sandboxes, 2 running servers and a stopped quitter", both)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(timeout=30)


def kstate_down(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kstate.cli", "down", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=180, check=False)


@pytest.fixture(params=RUNTIMES)
def daemon(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Daemon]:
    runtime = request.param
    require_runtime(runtime)
    prepare_images(runtime)
    node = f"e2e-purge-{uuid.uuid4().hex[:8]}"
    d = Daemon(tmp_path / "data", node, runtime)
    try:
        yield d
    finally:
        d.kill()
        remove_node_containers(node, runtime)


@pytest.fixture
def bystander(daemon: Daemon) -> Iterator[str]:
    """A running sandbox of another cluster, labelled with the same node name; its pod
    uid is returned."""
    name = f"kstate-test-bystander-{uuid.uuid4().hex[:8]}"
    uid = f"other-{name}"
    if daemon.runtime == "docker":
        labels = {MANAGED: "true", ROLE: ROLE_SANDBOX, NODE_NAME: daemon.node,
                  POD_UID: uid, CLUSTER: f"other-{name}"}
        args = ["docker", "run", "-d", "--name", name]
        for key, value in labels.items():
            args += ["--label", f"{key}={value}"]
        subprocess.run([*args, "kstate/base:1", "sleep", "3600"], capture_output=True,
                       check=True)
    else:
        asyncio.run(_containerd_bystander(daemon.node, uid, f"other-{name}"))
    try:
        yield uid
    finally:
        if daemon.runtime == "docker":
            subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)


async def _containerd_bystander(node: str, uid: str, cluster: str) -> None:
    from kstate.runtime.base import SandboxSpec
    from kstate.runtime.containerd import ContainerdRuntime

    rt = ContainerdRuntime(cluster=cluster)
    try:
        await rt.create_sandbox(SandboxSpec(pod_uid=uid, namespace="other", name="bystander",
                                            node_name=node))
    finally:
        await rt.close()


def running_pods(daemon: Daemon) -> list[str]:
    """Pod uids of the running containers labelled with the daemon's node name."""
    return sorted({c.pod_uid for c in labelled_containers(daemon.runtime, NODE_NAME,
                                                           daemon.node)
                   if c.state == "running"})


def test_purge_stops_the_daemon_and_removes_every_container_it_created(
        daemon: Daemon, bystander: str) -> None:
    daemon.up()
    daemon.wait_for_running_and_stopped_containers()
    cluster = daemon.cluster_label

    done = kstate_down("--data-dir", str(daemon.data_dir), "--purge")
    assert done.returncode == 0, done.stderr
    assert "kstate stopped" in done.stdout
    assert daemon.proc is not None and daemon.proc.wait(timeout=30) == 0
    assert engine_ps(daemon.runtime, cluster) == [], done.stdout
    # The other cluster's sandbox on the same node name: neither adopted and torn down
    # by the daemon as an orphan nor purged.
    assert running_pods(daemon) == [bystander]
    assert (daemon.data_dir / CLUSTER_ID_FILE).exists()  # --purge keeps the data


def test_purge_after_the_daemon_was_killed_removes_what_it_left(
        daemon: Daemon, bystander: str) -> None:
    daemon.up()
    daemon.wait_for_running_and_stopped_containers()
    cluster = daemon.cluster_label
    daemon.kill()  # SIGKILL: its containers keep running
    assert engine_ps(daemon.runtime, cluster)

    done = kstate_down("--data-dir", str(daemon.data_dir), "--purge", "--delete-data")
    assert done.returncode == 0, done.stderr
    assert "no kstate daemon was running" in done.stdout
    assert engine_ps(daemon.runtime, cluster) == []
    assert running_pods(daemon) == [bystander]
    assert not daemon.data_dir.exists()
