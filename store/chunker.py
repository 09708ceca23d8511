"""Cut an artifact into chunks aligned to the SQLite page size.

A SQLite file changes in whole pages that stay in place, so a chunk is ``pages_per_chunk``
pages (config.json ``chunking``; default one page): an unchanged page is always the same
chunk. The page size comes from the database header (bytes 16-17, big-endian; the value 1
means 65536). Anything that is not a SQLite database (the migration cursor JSON) is cut in
fixed pieces of ``OTHER_CHUNK_SIZE``, which makes small members a single chunk.

Chunks are named by the SHA-256 of their plain bytes.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, BinaryIO

SQLITE_MAGIC = b"SQLite format 3\x00"
OTHER_CHUNK_SIZE = 1 << 20


def artifact_size(source: Path | bytes) -> int:
    return len(source) if isinstance(source, bytes) else source.stat().st_size


def open_artifact(source: Path | bytes) -> BinaryIO:
    """An artifact handed to a put (a file, or bytes such as the cursor JSON) to read."""
    return io.BytesIO(source) if isinstance(source, bytes) else source.open("rb")


def sqlite_page_size(header: bytes) -> int | None:
    """The page size declared by a SQLite header, or None when ``header`` is not one."""
    if len(header) < 18 or not header.startswith(SQLITE_MAGIC):
        return None
    value = int.from_bytes(header[16:18], "big")
    if value == 1:
        return 65536
    if value < 512 or value > 32768 or value & (value - 1):
        return None
    return value


def chunk_size_for(header: bytes, pages_per_chunk: int) -> int:
    page = sqlite_page_size(header)
    return page * pages_per_chunk if page else OTHER_CHUNK_SIZE


READ_SIZE = 1 << 20

Chunk = tuple[bytes, memoryview]


def batches(
    stream: BinaryIO,
    pages_per_chunk: int = 1,
    digest: Any = None,
    chunk_id: Callable[[memoryview], bytes] | None = None,
) -> Generator[list[Chunk], None, None]:
    """Yield lists of (chunk id, plain bytes), in order, one list per read block. A chunk's
    id is its SHA-256, or what ``chunk_id`` makes of its bytes (an encrypted store's HMAC).

    Reading 1 MiB at a time and slicing costs one system call per 256 pages instead of one
    per page; handing the caller a whole block lets it ask the index about all its chunks
    in one query. The plain bytes are views into the block, not copies: most pages of a
    daily snapshot are stored already and never need bytes of their own (a caller keeping
    one past the next block copies it). ``digest`` (a hashlib object), when given, is fed
    every byte, one block at a time on a thread of its own, so the whole-artifact hash runs
    beside the page hashes instead of as a pass of its own after them. It is complete when
    the generator is.
    """
    with _feeding(digest) as feed:
        first = stream.read(100)
        size = chunk_size_for(first, pages_per_chunk)
        block = max(size, READ_SIZE // size * size)
        pending = first
        sha256 = (lambda data: hashlib.sha256(data).digest()) if chunk_id is None else chunk_id
        while True:
            data = pending + stream.read(block - len(pending)) if len(pending) < block else pending
            if not data:
                return
            whole = len(data) // size * size
            view = memoryview(data)
            feed(view[:whole])
            batch = [
                (sha256(view[i : i + size]), view[i : i + size]) for i in range(0, whole, size)
            ]
            pending = data[whole:]
            if len(data) < block:  # end of stream: the short tail is a chunk of its own
                if pending:
                    feed(memoryview(pending))
                    batch.append((sha256(memoryview(pending)), memoryview(pending)))
                if batch:
                    yield batch
                return
            if batch:
                yield batch


@contextlib.contextmanager
def _feeding(digest: Any) -> Iterator[Callable[[memoryview], None]]:
    """A function that hands one block at a time to ``digest.update`` on a worker thread
    (hashlib releases the GIL on large buffers), waiting for the previous block first so
    that blocks go in order and at most one is held for it; on leaving, the last block is
    waited for."""
    if digest is None:
        yield lambda _: None
        return
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="digest")
    previous: list[Future[None]] = []

    def feed(block: memoryview) -> None:
        if previous:
            previous.pop().result()
        previous.append(pool.submit(digest.update, block))

    try:
        yield feed
        if previous:
            previous.pop().result()
    finally:
        pool.shutdown(wait=True)


def chunks(stream: BinaryIO, pages_per_chunk: int = 1) -> Iterator[Chunk]:
    """Yield (sha256 digest, plain bytes) for each chunk of ``stream``, in order."""
    for batch in batches(stream, pages_per_chunk):
        yield from batch
