"""The seed's quick start, for real: ``kstate up`` on Docker and on containerd, driven with
the real kubectl.

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

from tests.conftest import require, require_binary
from tests.e2e.conftest import (
    POLL,
    ROOT,
    RUNTIMES,
    exec_in,
    kill_container,
    prepare_images,
    remove_node_containers,
    require_runtime,
    running_app_containers,
    up_args,
)

NODE = "e2e-quickstart"

pytestmark = [pytest.mark.kubectl]


class Cluster:
    def __init__(self, data_dir: Path, runtime: str = "docker", node: str = "") -> None:
        self.data_dir = data_dir
        self.runtime = runtime
        self.node = node or f"{NODE}-{runtime}"
        self.kubeconfig = data_dir / "admin.kubeconfig"
        self.kubectl = require_binary("kubectl")
        self.proc: subprocess.Popen[str] | None = None

    def up(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "kstate.cli", "up", "--data-dir", str(self.data_dir),
             "--listen", "127.0.0.1:0", *up_args(self.runtime), "--node-name", self.node,
             "--backoff-initial", "1",
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
            time.sleep(POLL)  # polling another process's API; not synchronisation by delay
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
    """``c`` up (its runtime and kubectl required, base images ready), then down with its
    node's containers removed."""
    require_runtime(c.runtime)
    require_binary("kubectl")
    prepare_images(c.runtime)
    c.up()
    try:
        yield c
    finally:
        c.down()
        remove_node_containers(c.node, c.runtime)


@pytest.fixture(scope="module", params=RUNTIMES)
def cluster(request: pytest.FixtureRequest,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    runtime = request.param
    with running_cluster(Cluster(tmp_path_factory.mktemp(f"quickstart-{runtime}"),
                                 runtime)) as c:
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
    cid = running_app_containers(cluster.runtime, "io.kstate.pod.uid", uid)[0]
    kill_container(cluster.runtime, cid)

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
    running = running_app_containers(cluster.runtime, "io.kstate.node.name", cluster.node)
    assert len(running) == 1  # the other four containers were stopped and removed


def test_failing_readiness_takes_a_pod_out_of_the_service(cluster: Cluster) -> None:
    (pod,) = cluster.pods()
    uid, ip = pod["metadata"]["uid"], pod["status"]["podIP"]
    cid = running_app_containers(cluster.runtime, "io.kstate.pod.uid", uid)[0]
    exec_in(cluster.runtime, cid, "rm", "/www/index.html")

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



def test_containerd_restarting_mid_run_pods_recover(cluster: Cluster) -> None:
    """containerd stops and starts under the running cluster: its shims keep the pods'
    containers running, the agent rides out the outage (relist, resubscribe), nothing
    restarts or is duplicated, and the node keeps working afterwards."""
    if cluster.runtime != "containerd":
        pytest.skip("a containerd restart (Docker's is dockerd's business)")
    from kstate.runtime.containerd_host import ContainerdHost
    from tests.e2e.conftest import containerd_socket

    host = ContainerdHost(state_dir=Path(containerd_socket()).parent)
    require(host.pid_path.exists(), f"a containerd started by kstate ({host.pid_path})")
    cluster.k("scale", "rc", "mytomcat", "--replicas=2")
    for pod in cluster.pods():  # the readiness test left one unready on purpose
        if not ready(pod):
            cluster.k("delete", "pod", pod["metadata"]["name"])
    cluster.until("2 ready pods", lambda: len(cluster.pods()) == 2
                  and all(ready(p) for p in cluster.pods()))
    before = {p["metadata"]["uid"]: restarts(p) for p in cluster.pods()}
    host.stop()
    host.start()

    def same_pods_ready() -> bool:
        pods = cluster.pods()
        return ({p["metadata"]["uid"]: restarts(p) for p in pods if ready(p)} == before
                and len(pods) == len(before))
    cluster.until("the same pods ready, no restarts", same_pods_ready)
    assert len(running_app_containers(cluster.runtime, "io.kstate.node.name",
                                      cluster.node)) == len(before)
    victim = cluster.pods()[0]["metadata"]["name"]
    cluster.k("delete", "pod", victim)
    cluster.until("a replacement after the restart", lambda: len(
        [p for p in cluster.pods() if ready(p)]) == len(before)
        and victim not in {p["metadata"]["name"] for p in cluster.pods()})
    assert http("http://127.0.0.1:30001/").startswith("hello from ")


ABSENT = """
apiVersion: v1
kind: Pod
metadata: {{name: absent-{policy}, namespace: default}}
spec:
  containers:
  - name: c
    image: kstate/absent:1
    imagePullPolicy: {Policy}
"""


@pytest.mark.parametrize(("policy", "reasons"), [("Never", {"ErrImageNeverPull"}),
                                                  ("IfNotPresent", {"ErrImagePull",
                                                                    "ImagePullBackOff"})])
def test_an_image_that_is_not_there(cluster: Cluster, tmp_path: Path, policy: str,
                                    reasons: set[str]) -> None:
    """No registry: Never is ErrImageNeverPull; a pull that fails is ErrImagePull, retried
    with back-off (the pod's phase ImagePullBackOff) — as Kubernetes reports them, on
    either runtime."""
    name = f"absent-{policy.lower()}"
    manifest = tmp_path / "absent.yaml"
    manifest.write_text(ABSENT.format(policy=policy.lower(), Policy=policy))
    cluster.k("apply", "-f", str(manifest))

    def waiting() -> str:
        pod = json.loads(cluster.k("get", "pod", name, "-o", "json"))
        statuses = pod["status"].get("containerStatuses") or [{}]
        found = statuses[0].get("state", {}).get("waiting", {}).get("reason", "")
        return found if found in reasons else ""
    cluster.until(f"waiting reason in {sorted(reasons)}", waiting, timeout=60)
    pod = json.loads(cluster.k("get", "pod", name, "-o", "json"))
    assert pod["status"]["phase"] == "Pending"
    assert policy in pod["status"]["containerStatuses"][0]["state"]["waiting"]["message"] \
        or "not present" in pod["status"]["containerStatuses"][0]["state"]["waiting"]["message"]
    cluster.k("delete", "pod", name, "--grace-period=0", "--force")
