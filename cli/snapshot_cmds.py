"""``stigmem snapshot ...``: create, verify, restore, list, show, history, export, import,
prune, pin, unpin."""

from __future__ import annotations

from pathlib import Path

import click

from cli.app import App

pass_app = click.make_pass_decorator(App)
JSON = click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout.")
MAX_SIZE = click.option(
    "--max-size",
    type=int,
    default=64 << 30,
    show_default=True,
    help="Largest database member accepted in a tarball, in bytes.",
)


def trust_options(f: click.decorators.FC) -> click.decorators.FC:
    f = click.option(
        "--trusted-keys",
        "trusted_keys_file",
        type=click.Path(path_type=Path),
        help="JSON array of trusted public keys (strict mode).",
    )(f)
    f = click.option(
        "--trusted-key",
        "trusted_key",
        multiple=True,
        help="A trusted public key, base64url (strict mode; repeatable).",
    )(f)
    return f


@click.group("snapshot")
def snapshot_group() -> None:
    """Create, verify, restore and manage snapshots."""


@snapshot_group.command(
    "create",
    epilog="""\b
Examples:
  stigmem snapshot create --db /var/lib/stigmem/stigmem.db
  stigmem snapshot create --db node.db --sign-with node.key --out /backups/
  stigmem snapshot create --no-store --out snapshot.tar.gz --json""",
)
@click.option("--db", type=click.Path(path_type=Path), help="Node database [STIGMEM_DB_PATH].")
@click.option(
    "--out", type=click.Path(path_type=Path), help="Also write the tarball (file or dir)."
)
@click.option("--sign-with", type=click.Path(path_type=Path), help="Private key file.")
@click.option("--tier", help="Tier to store into (default: the config's default tier).")
@click.option("--no-store", is_flag=True, help="Write only the tarball, as the Stigmem node does.")
@click.option(
    "--full-check",
    is_flag=True,
    help="PRAGMA integrity_check (every index row) instead of quick_check.",
)
@JSON
@pass_app
def create_cmd(
    app: App,
    db: Path | None,
    out: Path | None,
    sign_with: Path | None,
    tier: str | None,
    no_store: bool,
    full_check: bool,
    as_json: bool,
) -> None:
    """Take a consistent, signed snapshot of a live node database."""
    from cli.app import db_path_option
    from cli.creating import create_snapshot
    from cli.output import emit_json

    created = create_snapshot(app, db_path_option(db), out, sign_with, tier, no_store, full_check)
    if as_json:
        emit_json(created.to_json())
        return
    click.echo(f"snapshot {created.manifest.snapshot_id}")
    click.echo(f"name     {created.name}")
    if created.store:
        click.echo(f"stored   {created.store} (tier {created.tier})")
    if created.tarball:
        click.echo(f"tarball  {created.tarball}")


@snapshot_group.command(
    "verify",
    epilog="""\b
Examples:
  stigmem snapshot verify stigmem-snapshot-20260601T030000Z-0123456789ab.tar.gz
  stigmem snapshot verify 3fa2c1 --trusted-keys trusted.json
  stigmem snapshot verify 3fa2c1 --json""",
)
@click.argument("snapshot")
@trust_options
@MAX_SIZE
@JSON
@pass_app
def verify_cmd(
    app: App,
    snapshot: str,
    trusted_key: tuple[str, ...],
    trusted_keys_file: Path | None,
    max_size: int,
    as_json: bool,
) -> None:
    """Check checksums and signature of a tarball or a stored snapshot. Exit 3 on failure."""
    import os

    from cli.output import echo, emit_json
    from cli.restoring import record_verification
    from cli.sources import resolve, verify
    from cli.trust_keys import build_policy

    db_env = os.environ.get("STIGMEM_DB_PATH")
    policy = build_policy(
        app, trusted_key, trusted_keys_file, False, Path(db_env) if db_env else None
    )
    source = resolve(app, snapshot, max_size)
    verdict, state = verify(source, policy)
    record_verification(app, verdict, state, source, "verify")
    if as_json:
        emit_json(verdict.to_json())
    else:
        echo(verdict.line())
        for notice in verdict.notices:
            echo(notice)
    if not verdict.ok:
        raise click.exceptions.Exit(3)


