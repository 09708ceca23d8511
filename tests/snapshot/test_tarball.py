"""The tarball writer is deterministic; the reader accepts the node's variations and streams."""

from __future__ import annotations

import gzip
import hashlib
import io
import random
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

import pytest

from snapshot.errors import VerificationError
from snapshot.keys import private_key_from_text
from snapshot.manifest import DB_MEMBER, cursor_bytes, sign_manifest
from snapshot.tarball import read_tarball, write_tarball
from tests import hostile
from tests import reference_format as ref

SEED = bytes(range(32))


def _write(path: Path, db: bytes, when: datetime) -> str:
    cursor = cursor_bytes(["001_init"])
    manifest = sign_manifest(
        created_at=when,
        node_id="stigmem:node:t",
        db_sha256=hashlib.sha256(db).hexdigest(),
        cursor_sha256=hashlib.sha256(cursor).hexdigest(),
        private_key=private_key_from_text(ref.b64url(SEED), "test"),
    )

    def body(out: BinaryIO) -> None:
        out.write(db)

    with path.open("wb") as handle:
        write_tarball(handle, manifest, cursor, len(db), body)
    return manifest.snapshot_id


def test_same_snapshot_same_bytes(tmp_path: Path) -> None:
    db = random.Random(1).randbytes(70_000)
    when = datetime(2026, 6, 1, 3, 0, 0, 123456, tzinfo=UTC)
    first, second = tmp_path / "a.tar.gz", tmp_path / "b.tar.gz"
    _write(first, db, when)
    _write(second, db, when)
    assert first.read_bytes() == second.read_bytes()
    assert next(m[0] for m in ref.members_of(first)) == "manifest.json"


@pytest.mark.parametrize("variant", ["reordered", "no-dir-entry", "dot-slash", "compact"])
def test_reader_accepts_the_node_variations(tmp_path: Path, variant: str) -> None:
    db = random.Random(2).randbytes(10_000)
    when = datetime(2026, 6, 1, tzinfo=UTC)
    indent = None if variant == "compact" else 2
    members, manifest = ref.reference_members(
        db, SEED, "stigmem:node:t", ["001_init"], when, indent
    )
    if variant == "reordered":
        members = [members[3], members[2], members[0]]
    elif variant == "no-dir-entry":
        members = [m for m in members if m.kind != "dir"]
    elif variant == "dot-slash":
        members = [ref.TarMember("./" + m.name, m.data, m.kind) for m in members]
    path = ref.write_tar_gz(tmp_path / "t.tar.gz", members)
    received = io.BytesIO()

    def sink(chunk: bytes) -> None:
        received.write(chunk)

    contents = read_tarball(path, sink)
    contents.check_artifacts()
    assert received.getvalue() == db
    assert contents.manifest.snapshot_id == ref.snapshot_id_of(manifest)
    assert contents.manifest.signature_valid()
    assert contents.applied_migrations == ["001_init"]


def test_flipped_byte_is_a_checksum_error(tmp_path: Path) -> None:
    db = random.Random(3).randbytes(10_000)
    when = datetime(2026, 6, 1, tzinfo=UTC)
    members, _ = ref.reference_members(db, SEED, "n", ["001_init"], when)
    members[3] = ref.TarMember(ref.DATABASE, db[:-1] + bytes([db[-1] ^ 1]))
    contents = read_tarball(ref.write_tar_gz(tmp_path / "t.tar.gz", members))
    with pytest.raises(VerificationError) as caught:
        contents.check_artifacts()
    assert caught.value.outcome == "checksum_error" and DB_MEMBER in caught.value.detail


def test_oversized_extended_header_is_refused(tmp_path: Path) -> None:
    members, _ = ref.reference_members(b"x" * 100, SEED, "n", [], datetime(2026, 6, 1, tzinfo=UTC))
    long_name = "artifacts/" + "a" * 200_000
    path = ref.write_tar_gz(tmp_path / "t.tar.gz", [*members, ref.TarMember(long_name, b"x")])
    with pytest.raises(VerificationError) as caught:
        read_tarball(path)
    assert caught.value.outcome == "malformed"


# ---------------------------------------------------------------- hostile archives


def _read_bytes(tmp_path: Path, data: bytes) -> VerificationError:
    path = tmp_path / "hostile.tar.gz"
    path.write_bytes(data)
    with pytest.raises(VerificationError) as caught:
        read_tarball(path).check_artifacts()
    assert caught.value.outcome == "malformed", caught.value
    assert "\n" not in str(caught.value)
    return caught.value


def test_the_hostile_helpers_make_a_valid_tarball(tmp_path: Path) -> None:
    path = tmp_path / "ok.tar.gz"
    path.write_bytes(hostile.tarball())
    contents = read_tarball(path)
    contents.check_artifacts()
    assert contents.manifest.signature_valid()


@pytest.mark.parametrize(
    "size_field",
    [
        b"30000000000\0",  # 3 GiB in octal
        b"\x80" + (3 << 30).to_bytes(11, "big"),  # 3 GiB in base-256
        b"\x80" + b"\xff" * 11,  # 2**88 - 1
    ],
)
def test_a_directory_declaring_a_body_is_refused_before_reading_it(
    tmp_path: Path, size_field: bytes
) -> None:
    # 64 MiB of zeros (64 KiB of gzip) follow: they were all inflated in one read.
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0) as gz:
        gz.write(hostile.header("artifacts/", b"5", size_field=size_field))
        for _ in range(64):
            gz.write(bytes(1 << 20))
    tracemalloc.start()
    try:
        error = _read_bytes(tmp_path, out.getvalue())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "directory" in error.detail or "out of range" in error.detail
    assert peak < 8 << 20


