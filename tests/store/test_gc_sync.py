"""gc frees only what no snapshot needs (after the grace period); sync copies what is missing."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from store import layout, maintenance
from store.reports import PutResult
from store.repository import Store
from tests.store import conftest
from tests.store.conftest import Location, change_rows, make_db, small_settings

DB = "artifacts/stigmem.db"


def put(store: Store, label: str, db: Path) -> tuple[str, PutResult]:
    """A snapshot of the database only, its manifest signing the database's digest as it is
    now; its id and the put's result."""
    snapshot_id = conftest.sid(label, contents={DB: db})
    result = store.put_snapshot(snapshot_id, conftest.manifest(label, contents={DB: db}), {DB: db})
    return snapshot_id, result


def read(store: Store, snapshot_id: str) -> bytes:
    out = io.BytesIO()
    store.read_artifact(snapshot_id, DB, out)
    return out.getvalue()


def objects(store: Store, prefix: str) -> set[str]:
    return {e.path for e in store.backend.list(prefix)}


def test_gc_keeps_referenced_and_frees_unreferenced(location: Location, tmp_path: Path) -> None:
    store = Store.init(
        location.url, location.options, cache=location.cache, settings=small_settings()
    )
    kept_db = make_db(tmp_path / "kept.db", 1500, seed=1)
    gone_db = make_db(tmp_path / "gone.db", 1500, seed=2)
    kept, _ = put(store, "kept", kept_db)
    gone, _ = put(store, "gone", gone_db)
    store.delete_snapshot(gone)
    before = maintenance.stats(store)

    young = maintenance.gc(store, grace_seconds=3600)
    assert young.packs_deleted == 0 and young.bytes_freed == 0 and young.packs_kept_young > 0
    assert maintenance.stats(store).stored_bytes == before.stored_bytes

    report = maintenance.gc(store, grace_seconds=0)
    after = maintenance.stats(store)
    assert report.packs_deleted > 0 and report.bytes_freed > 0
    assert after.stored_bytes < before.stored_bytes - report.bytes_freed // 2
    assert len(objects(store, layout.INDEX)) == 1
    assert read(store, kept) == kept_db.read_bytes()
    assert maintenance.check(store, read_data_fraction=1.0).ok


def mostly_dead_day(location: Location, tmp_path: Path) -> tuple[Store, Path, str]:
    """A store of two days, the second with a third of the rows changed, and the first
    deleted: its packs hold chunks only it used. The store, the database as the second day
    saw it, and that day's id."""
    store = Store.init(
        location.url, location.options, cache=location.cache, settings=small_settings()
    )
    db = make_db(tmp_path / "node.db", 2000)
    day1, _ = put(store, "day1", db)
    change_rows(db, list(range(1, 2001, 3)), "changed")
    day2, _ = put(store, "day2", db)
    store.delete_snapshot(day1)
    return store, db, day2


def test_gc_repacks_mostly_dead_packs(location: Location, tmp_path: Path) -> None:
    store, db, day2 = mostly_dead_day(location, tmp_path)
    before = maintenance.stats(store)

    report = maintenance.gc(store, grace_seconds=0)

    assert report.packs_repacked > 0 and report.packs_written > 0 and report.bytes_freed > 0
    assert maintenance.stats(store).stored_bytes == before.stored_bytes - report.bytes_freed
    assert read(store, day2) == db.read_bytes()
    assert maintenance.check(store, read_data_fraction=1.0).ok
    assert maintenance.gc(store, grace_seconds=0).bytes_freed == 0


def test_gc_rerun_after_one_stopped_before_its_deletes_loses_nothing(
    location: Location, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, db, day2 = mostly_dead_day(location, tmp_path)

    # A gc killed after writing its repacked packs and its index, before any delete.
    delete = store.backend.delete

    def killed(paths: list[str]) -> None:
        if not all(p.startswith(layout.LOCKS + "/") for p in paths):
            raise KeyboardInterrupt
        delete(paths)  # the lock goes, as a dead process's lock is taken over

    with monkeypatch.context() as m:
        m.setattr(store.backend, "delete", killed)
        with pytest.raises(KeyboardInterrupt):
            maintenance.gc(store, grace_seconds=0)
    rerun = Store.open(location.url, location.options, cache=location.cache)
    maintenance.gc(rerun, grace_seconds=0)

    fresh = Store.open(location.url, location.options)
    assert read(fresh, day2) == db.read_bytes()
    assert maintenance.check(fresh, read_data_fraction=1.0).ok
    assert maintenance.check(rerun, read_data_fraction=1.0).ok


def test_gc_keeps_unindexed_young_packs_of_a_crashed_put(
    location: Location, tmp_path: Path
) -> None:
    store = Store.init(
        location.url, location.options, cache=location.cache, settings=small_settings()
    )
    crashed, _ = put(store, "crashed", make_db(tmp_path / "c.db", 800))
    # What a put killed before its document leaves behind: packs and an index.
    store.backend.delete([layout.snapshot_path(crashed)])
    packs = objects(store, layout.PACKS)

    maintenance.gc(store, grace_seconds=3600)
    assert objects(store, layout.PACKS) == packs
    maintenance.gc(store, grace_seconds=0)
    assert objects(store, layout.PACKS) == set()


def test_sync_copies_only_what_is_missing(
    location: Location, other_location: Location, tmp_path: Path
) -> None:
    src = Store.init(
        location.url, location.options, cache=location.cache, settings=small_settings()
    )
    dst = Store.init(other_location.url, other_location.options, cache=other_location.cache)
    db = make_db(tmp_path / "node.db", 1500)
    day1, _ = put(src, "day1", db)

    first = maintenance.sync(src, dst)
    assert first.snapshots_copied == 1 and first.packs_copied == len(objects(src, layout.PACKS))
    assert read(dst, day1) == db.read_bytes()

    change_rows(db, [5], "changed")
    day2, report = put(src, "day2", db)
    second = maintenance.sync(src, dst)
    assert (second.snapshots_copied, second.packs_copied) == (1, report.packs_written)
    assert dst.load_document(day2) == src.load_document(day2)
    assert read(dst, day2) == db.read_bytes()

    nothing = maintenance.sync(src, dst)
    assert (nothing.snapshots_copied, nothing.packs_copied, nothing.index_written) == (0, 0, False)


def test_sync_resumes_after_being_killed_midway(
    location: Location, other_location: Location, tmp_path: Path
) -> None:
    src = Store.init(
        location.url, location.options, cache=location.cache, settings=small_settings()
    )
    dst = Store.init(other_location.url, other_location.options, cache=other_location.cache)
    db = make_db(tmp_path / "node.db", 3000)
    a, _ = put(src, "a", db)
    packs = sorted(objects(src, layout.PACKS))
    assert len(packs) >= 3
    # A sync killed after copying some packs: they are there, no index, no document.
    dst.backend.write_many(src.backend.read_many(packs[:2]))

    report = maintenance.sync(src, dst)

    assert report.packs_copied == len(packs) - 2 and report.snapshots_copied == 1
    assert objects(dst, layout.PACKS) == set(packs)
    assert read(dst, a) == db.read_bytes()
    assert maintenance.check(dst, read_data_fraction=1.0).ok
