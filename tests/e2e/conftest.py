"""End-to-end plumbing shared by the tests that run ``kstate up`` on the real Docker engine.

A Docker e2e test calls :func:`require_docker` (skip on a dev machine without an engine,
fail under ``CI=true``), gets the local base images from :func:`build_base_images`, and
removes every container of its node name with :func:`remove_node_containers` at the end —
each test uses a node name of its own, so runs never see each other's containers.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from kstate.runtime.base import NODE_NAME
from tests.conftest import require

ROOT = Path(__file__).resolve().parents[2]


def docker_ok() -> bool:
    return subprocess.run(["docker", "info"], capture_output=True, check=False).returncode == 0


def require_docker() -> None:
    require(docker_ok(), "a Docker engine")


def build_base_images() -> None:
    """``kstate image build-base``: kstate/base:1 and kstate/httpd:1 (idempotent)."""
    subprocess.run([sys.executable, "-m", "kstate.cli", "image", "build-base"], cwd=ROOT,
                   check=True, capture_output=True)


def remove_node_containers(node: str) -> None:
    """``docker rm -f`` every container (sandboxes too) kstate labelled with ``node``."""
    ids = subprocess.run(["docker", "ps", "-aq", "--filter", f"label={NODE_NAME}={node}"],
                         capture_output=True, text=True, check=False).stdout.split()
    if ids:
        subprocess.run(["docker", "rm", "-f", *ids], capture_output=True, check=False)
