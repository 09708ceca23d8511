"""The zstd dictionary new chunks are compressed with: trained on a database's own pages.

Each page is then its own zstd frame (see ``store.packs``) and still compresses about as
well as pages compressed together, because what pages have in common (b-tree headers,
record layouts, repeated values) is in the dictionary.

Every put trains its own, on ``SAMPLES`` chunks spread evenly over its largest SQLite
artifact (a fixed amount of work, whatever the database's size, in the shadow of the copy's
integrity check). Training is deterministic, so the packs a put writes depend only on
the database and the store, never on what a host remembers; a put of an artifact too small
to learn from compresses without a dictionary.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path

import zstandard

from store import chunker

SAMPLES = 2000
SAMPLE_BYTES = 8 << 20  # at most this much read for training (2,000 pages of 4 KiB)
MIN_SAMPLES = 64  # fewer pages than this teach zstd nothing worth a dictionary
# COVER's defaults, set explicitly: without k and d zstd searches for them, 25x slower.
_COVER = {"k": 1024, "d": 8}


def samples(source: Path | bytes, pages_per_chunk: int, count: int = SAMPLES) -> list[bytes]:
    """Up to ``count`` chunks spread evenly over a SQLite artifact; none for anything else."""
    with chunker.open_artifact(source) as stream:
        size = chunker.sqlite_page_size(stream.read(100))
        if size is None:
            return []
        size *= pages_per_chunk
        count = max(1, min(count, SAMPLE_BYTES // size))  # 64 KiB pages: 128 of them
        total = stream.seek(0, io.SEEK_END) // size
        step = max(1, total // count)
        picked: list[bytes] = []
        for n in range(0, total, step):
            stream.seek(n * size)
            picked.append(stream.read(size))
            if len(picked) == count:
                break
        return picked


def train(pages: list[bytes | bytearray | memoryview], size: int, level: int) -> bytes | None:
    """A dictionary of at most ``size`` bytes, or None when the pages are too few."""
    if len(pages) < MIN_SAMPLES or size <= 0:
        return None
    try:
        trained = zstandard.train_dictionary(size, pages, level=level, **_COVER)
    except zstandard.ZstdError:
        return None
    return bytes(trained.as_bytes())


def for_put(
    artifacts: Mapping[str, Path | bytes], size: int, level: int, pages_per_chunk: int
) -> bytes | None:
    """The dictionary a put compresses its new chunks with, trained on its largest SQLite
    artifact; None for a store without dictionaries or nothing worth learning from."""
    if size <= 0:
        return None
    pages: list[bytes | bytearray | memoryview] = []
    for source in sorted(artifacts.values(), key=chunker.artifact_size, reverse=True):
        pages = list(samples(source, pages_per_chunk))
        if pages:
            break
    return train(pages, size, level)
