"""What store operations return: plain dataclasses the command line prints or turns to JSON."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class PutResult:
    snapshot_id: str
    already_present: bool = False
    new_chunks: int = 0
    new_plain_bytes: int = 0
    new_bytes_stored: int = 0
    packs_written: int = 0
    objects_written: int = 0


@dataclass(frozen=True)
class Problem:
    snapshot_id: str | None
    detail: str


@dataclass
class CheckReport:
    snapshots: int = 0
    chunks_checked: int = 0
    packs: int = 0
    packs_read: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class StoreStats:
    snapshots: int
    chunks: int
    packs: int
    stored_bytes: int
    logical_bytes: int
    dedup_ratio: float


@dataclass
class GcReport:
    live_chunks: int = 0
    packs_deleted: int = 0
    packs_repacked: int = 0
    packs_written: int = 0
    packs_kept_young: int = 0
    index_objects_replaced: int = 0
    bytes_freed: int = 0


@dataclass
class SyncReport:
    snapshots_copied: int = 0
    packs_copied: int = 0
    bytes_copied: int = 0
    index_written: bool = False
