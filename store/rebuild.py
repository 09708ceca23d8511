"""Rebuild an artifact into a file frame by frame: the restore path.

Reading in artifact order decodes a frame once per window that needs one of its chunks;
after days of scattered page changes every window needs frames of every day's packs. Here
every frame the artifact needs is read and decompressed exactly once, and its chunks are
written where they belong with ``os.pwrite``. Chunks that sit next to each other both in the
frame and in the artifact (most of an initial snapshot's pages) go out in one write.

Work is split into spans: neighbouring frames of one pack, read with one request of at most
``SPAN_BYTES``. Worker threads each read, decompress and write a span (zstd, file reads and
writes release the GIL), so on a local store the decompression runs on every core and on S3
the requests overlap. Memory: the artifact's chunk list and one span per worker.

Checks. zstd verifies each frame's content checksum, so damaged pack bytes fail as
``checksum_error`` naming the pack and a chunk of the frame. A restore does not hash chunks
one by one: the caller hashes the rebuilt file against the signed manifest, which covers
every byte once. Only when that digest differs does :meth:`Rebuild.diagnose` hash chunk by
chunk to name the first chunk (and its pack) that is not what its name says.

:class:`WindowRebuild` is the same work into memory, for reads that stream an artifact in
order (verify, export): one chunk list at a time. A caller that hashes the whole artifact
against the manifest may leave chunks unchecked and read again, checking them, only to name
the damaged one when that digest differs (as a restore does).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

import zstandard

from snapshot.errors import VerificationError
from store import layout, packs
from store.reader import ChunkSource

SPAN_BYTES = 4 << 20  # compressed bytes a worker reads in one request
GAP_BYTES = 256 << 10  # unneeded bytes between two frames worth reading over
LOCAL_WORKERS = max(2, min(4, os.cpu_count() or 2))
REMOTE_WORKERS = 8  # requests in flight against an object store
HASH_BLOCK = 1 << 20
PART_CHUNKS = 1 << 16  # chunks planned and decoded together (see Rebuild)

# (position in the artifact, offset in the frame, length, index of the run's first chunk)
Run = tuple[int, int, int, int]
# (frame offset in the pack, frame length, runs)
FrameRuns = tuple[int, int, list[Run]]


@dataclass(frozen=True)
class Span:
    pack: str
    start: int
    end: int
    frames: list[FrameRuns]


class Assembly:
    """Chunks ``keys``, in order, put together by position from the frames that hold them:
    the work shared by :class:`FilePart` (a part of a :class:`Rebuild`, into a file) and
    :class:`WindowRebuild` (into memory), which say where the bytes go."""

    check_chunks = False  # each chunk hashed against its name as it is written

    def __init__(self, source: ChunkSource, keys: list[bytes]) -> None:
        self.source = source
        self.keys = keys
        self.locations: dict[bytes, tuple[str, int, int, int, int]] = {}
        self.size = 0

    def _sink(self) -> Sink:
        """Where the workers write ``self.size`` bytes by position."""
        raise NotImplementedError

    def run(self, workers: int | None = None) -> int:
        """Write every chunk; return the artifact's size. Raises ``VerificationError``
        (``missing_data`` / ``checksum_error``) naming the snapshot, chunk and pack.

        A damaged or missing pack does not stop the other spans: everything readable is
        written before the first failure is raised, so a forced restore salvages all it can.
        """
        return self.execute(self.plan(), workers)

    def execute(self, spans: list[Span], workers: int | None = None) -> int:
        """The second half of :meth:`run`: it reads packs but not the index, so it may run
        on another thread than the one that planned."""
        if workers is None:
            workers = LOCAL_WORKERS if self.source.backend.local else REMOTE_WORKERS
        failures: list[VerificationError] = []
        sink = self._sink()
        stop = threading.Event()

        def write(span: Span) -> None:
            if stop.is_set():
                return
            try:
                self._write_span(span, sink, stop)
            except VerificationError as exc:
                failures.append(exc)

        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rebuild")
        try:
            for _ in pool.map(write, spans):
                pass
        except BaseException:
            stop.set()
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            sink.close()
        if failures:
            # Chosen by text, not by finishing order: the same damage gives the same error.
            raise min(failures, key=lambda exc: exc.detail)
        return self.size

    def plan(self) -> list[Span]:
        """Locate every chunk and group them by frame, and frames by pack."""
        source = self.source
        self.locations = located = source.index.locate_many(self.keys)
        frames: dict[tuple[str, int, int], list[Run]] = {}
        position = 0
        for n, key in enumerate(self.keys):
            loc = located.get(key)
            if loc is None:
                raise source._missing(f"chunk {key.hex()} is in no index of {source.backend.url}")
            pack, frame_offset, frame_length, offset, length = loc
            runs = frames.get((pack, frame_offset, frame_length))
            if runs is None:
                frames[(pack, frame_offset, frame_length)] = [(position, offset, length, n)]
            else:
                last_position, last_offset, last_length, first = runs[-1]
                if last_position + last_length == position and last_offset + last_length == offset:
                    runs[-1] = (last_position, last_offset, last_length + length, first)
                else:
                    runs.append((position, offset, length, n))
            position += length
        self.size = position
        return _spans(frames)

    def _write_span(self, span: Span, sink: Sink, stop: threading.Event) -> None:
        source = self.source
        first_key = self.keys[span.frames[0][2][0][3]].hex()
        try:
            data = source.backend.read_range_view(layout.pack_path(span.pack), span.start, span.end)
        except FileNotFoundError:
            raise source._missing(
                f"pack {span.pack} holding chunk {first_key} is missing from {source.backend.url}"
            ) from None
        view = memoryview(data)
        damage: VerificationError | None = None
        # Each frame on its own: a damaged one is reported, the span's other frames written.
        for frame_offset, frame_length, runs in span.frames:
            if stop.is_set():
                return
            key = self.keys[runs[0][3]].hex()
            start = frame_offset - span.start
            if start + frame_length > len(view):
                damage = damage or source._damaged(
                    f"chunk {key} in pack {span.pack}: pack is truncated"
                )
                continue
            try:
                plain = memoryview(
                    packs.decompress_frame(view[start : start + frame_length], _decompressor())
                )
            except packs.PackError as exc:
                damage = damage or source._damaged(
                    f"chunk {key} in pack {span.pack} is corrupt: {exc}"
                )
                continue
            for position, offset, length, first in runs:
                if offset + length > len(plain):
                    damage = damage or source._damaged(
                        f"chunk {self.keys[first].hex()} in pack {span.pack} lies beyond "
                        "its frame's end"
                    )
                    continue
                if self.check_chunks:
                    damage = damage or self._check_run(span.pack, plain, offset, length, first)
                sink.put(plain[offset : offset + length], position)
        if damage is not None:
            raise damage

    def _check_run(
        self, pack: str, plain: memoryview, offset: int, length: int, first: int
    ) -> VerificationError | None:
        """The first chunk of a run whose bytes do not hash to its name, as the error."""
        keys, locations = self.keys, self.locations
        end = offset + length
        n = first
        while offset < end:
            key = keys[n]
            size = locations[key][4]
            if hashlib.sha256(plain[offset : offset + size]).digest() != key:
                return self.source._damaged(
                    f"chunk {key.hex()} in pack {pack} does not match its hash"
                )
            offset += size
            n += 1
        return None


class Rebuild:
    """One artifact, rebuilt into the file open at ``fd`` from its chunk lists
    (``windows``: the chunk names in order, a list at a time).

    Planned and decoded a part at a time, at most ``PART_CHUNKS`` chunks (256 MiB of 4 KiB
    pages): a plan holds a few hundred bytes per chunk, so planning a whole artifact at once
    made a restore's peak RSS grow with the database (105 MiB at 256 MiB, 186 MiB at 1 GiB).
    A frame that holds chunks of two parts is decoded once for each.
    """

    def __init__(
        self, source: ChunkSource, windows: Iterable[list[bytes]], fd: int, size: int
    ) -> None:
        self.source = source
        self.windows = windows
        self.fd = fd
        self.expected = size  # what the document says, for preallocation
        self.size = 0

    def run(self, workers: int | None = None) -> int:
        """Write every chunk; return the artifact's size. Raises ``VerificationError``
        (``missing_data`` / ``checksum_error``) naming the snapshot, chunk and pack.

        A damaged or missing pack does not stop the other parts: everything readable is
        written before the first failure is raised, so a forced restore salvages all it can.
        """
        with contextlib.suppress(OSError):
            # Blocks reserved up front: scattered page writes into a preallocated file cost
            # a quarter less than into a growing one (and a full disk fails here, at once).
            # A filesystem without fallocate just grows the file as before.
            os.posix_fallocate(self.fd, 0, self.expected)
        failures: list[VerificationError] = []
        position = 0
        for keys in _parts(self.windows):
            part = FilePart(self.source, keys, self.fd, position)
            try:
                part.run(workers)
            except VerificationError as exc:
                failures.append(exc)  # damaged or missing data: other parts still written
            position += part.size
        self.size = position
        if failures:
            raise min(failures, key=lambda exc: exc.detail)
        return self.size

    def sha256(self) -> str:
        """The hex SHA-256 of the rebuilt artifact, read back from the file."""
        digest = hashlib.sha256()
        position = 0
        while position < self.size:
            block = os.pread(self.fd, min(HASH_BLOCK, self.size - position), position)
            if not block:
                break
            digest.update(block)
            position += len(block)
        return digest.hexdigest()

    def diagnose(self) -> VerificationError | None:
        """The first chunk whose bytes in the file do not hash to its name, as the error to
        raise; None when every chunk matches (then the chunk list itself is wrong)."""
        position = 0
        for keys in _parts(self.windows):
            located = self.source.index.locate_many(keys)
            for key in keys:
                pack, _, _, _, length = located[key]
                chunk = os.pread(self.fd, length, position)
                if not packs.chunk_matches(key, chunk):
                    return self.source._damaged(
                        f"chunk {key.hex()} in pack {pack} does not match its hash"
                    )
                position += length
        return None


class FilePart(Assembly):
    """Chunks ``keys`` written into the file at ``fd`` from ``base`` on."""

    def __init__(self, source: ChunkSource, keys: list[bytes], fd: int, base: int) -> None:
        super().__init__(source, keys)
        self.fd = fd
        self.base = base

    def _sink(self) -> Sink:
        return FileSink(self.fd, self.base)


def _parts(windows: Iterable[list[bytes]]) -> Iterator[list[bytes]]:
    """Chunk lists joined into parts of at most ``PART_CHUNKS`` chunks (one list may be
    longer: it stays whole)."""
    part: list[bytes] = []
    for keys in windows:
        if part and len(part) + len(keys) > PART_CHUNKS:
            yield part
            part = []
        part.extend(keys)
    if part:
        yield part


class WindowRebuild(Assembly):
    """A run of an artifact's chunks (one chunk list) rebuilt into ``buffer``: a streaming
    read decodes every frame of the window once, on every worker, instead of frame by frame
    on the caller's thread. With ``check_chunks`` each chunk is hashed against its name by
    the worker that decoded it."""

    def __init__(self, source: ChunkSource, keys: list[bytes], check_chunks: bool) -> None:
        super().__init__(source, keys)
        self.check_chunks = check_chunks
        self.buffer = bytearray()

    def _sink(self) -> Sink:
        self.buffer = bytearray(self.size)
        return BufferSink(self.buffer)


class Sink(Protocol):
    def put(self, data: memoryview, position: int) -> None: ...

    def close(self) -> None: ...


class FileSink:
    """Writes into the file open at ``fd``, positions counted from ``base``, through a
    descriptor of its own: it is closed only once every worker has stopped, so should an
    interrupt leave some running, they can never write into a file that reused the caller's
    descriptor number."""

    def __init__(self, fd: int, base: int) -> None:
        self.fd = os.dup(fd)
        self.base = base

    def put(self, data: memoryview, position: int) -> None:
        position += self.base
        written = os.pwrite(self.fd, data, position)
        if written != len(data):
            raise OSError(f"short write at {position} ({written} of {len(data)} bytes)")

    def close(self) -> None:
        os.close(self.fd)


class BufferSink:
    def __init__(self, buffer: bytearray) -> None:
        self.view = memoryview(buffer)

    def put(self, data: memoryview, position: int) -> None:
        self.view[position : position + len(data)] = data

    def close(self) -> None:
        self.view.release()


_local = threading.local()


def _decompressor() -> zstandard.ZstdDecompressor:
    """This thread's decompressor: one per worker, not one per frame (nor shared: a
    decompression context serves one thread at a time)."""
    found: zstandard.ZstdDecompressor | None = getattr(_local, "decompressor", None)
    if found is None:
        found = _local.decompressor = zstandard.ZstdDecompressor()
    return found


def _spans(frames: dict[tuple[str, int, int], list[Run]]) -> list[Span]:
    """Neighbouring frames of a pack grouped into reads of at most ``SPAN_BYTES``."""
    spans: list[Span] = []
    current: Span | None = None
    for pack, frame_offset, frame_length in sorted(frames):
        runs = frames[(pack, frame_offset, frame_length)]
        end = frame_offset + frame_length
        if (
            current is not None
            and current.pack == pack
            and frame_offset - current.end <= GAP_BYTES
            and end - current.start <= SPAN_BYTES
        ):
            current.frames.append((frame_offset, frame_length, runs))
            # max: an index entry may name a frame inside an earlier one (a damaged index).
            current = Span(pack, current.start, max(current.end, end), current.frames)
            spans[-1] = current
        else:
            current = Span(pack, frame_offset, end, [(frame_offset, frame_length, runs)])
            spans.append(current)
    return spans
