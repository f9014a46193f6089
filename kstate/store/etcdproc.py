"""Local etcd processes: start a private etcd (or a small cluster) on loopback ports.

Where it sits: beside the etcd backend, outside the runtime path. The contract tests,
the three-member failover test and ``bench/store`` use it to run a real etcd with a
temporary data directory; a developer can use it to try ``etcd://`` without installing
anything but Debian's ``etcd-server``.

Why it exists: spawning etcd correctly (free ports, a unique cluster token, waiting for a
leader, killing and restarting members on the same data directory) is fiddly and was
needed in three places. It talks to etcd only over its ``/health`` HTTP endpoint, so it
needs no etcd client library nor ``etcdctl``, and only ever binds and dials 127.0.0.1.

Ports: every port of a start is reserved in one step (all sockets bound at once, then
released), so no two members or roles can get the same port; a port another process
takes before etcd binds it makes that member exit with "address already in use", and the
start is retried on fresh ports.

``python -m kstate.store.etcdproc`` runs one private etcd until SIGTERM/SIGINT, printing
its endpoint (``127.0.0.1:PORT``) on stdout once healthy — how ``./dev test`` starts the
etcd of the store tests.

>>> cluster = EtcdCluster(size=3)          # doctest: +SKIP
>>> cluster.start(); cluster.url           # doctest: +SKIP
'etcd://127.0.0.1:40123,127.0.0.1:40125,127.0.0.1:40127'
"""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from types import TracebackType

import attrs

from kstate.errors import Unavailable

LOOPBACK = "127.0.0.1"


def free_ports(count: int) -> list[int]:
    """``count`` distinct loopback ports nobody listens on right now: all are bound at
    once before any is released, so they cannot repeat. (Another process may still take
    one before etcd binds it; :meth:`EtcdCluster.start` retries on fresh ports then.)"""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in socks:
            sock.bind((LOOPBACK, 0))
        return [int(sock.getsockname()[1]) for sock in socks]


def free_port() -> int:
    """One loopback port nobody listens on right now."""
    return free_ports(1)[0]


