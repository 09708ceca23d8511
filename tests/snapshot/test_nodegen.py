"""The node database generator the other tests and bench/ build on."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.nodegen import (
    MIGRATIONS_DIR,
    PAGE_SIZE,
    apply_churn,
    b64url,
    make_node_db,
)

REPO = Path(__file__).resolve().parents[2]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def query(path: Path, sql: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    a = make_node_db(tmp_path / "a.db", size_mb=0.5, seed=7)
    b = make_node_db(tmp_path / "b.db", size_mb=0.5, seed=7)
    c = make_node_db(tmp_path / "c.db", size_mb=0.5, seed=8)
    assert sha256(a.path) == sha256(b.path)
    assert (a.node_id, a.privkey) == (b.node_id, b.privkey)
    assert sha256(a.path) != sha256(c.path)
    assert a.node_id != c.node_id


def test_schema_mode_and_size(tmp_path: Path) -> None:
    info = make_node_db(tmp_path / "node.db", size_mb=2, seed=1)
    header = info.path.read_bytes()[:100]
    assert header[:16] == b"SQLite format 3\x00"
    assert header[18:20] == b"\x02\x02"  # WAL mode, as a node runs
    assert int.from_bytes(header[16:18], "big") == PAGE_SIZE
    assert not (tmp_path / "node.db-wal").exists()  # closed cleanly, checkpointed
    assert 2 * 2**20 <= info.size <= 2.3 * 2**20

    tables = {
        name for (name,) in query(info.path, "SELECT name FROM sqlite_master WHERE type='table'")
    }
    assert {"facts", "peers", "replication_cursors", "node_meta", "schema_migrations"} <= tables
    assert "fact_tags" not in tables  # migration 003 is not applied yet
    indexes = {
        sql.split(" ON ")[1]
        for (sql,) in query(
            info.path,
            "SELECT sql FROM sqlite_master WHERE type='index' AND tbl_name='facts' "
            "AND sql IS NOT NULL",
        )
    }
    assert indexes >= {
        "facts(entity)",
        "facts(relation)",
        "facts(entity, relation)",
        "facts(ts)",
        "facts(scope)",
        "facts(hlc)",
    }
    assert query(info.path, "PRAGMA integrity_check") == [("ok",)]
    assert query(info.path, "SELECT count(*) FROM facts") == [(info.facts,)]
    assert query(info.path, "SELECT count(DISTINCT value_type) FROM facts")[0][0] >= 5
    statuses = {s for (s,) in query(info.path, "SELECT status FROM peers")}
    assert statuses == {"active", "suspended"}
    directions = query(info.path, "SELECT DISTINCT direction FROM replication_cursors ORDER BY 1")
    assert directions == [("pull",), ("push",)]


def test_node_meta_holds_a_matching_key_pair(tmp_path: Path) -> None:
    seed = bytes(range(32))
    info = make_node_db(
        tmp_path / "node.db", size_mb=0.2, node_id="stigmem:node:fixed", privkey_seed=seed
    )
    meta = dict(query(info.path, "SELECT key, value FROM node_meta"))
    assert meta["node_id"] == "stigmem:node:fixed"
    assert meta["federation_privkey"] == b64url(seed) == info.privkey
    pub = Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes_raw()
    assert meta["federation_pubkey"] == b64url(pub) == info.pubkey


def test_migrations_recorded_match_fixture_files(tmp_path: Path) -> None:
    info = make_node_db(tmp_path / "node.db", size_mb=0.2)
    versions = [v for (v,) in query(info.path, "SELECT version FROM schema_migrations ORDER BY 1")]
    assert versions == info.migrations == ["001_init", "002_add_peers_status"]
    fixture = sorted(p.stem for p in MIGRATIONS_DIR.glob("*.sql"))
    assert fixture[:2] == versions and len(fixture) > 2  # later ones are left to replay


def test_churn_changes_rows_and_scattered_pages(tmp_path: Path) -> None:
    info = make_node_db(tmp_path / "node.db", size_mb=2, seed=3)
    before = info.path.read_bytes()
    stats = apply_churn(info.path, day=1, insert_frac=0.02, update_frac=0.01, delete_frac=0.01)
    after = info.path.read_bytes()
    assert stats.inserted > 0 and stats.updated > 0 and stats.deleted > 0
    count = query(info.path, "SELECT count(*) FROM facts")[0][0]
    assert count == info.facts + stats.inserted - stats.deleted
    assert query(info.path, "PRAGMA integrity_check") == [("ok",)]
    pages = len(before) // PAGE_SIZE
    changed = [
        n
        for n in range(1, pages)  # page 0 holds the header's change counter
        if before[n * PAGE_SIZE : (n + 1) * PAGE_SIZE] != after[n * PAGE_SIZE : (n + 1) * PAGE_SIZE]
    ]
    # Scattered: changes in the first, middle and last thirds of the old file, not one tail.
    assert any(n < pages / 3 for n in changed)
    assert any(pages / 3 <= n < 2 * pages / 3 for n in changed)
    assert any(n >= 2 * pages / 3 for n in changed)
    assert len(changed) < pages  # a day of churn does not rewrite everything


def test_churn_is_deterministic(tmp_path: Path) -> None:
    for name in ("a.db", "b.db"):
        make_node_db(tmp_path / name, size_mb=0.5, seed=4)
        apply_churn(tmp_path / name, day=1)
        apply_churn(tmp_path / name, day=2)
    assert sha256(tmp_path / "a.db") == sha256(tmp_path / "b.db")


def test_command_line_builds_and_churns(tmp_path: Path) -> None:
    out = tmp_path / "cli.db"
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.nodegen",
            "--out",
            str(out),
            "--size-mb",
            "0.5",
            "--seed",
            "5",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    info = json.loads(built.stdout)
    assert info["path"] == str(out) and info["node_id"].startswith("stigmem:node:")
    assert out.stat().st_size >= 2**19
    churned = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.nodegen",
            "--out",
            str(out),
            "--churn-day",
            "1",
            "--churn-day",
            "2",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    days = [json.loads(line)["day"] for line in churned.stdout.splitlines()]
    assert days == [1, 2]
