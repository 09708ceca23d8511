"""Hostile tarballs through the command line: one line, exit 3, nothing changed or written.

Each case is one of the attacker's findings: a refusal must be ``FAIL: malformed: ...`` on
one line (never "internal error"), the restore target and its folder must be untouched, and
the catalog must not gain a snapshot row for what failed.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from tests import hostile
from tests import reference_format as ref
from tests.conftest import Runner, ok

DB = b"SQLite format 3\0" + bytes(496)
CURSOR = ref.cursor_bytes(["001_init"])


def _signed(**fields: str) -> bytes:
    return hostile.tarball(DB, hostile.signed_manifest(DB, CURSOR, **fields))


def _manifest_doc(doc: bytes) -> bytes:
    return hostile.gz(
        hostile.member("manifest.json", doc)
        + hostile.member(ref.CURSOR, CURSOR)
        + hostile.member(ref.DATABASE, DB)
        + hostile.end()
    )


CASES: dict[str, Callable[[], bytes]] = {
    "directory with a 3 GiB body": lambda: hostile.gz(
        hostile.header("artifacts/", b"5", size_field=b"30000000000\0") + bytes(1 << 20)
    ),
    "base-256 size of 2**88": lambda: hostile.gz(
        hostile.header(ref.DATABASE, b"0", size_field=b"\x80" + b"\xff" * 11) + hostile.end()
    ),
    "negative octal size": lambda: hostile.gz(
        hostile.header("manifest.json", b"0", size_field=b"-0000000001\0") + hostile.end()
    ),
    "PAX size=-1": lambda: hostile.gz(
        hostile.pax({"size": "-1"})
        + hostile.header("manifest.json", b"0", 0)
        + bytes(1 << 20)
        + hostile.end()
    ),
    "manifest nested 100,000 deep": lambda: _manifest_doc(b"[" * 100_000),
    "manifest integer of 5,000 digits": lambda: _manifest_doc(b'{"version": ' + b"9" * 5000 + b"}"),
    "created_at in year 1 at +01:00": lambda: _signed(created_at="0001-01-01T00:00:00+01:00"),
    "node_id with a lone surrogate": lambda: _signed(node_id="stigmem:node:\ud800"),
    "gzip CRC trailer wrong": lambda: hostile.with_trailer(hostile.tarball(DB), crc=0),
    "gzip ISIZE trailer wrong": lambda: hostile.with_trailer(hostile.tarball(DB), isize=1),
    "a 60 KB member path": lambda: hostile.gz(
        hostile.pax({"path": "../" + "A" * 60_000}) + hostile.member("x", b"x") + hostile.end()
    ),
}


def _target(tmp_path: Path) -> Path:
    folder = tmp_path / "node"
    folder.mkdir()
    target = folder / "stigmem.db"
    con = sqlite3.connect(target)
    con.execute("CREATE TABLE kept (x)")
    con.execute("INSERT INTO kept VALUES ('the old database')")
    con.commit()
    con.close()
    return target


def _snapshot_rows(stigmem: Runner) -> list[object]:
    return list(ok(stigmem("snapshot", "list", "--json")).json())


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_hostile_tarball_is_refused_in_one_line_and_nothing_changes(
    stigmem: Runner, tmp_path: Path, case: str
) -> None:
    tarball = tmp_path / "hostile.tar.gz"
    tarball.write_bytes(CASES[case]())
    target = _target(tmp_path)
    before = target.read_bytes()
    pubkey = ref.public_key_of(hostile.SEED)

    verified = stigmem("snapshot", "verify", str(tarball))
    restored = stigmem(
        "snapshot", "restore", "--from", str(tarball), "--db", str(target), "--trusted-key", pubkey
    )
    imported = stigmem("snapshot", "import", str(tarball))
    for result in (verified, restored, imported):
        assert result.returncode == 3, result
        lines = (result.stdout + result.stderr).strip().splitlines()
        assert len(lines) == 1 and "FAIL: malformed" in lines[0], result
        assert "internal error" not in lines[0] and len(lines[0]) < 1000, result
    assert target.read_bytes() == before
    assert sorted(p.name for p in target.parent.iterdir()) == ["stigmem.db"]
    assert _snapshot_rows(stigmem) == []


def test_a_failing_signed_tarball_gets_no_snapshot_row_but_its_failure_is_kept(
    stigmem: Runner, tmp_path: Path
) -> None:
    # Signed and well formed, but the database is not the one the manifest names.
    manifest = hostile.signed_manifest(DB, CURSOR)
    tampered = DB[:-1] + b"\x01"
    tar = (
        hostile.manifest_member(manifest)
        + hostile.member(ref.CURSOR, CURSOR)
        + hostile.member(ref.DATABASE, tampered)
        + hostile.end()
    )
    tarball = tmp_path / "tampered.tar.gz"
    tarball.write_bytes(hostile.gz(tar))
    for command in ("verify", "import"):
        result = stigmem("snapshot", command, str(tarball))
        assert result.returncode == 3 and "checksum_error" in result.stderr + result.stdout
    assert _snapshot_rows(stigmem) == []
    sid = ref.snapshot_id_of(manifest)
    history = ok(stigmem("snapshot", "history", "--json")).json()
    assert any(e["snapshot_id"] == sid and "checksum_error" in e["detail"] for e in history)


def test_control_characters_of_a_node_id_never_reach_the_terminal(
    stigmem: Runner, tmp_path: Path
) -> None:
    node_id = "stigmem:node:\x1b[2J\x1b]0;owned\x07\u202eevil\x9b"
    tarball = tmp_path / "ok.tar.gz"
    tarball.write_bytes(hostile.tarball(DB, hostile.signed_manifest(DB, CURSOR, node_id=node_id)))
    verified = ok(stigmem("snapshot", "verify", str(tarball)))
    listed = ok(stigmem("snapshot", "list"))
    sid = ref.snapshot_id_of(hostile.signed_manifest(DB, CURSOR, node_id=node_id))
    shown = ok(stigmem("snapshot", "show", sid))
    for text in (verified.stdout, verified.stderr, listed.stdout, shown.stdout):
        assert not any(c in text for c in "\x1b\x07\u202e\x9b"), text
    assert "stigmem:node:\\x1b[2J\\x1b]0;owned\\x07\\u202eevil\\x9b" in verified.stdout
    as_json = ok(stigmem("snapshot", "show", sid, "--json")).json()
    assert as_json["node_id"] == node_id  # JSON keeps the value, escaped by JSON itself


def test_an_error_naming_a_huge_path_is_cut_short(stigmem: Runner, tmp_path: Path) -> None:
    result = stigmem("snapshot", "verify", str(tmp_path / ("p" * 200) / ("q" * 200)))
    assert result.returncode == 1 and len(result.stderr) < 2100


def test_a_gzip_trailer_is_checked_even_on_a_valid_archive(stigmem: Runner, tmp_path: Path) -> None:
    good = hostile.tarball(DB)
    tarball = tmp_path / "t.tar.gz"
    tarball.write_bytes(good)
    ok(stigmem("snapshot", "verify", str(tarball)))
    assert gzip.decompress(good)  # the bytes themselves are fine; only the trailer differs
    crc = int.from_bytes(hashlib.sha256(good).digest()[:4], "little")
    tarball.write_bytes(hostile.with_trailer(good, crc=crc))
    result = stigmem("snapshot", "verify", str(tarball), "--json")
    assert result.returncode == 3 and json.loads(result.stdout)["outcome"] == "malformed"


def test_importing_only_failing_tarballs_makes_no_store(
    stigmem: Runner, home: Path, tmp_path: Path
) -> None:
    tarball = tmp_path / "hostile.tar.gz"
    tarball.write_bytes(CASES["manifest nested 100,000 deep"]())
    result = stigmem("snapshot", "import", str(tarball))
    assert result.returncode == 3, result
    assert not (home / "store").exists()


def test_a_forced_restore_warning_escapes_a_hostile_file_name(
    stigmem: Runner, tmp_path: Path
) -> None:
    # File names come from whoever filled the folder the operator restores from.
    tarball = tmp_path / "snap\x1b]0;owned\x07.tar.gz"
    tarball.write_bytes(hostile.gz(hostile.member("manifest.json", b"{") + hostile.end()))
    target = _target(tmp_path)
    result = stigmem(
        "snapshot", "restore", "--from", str(tarball), "--db", str(target), "--force-unverified"
    )
    assert "WARNING" in result.stderr and "\\x1b]0;owned\\x07" in result.stderr, result
    assert "\x1b" not in result.stderr + result.stdout and "\x07" not in result.stderr


def _database_with_a_hostile_index(path: Path) -> bytes:
    """A database whose integrity check names an index holding control characters."""
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE t (a, b)")
    con.execute('CREATE INDEX "evil\x1b]0;owned\x07" ON t (a)')
    con.executemany("INSERT INTO t VALUES (?, ?)", [(i, -i) for i in range(50)])
    con.commit()
    con.execute("PRAGMA writable_schema = 1")
    con.execute(
        "UPDATE sqlite_master SET sql = 'CREATE INDEX \"evil\x1b]0;owned\x07\" ON t (b)' "
        "WHERE type = 'index'"
    )
    con.commit()
    con.close()
    return path.read_bytes()


def test_integrity_findings_naming_hostile_indexes_are_escaped(
    stigmem: Runner, tmp_path: Path
) -> None:
    db = _database_with_a_hostile_index(tmp_path / "evil.db")
    tarball = tmp_path / "evil.tar.gz"
    tarball.write_bytes(hostile.tarball(db, hostile.signed_manifest(db, CURSOR)))
    target = _target(tmp_path)
    result = stigmem(
        "snapshot",
        "restore",
        "--from",
        str(tarball),
        "--db",
        str(target),
        "--full-check",
        "--force-unverified",
        "--trusted-key",
        ref.public_key_of(hostile.SEED),
    )
    text = result.stdout + result.stderr
    assert "missing from index evil\\x1b]0;owned\\x07" in text, result
    assert "\x1b" not in text and "\x07" not in text
