"""Fact values as the runbook's ``stigmem-snapshot.sh`` prints them: the node's API response
(its recall sanitizer applied) put through jq 1.6's ``-r`` string interpolation.

Pure: text in, text out. Three things the script gets wrong are printed right here: ``false``
(jq's ``//`` takes it for missing and prints the type name), a ref whose target is no URL or
urn (the node's sanitizer blanks it, so the script prints ``ref``), and a multi-line value,
whose further lines are indented so that the Markdown list item stays whole.
"""

from __future__ import annotations

import math
import re
import sys
import unicodedata

# What the node's recall sanitizer removes from string and text values after NFKC: bidi
# controls and zero-width characters, then C0 controls except tab, line feed and carriage
# return.
_INVISIBLE = frozenset(
    [0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A), *range(0x200B, 0x200E), 0xFEFF]
)
_CONTROLS = re.compile(r"[\x00-\x08\x0B\x0C\x0E-\x1F]")
_LINE_BREAK = re.compile(r"\r\n|\r|\n")  # CommonMark's line endings
# jq prints a number in exponent form when its decimal point lies this many places beyond
# its shortest digits, or four or more places before them.
_MAX_TRAILING_ZEROS = 15


def jq_number(value: float) -> str:
    """``value`` as jq 1.6 prints a number: the shortest digits that read back as the same
    double, in plain form unless the exponent is far out (``1e+20``, ``1e-06``), the exponent
    signed and of two digits at least. jq has no infinities (it prints the largest double)
    and prints NaN as ``null``."""
    if math.isnan(value):
        return "null"
    if math.isinf(value):
        value = math.copysign(sys.float_info.max, value)
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    sign = "-" if value < 0 else ""
    digits, point = _shortest_digits(abs(value))
    if point <= -4 or point > len(digits) + _MAX_TRAILING_ZEROS:
        exponent = point - 1
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{mantissa}e{'-' if exponent < 0 else '+'}{abs(exponent):02d}"
    if point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return sign + digits + "0" * (point - len(digits))
    return f"{sign}{digits[:point]}.{digits[point:]}"


def _shortest_digits(value: float) -> tuple[str, int]:
    """The shortest round-tripping digits of a positive finite ``value`` (no leading or
    trailing zeros) and where the decimal point goes: ``value == 0.DIGITS * 10**point``.
    Python's ``repr`` is that same shortest form, only laid out differently."""
    text = repr(value)
    mantissa, _, exponent = text.partition("e")
    whole, _, fraction = mantissa.partition(".")
    raw = whole + fraction
    digits = raw.lstrip("0")
    point = len(whole) + (int(exponent) if exponent else 0) - (len(raw) - len(digits))
    return digits.rstrip("0"), point


def sanitized(text: str) -> str:
    """A string or text value as the node's recall sanitizer hands it out."""
    normalized = unicodedata.normalize("NFKC", text)
    visible = "".join(c for c in normalized if ord(c) not in _INVISIBLE)
    return _CONTROLS.sub("", visible)


def value_text(value_type: str, stored: str) -> str:
    """The fact value stored as (``value_type``, ``value_v``), as one Markdown list item's
    text: what the script prints, with the three fixes the module docstring names."""
    if value_type in ("string", "text"):
        text = sanitized(stored)
    elif value_type == "number":
        text = _number_text(stored)
    elif value_type == "boolean":
        text = "true" if stored == "true" else "false"
    elif value_type == "null":
        text = "null"
    else:  # datetime and ref: the stored text as it is
        text = stored
    return _LINE_BREAK.sub(lambda m: m.group(0) + "  ", text)


def _number_text(stored: str) -> str:
    try:
        number = float(stored)  # the node's own reading of a stored number
    except ValueError:
        return stored  # the node cannot read it either; the text says what is there
    if math.isnan(number) or math.isinf(number):
        return "number"  # the node's sanitizer blanks it; the script prints the type name
    return jq_number(number)
