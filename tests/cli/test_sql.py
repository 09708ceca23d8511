"""``snapshot sql``: a query on a stored snapshot, in place, answers as the restored database
does, reads few pages for a point query, refuses statements that write, and refuses
snapshots that do not verify; on an encrypted store it needs the store key."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from store import layout
from store.repository import Store
from tests.conftest import Runner, ok
from tests.nodegen import make_node_db


def node(tmp_path: Path, size_mb: float = 2) -> Path:
    db = tmp_path / "node" / "stigmem.db"
    db.parent.mkdir(parents=True, exist_ok=True)
    make_node_db(db, size_mb=size_mb, seed=21)
    return db


def direct(db: Path, query: str, *params: object) -> list[dict[str, object]]:
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(row) for row in conn.execute(query, params)]
    finally:
        conn.close()


def pages_read(stigmem: Runner, sid: str) -> tuple[int, int]:
    (event,) = [
        e
        for e in ok(stigmem("snapshot", "history", "--snapshot", sid, "--json")).json()
        if e["event"] == "sql"
    ][:1]
    words = event["detail"].split()
    return int(words[2]), int(words[4])  # "<n> rows, <read> of <total> pages read: ..."


def test_answers_as_the_restored_database_reading_few_pages(
    stigmem: Runner, home: Path, tmp_path: Path
) -> None:
    db = node(tmp_path)
    sid = ok(stigmem("snapshot", "create", "--db", str(db), "--json")).json()["id"]
    (fact_id,) = [r["id"] for r in direct(db, "SELECT id FROM facts ORDER BY id LIMIT 1 OFFSET 7")]

    point = ok(
        stigmem("snapshot", "sql", sid[:10], "SELECT * FROM facts WHERE id = ?", fact_id, "--json")
    ).json()
    assert point == direct(db, "SELECT * FROM facts WHERE id = ?", fact_id)
    read, total = pages_read(stigmem, sid)
    assert read * 20 < total  # a point query touches a few b-tree pages, not the database

    aggregate = "SELECT entity, count(*) AS n, max(timestamp) AS t FROM facts GROUP BY entity"
    assert ok(stigmem("snapshot", "sql", sid[:10], aggregate, "--json")).json() == direct(
        db, aggregate
    )
    as_csv = ok(stigmem("snapshot", "sql", sid[:10], "SELECT count(*) AS n FROM facts", "--csv"))
    assert as_csv.stdout == f"n\n{direct(db, 'SELECT count(*) AS n FROM facts')[0]['n']}\n"


def test_statements_that_write_are_refused_and_nothing_changes(
    stigmem: Runner, home: Path, tmp_path: Path
) -> None:
    db = node(tmp_path, 0.3)
    sid = ok(stigmem("snapshot", "create", "--db", str(db), "--json")).json()["id"]
    store = Store.open(str(home / "store"))
    before = {e.path: e.size for e in store.backend.list() if not e.path.startswith("locks")}
    for statement in (
        "DELETE FROM facts",
        "UPDATE facts SET value_v = 'x'",
        "CREATE TABLE x(a)",
        "ATTACH DATABASE '/tmp/other.db' AS other",
        "PRAGMA writable_schema = ON",
    ):
        refused = stigmem("snapshot", "sql", sid[:10], statement)
        assert refused.returncode == 2, (statement, refused)
        assert refused.stderr.count("\n") == 1
    after = {e.path: e.size for e in store.backend.list() if not e.path.startswith("locks")}
    assert after == before


def test_untrusted_and_damaged_snapshots_are_not_queried(
    stigmem: Runner, home: Path, tmp_path: Path
) -> None:
    db = node(tmp_path, 0.5)
    sid = ok(stigmem("snapshot", "create", "--db", str(db), "--json")).json()["id"]
    other = ok(stigmem("keys", "generate", "--json")).json()["pub"]
    query = "SELECT count(*) AS n FROM facts"
    untrusted = stigmem("snapshot", "sql", sid[:10], query, "--trusted-key", other)
    assert untrusted.returncode == 3 and "untrusted_key" in untrusted.stderr
    forced = stigmem(
        "snapshot", "sql", sid[:10], query, "--trusted-key", other, "--force-unverified", "--json"
    )
    assert ok(forced).json() == direct(db, query)

    # The frame of the database's first page, which every query reads.
    store = Store.open(str(home / "store"))
    entry = store.load_document(sid)["artifacts"]["artifacts/stigmem.db"]
    first = next(iter(store.chunk_source(sid).windows(entry)))[0]
    where = store.index().lookup(first)
    assert where is not None
    pack = home / "store" / layout.pack_path(where.pack)
    data = bytearray(pack.read_bytes())
    data[where.frame_offset + where.frame_length // 2] ^= 0xFF
    pack.write_bytes(bytes(data))
    damaged = stigmem("snapshot", "sql", sid[:10], "SELECT * FROM facts")
    assert damaged.returncode == 3, damaged
    assert "checksum_error" in damaged.stderr and damaged.stderr.count("\n") == 1


def test_an_encrypted_store_needs_its_store_key(
    stigmem: Runner, home: Path, tmp_path: Path
) -> None:
    store_key, writer_key = tmp_path / "store.key", tmp_path / "writer.key"
    out = ok(stigmem("keys", "generate", "--store", "--out", str(store_key))).stdout
    pub = out.split("pub: ")[1].split()[0]
    ok(stigmem("keys", "generate", "--writer", "--out", str(writer_key)))
    ok(stigmem("store", "init", str(home / "store"), "--encrypt-to", pub))
    db = node(tmp_path, 0.5)
    writer = {"STIGMEM_WRITER_KEY": str(writer_key)}
    sid = ok(stigmem("snapshot", "create", "--db", str(db), "--json", env=writer)).json()["id"]
    query = "SELECT count(*) AS n FROM facts"
    refused = stigmem("snapshot", "sql", sid[:10], query, env=writer)
    assert refused.returncode == 1 and "needs the store key" in refused.stderr
    answered = stigmem(
        "snapshot", "sql", sid[:10], query, "--json", env={"STIGMEM_STORE_KEY": str(store_key)}
    )
    assert json.loads(ok(answered).stdout) == direct(db, query)
