"""Database copies this host has seen pass SQLite's integrity check, known by their SHA-256.

``PRAGMA quick_check`` is a function of a file's bytes and of the SQLite that runs it.
``create`` runs it on the consistent copy it signs, and a restore hashes the bytes it writes
on the way (to compare them with the signed manifest). When a restore has written exactly
the bytes this host already checked, checking them again can only give the same answer,
and that second check would be a serial pass over the whole file at the end of the restore.
So ``create`` leaves a mark here once its check passed, and a restore that finds the mark
for the digest of what it wrote says so instead of checking again.

A mark is a file named by the hex digest, under ``$STIGMEM_HOME/cache/checked/``, holding
the check that passed and the SQLite version that ran it; a mark of another version or of
another check is not used. Marks are written temp + rename, only after a check passed, and
are never needed: a missing or unreadable one only costs a restore its check. A restore
given ``--full-check`` always runs ``integrity_check`` itself.

Another host has no marks of this one. For it, ``create`` also puts a signed attestation
in the snapshot's store document (``attest``): the check that passed, the SQLite version
that ran it, the snapshot id and the database's digest, signed by the key that signs the
manifest. A restore that wrote bytes of that digest, on the same SQLite version, whose
manifest's signer the attestation verifies under, and that is not forced past a failed
verification (``attested``), may take the attestation as it takes a mark: whoever can
forge it can sign the snapshot itself.
"""

from __future__ import annotations

import logging
import re
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Any

from snapshot.fileio import atomic_write_bytes
from snapshot.keys import KeyFormatError, b64url_decode, b64url_encode

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from snapshot.manifest import Manifest

QUICK = "quick_check"
FULL = "integrity_check"
# A passed integrity_check covers quick_check too (it runs every quick_check test and more).
_COVERS = {QUICK: (QUICK, FULL), FULL: (FULL,)}
_HEX = re.compile(r"[0-9a-f]{64}")
log = logging.getLogger("stigmem.cache")


class CheckedCopies:
    """Marks in ``folder``: which database digests passed which check, on this SQLite."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def record(self, digest: str, check: str) -> None:
        """Remember that the file of ``digest`` (``sha256:<hex>`` or hex) passed ``check``.
        Best effort: a cache that cannot be written costs later restores a check, never the
        command that just succeeded."""
        name = _hex(digest)
        if name is None or check not in _COVERS:
            return
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(self.folder / name, _mark(check))
        except OSError as exc:
            log.debug("cache: cannot leave a check mark in %s: %s", self.folder, exc)

    def holds(self, digest: str, check: str) -> bool:
        """Whether a file of ``digest`` is known to pass ``check`` on this SQLite."""
        name = _hex(digest)
        if name is None or check not in _COVERS:
            return False
        try:
            text = (self.folder / name).read_bytes()
        except FileNotFoundError:
            return False
        except OSError as exc:
            log.debug("cache: cannot read the check mark %s: %s", name, exc)
            return False
        return any(text == _mark(covering) for covering in _COVERS[check])


# What an attestation signs starts with this line: no manifest (JSON) or other signed text
# of this tool starts so, so a signature of one can never pass for the other.
_ATTESTATION = b"stigmem-snapshots integrity attestation v1\n"


def attestation_bytes(check: str, sqlite_version: str, snapshot_id: str, db_hex: str) -> bytes:
    return _ATTESTATION + f"{check}\n{sqlite_version}\n{snapshot_id}\n{db_hex}\n".encode()


def attest(key: Ed25519PrivateKey, check: str, snapshot_id: str, digest: str) -> dict[str, str]:
    """The store document's record that the database of ``digest`` passed ``check`` here,
    signed with ``key`` (the manifest's signing key)."""
    db_hex = _hex(digest)
    if db_hex is None or check not in _COVERS:
        raise ValueError(f"cannot attest {check} of {digest}")
    version = sqlite3.sqlite_version
    signature = key.sign(attestation_bytes(check, version, snapshot_id, db_hex))
    return {
        "check": check,
        "sqlite": version,
        "db_sha256": db_hex,
        "signature": b64url_encode(signature),
    }


def attested(record: Any, manifest: Manifest, digest: str, check: str) -> bool:
    """Whether ``record`` (a store document's ``checked``) says, under the signature of
    ``manifest``'s signer, that the database of ``digest`` (the bytes a restore wrote, which
    the manifest signs) passed a check covering ``check`` on this host's SQLite version."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    if not isinstance(record, dict) or check not in _COVERS:
        return False
    db_hex = _hex(digest)
    fields = [record.get(name) for name in ("check", "sqlite", "db_sha256", "signature")]
    if db_hex is None or not all(isinstance(f, str) for f in fields):
        return False
    done, version, attested_hex, signature = (str(f) for f in fields)
    if (
        done not in _COVERS[check]
        or version != sqlite3.sqlite_version
        or attested_hex != db_hex
        or manifest.db_sha256 != db_hex
    ):
        return False
    try:
        raw = b64url_decode(signature, 64, "attestation signature")
        Ed25519PublicKey.from_public_bytes(manifest.signer_pubkey).verify(
            raw, attestation_bytes(done, version, manifest.snapshot_id, db_hex)
        )
    except (KeyFormatError, InvalidSignature, ValueError):
        return False
    return True


def _mark(check: str) -> bytes:
    return f"{check} ok sqlite {sqlite3.sqlite_version}\n".encode()


def _hex(digest: str) -> str | None:
    name = digest.removeprefix("sha256:")
    return name if _HEX.fullmatch(name) else None
