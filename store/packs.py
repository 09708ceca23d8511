"""Pack objects: many chunks compressed together, listing their own chunks.

A pack (``packs/<2 hex>/<sha256 of the pack>``) is::

    frame 0 | frame 1 | ... | trailer | u32 trailer length | b"stgmpak1"

Each frame is one zstd frame (with its content checksum) of several consecutive chunks, so
compression sees ``frame_size`` bytes of neighbouring pages at once while reading a chunk
decompresses only its frame. The trailer is a zstd frame of fixed records
``32-byte chunk hash, u32 frame offset, u32 frame length, u32 offset in frame, u32 length``
(big-endian), which is all an index needs: the index can be rebuilt from packs alone.

``PackWriter`` finishes a pack once it reaches ``pack_size`` compressed bytes and hands it,
named, to a callback; the caller stores it. Readers here only decode; the caller checks
every chunk against its name (``chunk_matches``).
"""

from __future__ import annotations

import collections
import hashlib
import struct
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import zstandard

MAGIC = b"stgmpak1"
WORKERS = 2
MAX_PENDING = 4  # frames in flight: bounds memory at a few MiB
FOOTER = struct.Struct(">I8s")
RECORD = struct.Struct(">32sIIII")


@dataclass(frozen=True)
class PackEntry:
    key: bytes
    frame_offset: int
    frame_length: int
    offset: int
    length: int


class PackError(Exception):
    """A pack does not decode: truncated, not a pack, or a frame fails its checksum."""


OnPack = Callable[[str, bytearray, list[PackEntry]], None]


class PackWriter:
    """Frames are compressed on worker threads (zstd releases the GIL) while the caller goes
    on reading and hashing; results are taken back in order, so the packs are the same
    bytes as a one-thread writer would make."""

    def __init__(self, on_pack: OnPack, level: int, frame_size: int, pack_size: int) -> None:
        self._on_pack = on_pack
        self._level = level
        self._local = threading.local()
        self._pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="zstd")
        self._pending: collections.deque[tuple[Future[bytes], list[tuple[bytes, int, int]]]] = (
            collections.deque()
        )
        self._frame_size = frame_size
        self._pack_size = pack_size
        self._frame = bytearray()
        self._frame_chunks: list[tuple[bytes, int, int]] = []
        self._pack = bytearray()
        self._entries: list[PackEntry] = []

    def add(self, key: bytes, data: bytes | memoryview) -> None:
        self._frame_chunks.append((key, len(self._frame), len(data)))
        self._frame += data
        if len(self._frame) >= self._frame_size:
            self._flush_frame()

    def _compress(self, frame: bytes) -> bytes:
        # A ZstdCompressor must not be shared between threads: one per worker.
        compressor = getattr(self._local, "compressor", None)
        if compressor is None:
            compressor = zstandard.ZstdCompressor(level=self._level, write_checksum=True)
            self._local.compressor = compressor
        return bytes(compressor.compress(frame))

    def _flush_frame(self) -> None:
        if not self._frame_chunks:
            return
        future = self._pool.submit(self._compress, bytes(self._frame))
        self._pending.append((future, self._frame_chunks))
        self._frame = bytearray()
        self._frame_chunks = []
        while len(self._pending) > MAX_PENDING:
            self._collect()

    def _collect(self) -> None:
        future, chunks = self._pending.popleft()
        compressed = future.result()
        start = len(self._pack)
        self._pack += compressed
        self._entries.extend(
            PackEntry(key, start, len(compressed), offset, length) for key, offset, length in chunks
        )
        if len(self._pack) >= self._pack_size:
            self._finish_pack()

    def _finish_pack(self) -> None:
        if not self._entries:
            return
        records = b"".join(
            RECORD.pack(e.key, e.frame_offset, e.frame_length, e.offset, e.length)
            for e in self._entries
        )
        trailer = zstandard.ZstdCompressor(level=3).compress(records)
        self._pack += trailer
        self._pack += FOOTER.pack(len(trailer), MAGIC)
        data, entries = self._pack, self._entries
        self._pack = bytearray()
        self._entries = []
        self._on_pack(hashlib.sha256(data).hexdigest(), data, entries)

    def finish(self) -> None:
        """Write out what is buffered: the last frame and the last, possibly small, pack."""
        self._flush_frame()
        while self._pending:
            self._collect()
        self._finish_pack()
        self._pool.shutdown()


def trailer_span(pack_size: int, tail: bytes) -> tuple[int, int]:
    """Where the trailer lies (start, end) given the pack's size and its last bytes."""
    if pack_size < FOOTER.size or len(tail) < FOOTER.size:
        raise PackError("too short to be a pack")
    length, magic = FOOTER.unpack(tail[-FOOTER.size :])
    if magic != MAGIC:
        raise PackError("no pack footer")
    end = pack_size - FOOTER.size
    if length > end:
        raise PackError("trailer length past the start of the pack")
    return end - length, end


def parse_trailer(trailer: bytes) -> list[PackEntry]:
    try:
        records = zstandard.ZstdDecompressor().decompress(trailer)
    except zstandard.ZstdError as exc:
        raise PackError(f"trailer does not decompress: {exc}") from None
    if len(records) % RECORD.size:
        raise PackError("trailer is truncated")
    return [PackEntry(*fields) for fields in RECORD.iter_unpack(records)]


def entries_of(data: bytes) -> list[PackEntry]:
    """The chunk list of a whole pack held in memory."""
    start, end = trailer_span(len(data), data[-FOOTER.size :])
    return parse_trailer(data[start:end])


def decompress_frame(
    frame: bytes | memoryview, decompressor: zstandard.ZstdDecompressor | None = None
) -> bytes:
    try:
        return (decompressor or zstandard.ZstdDecompressor()).decompress(frame)
    except zstandard.ZstdError as exc:
        raise PackError(f"frame does not decompress: {exc}") from None


def chunk_matches(key: bytes, data: bytes) -> bool:
    return hashlib.sha256(data).digest() == key
