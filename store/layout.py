"""Where each object of a store lives, relative to the store root (docs/design.md section 5).

Pure functions: no I/O. Object names are lowercase SHA-256 hex digests; packs are spread over
256 sub-directories by their first two digits so no directory grows past what a local
filesystem lists comfortably.
"""

from __future__ import annotations

import re

CONFIG = "config.json"
SNAPSHOTS = "snapshots"
PACKS = "packs"
INDEX = "index"
LOCKS = "locks"
KEYS = "keys"

_HEX64 = re.compile(r"[0-9a-f]{64}")
# Whole names only: joined by NUL, which no file name holds (a newline can be in one).
_DOCUMENT = re.compile(r"(?<![^\0])([0-9a-f]{64})\.json(?![^\0])")


def is_hash(name: str) -> bool:
    return _HEX64.fullmatch(name) is not None


def snapshot_path(snapshot_id: str) -> str:
    return f"{SNAPSHOTS}/{snapshot_id}.json"


def pack_path(pack: str) -> str:
    return f"{PACKS}/{pack[:2]}/{pack}"


def index_path(name: str) -> str:
    return f"{INDEX}/{name}"


def keyring_path(name: str) -> str:
    return f"{KEYS}/{name}"


def keyring_of(path: str) -> str | None:
    parts = path.split("/")
    if len(parts) != 2 or parts[0] != KEYS or not is_hash(parts[1]):
        return None
    return parts[1]


def lock_path(name: str) -> str:
    return f"{LOCKS}/{name}"


def snapshot_id_of(path: str) -> str | None:
    """The snapshot id named by ``snapshots/<id>.json``, or None for anything else."""
    parts = path.split("/")
    if len(parts) != 2 or parts[0] != SNAPSHOTS or not parts[1].endswith(".json"):
        return None
    sid = parts[1][: -len(".json")]
    return sid if is_hash(sid) else None


def snapshot_ids_of(names: list[str]) -> list[str]:
    """The snapshot ids among the names of ``snapshots/`` (one regex pass, not a test per
    name: 100,000 documents are listed by every prune)."""
    return _DOCUMENT.findall("\0".join(names))


def pack_of(path: str) -> str | None:
    """The pack hash named by ``packs/<2 hex>/<hash>``, or None for anything else."""
    parts = path.split("/")
    if len(parts) != 3 or parts[0] != PACKS or not is_hash(parts[2]):
        return None
    return parts[2] if parts[1] == parts[2][:2] else None


def index_of(path: str) -> str | None:
    parts = path.split("/")
    if len(parts) != 2 or parts[0] != INDEX or not is_hash(parts[1]):
        return None
    return parts[1]
