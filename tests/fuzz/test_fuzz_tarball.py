"""Fuzzing the tarball reader: mutated node tarballs and archives built from hostile parts."""

from __future__ import annotations

import gzip
import tempfile
from pathlib import Path

from hypothesis import given, note
from hypothesis import strategies as st

from snapshot.tarball import read_tarball
from tests import hostile
from tests import reference_format as ref
from tests.fuzz.bounds import MiB, refused_or_accepted

# Reading keeps one 1 MiB block, the small members and gzip's window; a hostile header that
# made the reader allocate what it declares would pass this at once.
MAX_MEMORY = 24 * MiB
BASE_TAR = gzip.decompress(hostile.tarball())
_DIR = Path(tempfile.mkdtemp(prefix="stigmem-fuzz-"))


def _read(data: bytes) -> None:
    path = _DIR / "input.tar.gz"
    path.write_bytes(data)

    def call() -> None:
        read_tarball(path, max_db_size=MiB).check_artifacts()

    refused_or_accepted(call, MAX_MEMORY)


# ---------------------------------------------------------------- byte-level mutations

# (kind, position, a number, some bytes): set a byte, insert bytes, delete a run, truncate.
Mutation = tuple[str, int, int, bytes]
_mutation = st.tuples(
    st.sampled_from(["set", "insert", "delete", "truncate"]),
    st.integers(0, len(BASE_TAR)),
    st.integers(0, 1024),
    st.binary(max_size=600),
)


def _mutate(data: bytes, mutations: list[Mutation]) -> bytes:
    buf = bytearray(data)
    for kind, at, number, blob in mutations:
        pos = min(at, len(buf))
        if kind == "set" and pos < len(buf):
            buf[pos] = number % 256
        elif kind == "insert":
            buf[pos:pos] = blob
        elif kind == "delete":
            del buf[pos : pos + max(number, 1)]
        elif kind == "truncate":
            del buf[pos:]
    return bytes(buf)


@given(st.lists(_mutation, min_size=1, max_size=6))
def test_mutated_node_tarballs(mutations: list[Mutation]) -> None:
    _read(hostile.gz(_mutate(BASE_TAR, mutations)))


@given(st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=4))
def test_mutated_gzip_bytes(flips: list[tuple[int, int]]) -> None:
    data = bytearray(hostile.tarball())
    for pos, value in flips:
        data[pos % len(data)] = value
    _read(bytes(data))


# ---------------------------------------------------------------- archives from hostile parts

_names = st.one_of(
    st.sampled_from(
        [
            "manifest.json",
            "artifacts/",
            "artifacts",
            ref.CURSOR,
            ref.DATABASE,
            "./manifest.json",
            "../manifest.json",
            "/etc/passwd",
            "artifacts/../manifest.json",
            "artifacts\\stigmem.db",
            "",
        ]
    ),
    st.text(max_size=120),
)
_size_fields = st.one_of(
    st.integers(0, 8**11 - 1).map(lambda n: f"{n:011o}\0".encode()),
    st.integers(-(8**10), -1).map(lambda n: f"{n:011o}\0".encode()),
    st.binary(min_size=11, max_size=11).map(lambda b: b"\x80" + b),
    st.binary(min_size=11, max_size=11).map(lambda b: b"\xff" + b),
    st.binary(min_size=12, max_size=12),
    st.sampled_from([b"30000000000\0", b"77777777777\0", b" +1_0\0", b"-1\0", b"\0" * 12]),
)
_kinds = st.one_of(
    st.sampled_from([b"0", b"\0", b"5", b"x", b"L", b"g", b"1", b"2", b"3"]),
    st.binary(min_size=1, max_size=1),
)
_pax_values = st.one_of(
    st.sampled_from(["-1", "0", "99999999999999999999", "1_0", " 5", "+5", "1e3"]),
    st.integers(-(2**70), 2**70).map(str),
    st.text(max_size=200),
)
_manifests = st.sampled_from(
    [
        b"[" * 5000,
        b'{"version": ' + b"9" * 5000 + b"}",
        b'{"version": 1e400}',
        b'{"a": 1, "a": 2}',
        b'"\\ud800"',
    ]
).map(lambda doc: hostile.member("manifest.json", doc))


@st.composite
def _member(draw: st.DrawFn) -> bytes:
    parts = b""
    if draw(st.booleans()):
        keys = st.sampled_from(["size", "path", "linkpath", "mtime", "uid"])
        parts += hostile.pax(draw(st.dictionaries(keys, _pax_values, max_size=3)))
    head = hostile.header(draw(_names), draw(_kinds), size_field=draw(_size_fields))
    body = draw(st.binary(max_size=2048))
    if draw(st.booleans()):
        body += bytes(draw(st.integers(0, 4)) * MiB)
    return parts + head + hostile.pad(body)


@given(
    st.lists(st.one_of(_member(), _manifests), max_size=6),
    st.sampled_from([hostile.end(), b"", b"\0" * 512, hostile.end() + b"trailing"]),
)
def test_archives_of_hostile_members(members: list[bytes], end: bytes) -> None:
    note(f"{len(members)} members")
    _read(hostile.gz(b"".join(members) + end))
