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
from typing import TYPE_CHECKING, Any

import click

from cli.app import App, Tier
from cli.output import table
from snapshot.errors import UsageError

if TYPE_CHECKING:
    from snapshot.retention import Plan, Policy
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


def _plan(app: App, tier: Tier, store: Store, policy: Policy, reconcile: bool) -> Plan:
    """One catalog query and one store listing; snapshots only one side knows are left out
    (the catalog's are stale placements, the store's are for ``catalog reindex``)."""
    from snapshot.retention import SnapshotInfo, plan_prune

    catalog = app.catalog()
    trusted, _revoked = trusted_key_ids(app)
    present = set(store.snapshot_ids())
    rows = catalog.snapshots_for_prune(tier.name)
    infos = [
        SnapshotInfo(
            id=row.id,
            node_id=row.node_id,
            created_at=row.created_at,
            trusted=row.signer_key_id in trusted,
            pinned=row.pinned,
            last_verify_ok=row.last_verify_outcome == "ok",
        )
        for row in rows
        if row.id in present
    ]
    if reconcile:
        for row in rows:
            if row.id not in present:
                catalog.mark_removed(row.id, tier.name)
    return plan_prune(policy, infos)


def prune(
    app: App, tier_name: str | None, dry_run: bool, flags: dict[str, Any], as_json: bool
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
    bytes_freed = 0
    if dry_run:
        plan = _plan(app, tier, store, policy, reconcile=False)
    else:
        with store.lock("exclusive"):
            plan = _plan(app, tier, store, policy, reconcile=True)
            for sid in plan.remove:
                store.delete_snapshot(sid)
                catalog.mark_removed(sid, tier.name)
                removed.append(sid)
            # Nested inside our exclusive lock, so nothing can add a snapshot in between.
            bytes_freed = store.gc(grace_seconds=tier.grace_seconds).bytes_freed
    plan_json = plan.to_json()
    catalog.record_prune(tier.name, policy.to_json(), plan_json, removed, bytes_freed, dry_run)
    if as_json:
        # Compact: a 100,000-entry plan is 25 MiB indented, and the C encoder only runs
        # without indent (a third of the time of a dry run otherwise).
        click.echo(
            json.dumps(
                {
                    "tier": tier.name,
                    "dry_run": dry_run,
                    "policy": policy.to_json(),
                    "plan": plan_json,
                    "removed": removed,
                    "bytes_freed": bytes_freed,
                },
                separators=(",", ":"),
            )
        )
        return
    table(
        ["id", "created (UTC)", "node", "action", "reasons"],
        [
            [
                e.id[:12],
                e.created_at.strftime("%Y-%m-%d %H:%M:%S"),
                e.node_id,
                e.action,
                ", ".join(e.reasons),
            ]
            for e in plan.entries
        ],
        title=f"prune plan for tier {tier.name}: {policy.describe()}",
    )
    verb = "would remove" if dry_run else "removed"
    count = len(plan.remove) if dry_run else len(removed)
    click.echo(
        f"{verb} {count} of {len(plan.entries)} snapshots; freed {bytes_freed} bytes", err=True
    )
