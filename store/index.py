"""Which pack holds which chunk: index objects and their compact in-memory form.

An index object (``index/<sha256 of the object>``) is zstd-compressed binary::

    b"stgmidx1"  u32 pack count  pack count x 32-byte raw pack hash
    entries: 32-byte chunk hash, u32 pack number (into the list above),
             u32 frame offset, u32 frame length, u32 offset in frame, u32 length

(all integers big-endian). A put writes at most one, for the chunks it added; gc and
``rebuild_index`` replace them all by one. Everything in an index can be rebuilt from the
pack trailers (``packs.read_trailer``).

Loaded, the index is ``ChunkIndex``: a temporary SQLite database, so a store of millions of
pages costs a bounded page cache, not memory per chunk.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import logging
import sqlite3
import struct
import sys
from array import array
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import zstandard

from snapshot.errors import StoreError
from store import documents, limits

MAGIC = b"stgmidx1"
_ENTRY = struct.Struct(">32sIIIII")
CACHE_KIB = 4 * 1024  # the index b-trees beyond this are read from the OS page cache
QUERY_BATCH = 500  # bound parameters per query: far below every SQLite's limit
_CELL = "I"  # kept plan rows: unsigned 32-bit integers, as index objects hold them


# (n-th hash of a chunk list, pack number, frame offset, frame length, offset, length)
Placed = tuple[int, int, int, int, int, int]


@dataclass(frozen=True)
class Location:
    pack: str
    frame_offset: int
    frame_length: int
    offset: int
    length: int


class Locator(Protocol):
    """What a read asks an index: ``ChunkIndex`` (every entry, in SQLite) or
    ``snapshotindex.SnapshotIndex`` (one snapshot's entries, for one read)."""

    packs: list[str]

    def lookup(self, key: bytes) -> Location | None: ...

    def locate_in_pack_order(
        self, keys: bytes, use_kept: bool = True, staging: str | None = None
    ) -> list[Placed]: ...

    def windows(
        self, entry: dict[str, Any], fetch_list: Callable[[bytes], bytes]
    ) -> Iterator[list[bytes]]: ...


_KEY_INDEX = "CREATE INDEX IF NOT EXISTS e_key ON e(key, pack, fo, fl, off, len)"
# Where an index object's entries wait while they are merged (temporary: never in the cache).
_STAGING = (
    """CREATE TEMP TABLE IF NOT EXISTS staged(
        n INTEGER PRIMARY KEY, key BLOB NOT NULL,
        pack INTEGER, fo INTEGER, fl INTEGER, off INTEGER, len INTEGER)""",
    "CREATE TEMP TABLE IF NOT EXISTS staged_packs(local INTEGER PRIMARY KEY, number INTEGER)",
)
_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS e(
        pos INTEGER PRIMARY KEY, key BLOB NOT NULL,
        pack INTEGER, fo INTEGER, fl INTEGER, off INTEGER, len INTEGER)""",
    # The only index on the hash, and a covering one: a restore's lookups (hash -> location,
    # one per chunk, all CPU in SQLite) each read one b-tree instead of the hash index and
    # then the table. Not UNIQUE, so it needs no second index:
    # ``add``, ``reserve`` and the loads keep one entry per hash themselves.
    _KEY_INDEX,
    "CREATE TABLE IF NOT EXISTS packs(number INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE)",
    "CREATE TABLE IF NOT EXISTS loaded(name TEXT PRIMARY KEY)",
    # A chunk list's rows as locate_in_pack_order gives them (``list``: the list's hash),
    # kept from the last read of a whole snapshot that hashed right (see keep_plans). Index
    # content: gone with it (and the reason for layout version 2, below).
    """CREATE TABLE IF NOT EXISTS plans(
        list BLOB PRIMARY KEY, snapshot TEXT NOT NULL, rows BLOB NOT NULL)""",
)
# The cache's layout, as SQLite's user_version. A cache of another version is dropped and
# reloaded from the store's index objects (it is only ever a copy of them). The version also
# guards the kept plans: a build that does not know them would renumber packs and move chunks
# (gc, a reload) and leave the plans naming the old places; it resets the version to its own
# on opening, and this build then drops everything, plans included. The entries are a rowid
# table with a covering index on the hash: lookups by hash and scans by position both stay
# one b-tree seek.
SCHEMA_VERSION = 3
_CONTENT = ("e", "packs", "loaded", "plans")  # what mirrors the store's index objects
# "lineage" is dropped from caches of an older layout that kept it.
_TABLES = (*_CONTENT, "lineage")


def _ensure_schema(db: sqlite3.Connection) -> None:
    """Create the tables, or replace those of another layout version; inside the caller's
    transaction (committed at once when it replaced anything)."""
    (version,) = db.execute("PRAGMA user_version").fetchone()
    if version != SCHEMA_VERSION:
        for table in _TABLES:
            db.execute(f"DROP TABLE IF EXISTS {table}")
        db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
    for statement in _SCHEMA:
        db.execute(statement)
    if version != SCHEMA_VERSION:
        db.execute("COMMIT")
        db.execute("BEGIN IMMEDIATE")


class ChunkIndex:
    """Chunk hash -> location, in a SQLite database: private and temporary, or a local cache.

    SQLite keeps the entries in b-trees on disk with a bounded page cache, so memory stays
    flat however many chunks a store holds. Positions are dense, 0-based and stable: the
    n-th entry added has position n.

    With ``cache`` (a file under ``$STIGMEM_HOME/cache``) the loaded entries persist between
    commands, so a command loads only index objects it has not seen: loading a store's whole
    index costs about 8 us a chunk, seconds a command for months of daily snapshots. The
    cache is only ever a copy of the store's index objects; every change is one transaction,
    committed by :meth:`commit` once the index object it mirrors is in the store, so a crash
    leaves the cache as it was. A cache another process is writing is not waited for: the
    caller gets a private index instead.
    """

    def __init__(self, cache: Path | None = None) -> None:
        self.cached = False
        self._db = self._open(cache)
        self.packs: list[str] = [
            name for (name,) in self._db.execute("SELECT name FROM packs ORDER BY number")
        ]
        self._pack_numbers: dict[str, int] = {name: n for n, name in enumerate(self.packs)}
        # Hash -> position of the entries ``reserve`` handed out whose pack is still being
        # written: present to every lookup, in the table once ``place`` knows where they are.
        self._reserved: dict[bytes, int] = {}
        (last,) = self._db.execute("SELECT coalesce(max(pos), 0) FROM e").fetchone()
        self._count = int(last)
        self._plans_dropped = False
        # (largest chunk, largest compressed frame, largest decoded frame) an entry loaded
        # from an index object may name: the store's config sets them (Store.index).
        self.bounds: tuple[int, int, int] | None = None

    def _open(self, cache: Path | None) -> sqlite3.Connection:
        if cache is not None:
            try:
                cache.parent.mkdir(parents=True, exist_ok=True)
                db = sqlite3.connect(
                    cache, isolation_level=None, check_same_thread=False, timeout=0.05
                )
                db.executescript(
                    f"PRAGMA journal_mode=WAL; PRAGMA synchronous=OFF; "
                    f"PRAGMA cache_size=-{CACHE_KIB};"
                )
                db.execute("BEGIN IMMEDIATE")
                _ensure_schema(db)
                self.cached = True
                return db
            except (sqlite3.Error, OSError) as exc:
                # Busy in another process, or unwritable: this command loads the index.
                logging.getLogger("stigmem.cache").debug(
                    "cache: index copy %s unusable (%s); loading the index privately", cache, exc
                )
        # "" = a temporary on-disk database, deleted when closed; pages beyond the cache
        # spill to it instead of to memory.
        db = sqlite3.connect("", isolation_level=None, check_same_thread=False)
        db.executescript(
            f"PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; PRAGMA cache_size=-{CACHE_KIB};"
        )
        db.execute("BEGIN")
        _ensure_schema(db)
        return db

    def loaded_names(self) -> set[str]:
        return {name for (name,) in self._db.execute("SELECT name FROM loaded")}

    def mark_loaded(self, names: Iterable[str]) -> None:
        self._db.executemany("INSERT OR IGNORE INTO loaded(name) VALUES (?)", [(n,) for n in names])

    def clear(self) -> None:
        """Forget everything (the store's index objects were replaced, by gc)."""
        for table in _CONTENT:
            self._db.execute(f"DELETE FROM {table}")
        self.packs, self._pack_numbers, self._count = [], {}, 0
        self._reserved = {}

    def commit(self) -> None:
        """Make what was added durable in the cache; a no-op for a private index."""
        if self.cached:
            self._db.execute("COMMIT")
            self._db.execute("BEGIN IMMEDIATE")

    def __len__(self) -> int:
        return self._count

    def close(self) -> None:
        """Close, dropping whatever was not committed."""
        self._db.close()

    def pack_number(self, pack: str) -> int:
        number = self._pack_numbers.get(pack)
        if number is None:
            number = len(self.packs)
            self.packs.append(pack)
            self._pack_numbers[pack] = number
            self._db.execute("INSERT INTO packs(number, name) VALUES (?, ?)", (number, pack))
        return number

    def find(self, key: bytes) -> int:
        """Position of ``key``'s entry, or -1."""
        reserved = self._reserved.get(key)
        if reserved is not None:
            return reserved
        row = self._db.execute("SELECT pos FROM e WHERE key = ?", (key,)).fetchone()
        return -1 if row is None else int(row[0]) - 1

    def __contains__(self, key: object) -> bool:
        return isinstance(key, bytes) and self.find(key) >= 0

    def add(
        self, key: bytes, pack: int, frame_offset: int, frame_length: int, offset: int, length: int
    ) -> int:
        """Add ``key`` unless present (the first location wins); return its position."""
        position = self.find(key)
        if position >= 0:
            return position
        self._db.execute(
            "INSERT INTO e(pos, key, pack, fo, fl, off, len) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (self._count + 1, key, pack, frame_offset, frame_length, offset, length),
        )
        self._count += 1
        return self._count - 1

    def present(self, keys: list[bytes]) -> set[bytes]:
        """Which of ``keys`` the index holds: one query for a whole block of chunks."""
        found: set[bytes] = set()
        for start in range(0, len(keys), QUERY_BATCH):
            batch = keys[start : start + QUERY_BATCH]
            marks = ",".join("?" * len(batch))
            rows = self._db.execute(f"SELECT key FROM e WHERE key IN ({marks})", batch).fetchall()
            found.update(key for (key,) in rows)
        if self._reserved:
            found.update(key for key in keys if key in self._reserved)
        return found

    def reserve(self, keys: list[bytes]) -> int:
        """Positions for new chunks, known to be absent and distinct, whose pack is still being
        written; return the first one's position. They count as present at once (a chunk
        repeated within a put is stored once) and enter the table through :meth:`place`: one
        insert each, instead of a placeholder row updated later, which with the covering
        index would rewrite every entry twice."""
        first = self._count
        for n, key in enumerate(keys):
            self._reserved[key] = first + n
        self._count += len(keys)
        return first

    def place(self, rows: list[tuple[bytes, int, int, int, int, int]]) -> None:
        """(key, pack, frame offset, frame length, offset, length) of reserved entries, now
        that their pack is written."""
        reserved = self._reserved
        self._db.executemany(
            "INSERT INTO e(pos, key, pack, fo, fl, off, len) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(reserved.pop(key) + 1, key, *rest) for key, *rest in rows],
        )

    def key(self, position: int) -> bytes:
        (key,) = self._db.execute("SELECT key FROM e WHERE pos = ?", (position + 1,)).fetchone()
        return bytes(key)

    def raw(self, position: int) -> tuple[int, int, int, int, int]:
        row = self._db.execute(
            "SELECT pack, fo, fl, off, len FROM e WHERE pos = ?", (position + 1,)
        ).fetchone()
        return row[0], row[1], row[2], row[3], row[4]

    def raws(self) -> Iterator[tuple[int, int, int, int, int, int]]:
        """(position, pack, frame offset, frame length, offset, length) of every entry."""
        for pos, *rest in self._db.execute(
            "SELECT pos, pack, fo, fl, off, len FROM e ORDER BY pos"
        ):
            yield pos - 1, rest[0], rest[1], rest[2], rest[3], rest[4]

    def entries_between(
        self, start: int, end: int
    ) -> Iterator[tuple[bytes, int, int, int, int, int]]:
        """(key, pack, frame offset, frame length, offset, length) of positions [start, end)."""
        yield from self._db.execute(
            "SELECT key, pack, fo, fl, off, len FROM e WHERE pos > ? AND pos <= ? ORDER BY pos",
            (start, end),
        )

    def set_raw(
        self,
        position: int,
        pack: int,
        frame_offset: int,
        frame_length: int,
        offset: int,
        length: int,
    ) -> None:
        if not self._plans_dropped:
            self._db.execute("DELETE FROM plans")  # kept rows may name the old location
            self._plans_dropped = True
        self._db.execute(
            "UPDATE e SET pack = ?, fo = ?, fl = ?, off = ?, len = ? WHERE pos = ?",
            (pack, frame_offset, frame_length, offset, length, position + 1),
        )

    def location(self, position: int) -> Location:
        pack, frame_offset, frame_length, offset, length = self.raw(position)
        return Location(self.packs[pack], frame_offset, frame_length, offset, length)

    def lookup(self, key: bytes) -> Location | None:
        row = self._db.execute(
            "SELECT pack, fo, fl, off, len FROM e WHERE key = ?", (key,)
        ).fetchone()
        if row is None:
            return None
        return Location(self.packs[row[0]], row[1], row[2], row[3], row[4])

    def windows(
        self, entry: dict[str, Any], fetch_list: Callable[[bytes], bytes]
    ) -> Iterator[list[bytes]]:
        """An artifact's chunk ids, a chunk list at a time (``documents.chunk_windows``)."""
        return documents.chunk_windows(entry, fetch_list)

    def locate_many(self, keys: list[bytes]) -> dict[bytes, tuple[str, int, int, int, int]]:
        """Locations of those ``keys`` the index holds, as plain tuples ``(pack, frame offset,
        frame length, offset, length)``: one query per few hundred keys.

        The keys are looked up in sorted order: consecutive queries then walk the index
        b-tree's leaves in order instead of jumping across it, which keeps the page cache
        hot however large the index."""
        found: dict[bytes, tuple[str, int, int, int, int]] = {}
        packs = self.packs
        wanted = sorted(set(keys))
        for start in range(0, len(wanted), QUERY_BATCH):
            batch = wanted[start : start + QUERY_BATCH]
            marks = ",".join("?" * len(batch))
            for key, pack, fo, fl, off, length in self._db.execute(
                f"SELECT key, pack, fo, fl, off, len FROM e WHERE key IN ({marks})", batch
            ):
                found[key] = (packs[pack], fo, fl, off, length)
        return found

    def locate_in_pack_order(
        self, keys: bytes, use_kept: bool = True, staging: str | None = None
    ) -> list[Placed]:
        """Rows ``(n, pack number, frame offset, frame length, offset, length)`` for each
        n-th hash of ``keys`` (32-byte hashes back to back, as a chunk list holds them)
        that the index holds, in pack order (pack number, frame offset, offset, n): the
        order a read wants them in.

        A chunk list whose rows were kept (a plan: :meth:`keep_plans`) is not looked up
        again, unless ``use_kept`` is False (a read that must name a damaged chunk asks the
        index itself). ``staging``: the snapshot a whole read is rebuilding, whose plans
        are written (not committed) as it goes, for :meth:`keep_plans` to keep once the
        read hashed to its manifest's digest."""
        kept = self._kept_plan(keys) if use_kept else None
        if kept is not None:
            if staging is not None:
                self._stage_plan(keys, None, staging)
            return kept
        rows = self._locate(keys)
        if staging is not None and len(rows) == len(keys) // 32:
            self._stage_plan(keys, rows, staging)
        return rows

    def keep_plans(self, snapshot_id: str) -> None:
        """The read that staged plans for ``snapshot_id`` hashed to its manifest's digest:
        keep them, and drop every other (a host restores one snapshot of a node at a time,
        and a snapshot's plans take bytes in proportion to its chunks). Its next read makes
        none of its lookups, one per chunk. Best effort: a failure (a full disk, which has
        SQLite roll the whole transaction back) keeps nothing and fails nothing.

        Plans are kept by reads, not by ``create``: looking a snapshot's chunks up for its
        plans would cost every daily snapshot a pass of lookups it does not otherwise need,
        and a verify after create (the runbook) keeps them for the restore that may follow."""
        if not self.cached:
            return
        try:
            self._db.execute("DELETE FROM plans WHERE snapshot != ?", (snapshot_id,))
            self.commit()
        except sqlite3.Error:
            self._restart()
        self._plans_dropped = False

    def _stage_plan(self, keys: bytes, rows: list[Placed] | None, snapshot_id: str) -> None:
        """Write a chunk list's plan for ``snapshot_id`` (``rows``, or the kept one, which
        then changes hands), uncommitted: the caller's :meth:`keep_plans` or
        :meth:`drop_plans` settles it. Best effort, as keep_plans."""
        if not self.cached:
            return
        name = hashlib.sha256(keys).digest()
        try:
            if rows is None:
                self._db.execute(
                    "UPDATE plans SET snapshot = ? WHERE list = ?", (snapshot_id, name)
                )
                return
            cells = array(_CELL, itertools.chain.from_iterable(rows))
            if sys.byteorder == "big":
                cells.byteswap()  # kept little-endian, as a copied home may move hosts
            self._db.execute(
                "INSERT OR REPLACE INTO plans(list, snapshot, rows) VALUES (?, ?, ?)",
                (name, snapshot_id, cells.tobytes()),
            )
        except (sqlite3.Error, OverflowError):
            self._restart()

    def _restart(self) -> None:
        """Drop what the open transaction holds and open another (after a failure)."""
        with contextlib.suppress(sqlite3.Error):
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            self._db.execute("BEGIN IMMEDIATE")

    def drop_plans(self) -> None:
        """Forget every kept plan (a read through them did not hash to what it should)."""
        self._db.execute("DELETE FROM plans")

    def _kept_plan(self, keys: bytes) -> list[Placed] | None:
        found = self._db.execute(
            "SELECT rows FROM plans WHERE list = ?", (hashlib.sha256(keys).digest(),)
        ).fetchone()
        if found is None:
            return None
        cells = array(_CELL)
        cells.frombytes(found[0][: len(found[0]) // cells.itemsize * cells.itemsize])
        count = len(keys) // 32
        if len(cells) != 6 * count:
            return None  # not what _stage_plan wrote: look the chunks up
        if sys.byteorder == "big":
            cells.byteswap()
        positions = cells[0::6]
        if count and (
            max(positions) >= count
            or len(set(positions)) != count
            or max(cells[1::6]) >= len(self.packs)
        ):
            return None  # positions (each once) or packs this index does not have: damage
        column = iter(cells)
        return list(zip(column, column, column, column, column, column, strict=True))

    def _locate(self, keys: bytes) -> list[Placed]:
        """The lookup behind :meth:`locate_in_pack_order`, in one statement: SQLite splits
        the hashes itself, looks each up and sorts the rows, all while Python's GIL is free
        for the threads decoding the window before; Python gets back small integers only
        (one row per chunk, tens of thousands a restore)."""
        return self._db.execute(
            "WITH RECURSIVE k(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM k WHERE n + 1 < ?2) "
            "SELECT k.n, e.pack, e.fo, e.fl, e.off, e.len FROM k "
            "JOIN e ON e.key = substr(?1, 32 * k.n + 1, 32) "
            "ORDER BY e.pack, e.fo, e.off, k.n",
            (keys, len(keys) // 32),
        ).fetchall()

    def positions_of_packs(self, packs: set[str]) -> Iterator[int]:
        wanted = sorted(self._pack_numbers[p] for p in packs if p in self._pack_numbers)
        for start in range(0, len(wanted), 500):
            batch = wanted[start : start + 500]
            marks = ",".join("?" * len(batch))
            rows = self._db.execute(
                f"SELECT pos FROM e WHERE pack IN ({marks}) ORDER BY pos", batch
            ).fetchall()
            for (pos,) in rows:
                yield pos - 1

    def load(self, data: bytes, name: str) -> None:
        """Merge one index object's content: its entries whose hash the index does not hold
        yet, in their order (the first location of a chunk wins; positions stay dense)."""
        self._refuse_during_put()
        self._stage(*self._object(data, name), name)
        self._merge_staged(
            "WHERE s.n IN (SELECT min(n) FROM staged GROUP BY key) "
            "AND NOT EXISTS (SELECT 1 FROM e WHERE e.key = s.key)"
        )
        self._after_load()

    def load_many(self, objects: Iterable[tuple[bytes, str]]) -> None:
        """Merge index objects ``(data, name)``, in order, as :meth:`load` would.

        Into an empty index (the first command on a host, or after gc) in bulk: every entry
        appended with the hash index dropped, the index built once at the end (one sort in
        SQLite), then any hash held twice resolved. Entry block by entry block, every insert
        would also update the hash index, and a restore on a new host pays the load first."""
        self._refuse_during_put()
        if self._count:
            for data, name in objects:
                self.load(data, name)
            return
        db = self._db
        db.execute("DROP INDEX IF EXISTS e_key")
        try:
            for data, name in objects:
                records, numbers = self._object(data, name)
                first = numbers[0] if numbers else 0
                if numbers == list(range(first, first + len(numbers))):
                    # Its packs are new here, numbered in its own order (the usual case):
                    # straight into the table, pack numbers shifted by SQLite.
                    self._append(records, first, len(numbers), name)
                    continue
                self._stage(records, numbers, name)
                self._merge_staged()
        finally:
            db.execute(_KEY_INDEX)
        held_twice = db.execute("SELECT 1 FROM e GROUP BY key HAVING count(*) > 1 LIMIT 1")
        if held_twice.fetchone() is not None:
            self._keep_first_locations()
        self._after_load()

    def _object(self, data: bytes, name: str) -> tuple[memoryview, list[int]]:
        """An index object's records, and its packs' numbers in this index (new packs get
        theirs now)."""
        plain, count, body = parsed_object(data, name)
        start = len(MAGIC) + 4
        numbers = [
            self.pack_number(plain[start + 32 * i : start + 32 * i + 32].hex())
            for i in range(count)
        ]
        return memoryview(plain)[body:], numbers

    def _append(self, records: memoryview, first: int, count: int, name: str) -> None:
        """Records whose pack numbers are this index's less ``first``, appended as they are."""
        db = self._db
        (before,) = db.execute("SELECT coalesce(max(pos), 0) FROM e").fetchone()
        db.executemany(
            f"INSERT INTO e(key, pack, fo, fl, off, len) VALUES (?, ? + {first:d}, ?, ?, ?, ?)",
            _ENTRY.iter_unpack(records),
        )
        (beyond,) = db.execute("SELECT max(pack) FROM e WHERE pos > ?", (before,)).fetchone()
        if beyond is not None and beyond >= first + count:
            raise StoreError(f"index object {name} names pack number {beyond - first} of {count}")
        self._check_bounds(f"FROM e WHERE pos > {int(before):d}", name)

    def _stage(self, records: memoryview, numbers: list[int], name: str) -> None:
        """One index object's entries into the temporary table ``staged`` (in order, ``n``
        from 1), and its packs' numbers into ``staged_packs``. The records go from the
        decompressed object to SQLite without a line of Python per entry."""
        db = self._db
        for statement in _STAGING:
            db.execute(statement)
        db.execute("DELETE FROM staged")
        db.execute("DELETE FROM staged_packs")
        db.executemany("INSERT INTO staged_packs(local, number) VALUES (?, ?)", enumerate(numbers))
        db.executemany(
            "INSERT INTO staged(key, pack, fo, fl, off, len) VALUES (?, ?, ?, ?, ?, ?)",
            _ENTRY.iter_unpack(records),
        )
        (beyond,) = db.execute("SELECT max(pack) FROM staged").fetchone()
        if beyond is not None and beyond >= len(numbers):
            raise StoreError(f"index object {name} names pack number {beyond} of {len(numbers)}")
        self._check_bounds("FROM staged WHERE 1", name)

    def _check_bounds(self, rows: str, name: str) -> None:
        """Refuse an index object naming a chunk or frame larger than the store makes: a
        read allocates what its entries say (a chunk of 4 GiB, a window of thousands)."""
        if self.bounds is None:
            return
        chunk, frame, decoded = self.bounds
        found = self._db.execute(
            f"SELECT 1 {rows} AND (len < 1 OR len > ? OR fl < 1 OR fl > ? OR off < 0 "
            "OR off + len > ?) LIMIT 1",
            (chunk, frame, decoded),
        ).fetchone()
        if found is not None:
            raise StoreError(
                f"index object {name} names a chunk or frame larger than this store's "
                f"(chunks of at most {chunk} bytes, frames of {frame})"
            )

    def _merge_staged(self, where: str = "") -> None:
        """The staged entries (those ``where`` keeps) appended to the table, in order."""
        self._db.execute(
            "INSERT INTO e(key, pack, fo, fl, off, len) "
            "SELECT s.key, m.number, s.fo, s.fl, s.off, s.len FROM staged s "
            f"JOIN staged_packs m ON m.local = s.pack {where} ORDER BY s.n"
        )

    def _refuse_during_put(self) -> None:
        """Loads append at the table's end, where a put's reserved positions (not in the
        table until their pack is written) would be taken: no caller loads during a put."""
        if self._reserved:
            raise RuntimeError("index objects merged while a put holds reserved entries")

    def _after_load(self) -> None:
        self._db.execute("DROP TABLE IF EXISTS temp.staged")  # its pages go with it
        (self._count,) = self._db.execute("SELECT coalesce(max(pos), 0) FROM e").fetchone()

    def _keep_first_locations(self) -> None:
        """Drop every entry but the first of each hash and number the rest densely again, in
        the order they were added."""
        db = self._db
        db.execute(
            "CREATE TEMP TABLE kept AS SELECT key, pack, fo, fl, off, len FROM e "
            "WHERE pos IN (SELECT min(pos) FROM e GROUP BY key) ORDER BY pos"
        )
        db.execute("DELETE FROM e")
        # A table made by CREATE ... AS SELECT numbers its rows 1.. in the select's order.
        db.execute(
            "INSERT INTO e(pos, key, pack, fo, fl, off, len) "
            "SELECT rowid, key, pack, fo, fl, off, len FROM kept ORDER BY rowid"
        )
        db.execute("DROP TABLE temp.kept")


def parsed_object(data: bytes, name: str) -> tuple[bytearray, int, int]:
    """An index object's plain bytes, its number of packs and where its records start."""
    try:
        # Records are mostly hashes, which do not compress: a bomb is refused early.
        plain = limits.decompress(data, limits.max_plain(len(data)))
    except limits.TooLarge as exc:
        raise StoreError(f"index object {name} is corrupt: it {exc}") from None
    if not plain.startswith(MAGIC) or len(plain) < len(MAGIC) + 4:
        raise StoreError(f"index object {name} is not a stigmem index")
    (count,) = struct.unpack_from(">I", plain, len(MAGIC))
    body = len(MAGIC) + 4 + 32 * count
    if len(plain) < body or (len(plain) - body) % _ENTRY.size:
        raise StoreError(f"index object {name} is truncated")
    return plain, count, body


def encode(index: ChunkIndex, positions: Iterable[int]) -> tuple[str, bytearray]:
    """An index object holding the given entries of ``index``: (name, bytes).

    Entries are compressed as they are produced: a whole-store index is tens of MiB of
    records, and holding them plain next to their compressed form would dominate memory.
    """
    if isinstance(positions, range) and positions.step == 1:
        # A put's new entries are one run of positions: one query, not two per entry.
        run = positions

        def rows() -> Iterator[tuple[bytes, int, int, int, int, int]]:
            return index.entries_between(run.start, run.stop)
    else:
        chosen = array("I", positions)

        def rows() -> Iterator[tuple[bytes, int, int, int, int, int]]:
            return ((index.key(p), *index.raw(p)) for p in chosen)

    local: dict[int, int] = {}
    packs: list[str] = []
    for row in rows():  # first pass: which packs, numbered locally
        if row[1] not in local:
            local[row[1]] = len(packs)
            packs.append(index.packs[row[1]])
    compressor = zstandard.ZstdCompressor(level=3).compressobj()
    out = bytearray(compressor.compress(MAGIC + struct.pack(">I", len(packs))))
    out += compressor.compress(b"".join(bytes.fromhex(p) for p in packs))
    piece = bytearray()
    for key, pack, *rest in rows():
        piece += _ENTRY.pack(key, local[pack], *rest)
        if len(piece) >= 1 << 20:
            out += compressor.compress(bytes(piece))
            piece = bytearray()
    out += compressor.compress(bytes(piece))
    out += compressor.flush()
    # Handed over as the bytearray it is: a copy would double the peak for a large index.
    return hashlib.sha256(out).hexdigest(), out
