"""Golden exports: every lifecycle change must show up as a reviewed diff in specs/machines.

If this fails after an intended change, regenerate with
``kstate graph all --export specs/machines`` and review the diff in the commit.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kstate import machines
from kstate.verify import graphs

GOLDEN = Path(__file__).resolve().parents[2] / "specs" / "machines"


@pytest.mark.parametrize("name", sorted(machines.MACHINES))
def test_golden_exports_are_current(name: str) -> None:
    for filename, text in graphs.export(machines.MACHINES[name]).items():
        golden = GOLDEN / filename
        assert golden.exists(), f"{golden} missing: run kstate graph all --export specs/machines"
        assert golden.read_text() == text, (
            f"{filename} differs from the definition: run "
            "'kstate graph all --export specs/machines' and review the diff"
        )


def test_no_stale_golden_files() -> None:
    expected = {f for d in machines.MACHINES.values() for f in graphs.export(d)}
    assert {p.name for p in GOLDEN.iterdir()} == expected