@snapshot_group.command(
    "sql",
    epilog="""\b
Examples:
  stigmem snapshot sql 3fa2c1 "SELECT count(*) FROM facts"
  stigmem snapshot sql 3fa2c1 "SELECT * FROM facts WHERE id = ?" 42 --json""",
)
@click.argument("snapshot")
@click.argument("query")
@click.argument("params", nargs=-1)
@trust_options
@click.option("--force-unverified", is_flag=True, help="Query even if verification fails.")
@click.option("--json", "as_json", is_flag=True, help="Rows as a JSON array of objects.")
@click.option("--csv", "as_csv", is_flag=True, help="Rows as CSV with a header line.")
@pass_app
def sql_cmd(
    app: App,
    snapshot: str,
    query: str,
    params: tuple[str, ...],
    trusted_key: tuple[str, ...],
    trusted_keys_file: Path | None,
    force_unverified: bool,
    as_json: bool,
    as_csv: bool,
) -> None:
    """Run a read-only SQL query on a stored snapshot, in place (pages fetched as needed)."""
    from cli.querying import run_sql
    from cli.trust_keys import deferred_policy
    from snapshot.errors import UsageError

    if as_json and as_csv:
        raise UsageError("give at most one of --json and --csv")
    policy = deferred_policy(
        app, trusted_key, trusted_keys_file, force_unverified, background=False
    )
    output = "json" if as_json else "csv" if as_csv else "table"
    run_sql(app, snapshot, query, params, policy, force_unverified, output)


@snapshot_group.command(
    "find",
    epilog="""\b
Examples:
  stigmem snapshot find --entity team:ops --relation oncall
  stigmem snapshot find --node stigmem:node:1b4e... --since 30d --entity team:ops --json""",
)
@click.option("--node", help="Only this node's snapshots.")
@click.option("--since", help="Only snapshots made since (date or age, 7d).")
@click.option("--until", help="Only snapshots made until (date or age).")
@click.option("--entity", required=True, help="The facts of this entity.")
@click.option("--relation", help="... with this relation.")
@click.option("--value", help="... with this value.")
@trust_options
@click.option("--force-unverified", is_flag=True, help="Search snapshots that fail verification.")
@JSON
@pass_app
def find_cmd(
    app: App,
    node: str | None,
    since: str | None,
    until: str | None,
    entity: str,
    relation: str | None,
    value: str | None,
    trusted_key: tuple[str, ...],
    trusted_keys_file: Path | None,
    force_unverified: bool,
    as_json: bool,
) -> None:
    """Facts across a node's snapshots: when each was first and last seen, and gone."""
    from datetime import UTC, datetime

    from cli.listing import time_bound
    from cli.output import emit_json, table
    from cli.searching import find
    from cli.trust_keys import deferred_policy

    now = datetime.now(UTC)
    policy = deferred_policy(
        app, trusted_key, trusted_keys_file, force_unverified, background=False
    )
    found, decoded = find(
        app,
        node,
        time_bound(since, now, "--since") if since else None,
        time_bound(until, now, "--until") if until else None,
        entity,
        relation,
        value,
        policy,
        force_unverified,
    )
    app.catalog().record_event(
        "find",
        None,
        f"entity {entity!r}: {len(found)} facts, {decoded[0]} chunks decoded, "
        f"{decoded[1]} distinct chunks read",
    )
    if as_json:
        emit_json(found)
        return
    table(
        ["fact", "relation", "value", "first seen", "last seen", "gone in"],
        [
            [
                f["fact"].get("id"),
                f["fact"].get("relation"),
                f["fact"].get("value_v"),
                f["first_seen"]["created_at"][:19],
                f["last_seen"]["created_at"][:19],
                f["gone_in"]["snapshot_id"][:12] if f["gone_in"] else "-",
            ]
            for f in found
        ],
    )


