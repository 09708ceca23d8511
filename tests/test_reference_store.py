"""The store as written matches docs/design.md section 5: an independent reader written from
that section alone (tests/reference_store.py) rebuilds every artifact of stored snapshots, in
both framings, to the digests their manifests sign."""

from __future__ import annotations

import hashlib
import json
import random
import sqlite3
from pathlib import Path

import pytest

from tests.conftest import Runner, ok
from tests.reference_store import ReferenceStore


def grow(db: Path, rows: int, seed: int) -> None:
    rng = random.Random(seed)
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE IF NOT EXISTS node_meta (key TEXT PRIMARY KEY, value TEXT)")
    conn.execute(
        "INSERT OR IGNORE INTO node_meta VALUES ('node_id', 'stigmem:node:reference-store')"
    )
    conn.execute("CREATE TABLE IF NOT EXISTS facts (id TEXT PRIMARY KEY, body TEXT)")
    conn.executemany(
        "INSERT INTO facts VALUES (?, ?)",
        [
            (
                f"{rng.getrandbits(128):032x}",
                " ".join(rng.choice("abcdefgh") * 5 for _ in range(40)),
            )
            for _ in range(rows)
        ],
    )
    conn.commit()
    conn.close()


@pytest.mark.parametrize("dictionary_size", [None, 0], ids=["frame-per-chunk", "multi-chunk"])
def test_an_independent_reader_rebuilds_every_artifact(
    stigmem: Runner, tmp_path: Path, dictionary_size: int | None
) -> None:
    store = tmp_path / "store"
    ok(stigmem("store", "init", str(store)))
    if dictionary_size is not None:
        config = json.loads((store / "config.json").read_text())
        config["compression"]["dictionary_size"] = dictionary_size
        (store / "config.json").write_text(json.dumps(config))
    key = tmp_path / "node.key"
    ok(stigmem("keys", "generate", "--out", str(key)))
    db = tmp_path / "stigmem.db"
    ids = []
    for day in range(2):
        grow(db, 1500, seed=day)
        created = ok(
            stigmem(
                "--store",
                str(store),
                "snapshot",
                "create",
                "--db",
                str(db),
                "--sign-with",
                str(key),
                "--json",
            )
        )
        ids.append(created.json()["id"])

    reader = ReferenceStore(store)
    for snapshot_id in ids:
        manifest = reader.document(snapshot_id)["manifest"]
        for member, digest in manifest["artifacts"].items():
            data = reader.artifact(snapshot_id, member)
            assert f"sha256:{hashlib.sha256(data).hexdigest()}" == digest
    # The framing asked for is the one written: dictionaries only where frames hold one chunk.
    assert bool(reader.dictionaries) == (dictionary_size is None)
    # Every chunk the index names is listed, at the same place, by its pack's own trailer.
    packs = {location[0] for location in reader.locations.values()}
    from_trailers = {
        name: (pack, *fields) for pack in packs for name, *fields in reader.pack_records(pack)
    }
    assert reader.locations == from_trailers
