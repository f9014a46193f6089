"""The layering rules of ARCHITECTURE §4, enforced on every import in the package.

``cli`` > ``verify`` | ``node`` | ``proxy`` > ``control`` > ``api`` > ``store``; everyone may
import ``machines``, ``errors``, ``clock`` and ``spdy`` (pure SPDY/3 framing, shared by the
API server's end of kubectl's streams and the containerd adapter's end of containerd's).
``machines`` imports only ``transitions``, ``attrs``, ``networkx`` (plus pure stdlib) and
does no I/O. Client libraries of optional
backends are imported only inside their adapter modules. ``verify`` never imports a real
store or runtime backend.

Function-level imports count too: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "kstate"

SHARED = {"machines", "errors", "clock", "spdy"}

#: layer -> kstate layers it may import (besides SHARED and itself).
ALLOWED: dict[str, set[str]] = {
    "store": set(),
    "api": {"store"},
    "runtime": {"api"},
    "control": {"api", "store"},
    "node": {"control", "api", "store", "runtime"},
    "proxy": {"control", "api", "store"},
    "verify": {"control", "api", "store", "runtime", "node", "proxy"},
    "cli": {"verify", "node", "proxy", "control", "api", "store", "runtime", "daemon", ""},
    # the all-in-one daemon composes every layer; it sits with the CLI on top
    "daemon": {"verify", "node", "proxy", "control", "api", "store", "runtime"},
    "machines": set(),
    "errors": set(),
    "clock": set(),
    "spdy": set(),
}
# kstate/__init__.py re-exports the curated public API, so it sits with the CLI on top.
ALLOWED[""] = (ALLOWED["cli"] - {""}) | {"cli"}

#: Modules of real backends that ``verify`` must never reach.
REAL_BACKENDS = ("kstate.store.sqlite", "kstate.store.etcd", "kstate.runtime.docker",
                 "kstate.runtime.containerd")

#: Third-party client libraries -> the only kstate modules allowed to import them.
ADAPTER_ONLY = {
    "docker": ("kstate.runtime.docker",),
    "aiodocker": ("kstate.runtime.docker",),
    "aetcd": ("kstate.store.etcd",),
    "etcd3": ("kstate.store.etcd",),
    "etcd3gw": ("kstate.store.etcd",),
    "etcetra": ("kstate.store.etcd",),
    # kstate.runtime.cri holds the containerd adapter's generated CRI stubs.
    "grpc": ("kstate.store.etcd", "kstate.runtime.containerd", "kstate.runtime.cri"),
}

MACHINES_MAY_IMPORT = {"transitions", "attrs", "networkx", "__future__", "collections",
                       "typing", "types", "itertools", "functools", "dataclasses", "enum",
                       "threading", "math"}
IO_CALLS = {open.__name__, print.__name__, input.__name__}  # builtins that do I/O


def modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts.pop()
        yield ".".join(parts), path


def imports(path: Path, module: str) -> Iterator[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                name = ".".join([*base, node.module] if node.module else base)
            else:
                name = node.module or ""
            if name != "kstate":
                yield name
                continue
            # "from kstate import machines" imports the layer, not the package root.
            for alias in node.names:
                is_module = (PACKAGE / alias.name).is_dir() or (
                    PACKAGE / f"{alias.name}.py").exists()
                yield f"kstate.{alias.name}" if is_module else "kstate"


def layer_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


ALL = list(modules())


def test_every_module_is_found() -> None:
    assert len(ALL) > 10


@pytest.mark.parametrize(("module", "path"), ALL, ids=[m for m, _ in ALL])
def test_layering(module: str, path: Path) -> None:
    layer = layer_of(module)
    allowed = ALLOWED.get(layer)
    assert allowed is not None, f"{module}: layer {layer!r} is not in the layering table"
    for name in imports(path, module):
        if name.startswith("kstate"):
            target = layer_of(name)
            if target in SHARED or target == layer:
                continue
            assert target in allowed, f"{module} imports {name}: {layer} may not import {target}"
            if layer == "verify":
                assert not name.startswith(REAL_BACKENDS), (
                    f"{module} imports {name}: verify must not use a real backend"
                )
        top = name.split(".")[0]
        if top in ADAPTER_ONLY:
            assert module.startswith(ADAPTER_ONLY[top]), (
                f"{module} imports {top}: only {ADAPTER_ONLY[top]} may"
            )


@pytest.mark.parametrize(
    ("module", "path"),
    [(m, p) for m, p in ALL if layer_of(m) == "machines"],
    ids=[m for m, _ in ALL if layer_of(m) == "machines"],
)
def test_machines_are_pure_definitions(module: str, path: Path) -> None:
    for name in imports(path, module):
        top = name.split(".")[0]
        if top == "kstate":
            assert layer_of(name) in {"machines", "errors"}, f"{module} imports {name}"
            continue
        assert top in MACHINES_MAY_IMPORT, f"{module} imports {name}: machines do no I/O"
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            assert node.func.id not in IO_CALLS, f"{module} calls {node.func.id}()"


def test_stdlib_names_are_real() -> None:
    """Guard the allow-list itself against typos."""
    for name in MACHINES_MAY_IMPORT - {"transitions", "attrs", "networkx"}:
        assert name in sys.stdlib_module_names or name == "__future__"
