"""Lifecycle graph rendering: all four machines in all four formats, with real graphviz."""

from __future__ import annotations

import json
import shutil

import pytest

from kstate import machines
from kstate.errors import UsageError
from kstate.verify import graphs
from tests.conftest import require_binary

NAMES = sorted(machines.MACHINES)


@pytest.mark.parametrize("name", NAMES)
def test_dot_shows_every_state_guard_and_terminal(name: str) -> None:
    d = machines.MACHINES[name]
    dot = graphs.to_dot(d)
    for s in d.states:
        assert f'"{s.name}"' in dot
    for t in d.transitions:
        assert t.label() in dot
    for s in d.terminal_states:
        assert f'"{s}" [' in dot and "doublecircle" in dot


@pytest.mark.parametrize("name", NAMES)
def test_mermaid_lists_every_transition(name: str) -> None:
    d = machines.MACHINES[name]
    text = graphs.to_mermaid(d, highlight=[d.initial])
    assert text.startswith("stateDiagram-v2\n")
    assert f"[*] --> {d.initial}" in text
    for t in d.transitions:
        for src in t.sources:
            assert f"{src} --> {t.dest}:" in text
    assert f"class {d.initial} highlight" in text


@pytest.mark.graphviz
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("fmt", ["svg", "png"])
def test_graphviz_renders(name: str, fmt: str) -> None:
    require_binary("dot")
    d = machines.MACHINES[name]
    data = graphs.render(d, fmt, highlight=[d.terminal_states[0]])
    if fmt == "png":
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 10_000
    else:
        text = data.decode()
        assert "<svg" in text and machines.MACHINES[name].initial in text


def test_unknown_highlight_and_format_are_usage_errors() -> None:
    with pytest.raises(UsageError, match="not a state of pod"):
        graphs.render(machines.POD, "dot", ["Nope"])
    with pytest.raises(UsageError, match="choose one of"):
        graphs.render(machines.POD, "gif")


def test_missing_graphviz_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda _name: None)
    with pytest.raises(graphs.RenderError, match="apt-get install graphviz"):
        graphs.render(machines.POD, "svg")


def test_table_export_round_trips_the_definition() -> None:
    table = json.loads(graphs.export(machines.POD)["pod.json"])
    assert table["initial"] == "Pending"
    assert len(table["transitions"]) == len(machines.POD.transitions)
