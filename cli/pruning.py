"""``snapshot prune``: plan from the catalog, remove documents, then gc the store.

A real run holds the store's exclusive lock from listing to the end of gc, so the plan is
made from what the store holds at that moment and no create or sync can interleave. Order
for crash safety: a document is deleted from the store before its placement is marked
removed in the catalog; a run killed in between leaves a placement whose document is gone,
which the next run (or ``store sync``) marks removed. gc always runs after a real prune, so a
rerun after a kill also frees what the killed run had unreferenced.
"""

from __future__ import annotations

import json
from operator import itemgetter
from typing import TYPE_CHECKING, Any

import click

from cli.app import App, Tier
from cli.output import table
from snapshot.errors import UsageError

if TYPE_CHECKING:
    from cli.hooks import Hook
    from snapshot.retention import Policy, RowPlan
    from store.repository import Store


def trusted_key_ids(app: App) -> tuple[set[str], set[str]]:
    """Key ids that count for retention (node and catalog-trusted) and revoked ones."""
    import os
    from pathlib import Path

    from cli.trust_keys import node_public_keys
    from snapshot.keys import key_id, parse_public_key

    catalog = app.catalog()
    db_env = os.environ.get("STIGMEM_DB_PATH")
    trusted = {key_id(k) for k in node_public_keys(Path(db_env) if db_env else None)}
    trusted |= {key_id(parse_public_key(k, "the catalog")) for k in catalog.trusted_keys()}
    revoked = {key_id(parse_public_key(k, "the catalog")) for k in catalog.revoked_keys()}
    return trusted - revoked, revoked


def _plan(app: App, tier: Tier, store: Store, policy: Policy, reconcile: bool) -> RowPlan:
    """One catalog query and one store listing; snapshots only one side knows are left out
    (the catalog's are stale placements, the store's are for ``catalog reindex``)."""
    from snapshot.retention import plan_rows

    catalog = app.catalog()
    trusted, _revoked = trusted_key_ids(app)
    # (Not on a thread beside the catalog query: both are mostly interpreter work, so they
    # would only take turns with the interpreter lock, and the thread adds its own cost.)
    present = set(store.snapshot_ids())
    # (created_utc, id, node_id, flags), newest first, TRUSTED by this command's idea of trust.
    rows = catalog.prune_rows(tier.name, trusted)
    if not present.issuperset(map(itemgetter(1), rows)):
        stale = [sid for _c, sid, _n, _f in rows if sid not in present]
        if reconcile:
            for sid in stale:
                catalog.mark_removed(sid, tier.name)
        gone = set(stale)
        rows = [row for row in rows if row[1] not in gone]
    return plan_rows(policy, rows)


def _forget_checks(app: App, removed: list[str]) -> None:
    """This host's check marks of databases no tier holds any more go with them."""
    catalog = app.catalog()
    gone = []
    for sid in removed:
        shown = catalog.show(sid)
        if not any(p["removed_at"] is None for p in shown["placements"]):
            gone.append(shown["db_sha256"])
    app.cache().forget_checked(gone)


def prune(
    app: App, tier_name: str | None, dry_run: bool, flags: dict[str, Any], as_json: bool
) -> None:
    """Prune a tier, with the ``[hooks]`` of the config told it starts and ends."""
    from cli.hooks import around

    with around(app, "prune") as hook:
        _prune(app, tier_name, dry_run, flags, as_json, hook)


def _prune(
    app: App,
    tier_name: str | None,
    dry_run: bool,
    flags: dict[str, Any],
    as_json: bool,
    hook: Hook,
) -> None:
    from snapshot.durations import DurationError
    from snapshot.retention import EmptyPolicyError

    tier = app.tier(tier_name)
    try:
        policy = tier.policy.with_overrides(**flags)
    except DurationError as exc:
        raise UsageError(f"--keep-within: {exc}") from None
    if policy.is_empty():
        raise EmptyPolicyError()
    store = app.store(tier)
    catalog = app.catalog()
    removed: list[str] = []
    retained: dict[str, str] = {}  # id -> when its Object Lock ends
    bytes_freed = 0
    if dry_run:
        plan = _plan(app, tier, store, policy, reconcile=False)
    else:
        with store.lock("exclusive"):
            # Before anything is deleted: the gc below would refuse only after the deletes.
            store.require_sound_documents("prune")
            plan = _plan(app, tier, store, policy, reconcile=True)
            from store import layout

            locked = store.backend.retained([layout.snapshot_path(s) for s in plan.remove])
            for sid in plan.remove:
                lock_end = locked.get(layout.snapshot_path(sid))
                if lock_end is not None:
                    # Kept by the store until its lock ends; the next prune after removes it.
                    retained[sid] = lock_end.isoformat()
                    continue
                store.delete_snapshot(sid)
                catalog.mark_removed(sid, tier.name)
                removed.append(sid)
            # Nested inside our exclusive lock, so nothing can add a snapshot in between.
            from store import maintenance

            bytes_freed = maintenance.gc(store, grace_seconds=tier.grace_seconds).bytes_freed
        _forget_checks(app, removed)
    # Serialised once (20 MiB for 100,000 snapshots), for the catalog's record and stdout.
    plan_json = plan.json_text()
    catalog.record_prune(tier.name, policy.to_json(), plan_json, removed, bytes_freed, dry_run)
    # The --json document without its plan (one entry per snapshot of the tier: megabytes,
    # more than a ping takes), and the plan's counts instead.
    hook.result(
        {
            "tier": tier.name,
            "dry_run": dry_run,
            "policy": policy.to_json(),
            "snapshots": len(plan.rows),
            "to_remove": len(plan.remove),
            "removed": removed,
            "retained": [{"id": sid, "locked_until": until} for sid, until in retained.items()],
            "bytes_freed": bytes_freed,
        }
    )
    if as_json:
        compact = (",", ":")
        document = "".join(
            [
                '{"tier":',
                json.dumps(tier.name),
                ',"dry_run":',
                json.dumps(dry_run),
                ',"policy":',
                json.dumps(policy.to_json(), separators=compact),
                ',"plan":',
                plan_json,
                ',"removed":',
                json.dumps(removed, separators=compact),
                ',"retained":',
                json.dumps(
                    [{"id": sid, "locked_until": until} for sid, until in retained.items()],
                    separators=compact,
                ),
                ',"bytes_freed":',
                json.dumps(bytes_freed),
                "}\n",
            ]
        )
        # Bytes: click writes them as they are (it would scan text for ANSI codes to strip).
        click.echo(document.encode(), nl=False)
        return
    table(
        ["id", "created (UTC)", "node", "action", "reasons"],
        [
            [
                sid[:12],
                created[:19].replace("T", " "),
                node,
                "keep" if why else "remove",
                ", ".join(why),
            ]
            for (created, sid, node, _flags), why in zip(plan.rows, plan.reasons, strict=True)
        ],
        title=f"prune plan for tier {tier.name}: {policy.describe()}",
    )
    for sid, locked_until in retained.items():
        click.echo(f"{sid[:12]}: retained (locked until {locked_until})", err=True)
    verb = "would remove" if dry_run else "removed"
    count = len(plan.remove) if dry_run else len(removed)
    click.echo(f"{verb} {count} of {len(plan.rows)} snapshots; freed {bytes_freed} bytes", err=True)
