"""One daemon per data directory, decided by the kernel's lock and never by a pid: a
SIGKILLed daemon that nobody has reaped yet (a zombie) or a recorded pid that now belongs
to another process never blocks ``kstate up``; ``kstate down`` still finds the daemon.

The daemons here run ``--runtime fake`` (no Docker needed); ``tests/e2e/test_down.py``
purges real containers.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kstate.cli import main
from kstate.daemon import CLUSTER_ID_FILE, LOCK_FILE, DataDirLock, cluster_id, purge
from kstate.errors import UsageError

ROOT = Path(__file__).resolve().parents[1]


def start_daemon(data_dir: Path) -> subprocess.Popen[str]:
    """``kstate up`` as a child process, returned once it says it is up."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "kstate.cli", "up", "--data-dir", str(data_dir), "--runtime",
         "fake", "--listen", "127.0.0.1:0", "--node-port-address", "127.0.0.1"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    output = []
    for line in proc.stdout:
        output.append(line)
        if line.startswith("kstate is up"):
            return proc
    raise AssertionError(f"kstate up exited with {proc.wait()}:\n{''.join(output)}")


def kstate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kstate.cli", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=False)


def process_state(pid: int) -> str:
    """The state letter of ``/proc/PID/stat`` (``Z``: a zombie)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rpartition(")")[2].split()[0]


@pytest.fixture
def daemons() -> Iterator[list[subprocess.Popen[str]]]:
    """Every daemon a test starts; stopped and reaped at the end, whatever happened."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)


def test_a_restart_right_after_sigkill_starts_while_the_old_daemon_is_a_zombie(
        tmp_path: Path, daemons: list[subprocess.Popen[str]]) -> None:
    data = tmp_path / "data"
    first = start_daemon(data)
    daemons.append(first)
    assert (data / LOCK_FILE).read_text().strip() == str(first.pid)

    os.kill(first.pid, signal.SIGKILL)  # and never wait(): it stays unreaped
    deadline = time.monotonic() + 30
    while process_state(first.pid) != "Z":  # the kernel finishes the kill (bounded)
        assert time.monotonic() < deadline, "the killed daemon never became a zombie"
        time.sleep(0.01)
    # The zombie still answers kill(pid, 0), which fooled the old pid-file check.
    os.kill(first.pid, 0)

    second = start_daemon(data)
    daemons.append(second)
    assert process_state(first.pid) == "Z"  # still unreaped while the new one runs
    assert DataDirLock(data).holder() == second.pid

    done = kstate("down", "--data-dir", str(data))
    assert done.returncode == 0, done.stderr
    assert "kstate stopped" in done.stdout
    assert second.wait(timeout=30) == 0
    assert DataDirLock(data).holder() is None


def test_a_pid_left_in_the_lock_file_does_not_count_when_the_lock_is_free(
        tmp_path: Path, daemons: list[subprocess.Popen[str]]) -> None:
    data = tmp_path / "data"
    data.mkdir()
    # A live process that is no daemon: what a reused pid looks like.
    (data / LOCK_FILE).write_text(f"{os.getpid()}\n")
    assert DataDirLock(data).holder() is None
    assert main(["down", "--data-dir", str(data)]) == 1

    daemons.append(start_daemon(data))  # starts: the pid inside is not a lock


def test_a_second_daemon_and_a_purge_are_refused_while_one_runs(
        tmp_path: Path, daemons: list[subprocess.Popen[str]]) -> None:
    data = tmp_path / "data"
    first = start_daemon(data)
    daemons.append(first)
    done = kstate("up", "--data-dir", str(data), "--runtime", "fake",
                  "--listen", "127.0.0.1:0")
    assert done.returncode == 2
    assert f"a kstate daemon (pid {first.pid}) already runs from {data}" in done.stderr
    assert "Traceback" not in done.stderr
    with pytest.raises(UsageError, match=f"pid {first.pid}"):
        purge(data)  # purging under a live daemon would race it
    assert first.poll() is None


def test_purge_without_docker_containers_and_delete_data(
        tmp_path: Path, daemons: list[subprocess.Popen[str]],
        capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    proc = start_daemon(data)
    daemons.append(proc)
    # --runtime fake made no container: nothing to find on any engine, none contacted.
    assert main(["down", "--data-dir", str(data), "--delete-data"]) == 0
    out = capsys.readouterr().out
    assert "kstate stopped" in out and "removed 0 container(s)" in out
    assert f"deleted {data}" in out
    assert not data.exists()
    assert proc.wait(timeout=30) == 0


def test_purge_refuses_a_directory_no_daemon_used(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "precious").write_text("keep me")
    assert main(["down", "--data-dir", str(tmp_path), "--delete-data"]) == 2
    assert "is not the data directory of a kstate daemon" in capsys.readouterr().err
    assert (tmp_path / "precious").exists()
    assert not (tmp_path / LOCK_FILE).exists()


def test_the_cluster_id_is_made_once_and_never_empty(tmp_path: Path) -> None:
    assert cluster_id(tmp_path) is None
    made = cluster_id(tmp_path, create=True)
    assert made and cluster_id(tmp_path) == made == cluster_id(tmp_path, create=True)
    # An empty id would scope nothing (every cluster's containers): it is replaced.
    (tmp_path / CLUSTER_ID_FILE).write_text("\n")
    assert cluster_id(tmp_path) is None
    again = cluster_id(tmp_path, create=True)
    assert again and again != made


def test_the_runtimes_a_cluster_ran_on_are_recorded_for_purge(tmp_path: Path) -> None:
    from kstate.daemon import open_cluster_runtime, record_runtime, recorded_runtimes

    new = tmp_path / "new"
    new.mkdir()
    assert recorded_runtimes(new) == {}
    open_cluster_runtime(new, "containerd", "/run/x.sock", create=True)
    assert recorded_runtimes(new) == {}  # not until the runtime answered
    record_runtime(new, "containerd", "/run/x.sock")
    assert recorded_runtimes(new) == {"containerd": {"socket": "/run/x.sock"}}
    # A directory from before the record ran on Docker; it stays on the record.
    old = tmp_path / "old"
    old.mkdir()
    made = cluster_id(old, create=True)
    assert recorded_runtimes(old) == {"docker": {}}
    open_cluster_runtime(old, "containerd", create=True)
    record_runtime(old, "containerd")
    assert recorded_runtimes(old) == {"docker": {}, "containerd": {"socket": ""}}
    assert cluster_id(old) == made
    (old / "runtimes.json").write_text("{")
    with pytest.raises(UsageError, match=r"runtimes\.json is not valid JSON"):
        recorded_runtimes(old)
