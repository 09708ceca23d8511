"""Reading the catalog: id prefixes, ``snapshot list`` / ``show`` / ``history``, prune input.

Every query is shaped for the indexes of ``catalog.models``: prefixes are a range on the
primary key (``id >= prefix AND id < next prefix``), listings walk ``(node_id, created_at,
id)`` or ``(created_at, id)`` newest first and stop at the limit, the tier filter is an EXISTS
on the live-placement index, and verification state is read from the snapshot row itself.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, String, exists, or_, select, type_coerce
from sqlalchemy.engine import Connection, Row

from catalog.models import Event, Key, Placement, Restore, Snapshot, Verification
from catalog.records import PruneCandidate, SnapshotFilter, SnapshotSummary, iso
from catalog.upsert import check_snapshot_id
from snapshot.errors import CatalogError, UsageError

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
        found += conn.execute(select(Snapshot.id).where(Snapshot.id.in_(batch))).scalars()
    return sorted(found)


def resolve(conn: Connection, prefix: str) -> str:
    wanted = prefix.strip().lower()
    if not _HEX.fullmatch(wanted) or len(wanted) > 64:
        raise CatalogError(f"{prefix!r} is not a snapshot id or id prefix (hex digits)")
    if len(wanted) < MIN_PREFIX:
        raise CatalogError(
            f"snapshot id prefix {prefix!r} is too short (give at least {MIN_PREFIX} hex digits)"
        )
    stmt = select(Snapshot.id).where(Snapshot.id >= wanted)
    upper = _next_prefix(wanted)
    if upper is not None:
        stmt = stmt.where(Snapshot.id < upper)
    found = list(conn.execute(stmt.order_by(Snapshot.id).limit(6)).scalars())
    if not found:
        raise CatalogError(f"no snapshot {prefix!r} in the catalog")
    if len(found) > 1:
        shown = ", ".join(found[:5]) + (", ..." if len(found) > 5 else "")
        raise CatalogError(f"snapshot id prefix {prefix!r} is ambiguous: {shown}")
    return found[0]


def _summary_select() -> Select[*tuple[Any, ...]]:
    return select(
        Snapshot.id,
        Snapshot.node_id,
        Snapshot.created_at,
        Snapshot.db_sha256,
        Snapshot.db_size,
        Snapshot.signer_key_id,
        Snapshot.pinned,
        Snapshot.last_verified_at,
        Snapshot.last_verify_outcome,
        Snapshot.label,
        Snapshot.tags,
        Key.trusted,
        Key.revoked,
    ).outerjoin(Key, Key.key_id == Snapshot.signer_key_id)


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
        tags=json.loads(row.tags),
    )


def _live_tiers(conn: Connection, ids: list[str]) -> dict[str, list[str]]:
    tiers: dict[str, list[str]] = defaultdict(list)
    for start in range(0, len(ids), _IN_CHUNK):
        chunk = ids[start : start + _IN_CHUNK]
        rows = conn.execute(
            select(Placement.snapshot_id, Placement.tier)
            .where(Placement.snapshot_id.in_(chunk), Placement.removed_at.is_(None))
            .order_by(Placement.tier)
        )
        for snapshot_id, tier in rows:
            tiers[snapshot_id].append(tier)
    return tiers


def _signer_ids(conn: Connection, signer: str) -> list[str]:
    labelled = list(conn.execute(select(Key.key_id).where(Key.label == signer)).scalars())
    return labelled or [signer]


def list_snapshots(conn: Connection, filters: SnapshotFilter) -> list[SnapshotSummary]:
    stmt = _summary_select()
    if filters.node is not None:
        stmt = stmt.where(Snapshot.node_id == filters.node)
    if filters.since is not None:
        stmt = stmt.where(Snapshot.created_at >= filters.since)
    if filters.until is not None:
        stmt = stmt.where(Snapshot.created_at <= filters.until)
    if filters.signer is not None:
        stmt = stmt.where(Snapshot.signer_key_id.in_(_signer_ids(conn, filters.signer)))
    if filters.tier is not None:
        stmt = stmt.where(
            exists().where(
                Placement.snapshot_id == Snapshot.id,
                Placement.tier == filters.tier,
                Placement.removed_at.is_(None),
            )
        )
    if filters.verified is not None:
        if filters.verified == "ok":
            stmt = stmt.where(Snapshot.last_verify_outcome == "ok")
        elif filters.verified == "failed":
            stmt = stmt.where(Snapshot.last_verify_outcome != "ok")
        elif filters.verified == "never":
            stmt = stmt.where(Snapshot.last_verified_at.is_(None))
        else:
            raise UsageError(f"--verified must be one of {', '.join(VERIFIED)}")
    if filters.not_verified_since is not None:
        stmt = stmt.where(
            or_(
                Snapshot.last_verified_at.is_(None),
                Snapshot.last_verified_at < filters.not_verified_since,
            )
        )
    stmt = stmt.order_by(Snapshot.created_at.desc(), Snapshot.id.desc())
    if filters.limit is not None:
        if filters.limit < 0:
            raise UsageError(f"--limit must not be negative (got {filters.limit})")
        stmt = stmt.limit(filters.limit)
    rows = conn.execute(stmt).all()
    tiers = _live_tiers(conn, [row.id for row in rows])
    return [_summary(row, tiers.get(row.id, [])) for row in rows]


def _as_dicts(rows: Iterable[Row[Any]], json_fields: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    out = []
    for row in rows:
        item = dict(row._mapping)
        for name, value in item.items():
            if isinstance(value, datetime):
                item[name] = iso(value)
            elif name in json_fields:
                item[name] = json.loads(value)
        out.append(item)
    return out


def show(conn: Connection, snapshot_id: str) -> dict[str, Any]:
    check_snapshot_id(snapshot_id)
    row = conn.execute(
        _summary_select()
        .add_columns(
            Snapshot.cursor,
            Snapshot.signer_pubkey,
            Snapshot.manifest,
            Snapshot.catalogued_at,
            Snapshot.catalogued_from,
            Snapshot.catalogued_host,
        )
        .where(Snapshot.id == snapshot_id)
    ).first()
    if row is None:
        raise CatalogError(f"snapshot {snapshot_id} is not in the catalog")
    tiers = _live_tiers(conn, [snapshot_id]).get(snapshot_id, [])
    doc = _summary(row, tiers).to_json()
    doc.update(
        cursor=json.loads(row.cursor),
        signer_pubkey=row.signer_pubkey,
        catalogued_at=iso(row.catalogued_at),
        catalogued_from=row.catalogued_from,
        catalogued_host=row.catalogued_host,
        manifest=json.loads(row.manifest),
    )
    doc["placements"] = _as_dicts(
        conn.execute(
            select(Placement.tier, Placement.store, Placement.since, Placement.removed_at)
            .where(Placement.snapshot_id == snapshot_id)
            .order_by(Placement.since, Placement.id)
        )
    )
    doc["verifications"] = _as_dicts(
        conn.execute(
            select(
                Verification.at,
                Verification.mode,
                Verification.kind,
                Verification.outcome,
                Verification.detail,
                Verification.host,
            )
            .where(Verification.snapshot_id == snapshot_id)
            .order_by(Verification.at, Verification.id)
        )
    )
    doc["restores"] = _as_dicts(
        conn.execute(
            select(
                Restore.at,
                Restore.target,
                Restore.forced,
                Restore.migrations_replayed,
                Restore.host,
            )
            .where(Restore.snapshot_id == snapshot_id)
            .order_by(Restore.at, Restore.id)
        ),
        json_fields=("migrations_replayed",),
    )
    return doc


def history(
    conn: Connection,
    snapshot_id: str | None,
    since: datetime | None,
    event: str | None,
    limit: int | None,
) -> list[dict[str, Any]]:
    stmt = select(Event.at, Event.event, Event.snapshot_id, Event.detail, Event.host)
    if snapshot_id is not None:
        stmt = stmt.where(Event.snapshot_id == snapshot_id)
    if since is not None:
        stmt = stmt.where(Event.at >= since)
    if event is not None:
        stmt = stmt.where(Event.event == event)
    stmt = stmt.order_by(Event.at.desc(), Event.id.desc())
    if limit is not None:
        stmt = stmt.limit(limit)
    return _as_dicts(conn.execute(stmt))


def snapshots_for_prune(conn: Connection, tier: str) -> list[PruneCandidate]:
    # Plain tuples and, on SQLite, the stored text parsed by datetime.fromisoformat: the
    # generic DateTime processing per row was most of a 100,000-snapshot prune plan.
    text_times = conn.dialect.name == "sqlite"
    created = type_coerce(Snapshot.created_at, String) if text_times else Snapshot.created_at
    stmt = (
        select(
            Snapshot.id,
            Snapshot.node_id,
            created,
            Snapshot.signer_key_id,
            Key.trusted,
            Key.revoked,
            Snapshot.pinned,
            Snapshot.last_verify_outcome,
        )
        .join(
            Placement,
            (Placement.snapshot_id == Snapshot.id)
            & (Placement.tier == tier)
            & Placement.removed_at.is_(None),
        )
        .outerjoin(Key, Key.key_id == Snapshot.signer_key_id)
        # No ORDER BY: the planner sorts per node itself.
    )
    out = []
    for sid, node, at, key_id, trusted, revoked, pinned, outcome in conn.execute(stmt).all():
        if isinstance(at, str):
            when = datetime.fromisoformat(at).replace(tzinfo=UTC)
        else:
            assert isinstance(at, datetime)
            when = at.astimezone(UTC)
        out.append(
            PruneCandidate(
                id=sid,
                node_id=node,
                created_at=when,
                signer_key_id=key_id,
                trusted=bool(trusted) and not revoked,
                pinned=bool(pinned),
                last_verify_outcome=outcome,
            )
        )
    return out
