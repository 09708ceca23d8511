"""``snapshot.fileio``: durable writes and the write-behind a restore streams through."""

from __future__ import annotations

import os
from pathlib import Path

from snapshot.fileio import WriteBehind, atomic_write_bytes


def test_write_behind_writes_every_byte_in_order(tmp_path: Path) -> None:
    target = tmp_path / "restored.db"
    blocks = [os.urandom(size) for size in (3 << 20, 1, 5 << 20, 4096, 2 << 20, 777)]
    with target.open("wb") as handle:
        writer = WriteBehind(handle, step=1 << 20)  # writeback started every MiB
        for block in blocks:
            assert writer.write(memoryview(block)) == len(block)
        handle.flush()
        os.fsync(handle.fileno())
    assert target.read_bytes() == b"".join(blocks)


def test_write_behind_writes_small_files_untouched(tmp_path: Path) -> None:
    target = tmp_path / "small.db"
    with target.open("wb") as handle:
        writer = WriteBehind(handle)  # never reaches a step
        writer.write(b"SQLite format 3\x00")
        writer.write(bytearray(b"rest"))
    assert target.read_bytes() == b"SQLite format 3\x00rest"


def test_atomic_write_replaces_the_whole_file(tmp_path: Path) -> None:
    target = tmp_path / "doc.json"
    target.write_bytes(b"old and longer")
    atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["doc.json"]  # no temporary left