@snapshot_group.command(
    "diff",
    epilog="""\b
Examples:
  stigmem snapshot diff 3fa2c1 8b01de
  stigmem snapshot diff 3fa2c1 8b01de --format markdown > review.md""",
)
@click.argument("older")
@click.argument("newer")
@trust_options
@click.option("--force-unverified", is_flag=True, help="Compare snapshots that fail verification.")
@click.option("--format", "fmt", type=click.Choice(["text", "markdown"]), default="text")
@JSON
@pass_app
def diff_cmd(
    app: App,
    older: str,
    newer: str,
    trusted_key: tuple[str, ...],
    trusted_keys_file: Path | None,
    force_unverified: bool,
    fmt: str,
    as_json: bool,
) -> None:
    """What changed between two stored snapshots: pages, rows per table, facts."""
    from cli.output import echo, emit_json, table
    from cli.searching import diff, diff_markdown
    from cli.trust_keys import deferred_policy

    policy = deferred_policy(
        app, trusted_key, trusted_keys_file, force_unverified, background=False
    )
    doc = diff(app, older, newer, policy, force_unverified)
    app.catalog().record_event(
        "diff", doc["to"], f"from {doc['from']}: {doc['pages_changed']} pages changed"
    )
    if as_json:
        emit_json(doc)
    elif fmt == "markdown":
        catalog = app.catalog()
        older_row, newer_row = catalog.show(doc["from"]), catalog.show(doc["to"])
        created = (str(older_row["created_at"]), str(newer_row["created_at"]))
        click.echo(diff_markdown(doc, str(newer_row["node_id"]), created), nl=False)
    else:
        echo(f"{doc['pages_changed']} pages changed from {doc['from'][:12]} to {doc['to'][:12]}")
        table(
            ["table", "added", "removed", "changed"],
            [
                [t, c["added"], c["removed"], c["changed"]]
                for t, c in doc["tables"].items()
                if any(c.values())
            ],
        )


@snapshot_group.command(
    "drill",
    epilog="""\b
Examples:
  stigmem snapshot drill                     # the newest snapshot of every node
  stigmem snapshot drill --node stigmem:node:1234 --tier offsite
  stigmem snapshot drill 3fa2c1 --trusted-keys trusted.json --migrations-dir migrations/
  stigmem snapshot drill --all --random --json""",
)
@click.argument("snapshot", required=False)
@click.option("--node", help="Drill this node's newest snapshot.")
@click.option("--all", "every_node", is_flag=True, help="Drill every node (the default).")
@click.option("--random", "pick_random", is_flag=True, help="A random snapshot, not the newest.")
@click.option("--tier", help="Restore from this tier's store (default: any that holds it).")
@trust_options
@click.option(
    "--migrations-dir",
    type=click.Path(path_type=Path),
    envvar="STIGMEM_MIGRATIONS_DIR",
    help="Also replay NNN_name.sql migrations newer than the snapshot.",
)
@JSON
@pass_app
def drill_cmd(
    app: App,
    snapshot: str | None,
    node: str | None,
    every_node: bool,
    pick_random: bool,
    tier: str | None,
    trusted_key: tuple[str, ...],
    trusted_keys_file: Path | None,
    migrations_dir: Path | None,
    as_json: bool,
) -> None:
    """Restore snapshots into scratch space and prove each is its node's database.

    Strict verification (the keys given, else the keys the catalog trusts), the full PRAGMA
    integrity_check, the node's id, migrations and tables; each drill is recorded with its
    time to restore. Exit 0 when every drill passed, 3 when one failed."""
    from cli.drilling import chosen_snapshots, drill
    from cli.output import echo, emit_json
    from cli.sources import source_for
    from cli.trust_keys import strict_policy
    from snapshot.errors import StigmemError, UsageError

    if sum(x is not None and x is not False for x in (snapshot, node, every_node or None)) > 1:
        raise UsageError("give at most one of SNAPSHOT, --node and --all")
    if migrations_dir is not None and not migrations_dir.is_dir():
        raise StigmemError(f"no such migrations directory: {migrations_dir}")
    from cli.hooks import around

    with around(app, "drill") as hook:
        chosen_tier = app.tier(tier) if tier is not None else None
        policy = strict_policy(app, trusted_key, trusted_keys_file)
        chosen = chosen_snapshots(app, snapshot, node, chosen_tier, pick_random)
        if not chosen:
            raise StigmemError("no stored snapshot to drill: the catalog lists none")
        results = []
        for sid, node_id in chosen:
            results.append(
                drill(app, source_for(app, sid, chosen_tier), node_id, policy, migrations_dir)
            )
        docs = [r.to_json() for r in results]
        hook.result({"drills": docs})
        if as_json:
            emit_json(
                docs
                if len(docs) > 1 or every_node or (snapshot is None and node is None)
                else docs[0]
            )
        else:
            for r in results:
                echo(
                    f"{'OK' if r.ok else 'FAIL'}: drill of {r.snapshot_id} ({r.node_id}) "
                    f"restored {r.size} bytes in {r.restore_seconds:.2f} s"
                )
                for c in r.checks:
                    echo(f"  {'ok  ' if c.ok else 'FAIL'} {c.name}: {c.detail}")
        if not all(r.ok for r in results):
            from snapshot.errors import DrillFailed

            failed = [r.snapshot_id[:12] for r in results if not r.ok]
            raise DrillFailed(f"drill failed for {', '.join(failed)}")


