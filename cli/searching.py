"""``snapshot find`` and ``snapshot diff``: what the snapshots hold, across history, read in
place (``store.storedfile``), never restored.

Every snapshot is judged first as ``snapshot sql`` judges it (``cli.querying.judge``). One
chunk cache serves every snapshot a command opens, so a page several snapshots share is
fetched and decoded once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from cli.app import App
from cli.output import printable
from cli.querying import DB_MEMBER, judge
from cli.sources import source_for
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


def _open(
    store: Store, sid: str, cache: ChunkCache, document: dict[str, Any]
) -> tuple[Any, StoredFile]:
    from store.storedfile import StoredFile, open_database

    stored = StoredFile(store, sid, DB_MEMBER, cache, document)
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
) -> tuple[list[dict[str, Any]], tuple[int, int]]:
    """The facts matching, each with the first and last snapshot it was seen in and the one
    it was gone in (per node, oldest to newest), newest ``last_seen`` first; and how many
    chunks were decoded, and how many distinct chunks the queries read."""
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
            store = source_for(app, row.id).store
            document = store.load_document(row.id)
            judge(app, row.id, document, policy, force, row.last_verify_outcome)
            conn, _stored_file = _open(store, row.id, cache, document)
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
    return found, (cache.decoded, len(cache.touched))


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _tables(conn: Any, schema: str) -> dict[str, tuple[list[str], list[str]]]:
    """User tables of ``schema``: (the columns that key a row, every column). A row is keyed
    by what orders the table's own b-tree, so both snapshots are read in page order: the
    rowid, or the primary key of a WITHOUT ROWID table. (A row keeps its rowid in a live
    database; ordered by another key, every row would be a lookup at a random page.)"""
    tables: dict[str, tuple[list[str], list[str]]] = {}
    for name, sql in conn.execute(
        f"SELECT name, sql FROM {schema}.sqlite_master WHERE type = 'table' "
        "AND name NOT LIKE 'sqlite_%' AND sql NOT LIKE 'CREATE VIRTUAL TABLE%' ORDER BY name"
    ):
        info = list(conn.execute(f"SELECT name, pk FROM {schema}.pragma_table_info(?)", (name,)))
        key = ["rowid"]
        if "WITHOUT ROWID" in str(sql).upper():
            key = [column for column, pk in sorted(info, key=lambda c: c[1]) if pk]
        tables[str(name)] = (key, [column for column, _ in info])
    return tables


@dataclass
class _TableDiff:
    added: list[tuple[Any, ...]]
    removed: list[tuple[Any, ...]]
    changed: int

    def counts(self) -> dict[str, int]:
        return {"added": len(self.added), "removed": len(self.removed), "changed": self.changed}


def _merged(conn: Any, table: str, key: list[str], columns: list[str]) -> _TableDiff:
    """Both snapshots' rows of ``table`` in key order, read side by side once: each page is
    read once per snapshot, and a page both hold is decoded once (the chunk cache holds it
    between the two reads). Raises TypeError for keys Python cannot order as SQLite does
    (mixed types, NULL): the caller lets SQLite count those."""
    t = _q(table)
    keys = ", ".join("rowid" if k == "rowid" else _q(k) for k in key)
    cols = ", ".join(_q(c) for c in columns)
    n = len(key)
    rows_a = iter(conn.cursor().execute(f"SELECT {keys}, {cols} FROM main.{t} ORDER BY {keys}"))
    rows_b = iter(conn.cursor().execute(f"SELECT {keys}, {cols} FROM b.{t} ORDER BY {keys}"))
    added: list[tuple[Any, ...]] = []
    removed: list[tuple[Any, ...]] = []
    changed = 0
    a, b = next(rows_a, None), next(rows_b, None)
    while a is not None or b is not None:
        if b is None or (a is not None and a[:n] < b[:n]):
            removed.append(a[:n])  # type: ignore[index]
            a = next(rows_a, None)
        elif a is None or b[:n] < a[:n]:
            added.append(b[:n])
            b = next(rows_b, None)
        else:
            if a[:n] != b[:n]:
                raise TypeError(f"table {table}: keys SQLite orders and Python does not")
            changed += a != b
            a, b = next(rows_a, None), next(rows_b, None)
    return _TableDiff(added, removed, changed)


def _counts(conn: Any, table: str, key: list[str], columns: list[str]) -> dict[str, int]:
    """Rows of ``table`` added in ``b``, removed from ``main``, and changed (same key, other
    values in the columns both have), counted by SQLite: its temporary b-trees, not Python
    memory, hold the rows."""
    t = _q(table)
    keys = ", ".join("rowid" if k == "rowid" else _q(k) for k in key)
    cols = ", ".join(_q(c) for c in columns)
    on = " AND ".join(
        f"a.{'rowid' if k == 'rowid' else _q(k)} IS b.{'rowid' if k == 'rowid' else _q(k)}"
        for k in key
    )

    def count(sql: str) -> int:
        return int(conn.execute(sql).fetchone()[0])

    added = count(
        f"SELECT count(*) FROM (SELECT {keys} FROM b.{t} EXCEPT SELECT {keys} FROM main.{t})"
    )
    removed = count(
        f"SELECT count(*) FROM (SELECT {keys} FROM main.{t} EXCEPT SELECT {keys} FROM b.{t})"
    )
    common = count(f"SELECT count(*) FROM main.{t} AS a JOIN b.{t} AS b ON {on}")
    same = count(
        f"SELECT count(*) FROM (SELECT {keys}, {cols} FROM main.{t} "
        f"INTERSECT SELECT {keys}, {cols} FROM b.{t})"
    )
    return {"added": added, "removed": removed, "changed": common - same}


def diff(
    app: App, older: str, newer: str, policy: Callable[[], TrustPolicy], force: bool
) -> dict[str, Any]:
    from store.storedfile import ChunkCache, StoredFile, open_database, register

    catalog = app.catalog()
    a, b = catalog.resolve(older), catalog.resolve(newer)
    cache = ChunkCache()
    files = []
    for sid in (a, b):
        store = source_for(app, sid).store
        document = store.load_document(sid)
        judge(app, sid, document, policy, force)
        files.append(StoredFile(store, sid, DB_MEMBER, cache, document))
    file_a, file_b = files
    conn = open_database(file_a, f"{a}.db")
    try:
        # The second snapshot through the same VFS, so SQLite compares the two itself.
        register(file_b, f"{b}.db")
        conn.execute(f"ATTACH DATABASE 'file:{b}.db?immutable=1' AS b")
        pages = abs(len(file_a) - len(file_b)) + sum(
            1 for n in range(min(len(file_a), len(file_b))) if file_a.key(n) != file_b.key(n)
        )
        tables_a, tables_b = _tables(conn, "main"), _tables(conn, "b")
        tables: dict[str, dict[str, int]] = {}
        facts_added: list[dict[str, Any]] = []
        facts_removed: list[dict[str, Any]] = []
        for table in sorted(set(tables_a) | set(tables_b)):
            if table not in tables_b:
                n = int(conn.execute(f"SELECT count(*) FROM main.{_q(table)}").fetchone()[0])
                tables[table] = {"added": 0, "removed": n, "changed": 0}
            elif table not in tables_a:
                n = int(conn.execute(f"SELECT count(*) FROM b.{_q(table)}").fetchone()[0])
                tables[table] = {"added": n, "removed": 0, "changed": 0}
            else:
                key = tables_a[table][0]
                common = [c for c in tables_a[table][1] if c in tables_b[table][1]]
                try:
                    merged = _merged(conn, table, key, common)
                except TypeError:
                    tables[table] = _counts(conn, table, key, common)
                    continue
                tables[table] = merged.counts()
                if table == "facts":
                    facts_added = _by_rowid(conn, "b", merged.added)
                    facts_removed = _by_rowid(conn, "main", merged.removed)
    finally:
        conn.close()
    return {
        "from": a,
        "to": b,
        "pages_changed": pages,
        "tables": tables,
        "facts_added": facts_added,
        "facts_removed": facts_removed,
        "chunks_decoded": cache.decoded,
    }


def _by_rowid(conn: Any, schema: str, keys: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
    """The rows of ``schema``'s facts at rowids ``keys``, in that order: a query per few
    hundred, not one per row."""
    found: dict[Any, dict[str, Any]] = {}
    rowids = [rowid for (rowid,) in keys]
    for start in range(0, len(rowids), 500):
        chunk = rowids[start : start + 500]
        marks = ",".join("?" * len(chunk))
        query = f"SELECT rowid AS _stigmem_rowid, * FROM {schema}.facts WHERE rowid IN ({marks})"
        for row in _rows(conn, query, tuple(chunk)):
            found[row.pop("_stigmem_rowid")] = row
    return [found[rowid] for rowid in rowids if rowid in found]


def diff_markdown(doc: dict[str, Any], node: str, created: tuple[str, str]) -> str:
    """The diff in the layout of the runbook's Markdown review (``snapshot.markdown``): a
    header, a section per entity with the facts added and retracted, each fact as the review
    prints one, then the tables that changed. ``created``: when each snapshot was taken."""
    from snapshot.markdown import AUTO_GENERATED, Fact

    def fact_line(fact: dict[str, Any]) -> str:
        """The fact as the review prints one (``Fact.line``); a row whose confidence or
        value will not convert, as it is."""
        try:
            line = Fact(
                entity=str(fact.get("entity")),
                relation=str(fact.get("relation")),
                value_type=str(fact.get("value_type")),
                value_v=str(fact.get("value_v")),
                source=str(fact.get("source")),
                confidence=float(fact.get("confidence") or 0),
                quarantine_status=None,
            ).line()
        except (TypeError, ValueError):
            line = (
                f"- **{fact.get('relation')}** (source={fact.get('source')}, "
                f"conf={fact.get('confidence')}): {fact.get('value_v')}"
            )
        # The database's own text: control characters escaped.
        return printable(line)

    lines = [
        f"# Stigmem Snapshot Diff — {created[1]}",
        "",
        AUTO_GENERATED.replace("snapshot export", "snapshot diff"),
        "",
        f"- **Node:** {printable(node)}",
        f"- **From:** {doc['from']} ({created[0]})",
        f"- **To:** {doc['to']} ({created[1]})",
        f"- **Pages changed:** {doc['pages_changed']}",
        "",
    ]
    by_entity: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for kind, facts in (("added", doc["facts_added"]), ("retracted", doc["facts_removed"])):
        for fact in facts:
            by_entity.setdefault(str(fact.get("entity")), {}).setdefault(kind, []).append(fact)
    if not by_entity:
        lines += ["_No facts added or retracted._", ""]
    for entity in sorted(by_entity):
        for kind in ("added", "retracted"):
            facts = by_entity[entity].get(kind, [])
            if facts:
                lines += [f"## {printable(entity)} — {kind}", ""]
                lines += [fact_line(f) for f in facts]
                lines.append("")
    lines += ["## Table Changes", "", "| Table | Added | Removed | Changed |", "|---|---|---|---|"]
    for table, counts in doc["tables"].items():
        if any(counts.values()):
            lines.append(
                f"| {printable(table)} | {counts['added']} | {counts['removed']} | "
                f"{counts['changed']} |"
            )
    return "\n".join(lines) + "\n"
