"""The signed manifest of a snapshot (DESIGN.md section 2): parsing, signing, identifiers.

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

from snapshot.errors import malformed
from snapshot.keys import KeyFormatError, b64url_decode, b64url_encode, key_id

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

DB_MEMBER = "artifacts/stigmem.db"
CURSOR_MEMBER = "artifacts/schema_migration_cursor.json"
ARTIFACT_MEMBERS = (CURSOR_MEMBER, DB_MEMBER)
MANIFEST_VERSION = 1
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
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


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise malformed(f"manifest.json has duplicate key {key!r}")
        out[key] = value
    return out


def parse_manifest(data: bytes) -> Manifest:
    try:
        doc = json.loads(data.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise malformed(f"manifest.json is not JSON: {exc}") from None
    return manifest_from_dict(doc)


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
    try:
        created_at = datetime.fromisoformat(doc["created_at"])
    except ValueError:
        raise malformed(
            f"manifest.json created_at is not ISO 8601: {doc['created_at']!r}"
        ) from None
    if created_at.tzinfo is None:
        raise malformed("manifest.json created_at has no UTC offset")
    try:
        pubkey = b64url_decode(doc["signer_pubkey"], 32, "signer_pubkey")
        signature = b64url_decode(doc["signature"], 64, "signature")
    except KeyFormatError as exc:
        raise malformed(f"manifest.json {exc}") from None
    return Manifest(
        raw=doc,
        created_at=created_at.astimezone(UTC),
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
    try:
        doc = json.loads(data.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise malformed(f"schema_migration_cursor.json is not JSON: {exc}") from None
    applied = doc.get("applied_migrations") if isinstance(doc, dict) else None
    if not isinstance(applied, list) or not all(isinstance(v, str) for v in applied):
        raise malformed("schema_migration_cursor.json lacks a list of applied_migrations")
    return list(applied)


def snapshot_name(created_at: datetime, db_sha256: str) -> str:
    stamp = created_at.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"stigmem-snapshot-{stamp}-{db_sha256[:12]}.tar.gz"
