"""Ed25519 keys as the Stigmem node writes them: base64url without padding.

A private key is the raw 32-byte seed, or PKCS8 DER of an Ed25519 key (the form the node's
federation code keeps in ``node_meta.federation_privkey``); a public key the raw 32 bytes; a
key id the first 16 hex digits of SHA-256 of the public key. A trusted-keys file is a JSON
array of public keys.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import re
from pathlib import Path
from typing import TYPE_CHECKING

from snapshot import boundedjson
from snapshot.errors import StigmemError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

_B64URL = re.compile(r"^[A-Za-z0-9_-]*$")


class KeyFormatError(ValueError):
    """A key or signature string is not base64url of the expected length."""


def b64url_encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def b64url_decode(text: str, length: int, what: str) -> bytes:
    """Decode base64url without padding; strict about alphabet and decoded length."""
    text = text.strip()
    if not _B64URL.match(text) or len(text) % 4 == 1:
        raise KeyFormatError(f"{what} is not base64url")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise KeyFormatError(f"{what} is not base64url") from exc
    if len(raw) != length:
        raise KeyFormatError(f"{what} must be {length} bytes, got {len(raw)}")
    return raw


def key_id(public_key: bytes) -> str:
    return hashlib.sha256(public_key).hexdigest()[:16]


# PKCS8 DER of an Ed25519 key is 48 bytes (with its public key attached, 83); anything much
# longer is not a key, and is not decoded.
MAX_PRIVATE_KEY_TEXT = 256


def private_key_from_text(text: str, source: str) -> Ed25519PrivateKey:
    """The node's private key from either of its base64url forms; ``source`` names where it
    came from: the raw 32-byte seed, or PKCS8 DER of an Ed25519 key."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import load_der_private_key

    text = text.strip()
    if len(text) > MAX_PRIVATE_KEY_TEXT:
        raise StigmemError(f"bad private key in {source}: over {MAX_PRIVATE_KEY_TEXT} characters")
    if not _B64URL.match(text) or len(text) % 4 == 1:
        raise StigmemError(f"bad private key in {source}: private key is not base64url")
    raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if len(raw) == 32:
        return Ed25519PrivateKey.from_private_bytes(raw)
    try:
        key = load_der_private_key(raw, password=None)
    except (ValueError, TypeError):
        key = None
    if not isinstance(key, Ed25519PrivateKey):
        raise StigmemError(
            f"bad private key in {source}: neither a 32-byte Ed25519 seed nor PKCS8 DER of "
            f"an Ed25519 key ({len(raw)} bytes)"
        )
    return key


def node_public_keys_of(
    federation_privkey: str | None, federation_pubkey: str | None
) -> list[bytes]:
    """The public keys a node's ``node_meta`` holds: ``federation_pubkey`` where it is set, and
    that of ``federation_privkey`` (either form). Values that do not parse vouch for nothing."""
    keys: list[bytes] = []
    if federation_pubkey:
        with contextlib.suppress(KeyFormatError):
            keys.append(b64url_decode(federation_pubkey, 32, "federation_pubkey"))
    if federation_privkey:
        try:
            derived = public_key_bytes(private_key_from_text(federation_privkey, "node_meta"))
        except StigmemError:
            derived = None
        if derived is not None and derived not in keys:
            keys.append(derived)
    return keys


# Key files are a line; a trusted-keys file a few hundred keys. Read no more than this.
MAX_KEY_FILE_BYTES = 1 << 20


def _read_text(path: Path, what: str) -> str:
    """A small text file, or a one-line error naming it."""
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_KEY_FILE_BYTES + 1)
        if len(raw) > MAX_KEY_FILE_BYTES:
            raise StigmemError(f"{what} {path} is over the limit of {MAX_KEY_FILE_BYTES} bytes")
        return raw.decode("utf-8")
    except FileNotFoundError:
        raise StigmemError(f"no such {what}: {path}") from None
    except IsADirectoryError:
        raise StigmemError(f"{what} is a directory: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise StigmemError(f"cannot read {what} {path}: {exc}") from None


def load_private_key_file(path: Path) -> Ed25519PrivateKey:
    return private_key_from_text(_read_text(path, "key file"), str(path))


def public_key_bytes(private_key: Ed25519PrivateKey) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    return private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def seed_bytes(private_key: Ed25519PrivateKey) -> bytes:
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        NoEncryption,
        PrivateFormat,
    )

    return private_key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())


def parse_public_key(text: str, source: str) -> bytes:
    """A base64url public key as given on the command line or in a file."""
    if not isinstance(text, str):
        raise StigmemError(f"bad public key in {source}: not a string")
    try:
        return b64url_decode(text, 32, "public key")
    except KeyFormatError as exc:
        raise StigmemError(f"bad public key in {source}: {exc}") from None


def load_trusted_keys_file(path: Path) -> list[bytes]:
    text = _read_text(path, "trusted-keys file")
    doc = boundedjson.load(
        text, f"trusted-keys file {path}", StigmemError, max_bytes=MAX_KEY_FILE_BYTES
    )
    if not isinstance(doc, list):
        raise StigmemError(f"trusted-keys file {path} is not a JSON array of public keys")
    return [parse_public_key(item, f"trusted-keys file {path}") for item in doc]


def generate() -> Ed25519PrivateKey:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return Ed25519PrivateKey.generate()
