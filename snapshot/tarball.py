"""The snapshot tarball: a deterministic writer and a defensive streaming reader.

The reader parses tar headers itself instead of using ``tarfile``: tarfile's extraction
filters have had bypasses, and even its stream mode reads a PAX header of any declared size
into memory. Here every member is checked against an exact allow-list before a byte of its
body is read, bodies are streamed through a callback in bounded blocks, and nothing is ever
extracted by name. Memory stays flat whatever the archive declares.
"""

from __future__ import annotations

import gzip
import hashlib
import re
import tarfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from snapshot.errors import StigmemError, VerificationError, malformed, shown
from snapshot.manifest import (
    CURSOR_MEMBER,
    DB_MEMBER,
    Manifest,
    manifest_file_bytes,
    parse_cursor,
    parse_manifest,
)

BLOCK = 512
RECORD = 20 * BLOCK
MANIFEST_MEMBER = "manifest.json"
ARTIFACTS_DIR = "artifacts/"
SMALL_CAP = 1 << 20
DEFAULT_MAX_DB_SIZE = 64 << 30
_COPY = 1 << 20
_PAX_CAP = 64 << 10
# Every size is checked against this before a cap applies: tar's own 12-byte octal field
# stops at 8 GiB, base-256 and PAX sizes go on without end.
MAX_MEMBER_SIZE = (1 << 63) - 1
# Zero padding after the end-of-archive marker (tar writers pad to a 10 KiB record); more
# than this is not a padded archive.
_TRAILER_CAP = 1 << 20
_OCTAL = re.compile(rb"[0-7]*")
_PAX_SIZE = re.compile(r"[0-9]{1,19}")


# ---------------------------------------------------------------- writing


