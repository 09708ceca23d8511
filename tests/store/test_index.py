"""The chunk index: which pack holds which chunk, loaded from index objects into SQLite."""

from __future__ import annotations

import contextlib
import hashlib
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import zstandard

from snapshot.errors import StoreError
from store import index
from store.index import ChunkIndex, Placed


def key(n: int) -> bytes:
    return hashlib.sha256(str(n).encode()).digest()


def index_object(entries: list[tuple[int, str, int]]) -> bytes:
    """An index object holding chunk ``n`` at (pack, frame offset) for each entry."""
    source = ChunkIndex()
    for n, pack, frame_offset in entries:
        source.add(key(n), source.pack_number(pack), frame_offset, 100, 0, 10)
    _, data = index.encode(source, range(len(source)))
    source.close()
    return bytes(data)


def test_loading_keeps_the_first_location_and_dense_positions() -> None:
    chunks = ChunkIndex()
    chunks.load(index_object([(1, "aa" * 32, 0), (2, "aa" * 32, 100)]), "first")
    # The second object names chunk 2 again, elsewhere: the first location stays.
    chunks.load(index_object([(2, "bb" * 32, 0), (3, "bb" * 32, 100), (3, "bb" * 32, 5)]), "x")
    assert len(chunks) == 3
    assert {chunks.key(p) for p in range(3)} == {key(1), key(2), key(3)}  # dense positions
    assert chunks.lookup(key(2)) == index.Location("aa" * 32, 100, 100, 0, 10)
    assert chunks.lookup(key(3)) == index.Location("bb" * 32, 100, 100, 0, 10)
    assert chunks.lookup(key(4)) is None
    assert chunks.locate_many([key(3), key(4), key(1)]) == {
        key(1): ("aa" * 32, 0, 100, 0, 10),
        key(3): ("bb" * 32, 100, 100, 0, 10),
    }


def test_loading_objects_that_overlap() -> None:
    count = 2005
    chunks = ChunkIndex()
    chunks.load(index_object([(n, "cc" * 32, n * 100) for n in range(count)]), "big")
    chunks.load(index_object([(n, "dd" * 32, 0) for n in range(count - 10, count + 10)]), "more")
    assert len(chunks) == count + 10
    assert chunks.lookup(key(count - 1)) == index.Location("cc" * 32, (count - 1) * 100, 100, 0, 10)
    assert chunks.lookup(key(count + 9)) == index.Location("dd" * 32, 0, 100, 0, 10)
    held = [row[0] for row in chunks.entries_between(0, len(chunks))]  # positions 0..len-1
    assert len(held) == len(chunks) and set(held) == {key(n) for n in range(count + 10)}


def entries(chunks: ChunkIndex) -> list[tuple[bytes, int, int, int, int, int]]:
    """Every entry by position, packs by name: what two indexes must agree on."""
    return [
        (row[0], chunks.packs[row[1]], *row[2:])  # type: ignore[misc]
        for row in chunks.entries_between(0, len(chunks))
    ]


def test_a_bulk_load_into_an_empty_index_is_the_same_as_loading_one_by_one() -> None:
    objects = [
        (index_object([(n, "cc" * 32, n * 100) for n in range(600)]), "a"),
        # Held twice across objects (the first location wins) and within one.
        (index_object([(2, "bb" * 32, 0), (700, "bb" * 32, 100), (700, "dd" * 32, 5)]), "b"),
        # Packs new and known (numbered out of its own order): merged through staging.
        (index_object([(n, "ee" * 32, n) for n in range(590, 610)] + [(800, "cc" * 32, 7)]), "c"),
    ]
    one_by_one, bulk = ChunkIndex(), ChunkIndex()
    for data, name in objects:
        one_by_one.load(data, name)
    bulk.load_many(objects)
    assert len(bulk) == len(one_by_one) == 612
    assert entries(bulk) == entries(one_by_one)
    assert bulk.lookup(key(2)) == index.Location("cc" * 32, 200, 100, 0, 10)
    assert bulk.lookup(key(700)) == index.Location("bb" * 32, 100, 100, 0, 10)
    assert bulk.lookup(key(605)) == index.Location("ee" * 32, 605, 100, 0, 10)
    assert bulk.lookup(key(800)) == index.Location("cc" * 32, 7, 100, 0, 10)
    # And what is loaded after goes on from there, as into any index.
    bulk.load_many([(index_object([(900, "ff" * 32, 0), (1, "ff" * 32, 0)]), "d")])
    assert len(bulk) == 613 and bulk.key(612) == key(900)


