"""capture() and nodedb: consistent copies of live node databases, and clear refusals."""

from __future__ import annotations

import hashlib
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from snapshot.capture import capture
from snapshot.errors import StigmemError
from snapshot.nodedb import check_sqlite, read_applied_migrations, read_node_meta
from tests.nodegen import PAGE_SIZE, make_node_db

# Commits numbered rows one small transaction at a time until the stop file appears. Says
# "ready <n>" once <n> rows are committed, and "done <last>" when it stops.
WRITER = r"""
import sqlite3, sys
from pathlib import Path
db, stop, ready_after = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
conn = sqlite3.connect(db, isolation_level=None, timeout=30)
n = 0
while True:
    n += 1
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT INTO seq (n, pad) VALUES (?, randomblob(300))", (n,))
    conn.execute("COMMIT")
    if n == ready_after:
        print("ready", n, flush=True)
    if n > ready_after and stop.exists():
        break
print("done", n, flush=True)
conn.close()
"""


def rows(path: Path, sql: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def test_capture_of_idle_node_describes_a_self_contained_copy(tmp_path: Path) -> None:
    info = make_node_db(tmp_path / "node" / "node.db", size_mb=1, seed=2)
    source_before = info.path.read_bytes()
    result = capture(info.path, tmp_path / "copy.db")
    read_node_meta(info.path)
    # Reading a stopped node leaves its directory as it was: no stray -wal/-shm.
    assert [p.name for p in info.path.parent.iterdir()] == ["node.db"]

    copy = (tmp_path / "copy.db").read_bytes()
    assert result.db_sha256 == hashlib.sha256(copy).hexdigest()
    assert result.size == len(copy) == len(source_before)
    assert result.page_size == PAGE_SIZE
    assert result.applied_migrations == info.migrations
    assert (result.node_id, result.federation_privkey, result.federation_pubkey) == (
        info.node_id,
        info.privkey,
        info.pubkey,
    )
    assert copy[18:20] == b"\x01\x01"  # rollback journal: readable without any -wal
    assert not (tmp_path / "copy.db-wal").exists()
    assert (tmp_path / "copy.db").stat().st_mode & 0o777 == 0o600
    # Pages stay where they were (what page-level dedup needs); only the header page differs.
    assert copy[PAGE_SIZE:] == source_before[PAGE_SIZE:]
    assert info.path.read_bytes() == source_before  # the source is never written


def test_capture_includes_committed_wal_frames(tmp_path: Path) -> None:
    db = make_node_db(tmp_path / "node.db", size_mb=0.2).path
    # A node that died after committing, before any checkpoint: the rows live only in -wal.
    crash = (
        "import sqlite3, os, sys\n"
        "c = sqlite3.connect(sys.argv[1]); c.execute('PRAGMA wal_autocheckpoint=0')\n"
        "c.execute(\"INSERT INTO node_meta VALUES ('crash', 'committed')\"); c.commit()\n"
        "os._exit(0)\n"
    )
    subprocess.run([sys.executable, "-c", crash, str(db)], check=True)
    assert (tmp_path / "node.db-wal").stat().st_size > 0
    capture(db, tmp_path / "copy.db")
    assert rows(tmp_path / "copy.db", "SELECT value FROM node_meta WHERE key='crash'") == [
        ("committed",)
    ]


def test_capture_while_another_process_commits(tmp_path: Path) -> None:
    db = make_node_db(tmp_path / "node.db", size_mb=4, seed=3).path
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE seq (n INTEGER PRIMARY KEY, pad BLOB)")
    conn.commit()
    conn.close()
    stop = tmp_path / "stop"
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(db), str(stop), "200"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert writer.stdout is not None
        assert writer.stdout.readline().split() == ["ready", "200"]
        seen = []
        for n in range(3):
            copy = tmp_path / f"copy{n}.db"
            capture(db, copy)  # integrity_check ran inside
            numbers = [r for (r,) in rows(copy, "SELECT n FROM seq ORDER BY n")]
            k = len(numbers)
            assert numbers == list(range(1, k + 1))  # a committed prefix, no gaps
            assert k >= 200  # everything committed before the capture began is in it
            assert rows(copy, "PRAGMA integrity_check") == [("ok",)]
            seen.append(k)
        stop.touch()
        last = int(writer.stdout.readline().split()[1])
    finally:
        stop.touch()
        writer.wait(timeout=60)
    assert writer.returncode == 0
    assert seen == sorted(seen) and seen[-1] <= last


def make_corrupt_db(path: Path) -> None:
    """A database whose index disagrees with its table: integrity_check reports it."""
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (x INTEGER, y INTEGER)")
    conn.execute("CREATE INDEX t_x ON t (x)")
    conn.executemany("INSERT INTO t VALUES (?, ?)", [(i, -i) for i in range(100)])
    conn.commit()
    conn.execute("PRAGMA writable_schema=ON")
    conn.execute("UPDATE sqlite_master SET sql='CREATE INDEX t_x ON t (y)' WHERE name='t_x'")
    conn.commit()
    conn.close()


def test_capture_of_a_corrupt_database_fails_naming_it(tmp_path: Path) -> None:
    db = tmp_path / "broken.db"
    make_corrupt_db(db)
    # quick_check walks pages and b-trees but not index-vs-table agreement: only the full
    # check (--full-check) sees this kind of damage.
    capture(db, tmp_path / "quick.db")
    with pytest.raises(StigmemError) as err:
        capture(db, tmp_path / "copy.db", full_check=True)
    assert str(db) in str(err.value) and "integrity" in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p.mkdir(), "is a directory: {}"),
        (
            lambda p: p.write_bytes(b"just some text, not a database\n" * 10),
            "not a SQLite database: {}",
        ),
        (lambda p: p.write_bytes(b""), "not a SQLite database: {}"),
        (lambda p: None, "no such file: {}"),
    ],
    ids=["directory", "text-file", "empty-file", "missing"],
)
def test_capture_refuses_what_is_not_a_database(
    tmp_path: Path, make: Callable[[Path], object], message: str
) -> None:
    source = tmp_path / "node.db"
    make(source)
    with pytest.raises(StigmemError) as err:
        capture(source, tmp_path / "copy.db")
    assert str(err.value) == message.format(source)
    with pytest.raises(StigmemError):
        check_sqlite(source)


def test_nodedb_reads_meta_and_cursor(tmp_path: Path) -> None:
    info = make_node_db(tmp_path / "node.db", size_mb=0.2, seed=9)
    meta = read_node_meta(info.path)
    assert (meta.node_id, meta.federation_privkey, meta.federation_pubkey) == (
        info.node_id,
        info.privkey,
        info.pubkey,
    )
    assert read_applied_migrations(info.path) == info.migrations


def test_nodedb_without_stigmem_tables_answers_none_and_empty(tmp_path: Path) -> None:
    db = tmp_path / "plain.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE other (x)")
    conn.execute("CREATE TABLE node_meta (key TEXT PRIMARY KEY, value TEXT)")
    conn.execute("INSERT INTO node_meta VALUES ('node_id', 'stigmem:node:only-id')")
    conn.commit()
    conn.close()
    meta = read_node_meta(db)
    assert meta.node_id == "stigmem:node:only-id"
    assert meta.federation_privkey is None and meta.federation_pubkey is None
    assert read_applied_migrations(db) == []
    result = capture(db, tmp_path / "copy.db")
    assert result.applied_migrations == [] and result.federation_privkey is None