class _Counter:
    """Counts and forwards what the artifact writer produces, to check the declared size."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.count = 0

    def write(self, data: bytes) -> int:
        self.count += len(data)
        self.out.write(data)
        return len(data)


def _header(name: str, size: int, mtime: int, directory: bool = False) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = 0 if directory else size
    info.mtime = mtime
    info.mode = 0o700 if directory else 0o600
    info.type = tarfile.DIRTYPE if directory else tarfile.REGTYPE
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def _pad(size: int) -> bytes:
    return b"\0" * (-size % BLOCK)


def write_tarball(
    out: BinaryIO,
    manifest: Manifest,
    cursor: bytes,
    db_size: int,
    write_db: Callable[[BinaryIO], None],
) -> None:
    """Write the Stigmem tarball to ``out``; the same snapshot always gives the same bytes.

    ``write_db`` must write exactly ``db_size`` bytes of the database to the file it is given.
    Members follow the Stigmem node's order; mtimes are the snapshot's own time and the gzip
    header carries no time or name, so nothing about the moment of export leaks in.
    """
    mtime = int(manifest.created_at.timestamp())
    manifest_bytes = manifest_file_bytes(manifest)
    with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=6, mtime=0, filename="") as gz:
        written = 0
        for chunk in (
            _header(MANIFEST_MEMBER, len(manifest_bytes), mtime),
            manifest_bytes,
            _pad(len(manifest_bytes)),
            _header(ARTIFACTS_DIR, 0, mtime, directory=True),
            _header(CURSOR_MEMBER, len(cursor), mtime),
            cursor,
            _pad(len(cursor)),
            _header(DB_MEMBER, db_size, mtime),
        ):
            gz.write(chunk)
            written += len(chunk)
        counter = _Counter(gz)  # type: ignore[arg-type]
        write_db(counter)  # type: ignore[arg-type]
        if counter.count != db_size:
            raise StigmemError(
                f"database changed size while exporting ({counter.count} != {db_size})"
            )
        tail = _pad(db_size) + b"\0" * (2 * BLOCK)
        written += db_size + len(tail)
        gz.write(tail + b"\0" * (-written % RECORD))


# ---------------------------------------------------------------- reading


@dataclass
class TarballContents:
    manifest: Manifest
    applied_migrations: list[str]
    db_size: int
    actual: dict[str, str] = field(default_factory=dict)  # member -> "sha256:<hex>"
    cursor: bytes = b""  # the cursor member verbatim: its digest is signed

    def check_artifacts(self) -> None:
        """``checksum_error`` when a declared artifact is absent or its hash differs."""
        for member, declared in sorted(self.manifest.artifacts.items()):
            got = self.actual.get(member)
            if got is None:
                raise VerificationError(
                    "checksum_error", f"{member} is missing", self.manifest.snapshot_id
                )
            if got != declared:
                raise VerificationError(
                    "checksum_error",
                    f"{member} has {got}, manifest says {declared}",
                    self.manifest.snapshot_id,
                )


def _octal(field_bytes: bytes, what: str) -> int:
    """A numeric header field: octal digits (NUL/space padded) or GNU base-256.

    Only digits are accepted: ``int(text, 8)`` alone would take ``-17`` or ``+1_0``, and a
    negative size ends in ``read(-n)``. Base-256 is positive only and bounded like the PAX
    size, so every size that leaves here is a non-negative int under 2**63.
    """
    if field_bytes[:1] in (b"\x80", b"\xff"):
        if field_bytes[0] == 0xFF:
            raise malformed(f"negative {what} in tar header")
        value = int.from_bytes(field_bytes[1:], "big")
        if value > MAX_MEMBER_SIZE:
            raise malformed(f"{what} {value} in tar header is out of range")
        return value
    text = field_bytes.rstrip(b"\0 ").lstrip(b" ")
    if not _OCTAL.fullmatch(text):
        raise malformed(f"bad {what} in tar header")
    return int(text or b"0", 8)


def _cstr(field_bytes: bytes) -> str:
    return field_bytes.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


def _parse_pax(data: bytes) -> dict[str, str]:
    records: dict[str, str] = {}
    pos = 0
    while pos < len(data):
        space = data.find(b" ", pos)
        if space < 0:
            raise malformed("bad PAX header")
        try:
            length = int(data[pos:space])
        except ValueError:
            raise malformed("bad PAX header") from None
        record = data[space + 1 : pos + length]
        if length <= 0 or not record.endswith(b"\n") or b"=" not in record:
            raise malformed("bad PAX header")
        key, _, value = record[:-1].partition(b"=")
        records[key.decode("utf-8", "replace")] = value.decode("utf-8", "surrogateescape")
        pos += length
    return records


class _Stream:
    """Exact reads from the gzip stream, mapping decompression failures to ``malformed``."""

    def __init__(self, raw: BinaryIO, source: str) -> None:
        self.gz = gzip.GzipFile(fileobj=raw, mode="rb")
        self.source = source

    def read(self, n: int) -> bytes:
        try:
            data = self.gz.read(n)
        except (gzip.BadGzipFile, zlib.error, EOFError) as exc:
            raise malformed(f"{self.source} is not a readable gzip file: {exc}") from None
        except OSError as exc:
            raise malformed(f"{self.source} is not a readable gzip file: {exc}") from None
        return data

    def exact(self, n: int, what: str) -> bytes:
        data = self.read(n)
        if len(data) != n:
            raise malformed(f"{self.source} is truncated inside {what}")
        return data


def _allowed_name(name: str) -> str:
    if name.startswith("./"):
        name = name[2:]
    if name.startswith("/") or ".." in name.split("/") or "\\" in name:
        raise malformed(f"unsafe member path {shown(name)}")
    if name.rstrip("/") + "/" == ARTIFACTS_DIR:
        return ARTIFACTS_DIR
    if name not in (MANIFEST_MEMBER, CURSOR_MEMBER, DB_MEMBER):
        raise malformed(f"unexpected member {shown(name)}")
    return name


def _drain(stream: _Stream, source: str) -> None:
    """Read past the end-of-archive marker to the end of the gzip stream.

    Only there does gzip check its trailer (the CRC-32 and length of what it inflated), so a
    tarball whose trailer is wrong is refused rather than accepted on its tar structure alone.
    What follows the marker must be zero padding, and not much of it.
    """
    seen = 0
    while True:
        data = stream.read(_COPY)
        if not data:
            return
        seen += len(data)
        if seen > _TRAILER_CAP:
            raise malformed(f"{source} has more than {_TRAILER_CAP} bytes after its end")
        if data.strip(b"\0"):
            raise malformed(f"{source} has data after its end-of-archive marker")


def read_tarball(
    path: Path,
    on_db: Callable[[bytes], None] | None = None,
    max_db_size: int = DEFAULT_MAX_DB_SIZE,
) -> TarballContents:
    """Stream a tarball once: check its structure, hash the artifacts, pass db bytes on.

    Raises ``VerificationError`` with ``malformed`` for anything structural; hash
    mismatches are left to :meth:`TarballContents.check_artifacts` so the caller decides
    when to report them. ``on_db`` receives the database in blocks, in order.
    """
    try:
        raw = path.open("rb")
    except FileNotFoundError:
        raise StigmemError(f"no such file: {path}") from None
    except IsADirectoryError:
        raise StigmemError(f"is a directory, not a snapshot tarball: {path}") from None
    except OSError as exc:
        raise StigmemError(f"cannot read {path}: {exc.strerror}") from None
    with raw:
        return _read(_Stream(raw, str(path)), on_db, max_db_size, str(path))


def _read(
    stream: _Stream, on_db: Callable[[bytes], None] | None, max_db_size: int, source: str
) -> TarballContents:
    seen: set[str] = set()
    small: dict[str, bytes] = {}
    actual: dict[str, str] = {}
    db_size = 0
    pax: dict[str, str] = {}
    long_name: str | None = None
    while True:
        block = stream.read(BLOCK)
        if not block:
            raise malformed(f"{source} ends without an end-of-archive marker")
        if len(block) < BLOCK:
            raise malformed(f"{source} is truncated")
        if block == b"\0" * BLOCK:
            _drain(stream, source)
            break
        try:
            checksum = _octal(block[148:156], "checksum")
        except VerificationError:
            raise malformed(f"{source} is not a tar archive") from None
        unsigned = sum(block[:148]) + 8 * 32 + sum(block[156:])
        if checksum != unsigned:
            raise malformed(f"{source} is not a tar archive (bad header checksum)")
        kind = block[156:157]
        size = _octal(block[124:136], "size")
        if kind in (b"x", b"L"):
            if size > _PAX_CAP:
                raise malformed(f"{source}: extended header of {size} bytes is over the cap")
            data = stream.exact(size + (-size % BLOCK), "an extended header")[:size]
            if kind == b"x":
                pax = _parse_pax(data)
            else:
                long_name = data.rstrip(b"\0").decode("utf-8", "surrogateescape")
            continue
        if kind == b"g":
            raise malformed(f"{source}: global PAX headers are not accepted")
        name = _cstr(block[0:100])
        prefix = _cstr(block[345:500]) if block[257:262] == b"ustar" else ""
        if prefix:
            name = f"{prefix}/{name}"
        name = pax.get("path", long_name or name)
        if "size" in pax:
            if not _PAX_SIZE.fullmatch(pax["size"]):
                raise malformed(f"{source}: bad PAX size for {shown(name)}")
            size = int(pax["size"])
        pax, long_name = {}, None
        name = _allowed_name(name)
        if name in seen:
            raise malformed(f"duplicate member {name!r}")
        seen.add(name)
        if name == ARTIFACTS_DIR:
            if kind != tarfile.DIRTYPE:
                raise malformed(f"member {name!r} is not a directory")
            if size:
                # A directory has no body; skipping one would read whatever it declares.
                raise malformed(f"directory member {name!r} declares a body of {size} bytes")
            continue
        if kind not in (tarfile.REGTYPE, tarfile.AREGTYPE):
            raise malformed(f"member {name!r} is not a regular file (link or device)")
        cap = max_db_size if name == DB_MEMBER else SMALL_CAP
        if size > cap:
            raise malformed(f"member {name!r} declares {size} bytes, over the cap of {cap}")
        digest = hashlib.sha256()
        remaining = size
        while remaining:
            data = stream.read(min(_COPY, remaining))
            if not data:
                raise malformed(f"{source} is truncated inside {name!r}")
            remaining -= len(data)
            digest.update(data)
            if name == DB_MEMBER:
                if on_db is not None:
                    on_db(data)
            else:
                small[name] = small.get(name, b"") + data
        stream.exact(-size % BLOCK, name)
        actual[name] = f"sha256:{digest.hexdigest()}"
        if name == DB_MEMBER:
            db_size = size
    if MANIFEST_MEMBER not in small:
        raise malformed(f"{source} has no manifest.json")
    manifest = parse_manifest(small[MANIFEST_MEMBER])
    applied: list[str] = []
    if CURSOR_MEMBER in small:
        applied = parse_cursor(small[CURSOR_MEMBER])
    return TarballContents(manifest, applied, db_size, actual, small.get(CURSOR_MEMBER, b""))
