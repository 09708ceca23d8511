"""Fetch chunks by hash: group them by frame, read each frame once, check every chunk.

Used for single chunks and chunk lists (``fetch``, ``windows``); whole artifacts are read by
``store.rebuild``. The frames a batch needs are read in concurrent batches of at most
``BATCH_BYTES`` compressed bytes.

Failures are verification outcomes naming the snapshot, chunk and pack: ``missing_data``
when the index or the store lacks something, ``checksum_error`` when bytes are damaged.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

from snapshot.errors import StoreError, VerificationError
from store import crypto, layout, packs
from store.backend import Backend
from store.encryption import Encryption
from store.index import Location, Locator

BATCH_BYTES = 32 << 20

Frame = tuple[str, int, int]


class ChunkSource:
    def __init__(
        self,
        backend: Backend,
        index: Locator,
        snapshot_id: str,
        encryption: Encryption | None = None,
    ) -> None:
        self.backend = backend
        self.index = index
        self.snapshot_id = snapshot_id
        # An encrypted store's frames are opened before they are decoded (None: plaintext).
        self.encryption = encryption if encryption is not None and encryption.encrypted else None
        self.frames = packs.FrameDecoder(partial(pack_dictionary, backend, self.encryption))
        # Whose plans a whole read writes to the index cache as it goes (see Store.read_artifact).
        self.staging: str | None = None

    def matches(self, key: bytes, chunk: bytes | memoryview) -> bool:
        """Whether ``chunk`` is the chunk named ``key`` (``Encryption.matches``)."""
        if self.encryption is not None:
            return self.encryption.matches(key, chunk)
        return packs.chunk_matches(key, chunk)

    def _missing(self, detail: str) -> VerificationError:
        return VerificationError("missing_data", f"{self.snapshot_id}: {detail}", self.snapshot_id)

    def _damaged(self, detail: str) -> VerificationError:
        return VerificationError(
            "checksum_error", f"{self.snapshot_id}: {detail}", self.snapshot_id
        )

    def _locate(self, key: bytes) -> Location:
        location = self.index.lookup(key)
        if location is None:
            raise self._missing(f"chunk {key.hex()} is in no index of {self.backend.url}")
        return location

    def fetch(self, key: bytes) -> bytes:
        return next(iter(self._window([(key, self._locate(key))])))

    def fetch_list(self, key: bytes) -> bytes:
        blob = self.fetch(key)
        if len(blob) % 32:
            raise self._damaged(f"chunk list {key.hex()} has a length not a multiple of 32")
        return blob

    def windows(self, entry: dict[str, Any]) -> Iterator[list[bytes]]:
        return self.index.windows(entry, self.fetch_list)

    def _window(self, window: list[tuple[bytes, Location]]) -> list[bytes]:
        needed: dict[Frame, list[int]] = {}
        for i, (_, loc) in enumerate(window):
            needed.setdefault((loc.pack, loc.frame_offset, loc.frame_length), []).append(i)
        out: list[bytes] = [b""] * len(window)
        batch: list[Frame] = []
        batch_size = 0
        for frame in needed:
            batch.append(frame)
            batch_size += frame[2]
            if batch_size >= BATCH_BYTES:
                self._fill(batch, needed, window, out)
                batch, batch_size = [], 0
        self._fill(batch, needed, window, out)
        return out

    def _fill(
        self,
        batch: list[Frame],
        needed: dict[Frame, list[int]],
        window: list[tuple[bytes, Location]],
        out: list[bytes],
    ) -> None:
        if not batch:
            return
        ranges = [(layout.pack_path(p), off, off + length) for p, off, length in batch]
        try:
            datas = self.backend.read_ranges(ranges)
        except FileNotFoundError:
            # Find which pack is gone, to name it.
            datas = []
            for frame, rng in zip(batch, ranges, strict=True):
                try:
                    datas.append(self.backend.read_range(*rng))
                except FileNotFoundError:
                    key = window[needed[frame][0]][0]
                    raise self._missing(
                        f"pack {frame[0]} holding chunk {key.hex()} is missing "
                        f"from {self.backend.url}"
                    ) from None
        if len(batch) == 1:
            # One frame (a page a query reads, a chunk list): a pool would cost more than it.
            failure = self._decode(batch[0], datas[0], needed, window, out)
            if failure is not None:
                raise failure
            return
        # zstd and SHA-256 release the GIL: frames are decoded and checked two at a time.
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="unpack") as pool:
            failures = list(
                pool.map(
                    lambda item: self._decode(item[0], item[1], needed, window, out),
                    zip(batch, datas, strict=True),
                )
            )
        for failure in failures:
            if failure is not None:
                raise failure

    def _decode(
        self,
        frame: Frame,
        data: bytes,
        needed: dict[Frame, list[int]],
        window: list[tuple[bytes, Location]],
        out: list[bytes],
    ) -> VerificationError | None:
        pack = frame[0]
        first = window[needed[frame][0]][0]
        first_key = first.hex()
        if len(data) != frame[2]:
            return self._damaged(f"chunk {first_key} in pack {pack}: pack is truncated")
        try:
            if self.encryption is not None:
                data = self.encryption.open_frame(pack, frame[1], data, first)
            plain = self.frames.decompress(pack, data)
        except (packs.PackError, crypto.OpenError) as exc:
            return self._damaged(f"chunk {first_key} in pack {pack} is corrupt: {exc}")
        for i in needed[frame]:
            key, loc = window[i]
            chunk = plain[loc.offset : loc.offset + loc.length]
            if not self.matches(key, chunk):
                return self._damaged(f"chunk {key.hex()} in pack {pack} does not match its hash")
            out[i] = chunk
        return None


def pack_dictionary(backend: Backend, encryption: Encryption | None, pack: str) -> bytes:
    """The dictionary pack ``pack`` holds: one read of its first bytes, two for a large one."""
    path = layout.pack_path(pack)
    head = backend.read_range(path, 0, packs.HEAD_READ)
    end = packs.dictionary_length(head)
    if end is not None and end > len(head):
        head += backend.read_range(path, len(head), end)
    if encryption is not None and end is not None:
        head = opened_dictionary_block(encryption, pack, head[:end])
    return packs.dictionary_in(head)


def opened_dictionary_block(encryption: Encryption, pack: str, block: bytes) -> bytes:
    """An encrypted pack's dictionary block with its frame opened, as a plaintext pack's."""
    try:
        plain = encryption.open_dictionary(pack, packs.HEADER.size, block[packs.HEADER.size :])
    except crypto.OpenError as exc:
        raise packs.PackError(f"dictionary: {exc}") from None
    return packs.HEADER.pack(packs.DICT_MAGIC, len(plain)) + plain


def fetch_or_store_error(source: ChunkSource, key: bytes) -> bytes:
    """A chunk list for maintenance work, where damage is a StoreError rather than a verdict."""
    try:
        return source.fetch_list(key)
    except VerificationError as exc:
        raise StoreError(exc.detail) from None
