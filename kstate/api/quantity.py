"""Kubernetes resource quantities ("100m", "128Mi", "1e3") as exact numbers.

Where it sits: objects keep quantities as the strings the user wrote (so output is
lossless); validation, the scheduler's NodeResourcesFit and QoS computations need their
values. Parsing is exact (``Fraction``) so "0.1" + "0.2" CPUs never drift, and rounding is
the same as Kubernetes' ``MilliValue()`` / ``Value()``: up, towards the next integer.

>>> milli_value("100m"), milli_value("2"), int_value("128Mi"), int_value("1e3")
(100, 2000, 134217728, 1000)
>>> parse_quantity("1.5Gi") == parse_quantity("1536Mi")
True
"""

from __future__ import annotations

import functools
import math
import re
from fractions import Fraction

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {
    "n": Fraction(1, 10**9),
    "u": Fraction(1, 10**6),
    "m": Fraction(1, 1000),
    "": Fraction(1),
    "k": Fraction(10**3),
    "M": Fraction(10**6),
    "G": Fraction(10**9),
    "T": Fraction(10**12),
    "P": Fraction(10**15),
    "E": Fraction(10**18),
}

# Kubernetes' grammar: a signed decimal number followed by a binary-SI suffix, a
# decimal-SI suffix, or a decimal exponent (e/E and a signed integer).
_QUANTITY = re.compile(
    r"^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))"
    r"(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?[0-9]+)?$"
)

# An exponent this large is not a resource amount, and Fraction(10**huge) would eat the
# machine: refuse it like Kubernetes (which caps quantities far below this).
_MAX_EXPONENT = 100
# Likewise for the digits (Python refuses to parse integers of 4300+ digits anyway).
_MAX_LENGTH = 64


class QuantityError(ValueError):
    """Text that is not a Kubernetes quantity."""


def parse_quantity(text: str) -> Fraction:
    """The exact value of a quantity string.

    >>> parse_quantity("250m")
    Fraction(1, 4)
    """
    if not isinstance(text, str):
        raise QuantityError(f"quantity must be a string, got {type(text).__name__}")
    return _parse(text)


@functools.lru_cache(maxsize=4096)
def _parse(text: str) -> Fraction:
    # Every create validates, defaults and schedules the same few dozen strings
    # ("100m", "128Mi"); a Fraction is immutable, so one parse serves them all.
    if len(text) > _MAX_LENGTH:
        raise QuantityError(f"quantity of {len(text)} characters is too long")
    m = _QUANTITY.match(text.strip())
    if m is None or not text.strip():
        raise QuantityError(
            f"{text!r} is not a quantity (examples: 100m, 0.5, 2, 128Mi, 1Gi, 1e3)"
        )
    number, suffix = m.group(1), m.group(2) or ""
    value = Fraction(number)
    if suffix in _BINARY:
        return value * _BINARY[suffix]
    if suffix in _DECIMAL:
        return value * _DECIMAL[suffix]
    exponent = int(suffix[1:])
    if abs(exponent) > _MAX_EXPONENT:
        raise QuantityError(f"{text!r}: exponent {exponent} is out of range")
    return value * Fraction(10) ** exponent


def is_quantity(text: str) -> bool:
    """Whether ``text`` parses as a quantity."""
    try:
        parse_quantity(text)
    except QuantityError:
        return False
    return True


def milli_value(text: str) -> int:
    """Value in thousandths, rounded up (CPU: millicores). ``milli_value("0.1") == 100``."""
    return math.ceil(parse_quantity(text) * 1000)


def int_value(text: str) -> int:
    """Value as an integer, rounded up (memory: bytes). ``int_value("1Ki") == 1024``."""
    return math.ceil(parse_quantity(text))
