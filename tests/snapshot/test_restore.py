"""restore_database(): atomic replace, in-use refusal, pre-restore backup, migration replay."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from snapshot.capture import capture
from snapshot.errors import LockedError, StigmemError
from snapshot.fileio import Writable
from snapshot.nodedb import read_applied_migrations, read_node_meta
from snapshot.restore import restore_database
from tests.conftest import write_rotten_database
from tests.nodegen import MIGRATIONS_DIR, NodeInfo, make_node_db, migration_files

# Snapshots are taken of nodes at this migration, so a restore has the rest to replay
# (029 and 038 open their own transactions and switch foreign keys off around them).
OLDER = "028_subscription_delivery_claim"
APPLIED = [f.stem for f in migration_files(OLDER)]
REPLAYED = [f.stem for f in migration_files()][len(APPLIED) :]

# Opens the database and either holds a write transaction or just keeps it open after a
# read (a running node); says "ready" and holds on until its stdin closes.
HOLDER = r"""
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
if sys.argv[2] == "write":
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT INTO node_meta VALUES ('held', 'uncommitted')")
else:
    conn.execute("SELECT count(*) FROM node_meta").fetchall()
print("ready", flush=True)
sys.stdin.read()
"""

# Tries to read and to write without waiting; prints what SQLite said.
PROBE = r"""
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=0)
for sql in ("SELECT count(*) FROM sqlite_master", "BEGIN IMMEDIATE"):
    try:
        conn.execute(sql).fetchall()
        print("free")
    except sqlite3.OperationalError as exc:
        print(exc)
