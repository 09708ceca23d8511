"""The signed manifest of a snapshot (docs/design.md section 2): parsing, signing, identifiers.

Parsing is strict because the manifest is attacker-controlled input: duplicate JSON keys,
wrong types, an unknown version or malformed keys are all ``malformed``. The signed bytes are
recomputed from what was parsed, so an indented ``manifest.json`` verifies like a compact one.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from snapshot import boundedjson
from snapshot.errors import malformed, shown
from snapshot.keys import KeyFormatError, b64url_decode, b64url_encode, key_id

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

DB_MEMBER = "artifacts/stigmem.db"
CURSOR_MEMBER = "artifacts/schema_migration_cursor.json"
ARTIFACT_MEMBERS = (CURSOR_MEMBER, DB_MEMBER)
MANIFEST_VERSION = 1
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
# Both members are small; docs/design.md section 9 caps them at 1 MiB in a tarball too.
MAX_MEMBER_BYTES = 1 << 20
# A snapshot taken before the Unix epoch cannot exist (tar mtimes are unsigned), and times
# near the end of year 9999 overflow as soon as an offset or a retention bucket is applied.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 1, 1, tzinfo=UTC)
MAX_NODE_ID = 255
_FIELDS = {
    "version": int,
    "created_at": str,
    "node_id": str,
    "signer_pubkey": str,
    "artifacts": dict,
    "signature": str,
}


@dataclass(frozen=True)
class Manifest:
    raw: dict[str, Any]
    created_at: datetime
    node_id: str
    signer_pubkey: bytes
    signature: bytes
    artifacts: dict[str, str]

    @property
    def signed_bytes(self) -> bytes:
        return signed_bytes(self.raw)

    @property
    def snapshot_id(self) -> str:
        return hashlib.sha256(self.signed_bytes).hexdigest()

    @property
    def key_id(self) -> str:
        return key_id(self.signer_pubkey)

    @property
    def signer_pubkey_b64(self) -> str:
        return b64url_encode(self.signer_pubkey)

    @property
    def db_sha256(self) -> str:
        return self.artifacts[DB_MEMBER].removeprefix("sha256:")

    def signature_valid(self) -> bool:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        try:
            Ed25519PublicKey.from_public_bytes(self.signer_pubkey).verify(
                self.signature, self.signed_bytes
            )
        except InvalidSignature:
            return False
        return True


def signed_bytes(manifest: dict[str, Any]) -> bytes:
    body = {k: v for k, v in manifest.items() if k != "signature"}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode("utf-8")


def parse_manifest(data: bytes) -> Manifest:
    doc = boundedjson.load(data, "manifest.json", malformed, max_bytes=MAX_MEMBER_BYTES)
    return manifest_from_dict(doc)


def parse_created_at(value: str) -> datetime:
    """A manifest's ``created_at``, in UTC; ``malformed`` unless it is ISO 8601 with an
    offset and between 1970 and 9999 once converted to UTC."""
    try:
        created_at = datetime.fromisoformat(value)
    except ValueError:
        raise malformed(f"manifest.json created_at is not ISO 8601: {shown(value, 60)}") from None
    if created_at.tzinfo is None:
        raise malformed("manifest.json created_at has no UTC offset")
    try:
        in_utc = created_at.astimezone(UTC)
    except (OverflowError, ValueError):
        raise malformed(f"manifest.json created_at is out of range: {shown(value, 60)}") from None
    if not EARLIEST <= in_utc < LATEST:
        raise malformed(f"manifest.json created_at is out of range: {shown(value, 60)}")
    return in_utc


def manifest_from_dict(doc: Any) -> Manifest:
    if not isinstance(doc, dict):
        raise malformed("manifest.json is not a JSON object")
    for field, kind in _FIELDS.items():
        if field not in doc:
            raise malformed(f"manifest.json lacks {field!r}")
        value = doc[field]
        # bool is an int in Python; a manifest with "version": true is still wrong.
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise malformed(f"manifest.json field {field!r} must be {kind.__name__}")
    if doc["version"] != MANIFEST_VERSION:
        raise malformed(f"manifest.json has unknown version {doc['version']}")
    artifacts = doc["artifacts"]
    if set(artifacts) != set(ARTIFACT_MEMBERS):
        raise malformed(f"manifest.json artifacts must be exactly {', '.join(ARTIFACT_MEMBERS)}")
    for member, digest in artifacts.items():
        if not isinstance(digest, str) or not _DIGEST.match(digest):
            raise malformed(f"manifest.json artifact {member!r} is not a sha256: digest")
    created_at = parse_created_at(doc["created_at"])
    # The catalog stores the node id in a column of 255 characters, and PostgreSQL text holds
    # no NUL: refused here, a write could otherwise fail after a restore replaced its target.
    if len(doc["node_id"]) > MAX_NODE_ID:
        raise malformed(f"manifest.json node_id is longer than {MAX_NODE_ID} characters")
    if "\0" in doc["node_id"]:
        raise malformed("manifest.json node_id holds a NUL character")
    try:
        pubkey = b64url_decode(doc["signer_pubkey"], 32, "signer_pubkey")
        signature = b64url_decode(doc["signature"], 64, "signature")
    except KeyFormatError as exc:
        raise malformed(f"manifest.json {exc}") from None
    return Manifest(
        raw=doc,
        created_at=created_at,
        node_id=doc["node_id"],
        signer_pubkey=pubkey,
        signature=signature,
        artifacts=dict(artifacts),
    )


def sign_manifest(
    *,
    created_at: datetime,
    node_id: str,
    db_sha256: str,
    cursor_sha256: str,
    private_key: Ed25519PrivateKey,
) -> Manifest:
    from snapshot.keys import public_key_bytes

    body: dict[str, Any] = {
        "version": MANIFEST_VERSION,
        "created_at": created_at.astimezone(UTC).isoformat(timespec="microseconds"),
        "node_id": node_id,
        "signer_pubkey": b64url_encode(public_key_bytes(private_key)),
        "artifacts": {
            CURSOR_MEMBER: f"sha256:{cursor_sha256}",
            DB_MEMBER: f"sha256:{db_sha256}",
        },
    }
    body["signature"] = b64url_encode(private_key.sign(signed_bytes(body)))
    return manifest_from_dict(body)


def manifest_file_bytes(manifest: Manifest) -> bytes:
    """What we write as ``manifest.json``: indented like the node's, keys sorted."""
    return (json.dumps(manifest.raw, indent=2, sort_keys=True) + "\n").encode("utf-8")


def cursor_bytes(applied_migrations: list[str]) -> bytes:
    return (
        json.dumps({"applied_migrations": sorted(applied_migrations)}, indent=2) + "\n"
    ).encode()


def parse_cursor(data: bytes) -> list[str]:
    doc = boundedjson.load(
        data, "schema_migration_cursor.json", malformed, max_bytes=MAX_MEMBER_BYTES
    )
    applied = doc.get("applied_migrations") if isinstance(doc, dict) else None
    if not isinstance(applied, list) or not all(isinstance(v, str) for v in applied):
        raise malformed("schema_migration_cursor.json lacks a list of applied_migrations")
    return list(applied)


def snapshot_name(created_at: datetime, db_sha256: str) -> str:
    stamp = created_at.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"stigmem-snapshot-{stamp}-{db_sha256[:12]}.tar.gz"
