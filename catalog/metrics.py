"""Prometheus metrics from the catalog, and the text exposition format.

``collect`` reads one GROUP BY over live placements and yields, per (node, tier): the age of
the newest snapshot, of the newest snapshot whose last verification is ``ok``, of the last
verification, and the snapshot count. A series with nothing to measure (never verified) is
left out rather than given a made-up value, as Prometheus exporters do.
``node_samples`` turns fleet health (``catalog.health``) into per-node series:
``stigmem_node_overdue`` for every node, and for a node ever drilled the age, outcome and
restore time of its newest drill. ``render_prometheus`` formats any samples (the CLI adds
``stigmem_store_bytes{tier}`` and the node series).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import case, func, select
from sqlalchemy.engine import Connection

from catalog.records import Sample
from catalog.tables import placements, snapshots

if TYPE_CHECKING:
    from catalog.health import NodeHealth

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
    "stigmem_node_overdue": (
        "1 when the node's newest snapshot is older than its [fleet] every, or a node "
        "[fleet] names has none; else 0."
    ),
    "stigmem_last_drill_age_seconds": "Time since the node's newest restore drill.",
    "stigmem_drill_ok": "1 when the node's newest restore drill passed, else 0.",
    "stigmem_restore_seconds": "Seconds the node's newest restore drill took to restore.",
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


def node_samples(reports: Iterable[NodeHealth], now: datetime) -> list[Sample]:
    """Per node: ``stigmem_node_overdue`` (1/0, never-seen fleet nodes count as overdue);
    for a node with a drill, ``stigmem_last_drill_age_seconds``, ``stigmem_drill_ok`` (1/0)
    and ``stigmem_restore_seconds`` of its newest drill. Grouped by metric, nodes in order."""
    reports = list(reports)
    overdue: list[Sample] = []
    drill_age: list[Sample] = []
    drill_ok: list[Sample] = []
    restore: list[Sample] = []
    for report in reports:
        labels = {"node": report.node_id}
        overdue.append(("stigmem_node_overdue", labels, 1.0 if report.overdue else 0.0))
        facts = report.facts
        if facts.last_drill_at is None:
            continue
        age = (now - facts.last_drill_at).total_seconds()
        drill_age.append(("stigmem_last_drill_age_seconds", labels, age))
        ok = facts.last_drill_outcome == "ok"
        drill_ok.append(("stigmem_drill_ok", labels, 1.0 if ok else 0.0))
        if facts.restore_seconds is not None:
            restore.append(("stigmem_restore_seconds", labels, float(facts.restore_seconds)))
    return overdue + drill_age + drill_ok + restore
