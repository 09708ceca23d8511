"""Pack objects: many chunks compressed together, listing their own chunks.

A pack (``packs/<2 hex>/<sha256 of the pack>``) is::

    [dictionary] | frame 0 | frame 1 | ... | trailer | u32 trailer length | b"stgmpak1"

Each frame is one zstd frame (with its content checksum). Two ways to compress chunks
together, chosen by the store's config:

- With a dictionary (new stores): ``b"stgmdict" | u32 length | zstd frame of a zstd
  dictionary`` opens the pack, and every chunk is a frame of its own compressed with it. The
  dictionary is trained on the database's own pages, so each page is compressed with what
  the others share, about as well as pages compressed together in 1 MiB frames. And a
  restore decodes only the pages it needs: a snapshot's pages lie scattered over every day's
  frames, so with large frames a restore decodes about the whole store, and the waste grows
  with the store's history.
- Without (stores made before dictionaries, or data too small to train on): frames of
  several consecutive chunks, up to ``frame_size`` bytes.

Frames name their dictionary by zstd's dictionary id, derived from its content, so readers
load each dictionary once, from the first pack that needs it, not once per pack. The trailer
is a zstd frame of fixed records ``32-byte chunk hash, u32 frame offset, u32 frame length,
u32 offset in frame, u32 length`` (big-endian), which is all an index needs: the index can be
rebuilt from packs alone.

``PackWriter`` finishes a pack once it reaches ``pack_size`` compressed bytes and hands it,
named, to a callback; the caller stores it. ``FrameDecoder`` decodes frames of any pack;
the caller checks chunks against their names (``chunk_matches``).
"""

from __future__ import annotations

import collections
import hashlib
import struct
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import zstandard

from store import crypto, limits
from store.crypto import PackCipher

