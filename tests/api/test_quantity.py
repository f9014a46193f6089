"""Quantities: exact values, Kubernetes suffixes, rounding up like MilliValue()/Value()."""

from __future__ import annotations

from fractions import Fraction

import pytest

from kstate.api.quantity import QuantityError, int_value, is_quantity, milli_value, parse_quantity


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("100m", Fraction(1, 10)),
        ("1", Fraction(1)),
        ("0.5", Fraction(1, 2)),
        (".5", Fraction(1, 2)),
        ("1.", Fraction(1)),
        ("+2", Fraction(2)),
        ("-1", Fraction(-1)),
        ("128Mi", Fraction(128 * 2**20)),
        ("1.5Gi", Fraction(3 * 2**29)),
        ("1Ki", Fraction(1024)),
        ("2Ti", Fraction(2 * 2**40)),
        ("1Pi", Fraction(2**50)),
        ("1Ei", Fraction(2**60)),
        ("1k", Fraction(1000)),
        ("1M", Fraction(10**6)),
        ("1G", Fraction(10**9)),
        ("1T", Fraction(10**12)),
        ("1P", Fraction(10**15)),
        ("1E", Fraction(10**18)),
        ("5n", Fraction(5, 10**9)),
        ("5u", Fraction(5, 10**6)),
        ("1e3", Fraction(1000)),
        ("1E3", Fraction(1000)),
        ("12e-1", Fraction(6, 5)),
        ("2e+2", Fraction(200)),
    ],
)
def test_parse(text: str, value: Fraction) -> None:
    assert parse_quantity(text) == value


@pytest.mark.parametrize("text", ["", "m", "1mi", "1KiB", "one", "1.2.3", "1 Gi", "--1",
                                  "1e", "1e1000", "9" * 100, "0x10"])
def test_reject(text: str) -> None:
    with pytest.raises(QuantityError):
        parse_quantity(text)
    assert not is_quantity(text)


def test_rounding_is_up_like_kubernetes() -> None:
    assert milli_value("100m") == 100
    assert milli_value("0.0001") == 1
    assert milli_value("2") == 2000
    assert int_value("1.5") == 2
    assert int_value("128Mi") == 134217728
    assert int_value("100m") == 1


def test_exact_arithmetic() -> None:
    assert parse_quantity("0.1") + parse_quantity("0.2") == parse_quantity("300m")
