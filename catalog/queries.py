"""Reading the catalog: id prefixes, ``snapshot list`` / ``show`` / ``history``, prune input.

Every query is shaped for the indexes of ``catalog.tables``: prefixes are a range on the
primary key (``id >= prefix AND id < next prefix``), listings walk ``(node_id, created_at,
id)`` or ``(created_at, id)`` newest first and stop at the limit, the tier filter is an EXISTS
on the live-placement index, and verification state is read from the snapshot row itself.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Select, Table, exists, func, or_, select
from sqlalchemy.engine import Connection, Row

from catalog.records import PruneCandidate, SnapshotFilter, SnapshotSummary, iso
from catalog.tables import drills, events, keys, placements, restores, snapshots, verifications
from catalog.upsert import check_snapshot_id
from snapshot import boundedjson
from snapshot.errors import AmbiguousError, CatalogError, UsageError

if TYPE_CHECKING:
    from catalog.health import NodeFacts

MIN_PREFIX = 6
VERIFIED = ("ok", "failed", "never")
_HEX = re.compile(r"[0-9a-f]+")
_IN_CHUNK = 500


def _next_prefix(prefix: str) -> str | None:
    """The smallest hex string greater than every string starting with ``prefix``."""
    stripped = prefix.rstrip("f")
    if not stripped:
        return None
    last = stripped[-1]
    return stripped[:-1] + "0123456789abcdef"["0123456789abcdef".index(last) + 1]


def known_ids(conn: Connection, ids: list[str]) -> list[str]:
    found: list[str] = []
    # Bounded IN lists: SQLite caps bound parameters, and stores hold thousands of ids.
    for start in range(0, len(ids), 500):
        batch = ids[start : start + 500]
        found += conn.execute(select(snapshots.c.id).where(snapshots.c.id.in_(batch))).scalars()
    return sorted(found)


def resolve(conn: Connection, prefix: str) -> str:
    wanted = prefix.strip().lower()
    if not _HEX.fullmatch(wanted) or len(wanted) > 64:
        raise CatalogError(f"{prefix!r} is not a snapshot id or id prefix (hex digits)")
    if len(wanted) < MIN_PREFIX:
        raise CatalogError(
            f"snapshot id prefix {prefix!r} is too short (give at least {MIN_PREFIX} hex digits)"
        )
    stmt = select(snapshots.c.id).where(snapshots.c.id >= wanted)
    upper = _next_prefix(wanted)
    if upper is not None:
        stmt = stmt.where(snapshots.c.id < upper)
    found = list(conn.execute(stmt.order_by(snapshots.c.id).limit(6)).scalars())
    if not found:
        raise CatalogError(f"no snapshot {prefix!r} in the catalog")
    if len(found) > 1:
        shown = ", ".join(found[:5]) + (", ..." if len(found) > 5 else "")
        raise AmbiguousError(f"snapshot id prefix {prefix!r} is ambiguous: {shown}")
    return found[0]


def _summary_select() -> Select[*tuple[Any, ...]]:
    return select(
        snapshots.c.id,
        snapshots.c.node_id,
        snapshots.c.created_at,
        snapshots.c.db_sha256,
        snapshots.c.db_size,
        snapshots.c.signer_key_id,
        snapshots.c.pinned,
        snapshots.c.last_verified_at,
        snapshots.c.last_verify_outcome,
        snapshots.c.label,
        snapshots.c.tags,
        keys.c.trusted,
        keys.c.revoked,
    ).outerjoin(keys, keys.c.key_id == snapshots.c.signer_key_id)


def _summary(row: Row[Any], tiers: list[str]) -> SnapshotSummary:
    return SnapshotSummary(
        id=row.id,
        node_id=row.node_id,
        created_at=row.created_at,
        db_sha256=row.db_sha256,
        db_size=row.db_size,
        signer_key_id=row.signer_key_id,
        trusted=bool(row.trusted) and not row.revoked,
        tiers=tiers,
        pinned=bool(row.pinned),
        last_verified_at=row.last_verified_at,
        last_verify_outcome=row.last_verify_outcome,
        label=row.label,
        tags=stored_json(row.tags, "tags", list),
    )


def _live_tiers(conn: Connection, ids: list[str]) -> dict[str, list[str]]:
    tiers: dict[str, list[str]] = defaultdict(list)
    for start in range(0, len(ids), _IN_CHUNK):
        chunk = ids[start : start + _IN_CHUNK]
        rows = conn.execute(
            select(placements.c.snapshot_id, placements.c.tier)
            .where(placements.c.snapshot_id.in_(chunk), placements.c.removed_at.is_(None))
            .order_by(placements.c.tier)
        )
        for snapshot_id, tier in rows:
            tiers[snapshot_id].append(tier)
    return tiers


def _signer_ids(conn: Connection, signer: str) -> list[str]:
    labelled = list(conn.execute(select(keys.c.key_id).where(keys.c.label == signer)).scalars())
    return labelled or [signer]


def list_snapshots(conn: Connection, filters: SnapshotFilter) -> list[SnapshotSummary]:
    stmt = _summary_select()
    if filters.node is not None:
        stmt = stmt.where(snapshots.c.node_id == filters.node)
    if filters.since is not None:
        stmt = stmt.where(snapshots.c.created_at >= filters.since)
    if filters.until is not None:
        stmt = stmt.where(snapshots.c.created_at <= filters.until)
    if filters.signer is not None:
        stmt = stmt.where(snapshots.c.signer_key_id.in_(_signer_ids(conn, filters.signer)))
    if filters.tier is not None:
        stmt = stmt.where(
            exists().where(
                placements.c.snapshot_id == snapshots.c.id,
                placements.c.tier == filters.tier,
                placements.c.removed_at.is_(None),
            )
        )
    if filters.verified is not None:
        if filters.verified == "ok":
            stmt = stmt.where(snapshots.c.last_verify_outcome == "ok")
        elif filters.verified == "failed":
            stmt = stmt.where(snapshots.c.last_verify_outcome != "ok")
        elif filters.verified == "never":
            stmt = stmt.where(snapshots.c.last_verified_at.is_(None))
        else:
            raise UsageError(f"--verified must be one of {', '.join(VERIFIED)}")
    if filters.not_verified_since is not None:
        stmt = stmt.where(
            or_(
                snapshots.c.last_verified_at.is_(None),
                snapshots.c.last_verified_at < filters.not_verified_since,
            )
        )
    stmt = stmt.order_by(snapshots.c.created_at.desc(), snapshots.c.id.desc())
    if filters.limit is not None:
        if filters.limit < 0:
            raise UsageError(f"--limit must not be negative (got {filters.limit})")
        # A database integer holds no more; any larger limit is no limit.
        stmt = stmt.limit(min(filters.limit, (1 << 63) - 1))
    rows = conn.execute(stmt).all()
    tiers = _live_tiers(conn, [row.id for row in rows])
    return [_summary(row, tiers.get(row.id, [])) for row in rows]


def _rows_for(
    conn: Connection,
    table: Table,
    snapshot_id: str,
    order: str,
    names: tuple[str, ...],
    json_fields: tuple[str, ...] = (),
) -> list[dict[str, Any]]:
    """The named columns of ``table``'s rows about one snapshot, oldest first."""
    stmt = (
        select(*(table.c[name] for name in names))
        .where(table.c.snapshot_id == snapshot_id)
        .order_by(table.c[order], table.c.id)
    )
    return _as_dicts(conn.execute(stmt), json_fields)


