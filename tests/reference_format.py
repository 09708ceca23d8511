"""An independent writer and reader of the Stigmem v0.9 snapshot tarball, for tests.

Written from docs/design.md section 2 alone: it imports nothing from snapshot/, store/, catalog/ or
cli/, so a misreading of the format in the tool is caught by comparison instead of being
copied. The writer behaves like the Stigmem node (member order, indented manifest, no key id
anywhere); the reader is a small, strict verifier.

Also here: builders of broken tarballs (arbitrary members, links, devices, bad paths, lying
sizes) and a "size bomb" whose database member declares a huge size without the test ever
producing that many bytes.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import os
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

MANIFEST = "manifest.json"
ARTIFACTS_DIR = "artifacts/"
CURSOR = "artifacts/schema_migration_cursor.json"
DATABASE = "artifacts/stigmem.db"
ARTIFACT_MEMBERS = (CURSOR, DATABASE)
META_CAP = 1 << 20  # manifest and cursor: 1 MiB each (docs/design.md section 9)
DB_CAP = 64 << 30  # default --max-size: 64 GiB
_BLOCK = 512
_STREAM_CHUNK = 1 << 20

Kind = Literal["file", "dir", "symlink", "hardlink", "chardev", "blockdev", "fifo"]


# --- encodings --------------------------------------------------------------------------------


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    if not isinstance(text, str) or "=" in text or len(text) % 4 == 1:
        raise ValueError("not base64url without padding")
    allowed = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    if not set(text) <= allowed:
        raise ValueError("not base64url without padding")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def public_key_of(seed: bytes) -> str:
    """base64url public key of a raw 32-byte Ed25519 seed."""
    raw = (
        Ed25519PrivateKey.from_private_bytes(seed)
        .public_key()
        .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    )
    return b64url(raw)


def key_id_of(pubkey_b64: str) -> str:
    return hashlib.sha256(b64url_decode(pubkey_b64)).hexdigest()[:16]


def signed_bytes(manifest: dict[str, Any]) -> bytes:
    """The bytes the signature covers: the manifest minus ``signature``, compact, sorted keys."""
    unsigned = {k: v for k, v in manifest.items() if k != "signature"}
    return json.dumps(unsigned, sort_keys=True, separators=(",", ":")).encode("utf-8")


def snapshot_id_of(manifest: dict[str, Any]) -> str:
    return hashlib.sha256(signed_bytes(manifest)).hexdigest()


def sha256_ref(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# --- writing --------------------------------------------------------------------------------


@dataclass(frozen=True)
class TarMember:
    """One member of a hand-built tarball.

    ``size`` overrides the size written in the header; when it is larger than ``data`` the
    archive is cut short right after ``data`` (a truncated body, no end-of-archive blocks).
    """

    name: str
    data: bytes = b""
    kind: Kind = "file"
    linkname: str = ""
    size: int | None = None
    mode: int | None = None


def build_manifest(
    seed: bytes,
    node_id: str,
    created_at: datetime,
    artifacts: dict[str, bytes],
) -> dict[str, Any]:
    """A signed manifest over ``artifacts`` (member name -> content), fields in table order."""
    manifest: dict[str, Any] = {
        "version": 1,
        "created_at": created_at.astimezone(UTC).isoformat(timespec="microseconds"),
        "node_id": node_id,
        "signer_pubkey": public_key_of(seed),
        "artifacts": {name: sha256_ref(data) for name, data in artifacts.items()},
    }
    return sign_manifest(manifest, seed)


def sign_manifest(manifest: dict[str, Any], seed: bytes) -> dict[str, Any]:
    """``manifest`` with a fresh ``signature`` (any old one dropped) by ``seed``."""
    unsigned = {k: v for k, v in manifest.items() if k != "signature"}
    signature = Ed25519PrivateKey.from_private_bytes(seed).sign(signed_bytes(unsigned))
    return {**unsigned, "signature": b64url(signature)}


def cursor_bytes(applied_migrations: Iterable[str], indent: int | None = 2) -> bytes:
    return json.dumps({"applied_migrations": sorted(applied_migrations)}, indent=indent).encode()


def reference_members(
    db: bytes,
    seed: bytes,
    node_id: str,
    applied_migrations: Iterable[str],
    created_at: datetime,
    indent: int | None = 2,
) -> tuple[list[TarMember], dict[str, Any]]:
    """The node's members, in the node's order, and the manifest; tests edit the list to make
    broken tarballs that are otherwise valid (signed, right hashes)."""
    cursor = cursor_bytes(applied_migrations, indent)
    manifest = build_manifest(seed, node_id, created_at, {CURSOR: cursor, DATABASE: db})
    members = [
        TarMember(MANIFEST, json.dumps(manifest, indent=indent).encode()),
        TarMember(ARTIFACTS_DIR, kind="dir"),
        TarMember(CURSOR, cursor),
        TarMember(DATABASE, db),
    ]
    return members, manifest


def tarball_name(created_at: datetime, db: bytes) -> str:
    stamp = created_at.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"stigmem-snapshot-{stamp}-{hashlib.sha256(db).hexdigest()[:12]}.tar.gz"


def write_reference_tarball(
    out_dir: Path,
    db_path: Path,
    privkey_seed: bytes,
    node_id: str,
    applied_migrations: Iterable[str],
    created_at: datetime | None = None,
    indent: int | None = 2,
) -> Path:
    """Write a snapshot as the Stigmem node does; returns the content-addressed path."""
    when = created_at or datetime.now(UTC)
    db = db_path.read_bytes()
    members, _ = reference_members(db, privkey_seed, node_id, applied_migrations, when, indent)
    out = Path(out_dir) / tarball_name(when, db)
    write_tar_gz(out, members, mtime=int(when.timestamp()))
    return out


def write_tar_gz(path: Path, members: Iterable[TarMember], mtime: int = 0) -> Path:
    """Write ``members`` as given (any names, kinds, duplicates) to a gzip'd tar at ``path``.

    Headers are built with ``tarfile.TarInfo`` and written by hand, so a member can declare a
    size its body does not have; nothing checks the names, that is the point.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
        truncated = False
        for member in members:
            info = _tar_info(member, mtime)
            gz.write(info.tobuf(tarfile.PAX_FORMAT))
            if member.kind != "file":
                continue
            gz.write(member.data)
            if info.size > len(member.data):
                truncated = True
                break
            gz.write(b"\0" * (-len(member.data) % _BLOCK))
        if not truncated:
            gz.write(b"\0" * (2 * _BLOCK))
    return path


