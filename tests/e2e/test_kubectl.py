"""The real kubectl against ``kstate apiserver``: HTTPS, the generated kubeconfig, default
client-side behaviour (validation, discovery, OpenAPI, Table output, strategic merge
patches) — with the newest, the oldest and the default kubectl installed.

The server runs as its own process (``python -m kstate.cli apiserver``) over a SQLite
store in a temporary directory, one per kubectl version so each starts from nothing.
No sleeps: ``kubectl get -w`` is read line by line with a deadline.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest
import yaml

from tests.conftest import require, require_binary

pytestmark = pytest.mark.kubectl

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "specs" / "manifests"
VERSIONS = ("1.27", "1.32", "1.33")


# ------------------------------------------------------------------ the server


@attrs.frozen
class Server:
    url: str
    kubeconfig: Path
    data_dir: Path


@contextlib.contextmanager
def start_apiserver(data_dir: Path, *extra: str) -> Iterator[Server]:
    """``kstate apiserver`` on a free loopback port; yields once it listens."""
    cmd = [sys.executable, "-u", "-m", "kstate.cli", "apiserver",
           "--store", f"sqlite:///{data_dir}/state.db", "--listen", "127.0.0.1:0",
           "--data-dir", str(data_dir), *extra]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    lines = _reader(proc.stdout)
    url = kubeconfig = ""
    deadline = time.monotonic() + 30
    try:
        while not (url and kubeconfig):
            try:
                line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"apiserver did not start: {proc.stderr.read()}"
                                     if proc.poll() is not None and proc.stderr
                                     else "apiserver did not start in 30 s") from None
            if line is None:
                stderr = proc.stderr.read() if proc.stderr else ""
                raise AssertionError(f"apiserver exited: {stderr}")
            if "listening on " in line:
                url = line.rsplit(" ", 1)[1].strip()
            if line.startswith("kubeconfig: "):
                kubeconfig = line.split(": ", 1)[1].strip()
        yield Server(url, Path(kubeconfig), data_dir)
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _reader(stream: object) -> queue.Queue[str | None]:
    """Lines of a pipe, through a queue (so reads can time out)."""
    out: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        for line in stream:  # type: ignore[attr-defined]
            out.put(line)
        out.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return out


# ------------------------------------------------------------------ kubectl


def kubectl_binary(version: str) -> str:
    default = require_binary("kubectl")
    candidate = Path(os.path.realpath(default)).parent / f"kubectl.{version}"
    path = shutil.which(f"kubectl.{version}") or (str(candidate) if candidate.exists()
                                                  else None)
    require(path is not None, f"kubectl {version}")
    assert path is not None
    return path


@attrs.frozen
class Kubectl:
    binary: str
    server: Server
    home: Path

    def env(self, **extra: str) -> dict[str, str]:
        return {**os.environ, "HOME": str(self.home), "KUBECONFIG": str(self.server.kubeconfig),
                **extra}

    def run(self, *args: str, check: bool = True, env: dict[str, str] | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([self.binary, *args], capture_output=True, text=True,
                              env=env or self.env(), timeout=timeout, cwd=ROOT)
        if check and done.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({done.returncode}):\n"
                                 f"{done.stdout}\n{done.stderr}")
        return done

    def out(self, *args: str) -> str:
        return self.run(*args).stdout

    def json(self, *args: str) -> dict[str, object]:
        data = json.loads(self.out(*args, "-o", "json"))
        assert isinstance(data, dict)
        return data


@pytest.fixture(scope="module", params=VERSIONS)
def kubectl(request: pytest.FixtureRequest,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kubectl]:
    version = str(request.param)
    binary = kubectl_binary(version)
    data = tmp_path_factory.mktemp(f"apiserver-{version}")
    home = tmp_path_factory.mktemp(f"home-{version}")
    with start_apiserver(data) as server:
        yield Kubectl(binary, server, home)


def header(text: str) -> list[str]:
    return text.splitlines()[0].split()


def rows(text: str) -> dict[str, list[str]]:
    return {line.split()[0]: line.split() for line in text.splitlines()[1:] if line.strip()}


# ------------------------------------------------------------------ the tests
#
# One module-scoped server per kubectl version; the tests run in file order and build
# on each other's objects (apply first, delete last), as a user session would.


def test_apply_the_manifests(kubectl: Kubectl) -> None:
    out = kubectl.out("apply", "-f", str(MANIFESTS))
    assert "replicationcontroller/mytomcat created" in out
    assert "service/mytomcat created" in out
    examples = MANIFESTS / "examples"
    kubectl.out("apply", "-f", str(examples / "shop.yaml"))
    out = kubectl.out("apply", "-f", str(examples))
    assert "node/node-1 created" in out and "pod/countdown created" in out
    assert "service/web created" in out and "namespace/shop unchanged" in out


def test_get_default_wide_json_yaml(kubectl: Kubectl) -> None:
    rc = kubectl.out("get", "rc")
    assert header(rc) == ["NAME", "DESIRED", "CURRENT", "READY", "AGE"]
    assert rows(rc)["mytomcat"][1:4] == ["2", "0", "0"]
    wide = kubectl.out("get", "rc", "-o", "wide")
    assert header(wide)[-3:] == ["CONTAINERS", "IMAGES", "SELECTOR"]
    assert rows(wide)["mytomcat"][-2:] == ["kstate/httpd:1", "app=mytomcat"]
    svc = kubectl.out("get", "svc")
    assert header(svc) == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
    assert rows(svc)["mytomcat"][1] == "NodePort"
    assert rows(svc)["mytomcat"][4] == "8080:30001/TCP"
    assert rows(svc)["mytomcat-pods"][2] == "None"
    pods = kubectl.out("get", "pods", "-o", "wide")
    assert header(pods)[:5] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert rows(pods)["countdown"][1:3] == ["0/1", "Pending"]
    nodes = kubectl.out("get", "nodes")
    assert header(nodes) == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    assert rows(nodes)["node-1"][1] == "Unknown"
    ns = kubectl.out("get", "ns")
    assert set(rows(ns)) >= {"default", "kube-system", "kube-public", "kube-node-lease", "shop"}

    service = kubectl.json("get", "svc", "mytomcat")
    spec = service["spec"]
    assert isinstance(spec, dict)
    assert spec["ports"][0]["nodePort"] == 30001
    assert spec["clusterIP"].startswith("127.")
    as_yaml = yaml.safe_load(kubectl.out("get", "rc", "mytomcat", "-o", "yaml"))
    assert as_yaml["spec"]["template"]["spec"]["containers"][0]["name"] == "mytomcat"
    listed = kubectl.json("get", "pods,rc,svc", "-n", "shop")
    assert {i["kind"] for i in listed["items"]} >= {"ReplicationController",  # type: ignore[union-attr]
                                                    "Service"}
    assert kubectl.out("get", "rc", "mytomcat", "-o", "jsonpath={.spec.replicas}") == "2"
    assert "mytomcat" in kubectl.out("get", "all")


def test_describe(kubectl: Kubectl) -> None:
    rc = kubectl.out("describe", "rc", "mytomcat")
    assert "Replicas:" in rc and "Pod Template:" in rc and "kstate/httpd:1" in rc
    pod = kubectl.out("describe", "pod", "countdown")
    assert "Status:" in pod and "Pending" in pod
    assert "node.kubernetes.io/not-ready:NoExecute op=Exists for 300s" in pod
    node = kubectl.out("describe", "node", "node-1")
    assert "dedicated=web:NoSchedule" in node
    svc = kubectl.out("describe", "svc", "mytomcat")
    assert "NodePort:" in svc and "30001/TCP" in svc


def test_scale_label_annotate_edit(kubectl: Kubectl) -> None:
    assert "scaled" in kubectl.out("scale", "rc", "mytomcat", "--replicas=5")
    assert kubectl.out("get", "rc", "mytomcat", "-o", "jsonpath={.spec.replicas}") == "5"
    assert "labeled" in kubectl.out("label", "rc", "mytomcat", "tier=web")
    assert "mytomcat" in rows(kubectl.out("get", "rc", "-l", "tier=web"))
    # ("annotate" without "d": kubectl 1.27 prints it so)
    assert "annotate" in kubectl.out("annotate", "rc", "mytomcat", "note=hello")
    meta = kubectl.json("get", "rc", "mytomcat")["metadata"]
    assert isinstance(meta, dict) and meta["annotations"]["note"] == "hello"
    editor = kubectl.home / "editor.sh"
    editor.write_text("#!/bin/sh\nsed -i 's/replicas: 5/replicas: 4/' \"$1\"\n")
    editor.chmod(0o755)
    edited = kubectl.run("edit", "rc", "mytomcat", env=kubectl.env(EDITOR=str(editor)))
    assert "edited" in edited.stdout
    assert kubectl.out("get", "rc", "mytomcat", "-o", "jsonpath={.spec.replicas}") == "4"
    kubectl.out("label", "rc", "mytomcat", "tier-")
    assert "tier" not in kubectl.out("get", "rc", "mytomcat", "--show-labels")


def test_apply_again_is_a_strategic_merge(kubectl: Kubectl) -> None:
    out = kubectl.out("apply", "-f", str(MANIFESTS))
    assert "replicationcontroller/mytomcat configured" in out  # replicas back to 2
    assert "service/mytomcat unchanged" in out
    again = kubectl.out("apply", "-f", str(MANIFESTS))
    assert "replicationcontroller/mytomcat unchanged" in again
    changed = kubectl.home / "mytomcat.rc.yaml"
    changed.write_text((MANIFESTS / "mytomcat.rc.yaml").read_text()
                       .replace("kstate/httpd:1", "kstate/httpd:2"))
    assert "configured" in kubectl.out("apply", "-f", str(changed))
    rc = kubectl.json("get", "rc", "mytomcat")
    container = rc["spec"]["template"]["spec"]["containers"][0]  # type: ignore[index]
    assert container["image"] == "kstate/httpd:2"
    assert container["readinessProbe"]["httpGet"]["port"] == 8080  # merged, not replaced
    assert rc["metadata"]["annotations"]["note"] == "hello"  # type: ignore[index]
    assert "kubectl.kubernetes.io/last-applied-configuration" in \
        rc["metadata"]["annotations"]  # type: ignore[index]


def test_watch_sees_a_change(kubectl: Kubectl) -> None:
    proc = subprocess.Popen([kubectl.binary, "get", "pods", "-w"], env=kubectl.env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = _reader(proc.stdout)
    try:
        def next_line() -> str:
            line = lines.get(timeout=20)
            assert line is not None, proc.stderr.read() if proc.stderr else ""
            return line

        assert next_line().split()[:3] == ["NAME", "READY", "STATUS"]
        assert next_line().split()[0] == "countdown"
        kubectl.out("label", "pod", "countdown", "watched=yes")
        assert next_line().split()[0] == "countdown"
    finally:
        proc.terminate()
        proc.wait(10)


def test_explain(kubectl: Kubectl) -> None:
    out = kubectl.out("explain", "pod.spec")
    assert "containers" in out and "restartPolicy" in out
    assert "containerPort" in kubectl.out("explain", "pod.spec.containers.ports")


def test_bad_manifests_are_rejected_with_the_field(kubectl: Kubectl) -> None:
    unknown = kubectl.home / "unknown.yaml"
    unknown.write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: bad1}\nspec:\n"
                       "  containers:\n  - {name: c, image: x, portz: [1]}\n")
    done = kubectl.run("apply", "-f", str(unknown), check=False)
    assert done.returncode != 0
    assert 'unknown field "spec.containers[0].portz"' in done.stderr
    invalid = kubectl.home / "invalid.yaml"
    invalid.write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: bad2}\nspec:\n"
                       "  containers:\n  - {name: c, image: x, ports: [{containerPort: 99999}]}\n")
    done = kubectl.run("apply", "-f", str(invalid), check=False)
    assert done.returncode != 0
    assert "spec.containers[0].ports[0].containerPort" in done.stderr
    assert "Invalid value: 99999" in done.stderr
    taken = kubectl.home / "taken.yaml"
    taken.write_text((MANIFESTS / "mytomcat.svc.yaml").read_text()
                     .replace("name: mytomcat\n  labels", "name: other\n  labels"))
    done = kubectl.run("apply", "-f", str(taken), check=False)
    assert done.returncode != 0 and "spec.ports[0].nodePort" in done.stderr


def test_delete_with_cascade_variants(kubectl: Kubectl) -> None:
    for name in ("bg", "fg", "orphan"):
        manifest = (MANIFESTS / "mytomcat.rc.yaml").read_text().replace(
            "name: mytomcat\n  labels", f"name: {name}\n  labels")
        path = kubectl.home / f"{name}.yaml"
        path.write_text(manifest)
        kubectl.out("create", "-f", str(path))
    out = kubectl.out("delete", "rc", "bg", "--cascade=background")
    assert 'replicationcontroller "bg" deleted' in out
    assert kubectl.run("get", "rc", "bg", check=False).returncode != 0
    kubectl.out("delete", "rc", "fg", "--cascade=foreground", "--wait=false")
    kubectl.out("delete", "rc", "orphan", "--cascade=orphan", "--wait=false")
    fg = kubectl.json("get", "rc", "fg")["metadata"]
    orphan = kubectl.json("get", "rc", "orphan")["metadata"]
    assert isinstance(fg, dict) and isinstance(orphan, dict)
    # Kept behind their finalizers until the garbage collector releases them.
    assert fg["finalizers"] == ["foregroundDeletion"] and fg["deletionTimestamp"]
    assert orphan["finalizers"] == ["orphan"] and orphan["deletionTimestamp"]
    assert "pod \"countdown\" deleted" in kubectl.out("delete", "pod", "countdown")
    kubectl.out("delete", "-f", str(MANIFESTS))
    assert kubectl.run("get", "svc", "mytomcat", check=False).returncode != 0
    # Only the api server runs here: it marks the namespace (the namespace controller,
    # in the controller manager, would empty and finalize it — see test_namespace.py).
    kubectl.out("delete", "namespace", "shop", "--wait=false")
    shop = kubectl.json("get", "namespace", "shop")
    assert shop["status"] == {"phase": "Terminating"}
    assert shop["spec"] == {"finalizers": ["kubernetes"]}
