"""A store is untrusted input: whoever can write to its directory or bucket can swap,
truncate, replay or forge any object in it. Each hostile layout here is refused with one
error of the project's classes (``malformed`` and other verification outcomes for snapshot
content, StoreError otherwise), and never makes a read succeed with bytes other than the
signed ones. The command-line side is tests/cli/test_hostile_store_cli.py."""

from __future__ import annotations

import io
import json
import os
import struct
from pathlib import Path
from typing import Any

import pytest
import zstandard

from snapshot.errors import StoreError, VerificationError
from store import index as index_format
from store import layout, limits, locks, maintenance, packs
from store.repository import Store
from tests.store import conftest
from tests.store.conftest import (
    CURSOR,
    CURSOR_BYTES,
    DB,
    Location,
    make_db,
    make_location,
    small_settings,
)


@pytest.fixture(params=["memory", "local"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> Location:
    """Memory and local stores, without a cache: what refuses a hostile object is the
    store's reader, which reads the same whether or not the host keeps an index copy; the
    same layouts on S3 run through every command in tests/cli/test_hostile_store_cli.py."""
    return make_location(request.param, tmp_path, request)


def put(store: Store, label: str, db: Path) -> str:
    contents: dict[str, Path | bytes] = {DB: db, CURSOR: CURSOR_BYTES}
    snapshot_id = conftest.sid(label, contents=contents)
    store.put_snapshot(snapshot_id, conftest.manifest(label, contents=contents), contents)
    return snapshot_id


def read(store: Store, snapshot_id: str, member: str = DB) -> bytes:
    out = io.BytesIO()
    store.read_artifact(snapshot_id, member, out)
    return out.getvalue()


def document(store: Store, snapshot_id: str) -> Any:
    return json.loads(store.backend.read(layout.snapshot_path(snapshot_id)))


def write_document(store: Store, snapshot_id: str, doc: object) -> None:
    store.backend.write(layout.snapshot_path(snapshot_id), json.dumps(doc).encode())


@pytest.fixture
def two(location: Location, tmp_path: Path) -> tuple[Store, str, str]:
    """A store holding two snapshots of different databases: (store, old id, new id)."""
    store = Store.init(
        location.url, location.options, cache=location.cache, settings=small_settings()
    )
    old = put(store, "old", make_db(tmp_path / "old.db", 1500, seed=1))
    new = put(store, "new", make_db(tmp_path / "new.db", 1500, seed=2))
    return store, old, new


def refused_malformed(store: Store, snapshot_id: str) -> None:
    with pytest.raises(VerificationError) as err:
        store.load_document(snapshot_id)
    assert err.value.outcome == "malformed" and snapshot_id in err.value.detail
    with pytest.raises(VerificationError):
        read(store, snapshot_id)


# ---------------------------------------------------------------- documents


def test_a_document_copied_over_another_snapshots_name_is_refused_everywhere(
    two: tuple[Store, str, str],
) -> None:
    store, old, new = two
    store.backend.write(layout.snapshot_path(new), store.backend.read(layout.snapshot_path(old)))
    refused_malformed(store, new)
    assert store.load_document(old)["manifest"]["label"] == "old"

    report = maintenance.check(store)
    assert any(p.snapshot_id == new and "does not hash" in p.detail for p in report.problems)
    before = {e.path for e in store.backend.list()} - {
        e.path for e in store.backend.list(layout.LOCKS)
    }
    # The old snapshot's data is the only data: gc would free the new one's.
    store.delete_snapshot(old)
    with pytest.raises(StoreError, match=f"gc refused on .*{new}"):
        maintenance.gc(store, grace_seconds=0, max_unused=0.0)
    with pytest.raises(StoreError, match=f"prune refused on .*{new}"):
        store.require_sound_documents("prune")
    after = {e.path for e in store.backend.list()}
    assert after == before - {layout.snapshot_path(old)}


def test_sync_copies_no_document_the_reader_refuses(
    two: tuple[Store, str, str], tmp_path: Path
) -> None:
    store, old, new = two
    store.backend.write(layout.snapshot_path(new), store.backend.read(layout.snapshot_path(old)))
    other = Store.init(str(tmp_path / "other"), {})
    with pytest.raises(StoreError, match=f"cannot sync {new} from .*: malformed"):
        maintenance.sync(store, other)
    assert other.snapshot_ids() == []


@pytest.mark.parametrize(
    "forge",
    [
        pytest.param(lambda doc, other: doc["artifacts"].clear(), id="no-artifacts"),
        pytest.param(lambda doc, other: doc["artifacts"].pop(CURSOR), id="one-artifact-short"),
        pytest.param(
            lambda doc, other: doc["artifacts"].update(extra=doc["artifacts"][CURSOR]),
            id="an-artifact-the-manifest-does-not-sign",
        ),
        pytest.param(lambda doc, other: doc["artifacts"][DB].update(size=2**62), id="size-2**62"),
        pytest.param(lambda doc, other: doc["artifacts"][DB].update(size=-1), id="size-negative"),
        pytest.param(
            lambda doc, other: doc["artifacts"][DB].update(size=True), id="size-is-a-bool"
        ),
        pytest.param(
            lambda doc, other: doc["artifacts"][DB].update(chunk_lists="yes"), id="lists-not-bool"
        ),
        pytest.param(
            lambda doc, other: doc["artifacts"][CURSOR].update(chunks=["ab" * 32] * 200_000),
            id="200000-chunks-for-36-bytes",
        ),
        pytest.param(lambda doc, other: doc["manifest"].update(label="x"), id="manifest-edited"),
    ],
)
def test_a_document_whose_parts_cannot_belong_together_is_malformed(
    two: tuple[Store, str, str], forge: object
) -> None:
    store, old, new = two
    doc = document(store, new)
    forge(doc, document(store, old))  # type: ignore[operator]
    write_document(store, new, doc)
    refused_malformed(store, new)


def test_a_document_over_the_size_bound_is_refused_before_it_is_parsed(
    two: tuple[Store, str, str],
) -> None:
    store, _, new = two
    doc = document(store, new)
    # 2,000,000 chunk names: 134 MB of JSON, 1.3 GiB once parsed.
    doc["artifacts"][DB] = {"size": 1, "chunk_lists": False, "chunks": ["ab" * 32] * 2_000_000}
    write_document(store, new, doc)
    with pytest.raises(VerificationError, match="larger than"):
        store.load_document(new)


@pytest.mark.parametrize("delta", [4096, -1])
def test_a_size_off_by_a_page_or_a_byte_fails_reads_and_the_full_check(
    two: tuple[Store, str, str], delta: int
) -> None:
    store, _, new = two
    doc = document(store, new)
    doc["artifacts"][DB]["size"] += delta
    write_document(store, new, doc)
    with pytest.raises(VerificationError, match=r"rebuilt to|more than the"):
        read(store, new)
    report = maintenance.check(store, read_data_fraction=1.0)
    assert {p.snapshot_id for p in report.problems} == {new}


def test_chunk_lists_of_another_snapshot_fail_the_full_check(
    two: tuple[Store, str, str],
) -> None:
    """Every chunk is sound, the size is the other database's: only comparing the rebuilt
    artifact with the signed digest tells (as restore and verify do)."""
    store, old, new = two
    doc = document(store, new)
    doc["artifacts"][DB] = document(store, old)["artifacts"][DB]
    write_document(store, new, doc)
    assert maintenance.check(store, read_data_fraction=0.5).problems == []  # every chunk is itself
    report = maintenance.check(store, read_data_fraction=1.0)
    assert [
        (p.snapshot_id, "does not hash to the digest" in p.detail) for p in report.problems
    ] == [(new, True)]


def test_a_cursor_made_of_the_databases_chunk_lists_is_refused_before_it_is_read(
    two: tuple[Store, str, str],
) -> None:
    """The cursor is read into memory: declared small, it must not fill memory with the
    database its chunk lists name; declared large, the reader refuses it."""
    store, _, new = two
    doc = document(store, new)
    doc["artifacts"][CURSOR] = dict(doc["artifacts"][DB], size=len(doc["artifacts"][DB]["chunks"]))
    write_document(store, new, doc)
    with pytest.raises(VerificationError, match=r"more than the \d+ bytes its document declares"):
        read(store, new, CURSOR)
    doc["artifacts"][CURSOR] = dict(doc["artifacts"][DB], size=2 << 20)
    write_document(store, new, doc)
    with pytest.raises(VerificationError, match="more than a migration cursor holds"):
        store.load_document(new)


def test_a_list_of_large_chunks_is_rebuilt_in_parts(location: Location) -> None:
    """40 chunks of 1 MiB (a member that is not a SQLite file) in one chunk list: a window
    of 40 MiB, rebuilt as parts of at most WINDOW_BYTES, in order."""
    from store import rebuild

    store = Store.init(
        location.url, location.options, cache=location.cache, settings=small_settings()
    )
    data = os.urandom(40 << 20)
    contents: dict[str, Path | bytes] = {DB: data}
    snapshot_id = conftest.sid("big", contents=contents)
    store.put_snapshot(snapshot_id, conftest.manifest("big", contents=contents), contents)
    assert rebuild.WINDOW_BYTES < 40 << 20
    assert read(store, snapshot_id) == data


def test_a_truncated_document_is_malformed(two: tuple[Store, str, str]) -> None:
    store, _, new = two
    path = layout.snapshot_path(new)
    store.backend.write(path, store.backend.read(path)[:-10])
    refused_malformed(store, new)


# ---------------------------------------------------------------- index, packs


def bomb(size: int) -> bytes:
    compressor = zstandard.ZstdCompressor(level=1).compressobj()
    zeros = bytes(16 << 20)
    out = [compressor.compress(index_format.MAGIC)]
    out += [compressor.compress(zeros) for _ in range(size // len(zeros))]
    return b"".join(out) + compressor.flush()


def test_an_index_object_that_is_a_zstd_bomb_is_refused(two: tuple[Store, str, str]) -> None:
    store, _, _ = two
    data = bomb(256 << 20)
    store.backend.write(layout.index_path("0" * 64), data)
    store.forget_index()
    with pytest.raises(StoreError, match=r"index object index/0{64} is corrupt: it decompresses"):
        store.index()


def forged_index(store: Store, key: bytes, **fields: int) -> bytes:
    """An index object naming ``key`` in the store's first pack at the given place."""
    pack = sorted(e.path for e in store.backend.list(layout.PACKS))[0].rsplit("/", 1)[1]
    entry = {"fo": 0, "fl": 100, "off": 0, "len": 4096, **fields}
    plain = index_format.MAGIC + struct.pack(">I", 1) + bytes.fromhex(pack)
    plain += struct.pack(">32sIIIII", key, 0, entry["fo"], entry["fl"], entry["off"], entry["len"])
    return zstandard.ZstdCompressor().compress(plain)


@pytest.mark.parametrize(
    "fields",
    [{"len": 0xFFFFFFFF}, {"fl": 0xFFFFFFFF}, {"off": 0xFFFFFF00}, {"len": 0}],
    ids=["length", "frame-length", "offset", "empty"],
)
def test_an_index_entry_beyond_the_stores_chunks_is_refused(
    two: tuple[Store, str, str], fields: dict[str, int]
) -> None:
    store, _, new = two
    first_list = bytes.fromhex(document(store, new)["artifacts"][DB]["chunks"][0])
    # Named to load first, so its entry would win over the true one.
    store.backend.write(layout.index_path("0" * 64), forged_index(store, first_list, **fields))
    store.forget_index()
    with pytest.raises(StoreError, match="names a chunk or frame larger than this store's"):
        read(store, new)


def test_a_pack_trailer_that_is_a_bomb_or_claims_more_than_the_pack_is_left_out(
    two: tuple[Store, str, str],
) -> None:
    store, _, new = two
    trailer = bomb(256 << 20)
    planted = trailer + packs.FOOTER.pack(len(trailer), packs.MAGIC)
    store.backend.write(layout.pack_path("ab" * 32), planted)
    with pytest.raises(packs.PackError, match="decompresses to more than"):
        packs.entries_of(planted)
    claims = b"x" * 100 + packs.FOOTER.pack(3 << 30, packs.MAGIC)
    store.backend.write(layout.pack_path("cd" * 32), claims)
    with pytest.raises(packs.PackError, match="past the start"):
        packs.entries_of(claims)
    before = read(store, new)
    assert maintenance.rebuild_index(store) > 0
    assert read(store, new) == before


def test_a_pack_trailer_naming_a_huge_chunk_is_left_out_of_a_rebuilt_index(
    two: tuple[Store, str, str],
) -> None:
    store, _, new = two
    records = packs.RECORD.pack(b"k" * 32, 0, 10, 0, 0xFFFFFFFF)
    trailer = zstandard.ZstdCompressor().compress(records)
    planted = b"x" * 10 + trailer + packs.FOOTER.pack(len(trailer), packs.MAGIC)
    store.backend.write(layout.pack_path("ef" * 32), planted)
    maintenance.rebuild_index(store)
    assert store.index().lookup(b"k" * 32) is None
    assert read(store, new)


def test_a_truncated_pack_fails_reads_and_the_full_check(two: tuple[Store, str, str]) -> None:
    store, _, new = two
    first_list = bytes.fromhex(document(store, new)["artifacts"][DB]["chunks"][0])
    location = store.index().lookup(first_list)
    assert location is not None
    victim = layout.pack_path(location.pack)
    store.backend.write(victim, store.backend.read(victim)[: location.frame_offset + 1])
    with pytest.raises(VerificationError):
        read(store, new)
    assert not maintenance.check(store, read_data_fraction=1.0).ok


def test_a_pack_larger_than_the_store_writes_is_damage_not_read(
    two: tuple[Store, str, str],
) -> None:
    store, _, _ = two
    largest = limits.max_pack(store.config)
    name = "ab" * 32
    store.backend.write(layout.pack_path(name), bytes(largest + 1))
    report = maintenance.check(store, read_data_fraction=1.0)
    assert [p.detail for p in report.problems] == [
        f"pack {name} is damaged: it holds more than the {largest} bytes of any pack this "
        "store writes"
    ]


def test_whole_object_reads_are_bounded(location: Location) -> None:
    store = Store.init(location.url, location.options, cache=location.cache)
    store.backend.write("big", bytes(1000))
    assert store.backend.read("big", 1000) == bytes(1000)
    with pytest.raises(StoreError, match="big holds more than 999 bytes"):
        store.backend.read("big", 999)
    with pytest.raises(StoreError, match="more than 10 bytes"):
        store.backend.read_many(["big"], 10)
    store.backend.write("empty", b"")
    assert store.backend.read("empty", 10) == b""


# ---------------------------------------------------------------- config.json


@pytest.mark.parametrize(
    ("section", "field", "value"),
    [
        ("chunking", "pages_per_chunk", 0),
        ("chunk_lists", "hashes_per_list", 0),
        ("compression", "dictionary_size", 2**40),
        ("compression", "dictionary_size", 5),
        ("compression", "frame_size", -1),
        ("compression", "level", "3"),
        ("packs", "target_size", 1.5),
        ("chunk_lists", "direct_max", True),
        ("compression", "algorithm", "lz4"),
    ],
)
def test_a_config_setting_out_of_range_is_refused_at_open(
    location: Location, section: str, field: str, value: object
) -> None:
    store = Store.init(location.url, location.options, cache=location.cache)
    config = json.loads(store.backend.read(layout.CONFIG))
    config[section][field] = value
    store.backend.write(layout.CONFIG, json.dumps(config).encode())
    with pytest.raises(StoreError, match=f"config.json field {section}.{field} must be"):
        Store.open(location.url, location.options, cache=location.cache)


def test_a_config_json_of_a_gigabyte_is_not_read(location: Location) -> None:
    store = Store.init(location.url, location.options, cache=location.cache)
    store.backend.write(layout.CONFIG, b" " * (limits.MAX_SMALL_OBJECT + 1))
    with pytest.raises(StoreError, match=r"config\.json holds more than"):
        Store.open(location.url, location.options, cache=location.cache)


@pytest.mark.parametrize("version", [-1, 0, True])
def test_a_config_version_below_one_is_refused(location: Location, version: object) -> None:
    store = Store.init(location.url, location.options, cache=location.cache)
    config = json.loads(store.backend.read(layout.CONFIG))
    config["version"] = version
    store.backend.write(layout.CONFIG, json.dumps(config).encode())
    with pytest.raises(StoreError, match=r"config\.json"):
        Store.open(location.url, location.options, cache=location.cache)


# ---------------------------------------------------------------- links (local stores)


@pytest.fixture
def local(tmp_path: Path) -> tuple[Store, Path, str]:
    root = tmp_path / "store"
    store = Store.init(str(root), {}, settings=small_settings())
    return store, root, put(store, "a", make_db(tmp_path / "a.db", 500))


def test_a_link_to_dev_zero_is_never_read(local: tuple[Store, Path, str]) -> None:
    store, root, _ = local
    (root / "packs" / "ab").mkdir(exist_ok=True)
    (root / "packs" / "ab" / ("ab" * 32)).symlink_to("/dev/zero")
    with pytest.raises(StoreError, match="is a link out of the store"):
        maintenance.check(store, read_data_fraction=1.0)
    with pytest.raises(StoreError, match="is a link out of the store"):
        store.backend.read(layout.pack_path("ab" * 32))

    (root / "locks").mkdir(exist_ok=True)
    (root / "locks" / "exclusive-zero.json").symlink_to("/dev/zero")
    with store.lock("exclusive"):  # unreadable, so stale: it blocks nothing
        pass
    removed = store.break_locks()
    assert [i.name for i in removed] == ["exclusive-zero.json"]
    assert not (root / "locks" / "exclusive-zero.json").is_symlink()

    (root / "config.json").unlink()
    (root / "config.json").symlink_to("/dev/zero")
    with pytest.raises(StoreError, match=r"config\.json is a link out of the store"):
        Store.open(str(root), {})


def test_a_fifo_in_the_store_is_not_waited_on(local: tuple[Store, Path, str]) -> None:
    store, root, _ = local
    os.mkfifo(root / "locks-fifo")
    with pytest.raises(StoreError, match="not a regular file"):
        store.backend.read("locks-fifo")


def test_a_linked_folder_out_of_the_store_is_neither_written_nor_emptied(
    local: tuple[Store, Path, str], tmp_path: Path
) -> None:
    store, root, sid = local
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious").write_bytes(b"keep me")
    (outside / "exclusive-1.json").write_bytes(b"not a lock")
    for name in ("locks", "snapshots"):
        if (root / name).exists():
            for child in (root / name).iterdir():
                child.unlink()
            (root / name).rmdir()
        (root / name).symlink_to(outside)
    with pytest.raises(StoreError, match="locks is a link out of the store"):
        store.break_locks(stale_only=False)
    with pytest.raises(StoreError, match="is a link out of the store"):
        store.write_document(sid, b"{}")
    with pytest.raises(StoreError, match="is a link out of the store"):
        store.snapshot_ids()
    assert sorted(p.name for p in outside.iterdir()) == ["exclusive-1.json", "precious"]


def test_a_link_inside_the_store_is_followed(local: tuple[Store, Path, str]) -> None:
    store, root, sid = local
    (root / "snapshots" / "elsewhere").mkdir()
    real = root / "snapshots" / "elsewhere" / "doc"
    (root / "snapshots" / f"{sid}.json").rename(real)
    (root / "snapshots" / f"{sid}.json").symlink_to(real)
    assert store.load_document(sid)["manifest"]["label"] == "a"


# ---------------------------------------------------------------- locks


def test_unlock_removes_only_what_is_named_like_a_lock(
    location: Location,
) -> None:
    store = Store.init(location.url, location.options, cache=location.cache)
    store.backend.write(layout.lock_path("notes.txt"), b"operator's file")
    store.backend.write(layout.lock_path("exclusive-garbage.json"), b"\x00garbage")
    live = {"kind": "exclusive", "host": "elsewhere", "pid": 1, "time": 4e9}
    # A name no lock of this tool has (it would break the one-line messages naming it).
    store.backend.write(layout.lock_path("exclusive-with space.json"), json.dumps(live).encode())
    with store.lock("exclusive"):  # neither blocks
        pass
    removed = store.break_locks()
    assert [i.name for i in removed] == ["exclusive-garbage.json"]
    assert store.backend.read(layout.lock_path("notes.txt")) == b"operator's file"
    assert store.backend.exists(layout.lock_path("exclusive-with space.json"))
    assert [i.name for i in locks.read_locks(store.backend)] == []
