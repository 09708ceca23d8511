"""``snapshot create``: consistent copy, cursor, signed manifest, store and/or tarball."""

from __future__ import annotations

import hashlib
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
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

    from cli.app import Tier
    from snapshot.capture import IntegrityCheck
    from store.repository import Store


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


def signing_key(
    sign_with: Path | None,
    node_privkey: str | None,
    db: Path,
    node_pubkey: str | None = None,
) -> Ed25519PrivateKey:
    """The key that signs: ``--sign-with``, else the environment's, else the node's own.

    A key from the environment that is not the one ``node_meta`` holds is used as asked, but
    never silently: stderr names the key that signed and the node's, by key id. (``--sign-with``
    names a signing key on purpose, as the runbook's dedicated backup key; its key id is in
    the output.)
    """
    from snapshot.keys import (
        key_id,
        load_private_key_file,
        node_public_keys_of,
        private_key_from_text,
        public_key_bytes,
    )

    if sign_with is not None:
        return load_private_key_file(sign_with)
    env = os.environ.get("STIGMEM_FEDERATION_PRIVKEY")
    if not env:
        if node_privkey:
            return private_key_from_text(node_privkey, f"node_meta of {db}")
        raise StigmemError(
            f"no signing key: pass --sign-with, set STIGMEM_FEDERATION_PRIVKEY, "
            f"or keep federation_privkey in node_meta of {db}"
        )
    key = private_key_from_text(env, "STIGMEM_FEDERATION_PRIVKEY")
    node_keys = node_public_keys_of(node_privkey, node_pubkey)
    signer = public_key_bytes(key)
    if node_keys and signer not in node_keys:
        from cli.output import note

        held = ", ".join(key_id(k) for k in node_keys)
        note(
            f"WARNING: signing with the key from STIGMEM_FEDERATION_PRIVKEY (key id "
            f"{key_id(signer)}), which is not the key node_meta of {db} holds (key id {held})"
        )
    return key


def node_id_for(db: Path, node_meta_id: str | None) -> str:
    """``STIGMEM_NODE_ID``, else ``node_meta.node_id``; a disagreement is said on stderr."""
    env = os.environ.get("STIGMEM_NODE_ID")
    if env and node_meta_id and env != node_meta_id:
        from cli.output import note

        note(
            f"WARNING: the manifest names node {env} from STIGMEM_NODE_ID, "
            f"but node_meta of {db} says {node_meta_id}"
        )
    return env or node_meta_id or ""


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
    full_check: bool = False,
) -> Created:
    """A snapshot of ``db``, with the ``[hooks]`` of the config told it starts and ends."""
    from cli.hooks import around

    with around(app, "create") as hook:
        created = _create_snapshot(app, db, out, sign_with, tier_name, no_store, full_check)
        hook.result(created.to_json())
    return created


def _create_snapshot(
    app: App,
    db: Path,
    out: Path | None,
    sign_with: Path | None,
    tier_name: str | None,
    no_store: bool,
    full_check: bool,
) -> Created:
    from snapshot.capture import backup_copy
    from snapshot.nodedb import check_sqlite

    check_sqlite(db)
    # Resolve everything that can fail on bad input before any work or any write.
    tier = None if no_store else app.tier(tier_name)
    if out is not None and not out.is_dir() and not out.parent.is_dir():
        raise StigmemError(f"no such directory for --out: {out.parent}")
    # An unreachable store or an unusable catalog must stop us before either is written to.
    if tier is not None:
        from store.backend import open_backend

        open_backend(tier.url, tier.storage_options)
    # Opening the catalog imports SQLAlchemy (most of a second); it overlaps the copy, which
    # runs in SQLite without the GIL, and is awaited before anything is written.
    with ThreadPoolExecutor(max_workers=1) as pool:
        opening = pool.submit(app.catalog)
        with tempfile.TemporaryDirectory(prefix="stigmem-create-") as tmp:
            copy = Path(tmp) / "stigmem.db"
            try:
                backup_copy(db, copy, durable=False)  # a scratch copy: read once, deleted
            finally:
                opening.result()
            store = app.store(tier, create=True) if tier is not None else None
            return _create_from_copy(
                app, db, copy, out, sign_with, tier, store, no_store, full_check
            )