def stored_json(text: str, column: str, kind: type[list[Any]] | type[dict[str, Any]]) -> Any:
    """A JSON column as the catalog holds it, read like any untrusted document: anyone who can
    write the database can put anything there."""
    doc = boundedjson.load(
        text if isinstance(text, str) else "",
        f"catalog column {column}",
        CatalogError,
        max_bytes=_MAX_STORED_JSON,
    )
    if not isinstance(doc, kind):
        raise CatalogError(
            f"catalog column {column} holds {type(doc).__name__}, not {kind.__name__}"
        )
    return doc


def _as_dicts(rows: Iterable[Row[Any]], json_fields: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    out = []
    for row in rows:
        item = dict(row._mapping)
        for name, value in item.items():
            if isinstance(value, datetime):
                item[name] = iso(value)
            elif name in json_fields:
                item[name] = stored_json(value, name, list)
        out.append(item)
    return out


def show(conn: Connection, snapshot_id: str) -> dict[str, Any]:
    check_snapshot_id(snapshot_id)
    row = conn.execute(
        _summary_select()
        .add_columns(
            snapshots.c.cursor,
            snapshots.c.signer_pubkey,
            snapshots.c.manifest,
            snapshots.c.catalogued_at,
            snapshots.c.catalogued_from,
            snapshots.c.catalogued_host,
        )
        .where(snapshots.c.id == snapshot_id)
    ).first()
    if row is None:
        raise CatalogError(f"snapshot {snapshot_id} is not in the catalog")
    tiers = _live_tiers(conn, [snapshot_id]).get(snapshot_id, [])
    doc = _summary(row, tiers).to_json()
    doc.update(
        cursor=stored_json(row.cursor, "cursor", list),
        signer_pubkey=row.signer_pubkey,
        catalogued_at=iso(row.catalogued_at),
        catalogued_from=row.catalogued_from,
        catalogued_host=row.catalogued_host,
        manifest=stored_json(row.manifest, "manifest", dict),
    )
    doc["placements"] = _rows_for(
        conn, placements, snapshot_id, "since", ("tier", "store", "since", "removed_at")
    )
    doc["verifications"] = _rows_for(
        conn,
        verifications,
        snapshot_id,
        "at",
        ("at", "mode", "kind", "outcome", "detail", "host"),
    )
    doc["restores"] = _rows_for(
        conn,
        restores,
        snapshot_id,
        "at",
        ("at", "target", "forced", "migrations_replayed", "host"),
        json_fields=("migrations_replayed",),
    )
    doc["last_drill"] = last_drills(conn, [snapshot_id]).get(snapshot_id)
    return doc


_DRILL_COLUMNS = (
    drills.c.snapshot_id,
    drills.c.node_id,
    drills.c.at,
    drills.c.outcome,
    drills.c.checks,
    drills.c.restore_seconds,
    drills.c.bytes,
    drills.c.tier,
    drills.c.host,
)


def _drill(row: Any) -> dict[str, Any]:
    return {
        "snapshot_id": row.snapshot_id,
        "node_id": row.node_id,
        "at": iso(row.at),
        "outcome": row.outcome,
        "checks": stored_json(row.checks, "checks", list),
        "restore_seconds": row.restore_seconds,
        "bytes": row.bytes,
        "tier": row.tier,
        "host": row.host,
    }


def last_drills(conn: Connection, ids: list[str]) -> dict[str, dict[str, Any]]:
    """The newest drill of each of the snapshots ``ids`` that has one."""
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(ids), _IN_CHUNK):
        chunk = ids[start : start + _IN_CHUNK]
        stmt = (
            select(*_DRILL_COLUMNS)
            .where(drills.c.snapshot_id.in_(chunk))
            .order_by(drills.c.at, drills.c.id)
        )
        found.update((row.snapshot_id, _drill(row)) for row in conn.execute(stmt))
    return found


