"""Ed25519 keys as the Stigmem node writes them: base64url without padding of raw bytes.

A private key is the raw 32-byte seed; a public key the raw 32 bytes; a key id the first 16
hex digits of SHA-256 of the public key. A trusted-keys file is a JSON array of public keys.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

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


def private_key_from_text(text: str, source: str) -> Ed25519PrivateKey:
    """The node's private key from its base64url seed; ``source`` names where it came from."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    try:
        seed = b64url_decode(text, 32, "private key")
    except KeyFormatError as exc:
        raise StigmemError(f"bad private key in {source}: {exc}") from None
    return Ed25519PrivateKey.from_private_bytes(seed)


def _read_text(path: Path, what: str) -> str:
    """A small text file, or a one-line error naming it."""
    try:
        return path.read_text(encoding="utf-8")
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
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise StigmemError(f"trusted-keys file {path} is not JSON: {exc.msg}") from None
    if not isinstance(doc, list):
        raise StigmemError(f"trusted-keys file {path} is not a JSON array of public keys")
    return [parse_public_key(item, f"trusted-keys file {path}") for item in doc]


def generate() -> Ed25519PrivateKey:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return Ed25519PrivateKey.generate()