@snapshot_group.command(
    "restore",
    epilog="""\b
Examples:
  stigmem snapshot restore snapshot.tar.gz --db /var/lib/stigmem/stigmem.db
  stigmem snapshot restore --from snapshot.tar.gz --db node.db --migrations-dir migrations/
  stigmem snapshot restore 3fa2c1 --db node.db --trusted-keys trusted.json""",
)
@click.argument("snapshot", required=False)
@click.option("--from", "from_file", type=click.Path(path_type=Path), help="Tarball to restore.")
@click.option("--db", type=click.Path(path_type=Path), help="Target database [STIGMEM_DB_PATH].")
@trust_options
@click.option("--force-unverified", is_flag=True, help="Restore even if verification fails.")
@click.option(
    "--migrations-dir",
    type=click.Path(path_type=Path),
    envvar="STIGMEM_MIGRATIONS_DIR",
    help="Replay NNN_name.sql migrations newer than the snapshot.",
)
@click.option("--no-backup", is_flag=True, help="Do not keep <db>.pre-restore-backup.")
@click.option(
    "--full-check",
    is_flag=True,
    help="PRAGMA integrity_check (every index row) instead of quick_check.",
)
@MAX_SIZE
@JSON
@pass_app
def restore_cmd(
    app: App,
    snapshot: str | None,
    from_file: Path | None,
    db: Path | None,
    trusted_key: tuple[str, ...],
    trusted_keys_file: Path | None,
    force_unverified: bool,
    migrations_dir: Path | None,
    no_backup: bool,
    full_check: bool,
    max_size: int,
    as_json: bool,
) -> None:
    """Verify a snapshot and atomically replace the node database with it."""
    from cli.app import db_path_option
    from cli.output import echo, emit_json
    from cli.restoring import restore_snapshot
    from cli.sources import resolve
    from cli.trust_keys import deferred_policy
    from snapshot.errors import StigmemError, UsageError

    if (snapshot is None) == (from_file is None):
        raise UsageError("give exactly one of SNAPSHOT or --from FILE")
    target = db_path_option(db)
    if target.is_dir():
        raise StigmemError(f"--db is a directory: {target}")
    if migrations_dir is not None and not migrations_dir.is_dir():
        raise StigmemError(f"no such migrations directory: {migrations_dir}")
    ref = str(from_file) if from_file is not None else str(snapshot)
    # Before the target is locked (it reads the target's node key). The catalog is opened
    # only once the database is written, beside its integrity check: opened in the
    # background from the start, it took the CPU the rebuild needs.
    policy = deferred_policy(
        app, trusted_key, trusted_keys_file, force_unverified, target, background=False
    )
    source = resolve(app, ref, max_size)
    restored = restore_snapshot(
        app, source, target, policy, force_unverified, migrations_dir, not no_backup, full_check
    )
    if as_json:
        emit_json(restored.to_json())
        return
    verdict = restored.verdict
    echo(verdict.line())
    for notice in verdict.notices:
        echo(notice)
    echo(f"restored {verdict.snapshot_id} to {restored.target}")
    echo(f"  node        {verdict.node_id}")
    echo(f"  created at  {restored.created_at}")
    echo(f"  integrity   {restored.integrity_line()}")
    if restored.backup:
        click.echo(f"  backup      {restored.backup}")
    replayed = ", ".join(restored.migrations_replayed) or "none"
    click.echo(f"  migrations replayed: {replayed}")
    click.echo(f"  federation cursors present: {restored.federation_cursors}")


