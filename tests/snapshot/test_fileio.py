"""``snapshot.fileio``: durable writes and the write-behind a restore streams through."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from snapshot.fileio import WRITE_PIECE, WriteBehind, atomic_write_bytes, write_in_pieces


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


class _Recording(io.BytesIO):
    def __init__(self) -> None:
        super().__init__()
        self.sizes: list[int] = []

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        self.sizes.append(memoryview(data).nbytes)
        return super().write(data)


@pytest.mark.parametrize(
    "size", [0, 1, WRITE_PIECE - 1, WRITE_PIECE, WRITE_PIECE + 1, 5 * WRITE_PIECE + 123]
)
def test_large_writes_go_out_in_pieces_with_every_byte_in_order(size: int) -> None:
    data = os.urandom(size)
    out = _Recording()
    assert write_in_pieces(out, bytearray(data)) == size
    assert out.getvalue() == data
    assert max(out.sizes, default=0) <= WRITE_PIECE
    assert len(out.sizes) == max(1, -(-size // WRITE_PIECE))


def test_a_view_of_wider_items_is_written_as_its_bytes() -> None:
    words = memoryview(bytearray(os.urandom(3 * WRITE_PIECE))).cast("I")
    out = _Recording()
    assert write_in_pieces(out, words) == 3 * WRITE_PIECE
    assert out.getvalue() == words.tobytes()
