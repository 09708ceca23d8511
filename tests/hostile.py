"""Hand-made hostile tarballs, as bytes: headers with any size field, PAX records, bad gzip
trailers, signed manifests with hostile fields. Shared by the reader's tests, the
command-line tests and the fuzz harness."""

from __future__ import annotations

import gzip
import json
import struct
import tarfile
from datetime import UTC, datetime
from typing import Any

from tests import reference_format as ref

BLOCK = 512
SEED = b"\x05" * 32
WHEN = datetime(2026, 6, 1, 3, 0, tzinfo=UTC)


def header(name: str, kind: bytes = b"0", size: int = 0, size_field: bytes | None = None) -> bytes:
    """A ustar header block with a correct checksum; ``size_field`` (12 bytes) is written as
    given, so it can hold a negative octal or a base-256 number."""
    block = bytearray(BLOCK)
    block[0:100] = name.encode("utf-8", "surrogateescape")[:100].ljust(100, b"\0")
    block[100:108] = b"0000600\0"
    block[108:116] = block[116:124] = b"0000000\0"
    field = size_field if size_field is not None else f"{size:011o}\0".encode()
    block[124:136] = field[:12].ljust(12, b"\0")
    block[136:148] = b"00000000000\0"
    block[156:157] = kind
    block[257:265] = b"ustar\x0000"
    block[148:156] = b" " * 8
    block[148:156] = f"{sum(block):06o}\0 ".encode()
    return bytes(block)


def pad(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % BLOCK)


def pax(records: dict[str, str], name: str = "pax") -> bytes:
    """A PAX extended header (``x``) and its body, for the member that follows."""
    body = b""
    for key, value in records.items():
        text = f" {key}={value}\n".encode("utf-8", "surrogateescape")
        length = len(text) + len(str(len(text)))
        length = len(text) + len(str(length))
        body += str(length).encode() + text
    return header(name, b"x", len(body)) + pad(body)


def member(name: str, data: bytes) -> bytes:
    return header(name, b"0", len(data)) + pad(data)


def end() -> bytes:
    return b"\0" * (2 * BLOCK)


def gz(tar: bytes) -> bytes:
    return gzip.compress(tar, mtime=0)


def signed_manifest(db: bytes, cursor: bytes, **fields: Any) -> dict[str, Any]:
    """A manifest signed by SEED over ``db`` and ``cursor``, with ``fields`` replaced."""
    manifest = ref.build_manifest(
        SEED, "stigmem:node:hostile", WHEN, {ref.CURSOR: cursor, ref.DATABASE: db}
    )
    manifest.update(fields)
    return ref.sign_manifest(manifest, SEED)


def tarball(
    db: bytes = b"SQLite format 3\0" + b"\0" * 496, manifest: dict[str, Any] | None = None
) -> bytes:
    """A well-formed, signed tarball (as the node writes it) of ``db``."""
    cursor = ref.cursor_bytes(["001_init"])
    manifest = manifest if manifest is not None else signed_manifest(db, cursor)
    manifest_bytes = json.dumps(manifest, indent=2).encode("utf-8", "surrogatepass")
    return gz(
        member("manifest.json", manifest_bytes)
        + header("artifacts/", b"5")
        + member(ref.CURSOR, cursor)
        + member(ref.DATABASE, db)
        + end()
    )


def with_trailer(data: bytes, crc: int | None = None, isize: int | None = None) -> bytes:
    """``data`` (one gzip member) with its CRC-32 and/or ISIZE trailer replaced."""
    old_crc, old_size = struct.unpack("<II", data[-8:])
    new = struct.pack("<II", old_crc if crc is None else crc, old_size if isize is None else isize)
    return data[:-8] + new


def manifest_member(manifest: dict[str, Any]) -> bytes:
    return member("manifest.json", json.dumps(manifest).encode("utf-8", "surrogatepass"))


DIRTYPE = tarfile.DIRTYPE
