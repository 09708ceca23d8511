"""Cutting an artifact into page-aligned chunks, and the whole-artifact digest alongside."""

from __future__ import annotations

import hashlib
import io
import threading

import pytest

from store import chunker


def sqlite_header(page_size: int) -> bytes:
    return b"SQLite format 3\x00" + page_size.to_bytes(2, "big") + bytes(82)


@pytest.mark.parametrize(
    "size",
    [0, 100, 4096, 4096 * 3 + 17, chunker.READ_SIZE, chunker.READ_SIZE * 2 + 4096 + 5],
)
def test_chunks_and_digest_cover_every_byte_once(size: int) -> None:
    data = (sqlite_header(4096) + bytes(range(256)) * (size // 256 + 1))[:size]
    digest = hashlib.sha256()
    batches = list(chunker.batches(io.BytesIO(data), 1, digest))
    chunks = [chunk for batch in batches for chunk in batch]
    assert b"".join(piece for _, piece in chunks) == data
    assert all(key == hashlib.sha256(piece).digest() for key, piece in chunks)
    assert digest.hexdigest() == hashlib.sha256(data).hexdigest()
    if size >= 100:  # a SQLite header: whole pages, a short tail only at the end
        assert all(len(piece) == 4096 for _, piece in chunks[:-1])


def test_a_reader_that_stops_early_leaves_no_digest_thread_behind() -> None:
    data = sqlite_header(4096) + bytes(chunker.READ_SIZE * 3)
    before = {t.name for t in threading.enumerate()}
    batches = chunker.batches(io.BytesIO(data), 1, hashlib.sha256())
    first = next(batches)
    assert len(first) == chunker.READ_SIZE // 4096
    batches.close()  # a put that failed after its first block
    assert {t.name for t in threading.enumerate()} <= before
