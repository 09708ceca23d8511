"""What a backup did to its repository directory: bytes added and objects written."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

# path relative to the repository -> (size, mtime_ns); an object counts as written when its
# entry is new or different, which catches rewrites in place as well as new files.
Listing = dict[str, tuple[int, int]]


@dataclass(frozen=True)
class RepoDelta:
    growth_bytes: int
    objects_written: int


def scan(root: Path) -> Listing:
    listing: Listing = {}
    if not root.exists():
        return listing
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            path = os.path.join(dirpath, name)
            try:
                st = os.stat(path, follow_symlinks=False)
            except FileNotFoundError:  # a lock or temp file removed while walking
                continue
            listing[os.path.relpath(path, root)] = (st.st_size, st.st_mtime_ns)
    return listing


def total_bytes(listing: Listing) -> int:
    return sum(size for size, _ in listing.values())


def delta(before: Listing, after: Listing) -> RepoDelta:
    written = sum(1 for path, entry in after.items() if before.get(path) != entry)
    return RepoDelta(total_bytes(after) - total_bytes(before), written)
