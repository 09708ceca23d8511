"""``snapshot export`` and ``snapshot import``: between the store and Stigmem tarballs."""

from __future__ import annotations

import io
import tempfile
from pathlib import Path
from typing import Any, BinaryIO

import click

from cli.app import App
from cli.output import emit_json, note
from cli.sources import (
    StoreSource,
    TarballSource,
    copy_into,
    resolve,
    verify,
)
from snapshot.errors import StigmemError, VerificationError
from snapshot.manifest import CURSOR_MEMBER, DB_MEMBER, manifest_from_dict, snapshot_name


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


def export_markdown(app: App, ref: str, out: Path | None) -> None:
    from cli.listing import SUMMARY_FIELDS
    from snapshot.fileio import atomic_write_bytes

    catalog = app.catalog()
    doc = catalog.show(catalog.resolve(ref.lower()))
    lines = [
        f"# Snapshot {doc['id']}",
        "",
        "| field | value |",
        "|---|---|",
    ]
    lines += [f"| {key} | {doc.get(key)} |" for key in SUMMARY_FIELDS]
    lines += ["", "## Placements", ""]
    lines += [
        f"- {p['tier']}: `{p['store']}` since {p['since']}"
        + (f", removed {p['removed_at']}" if p.get("removed_at") else "")
        for p in doc.get("placements", [])
    ] or ["- none"]
    lines += ["", "## Verifications", ""]
    lines += [
        f"- {v['at']} {v['mode']} **{v['outcome']}** on {v['host']}: {v['detail']}"
        for v in doc.get("verifications", [])
    ] or ["- none"]
    lines += ["", "## Restores", ""]
    lines += [
        f"- {r['at']} to `{r['target']}`{' (forced)' if r['forced'] else ''}"
        for r in doc.get("restores", [])
    ] or ["- none"]
    text = "\n".join(lines) + "\n"
    if out is None:
        click.echo(text, nl=False)
    else:
        target = out / f"snapshot-{doc['id'][:12]}.md" if out.is_dir() else out
        atomic_write_bytes(target, text.encode(), 0o644)
        click.echo(str(target))


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
    store = app.store(tier, create=True)
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
                click.echo(notice)
    if as_json:
        emit_json(results)
    if failures:
        raise click.exceptions.Exit(3)
