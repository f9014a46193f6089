"""The seed's quick start, for real: ``kstate up`` on Docker, driven with the real kubectl.

One daemon for the module (a subprocess, like a user runs it); each test waits for a
condition by polling the API through kubectl with a deadline — the daemon is another
process, so there is no watch to await from here without reimplementing kubectl.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require_binary
from tests.e2e.conftest import ROOT, build_base_images, remove_node_containers, require_docker

NODE = "e2e-quickstart"

pytestmark = [pytest.mark.docker, pytest.mark.kubectl]


class Cluster:
    def __init__(self, data_dir: Path, node: str = NODE) -> None:
        self.data_dir = data_dir
        self.node = node
        self.kubeconfig = data_dir / "admin.kubeconfig"
        self.kubectl = require_binary("kubectl")
        self.proc: subprocess.Popen[str] | None = None

    def up(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "kstate.cli", "up", "--data-dir", str(self.data_dir),
             "--listen", "127.0.0.1:0", "--node-name", self.node, "--backoff-initial", "1",
             "--backoff-cap", "8", "--node-port-address", "127.0.0.1"],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("kstate is up"):
                return
        raise AssertionError(f"kstate up exited with {self.proc.wait()}")

    def down(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=60)

    def k(self, *args: str, check: bool = True) -> str:
        done = subprocess.run([self.kubectl, "--kubeconfig", str(self.kubeconfig), *args],
                              capture_output=True, text=True, timeout=60, check=False)
        if check and done.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)}: {done.stderr}")
        return done.stdout

    def pods(self, selector: str = "app=mytomcat") -> list[dict[str, Any]]:
        return json.loads(self.k("get", "pods", "-l", selector, "-o", "json"))["items"]

    def pods_in(self, namespace: str) -> list[dict[str, Any]]:
        return json.loads(self.k("get", "pods", "-n", namespace, "-o", "json"))["items"]

    def until(self, what: str, condition: Callable[[], Any], timeout: float = 90.0) -> Any:
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            last = condition()
            if last:
                return last
            time.sleep(0.25)  # polling another process's API; not synchronisation by delay
        raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


def ready(pod: dict[str, Any]) -> bool:
    conds = {c["type"]: c["status"] for c in pod.get("status", {}).get("conditions", [])}
    return conds.get("Ready") == "True" and not pod["metadata"].get("deletionTimestamp")


def restarts(pod: dict[str, Any]) -> int:
    return sum(c.get("restartCount", 0) for c in pod["status"].get("containerStatuses", []))


def http(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.read().decode().strip()


@contextlib.contextmanager
def running_cluster(c: Cluster) -> Iterator[Cluster]:
    """``c`` up (Docker and kubectl required, base images built), then down with its
    node's containers removed."""
    require_docker()
    require_binary("kubectl")
    build_base_images()
    c.up()
    try:
        yield c
    finally:
        c.down()
        remove_node_containers(c.node)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with running_cluster(Cluster(tmp_path_factory.mktemp("quickstart"))) as c:
        yield c


def test_apply_then_two_pods_answer_in_turn_through_the_node_port(cluster: Cluster) -> None:
    cluster.k("apply", "-f", str(ROOT / "specs" / "manifests"))
    cluster.until("2 ready pods", lambda: len([p for p in cluster.pods() if ready(p)]) == 2)
    answers = {http("http://127.0.0.1:30001/") for _ in range(6)}
    names = {p["metadata"]["name"] for p in cluster.pods()}
    assert answers == {f"hello from {n}" for n in names}
    table = cluster.k("get", "pods")
    assert "Running" in table and "1/1" in table


def test_killed_container_is_restarted(cluster: Cluster) -> None:
    victim = cluster.pods()[0]
    uid = victim["metadata"]["uid"]
    cid = subprocess.run(["docker", "ps", "-q", "--filter", f"label=io.kstate.pod.uid={uid}",
                          "--filter", "label=io.kstate.role=container"],
                         capture_output=True, text=True, check=True).stdout.split()[0]
    subprocess.run(["docker", "kill", cid], check=True, capture_output=True)

    def restarted() -> bool:
        pod = next(p for p in cluster.pods() if p["metadata"]["uid"] == uid)
        return restarts(pod) == 1 and ready(pod)
    cluster.until("restartCount 1 and ready again", restarted)


