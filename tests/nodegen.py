"""Generate Stigmem-like node databases, deterministically from a seed.

Used by the tests and by ``bench/``::

    python -m tests.nodegen --out node.db --size-mb 256 [--seed 0]
    python -m tests.nodegen --out node.db --churn-day 1      # one day of churn on an existing db

The schema is the one ``tests/fixtures/migrations`` builds: a fresh database has the first
``migrations`` files of that directory applied (001 and 002 by default), so restoring it with
that directory as ``--migrations-dir`` replays the rest.
"""

from __future__ import annotations

import argparse
import base64
import functools
import json
import random
import sqlite3
import sys
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

MIGRATIONS_DIR = Path(__file__).parent / "fixtures" / "migrations"
PAGE_SIZE = 4096
# Fixed origin for every generated time, so the bytes depend on the seed only.
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
BATCH = 5000

WORDS = [
    "alpha",
    "beta",
    "gamma",
    "delta",
    "epsilon",
    "zeta",
    "eta",
    "theta",
    "iota",
    "kappa",
    "lambda",
    "mu",
    "nu",
    "xi",
    "omicron",
    "pi",
    "rho",
    "sigma",
    "tau",
    "upsilon",
    "phi",
    "chi",
    "psi",
    "omega",
    "node",
    "fact",
    "memory",
    "peer",
    "cursor",
    "graph",
    "river",
    "stone",
    "cloud",
    "signal",
    "harbor",
    "lantern",
    "meadow",
    "orbit",
    "quartz",
    "saddle",
    "timber",
    "velvet",
    "willow",
    "ember",
    "falcon",
    "garnet",
]
RELATIONS = tuple(
    f"{verb}_{noun}"
    for verb in ("has", "likes", "knows", "owns", "uses", "saw", "made")
    for noun in ("name", "color", "friend", "tool", "place", "topic", "goal")
)
ENTITY_KINDS = ("person", "place", "thing", "topic")
# Text values are slices of this: cheap to make, and compressible the way prose is.
CORPUS = " ".join(random.Random("corpus").choices(WORDS, k=20_000))
SCOPES = ("global", "private", "team:core", "team:ops", "team:research")
VALUE_TYPES = ("text", "text", "text", "int", "float", "bool", "json", "blob")


@dataclass(frozen=True)
class NodeInfo:
    path: Path
    node_id: str
    privkey: str  # base64url, no padding, of the raw 32-byte Ed25519 seed
    pubkey: str
    migrations: list[str]
    facts: int
    size: int


@dataclass(frozen=True)
class ChurnStats:
    day: int
    inserted: int
    updated: int
    deleted: int


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def migration_files(limit: int | None = None) -> list[Path]:
    files = sorted(MIGRATIONS_DIR.glob("[0-9]*_*.sql"))
    return files if limit is None else files[:limit]


def make_node_db(
    path: Path,
    size_mb: float = 1,
    seed: int = 0,
    node_id: str | None = None,
    privkey_seed: bytes | None = None,
    migrations: int = 2,
) -> NodeInfo:
    """Build a WAL-mode node database of about ``size_mb`` MiB at ``path`` (replaced if present).

    The same arguments give the same bytes (for a given SQLite version).
    """
    if migrations < 1:
        raise ValueError("a node database has at least 001_init applied")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in (path, *_sidecars(path)):
        stale.unlink(missing_ok=True)
    rng = random.Random(seed)
    node_id = node_id or f"stigmem:node:{_uuid(rng)}"
    seed_bytes = privkey_seed if privkey_seed is not None else rng.randbytes(32)
    private = Ed25519PrivateKey.from_private_bytes(seed_bytes)
    pubkey = b64url(private.public_key().public_bytes_raw())
    privkey = b64url(seed_bytes)
    applied = migration_files(migrations)

    conn = sqlite3.connect(path, isolation_level=None)
    try:
        # Build speed matters (bench builds 256 MiB); durability does not until the end.
        conn.execute(f"PRAGMA page_size={PAGE_SIZE}")
        conn.execute("PRAGMA journal_mode=OFF")
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute("PRAGMA cache_size=-262144")
        for sql_file in applied:
            conn.executescript(sql_file.read_text())
        conn.execute("BEGIN")
        for n, sql_file in enumerate(applied):
            conn.execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
                (sql_file.stem, _iso(EPOCH + timedelta(minutes=n))),
            )
        meta = {"node_id": node_id, "federation_privkey": privkey, "federation_pubkey": pubkey}
        conn.executemany("INSERT INTO node_meta (key, value) VALUES (?, ?)", meta.items())
        with_status = migrations >= 2
        _insert_peers(conn, rng, with_status)
        conn.execute("COMMIT")
        facts = _fill_facts(conn, rng, int(size_mb * 1024 * 1024))
        conn.execute("PRAGMA journal_mode=WAL")
    finally:
        conn.close()
    return NodeInfo(
        path=path,
        node_id=node_id,
        privkey=privkey,
        pubkey=pubkey,
        migrations=[f.stem for f in applied],
        facts=facts,
        size=path.stat().st_size,
    )


