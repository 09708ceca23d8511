"""Fleet health from the catalog and the config: ``stigmem catalog health`` and the per-node
series of ``stigmem catalog metrics``. ``health_report(app)`` is the JSON array the command
prints, for callers (a hook wrapper) that want it without the command line. The rules are in
``catalog.health``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from catalog.health import NodeHealth
    from cli.app import App


def _now() -> datetime:
    """The time health is judged at (tests replace it to judge a simulated history)."""
    return datetime.now(UTC)


def node_health(app: App, now: datetime | None = None) -> list[NodeHealth]:
    """Every node's ``NodeHealth`` at ``now`` (default: the current time)."""
    from catalog import health

    when = _now() if now is None else now
    fleet = app.config().fleet
    tier_names = [tier.name for tier in app.all_tiers()]
    facts = app.catalog().fleet_facts(lambda node_id: when - fleet.expected(node_id).every)
    return health.node_health(facts, fleet, tier_names, when)


def health_report(app: App, now: datetime | None = None) -> list[dict[str, Any]]:
    """What ``stigmem catalog health --json`` prints: one object per node, sorted by id."""
    return [report.to_json() for report in node_health(app, now)]


def node_metrics_text(app: App) -> str:
    """The per-node series of ``catalog metrics`` (``catalog.metrics.node_samples``)."""
    from catalog.metrics import node_samples, render_prometheus

    now = _now()
    return render_prometheus(node_samples(node_health(app, now), now))


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 0:
        return "future"
    if seconds < 3600:
        return f"{int(seconds // 60)}m"
    if seconds < 2 * 86400:
        return f"{int(seconds // 3600)}h"
    return f"{int(seconds // 86400)}d"


def _day(value: datetime | None) -> str:
    return "-" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M")


def show_health(app: App, as_json: bool) -> None:
    """Print the report (a table, or the JSON array); exit 1 when any node has a problem.
    The hooks (event ``health``) get the JSON array, also when a node has a problem."""
    from cli.hooks import around

    with around(app, "health") as hook:
        reports = node_health(app)
        documents = [report.to_json() for report in reports]
        hook.result(documents)
        _print(reports, documents if as_json else None)


def _print(reports: list[NodeHealth], documents: list[dict[str, Any]] | None) -> None:
    """The report as a table, or as ``documents`` (the JSON array) when given."""
    from catalog.health import unhealthy
    from cli.output import emit_json, table

    if documents is not None:
        emit_json(documents)
    else:
        tier_names = list(reports[0].tiers) if reports else []
        rows = []
        for report in reports:
            f = report.facts
            drill = "-"
            if f.last_drill_at is not None:
                seconds = "" if f.restore_seconds is None else f" {f.restore_seconds:.1f}s"
                drill = f"{f.last_drill_outcome} {_day(f.last_drill_at)}{seconds}"
            rows.append(
                [
                    report.node_id,
                    _day(f.last_snapshot_at),
                    _age(report.last_snapshot_age_seconds),
                    f.last_verify_outcome or "-",
                    drill,
                    *(_day(report.tiers[t]) for t in tier_names),
                    ",".join(report.problems) or "ok",
                ]
            )
        table(
            ["NODE", "LAST SNAPSHOT", "AGE", "VERIFY", "DRILL", *tier_names, "PROBLEMS"],
            rows,
        )
    if unhealthy(reports):
        raise click.exceptions.Exit(1)
