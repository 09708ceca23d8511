"""A store's encryption at work: which keys this host holds, chunk ids, sealing the keys of
the packs a put writes, and opening packs for reads. The scheme itself is ``store.crypto``.

A plaintext store (format 1, or format 2 made without a store key) names chunks by SHA-256
and needs no key. An encrypted store names them by HMAC under the writer key, and every read
of content needs the store key; this host may hold either, both or neither, and a command
that needs one it lacks fails with :class:`KeyNeededError` before it writes anything.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass

from snapshot.errors import KeyNeededError, StoreError
from store import crypto, layout, limits, packs
from store.backend import Backend

ChunkId = Callable[[bytes | memoryview], bytes]


@dataclass(frozen=True)
class StoreKeys:
    """The keys this host holds for a store (either may be absent)."""

    store: crypto.StoreKey | None = None
    writer: crypto.WriterKey | None = None


def _sha256(data: bytes | memoryview) -> bytes:
    return hashlib.sha256(data).digest()


class Encryption:
    """One open store's encryption: ``public`` is the store key's public half from its
    config (None: a plaintext store)."""

    def __init__(self, backend: Backend, public: bytes | None, keys: StoreKeys) -> None:
        self.backend = backend
        self.public = public
        self.keys = keys
        self._lock = threading.Lock()
        self._sealed: dict[bytes, crypto.Sealed] | None = None
        self._ciphers: dict[str, crypto.PackCipher] = {}
        self._written: dict[bytes, crypto.Sealed] = {}
        self._reread = False
        if public is not None and keys.store is not None and keys.store.public != public:
            self._wrong_store_key = (
                f"store {backend.url} is encrypted to store key {crypto.public_key_id(public)}; "
                f"the store key given is {keys.store.key_id}"
            )
        else:
            self._wrong_store_key = ""

    @property
    def encrypted(self) -> bool:
        return self.public is not None

    @property
    def key_id(self) -> str | None:
        return None if self.public is None else crypto.public_key_id(self.public)

    # -- writing ----------------------------------------------------------------------

    def need_writer(self) -> crypto.WriterKey:
        if self.keys.writer is None:
            raise KeyNeededError(
                f"store {self.backend.url} is encrypted: writing to it needs the writer key "
                "(the tier's writer_key, or STIGMEM_WRITER_KEY)"
            )
        return self.keys.writer

    def chunk_id(self) -> ChunkId:
        """How this store names a chunk: SHA-256, or HMAC-SHA256 under the writer key."""
        if self.public is None:
            return _sha256
        key = self.need_writer().chunk_id_key()
        return lambda data: crypto.chunk_id(key, data)

    def pack_hooks(
        self,
    ) -> tuple[
        Callable[[], tuple[bytes, crypto.PackCipher] | None] | None,
        Callable[[str, bytes], None] | None,
    ]:
        """What a ``packs.PackWriter`` is handed to encrypt the packs it fills and seal
        their keys: (``new_pack``, ``pack_written``), or nothing for a plaintext store."""
        return (self.new_pack, self.pack_written) if self.encrypted else (None, None)

    def matches(self, key: bytes, chunk: bytes | memoryview) -> bool:
        """Whether ``chunk``, opened from its frame, is the chunk named ``key``: in an
        encrypted store its frame opened only with that id as associated data, which was
        the check (its ids are keyed by the writer key, which a reader need not hold)."""
        return self.encrypted or packs.chunk_matches(key, chunk)

    def new_pack(self) -> tuple[bytes, crypto.PackCipher] | None:
        """A pack key and its cipher for the next pack a writer fills (None: plaintext)."""
        if self.public is None:
            return None
        key = crypto.new_pack_key()
        return key, crypto.PackCipher(key)

    def pack_written(self, name: str, pack_key: bytes) -> None:
        """Seal the key of pack ``name`` (written) for the keyring of this put."""
        assert self.public is not None
        pack = bytes.fromhex(name)
        ephemeral, sealed = crypto.seal(pack_key, pack, self.public)
        self._written[pack] = crypto.Sealed(ephemeral, sealed)

    def keep_sealed(self, pack: bytes, sealed: crypto.Sealed) -> None:
        """A pack key sealed to this store's key already (copied from a store of the same
        key), for the next keyring."""
        self._written[pack] = sealed

    def write_keyring(self) -> str | None:
        """Write one keyring object with the keys of the packs written since the last call;
        its name, or None when there were none."""
        if not self._written or self.public is None:
            return None
        name = self.put_keyring(self.public, self._written)
        with self._lock:
            if self._sealed is not None:
                self._sealed.update(self._written)
        self._written = {}
        return name

    def take_written(self) -> dict[bytes, crypto.Sealed]:
        """The sealed keys of the packs written since the last keyring, which the caller
        will put in a keyring of its own."""
        written, self._written = self._written, {}
        return written

    def put_keyring(self, public: bytes, records: dict[bytes, crypto.Sealed]) -> str:
        """Write one keyring object of ``records`` sealed to ``public``; its name."""
        data = crypto.encode_keyring(public, records)
        name = hashlib.sha256(data).hexdigest()
        self.backend.write(layout.keyring_path(name), data)
        return name

    def keyring_paths(self) -> list[str]:
        """The paths of the store's keyring objects."""
        return [e.path for e in self.backend.list(layout.KEYS) if layout.keyring_of(e.path)]

    # -- reading ----------------------------------------------------------------------

    def need_store_key(self, doing: str) -> crypto.StoreKey:
        if self._wrong_store_key:
            raise KeyNeededError(self._wrong_store_key)
        if self.keys.store is None:
            raise KeyNeededError(
                f"store {self.backend.url} is encrypted: {doing} needs the store key "
                "(the tier's store_key, or STIGMEM_STORE_KEY)"
            )
        return self.keys.store

    def sealed_keys(self) -> dict[bytes, crypto.Sealed]:
        """Every sealed pack key the store's keyrings hold for its store key."""
        with self._lock:
            if self._sealed is None:
                self._sealed = self._load_keyrings()
            return self._sealed

    def _load_keyrings(self) -> dict[bytes, crypto.Sealed]:
        assert self.public is not None
        names = self.keyring_paths()
        found: dict[bytes, crypto.Sealed] = {}
        for path, data in sorted(self.backend.read_many(names, limits.MAX_OBJECT).items()):
            try:
                public, records = crypto.parse_keyring(data, path)
            except crypto.OpenError as exc:
                raise StoreError(f"{self.backend.url}: {exc}") from None
            if public == self.public:
                for pack, sealed in records.items():
                    found.setdefault(pack, sealed)
        return found

    def forget_keys(self) -> None:
        """Read the keyrings again at the next open (another process replaced them)."""
        with self._lock:
            self._sealed = None
            self._ciphers = {}

    def cipher(self, pack: str) -> crypto.PackCipher:
        """The cipher that opens pack ``pack``'s frames. Raises ``crypto.OpenError`` when no
        keyring holds its key or the key does not open (the caller names the chunk)."""
        found = self._ciphers.get(pack)
        if found is not None:
            return found
        store_key = self.need_store_key("reading its content")
        sealed = self.sealed_keys().get(bytes.fromhex(pack))
        if sealed is None and not self._reread:
            # Written by another process since the keyrings were read: read them again, once.
            with self._lock:
                self._sealed, self._reread = None, True
            sealed = self.sealed_keys().get(bytes.fromhex(pack))
        if sealed is None:
            raise crypto.OpenError("no keyring holds the pack's key")
        key = crypto.unseal(sealed.ephemeral_public, sealed.sealed, bytes.fromhex(pack), store_key)
        cipher = crypto.PackCipher(key)
        with self._lock:
            self._ciphers[pack] = cipher
        return cipher

    def open_frame(self, pack: str, offset: int, data: bytes | memoryview, key: bytes) -> bytes:
        """The compressed frame at ``offset`` of ``pack`` holding chunk ``key``."""
        return self.cipher(pack).open(offset, data, key)

    def open_dictionary(self, pack: str, offset: int, data: bytes | memoryview) -> bytes:
        return self.cipher(pack).open(offset, data, crypto.DICTIONARY_AD)

    def pack_key(self, pack: str) -> bytes:
        """The plain key of ``pack`` (for a keyring sealed to another store key)."""
        store_key = self.need_store_key("resealing its pack keys")
        sealed = self.sealed_keys().get(bytes.fromhex(pack))
        if sealed is None:
            raise StoreError(f"{self.backend.url}: no keyring holds the key of pack {pack}")
        try:
            return crypto.unseal(
                sealed.ephemeral_public, sealed.sealed, bytes.fromhex(pack), store_key
            )
        except crypto.OpenError as exc:
            raise StoreError(f"{self.backend.url}: pack {pack}: {exc}") from None