MAGIC = b"stgmpak1"
DICT_MAGIC = b"stgmdict"
WORKERS = 2
MAX_PENDING = 4  # batches in flight: bounds memory at a few MiB
FOOTER = struct.Struct(">I8s")
HEADER = struct.Struct(">8sI")
HEAD_READ = 128 << 10  # a pack's first read for its dictionary: a whole 112 KiB one fits
MAX_FRAME = 64 << 20  # no frame a writer makes is larger (frames of 1 MiB, chunks of 1 MiB)
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
    """Chunks are compressed on worker threads (zstd releases the GIL) while the caller goes
    on reading and hashing, a batch of about ``frame_size`` bytes per task; results are
    taken back in order, so the packs are the same bytes as a one-thread writer would make.

    With ``dictionary`` (a zstd dictionary's bytes) every chunk is a frame of its own and
    every pack opens with the dictionary; without, a batch is one frame."""

    def __init__(
        self,
        on_pack: OnPack,
        level: int,
        frame_size: int,
        pack_size: int,
        dictionary: bytes | None = None,
        new_key: Callable[[], tuple[bytes, PackCipher] | None] | None = None,
        on_key: Callable[[str, bytes], None] | None = None,
    ) -> None:
        self._on_pack = on_pack
        self._level = level
        self._dictionary = (
            zstandard.ZstdCompressionDict(dictionary) if dictionary is not None else None
        )
        self._header = _header(dictionary) if dictionary is not None and new_key is None else b""
        self._local = threading.local()
        self._pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="zstd")
        self._pending: collections.deque[
            tuple[Future[list[bytes]], list[tuple[bytes, int, int]]]
        ] = collections.deque()
        self._frame_size = frame_size
        self._pack_size = pack_size
        self._frame = bytearray()
        self._frame_chunks: list[tuple[bytes, int, int]] = []
        # Encrypted stores (store.encryption): a new key per pack, a frame per chunk (a
        # frame is opened with its chunk's id), each frame sealed as it is placed.
        self._new_key = new_key
        self._on_key = on_key
        self._per_chunk = new_key is not None or self._dictionary is not None
        self._compressed_dictionary = (
            _compressed(dictionary) if dictionary is not None and new_key is not None else b""
        )
        self._key: bytes = b""
        self._cipher: PackCipher | None = None
        self._pack = self._start_pack()
        self._entries: list[PackEntry] = []

    def _start_pack(self) -> bytearray:
        fresh = self._new_key() if self._new_key is not None else None
        if fresh is None:
            return bytearray(self._header)
        self._key, self._cipher = fresh
        if not self._compressed_dictionary:
            return bytearray()
        sealed = self._cipher.encrypt(
            HEADER.size, self._compressed_dictionary, crypto.DICTIONARY_AD
        )
        return bytearray(HEADER.pack(DICT_MAGIC, len(sealed)) + sealed)

    def add(self, key: bytes, data: bytes | memoryview) -> None:
        self._frame_chunks.append((key, len(self._frame), len(data)))
        self._frame += data
        if len(self._frame) >= self._frame_size:
            self._flush_frame()

    def _compressor(self) -> zstandard.ZstdCompressor:
        # A ZstdCompressor must not be shared between threads: one per worker.
        compressor: zstandard.ZstdCompressor | None = getattr(self._local, "compressor", None)
        if compressor is None:
            compressor = zstandard.ZstdCompressor(
                level=self._level, write_checksum=True, dict_data=self._dictionary
            )
            self._local.compressor = compressor
        return compressor

    def _compress(self, frame: bytes, chunks: list[tuple[bytes, int, int]]) -> list[bytes]:
        compressor = self._compressor()
        if not self._per_chunk:
            return [bytes(compressor.compress(frame))]
        view = memoryview(frame)
        if _BATCH and self._dictionary is not None and all(n for _, _, n in chunks):
            # One call for the batch: the GIL is released once, not once a page.
            spans = _flat([(o, n) for _, o, n in chunks])
            segments = struct.pack(f"<{len(spans)}Q", *spans)
            out = compressor.multi_compress_to_buffer(zstandard.BufferWithSegments(view, segments))
            return [bytes(out[n]) for n in range(len(out))]  # type: ignore[call-overload]
        return [bytes(compressor.compress(view[o : o + n])) for _, o, n in chunks]

    def _flush_frame(self) -> None:
        if not self._frame_chunks:
            return
        future = self._pool.submit(self._compress, bytes(self._frame), self._frame_chunks)
        self._pending.append((future, self._frame_chunks))
        self._frame = bytearray()
        self._frame_chunks = []
        while len(self._pending) > MAX_PENDING:
            self._collect()

    def _collect(self) -> None:
        future, chunks = self._pending.popleft()
        compressed = future.result()
        cipher = self._cipher
        if cipher is not None:
            for (key, _, length), frame in zip(chunks, compressed, strict=True):
                offset = len(self._pack)
                sealed = cipher.encrypt(offset, frame, key)
                self._entries.append(PackEntry(key, offset, len(sealed), 0, length))
                self._pack += sealed
        elif not self._per_chunk:
            start = len(self._pack)
            self._pack += compressed[0]
            self._entries.extend(
                PackEntry(key, start, len(compressed[0]), offset, length)
                for key, offset, length in chunks
            )
        else:
            for (key, _, length), frame in zip(chunks, compressed, strict=True):
                self._entries.append(PackEntry(key, len(self._pack), len(frame), 0, length))
                self._pack += frame
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
        data, entries, key = self._pack, self._entries, self._key
        self._entries = []
        name = hashlib.sha256(data).hexdigest()
        if self._on_key is not None and self._cipher is not None:
            self._on_key(name, key)
        self._on_pack(name, data, entries)
        self._pack = self._start_pack()

    def finish(self) -> None:
        """Write out what is buffered: the last frame and the last, possibly small, pack."""
        self._flush_frame()
        while self._pending:
            self._collect()
        self._finish_pack()
        self._pool.shutdown()


def _compressed(dictionary: bytes) -> bytes:
    # Level 9, once a put: it halves the dictionary; higher levels take far longer for little.
    return zstandard.ZstdCompressor(level=9, write_checksum=True).compress(dictionary)


def _header(dictionary: bytes) -> bytes:
    packed = _compressed(dictionary)
    return HEADER.pack(DICT_MAGIC, len(packed)) + packed


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
    # Records are mostly hashes, which do not compress: a bomb is refused early.
    try:
        records = limits.decompress(trailer, limits.max_plain(len(trailer)))
    except limits.TooLarge as exc:
        raise PackError(f"trailer {exc}") from None
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
        # zstd allocates what the header claims: a damaged one could ask for any amount.
        claimed = zstandard.get_frame_parameters(frame).content_size
        if MAX_FRAME < claimed != zstandard.CONTENTSIZE_UNKNOWN:
            raise PackError(f"frame header claims {claimed} bytes, more than any frame holds")
        return (decompressor or zstandard.ZstdDecompressor()).decompress(frame)
    except zstandard.ZstdError as exc:
        raise PackError(f"frame does not decompress: {exc}") from None


def dictionary_length(head: bytes | memoryview) -> int | None:
    """How many bytes the dictionary block at the start of a pack takes (``head`` its first
    bytes), or None when the pack has no dictionary."""
    if len(head) < HEADER.size or bytes(head[: len(DICT_MAGIC)]) != DICT_MAGIC:
        return None
    _, length = HEADER.unpack(bytes(head[: HEADER.size]))
    return HEADER.size + length


