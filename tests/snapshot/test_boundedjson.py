"""The bounded JSON loader refuses, with the caller's error, what json.loads would crash on."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import pytest

from snapshot.boundedjson import load
from snapshot.errors import StigmemError, StoreError, VerificationError, malformed
from snapshot.keys import load_trusted_keys_file


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "nests deeper than 32 levels"),
        (b'{"a":' * 40 + b"1" + b"}" * 40, "nests deeper than 32 levels"),
        (b"1" * 4_301, "integer of more than 40 digits"),
        (b'{"pid": 1180591620717411303424}', "outside the 64-bit range"),
        (b'{"pid": 1e400}', "too large to represent"),
        (b'{"pid": -Infinity}', "non-finite number -Infinity"),
        (b"NaN", "non-finite number NaN"),
        (b'{"a": 1, "a": 2}', "duplicate key 'a'"),
        (b'{"node_id": "\\ud800"}', "lone surrogate"),
        (b'{"\\udfff": 1}', "lone surrogate"),
        (b"\xff{}", "is not UTF-8"),
        (b"{", "brackets do not match"),
        (b"[}", "brackets do not match"),
        (b'{"a" 1}', "is not JSON"),
        (b" " * ((1 << 20) + 1), "over the limit of 1048576"),
    ],
)
def test_hostile_json_is_refused_with_the_callers_error(data: bytes, problem: str) -> None:
    with pytest.raises(VerificationError) as err:
        load(data, "manifest.json", malformed, max_bytes=1 << 20)
    assert err.value.outcome == "malformed"
    assert problem in str(err.value)
    assert "\n" not in str(err.value)


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    text = '{"a": "' + "[{" * 1000 + '\\"]"}'
    assert load(text, "doc", StoreError, max_bytes=1 << 20) == {"a": "[{" * 1000 + '"]'}


def test_an_unterminated_string_of_escaped_quotes_is_scanned_in_linear_time() -> None:
    # Each escaped quote would restart a backtracking string match: quadratic, minutes.
    with pytest.raises(StoreError, match="not JSON"):
        load('"' + '\\"' * 500_000, "doc", StoreError, max_bytes=2 << 20)


def test_plain_documents_come_through() -> None:
    doc = load(b'{"a": [1, -2.5, true, null, "\\u00e9"], "b": {}}', "doc", StoreError, max_bytes=99)
    assert doc == {"a": [1, -2.5, True, None, "é"], "b": {}}


@pytest.mark.parametrize(
    "text", ["[" * 100_000, '["' + "A" * 43 + '", 1e400]', '["a", "a"' + ", 9" * 2 + "]"]
)
def test_a_hostile_trusted_keys_file_is_one_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "keys.json"
    path.write_text(text)
    with pytest.raises(StigmemError) as err:
        load_trusted_keys_file(path)
    assert "\n" not in str(err.value) and str(path) in str(err.value)


def test_a_trusted_keys_file_is_read_only_up_to_its_limit(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    path.write_bytes(b" " * (2 << 20))
    with pytest.raises(StigmemError, match="over the limit"):
        load_trusted_keys_file(path)


@pytest.mark.parametrize(
    ("unit", "problem"),
    [(b'{"a":1},', "arrays and objects"), (b'"ab",', "values"), (b"1000,", "values")],
)
def test_many_small_values_are_refused_before_parsing(unit: bytes, problem: str) -> None:
    # 1 MiB of these parsed to 25-60 MiB of objects: what a value costs is its overhead.
    data = b"[" + unit * ((1 << 20) // len(unit) - 1) + b"1]"
    tracemalloc.start()
    try:
        with pytest.raises(StoreError, match=f"{problem}, too many for its size limit"):
            load(data, "doc", StoreError, max_bytes=1 << 20)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20


def test_a_document_of_hashes_at_its_size_limit_is_accepted() -> None:
    hashes = [f"{n:064x}" for n in range((1 << 20) // 68 - 1)]
    data = json.dumps({"chunks": hashes}).encode()
    assert len(data) <= 1 << 20
    assert load(data, "doc", StoreError, max_bytes=1 << 20) == {"chunks": hashes}
