"""The one loader for JSON that someone else wrote: tarball members, store documents, locks,
the store's ``config.json``, trusted-keys files.

``json.loads`` alone trusts its input in ways an attacker can use: nesting 100,000 deep
raises ``RecursionError``, an integer of 5,000 digits raises a bare ``ValueError``, ``1e400``
becomes ``inf`` (and ``int(inf)`` an ``OverflowError``), ``NaN`` is accepted, a duplicate key
silently wins, and an escaped lone surrogate (``"\\ud800"``) becomes a string that no UTF-8
writer can store. Here every one of those is refused, before anything is allocated where a
bound applies, with the caller's own error class, so what reaches the caller is plain data:
dicts, lists, UTF-8-safe strings, bools, None, ints in 64-bit range and finite floats.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any

from snapshot.errors import StigmemError, shown

# Deeper than any document this project writes (store documents are 4 levels).
MAX_DEPTH = 32
# Integers fit a signed 64-bit column; longer digit strings are refused before int() runs.
MAX_INT = (1 << 63) - 1
_MAX_NUMBER_TEXT = 40
# A string token (escapes included) or a bracket; strings are skipped whole so brackets inside
# them do not count. An unterminated string runs to the end, which keeps the scan linear.
_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"?|[\[\]{}]', re.DOTALL)

Fail = Callable[[str], StigmemError]


class _Refused(Exception):
    """Raised from inside the decoder's hooks; turned into the caller's error."""


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _Refused(f"has duplicate key {shown(key, 60)}")
        out[key] = value
    return out


def _parse_int(text: str) -> int:
    if len(text) > _MAX_NUMBER_TEXT:
        raise _Refused("has an integer of more than 40 digits")
    value = int(text)
    if not -MAX_INT - 1 <= value <= MAX_INT:
        raise _Refused("has an integer outside the 64-bit range")
    return value


def _parse_float(text: str) -> float:
    if len(text) > _MAX_NUMBER_TEXT:
        raise _Refused("has a number of more than 40 characters")
    value = float(text)
    if not math.isfinite(value):
        raise _Refused("has a number too large to represent")
    return value


def _parse_constant(text: str) -> Any:
    raise _Refused(f"has the non-finite number {text}")


_DECODER = json.JSONDecoder(
    object_pairs_hook=_no_duplicates,
    parse_int=_parse_int,
    parse_float=_parse_float,
    parse_constant=_parse_constant,
)


def depth_of(data: bytes) -> int:
    """How deeply ``data``'s arrays and objects nest, counted without parsing it."""
    depth = deepest = 0
    for token in _TOKENS.finditer(data):
        first = token.group()[:1]
        if first in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        elif first in (b"]", b"}"):
            depth -= 1
    return deepest


def load(
    data: bytes | str,
    what: str,
    fail: Fail,
    *,
    max_bytes: int,
    max_depth: int = MAX_DEPTH,
) -> Any:
    """Parse ``data`` (the document called ``what`` in messages) or raise ``fail(message)``.

    ``max_bytes`` is the caller's bound on the encoded size; the nesting bound is checked by
    a scan before the parser (which recurses) sees the text.
    """
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    if len(raw) > max_bytes:
        raise fail(f"{what} is {len(raw)} bytes, over the limit of {max_bytes}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise fail(f"{what} is not UTF-8 ({exc.reason} at byte {exc.start})") from None
    if depth_of(raw) > max_depth:
        raise fail(f"{what} nests deeper than {max_depth} levels")
    try:
        doc = _DECODER.decode(text)
    except _Refused as exc:
        raise fail(f"{what} {exc}") from None
    except ValueError as exc:  # JSONDecodeError, and anything else the decoder rejects
        raise fail(f"{what} is not JSON: {getattr(exc, 'msg', exc)}") from None
    try:
        # C-speed check that every string (keys included) can be written back out as UTF-8:
        # only an escaped lone surrogate can fail here, raw bytes were strict UTF-8 already.
        json.dumps(doc, ensure_ascii=False, check_circular=False).encode("utf-8")
    except UnicodeEncodeError:
        raise fail(f"{what} has a string that is not valid Unicode (a lone surrogate)") from None
    return doc
