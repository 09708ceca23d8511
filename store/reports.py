"""What store operations return: plain dataclasses the command line prints or turns to JSON."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


class _Report:
    """Every report prints as one line for humans and as a JSON object for scripts."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]

    def summary(self) -> str:
        return ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in self.to_json().items())


@dataclass
class PutResult(_Report):
    snapshot_id: str
    already_present: bool = False
    new_chunks: int = 0
    new_plain_bytes: int = 0
    new_bytes_stored: int = 0
    packs_written: int = 0
    objects_written: int = 0


@dataclass(frozen=True)
class Problem:
    """One finding of a check: the snapshot it concerns (None: the store's), its
    verification outcome (``malformed``, ``signature_mismatch``, ``checksum_error``,
    ``missing_data``) and what was found."""

    snapshot_id: str | None
    outcome: str
    detail: str


@dataclass
class CheckReport(_Report):
    snapshots: int = 0
    chunks_checked: int = 0
    packs: int = 0
    packs_read: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc.pop("problems")
        return doc


@dataclass
class StoreStats(_Report):
    snapshots: int
    chunks: int
    packs: int
    stored_bytes: int
    logical_bytes: int
    dedup_ratio: float


@dataclass
class GcReport(_Report):
    live_chunks: int = 0
    packs_deleted: int = 0
    packs_repacked: int = 0
    packs_written: int = 0
    packs_kept_young: int = 0
    packs_locked: int = 0  # kept whole: an S3 Object Lock holds them
    index_objects_replaced: int = 0
    bytes_freed: int = 0


@dataclass
class SyncReport(_Report):
    snapshots_copied: int = 0
    packs_copied: int = 0
    bytes_copied: int = 0
    index_written: bool = False
