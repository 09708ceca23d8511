"""What a day of the generator's churn does to a node database's pages.

    .venv/bin/python -m bench.workload [--size-mb 256] [--days 3] [--seed 0] [--workdir DIR]

Builds a node database with ``tests/nodegen.py`` (cached in the work directory per size and
seed), then applies its daily churn and compares consistent copies from day to day, as
``bench.daily``'s floor does. Per day it prints the figures a real node's week was measured
by (the reference in bench/README.md):

- the share of the database's 4 KiB pages that changed (new pages at the end included);
- the share of those that are leaves of an index keyed by a UUID, a CID or an entity URI
  (``dbstat`` names each page's b-tree and kind);
- the share that had changed the day before too;
- growth of the file, in MiB and percent;
- the zstd-3 size of the changed pages compressed together (the floor), and raw / zstd.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from statistics import median

import zstandard

from bench.floor import PAGE, ZSTD_LEVEL, consistent_copy, numbered_changes
from tests.nodegen import apply_churn, make_node_db

MIB = 1024 * 1024
# Leading key columns that hold a random UUID, a content hash or an entity URI: inserts
# land anywhere in such an index, so a day's rows touch leaves all over it.
KEY_COLUMNS = frozenset(
    {
        "id",
        "fact_id",
        "cid",
        "entity",
        "entity_uri",
        "subject",
        "object",
        "session_id",
        "raw_uri",
        "canonical_uri",
        "fact_a_id",
    }
)


@dataclass(frozen=True)
class DayFigures:
    day: int
    pages: int  # of the database after the day
    changed: int
    changed_pct: float
    keyed_leaf_pct: float  # of the changed pages
    same_as_before_pct: float | None  # of the changed pages; None on the first day
    growth_mib: float
    growth_pct: float
    raw_mib: float
    zstd_mib: float
    ratio: float


def keyed_indexes(conn: sqlite3.Connection) -> set[str]:
    """Indexes whose first key column (after a tenant) is a UUID, CID or entity URI."""
    names = set()
    for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'"):
        columns = [row[2] for row in conn.execute(f"PRAGMA index_info('{name}')")]
        if columns[:1] == ["tenant_id"] and len(columns) > 1:
            columns = columns[1:]
        if columns and columns[0] in KEY_COLUMNS:
            names.add(name)
    return names


def page_kinds(db: Path) -> tuple[dict[int, tuple[str, str]], set[str]]:
    """Page number -> (b-tree name, page type), and the keyed indexes, of ``db``."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        kinds = {
            int(pageno): (str(name), str(kind))
            for name, pageno, kind in conn.execute("SELECT name, pageno, pagetype FROM dbstat")
        }
        return kinds, keyed_indexes(conn)
    finally:
        conn.close()


def day_figures(
    day: int, old: Path, new: Path, before: set[int] | None
) -> tuple[DayFigures, set[int]]:
    """The day's figures from consistent copies before and after it; also the changed page
    numbers, for the next day's overlap."""
    changes = numbered_changes(old, new)
    numbers = {n for n, _ in changes}
    kinds, keyed = page_kinds(new)
    keyed_leaves = sum(
        1 for n in numbers if kinds.get(n, ("", ""))[1] == "leaf" and kinds[n][0] in keyed
    )
    raw = b"".join(page for _, page in changes)
    packed = len(zstandard.ZstdCompressor(level=ZSTD_LEVEL).compress(raw)) if raw else 0
    pages = new.stat().st_size // PAGE
    grown = new.stat().st_size - old.stat().st_size
    count = max(1, len(numbers))
    return (
        DayFigures(
            day=day,
            pages=pages,
            changed=len(numbers),
            changed_pct=100 * len(numbers) / pages,
            keyed_leaf_pct=100 * keyed_leaves / count,
            same_as_before_pct=None if before is None else 100 * len(numbers & before) / count,
            growth_mib=grown / MIB,
            growth_pct=100 * grown / old.stat().st_size,
            raw_mib=len(raw) / MIB,
            zstd_mib=packed / MIB,
            ratio=len(raw) / packed if packed else 0.0,
        ),
        numbers,
    )


def run(size_mb: float, days: int, seed: int, workdir: Path) -> list[DayFigures]:
    workdir.mkdir(parents=True, exist_ok=True)
    base = workdir / f"node-{size_mb:g}mb-seed{seed}.db"
    if not base.exists():
        make_node_db(workdir / "building.db", size_mb=size_mb, seed=seed)
        (workdir / "building.db").replace(base)
    db, previous, current = workdir / "node.db", workdir / "previous.db", workdir / "current.db"
    for stale in (db, db.with_name("node.db-wal"), db.with_name("node.db-shm")):
        stale.unlink(missing_ok=True)
    shutil.copyfile(base, db)
    consistent_copy(db, previous)
    figures: list[DayFigures] = []
    before: set[int] | None = None
    for day in range(1, days + 1):
        apply_churn(db, day=day, seed=seed)
        consistent_copy(db, current)
        today, before = day_figures(day, previous, current, before)
        figures.append(today)
        current.replace(previous)
        print(_row(today), file=sys.stderr, flush=True)
    return figures


HEADER = (
    "day  pages  changed  changed%  keyed-leaf%  same-as-before%  growth MiB  growth%  "
    "raw MiB  zstd MiB  raw/zstd"
)


def _row(f: DayFigures) -> str:
    same = "-" if f.same_as_before_pct is None else f"{f.same_as_before_pct:.1f}"
    return (
        f"{f.day:>3}  {f.pages:>5}  {f.changed:>7}  {f.changed_pct:>8.1f}"
        f"  {f.keyed_leaf_pct:>11.1f}  {same:>15}  {f.growth_mib:>10.2f}"
        f"  {f.growth_pct:>7.2f}  {f.raw_mib:>7.1f}"
        f"  {f.zstd_mib:>8.2f}  {f.ratio:>8.2f}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.workload",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--size-mb", type=float, default=256.0)
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/stigmem-workload"))
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    print(HEADER, file=sys.stderr)
    figures = run(args.size_mb, args.days, args.seed, args.workdir)
    later = [f for f in figures if f.same_as_before_pct is not None]
    print(HEADER)
    for f in figures:
        print(_row(f))
    print(
        "median: changed {:.1f}%, keyed leaves {:.1f}%, same as the day before {}, growth "
        "{:.2f} MiB ({:.2f}%), zstd {:.2f} MiB, raw/zstd {:.2f}".format(
            median(f.changed_pct for f in figures),
            median(f.keyed_leaf_pct for f in figures),
            f"{median(f.same_as_before_pct or 0 for f in later):.1f}%" if later else "-",
            median(f.growth_mib for f in figures),
            median(f.growth_pct for f in figures),
            median(f.zstd_mib for f in figures),
            median(f.ratio for f in figures),
        )
    )
    if args.json:
        args.json.write_text(json.dumps([asdict(f) for f in figures], indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
