"""The store's one reader of snapshot documents: every command's document comes from here.

A document is the snapshot named by its file only when its manifest hashes to that name:
anyone able to write to the store can copy one snapshot's document over another's name, and
a reader that took the name on trust would restore the other snapshot's bytes under it. So a
document is refused, as ``malformed`` (exit 3), when

- it is larger than ``MAX_DOCUMENT`` bytes, not JSON, or not shaped as ``documents`` says;
- its manifest's signed bytes do not hash to the snapshot id it is stored under;
- its artifacts are not exactly the members its manifest signs a digest for;
- an artifact's size and chunk count cannot belong together: every chunk holds at least one
  byte and at most ``limits.max_chunk`` bytes, and every chunk list names at most
  ``max_chunk / 32`` chunks. The manifest does not sign sizes, so this is what keeps a
  document from declaring a size no read could ever reach; a read then stops as soon as
  its chunks make more than the declared size (``store.rebuild``);
- its migration cursor declares more than ``MAX_MEMBER_BYTES`` (it is read into memory).

Whether the signature verifies, and whether the rebuilt bytes hash to the manifest's digests,
are the reader's to judge (restore, verify, ``store check --read-data-subset 100%``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

from snapshot.errors import StoreError, VerificationError
from snapshot.manifest import CURSOR_MEMBER, MAX_MEMBER_BYTES, signed_bytes
from store import documents, layout, limits
from store.backend import Backend
from store.config import StoreConfig

# A 64 GiB database of 512-byte pages in lists of 4096 hashes names 32,768 list ids, 2.2 MB.
MAX_DOCUMENT = 16 << 20
BATCH = 32  # documents read per request batch


def _malformed(snapshot_id: str, detail: str) -> VerificationError:
    return VerificationError("malformed", f"snapshot document {snapshot_id}: {detail}", snapshot_id)


def load(backend: Backend, snapshot_id: str, config: StoreConfig) -> dict[str, Any]:
    """The document of ``snapshot_id``; FileNotFoundError when the store has none."""
    data = backend.read_range(layout.snapshot_path(snapshot_id), 0, MAX_DOCUMENT + 1)
    return checked(data, snapshot_id, config)


def load_many(
    backend: Backend, ids: list[str], config: StoreConfig
) -> Iterator[tuple[str, dict[str, Any] | VerificationError]]:
    """(snapshot id, document) or (snapshot id, why it is refused), a batch at a time; a
    document gone since the listing is refused as missing."""
    for start in range(0, len(ids), BATCH):
        batch = ids[start : start + BATCH]
        paths = [layout.snapshot_path(s) for s in batch]
        datas: list[bytes | None]
        try:
            datas = list(backend.read_ranges([(p, 0, MAX_DOCUMENT + 1) for p in paths]))
        except FileNotFoundError:
            datas = [_one(backend, p) for p in paths]
        for sid, data in zip(batch, datas, strict=True):
            if data is None:
                yield sid, _malformed(sid, "vanished while being read")
                continue
            try:
                yield sid, checked(data, sid, config)
            except VerificationError as exc:
                yield sid, exc


def _one(backend: Backend, path: str) -> bytes | None:
    try:
        return backend.read_range(path, 0, MAX_DOCUMENT + 1)
    except FileNotFoundError:
        return None


def checked(data: bytes, snapshot_id: str, config: StoreConfig) -> dict[str, Any]:
    """``data`` as the document of ``snapshot_id``, or ``malformed``."""
    if len(data) > MAX_DOCUMENT:
        raise _malformed(snapshot_id, f"larger than {MAX_DOCUMENT} bytes")
    try:
        doc = documents.parse(data, snapshot_id)
    except StoreError as exc:
        raise VerificationError("malformed", exc.message, snapshot_id) from None
    manifest = doc["manifest"]
    if hashlib.sha256(signed_bytes(manifest)).hexdigest() != snapshot_id:
        raise _malformed(snapshot_id, "its manifest does not hash to this id")
    signed = manifest.get("artifacts")
    if not isinstance(signed, dict) or set(signed) != set(doc["artifacts"]):
        raise _malformed(snapshot_id, "its artifacts are not the ones its manifest signs")
    largest = limits.max_chunk(config)
    for member, entry in doc["artifacts"].items():
        problem = _size_problem(entry, largest)
        if not problem and member == CURSOR_MEMBER and entry["size"] > MAX_MEMBER_BYTES:
            # Read into memory whole (restore, verify, export): small, as in a tarball.
            problem = f"{entry['size']} bytes, more than a migration cursor holds"
        if problem:
            raise _malformed(snapshot_id, f"artifact {member[:80]!r}: {problem}")
    return doc


def _size_problem(entry: dict[str, Any], largest: int) -> str | None:
    size, count, lists = entry["size"], len(entry["chunks"]), entry.get("chunk_lists", False)
    if type(size) is not int or size < 0:
        return "size is not a count of bytes"
    if not isinstance(lists, bool):
        return "chunk_lists is not true or false"
    per_list = largest // 32 if lists else 1
    if (size == 0) != (count == 0) or count > size or size > count * per_list * largest:
        return f"{count} {'chunk lists' if lists else 'chunks'} cannot hold {size} bytes"
    return None
