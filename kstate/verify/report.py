"""Reading a check result: the summary table, numbered traces, trace graphs.

Where it sits: ``kstate.verify``, between the checker's ``CheckResult`` and the
``kstate verify`` command (which only parses, calls and prints).

A trace prints as numbered steps — the action, then only what changed in the described
state, so a 30-step counterexample reads as a story rather than 30 state dumps.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from kstate.verify.checker import CheckResult, PropertyResult, Step
from kstate.verify.graphs import dot_to


def summary(result: CheckResult) -> str:
    """Counts, then one row per property (kubectl-style columns)."""
    rate = result.distinct_states / result.elapsed if result.elapsed > 0 else 0.0
    head = (f"{result.model}: {result.distinct_states:,} distinct states, "
            f"{result.states_generated:,} generated, depth {result.depth}, "
            f"{result.elapsed:.1f}s ({rate:,.0f} states/s), {result.strategy}"
            f"{', symmetry' if result.symmetry else ''}; stopped: {result.stop_reason.value}")
    rows = [("PROPERTY", "KIND", "VERDICT", "TRACE")]
    for p in result.properties:
        length = f"{len(p.trace)} states" if p.trace else "-"
        if p.cycle:
            length += f" + cycle of {len(p.cycle)}"
        rows.append((p.name, p.kind, p.verdict.value.upper(), length))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    table = "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                      for r in rows)
    por = f"\n{result.por_line()}" if result.por else ""
    coverage = "".join(f"\n{line}" for line in result.coverage_lines())
    warnings = "".join(f"\nwarning: {w}" for w in result.warnings)
    return f"{head}\n{table}{por}{coverage}{warnings}"


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: value}


GONE = "(gone)"


def diff(before: Any, after: Any) -> list[tuple[str, Any, Any]]:
    """What changed between two described states: ``(field, before, after)`` per dotted
    field (``cache_lag.cm``), in field order; a field missing on one side is ``GONE``."""
    old, new = _flatten(before), _flatten(after)
    return [(k, old.get(k, GONE), new.get(k, GONE))
            for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]


def _changes(before: Any, after: Any) -> list[str]:
    lines = []
    for k, _, value in diff(before, after):
        if isinstance(value, list):
            value = "; ".join(str(v) for v in value) or "(none)"
        lines.append(f"{k}: {value}")
    return lines


def trace_text(prop: PropertyResult) -> str:
    """A property's counterexample (or witness) as numbered steps with state changes."""
    title = {"violated": "counterexample", "witnessed": "witness"}.get(
        prop.verdict.value, "trace")
    lines = [f"{title} for {prop.name} ({prop.kind}):"]
    previous: Any = {}
    steps: list[tuple[str, Step]] = [("", s) for s in prop.trace]
    steps += [("cycle ", s) for s in prop.cycle]
    for n, (tag, step) in enumerate(steps, 1):
        lines.append(f"  {n:>3}. {tag}{step.action}")
        changes = _changes(previous, step.state) if n > 1 else _changes({}, step.state)
        for change in changes:
            lines.append(f"         {change}")
        previous = step.state
    if prop.cycle:
        lines.append("       ... and the cycle repeats forever")
    elif prop.verdict.value == "violated" and prop.kind in ("converges", "eventually",
                                                            "leads_to"):
        lines.append("       ... and nothing fair is left to do: it stays here forever")
    return "\n".join(lines)


def trace_dot(prop: PropertyResult) -> str:
    """The counterexample as a graph: states in order, actions on the edges."""
    steps = list(prop.trace) + list(prop.cycle)
    out = ["digraph trace {", "  rankdir=TB;",
           '  node [shape=box, style="rounded,filled", fillcolor="#ffffff", '
           'fontname="Helvetica", fontsize=9];',
           '  edge [fontname="Helvetica", fontsize=9];',
           f'  label="{prop.name}: {prop.verdict.value}"; labelloc="t";']
    previous: Any = {}
    for i, step in enumerate(steps):
        changes = _changes(previous, step.state)[:8] or ["(no visible change)"]
        label = "\\l".join(_escape(c) for c in changes) + "\\l"
        colour = "#ffcdd2" if i == len(prop.trace) - 1 and not prop.cycle else "#ffffff"
        out.append(f'  s{i} [label="{label}", fillcolor="{colour}"];')
        if i:
            out.append(f'  s{i - 1} -> s{i} [label="{_escape(step.action)}"];')
        previous = step.state
    if prop.cycle:
        loop_to = len(prop.trace) - 1
        out.append(f'  s{len(steps) - 1} -> s{loop_to} [label="repeat", style=dashed];')
    out.append("}")
    return "\n".join(out) + "\n"


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')[:120]


def write_trace_graph(props: Iterable[PropertyResult], path: str) -> str:
    """Draw the first failed property's trace to ``path`` (.dot, .svg or .png)."""
    failing = [p for p in props if p.trace]
    if not failing:
        return ""
    dot = trace_dot(failing[0])
    fmt = path.rsplit(".", 1)[-1].lower()
    data = dot.encode() if fmt in ("dot", "gv") else dot_to(dot, fmt)
    with open(path, "wb") as f:
        f.write(data)
    return path


__all__ = ["GONE", "diff", "summary", "trace_dot", "trace_text", "write_trace_graph"]
