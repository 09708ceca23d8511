"""Putting, deduplicating, reading back and verifying snapshots of real SQLite databases."""

from __future__ import annotations

import io
import json
import random
import sqlite3
import threading
from array import array
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from snapshot.errors import AmbiguousError, StoreError, VerificationError
from store import layout, maintenance
from store.localcache import LocalCache
from store.reports import PutResult
from store.repository import Store
from tests.store.conftest import (
    CURSOR,
    CURSOR_BYTES,
    DB,
    Location,
    change_rows,
    framed_settings,
    make_db,
    make_location,
    manifest,
    sid,
    small_settings,
)


def put(store: Store, label: str, db: Path) -> tuple[str, int]:
    snapshot_id = sid(label)
    result = store.put_snapshot(snapshot_id, manifest(label), {DB: db, CURSOR: CURSOR_BYTES})
    return snapshot_id, result.packs_written


def read(store: Store, snapshot_id: str, member: str = DB) -> bytes:
    out = io.BytesIO()
    store.read_artifact(snapshot_id, member, out)
    return out.getvalue()


def store_windows(store: Store, snapshot_id: str) -> list[list[bytes]]:
    """The chunk names of the database, a chunk list at a time."""
    from store.reader import ChunkSource

    entry = store.load_document(snapshot_id)["artifacts"][DB]
    return list(ChunkSource(store.backend, store.index(), snapshot_id).windows(entry))


def read_unchecked(store: Store, snapshot_id: str) -> bytes:
    out = io.BytesIO()
    store.read_artifact(snapshot_id, DB, out, check_chunks=False)
    return out.getvalue()


def packs(store: Store) -> set[str]:
    return {e.path for e in store.backend.list(layout.PACKS)}


