"""JSON read from a store (config.json, snapshot documents, locks) is untrusted: a hostile
one is refused (a snapshot document as ``malformed``, config.json with a StoreError), or for
a lock ignored as unreadable, never a crash."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from snapshot.errors import StoreError, VerificationError
from store import layout
from store.repository import Store

SID = "ab" * 32


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store.init(str(tmp_path / "store"), {})


@pytest.mark.parametrize("pid", ["1e400", str(2**70), str(-(2**40)), "0", "-1"])
def test_a_lock_with_an_impossible_pid_does_not_stop_the_store(store: Store, pid: str) -> None:
    # On this host, so that the pid is checked for a live process.
    host = json.dumps(socket.gethostname())
    body = f'{{"kind": "exclusive", "host": {host}, "pid": {pid}, "time": 1.0}}'
    store.backend.write(layout.lock_path("exclusive-planted.json"), body.encode())
    with store.lock("shared"):  # an unreadable lock counts as stale (its time is unknown)
        pass


def test_a_deeply_nested_lock_is_unreadable_not_a_crash(store: Store) -> None:
    store.backend.write(layout.lock_path("shared-deep.json"), b"[" * 100_000)
    with store.lock("shared"):
        pass


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b'{"manifest": ' * 50_000, "nests deeper"),
        (b'{"manifest": {}, "artifacts": {"a": {"size": ' + b"9" * 5_000 + b"}}}", "digits"),
    ],
)
def test_a_hostile_snapshot_document_is_malformed(store: Store, body: bytes, problem: str) -> None:
    store.backend.write(layout.snapshot_path(SID), body)
    with pytest.raises(VerificationError, match=problem):
        store.load_document(SID)


def test_a_chunk_name_that_is_not_hex_is_refused(store: Store) -> None:
    entry = {"size": 1, "chunk_lists": False, "chunks": ["zz" * 32]}
    doc = {"manifest": {}, "artifacts": {"artifacts/stigmem.db": entry}}
    store.backend.write(layout.snapshot_path(SID), json.dumps(doc).encode())
    with pytest.raises(VerificationError, match="malformed"):
        store.load_document(SID)


def test_a_negative_artifact_size_is_refused(store: Store) -> None:
    entry = {"size": -5, "chunk_lists": False, "chunks": []}
    doc = {"manifest": {}, "artifacts": {"artifacts/stigmem.db": entry}}
    store.backend.write(layout.snapshot_path(SID), json.dumps(doc).encode())
    with pytest.raises(VerificationError, match="malformed"):
        store.load_document(SID)


@pytest.mark.parametrize(
    "body",
    [
        b'{"format": "stigmem-store", "x": ' * 10_000,
        b'{"format": "stigmem-store", "version": 1e400}',
    ],
)
def test_a_hostile_store_config_is_a_store_error(tmp_path: Path, body: bytes) -> None:
    root = tmp_path / "store"
    Store.init(str(root), {})
    (root / "config.json").write_bytes(body)
    with pytest.raises(StoreError):
        Store.open(str(root), {})
