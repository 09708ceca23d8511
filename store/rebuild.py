"""Rebuild an artifact from its frames, a window (one chunk list) at a time, in order.

Every read of a whole artifact (restore, verify, export) goes through here. A window's
chunks are located, grouped by frame and frames by pack; worker threads each read a span
(neighbouring frames of one pack, one request of at most ``SPAN_BYTES``, or
``LOCAL_SPAN_BYTES`` on a local store), decode its frames a batch at a time (one call into
zstd per batch, see ``packs.FrameDecoder.decompress_many``; zstd, file reads and network
requests release the GIL, so decoding runs on every core and on S3 the requests overlap) and
copy each chunk to its place in the window's buffer. Chunks that sit next to each other
both in a frame and in the artifact are copied as one run.

Windows overlap. The workers take a window's spans from one queue, and the next window's
spans are queued before this one's are done, so no worker waits for the other to finish a
window's last span (with a window at a time, that wait and the wait for the next plan
would idle the workers at every window's end). A planner thread of its own keeps up to
``WINDOWS_QUEUED`` windows planned and queued, counting the one the caller is writing.

Frames carried over. In a store of frames of several pages (made before dictionaries:
``store.packs``), a frame often holds pages of two neighbouring windows; decoding it for
each window would decode such frames twice. Each window is planned before the one before
it starts, which then keeps the decoded frames both need (``keep``) and hands them on
(``left``); the next window starts only once it is done. With a frame per page there is next
to nothing to carry, and windows overlap.

Checks. zstd verifies each frame's content checksum, so damaged pack bytes fail as
``checksum_error`` naming the pack and a chunk of the frame. Chunks are not hashed one by one
unless asked (``check_chunks``): a caller that hashes the whole artifact against the signed
manifest covers every byte once, and reads again with the checks only when that digest
differs, to name the damaged chunk.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import queue
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

from snapshot.errors import VerificationError
from store import crypto, layout, packs
from store.index import Placed
from store.reader import ChunkSource

SPAN_BYTES = 4 << 20  # compressed bytes a worker reads in one request
# A local pack is mapped, so a request costs nothing: smaller spans share a window's work
# out evenly (a large span of a first snapshot's pack can hold most of a window's pages,
# and the other worker waits).
LOCAL_SPAN_BYTES = 1 << 20
GAP_BYTES = 256 << 10  # unneeded bytes between two frames worth reading over
LOCAL_WORKERS = max(2, min(4, os.cpu_count() or 2))
REMOTE_WORKERS = 8  # requests in flight against an object store
WINDOWS_QUEUED = 3  # windows planned and not yet written by the caller (a buffer each)
# The most a window's buffer holds. A chunk list of 4,096 pages of 4 KiB is 16 MiB; a list
# of larger pages, or one a hostile store made of one big chunk named thousands of times, is
# rebuilt in parts of at most this size, so memory holds WINDOWS_QUEUED of them at most.
WINDOW_BYTES = 32 << 20


def workers_for(source: ChunkSource) -> ThreadPoolExecutor:
    """The pool that rebuilds an artifact's windows: threads (and the heap each keeps) live
    as long as the read, not a window."""
    workers = LOCAL_WORKERS if source.backend.local else REMOTE_WORKERS
    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rebuild")


# (position in the window, offset in the frame, length, index of the run's first chunk)
Run = tuple[int, int, int, int]
# (pack, frame offset in the pack, frame length)
FrameId = tuple[str, int, int]
# (frame offset in the pack, frame length, runs)
FrameRuns = tuple[int, int, list[Run]]


@dataclass
class Span:
    pack: str
    start: int
    end: int
    frames: list[FrameRuns]


@dataclass
class _SizedPlan:
    """A span of single-chunk frames as ``decompress_sized`` takes it (see _sized_plan)."""

    frames: list[tuple[int, int]]  # (offset in the span, length), opened
    sizes: list[int]  # each frame's chunk length
    positions: list[int]  # where each frame's chunk goes in the window
    again: list[tuple[int, int]]  # (frame number, position): chunks held more than once
    sealed: list[tuple[int, int, bytes]]  # encrypted: (offset in the pack, length, chunk id)


class WindowRebuild:
    """Chunks ``keys``, in order, rebuilt into ``buffer`` from the frames that hold them."""

    def __init__(
        self, source: ChunkSource, keys: list[bytes], check_chunks: bool, sized: bool = False
    ) -> None:
        self.source = source
        self.keys = keys
        self.check_chunks = check_chunks
        # Frames hold one chunk each (stores with a dictionary): a frame's decoded size is
        # its chunk's length, known from the plan (see _write_sized).
        self.sized = sized
        self.lengths: dict[bytes, int] = {}  # chunk -> its length, when checking chunks
        self.frames: set[FrameId] = set()
        self.size = 0
        self.buffer = bytearray()
        # Decoded frames the previous window handed on, and those this one hands on (its
        # ``keep``): each written by one worker per frame, read once this window is done.
        self.inherited: dict[FrameId, packs.Plain] = {}
        self.keep: set[FrameId] = set()
        self.left: dict[FrameId, packs.Plain] = {}
        # A damaged or missing pack, raised by nobody: the caller decides (see finish).
        self.failure: VerificationError | None = None
        self._futures: list[Future[None]] = []
        self._failures: list[VerificationError] = []
        self._stop = threading.Event()
        self._view: memoryview | None = None

    def plan(self, collect_frames: bool = False) -> list[Span]:
        """Locate every chunk and group them by frame, and frames by pack into spans (and
        with ``collect_frames`` keep the set of frames in ``frames``, for the carry). A
        chunk in no index raises ``missing_data`` here: nothing after it has a known
        position.

        SQLite hands the locations over in pack order, so frames and spans are built in one
        pass over them with no sorting or lookups in Python: every microsecond a chunk
        costs here the GIL takes from the workers (tens of thousands of chunks a restore)."""
        rows = self._located()
        size, starts = self._starts(rows)
        names = self.source.index.packs
        span_bytes = LOCAL_SPAN_BYTES if self.source.backend.local else SPAN_BYTES
        spans: list[Span] = []
        frames = self.frames
        span = Span("", -1, -1, [])
        frame_pack = frame_offset = frame_length = -1
        runs: list[Run] = []
        for n, pack, fo, fl, off, length in rows:
            if fo != frame_offset or pack != frame_pack or fl != frame_length:
                frame_pack, frame_offset, frame_length = pack, fo, fl
                runs = []
                name = names[pack]
                if collect_frames:
                    frames.add((name, fo, fl))
                if (
                    name == span.pack
                    and span.start <= fo
                    and fo - span.end <= GAP_BYTES
                    and fo + fl - span.start <= span_bytes
                ):
                    span.frames.append((fo, fl, runs))
                    # max: an index entry may name a frame inside an earlier one (damage).
                    span.end = max(span.end, fo + fl)
                else:
                    span = Span(name, fo, fo + fl, [(fo, fl, runs)])
                    spans.append(span)
            position = n * size if starts is None else starts[n]
            if runs:
                last_position, last_offset, last_length, first = runs[-1]
                if last_position + last_length == position and last_offset + last_length == off:
                    runs[-1] = (last_position, last_offset, last_length + length, first)
                    continue
            runs.append((position, off, length, n))
        return spans

    def _located(self) -> list[Placed]:
        source, keys = self.source, self.keys
        rows = source.index.locate_in_pack_order(
            b"".join(keys), use_kept=not self.check_chunks, staging=source.staging
        )
        if len(rows) < len(keys):
            found = {row[0] for row in rows}
            lost = next(key for n, key in enumerate(keys) if n not in found)
            raise source._missing(f"chunk {lost.hex()} is in no index of {source.backend.url}")
        if self.check_chunks:
            self.lengths = {keys[row[0]]: row[5] for row in rows}
        return rows

    def _starts(self, rows: list[Placed]) -> tuple[int, list[int] | None]:
        """Where the n-th chunk starts in the window, and the window's size: n times the
        chunk size when all chunks have one (pages; returned, with no list), else the
        running sum of lengths (the list)."""
        sizes = {row[5] for row in rows}
        if len(sizes) == 1:
            (size,) = sizes
            self.size = size * len(self.keys)
            return size, None
        lengths = [0] * len(self.keys)
        for row in rows:
            lengths[row[0]] = row[5]
        starts = list(itertools.accumulate(lengths, initial=0))
        self.size = starts[-1]
        return 0, starts

    def start(
        self,
        spans: list[Span],
        keep: set[FrameId],
        pool: ThreadPoolExecutor,
        buffer: bytearray | None = None,
        inherited: dict[FrameId, packs.Plain] | None = None,
    ) -> None:
        """Queue ``spans`` on ``pool`` to fill the buffer (``buffer`` when given and large
        enough: its bytes are reused); decoded frames in ``keep`` are kept in ``left`` for
        the next window, frames in ``inherited`` are not decoded again. :meth:`finish`
        waits for them.

        A damaged or missing pack does not stop the other spans: everything readable is
        copied, the lost chunks stay zero, and the failure is kept in ``self.failure`` (the
        first by text, so the same damage always names the same chunk) for the caller, who
        may still use the rest (a forced restore salvages all it can)."""
        if buffer is not None and len(buffer) >= self.size:
            self.buffer = buffer
            if len(buffer) > self.size:
                del buffer[self.size :]
        else:
            self.buffer = bytearray(self.size)
        self.keep = keep
        self.inherited = inherited or {}
        backend = self.source.backend
        for span in spans:
            # The spans of the windows queued ahead are read from disk while this one's decode.
            backend.prefetch(layout.pack_path(span.pack), span.start, span.end)
        view = self._view = memoryview(self.buffer)
        stop, failures = self._stop, self._failures

        def write(span: Span) -> None:
            if stop.is_set():
                return
            try:
                self._write_span(span, view, stop)
            except VerificationError as exc:
                failures.append(exc)

        self._futures = [pool.submit(write, span) for span in spans]

    def wait(self) -> None:
        """Wait for the window's spans (its ``left`` is complete then)."""
        wait(self._futures)

    def finish(self) -> WindowRebuild:
        """Wait for the window's spans; the window, its buffer filled."""
        try:
            for future in self._futures:
                future.result()
        except BaseException:
            self.abandon()
            raise
        self._release()
        if self._failures:
            self.failure = min(self._failures, key=lambda exc: exc.detail)
        return self

    def abandon(self) -> None:
        """Stop the spans not yet begun and wait for the rest: no worker may still write
        into the buffer once this returns."""
        self._stop.set()
        for future in self._futures:
            future.cancel()
        wait(self._futures)
        self._release()

    def _release(self) -> None:
        if self._view is not None:
            self._view.release()
            self._view = None

    def _write_span(self, span: Span, view: memoryview, stop: threading.Event) -> None:
        source, inherited, keep = self.source, self.inherited, self.keep
        plains: list[packs.Plain | None] = (
            [inherited.get((span.pack, fo, fl)) for fo, fl, _ in span.frames]
            if inherited
            else [None] * len(span.frames)
        )
        data: bytes | memoryview = b""
        if not inherited or any(plain is None for plain in plains):
            try:
                data = source.backend.read_range_view(
                    layout.pack_path(span.pack), span.start, span.end
                )
            except FileNotFoundError:
                for _, _, runs in span.frames:
                    _zero(view, runs)
                first_key = self.keys[span.frames[0][2][0][3]].hex()
                raise source._missing(
                    f"pack {span.pack} holding chunk {first_key} is missing from "
                    f"{source.backend.url}"
                ) from None
        packed = memoryview(data)
        opened: VerificationError | None = None
        if (
            source.encryption is not None
            and self.sized
            and not self.check_chunks
            and self._write_sealed_sized(span, packed, view)
        ):
            return
        if source.encryption is not None:
            span, packed, opened = self._open_span(span, packed, view)
            plains = [None] * len(span.frames)  # never carried: a frame holds one chunk
        # (Sized windows are never in carry mode: nothing inherited, nothing kept.)
        if self.sized and not self.check_chunks and self._write_sized(span, packed, view):
            if opened is not None:
                raise opened
            return
        # Frames not carried over, decoded together: a frame is often a single page, and a
        # call into zstd per 4 KiB page made the workers fight over the GIL.
        wanted = [
            (fo - span.start, fl)
            for (fo, fl, _), plain in zip(span.frames, plains, strict=True)
            if plain is None and fo - span.start + fl <= len(packed)
        ]
        decoded_frames = iter(source.frames.decompress_many(span.pack, packed, wanted))
        damage: VerificationError | None = opened
        start, size, check = span.start, len(packed), self.check_chunks
        if stop.is_set():
            return
        # Each frame on its own: a damaged one is reported, the span's other frames written.
        for (frame_offset, frame_length, runs), plain in zip(span.frames, plains, strict=True):
            if plain is None:
                if frame_offset - start + frame_length > size:
                    _zero(view, runs)
                    damage = damage or source._damaged(
                        f"chunk {self.keys[runs[0][3]].hex()} in pack {span.pack}: "
                        "pack is truncated"
                    )
                    continue
                got = next(decoded_frames)
                if isinstance(got, packs.PackError):
                    _zero(view, runs)
                    damage = damage or source._damaged(
                        f"chunk {self.keys[runs[0][3]].hex()} in pack {span.pack} is corrupt: {got}"
                    )
                    continue
                plain = got
            if keep and (span.pack, frame_offset, frame_length) in keep:
                self.left[(span.pack, frame_offset, frame_length)] = plain
            if len(runs) == 1 and not check:
                # The usual case, kept short: a frame per page, so once per page restored.
                position, offset, length, _ = runs[0]
                if offset + length <= len(plain):
                    view[position : position + length] = plain[offset : offset + length]
                    continue
            decoded = memoryview(plain)
            for position, offset, length, first in runs:
                if offset + length > len(decoded):
                    view[position : position + length] = bytes(length)
                    damage = damage or source._damaged(
                        f"chunk {self.keys[first].hex()} in pack {span.pack} lies beyond "
                        "its frame's end"
                    )
                    continue
                if check:
                    damage = damage or self._check_run(span.pack, decoded, offset, length, first)
                view[position : position + length] = decoded[offset : offset + length]
        if damage is not None:
            raise damage

    def _open_span(
        self, span: Span, packed: memoryview, view: memoryview
    ) -> tuple[Span, memoryview, VerificationError | None]:
        """An encrypted span's frames opened, each where it lay: the span as a plaintext
        store's would be, the frames that do not open left out (their chunks zeroed), and
        the first of those as the error. A frame holds one chunk, whose id opens it."""
        encryption = self.source.encryption
        assert encryption is not None
        start, keys = span.start, self.keys
        plain = bytearray(len(packed))
        out = memoryview(plain)
        frames: list[FrameRuns] = []
        damage: VerificationError | None = None
        try:
            cipher = encryption.cipher(span.pack)
        except crypto.OpenError as exc:
            for _, _, runs in span.frames:
                _zero(view, runs)
            key = keys[span.frames[0][2][0][3]]
            failed = self.source._damaged(f"chunk {key.hex()} in pack {span.pack}: {exc}")
            return Span(span.pack, span.start, span.end, []), out, failed
        tag = crypto.TAG
        for frame_offset, frame_length, runs in span.frames:
            at = frame_offset - start
            key = keys[runs[0][3]]
            if at + frame_length > len(packed) or frame_length <= tag:
                frames.append((frame_offset, frame_length, runs))  # damage: named later
                continue
            try:
                # Opened in place in the span's buffer: no copy per page.
                cipher.open_into(
                    frame_offset,
                    packed[at : at + frame_length],
                    key,
                    out[at : at + frame_length - tag],
                )
            except crypto.OpenError as exc:
                _zero(view, runs)
                damage = damage or self.source._damaged(
                    f"chunk {key.hex()} in pack {span.pack} is corrupt: {exc}"
                )
                continue
            frames.append((frame_offset, frame_length - tag, runs))
        return Span(span.pack, span.start, span.end, frames), out, damage

    def _write_sealed_sized(self, span: Span, packed: memoryview, view: memoryview) -> bool:
        """The usual encrypted span, opened and decoded with as little done per frame as
        may be: ``_open_span`` and ``_write_sized`` in one pass over its frames. False when
        anything is out of the ordinary (a frame that does not open, a run that is not a
        whole chunk, a truncated span, a batch that fails): the careful way then opens and
        decodes the span again, names what failed, and rewrites whatever this wrote."""
        encryption = self.source.encryption
        assert encryption is not None
        plan = self._sized_plan(span, len(packed), crypto.TAG)
        if plan is None:
            return False
        try:
            cipher = encryption.cipher(span.pack)
        except crypto.OpenError:
            return False
        plain = bytearray(len(packed))
        if cipher.open_frames_into(packed, span.start, plan.sealed, memoryview(plain)) is not None:
            return False
        return self._copy_sized(span.pack, memoryview(plain), view, plan)

    def _write_sized(self, span: Span, packed: memoryview, view: memoryview) -> bool:
        """The usual span, written with nothing per frame in Python but its copy: each frame
        holds exactly one run of chunks, from its start, so its decoded size is the run's
        length and zstd needs no frame header read for it (``decompress_sized``). False
        when that is not so, or a batch fails as a whole: the careful way then decodes the
        span again, names what failed, and rewrites whatever this wrote."""
        plan = self._sized_plan(span, len(packed), 0)
        return plan is not None and self._copy_sized(span.pack, packed, view, plan)

    def _sized_plan(self, span: Span, available: int, tag: int) -> _SizedPlan | None:
        """Where each frame of ``span`` lies once opened (its sealed length less ``tag``),
        its chunk's size and position, and for an encrypted span what opens it; None when
        a frame is not one whole chunk or the span is truncated (``available`` bytes)."""
        start, keys = span.start, self.keys
        if span.end - start > available:
            return None  # truncated: the careful way names the chunk
        plan = _SizedPlan([], [], [], [], [])
        frames, sizes, positions, again, sealed = (
            plan.frames,
            plan.sizes,
            plan.positions,
            plan.again,
            plan.sealed,
        )
        for frame_offset, frame_length, runs in span.frames:
            position, offset, size, first = runs[0]
            # A size of 0 would have zstd trust the frame's header instead.
            if offset or not 0 < size <= packs.MAX_FRAME or frame_length <= tag:
                return None
            for other, offset, length, _ in runs[1:]:
                if offset or length != size:
                    return None
                again.append((len(frames), other))
            if tag:
                sealed.append((frame_offset, frame_length, keys[first]))
            frames.append((frame_offset - start, frame_length - tag))
            sizes.append(size)
            positions.append(position)
        return plan

    def _copy_sized(self, pack: str, data: memoryview, view: memoryview, plan: _SizedPlan) -> bool:
        """The plan's frames in ``data`` decoded a batch at a time, each to its chunk's
        position in the window, then the chunks held at more than one position copied to
        the others. False when a batch fails."""
        positions, sizes = plan.positions, plan.sizes
        n = 0
        for batch in self.source.frames.decompress_sized(pack, data, plan.frames, sizes):
            if batch is None:
                return False
            for k in range(len(batch)):
                position = positions[n]
                # A segment exports its bytes; the stubs do not say so.
                view[position : position + sizes[n]] = batch[k]  # type: ignore[call-overload]
                n += 1
        for frame, position in plan.again:
            first = positions[frame]
            view[position : position + sizes[frame]] = view[first : first + sizes[frame]]
        return n == len(plan.frames)

    def _check_run(
        self, pack: str, plain: memoryview, offset: int, length: int, first: int
    ) -> VerificationError | None:
        """The first chunk of a run whose bytes do not hash to its name, as the error."""
        keys, lengths = self.keys, self.lengths
        if self.source.encryption is not None:
            return None  # each frame opened with its chunk's id (ChunkSource.matches)
        end = offset + length
        n = first
        while offset < end:
            key = keys[n]
            size = lengths[key]
            if hashlib.sha256(plain[offset : offset + size]).digest() != key:
                return self.source._damaged(
                    f"chunk {key.hex()} in pack {pack} does not match its hash"
                )
            offset += size
            n += 1
        return None


