"""Turning what a command saw into catalog rows."""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

from snapshot.manifest import Manifest

if TYPE_CHECKING:
    from catalog.database import Catalog


def catalog_snapshot(
    catalog: Catalog, manifest: Manifest, applied: list[str], db_size: int, source: str
) -> None:
    from catalog.records import SnapshotRecord

    catalog.see_key(manifest.signer_pubkey_b64, manifest.key_id)
    catalog.record_snapshot(
        SnapshotRecord(
            id=manifest.snapshot_id,
            node_id=manifest.node_id,
            created_at=manifest.created_at,
            db_sha256=manifest.db_sha256,
            db_size=db_size,
            cursor=applied,
            signer_pubkey=manifest.signer_pubkey_b64,
            signer_key_id=manifest.key_id,
            manifest=manifest.raw,
            source=f"{socket.gethostname()}:{source}",
        )
    )
