"""``stigmem store ...``: init, rekey, migrate, check, sync, gc, stats, unlock."""

from __future__ import annotations

import click

from cli.app import App, Tier

pass_app = click.make_pass_decorator(App)
TIER = click.option("--tier", help="Tier whose store to use (default: the default tier).")
JSON = click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout.")
QUIET = click.option(
    "-q", "--quiet", is_flag=True, help="Print nothing on success (for cron); errors still show."
)


@click.group("store")
def store_group() -> None:
    """The content-addressed store."""


@store_group.command(
    "init",
    epilog="""\b
Examples:
  stigmem store init /var/lib/stigmem/store
  stigmem store init s3://backups/stigmem --encrypt-to <pub: of keys generate --store>""",
)
@click.argument("url", required=False)
@click.option(
    "--encrypt-to",
    metavar="PUB",
    help="Encrypt the store to this store key (the pub: of 'keys generate --store').",
)
@TIER
@pass_app
def init_cmd(app: App, url: str | None, encrypt_to: str | None, tier: str | None) -> None:
    """Create an empty store (default: the default tier's), format 2."""
    from cli.output import note
    from cli.storekeys import public_key
    from store import crypto
    from store.config import StoreConfig
    from store.repository import Store

    target = Tier("local", url, {}) if url else app.tier(tier)
    encrypt_to = encrypt_to or target.encrypt_to
    public = public_key(encrypt_to, "--encrypt-to") if encrypt_to else None
    if public is None and "://" in target.url and not target.url.startswith("file://"):
        note(
            f"warning: {target.url} is made in plaintext: whoever can read it reads every "
            "snapshot (use --encrypt-to)"
        )
    store = Store.init(target.url, target.storage_options, StoreConfig(encrypt_to=public))
    if public is None:
        click.echo(f"initialised store {store.url} (plaintext)")
    else:
        click.echo(
            f"initialised store {store.url} encrypted to store key {crypto.public_key_id(public)}"
        )


@store_group.command(
    "rekey",
    epilog="""\b
Example:
  STIGMEM_STORE_KEY=old.key stigmem store rekey --encrypt-to <pub: of the new store key>""",
)
@click.option("--encrypt-to", "encrypt_to", required=True, metavar="PUB")
@TIER
@JSON
@pass_app
def rekey_cmd(app: App, encrypt_to: str, tier: str | None, as_json: bool) -> None:
    """Seal every pack key to a new store key and retire the old one (no pack is rewritten)."""
    from cli.output import emit_json
    from cli.storekeys import public_key
    from store import rekeying

    target = app.tier(tier)
    store = app.store(target)
    public = public_key(encrypt_to, "--encrypt-to")
    report = rekeying.rekey(store, public)
    app.catalog().record_event(
        "store_rekey", None, f"{target.name}: store key {report.old_key_id} -> {report.new_key_id}"
    )
    if as_json:
        emit_json(report.to_json())
        return
    click.echo(
        f"store {store.url}: {report.packs} pack keys sealed to store key {report.new_key_id}; "
        f"store key {report.old_key_id} retired"
    )


@store_group.command(
    "migrate",
    epilog="""\b
Example:
  stigmem store migrate /var/lib/stigmem/store s3://backups/stigmem-v2""",
)
@click.argument("from_url")
@click.argument("to_url")
@JSON
@QUIET
@pass_app
def migrate_cmd(app: App, from_url: str, to_url: str, as_json: bool, quiet: bool) -> None:
    """Copy every snapshot of FROM_URL into the format-2 store TO_URL (made with 'store init'),
    each re-encoded there and committed by its document last; run it again to resume."""
    from cli.output import emit_json, progress
    from cli.storekeys import keys_for
    from store import migrating
    from store.repository import Store

    source_tier = Tier("from", from_url, {})
    target_tier = Tier("to", to_url, {})
    src = Store.open(from_url, {}, cache=app.cache(), keys=keys_for(source_tier))
    dst = Store.open(to_url, {}, cache=app.cache(), keys=keys_for(target_tier))
    with progress("migrating") as report_progress:
        report = migrating.migrate(src, dst, report_progress)
    if as_json:
        emit_json(report.to_json())
    elif not quiet:
        click.echo(
            f"migrated {report.snapshots_copied} snapshots from {src.url} to {dst.url} "
            f"({report.snapshots_present} already there)"
        )


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
@QUIET
@pass_app
def sync_cmd(app: App, to_tier: str, from_tier: str | None, as_json: bool, quiet: bool) -> None:
    """Copy what the target tier lacks: packs first, snapshot documents last.

    An interrupted sync is resumed by running it again: packs already copied are skipped.
    """
    from cli.hooks import around
    from cli.output import emit_json, progress
    from store import maintenance

    with around(app, "sync") as hook:
        source_tier, target_tier = app.tier(from_tier), app.tier(to_tier)
        if source_tier.url == target_tier.url:
            from snapshot.errors import UsageError

            raise UsageError(f"tier {to_tier} is the same store as the source: {source_tier.url}")
        source = app.store(source_tier)
        target = app.store(target_tier, create=True)
        with progress(f"sync to {to_tier}") as report:
            result = maintenance.sync(source, target, progress=report)
        catalog = app.catalog()
        added, gone = record_placements(app, target_tier, target.snapshot_ids())
        catalog.record_event(
            "sync",
            None,
            f"{source.url} -> {target.url}: {result.summary()}; "
            f"{added} placements recorded, {gone} marked removed",
        )
        hook.result(result.to_json())
    if as_json:
        emit_json(result.to_json())
    elif not quiet:
        click.echo(result.summary())


