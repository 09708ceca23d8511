"""Bounds on what a store may ask of a reader, checked before anything is allocated.

A store is untrusted input: anyone who can write to the bucket or directory can make an
object claim any size. Every size read from it (an object's length, a decompressed index, a
pack trailer, an index entry, a document's chunk count) is held to a bound derived from the
store's ``config.json`` or from the size of the object that carries it.
"""

from __future__ import annotations

import zstandard

from store.config import StoreConfig

# SQLite's largest page; a chunk is ``pages_per_chunk`` of them.
MAX_PAGE = 1 << 16
# What the chunker cuts members that are not SQLite files into (store.chunker).
OTHER_CHUNK = 1 << 20
# Any object read whole (an index object is the largest: 56 bytes a chunk of the store).
MAX_OBJECT = 1 << 30
# Lock objects and config.json: a few hundred bytes when written by this tool.
MAX_SMALL_OBJECT = 64 << 10
# Index objects and pack trailers are mostly SHA-256 hashes, which do not compress: 32 of
# every 56 (index) or 52 (trailer) bytes are a hash, so their plain form is under twice their
# compressed size. A decompression is refused past this many times that size (plus a little
# for the headers): a zstd bomb stops there.
MAX_EXPANSION = 4
EXPANSION_SLACK = 64 << 10


def max_chunk(config: StoreConfig) -> int:
    """The largest chunk this store's writer makes: pages, a non-SQLite piece, a chunk list."""
    return max(MAX_PAGE * config.pages_per_chunk, OTHER_CHUNK, 32 * config.hashes_per_list)


def max_frame(config: StoreConfig) -> int:
    """The largest compressed frame: a frame holds at most ``frame_size`` plain bytes plus
    one chunk (or one chunk, with a dictionary), and zstd's worst case adds under 1/128."""
    plain = config.frame_size + max_chunk(config)
    return plain + plain // 128 + (1 << 16)


def entry_bounds(config: StoreConfig) -> tuple[int, int, int]:
    """(largest chunk, largest compressed frame, largest decoded frame) an index entry or a
    pack trailer record of this store may name."""
    return max_chunk(config), max_frame(config), config.frame_size + max_chunk(config)


def max_pack(config: StoreConfig) -> int:
    """The largest pack object read whole (check, gc, sync): a pack is finished once it
    reaches ``pack_size``, after at most a few frames more, and holds a trailer."""
    return 2 * config.pack_size + 8 * max_frame(config) + (1 << 20)


def max_plain(compressed: int) -> int:
    """The most an index object or trailer of ``compressed`` bytes may decompress to."""
    return MAX_EXPANSION * compressed + EXPANSION_SLACK


class TooLarge(ValueError):
    """Compressed data that decompresses to more than its bound, or not at all."""


def decompress(data: bytes | bytearray | memoryview, limit: int) -> bytearray:
    """The zstd frames ``data`` holds, decompressed a piece at a time and refused (TooLarge)
    past ``limit`` bytes: whatever a frame's header claims, no more is ever allocated."""
    out = bytearray()
    try:
        with zstandard.ZstdDecompressor().stream_reader(data, read_across_frames=True) as reader:
            while piece := reader.read(min(limit + 1 - len(out), 1 << 20) or 1):
                out += piece
                if len(out) > limit:
                    raise TooLarge(f"decompresses to more than {limit} bytes")
    except zstandard.ZstdError as exc:
        raise TooLarge(f"does not decompress: {exc}") from None
    return out
