"""Helpers for the catalog tests: a settable clock, keys, snapshot records, process workers.

Workers live here (not in a test module) so ``multiprocessing`` spawn children can import them.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier

from catalog import Catalog, SnapshotRecord

T0 = datetime(2026, 6, 1, 3, 0, 0, 123456, tzinfo=UTC)


@dataclass
class Clock:
    now: datetime = T0 + timedelta(days=365)

    def __call__(self) -> datetime:
        # Every call moves on a microsecond so records keep a strict order.
        self.now += timedelta(microseconds=1)
        return self.now


@dataclass(frozen=True)
class SignerKey:
    public_key: str
    key_id: str


def make_key(seed: int) -> SignerKey:
    raw = hashlib.sha256(f"key-{seed}".encode()).digest()
    public = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    return SignerKey(public, hashlib.sha256(raw).hexdigest()[:16])


def snapshot_id(n: int) -> str:
    return hashlib.sha256(f"snapshot-{n}".encode()).hexdigest()


@dataclass
class Maker:
    """Builds records with increasing ``created_at``: snapshot n is n hours after T0."""

    key: SignerKey = field(default_factory=lambda: make_key(1))

    def record(
        self, n: int, node: str = "stigmem:node:a", key: SignerKey | None = None
    ) -> SnapshotRecord:
        signer = key or self.key
        return SnapshotRecord(
            id=snapshot_id(n),
            node_id=node,
            created_at=T0 + timedelta(hours=n),
            db_sha256=hashlib.sha256(f"db-{n}".encode()).hexdigest(),
            db_size=4096 * (n + 1),
            cursor=["001_init", "002_more"],
            signer_pubkey=signer.public_key,
            signer_key_id=signer.key_id,
            manifest={"version": 1, "node_id": node, "n": n},
            source=f"test:{n}",
        )


def record_many(url: str, start: int, count: int, barrier: Barrier) -> None:
    """Child process: open the catalog itself, wait for the others, record the same rows."""
    catalog = Catalog.open(url)
    try:
        barrier.wait(timeout=60)
        maker = Maker()
        for n in range(start, start + count):
            catalog.record_snapshot(maker.record(n))
            catalog.record_placement(snapshot_id(n), "local", "/stores/local")
            catalog.see_key(maker.key.public_key, maker.key.key_id)
    finally:
        catalog.close()


def open_fresh(url: str, barrier: Barrier, results: Queue[tuple[str, ...]]) -> None:
    """Child process: open a catalog nobody has created yet, at the same time as the others."""
    barrier.wait(timeout=60)
    catalog = Catalog.open(url)
    try:
        results.put(catalog.applied_revisions)
    finally:
        catalog.close()


def upgrade_to(url: str, revision: str) -> None:
    """Bring the catalog at ``url`` to Alembic ``revision`` (an older schema, for upgrade tests)."""
    from alembic import command

    from catalog.engine import make_engine
    from catalog.migrate import alembic_config

    engine = make_engine(url)
    with engine.begin() as conn:
        config = alembic_config()
        config.attributes["connection"] = conn
        command.upgrade(config, revision)
    engine.dispose()