def dictionary_in(block: bytes | memoryview) -> bytes:
    """The dictionary held by a pack's dictionary block (its first bytes, at least the
    whole block)."""
    end = dictionary_length(block)
    if end is None:
        raise PackError("frames use a dictionary but the pack holds none")
    if len(block) < end:
        raise PackError("dictionary is truncated")
    return decompress_frame(block[HEADER.size : end])


def frame_dictionary_id(frame: bytes | memoryview) -> int:
    try:
        return int(zstandard.get_frame_parameters(frame).dict_id)
    except zstandard.ZstdError as exc:
        raise PackError(f"frame does not decompress: {exc}") from None


# A decoded frame: bytes, or a view of a batch decoded in one call.
Plain = bytes | memoryview


class FrameDecoder:
    """Decodes frames of any pack, loading each dictionary the frames name once.

    ``load(pack)`` returns the dictionary a pack holds (read from its first bytes). A
    frame names its dictionary by id; the first pack met with an id supplies it to all. Ids
    are derived from the dictionary's content, so two dictionaries with one id are very
    unlikely, but a frame that fails with the shared one is tried once more with its own
    pack's dictionary before it is called damaged. Safe to share between threads: each
    thread keeps its own decompressors (a zstd context serves one thread at a time)."""

    def __init__(self, load: Callable[[str], bytes]) -> None:
        self._load = load
        self._lock = threading.Lock()
        self._shared: dict[int, zstandard.ZstdCompressionDict] = {}
        self._read: dict[str, zstandard.ZstdCompressionDict | PackError] = {}  # by pack
        self._apart: set[str] = set()  # packs whose own dictionary differs from the shared one
        self._local = threading.local()

    def decompress(self, pack: str, frame: bytes | memoryview) -> bytes:
        number = frame_dictionary_id(frame)
        if number and pack in self._apart:
            own = self._from_pack(pack, number)
            return decompress_frame(frame, zstandard.ZstdDecompressor(dict_data=own))
        shared = self._dictionary(pack, number)
        try:
            return decompress_frame(frame, self._decompressor(number, shared))
        except PackError:
            if shared is None:
                raise
            own = self._from_pack(pack, number)
            if own.as_bytes() == shared.as_bytes():
                raise
            self._apart.add(pack)
            return decompress_frame(frame, zstandard.ZstdDecompressor(dict_data=own))

    def decompress_many(
        self, pack: str, data: bytes | memoryview, frames: list[tuple[int, int]]
    ) -> Iterator[Plain | PackError]:
        """The frames at ``(offset, length)`` in ``data`` (read from ``pack``), decoded, in
        order; a frame that does not decode is its error. Decoded a batch (about
        ``BATCH_BYTES``) at a time as the caller goes: memory holds one batch, whatever the
        compression ratio.

        Frames of one dictionary that state their size go through zstd a batch per call,
        which releases the GIL once: with a call per 4 KiB frame, the calls would cost about
        as much as the decoding. Anything else, or a batch that fails, is decoded frame by
        frame, which names the frame that fails and tries a pack's own dictionary."""
        view = memoryview(data)
        try:
            params = [zstandard.get_frame_parameters(view[o : o + n]) for o, n in frames]
        except zstandard.ZstdError:
            params = []
        numbers = {p.dict_id for p in params}
        sizes = [p.content_size for p in params]
        # Sizes come from frame headers: a damaged one could ask for any amount of memory.
        sane = min(sizes, default=0) > 0 and max(sizes, default=0) <= MAX_FRAME
        batched = len(numbers) == 1 and sane and _BATCH and pack not in self._apart
        number = next(iter(numbers)) if batched else 0
        for first, last in _batches(sizes) if batched else [(0, len(frames))]:
            batch = (
                self._batch(pack, number, view, frames[first:last], sizes[first:last])
                if batched
                else None
            )
            if batch is not None:
                # Segments hold the batch's buffer; the stubs do not say they export it.
                yield from (memoryview(batch[n]) for n in range(len(batch)))  # type: ignore[arg-type]
                continue
            for offset, length in frames[first:last]:
                try:
                    yield self.decompress(pack, view[offset : offset + length])
                except PackError as exc:
                    yield exc

    def decompress_sized(
        self, pack: str, data: memoryview, frames: list[tuple[int, int]], sizes: list[int]
    ) -> Iterator[zstandard.BufferWithSegmentsCollection | None]:
        """Frames at ``(offset, length)`` in ``data`` whose decoded sizes the caller knows (a
        frame per chunk: the chunk's length), decoded a batch (about ``BATCH_BYTES``) per
        call as the caller goes, each batch's frames in order; None for a batch that failed
        as a whole (a damaged frame, a dictionary other than the first frame's, a size that
        is not the frame's), which the caller decodes again with :meth:`decompress_many` to
        learn which frame. Only the first frame's header is read in Python: reading every
        frame's would be a Python step per page. The sizes come from the caller and must be
        above 0 (zstd reads a 0 from the frame's header instead), so no header can make a
        batch ask for more memory than they add up to."""
        if not frames or not _BATCH or pack in self._apart:
            yield None
            return
        offset, length = frames[0]
        try:
            number = zstandard.get_frame_parameters(data[offset : offset + length]).dict_id
        except zstandard.ZstdError:
            number = 0
        if number == 0:
            # A damaged header, or frames of several chunks made without a dictionary (older
            # stores, small puts): sizes of one chunk would fail every batch, after decoding.
            yield None
            return
        for first, last in _batches(sizes):
            yield self._batch(pack, number, data, frames[first:last], sizes[first:last])

    def _batch(
        self,
        pack: str,
        number: int,
        view: memoryview,
        frames: list[tuple[int, int]],
        sizes: list[int],
    ) -> zstandard.BufferWithSegmentsCollection | None:
        """Frames of dictionary ``number`` decoded in one call, or None when any fails."""
        try:
            decompressor = self._decompressor(number, self._dictionary(pack, number))
            return decompressor.multi_decompress_to_buffer(
                zstandard.BufferWithSegments(
                    view, struct.pack(f"<{2 * len(frames)}Q", *_flat(frames))
                ),
                decompressed_sizes=struct.pack(f"<{len(sizes)}Q", *sizes),
            )
        except (zstandard.ZstdError, PackError, ValueError):
            return None  # ValueError: a segment beyond the data (damage); told apart after

    def _dictionary(self, pack: str, number: int) -> zstandard.ZstdCompressionDict | None:
        if number == 0:
            return None
        shared = self._shared.get(number)
        if shared is None:
            shared = self._from_pack(pack, number)
            with self._lock:
                shared = self._shared.setdefault(number, shared)
        return shared

    def _from_pack(self, pack: str, number: int) -> zstandard.ZstdCompressionDict:
        """The dictionary ``pack`` holds, read once: its frames come by the thousand, and a
        pack whose dictionary is damaged must not be read again for each of them."""
        found = self._read.get(pack)
        if found is None:
            try:
                found = zstandard.ZstdCompressionDict(self._load(pack))
                found.dict_id()  # loads it: a damaged dictionary fails here
            except FileNotFoundError:
                found = PackError("pack is gone: its dictionary cannot be read")
            except PackError as exc:
                found = exc
            except zstandard.ZstdError as exc:
                found = PackError(f"dictionary does not load: {exc}")
            self._read[pack] = found
        if isinstance(found, PackError):
            raise found
        if found.dict_id() != number:
            raise PackError(f"frame names dictionary {number}, the pack holds {found.dict_id()}")
        return found

    def _decompressor(
        self, number: int, dictionary: zstandard.ZstdCompressionDict | None
    ) -> zstandard.ZstdDecompressor:
        held: dict[int, zstandard.ZstdDecompressor] | None = getattr(self._local, "held", None)
        if held is None:
            held = self._local.held = {}
        found = held.get(number)
        if found is None:
            found = held[number] = zstandard.ZstdDecompressor(dict_data=dictionary)
        return found


