"""``./dev test`` stops first thing when the fresh-machine check fails or, under CI, is
missing — before it installs or starts anything.

CI lays a clean clone out with the shared tools beside it (``../shared/tools/``); these
tests rebuild that layout in a temporary directory around a copy of ``dev``, with a
stand-in for the check, so only the guard runs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _clone(tmp_path: Path) -> Path:
    clone = tmp_path / "clone"
    clone.mkdir()
    shutil.copy2(ROOT / "dev", clone / "dev")
    return clone


def _dev_test(clone: Path, ci: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci:
        env["CI"] = ci
    return subprocess.run([str(clone / "dev"), "test"], capture_output=True, text=True,
                          env=env, timeout=60, check=False)


def test_a_failing_fresh_machine_check_stops_dev_test_with_its_message(tmp_path: Path) -> None:
    clone = _clone(tmp_path)
    check = tmp_path / "shared" / "tools" / "fresh-machine-check"
    check.parent.mkdir(parents=True)
    # The stand-in records where it ran: the real check resolves paths from there.
    check.write_text("#!/bin/sh\npwd > ran-in\n"
                     "echo \"etcdctl: provided by Debian package 'etcd-client', which a "
                     "fresh machine lacks\"\nexit 1\n")
    check.chmod(0o755)
    done = _dev_test(clone, ci="")
    assert done.returncode == 1
    assert "etcdctl: provided by Debian package 'etcd-client'" in done.stdout
    assert "add their Debian packages to DEB_PACKAGES" in done.stderr
    assert (clone / "ran-in").read_text().strip() == str(clone)
    assert "installing" not in done.stderr and not (clone / ".venv").exists()


def test_a_missing_check_fails_under_ci(tmp_path: Path) -> None:
    clone = _clone(tmp_path)
    done = _dev_test(clone, ci="true")
    assert done.returncode == 1
    expected = clone / ".." / "shared" / "tools" / "fresh-machine-check"
    assert f"the fresh-machine check is missing: expected {expected}" in done.stderr
    assert not (clone / ".venv").exists()
