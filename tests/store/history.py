"""Build a history of signed daily snapshots fast, through the Python API.

Running ``stigmem snapshot create`` once per simulated day would cost a process start per
snapshot; these helpers do what ``create`` does (consistent copy, sign with ``created_at``
set to the simulated day, store, catalogue, place) so the tests can then drive the real
``prune`` / ``gc`` / ``sync`` / ``check`` / ``verify`` commands on the result.
"""

from __future__ import annotations

import hashlib
import io
import json
import sqlite3
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from catalog.database import Catalog
from cli.recording import catalog_snapshot
from snapshot.capture import backup_copy
from snapshot.keys import b64url_encode
from snapshot.manifest import CURSOR_MEMBER, DB_MEMBER, cursor_bytes, sign_manifest
from store import layout, packs
from store.repository import Store
from tests.nodegen import NodeInfo, apply_churn, make_node_db

DAY0 = datetime(2026, 1, 1, 3, 0, tzinfo=UTC)
REAL_SEED = bytes(range(32))
OTHER_SEED = b"\xee" * 32


@dataclass
class Node:
    info: NodeInfo
    key: Ed25519PrivateKey
    ids: dict[int, str] = field(default_factory=dict)  # simulated day -> snapshot id
    sha: dict[str, str] = field(default_factory=dict)  # snapshot id -> db sha256

    @property
    def pubkey(self) -> str:
        return b64url_encode(self.key.public_key().public_bytes_raw())


def tiny_node(path: Path, seed: int = 1, key_seed: bytes = REAL_SEED) -> Node:
    """A node database of about 100 KiB, at the node's first migration (the whole schema is
    0.8 MiB, more pages than a document lists directly): a daily snapshot is a handful of
    new pages."""
    info = make_node_db(path, size_mb=0.1, seed=seed, privkey_seed=key_seed, upto="001_init")
    return Node(info, Ed25519PrivateKey.from_private_bytes(key_seed))


def day_at(day: int) -> datetime:
    return DAY0 + timedelta(days=day)


def snapshot_day(
    node: Node,
    day: int,
    store: Store,
    catalog: Catalog,
    tier: str,
    scratch: Path,
    signer: Ed25519PrivateKey | None = None,
    churn: bool = True,
) -> str:
    """Churn the node for ``day``, then store and catalogue its snapshot dated that day."""
    if churn:
        apply_churn(node.info.path, day, scale=0.25)  # a fact on one day in three or so
    copy = scratch / f"copy-{day}.db"
    backup_copy(node.info.path, copy, durable=False)
    data = copy.read_bytes()
    copy.unlink()
    cursor = cursor_bytes(node.info.migrations)
    manifest = sign_manifest(
        created_at=day_at(day),
        node_id=node.info.node_id,
        db_sha256=hashlib.sha256(data).hexdigest(),
        cursor_sha256=hashlib.sha256(cursor).hexdigest(),
        private_key=signer or node.key,
    )
    sid = manifest.snapshot_id
    store.put_snapshot(sid, manifest.raw, {CURSOR_MEMBER: cursor, DB_MEMBER: data})
    catalog_snapshot(catalog, manifest, node.info.migrations, len(data), store.url)
    catalog.record_placement(sid, tier, store.url)
    node.ids[day] = sid
    node.sha[sid] = manifest.db_sha256
    return sid


def trust(catalog: Catalog, node: Node) -> None:
    from snapshot.keys import key_id

    raw = node.key.public_key().public_bytes_raw()
    catalog.trust_key(node.pubkey, key_id(raw), "node")


def write_config(path: Path, tiers: dict[str, dict[str, Any]]) -> Path:
    """A config.toml with one [tiers.NAME] table per entry (JSON is valid TOML for values)."""
    lines: list[str] = []
    for name, table in tiers.items():
        lines.append(f"[tiers.{name}]")
        options = table.get("storage_options")
        for key, value in table.items():
            if key != "storage_options":
                lines.append(f"{key} = {json.dumps(value)}")
        if options:
            lines.append(f"[tiers.{name}.storage_options]")
            for key, value in options.items():
                lines.append(f"{key} = {_toml(value)}")
    path.write_text("\n".join(lines) + "\n")
    return path


def _toml(value: Any) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    return json.dumps(value)


# -- independent views of a store, for assertions -----------------------------------------


def referenced_chunks(store: Store) -> set[bytes]:
    """Chunks the store's documents name, read from the JSON alone (tiny artifacts list
    their chunks directly, so no chunk-list blob has to be followed)."""
    wanted: set[bytes] = set()
    for entry in store.backend.list(layout.SNAPSHOTS):
        doc = json.loads(store.backend.read(entry.path))
        for artifact in doc["artifacts"].values():
            assert not artifact.get("chunk_lists"), "use tinier artifacts"
            wanted |= {bytes.fromhex(c) for c in artifact["chunks"]}
    return wanted


def held_chunks(store: Store) -> list[bytes]:
    """Every chunk stored in a pack (with repeats), from the packs themselves."""
    held: list[bytes] = []
    for entry in store.backend.list(layout.PACKS):
        data = store.backend.read(entry.path)
        held.extend(e.key for e in packs.entries_of(data))
    return held


def open_catalog(home: Path) -> Catalog:
    return Catalog.open(f"sqlite:///{home / 'catalog.db'}")


def live_placements(home: Path, tier: str) -> set[str]:
    con = sqlite3.connect(home / "catalog.db")
    try:
        rows = con.execute(
            "SELECT snapshot_id FROM placements WHERE tier = ? AND removed_at IS NULL", (tier,)
        ).fetchall()
    finally:
        con.close()
    return {r[0] for r in rows}


def db_digest(store: Store, sid: str) -> str:
    """SHA-256 of a stored snapshot's database, read back through the store."""
    out = io.BytesIO()
    store.read_artifact(sid, DB_MEMBER, out)
    return hashlib.sha256(out.getvalue()).hexdigest()
