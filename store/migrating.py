"""``store migrate FROM TO``: copy every snapshot of one store into another, re-encoded.

Each snapshot is rebuilt from the source, checked against the digests its manifest signs,
and put into the target as a new snapshot would be (chunked, compressed and, for an
encrypted target, encrypted there), oldest first so each one deduplicates against the one
before. The document is the commit point of each, so a migration killed at any moment
leaves the target with whole snapshots only, and running it again skips those. The source
is only read.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from snapshot.errors import StoreError
from store import docread
from store.repository import Store

Progress = Callable[[int, int], None]


@dataclass
class MigrateReport:
    snapshots_copied: int = 0
    snapshots_present: int = 0
    bytes_read: int = 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class _Hashed:
    def __init__(self, path: Path) -> None:
        self.file = path.open("wb")
        self.sha = hashlib.sha256()

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self.sha.update(data)
        return self.file.write(data)


class _Discard:
    def write(self, data: bytes | bytearray | memoryview) -> int:
        return len(data)


def migrate(src: Store, dst: Store, progress: Progress | None = None) -> MigrateReport:
    if src.url == dst.url:
        raise StoreError(f"store migrate: {src.url} is both the source and the target")
    report = MigrateReport()
    theirs = set(dst.snapshot_ids())
    ids = src.snapshot_ids()
    docs: list[tuple[str, str, dict[str, Any]]] = []
    for sid, doc in docread.load_many(src.backend, ids, src.config):
        if not isinstance(doc, dict):
            raise StoreError(f"store migrate stopped: snapshot {sid} in {src.url}: {doc}")
        if sid in theirs:
            report.snapshots_present += 1
            continue
        docs.append((str(doc["manifest"].get("created_at", "")), sid, doc))
    docs.sort()
    total = sum(int(a["size"]) for _, _, doc in docs for a in doc["artifacts"].values())
    if docs:
        dst.encryption.chunk_id()  # a target that needs the writer key says so first
    for _, sid, doc in docs:
        with tempfile.TemporaryDirectory(prefix="stigmem-migrate-") as scratch:
            artifacts: dict[str, Path | bytes] = {}
            for n, member in enumerate(sorted(doc["artifacts"])):
                path = Path(scratch) / str(n)
                sink = _Hashed(path)
                # Chunks not hashed one by one: the whole artifact's digest is checked below,
                # and a read that checks each chunk runs only to name a damaged one.
                with sink.file:
                    src.read_artifact(sid, member, sink, check_chunks=False, document=doc)  # type: ignore[arg-type]
                digest = "sha256:" + sink.sha.hexdigest()
                if doc["manifest"]["artifacts"].get(member) != digest:
                    src.read_artifact(sid, member, _Discard(), document=doc)  # type: ignore[arg-type]
                    raise StoreError(
                        f"store migrate stopped: snapshot {sid} in {src.url}: {member} does "
                        "not rebuild to the digest its manifest signs"
                    )
                artifacts[member] = path
                report.bytes_read += path.stat().st_size
                if progress:
                    progress(report.bytes_read, total)
            checked = doc.get("checked")
            dst.put_snapshot(
                sid,
                doc["manifest"],
                artifacts,
                checked=checked if isinstance(checked, dict) else None,
            )
        report.snapshots_copied += 1
    return report
