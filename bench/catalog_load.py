"""Fill a catalog with N synthetic snapshots, then time the acceptance queries.

One command per backend, rerunnable (``--fresh`` empties the catalog first), from the
project root:

    .venv/bin/python -m bench.catalog_load sqlite:////tmp/bench/catalog.db 100000 --fresh
    .venv/bin/python -m bench.catalog_load \
        'postgresql+psycopg://postgres@127.0.0.1/test?options=-csearch_path%3Dbench' 100000 --fresh

Loads with Core executemany in batches (no ORM, no per-row round trips): snapshots of 100
nodes, one per node per hour going back from the current hour, all in tier "local", every
third also in "offsite", 60% verified (1 in 12 of those failed). ``--query-only`` times an
already loaded catalog (its newest snapshot fixes "now" of the data).

Prints load time; per API query the cold (first) run and the median and max of 20 warm runs in
milliseconds; then the same for whole commands, each a fresh ``stigmem`` process timed from
the outside (interpreter start, imports, catalog open, query, output) — the figure an operator
sees: ``stigmem --help`` (target < 0.5 s), ``snapshot list --node X --since 30d --limit 50``
and ``snapshot show PREFIX``. Queries take milliseconds; a whole command is almost all Python
and SQLAlchemy start-up. The children may write byte-code, as an installed tool has it
(pip compiles at install): a ``PYTHONDONTWRITEBYTECODE`` in the caller's environment would
make each compile the project's modules again (about 20 ms); ``--no-bytecode-cache`` keeps
that variable to measure it. ``--query-only`` works against any checkout: ``PYTHONPATH=DIR``
makes the bench and its children use DIR's code.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select, text

from catalog import Catalog, SnapshotFilter
from catalog.engine import make_engine
from catalog.tables import schema, snapshots

NODES = 100
BATCH = 20_000
CLI_RUNS = 10
# The data ends at the current hour so that relative filters (--since 30d) select what they
# would in production; main() replaces it with the loaded catalog's newest time on --query-only.
NOW = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)


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


def empty(url: str) -> None:
    """Drop the catalog's tables (and Alembic's record) so a rerun starts from nothing."""
    engine = make_engine(url)
    with engine.begin() as conn:
        schema().drop_all(conn)
        conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
    engine.dispose()


def newest(url: str) -> datetime:
    engine = make_engine(url)
    with engine.connect() as conn:
        value = conn.execute(select(func.max(snapshots.c.created_at))).scalar()
    engine.dispose()
    if value is None:
        raise SystemExit(f"{url}: the catalog holds no snapshots; load it first")
    return value.replace(microsecond=0)


def load(url: str, count: int) -> None:
    with Catalog.open(url) as cat:
        for k in range(4):
            pub, kid = key(k)
            cat.trust_key(pub, kid, f"signer-{k}")
    tables = schema().tables
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


def cli_command() -> list[str]:
    """The installed console script when there is one, else the module from this checkout."""
    script = shutil.which("stigmem", path=os.path.dirname(sys.executable))
    return [script] if script else [sys.executable, "-m", "cli"]


BYTECODE_CACHE = True


def timed_cli(name: str, args: list[str], runs: int = CLI_RUNS) -> None:
    """Wall time of whole ``stigmem`` processes, measured from outside (start-up included)."""
    with tempfile.TemporaryDirectory(prefix="stigmem-bench-home-") as home:
        env = {k: v for k, v in os.environ.items() if not k.startswith("STIGMEM_")}
        env["STIGMEM_HOME"] = home
        if BYTECODE_CACHE:
            env.pop("PYTHONDONTWRITEBYTECODE", None)
        times = []
        out = ""
        for _ in range(runs + 1):
            started = time.perf_counter()
            proc = subprocess.run(
                [*cli_command(), *args], env=env, capture_output=True, text=True, check=False
            )
            times.append((time.perf_counter() - started) * 1000)
            if proc.returncode != 0:
                raise SystemExit(
                    f"stigmem {' '.join(args)} exited {proc.returncode}: {proc.stderr.strip()}"
                )
            out = proc.stdout
    cold, warm = times[0], times[1:]
    items = len(json.loads(out)) if "--json" in args else len(out.splitlines())
    print(
        f"{name:<58} cold {cold:7.1f} ms  median {statistics.median(warm):6.1f} ms"
        f"  max {max(warm):6.1f} ms  ({items} {'items' if '--json' in args else 'lines'})"
    )


def query_cli(url: str, count: int) -> None:
    print(f"whole commands ({' '.join(cli_command())}), wall time of {CLI_RUNS} warm runs:")
    node = node_name(7)
    sid = snapshot_id(count // 2)
    timed_cli("stigmem --help", ["--help"])
    timed_cli(
        "stigmem snapshot list --node X --since 30d --limit 50",
        [
            "--catalog",
            url,
            "snapshot",
            "list",
            "--node",
            node,
            "--since",
            "30d",
            "--limit",
            "50",
            "--json",
        ],
    )
    timed_cli(
        "stigmem snapshot list --node X --since 30d --limit 50 (table)",
        ["--catalog", url, "snapshot", "list", "--node", node, "--since", "30d", "--limit", "50"],
    )
    timed_cli(
        "stigmem snapshot show PREFIX (8 hex)",
        ["--catalog", url, "snapshot", "show", sid[:8], "--json"],
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
    parser.add_argument("--query-only", action="store_true", help="time a loaded catalog")
    parser.add_argument("--fresh", action="store_true", help="empty the catalog before loading")
    parser.add_argument("--no-cli", action="store_true", help="time the API only")
    parser.add_argument(
        "--no-bytecode-cache", action="store_true", help="keep PYTHONDONTWRITEBYTECODE"
    )
    args = parser.parse_args()
    global NOW, BYTECODE_CACHE
    BYTECODE_CACHE = not args.no_bytecode_cache
    if args.query_only:
        NOW = newest(args.url)
    else:
        if args.fresh:
            empty(args.url)
        load(args.url, args.count)
    query(args.url, args.count)
    if not args.no_cli:
        query_cli(args.url, args.count)


if __name__ == "__main__":
    main()
