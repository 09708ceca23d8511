"""``stigmem catalog ...``: reindex, metrics, health."""

from __future__ import annotations

import click

from cli.app import App

pass_app = click.make_pass_decorator(App)


@click.group("catalog")
def catalog_group() -> None:
    """The catalog database."""


@catalog_group.command("reindex", epilog="Example:\n\n  stigmem catalog reindex")
@click.option("--json", "as_json", is_flag=True)
@pass_app
def reindex_cmd(app: App, as_json: bool) -> None:
    """Rebuild snapshots and placements from every configured store."""
    from cli.checking import reindex

    reindex(app, as_json)


@catalog_group.command(
    "metrics",
    epilog="""\b
Example (node_exporter textfile collector):
  stigmem catalog metrics --out /var/lib/node_exporter/stigmem.prom""",
)
@click.option("--out", type=click.Path(), help="Write atomically to this file instead of stdout.")
@pass_app
def metrics_cmd(app: App, out: str | None) -> None:
    """Prometheus text format: snapshot ages, counts, stored bytes per node and tier; per
    node, overdue (by [fleet]) and the age, outcome and restore time of the newest drill."""
    from cli.checking import metrics_text
    from cli.health import node_metrics_text

    text = metrics_text(app) + node_metrics_text(app)
    if out is None:
        click.echo(text, nl=False)
        return
    from pathlib import Path

    from snapshot.fileio import atomic_write_bytes

    atomic_write_bytes(Path(out), text.encode(), 0o644)


@catalog_group.command(
    "health",
    epilog="""\b
Exit status: 0 when no node has a problem, 1 when one has; a failure (catalog,
config) exits non-zero too, with a one-line message on stderr.
Problems: never_seen, overdue, verify_failed, drill_due, drill_failed, offsite_missing.
Example (cron):
  stigmem catalog health --json > /var/lib/stigmem/health.json || alert""",
)
@click.option("--json", "as_json", is_flag=True, help="Print the JSON array.")
@pass_app
def health_cmd(app: App, as_json: bool) -> None:
    """Each node's newest snapshot, verification, drill and tier copies, judged by [fleet]."""
    from cli.health import show_health

    show_health(app, as_json)
