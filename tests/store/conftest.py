"""Store test fixtures: one store location per test on memory, a local directory and S3,
with and without this host's local cache.

S3 is moto's real HTTP server on 127.0.0.1, reached through s3fs with ``endpoint_url`` as
s3fs' own tests do; it is skipped (with the reason) when the server cannot start. The suite
runs without a cache on every backend and with one on a memory store: the cache's
logic does not depend on the backend.
"""

from __future__ import annotations

import hashlib
import random
import sqlite3
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from store.localcache import LocalCache

# The S3 server is shared with the command-line tests: one moto server per session.
from tests.conftest import BUCKET, s3_options

__all__ = ["BUCKET", "s3_options"]  # re-exported: store tests import them from here


@dataclass(frozen=True)
class Location:
    kind: str
    url: str
    options: dict[str, Any]
    cache: LocalCache | None = None  # hand it to Store.init / Store.open


def make_location(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Location:
    name = uuid.uuid4().hex
    kind, cached, _ = kind.partition("+cache")
    cache = LocalCache(tmp_path / f"cache-{name}") if cached else None
    if kind == "memory":
        return Location(kind, f"memory://stigmem-tests/{name}", {}, cache)
    if kind == "local":
        return Location(kind, str(tmp_path / f"store-{name}"), {}, cache)
    endpoint = request.getfixturevalue("s3_endpoint")
    return Location(kind, f"s3://{BUCKET}/{name}", s3_options(endpoint), cache)


@pytest.fixture(params=["memory", "local", "s3", "memory+cache"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> Location:
    return make_location(request.param, tmp_path, request)


@pytest.fixture(params=["memory", "local", "s3"])
def other_location(request: pytest.FixtureRequest, tmp_path: Path) -> Location:
    return make_location(request.param, tmp_path, request)


def make_db(path: Path, rows: int, seed: int = 0, page_size: int = 4096) -> Path:
    """A real SQLite database of ``rows`` memories with varied, compressible text."""
    rng = random.Random(seed)
    words = ["memory", "node", "federation", "cursor", "fact", "event", "stigmem", "peer"]
    con = sqlite3.connect(path)
    con.execute(f"PRAGMA page_size={page_size}")
    con.execute("CREATE TABLE memories (id INTEGER PRIMARY KEY, body TEXT)")
    con.executemany(
        "INSERT INTO memories (body) VALUES (?)",
        [
            (" ".join(rng.choice(words) for _ in range(rng.randint(10, 60))) + f" #{i}",)
            for i in range(rows)
        ],
    )
    con.commit()
    con.close()
    return path


def change_rows(path: Path, ids: list[int], text: str) -> None:
    con = sqlite3.connect(path)
    con.executemany("UPDATE memories SET body = ? WHERE id = ?", [(f"{text} {i}", i) for i in ids])
    con.commit()
    con.close()


def small_settings() -> Any:
    """Tiny frames, packs and chunk lists, so small test databases span several of each."""
    from store.config import StoreConfig

    return StoreConfig(frame_size=16 << 10, pack_size=64 << 10, hashes_per_list=64, direct_max=8)


def framed_settings() -> Any:
    """``small_settings`` as stores made before dictionaries: pages compressed together in
    frames of ``frame_size`` (16 KiB, 4 pages)."""
    import dataclasses

    return dataclasses.replace(small_settings(), dictionary_size=0)


DB = "artifacts/stigmem.db"
CURSOR = "artifacts/schema_migration_cursor.json"
CURSOR_BYTES = b'{"applied_migrations": ["001_init"]}'
BOTH = (CURSOR, DB)


def manifest(
    label: str, members: tuple[str, ...] = BOTH, contents: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A stand-in manifest for store tests (the store never checks signatures): what makes a
    document this snapshot's is that its manifest hashes to the id and signs its members.
    With ``contents`` (member -> bytes or path) it signs their real digests, which a full
    check (``read_data_fraction=1.0``) compares the rebuilt artifacts with."""

    def digest(member: str) -> str:
        if contents is None:
            return "0" * 64
        data = contents[member]
        return hashlib.sha256(data if isinstance(data, bytes) else data.read_bytes()).hexdigest()

    chosen = tuple(sorted(contents)) if contents is not None else members
    return {"version": 1, "label": label, "artifacts": {m: f"sha256:{digest(m)}" for m in chosen}}


def sid(label: str, members: tuple[str, ...] = BOTH, contents: dict[str, Any] | None = None) -> str:
    """The snapshot id of ``manifest(label, members, contents)``."""
    from snapshot.manifest import signed_bytes

    return hashlib.sha256(signed_bytes(manifest(label, members, contents))).hexdigest()
