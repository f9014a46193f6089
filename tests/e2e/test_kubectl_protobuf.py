"""Real kubectl speaking protobuf: every ``kubectl create <subcommand>`` whose kind the
server serves succeeds, the rest get a clean NotFound (never UnsupportedMediaType), and
kubectl's typed reads (``describe``, ``events``) get protobuf answers that print exactly
what the same command prints from JSON, and client-go's protobuf watch (``kubectl run
-i`` waiting for its pod) sees the change it waits for.

kubectl 1.32 and newer send typed creates as ``application/vnd.kubernetes.protobuf`` and
accept ``application/vnd.kubernetes.protobuf,application/json``; 1.27 sends JSON. One
server for the module; each version creates its own objects (names end in its number).
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator

import pytest

from kstate.api.server import discovery
from tests.e2e.test_kubectl import Kubectl, Server, _reader, kubectl_binary, start_apiserver

pytestmark = pytest.mark.kubectl

VERSIONS = ("1.27", "1.33")
PROTOBUF = "application/vnd.kubernetes.protobuf"

#: ``kubectl create`` subcommands: (arguments with {n} for a unique name, the
#: group/version and resource the command writes).
CREATE = [
    (["namespace", "ns-{n}"], "v1", "namespaces"),
    (["service", "clusterip", "cip-{n}", "--tcp=80:8080"], "v1", "services"),
    (["service", "clusterip", "headless-{n}", "--clusterip=None"], "v1", "services"),
    (["service", "nodeport", "np-{n}", "--tcp=80:8080"], "v1", "services"),
    (["service", "loadbalancer", "lb-{n}", "--tcp=80"], "v1", "services"),
    (["service", "externalname", "ext-{n}", "--external-name=example.com"], "v1",
     "services"),
    (["configmap", "cm-{n}", "--from-literal=a=b"], "v1", "configmaps"),
    (["secret", "generic", "s-{n}", "--from-literal=a=b"], "v1", "secrets"),
    (["secret", "docker-registry", "dr-{n}", "--docker-server=r", "--docker-username=u",
      "--docker-password=p"], "v1", "secrets"),
    (["serviceaccount", "sa-{n}"], "v1", "serviceaccounts"),
    (["quota", "q-{n}", "--hard=pods=2"], "v1", "resourcequotas"),
    (["deployment", "d-{n}", "--image=nginx"], "apps/v1", "deployments"),
    (["job", "j-{n}", "--image=busybox"], "batch/v1", "jobs"),
    (["cronjob", "cj-{n}", "--image=busybox", "--schedule=*/5 * * * *"], "batch/v1",
     "cronjobs"),
    (["ingress", "i-{n}", "--rule=example.com/=svc:80"], "networking.k8s.io/v1",
     "ingresses"),
    (["poddisruptionbudget", "pdb-{n}", "--selector=a=b", "--min-available=1"], "policy/v1",
     "poddisruptionbudgets"),
    (["priorityclass", "pc-{n}", "--value=10"], "scheduling.k8s.io/v1", "priorityclasses"),
    (["role", "r-{n}", "--verb=get", "--resource=pods"], "rbac.authorization.k8s.io/v1",
     "roles"),
    (["rolebinding", "rb-{n}", "--role=r"], "rbac.authorization.k8s.io/v1", "rolebindings"),
    (["clusterrole", "cr-{n}", "--verb=get", "--resource=pods"],
     "rbac.authorization.k8s.io/v1", "clusterroles"),
    (["clusterrolebinding", "crb-{n}", "--clusterrole=cr"], "rbac.authorization.k8s.io/v1",
     "clusterrolebindings"),
]


def _served(group_version: str, resource: str) -> bool:
    group, _, version = group_version.rpartition("/")
    return discovery.lookup(group, version, resource) is not None


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with start_apiserver(tmp_path_factory.mktemp("apiserver-protobuf")) as running:
        yield running


def _kubectl(version: str, server: Server,
             tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    return Kubectl(kubectl_binary(version), server, tmp_path_factory.mktemp(f"home-{version}"))


@pytest.mark.parametrize("version", VERSIONS)
def test_every_create_subcommand_of_a_served_kind_succeeds(
        version: str, server: Server,
        tmp_path_factory: pytest.TempPathFactory) -> None:
    kubectl = _kubectl(version, server, tmp_path_factory)
    n = version.replace(".", "")
    served = 0
    for args, group_version, resource in CREATE:
        argv = ["create", *(a.format(n=n) for a in args)]
        done = kubectl.run(*argv, "-v=8", check=False)
        if _served(group_version, resource):
            served += 1
            assert done.returncode == 0, (argv, done.stderr[-2000:])
            assert "created" in done.stdout, (argv, done.stdout)
            if version != "1.27":  # the body went as protobuf, and so did the answer
                assert f"Content-Type: {PROTOBUF}" in done.stderr, argv
        else:
            assert done.returncode != 0, argv
            assert "UnsupportedMediaType" not in done.stderr, (argv, done.stderr[-2000:])
            assert "could not find the requested resource" in done.stderr, (
                argv, done.stderr[-2000:])
    assert served >= 6  # namespace and the five services at least
    listed = kubectl.out("get", "svc", "-o", "name")
    assert f"service/np-{n}" in listed and f"service/ext-{n}" in listed
    assert f"namespace/ns-{n}" in kubectl.out("get", "ns", "-o", "name")
    # A duplicate is a protobuf Status that kubectl reads as AlreadyExists.
    again = kubectl.run("create", "namespace", f"ns-{n}", check=False)
    assert again.returncode != 0 and "AlreadyExists" in again.stderr


def test_typed_reads_in_protobuf_print_what_json_prints(
        server: Server, tmp_path_factory: pytest.TempPathFactory) -> None:
    new = _kubectl("1.33", server, tmp_path_factory)
    old = _kubectl("1.27", server, tmp_path_factory)  # reads in JSON
    new.run("create", "namespace", "reads")
    new.run("create", "service", "nodeport", "web", "--tcp=80:8080", "-n", "reads")
    new.run("run", "p", "--image=nginx", "-n", "reads", "--labels=app=web")
    for target in (["pod", "p"], ["svc", "web"], ["ns", "reads"]):
        verbose = new.run("describe", *target, "-n", "reads", "-v=8")
        assert f"Accept: {PROTOBUF},application/json" in verbose.stderr
        assert f"Content-Type: {PROTOBUF}" in verbose.stderr
        assert new.out("describe", *target, "-n", "reads") == \
            old.out("describe", *target, "-n", "reads")
    events = new.run("events", "-n", "reads", "-v=8")
    assert f"Content-Type: {PROTOBUF}" in events.stderr


def test_a_protobuf_watch_drives_kubectl(server: Server,
                                         tmp_path_factory: pytest.TempPathFactory) -> None:
    """``kubectl run -i`` waits for its pod with client-go's informer: a protobuf list,
    then a protobuf watch. Finishing the pod while it watches must end the wait."""
    kubectl = _kubectl("1.33", server, tmp_path_factory)
    proc = subprocess.Popen(
        [kubectl.binary, "run", "watched", "--image=x", "-i", "--restart=Never",
         "--pod-running-timeout=120s", "-v=8"], stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True, env=kubectl.env())
    lines = _reader(proc.stdout)
    seen: list[str] = []
    try:
        deadline = time.monotonic() + 60
        while not any(f"Content-Type: {PROTOBUF};stream=watch" in line for line in seen):
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            assert line is not None, "".join(seen)[-3000:]
            seen.append(line)
        kubectl.run("patch", "pod", "watched", "--subresource=status", "--type=merge",
                    "-p", '{"status":{"phase":"Succeeded"}}')
        proc.wait(60)  # well before --pod-running-timeout: the watch event arrived
    finally:
        proc.kill()
        proc.wait()
    while (line := lines.get(timeout=10)) is not None:
        seen.append(line)
    output = "".join(seen)
    undecodable = [line for line in seen if "Unable to decode an event" in line
                   and "use of closed network connection" not in line]  # (its own stop)
    assert not undecodable, undecodable
    assert "timed out waiting" not in output
    assert "/pods/watched/log" in output  # it moved on to the finished pod's logs