@attrs.define
class EtcdMember:
    """One etcd server process; restartable on the same data directory."""

    name: str
    client_port: int
    peer_port: int
    data_dir: Path
    args: list[str] = attrs.Factory(list)
    process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"{LOOPBACK}:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://{LOOPBACK}:{self.peer_port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir.parent / f"{self.name}.log"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def lost_port(self) -> bool:
        """Exited because a port it was given was taken (the race :func:`free_ports`
        cannot close)."""
        if self.running or self.process is None:
            return False
        try:
            return "address already in use" in self.log_path.read_text(errors="replace")
        except OSError:
            return False

    def start(self) -> None:
        if self.running:
            return
        log = open(self.log_path, "ab")  # noqa: SIM115
        try:
            self.process = subprocess.Popen(
                self.args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        finally:
            log.close()

    def kill(self) -> None:
        """SIGKILL: the crash a durable store must survive."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()

    def healthy(self) -> bool:
        """etcd's own verdict: serving, with a leader and no alarms."""
        if not self.running:
            return False
        try:
            url = f"http://{self.endpoint}/health"
            with urllib.request.urlopen(url, timeout=1.0) as response:
                return bool(json.load(response).get("health") in ("true", True))
        except (OSError, ValueError, urllib.error.URLError):
            return False


class EtcdCluster:
    """``size`` etcd members on loopback, data under ``root`` (a temp dir by default).

    Durability is etcd's default (fsync on every commit), which is what the store
    benchmark compares SQLite against. ``fast_election`` shortens heartbeats and
    elections so failover tests do not wait seconds for a new leader.
    """

    def __init__(
        self,
        size: int = 1,
        *,
        binary: str = "etcd",
        root: str | Path | None = None,
        fast_election: bool = True,
    ) -> None:
        path = shutil.which(binary)
        if path is None:
            raise Unavailable(
                f"etcd binary {binary!r} not found (Debian: apt-get install etcd-server)"
            )
        self.binary = path
        self.size = size
        self.fast_election = fast_election
        self._own_root = root is None
        self.root = (
            Path(root) if root is not None else Path(tempfile.mkdtemp(prefix="kstate-etcd-"))
        )
        self.members: list[EtcdMember] = []

    @property
    def endpoints(self) -> list[str]:
        return [m.endpoint for m in self.members]

    @property
    def url(self) -> str:
        return "etcd://" + ",".join(self.endpoints)

    def start(self, timeout: float = 30.0, attempts: int = 5) -> EtcdCluster:
        """Start every member and wait until all are healthy; a member that lost one of
        its ports to another process makes the whole start run again on fresh ports."""
        for attempt in range(1, attempts + 1):
            self._configure()
            for member in self.members:
                member.start()
            try:
                self.wait_healthy(timeout)
                return self
            except Unavailable:
                lost_port_race = any(m.lost_port() for m in self.members)
                self.close(remove=False)
                if not lost_port_race or attempt == attempts:
                    raise
        raise AssertionError("unreachable")

    def _configure(self) -> None:
        token = f"kstate-{uuid.uuid4().hex[:12]}"
        flat = free_ports(2 * self.size)
        ports = list(zip(flat[0::2], flat[1::2], strict=True))
        names = [f"m{i}" for i in range(self.size)]
        initial = ",".join(
            f"{n}=http://{LOOPBACK}:{p}" for n, (_, p) in zip(names, ports, strict=True)
        )
        self.members = []
        for name, (client, peer) in zip(names, ports, strict=True):
            data_dir = self.root / token / name
            data_dir.parent.mkdir(parents=True, exist_ok=True)
            member = EtcdMember(name, client, peer, data_dir)
            member.args = [
                self.binary,
                f"--name={name}",
                f"--data-dir={data_dir}",
                f"--listen-client-urls=http://{LOOPBACK}:{client}",
                f"--advertise-client-urls=http://{LOOPBACK}:{client}",
                f"--listen-peer-urls={member.peer_url}",
                f"--initial-advertise-peer-urls={member.peer_url}",
                f"--initial-cluster={initial}",
                "--initial-cluster-state=new",
                f"--initial-cluster-token={token}",
                # Kubernetes objects may be 1.5 MiB; the request carrying one is a bit more.
                "--max-request-bytes=2097152",
                "--logger=zap",
                "--log-level=warn",
            ]
            if self.fast_election:
                member.args += ["--heartbeat-interval=50", "--election-timeout=500"]
            self.members.append(member)

    def wait_healthy(self, timeout: float = 30.0, members: list[EtcdMember] | None = None) -> None:
        """Poll ``/health`` until every given member (default: all) is healthy.

        Polling is the only way to learn that another process is ready; it is bounded.
        """
        waiting = list(members if members is not None else self.members)
        deadline = time.monotonic() + timeout
        while waiting:
            waiting = [m for m in waiting if not m.healthy()]
            if not waiting:
                return
            dead = [m.name for m in waiting if not m.running]
            if dead or time.monotonic() > deadline:
                why = f"exited ({', '.join(dead)})" if dead else f"not healthy after {timeout:.0f}s"
                raise Unavailable(
                    f"local etcd {why}; logs in {self.root}",
                    key=",".join(m.endpoint for m in waiting),
                )
            time.sleep(0.05)

    def restart(self, member: EtcdMember, timeout: float = 30.0) -> None:
        member.start()
        self.wait_healthy(timeout, [member])

    def close(self, remove: bool = True) -> None:
        for member in self.members:
            member.stop()
        if remove and self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> EtcdCluster:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def log_tail(cluster: EtcdCluster, lines: int = 20) -> str:
    """The end of every member's log, for a failing test's message."""
    out = []
    for log in sorted(cluster.root.glob("**/*.log")):
        text = log.read_text(errors="replace").splitlines()[-lines:]
        out.append(f"--- {log.name}\n" + "\n".join(text))
    return "\n".join(out) if out else "(no etcd logs)"


def serve() -> int:
    """One private etcd until SIGTERM or SIGINT; its endpoint on stdout once healthy."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    try:
        cluster = EtcdCluster(size=1)
    except Unavailable as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    try:
        cluster.start()
        print(cluster.endpoints[0], flush=True)
        while True:
            signal.pause()
    except Unavailable as err:
        print(f"error: {err}\n{log_tail(cluster)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        cluster.close()


__all__ = ["EtcdCluster", "EtcdMember", "free_port", "free_ports", "log_tail", "serve"]


if __name__ == "__main__":
    sys.exit(serve())