def history(
    conn: Connection,
    snapshot_id: str | None,
    since: datetime | None,
    event: str | None,
    limit: int | None,
) -> list[dict[str, Any]]:
    stmt = select(events.c.at, events.c.event, events.c.snapshot_id, events.c.detail, events.c.host)
    if snapshot_id is not None:
        stmt = stmt.where(events.c.snapshot_id == snapshot_id)
    if since is not None:
        stmt = stmt.where(events.c.at >= since)
    if event is not None:
        stmt = stmt.where(events.c.event == event)
    stmt = stmt.order_by(events.c.at.desc(), events.c.id.desc())
    if limit is not None:
        stmt = stmt.limit(limit)
    return _as_dicts(conn.execute(stmt))


def snapshots_for_prune(
    conn: Connection, tier: str, trusted_key_ids: Iterable[str] | None = None
) -> list[PruneCandidate]:
    """The snapshots with a live placement in ``tier``, newest first (ties: larger id first).

    Their TRUSTED flag says "signed by one of ``trusted_key_ids``", or, when that is None, by
    a key the catalog trusts and has not revoked.
    """
    from itertools import repeat

    rows = prune_rows(conn, tier, trusted_key_ids)
    return list(map(tuple.__new__, repeat(PruneCandidate), rows))


def prune_rows(
    conn: Connection, tier: str, trusted_key_ids: Iterable[str] | None = None
) -> list[tuple[str, str, str, int]]:
    """``snapshots_for_prune`` as plain tuples, as the planner takes them (a named tuple per
    row would be one more object per snapshot, for nothing the planner uses).

    Shaped for 100,000 snapshots in well under a second: the snapshot columns come from one
    scan of the covering index ``ix_snapshots_prune`` (in order, so the planner's sort is
    nearly free), the tier's ids from the partial index ``ix_placements_tier_live``, and the
    two meet in a Python set (probing the placements per row costs more than the scan).
    Times are turned into the planner's text and the flags summed by the database, and the
    driver's plain tuples are read directly: SQLAlchemy's rows and type processing would
    double the time.
    """
    from itertools import compress
    from operator import itemgetter

    postgres = conn.dialect.name == "postgresql"
    if trusted_key_ids is None:
        trusted_in = "IN (SELECT key_id FROM keys WHERE trusted AND NOT revoked)"
        params: list[str] = []
    else:
        params = sorted(trusted_key_ids)
        # No key: "IS NULL" is false for every row (the column is NOT NULL).
        trusted_in = f"IN ({', '.join(['?'] * len(params))})" if params else "IS NULL"
    created = (
        """to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US')"""
        if postgres
        else "replace(created_at, ' ', 'T')"  # stored as "YYYY-MM-DD HH:MM:SS.ffffff"
    )
    snapshot_sql = (
        f"SELECT {created}, id, node_id,"
        f" (CASE WHEN signer_key_id {trusted_in} THEN 1 ELSE 0 END)"
        " + (CASE WHEN pinned THEN 2 ELSE 0 END)"
        " + (CASE WHEN last_verify_outcome = 'ok' THEN 4 ELSE 0 END)"
        " FROM snapshots ORDER BY created_at DESC, id DESC"
    )
    live = "FROM placements WHERE tier = ? AND removed_at IS NULL"
    count_sql = f"SELECT (SELECT count(*) {live}), (SELECT count(*) FROM snapshots)"
    placed_sql = f"SELECT snapshot_id {live}"
    if postgres:  # psycopg's placeholder (no statement holds a literal %)
        snapshot_sql, count_sql, placed_sql = (
            sql.replace("?", "%s") for sql in (snapshot_sql, count_sql, placed_sql)
        )
    driver = conn.connection.driver_connection  # inside this read's transaction
    assert driver is not None
    cursor = driver.cursor()
    try:
        cursor.execute(count_sql, (tier,))
        (placed_count, snapshot_count) = cursor.fetchone()
        # Live placements are unique per (snapshot, tier) and reference a snapshot: as many
        # as there are snapshots means the tier holds them all (a local tier usually does).
        placed: set[str] | None = None
        if placed_count < snapshot_count:
            cursor.execute(placed_sql, (tier,))
            placed = set(map(itemgetter(0), cursor.fetchall()))
        cursor.execute(snapshot_sql, params)
        rows = cursor.fetchall()
    finally:
        cursor.close()
    if placed is not None:
        rows = list(compress(rows, map(placed.__contains__, map(itemgetter(1), rows))))
    # The planner compares, buckets and prints the time text as it is: anything not exactly
    # as this catalog writes times (a hand-edited row, another tool) is normalised first.
    if rows and not _TIME_TEXTS.fullmatch("\n".join(map(itemgetter(0), rows))):
        rows = sorted(((_utc_text(c), i, n, f) for c, i, n, f in rows), reverse=True)
    return rows