def test_a_malformed_index_object_is_named() -> None:
    good = index_object([(1, "aa" * 32, 0)])
    plain = bytearray(zstandard.ZstdDecompressor().decompressobj().decompress(good))
    plain[-20:-16] = (7).to_bytes(4, "big")  # the entry's pack number: past the one pack
    bad = zstandard.ZstdCompressor().compress(bytes(plain))
    for load in (lambda c: c.load(bad, "x"), lambda c: c.load_many([(bad, "x")])):
        with pytest.raises(StoreError, match="index object x names pack number 7 of 1"):
            load(ChunkIndex())
    with pytest.raises(StoreError, match="index object y is truncated"):
        ChunkIndex().load_many([(zstandard.ZstdCompressor().compress(bytes(plain[:-3])), "y")])


def test_cache_persists_what_was_committed(tmp_path: Path) -> None:
    cache = tmp_path / "index.db"
    chunks = ChunkIndex(cache)
    assert chunks.cached
    chunks.load(index_object([(1, "aa" * 32, 0)]), "one")
    chunks.mark_loaded(["one"])
    chunks.commit()
    chunks.load(index_object([(2, "aa" * 32, 0)]), "two")  # never committed: a crash
    chunks.close()
    again = ChunkIndex(cache)
    assert again.loaded_names() == {"one"} and len(again) == 1
    assert again.lookup(key(1)) is not None and again.lookup(key(2)) is None


# Caches other builds left in $STIGMEM_HOME, with layouts this one does not read.
OTHER_LAYOUTS = {
    # The layout first shipped (version 0): a UNIQUE hash with the table behind it.
    "first shipped": """CREATE TABLE e(pos INTEGER PRIMARY KEY, key BLOB NOT NULL UNIQUE,
                   pack INTEGER, fo INTEGER, fl INTEGER, off INTEGER, len INTEGER);
               CREATE TABLE packs(number INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
               CREATE TABLE loaded(name TEXT PRIMARY KEY);
               INSERT INTO loaded VALUES ('stale');""",
    # Version 1, as a build before plans leaves a cache it reopened after this one: its own
    # tables reloaded (chunks moved, packs renumbered), this build's plans left behind.
    "before plans": """CREATE TABLE e(pos INTEGER PRIMARY KEY, key BLOB NOT NULL,
                   pack INTEGER, fo INTEGER, fl INTEGER, off INTEGER, len INTEGER);
               CREATE INDEX e_key ON e(key, pack, fo, fl, off, len);
               CREATE TABLE packs(number INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
               CREATE TABLE loaded(name TEXT PRIMARY KEY);
               INSERT INTO loaded VALUES ('stale');
               CREATE TABLE plans(list BLOB PRIMARY KEY, lineage TEXT NOT NULL,
                   rows BLOB NOT NULL);
               INSERT INTO plans VALUES (x'00', 'node-a', x'00');
               PRAGMA user_version = 1;""",
    # Version 2, which also kept the last snapshot put per node (a table this layout drops).
    "with lineage": """CREATE TABLE e(pos INTEGER PRIMARY KEY, key BLOB NOT NULL,
                   pack INTEGER, fo INTEGER, fl INTEGER, off INTEGER, len INTEGER);
               CREATE INDEX e_key ON e(key, pack, fo, fl, off, len);
               CREATE TABLE packs(number INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
               CREATE TABLE loaded(name TEXT PRIMARY KEY);
               INSERT INTO loaded VALUES ('stale');
               CREATE TABLE plans(list BLOB PRIMARY KEY, snapshot TEXT NOT NULL,
                   rows BLOB NOT NULL);
               CREATE TABLE lineage(name TEXT PRIMARY KEY, snapshot TEXT NOT NULL);
               INSERT INTO lineage VALUES ('node-a', 'snapshot-1');
               PRAGMA user_version = 2;""",
    "newer": """CREATE TABLE e(key BLOB PRIMARY KEY, pos INTEGER NOT NULL UNIQUE,
                   pack INTEGER, fo INTEGER, fl INTEGER, off INTEGER, len INTEGER) WITHOUT ROWID;
               CREATE TABLE packs(number INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
               CREATE TABLE loaded(name TEXT PRIMARY KEY);
               INSERT INTO loaded VALUES ('stale');
               PRAGMA user_version = 99;""",
}


