"""The examples in the proxy's docstrings run."""

from __future__ import annotations

import doctest

import pytest

from kstate.control import podports
from kstate.proxy import routing


@pytest.mark.parametrize("module", [routing, podports], ids=lambda m: m.__name__)
def test_doctests(module: object) -> None:
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)  # type: ignore[arg-type]
    assert result.failed == 0 and result.attempted > 0
