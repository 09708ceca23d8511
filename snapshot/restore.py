"""Put a snapshot's database in place of a node database, atomically, then replay migrations.

Order of work (docs/design.md, "Restore"):

1. Lock the current target. The lock is SQLite's own: ``locking_mode=EXCLUSIVE`` and
   ``BEGIN EXCLUSIVE`` with a short busy timeout. In WAL mode every open connection holds a
   shared lock on the database file, so this fails not only while a process writes but while
   any process (a running node, idle or not) has the database open: replacing a file under a
   live node would strand the node on the old inode. In rollback mode it fails while anyone
   reads or writes. Failing is ``LockedError("database in use: ...")`` before anything is
   written. The lock is held from that check until after the rename, so no process can read,
   write or create fresh ``-wal``/``-shm`` files for the old database in between; anyone who
   tries gets SQLITE_BUSY.
2. Write the new database through ``write_new`` into a temporary file beside the target,
   then fsync it, check the SQLite header and run ``PRAGMA quick_check`` (or
   ``integrity_check``) while the caller verifies what it wrote. The caller may know that
   these exact bytes passed ``quick_check`` before (``checked_before``, see
   ``snapshot.checked``); then the header is checked and the quick_check is not repeated.
3. Replay migrations on the temporary file, before the rename, so a failing migration leaves
   the target exactly as it was instead of half-migrated.
4. Keep the current database as ``<db>.pre-restore-backup`` (through the backup API on the
   locked connection, so committed WAL content is included), unless told not to.
5. Remove stale ``-wal``/``-shm``/``-journal`` of the target (SQLite would replay them into the
   new database), rename the temporary file over the target, fsync the directory.

Any failure removes the temporary files and leaves the target untouched.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import stat
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from snapshot.capture import copy_from_connection, fsync_file, integrity_problem
from snapshot.errors import LockedError, StigmemError
from snapshot.fileio import Writable, WriteBehind, fsync_dir
from snapshot.nodedb import (
    applied_migrations_of,
    has_sqlite_header,
    is_busy,
    node_meta_of,
    replication_cursor_count_of,
)

BACKUP_SUFFIX = ".pre-restore-backup"
SIDECARS = ("-wal", "-shm", "-journal")
# The node's own layout, which it creates before its first script.
SCHEMA_MIGRATIONS_DDL = (
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    "id INTEGER PRIMARY KEY AUTOINCREMENT, "
    "version TEXT NOT NULL UNIQUE, "
    "applied_at TEXT NOT NULL)"
)


@dataclass(frozen=True)
class RestoreResult:
    target: Path
    backup_path: Path | None
    migrations_replayed: list[str]
    federation_cursors: int  # rows of replication_cursors in the restored database
    node_id: str | None
    replaced_invalid: bool  # the target existed but was not a usable SQLite database
    integrity: str = "ok"  # or the first integrity_check problem of a forced restore
    checked_before: bool = False  # quick_check not run: these bytes passed it before


def restore_database(
    target: Path,
    write_new: Callable[[Writable], Callable[[], None] | None],
    *,
    backup: bool = True,
    migrations_dir: Path | None = None,
    lock_timeout: float = 2.0,
    force: bool = False,
    full_check: bool = False,
    checked_before: Callable[[], bool] | None = None,
) -> RestoreResult:
    """Replace the database at ``target`` by the bytes ``write_new`` writes.

    The new database must pass ``quick_check`` (``integrity_check`` with ``full_check``;
    see :func:`snapshot.capture.integrity_problem`).
    ``force`` (``--force-unverified``): a new database failing the check is restored
    anyway; ``RestoreResult.integrity`` then holds the problem for the caller to report.
    ``checked_before``, asked once everything is written: whether the bytes written are
    known to pass ``quick_check`` already (never asked with ``full_check``).

    ``write_new`` may return a ``finish`` step (judging what it wrote: a restore opens the
    catalog for its trusted keys there), which runs alongside the fsync and the check.
    Exceptions from ``write_new`` and ``finish`` propagate unchanged (an ``OSError`` becomes a
    one-line ``StigmemError``), after the temporary file is removed.
    """
    target = _resolve_target(target)
    migrations = migration_files(migrations_dir) if migrations_dir is not None else []
    try:
        return _restore(
            target, write_new, backup, migrations, lock_timeout, force, full_check, checked_before
        )
    except OSError as exc:
        # Disk full, permissions: one line naming the file, as every other failure.
        where = exc.filename or target
        raise StigmemError(f"cannot restore {target}: {exc.strerror or exc}: {where}") from None


def _restore(
    target: Path,
    write_new: Callable[[Writable], Callable[[], None] | None],
    backup: bool,
    migrations: list[Path],
    lock_timeout: float,
    force: bool,
    full_check: bool,
    checked_before: Callable[[], bool] | None,
) -> RestoreResult:
    with _locked(target, lock_timeout) as lock:
        tmp = _new_temp(target)
        try:
            with tmp.open("wb") as handle:
                finish = write_new(WriteBehind(handle))
                handle.flush()
                known = not full_check and checked_before is not None and checked_before()
                problem = _settle(tmp, handle.fileno(), finish, full_check, known)
            if problem is not None and not force:
                check = "integrity_check" if full_check else "quick_check"
                raise StigmemError(f"restored database fails {check}: {problem}")
            replayed = replay_migrations(tmp, migrations) if migrations else []
            federation_cursors, node_id = _summary(tmp, tolerant=problem is not None)
            _remove_sidecars(tmp)
            if lock.existed:
                os.chmod(tmp, stat.S_IMODE(target.stat().st_mode))
            fsync_file(tmp)
            backup_path = _keep_backup(target, lock) if backup and lock.existed else None
            _remove_sidecars(target)
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            _remove_sidecars(tmp)
            raise
        fsync_dir(target.parent)
    return RestoreResult(
        target=target,
        backup_path=backup_path,
        migrations_replayed=replayed,
        federation_cursors=federation_cursors,
        node_id=node_id,
        replaced_invalid=lock.existed and lock.conn is None,
        integrity="ok" if problem is None else problem,
        checked_before=known,
    )


def migration_files(migrations_dir: Path) -> list[Path]:
    """The ``*.sql`` files of ``migrations_dir``, sorted by name, as the node takes them.

    Two files may share a number (``019_a.sql``, ``019_b.sql``): each is its own version, the
    file name without ``.sql``.
    """
    if not migrations_dir.is_dir():
        raise StigmemError(f"no such migrations directory: {migrations_dir}")
    return sorted((p for p in migrations_dir.glob("*.sql") if p.is_file()), key=lambda p: p.name)


def replay_migrations(db: Path, files: list[Path]) -> list[str]:
    """Apply each file whose version is not in ``schema_migrations``, as the node does.

    The node runs each script as written (``executescript``: the scripts hold their own
    ``BEGIN``/``COMMIT`` and ``PRAGMA foreign_keys``, which only works outside a transaction),
    then records its version; a wrapping transaction would break those scripts. So a failing
    script can leave earlier statements of its own applied: the caller runs this on the
    temporary copy and discards it on failure, which is what makes the whole replay atomic.
    Returns the versions replayed; a failure raises ``StigmemError`` naming the script and
    SQLite's message.
    """
    conn = sqlite3.connect(db)
    try:
        # The node's connections enforce foreign keys; scripts that rebuild tables turn them
        # off themselves.
        conn.execute("PRAGMA foreign_keys=ON")
        applied = set(applied_migrations_of(conn))
        pending = [f for f in files if f.stem not in applied]
        if pending:
            conn.execute(SCHEMA_MIGRATIONS_DDL)
            conn.commit()
        for sql_file in pending:
            _apply_one(conn, sql_file)
    except sqlite3.Error as exc:
        raise StigmemError(f"cannot replay migrations on {db}: {exc}") from None
    finally:
        conn.close()
    return [f.stem for f in pending]


def _apply_one(conn: sqlite3.Connection, sql_file: Path) -> None:
    try:
        script = sql_file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise StigmemError(f"cannot read migration {sql_file}: {exc}") from None
    try:
        conn.executescript(script)
        conn.execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
            (sql_file.stem, datetime.now(UTC).isoformat()),
        )
        conn.commit()
    except sqlite3.Error as exc:
        raise StigmemError(f"migration {sql_file.name} failed: {exc}") from None


@dataclass
class _Lock:
    existed: bool
    conn: sqlite3.Connection | None  # None when there is nothing SQLite to lock


@contextlib.contextmanager
def _locked(target: Path, timeout: float) -> Iterator[_Lock]:
    if not target.exists():
        yield _Lock(existed=False, conn=None)
        return
    if not has_sqlite_header(target):
        yield _Lock(existed=True, conn=None)  # the disaster case: replaced, kept as backup
        return
    conn = sqlite3.connect(target, timeout=timeout, isolation_level=None)
    try:
        usable = _take_lock(conn, target)
        yield _Lock(existed=True, conn=conn if usable else None)
    finally:
        # After the rename this connection's file is gone from the directory; SQLite sees the
        # database moved and closes without checkpointing or deleting anything by name.
        conn.close()


def _take_lock(conn: sqlite3.Connection, target: Path) -> bool:
    """Lock ``target`` for good; False when it is SQLite by its header only (then replaced)."""
    try:
        conn.execute("PRAGMA locking_mode=EXCLUSIVE")
        # In exclusive locking mode the lock outlives the transaction; ROLLBACK leaves the
        # connection free to serve as the source of the pre-restore backup.
        conn.execute("BEGIN EXCLUSIVE")
        conn.execute("ROLLBACK")
    except sqlite3.OperationalError as exc:
        if is_busy(exc):
            raise LockedError(f"database in use: {target}") from None
        raise StigmemError(f"cannot lock {target}: {exc}") from None
    except sqlite3.DatabaseError:
        return False
    return True


def _keep_backup(target: Path, lock: _Lock) -> Path:
    backup_path = target.with_name(target.name + BACKUP_SUFFIX)
    tmp = _new_temp(backup_path)
    try:
        copied = False
        if lock.conn is not None:
            with contextlib.suppress(StigmemError):
                copy_from_connection(lock.conn, tmp, target)
                copied = True
        if not copied:
            # Not SQLite, or too broken for the backup API: keep the bytes as they are.
            _remove_sidecars(tmp)
            shutil.copyfile(target, tmp)
            fsync_file(tmp)
        os.chmod(tmp, stat.S_IMODE(target.stat().st_mode))
        os.replace(tmp, backup_path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        _remove_sidecars(tmp)
        raise
    return backup_path


def _settle(
    tmp: Path, fd: int, finish: Callable[[], None] | None, full_check: bool, known: bool
) -> str | None:
    """fsync and check the new file while ``finish`` (the caller's judgement of what it
    wrote) runs: the fsync waits on the disk and the check releases the GIL, so on two cores
    the three take about as long as the longest. ``known``: the bytes passed quick_check
    before, only the header is looked at. ``finish``'s exception wins; the check's problem
    is returned."""
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="settle") as pool:
        synced = pool.submit(os.fsync, fd)
        checked = pool.submit(_check_new, tmp, full_check, known)
        if finish is not None:
            finish()  # on failure the pool is still waited for before the file goes
        synced.result()
        return checked.result()


def _check_new(tmp: Path, full: bool, known: bool = False) -> str | None:
    # An empty file is a valid empty database to SQLite; as a restore it is a broken artifact.
    if not has_sqlite_header(tmp):
        return "not a SQLite database"
    if known:
        return None
    try:
        return integrity_problem(tmp, full)
    finally:
        _remove_sidecars(tmp)


def _summary(db: Path, tolerant: bool) -> tuple[int, str | None]:
    """Cursor count and node id; a forced corrupt database may have neither readable."""
    try:
        conn = sqlite3.connect(db)
        try:
            return replication_cursor_count_of(conn), node_meta_of(conn).node_id
        finally:
            conn.close()
    except sqlite3.Error as exc:
        if tolerant:
            return 0, None
        raise StigmemError(f"restored database is unreadable: {exc}") from None


def _resolve_target(target: Path) -> Path:
    if target.is_symlink():
        target = target.resolve()  # restore into the file the node opens, keep the link
    if target.is_dir():
        raise StigmemError(f"is a directory: {target}")
    if not target.parent.is_dir():
        raise StigmemError(f"no such directory: {target.parent}")
    return target


def _new_temp(beside: Path) -> Path:
    for attempt in range(100):
        tmp = beside.with_name(f".{beside.name}.{os.getpid()}.{attempt}.restore-tmp")
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            continue
        return tmp
    raise StigmemError(f"cannot create a temporary file beside {beside}")


def _remove_sidecars(db: Path) -> None:
    for suffix in SIDECARS:
        db.with_name(db.name + suffix).unlink(missing_ok=True)