@pytest.mark.parametrize("layout", sorted(OTHER_LAYOUTS))
def test_cache_of_another_layout_is_dropped_and_refilled(tmp_path: Path, layout: str) -> None:
    cache = tmp_path / "index.db"
    with contextlib.closing(sqlite3.connect(cache)) as db, db:
        db.executescript(OTHER_LAYOUTS[layout])
    chunks = ChunkIndex(cache)
    assert chunks.cached and len(chunks) == 0 and chunks.loaded_names() == set()
    assert chunks._db.execute("SELECT count(*) FROM plans").fetchone() == (0,)
    chunks.load(index_object([(1, "aa" * 32, 0)]), "one")
    assert chunks.lookup(key(1)) is not None
    chunks.close()
    with contextlib.closing(sqlite3.connect(cache)) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (index.SCHEMA_VERSION,)
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master")}
        assert "lineage" not in tables


def test_reserved_chunks_count_as_present_and_are_placed_where_their_pack_put_them() -> None:
    chunks = ChunkIndex()
    chunks.add(key(1), chunks.pack_number("aa" * 32), 0, 100, 0, 10)
    first = chunks.reserve([key(2), key(3)])
    # Before their pack is written: present (a repeat is not stored twice), not locatable.
    assert first == 1 and len(chunks) == 3
    assert chunks.present([key(1), key(2), key(3), key(4)]) == {key(1), key(2), key(3)}
    assert chunks.find(key(3)) == 2
    assert chunks.lookup(key(2)) is None
    pack = chunks.pack_number("bb" * 32)
    chunks.place([(key(2), pack, 0, 50, 0, 10), (key(3), pack, 0, 50, 10, 10)])
    assert chunks.locate_many([key(3), key(2)]) == {
        key(2): ("bb" * 32, 0, 50, 0, 10),
        key(3): ("bb" * 32, 0, 50, 10, 10),
    }
    assert [chunks.key(p) for p in range(3)] == [key(1), key(2), key(3)]  # in reserved order
    _, data = index.encode(chunks, range(1, 3))
    again = ChunkIndex()
    again.load(bytes(data), "put")
    assert again.lookup(key(3)) == index.Location("bb" * 32, 0, 50, 10, 10)


def test_a_cleared_index_forgets_reserved_chunks() -> None:
    chunks = ChunkIndex()
    chunks.reserve([key(1)])
    chunks.clear()
    assert chunks.present([key(1)]) == set() and chunks.find(key(1)) == -1 and len(chunks) == 0


def test_no_index_object_is_merged_while_a_put_holds_reserved_entries() -> None:
    # A merge appends at the table's end, where the reserved positions would be taken.
    chunks = ChunkIndex()
    chunks.reserve([key(1)])
    for load in (
        lambda: chunks.load(index_object([(2, "aa" * 32, 0)]), "x"),
        lambda: chunks.load_many([(index_object([(2, "aa" * 32, 0)]), "x")]),
    ):
        with pytest.raises(RuntimeError, match="reserved"):
            load()
    assert len(chunks) == 1 and chunks.find(key(2)) == -1


def placed(tmp_path: Path, count: int) -> ChunkIndex:
    """A cached index of ``count`` chunks spread over two packs."""
    chunks = ChunkIndex(tmp_path / "index.db")
    packs = [chunks.pack_number("aa" * 32), chunks.pack_number("bb" * 32)]
    for n in range(count):
        chunks.add(key(n), packs[n % 2], 1000 * n, 100, 0, 10)
    return chunks


def chunk_list(numbers: list[int]) -> bytes:
    return b"".join(key(n) for n in numbers)


def read_through(chunks: ChunkIndex, snapshot: str, blobs: list[bytes]) -> list[list[Placed]]:
    """A whole read of ``snapshot`` whose digest came out right: its plans are kept."""
    rows = [chunks.locate_in_pack_order(blob, staging=snapshot) for blob in blobs]
    chunks.keep_plans(snapshot)
    return rows


def test_plans_a_read_kept_give_the_rows_a_lookup_gives_until_another_snapshot_is_read(
    tmp_path: Path,
) -> None:
    chunks = placed(tmp_path, 12)
    day1 = [chunk_list([0, 1, 2, 3]), chunk_list([4, 5, 6, 7])]
    looked_up = read_through(chunks, "day1", day1)
    assert looked_up == [chunks._locate(blob) for blob in day1]
    chunks.close()
    chunks = ChunkIndex(tmp_path / "index.db")  # the next command
    assert [chunks._kept_plan(blob) for blob in day1] == looked_up

    # A read of another snapshot: the list both share stays, the other goes.
    day2 = [chunk_list([0, 1, 2, 3]), chunk_list([4, 5, 9, 7])]
    read_through(chunks, "day2", day2)
    assert chunks._kept_plan(day1[0]) == looked_up[0]
    assert chunks._kept_plan(day1[1]) is None
    assert chunks._kept_plan(day2[1]) == chunks._locate(day2[1])


