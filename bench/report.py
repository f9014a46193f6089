"""The figures and pages every benchmark writes: percentiles, table cells, doc sections.

Where it sits: ``bench/`` — shared by the benchmark packages beside ``bench/machine.py``
(what the machine was), so every page reads its numbers the same way.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path

import numpy as np


def percentile(values: Sequence[float], p: float) -> float:
    """Linear-interpolated percentile (numpy's default); NaN for no values."""
    return float(np.percentile(np.asarray(values), p)) if values else float("nan")


def nearest_rank(values: Sequence[float], p: float) -> float:
    """The sample at rank ``p`` percent: a value that was really measured."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def cell(values: Sequence[float], fmt: str) -> str:
    """``median (min..max)`` of the repetitions, NaNs (runs without the figure) left
    out; ``n/a`` when none has it."""
    values = [v for v in values if v == v]
    if not values:
        return "n/a"
    m = statistics.median(values)
    if len(values) == 1:
        return f"{m:{fmt}}"
    return f"{m:{fmt}} ({min(values):{fmt}}..{max(values):{fmt}})"


def write_section(doc: Path, heading: str, text: str) -> None:
    """Replace the section starting at ``heading`` in ``doc`` up to the next level-2
    heading (or append it), keeping the rest: hand-written sections survive a re-run."""
    old = doc.read_text() if doc.exists() else ""
    if heading in old:
        head, _, rest = old.partition(heading)
        nxt = rest.find("\n## ")
        tail = rest[nxt + 1:] if nxt >= 0 else ""
        new = head + text.rstrip() + "\n" + ("\n" + tail if tail else "")
    else:
        new = (old.rstrip() + "\n\n" if old.strip() else "") + text.rstrip() + "\n"
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(new)
