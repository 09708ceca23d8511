"""``snapshot export`` and ``snapshot import``: between the store and Stigmem tarballs; and
``snapshot export --format markdown``, the runbook's review of a snapshot's facts."""

from __future__ import annotations

import io
import sqlite3
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

import click

from cli.app import App
from cli.output import echo, emit_json, note, printable
from cli.sources import (
    Source,
    StoreSource,
    TarballSource,
    copy_into,
    resolve,
    verify,
)
from snapshot.errors import StigmemError, UsageError, VerificationError
from snapshot.manifest import CURSOR_MEMBER, DB_MEMBER, manifest_from_dict, snapshot_name
from snapshot.markdown import Request

# The largest database member a tarball may have, as ``snapshot verify``'s default.
DEFAULT_MAX_SIZE = 64 << 30


def _store_source(app: App, ref: str) -> StoreSource:
    source = resolve(app, ref, 0)
    if not isinstance(source, StoreSource):
        raise StigmemError(f"export takes a snapshot id or prefix in the store, not a file: {ref}")
    return source


def export_tarball(app: App, ref: str, out: Path | None) -> Path:
    from cli.creating import tarball_target
    from snapshot.fileio import atomic_write
    from snapshot.tarball import write_tarball

    source = _store_source(app, ref)
    store, sid = source.store, source.snapshot_id
    doc = store.load_document(sid)
    manifest = manifest_from_dict(doc["manifest"])
    cursor = io.BytesIO()
    store.read_artifact(sid, CURSOR_MEMBER, cursor)
    db_size = int(doc["artifacts"][DB_MEMBER]["size"])
    target = tarball_target(
        out if out is not None else Path.cwd(),
        snapshot_name(manifest.created_at, manifest.db_sha256),
    )

    def write(handle: BinaryIO) -> None:
        expected = f"sha256:{manifest.db_sha256}"
        digests: list[str] = []

        def write_db(sink: BinaryIO) -> None:
            digests.append(source.read_db(copy_into(sink), expected, "exporting")[0])

        write_tarball(handle, manifest, cursor.getvalue(), db_size, write_db)
        if digests[0] != expected:
            raise VerificationError(
                "checksum_error",
                f"{DB_MEMBER} read from {store.url} differs from the manifest",
                sid,
            )

    atomic_write(target, write, 0o600)
    app.catalog().record_event("export", sid, f"to {target}")
    return target


def export_markdown(
    app: App, ref: str | None, db: Path | None, request: Request, out: Path | None
) -> None:
    """The runbook's Markdown review of ``ref`` (a stored snapshot or a tarball, verified
    first) or of the live database ``db``: on stdout, or written to ``out`` (a file, or a
    directory to name it in) with mode 0600, as it holds fact data. Bad input is refused
    before anything is read, and nothing is written unless all of it was read."""
    from snapshot.fileio import atomic_write_bytes

    request.check()
    if ref is not None and db is not None:
        raise UsageError("give SNAPSHOT or --db PATH, not both")
    if ref is None and db is None:
        raise UsageError("give SNAPSHOT or --db PATH")
    if out is not None and not out.is_dir() and not out.parent.is_dir():
        raise StigmemError(f"no such directory for --output: {out.parent}")
    now = datetime.now(UTC)
    stored: str | None = None  # the id of a snapshot in the store, for the audit log
    if db is not None:
        text = _markdown_of_live(db, request, now)
        name = f"stigmem-snapshot-{now:%Y%m%dT%H%M%SZ}.md"
    else:
        source = resolve(app, str(ref), DEFAULT_MAX_SIZE)
        snapshot_id, text = _markdown_of_snapshot(app, source, request, now)
        name = f"snapshot-{snapshot_id[:12]}.md"
        stored = snapshot_id if isinstance(source, StoreSource) else None
    target = None if out is None else out / name if out.is_dir() else out
    if target is None:
        _print_markdown(text)
    else:
        atomic_write_bytes(target, text.encode(), 0o600)
    if stored is not None:
        app.catalog().record_event("export", stored, f"markdown to {target or 'stdout'}")
    if target is not None:
        echo(str(target))


def _print_markdown(text: str) -> None:
    """The review on stdout: as written to a file when piped; on a terminal with the control
    characters of each line escaped, as a fact's relation, source or ref may hold an escape
    sequence (the node's sanitizer cleans only string and text values)."""
    if sys.stdout.isatty():
        text = "\n".join(printable(line) for line in text.split("\n"))
    click.echo(text, nl=False, color=True)  # color: piped, click would drop ANSI sequences


