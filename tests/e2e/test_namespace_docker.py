"""``kubectl delete namespace`` on a real cluster: ``kstate up`` on Docker, real kubectl.

The namespace controller (in the daemon's controller manager) deletes everything in the
namespace; its pods terminate gracefully on the Docker node — one ignores SIGTERM, so
the namespace is seen Terminating with Kubernetes' conditions while it finishes — and
once the namespace is empty it is finalized and gone, and so are its pods' containers
(``docker ps -a`` with the cluster's ``io.kstate.cluster`` label).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kstate.daemon import CLUSTER_ID_FILE
from kstate.runtime.base import CLUSTER, POD_NAMESPACE
from tests.e2e.test_quickstart import Cluster, ready, running_cluster

pytestmark = [pytest.mark.docker, pytest.mark.kubectl]

NODE = "e2e-namespace"

#: An RC of 2 (the quick start's server) and a pod that ignores SIGTERM for its 8 s of
#: grace, so the namespace waits for it.
MANIFEST = """
apiVersion: v1
kind: Namespace
metadata: {name: foo}
---
apiVersion: v1
kind: ReplicationController
metadata: {name: web, namespace: foo}
spec:
  replicas: 2
  selector: {app: web}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: kstate/httpd:1
        imagePullPolicy: Never
        command: ["sh", "-c", "mkdir -p /www && echo hi > /www/index.html;
                  trap 'exit 0' TERM; httpd -f -p 8080 -h /www & wait"]
        ports: [{containerPort: 8080}]
---
apiVersion: v1
kind: Pod
metadata: {name: stubborn, namespace: foo, labels: {app: stubborn}}
spec:
  terminationGracePeriodSeconds: 8
  containers:
  - name: main
    image: kstate/base:1
    imagePullPolicy: Never
    command: ["sh", "-c", "trap '' TERM; while true; do sleep 1; done"]
"""


class NamespaceCluster(Cluster):
    def containers(self, namespace: str) -> list[str]:
        """Every container and sandbox of this cluster in ``namespace``, stopped or not."""
        cluster = (self.data_dir / CLUSTER_ID_FILE).read_text().strip()
        return subprocess.run(
            ["docker", "ps", "-aq", "--filter", f"label={CLUSTER}={cluster}",
             "--filter", f"label={POD_NAMESPACE}={namespace}"],
            capture_output=True, text=True, check=True).stdout.split()

    def namespace(self, name: str) -> dict[str, Any] | None:
        done = subprocess.run([self.kubectl, "--kubeconfig", str(self.kubeconfig), "get",
                               "ns", name, "-o", "json"], capture_output=True, text=True,
                              timeout=60, check=False)
        return json.loads(done.stdout) if done.returncode == 0 else None


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NamespaceCluster]:
    with running_cluster(NamespaceCluster(tmp_path_factory.mktemp("namespace"), node=NODE)) as c:
        yield c


def test_delete_namespace_removes_its_pods_and_their_containers(
        cluster: NamespaceCluster, tmp_path: Path) -> None:
    manifest = tmp_path / "foo.yaml"
    manifest.write_text(MANIFEST)
    cluster.k("apply", "-f", str(manifest))
    assert cluster.namespace("foo")["spec"] == {"finalizers": ["kubernetes"]}  # type: ignore[index]
    cluster.until("3 ready pods in foo", lambda: len(
        [p for p in cluster.pods_in("foo") if ready(p)]) == 3)
    assert cluster.containers("foo")

    cluster.k("delete", "namespace", "foo", "--wait=false")
    refused = subprocess.run(
        [cluster.kubectl, "--kubeconfig", str(cluster.kubeconfig), "run", "late", "-n",
         "foo", "--image", "kstate/httpd:1"], capture_output=True, text=True, timeout=60,
        check=False)
    assert refused.returncode != 0
    assert ("unable to create new content in namespace foo because it is being terminated"
            in refused.stderr)

    def terminating_with_conditions() -> dict[str, Any] | None:
        ns = cluster.namespace("foo")
        conditions = {c["type"]: c for c in (ns or {}).get("status", {})
                      .get("conditions", [])}
        remaining = conditions.get("NamespaceContentRemaining", {})
        return ns if remaining.get("status") == "True" else None
    ns = cluster.until("foo Terminating with NamespaceContentRemaining",
                       terminating_with_conditions, timeout=30)
    assert ns["status"]["phase"] == "Terminating" and ns["metadata"]["deletionTimestamp"]
    conditions = {c["type"]: c for c in ns["status"]["conditions"]}
    assert set(conditions) == {
        "NamespaceDeletionDiscoveryFailure", "NamespaceDeletionGroupVersionParsingFailure",
        "NamespaceDeletionContentFailure", "NamespaceContentRemaining",
        "NamespaceFinalizersRemaining"}
    remaining = conditions["NamespaceContentRemaining"]
    assert remaining["reason"] == "SomeResourcesRemain"
    assert remaining["message"].startswith("Some resources are remaining: pods. has ")
    assert conditions["NamespaceDeletionDiscoveryFailure"]["status"] == "False"
    table = cluster.k("get", "ns", "foo")
    assert "Terminating" in table

    # The stubborn pod is killed at the end of its grace period; then foo is gone.
    cluster.until("namespace foo gone", lambda: cluster.namespace("foo") is None, timeout=60)
    assert cluster.k("get", "pods", "-n", "foo", "-o", "name") == ""
    cluster.until("foo's containers removed", lambda: not cluster.containers("foo"),
                  timeout=60)
