"""Fill a catalog with N synthetic snapshots, then time the acceptance queries.

    .venv/bin/python bench/catalog_load.py sqlite:////tmp/bench/catalog.db 1000000
    .venv/bin/python bench/catalog_load.py 'postgresql+psycopg://postgres@127.0.0.1/test' 1000000

Loads with Core executemany in batches (no ORM, no per-row round trips): snapshots of 100
nodes, one per node per hour going back in time, all in tier "local", every third also in
"offsite", 60% verified (1 in 12 of those failed). Pass ``--query-only`` to time an already
loaded catalog. Prints load time and, per query, the cold (first) run and the median and max
of 20 warm runs in milliseconds.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text

from catalog import Catalog, SnapshotFilter
from catalog.engine import make_engine
from catalog.models import Base

NODES = 100
BATCH = 20_000
NOW = datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC)


def node_name(i: int) -> str:
    return f"stigmem:node:{i:08d}-0000-4000-8000-000000000000"


def key(i: int) -> tuple[str, str]:
    raw = hashlib.sha256(f"bench-key-{i}".encode()).digest()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode(), hashlib.sha256(raw).hexdigest()[:16]


def snapshot_id(i: int) -> str:
    return hashlib.sha256(f"bench-snapshot-{i}".encode()).hexdigest()


def rows(start: int, stop: int) -> tuple[list[dict[str, Any]], ...]:
    snaps, places, verifs = [], [], []
    keys = [key(k) for k in range(4)]
    for i in range(start, stop):
        node = i % NODES
        created = NOW - timedelta(hours=i // NODES, microseconds=node)
        pub, kid = keys[node % 4]
        sid = snapshot_id(i)
        verified = i % 10 < 6
        outcome = ("checksum_error" if i % 12 == 0 else "ok") if verified else None
        verified_at = created + timedelta(hours=1) if verified else None
        manifest = {
            "version": 1,
            "created_at": created.isoformat(),
            "node_id": node_name(node),
            "signer_pubkey": pub,
            "artifacts": {
                "artifacts/schema_migration_cursor.json": "sha256:" + "0" * 64,
                "artifacts/stigmem.db": "sha256:" + sid,
            },
            "signature": "s" * 86,
        }
        snaps.append(
            dict(
                id=sid,
                node_id=node_name(node),
                created_at=created,
                db_sha256=sid,
                db_size=50_000_000 + i,
                cursor='["001_init","002_more"]',
                signer_key_id=kid,
                signer_pubkey=pub,
                manifest=json.dumps(manifest, sort_keys=True),
                label=None,
                tags="[]",
                catalogued_at=created,
                catalogued_from="bench",
                catalogued_host="bench",
                pinned=False,
                last_verified_at=verified_at,
                last_verify_outcome=outcome,
            )
        )
        places.append(dict(snapshot_id=sid, tier="local", store="/stores/local", since=created))
        if i % 3 == 0:
            places.append(dict(snapshot_id=sid, tier="offsite", store="s3://b/s", since=created))
        if verified:
            verifs.append(
                dict(
                    snapshot_id=sid,
                    at=verified_at,
                    mode="default",
                    kind="verify",
                    outcome=outcome,
                    detail="",
                    host="bench",
                )
            )
    return snaps, places, verifs


def load(url: str, count: int) -> None:
    with Catalog.open(url) as cat:
        for k in range(4):
            pub, kid = key(k)
            cat.trust_key(pub, kid, f"signer-{k}")
    tables = Base.metadata.tables
    engine = make_engine(url)
    started = time.perf_counter()
    for start in range(0, count, BATCH):
        snaps, places, verifs = rows(start, min(count, start + BATCH))
        with engine.begin() as conn:
            conn.execute(tables["snapshots"].insert(), snaps)
            conn.execute(tables["placements"].insert(), places)
            conn.execute(tables["verifications"].insert(), verifs)
        done = min(count, start + BATCH)
        if done % 100_000 == 0 or done == count:
            print(f"  loaded {done} in {time.perf_counter() - started:.0f} s", flush=True)
    with engine.connect() as conn:
        conn.execute(text("ANALYZE"))
        conn.commit()
    engine.dispose()
    print(f"load: {count} snapshots in {time.perf_counter() - started:.1f} s")


def timed(name: str, work: Callable[[], object], runs: int = 20) -> None:
    started = time.perf_counter()
    result = work()
    cold = (time.perf_counter() - started) * 1000
    warm = []
    for _ in range(runs):
        started = time.perf_counter()
        work()
        warm.append((time.perf_counter() - started) * 1000)
    size = len(result) if isinstance(result, list | dict) else 1
    print(
        f"{name:<58} cold {cold:7.1f} ms  median {statistics.median(warm):6.1f} ms"
        f"  max {max(warm):6.1f} ms  ({size} items)"
    )


def query(url: str, count: int) -> None:
    with Catalog.open(url) as cat:
        node = node_name(7)
        since = NOW - timedelta(days=30)
        sid = snapshot_id(count // 2)
        timed(
            "list --node X --since 30d --limit 50",
            lambda: cat.list_snapshots(SnapshotFilter(node=node, since=since, limit=50)),
        )
        timed(
            "list --node X --since 30d --tier offsite --limit 50",
            lambda: cat.list_snapshots(
                SnapshotFilter(node=node, since=since, tier="offsite", limit=50)
            ),
        )
        timed("list --limit 50", lambda: cat.list_snapshots(SnapshotFilter(limit=50)))
        timed(
            "list --signer LABEL --verified failed --limit 50",
            lambda: cat.list_snapshots(
                SnapshotFilter(signer="signer-0", verified="failed", limit=50)
            ),
        )
        timed(
            "list --node X --not-verified-since 7d --limit 50",
            lambda: cat.list_snapshots(
                SnapshotFilter(node=node, not_verified_since=NOW - timedelta(days=7), limit=50)
            ),
        )
        timed("resolve (8-hex prefix)", lambda: cat.resolve(sid[:8]))
        timed("show by prefix (8 hex)", lambda: cat.show(sid[:8]))
        timed("history --limit 50", lambda: cat.history(limit=50))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("count", type=int)
    parser.add_argument("--query-only", action="store_true")
    args = parser.parse_args()
    if not args.query_only:
        load(args.url, args.count)
    query(args.url, args.count)


if __name__ == "__main__":
    main()
