"""The encryption of a format-2 store: keys, sealed pack keys, frames, chunk ids.

Pure functions over bytes, no I/O (docs/design.md section 5, "Encryption", has the scheme and
its threat model):

- A *store key* is an X25519 key pair. Its public half is in ``config.json``; its private
  half opens what the store holds.
- A *writer key* is 32 secret bytes every writing node holds. It keys chunk ids
  (HMAC-SHA256), so equal pages deduplicate while the store shows no hash of any content.
- Every pack has a random 32-byte *pack key*. Each frame of the pack (and its dictionary) is
  AES-256-GCM under that key with a nonce made of the frame's offset in the pack (offsets
  never repeat within a pack, and a pack key serves one pack) and the chunk id as associated
  data, so a frame moved, swapped or replayed does not open as another chunk.
- A pack key is *sealed* to the store key: an ephemeral X25519 exchange with the store's
  public key, HKDF-SHA256 of the shared secret into a wrapping key, AES-256-GCM of the pack
  key with the pack's name as associated data. Sealed keys live in keyring objects, apart
  from the packs, so a new store key replaces them without rewriting a pack.
"""

from __future__ import annotations

import hmac
import os
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from snapshot.keys import KeyFormatError, b64url_decode, b64url_encode, key_id

SCHEME = "x25519-hkdf-sha256-aes256gcm"
TAG = 16  # bytes AES-GCM adds to what it encrypts
KEY_BYTES = 32
STORE_KEY_HEADER = "stigmem store key v1"
WRITER_KEY_HEADER = "stigmem writer key v1"
SEAL_INFO = b"stigmem-snapshots pack key v1"
CHUNK_ID_INFO = b"stigmem-snapshots chunk id v1"
WRITER_ID_INFO = b"stigmem-snapshots writer key id v1"
DICTIONARY_AD = b"stigmem-snapshots dictionary"
KEYRING_MAGIC = b"stgmkey1"
# pack name, ephemeral public key, sealed pack key (key and tag)
KEYRING_RECORD = struct.Struct(">32s32s48s")


class BadKey(Exception):
    """A key that cannot be used: malformed, or not the one the data needs."""


class OpenError(Exception):
    """A sealed key or a frame that does not open: damaged, moved, or another key's."""


b64 = b64url_encode
# A store key's id: the first 16 hex digits of the SHA-256 of its public half, as a node key's.
public_key_id = key_id


def unb64(text: str, what: str) -> bytes:
    """A key's 32 bytes from its base64url text, which must be the one way to write them."""
    try:
        raw = b64url_decode(text, KEY_BYTES, what)
    except KeyFormatError as exc:
        raise BadKey(str(exc)) from None
    if b64(raw) != text.strip():
        raise BadKey(f"{what} must be {KEY_BYTES} bytes in base64url")
    return raw


# -- store keys ---------------------------------------------------------------------------


@dataclass(frozen=True)
class StoreKey:
    """The private half of a store key."""

    private: bytes

    @classmethod
    def generate(cls) -> StoreKey:
        return cls(X25519PrivateKey.generate().private_bytes_raw())

    @property
    def public(self) -> bytes:
        return X25519PrivateKey.from_private_bytes(self.private).public_key().public_bytes_raw()

    @property
    def key_id(self) -> str:
        return public_key_id(self.public)

    def to_text(self) -> str:
        return f"{STORE_KEY_HEADER}\n{b64(self.private)}\n"

    @classmethod
    def from_text(cls, text: str, source: str) -> StoreKey:
        lines = text.strip().splitlines()
        if len(lines) != 2 or lines[0].strip() != STORE_KEY_HEADER:
            raise BadKey(f"{source} is not a store key file (first line {STORE_KEY_HEADER!r})")
        return cls(unb64(lines[1], f"{source}: the store key"))


def parse_public(text: str, what: str) -> bytes:
    """A store key's public half as written in config.json and printed as ``pub:``."""
    return unb64(text, what)


# -- writer keys --------------------------------------------------------------------------


@dataclass(frozen=True)
class WriterKey:
    secret: bytes

    @classmethod
    def generate(cls) -> WriterKey:
        return cls(os.urandom(KEY_BYTES))

    @property
    def key_id(self) -> str:
        """Names the key without revealing it: an HMAC of a fixed text."""
        return hmac.digest(self.secret, WRITER_ID_INFO, "sha256").hex()[:16]

    def chunk_id_key(self) -> bytes:
        return _hkdf(self.secret, CHUNK_ID_INFO)

    def to_text(self) -> str:
        return f"{WRITER_KEY_HEADER}\n{b64(self.secret)}\n"

    @classmethod
    def from_text(cls, text: str, source: str) -> WriterKey:
        lines = text.strip().splitlines()
        if len(lines) != 2 or lines[0].strip() != WRITER_KEY_HEADER:
            raise BadKey(f"{source} is not a writer key file (first line {WRITER_KEY_HEADER!r})")
        return cls(unb64(lines[1], f"{source}: the writer key"))


def _hkdf(secret: bytes, info: bytes) -> bytes:
    return HKDF(hashes.SHA256(), KEY_BYTES, salt=None, info=info).derive(secret)


