"""Fuzzing untrusted JSON: the bounded loader, a snapshot's manifest and cursor, a store's
snapshot documents and config.json."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from snapshot.boundedjson import load
from snapshot.errors import StoreError, malformed
from snapshot.manifest import parse_cursor, parse_manifest
from store import config as store_config
from store import documents
from tests import hostile
from tests import reference_format as ref
from tests.fuzz.bounds import MiB, refused_or_accepted

MAX_MEMORY = 16 * MiB
DB = b"SQLite format 3\0" + bytes(496)
CURSOR = ref.cursor_bytes(["001_init"])
MANIFEST = hostile.signed_manifest(DB, CURSOR)

# JSON-shaped text that is mostly valid: nesting, numbers at their limits, escapes.
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**80), 2**80),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
)
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=30,
)
_tokens = st.sampled_from(
    [
        "[",
        "]",
        "{",
        "}",
        ",",
        ":",
        '"',
        "\\",
        "\\ud800",
        "\\udfff",
        "\\u0000",
        "1e400",
        "-1e400",
        "NaN",
        "Infinity",
        "9" * 5000,
        "-0",
        "0.0000001e-400",
        "true",
        "null",
        '"a"',
        "\ufeff",
        " ",
    ]
)
_json_text = st.one_of(
    _values.map(json.dumps),
    st.lists(_tokens, max_size=40).map("".join),
    st.integers(1, 200_000).map(lambda n: "[" * n),
    st.integers(1, 200_000).map(lambda n: '{"a":' * n),
)
_raw = st.one_of(
    _json_text.map(lambda t: t.encode("utf-8", "surrogatepass")), st.binary(max_size=2000)
)


@given(_raw)
def test_the_bounded_loader(data: bytes) -> None:
    def call() -> None:
        doc = load(data, "doc", StoreError, max_bytes=MiB)
        # What comes out is plain data that writes back as UTF-8 JSON.
        json.dumps(doc, ensure_ascii=False, allow_nan=False).encode("utf-8")

    refused_or_accepted(call, MAX_MEMORY)


_field_values: dict[str, Any] = {
    "version": st.one_of(st.integers(-(2**70), 2**70), _scalars, st.just(True)),
    "created_at": st.one_of(
        st.datetimes().map(lambda d: d.isoformat()),
        st.tuples(st.datetimes(), st.integers(-1439, 1439)).map(
            lambda p: (
                p[0].isoformat() + f"{'+' if p[1] >= 0 else '-'}"
                f"{abs(p[1]) // 60:02d}:{abs(p[1]) % 60:02d}"
            )
        ),
        st.sampled_from(
            [
                "0001-01-01T00:00:00+01:00",
                "9999-12-31T23:59:59.999999-23:59",
                "1969-12-31T23:59:59Z",
                "2026-06-01T03:00:00+00:00",
                "2026-06-01",
            ]
        ),
        st.text(max_size=40),
    ),
    "node_id": st.one_of(st.text(max_size=80), st.just("\ud800"), st.just("\x1b[2J")),
    "signer_pubkey": st.one_of(st.text(max_size=60), st.binary(max_size=40).map(ref.b64url)),
    "signature": st.one_of(st.text(max_size=100), st.binary(max_size=70).map(ref.b64url)),
    "artifacts": st.one_of(
        _values,
        st.dictionaries(
            st.sampled_from([ref.CURSOR, ref.DATABASE, "x"]),
            st.one_of(st.text(max_size=80), st.just("sha256:" + "0" * 64)),
            max_size=3,
        ),
    ),
}


@st.composite
def _manifests(draw: st.DrawFn) -> bytes:
    doc: dict[str, Any] = dict(MANIFEST)
    for field in draw(st.sets(st.sampled_from(sorted(_field_values)), max_size=3)):
        doc[field] = draw(_field_values[field])
    for field in draw(st.sets(st.sampled_from(sorted(doc)), max_size=1)):
        del doc[field]
    text = json.dumps(doc, indent=draw(st.sampled_from([None, 2])))
    return text.encode("utf-8", "surrogatepass")


@given(st.one_of(_manifests(), _raw))
def test_the_manifest_parser(data: bytes) -> None:
    def call() -> None:
        manifest = parse_manifest(data)
        # A manifest that parses has every derived value the commands use.
        assert manifest.snapshot_id and manifest.key_id and manifest.created_at.tzinfo
        manifest.signature_valid()
        manifest.node_id.encode("utf-8")

    refused_or_accepted(call, MAX_MEMORY)


@given(
    st.one_of(
        _raw,
        st.lists(st.one_of(st.text(max_size=20), _scalars), max_size=10).map(
            lambda v: json.dumps({"applied_migrations": v}).encode()
        ),
    )
)
def test_the_cursor_parser(data: bytes) -> None:
    refused_or_accepted(lambda: parse_cursor(data), MAX_MEMORY)


def test_the_loader_error_is_the_callers() -> None:
    caught = refused_or_accepted(lambda: load(b"[" * 99, "m", malformed, max_bytes=MiB), MiB)
    assert caught is not None and "malformed" in str(caught)


_store_values = st.one_of(
    _values,
    st.lists(st.one_of(st.text(max_size=70), st.just("ab" * 32)), max_size=5),
    st.integers(-(2**70), 2**70),
)


@st.composite
def _store_documents(draw: st.DrawFn) -> bytes:
    entry = {
        "size": draw(st.one_of(st.integers(-10, 2**70), _scalars)),
        "chunk_lists": draw(st.one_of(st.booleans(), _scalars)),
        "chunks": draw(_store_values),
    }
    doc = {"manifest": draw(st.one_of(st.just(MANIFEST), _values)), "artifacts": {"a": entry}}
    return json.dumps(doc).encode("utf-8", "surrogatepass")


@given(st.one_of(_store_documents(), _raw))
def test_store_snapshot_documents(data: bytes) -> None:
    refused_or_accepted(lambda: documents.parse(data, "ab" * 32), MAX_MEMORY)


@st.composite
def _store_configs(draw: st.DrawFn) -> bytes:
    doc: dict[str, Any] = {"format": "stigmem-store", "version": draw(_field_values["version"])}
    for section, keys in (
        ("chunking", ["pages_per_chunk"]),
        ("compression", ["level", "frame_size", "dictionary_size"]),
        ("packs", ["target_size"]),
        ("chunk_lists", ["hashes_per_list", "direct_max"]),
    ):
        if draw(st.booleans()):
            doc[section] = {k: draw(_store_values) for k in keys if draw(st.booleans())}
        elif draw(st.booleans()):
            doc[section] = draw(_values)
    return json.dumps(doc).encode("utf-8", "surrogatepass")


@given(st.one_of(_store_configs(), _raw))
def test_store_config_json(data: bytes) -> None:
    refused_or_accepted(lambda: store_config.parse(data, "memory://fuzz"), MAX_MEMORY)