@dataclass
class OpenedPack:
    """A whole encrypted pack with its dictionary and the given frames opened where they
    lay, so the plaintext pack readers decode it; ``frames`` maps each (offset, length) to
    the opened frame's."""

    data: bytearray
    frames: dict[tuple[int, int], tuple[int, int]]


def opened_pack(
    encryption: Encryption, name: str, data: bytes, frames: list[tuple[int, int, bytes]]
) -> OpenedPack:
    """Open pack ``name``'s dictionary block and its frames ``(offset, length, chunk id)``.
    Raises ``crypto.OpenError`` naming the first that does not open."""
    out = bytearray(data)
    end = packs.dictionary_length(data)
    if end is not None:
        if end > len(data):
            raise crypto.OpenError("dictionary is truncated")
        plain = encryption.open_dictionary(name, packs.HEADER.size, data[packs.HEADER.size : end])
        out[: packs.HEADER.size + len(plain)] = (
            packs.HEADER.pack(packs.DICT_MAGIC, len(plain)) + plain
        )
    opened: dict[tuple[int, int], tuple[int, int]] = {}
    for offset, length, key in frames:
        try:
            plain = encryption.open_frame(name, offset, data[offset : offset + length], key)
        except crypto.OpenError as exc:
            raise crypto.OpenError(f"chunk {key.hex()}: {exc}") from None
        out[offset : offset + len(plain)] = plain
        opened[(offset, length)] = (offset, len(plain))
    return OpenedPack(out, opened)
