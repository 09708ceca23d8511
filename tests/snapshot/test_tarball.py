"""The tarball writer is deterministic; the reader accepts the node's variations and streams."""

from __future__ import annotations

import hashlib
import io
import random
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

import pytest

from snapshot.errors import VerificationError
from snapshot.keys import private_key_from_text
from snapshot.manifest import DB_MEMBER, cursor_bytes, sign_manifest
from snapshot.tarball import read_tarball, write_tarball
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