def rebuilt_in_order(
    source: ChunkSource,
    windows: Iterable[list[bytes]],
    check_chunks: bool,
    spare: list[bytearray],
    carry: bool = False,
    size: int | None = None,
) -> Iterator[WindowRebuild]:
    """The windows (chunk lists) rebuilt in memory, in order, each once its spans are done.

    A planner thread (the only one that uses the index) plans each window and queues its
    spans for the workers, up to ``WINDOWS_QUEUED`` windows ahead of the caller, whose
    writing no longer holds up the planning. The caller puts each buffer it is done with on
    ``spare`` for reuse before asking for the next window: a fresh 16 MiB buffer per window
    is 4,096 page faults.

    ``carry`` (frames of several chunks, see the module): each window is planned before the
    one before it starts, so that one knows which decoded frames to keep, and the next one
    waits for them.

    A chunk no index holds (raised by ``plan``) stops the read at its window, after the
    windows before it are handed over; so does a window that would take the artifact past
    ``size`` (the size its document declares), before its buffer is allocated."""
    with workers_for(source) as pool:
        planner = _Planner(source, check_chunks, spare, carry, pool, size)
        thread = threading.Thread(target=planner.run, args=(windows,), name="plan", daemon=True)
        thread.start()
        try:
            while (item := planner.ready.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                yield item.finish()
                planner.slots.release()
        finally:
            # Done, or stopped early (a failed write, a failed window): no worker may still
            # write into a buffer once the read is over.
            planner.stopping.set()
            planner.slots.release(WINDOWS_QUEUED)
            thread.join()
            while not planner.ready.empty():
                left = planner.ready.get()
                if isinstance(left, WindowRebuild):
                    left.abandon()


class _Planner:
    """Plans windows and queues their spans, on a thread of its own (see rebuilt_in_order).
    The reader takes them from ``ready`` in order and frees a slot once it wrote one."""

    def __init__(
        self,
        source: ChunkSource,
        check_chunks: bool,
        spare: list[bytearray],
        carry: bool,
        pool: ThreadPoolExecutor,
        size: int | None = None,
    ) -> None:
        self.source, self.check_chunks, self.carry = source, check_chunks, carry
        self.size = size
        self.planned = 0  # bytes of the windows planned so far
        self.spare, self.pool = spare, pool
        self.ready: queue.SimpleQueue[WindowRebuild | BaseException | None] = queue.SimpleQueue()
        self.slots = threading.Semaphore(WINDOWS_QUEUED)
        self.stopping = threading.Event()
        self.last: WindowRebuild | None = None

    def run(self, windows: Iterable[list[bytes]]) -> None:
        """Plan and queue every window, then put the end (None) or the failure on ``ready``:
        always one or the other, or the reader would wait for ever. A failure comes after
        the windows planned before it, so they are still written."""
        held: tuple[WindowRebuild, list[Span]] | None = None  # planned, not queued (carry)
        failure: BaseException | None = None
        try:
            for window, spans in self._windows(windows):
                if not self.carry:
                    if not self._start(window, spans, set()):
                        return
                    continue
                if held is not None:
                    previous, held = held, None
                    if not self._start(*previous, previous[0].frames & window.frames):
                        return
                held = (window, spans)
        except BaseException as exc:
            failure = exc
        try:
            if held is not None and not self._start(*held, set()):
                return
        except BaseException as exc:
            failure = failure or exc
        self.ready.put(failure)

    def _windows(
        self, windows: Iterable[list[bytes]]
    ) -> Iterator[tuple[WindowRebuild, list[Span]]]:
        """Each chunk list planned, in parts of at most ``WINDOW_BYTES`` (halved until they
        fit: only lists of large chunks are ever split), none past the declared size."""
        for keys in windows:
            parts = [keys]
            while parts:
                part = parts.pop()
                window = WindowRebuild(self.source, part, self.check_chunks, not self.carry)
                spans = window.plan(collect_frames=self.carry)
                if window.size > WINDOW_BYTES and len(part) > 1:
                    half = len(part) // 2
                    parts += [part[half:], part[:half]]
                    continue
                self.planned += window.size
                if self.size is not None and self.planned > self.size:
                    raise self.source._damaged(
                        f"its chunks make more than the {self.size} bytes its document declares"
                    )
                yield window, spans

    def _start(self, window: WindowRebuild, spans: list[Span], keep: set[FrameId]) -> bool:
        """Queue ``window``'s spans once a slot is free; False when the read is stopping."""
        self.slots.acquire()
        if self.stopping.is_set():
            return False
        inherited: dict[FrameId, packs.Plain] = {}
        if self.last is not None and self.last.keep:
            self.last.wait()
            inherited = self.last.left
        buffer = self.spare.pop() if self.spare else None
        window.start(spans, keep, self.pool, buffer, inherited)
        self.last = window
        self.ready.put(window)
        return True


def _zero(view: memoryview, runs: list[Run]) -> None:
    """Lost chunks read as zeros, not as what a reused buffer held before."""
    for position, _, length, _ in runs:
        view[position : position + length] = bytes(length)
