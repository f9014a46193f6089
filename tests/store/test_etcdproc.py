"""The local etcd launcher: ports that cannot collide, a start that loses a port to another
process retried on fresh ones (and only that failure), and ``python -m
kstate.store.etcdproc`` as ``./dev test`` runs it."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from kstate.errors import Unavailable
from kstate.store import etcdproc
from kstate.store.etcdproc import EtcdCluster, free_ports
from tests.conftest import require_binary

ROOT = Path(__file__).resolve().parents[2]


def test_free_ports_are_distinct_and_free() -> None:
    ports = free_ports(40)
    assert len(set(ports)) == 40
    for port in ports:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A loopback port another process (this test) listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


@pytest.mark.etcd
def test_a_start_that_loses_a_port_is_retried_on_fresh_ports(
        taken_port: int, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    require_binary("etcd")
    handed_out: list[list[int]] = []
    real = etcdproc.free_ports

    def first_one_taken(count: int) -> list[int]:
        # The race free_ports cannot close: the first start's peer port is taken by the
        # time etcd binds it.
        ports = real(count)
        if not handed_out:
            ports[1] = taken_port
        handed_out.append(ports)
        return ports

    monkeypatch.setattr(etcdproc, "free_ports", first_one_taken)
    with EtcdCluster(size=1, root=tmp_path) as cluster:
        assert len(handed_out) == 2
        assert cluster.members[0].client_port == handed_out[1][0]
        assert cluster.members[0].healthy()
    logs = [log.read_text() for log in tmp_path.glob("*/m0.log")]
    assert len(logs) == 2
    assert sum("address already in use" in text for text in logs) == 1


def test_a_member_failing_for_another_reason_is_not_retried(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    starts: list[int] = []
    real = etcdproc.free_ports

    def counted(count: int) -> list[int]:
        starts.append(count)
        return real(count)

    monkeypatch.setattr(etcdproc, "free_ports", counted)
    cluster = EtcdCluster(size=1, binary="false", root=tmp_path)  # exits 1 at once
    with pytest.raises(Unavailable, match="exited"):
        cluster.start()
    assert starts == [2]


def _health(endpoint: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://{endpoint}/health", timeout=2) as response:
            return bool(json.load(response)["health"] == "true")
    except (OSError, urllib.error.URLError):
        return False


@pytest.mark.etcd
def test_the_launcher_prints_its_endpoint_and_stops_etcd_on_sigterm() -> None:
    require_binary("etcd")
    launcher = subprocess.Popen([sys.executable, "-m", "kstate.store.etcdproc"], cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert launcher.stdout is not None
        endpoint = launcher.stdout.readline().strip()
        assert endpoint.startswith("127.0.0.1:"), launcher.stderr
        assert _health(endpoint)
    finally:
        launcher.send_signal(signal.SIGTERM)
        assert launcher.wait(timeout=30) == 0
    assert not _health(endpoint)  # etcd went with it
