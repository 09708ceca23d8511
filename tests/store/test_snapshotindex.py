"""A whole read on a host that keeps no copy of the index finds its chunks in the index
objects themselves: the same bytes as a read through the loaded index, in as many groups
as the snapshot needs, and the same refusals of hostile entries."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import pytest
import zstandard

from snapshot.errors import StoreError
from store import documents, layout, snapshotindex
from store import index as index_format
from store.index import ChunkIndex
from store.repository import Store
from tests.store.conftest import (
    CURSOR,
    CURSOR_BYTES,
    DB,
    Location,
    change_rows,
    make_db,
    make_location,
    manifest,
    sid,
    small_settings,
)


@pytest.fixture(params=["memory", "local"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> Location:
    return make_location(request.param, tmp_path, request)


def put(store: Store, label: str, db: Path) -> str:
    snapshot_id = sid(label)
    store.put_snapshot(snapshot_id, manifest(label), {DB: db, CURSOR: CURSOR_BYTES})
    return snapshot_id


def read(store: Store, snapshot_id: str, member: str = DB) -> bytes:
    out = io.BytesIO()
    store.read_artifact(snapshot_id, member, out, check_chunks=False)
    return out.getvalue()


def history(location: Location, tmp_path: Path) -> tuple[list[str], list[bytes]]:
    """Three days of one database in a store of three index objects."""
    store = Store.init(location.url, location.options, settings=small_settings())
    db = make_db(tmp_path / "node.db", 5000)
    ids, copies = [], []
    for day, rows in enumerate(([], [3, 400, 900], [5, 1200])):
        change_rows(db, rows, f"day {day}")
        ids.append(put(store, f"day{day}", db))
        copies.append(db.read_bytes())
    return ids, copies


def test_a_read_with_no_index_copy_rebuilds_every_snapshot_without_loading_the_index(
    location: Location, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids, copies = history(location, tmp_path)
    doc = Store.open(location.url, location.options).load_document(ids[-1])
    assert len(documents.list_ids(doc["artifacts"][DB])) > 4, "too few lists to group"
    # Groups of about two chunk lists: every read takes several scans.
    monkeypatch.setattr(snapshotindex, "GROUP_KEYS", 2 * small_settings().hashes_per_list)

    def refused(*args: object) -> None:
        raise AssertionError("a read with no index copy loaded the whole index")

    with monkeypatch.context() as m:
        m.setattr(ChunkIndex, "load_many", refused)
        fresh = Store.open(location.url, location.options)
        assert [read(fresh, s) for s in ids] == copies
        assert read(fresh, ids[0], CURSOR) == CURSOR_BYTES
    loaded = Store.open(location.url, location.options)
    loaded.index()
    assert [read(loaded, s) for s in ids] == copies


def test_an_entry_of_a_data_chunk_beyond_the_stores_bounds_is_refused(
    location: Location, tmp_path: Path
) -> None:
    ids, _ = history(location, tmp_path)
    store = Store.open(location.url, location.options)
    doc = store.load_document(ids[-1])
    source = store.chunk_source(ids[-1])
    chunk = documents.split_list(source.fetch_list(documents.list_ids(doc["artifacts"][DB])[1]))[0]
    pack = sorted(e.path for e in store.backend.list(layout.PACKS))[0].rsplit("/", 1)[1]
    plain = index_format.MAGIC + struct.pack(">I", 1) + bytes.fromhex(pack)
    plain += struct.pack(">32sIIIII", chunk, 0, 0, 100, 0, 0xFFFFFFFF)
    # Named to be taken first, so its entry wins over the true one.
    store.backend.write(layout.index_path("0" * 64), zstandard.ZstdCompressor().compress(plain))
    fresh = Store.open(location.url, location.options)
    with pytest.raises(StoreError, match="names a chunk or frame larger than this store's"):
        read(fresh, ids[-1])


def test_a_database_holding_one_page_many_times_reads_back_whole(
    location: Location, tmp_path: Path
) -> None:
    import sqlite3

    db = make_db(tmp_path / "node.db", 3000)
    con = sqlite3.connect(db)
    con.execute("PRAGMA secure_delete=ON")  # freed pages are zeroed: many equal pages
    con.execute("DELETE FROM memories WHERE id % 3 != 0")
    con.commit()
    con.close()
    data = db.read_bytes()
    pages = [data[i : i + 4096] for i in range(0, len(data), 4096)]
    assert len(pages) - len(set(pages)) > 20, "too few repeated pages to test anything"
    store = Store.init(location.url, location.options, settings=small_settings())
    snapshot_id = put(store, "day0", db)
    assert read(Store.open(location.url, location.options), snapshot_id) == data
    loaded = Store.open(location.url, location.options)
    loaded.index()
    assert read(loaded, snapshot_id) == data
