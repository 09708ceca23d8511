"""Reading a snapshot from a store: the requests one read makes (each is a round trip to S3)."""

from __future__ import annotations

import collections
import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cli.app import Tier
from cli.sources import ReadResult, StoreSource
from snapshot.manifest import CURSOR_MEMBER, DB_MEMBER, sign_manifest
from store.repository import Store
from tests.store.conftest import Location, make_db, make_location, small_settings


@pytest.fixture(params=["memory", "local", "s3"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> Location:
    return make_location(request.param, tmp_path, request)


def counted(store: Store, monkeypatch: pytest.MonkeyPatch) -> collections.Counter[str]:
    """Calls to the store's backend, by method and the folder of the path asked for."""
    calls: collections.Counter[str] = collections.Counter()
    backend = store.backend
    for name in ("list", "read", "read_range", "names", "exists"):
        real = getattr(backend, name)

        def counting(*args: Any, _real: Any = real, _name: str = name, **kwargs: Any) -> Any:
            where = str(args[0]).split("/")[0] if args else ""
            calls[f"{_name} {where}"] += 1
            return _real(*args, **kwargs)

        monkeypatch.setattr(backend, name, counting)
    return calls


def test_a_read_reads_the_document_once_and_lists_the_index_once_per_artifact(
    location: Location, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store.init(location.url, location.options, settings=small_settings())
    db = make_db(tmp_path / "node.db", 3000)
    cursor = b'{"applied_migrations": ["001_init"]}'
    manifest = sign_manifest(
        created_at=datetime.now(UTC),
        node_id="node-a",
        db_sha256=hashlib.sha256(db.read_bytes()).hexdigest(),
        cursor_sha256=hashlib.sha256(cursor).hexdigest(),
        private_key=Ed25519PrivateKey.generate(),
    )
    store.put_snapshot(manifest.snapshot_id, manifest.raw, {DB_MEMBER: db, CURSOR_MEMBER: cursor})
    store.forget_index()  # as the next command finds the store

    calls = counted(store, monkeypatch)
    source = StoreSource(store, Tier("t", location.url, location.options), manifest.snapshot_id)
    written: list[bytes] = []
    state = ReadResult(None)
    source.read(lambda data: written.append(bytes(data)), state)  # its buffer is reused
    assert b"".join(written) == db.read_bytes()
    assert state.actual[DB_MEMBER] == f"sha256:{manifest.db_sha256}"
    assert state.cursor == cursor
    assert calls["read snapshots"] + calls["read_range snapshots"] == 1
    # Each artifact's read lists the index again: reads take no lock, and a gc in between
    # may have replaced the index objects.
    assert calls["list index"] == 2
