"""Printing catalog answers: list, show, history."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from cli.output import echo, emit_json, printable, table

if TYPE_CHECKING:
    from catalog.records import SnapshotFilter, SnapshotSummary


# What `show` prints about a snapshot, in this order.
SUMMARY_FIELDS = (
    "node_id",
    "created_at",
    "db_sha256",
    "db_size",
    "signer_key_id",
    "trusted",
    "pinned",
    "last_verified_at",
    "last_verify_outcome",
)


def time_bound(text: str, now: datetime, option: str) -> datetime:
    from snapshot.durations import DurationError, parse_time_bound
    from snapshot.errors import UsageError

    try:
        return parse_time_bound(text, now)
    except DurationError as exc:
        raise UsageError(f"{option}: {exc}") from None


def build_filter(options: dict[str, Any]) -> SnapshotFilter:
    from catalog.records import SnapshotFilter

    now = datetime.now(UTC)

    def bound(name: str) -> datetime | None:
        value = options.get(name)
        if not value:
            return None
        return time_bound(str(value), now, "--" + name.replace("_", "-"))

    return SnapshotFilter(
        node=options.get("node"),
        since=bound("since"),
        until=bound("until"),
        signer=options.get("signer"),
        tier=options.get("tier"),
        verified=options.get("verified"),
        not_verified_since=bound("not_verified_since"),
        limit=options.get("limit"),
    )


def _short_time(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "-"


def print_list(
    rows: list[SnapshotSummary], as_json: bool, drills: dict[str, dict[str, Any]] | None = None
) -> None:
    """``drills``: the last drill of each snapshot that had one, by snapshot id."""
    drills = drills or {}
    if as_json:
        emit_json([row.to_json() | {"last_drill": drills.get(row.id)} for row in rows])
        return
    table(
        [
            "id",
            "created (UTC)",
            "node",
            "signer",
            "trusted",
            "tiers",
            "pinned",
            "verified",
            "drilled",
        ],
        [
            [
                row.id[:12],
                _short_time(row.created_at),
                row.node_id,
                row.signer_key_id,
                "yes" if row.trusted else "NO",
                ",".join(row.tiers) or "-",
                "pinned" if row.pinned else "",
                f"{row.last_verify_outcome} {_short_time(row.last_verified_at)}"
                if row.last_verify_outcome
                else "never",
                f"{d['outcome']} {d['at'][:19].replace('T', ' ')}"
                if (d := drills.get(row.id))
                else "never",
            ]
            for row in rows
        ],
    )


def print_show(doc: dict[str, Any], as_json: bool) -> None:
    if as_json:
        emit_json(doc)
        return
    for key in ("id", *SUMMARY_FIELDS):
        echo(f"{key:20} {doc.get(key)}")
    echo(f"{'tiers':20} {', '.join(doc.get('tiers') or []) or '-'}")
    echo("placements:")
    for p in doc.get("placements", []):
        removed = f", removed {p['removed_at']}" if p.get("removed_at") else ""
        echo(f"  {p['tier']}: {p['store']} since {p['since']}{removed}")
    echo("verifications:")
    for v in doc.get("verifications", []):
        echo(
            f"  {v['at']} {v.get('kind', '')} {v['mode']} {v['outcome']} "
            f"on {v['host']}: {v['detail']}"
        )
    echo("restores:")
    for r in doc.get("restores", []):
        forced = " FORCED" if r["forced"] else ""
        migrations = ", ".join(r["migrations_replayed"]) or "none"
        echo(f"  {r['at']} to {r['target']}{forced}; migrations replayed: {migrations}")
    drill = doc.get("last_drill")
    if drill:
        echo(
            f"last drill: {drill['at']} {drill['outcome']} on {drill['host']}, restored "
            f"{drill['bytes']} bytes in {drill['restore_seconds']:.2f} s"
        )
        for check in drill["checks"]:
            # Stored text: anyone who can write the catalog chose it.
            mark = "ok  " if check.get("ok") else "FAIL"
            echo("  " + printable(f"{mark} {check.get('name')}: {check.get('detail')}"))
    else:
        echo("last drill: never")


def print_history(events: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        emit_json(events)
        return
    table(
        ["at", "event", "snapshot", "detail"],
        [[e["at"], e["event"], (e["snapshot_id"] or "")[:12], e["detail"]] for e in events],
    )
