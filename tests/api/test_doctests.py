"""The examples in kstate.api's docstrings are run, so they cannot rot."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["frozen", "quantity", "codec", "meta", "objects", "registry", "defaults",
           "validation", "helpers", "manifests", "protobuf"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(f"kstate.api.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0


def test_package_docstring() -> None:
    import kstate.api

    assert doctest.testmod(kstate.api).failed == 0
