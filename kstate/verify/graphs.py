"""Lifecycle graphs: the renderer, third executor of the one definition.

Where it sits: ``kstate/verify`` (the definition path's last stop). ``kstate graph`` calls
``render``; the golden exports in ``specs/machines/`` are ``export`` outputs, regenerated
and diffed by tests so every lifecycle change is a reviewed diff.

DOT and Mermaid are produced here as text from the same ``MachineDef`` the engine and the
checker run — never drawn by hand. SVG and PNG come from graphviz's ``dot`` (Debian
``graphviz``), run as a subprocess; a missing ``dot`` is a clear error, not a traceback.

>>> from kstate.machines import POD
>>> print(to_mermaid(POD).splitlines()[1])
    [*] --> Pending
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterable
from typing import Any

from kstate.errors import KstateError, UsageError
from kstate.machines.definition import MachineDef

FORMATS = ("dot", "svg", "png", "mermaid")

_HIGHLIGHT = "#ffd54f"
_TERMINAL = "#eeeeee"


class RenderError(KstateError):
    """Graphviz is missing or failed to render."""

    code = 500
    reason = "RenderFailed"


def _merged_edges(
    d: MachineDef, collapse_groups: bool = False
) -> list[tuple[str, str, list[str]]]:
    """One edge per (source, dest) carrying every label, in definition order.

    Merging keeps the pod graph legible: ``delete`` from nine states would otherwise be
    nine parallel arrows per destination. With ``collapse_groups``, a transition leaving
    every member of a ``StateGroup`` is one edge whose source is the group's name.
    """
    merged: dict[tuple[str, str], list[str]] = {}
    for t in d.transitions:
        sources = list(t.sources)
        if collapse_groups:
            for group in d.groups:
                members = set(group.states)
                if members <= set(sources) and t.dest not in members:
                    sources = [s for s in sources if s not in members] + [_group_id(group.name)]
        for src in sources:
            labels = merged.setdefault((src, t.dest), [])
            if t.label() not in labels:
                labels.append(t.label())
    return [(s, dst, labels) for (s, dst), labels in merged.items()]


def _group_id(name: str) -> str:
    return "cluster_" + "".join(c if c.isalnum() else "_" for c in name)


def _dot_id(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_dot(d: MachineDef, highlight: Iterable[str] = ()) -> str:
    """Graphviz DOT: initial state entered from a dot, terminal states double-circled,
    guards on edge labels, highlighted states filled."""
    marked = set(highlight)
    lines = [
        f"digraph {_dot_id(d.kind)} {{",
        "  rankdir=TB; compound=true; nodesep=0.4; ranksep=0.6;",
        f'  label={_dot_id(f"{d.kind} lifecycle (kstate machine {d.name!r})")};',
        '  labelloc="t";',
        '  node [shape=box, style="rounded,filled", fillcolor="#ffffff", fontname="Helvetica"];',
        '  edge [fontname="Helvetica", fontsize=10];',
        '  "__start__" [shape=point, width=0.15, label=""];',
    ]
    for s in d.states:
        attrs = [f"tooltip={_dot_id(s.doc)}"]
        if s.terminal:
            attrs += ["shape=doublecircle", f'fillcolor="{_TERMINAL}"']
        if s.name in marked:
            attrs += [f'fillcolor="{_HIGHLIGHT}"', "penwidth=2"]
        lines.append(f"  {_dot_id(s.name)} [{', '.join(attrs)}];")
    anchors = {}
    for group in d.groups:
        gid = _group_id(group.name)
        anchors[gid] = group.states[0]
        lines.append(f"  subgraph {gid} {{")
        lines.append(f'    label={_dot_id(group.name)}; style="rounded,dashed"; color="#888888";')
        lines.extend(f"    {_dot_id(name)};" for name in group.states)
        lines.append("  }")
    lines.append(f'  "__start__" -> {_dot_id(d.initial)};')
    for src, dst, labels in _merged_edges(d, collapse_groups=True):
        label = f"label={_dot_id(chr(10).join(labels))}"
        if src in anchors:  # one arrow from the group's box, clipped at its border
            lines.append(f"  {_dot_id(anchors[src])} -> {_dot_id(dst)} [{label}, ltail={src}];")
        else:
            lines.append(f"  {_dot_id(src)} -> {_dot_id(dst)} [{label}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _mermaid_label(text: str) -> str:
    # Mermaid ends a transition label at ':' and treats ';' as a statement break.
    return text.replace(":", " ").replace(";", ",")


def to_mermaid(d: MachineDef, highlight: Iterable[str] = ()) -> str:
    """Mermaid ``stateDiagram-v2`` (renders in GitHub markdown)."""
    lines = ["stateDiagram-v2", f"    [*] --> {d.initial}"]
    for src, dst, labels in _merged_edges(d):
        lines.append(f"    {src} --> {dst}: {_mermaid_label(' / '.join(labels))}")
    for s in d.states:
        if s.terminal:
            lines.append(f"    {s.name} --> [*]")
    marked = [s for s in d.state_names if s in set(highlight)]
    if marked:
        lines.append(f"    classDef highlight fill:{_HIGHLIGHT},stroke-width:2px")
        lines.extend(f"    class {name} highlight" for name in marked)
    return "\n".join(lines) + "\n"


def to_table(d: MachineDef) -> dict[str, Any]:
    """The definition as plain data (the golden JSON export and ``--output json``)."""
    return {
        "machine": d.name,
        "kind": d.kind,
        "initial": d.initial,
        "states": [
            {"name": s.name, "doc": s.doc, "terminal": s.terminal, "visible": dict(s.visible)}
            for s in d.states
        ],
        "triggers": [
            {"name": t.name, "doc": t.doc, "actor": t.actor,
             "facts": {k: list(v) for k, v in t.facts.items()}}
            for t in d.triggers
        ],
        "guards": [{"name": g.name, "doc": g.doc} for g in d.guards],
        "transitions": [
            {"trigger": t.trigger, "sources": list(t.sources), "dest": t.dest,
             "when": list(t.when), "unless": list(t.unless)}
            for t in d.transitions
        ],
    }


def export(d: MachineDef) -> dict[str, str]:
    """Golden files for one machine: ``{filename: text}`` (deterministic, no graphviz)."""
    return {
        f"{d.name}.dot": to_dot(d),
        f"{d.name}.mmd": to_mermaid(d),
        f"{d.name}.json": json.dumps(to_table(d), indent=2) + "\n",
    }


def dot_to(dot_text: str, fmt: str) -> bytes:
    """Run graphviz on DOT text; ``fmt`` is ``svg`` or ``png``."""
    exe = shutil.which("dot")
    if exe is None:
        raise RenderError(
            f"rendering {fmt} needs graphviz's 'dot', which is not installed; "
            "install it with 'apt-get install graphviz' or use --format dot|mermaid"
        )
    try:
        done = subprocess.run(
            [exe, f"-T{fmt}"], input=dot_text.encode(), capture_output=True, timeout=60,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise RenderError(f"graphviz took longer than {exc.timeout} s to render") from None
    if done.returncode != 0:
        raise RenderError(f"graphviz failed: {done.stderr.decode(errors='replace').strip()}")
    return done.stdout


def render(d: MachineDef, fmt: str = "dot", highlight: Iterable[str] = ()) -> bytes:
    """A machine in one of ``FORMATS``; unknown highlight states are a usage error."""
    marked = list(highlight)
    unknown = [s for s in marked if s not in d.state_names]
    if unknown:
        raise UsageError(
            f"--highlight {', '.join(unknown)}: not a state of {d.name}; "
            f"states are {', '.join(d.state_names)}"
        )
    if fmt == "dot":
        return to_dot(d, marked).encode()
    if fmt == "mermaid":
        return to_mermaid(d, marked).encode()
    if fmt in ("svg", "png"):
        return dot_to(to_dot(d, marked), fmt)
    raise UsageError(f"--format {fmt!r}: choose one of {', '.join(FORMATS)}")


__all__ = ["FORMATS", "RenderError", "dot_to", "export", "render", "to_dot", "to_mermaid",
           "to_table"]