def _markdown_of_live(db: Path, request: Request, now: datetime) -> str:
    """Read inside one read transaction: every section sees the same commit, and in WAL mode
    the node's writers go on meanwhile."""
    from snapshot.capture import SOURCE_TIMEOUT
    from snapshot.markdown import render
    from snapshot.nodedb import check_sqlite, connect_for_reading, database_error, node_meta_of

    check_sqlite(db)
    try:
        conn = connect_for_reading(db, SOURCE_TIMEOUT)
        try:
            conn.execute("BEGIN")
            _require_facts(conn, str(db))
            node = node_meta_of(conn).node_id or "unknown node"
            return render(conn, request, f"{node} (live database {db})", now)
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise database_error(db, exc) from None


def _markdown_of_snapshot(
    app: App, source: Source, request: Request, now: datetime
) -> tuple[str, str]:
    """The snapshot's id and its review. Its database is verified as a restore would
    (checksums, signature, revoked keys) on the way into a private temporary copy."""
    from cli.trust_keys import build_policy
    from snapshot.markdown import render
    from snapshot.nodedb import database_error, node_meta_of, readonly_uri

    policy = build_policy(app, (), None)
    with tempfile.TemporaryDirectory(prefix="stigmem-export-") as tmp:
        copy = Path(tmp) / "stigmem.db"
        with copy.open("wb") as sink:
            verdict, state = verify(source, policy, copy_into(sink))
        if not verdict.ok or state.manifest is None:
            raise VerificationError(verdict.outcome, verdict.detail, verdict.snapshot_id)
        manifest = state.manifest
        try:
            conn = sqlite3.connect(readonly_uri(copy) + "&immutable=1", uri=True)
            try:
                _require_facts(conn, source.label)
                node = manifest.node_id or node_meta_of(conn).node_id or "unknown node"
                text = render(conn, request, f"{node} (snapshot {manifest.snapshot_id})", now)
            finally:
                conn.close()
        except sqlite3.Error as exc:
            raise database_error(Path(source.label), exc) from None
    return manifest.snapshot_id, text


def _require_facts(conn: sqlite3.Connection, label: str) -> None:
    from snapshot.nodedb import table_exists

    if not table_exists(conn, "facts"):
        raise StigmemError(f"no facts table in {label}: not a Stigmem node database")


def import_tarballs(
    app: App,
    files: tuple[Path, ...],
    tier_name: str | None,
    trusted_key: tuple[str, ...],
    trusted_keys_file: Path | None,
    max_size: int,
    as_json: bool,
) -> None:
    from cli.recording import catalog_snapshot
    from cli.restoring import record_verification
    from cli.trust_keys import build_policy

    tier = app.tier(tier_name)
    policy = build_policy(app, trusted_key, trusted_keys_file)
    for path in files:  # every file must exist before anything is imported
        if not path.is_file():
            raise StigmemError(
                f"no such file: {path}" if not path.exists() else f"not a snapshot tarball: {path}"
            )
    catalog = app.catalog()
    results: list[dict[str, Any]] = []
    failures: list[VerificationError] = []
    for path in files:
        source = TarballSource(path, max_size)
        with tempfile.TemporaryDirectory(prefix="stigmem-import-") as tmp:
            db_copy = Path(tmp) / "stigmem.db"
            with db_copy.open("wb") as sink:
                verdict, state = verify(source, policy, copy_into(sink))
            record_verification(app, verdict, state, source, "import")
            if not verdict.ok or state.manifest is None:
                note(f"{path}: {verdict.line()}")
                failures.append(VerificationError(verdict.outcome, verdict.detail))
                results.append(
                    {
                        "file": str(path),
                        "id": verdict.snapshot_id,
                        "outcome": verdict.outcome,
                        "imported": False,
                        "trusted_by": None,
                        "store": None,
                        "tier": None,
                    }
                )
                continue
            manifest = state.manifest
            # Opened (and made, when the tier has no store yet) only for a tarball that
            # verified: importing files that all fail writes nothing to any store.
            store = app.store(tier, create=True)
            store.put_snapshot(
                manifest.snapshot_id,
                manifest.raw,
                {CURSOR_MEMBER: state.cursor, DB_MEMBER: db_copy},
            )
        catalog_snapshot(catalog, manifest, state.applied_migrations, state.db_size, store.url)
        catalog.record_placement(manifest.snapshot_id, tier.name, store.url)
        catalog.record_event("import", manifest.snapshot_id, f"from {path} into {store.url}")
        results.append(
            {
                "file": str(path),
                "id": manifest.snapshot_id,
                "outcome": "ok",
                "trusted_by": verdict.trusted_by,
                "imported": True,
                "store": store.url,
                "tier": tier.name,
            }
        )
        if not as_json:
            click.echo(f"imported {manifest.snapshot_id} from {path}")
            for notice in verdict.notices:
                echo(notice)
    if as_json:
        emit_json(results)
    if failures:
        raise click.exceptions.Exit(3)