def _filter_options(f: click.decorators.FC) -> click.decorators.FC:
    for decorator in reversed(
        [
            click.option("--node", help="Node id."),
            click.option("--since", help="Date/time (2026-06-01) or age (7d)."),
            click.option("--until", help="Date/time or age."),
            click.option("--signer", help="Signer key id or key label."),
            click.option("--tier", help="Only snapshots placed in this tier."),
            click.option("--verified", type=click.Choice(["ok", "failed", "never"])),
            click.option(
                "--not-verified-since",
                help="Age (30d) or date: no verification (any outcome) since then.",
            ),
            click.option("--limit", type=click.IntRange(min=1)),
        ]
    ):
        f = decorator(f)
    return f


@snapshot_group.command(
    "list",
    epilog="""\b
Examples:
  stigmem snapshot list --since 7d
  stigmem snapshot list --node stigmem:node:1b4e... --verified never --json
  stigmem snapshot list --not-verified-since 30d --tier offsite""",
)
@_filter_options
@JSON
@pass_app
def list_cmd(app: App, as_json: bool, **filters: object) -> None:
    """List catalogued snapshots, newest first."""
    from cli.listing import build_filter, print_list

    catalog = app.catalog()
    rows = catalog.list_snapshots(build_filter(filters))
    print_list(rows, as_json, catalog.last_drills([row.id for row in rows]))


@snapshot_group.command(
    "show",
    epilog="""\b
Examples:
  stigmem snapshot show 3fa2c1
  stigmem snapshot show 3fa2c1 --json""",
)
@click.argument("snapshot")
@JSON
@pass_app
def show_cmd(app: App, snapshot: str, as_json: bool) -> None:
    """Manifest, signer, placements, verifications and restores of one snapshot."""
    from cli.listing import print_show

    catalog = app.catalog()
    print_show(catalog.show(catalog.resolve(snapshot.lower())), as_json)


@snapshot_group.command(
    "history",
    epilog="""\b
Examples:
  stigmem snapshot history --since 7d
  stigmem snapshot history --snapshot 3fa2c1 --json""",
)
@click.option("--snapshot", "snapshot_ref", help="Only events of this snapshot (id or prefix).")
@click.option(
    "--event",
    help="Only this kind of event (catalogued, placed, removed, verified, restored, pruned, "
    "pinned, unpinned, key-trusted, key-revoked).",
)
@click.option("--since", help="Date/time or age (7d).")
@click.option("--limit", type=click.IntRange(min=1))
@JSON
@pass_app
def history_cmd(
    app: App,
    snapshot_ref: str | None,
    event: str | None,
    since: str | None,
    limit: int | None,
    as_json: bool,
) -> None:
    """The audit log: every create, verify, restore, import, export, prune."""
    from datetime import UTC, datetime

    from cli.listing import print_history, time_bound

    catalog = app.catalog()
    sid = catalog.resolve(snapshot_ref.lower()) if snapshot_ref else None
    bound = time_bound(since, datetime.now(UTC), "--since") if since else None
    print_history(catalog.history(snapshot_id=sid, since=bound, event=event, limit=limit), as_json)


