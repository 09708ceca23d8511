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
# Everything but quotes, brackets and commas, deleted before structure is counted.
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b'"[]{},')
# What a parsed value costs in memory is mostly fixed overhead (a 2-byte string is a 51-byte
# object): values and containers are counted before parsing and bounded by the document's
# size, so that ``"a",`` or ``{"a":1},`` repeated cannot turn 16 MiB into 500 MiB. A
# document this project writes has a value per 64 bytes or more (hashes, keys) and a few
# containers. A small document may always have 64 values in 16 containers.
BYTES_PER_VALUE = 64
BYTES_PER_CONTAINER = 1024
# A string left after the empty ones are gone (it holds brackets); unterminated: to the end.
_STRING = re.compile(rb'"[^"]*"?')
# The only way a lone surrogate gets past strict UTF-8 decoding: a \uD800-\uDFFF escape.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")

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


def structure(data: bytes) -> bytes:
    """The brackets and commas of ``data`` that lie outside strings, found without parsing
    it, in C-speed passes over bytes, holding two copies of ``data`` at most.

    Escaped backslashes and quotes are dropped, then everything but quotes, brackets and
    commas. Removing two adjacent quotes never changes which bytes lie inside a string, so
    every string without brackets or commas disappears in one ``replace``; a pattern removes
    the rare rest (an unterminated string runs to the end).
    """
    shape = data.replace(b"\\\\", b"").replace(b'\\"', b"").translate(None, _NOT_STRUCTURE)
    shape = shape.replace(b'""', b"")
    if b'"' in shape:
        shape = _STRING.sub(b"", shape)
    return shape


def nests_within(shape: bytes, max_depth: int) -> bool:
    """Whether the brackets of ``shape`` (from :func:`structure`) balance and nest at most
    ``max_depth`` deep: each of at most ``max_depth`` passes removes every innermost pair.
    Brackets left are nested deeper or unbalanced: either way not a document to parse."""
    brackets = shape.translate(None, b",")
    for _ in range(max_depth):
        if not brackets:
            return True
        fewer = brackets.replace(b"[]", b"").replace(b"{}", b"")
        if len(fewer) == len(brackets):
            return False  # no pair left to remove: unbalanced
        brackets = fewer
    return not brackets


def _has_lone_surrogate(doc: Any) -> bool:
    """Whether any string in ``doc`` (keys included) cannot be encoded as UTF-8."""
    pending = [doc]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(item, dict):
            pending.extend(item)
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False


def load(
    data: bytes | str,
    what: str,
    fail: Fail,
    *,
    max_bytes: int,
    max_depth: int = MAX_DEPTH,
) -> Any:
    """Parse ``data`` (the document called ``what`` in messages) or raise ``fail(message)``.

    ``max_bytes`` is the caller's bound on the encoded size. Nesting, and the number of
    values and containers (bounded by ``max_bytes``), are checked on the document's
    :func:`structure` before the parser (which recurses and allocates) sees the text.
    """
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    if len(raw) > max_bytes:
        raise fail(f"{what} is {len(raw)} bytes, over the limit of {max_bytes}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise fail(f"{what} is not UTF-8 ({exc.reason} at byte {exc.start})") from None
    shape = structure(raw)
    if not nests_within(shape, max_depth):
        raise fail(f"{what} nests deeper than {max_depth} levels (or its brackets do not match)")
    containers = shape.count(b"[") + shape.count(b"{")
    if containers > 16 + max_bytes // BYTES_PER_CONTAINER:
        raise fail(f"{what} has {containers} arrays and objects, too many for its size limit")
    values = containers + shape.count(b",")
    if values > 64 + max_bytes // BYTES_PER_VALUE:
        raise fail(f"{what} has {values} values, too many for its size limit")
    del shape
    try:
        doc = _DECODER.decode(text)
    except _Refused as exc:
        raise fail(f"{what} {exc}") from None
    except ValueError as exc:  # JSONDecodeError, and anything else the decoder rejects
        raise fail(f"{what} is not JSON: {getattr(exc, 'msg', exc)}") from None
    # Raw bytes were strict UTF-8, so only an escape can have made a lone surrogate; the walk
    # runs only when one may be there (an escaped surrogate pair is fine).
    if _SURROGATE_ESCAPE.search(raw) and _has_lone_surrogate(doc):
        raise fail(f"{what} has a string that is not valid Unicode (a lone surrogate)")
    return doc