def flip_a_byte(store: Store) -> str:
    """Flip one bit inside the frame of a page a third of the way into the first pack (not
    in its dictionary, nor in a chunk list); its path."""
    from store import packs as pack_format

    victim = sorted(packs(store))[0]
    data = bytearray(store.backend.read(victim))
    entries = pack_format.entries_of(bytes(data))
    frames = sorted({(e.frame_offset, e.frame_length) for e in entries if e.length == 4096})
    offset, length = frames[len(frames) // 3]
    data[offset + length // 2] ^= 0x40
    store.backend.write(victim, bytes(data))
    return victim


def misplace_a_page(store: Store, last: bool = False) -> bytes:
    """Damage the index: one page's entry points at another page of its pack (its frame
    neighbour when frames hold several). Every frame still decodes (their zstd checksums
    hold); only hashing finds the page. Returns its key: of the first such page, or of the
    last with ``last``."""
    first, order = ("max(pos) DESC", "pos DESC") if last else ("min(pos)", "pos")
    index = store.index()
    (key, *here), (_, *there) = index._db.execute(
        "SELECT key, fo, fl, off FROM e WHERE len = 4096 AND pack = "
        "(SELECT pack FROM e WHERE len = 4096 GROUP BY pack HAVING count(*) > 1 "
        f"ORDER BY {first} LIMIT 1) ORDER BY {order} LIMIT 2"
    ).fetchall()
    assert here != there
    index._db.execute("UPDATE e SET fo = ?, fl = ?, off = ? WHERE key = ?", (*there, key))
    return bytes(key)


def frames_decoded_by_reads(monkeypatch: pytest.MonkeyPatch) -> list[tuple[bytes, int]]:
    """Filled, as whole artifacts are read, with each frame of pages decoded (its bytes and
    its decoded size); chunk lists, read apart, are left out."""
    from store import packs as pack_format

    decoded: list[tuple[bytes, int]] = []
    real = pack_format.FrameDecoder.decompress_many

    def counting(
        self: pack_format.FrameDecoder,
        pack: str,
        data: bytes | memoryview,
        frames: list[tuple[int, int]],
    ) -> Iterator[pack_format.Plain | pack_format.PackError]:
        plains = list(real(self, pack, data, frames))
        if threading.current_thread().name.startswith(("window", "rebuild")):
            for (offset, length), plain in zip(frames, plains, strict=True):
                size = 0 if isinstance(plain, Exception) else len(plain)
                decoded.append((bytes(data[offset : offset + length]), size))
        return iter(plains)

    monkeypatch.setattr(pack_format.FrameDecoder, "decompress_many", counting)
    return decoded


def new_store(location: Location, framed: bool) -> Store:
    """A store of frames of several pages (made before dictionaries), or of a frame per page."""
    settings = framed_settings() if framed else small_settings()
    return Store.init(location.url, location.options, cache=location.cache, settings=settings)


@pytest.fixture(params=["memory", "local", "memory+cache"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> Location:
    """A memory store (through fsspec, as every remote store is reached), a local one (plain
    files), and a memory store with a host cache. What only S3 shows, its listings, ranged
    reads and errors, runs in tests/store/test_backend.py, test_gc_sync.py and the CLI
    suites' S3 scenarios."""
    return make_location(request.param, tmp_path, request)


@pytest.fixture
def store(location: Location) -> Store:
    return Store.init(
        location.url, location.options, cache=location.cache, settings=small_settings()
    )


def test_roundtrip_of_a_real_database(store: Store, tmp_path: Path) -> None:
    db = make_db(tmp_path / "node.db", 3000)
    progress: list[tuple[int, int]] = []
    result = store.put_snapshot(
        sid("a"),
        manifest("a"),
        {DB: db, CURSOR: CURSOR_BYTES},
        progress=lambda done, total: progress.append((done, total)),
    )

    assert read(store, sid("a")) == db.read_bytes()
    assert read(store, sid("a"), CURSOR) == CURSOR_BYTES
    assert progress[-1] == (db.stat().st_size + len(CURSOR_BYTES),) * 2
    assert result.new_chunks >= db.stat().st_size // 4096
    assert result.objects_written == result.packs_written + 2
    doc = json.loads(store.backend.read(f"snapshots/{sid('a')}.json"))
    assert doc["manifest"] == manifest("a")
    assert doc["artifacts"][DB]["size"] == db.stat().st_size
    assert doc["artifacts"][DB]["chunk_lists"] is True
    assert doc["artifacts"][CURSOR] == {
        "size": len(CURSOR_BYTES),
        "chunk_lists": False,
        "chunks": [sid_bytes(CURSOR_BYTES)],
    }


def sid_bytes(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def test_unchanged_database_adds_one_document_only(store: Store, tmp_path: Path) -> None:
    db = make_db(tmp_path / "node.db", 2000)
    put(store, "day1", db)
    before = {e.path for e in store.backend.list()}

    result = store.put_snapshot(sid("day2"), manifest("day2"), {DB: db, CURSOR: CURSOR_BYTES})

    added = {e.path for e in store.backend.list()} - before
    assert added == {f"snapshots/{sid('day2')}.json"}
    assert (result.new_chunks, result.packs_written, result.objects_written) == (0, 0, 1)
    assert read(store, sid("day2")) == db.read_bytes()


def test_same_snapshot_twice_adds_nothing(store: Store, tmp_path: Path) -> None:
    db = make_db(tmp_path / "node.db", 500)
    put(store, "once", db)
    before = {e.path for e in store.backend.list()}
    again = store.put_snapshot(sid("once"), manifest("once"), {DB: db})
    assert again.already_present and again.objects_written == 0
    assert {e.path for e in store.backend.list()} == before


def test_changed_pages_are_stored_once(store: Store, tmp_path: Path) -> None:
    db = make_db(tmp_path / "node.db", 4000)
    put(store, "day1", db)
    pages = db.stat().st_size // 4096
    change_rows(db, [10, 2000, 3900], "rewritten")

    result = store.put_snapshot(sid("day2"), manifest("day2"), {DB: db, CURSOR: CURSOR_BYTES})

    # The touched leaf pages, the header page, and the chunk lists that name them.
    assert 0 < result.new_chunks < 12
    assert result.new_chunks < pages // 10
    assert read(store, sid("day2")) == db.read_bytes()
    assert maintenance.stats(store).snapshots == 2


def put_as(store: Store, label: str, db: Path) -> PutResult:
    """A put as ``snapshot create`` makes it: artifacts first, the document once signed."""
    with store.transaction() as tx:
        tx.add_artifacts({DB: db, CURSOR: CURSOR_BYTES})
        return tx.commit(sid(label), manifest(label))


def put_signed(store: Store, label: str, db: Path) -> str:
    """``put_as``, the manifest signing the artifacts' real digests (for a full check)."""
    contents: dict[str, Path | bytes] = {DB: db, CURSOR: CURSOR_BYTES}
    with store.transaction() as tx:
        tx.add_artifacts(contents)
        tx.commit(sid(label, contents=contents), manifest(label, contents=contents))
    return sid(label, contents=contents)


def test_a_put_after_its_predecessors_were_pruned_stores_what_it_needs(
    store: Store, tmp_path: Path
) -> None:
    db = make_db(tmp_path / "node.db", 4000)
    put_as(store, "day1", db)
    change_rows(db, [10, 2000, 3900], "rewritten")
    second = put_as(store, "day2", db)
    assert 0 < second.new_chunks < 12
    assert read(store, sid("day2")) == db.read_bytes()

    # Prune and gc took the last snapshot and its data away: nothing may be assumed stored.
    for label in ("day1", "day2"):
        store.delete_snapshot(sid(label))
    maintenance.gc(store, grace_seconds=0, max_unused=0.0)
    assert packs(store) == set()
    change_rows(db, [500], "again")
    day3 = put_signed(store, "day3", db)
    assert read(store, day3) == db.read_bytes()
    assert maintenance.check(store, 1.0).problems == []


def lookups_by_reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Filled with the number of chunks of each window a read looked up in the index."""
    from store.index import ChunkIndex

    counted: list[int] = []
    real = ChunkIndex._locate

    def counting(self: ChunkIndex, keys: bytes) -> list[Any]:
        counted.append(len(keys) // 32)
        return real(self, keys)

    monkeypatch.setattr(ChunkIndex, "_locate", counting)
    return counted


def read_through(store: Store, snapshot_id: str) -> bytes:
    """A whole read as a restore makes it: plans staged, kept once the bytes are right."""
    out = io.BytesIO()
    store.read_artifact(snapshot_id, DB, out, check_chunks=False, stage_plans=True)
    store.keep_plans(snapshot_id)
    return out.getvalue()


def test_a_second_read_of_a_snapshot_makes_no_lookup_until_gc_moves_its_chunks(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.cache = LocalCache(tmp_path / "cache")
    db = make_db(tmp_path / "node.db", 4000)
    put_as(store, "day1", db)
    day1 = db.read_bytes()
    change_rows(db, [10, 3900], "rewritten")
    put_as(store, "day2", db)
    store.forget_index()  # as the next command finds the cache
    windows = len(store_windows(store, sid("day2")))

    looked_up = lookups_by_reads(monkeypatch)
    assert read_through(store, sid("day2")) == db.read_bytes()
    assert len(looked_up) == windows
    store.forget_index()
    looked_up.clear()
    assert read_through(store, sid("day2")) == db.read_bytes()
    assert looked_up == []
    # Another snapshot's read: its changed windows are looked up, the shared ones are not.
    assert read_through(store, sid("day1")) == day1
    assert 0 < len(looked_up) < windows

    # Prune and gc: day1's old pages go, and their packs' live pages move to new packs.
    before = packs(store)
    store.delete_snapshot(sid("day1"))
    maintenance.gc(store, grace_seconds=0, max_unused=0.0)
    assert packs(store) != before
    store.forget_index()
    looked_up.clear()
    assert read_through(store, sid("day2")) == db.read_bytes()
    assert len(looked_up) == windows


def test_a_read_that_names_damage_asks_the_index_not_the_kept_plans(
    store: Store, tmp_path: Path
) -> None:
    store.cache = LocalCache(tmp_path / "cache")
    db = make_db(tmp_path / "node.db", 4000)
    put_as(store, "day1", db)
    assert read_through(store, sid("day1")) == db.read_bytes()
    index = store.index()
    # A kept plan gone wrong: its first two pages swapped (both are pages, both decode).
    name, rows = index._db.execute("SELECT list, rows FROM plans LIMIT 1").fetchone()
    cells = array("I", rows)
    cells[1:6], cells[7:12] = cells[7:12], cells[1:6]
    index._db.execute("UPDATE plans SET rows = ? WHERE list = ?", (cells.tobytes(), name))
    assert read_unchecked(store, sid("day1")) != db.read_bytes()  # the plan is used
    assert read(store, sid("day1")) == db.read_bytes()  # a checked read looks chunks up


def test_an_index_entry_of_no_length_is_damage_not_a_crash(store: Store, tmp_path: Path) -> None:
    db = make_db(tmp_path / "node.db", 2000)
    put(store, "a", db)
    index = store.index()
    index._db.execute("UPDATE e SET len = 0 WHERE pos = (SELECT min(pos) FROM e WHERE len = 4096)")
    with pytest.raises(VerificationError) as err:
        read_unchecked(store, sid("a"))
    assert err.value.outcome == "checksum_error"


def test_a_gc_between_two_artifact_reads_of_a_snapshot_does_not_fail_the_second(
    location: Location, tmp_path: Path
) -> None:
    """Reads take no lock: a restore reads the cursor, a prune elsewhere repacks, then the
    restore reads the database; its read must see the index objects gc wrote."""
    store = Store.init(
        location.url, location.options, cache=location.cache, settings=small_settings()
    )
    db = make_db(tmp_path / "node.db", 4000)
    put(store, "day1", db)
    change_rows(db, list(range(1, 4000, 3)), "rewritten")
    put(store, "day2", db)
    reader = Store.open(location.url, location.options, cache=location.cache)
    assert read(reader, sid("day2"), CURSOR) == CURSOR_BYTES
    other = Store.open(location.url, location.options, cache=location.cache)
    other.delete_snapshot(sid("day1"))
    assert maintenance.gc(other, grace_seconds=0, max_unused=0.0).packs_deleted > 0
    assert read_unchecked(reader, sid("day2")) == db.read_bytes()


def test_stats_count_logical_and_stored_bytes(store: Store, tmp_path: Path) -> None:
    db = make_db(tmp_path / "node.db", 2000)
    put(store, "a", db)
    put(store, "b", db)
    stats = maintenance.stats(store)
    assert stats.snapshots == 2
    assert stats.logical_bytes == 2 * (db.stat().st_size + len(CURSOR_BYTES))
    assert stats.packs == len(packs(store)) and stats.chunks > 0
    assert stats.dedup_ratio == round(stats.logical_bytes / stats.stored_bytes, 3) > 2


def test_flipped_byte_in_a_pack_is_a_checksum_error(store: Store, tmp_path: Path) -> None:
    db = make_db(tmp_path / "node.db", 2000)
    put(store, "a", db)
    victim = flip_a_byte(store)

    with pytest.raises(VerificationError) as err:
        read(store, sid("a"))
    assert err.value.outcome == "checksum_error" and err.value.snapshot_id == sid("a")
    assert sid("a") in err.value.detail and victim.rsplit("/", 1)[1] in err.value.detail

    report = maintenance.check(store, read_data_fraction=1.0)
    assert not report.ok and report.packs_read == report.packs
    assert any(
        p.snapshot_id == sid("a") and victim.rsplit("/", 1)[1] in p.detail for p in report.problems
    )


def test_deleted_pack_is_missing_data(store: Store, tmp_path: Path) -> None:
    db = make_db(tmp_path / "node.db", 2000)
    put(store, "a", db)
    victim = sorted(packs(store))[-1]
    store.backend.delete([victim])

    with pytest.raises(VerificationError) as err:
        read(store, sid("a"))
    assert err.value.outcome == "missing_data"
    assert victim.rsplit("/", 1)[1] in err.value.detail and sid("a") in err.value.detail
    problems = maintenance.check(store).problems
    assert problems and {p.snapshot_id for p in problems} == {sid("a")}
    assert any("missing" in p.detail and victim.rsplit("/", 1)[1] in p.detail for p in problems)


def test_check_finds_the_same_with_or_without_locations_kept_between_snapshots(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from store import maintenance

    db = make_db(tmp_path / "node.db", 3000)
    put(store, "a", db)
    first = packs(store)
    with sqlite3.connect(db) as con:
        con.execute("UPDATE memories SET body = 'changed' WHERE id % 50 = 0")
    con.close()
    put(store, "b", db)
    store.backend.delete(sorted(first))  # pages b shares with a go too

    kept = maintenance.check(store).problems  # b's lookups start from a's locations
    monkeypatch.setattr(maintenance, "HINT_CHUNKS", 10)  # most looked up again
    again = maintenance.check(store).problems
    assert {p.snapshot_id for p in kept} == {sid("a"), sid("b")}
    assert sorted((p.snapshot_id, p.detail) for p in again) == sorted(
        (p.snapshot_id, p.detail) for p in kept
    )


def test_check_reads_a_subset_of_packs(store: Store, tmp_path: Path) -> None:
    put(store, "a", make_db(tmp_path / "node.db", 3000))
    total = len(packs(store))
    assert total >= 3
    quick = maintenance.check(store)
    assert quick.ok and quick.packs_read == 0 and quick.snapshots == 1
    half = maintenance.check(store, read_data_fraction=0.5)
    assert half.ok and half.packs_read == (total + 1) // 2


def test_prefix_resolution(store: Store) -> None:
    ids = ["abcdef" + "0" * 58, "abcdef" + "1" * 58, "123456" + "f" * 58]
    for snapshot_id in ids:
        store.put_snapshot(snapshot_id, {"version": 1}, {CURSOR: CURSOR_BYTES})

    assert store.snapshot_ids() == sorted(ids)
    assert store.resolve("123456") == ids[2]
    assert store.resolve("ABCDEF1") == ids[1]
    with pytest.raises(
        AmbiguousError, match=f"ambiguous prefix abcdef: matches {ids[0]}, {ids[1]}"
    ):
        store.resolve("abcdef")
    with pytest.raises(StoreError, match=f"no snapshot matches 999999 in {store.url}"):
        store.resolve("999999")
    with pytest.raises(StoreError, match="at least 6 hex digits"):
        store.resolve("abcde")
    with pytest.raises(StoreError, match="at least 6 hex digits"):
        store.resolve("zzzzzzz")


def test_delete_snapshot_removes_the_document_only(store: Store, tmp_path: Path) -> None:
    put(store, "a", make_db(tmp_path / "node.db", 500))
    before = packs(store)
    store.delete_snapshot(sid("a"))
    assert not store.has_snapshot(sid("a")) and packs(store) == before
    with pytest.raises(StoreError, match=sid("a")):
        store.load_document(sid("a"))
    with pytest.raises(StoreError, match=sid("a")):
        store.delete_snapshot(sid("a"))


def test_index_rebuilt_from_packs_alone(store: Store, tmp_path: Path) -> None:
    db = make_db(tmp_path / "node.db", 2000)
    put(store, "a", db)
    store.backend.delete([e.path for e in store.backend.list(layout.INDEX)])
    store.forget_index()
    with pytest.raises(VerificationError) as err:
        read(store, sid("a"))
    assert err.value.outcome == "missing_data"

    assert maintenance.rebuild_index(store) == maintenance.stats(store).chunks > 0
    assert len(store.backend.list(layout.INDEX)) == 1
    assert read(store, sid("a")) == db.read_bytes()


def test_a_read_of_many_windows_is_the_database_and_decodes_each_frame_once(
    location: Location, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:

    # A store of frames of several pages (made before dictionaries) and 64-hash chunk lists:
    # a database of many windows, whose frames (16 KiB) hold pages of two neighbouring
    # windows at their edges. Those are carried over, not decoded twice.
    store = Store.init(
        location.url, location.options, cache=location.cache, settings=framed_settings()
    )
    db = make_db(tmp_path / "node.db", 6000)
    put(store, "a", db)
    pages = db.stat().st_size // 4096
    assert pages > 5 * 64  # several windows
    seen = frames_decoded_by_reads(monkeypatch)
    assert read(store, sid("a")) == db.read_bytes()
    decoded = [frame for frame, _ in seen]
    index = store.index()
    per_window = [
        {location[:3] for location in index.locate_many(window).values()}
        for window in store_windows(store, sid("a"))
    ]
    frames = set().union(*per_window)
    assert sum(map(len, per_window)) > len(frames)  # some frames serve two windows
    assert len(decoded) == len(frames) == len(set(decoded))


@pytest.mark.parametrize("framed", [False, True], ids=["dictionary", "framed"])
def test_a_read_decodes_only_its_own_pages_however_scattered(
    location: Location, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, framed: bool
) -> None:

    # Days of scattered changes: the last snapshot's pages lie in every day's packs, among
    # pages changed since. With a dictionary each page is a frame of its own and a restore
    # decodes its own pages only; frames of several pages drag their stale neighbours along.
    store = new_store(location, framed)
    db = make_db(tmp_path / "node.db", 3000)
    put(store, "day0", db)
    rng = random.Random(7)
    for day in range(1, 4):
        change_rows(db, rng.sample(range(1, 3001), 150), f"day {day}")
        put(store, f"day{day}", db)
    decoded = frames_decoded_by_reads(monkeypatch)
    data = db.read_bytes()
    assert read(store, sid("day3")) == data
    own = len({data[p : p + 4096] for p in range(0, len(data), 4096)}) * 4096
    plain_bytes = sum(size for _, size in decoded)
    if framed:
        assert plain_bytes > 1.3 * own
    else:
        assert plain_bytes == own


def test_each_put_compresses_with_the_dictionary_of_its_own_database(
    store: Store, tmp_path: Path
) -> None:
    from store import dictionary
    from store import packs as pack_format

    db = make_db(tmp_path / "node.db", 3000)
    put(store, "a", db)
    first = set(packs(store))
    trained_a = dictionary.for_put({"db": db}, store.config.dictionary_size, 3, 1)
    change_rows(db, list(range(1, 3001, 5)), "changed")
    put(store, "b", db)
    added = set(packs(store)) - first
    assert added
    trained_b = dictionary.for_put({"db": db}, store.config.dictionary_size, 3, 1)
    assert trained_a != trained_b
    for path in sorted(first):
        assert pack_format.dictionary_in(store.backend.read(path)) == trained_a
    for path in sorted(added):
        assert pack_format.dictionary_in(store.backend.read(path)) == trained_b
    assert read(store, sid("b")) == db.read_bytes()


def test_a_read_of_many_windows_salvages_all_but_a_damaged_frame(
    store: Store, tmp_path: Path
) -> None:
    db = make_db(tmp_path / "node.db", 6000)
    put(store, "a", db)
    pages = db.stat().st_size // 4096
    # A damaged index entry for a page of the last window: named by a checked read.
    key = misplace_a_page(store, last=True)
    assert read_unchecked(store, sid("a")) != db.read_bytes()
    with pytest.raises(VerificationError) as err:
        read(store, sid("a"))
    assert err.value.outcome == "checksum_error" and key.hex() in err.value.detail

    # A damaged frame fails, but only at the end: every other window and frame is written
    # (the salvage of a forced restore), and the lost pages read as zeros.
    store.forget_index()
    flip_a_byte(store)
    salvaged = tmp_path / "salvaged.db"
    with salvaged.open("wb") as out, pytest.raises(VerificationError) as err:
        store.read_artifact(sid("a"), DB, out, check_chunks=False)
    assert err.value.outcome == "checksum_error"
    good, got = db.read_bytes(), salvaged.read_bytes()
    assert len(got) == len(good)
    lost = [p for p in range(0, len(good), 4096) if good[p : p + 4096] != got[p : p + 4096]]
    assert 0 < len(lost) <= 4  # one 16 KiB frame
    assert all(got[p : p + 4096] == bytes(4096) for p in lost)
    assert pages > 5 * 64


def test_a_read_names_a_chunk_that_is_not_what_its_name_says_when_asked_to_check(
    store: Store, tmp_path: Path
) -> None:
    import io

    db = make_db(tmp_path / "node.db", 2000)
    put(store, "a", db)
    assert read(store, sid("a")) == db.read_bytes()
    # The damaged index entry of the tests above: the bytes read are wrong, every frame sound.
    key = misplace_a_page(store)
    unchecked = io.BytesIO()
    store.read_artifact(sid("a"), DB, unchecked, check_chunks=False)
    assert unchecked.getvalue() != db.read_bytes()  # for the caller's digest to catch
    with pytest.raises(VerificationError) as err:
        store.read_artifact(sid("a"), DB, io.BytesIO(), check_chunks=True)
    assert err.value.outcome == "checksum_error"
    assert sid("a") in err.value.detail and key.hex() in err.value.detail


def test_a_read_writes_everything_readable_before_naming_a_damaged_pack(
    store: Store, tmp_path: Path
) -> None:
    db = make_db(tmp_path / "node.db", 2000)
    put(store, "a", db)
    victim = flip_a_byte(store)

    out = tmp_path / "salvaged.db"
    with out.open("wb") as handle, pytest.raises(VerificationError) as err:
        store.read_artifact(sid("a"), DB, handle)
    assert err.value.outcome == "checksum_error" and victim.rsplit("/", 1)[1] in err.value.detail
    # Every page outside the damaged frame (16 KiB here: 4 pages) is in place: what a forced
    # restore salvages.
    good, salvaged = db.read_bytes(), out.read_bytes()
    pages = range(0, len(good), 4096)
    intact = sum(good[p : p + 4096] == salvaged[p : p + 4096] for p in pages)
    assert len(pages) - 4 <= intact < len(pages)


def test_a_chunk_in_no_index_stops_the_read_after_the_windows_before_it(
    store: Store, tmp_path: Path
) -> None:
    db = make_db(tmp_path / "node.db", 6000)
    put(store, "a", db)
    windows = store_windows(store, sid("a"))
    assert len(windows) > 4
    # A page of the fourth window whose index entry is gone (and that no earlier window holds).
    earlier = {key for window in windows[:3] for key in window}
    lost = next(key for key in windows[3] if key not in earlier)
    store.index()._db.execute("DELETE FROM e WHERE key = ?", (lost,))

    out = tmp_path / "partial.db"
    with out.open("wb") as handle, pytest.raises(VerificationError) as err:
        store.read_artifact(sid("a"), DB, handle, check_chunks=False)
    assert err.value.outcome == "missing_data" and lost.hex() in err.value.detail
    written = sum(len(window) for window in windows[:3]) * 4096
    assert out.read_bytes() == db.read_bytes()[:written]


@pytest.mark.parametrize("framed", [False, True], ids=["dictionary", "framed"])
def test_a_read_fails_whole_when_planning_and_queueing_both_fail(
    location: Location, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, framed: bool
) -> None:
    from store import rebuild

    store = new_store(location, framed)
    db = make_db(tmp_path / "node.db", 6000)
    put(store, "a", db)
    # The fourth window's plan fails (a chunk in no index), and queueing the third runs out
    # of memory: the reader gets a failure, and no thread is left writing or waiting.
    plan, start = rebuild.WindowRebuild.plan, rebuild.WindowRebuild.start
    calls = {"plan": 0, "start": 0}

    def failing_plan(self: rebuild.WindowRebuild, *args: Any, **kwargs: Any) -> Any:
        calls["plan"] += 1
        if calls["plan"] == 4:
            raise VerificationError("missing_data", "chunk x is in no index", sid("a"))
        return plan(self, *args, **kwargs)

    def failing_start(self: rebuild.WindowRebuild, *args: Any, **kwargs: Any) -> Any:
        calls["start"] += 1
        if calls["start"] == 3:
            raise MemoryError("no room for a window")
        return start(self, *args, **kwargs)

    monkeypatch.setattr(rebuild.WindowRebuild, "plan", failing_plan)
    monkeypatch.setattr(rebuild.WindowRebuild, "start", failing_start)
    outcome: list[BaseException] = []

    def read_it() -> None:
        try:
            store.read_artifact(sid("a"), DB, io.BytesIO())
        except BaseException as exc:
            outcome.append(exc)

    reader = threading.Thread(target=read_it, daemon=True)
    reader.start()
    reader.join(timeout=60)  # a guard: the read takes well under a second
    assert not reader.is_alive(), "the read never ended"
    assert len(outcome) == 1 and isinstance(outcome[0], MemoryError | VerificationError)
    assert not [t for t in threading.enumerate() if t.name.startswith(("plan", "rebuild"))]


def test_snapshot_ids_are_the_documents_only(store: Store, tmp_path: Path) -> None:
    put(store, "a", make_db(tmp_path / "node.db", 200))
    docs = layout.SNAPSHOTS
    # What else can sit beside the documents: a temporary upload, a foreign file, a name
    # that holds a document's name after a newline, an upper-case or short id.
    strays = [
        f"{sid('b')}.json.tmp-1",
        "README",
        f"x\n{sid('c')}.json",
        f"{sid('d').upper()}.json",
        f"{sid('e')[:63]}.json",
        f"{sid('f')}.jsonx",
    ]
    for name in strays:
        try:
            store.backend.write(f"{docs}/{name}", b"{}")
        except FileNotFoundError:
            assert "\n" in name  # S3 (moto) refuses a key with a newline; files take it
    assert store.snapshot_ids() == [sid("a")]