# The batch calls are in python-zstandard's C backend only (not its cffi one).
_BATCH = hasattr(zstandard.ZstdDecompressor, "multi_decompress_to_buffer") and hasattr(
    zstandard.ZstdCompressor, "multi_compress_to_buffer"
)


BATCH_BYTES = 1 << 20  # decoded bytes per call: below malloc's mmap threshold (cli.main)


def _batches(sizes: list[int]) -> Iterator[tuple[int, int]]:
    """Index ranges of ``sizes`` summing to about ``BATCH_BYTES`` each. A batch's output is
    one allocation: at 4 MiB and more it would come from mmap and go back on free, and a
    restore would page-fault every decoded byte afresh."""
    first, total = 0, 0
    for n, size in enumerate(sizes):
        total += size
        if total >= BATCH_BYTES:
            yield first, n + 1
            first, total = n + 1, 0
    if first < len(sizes):
        yield first, len(sizes)


def _flat(frames: list[tuple[int, int]]) -> list[int]:
    return [n for frame in frames for n in frame]


def in_memory(data: bytes | memoryview) -> FrameDecoder:
    """A decoder for the frames of one pack held whole in memory."""
    return FrameDecoder(lambda _: dictionary_in(data))


def chunk_matches(key: bytes, data: bytes | memoryview) -> bool:
    return hashlib.sha256(data).digest() == key
