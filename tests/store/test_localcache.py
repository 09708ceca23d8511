"""LocalCache: what a host keeps under $STIGMEM_HOME/cache, bounded, and removable at will."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from snapshot.checked import QUICK
from store.localcache import LocalCache

DIGEST_A, DIGEST_B = "a" * 64, "b" * 64


def aged(path: Path, size: int, age: float) -> Path:
    """A file of ``size`` bytes last used ``age`` seconds ago."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    when = 1_700_000_000 - age
    os.utime(path, (when, when))
    return path


def test_without_a_root_there_is_nothing_to_keep_or_find(tmp_path: Path) -> None:
    cache = LocalCache(None)
    assert not cache.enabled
    assert cache.index_path("s3://bucket/store") is None
    assert cache.checked() is None
    cache.mark_checked(DIGEST_A, QUICK)
    assert not cache.was_checked(DIGEST_A, QUICK)
    assert cache.size() == 0 and cache.trim() == 0


def test_paths_are_per_store_and_marks_are_by_digest(tmp_path: Path) -> None:
    cache = LocalCache(tmp_path / "cache")
    one, two = cache.index_path("/var/lib/a"), cache.index_path("s3://b/c")
    assert one is not None and two is not None and one != two
    assert one.parent == tmp_path / "cache" and one.name.startswith("index-")
    cache.mark_checked(f"sha256:{DIGEST_A}", QUICK)
    cache.mark_checked(DIGEST_B, QUICK)
    assert cache.was_checked(DIGEST_A, QUICK) and cache.was_checked(DIGEST_B, QUICK)
    cache.forget_checked([f"sha256:{DIGEST_A}", "not a digest", "../../etc/passwd"])
    assert not cache.was_checked(DIGEST_A, QUICK) and cache.was_checked(DIGEST_B, QUICK)


def test_trim_removes_what_was_used_longest_ago_until_it_fits(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    oldest = aged(root / "index-0000000000000001.db", 4000, age=300)
    wal = aged(root / "index-0000000000000001.db-wal", 3000, age=300)
    middle = aged(root / "index-0000000000000002.db", 4000, age=200)
    newest = aged(root / "index-0000000000000003.db", 4000, age=100)
    cache = LocalCache(root, max_bytes=9000)
    assert cache.size() == 15000  # a database's WAL counts with it

    removed = cache.trim()

    assert removed == 7000  # the oldest database and its WAL, together
    assert not oldest.exists() and not wal.exists()
    assert middle.exists() and newest.exists()
    assert cache.size() == 8000 <= cache.max_bytes
    assert cache.trim() == 0


def test_an_index_copy_in_use_by_another_command_is_not_trimmed(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    busy = root / "index-0000000000000001.db"
    root.mkdir()
    holder = sqlite3.connect(busy, isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("INSERT INTO t VALUES (1)")
    try:
        assert LocalCache(root, max_bytes=0).trim() == 0
        assert busy.exists()
    finally:
        holder.execute("COMMIT")
        holder.close()
    assert LocalCache(root, max_bytes=0).trim() > 0
    assert not busy.exists()


def test_a_damaged_index_copy_is_trimmed_like_any_other_file(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    aged(root / "index-0000000000000001.db", 5000, age=10)  # not a database at all
    assert LocalCache(root, max_bytes=0).trim() == 5000
    assert list(root.iterdir()) == []


def test_marks_past_their_count_go_oldest_first(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    cache = LocalCache(root, max_marks=3)
    for n, digest in enumerate("0123"):
        cache.mark_checked(digest * 64, QUICK)
        mark = root / "checked" / (digest * 64)
        when = 1_700_000_000 + n
        os.utime(mark, (when, when))
    cache.trim()
    assert not cache.was_checked("0" * 64, QUICK)
    assert all(cache.was_checked(d * 64, QUICK) for d in "123")
