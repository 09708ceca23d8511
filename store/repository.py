"""``Store``: the content-addressed snapshot store the command line talks to.

Layout and formats are in ``layout``, ``config``, ``documents``, ``packs`` and ``index``;
this module wires them to a ``Backend`` and keeps the write order that makes every state
after a crash safe: packs, then the index object, then the snapshot document (the commit
point). Maintenance (check, gc, sync, index rebuild) lives in ``maintenance``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from snapshot.errors import AmbiguousError, StoreError, VerificationError
from store import config as store_config
from store import dictionary, docread, documents, layout, limits, locks
from store.backend import Backend, open_backend
from store.config import StoreConfig
from store.encryption import Encryption, StoreKeys
from store.index import ChunkIndex, Locator
from store.localcache import LocalCache
from store.reader import ChunkSource
from store.rebuild import rebuilt_in_order
from store.reports import PutResult
from store.snapshotindex import SnapshotIndex
from store.writer import SnapshotWriter

MIN_PREFIX = 6
Progress = Callable[[int, int], None]


def _read_config(backend: Backend, url: str) -> bytes | None:
    try:
        return backend.read(layout.CONFIG, limits.MAX_SMALL_OBJECT)
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        raise StoreError(f"{url} is not a stigmem store: config.json is a directory") from None


class Store:
    def __init__(
        self,
        backend: Backend,
        settings: StoreConfig,
        cache: LocalCache | None = None,
        keys: StoreKeys | None = None,
    ) -> None:
        self.backend = backend
        self.url = backend.url
        self.config = settings
        self.keys = keys or StoreKeys()
        self.encryption = Encryption(backend, settings.encrypt_to, self.keys)
        # This host's cache (an index copy between commands, dictionaries); None: none.
        self.cache = cache or LocalCache(None)
        self.lock_wait = 0.0
        self.stale_after = locks.DEFAULT_STALE_AFTER
        self._index: ChunkIndex | None = None
        self._index_names: set[str] = set()
        # The last SnapshotIndex made, for the next artifact of the same snapshot: (snapshot
        # id, the index objects it was made from, it).
        self._one_read: tuple[str, list[str], SnapshotIndex] | None = None
        self._held: str | None = None

    # -- opening ------------------------------------------------------------------------

    @classmethod
    def init(
        cls,
        url: str,
        storage_options: dict[str, Any] | None = None,
        settings: StoreConfig | None = None,
        cache: LocalCache | None = None,
        keys: StoreKeys | None = None,
    ) -> Store:
        backend = open_backend(url, storage_options)
        if backend.exists(layout.CONFIG):
            raise StoreError(f"{url} is already a stigmem store")
        if backend.list():
            raise StoreError(f"{url} is not empty: refusing to make a store among other files")
        settings = settings or StoreConfig()
        backend.write(layout.CONFIG, settings.to_json())
        data = backend.read(layout.CONFIG, limits.MAX_SMALL_OBJECT)
        return cls(backend, store_config.parse(data, url), cache, keys)

    @classmethod
    def open(
        cls,
        url: str,
        storage_options: dict[str, Any] | None = None,
        create: bool = False,
        cache: LocalCache | None = None,
        keys: StoreKeys | None = None,
        settings: StoreConfig | None = None,
    ) -> Store:
        """Open the store at ``url``; with ``create``, make it (with ``settings``) when the
        folder is empty."""
        backend = open_backend(url, storage_options)
        data = _read_config(backend, url)
        if data is None and create:
            if not backend.list():
                # Another first use on this host may make the store between our look and
                # our write; then init refuses, and we join the store it made.
                with contextlib.suppress(StoreError):
                    return cls.init(url, storage_options, settings, cache, keys)
            data = _read_config(backend, url)
        if data is None:
            if backend.list():
                raise StoreError(
                    f"{url} is not a stigmem store: it holds other files and no config.json"
                )
            raise StoreError(f"{url} is not a stigmem store (no config.json)")
        return cls(backend, store_config.parse(data, url), cache, keys)

    # -- locking ------------------------------------------------------------------------

    @contextlib.contextmanager
    def lock(self, kind: str) -> Iterator[None]:
        """Hold a shared or exclusive store lock; nested use inside this process is free."""
        if self._held == "exclusive" or (self._held == "shared" and kind == "shared"):
            yield
            return
        if self._held is not None:
            raise StoreError(
                f"{self.url}: cannot take an exclusive lock while holding a shared one"
            )
        with locks.StoreLock(self.backend, kind, self.lock_wait, self.stale_after):
            self._held = kind
            try:
                yield
            finally:
                self._held = None

    def break_locks(self, stale_only: bool = True) -> list[locks.LockInfo]:
        return locks.break_locks(self.backend, stale_only, self.stale_after)

    # -- index --------------------------------------------------------------------------

    def dictionary_for(self, artifacts: dict[str, Path | bytes]) -> bytes | None:
        """The zstd dictionary a put compresses new chunks with (None: frames of chunks)."""
        cfg = self.config
        return dictionary.for_put(artifacts, cfg.dictionary_size, cfg.level, cfg.pages_per_chunk)

    def index(self) -> ChunkIndex:
        """The index, loading only index objects not seen yet (here or in the local cache)."""
        names = {n for e in self.backend.list(layout.INDEX) if (n := layout.index_of(e.path))}
        if self._index is None:
            self._index = ChunkIndex(self.cache.index_path(self.url))
            self._index.bounds = limits.entry_bounds(self.config)
            self._index_names = self._index.loaded_names()
        if not self._index_names <= names:
            # Someone replaced index objects (gc): what we hold may name deleted packs.
            self._index.clear()
            self._index_names = set()
        new = sorted(names - self._index_names)
        read = self.backend.read_many([layout.index_path(n) for n in new])
        self._index.load_many((data, path) for path, data in read.items())
        if new:
            self._index_names |= set(new)
            self._index.mark_loaded(new)
            self._index.commit()
        return self._index

    def index_written(self, name: str) -> None:
        """A put wrote index object ``name`` from entries already in the loaded index."""
        if self._index is not None:
            self._index_names.add(name)
            self._index.mark_loaded([name])
            self._index.commit()

    def keep_plans(self, snapshot_id: str) -> None:
        """A read of ``snapshot_id`` made with ``stage_plans`` hashed to its manifest's
        digest: keep the plans it staged (``ChunkIndex.keep_plans``)."""
        if self._index is not None:
            self._index.keep_plans(snapshot_id)

    def drop_plans(self) -> None:
        """Forget the plans kept in the local index cache (``ChunkIndex.keep_plans``): a
        read of an artifact failed or did not hash to its digest, and whatever the cause,
        the next read must not trust them."""
        if self._index is not None:
            self._index.drop_plans()
            self._index.commit()

    def forget_index(self) -> None:
        """Drop the loaded index and whatever it held that was not committed."""
        if self._index is not None:
            self._index.close()
        self._index, self._index_names = None, set()

    # -- snapshots ----------------------------------------------------------------------

    def has_snapshot(self, snapshot_id: str) -> bool:
        return self.backend.exists(layout.snapshot_path(snapshot_id))

    def snapshot_ids(self) -> list[str]:
        return sorted(layout.snapshot_ids_of(self.backend.names(layout.SNAPSHOTS)))

    def resolve(self, prefix: str) -> str:
        wanted = prefix.lower()
        if len(wanted) < MIN_PREFIX or any(c not in "0123456789abcdef" for c in wanted):
            raise StoreError(
                f"snapshot id prefix {prefix!r} must be at least {MIN_PREFIX} hex digits"
            )
        matches = [sid for sid in self.snapshot_ids() if sid.startswith(wanted)]
        if not matches:
            raise StoreError(f"no snapshot matches {prefix} in {self.url}")
        if len(matches) > 1:
            raise AmbiguousError(f"ambiguous prefix {prefix}: matches {', '.join(matches)}")
        return matches[0]

    def load_document(self, snapshot_id: str) -> dict[str, Any]:
        """The snapshot's document, refused as ``malformed`` unless it is that snapshot's
        (``store.docread``)."""
        try:
            return docread.load(self.backend, snapshot_id, self.config)
        except FileNotFoundError:
            raise StoreError(f"no snapshot {snapshot_id} in {self.url}") from None

    def require_sound_documents(self, doing: str) -> None:
        """Raise StoreError naming the first document the store's reader refuses: what
        deletes data (prune, gc) must not run while a document is not the snapshot its
        name says, or it would free the data of the snapshot that name should hold. The
        index is loaded first, so an index object refused later (by gc) is refused before
        anything is deleted."""
        self.index()
        for _, doc in docread.load_many(self.backend, self.snapshot_ids(), self.config):
            if isinstance(doc, VerificationError):
                raise StoreError(f"{doing} refused on {self.url}: {doc.outcome}: {doc.detail}")

    def put_snapshot(
        self,
        snapshot_id: str,
        manifest: dict[str, Any],
        artifacts: dict[str, Path | bytes],
        progress: Progress | None = None,
        checked: dict[str, Any] | None = None,
    ) -> PutResult:
        """``checked``: the signed record that the database passed SQLite's check
        (``snapshot.checked.attest``), kept in the document as it is."""
        if not layout.is_hash(snapshot_id):
            raise StoreError(f"snapshot id {snapshot_id!r} is not 64 lowercase hex digits")
        if self.has_snapshot(snapshot_id):
            return PutResult(snapshot_id, already_present=True)
        with self.transaction(progress) as tx:
            tx.add_artifacts(artifacts)
            return tx.commit(snapshot_id, manifest, checked)

    @contextlib.contextmanager
    def transaction(self, progress: Progress | None = None) -> Iterator[Transaction]:
        """Store artifacts first, name and commit the snapshot later, under one shared lock.

        ``snapshot create`` signs only after the copy passed integrity_check, which runs while
        the artifacts are being packed; the snapshot id (a hash of the signed manifest) is
        known only then. Leaving without ``commit`` leaves unreferenced packs for gc.
        """
        with self.lock("shared"):
            if self.encryption.encrypted:
                self._follow_rekey()
            tx = Transaction(self, progress)
            try:
                yield tx
            except BaseException:
                # The in-memory index holds placeholders for chunks that never reached a pack.
                self.forget_index()
                raise

    def _follow_rekey(self) -> None:
        """Read config.json again under the lock: a rekey that finished since this store was
        opened names another store key, and new pack keys must be sealed to that one (sealed
        to the retired key, no reader could open them)."""
        data = _read_config(self.backend, self.url)
        if data is None:
            raise StoreError(f"{self.url} is not a stigmem store (no config.json)")
        settings = store_config.parse(data, self.url)
        if settings.encrypt_to != self.config.encrypt_to:
            self.config = settings
            self.encryption = Encryption(self.backend, settings.encrypt_to, self.keys)

    def read_artifact(
        self,
        snapshot_id: str,
        member: str,
        out: BinaryIO,
        progress: Progress | None = None,
        check_chunks: bool = True,
        document: dict[str, Any] | None = None,
        stage_plans: bool = False,
    ) -> None:
        """Stream ``member`` into ``out``, a window (16 MiB) per ``write``; the bytes given
        are only valid during the call (the buffer is reused).

        Damaged pack bytes (zstd frame checksums) and missing packs raise
        ``VerificationError`` naming the chunk and pack, but only at the end: every window
        is still written, lost chunks as zeros, so a forced restore salvages all it can. A
        chunk that no index holds stops the read at its window. ``check_chunks`` also
        hashes every chunk against its name; a caller that checks the whole artifact's
        digest itself may skip that and call again with it only when the digest differs.
        ``document``: the snapshot's document, when the caller has read it already (each
        read is a request to an object store). ``stage_plans``: write each chunk list's
        plan to the local index cache as the read goes, for :meth:`keep_plans` once the
        caller found the artifact's digest right (or :meth:`drop_plans`)."""
        doc = self.load_document(snapshot_id) if document is None else document
        entry = doc["artifacts"].get(member)
        if entry is None:
            raise StoreError(f"snapshot {snapshot_id} in {self.url} has no member {member}")
        # Listed again for every artifact, though the listing for the snapshot's first one
        # held every chunk its document names: reads take no lock, and a gc in between may
        # have replaced the index objects and repacked the chunks.
        source = self.chunk_source(snapshot_id, self._one_read_index(snapshot_id, doc))
        if stage_plans and not check_chunks:
            source.staging = snapshot_id
        done = 0
        failures: list[VerificationError] = []
        spare: list[bytearray] = []
        # Written (and hashed, by the caller's ``out``) on this thread; the planning runs on
        # a thread of its own (see rebuild.rebuilt_in_order).
        for window in rebuilt_in_order(
            source,
            source.windows(entry),
            check_chunks,
            spare,
            carry=self.config.dictionary_size == 0 and not self.encryption.encrypted,
            size=entry["size"],
        ):
            out.write(window.buffer)
            spare.append(window.buffer)
            done += window.size
            if window.failure is not None:
                failures.append(window.failure)
            if progress:
                progress(done, entry["size"])
        if failures:
            # Chosen by text, not by order: the same damage always gives the same error.
            raise min(failures, key=lambda exc: exc.detail)
        if done != entry["size"]:
            raise VerificationError(
                "checksum_error",
                f"{snapshot_id}: {member} rebuilt to {done} bytes, document says {entry['size']}",
                snapshot_id,
            )

    def chunk_source(self, snapshot_id: str, chunk_index: Locator | None = None) -> ChunkSource:
        """What reads ``snapshot_id``'s chunks (with the loaded index, or ``chunk_index``).
        An encrypted store's content needs the store key: without it, this fails first."""
        if self.encryption.encrypted:
            self.encryption.need_store_key("reading its content")
        return ChunkSource(self.backend, chunk_index or self.index(), snapshot_id, self.encryption)

    def _one_read_index(self, snapshot_id: str, document: dict[str, Any]) -> SnapshotIndex | None:
        """The index entries a whole read of ``document`` needs, when this process has not
        loaded the index and this host keeps no copy of it (a new host, ``--no-cache``):
        loading every entry of the store's history to read one snapshot would cost more
        than the read (``store.snapshotindex``). None: use the index (``index``). The
        index objects are listed again for each read, as ``index`` does (a gc in between
        may have replaced them); the same snapshot's next artifact reuses what they gave
        while they are the same."""
        if self._index is not None:
            return None
        cached = self.cache.index_path(self.url)
        if cached is not None and cached.exists():
            return None
        if self.encryption.encrypted:
            self.encryption.need_store_key("reading its content")
        names = sorted(n for e in self.backend.list(layout.INDEX) if (n := layout.index_of(e.path)))
        if self._one_read is not None and self._one_read[:2] == (snapshot_id, names):
            return self._one_read[2]
        self._one_read = None
        read = self.backend.read_many([layout.index_path(n) for n in names])
        found = SnapshotIndex(
            ((data, path) for path, data in read.items()),
            document,
            limits.entry_bounds(self.config),
        )
        self._one_read = (snapshot_id, names, found)
        return found

    def delete_snapshot(self, snapshot_id: str) -> None:
        """Remove the document only; gc frees the data nothing else references."""
        if not self.has_snapshot(snapshot_id):
            raise StoreError(f"no snapshot {snapshot_id} in {self.url}")
        self.backend.delete([layout.snapshot_path(snapshot_id)])

    def write_document(self, snapshot_id: str, doc: bytes) -> None:
        self.backend.write(layout.snapshot_path(snapshot_id), doc)