def test_plans_of_a_read_not_found_right_are_not_kept(tmp_path: Path) -> None:
    chunks = placed(tmp_path, 8)
    kept = chunk_list([0, 1])
    read_through(chunks, "day1", [kept])
    staged = chunk_list([2, 3])
    chunks.locate_in_pack_order(staged, staging="day2")
    chunks.drop_plans()  # the read failed, or its digest differed
    chunks.commit()
    assert chunks._kept_plan(staged) is None and chunks._kept_plan(kept) is None

    read_through(chunks, "day1", [kept])
    chunks.locate_in_pack_order(staged, staging="day2")
    chunks.close()  # the command ended before the digest was known: nothing staged stays
    chunks = ChunkIndex(tmp_path / "index.db")
    assert chunks._kept_plan(staged) is None
    assert chunks._kept_plan(kept) is not None


def test_plans_go_when_the_index_changes_under_them(tmp_path: Path) -> None:
    chunks = placed(tmp_path, 8)
    blob = chunk_list([0, 1, 2, 3])
    read_through(chunks, "day1", [blob])
    # gc moved a chunk (repack): the kept rows name its old place.
    position = chunks.find(key(2))
    chunks.set_raw(position, 0, 5, 100, 0, 10)
    assert chunks._kept_plan(blob) is None
    assert (2, 0, 5, 100, 0, 10) in chunks.locate_in_pack_order(blob)

    read_through(chunks, "day1", [blob])
    chunks.set_raw(position, 1, 7, 100, 0, 10)  # a later move drops the plans kept since
    assert chunks._kept_plan(blob) is None

    read_through(chunks, "day1", [blob])
    chunks.clear()  # the store's index objects were replaced
    assert chunks._kept_plan(blob) is None


@pytest.mark.parametrize("failure", ["disk full", "transaction lost"])
def test_keeping_plans_is_best_effort(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: str
) -> None:
    chunks = placed(tmp_path, 8)
    chunks.commit()
    kept = chunk_list([0, 1])
    read_through(chunks, "day1", [kept])
    real = chunks._db

    class Failing:
        """The cache connection, failing the plans' writes as a full disk does."""

        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

        def execute(self, sql: str, *args: Any) -> Any:
            if "plans" in sql and not sql.startswith("SELECT"):
                if failure == "transaction lost":
                    real.execute("ROLLBACK")  # what SQLite does on SQLITE_FULL
                raise sqlite3.OperationalError("database or disk is full")
            return real.execute(sql, *args)

    monkeypatch.setattr(chunks, "_db", Failing())
    rows = read_through(chunks, "day2", [chunk_list([2, 3])])  # no exception: a read stands
    monkeypatch.undo()
    assert rows == [chunks._locate(chunk_list([2, 3]))]
    # Nothing of the failed attempt is kept; what was kept before is as it was, and the
    # cache takes the next command's work.
    assert chunks._kept_plan(kept) is not None
    assert chunks._kept_plan(chunk_list([2, 3])) is None
    chunks.commit()
    chunks.close()
    again = ChunkIndex(tmp_path / "index.db")
    assert again._kept_plan(kept) is not None


def test_only_whole_plans_in_a_cache_are_kept_and_a_damaged_one_is_ignored(
    tmp_path: Path,
) -> None:
    private = ChunkIndex()
    private.add(key(0), private.pack_number("aa" * 32), 0, 100, 0, 10)
    read_through(private, "day1", [chunk_list([0])])
    assert private._kept_plan(chunk_list([0])) is None  # nothing kept outside a cache

    chunks = placed(tmp_path, 4)
    with_a_stranger = chunk_list([0, 1, 99])  # chunk 99 is in no index
    read_through(chunks, "day1", [with_a_stranger])
    assert chunks._kept_plan(with_a_stranger) is None

    blob = chunk_list([0, 1, 2])
    read_through(chunks, "day1", [blob])
    chunks._db.execute("UPDATE plans SET rows = substr(rows, 1, 30)")  # a torn row
    assert chunks._kept_plan(blob) is None
    assert chunks.locate_in_pack_order(blob) == chunks._locate(blob)
