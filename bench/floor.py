"""The floor: what any page-level tool must store for one day of churn, at the least.

Pages are compared between consistent copies of the database before and after the day's
churn; a page counts as changed when its bytes differ or it is new at the end of the file.
The zstd figure compresses all changed pages together, as a pack would.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

import zstandard

PAGE = 4096
# Compare a block at a time and look at single pages only inside blocks that differ: most of
# a 1 GiB file is unchanged, and bytes comparison is far cheaper than a Python loop per page.
BLOCK = 256 * PAGE
ZSTD_LEVEL = 3


@dataclass(frozen=True)
class Floor:
    day: int
    pages_changed: int
    raw_bytes: int
    zstd_bytes: int


def consistent_copy(source: Path, target: Path) -> None:
    """Copy a live database through SQLite's online backup API (as every tool here does)."""
    target.unlink(missing_ok=True)
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()


def changed_pages(old: Path, new: Path) -> list[bytes]:
    return [page for _, page in numbered_changes(old, new)]


def numbered_changes(old: Path, new: Path) -> list[tuple[int, bytes]]:
    """``(page number, bytes)`` of each page of ``new`` that differs from ``old``'s (SQLite
    numbers pages from 1)."""
    pages: list[tuple[int, bytes]] = []
    first = 1
    with old.open("rb") as before, new.open("rb") as after:
        while block := after.read(BLOCK):
            previous = before.read(BLOCK)
            if block != previous:
                for at in range(0, len(block), PAGE):
                    page = block[at : at + PAGE]
                    if page != previous[at : at + PAGE]:
                        pages.append((first + at // PAGE, page))
            first += BLOCK // PAGE
    return pages


def measure(day: int, old: Path | None, new: Path) -> Floor:
    """The floor for ``day``; with no ``old`` (day 0) every page of ``new`` counts."""
    joined = b"".join(changed_pages(old, new)) if old is not None else new.read_bytes()
    compressed = zstandard.ZstdCompressor(level=ZSTD_LEVEL).compress(joined)
    return Floor(day, len(joined) // PAGE, len(joined), len(compressed))