@snapshot_group.command(
    "export",
    epilog="""\b
Examples:
  stigmem snapshot export 3fa2c1 --out /tmp/
  stigmem snapshot export 3fa2c1 --format markdown --scope team --entities team:ops,team:eng
  stigmem snapshot export --db node.db --format markdown --scope local --entities agent:bot-1 \\
      --output review.md

\b
--format markdown is the runbook's review artifact (what scripts/stigmem-snapshot.sh prints,
read from the database instead of the node's API): for reading, never for restoring. It is
written with mode 0600, as it holds fact data; without --output it goes to stdout.""",
)
@click.argument("snapshot", required=False)
@click.option(
    "--out",
    "--output",
    "out",
    type=click.Path(path_type=Path),
    help="File or directory (markdown: stdout without it).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["tar.gz", "markdown"]),
    default="tar.gz",
    show_default=True,
    help="tar.gz: the Stigmem tarball; markdown: a review to read, never to restore.",
)
@click.option(
    "--db",
    type=click.Path(path_type=Path),
    help="Markdown: read this live node database (one consistent read) instead of SNAPSHOT.",
)
@click.option("--scope", help="Markdown: local, team, company or public.")
@click.option("--entities", help="Markdown: comma-separated entity URIs, a section each.")
@click.option(
    "--limit", type=int, help="Markdown: facts per entity, 1-500, as the node's API [200]."
)
@click.option(
    "--no-contradictions", is_flag=True, help="Markdown: leave out the contradiction metrics."
)
@pass_app
def export_cmd(
    app: App,
    snapshot: str | None,
    out: Path | None,
    fmt: str,
    db: Path | None,
    scope: str | None,
    entities: str | None,
    limit: int | None,
    no_contradictions: bool,
) -> None:
    """Write a stored snapshot as a Stigmem tarball (byte-identical every time), or a
    snapshot or live database as the runbook's Markdown review (never a restore format)."""
    from snapshot.errors import UsageError

    markdown_only = {
        "--db": db is not None,
        "--scope": scope is not None,
        "--entities": entities is not None,
        "--limit": limit is not None,
        "--no-contradictions": no_contradictions,
    }
    if fmt != "markdown":
        given = [name for name, used in markdown_only.items() if used]
        if given:
            raise UsageError(f"{given[0]} is for --format markdown only")
        if snapshot is None:
            raise UsageError("missing argument SNAPSHOT")
        from cli.exporting import export_tarball

        click.echo(str(export_tarball(app, snapshot, out)))
        return
    from cli.exporting import export_markdown
    from snapshot.markdown import DEFAULT_LIMIT, Request

    if scope is None or entities is None:
        raise UsageError("--format markdown needs --scope and --entities")
    request = Request(
        scope=scope,
        entities=entities,
        limit=DEFAULT_LIMIT if limit is None else limit,
        contradictions=not no_contradictions,
    )
    export_markdown(app, snapshot, db, request, out)


@snapshot_group.command(
    "import",
    epilog="""\b
Examples:
  stigmem snapshot import stigmem-snapshot-20260601T030000Z-0123456789ab.tar.gz
  stigmem snapshot import /backups/*.tar.gz --tier offsite""",
)
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--tier", help="Tier to store into.")
@trust_options
@MAX_SIZE
@JSON
@pass_app
def import_cmd(
    app: App,
    files: tuple[Path, ...],
    tier: str | None,
    trusted_key: tuple[str, ...],
    trusted_keys_file: Path | None,
    max_size: int,
    as_json: bool,
) -> None:
    """Verify tarballs (ours or the Stigmem node's) and add them to the store."""
    from cli.exporting import import_tarballs

    import_tarballs(app, files, tier, trusted_key, trusted_keys_file, max_size, as_json)


@snapshot_group.command(
    "prune",
    epilog="""\b
Examples:
  stigmem snapshot prune --tier local --dry-run
  stigmem snapshot prune --tier offsite --keep-daily 90 --json""",
)
@click.option("--tier", help="Tier to prune (default: the default tier).")
@click.option("--dry-run", is_flag=True, help="Show the plan, remove nothing.")
@click.option("--keep-last", type=click.IntRange(min=0))
@click.option("--keep-hourly", type=click.IntRange(min=0))
@click.option("--keep-daily", type=click.IntRange(min=0))
@click.option("--keep-weekly", type=click.IntRange(min=0))
@click.option("--keep-monthly", type=click.IntRange(min=0))
@click.option("--keep-yearly", type=click.IntRange(min=0))
@click.option("--keep-within", help="Keep all within this age of the newest (30d, 12h).")
@JSON
@pass_app
def prune_cmd(app: App, tier: str | None, dry_run: bool, as_json: bool, **keep: object) -> None:
    """Remove snapshots the tier's retention policy no longer keeps, then collect garbage."""
    from cli.pruning import prune

    prune(app, tier, dry_run, keep, as_json)


@snapshot_group.command("pin", epilog="Example:\n\n  stigmem snapshot pin 3fa2c1")
@click.argument("snapshot")
@pass_app
def pin_cmd(app: App, snapshot: str) -> None:
    """Never prune this snapshot."""
    catalog = app.catalog()
    sid = catalog.resolve(snapshot.lower())
    catalog.set_pinned(sid, True)
    click.echo(f"pinned {sid}")


@snapshot_group.command("unpin", epilog="Example:\n\n  stigmem snapshot unpin 3fa2c1")
@click.argument("snapshot")
@pass_app
def unpin_cmd(app: App, snapshot: str) -> None:
    """Let the retention policy decide about this snapshot again."""
    catalog = app.catalog()
    sid = catalog.resolve(snapshot.lower())
    catalog.set_pinned(sid, False)
    click.echo(f"unpinned {sid}")
