"""``snapshot restore``: verify while streaming into a temp file beside the target, then swap."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from cli.app import App
from cli.output import printable
from cli.sources import ReadResult, Source, StoreSource, write_into
from snapshot.errors import StigmemError, VerificationError
from snapshot.trust import TrustPolicy, VerifyResult

if TYPE_CHECKING:
    from snapshot.fileio import Writable

FORCED_WARNING = (
    "WARNING: restoring snapshot {sid} despite failed verification ({outcome}: {detail}) "
    "because --force-unverified was given"
)


@dataclass
class Restored:
    verdict: VerifyResult
    target: Path
    backup: Path | None
    migrations_replayed: list[str]
    federation_cursors: int
    forced: bool
    created_at: str | None = None
    # The SQLite check the new database passed: run by this restore, or (the same bytes, by
    # their SHA-256) by the create on this host that made them. Which one ran is work, not
    # result: it is logged, and the output is the same either way.
    integrity_check: str = "quick_check"
    integrity: str = "ok"  # or the problem the check found (a forced restore)
    extra: dict[str, Any] = field(default_factory=dict)

    def integrity_line(self) -> str:
        if self.integrity != "ok":
            return f"{self.integrity_check} FAILED: {self.integrity}"
        return f"{self.integrity_check} passed"

    def to_json(self) -> dict[str, Any]:
        return {
            "snapshot_id": self.verdict.snapshot_id,
            "node_id": self.verdict.node_id,
            "created_at": self.created_at,
            "target": str(self.target),
            "backup": str(self.backup) if self.backup else None,
            "migrations_replayed": self.migrations_replayed,
            "federation_cursors": self.federation_cursors,
            "forced": self.forced,
            "integrity_check": {
                "pragma": self.integrity_check,
                "result": self.integrity,
            },
            "verification": self.verdict.to_json(),
        }


def restore_snapshot(
    app: App,
    source: Source,
    target: Path,
    policy: Callable[[], TrustPolicy],
    forced: bool,
    migrations_dir: Path | None,
    backup: bool,
    full_check: bool = False,
) -> Restored:
    """``policy`` is called once the bytes are written (it may still be reading the catalog's
    keys in the background); ``forced`` is ``--force-unverified``."""
    from snapshot.checked import FULL, QUICK, attested
    from snapshot.manifest import DB_MEMBER
    from snapshot.restore import restore_database

    # The catalog opens once the bytes are written, beside the integrity check (see the
    # command), also on a new host: opened while the store's index loads, it would take the
    # GIL the load's inserts need, and that load is what a new-host restore waits on first.
    outcome: dict[str, Any] = {}

    def write_new(out: Writable) -> Callable[[], None]:
        judge, outcome["written"] = write_into(source, out)

        def finish() -> None:
            verdict, state = judge(policy())
            outcome["verdict"], outcome["state"] = verdict, state
            if not verdict.ok:
                record_verification(app, verdict, state, source, "restore")
                if not forced:
                    raise VerificationError(verdict.outcome, verdict.detail, verdict.snapshot_id)
                # Whatever the log level: an operator must always see a forced restore.
                warning = FORCED_WARNING.format(
                    sid=verdict.snapshot_id or source.label,
                    outcome=verdict.outcome,
                    detail=verdict.detail,
                )
                click.echo(printable(warning), err=True)

        return finish

    def checked_before() -> bool:
        # By the digest of the bytes written, whatever the manifest claims: these exact
        # bytes passed quick_check here before (at create), so it would pass again. Or the
        # snapshot's signer attests they passed it where it was created (snapshot.checked);
        # never for a forced restore, whose signer may be the one thing that failed.
        written = outcome["written"]
        digest = written.actual.get(DB_MEMBER)
        if digest is None:
            return False
        if app.cache().was_checked(digest, QUICK):
            return True
        return (
            not forced
            and written.manifest is not None
            and isinstance(source, StoreSource)
            and attested(source.checked_record(), written.manifest, digest, QUICK)
        )

    result = restore_database(
        target,
        write_new,
        backup=backup,
        migrations_dir=migrations_dir,
        force=forced,
        full_check=full_check,
        checked_before=checked_before,
    )
    if result.checked_before:
        logging.getLogger("stigmem").info(
            "quick_check not repeated: these bytes passed it at create (on this host, or as "
            "the snapshot's signer attests)"
        )
    if result.integrity != "ok":
        # SQLite's findings name the database's own tables and indexes: untrusted text.
        click.echo(
            printable(f"WARNING: restored database fails its integrity check: {result.integrity}"),
            err=True,
        )
    verdict: VerifyResult = outcome["verdict"]
    state: ReadResult = outcome["state"]
    if verdict.ok:
        record_verification(app, verdict, state, source, "restore")
    restored = Restored(
        verdict=verdict,
        target=target,
        backup=result.backup_path,
        migrations_replayed=list(result.migrations_replayed),
        federation_cursors=result.federation_cursors,
        forced=forced,
        created_at=state.manifest.raw["created_at"] if state.manifest else None,
        integrity_check=FULL if full_check else QUICK,
        integrity=result.integrity,
    )
    try:
        record_restore(app, restored, state, source)
    except (StigmemError, UnicodeError) as exc:
        # The target is already the restored database: failing now would report a restore
        # that happened as one that did not. Say what is missing from the catalog instead.
        click.echo(
            f"WARNING: restored, but the catalog did not record it: {printable(str(exc))}",
            err=True,
        )
    return restored


def record_restore(app: App, restored: Restored, state: ReadResult, source: Source) -> None:
    verdict = restored.verdict
    if verdict.snapshot_id is not None and state.manifest is not None:
        catalog = app.catalog()
        ensure_catalogued(app, state, source)
        catalog.record_restore(
            verdict.snapshot_id, str(restored.target), restored.forced, restored.migrations_replayed
        )
    else:
        app.catalog().record_event(
            "restored", None, f"forced restore of unreadable {source.label} to {restored.target}"
        )


def ensure_catalogued(app: App, state: ReadResult, source: Source) -> None:
    """A snapshot we verified or restored from a tarball gets a catalog row of its own."""
    from cli.recording import catalog_snapshot

    assert state.manifest is not None
    catalog_snapshot(
        app.catalog(), state.manifest, state.applied_migrations, state.db_size, source.label
    )
    if isinstance(source, StoreSource):
        app.catalog().record_placement(
            state.manifest.snapshot_id, source.tier.name, source.store.url
        )


def record_verification(
    app: App, verdict: VerifyResult, state: ReadResult, source: Source, kind: str
) -> None:
    """Record a verification against the snapshot when its manifest is genuine, else an event.

    A manifest whose signature fails names an id nobody signed: cataloguing it would let an
    attacker plant rows. Its failure still goes to the audit log.
    """
    catalog = app.catalog()
    genuine = state.manifest is not None and state.manifest.signature_valid()
    if genuine and verdict.snapshot_id is not None:
        # Only a copy that verified becomes a snapshot row: one whose artifacts fail is not
        # a snapshot anyone holds, and listing it would offer it to restore and prune. Its
        # failure is kept all the same, a verification under the id its manifest names,
        # which `snapshot show` lists once that snapshot is catalogued from a good copy.
        if verdict.ok:
            ensure_catalogued(app, state, source)
        catalog.record_verification(
            verdict.snapshot_id, verdict.mode, kind, verdict.outcome, verdict.detail
        )
    else:
        catalog.record_event(f"{kind}-failed", None, f"{source.label}: {verdict.line()}")
