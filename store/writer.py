"""Put one snapshot's artifacts: chunk them, pack the new chunks, index them.

The caller (``Store.put_snapshot``) holds the shared lock and writes the document afterwards;
here packs are written as they fill, then at most one index object for everything this put
added. New chunks are reserved in the index at once, so a chunk repeated inside the put is
stored once, and placed (with their location) when their pack is written.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from store import chunker, documents, index, layout
from store.backend import Backend
from store.chunker import artifact_size, open_artifact
from store.config import StoreConfig
from store.encryption import Encryption, StoreKeys
from store.index import ChunkIndex
from store.packs import PackEntry, PackWriter
from store.reports import PutResult

PROGRESS_STEP = 1 << 20

Progress = Callable[[int, int], None]


class SnapshotWriter:
    def __init__(
        self,
        backend: Backend,
        chunk_index: ChunkIndex,
        config: StoreConfig,
        result: PutResult,
        progress: Progress | None,
        dictionary: Callable[[dict[str, Path | bytes]], bytes | None] | None = None,
        encryption: Encryption | None = None,
    ) -> None:
        self.backend = backend
        self.encryption = encryption or Encryption(backend, None, StoreKeys())
        # Asked for first: a writer without the writer key of an encrypted store stops here.
        self._chunk_id = self.encryption.chunk_id()
        self.index = chunk_index
        self.config = config
        self.result = result
        self.progress = progress
        self._first_new = len(chunk_index)
        # The dictionary for new chunks, given the artifacts (store.dictionary.for_put).
        self._dictionary = dictionary or (lambda _: None)
        self._packs: PackWriter | None = None
        self._done = 0
        self._total = 0
        self._reported = 0
        self.digests: dict[str, str] = {}  # member -> sha256 hex of its plain bytes
        self.index_name: str | None = None  # the index object this put wrote, if any

    def _pack_done(self, name: str, data: bytearray, entries: list[PackEntry]) -> None:
        self.backend.write(layout.pack_path(name), data)
        number = self.index.pack_number(name)
        self.index.place(
            [(e.key, number, e.frame_offset, e.frame_length, e.offset, e.length) for e in entries]
        )
        self.result.packs_written += 1
        self.result.objects_written += 1
        self.result.new_bytes_stored += len(data)

    def _store(self, key: bytes, data: bytes) -> None:
        if self.index.find(key) >= 0:
            return
        self.index.reserve([key])
        assert self._packs is not None
        self._packs.add(key, data)
        self.result.new_chunks += 1
        self.result.new_plain_bytes += len(data)

    def _store_batch(self, batch: list[chunker.Chunk]) -> None:
        """Store the new chunks of one read block, asking the index once for all of them."""
        present = self.index.present([key for key, _ in batch])
        new: list[chunker.Chunk] = []
        for key, data in batch:
            if key not in present:
                present.add(key)  # a page repeated inside the block is stored once
                new.append((key, data))
        if not new:
            return
        self.index.reserve([key for key, _ in new])
        assert self._packs is not None
        for key, data in new:
            self._packs.add(key, data)
            self.result.new_chunks += 1
            self.result.new_plain_bytes += len(data)

    def _advance(self, n: int) -> None:
        self._done += n
        if self.progress and (
            self._done - self._reported >= PROGRESS_STEP or self._done == self._total
        ):
            self._reported = self._done
            self.progress(self._done, self._total)

    def _artifact(self, member: str, source: Path | bytes) -> dict[str, Any]:
        per_list = self.config.hashes_per_list
        lists: list[bytes] = []
        current = bytearray()
        count = 0
        # The whole-artifact digest is what the manifest signs; computing it on this one read
        # saves a second pass over the database.
        digest = hashlib.sha256()
        with open_artifact(source) as stream:
            for batch in chunker.batches(
                stream, self.config.pages_per_chunk, digest, self._chunk_id
            ):
                self._store_batch(batch)
                plain = 0
                for key, data in batch:
                    current += key
                    count += 1
                    plain += len(data)
                    if count % per_list == 0:
                        lists.append(self._store_list(bytes(current)))
                        current = bytearray()
                self._advance(plain)
        self.digests[member] = digest.hexdigest()
        size = artifact_size(source)
        if count <= self.config.direct_max and not lists:
            return documents.artifact_entry(size, False, documents.split_list(bytes(current)))
        if current:
            lists.append(self._store_list(bytes(current)))
        return documents.artifact_entry(size, True, lists)

    def _store_list(self, blob: bytes) -> bytes:
        key = self._chunk_id(blob)
        self._store(key, blob)
        return key

    def write(self, artifacts: dict[str, Path | bytes]) -> dict[str, dict[str, Any]]:
        """Store every artifact's new chunks and one index object; return the doc entries."""
        self._total = sum(artifact_size(s) for s in artifacts.values())
        cfg = self.config
        crypt = self.encryption
        self._packs = PackWriter(
            self._pack_done,
            cfg.level,
            cfg.frame_size,
            cfg.pack_size,
            self._dictionary(artifacts),
            *crypt.pack_hooks(),
        )
        entries = {m: self._artifact(m, source) for m, source in sorted(artifacts.items())}
        self._packs.finish()
        # The keys of the packs before the index that names them: whatever the index names,
        # a reader holding the store key can open.
        keyring = crypt.write_keyring()
        if keyring is not None:
            self.result.objects_written += 1
        if len(self.index) > self._first_new:
            name, data = index.encode(self.index, range(self._first_new, len(self.index)))
            self.backend.write(layout.index_path(name), data)
            self.index_name = name
            self.result.objects_written += 1
            self.result.new_bytes_stored += len(data)
        if self.progress and self._total == 0:
            self.progress(0, 0)
        return entries
