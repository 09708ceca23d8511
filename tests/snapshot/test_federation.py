"""federation cursor-export: the document's content and its 0600 file."""

from __future__ import annotations

import json
import os
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from snapshot.errors import StigmemError
from snapshot.federation import cursor_export, write_json_0600
from tests.nodegen import make_node_db


def test_export_lists_every_cursor_with_its_peer(tmp_path: Path) -> None:
    info = make_node_db(tmp_path / "node.db", size_mb=0.1, seed=3)
    conn = sqlite3.connect(info.path)
    expected = conn.execute(
        "SELECT c.peer_id, p.node_id, p.url, p.status, c.direction, c.cursor, c.updated_at "
        "FROM replication_cursors c JOIN peers p ON p.id = c.peer_id"
    ).fetchall()
    # A cursor whose peer was deleted still shows, with the peer fields null.
    conn.execute("INSERT INTO replication_cursors VALUES ('gone', 'pull', 'c-9', '2026-02-01')")
    conn.commit()
    conn.close()

    doc = cursor_export(info.path)

    assert doc["db_path"] == str(info.path.absolute())
    stamp = datetime.fromisoformat(doc["checkpoint_timestamp"])
    assert stamp.utcoffset() == timedelta(0)
    assert abs(datetime.now(UTC) - stamp) < timedelta(minutes=1)
    got = [tuple(c.values()) for c in doc["cursors"]]
    assert sorted(got[i] for i in range(len(got)) if got[i][0] != "gone") == sorted(expected)
    assert {
        "peer_id": "gone",
        "peer_node_id": None,
        "peer_url": None,
        "peer_status": None,
        "direction": "pull",
        "cursor": "c-9",
        "updated_at": "2026-02-01",
    } in doc["cursors"]
    assert set(doc["cursors"][0]) == {
        "peer_id",
        "peer_node_id",
        "peer_url",
        "peer_status",
        "direction",
        "cursor",
        "updated_at",
    }
    assert {c["peer_status"] for c in doc["cursors"] if c["peer_id"] != "gone"} == {
        "active",
        "suspended",
    }


def test_export_of_an_older_schema_and_of_a_bare_database(tmp_path: Path) -> None:
    old = make_node_db(tmp_path / "old.db", size_mb=0.1, migrations=1)  # peers has no status
    cursors = cursor_export(old.path)["cursors"]
    assert cursors and all(c["peer_status"] is None and c["peer_url"] for c in cursors)
    bare = tmp_path / "bare.db"
    sqlite3.connect(bare).execute("CREATE TABLE x (y)").connection.close()
    assert cursor_export(bare)["cursors"] == []


def test_export_refuses_what_is_not_a_database(tmp_path: Path) -> None:
    with pytest.raises(StigmemError, match=f"no such file: {tmp_path / 'nope.db'}"):
        cursor_export(tmp_path / "nope.db")


def test_write_json_0600(tmp_path: Path) -> None:
    out = tmp_path / "cursors.json"
    out.write_text("old, world-readable")
    os.chmod(out, 0o644)
    old_umask = os.umask(0o022)
    try:
        write_json_0600(out, {"b": 1, "a": [1, 2]})
    finally:
        os.umask(old_umask)
    assert json.loads(out.read_text()) == {"a": [1, 2], "b": 1}
    assert out.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["cursors.json"]  # no temp left
    with pytest.raises(StigmemError, match="no such directory"):
        write_json_0600(tmp_path / "missing" / "c.json", {})
    with pytest.raises(StigmemError, match="is a directory"):
        write_json_0600(tmp_path, {})
