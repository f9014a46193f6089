"""Regenerate the CRI stubs beside ``api.proto`` (the generated modules are shipped).

Where it sits: a developer tool, not run by kstate itself. ``api.proto`` is kstate's own
subset of the Kubernetes CRI ``runtime.v1`` API (k8s.io/cri-api
pkg/apis/runtime/v1/api.proto; names and field numbers as published). grpcio-tools turns
it into ``api_pb2.py`` (messages), ``api_pb2.pyi`` (types) and ``api_pb2_grpc.py`` (client
stubs), which the containerd adapter imports. ``tests/runtime/test_cri_stubs.py`` runs
this into a temporary directory and diffs, so the shipped modules never drift from the
.proto.

    python -m kstate.runtime.cri.generate        # rewrite the shipped modules
"""

from __future__ import annotations

import sys
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
#: The repository root: protoc runs there so the generated imports are absolute
#: (``from kstate.runtime.cri import api_pb2``).
ROOT = PACKAGE_DIR.parents[2]
PROTO = PACKAGE_DIR.relative_to(ROOT) / "api.proto"
OUTPUTS = ("api_pb2.py", "api_pb2.pyi", "api_pb2_grpc.py")


def generate(out_root: Path = ROOT) -> list[Path]:
    """Run protoc on ``api.proto``; the modules land under ``out_root/kstate/runtime/cri``."""
    from grpc_tools import protoc  # a dev dependency (the containerd extra)

    out_root.mkdir(parents=True, exist_ok=True)
    code = protoc.main([
        "grpc_tools.protoc", f"-I{ROOT}", f"--python_out={out_root}",
        f"--pyi_out={out_root}", f"--grpc_python_out={out_root}", str(PROTO),
    ])
    if code != 0:
        raise SystemExit(f"protoc failed on {PROTO} (exit {code})")
    return [out_root / PROTO.parent / name for name in OUTPUTS]


if __name__ == "__main__":
    for path in generate():
        sys.stdout.write(f"wrote {path}\n")
