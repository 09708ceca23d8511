"""``snapshot find`` and ``snapshot diff``: what the snapshots hold, across history, read in
place (``store.storedfile``), never restored.

Every snapshot is judged first as ``snapshot sql`` judges it (``cli.querying.judge``). One
chunk cache serves every snapshot a command opens, so a page several snapshots share is
fetched and decoded once.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from cli.app import App, Tier
from cli.output import printable
from cli.querying import DB_MEMBER, judge
from snapshot.errors import StigmemError

if TYPE_CHECKING:
    from snapshot.trust import TrustPolicy
    from store.repository import Store
    from store.storedfile import ChunkCache, StoredFile


@dataclass(frozen=True)
class Seen:
    snapshot_id: str
    created_at: str

    def to_json(self) -> dict[str, str]:
        return {"snapshot_id": self.snapshot_id, "created_at": self.created_at}


def _stored(app: App, sid: str) -> tuple[Store, Tier]:
    for tier in app.all_tiers():
        store = app.store(tier)
        if store.has_snapshot(sid):
            return store, tier
    raise StigmemError(f"snapshot {sid} is in no store of this config")


def _open(store: Store, sid: str, cache: ChunkCache) -> tuple[Any, StoredFile]:
    from store.storedfile import StoredFile, open_database

    stored = StoredFile(store, sid, DB_MEMBER, cache)
    return open_database(stored, f"{sid}.db"), stored


def _rows(conn: Any, query: str, params: tuple[Any, ...] = ()) -> Iterator[dict[str, Any]]:
    cursor = conn.execute(query, params)
    try:
        names = [name for name, _ in cursor.get_description()]
    except Exception:  # no rows, no description
        return
    for row in cursor:
        yield dict(zip(names, row, strict=True))


def find(
    app: App,
    node: str | None,
    since: datetime | None,
    until: datetime | None,
    entity: str,
    relation: str | None,
    value: str | None,
    policy: Callable[[], TrustPolicy],
    force: bool,
) -> tuple[list[dict[str, Any]], int]:
    """The facts matching, each with the first and last snapshot it was seen in and the one
    it was gone in (per node, oldest to newest), newest ``last_seen`` first; and how many
    chunks were decoded."""
    from catalog.records import SnapshotFilter
    from store.storedfile import ChunkCache

    rows = app.catalog().list_snapshots(SnapshotFilter(node=node, since=since, until=until))
    chains: dict[str, list[Any]] = {}
    for row in sorted(rows, key=lambda r: (r.created_at, r.id)):
        if row.tiers:
            chains.setdefault(row.node_id, []).append(row)
    if not chains:
        raise StigmemError("no stored snapshot matches: nothing to search")
    where = ["entity = ?"]
    params: list[Any] = [entity]
    if relation is not None:
        where.append("relation = ?")
        params.append(relation)
    if value is not None:
        where.append("value_v = ?")
        params.append(value)
    query = f"SELECT * FROM facts WHERE {' AND '.join(where)}"
    cache = ChunkCache()
    found: list[dict[str, Any]] = []
    for node_id, chain in sorted(chains.items()):
        first: dict[str, Seen] = {}
        last: dict[str, Seen] = {}
        gone: dict[str, Seen] = {}
        facts: dict[str, dict[str, Any]] = {}
        for row in chain:
            store, _ = _stored(app, row.id)
            judge(app, store, row.id, policy, force)
            conn, _stored_file = _open(store, row.id, cache)
            try:
                here = {str(f["id"]): f for f in _rows(conn, query, tuple(params))}
            finally:
                conn.close()
            seen = Seen(row.id, row.created_at.isoformat())
            for fact_id, fact in here.items():
                first.setdefault(fact_id, seen)
                last[fact_id] = seen
                facts[fact_id] = fact
                gone.pop(fact_id, None)  # back again (a restore to a newer copy)
            for fact_id in last:
                if fact_id not in here and fact_id not in gone:
                    gone[fact_id] = seen
        for fact_id, fact in facts.items():
            found.append(
                {
                    "node_id": node_id,
                    "fact": fact,
                    "first_seen": first[fact_id].to_json(),
                    "last_seen": last[fact_id].to_json(),
                    "gone_in": gone[fact_id].to_json() if fact_id in gone else None,
                }
            )
    found.sort(
        key=lambda f: (f["last_seen"]["created_at"], f["last_seen"]["snapshot_id"]), reverse=True
    )
    return found, cache.decoded


def _tables(conn: Any) -> dict[str, list[str]]:
    """User tables and the columns that key their rows (the primary key, else the rowid)."""
    tables: dict[str, list[str]] = {}
    for (name,) in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
        "ORDER BY name"
    ):
        info = list(conn.execute("SELECT name, pk FROM pragma_table_info(?)", (name,)))
        key = [column for column, pk in sorted(info, key=lambda c: c[1]) if pk]
        tables[str(name)] = key or ["rowid"]
    return tables


def _keyed(conn: Any, table: str, key: list[str]) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    quoted = '"' + table.replace('"', '""') + '"'
    columns = ", ".join('"' + c.replace('"', '""') + '"' if c != "rowid" else "rowid" for c in key)
    out: dict[tuple[Any, ...], tuple[Any, ...]] = {}
    for row in conn.execute(f"SELECT {columns}, * FROM {quoted}"):
        out[tuple(row[: len(key)])] = tuple(row[len(key) :])
    return out


def diff(
    app: App, older: str, newer: str, policy: Callable[[], TrustPolicy], force: bool
) -> dict[str, Any]:
    from store.storedfile import ChunkCache

    catalog = app.catalog()
    a, b = catalog.resolve(older), catalog.resolve(newer)
    cache = ChunkCache()
    opened = []
    for sid in (a, b):
        store, _ = _stored(app, sid)
        judge(app, store, sid, policy, force)
        opened.append(_open(store, sid, cache))
    (conn_a, file_a), (conn_b, file_b) = opened
    try:
        pages = sum(1 for x, y in itertools.zip_longest(file_a.keys, file_b.keys) if x != y)
        tables_a, tables_b = _tables(conn_a), _tables(conn_b)
        tables: dict[str, dict[str, int]] = {}
        facts_added: list[dict[str, Any]] = []
        facts_removed: list[dict[str, Any]] = []
        for table in sorted(set(tables_a) | set(tables_b)):
            rows_a = _keyed(conn_a, table, tables_a[table]) if table in tables_a else {}
            rows_b = _keyed(conn_b, table, tables_b[table]) if table in tables_b else {}
            added = [k for k in rows_b if k not in rows_a]
            removed = [k for k in rows_a if k not in rows_b]
            changed = sum(1 for k, v in rows_b.items() if k in rows_a and rows_a[k] != v)
            tables[table] = {"added": len(added), "removed": len(removed), "changed": changed}
            if table == "facts":
                facts_added = _facts(conn_b, added, tables_b[table])
                facts_removed = _facts(conn_a, removed, tables_a[table])
    finally:
        conn_a.close()
        conn_b.close()
    return {
        "from": a,
        "to": b,
        "pages_changed": pages,
        "tables": tables,
        "facts_added": facts_added,
        "facts_removed": facts_removed,
        "chunks_decoded": cache.decoded,
    }


def _facts(conn: Any, keys: list[tuple[Any, ...]], key: list[str]) -> list[dict[str, Any]]:
    if key != ["id"]:
        return []
    out: list[dict[str, Any]] = []
    for (fact_id,) in keys:
        out.extend(_rows(conn, "SELECT * FROM facts WHERE id = ?", (fact_id,)))
    return out


def diff_markdown(doc: dict[str, Any]) -> str:
    """The diff as an incident-review section: what changed, table by table, then the facts."""
    lines = [
        f"# Changes from snapshot {doc['from'][:12]} to {doc['to'][:12]}",
        "",
        f"- Pages changed: {doc['pages_changed']}",
        "",
        "## Tables",
        "",
        "| table | added | removed | changed |",
        "|---|---|---|---|",
    ]
    for table, counts in doc["tables"].items():
        if any(counts.values()):
            lines.append(
                f"| {table} | {counts['added']} | {counts['removed']} | {counts['changed']} |"
            )
    for title, facts in (
        ("Facts added", doc["facts_added"]),
        ("Facts retracted", doc["facts_removed"]),
    ):
        lines += ["", f"## {title}", ""]
        if not facts:
            lines.append("None.")
        for fact in facts:
            # The database's own text: control characters escaped.
            lines.append(
                printable(
                    f"- `{fact.get('entity')}` {fact.get('relation')} = {fact.get('value_v')!r} "
                    f"({fact.get('timestamp')}, id `{fact.get('id')}`)"
                )
            )
    return "\n".join(lines) + "\n"