def _tar_info(member: TarMember, mtime: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(member.name)
    info.mtime = mtime
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.type = {
        "file": tarfile.REGTYPE,
        "dir": tarfile.DIRTYPE,
        "symlink": tarfile.SYMTYPE,
        "hardlink": tarfile.LNKTYPE,
        "chardev": tarfile.CHRTYPE,
        "blockdev": tarfile.BLKTYPE,
        "fifo": tarfile.FIFOTYPE,
    }[member.kind]
    info.mode = (
        member.mode if member.mode is not None else (0o755 if member.kind == "dir" else 0o600)
    )
    info.linkname = member.linkname
    info.size = (
        (member.size if member.size is not None else len(member.data))
        if member.kind == "file"
        else 0
    )
    return info


def write_size_bomb(
    path: Path,
    declared_size: int,
    body_size: int | None = None,
    *,
    seed: bytes = b"\x07" * 32,
    node_id: str = "stigmem:node:00000000-0000-4000-8000-000000000000",
    created_at: datetime | None = None,
) -> Path:
    """A tarball whose ``artifacts/stigmem.db`` declares ``declared_size`` bytes of zeros.

    Only ``body_size`` zero bytes (default: all of them) are streamed through gzip, 1 MiB at a
    time, never held in memory; when ``body_size < declared_size`` the archive ends right after
    them. The manifest is signed and declares the sha256 of ``body_size`` zeros, so a fully
    streamed small bomb is a VALID snapshot: it must fail only on the reader's size cap.

    Keep tests fast: a fully streamed bomb of a few MiB with a smaller ``--max-size``, or a
    declared size past 64 GiB with a body of a few KiB.
    """
    body = declared_size if body_size is None else body_size
    when = created_at or datetime(2026, 6, 1, 3, 0, tzinfo=UTC)
    cursor = cursor_bytes(["001_init"])
    digest = hashlib.sha256()
    _stream_zeros(digest.update, body)
    manifest = sign_manifest(
        {
            "version": 1,
            "created_at": when.isoformat(timespec="microseconds"),
            "node_id": node_id,
            "signer_pubkey": public_key_of(seed),
            "artifacts": {CURSOR: sha256_ref(cursor), DATABASE: "sha256:" + digest.hexdigest()},
        },
        seed,
    )
    head = [
        TarMember(MANIFEST, json.dumps(manifest, indent=2).encode()),
        TarMember(ARTIFACTS_DIR, kind="dir"),
        TarMember(CURSOR, cursor),
    ]
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
        for member in head:
            gz.write(_tar_info(member, 0).tobuf(tarfile.PAX_FORMAT))
            gz.write(member.data + b"\0" * (-len(member.data) % _BLOCK))
        db_info = _tar_info(TarMember(DATABASE, size=declared_size), 0)
        gz.write(db_info.tobuf(tarfile.PAX_FORMAT))
        _stream_zeros(gz.write, body)
        if body >= declared_size:
            gz.write(b"\0" * (-declared_size % _BLOCK) + b"\0" * (2 * _BLOCK))
    return path


def _stream_zeros(sink: Any, count: int) -> None:
    zeros = bytes(_STREAM_CHUNK)
    while count > 0:
        step = min(count, _STREAM_CHUNK)
        sink(zeros if step == _STREAM_CHUNK else zeros[:step])
        count -= step


# --- reading --------------------------------------------------------------------------------


class ReferenceVerifyError(Exception):
    """Verification failed; ``outcome`` is one of docs/design.md section 3's outcomes."""

    def __init__(self, outcome: str, detail: str) -> None:
        super().__init__(f"{outcome}: {detail}")
        self.outcome = outcome
        self.detail = detail


def read_reference_tarball(
    path: Path,
    trusted_pubkeys: list[str] | None = None,
    *,
    db_out: Path | None = None,
    max_db_size: int = DB_CAP,
) -> dict[str, Any]:
    """Verify a snapshot tarball the way docs/design.md sections 2, 3 and 9 describe.

    Streams the archive once, accepting only the four known members as regular files (the
    directory entry optional, any order) and rejecting duplicates, links, devices, absolute or
    ``..`` paths and sizes past the caps. Then checks artifact hashes, the signature, and, if
    ``trusted_pubkeys`` is given, that the signer is one of them (else only the self-declared
    key is checked). Raises :class:`ReferenceVerifyError` with the outcome.

    Returns ``{"manifest", "snapshot_id", "signer_pubkey", "key_id", "node_id",
    "created_at", "applied_migrations", "db_sha256", "db_size", "db"}``; ``db`` is the
    database bytes, or None when they were written to ``db_out`` instead.
    """
    seen: dict[str, bytes] = {}
    db_hash = hashlib.sha256()
    db_size = 0
    db_chunks: list[bytes] = []
    sink: BinaryIO | None = None
    try:
        if db_out is not None:
            sink = open(db_out, "wb")  # noqa: SIM115 - closed in finally
        with tarfile.open(path, mode="r|gz") as tar:
            for info in tar:
                name = _check_member(info, seen, max_db_size)
                if name is None:
                    continue
                stream = tar.extractfile(info)
                if stream is None:
                    raise ReferenceVerifyError("malformed", f"{name}: unreadable member")
                if name == DATABASE:
                    while chunk := stream.read(_STREAM_CHUNK):
                        db_hash.update(chunk)
                        db_size += len(chunk)
                        if sink is not None:
                            sink.write(chunk)
                        else:
                            db_chunks.append(chunk)
                    if db_size != info.size:
                        raise ReferenceVerifyError("malformed", f"{name}: truncated")
                    seen[name] = b""
                else:
                    seen[name] = stream.read(info.size)
    except ReferenceVerifyError:
        raise
    except (tarfile.TarError, OSError, EOFError, gzip.BadGzipFile, ValueError) as exc:
        raise ReferenceVerifyError("malformed", f"not a readable tar.gz: {exc}") from None
    finally:
        if sink is not None:
            sink.close()

    if MANIFEST not in seen:
        raise ReferenceVerifyError("malformed", "no manifest.json")
    manifest = _parse_manifest(seen[MANIFEST])
    pubkey = b64url_decode_or_malformed(manifest["signer_pubkey"], 32, "signer_pubkey")
    signature = b64url_decode_or_malformed(manifest["signature"], 64, "signature")

    for member in ARTIFACT_MEMBERS:
        expected = manifest["artifacts"][member]
        if member not in seen:
            raise ReferenceVerifyError("checksum_error", f"{member} is missing")
        actual = "sha256:" + (
            db_hash.hexdigest() if member == DATABASE else hashlib.sha256(seen[member]).hexdigest()
        )
        if actual != expected:
            raise ReferenceVerifyError("checksum_error", f"{member}: sha256 differs")

    try:
        Ed25519PublicKey.from_public_bytes(pubkey).verify(signature, signed_bytes(manifest))
    except InvalidSignature:
        raise ReferenceVerifyError(
            "signature_mismatch", "signature does not match the manifest"
        ) from None
    if trusted_pubkeys is not None and manifest["signer_pubkey"] not in trusted_pubkeys:
        raise ReferenceVerifyError(
            "untrusted_key", f"key id {key_id_of(manifest['signer_pubkey'])}"
        )

    try:
        cursor = json.loads(seen[CURSOR])
        applied = cursor["applied_migrations"]
    except (ValueError, KeyError, TypeError):
        raise ReferenceVerifyError("malformed", f"{CURSOR}: not a migration cursor") from None
    return {
        "manifest": manifest,
        "snapshot_id": snapshot_id_of(manifest),
        "signer_pubkey": manifest["signer_pubkey"],
        "key_id": key_id_of(manifest["signer_pubkey"]),
        "node_id": manifest["node_id"],
        "created_at": manifest["created_at"],
        "applied_migrations": applied,
        "db_sha256": db_hash.hexdigest(),
        "db_size": db_size,
        "db": None if db_out is not None else b"".join(db_chunks),
    }


def _check_member(info: tarfile.TarInfo, seen: dict[str, bytes], max_db_size: int) -> str | None:
    """The member's name if its body must be read, None for the directory entry."""
    name = info.name
    if name.startswith("/") or ".." in name.split("/") or "\\" in name:
        raise ReferenceVerifyError("malformed", f"bad member name {name!r}")
    if info.isdir():
        if name.rstrip("/") != ARTIFACTS_DIR.rstrip("/"):
            raise ReferenceVerifyError("malformed", f"unexpected directory {name!r}")
        if ARTIFACTS_DIR in seen:
            raise ReferenceVerifyError("malformed", f"duplicate member {name!r}")
        seen[ARTIFACTS_DIR] = b""
        return None
    if not info.isreg():
        raise ReferenceVerifyError("malformed", f"{name!r} is not a regular file (link or device)")
    if name not in (MANIFEST, *ARTIFACT_MEMBERS):
        raise ReferenceVerifyError("malformed", f"unexpected member {name!r}")
    if name in seen:
        raise ReferenceVerifyError("malformed", f"duplicate member {name!r}")
    cap = max_db_size if name == DATABASE else META_CAP
    if info.size > cap:
        raise ReferenceVerifyError("malformed", f"{name} is {info.size} bytes, over the {cap} cap")
    return name


def _parse_manifest(raw: bytes) -> dict[str, Any]:
    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [k for k, _ in pairs]
        if len(keys) != len(set(keys)):
            raise ReferenceVerifyError("malformed", "manifest.json has duplicate keys")
        return dict(pairs)

    try:
        manifest = json.loads(raw.decode("utf-8"), object_pairs_hook=no_duplicates)
    except (UnicodeDecodeError, ValueError):
        raise ReferenceVerifyError("malformed", "manifest.json is not JSON") from None
    if not isinstance(manifest, dict):
        raise ReferenceVerifyError("malformed", "manifest.json is not a JSON object")
    version = manifest.get("version")
    if type(version) is not int or version != 1:
        raise ReferenceVerifyError("malformed", f"unknown manifest version {version!r}")
    for key in ("created_at", "node_id", "signer_pubkey", "signature"):
        if not isinstance(manifest.get(key), str):
            raise ReferenceVerifyError("malformed", f"manifest {key} is not a string")
    artifacts = manifest.get("artifacts")
    if not isinstance(artifacts, dict) or set(artifacts) != set(ARTIFACT_MEMBERS):
        raise ReferenceVerifyError(
            "malformed", "manifest artifacts must list exactly the two artifacts"
        )
    for member, ref in artifacts.items():
        hexpart = ref[7:] if isinstance(ref, str) and ref.startswith("sha256:") else ""
        if len(hexpart) != 64 or any(c not in "0123456789abcdef" for c in hexpart):
            raise ReferenceVerifyError("malformed", f"manifest artifact {member}: bad hash {ref!r}")
    return manifest


def b64url_decode_or_malformed(text: str, length: int, what: str) -> bytes:
    try:
        raw = b64url_decode(text)
    except ValueError:
        raise ReferenceVerifyError("malformed", f"{what} is not base64url") from None
    if len(raw) != length:
        raise ReferenceVerifyError("malformed", f"{what} is {len(raw)} bytes, expected {length}")
    return raw


def members_of(path: Path) -> list[tuple[str, str, int]]:
    """(name, kind, size) of each member, in order, for assertions on what a writer wrote."""
    with tarfile.open(path, mode="r:gz") as tar:
        return [
            (m.name, "dir" if m.isdir() else "file" if m.isreg() else "other", m.size)
            for m in tar.getmembers()
        ]


def gunzip_member(path: Path, name: str) -> bytes:
    """The raw bytes of one member (e.g. the manifest as written, indentation included)."""
    with tarfile.open(path, mode="r:gz") as tar:
        stream = tar.extractfile(name)
        assert stream is not None
        return stream.read()


__all__ = [
    "ARTIFACTS_DIR",
    "CURSOR",
    "DATABASE",
    "MANIFEST",
    "ReferenceVerifyError",
    "TarMember",
    "b64url",
    "b64url_decode",
    "build_manifest",
    "cursor_bytes",
    "gunzip_member",
    "key_id_of",
    "members_of",
    "public_key_of",
    "read_reference_tarball",
    "reference_members",
    "sign_manifest",
    "signed_bytes",
    "snapshot_id_of",
    "tarball_name",
    "write_reference_tarball",
    "write_size_bomb",
    "write_tar_gz",
]
