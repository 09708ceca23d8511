"""Format 2 encrypted stores: nothing readable without the store key, a writer key host adds
snapshots and reads none, tampering is caught, and rekey, gc, sync and migrate keep every
snapshot readable."""

from __future__ import annotations

import base64
import hashlib
import io
import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest

from snapshot.errors import KeyNeededError, StoreError, VerificationError
from store import crypto, layout, maintenance, migrating, rekeying
from store.config import StoreConfig
from store.encryption import StoreKeys
from store.localcache import LocalCache
from store.repository import Store
from tests.nodegen import apply_churn, make_node_db
from tests.store import conftest
from tests.store.conftest import Location, small_settings

DB = "artifacts/stigmem.db"
STORE_KEY = crypto.StoreKey.generate()
WRITER_KEY = crypto.WriterKey.generate()
BOTH_KEYS = StoreKeys(STORE_KEY, WRITER_KEY)
WRITER_ONLY = StoreKeys(None, WRITER_KEY)
READER_ONLY = StoreKeys(STORE_KEY, None)


@pytest.fixture(params=["memory", "local", "memory+cache"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> Location:
    """The store suite's backends but S3, whose reads and writes are those of memory (both
    go through FsspecBackend); encrypted S3 stores are run by the CLI suite's commands and by
    the writer-only test, on ``every_location``."""
    return conftest.make_location(request.param, tmp_path, request)


@pytest.fixture(params=["memory", "local", "memory+cache", "s3"])
def every_location(request: pytest.FixtureRequest, tmp_path: Path) -> Location:
    return conftest.make_location(request.param, tmp_path, request)


def encrypted(location: Location, keys: StoreKeys = BOTH_KEYS) -> Store:
    settings = replace(small_settings(), encrypt_to=STORE_KEY.public)
    return Store.init(location.url, location.options, settings, location.cache, keys)


def reopen(location: Location, keys: StoreKeys, cache: LocalCache | None = None) -> Store:
    return Store.open(location.url, location.options, cache=cache, keys=keys)


def put(store: Store, label: str, db: Path) -> str:
    snapshot_id = conftest.sid(label, contents={DB: db})
    store.put_snapshot(snapshot_id, conftest.manifest(label, contents={DB: db}), {DB: db})
    return snapshot_id


def read(store: Store, snapshot_id: str) -> bytes:
    out = io.BytesIO()
    store.read_artifact(snapshot_id, DB, out)
    return out.getvalue()


def objects(store: Store) -> dict[str, bytes]:
    return {e.path: store.backend.read(e.path) for e in store.backend.list()}


def node_history(tmp_path: Path, days: int) -> list[bytes]:
    """A real-schema node database and each day's copy of it."""
    db = tmp_path / "node.db"
    make_node_db(db, size_mb=1, seed=7)
    copies = [db.read_bytes()]
    for day in range(1, days):
        apply_churn(db, day, seed=7, scale=0.3)
        copies.append(db.read_bytes())
    return copies


def put_days(store: Store, tmp_path: Path, copies: list[bytes]) -> list[str]:
    ids = []
    for day, data in enumerate(copies):
        path = tmp_path / f"day{day}.db"
        path.write_bytes(data)
        ids.append(put(store, f"day{day}", path))
    return ids


def secrets_of(copies: list[bytes], db: Path) -> list[bytes]:
    """What no object of an encrypted store may hold: every 32-byte run at the start of each
    page's content, each page's plain SHA-256, and each node's private key in both forms."""
    found: set[bytes] = set()
    for data in copies:
        size = int.from_bytes(data[16:18], "big")
        for offset in range(0, len(data), size):
            page = data[offset : offset + size]
            found.add(hashlib.sha256(page).digest())
            found.add(hashlib.sha256(page).hexdigest().encode())
            # Two windows of the page away from its header, where row content lies.
            for start in (size // 2, size - 64):
                run = page[start : start + 32]
                if run.strip(b"\0"):
                    found.add(run)
    conn = sqlite3.connect(db)
    for (value,) in conn.execute("SELECT value FROM node_meta WHERE key LIKE '%privkey%'"):
        text = value if isinstance(value, str) else value.decode()
        found.add(text.encode())
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        found.add(raw[-32:])
    conn.close()
    assert len(found) > 100
    return sorted(found)


def test_no_object_holds_page_content_page_hashes_or_keys(
    location: Location, tmp_path: Path
) -> None:
    store = encrypted(location)
    copies = node_history(tmp_path, 4)
    ids = put_days(store, tmp_path, copies)
    store.delete_snapshot(ids[0])
    maintenance.gc(store, grace_seconds=0, max_unused=0.0)
    raw = objects(store)
    assert any(p.startswith(layout.KEYS + "/") for p in raw)
    blob = b"\0".join(raw.values())
    leaks = [s for s in secrets_of(copies, tmp_path / "node.db") if s in blob]
    assert leaks == []
    for sid, data in zip(ids[1:], copies[1:], strict=True):
        assert read(reopen(location, READER_ONLY), sid) == data


def test_a_writer_only_host_adds_snapshots_and_reads_none(
    every_location: Location, tmp_path: Path
) -> None:
    location = every_location
    encrypted(location, WRITER_ONLY)
    copies = node_history(tmp_path, 2)
    writer = reopen(location, WRITER_ONLY)
    ids = put_days(writer, tmp_path, copies)
    before = objects(writer)
    with pytest.raises(KeyNeededError, match="needs the store key"):
        read(writer, ids[0])
    with pytest.raises(KeyNeededError, match="needs the store key"):
        maintenance.check(writer, read_data_fraction=0.5)
    assert maintenance.check(writer).ok  # structure: documents, index, packs
    assert objects(writer) == before
    # A host with the store key alone (no writer key) restores them.
    reader = reopen(location, READER_ONLY)
    assert [read(reader, s) for s in ids] == copies
    assert maintenance.check(reader, read_data_fraction=1.0).ok


def test_writing_needs_the_writer_key_and_reading_the_right_store_key(
    location: Location, tmp_path: Path
) -> None:
    store = encrypted(location)
    db = tmp_path / "n.db"
    make_node_db(db, size_mb=0.2)
    sid = put(store, "one", db)
    before = objects(store)
    with pytest.raises(KeyNeededError, match="needs the writer key"):
        put(reopen(location, READER_ONLY), "two", db)
    other = StoreKeys(crypto.StoreKey.generate(), None)
    with pytest.raises(KeyNeededError, match=f"encrypted to store key {STORE_KEY.key_id}"):
        read(reopen(location, other), sid)
    assert objects(store) == before


def test_tampered_objects_fail_as_checksum_error_or_missing_data(
    location: Location, tmp_path: Path
) -> None:
    store = encrypted(location)
    copies = node_history(tmp_path, 2)
    first, second = put_days(store, tmp_path, copies)
    packs = sorted(p for p in objects(store) if p.startswith(layout.PACKS + "/"))

    def outcome() -> str:
        """How a checked read and a restore's read (chunks not hashed one by one) end:
        the same way."""
        found = []
        for check_chunks in (True, False):
            try:
                reader = reopen(location, READER_ONLY)
                reader.read_artifact(second, DB, io.BytesIO(), check_chunks=check_chunks)
            except VerificationError as exc:
                found.append(exc.outcome)
            except StoreError as exc:
                found.append(f"store error: {exc}")
            else:
                found.append("read")
        assert found[0] == found[1], found
        return found[0]

    # A flipped byte in every frame-holding pack, one at a time.
    for path in packs:
        data = bytearray(store.backend.read(path))
        original = bytes(data)
        data[len(data) // 3] ^= 0x40
        store.backend.write(path, bytes(data))
        assert outcome() in ("checksum_error", "read"), path
        store.backend.write(path, original)
    assert outcome() == "read"
    # A pack swapped for another: its frames do not open under the other's key.
    a, b = packs[0], packs[-1]
    data_a, data_b = store.backend.read(a), store.backend.read(b)
    store.backend.write(a, data_b)
    store.backend.write(b, data_a)
    assert outcome() == "checksum_error"
    store.backend.write(a, data_a)
    store.backend.write(b, data_b)
    # Keyrings gone: nothing opens, and a check without the store key says which packs.
    keyrings = {p: d for p, d in objects(store).items() if p.startswith(layout.KEYS + "/")}
    store.backend.delete(list(keyrings))
    assert outcome() == "checksum_error"
    unkeyed = maintenance.check(reopen(location, WRITER_ONLY))
    assert {p.detail.split()[1] for p in unkeyed.problems} == {p.split("/")[-1] for p in packs}
    store.backend.write_many(keyrings)
    # The first snapshot's chunk lists under the second's document.
    doc_first = store.load_document(first)
    doc_second = store.load_document(second)
    doc_second["artifacts"][DB]["chunks"] = doc_first["artifacts"][DB]["chunks"]
    doc_second["artifacts"][DB]["size"] = doc_first["artifacts"][DB]["size"]
    from store import documents

    store.write_document(second, documents.encode(doc_second["manifest"], doc_second["artifacts"]))
    out = io.BytesIO()
    reader = reopen(location, READER_ONLY)
    reader.read_artifact(second, DB, out)
    digest = "sha256:" + hashlib.sha256(out.getvalue()).hexdigest()
    assert digest != doc_second["manifest"]["artifacts"][DB]  # verify refuses it
    assert not maintenance.check(reader, read_data_fraction=1.0).ok


def test_gc_repacks_and_keeps_one_keyring(location: Location, tmp_path: Path) -> None:
    store = encrypted(location)
    copies = node_history(tmp_path, 3)
    ids = put_days(store, tmp_path, copies)
    store.delete_snapshot(ids[0])
    report = maintenance.gc(store, grace_seconds=0, max_unused=0.0)
    assert report.packs_deleted + report.packs_repacked > 0
    assert len(store.backend.list(layout.KEYS)) == 1
    reader = reopen(location, READER_ONLY)
    assert [read(reader, s) for s in ids[1:]] == copies[1:]
    assert maintenance.check(reader, read_data_fraction=1.0).ok


def test_a_put_stopped_before_its_keyring_leaves_garbage_not_damage(
    location: Location, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = encrypted(location)
    copies = node_history(tmp_path, 2)
    first = put_days(store, tmp_path, copies[:1])
    kept = {e.path for e in store.backend.list(layout.PACKS)}
    (tmp_path / "day1.db").write_bytes(copies[1])
    with monkeypatch.context() as m:
        m.setattr(store.encryption, "write_keyring", lambda: _raise(KeyboardInterrupt()))
        with pytest.raises(KeyboardInterrupt):
            put(store, "day1", tmp_path / "day1.db")
    left = {e.path for e in store.backend.list(layout.PACKS)} - kept
    assert left, "the stopped put wrote no pack: the test tested nothing"

    reader = reopen(location, BOTH_KEYS)
    report = maintenance.check(reader, read_data_fraction=1.0)
    assert report.ok, report.problems
    second = put(reader, "day1", tmp_path / "day1.db")
    maintenance.gc(reader, grace_seconds=0)
    assert not left & {e.path for e in reader.backend.list(layout.PACKS)}
    final = reopen(location, READER_ONLY)
    assert [read(final, s) for s in [*first, second]] == copies
    assert maintenance.check(final, read_data_fraction=1.0).ok


def _raise(exc: BaseException) -> None:
    raise exc


def test_an_index_object_replaced_by_an_older_one_is_missing_data(
    location: Location, tmp_path: Path
) -> None:
    store = encrypted(location)
    copies = node_history(tmp_path, 3)
    ids = put_days(store, tmp_path, copies)
    older = {p: d for p, d in objects(store).items() if p.startswith(layout.INDEX + "/")}
    store.delete_snapshot(ids[0])
    assert maintenance.gc(store, grace_seconds=0, max_unused=0.0).packs_repacked > 0
    store.backend.delete([e.path for e in store.backend.list(layout.INDEX)])
    store.backend.write_many(older)
    with pytest.raises(VerificationError) as failed:
        read(reopen(location, READER_ONLY), ids[2])
    assert failed.value.outcome == "missing_data" and "pack" in failed.value.detail


def test_gc_without_the_store_key_is_refused(location: Location, tmp_path: Path) -> None:
    store = encrypted(location)
    ids = put_days(store, tmp_path, node_history(tmp_path, 2))
    store.delete_snapshot(ids[0])
    with pytest.raises(KeyNeededError):
        maintenance.gc(reopen(location, WRITER_ONLY), grace_seconds=0)


def test_rekey_seals_to_the_new_key_without_rewriting_packs(
    location: Location, tmp_path: Path
) -> None:
    store = encrypted(location)
    copies = node_history(tmp_path, 2)
    ids = put_days(store, tmp_path, copies)
    packs_before = {p: d for p, d in objects(store).items() if p.startswith(layout.PACKS)}
    new = crypto.StoreKey.generate()
    report = rekeying.rekey(store, new.public)
    assert (report.old_key_id, report.new_key_id) == (STORE_KEY.key_id, new.key_id)
    assert {p: d for p, d in objects(store).items() if p.startswith(layout.PACKS)} == (packs_before)
    with pytest.raises(KeyNeededError, match=f"encrypted to store key {new.key_id}"):
        read(reopen(location, READER_ONLY), ids[0])
    fresh = reopen(location, StoreKeys(new, WRITER_KEY))
    assert [read(fresh, s) for s in ids] == copies
    # The old key opens nothing the store holds now, even given the keyrings by hand.
    for path, data in objects(store).items():
        if path.startswith(layout.KEYS + "/"):
            public, _ = crypto.parse_keyring(data, path)
            assert public == new.public
    # And writing goes on with the same writer key (the same dedup domain).
    later = tmp_path / "later.db"
    later.write_bytes(copies[-1])
    result = fresh.put_snapshot(
        conftest.sid("later", contents={DB: later}),
        conftest.manifest("later", contents={DB: later}),
        {DB: later},
    )
    assert result.new_chunks <= 2  # its only new chunk lists: every page is held


def test_sync_between_stores_of_one_store_key(
    location: Location, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    other_location = conftest.make_location("memory", tmp_path, request)
    src = encrypted(location)
    dst = encrypted(other_location)
    copies = node_history(tmp_path, 2)
    ids = put_days(src, tmp_path, copies)
    writer_src, writer_dst = reopen(location, WRITER_ONLY), reopen(other_location, WRITER_ONLY)
    report = maintenance.sync(writer_src, writer_dst)
    assert report.snapshots_copied == 2
    reader = reopen(other_location, READER_ONLY)
    assert [read(reader, s) for s in ids] == copies
    assert maintenance.check(reader, read_data_fraction=1.0).ok
    assert dst.snapshot_ids() == sorted(ids)


def test_migrate_a_format_1_store_resumes_after_a_kill(
    location: Location, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    other_location = conftest.make_location("memory", tmp_path, request)
    old_settings = replace(small_settings(), version=1)
    old = Store.init(location.url, location.options, old_settings)
    copies = node_history(tmp_path, 3)
    ids = put_days(old, tmp_path, copies)
    new = encrypted(other_location, WRITER_ONLY)
    before = objects(old)

    # Killed while putting the second snapshot: after its packs, before its document.
    calls = {"n": 0}
    original = new.write_document

    def killed(snapshot_id: str, doc: bytes) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        original(snapshot_id, doc)

    new.write_document = killed  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        migrating.migrate(old, new)
    assert len(new.snapshot_ids()) == 1

    again = migrating.migrate(old, reopen(other_location, WRITER_ONLY))
    assert (again.snapshots_copied, again.snapshots_present) == (2, 1)
    reader = reopen(other_location, READER_ONLY)
    assert sorted(reader.snapshot_ids()) == sorted(ids)
    by_id = dict(zip(ids, copies, strict=True))
    assert all(read(reader, s) == by_id[s] for s in ids)
    assert objects(old) == before  # the source only read
    assert StoreConfig().version == 2


def test_a_store_key_file_round_trips_and_refuses_other_keys(tmp_path: Path) -> None:
    key = crypto.StoreKey.generate()
    assert crypto.StoreKey.from_text(key.to_text(), "k").public == key.public
    writer = crypto.WriterKey.generate()
    with pytest.raises(crypto.BadKey, match="not a store key file"):
        crypto.StoreKey.from_text(writer.to_text(), "w.key")
    with pytest.raises(crypto.BadKey, match="not a writer key file"):
        crypto.WriterKey.from_text(key.to_text(), "s.key")


def test_a_put_after_a_rekey_it_did_not_see_seals_to_the_new_key(
    location: Location, tmp_path: Path
) -> None:
    encrypted(location)
    copies = node_history(tmp_path, 2)
    writer = reopen(location, WRITER_ONLY)  # opened before the rekey
    first = put_days(writer, tmp_path, copies[:1])
    new = crypto.StoreKey.generate()
    rekeying.rekey(reopen(location, BOTH_KEYS), new.public)
    later = tmp_path / "later.db"
    later.write_bytes(copies[1])
    second = put(writer, "later", later)
    reader = reopen(location, StoreKeys(new, None))
    assert [read(reader, s) for s in (*first, second)] == copies
