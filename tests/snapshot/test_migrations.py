"""Migration replay after a restore: the node's scripts run as the node runs them.

The scripts here are written the way the node's are: some hold their own ``BEGIN``/``COMMIT``,
some rebuild a table between ``PRAGMA foreign_keys=OFF`` and ``ON`` (which only takes effect
outside a transaction), and two share a number. The expected schema is what applying the same
scripts directly, one ``executescript`` each, gives.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from snapshot.errors import StigmemError
from snapshot.fileio import Writable
from snapshot.restore import migration_files, replay_migrations, restore_database
from tests.conftest import rows

SCRIPTS = {
    "001_init.sql": """
CREATE TABLE node_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE peers (id TEXT PRIMARY KEY, node_id TEXT NOT NULL UNIQUE, node_url TEXT NOT NULL);
CREATE TABLE tokens (
    id TEXT PRIMARY KEY,
    peer_id TEXT REFERENCES peers(id),
    nonce TEXT NOT NULL CHECK (nonce GLOB '[0-9a-f]*')
);
""",
    "002_cursors.sql": """
BEGIN;
CREATE TABLE replication_cursors (
    peer_id TEXT NOT NULL REFERENCES peers(id) ON DELETE CASCADE,
    direction TEXT NOT NULL CHECK (direction IN ('inbound', 'outbound')),
    cursor TEXT,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (peer_id, direction)
);
COMMIT;
""",
    # A table rebuild: foreign keys off outside the transaction, as SQLite requires.
    "003_token_nonce_check.sql": """
PRAGMA foreign_keys=OFF;
BEGIN;
ALTER TABLE tokens RENAME TO tokens_old;
CREATE TABLE tokens (
    id TEXT PRIMARY KEY,
    peer_id TEXT REFERENCES peers(id),
    nonce TEXT NOT NULL CHECK (length(nonce) = 64 AND nonce NOT GLOB '*[^0-9a-f]*')
);
INSERT INTO tokens SELECT * FROM tokens_old;
DROP TABLE tokens_old;
COMMIT;
PRAGMA foreign_keys=ON;
""",
    "004_recall_audit.sql": "CREATE TABLE recall_audit_log (id TEXT PRIMARY KEY, at TEXT);\n",
    "004_subscriptions.sql": "CREATE TABLE subscriptions (id TEXT PRIMARY KEY, tenant TEXT);\n",
    "005_peer_status.sql": (
        "ALTER TABLE peers ADD COLUMN status TEXT NOT NULL DEFAULT 'active';\n"
        "CREATE INDEX idx_peers_status ON peers(status);\n"
    ),
}
NODE_LAYOUT = (
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    "id INTEGER PRIMARY KEY AUTOINCREMENT, version TEXT NOT NULL UNIQUE, applied_at TEXT NOT NULL)"
)


def write_scripts(folder: Path, names: list[str] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in SCRIPTS.items():
        if names is None or name in names:
            (folder / name).write_text(text)
    return folder


def apply_directly(db: Path, folder: Path) -> None:
    """Each script with one executescript, its version recorded after it: the node's way."""
    conn = sqlite3.connect(db)
    try:
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute(NODE_LAYOUT)
        conn.commit()
        for script in sorted(folder.glob("*.sql")):
            conn.executescript(script.read_text())
            conn.execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES (?, 'then')",
                (script.stem,),
            )
            conn.commit()
    finally:
        conn.close()


def schema(db: Path) -> list[tuple[object, ...]]:
    return rows(db, "SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY name")


def versions(db: Path) -> list[tuple[int, str]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT id, version FROM schema_migrations ORDER BY id").fetchall()
    finally:
        conn.close()


def node_at(tmp_path: Path, names: list[str]) -> Path:
    """A node database that has applied ``names`` only, with a peer and a token."""
    db = tmp_path / "old.db"
    apply_directly(db, write_scripts(tmp_path / "old-migrations", names))
    conn = sqlite3.connect(db)
    conn.execute("INSERT INTO peers VALUES ('p1', 'stigmem:node:peer', 'https://peer.example')")
    conn.execute("INSERT INTO tokens VALUES ('t1', 'p1', ?)", ("ab" * 32,))
    conn.commit()
    conn.close()
    return db


def writer(data: bytes) -> Callable[[Writable], None]:
    def write_new(out: Writable) -> None:
        out.write(data)

    return write_new


def test_files_are_every_sql_file_by_name_and_shared_numbers_are_two_versions(
    tmp_path: Path,
) -> None:
    folder = write_scripts(tmp_path / "m")
    (folder / "README.md").write_text("not a migration")
    names = [p.name for p in migration_files(folder)]
    assert names == sorted(SCRIPTS)
    assert "004_recall_audit.sql" in names and "004_subscriptions.sql" in names


def test_scripts_with_their_own_transactions_and_pragmas_replay_to_the_nodes_schema(
    tmp_path: Path,
) -> None:
    old = node_at(tmp_path, ["001_init.sql", "002_cursors.sql"])
    reference = tmp_path / "reference.db"
    apply_directly(reference, write_scripts(tmp_path / "all"))

    target = tmp_path / "node" / "stigmem.db"
    target.parent.mkdir()
    result = restore_database(
        target, writer(old.read_bytes()), migrations_dir=write_scripts(tmp_path / "all")
    )

    assert result.migrations_replayed == [
        "003_token_nonce_check",
        "004_recall_audit",
        "004_subscriptions",
        "005_peer_status",
    ]
    assert schema(target) == schema(reference)
    assert [v for _, v in versions(target)] == [p.stem for p in migration_files(tmp_path / "all")]
    # The node's layout: ids in application order, versions unique.
    assert [i for i, _ in versions(target)] == [1, 2, 3, 4, 5, 6]
    conn = sqlite3.connect(target)
    assert conn.execute("SELECT id, nonce FROM tokens").fetchall() == [("t1", "ab" * 32)]
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    conn.close()


def test_a_database_without_schema_migrations_gets_the_nodes_layout(tmp_path: Path) -> None:
    bare = tmp_path / "bare.db"
    sqlite3.connect(bare).close()
    folder = write_scripts(tmp_path / "m", ["001_init.sql"])
    replay_migrations(bare, migration_files(folder))
    conn = sqlite3.connect(bare)
    (ddl,) = conn.execute(
        "SELECT sql FROM sqlite_master WHERE name = 'schema_migrations'"
    ).fetchone()
    conn.close()
    assert "AUTOINCREMENT" in ddl and "UNIQUE" in ddl
    assert versions(bare) == [(1, "001_init")]


def test_a_failing_script_names_itself_and_sqlite_and_leaves_the_target_untouched(
    tmp_path: Path,
) -> None:
    old = node_at(tmp_path, ["001_init.sql", "002_cursors.sql"])
    target = tmp_path / "stigmem.db"
    target.write_bytes(old.read_bytes())
    before = target.read_bytes()
    folder = write_scripts(tmp_path / "m")
    # Its first statement succeeds, its second fails: replay must not keep the first either.
    (folder / "006_broken.sql").write_text(
        "CREATE TABLE half_done (x);\nCREATE INDEX nope ON no_such_table(x);\n"
    )

    with pytest.raises(StigmemError) as caught:
        restore_database(target, writer(old.read_bytes()), migrations_dir=folder)

    message = str(caught.value)
    assert "\n" not in message
    assert "006_broken.sql" in message and "no such table: main.no_such_table" in message
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("stigmem")) == [
        "stigmem.db"
    ]
