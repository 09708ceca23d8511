"""A consistent copy of a live node database, through SQLite's online backup API.

Why one backup step (``pages=-1``): the step runs inside a single read transaction on the
source, so the copy is exactly the database as of one commit, and in WAL mode that read
transaction never blocks the node's writers. Copying in several steps would let writers in
between steps, and SQLite restarts a backup whenever another connection writes to the source,
so on a busy node a stepped backup may never finish. The cost of one step is that the node's
checkpoints cannot pass our read mark until the copy ends (the WAL grows meanwhile).

The backup API copies pages in place, which is what page-level deduplication in the store
relies on; ``VACUUM INTO`` would repack every page and is never used.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

from snapshot.errors import StigmemError
from snapshot.nodedb import (
    applied_migrations_of,
    check_sqlite,
    connect_for_reading,
    database_error,
    node_meta_of,
)

# Without a busy timeout a read can fail while the node is mid-checkpoint or recovering.
SOURCE_TIMEOUT = 10.0
HASH_BLOCK = 1 << 20
# A bigger cache barely speeds integrity_check up but counts fully in peak memory, which
# must not grow with the database.
CHECK_CACHE_KIB = 16 * 1024


@dataclass(frozen=True)
class CaptureResult:
    path: Path
    db_sha256: str
    size: int
    page_size: int
    applied_migrations: list[str]
    node_id: str | None
    federation_privkey: str | None
    federation_pubkey: str | None


def capture(db_path: Path, dest: Path, full_check: bool = False) -> CaptureResult:
    """Copy the live database ``db_path`` into ``dest``, check it, and describe the copy.

    ``dest`` is the caller's temporary file: created or overwritten here, never removed. The
    copy is in rollback-journal mode (no ``-wal`` needed to read it), fsynced, and has passed
    ``PRAGMA integrity_check``. The source is only read (see ``connect_for_reading``).
    """
    check_sqlite(db_path)
    try:
        backup_copy(db_path, dest)
        check_integrity(dest, f"captured copy of {db_path} fails its integrity check", full_check)
        return describe(dest)
    except OSError as exc:
        raise StigmemError(f"cannot copy {db_path} to {dest}: {exc.strerror or exc}") from None


def backup_copy(db_path: Path, dest: Path, durable: bool = True) -> None:
    """Copy ``db_path`` page for page into ``dest`` and make ``dest`` self-contained.

    ``durable=False`` skips the fsync, for a scratch copy that is read once and deleted.
    """
    _clear(dest)
    try:
        source = connect_for_reading(db_path, SOURCE_TIMEOUT)
    except sqlite3.Error as exc:
        raise database_error(db_path, exc) from None
    try:
        copy_from_connection(source, dest, db_path, durable)
    finally:
        source.close()


def copy_from_connection(
    source: sqlite3.Connection, dest: Path, label: Path, durable: bool = True
) -> None:
    """Back ``source`` up into the new file ``dest``, then turn ``dest`` into a plain file.

    ``label`` names the source in errors.
    """
    target = sqlite3.connect(dest)
    try:
        # The copy is a new file: a crash leaves a temp file nobody reads, so no journal and
        # no syncs while it is written: each would make the copy wait on the disk for
        # nothing. Durability, when asked for, comes from the one fsync below.
        target.execute("PRAGMA journal_mode=OFF")
        target.execute("PRAGMA synchronous=OFF")
        source.backup(target, pages=-1)
    except sqlite3.Error as exc:
        raise database_error(label, exc) from None
    finally:
        target.close()
    # The backup copies the source's header verbatim, WAL flag included (bytes 18-19 = 2).
    # No -wal exists for the copy (it was written without a journal), so the file already
    # holds everything and setting both bytes to 1 makes it a self-contained rollback-mode
    # database. ``PRAGMA journal_mode=DELETE`` does the same but syncs the whole file first,
    # a cost in proportion to the database even when no durability is asked for.
    with dest.open("r+b") as handle:
        header = handle.read(100)
        if len(header) < 100 or header[18:20] not in (b"\x01\x01", b"\x02\x02"):
            raise StigmemError(f"cannot finish the copy {dest}: unexpected header")
        handle.seek(18)
        handle.write(b"\x01\x01")
    if durable:
        fsync_file(dest)


def check_integrity(path: Path, message: str, full: bool = False) -> None:
    """Raise ``StigmemError(message: first problem)`` unless the check says ok."""
    problem = integrity_problem(path, full)
    if problem is not None:
        raise StigmemError(f"{message}: {problem}")


def integrity_problem(path: Path, full: bool = False) -> str | None:
    """None when the check says ok, else the first problem it reports.

    ``quick_check`` walks every page and b-tree (torn copies, bad pages, broken freelists);
    ``full`` adds ``integrity_check``'s lookup of every row in every index, which costs
    O(rows x indexes x log n): for a node database, tens of times ``quick_check`` and about
    ten times the whole daily backup. So it is asked for (``--full-check``), not the default.
    """
    try:
        conn = connect_for_reading(path)
        try:
            if full:
                # integrity_check looks every row up in every index: a big cache saves
                # re-reading. quick_check reads each page once, so a big cache only adds the
                # cost of filling it. Reading through mmap would be a little faster, but every
                # page mapped counts in the process's RSS, which would then grow with the
                # database.
                conn.execute(f"PRAGMA cache_size=-{CHECK_CACHE_KIB}")
            pragma = "integrity_check" if full else "quick_check"
            rows = conn.execute(f"PRAGMA {pragma}").fetchall()
        finally:
            conn.close()
    except sqlite3.Error as exc:
        return str(exc)
    if rows == [("ok",)]:
        return None
    # SQLite may report a finding over several lines ("*** in database main ***" first):
    # one line, for a one-line error.
    return "; ".join(line.strip() for line in str(rows[0][0]).splitlines() if line.strip())


class IntegrityCheck:
    """The integrity check of a copy (see :func:`integrity_problem`) in a thread of its own.

    SQLite releases the GIL while it steps, so on a second core the check overlaps the
    store's chunking and compression instead of adding to them; the caller signs only after
    :meth:`raise_if_failed`.
    """

    def __init__(self, path: Path, full: bool = False) -> None:
        self.path = path
        self.full = full
        self.problem: str | None = None
        self._thread = threading.Thread(target=self._run, name="integrity-check", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        self.problem = integrity_problem(self.path, self.full)

    def join(self) -> None:
        self._thread.join()

    def raise_if_failed(self, message: str) -> None:
        self.join()
        if self.problem is not None:
            raise StigmemError(f"{message}: {self.problem}")


def describe(path: Path, digest: str | None = None) -> CaptureResult:
    """What a copy holds; ``digest`` when the caller already hashed it on another pass."""
    conn = connect_for_reading(path)
    try:
        (page_size,) = conn.execute("PRAGMA page_size").fetchone()
        meta = node_meta_of(conn)
        migrations = applied_migrations_of(conn)
    finally:
        conn.close()
    if digest is None:
        digest, size = sha256_file(path)
    else:
        size = path.stat().st_size
    return CaptureResult(
        path=path,
        db_sha256=digest,
        size=size,
        page_size=int(page_size),
        applied_migrations=migrations,
        node_id=meta.node_id,
        federation_privkey=meta.federation_privkey,
        federation_pubkey=meta.federation_pubkey,
    )


def sha256_file(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while block := handle.read(HASH_BLOCK):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _clear(dest: Path) -> None:
    # Leftover journal files beside a reused temp name would be replayed into the copy.
    for suffix in ("-journal", "-wal", "-shm"):
        dest.with_name(dest.name + suffix).unlink(missing_ok=True)
    # The copy carries the node's private key: owner-only from the first byte.
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
