"""Plain dataclasses passed into and out of the catalog (the CLI's side of the interface).

- ``SnapshotRecord``: what ``record_snapshot`` stores for a new snapshot.
- ``SnapshotFilter``: the filters of ``snapshot list`` (all optional, newest first).
- ``SnapshotSummary``: one row of ``snapshot list``; ``to_json()`` is docs/design.md section 8's
  document (plus ``label`` and ``tags``).
- ``KeyRow``: one signer key; ``to_json()`` is the ``keys list --json`` entry.
- ``PruneCandidate``: what the retention planner needs about each snapshot of a tier (a tuple).
- ``Sample``: one metric sample, ``(name, labels, value)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

Sample = tuple[str, dict[str, str], float]


def iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat(timespec="microseconds")


@dataclass(frozen=True)
class SnapshotRecord:
    id: str
    node_id: str
    created_at: datetime
    db_sha256: str
    db_size: int
    cursor: list[str]
    signer_pubkey: str
    signer_key_id: str
    manifest: dict[str, Any]
    source: str
    label: str | None = None
    tags: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class SnapshotFilter:
    node: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    signer: str | None = None
    tier: str | None = None
    verified: str | None = None
    not_verified_since: datetime | None = None
    limit: int | None = None


@dataclass(frozen=True)
class SnapshotSummary:
    id: str
    node_id: str
    created_at: datetime
    db_sha256: str
    db_size: int
    signer_key_id: str
    trusted: bool
    tiers: list[str]
    pinned: bool
    last_verified_at: datetime | None
    last_verify_outcome: str | None
    label: str | None = None
    tags: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "node_id": self.node_id,
            "created_at": iso(self.created_at),
            "db_sha256": self.db_sha256,
            "db_size": self.db_size,
            "signer_key_id": self.signer_key_id,
            "trusted": self.trusted,
            "tiers": list(self.tiers),
            "pinned": self.pinned,
            "last_verified_at": iso(self.last_verified_at),
            "last_verify_outcome": self.last_verify_outcome,
            "label": self.label,
            "tags": list(self.tags),
        }


@dataclass(frozen=True)
class KeyRow:
    key_id: str
    public_key: str
    label: str | None
    trusted: bool
    revoked: bool
    first_seen: datetime
    revoked_at: datetime | None

    def to_json(self) -> dict[str, Any]:
        return {
            "key_id": self.key_id,
            "public_key": self.public_key,
            "label": self.label,
            "trusted": self.trusted,
            "revoked": self.revoked,
            "first_seen": iso(self.first_seen),
            "revoked_at": iso(self.revoked_at),
        }


class PruneCandidate(NamedTuple):
    """One snapshot with a live placement in a tier, in the retention planner's row shape
    (``snapshot.retention.PlanRow``), so a list of them plans as it is."""

    created_utc: str  # UTC, "YYYY-MM-DDTHH:MM:SS.ffffff" (fixed width: text order is time order)
    id: str
    node_id: str
    flags: int  # snapshot.retention's TRUSTED (1) | PINNED (2) | VERIFIED_OK (4)

    @property
    def created_at(self) -> datetime:
        return datetime.fromisoformat(self.created_utc).replace(tzinfo=UTC)

    @property
    def trusted(self) -> bool:
        return bool(self.flags & 1)

    @property
    def pinned(self) -> bool:
        return bool(self.flags & 2)

    @property
    def last_verify_ok(self) -> bool:
        return bool(self.flags & 4)