def record_placements(app: App, tier: Tier, present: list[str]) -> tuple[int, int]:
    """Make the catalog's live placements in ``tier`` match the store's documents.

    Only catalogued snapshots get a placement (a document someone else put there is left to
    ``catalog reindex``); placements whose document is gone (a killed prune, a manual
    delete) are marked removed. Returns (placements added, placements marked removed).
    """
    catalog = app.catalog()
    placed = {row.id for row in catalog.snapshots_for_prune(tier.name)}
    in_store = set(present)
    new = catalog.known_ids(sorted(in_store - placed))
    for sid in new:
        catalog.record_placement(sid, tier.name, tier.url)
    gone = sorted(placed - in_store)
    for sid in gone:
        catalog.mark_removed(sid, tier.name)
    return len(new), len(gone)


def _share(value: str | None, option: str) -> float | None:
    """ "10%" or "0.1" as a fraction; None when not given."""
    from snapshot.errors import UsageError

    if value is None:
        return None
    text = value.strip()
    try:
        share = float(text.rstrip("%")) / 100.0 if text.endswith("%") else float(text)
    except ValueError:
        raise UsageError(f"{option} takes a percentage like 10%, not {value!r}") from None
    if not 0.0 <= share <= 1.0:
        raise UsageError(f"{option} must be between 0% and 100%, not {value!r}")
    return share


@store_group.command(
    "gc",
    epilog="""\b
Examples:
  stigmem store gc --tier local
  stigmem store gc --max-unused 0%      # repack every pack holding unused data""",
)
@click.option(
    "--max-unused",
    help="Repack packs with more than this share unused (default 50%; 0% frees all).",
)
@TIER
@JSON
@QUIET
@pass_app
def gc_cmd(app: App, max_unused: str | None, tier: str | None, as_json: bool, quiet: bool) -> None:
    """Delete data no snapshot references (older than the grace period), under the lock."""
    from cli.output import emit_json
    from store import maintenance
    from store.maintenance import MAX_UNUSED

    share = _share(max_unused, "--max-unused")
    chosen = app.tier(tier)
    store = app.store(chosen)
    report = maintenance.gc(
        store,
        grace_seconds=app.grace_seconds(chosen),
        max_unused=MAX_UNUSED if share is None else share,
    )
    app.catalog().record_event("gc", None, f"{store.url}: {report.summary()}")
    if as_json:
        emit_json(report.to_json())
    elif not quiet:
        click.echo(report.summary())


@store_group.command(
    "unlock",
    epilog="""\b
Examples:
  stigmem store unlock                 # remove stale locks only
  stigmem store unlock --all --tier offsite""",
)
@click.option(
    "--stale-only/--all",
    default=True,
    help="Remove only stale locks (dead process on this host, or older than 12h; default) "
    "or every lock. Use --all only when no stigmem process is using the store.",
)
@TIER
@JSON
@QUIET
@pass_app
def unlock_cmd(app: App, stale_only: bool, tier: str | None, as_json: bool, quiet: bool) -> None:
    """Remove lock objects left by killed or crashed processes."""
    import time

    from cli.output import emit_json, note
    from snapshot.errors import shown
    from store import locks

    store = app.store(app.tier(tier))
    removed = store.break_locks(stale_only=stale_only)
    left = locks.read_locks(store.backend)
    now = time.time()

    def describe(info: locks.LockInfo) -> dict[str, object]:
        return {
            "name": info.name,
            "kind": info.kind,
            "host": info.host,
            "pid": info.pid,
            "age_seconds": int(info.age(now)),
            "readable": info.readable,
        }

    if as_json:
        emit_json(
            {
                "store": store.url,
                "removed": [describe(i) for i in removed],
                "remaining": [describe(i) for i in left],
            }
        )
        return
    for info in removed:
        if quiet:
            continue
        if not info.readable:
            click.echo(f"removed unreadable lock {shown(info.name, 80)} (no lock of this tool)")
            continue
        click.echo(
            f"removed {info.kind} lock of host {info.host} pid {info.pid} "
            f"({int(info.age(now))}s old)"
        )
    for info in left:
        # A remaining lock is what will block the next prune or gc: always say so.
        note(
            f"still locked: {info.kind} lock of host {info.host} pid {info.pid} "
            f"({int(info.age(now))}s old) looks alive; use --all to remove it anyway"
        )


@store_group.command("stats", epilog="Example:\n\n  stigmem store stats --json")
@TIER
@JSON
@pass_app
def stats_cmd(app: App, tier: str | None, as_json: bool) -> None:
    """Snapshots, chunks, packs, stored and logical bytes, dedup ratio."""
    from cli.output import emit_json
    from store import maintenance

    stats = maintenance.stats(app.store(app.tier(tier)))
    doc = stats.to_json()
    if as_json:
        emit_json(doc)
        return
    for key, value in doc.items():
        click.echo(f"{key:15} {value}")