# The largest JSON a row holds is a manifest (1 MiB at most, as in a tarball).
_MAX_STORED_JSON = 1 << 20
_TIME_TEXT = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}"
_TIME_TEXTS = re.compile(f"{_TIME_TEXT}(?:\n{_TIME_TEXT})*")  # one C pass, not a call a row


def _utc_text(text: str) -> str:
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.isoformat(timespec="microseconds")


def fleet_facts(conn: Connection, cutoff_for: Callable[[str], datetime]) -> dict[str, NodeFacts]:
    """What ``catalog.health`` judges, for every node with a snapshot, by node id.

    ``cutoff_for(node_id)`` is ``now`` minus the node's ``every``: ``due_snapshot_at`` is the
    newest snapshot at or before it. A few grouped reads: the newest snapshot per node (the
    ``(node_id, created_at)`` index), the newest live placement per (node, tier), the newest
    verification per node (from the snapshot rows), the newest drill per node, and the
    newest snapshot before each distinct cutoff (nodes share their ``every`` as a rule).
    """
    from catalog.health import NodeFacts

    # Not dict(result): a Result has keys(), so dict() would take it for a mapping.
    newest: dict[str, datetime] = {
        node_id: at
        for node_id, at in conn.execute(
            select(snapshots.c.node_id, func.max(snapshots.c.created_at)).group_by(
                snapshots.c.node_id
            )
        )
    }
    tiers: dict[str, dict[str, datetime]] = defaultdict(dict)
    placed = (
        select(snapshots.c.node_id, placements.c.tier, func.max(snapshots.c.created_at))
        .join(placements, placements.c.snapshot_id == snapshots.c.id)
        .where(placements.c.removed_at.is_(None))
        .group_by(snapshots.c.node_id, placements.c.tier)
    )
    for node_id, tier, at in conn.execute(placed):
        tiers[node_id][tier] = at
    last_verified = (
        select(
            snapshots.c.node_id,
            func.max(snapshots.c.last_verified_at).label("at"),
        )
        .group_by(snapshots.c.node_id)
        .subquery()
    )
    verified: dict[str, tuple[datetime, str | None]] = {}
    rows = conn.execute(
        select(snapshots.c.node_id, snapshots.c.last_verified_at, snapshots.c.last_verify_outcome)
        .join(
            last_verified,
            (last_verified.c.node_id == snapshots.c.node_id)
            & (last_verified.c.at == snapshots.c.last_verified_at),
        )
        .order_by(snapshots.c.node_id, snapshots.c.id)
    )
    for node_id, verified_at, outcome in rows:
        if verified_at is None:
            continue
        # Two verifications at the same instant: a failure is the one reported.
        if node_id not in verified or outcome != "ok":
            verified[node_id] = (verified_at, outcome)
    drilled: dict[str, tuple[datetime, str, float]] = {}
    drill_rows = conn.execute(
        select(drills.c.node_id, drills.c.at, drills.c.outcome, drills.c.restore_seconds).order_by(
            drills.c.at, drills.c.id
        )
    )
    for node_id, at, outcome, seconds in drill_rows:
        drilled[node_id] = (at, outcome, seconds)
    cutoffs = {node_id: cutoff_for(node_id) for node_id in newest}
    due: dict[str, datetime] = {}
    for cutoff in set(cutoffs.values()):
        before = (
            select(snapshots.c.node_id, func.max(snapshots.c.created_at))
            .where(snapshots.c.created_at <= cutoff)
            .group_by(snapshots.c.node_id)
        )
        for node_id, at in conn.execute(before):
            if cutoffs.get(node_id) == cutoff:
                due[node_id] = at
    facts: dict[str, NodeFacts] = {}
    for node_id, last in newest.items():
        verify = verified.get(node_id)
        drill = drilled.get(node_id)
        facts[node_id] = NodeFacts(
            node_id=node_id,
            last_snapshot_at=last,
            last_verified_at=None if verify is None else verify[0],
            last_verify_outcome=None if verify is None else verify[1],
            last_drill_at=None if drill is None else drill[0],
            last_drill_outcome=None if drill is None else drill[1],
            restore_seconds=None if drill is None else drill[2],
            tiers=dict(tiers.get(node_id, {})),
            due_snapshot_at=due.get(node_id),
        )
    return facts
