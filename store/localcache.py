"""What this host keeps under ``$STIGMEM_HOME/cache``, and the only code that decides it.

Nothing here is ever needed: every entry is a copy of, or a finding about, something the
stores hold, so deleting the folder at any moment, or running without it (``--no-cache``),
changes no command's output, only how much work a command does.

- ``index-<store>.db`` serves every command that loads a store's index: a copy of the
  store's index objects, the snapshot this host last put per node (a put compares pages with
  it before asking the index) and the read plans of the snapshot read last.
- ``checked/<sha256>`` serves ``snapshot restore``: marks of database copies that passed
  SQLite's check at create.

``<store>`` is the first 16 hex digits of the SHA-256 of the store's URL. The folder is held
to ``max_bytes``: :meth:`LocalCache.trim` removes the entries used longest ago until it fits.
Marks go when their snapshot is pruned (:meth:`LocalCache.forget_checked`). A cache that
cannot be read or written is done without, and says so at debug level.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import sqlite3
from collections.abc import Iterable
from pathlib import Path

from snapshot.checked import CheckedCopies
from snapshot.nodedb import is_busy

log = logging.getLogger("stigmem.cache")

DEFAULT_MAX_BYTES = 2 << 30
# Marks are a few dozen bytes each: this many is years of daily snapshots of several nodes.
MAX_MARKS = 4096
CHECKED = "checked"
COMPANIONS = ("-wal", "-shm", "-journal")  # files SQLite keeps beside a database


class LocalCache:
    """The cache folder ``root`` (None: no cache), held to ``max_bytes`` and ``max_marks``."""

    def __init__(
        self, root: Path | None, max_bytes: int = DEFAULT_MAX_BYTES, max_marks: int = MAX_MARKS
    ) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self.max_marks = max_marks

    @property
    def enabled(self) -> bool:
        return self.root is not None

    def _store_file(self, store_url: str, kind: str, suffix: str) -> Path | None:
        if self.root is None:
            return None
        digest = hashlib.sha256(store_url.encode()).hexdigest()[:16]
        return self.root / f"{kind}-{digest}.{suffix}"

    def index_path(self, store_url: str) -> Path | None:
        """Where the copy of ``store_url``'s index lives (a SQLite database), or None."""
        return self._store_file(store_url, "index", "db")

    def checked(self) -> CheckedCopies | None:
        """The marks of database copies that passed SQLite's check, or None."""
        return None if self.root is None else CheckedCopies(self.root / CHECKED)

    def mark_checked(self, digest: str, check: str) -> None:
        marks = self.checked()
        if marks is not None:
            marks.record(digest, check)

    def was_checked(self, digest: str, check: str) -> bool:
        marks = self.checked()
        return marks is not None and marks.holds(digest, check)

    def forget_checked(self, digests: Iterable[str]) -> None:
        """Remove the marks of these database digests (their snapshots are gone)."""
        if self.root is None:
            return
        for digest in digests:
            name = digest.removeprefix("sha256:")
            if len(name) == 64 and all(c in "0123456789abcdef" for c in name):
                with contextlib.suppress(FileNotFoundError):
                    (self.root / CHECKED / name).unlink()

    def entries(self) -> list[tuple[Path, int, float]]:
        """Every entry of the cache: path, size, last use (the later of access and change).
        An index database's companion files (WAL, journal) count with it."""
        if self.root is None:
            return []
        found: dict[Path, tuple[int, float]] = {}
        for folder in (self.root, self.root / CHECKED):
            try:
                names = os.scandir(folder)
            except OSError:
                continue
            with names:
                for entry in names:
                    try:
                        if not entry.is_file(follow_symlinks=False):
                            continue
                        st = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    path = Path(entry.path)
                    for suffix in COMPANIONS:
                        if entry.name.endswith(".db" + suffix):
                            path = path.with_name(entry.name.removesuffix(suffix))
                    size, used = found.get(path, (0, 0.0))
                    found[path] = (size + st.st_size, max(used, st.st_atime, st.st_mtime))
        return [(path, size, used) for path, (size, used) in found.items()]

    def size(self) -> int:
        return sum(size for _, size, _ in self.entries())

    def trim(self) -> int:
        """Remove the entries used longest ago until the cache fits its bound, and the oldest
        marks past ``max_marks``; return the bytes removed."""
        entries = self.entries()
        marks = sorted(
            (e for e in entries if e[0].parent.name == CHECKED), key=lambda e: e[2], reverse=True
        )
        doomed = {e[0] for e in marks[self.max_marks :]}
        kept = [e for e in entries if e[0] not in doomed]
        total = sum(size for _, size, _ in kept)
        for path, size, _ in sorted(kept, key=lambda e: e[2]):
            if total <= self.max_bytes:
                break
            doomed.add(path)
            total -= size
        removed = 0
        for path in doomed:
            size = next(s for p, s, _ in entries if p == path)
            try:
                _remove_entry(path)
            except OSError as exc:
                log.debug("cache: cannot remove %s: %s", path, exc)
                continue
            removed += size
        if removed:
            log.debug("cache: trimmed %d bytes from %s", removed, self.root)
        return removed


def _remove_entry(path: Path) -> None:
    """Remove a cache file; an index copy (with its companion files) only when no command is
    using it: a command holds a write transaction on the copy it has open."""
    if path.suffix == ".db":
        conn = sqlite3.connect(path, timeout=0, isolation_level=None)
        try:
            conn.execute("BEGIN EXCLUSIVE")  # fails while another connection uses it
        except sqlite3.Error as exc:
            if is_busy(exc):
                raise OSError(f"in use: {exc}") from None
            # Not a database any more: nobody can be using it as one.
        finally:
            conn.close()
        for suffix in COMPANIONS:
            path.with_name(path.name + suffix).unlink(missing_ok=True)
    path.unlink(missing_ok=True)
