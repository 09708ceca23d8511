"""The zstd dictionary new chunks are compressed with: trained on a database's own pages.

Each page is then its own zstd frame (see ``store.packs``) and still compresses about as
well as pages compressed together, because what pages have in common (b-tree headers,
record layouts, repeated values) is in the dictionary.

Training reads ``SAMPLES`` chunks spread evenly over the largest SQLite artifact: 0.15 s of
CPU for the bench database. A host keeps the dictionary it trained beside its index cache
and trains again once it is ``MAX_AGE`` old, so the dictionary follows the data as it
evolves without costing a daily snapshot anything; without a cache (or for an artifact too
small to learn from) every put trains afresh, or compresses without a dictionary.
"""

from __future__ import annotations

import io
import time
from collections.abc import Mapping
from pathlib import Path

import zstandard

from snapshot.fileio import atomic_write_bytes
from store import chunker

SAMPLES = 2000
SAMPLE_BYTES = 8 << 20  # at most this much read for training (2,000 pages of 4 KiB)
MIN_SAMPLES = 64  # fewer pages than this teach zstd nothing worth a dictionary
MAX_AGE = 7 * 24 * 3600.0
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
    artifacts: Mapping[str, Path | bytes],
    cache: Path | None,
    size: int,
    level: int,
    pages_per_chunk: int,
) -> bytes | None:
    """The dictionary a put compresses its new chunks with: this host's while it is fresh,
    else trained on the largest SQLite artifact (and kept, when there is a cache)."""
    if size <= 0:
        return None
    if cache is not None and cache.exists() and time.time() - cache.stat().st_mtime < MAX_AGE:
        kept = cache.read_bytes()
        # A damaged cache file is trained over, not used: zstd reads any bytes as a raw
        # content dictionary (id 0), which frames could not name.
        if zstandard.ZstdCompressionDict(kept).dict_id() != 0:
            return kept
    pages: list[bytes | bytearray | memoryview] = []
    for source in sorted(artifacts.values(), key=chunker.artifact_size, reverse=True):
        pages = list(samples(source, pages_per_chunk))
        if pages:
            break
    trained = train(pages, size, level)
    if trained is not None and cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(cache, trained)
    return trained
