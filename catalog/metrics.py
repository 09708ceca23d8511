"""Prometheus metrics from the catalog, and the text exposition format.

``collect`` reads one GROUP BY over live placements and yields, per (node, tier): the age of
the newest snapshot, of the newest snapshot whose last verification is ``ok``, of the last
verification, and the snapshot count. A series with nothing to measure (never verified) is
left out rather than given a made-up value, as Prometheus exporters do.
``render_prometheus`` formats any samples (the CLI adds ``stigmem_store_bytes{tier}``).
"""

from __future__ import annotations

import math
from datetime import datetime

from sqlalchemy import case, func, select
from sqlalchemy.engine import Connection

from catalog.records import Sample
from catalog.tables import placements, snapshots

HELP = {
    "stigmem_snapshot_newest_age_seconds": "Age of the newest snapshot held by the tier.",
    "stigmem_snapshot_newest_verified_age_seconds": (
        "Age of the newest snapshot whose last verification is ok."
    ),
    "stigmem_snapshot_last_verification_age_seconds": (
        "Time since the last verification of any snapshot held by the tier."
    ),
    "stigmem_snapshots": "Snapshots held by the tier (live placements).",
    "stigmem_store_bytes": "Bytes stored by the tier's store.",
}


def collect(conn: Connection, now: datetime) -> list[Sample]:
    stmt = (
        select(
            snapshots.c.node_id,
            placements.c.tier,
            func.max(snapshots.c.created_at).label("newest"),
            func.max(case((snapshots.c.last_verify_outcome == "ok", snapshots.c.created_at))).label(
                "newest_verified"
            ),
            func.max(snapshots.c.last_verified_at).label("last_verification"),
            func.count().label("held"),
        )
        .join(placements, placements.c.snapshot_id == snapshots.c.id)
        .where(placements.c.removed_at.is_(None))
        .group_by(snapshots.c.node_id, placements.c.tier)
        .order_by(snapshots.c.node_id, placements.c.tier)
    )
    samples: list[Sample] = []
    for row in conn.execute(stmt):
        labels = {"node": row.node_id, "tier": row.tier}
        ages = (
            ("stigmem_snapshot_newest_age_seconds", row.newest),
            ("stigmem_snapshot_newest_verified_age_seconds", row.newest_verified),
            ("stigmem_snapshot_last_verification_age_seconds", row.last_verification),
        )
        for name, at in ages:
            if at is not None:
                samples.append((name, labels, (now - at).total_seconds()))
        samples.append(("stigmem_snapshots", labels, float(row.held)))
    return samples


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _escape_help(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n")


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(float(value))


def render_prometheus(samples: list[Sample]) -> str:
    """Text exposition format 0.0.4: HELP and TYPE once per metric, then its samples."""
    by_name: dict[str, list[Sample]] = {}
    for sample in samples:
        by_name.setdefault(sample[0], []).append(sample)
    lines: list[str] = []
    for name, group in by_name.items():
        lines.append(f"# HELP {name} {_escape_help(HELP.get(name, name))}")
        lines.append(f"# TYPE {name} gauge")
        for _, labels, value in group:
            if labels:
                inner = ",".join(f'{k}="{_escape_label(v)}"' for k, v in sorted(labels.items()))
                lines.append(f"{name}{{{inner}}} {_number(value)}")
            else:
                lines.append(f"{name} {_number(value)}")
    return "\n".join(lines) + "\n" if lines else ""