def apply_churn(
    path: Path,
    day: int,
    insert_frac: float = 0.01,
    update_frac: float = 0.005,
    delete_frac: float = 0.002,
    seed: int = 0,
) -> ChurnStats:
    """One day of a node's life: new facts, revised facts, forgotten facts, cursors advanced.

    Rows are picked at random, so the changed pages are scattered through the file, as they
    are on a real node. Deterministic in (database, day, seed).
    """
    rng = random.Random(f"churn:{seed}:{day}")
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA synchronous=NORMAL")
        (count,) = conn.execute("SELECT count(*) FROM facts").fetchone()
        (max_rowid,) = conn.execute("SELECT coalesce(max(rowid), 0) FROM facts").fetchone()
        day_start = EPOCH + timedelta(days=30 + day)
        conn.execute("BEGIN")
        victims = _existing_rowids(conn, rng, max_rowid, int(count * delete_frac))
        conn.executemany("DELETE FROM facts WHERE rowid = ?", ((r,) for r in victims))
        revised = _existing_rowids(conn, rng, max_rowid, int(count * update_frac))
        conn.executemany(
            "UPDATE facts SET value_type = ?, value = ?, confidence = ?, ts = ?, hlc = ? "
            "WHERE rowid = ?",
            (
                (*_typed_value(rng), round(rng.random(), 4), *_when(rng, day_start), r)
                for r in revised
            ),
        )
        inserted = int(count * insert_frac)
        conn.executemany(_INSERT_FACT, _fact_rows(rng, inserted, day_start))
        conn.execute(
            "UPDATE replication_cursors SET cursor = ?, updated_at = ?",
            (_when(rng, day_start)[1], _iso(day_start + timedelta(hours=23))),
        )
        conn.execute("COMMIT")
    finally:
        conn.close()
    return ChurnStats(day=day, inserted=inserted, updated=len(revised), deleted=len(victims))


