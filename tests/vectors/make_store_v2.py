"""Make the published test vector of an encrypted format-2 store (docs/design.md section 5,
"Test vectors"): ``python -m tests.vectors.make_store_v2`` writes ``tests/vectors/store-v2``.

Run once; the store it wrote is committed and read by tests/store/test_vectors.py. Pack keys
and seals are random, so running it again makes another, equally valid, vector.
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
from pathlib import Path

from store import crypto
from store.config import StoreConfig
from store.encryption import StoreKeys
from store.repository import Store
from tests.store import conftest

HERE = Path(__file__).parent
STORE = HERE / "store-v2"
DB = "artifacts/stigmem.db"
# Fixed, published, and good for nothing else.
STORE_KEY = crypto.StoreKey(bytes(range(32)))
WRITER_KEY = crypto.WriterKey(bytes(range(32, 64)))


def vector_db(path: Path) -> Path:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA page_size=4096")
    conn.execute("CREATE TABLE facts (id INTEGER PRIMARY KEY, entity TEXT, value TEXT)")
    conn.executemany(
        "INSERT INTO facts (entity, value) VALUES (?, ?)",
        [(f"team:vector-{i % 7}", f"on-call rotation entry {i} " * 4) for i in range(300)],
    )
    conn.commit()
    conn.close()
    return path


def main() -> None:
    if STORE.exists():
        shutil.rmtree(STORE)
    with tempfile.TemporaryDirectory() as scratch:
        db = vector_db(Path(scratch) / "vector.db")
        settings = StoreConfig(
            encrypt_to=STORE_KEY.public, pack_size=16 << 10, hashes_per_list=16, direct_max=2
        )
        store = Store.init(str(STORE), settings=settings, keys=StoreKeys(STORE_KEY, WRITER_KEY))
        snapshot_id = conftest.sid("vector", contents={DB: db})
        store.put_snapshot(snapshot_id, conftest.manifest("vector", contents={DB: db}), {DB: db})
        (HERE / "store-v2.key").write_text(STORE_KEY.to_text())
        (HERE / "writer-v2.key").write_text(WRITER_KEY.to_text())
        print(snapshot_id, crypto.b64(STORE_KEY.public), STORE_KEY.key_id, WRITER_KEY.key_id)


if __name__ == "__main__":
    main()
