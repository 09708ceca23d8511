"""Snapshot documents (``snapshots/<snapshot id>.json``), the commit point of a put.

Plain JSON, written last::

    {"manifest": {... the signed manifest, verbatim ...},
     "artifacts": {
        "artifacts/schema_migration_cursor.json":
            {"size": 41, "chunk_lists": false, "chunks": ["<sha256 hex of chunk>"]},
        "artifacts/stigmem.db":
            {"size": 268435456, "chunk_lists": true,
             "chunks": ["<sha256 hex of a chunk list>", ...]}}}

With ``"chunk_lists": false`` ``chunks`` names the artifact's chunks in order. With
``"chunk_lists": true`` (any artifact of more than ``direct_max`` chunks) ``chunks`` names
chunk-list blobs instead: each blob is the concatenation of up to ``hashes_per_list`` raw
32-byte chunk hashes, stored in packs like any chunk (content-addressed, deduplicated,
checked on read). A 256 MiB database of 4 KiB pages then costs 16 list ids in its document
rather than 65,536 hashes, and the lists themselves are compressed binary.

A document may also hold ``"checked"``: the signer's attestation that the database passed
SQLite's check when it was created (``snapshot.checked.attest``). Readers that do not use
it ignore it; a malformed one is only not used.
"""

from __future__ import annotations

import functools
import json
import re
import struct
from collections.abc import Callable, Iterator
from typing import Any

from snapshot import boundedjson
from snapshot.errors import StoreError

BlobFetcher = Callable[[bytes], bytes]
# A 64 GiB database of 512-byte pages in lists of 4096 hashes names 32,768 list ids, 2.2 MB.
MAX_DOCUMENT_BYTES = 16 << 20
_HEX64 = re.compile(r"[0-9a-f]{64}")


def encode(
    manifest: dict[str, Any],
    artifacts: dict[str, dict[str, Any]],
    checked: dict[str, Any] | None = None,
) -> bytes:
    doc: dict[str, Any] = {"manifest": manifest, "artifacts": artifacts}
    if checked is not None:
        doc["checked"] = checked
    return json.dumps(doc).encode()


def parse(data: bytes, snapshot_id: str) -> dict[str, Any]:
    doc = boundedjson.load(
        data, f"snapshot document {snapshot_id}", StoreError, max_bytes=MAX_DOCUMENT_BYTES
    )
    if (
        not isinstance(doc, dict)
        or not isinstance(doc.get("manifest"), dict)
        or not isinstance(doc.get("artifacts"), dict)
    ):
        raise StoreError(f"snapshot document {snapshot_id} lacks manifest or artifacts")
    for member, entry in doc["artifacts"].items():
        if (
            not isinstance(entry, dict)
            or not isinstance(entry.get("size"), int)
            or entry["size"] < 0
            or not isinstance(entry.get("chunks"), list)
            or not all(isinstance(c, str) and _HEX64.fullmatch(c) for c in entry["chunks"])
        ):
            raise StoreError(f"snapshot document {snapshot_id}: artifact {member} is malformed")
    return doc


def artifact_entry(size: int, chunk_lists: bool, names: list[bytes]) -> dict[str, Any]:
    return {"size": size, "chunk_lists": chunk_lists, "chunks": [n.hex() for n in names]}


def split_list(blob: bytes) -> list[bytes]:
    if len(blob) % 32:
        raise ValueError("chunk list length is not a multiple of 32")
    return list(_ids_of(len(blob) // 32).unpack(blob))


@functools.lru_cache(maxsize=16)
def _ids_of(count: int) -> struct.Struct:
    """Splits ``count`` hashes in one call (a list holds thousands, split on every read)."""
    return struct.Struct("32s" * count)


def list_ids(entry: dict[str, Any]) -> list[bytes]:
    """The chunk-list blobs an artifact entry names (none when it lists chunks directly)."""
    return [bytes.fromhex(c) for c in entry["chunks"]] if entry.get("chunk_lists") else []


def chunk_windows(entry: dict[str, Any], fetch_list: BlobFetcher) -> Iterator[list[bytes]]:
    """The artifact's chunk hashes in order, one list per chunk-list blob."""
    if not entry.get("chunk_lists"):
        yield [bytes.fromhex(c) for c in entry["chunks"]]
        return
    for blob_id in list_ids(entry):
        yield split_list(fetch_list(blob_id))
