"""Recording snapshots, placements, verifications, restores, prune runs, pins and events.

Each function runs inside the caller's write transaction. Snapshot and placement writes are
idempotent upserts (ON CONFLICT), so two processes recording the same thing leave one row.
Every change also appends its audit event, only when something actually changed; callers use
``record_event`` only for what the catalog does not see (gc, key generation, ...).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.engine import Connection

from catalog.records import SnapshotRecord
from catalog.tables import (
    drills,
    events,
    keys,
    metadata,
    placements,
    restores,
    snapshots,
    verifications,
)
from catalog.upsert import check_snapshot_id, insert
from snapshot.errors import CatalogError

MODES = ("default", "strict", "forced")
KINDS = ("verify", "restore", "import", "check", "drill")

tables = metadata.tables


def dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def record_event(
    conn: Connection, at: datetime, host: str, event: str, snapshot_id: str | None, detail: str
) -> None:
    conn.execute(
        events.insert().values(
            at=at, event=event, snapshot_id=snapshot_id, detail=detail, host=host
        )
    )


def record_snapshot(conn: Connection, at: datetime, host: str, rec: SnapshotRecord) -> None:
    check_snapshot_id(rec.id)
    if rec.created_at.tzinfo is None:
        raise CatalogError(f"snapshot {rec.id}: created_at has no time zone")
    conn.execute(
        insert(conn, keys)
        .values(key_id=rec.signer_key_id, public_key=rec.signer_pubkey, first_seen=at)
        .on_conflict_do_nothing()
    )
    inserted = conn.execute(
        insert(conn, snapshots)
        .values(
            id=rec.id,
            node_id=rec.node_id,
            created_at=rec.created_at,
            db_sha256=rec.db_sha256,
            db_size=rec.db_size,
            cursor=dumps(list(rec.cursor)),
            signer_key_id=rec.signer_key_id,
            signer_pubkey=rec.signer_pubkey,
            manifest=dumps(rec.manifest),
            label=rec.label,
            tags=dumps(list(rec.tags)),
            catalogued_at=at,
            catalogued_from=rec.source,
            catalogued_host=host,
            pinned=False,
        )
        .on_conflict_do_nothing(index_elements=["id"])
        # RETURNING, not rowcount: drivers disagree on rowcount for a skipped upsert.
        .returning(snapshots.c.id)
    ).first()
    if inserted is not None:
        record_event(conn, at, host, "catalogued", rec.id, f"from {rec.source}")


def require_snapshot(conn: Connection, snapshot_id: str) -> None:
    check_snapshot_id(snapshot_id)
    found = conn.execute(select(snapshots.c.id).where(snapshots.c.id == snapshot_id)).first()
    if found is None:
        raise CatalogError(f"snapshot {snapshot_id} is not in the catalog")


def record_placement(
    conn: Connection, at: datetime, host: str, snapshot_id: str, tier: str, store_url: str
) -> None:
    require_snapshot(conn, snapshot_id)
    live = placements.c.removed_at.is_(None)
    inserted = conn.execute(
        insert(conn, placements)
        .values(snapshot_id=snapshot_id, tier=tier, store=store_url, since=at)
        .on_conflict_do_nothing(index_elements=["snapshot_id", "tier"], index_where=live)
        .returning(placements.c.id)
    ).first()
    if inserted is not None:
        record_event(conn, at, host, "placed", snapshot_id, f"tier {tier} ({store_url})")
        return
    # The tier's store moved (config change, reindex from a new bucket): follow it.
    moved = conn.execute(
        update(placements)
        .where(placements.c.snapshot_id == snapshot_id, placements.c.tier == tier, live)
        .where(placements.c.store != store_url)
        .values(store=store_url)
    ).rowcount
    if moved:
        record_event(conn, at, host, "placed", snapshot_id, f"tier {tier} moved to {store_url}")


def mark_removed(conn: Connection, at: datetime, host: str, snapshot_id: str, tier: str) -> None:
    removed = conn.execute(
        update(placements)
        .where(
            placements.c.snapshot_id == snapshot_id,
            placements.c.tier == tier,
            placements.c.removed_at.is_(None),
        )
        .values(removed_at=at)
    ).rowcount
    if removed:
        record_event(conn, at, host, "removed", snapshot_id, f"tier {tier}")


def record_verification(
    conn: Connection,
    at: datetime,
    host: str,
    snapshot_id: str,
    mode: str,
    kind: str,
    outcome: str,
    detail: str,
) -> None:
    check_snapshot_id(snapshot_id)
    if mode not in MODES:
        raise CatalogError(f"verification mode {mode!r} is not one of {', '.join(MODES)}")
    if kind not in KINDS:
        raise CatalogError(f"verification kind {kind!r} is not one of {', '.join(KINDS)}")
    conn.execute(
        verifications.insert().values(
            snapshot_id=snapshot_id,
            at=at,
            mode=mode,
            kind=kind,
            outcome=outcome,
            detail=detail,
            host=host,
        )
    )
    # Keep the denormalised copy on the snapshot; a late writer with an older time loses.
    conn.execute(
        update(snapshots)
        .where(snapshots.c.id == snapshot_id)
        .where(or_(snapshots.c.last_verified_at.is_(None), snapshots.c.last_verified_at <= at))
        .values(last_verified_at=at, last_verify_outcome=outcome)
    )
    text = f"{kind} ({mode}): {outcome}" + (f": {detail}" if detail else "")
    record_event(conn, at, host, "verified", snapshot_id, text)


def record_restore(
    conn: Connection,
    at: datetime,
    host: str,
    snapshot_id: str,
    target: str,
    forced: bool,
    migrations_replayed: list[str],
) -> None:
    check_snapshot_id(snapshot_id)
    conn.execute(
        restores.insert().values(
            snapshot_id=snapshot_id,
            at=at,
            target=target,
            forced=forced,
            migrations_replayed=dumps(list(migrations_replayed)),
            host=host,
        )
    )
    how = "forced restore" if forced else "restore"
    replayed = f", replayed {len(migrations_replayed)} migrations" if migrations_replayed else ""
    record_event(conn, at, host, "restored", snapshot_id, f"{how} to {target}{replayed}")


def record_prune(
    conn: Connection,
    at: datetime,
    host: str,
    tier: str,
    policy: dict[str, Any],
    plan: str | list[dict[str, Any]],
    removed: list[str],
    bytes_freed: int,
    dry_run: bool,
) -> None:
    """``plan`` is stored as it is when it is already JSON text (a 100,000-snapshot plan is
    20 MiB: the prune command serialises it once for its output and for this record)."""
    conn.execute(
        tables["prune_runs"]
        .insert()
        .values(
            at=at,
            tier=tier,
            policy=dumps(policy),
            plan=plan if isinstance(plan, str) else dumps(plan),
            removed=dumps(list(removed)),
            bytes_freed=bytes_freed,
            dry_run=dry_run,
            host=host,
        )
    )
    what = "dry run" if dry_run else f"removed {len(removed)}, freed {bytes_freed} bytes"
    record_event(conn, at, host, "pruned", None, f"tier {tier}: {what}")


def set_pinned(conn: Connection, at: datetime, host: str, snapshot_id: str, pinned: bool) -> None:
    require_snapshot(conn, snapshot_id)
    changed = conn.execute(
        update(snapshots)
        .where(snapshots.c.id == snapshot_id, snapshots.c.pinned != pinned)
        .values(pinned=pinned)
    ).rowcount
    if changed:
        record_event(conn, at, host, "pinned" if pinned else "unpinned", snapshot_id, "")


def record_drill(
    conn: Connection,
    at: datetime,
    host: str,
    snapshot_id: str,
    node_id: str,
    outcome: str,
    checks: list[dict[str, Any]],
    restore_seconds: float,
    size: int,
    tier: str | None,
) -> None:
    check_snapshot_id(snapshot_id)
    conn.execute(
        drills.insert().values(
            snapshot_id=snapshot_id,
            node_id=node_id,
            at=at,
            outcome=outcome,
            checks=json.dumps(checks, separators=(",", ":")),
            restore_seconds=restore_seconds,
            bytes=size,
            tier=tier,
            host=host,
        )
    )
    record_event(conn, at, host, "drill", snapshot_id, f"{outcome} in {restore_seconds:.2f}s")
