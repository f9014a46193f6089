"""The runtime package's own import rules (beside ``tests/test_layers.py``).

Only ``kstate/runtime/docker*.py`` may import the Docker client library (aiodocker), so the
fake, the agent and the model checker load without it; inside the runtime package the same
holds for aiohttp, which aiodocker runs on (elsewhere aiohttp is an ordinary HTTP library).
And ``kstate.runtime`` stays independent of the Kubernetes object model (``kstate.api``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "kstate"
CLIENT_LIBRARIES = {"aiodocker", "docker"}
MODULES = sorted(PACKAGE.rglob("*.py"))


def imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", MODULES, ids=[str(p.relative_to(PACKAGE)) for p in MODULES])
def test_docker_client_only_in_the_docker_adapter(path: Path) -> None:
    allowed = path.parent.name == "runtime" and path.name.startswith("docker")
    used = {n.split(".")[0] for n in imported(path)} & CLIENT_LIBRARIES
    assert allowed or not used, f"{path.relative_to(PACKAGE)} imports {sorted(used)}"


def test_only_the_docker_adapter_speaks_http() -> None:
    for path in (PACKAGE / "runtime").rglob("*.py"):
        uses = "aiohttp" in {n.split(".")[0] for n in imported(path)}
        assert not uses or path.name.startswith("docker"), path


def test_runtime_does_not_know_the_api_objects() -> None:
    for path in (PACKAGE / "runtime").rglob("*.py"):
        assert not any(n.startswith("kstate.api") for n in imported(path)), path