def _create_from_copy(
    app: App,
    db: Path,
    copy: Path,
    out: Path | None,
    sign_with: Path | None,
    tier: Tier | None,
    store: Store | None,
    no_store: bool,
    full_check: bool,
) -> Created:
    from snapshot.capture import IntegrityCheck, describe, sha256_file
    from snapshot.checked import FULL, QUICK

    info = describe(copy, digest="")
    key = signing_key(sign_with, info.federation_privkey, db, info.federation_pubkey)
    node_id = node_id_for(db, info.node_id)
    cursor = cursor_bytes(info.applied_migrations)
    check = IntegrityCheck(copy, full_check)
    try:
        if store is not None:
            manifest = _store_and_sign(store, copy, cursor, check, db, node_id, key)
        else:
            db_sha256, _size = sha256_file(copy)
            check.raise_if_failed(f"copy of {db} fails its integrity check")
            manifest = _sign(db_sha256, cursor, node_id, key)
    finally:
        check.join()  # never leave the thread reading a file we are about to delete
    # Signed, so the check passed: a restore of these bytes on this host need not repeat it.
    app.cache().mark_checked(manifest.db_sha256, FULL if full_check else QUICK)
    name = snapshot_name(manifest.created_at, manifest.db_sha256)
    tarball = None
    if out is not None or no_store:
        tarball = tarball_target(out if out is not None else Path.cwd(), name)
        write_tarball_file(tarball, manifest, cursor, copy)
    created = Created(
        manifest,
        name,
        info.size,
        info.applied_migrations,
        store.url if store is not None else None,
        tier.name if tier else None,
        tarball,
    )
    record_created(app, created)
    return created


def _sign(db_sha256: str, cursor: bytes, node_id: str, key: Ed25519PrivateKey) -> Manifest:
    return sign_manifest(
        created_at=datetime.now(UTC),
        node_id=node_id,
        db_sha256=db_sha256,
        cursor_sha256=hashlib.sha256(cursor).hexdigest(),
        private_key=key,
    )


def _store_and_sign(
    store: Store,
    copy: Path,
    cursor: bytes,
    check: IntegrityCheck,
    db: Path,
    node_id: str,
    key: Ed25519PrivateKey,
) -> Manifest:
    """Pack the copy while integrity_check runs; sign and commit only once it passed."""
    from cli.output import progress
    from snapshot.checked import FULL, QUICK, attest

    with progress("storing") as report, store.transaction(report) as tx:
        digests = tx.add_artifacts({CURSOR_MEMBER: cursor, DB_MEMBER: copy})
        check.raise_if_failed(f"copy of {db} fails its integrity check")
        manifest = _sign(digests[DB_MEMBER], cursor, node_id, key)
        # Another host restoring these bytes may then skip the check (snapshot.checked).
        pragma = FULL if check.full else QUICK
        checked = attest(key, pragma, manifest.snapshot_id, manifest.db_sha256)
        tx.commit(manifest.snapshot_id, manifest.raw, checked)
    return manifest


def record_created(app: App, created: Created) -> None:
    from cli.recording import catalog_snapshot

    catalog = app.catalog()
    source = created.store or str(created.tarball)
    catalog_snapshot(catalog, created.manifest, created.applied_migrations, created.db_size, source)
    # The key this node signs with is the operator's own: trust it, unless it was revoked.
    manifest = created.manifest
    known = set(catalog.trusted_keys()) | set(catalog.revoked_keys())
    if manifest.signer_pubkey_b64 not in known:
        catalog.trust_key(manifest.signer_pubkey_b64, manifest.key_id, None)
    if created.store is not None and created.tier is not None:
        catalog.record_placement(created.manifest.snapshot_id, created.tier, created.store)
    catalog.record_event("create", created.manifest.snapshot_id, f"{created.name} -> {source}")
