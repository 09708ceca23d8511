"""``stigmem store ...``: init, check, sync, gc, stats."""

from __future__ import annotations

import click

from cli.app import App, Tier

pass_app = click.make_pass_decorator(App)
TIER = click.option("--tier", help="Tier whose store to use (default: the default tier).")
JSON = click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout.")


@click.group("store")
def store_group() -> None:
    """The content-addressed store."""


@store_group.command(
    "init",
    epilog="""\b
Examples:
  stigmem store init /var/lib/stigmem/store
  stigmem store init s3://backups/stigmem""",
)
@click.argument("url", required=False)
@TIER
@pass_app
def init_cmd(app: App, url: str | None, tier: str | None) -> None:
    """Create an empty store (default: the default tier's)."""
    from store.repository import Store

    target = Tier("local", url, {}) if url else app.tier(tier)
    store = Store.init(target.url, target.storage_options)
    click.echo(f"initialised store {store.url}")


def _percent(value: str | None) -> float:
    from snapshot.errors import UsageError

    if not value:
        return 0.0
    text = value.strip().rstrip("%")
    try:
        share = float(text) / 100.0
    except ValueError:
        raise UsageError(f"--read-data-subset takes a percentage like 10%, not {value!r}") from None
    if not 0.0 <= share <= 1.0:
        raise UsageError(f"--read-data-subset must be between 0% and 100%, not {value!r}")
    return share


@store_group.command(
    "check",
    epilog="""\b
Examples:
  stigmem store check
  stigmem store check --read-data-subset 10% --tier offsite""",
)
@click.option("--read-data-subset", help="Also read and hash this share of the data (N%).")
@TIER
@JSON
@pass_app
def check_cmd(app: App, read_data_subset: str | None, tier: str | None, as_json: bool) -> None:
    """Every document parses and its signature verifies; every chunk it needs exists."""
    from cli.checking import check_store

    check_store(app, app.tier(tier), _percent(read_data_subset), as_json)


@store_group.command("sync", epilog="Example:\n\n  stigmem store sync --to offsite")
@click.option("--to", "to_tier", required=True, help="Tier to copy into.")
@click.option("--tier", "from_tier", help="Tier to copy from (default: the default tier).")
@JSON
@pass_app
def sync_cmd(app: App, to_tier: str, from_tier: str | None, as_json: bool) -> None:
    """Copy what the target tier lacks: packs first, snapshot documents last."""
    from cli.output import emit_json, progress

    source_tier, target_tier = app.tier(from_tier), app.tier(to_tier)
    if source_tier.url == target_tier.url:
        from snapshot.errors import UsageError

        raise UsageError(f"tier {to_tier} is the same store as the source: {source_tier.url}")
    source = app.store(source_tier)
    target = app.store(target_tier, create=True)
    with progress(f"sync to {to_tier}") as report:
        result = source.sync_to(target, progress=report)
    catalog = app.catalog()
    for sid in target.snapshot_ids():
        catalog.record_placement(sid, target_tier.name, target.url)
    catalog.record_event("sync", None, f"{source.url} -> {target.url}: {result.summary()}")
    if as_json:
        emit_json(result.to_json())
    else:
        click.echo(result.summary())


@store_group.command("gc", epilog="Example:\n\n  stigmem store gc --tier local")
@TIER
@JSON
@pass_app
def gc_cmd(app: App, tier: str | None, as_json: bool) -> None:
    """Delete data no snapshot references (older than the grace period), under the lock."""
    from cli.output import emit_json

    chosen = app.tier(tier)
    store = app.store(chosen)
    report = store.gc(grace_seconds=app.grace_seconds(chosen))
    app.catalog().record_event("gc", None, f"{store.url}: {report.summary()}")
    if as_json:
        emit_json(report.to_json())
    else:
        click.echo(report.summary())


@store_group.command("stats", epilog="Example:\n\n  stigmem store stats --json")
@TIER
@JSON
@pass_app
def stats_cmd(app: App, tier: str | None, as_json: bool) -> None:
    """Snapshots, chunks, packs, stored and logical bytes, dedup ratio."""
    from cli.output import emit_json

    stats = app.store(app.tier(tier)).stats()
    doc = stats.to_json()
    if as_json:
        emit_json(doc)
        return
    for key, value in doc.items():
        click.echo(f"{key:15} {value}")