# -- pack keys ----------------------------------------------------------------------------


def new_pack_key() -> bytes:
    return os.urandom(KEY_BYTES)


def seal(pack_key: bytes, pack: bytes, store_public: bytes) -> tuple[bytes, bytes]:
    """``pack_key`` sealed to the store's public key for pack ``pack`` (its 32-byte name):
    (ephemeral public key, sealed key)."""
    ephemeral = X25519PrivateKey.generate()
    ephemeral_public = ephemeral.public_key().public_bytes_raw()
    shared = ephemeral.exchange(X25519PublicKey.from_public_bytes(store_public))
    wrap = _hkdf(shared, SEAL_INFO + ephemeral_public + store_public)
    # The wrapping key is new for every seal: a fixed nonce is never reused with it.
    return ephemeral_public, AESGCM(wrap).encrypt(bytes(12), pack_key, pack)


def unseal(ephemeral_public: bytes, sealed: bytes, pack: bytes, store: StoreKey) -> bytes:
    private = X25519PrivateKey.from_private_bytes(store.private)
    try:
        shared = private.exchange(X25519PublicKey.from_public_bytes(ephemeral_public))
        wrap = _hkdf(shared, SEAL_INFO + ephemeral_public + store.public)
        return AESGCM(wrap).decrypt(bytes(12), sealed, pack)
    except (InvalidTag, ValueError):
        raise OpenError("its sealed key does not open with this store key") from None


# -- frames -------------------------------------------------------------------------------


def nonce(offset: int) -> bytes:
    return offset.to_bytes(12, "big")


class PackCipher:
    """Encrypts and opens the frames of one pack."""

    def __init__(self, pack_key: bytes) -> None:
        self._aead = AESGCM(pack_key)

    def encrypt(self, offset: int, frame: bytes, ad: bytes) -> bytes:
        return self._aead.encrypt(nonce(offset), frame, ad)

    def open_into(
        self, offset: int, sealed: bytes | memoryview, ad: bytes, out: memoryview
    ) -> None:
        """Open a frame into ``out`` (exactly its plain length: ``len(sealed) - TAG``)."""
        try:
            self._aead.decrypt_into(nonce(offset), sealed, ad, out)
        except InvalidTag:
            raise OpenError("frame does not authenticate (damaged, moved or replaced)") from None

    def open_frames_into(
        self,
        sealed: memoryview,
        start: int,
        frames: list[tuple[int, int, bytes]],
        out: memoryview,
    ) -> int | None:
        """Open frames ``(offset in the pack, sealed length, chunk id)`` of the stretch of the
        pack that begins at ``start`` (``sealed``), each into ``out`` where it lay, as
        :meth:`open_into` would one by one. The number of the first frame that does not
        authenticate, or None; the frames after it are left as they were."""
        decrypt = self._aead.decrypt_into
        for n, (offset, length, ad) in enumerate(frames):
            at = offset - start
            try:
                decrypt(nonce(offset), sealed[at : at + length], ad, out[at : at + length - TAG])
            except InvalidTag:
                return n
        return None

    def open(self, offset: int, sealed: bytes | memoryview, ad: bytes) -> bytes:
        try:
            return self._aead.decrypt(nonce(offset), bytes(sealed), ad)
        except InvalidTag:
            raise OpenError("frame does not authenticate (damaged, moved or replaced)") from None


def chunk_id(key: bytes, data: bytes | memoryview) -> bytes:
    """The id of a chunk in an encrypted store: HMAC-SHA256 under the writer's id key."""
    return hmac.digest(key, data, "sha256")


# -- keyring objects ----------------------------------------------------------------------


@dataclass(frozen=True)
class Sealed:
    ephemeral_public: bytes
    sealed: bytes


def encode_keyring(store_public: bytes, records: dict[bytes, Sealed]) -> bytes:
    """A keyring object: the sealed keys of ``records`` (pack name -> sealed key), sealed to
    ``store_public``, in pack-name order so the same keys make the same object."""
    out = bytearray(KEYRING_MAGIC + store_public + struct.pack(">I", len(records)))
    for pack in sorted(records):
        record = records[pack]
        out += KEYRING_RECORD.pack(pack, record.ephemeral_public, record.sealed)
    return bytes(out)


def parse_keyring(data: bytes, name: str) -> tuple[bytes, dict[bytes, Sealed]]:
    """(the store public key it is sealed to, pack name -> sealed key)."""
    head = len(KEYRING_MAGIC) + KEY_BYTES + 4
    if len(data) < head or not data.startswith(KEYRING_MAGIC):
        raise OpenError(f"keyring object {name} is not a stigmem keyring")
    public = data[len(KEYRING_MAGIC) : len(KEYRING_MAGIC) + KEY_BYTES]
    (count,) = struct.unpack_from(">I", data, head - 4)
    if len(data) != head + count * KEYRING_RECORD.size:
        raise OpenError(f"keyring object {name} is truncated or has trailing bytes")
    records = {
        pack: Sealed(ephemeral, sealed)
        for pack, ephemeral, sealed in KEYRING_RECORD.iter_unpack(data[head:])
    }
    return bytes(public), records