class Transaction:
    """One snapshot's writes: artifacts (packs, index), then the document (commit point)."""

    def __init__(self, store: Store, progress: Progress | None) -> None:
        self.store = store
        self.result = PutResult("")
        chunk_index = store.index()
        self.writer = SnapshotWriter(
            store.backend,
            chunk_index,
            store.config,
            self.result,
            progress,
            store.dictionary_for,
            store.encryption,
        )
        self.entries: dict[str, dict[str, Any]] = {}

    def add_artifacts(self, artifacts: dict[str, Path | bytes]) -> dict[str, str]:
        """Store the artifacts' new chunks; return member -> sha256 hex of each artifact."""
        self.entries = self.writer.write(artifacts)
        if self.writer.index_name is not None:
            self.store.index_written(self.writer.index_name)
        return dict(self.writer.digests)

    def commit(
        self, snapshot_id: str, manifest: dict[str, Any], checked: dict[str, Any] | None = None
    ) -> PutResult:
        if not layout.is_hash(snapshot_id):
            raise StoreError(f"snapshot id {snapshot_id!r} is not 64 lowercase hex digits")
        self.result.snapshot_id = snapshot_id
        if self.store.has_snapshot(snapshot_id):
            self.result.already_present = True
        else:
            doc = documents.encode(manifest, self.entries, checked)
            self.store.write_document(snapshot_id, doc)
            self.result.objects_written += 1
            self.result.new_bytes_stored += len(doc)
        return self.result
