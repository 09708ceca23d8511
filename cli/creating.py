"""``snapshot create``: consistent copy, cursor, signed manifest, store and/or tarball."""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cli.app import App
from snapshot.errors import StigmemError
from snapshot.manifest import (
    CURSOR_MEMBER,
    DB_MEMBER,
    Manifest,
    cursor_bytes,
    sign_manifest,
    snapshot_name,
)

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


@dataclass
class Created:
    manifest: Manifest
    name: str
    db_size: int
    applied_migrations: list[str]
    store: str | None
    tier: str | None
    tarball: Path | None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.manifest.snapshot_id,
            "name": self.name,
            "node_id": self.manifest.node_id,
            "created_at": self.manifest.raw["created_at"],
            "db_sha256": self.manifest.db_sha256,
            "signer_key_id": self.manifest.key_id,
            "store": self.store,
            "tier": self.tier,
            "tarball": str(self.tarball) if self.tarball else None,
        }


def signing_key(sign_with: Path | None, node_privkey: str | None, db: Path) -> Ed25519PrivateKey:
    from snapshot.keys import load_private_key_file, private_key_from_text

    if sign_with is not None:
        return load_private_key_file(sign_with)
    env = os.environ.get("STIGMEM_FEDERATION_PRIVKEY")
    if env:
        return private_key_from_text(env, "STIGMEM_FEDERATION_PRIVKEY")
    if node_privkey:
        return private_key_from_text(node_privkey, f"node_meta of {db}")
    raise StigmemError(
        f"no signing key: pass --sign-with, set STIGMEM_FEDERATION_PRIVKEY, "
        f"or keep federation_privkey in node_meta of {db}"
    )


def tarball_target(out: Path, name: str) -> Path:
    if out.is_dir():
        return out / name
    if not out.parent.is_dir():
        raise StigmemError(f"no such directory for --out: {out.parent}")
    return out


def write_tarball_file(target: Path, manifest: Manifest, cursor: bytes, db_copy: Path) -> None:
    import shutil

    from snapshot.fileio import atomic_write
    from snapshot.tarball import write_tarball

    size = db_copy.stat().st_size

    def write(handle: Any) -> None:
        with db_copy.open("rb") as src:
            write_tarball(handle, manifest, cursor, size, lambda out: shutil.copyfileobj(src, out))

    atomic_write(target, write, 0o600)


def create_snapshot(
    app: App,
    db: Path,
    out: Path | None,
    sign_with: Path | None,
    tier_name: str | None,
    no_store: bool,
) -> Created:
    from snapshot.capture import capture
    from snapshot.nodedb import check_sqlite

    from cli.output import progress

    check_sqlite(db)
    # Resolve everything that can fail on bad input before any work or any write.
    tier = None if no_store else app.tier(tier_name)
    if out is not None and out.exists() and not out.is_dir() and out.is_symlink():
        raise StigmemError(f"--out is a symlink, refusing to write through it: {out}")
    with tempfile.TemporaryDirectory(prefix="stigmem-create-") as tmp:
        copy = Path(tmp) / "stigmem.db"
        result = capture(db, copy)
        key = signing_key(sign_with, result.federation_privkey, db)
        node_id = os.environ.get("STIGMEM_NODE_ID") or result.node_id or ""
        cursor = cursor_bytes(result.applied_migrations)
        manifest = sign_manifest(
            created_at=datetime.now(UTC),
            node_id=node_id,
            db_sha256=result.db_sha256,
            cursor_sha256=hashlib.sha256(cursor).hexdigest(),
            private_key=key,
        )
        name = snapshot_name(manifest.created_at, result.db_sha256)
        store_url = None
        if tier is not None:
            store = app.store(tier, create=True)
            with progress("storing") as report:
                store.put_snapshot(
                    manifest.snapshot_id,
                    manifest.raw,
                    {CURSOR_MEMBER: cursor, DB_MEMBER: copy},
                    progress=report,
                )
            store_url = store.url
        tarball = None
        if out is not None or no_store:
            tarball = tarball_target(out if out is not None else Path.cwd(), name)
            write_tarball_file(tarball, manifest, cursor, copy)
    created = Created(
        manifest,
        name,
        result.size,
        result.applied_migrations,
        store_url,
        tier.name if tier else None,
        tarball,
    )
    record_created(app, created)
    return created


def record_created(app: App, created: Created) -> None:
    from cli.recording import catalog_snapshot

    catalog = app.catalog()
    source = created.store or str(created.tarball)
    catalog_snapshot(catalog, created.manifest, created.applied_migrations, created.db_size, source)
    if created.store is not None and created.tier is not None:
        catalog.record_placement(created.manifest.snapshot_id, created.tier, created.store)
    catalog.record_event("create", created.manifest.snapshot_id, f"{created.name} -> {source}")