def test_deleted_pod_is_replaced(cluster: Cluster) -> None:
    victim = cluster.pods()[0]["metadata"]["name"]
    cluster.k("delete", "pod", victim)
    cluster.until("a replacement", lambda: len([p for p in cluster.pods() if ready(p)]) == 2
                  and victim not in {p["metadata"]["name"] for p in cluster.pods()})


def test_scale_up_then_down_terminates_gracefully(cluster: Cluster) -> None:
    cluster.k("scale", "rc", "mytomcat", "--replicas=5")
    cluster.until("5 ready pods", lambda: len([p for p in cluster.pods() if ready(p)]) == 5)
    cluster.k("scale", "rc", "mytomcat", "--replicas=1")
    cluster.until("1 pod left", lambda: len(cluster.pods()) == 1)
    running = subprocess.run(["docker", "ps", "-q", "--filter", f"label=io.kstate.node.name={NODE}",
                              "--filter", "label=io.kstate.role=container"],
                             capture_output=True, text=True, check=True).stdout.split()
    assert len(running) == 1  # the other four containers were stopped and removed


def test_failing_readiness_takes_a_pod_out_of_the_service(cluster: Cluster) -> None:
    (pod,) = cluster.pods()
    uid, ip = pod["metadata"]["uid"], pod["status"]["podIP"]
    cid = subprocess.run(["docker", "ps", "-q", "--filter", f"label=io.kstate.pod.uid={uid}",
                          "--filter", "label=io.kstate.role=container"],
                         capture_output=True, text=True, check=True).stdout.split()[0]
    subprocess.run(["docker", "exec", cid, "rm", "/www/index.html"], check=True)

    def not_ready_address() -> bool:
        ep = json.loads(cluster.k("get", "endpoints", "mytomcat", "-o", "json"))
        subsets = ep.get("subsets") or []
        ready_ips = {a["ip"] for s in subsets for a in s.get("addresses", [])}
        waiting = {a["ip"] for s in subsets for a in s.get("notReadyAddresses", [])}
        return ip in waiting and ip not in ready_ips
    cluster.until("the pod in notReadyAddresses", not_ready_address, timeout=60)


CRASHER = """
apiVersion: v1
kind: Pod
metadata: {name: crasher, namespace: default}
spec:
  containers:
  - name: c
    image: kstate/base:1
    imagePullPolicy: Never
    command: [sh, -c, 'echo "crashing from $HOSTNAME"; exit 3']
"""


def test_crash_loop_back_off_grows_and_logs_are_served(cluster: Cluster, tmp_path: Path) -> None:
    manifest = tmp_path / "crasher.yaml"
    manifest.write_text(CRASHER)
    cluster.k("apply", "-f", str(manifest))

    def pod() -> dict[str, Any]:
        return json.loads(cluster.k("get", "pod", "crasher", "-o", "json"))

    # Record when each restart shows up: the gaps must grow (back-off 0, 1, 2, 4 s...).
    seen: dict[int, float] = {}

    def four_restarts() -> bool:
        count = restarts(pod())
        seen.setdefault(count, time.monotonic())
        return count >= 4
    cluster.until("4 restarts", four_restarts, timeout=120)
    times = [seen[n] for n in sorted(seen) if n >= 1]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert gaps and gaps[-1] > gaps[0], f"back-off did not grow: {gaps}"
    status = pod()["status"]["containerStatuses"][0]
    waiting = status["state"].get("waiting", {}).get("reason")
    assert waiting in ("CrashLoopBackOff", "ContainerCreating", None)
    assert status["lastState"]["terminated"]["exitCode"] == 3
    assert "CrashLoopBackOff" in cluster.until(
        "CrashLoopBackOff in kubectl get", lambda: cluster.k("get", "pod", "crasher")
        if "CrashLoopBackOff" in cluster.k("get", "pod", "crasher") else "", timeout=60)
    assert "crashing from crasher" in cluster.k("logs", "crasher", "--previous", check=False) \
        or "crashing from crasher" in cluster.k("logs", "crasher")
    cluster.k("delete", "pod", "crasher", "--grace-period=0", "--force")

