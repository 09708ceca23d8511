"""A stored artifact read as a file, page by page, without restoring it; and the SQLite VFS
that opens a stored snapshot's database in place.

Bytes are served from the artifact's chunks: a read fetches only the chunks it touches, each
checked against its id as any single chunk is (SHA-256, or the AEAD of an encrypted store).
Decoded chunks are kept in a :class:`ChunkCache` keyed by chunk id, bounded in bytes, so a
query over many snapshots decodes a page they share once. Nothing here writes: the VFS
refuses every write, and SQLite opens the file immutable and read-only.
"""

from __future__ import annotations

import collections
import threading
from typing import Any

from snapshot.errors import StoreError, VerificationError
from store.repository import Store

CACHE_BYTES = 64 << 20
VFS_NAME = "stigmem-snapshot"


class ChunkCache:
    """Decoded chunks by id, the least recently used dropped past ``max_bytes``;
    ``decoded`` counts the chunks fetched and decoded (each distinct one once while it
    stays)."""

    def __init__(self, max_bytes: int = CACHE_BYTES) -> None:
        self.max_bytes = max_bytes
        self.decoded = 0
        self.touched: set[bytes] = set()  # distinct chunks asked for
        self._held: collections.OrderedDict[bytes, bytes] = collections.OrderedDict()
        self._bytes = 0

    def get(self, key: bytes) -> bytes | None:
        self.touched.add(key)
        found = self._held.get(key)
        if found is not None:
            self._held.move_to_end(key)
        return found

    def put(self, key: bytes, data: bytes) -> None:
        self.decoded += 1
        self._held[key] = data
        self._bytes += len(data)
        while self._bytes > self.max_bytes and len(self._held) > 1:
            _, dropped = self._held.popitem(last=False)
            self._bytes -= len(dropped)


class StoredFile:
    """Member ``member`` of snapshot ``snapshot_id`` in ``store``, read by byte range."""

    def __init__(
        self,
        store: Store,
        snapshot_id: str,
        member: str,
        cache: ChunkCache,
        document: dict[str, Any] | None = None,
    ) -> None:
        """``document``: the snapshot's document, when the caller has read it already."""
        self.cache = cache
        doc = store.load_document(snapshot_id) if document is None else document
        entry = doc["artifacts"].get(member)
        if entry is None:
            raise StoreError(f"snapshot {snapshot_id} in {store.url} has no member {member}")
        self.source = store.chunk_source(snapshot_id)
        # The chunk ids end to end, 32 bytes each, gathered a chunk list at a time: as bytes
        # objects, a 1 GiB database's 262,144 ids take several times the memory.
        ids = bytearray()
        for window in self.source.windows(entry):
            ids += b"".join(window)
        self.ids = bytes(ids)
        self.size = int(entry["size"])
        self.chunk_size = 0
        if self.ids:
            first = self.source.index.lookup(self.ids[:32])
            if first is None:
                raise self.source._missing(f"chunk {self.ids[:32].hex()} is in no index")
            self.chunk_size = first.length
        self.reads = 0
        # The first chunk that failed its check or was missing: SQLite sees only an I/O
        # error, the caller raises this instead.
        self.failure: VerificationError | None = None

    def __len__(self) -> int:
        return len(self.ids) // 32

    def key(self, n: int) -> bytes:
        return self.ids[32 * n : 32 * n + 32]

    def chunk(self, n: int) -> bytes:
        key = self.key(n)
        found = self.cache.get(key)
        if found is None:
            try:
                found = self.source.fetch(key)
            except VerificationError as exc:
                self.failure = self.failure or exc
                raise
            self.cache.put(key, found)
        return found

    def read(self, offset: int, amount: int) -> bytes:
        """Bytes ``[offset, offset + amount)``, fewer past the end."""
        self.reads += 1
        end = min(offset + amount, self.size)
        if offset >= end or not self.chunk_size:
            return b""
        first, last = offset // self.chunk_size, (end - 1) // self.chunk_size
        data = b"".join(self.chunk(n) for n in range(first, last + 1))
        start = offset - first * self.chunk_size
        return data[start : start + (end - offset)]


class _File:
    """What SQLite holds open: read-only, immutable, lock-free."""

    def __init__(self, stored: StoredFile, name: str) -> None:
        self.stored = stored
        self.name = name

    def xRead(self, amount: int, offset: int) -> bytes:
        return self.stored.read(offset, amount)

    def xFileSize(self) -> int:
        return self.stored.size

    def xWrite(self, data: bytes, offset: int) -> None:
        import apsw

        raise apsw.ReadOnlyError("a stored snapshot is read-only")

    def xTruncate(self, size: int) -> None:
        import apsw

        raise apsw.ReadOnlyError("a stored snapshot is read-only")

    def xSync(self, flags: int) -> None:
        pass

    def xClose(self) -> None:
        # Once closed, the file is forgotten: a search opens many, one at a time.
        with _lock:
            if _files.get(self.name) is self.stored:
                del _files[self.name]

    def xLock(self, level: int) -> None:
        pass

    def xUnlock(self, level: int) -> None:
        pass

    def xCheckReservedLock(self) -> bool:
        return False

    def xFileControl(self, op: int, pointer: int) -> bool:
        return False

    def xSectorSize(self) -> int:
        return 4096

    def xDeviceCharacteristics(self) -> int:
        return 0


_lock = threading.Lock()
_files: dict[str, StoredFile] = {}
_vfs: Any = None


def _register() -> None:
    global _vfs
    import apsw

    class SnapshotVFS(apsw.VFS):
        def __init__(self) -> None:
            super().__init__(VFS_NAME, base="")

        def xOpen(self, name: Any, flags: list[int]) -> Any:
            if name is None:
                # SQLite's own temporary files (sorting, the b-trees of EXCEPT): the
                # default VFS's, deleted on close.
                return super().xOpen(name, flags)
            filename = name.filename() if hasattr(name, "filename") else str(name)
            stored = _files.get(filename)
            if stored is None:
                raise apsw.CantOpenError(f"{filename}: not a stored snapshot opened here")
            return _File(stored, filename)

        def xAccess(self, pathname: str, flags: int) -> bool:
            return pathname in _files

        def xFullPathname(self, name: str) -> str:
            return name

        def xDelete(self, filename: str, syncdir: bool) -> None:
            raise apsw.ReadOnlyError("a stored snapshot is read-only")

    _vfs = SnapshotVFS()


def register(stored: StoredFile, name: str) -> None:
    """Make ``stored`` openable by SQLite as ``file:<name>?immutable=1`` with this VFS (an
    ``ATTACH`` in a connection of :func:`open_database`, say)."""
    with _lock:
        if _vfs is None:
            _register()
        _files[name] = stored


def open_database(stored: StoredFile, name: str) -> Any:
    """An apsw connection to ``stored`` (a SQLite database), read-only and immutable."""
    import apsw

    register(stored, name)
    flags = apsw.SQLITE_OPEN_READONLY | apsw.SQLITE_OPEN_URI
    return apsw.Connection(f"file:{name}?immutable=1", flags=flags, vfs=VFS_NAME)