@pytest.mark.parametrize(
    "size_field", [b"-0000000001\0", b"-7777777777\0", b" +1_0\0", b"\xff" + b"\xff" * 11]
)
def test_a_negative_or_signed_size_is_refused(tmp_path: Path, size_field: bytes) -> None:
    tar = hostile.header("manifest.json", b"0", size_field=size_field) + hostile.end()
    _read_bytes(tmp_path, hostile.gz(tar))


@pytest.mark.parametrize("value", ["-1", "-4096", "+5", "1_0", " 5", "9" * 5000, "0x10"])
def test_a_pax_size_that_is_not_plain_digits_is_refused(tmp_path: Path, value: str) -> None:
    # A size of -1 read the rest of the stream into memory, then read(-n) on the body.
    tar = (
        hostile.pax({"size": value})
        + hostile.header("manifest.json", b"0", 0)
        + b"\0" * (1 << 20)
        + hostile.end()
    )
    error = _read_bytes(tmp_path, hostile.gz(tar))
    assert "bad PAX size" in error.detail


def test_a_base256_size_past_the_cap_is_refused_not_read(tmp_path: Path) -> None:
    tar = hostile.header("manifest.json", b"0", size_field=b"\x80" + (1 << 40).to_bytes(11, "big"))
    error = _read_bytes(tmp_path, hostile.gz(tar + hostile.end()))
    assert "over the cap" in error.detail


@pytest.mark.parametrize(("crc", "isize"), [(0, None), (None, 12345), (0xFFFFFFFF, 0)])
def test_a_wrong_gzip_trailer_is_malformed(
    tmp_path: Path, crc: int | None, isize: int | None
) -> None:
    error = _read_bytes(tmp_path, hostile.with_trailer(hostile.tarball(), crc, isize))
    assert "gzip" in error.detail


def test_data_after_the_end_of_archive_is_malformed(tmp_path: Path) -> None:
    good = hostile.tarball()
    tar = gzip.decompress(good) + b"attacker text" + b"\0" * 500
    error = _read_bytes(tmp_path, hostile.gz(tar))
    assert "after its end-of-archive" in error.detail


def test_zero_padding_after_the_end_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "padded.tar.gz"
    path.write_bytes(hostile.gz(gzip.decompress(hostile.tarball()) + b"\0" * 20 * 512))
    read_tarball(path).check_artifacts()


def test_a_huge_member_path_is_cut_short_in_the_error(tmp_path: Path) -> None:
    name = "../" + "x" * 60_000
    tar = hostile.pax({"path": name}) + hostile.member("whatever", b"x") + hostile.end()
    error = _read_bytes(tmp_path, hostile.gz(tar))
    assert len(str(error)) < 400 and error.detail.endswith("...")


@pytest.mark.parametrize(
    "created_at",
    [
        "0001-01-01T00:00:00+01:00",  # OverflowError converting to UTC
        "9999-12-31T23:59:59-01:00",
        "1969-12-31T23:59:59+00:00",
        "9999-06-01T00:00:00+00:00",
    ],
)
def test_a_created_at_out_of_range_is_malformed(tmp_path: Path, created_at: str) -> None:
    db = b"SQLite format 3\0" + bytes(496)
    manifest = hostile.signed_manifest(db, ref.cursor_bytes(["001_init"]), created_at=created_at)
    error = _read_bytes(tmp_path, hostile.tarball(db, manifest))
    assert "created_at" in error.detail


@pytest.mark.parametrize("node_id", ["stigmem:node:\ud800", "\udfff"])
def test_a_node_id_with_a_lone_surrogate_is_malformed(tmp_path: Path, node_id: str) -> None:
    db = b"SQLite format 3\0" + bytes(496)
    manifest = hostile.signed_manifest(db, ref.cursor_bytes(["001_init"]), node_id=node_id)
    error = _read_bytes(tmp_path, hostile.tarball(db, manifest))
    assert "surrogate" in error.detail


@pytest.mark.parametrize(
    "doc",
    [b"[" * 100_000, b'{"applied_migrations": [' + b"1" * 5000 + b"]}"],
)
def test_a_hostile_cursor_is_malformed(tmp_path: Path, doc: bytes) -> None:
    db = b"SQLite format 3\0" + bytes(496)
    manifest = hostile.signed_manifest(db, doc)
    tar = (
        hostile.manifest_member(manifest)
        + hostile.member(ref.CURSOR, doc)
        + hostile.member(ref.DATABASE, db)
        + hostile.end()
    )
    _read_bytes(tmp_path, hostile.gz(tar))


@pytest.mark.parametrize(
    ("node_id", "problem"),
    [("n" * 256, "longer than 255"), ("stigmem:node:\0x", "NUL"), ("", None), ("é" * 255, None)],
)
def test_a_node_id_the_catalog_cannot_store_is_malformed(
    tmp_path: Path, node_id: str, problem: str | None
) -> None:
    db = b"SQLite format 3\0" + bytes(496)
    manifest = hostile.signed_manifest(db, ref.cursor_bytes(["001_init"]), node_id=node_id)
    data = hostile.tarball(db, manifest)
    if problem is None:
        path = tmp_path / "ok.tar.gz"
        path.write_bytes(data)
        assert read_tarball(path).manifest.node_id == node_id
        return
    assert problem in _read_bytes(tmp_path, data).detail