"""


@contextmanager
def holding(db: Path, how: str) -> Iterator[None]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(db), how],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdin is not None
    try:
        assert proc.stdout.readline().strip() == "ready"
        yield
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)


def snapshot_bytes(tmp_path: Path, seed: int) -> tuple[NodeInfo, bytes]:
    """What a restore gets to write: a captured copy of a generated node."""
    info = make_node_db(tmp_path / f"source-{seed}.db", size_mb=0.3, seed=seed, upto=OLDER)
    copy = tmp_path / f"snapshot-{seed}.db"
    capture(info.path, copy)
    return info, copy.read_bytes()


def writer(data: bytes) -> Callable[[Writable], None]:
    def write_new(out: Writable) -> None:
        out.write(data)

    return write_new


def state(directory: Path) -> dict[str, bytes]:
    """Every file of the directory and its bytes: 'untouched' means this did not change."""
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def query(db: Path, sql: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


@pytest.fixture
def node_dir(tmp_path: Path) -> Path:
    d = tmp_path / "node"
    d.mkdir()
    return d


def test_restore_replaces_target_and_keeps_backup(tmp_path: Path, node_dir: Path) -> None:
    old = make_node_db(node_dir / "stigmem.db", size_mb=0.3, seed=1)
    old_facts = query(old.path, "SELECT count(*) FROM facts")
    new, data = snapshot_bytes(tmp_path, seed=2)

    result = restore_database(old.path, writer(data))

    assert old.path.read_bytes() == data
    assert read_node_meta(old.path).node_id == new.node_id
    backup = node_dir / "stigmem.db.pre-restore-backup"
    assert result.backup_path == backup
    assert read_node_meta(backup).node_id == old.node_id
    assert query(backup, "SELECT count(*) FROM facts") == old_facts
    assert query(backup, "PRAGMA integrity_check") == [("ok",)]
    assert backup.read_bytes()[18:20] == b"\x01\x01"  # self-contained, no -wal needed
    assert sorted(p.name for p in node_dir.iterdir()) == [
        "stigmem.db",
        "stigmem.db.pre-restore-backup",
    ]
    assert result.migrations_replayed == []
    assert (
        result.federation_cursors
        == query(data_db(tmp_path, data), "SELECT count(*) FROM replication_cursors")[0][0]
    )
    assert result.federation_cursors > 0
    assert result.node_id == new.node_id and not result.replaced_invalid


def data_db(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "expected.db"
    path.write_bytes(data)
    return path


def test_no_backup_keeps_none(tmp_path: Path, node_dir: Path) -> None:
    old = make_node_db(node_dir / "stigmem.db", size_mb=0.2, seed=1)
    _, data = snapshot_bytes(tmp_path, seed=2)
    result = restore_database(old.path, writer(data), backup=False)
    assert result.backup_path is None
    assert [p.name for p in node_dir.iterdir()] == ["stigmem.db"]
    assert old.path.read_bytes() == data


def test_missing_target_is_created(tmp_path: Path, node_dir: Path) -> None:
    _, data = snapshot_bytes(tmp_path, seed=2)
    result = restore_database(node_dir / "stigmem.db", writer(data))
    assert (node_dir / "stigmem.db").read_bytes() == data
    assert result.backup_path is None
    assert [p.name for p in node_dir.iterdir()] == ["stigmem.db"]


def test_stale_wal_and_shm_are_removed_not_replayed(tmp_path: Path, node_dir: Path) -> None:
    old = make_node_db(node_dir / "stigmem.db", size_mb=0.2, seed=1)
    # The old node died after committing: its last rows are only in -wal. Replayed into the
    # new database, those frames would corrupt it.
    crash = (
        "import sqlite3, os, sys\n"
        "c = sqlite3.connect(sys.argv[1]); c.execute('PRAGMA wal_autocheckpoint=0')\n"
        "c.execute(\"INSERT INTO node_meta VALUES ('last-words', 'committed')\"); c.commit()\n"
        "os._exit(0)\n"
    )
    subprocess.run([sys.executable, "-c", crash, str(old.path)], check=True)
    assert (node_dir / "stigmem.db-wal").stat().st_size > 0
    assert (node_dir / "stigmem.db-shm").exists()
    _, data = snapshot_bytes(tmp_path, seed=2)

    result = restore_database(old.path, writer(data))

    assert not (node_dir / "stigmem.db-wal").exists()
    assert not (node_dir / "stigmem.db-shm").exists()
    assert old.path.read_bytes() == data
    assert query(old.path, "PRAGMA integrity_check") == [("ok",)]
    assert query(old.path, "SELECT value FROM node_meta WHERE key='last-words'") == []
    assert result.backup_path is not None  # the backup went through the WAL: nothing lost
    assert query(result.backup_path, "SELECT value FROM node_meta WHERE key='last-words'") == [
        ("committed",)
    ]


@pytest.mark.parametrize("how", ["write", "open"])
def test_refuses_a_database_in_use(tmp_path: Path, node_dir: Path, how: str) -> None:
    old = make_node_db(node_dir / "stigmem.db", size_mb=0.2, seed=1)
    _, data = snapshot_bytes(tmp_path, seed=2)
    called = []

    def write_new(out: Writable) -> None:
        called.append(True)
        out.write(data)

    with holding(old.path, how):
        before = state(node_dir)
        with pytest.raises(LockedError) as err:
            restore_database(old.path, write_new, lock_timeout=0.2)
        assert state(node_dir) == before  # nothing written, nothing removed
    assert str(err.value) == f"database in use: {old.path}"
    assert called == []
    assert read_node_meta(old.path).node_id == old.node_id


def test_lock_is_held_until_the_rename(tmp_path: Path, node_dir: Path) -> None:
    old = make_node_db(node_dir / "stigmem.db", size_mb=0.2, seed=1)
    _, data = snapshot_bytes(tmp_path, seed=2)
    probes = []

    def probe() -> list[str]:
        out = subprocess.run(
            [sys.executable, "-c", PROBE, str(old.path)],
            capture_output=True,
            text=True,
            check=True,
        )
        return out.stdout.split("\n")[:2]

    def write_new(out: Writable) -> None:
        probes.append(probe())  # mid-restore: another process can neither read nor write
        out.write(data)

    restore_database(old.path, write_new)
    assert probes == [["database is locked", "database is locked"]]
    assert probe() == ["free", "free"]  # released afterwards


def test_a_target_that_is_not_sqlite_is_replaced(tmp_path: Path, node_dir: Path) -> None:
    target = node_dir / "stigmem.db"
    garbage = b"\x00\xffdisk went bad\n" * 1000
    target.write_bytes(garbage)
    _, data = snapshot_bytes(tmp_path, seed=2)
    result = restore_database(target, writer(data))
    assert target.read_bytes() == data
    assert result.replaced_invalid
    assert result.backup_path is not None and result.backup_path.read_bytes() == garbage


def test_a_failing_write_new_leaves_everything_as_it_was(tmp_path: Path, node_dir: Path) -> None:
    make_node_db(node_dir / "stigmem.db", size_mb=0.2, seed=1)
    _, data = snapshot_bytes(tmp_path, seed=2)
    before = state(node_dir)

    def write_new(out: Writable) -> None:
        out.write(data[: len(data) // 2])
        raise RuntimeError("the store went away")

    with pytest.raises(RuntimeError, match="the store went away"):
        restore_database(node_dir / "stigmem.db", write_new)
    assert state(node_dir) == before  # same files, same bytes: no temp, no backup


@pytest.mark.parametrize("content", ["corrupt", "text", "empty"])
def test_a_bad_new_database_is_refused(tmp_path: Path, node_dir: Path, content: str) -> None:
    make_node_db(node_dir / "stigmem.db", size_mb=0.2, seed=1)
    if content == "corrupt":
        data = write_rotten_database(tmp_path / "bad.db")
    else:
        data = b"not a database" if content == "text" else b""
    before = state(node_dir)
    with pytest.raises(StigmemError, match=r"restored database fails (quick|integrity)_check"):
        restore_database(node_dir / "stigmem.db", writer(data))
    assert state(node_dir) == before


def test_migrations_newer_than_the_cursor_are_replayed_in_order(
    tmp_path: Path, node_dir: Path
) -> None:
    old = make_node_db(node_dir / "stigmem.db", size_mb=0.2, seed=1)
    _, data = snapshot_bytes(tmp_path, seed=2)  # applied up to OLDER
    migrations = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, migrations)
    (migrations / "README.md").write_text("not a migration")
    (migrations / "notes.txt").write_text("not a migration: only *.sql files are")

    result = restore_database(old.path, writer(data), migrations_dir=migrations)

    # An applied one re-run would fail (duplicate column): only the later ones ran, in order,
    # 034's triggers after the 033 tables they write to.
    assert result.migrations_replayed == REPLAYED
    assert read_applied_migrations(old.path) == APPLIED + REPLAYED
    applied_at = query(
        old.path,
        f"SELECT applied_at FROM schema_migrations WHERE version > '{OLDER}'",
    )
    assert len(applied_at) == len(REPLAYED)
    assert all(str(at).endswith("+00:00") for (at,) in applied_at)
    names = {n for (n,) in query(old.path, "SELECT name FROM sqlite_master")}
    assert {"fact_journal", "facts_no_update", "idx_fact_chain_fact_id"} <= names
    assert query(old.path, "PRAGMA integrity_check") == [("ok",)]
    # Running again on the restored database finds nothing left to replay.
    again = restore_database(old.path, writer(old.path.read_bytes()), migrations_dir=migrations)
    assert again.migrations_replayed == []


def test_a_failing_migration_leaves_the_target_untouched(tmp_path: Path, node_dir: Path) -> None:
    make_node_db(node_dir / "stigmem.db", size_mb=0.2, seed=1)
    _, data = snapshot_bytes(tmp_path, seed=2)
    migrations = tmp_path / "migrations"
    migrations.mkdir()
    shutil.copy(MIGRATIONS_DIR / "031_session_scope_access.sql", migrations)
    (migrations / "004_broken.sql").write_text("CREATE INDEX nope ON no_such_table(x);\n")
    before = state(node_dir)
    with pytest.raises(StigmemError) as err:
        restore_database(node_dir / "stigmem.db", writer(data), migrations_dir=migrations)
    assert "004_broken.sql" in str(err.value) and "no_such_table" in str(err.value)
    assert state(node_dir) == before


def test_bad_paths_are_refused_before_anything_is_written(tmp_path: Path, node_dir: Path) -> None:
    called = []

    def write_new(out: Writable) -> None:
        called.append(True)

    with pytest.raises(StigmemError, match=f"is a directory: {node_dir}"):
        restore_database(node_dir, write_new)
    missing = tmp_path / "no-such-dir"
    with pytest.raises(StigmemError, match="no such migrations directory"):
        restore_database(node_dir / "stigmem.db", write_new, migrations_dir=missing)
    with pytest.raises(StigmemError, match="no such directory"):
        restore_database(missing / "stigmem.db", write_new)
    assert called == []
    assert list(node_dir.iterdir()) == []


def test_a_wal_mode_artifact_restores_with_migrations(tmp_path: Path, node_dir: Path) -> None:
    # The Stigmem node's own tarballs may carry a database whose header says WAL.
    info = make_node_db(tmp_path / "wal.db", size_mb=0.2, seed=5, upto=OLDER)
    data = info.path.read_bytes()
    assert data[18:20] == b"\x02\x02"
    target = node_dir / "stigmem.db"
    result = restore_database(target, writer(data), migrations_dir=MIGRATIONS_DIR)
    assert result.migrations_replayed == REPLAYED
    assert sorted(p.name for p in node_dir.iterdir()) == ["stigmem.db"]
    assert query(target, "PRAGMA integrity_check") == [("ok",)]
    assert read_node_meta(target).node_id == info.node_id


def test_force_restores_a_database_failing_integrity_check(tmp_path: Path, node_dir: Path) -> None:
    make_node_db(node_dir / "stigmem.db", size_mb=0.2, seed=1)
    _, data = snapshot_bytes(tmp_path, seed=2)
    flipped = bytearray(data)
    flipped[len(flipped) // 2] ^= 0xFF  # a bad bit in the store, restored anyway on request
    target = node_dir / "stigmem.db"
    with pytest.raises(StigmemError, match=r"restored database fails (quick|integrity)_check"):
        restore_database(target, writer(bytes(flipped)))
    result = restore_database(target, writer(bytes(flipped)), force=True)
    assert target.read_bytes() == bytes(flipped)
    assert result.integrity != "ok" and "\n" not in result.integrity
    assert result.backup_path is not None and result.backup_path.exists()
