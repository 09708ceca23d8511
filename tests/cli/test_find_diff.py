"""``snapshot find`` and ``snapshot diff`` answer as the restored databases do: find over a
node's daily snapshots names each matching fact's first and last snapshot and the one it was
gone in; diff counts the rows each table gained, lost and changed, and lists the facts."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path
from typing import Any

from tests.conftest import Runner, ok
from tests.nodegen import apply_churn, make_node_db


def facts(copy: Path, where: str = "1", *params: Any) -> dict[str, dict[str, Any]]:
    conn = sqlite3.connect(copy)
    conn.row_factory = sqlite3.Row
    try:
        return {
            r["id"]: dict(r) for r in conn.execute(f"SELECT * FROM facts WHERE {where}", params)
        }
    finally:
        conn.close()


def row_by_row(old: Path, new: Path) -> dict[str, dict[str, int]]:
    out = {}
    a, b = sqlite3.connect(old), sqlite3.connect(new)
    try:
        names = [
            n
            for (n,) in a.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
                " AND sql NOT LIKE 'CREATE VIRTUAL TABLE%'"
            )
        ]
        for name in names:
            info = list(a.execute(f'SELECT name, pk FROM pragma_table_info("{name}")'))
            key = [c for c, pk in sorted(info, key=lambda i: i[1]) if pk] or ["rowid"]
            cols = ", ".join(f'"{c}"' for c, _ in info)
            keys = ", ".join(k if k == "rowid" else f'"{k}"' for k in key)

            def rows(conn: sqlite3.Connection) -> dict[tuple[Any, ...], tuple[Any, ...]]:
                got = conn.execute(f'SELECT {keys}, {cols} FROM "{name}"')  # noqa: B023
                return {r[: len(key)]: r[len(key) :] for r in got}  # noqa: B023

            ra, rb = rows(a), rows(b)
            out[name] = {
                "added": len(rb.keys() - ra.keys()),
                "removed": len(ra.keys() - rb.keys()),
                "changed": sum(1 for k in ra.keys() & rb.keys() if ra[k] != rb[k]),
            }
    finally:
        a.close()
        b.close()
    return out


def history(stigmem: Runner, tmp_path: Path, days: int) -> tuple[Path, list[str], list[Path]]:
    """A node snapshotted daily; the snapshot ids and a copy of the database at each."""
    db = tmp_path / "node" / "stigmem.db"
    db.parent.mkdir()
    make_node_db(db, size_mb=0.5, seed=31)
    ids, copies = [], []
    for day in range(days):
        if day:
            apply_churn(db, day, seed=31, scale=0.5)
        ids.append(ok(stigmem("snapshot", "create", "--db", str(db), "--json")).json()["id"])
        copy = tmp_path / f"copy-{day}.db"
        conn = sqlite3.connect(db)
        conn.execute("VACUUM INTO ?", (str(copy),))  # a test oracle only, never a snapshot
        conn.close()
        copies.append(copy)
    return db, ids, copies


def test_find_names_first_last_and_gone_as_the_restored_copies_say(
    stigmem: Runner, home: Path, tmp_path: Path
) -> None:
    _db, ids, copies = history(stigmem, tmp_path, 5)
    # The node restored to day 2's database: what days 3 and 4 added is gone again.
    shutil.copyfile(copies[2], _db)
    ids.append(ok(stigmem("snapshot", "create", "--db", str(_db), "--json")).json()["id"])
    copies.append(copies[2])
    newer = set(facts(copies[4])) - set(facts(copies[2]))
    entity = facts(copies[4])[sorted(newer)[0]]["entity"]
    doomed = sorted(set(facts(copies[4], "entity = ?", entity)) - set(facts(copies[2])))[0]

    found = ok(stigmem("snapshot", "find", "--entity", entity, "--json")).json()
    expected: dict[str, dict[str, Any]] = {}
    per_copy = [facts(c, "entity = ?", entity) for c in copies]
    for n, here in enumerate(per_copy):
        for fact_id, fact in here.items():
            entry = expected.setdefault(fact_id, {"first": ids[n], "gone": None})
            entry["last"], entry["fact"] = ids[n], fact
            entry["gone"] = None
        for fact_id, entry in expected.items():
            if fact_id not in here and entry["gone"] is None:
                entry["gone"] = ids[n]
    got = {f["fact"]["id"]: f for f in found}
    assert set(got) == set(expected)
    for fact_id, entry in expected.items():
        assert got[fact_id]["fact"] == entry["fact"]
        assert got[fact_id]["first_seen"]["snapshot_id"] == entry["first"]
        assert got[fact_id]["last_seen"]["snapshot_id"] == entry["last"]
        gone = got[fact_id]["gone_in"]
        assert (gone and gone["snapshot_id"]) == (entry["gone"] or None)
    assert got[doomed]["gone_in"]["snapshot_id"] == ids[-1]
    last_seen = [f["last_seen"]["created_at"] for f in found]
    assert last_seen == sorted(last_seen, reverse=True)
    # Each distinct page (chunk) was decoded once, however many snapshots share it.
    (event,) = ok(stigmem("snapshot", "history", "--event", "find", "--json")).json()
    words = event["detail"].split(": ", 1)[1].split()
    decoded, distinct = int(words[2]), int(words[5])
    assert decoded == distinct


def test_diff_counts_rows_and_lists_facts_as_the_copies_say(
    stigmem: Runner, home: Path, tmp_path: Path
) -> None:
    _db, ids, copies = history(stigmem, tmp_path, 2)
    doc = ok(stigmem("snapshot", "diff", ids[0][:10], ids[1][:10], "--json")).json()
    before, after = facts(copies[0]), facts(copies[1])
    added = set(after) - set(before)
    removed = set(before) - set(after)
    changed = {k for k in set(before) & set(after) if before[k] != after[k]}
    assert doc["from"] == ids[0] and doc["to"] == ids[1]
    assert doc["tables"]["facts"] == {
        "added": len(added),
        "removed": len(removed),
        "changed": len(changed),
    }
    # Every table, row by row from the two copies, keyed by primary key (else rowid).
    for table, counts in row_by_row(copies[0], copies[1]).items():
        assert doc["tables"][table] == counts, table
    assert {f["id"] for f in doc["facts_added"]} == added
    assert all(f == after[f["id"]] for f in doc["facts_added"])
    assert {f["id"] for f in doc["facts_removed"]} == removed
    assert doc["pages_changed"] > 0
    same = ok(stigmem("snapshot", "diff", ids[1][:10], ids[1][:10], "--json")).json()
    assert same["pages_changed"] == 0
    assert all(c == {"added": 0, "removed": 0, "changed": 0} for c in same["tables"].values())
    markdown = ok(stigmem("snapshot", "diff", ids[0][:10], ids[1][:10], "--format", "markdown"))
    text = markdown.stdout
    assert text.startswith("# Stigmem Snapshot Diff — ")
    assert f"- **From:** {ids[0]}" in text and f"- **To:** {ids[1]}" in text
    for fact_id in added:
        fact = after[fact_id]
        assert f"## {fact['entity']} — added" in text
        assert f"- **{fact['relation']}** (source={fact['source']}, " in text
    assert "## Table Changes" in text and "| facts |" in text
