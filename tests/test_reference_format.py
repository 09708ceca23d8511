"""Self-test of the independent reference writer/reader (tests/reference_format.py).

Other tests trust it to tell a good tarball from a bad one, so it is checked here against
docs/design.md section 2 by hand: member order, signed bytes, names, and every rejection its
broken-tarball builders are meant to trigger.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import sqlite3
import tarfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from tests.reference_format import (
    CURSOR,
    DATABASE,
    MANIFEST,
    ReferenceVerifyError,
    TarMember,
    b64url_decode,
    gunzip_member,
    key_id_of,
    members_of,
    public_key_of,
    read_reference_tarball,
    reference_members,
    sign_manifest,
    write_reference_tarball,
    write_size_bomb,
    write_tar_gz,
)

SEED = bytes(range(32))
OTHER_SEED = bytes(range(1, 33))
NODE = "stigmem:node:6f1c2a34-0d5e-4c4f-9a47-2b1f0e9d8c7a"
WHEN = datetime(2026, 6, 1, 3, 0, 0, 123456, tzinfo=UTC)
MIGRATIONS = ["002_facts", "001_init"]


@pytest.fixture
def node_db(tmp_path: Path) -> Path:
    path = tmp_path / "stigmem.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE schema_migrations (version TEXT PRIMARY KEY)")
        db.executemany("INSERT INTO schema_migrations VALUES (?)", [(m,) for m in MIGRATIONS])
        db.execute("CREATE TABLE facts (id INTEGER PRIMARY KEY, body TEXT)")
        db.execute("INSERT INTO facts (body) VALUES ('the sky is blue')")
    return path


@pytest.fixture
def tarball(tmp_path: Path, node_db: Path) -> Path:
    out = tmp_path / "out"
    out.mkdir()
    return write_reference_tarball(out, node_db, SEED, NODE, MIGRATIONS, created_at=WHEN)


def expect(outcome: str, path: Path, **kwargs: object) -> ReferenceVerifyError:
    with pytest.raises(ReferenceVerifyError) as info:
        read_reference_tarball(path, **kwargs)  # type: ignore[arg-type]
    assert info.value.outcome == outcome, info.value
    return info.value


def test_roundtrip_returns_manifest_and_database(tarball: Path, node_db: Path) -> None:
    result = read_reference_tarball(tarball, [public_key_of(SEED)])
    assert result["db"] == node_db.read_bytes()
    assert result["node_id"] == NODE
    assert result["created_at"] == "2026-06-01T03:00:00.123456+00:00"
    assert result["applied_migrations"] == ["001_init", "002_facts"]
    assert result["key_id"] == hashlib.sha256(b64url_decode(public_key_of(SEED))).hexdigest()[:16]


def test_db_can_be_written_to_a_file(tarball: Path, node_db: Path, tmp_path: Path) -> None:
    out = tmp_path / "restored.db"
    result = read_reference_tarball(tarball, None, db_out=out)
    assert result["db"] is None
    assert out.read_bytes() == node_db.read_bytes()


def test_layout_is_the_nodes(tarball: Path, node_db: Path) -> None:
    db_hash = hashlib.sha256(node_db.read_bytes()).hexdigest()
    assert tarball.name == f"stigmem-snapshot-20260601T030000Z-{db_hash[:12]}.tar.gz"
    assert [(n, k) for n, k, _ in members_of(tarball)] == [
        (MANIFEST, "file"),
        ("artifacts", "dir"),  # tarfile strips the trailing slash when reading
        (CURSOR, "file"),
        (DATABASE, "file"),
    ]
    assert tarball.stat().st_mode & 0o777 == 0o600
    text = gunzip_member(tarball, MANIFEST).decode()
    assert text.startswith('{\n  "version": 1,')  # indented, as the node writes it
    assert "key id" not in text and "key_id" not in text
    cursor = json.loads(gunzip_member(tarball, CURSOR))
    assert cursor == {"applied_migrations": ["001_init", "002_facts"]}


def test_signature_covers_compact_sorted_json(tarball: Path) -> None:
    manifest = json.loads(gunzip_member(tarball, MANIFEST))
    unsigned = {k: v for k, v in manifest.items() if k != "signature"}
    by_hand = json.dumps(unsigned, sort_keys=True, separators=(",", ":")).encode()
    assert by_hand.startswith(b'{"artifacts":{"artifacts/schema_migration_cursor.json":"sha256:')
    pubkey = Ed25519PublicKey.from_public_bytes(b64url_decode(manifest["signer_pubkey"]))
    pubkey.verify(b64url_decode(manifest["signature"]), by_hand)  # raises if wrong
    result = read_reference_tarball(tarball)
    assert result["snapshot_id"] == hashlib.sha256(by_hand).hexdigest()


def test_writing_is_reproducible(node_db: Path, tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    first = write_reference_tarball(a, node_db, SEED, NODE, MIGRATIONS, created_at=WHEN)
    second = write_reference_tarball(b, node_db, SEED, NODE, MIGRATIONS, created_at=WHEN)
    assert first.read_bytes() == second.read_bytes()


def test_compact_manifest_reads_too(node_db: Path, tmp_path: Path) -> None:
    path = write_reference_tarball(tmp_path, node_db, SEED, "", [], created_at=WHEN, indent=None)
    assert b"\n" not in gunzip_member(path, MANIFEST)
    assert read_reference_tarball(path)["node_id"] == ""


def test_untrusted_key(tarball: Path) -> None:
    error = expect("untrusted_key", tarball, trusted_pubkeys=[public_key_of(OTHER_SEED)])
    assert key_id_of(public_key_of(SEED)) in error.detail


def _members(db: bytes = b"SQLite format 3\0 tiny") -> tuple[list[TarMember], dict[str, object]]:
    return reference_members(db, SEED, NODE, MIGRATIONS, WHEN)


def test_members_in_any_order_without_dir_entry_are_accepted(tmp_path: Path) -> None:
    members, _ = _members()
    reordered = [members[3], members[2], members[0]]
    path = write_tar_gz(tmp_path / "r.tar.gz", reordered)
    assert read_reference_tarball(path)["db"] == b"SQLite format 3\0 tiny"


def test_tampered_database_is_a_checksum_error(tmp_path: Path) -> None:
    members, _ = _members()
    members[3] = TarMember(DATABASE, b"SQLite format 3\0 evil")
    expect("checksum_error", write_tar_gz(tmp_path / "t.tar.gz", members))


def test_missing_artifact_is_a_checksum_error(tmp_path: Path) -> None:
    members, _ = _members()
    expect("checksum_error", write_tar_gz(tmp_path / "t.tar.gz", members[:3]))


def test_edited_manifest_is_a_signature_mismatch(tmp_path: Path) -> None:
    members, manifest = _members()
    forged = {**manifest, "node_id": "stigmem:node:someone-else"}
    members[0] = TarMember(MANIFEST, json.dumps(forged).encode())
    expect("signature_mismatch", write_tar_gz(tmp_path / "t.tar.gz", members))


def test_resigned_by_another_key_verifies_only_without_trust(tmp_path: Path) -> None:
    members, manifest = _members()
    other = sign_manifest({**manifest, "signer_pubkey": public_key_of(OTHER_SEED)}, OTHER_SEED)
    members[0] = TarMember(MANIFEST, json.dumps(other).encode())
    path = write_tar_gz(tmp_path / "t.tar.gz", members)
    assert read_reference_tarball(path)["signer_pubkey"] == public_key_of(OTHER_SEED)
    expect("untrusted_key", path, trusted_pubkeys=[public_key_of(SEED)])


@pytest.mark.parametrize(
    "bad",
    [
        TarMember("../evil", b"x"),
        TarMember("/etc/passwd", b"x"),
        TarMember("artifacts/../../x", b"x"),
        TarMember("extra.txt", b"x"),
        TarMember(MANIFEST, b"{}"),  # duplicate manifest.json
        TarMember("artifacts/link.db", kind="symlink", linkname="/etc/shadow"),
        TarMember(DATABASE, kind="hardlink", linkname=MANIFEST),
        TarMember("artifacts/dev", kind="chardev"),
        TarMember("artifacts/fifo", kind="fifo"),
        TarMember("other/", kind="dir"),
    ],
    ids=lambda m: f"{m.kind}:{m.name}",
)
def test_structural_problems_are_malformed(tmp_path: Path, bad: TarMember) -> None:
    members, _ = _members()
    expect("malformed", write_tar_gz(tmp_path / "b.tar.gz", [*members, bad]))


@pytest.mark.parametrize(
    "manifest_text",
    [b"[]", b"not json", b'{"version": 1, "version": 1}', b'{"version": 2}', b'{"version": true}'],
)
def test_bad_manifests_are_malformed(tmp_path: Path, manifest_text: bytes) -> None:
    members, _ = _members()
    members[0] = TarMember(MANIFEST, manifest_text)
    expect("malformed", write_tar_gz(tmp_path / "m.tar.gz", members))


def test_not_gzip_is_malformed(tmp_path: Path) -> None:
    path = tmp_path / "plain.tar.gz"
    path.write_bytes(b"this is not a tarball")
    expect("malformed", path)


def test_oversized_manifest_is_malformed(tmp_path: Path) -> None:
    members, _ = _members()
    members[0] = TarMember(MANIFEST, b" " * ((1 << 20) + 1))
    expect("malformed", write_tar_gz(tmp_path / "big.tar.gz", members))


def test_lying_size_is_malformed(tmp_path: Path) -> None:
    members, _ = _members()
    members[3] = TarMember(DATABASE, members[3].data, size=10_000)
    path = write_tar_gz(tmp_path / "short.tar.gz", members)
    expect("malformed", path)


def test_small_size_bomb_is_valid_but_over_a_small_cap(tmp_path: Path) -> None:
    path = write_size_bomb(tmp_path / "bomb.tar.gz", declared_size=3 << 20)
    assert path.stat().st_size < 64 << 10  # zeros compress ~1000:1
    error = expect("malformed", path, max_db_size=1 << 20)
    assert "cap" in error.detail
    assert read_reference_tarball(path, max_db_size=4 << 20)["db_size"] == 3 << 20


def test_huge_declared_size_is_refused_before_reading(tmp_path: Path) -> None:
    declared = 80 << 30  # 80 GiB, past the 64 GiB default cap
    path = write_size_bomb(tmp_path / "huge.tar.gz", declared_size=declared, body_size=4096)
    assert path.stat().st_size < 16 << 10
    assert (DATABASE, declared) in declared_sizes(path)
    error = expect("malformed", path)
    assert str(declared) in error.detail


def declared_sizes(path: Path) -> list[tuple[str, int]]:
    """(name, size) from the headers up to the database, whose body may be truncated."""
    found: list[tuple[str, int]] = []
    with gzip.open(path) as raw, tarfile.open(fileobj=raw, mode="r|") as tar:
        for info in tar:
            found.append((info.name, info.size))
            if info.name == DATABASE:
                break
    return found
