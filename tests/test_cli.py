"""The CLI as a user meets it: exit codes, messages, files written — never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from kstate.cli import main
from tests.conftest import require_binary

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kstate.cli", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=120, check=False)


def test_help_lists_the_commands() -> None:
    done = run("--help")
    assert done.returncode == 0
    for command in ("graph", "validate"):
        assert command in done.stdout


def test_no_command_prints_help_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "usage: kstate" in capsys.readouterr().out


@pytest.mark.graphviz
def test_graph_png_to_file(tmp_path: Path) -> None:
    require_binary("dot")
    out = tmp_path / "pod.png"
    done = run("graph", "pod", "--format", "png", "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert out.read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize("fmt", ["dot", "mermaid"])
def test_graph_text_formats_to_stdout(fmt: str) -> None:
    done = run("graph", "svc", "--format", fmt)
    assert done.returncode == 0 and "Active" in done.stdout


def test_graph_format_from_suffix(tmp_path: Path) -> None:
    out = tmp_path / "rc.mmd"
    assert main(["graph", "rc", "-o", str(out)]) == 0
    assert out.read_text().startswith("stateDiagram-v2")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("graph", "pizza"), "unknown machine 'pizza'"),
        (("graph", "pod", "--highlight", "Nope"), "not a state of pod"),
        (("graph", "pod", "--format", "png"), "PNG is binary"),
        (("graph", "all"), "only for --export"),
    ],
)
def test_graph_bad_input(args: tuple[str, ...], message: str) -> None:
    done = run(*args)
    assert done.returncode == 2
    assert message in done.stderr and "Traceback" not in done.stderr


def test_graph_unwritable_output_is_one_line() -> None:
    done = run("graph", "pod", "-o", "/nonexistent-dir/pod.dot")
    assert done.returncode == 1
    assert "No such file or directory" in done.stderr and "Traceback" not in done.stderr


def test_validate_the_quick_start_and_examples() -> None:
    done = run("validate", "-f", "specs/manifests/", "-R")
    assert done.returncode == 0, done.stderr
    assert "ReplicationController mytomcat is valid" in done.stdout
    assert "Service mytomcat is valid" in done.stdout


def test_validate_broken_manifests_reports_every_error_with_its_field_path() -> None:
    done = run("validate", "-f", "tests/api/broken_manifests")
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    for expected in (
        "01-invalid-yaml.yaml (document 0): invalid YAML at line 7, column 4",
        "06-wrong-types.yaml (document 0)",
        "spec.template.spec.containers[0].ports[0].containerPort",
        "metadata.labels[enabled]",
        "spec.ports[0].nodePort",
        "spec.contianers: unknown field",
        "17 invalid document(s)",
    ):
        assert expected in done.stderr, expected


def test_validate_missing_file_is_one_clear_line() -> None:
    done = run("validate", "-f", "no/such/dir")
    assert done.returncode == 1
    assert "no/such/dir" in done.stderr and "Traceback" not in done.stderr