_INSERT_FACT = (
    "INSERT INTO facts (id, entity, relation, value_type, value, source, ts, confidence, "
    "scope, hlc) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def _fill_facts(conn: sqlite3.Connection, rng: random.Random, target_bytes: int) -> int:
    # Add batches until the file reaches the target; the batch size shrinks near the end so
    # small databases land close to their size too.
    total = 0
    conn.execute("BEGIN")
    while _size(conn) < target_bytes:
        remaining = target_bytes - _size(conn)
        rows = max(50, min(BATCH, remaining // 800))
        conn.executemany(_INSERT_FACT, _fact_rows(rng, rows, EPOCH))
        total += rows
    conn.execute("COMMIT")
    return total


def _size(conn: sqlite3.Connection) -> int:
    (pages,) = conn.execute("PRAGMA page_count").fetchone()
    return int(pages) * PAGE_SIZE


def _fact_rows(rng: random.Random, count: int, start: datetime) -> Iterator[tuple[object, ...]]:
    # Hot loop of the build: rng.random() indexing instead of rng.choice, text sliced from a
    # fixed corpus instead of joined word by word.
    r = rng.random
    for _ in range(count):
        # A few hot entities and a long tail, as in a real memory graph.
        entity_n = int(rng.paretovariate(1.2)) if r() < 0.5 else int(r() * 100_000)
        value_type, value = _typed_value(rng)
        ts, hlc = _when(rng, start)
        yield (
            _uuid(rng),
            f"entity:{ENTITY_KINDS[int(r() * 4)]}:{entity_n}",
            RELATIONS[int(r() * len(RELATIONS))],
            value_type,
            value,
            f"agent:{WORDS[int(r() * len(WORDS))]}",
            ts,
            round(r(), 4),
            SCOPES[int(r() * len(SCOPES))],
            hlc,
        )


def _typed_value(rng: random.Random) -> tuple[str, object]:
    r = rng.random
    kind = VALUE_TYPES[int(r() * len(VALUE_TYPES))]
    if kind == "text":
        at = int(r() * (len(CORPUS) - 1024))
        return kind, CORPUS[at : at + 16 + int(r() * 700)]
    if kind == "int":
        return kind, int(r() * 2e9) - 10**9
    if kind == "float":
        return kind, (r() - 0.5) * 2e6
    if kind == "bool":
        return kind, int(r() * 2)
    if kind == "json":
        words = [WORDS[int(r() * len(WORDS))] for _ in range(2 * (1 + int(r() * 5)))]
        return kind, json.dumps(dict(zip(words[::2], words[1::2], strict=True)), sort_keys=True)
    return kind, rng.randbytes(16 + int(r() * 500))


def _when(rng: random.Random, start: datetime) -> tuple[str, str]:
    """An ISO time within 30 days of ``start`` and a hybrid logical clock stamp for it."""
    micros = int(rng.random() * 30 * 86400 * 1_000_000)
    day, rest = divmod(micros, 86400 * 1_000_000)
    secs, us = divmod(rest, 1_000_000)
    hour, minute, sec = secs // 3600, secs // 60 % 60, secs % 60
    day_text = _date_text(start.toordinal() + day)
    millis = _millis(start) + micros // 1000
    counter = int(rng.random() * 10_000)
    return (
        f"{day_text}T{hour:02d}:{minute:02d}:{sec:02d}.{us:06d}+00:00",
        f"{millis:013d}-{counter:04d}",
    )


@functools.lru_cache(maxsize=4096)
def _date_text(ordinal: int) -> str:
    return date.fromordinal(ordinal).isoformat()


@functools.lru_cache(maxsize=64)
def _millis(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _insert_peers(conn: sqlite3.Connection, rng: random.Random, with_status: bool) -> None:
    for n in range(rng.randrange(3, 8)):
        peer_id = _uuid(rng)
        added = _iso(EPOCH + timedelta(days=n))
        conn.execute(
            "INSERT INTO peers (id, node_id, url, pubkey, added_at) VALUES (?, ?, ?, ?, ?)",
            (
                peer_id,
                f"stigmem:node:{_uuid(rng)}",
                f"https://peer{n}.example.net",
                b64url(rng.randbytes(32)),
                added,
            ),
        )
        if with_status:
            conn.execute(
                "UPDATE peers SET status = ?, last_seen = ? WHERE id = ?",
                ("suspended" if n == 0 else "active", added, peer_id),
            )
        for direction in ("push", "pull"):
            conn.execute(
                "INSERT INTO replication_cursors (peer_id, direction, cursor, updated_at) "
                "VALUES (?, ?, ?, ?)",
                (peer_id, direction, _when(rng, EPOCH)[1], added),
            )


def _existing_rowids(
    conn: sqlite3.Connection, rng: random.Random, max_rowid: int, wanted: int
) -> list[int]:
    if max_rowid == 0 or wanted <= 0:
        return []
    candidates = sorted({rng.randrange(1, max_rowid + 1) for _ in range(wanted)})
    found: list[int] = []
    for start in range(0, len(candidates), 500):
        chunk = candidates[start : start + 500]
        marks = ",".join("?" * len(chunk))
        found += [
            r
            for (r,) in conn.execute(
                f"SELECT rowid FROM facts WHERE rowid IN ({marks}) ORDER BY rowid", chunk
            )
        ]
    return found


def _uuid(rng: random.Random) -> str:
    # uuid.UUID(int=..., version=4) by hand: it is a third of the build time otherwise.
    bits = rng.getrandbits(128) & ~(0xF << 76) & ~(0xC << 60) | (4 << 76) | (0x8 << 60)
    h = f"{bits:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _iso(moment: datetime) -> str:
    return moment.isoformat()


def _sidecars(path: Path) -> tuple[Path, ...]:
    return tuple(path.with_name(path.name + s) for s in ("-wal", "-shm", "-journal"))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.nodegen", description=__doc__)
    parser.add_argument("--out", type=Path, required=True, help="database to create or churn")
    parser.add_argument("--size-mb", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--churn-day",
        type=int,
        action="append",
        default=[],
        help="apply this day's churn to the existing --out (repeatable)",
    )
    args = parser.parse_args(argv)
    if args.churn_day:
        if not args.out.is_file():
            parser.error(f"no such file: {args.out}")
        for day in args.churn_day:
            stats = apply_churn(args.out, day, seed=args.seed)
            print(json.dumps(asdict(stats)))
        return 0
    info = make_node_db(args.out, args.size_mb, seed=args.seed)
    print(json.dumps({**asdict(info), "path": str(info.path)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
