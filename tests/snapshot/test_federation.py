"""federation cursor-export: the node's checkpoint document and its 0600 file."""

from __future__ import annotations

import json
import os
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from snapshot.errors import StigmemError
from snapshot.federation import checkpoint_text, cursor_export, write_text_0600
from tests.conftest import Runner, ok

# The two tables as the node's federation migrations leave them.
NODE_FEDERATION = """
CREATE TABLE peers (
    id TEXT PRIMARY KEY,
    node_id TEXT NOT NULL UNIQUE,
    node_url TEXT NOT NULL,
    federation_pubkey TEXT NOT NULL,
    allowed_scopes TEXT NOT NULL,
    status TEXT NOT NULL,
    established_at TEXT,
    declaration_sig TEXT NOT NULL,
    signed_at TEXT NOT NULL,
    created_at TEXT
);
CREATE TABLE replication_cursors (
    peer_id TEXT NOT NULL REFERENCES peers(id),
    direction TEXT NOT NULL CHECK(direction IN ('inbound','outbound')),
    cursor TEXT,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (peer_id, direction)
);
"""
PEERS = [
    # id, node_id, node_url, status
    ("p-1", "stigmem:node:cccc", "https://c.example:8443", "active"),
    ("p-2", "stigmem:node:aaaa", "https://a.example", "pending_approval"),
    ("p-3", "stigmem:node:bbbb", "http://10.0.0.3:8000", "revoked"),
]
CURSORS = [
    ("p-1", "outbound", "hlc:0000000002", "2026-03-01T00:00:00+00:00"),
    ("p-1", "inbound", "hlc:0000000001", "2026-03-01T00:00:01+00:00"),
    ("p-2", "inbound", None, "2026-03-02T00:00:00+00:00"),
    ("p-3", "outbound", "hlc:9", "2026-03-03T00:00:00+00:00"),
    # A cursor whose peer row is gone: the node's inner join leaves it out.
    ("p-gone", "inbound", "hlc:7", "2026-03-04T00:00:00+00:00"),
]


def node_db(path: Path) -> Path:
    conn = sqlite3.connect(path)
    conn.executescript(NODE_FEDERATION)
    conn.executemany(
        "INSERT INTO peers VALUES (?, ?, ?, 'pub', '[\"team\"]', ?, NULL, 'sig', 'now', NULL)",
        PEERS,
    )
    conn.executemany("INSERT INTO replication_cursors VALUES (?, ?, ?, ?)", CURSORS)
    conn.commit()
    conn.close()
    return path


CURSOR_ORDER = (
    "peer_id",
    "peer_node_id",
    "peer_url",
    "peer_status",
    "direction",
    "cursor",
    "updated_at",
)
EXPECTED: list[dict[str, str | None]] = [
    {
        "peer_id": "p-2",
        "peer_node_id": "stigmem:node:aaaa",
        "peer_url": "https://a.example",
        "peer_status": "pending_approval",
        "direction": "inbound",
        "cursor": None,
        "updated_at": "2026-03-02T00:00:00+00:00",
    },
    {
        "peer_id": "p-3",
        "peer_node_id": "stigmem:node:bbbb",
        "peer_url": "http://10.0.0.3:8000",
        "peer_status": "revoked",
        "direction": "outbound",
        "cursor": "hlc:9",
        "updated_at": "2026-03-03T00:00:00+00:00",
    },
    {
        "peer_id": "p-1",
        "peer_node_id": "stigmem:node:cccc",
        "peer_url": "https://c.example:8443",
        "peer_status": "active",
        "direction": "inbound",
        "cursor": "hlc:0000000001",
        "updated_at": "2026-03-01T00:00:01+00:00",
    },
    {
        "peer_id": "p-1",
        "peer_node_id": "stigmem:node:cccc",
        "peer_url": "https://c.example:8443",
        "peer_status": "active",
        "direction": "outbound",
        "cursor": "hlc:0000000002",
        "updated_at": "2026-03-01T00:00:00+00:00",
    },
]


def test_export_is_the_nodes_join_in_the_nodes_order(tmp_path: Path) -> None:
    db = node_db(tmp_path / "node.db")
    doc = cursor_export(db, "node.db")

    assert list(doc) == ["checkpoint_timestamp", "db_path", "cursors"]
    assert doc["db_path"] == "node.db"  # as given, not made absolute
    stamp = datetime.fromisoformat(doc["checkpoint_timestamp"])
    assert stamp.utcoffset() == timedelta(0)
    assert abs(datetime.now(UTC) - stamp) < timedelta(minutes=1)
    assert doc["cursors"] == EXPECTED
    assert [list(c) for c in doc["cursors"]] == [list(CURSOR_ORDER)] * len(EXPECTED)


def test_export_of_a_database_before_federation_is_empty(tmp_path: Path) -> None:
    bare = tmp_path / "bare.db"
    sqlite3.connect(bare).execute("CREATE TABLE x (y)").connection.close()
    assert cursor_export(bare)["cursors"] == []


def test_export_refuses_what_is_not_a_database(tmp_path: Path) -> None:
    with pytest.raises(StigmemError, match=f"no such file: {tmp_path / 'nope.db'}"):
        cursor_export(tmp_path / "nope.db")


def test_export_never_writes_to_the_database(tmp_path: Path) -> None:
    db = node_db(tmp_path / "node.db")
    before = db.read_bytes()
    cursor_export(db)
    assert db.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["node.db"]


def test_write_text_0600(tmp_path: Path) -> None:
    out = tmp_path / "cursors.json"
    out.write_text("old, world-readable")
    os.chmod(out, 0o644)
    old_umask = os.umask(0o022)
    try:
        write_text_0600(out, checkpoint_text({"b": 1, "a": [1, 2]}))
    finally:
        os.umask(old_umask)
    assert out.read_text() == '{\n  "b": 1,\n  "a": [\n    1,\n    2\n  ]\n}\n'
    assert out.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["cursors.json"]  # no temp left
    with pytest.raises(StigmemError, match="no such directory"):
        write_text_0600(tmp_path / "missing" / "c.json", "{}")
    with pytest.raises(StigmemError, match="is a directory"):
        write_text_0600(tmp_path, "{}")


def test_cli_out_dash_is_stdout_and_out_file_is_0600(stigmem: Runner, tmp_path: Path) -> None:
    db = node_db(tmp_path / "node.db")

    printed = ok(
        stigmem("federation", "cursor-export", "--db", str(db), "--out", "-", cwd=tmp_path)
    )
    assert json.loads(printed.stdout)["cursors"] == EXPECTED
    assert not (tmp_path / "-").exists()
    default = ok(
        stigmem("federation", "cursor-export", env={"STIGMEM_DB_PATH": "node.db"}, cwd=tmp_path)
    )
    assert json.loads(default.stdout)["db_path"] == "node.db"

    written = ok(
        stigmem("federation", "cursor-export", "--db", str(db), "--out", "c.json", cwd=tmp_path)
    )
    out = tmp_path / "c.json"
    assert written.stdout == ""
    assert "checkpoint written: c.json (4 cursor(s))" in written.stderr
    assert out.stat().st_mode & 0o777 == 0o600
    assert json.loads(out.read_text())["cursors"] == EXPECTED
