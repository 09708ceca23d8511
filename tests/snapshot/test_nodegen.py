"""The node database generator the other tests and bench/ build on."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bench.floor import consistent_copy
from bench.workload import day_figures
from tests.nodegen import (
    MIGRATIONS_DIR,
    PAGE_SIZE,
    apply_churn,
    apply_node_migrations,
    b64url,
    make_node_db,
    migration_files,
)

REPO = Path(__file__).resolve().parents[2]
ALL_VERSIONS = [p.stem for p in sorted(MIGRATIONS_DIR.glob("*.sql"))]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def query(path: Path, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def schema(path: Path) -> list[tuple[Any, ...]]:
    return query(
        path,
        "SELECT type, name, tbl_name, sql FROM sqlite_master "
        "WHERE name NOT LIKE 'sqlite_stat%' ORDER BY type, name",
    )


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    a = make_node_db(tmp_path / "a.db", size_mb=0.5, seed=7)
    b = make_node_db(tmp_path / "b.db", size_mb=0.5, seed=7)
    c = make_node_db(tmp_path / "c.db", size_mb=0.5, seed=8)
    assert sha256(a.path) == sha256(b.path)
    assert (a.node_id, a.privkey) == (b.node_id, b.privkey)
    assert sha256(a.path) != sha256(c.path)
    assert a.node_id != c.node_id


def test_schema_is_what_the_fixture_migrations_build(tmp_path: Path) -> None:
    info = make_node_db(tmp_path / "node.db", size_mb=2, seed=1)
    header = info.path.read_bytes()[:100]
    assert header[:16] == b"SQLite format 3\x00"
    assert header[18:20] == b"\x02\x02"  # WAL mode, as a node runs
    assert int.from_bytes(header[16:18], "big") == PAGE_SIZE
    assert not (tmp_path / "node.db-wal").exists()  # closed cleanly, checkpointed
    assert 2 * 2**20 <= info.size <= 2.4 * 2**20
    assert query(info.path, "PRAGMA integrity_check") == [("ok",)]
    assert query(info.path, "PRAGMA foreign_key_check") == []

    empty = tmp_path / "empty.db"
    assert apply_node_migrations(empty) == ALL_VERSIONS == info.migrations
    assert schema(info.path) == schema(empty)
    tables = {name for (_, name, _, _) in schema(empty)}
    assert {
        "facts",
        "facts_fts",
        "fact_audit_log",
        "fact_journal",
        "fact_chain",
        "fact_chain_checkpoints",
        "recall_audit_log",
        "fact_recall_signals",
        "entity_edges",
        "entity_aliases",
        "fact_validity_overrides",
        "fact_quarantine_status",
        "fact_retractions",
        "conflicts",
        "memory_cards",
        "fact_cid_aliases",
        "session_scope_access",
        "quota_buckets",
        "peers",
        "replication_cursors",
        "node_meta",
        "facts_no_update",
        "facts_no_delete",
        "idx_entity_relation_scope",
        "idx_facts_cid",
    } <= tables
    columns = [row[1] for row in query(info.path, "PRAGMA table_info(facts)")]
    assert columns[:10] == [
        "id",
        "entity",
        "relation",
        "value_type",
        "value_v",
        "source",
        "timestamp",
        "valid_until",
        "confidence",
        "scope",
    ]
    assert {"hlc", "received_from", "tenant_id", "quarantine_status", "cid"} <= set(columns)
    assert columns[-1] == "interpret_as"


def test_schema_migrations_in_the_node_layout(tmp_path: Path) -> None:
    info = make_node_db(tmp_path / "node.db", size_mb=0.2)
    layout = [row[1:6] for row in query(info.path, "PRAGMA table_info(schema_migrations)")]
    assert layout == [
        ("id", "INTEGER", 0, None, 1),
        ("version", "TEXT", 1, None, 0),
        ("applied_at", "TEXT", 1, None, 0),
    ]
    rows = query(info.path, "SELECT id, version, applied_at FROM schema_migrations ORDER BY id")
    assert [v for _, v, _ in rows] == ALL_VERSIONS
    assert [i for i, _, _ in rows] == list(range(1, len(ALL_VERSIONS) + 1))
    assert all(at.endswith("+00:00") for _, _, at in rows)
    # Two scripts share a number; the version is the whole file name without .sql.
    assert {"019_recall_audit", "019_subscriptions_idempotency_tenant_scope"} <= set(ALL_VERSIONS)


def test_an_older_node_replays_the_rest_as_the_node_does(tmp_path: Path) -> None:
    old = make_node_db(
        tmp_path / "old.db", size_mb=0.5, seed=2, upto="028_subscription_delivery_claim"
    )
    assert old.migrations[-1] == "028_subscription_delivery_claim"
    assert old.migrations == ALL_VERSIONS[: len(old.migrations)]
    assert migration_files(3)[-1].stem == ALL_VERSIONS[2]
    facts = query(old.path, "SELECT * FROM facts ORDER BY rowid")
    cursors = query(old.path, "SELECT * FROM replication_cursors ORDER BY 1, 2")
    assert cursors
    assert query(old.path, "SELECT name FROM sqlite_master WHERE name = 'fact_journal'") == []

    replayed = apply_node_migrations(old.path)

    assert replayed == ALL_VERSIONS[len(old.migrations) :]
    assert replayed[0] == "029_capability_nonce_hex_check"
    full = tmp_path / "full.db"
    apply_node_migrations(full)
    assert schema(old.path) == schema(full)
    assert query(old.path, "SELECT * FROM replication_cursors ORDER BY 1, 2") == cursors
    # Old facts gain the new column's default and nothing else changes.
    assert [row[:-1] for row in query(old.path, "SELECT * FROM facts ORDER BY rowid")] == facts
    assert query(old.path, "PRAGMA integrity_check") == [("ok",)]
    assert query(old.path, "PRAGMA foreign_key_check") == []
    assert apply_node_migrations(old.path) == []


def test_scripts_that_must_not_run_inside_a_transaction(tmp_path: Path) -> None:
    db = tmp_path / "node.db"
    make_node_db(db, size_mb=0.2, upto="036_fact_chain_checkpoints_l5")
    script = (MIGRATIONS_DIR / "038_peer_approval_flow.sql").read_text()
    assert "BEGIN;" in script and script.index("PRAGMA foreign_keys = OFF") < script.index("BEGIN;")
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        with pytest.raises(sqlite3.OperationalError, match="within a transaction"):
            conn.executescript("BEGIN;\n" + script)
        conn.execute("ROLLBACK")
        # The rebuild's DROP of peers needs foreign keys off: its cursors reference it.
        conn.execute("PRAGMA foreign_keys=ON")
        without_pragma = script.replace("PRAGMA foreign_keys = OFF;", "")
        with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
            conn.executescript(without_pragma)
    finally:
        conn.close()


def test_node_meta_holds_the_key_in_either_form(tmp_path: Path) -> None:
    seed = bytes(range(32))
    pub = b64url(Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes_raw())
    info = make_node_db(
        tmp_path / "seed.db", size_mb=0.2, node_id="stigmem:node:fixed", privkey_seed=seed
    )
    meta = dict(query(info.path, "SELECT key, value FROM node_meta"))
    assert meta == {
        "node_id": "stigmem:node:fixed",
        "federation_privkey": b64url(seed),
        "federation_pubkey": pub,
    }
    assert (info.privkey, info.pubkey, info.key_form) == (b64url(seed), pub, "seed")

    der_info = make_node_db(tmp_path / "der.db", size_mb=0.2, privkey_seed=seed, key_form="pkcs8")
    meta = dict(query(der_info.path, "SELECT key, value FROM node_meta"))
    assert set(meta) == {"node_id", "federation_privkey"}  # no pubkey beside a PKCS8 key
    der = base64.urlsafe_b64decode(
        meta["federation_privkey"] + "=" * (-len(meta["federation_privkey"]) % 4)
    )
    key = serialization.load_der_private_key(der, password=None)
    assert isinstance(key, Ed25519PrivateKey)
    assert b64url(key.public_key().public_bytes_raw()) == pub == der_info.pubkey
    assert "=" not in meta["federation_privkey"]


def test_facts_are_append_only(tmp_path: Path) -> None:
    info = make_node_db(tmp_path / "node.db", size_mb=0.2)
    conn = sqlite3.connect(info.path, isolation_level=None)
    try:
        (fact_id,) = conn.execute("SELECT id FROM facts LIMIT 1").fetchone()
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute("UPDATE facts SET confidence = 0 WHERE id = ?", (fact_id,))
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute("DELETE FROM facts WHERE id = ?", (fact_id,))
        attempts = conn.execute(
            "SELECT source FROM fact_audit_log "
            "WHERE fact_id = ? AND event_type = 'fact_mutation_attempted' ORDER BY rowid",
            (fact_id,),
        ).fetchall()
    finally:
        conn.close()
    assert attempts == [
        ("sqlite-trigger:facts_no_update",),
        ("sqlite-trigger:facts_no_delete",),
    ]
    assert query(info.path, "SELECT count(*) FROM facts") == [(info.facts,)]


def test_the_data_an_export_reads(tmp_path: Path) -> None:
    info = make_node_db(tmp_path / "node.db", size_mb=1, seed=3)
    db = info.path
    assert query(db, "SELECT count(*) FROM facts") == [(info.facts,)]
    pairs = set(query(db, "SELECT value_type, scope FROM facts"))
    assert {
        (t, s)
        for t in ("string", "text", "number", "boolean", "datetime", "ref", "null")
        for s in ("local", "team", "company", "public")
    } <= pairs
    assert {t for (t,) in query(db, "SELECT DISTINCT tenant_id FROM facts")} == {
        "default",
        "globex",
    }
    latest = query(db, "SELECT max(timestamp) FROM facts")[0][0]
    assert query(db, "SELECT count(*) FROM facts WHERE valid_until < ?", (latest,))[0][0] > 0
    assert query(db, "SELECT count(*) FROM fact_validity_overrides")[0][0] > 0
    assert query(db, "SELECT count(*) FROM entity_aliases WHERE raw_uri != canonical_uri")[0][0]
    assert query(db, "SELECT count(*) FROM fact_retractions")[0][0] > 0
    pending = query(
        db,
        "SELECT count(*) FROM facts f JOIN fact_quarantine_status q ON q.fact_id = f.id "
        "WHERE f.quarantine_status = 'pending' AND q.quarantine_status = 'pending'",
    )[0][0]
    assert pending > 0
    statuses = dict(query(db, "SELECT status, count(*) FROM conflicts GROUP BY status"))
    assert statuses.get("resolved", 0) > 0 and statuses.get("unresolved", 0) > 0
    # A conflict is between two facts saying different things of one (entity, relation, scope).
    mismatched = query(
        db,
        "SELECT count(*) FROM conflicts c JOIN facts a ON a.id = c.fact_a_id "
        "JOIN facts b ON b.id = c.fact_b_id "
        "WHERE (a.entity, a.relation, a.scope) != (b.entity, b.relation, b.scope)",
    )
    assert mismatched == [(0,)]
    # Each received fact has its meta-fact; FTS finds facts by their words.
    assert query(
        db,
        "SELECT count(*) FROM facts f WHERE f.received_from IS NOT NULL AND NOT EXISTS "
        "(SELECT 1 FROM facts m WHERE m.entity = f.id AND m.relation = 'stigmem:received_from')",
    ) == [(0,)]
    assert query(db, "SELECT count(*) FROM facts_fts WHERE facts_fts MATCH 'sampler'")[0][0] > 0
    # The chain of each tenant is gapless from 1.
    for tenant, low, high, n in query(
        db, "SELECT tenant_id, min(chain_seq), max(chain_seq), count(*) FROM fact_chain GROUP BY 1"
    ):
        assert (low, high) == (1, n), tenant
    peers = query(db, "SELECT node_url, status FROM peers")
    assert all(url.startswith("https://") for url, _ in peers)
    assert {"active", "pending_approval"} <= {status for _, status in peers}
    cursors = query(db, "SELECT direction, cursor FROM replication_cursors")
    assert {d for d, _ in cursors} == {"inbound", "outbound"}
    assert any(c is None for _, c in cursors) and any(c is not None for _, c in cursors)


def test_churn_only_appends_and_says_what_it_did(tmp_path: Path) -> None:
    info = make_node_db(tmp_path / "node.db", size_mb=2, seed=3)
    before = query(info.path, "SELECT * FROM facts ORDER BY rowid")
    cursors = dict(
        query(info.path, "SELECT peer_id || direction, updated_at FROM replication_cursors")
    )
    stats = apply_churn(info.path, day=1)
    after = query(info.path, "SELECT * FROM facts ORDER BY rowid")
    assert after[: len(before)] == before  # nothing updated or deleted
    assert len(after) == len(before) + stats.inserted
    assert stats.asserted > 0 and stats.received > 0 and stats.recalls > 0
    assert query(info.path, "PRAGMA integrity_check") == [("ok",)]
    assert query(info.path, "PRAGMA foreign_key_check") == []
    moved = dict(
        query(info.path, "SELECT peer_id || direction, updated_at FROM replication_cursors")
    )
    assert any(moved[k] > cursors[k] for k in cursors)


def test_churn_is_deterministic(tmp_path: Path) -> None:
    for name in ("a.db", "b.db"):
        make_node_db(tmp_path / name, size_mb=0.5, seed=4)
        apply_churn(tmp_path / name, day=1)
        apply_churn(tmp_path / name, day=2)
    assert sha256(tmp_path / "a.db") == sha256(tmp_path / "b.db")


def test_daily_churn_changes_pages_as_a_node_does(tmp_path: Path) -> None:
    # The reference week (bench/README.md) at 256 MiB: 20.5-21.9 % of pages a day, 81 % of
    # them leaves of UUID/CID/URI-keyed indexes, 72 % the same as the day before, +3 % a
    # day, 2.8x with zstd. A small database keeps the shape; the band is loose.
    info = make_node_db(tmp_path / "node.db", size_mb=16, seed=5)
    previous, current = tmp_path / "previous.db", tmp_path / "current.db"
    consistent_copy(info.path, previous)
    before = None
    figures = []
    for day in (1, 2):
        apply_churn(info.path, day=day)
        consistent_copy(info.path, current)
        today, before = day_figures(day, previous, current, before)
        figures.append(today)
        shutil.move(current, previous)
    for f in figures:
        assert 12 <= f.changed_pct <= 35, f
        assert 65 <= f.keyed_leaf_pct <= 95, f
        assert 1 <= f.growth_pct <= 6, f
        assert 2.2 <= f.ratio <= 4, f
    assert figures[1].same_as_before_pct is not None
    assert 50 <= figures[1].same_as_before_pct <= 90


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
            "--key-form",
            "pkcs8",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    info = json.loads(built.stdout)
    assert info["path"] == str(out) and info["node_id"].startswith("stigmem:node:")
    assert info["key_form"] == "pkcs8" and info["migrations"] == ALL_VERSIONS
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
