"""Whole-store work: stats, check, gc (with repacking), index rebuild, sync to another store.

The orders here follow restic's design so an interruption at any point leaves a usable
store: gc writes repacked packs, then the new index, then deletes the old index objects and
only then the packs they described; sync copies packs, then an index object, then the
snapshot documents, so a re-run after a kill picks up where it stopped.
"""

from __future__ import annotations

import hashlib
import logging
import math
import random
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from snapshot.errors import StoreError, VerificationError
from store import crypto, docread, documents, index, layout, limits, packs
from store.backend import Entry
from store.encryption import opened_pack
from store.index import ChunkIndex
from store.reader import ChunkSource, pack_dictionary
from store.reports import CheckReport, GcReport, Problem, StoreStats, SyncReport
from store.repository import Store

log = logging.getLogger(__name__)

# restic's default: repack a pack once more than half of it is unused. Lower it (down to 0,
# "repack anything with unused data") to trade upload and rewrite work for space.
MAX_UNUSED = 0.5
COPY_BATCH_BYTES = 64 << 20
TAIL_BYTES = 64 << 10


def _packs(store: Store) -> dict[str, Entry]:
    return {name: e for e in store.backend.list(layout.PACKS) if (name := layout.pack_of(e.path))}


def _documents(store: Store, ids: list[str]) -> Iterator[tuple[str, dict[str, Any] | str]]:
    """(snapshot id, document) or (snapshot id, why it is refused), a few at a time."""
    for sid, doc in docread.load_many(store.backend, ids, store.config):
        yield sid, (f"{doc.outcome}: {doc.detail}" if isinstance(doc, VerificationError) else doc)


def _referenced(source: ChunkSource, doc: dict[str, Any]) -> Iterator[bytes]:
    """Every chunk a document needs: its chunk-list blobs and the chunks they list."""
    for keys in _referenced_lists(source, doc):
        yield from keys


def _referenced_lists(source: ChunkSource | None, doc: dict[str, Any]) -> Iterator[list[bytes]]:
    """What :func:`_referenced` yields, a list at a time: each artifact's chunk-list blobs,
    then the chunks of each list (without a ``source``, an encrypted store's structure as
    a host without its store key sees it: what the documents name)."""
    for entry in doc["artifacts"].values():
        yield list(documents.list_ids(entry))
        if source is not None:
            yield from source.windows(entry)


# -- stats ------------------------------------------------------------------------------


def stats(store: Store) -> StoreStats:
    objects = store.backend.list()
    stored = sum(e.size for e in objects if not e.path.startswith(layout.LOCKS + "/"))
    pack_count = sum(1 for e in objects if layout.pack_of(e.path))
    ids = store.snapshot_ids()
    logical = 0
    for _, doc in _documents(store, ids):
        if isinstance(doc, dict):
            logical += sum(int(a["size"]) for a in doc["artifacts"].values())
    return StoreStats(
        snapshots=len(ids),
        chunks=len(store.index()),
        packs=pack_count,
        stored_bytes=stored,
        logical_bytes=logical,
        dedup_ratio=round(logical / stored, 3) if stored else 0.0,
    )


# -- check ------------------------------------------------------------------------------


def _pack_damage(store: Store, name: str, data: bytes) -> str | None:
    """Why a pack read in full is damaged, or None when every chunk in it checks out."""
    if hashlib.sha256(data).hexdigest() != name:
        return "its content does not match its name"
    encryption = store.encryption if store.encryption.encrypted else None
    try:
        by_frame: dict[tuple[int, int], list[packs.PackEntry]] = {}
        for e in packs.entries_of(data):
            by_frame.setdefault((e.frame_offset, e.frame_length), []).append(e)
        frames = sorted(by_frame)
        if max((o + n for o, n in frames), default=0) > len(data):
            return "a frame lies beyond the pack's end"
        if encryption is not None:
            opened = opened_pack(
                encryption, name, data, [(o, n, by_frame[(o, n)][0].key) for o, n in frames]
            )
            data = bytes(opened.data)
            by_frame = {opened.frames[f]: by_frame[f] for f in frames}
            frames = [opened.frames[f] for f in frames]
        # The pack's frames a batch at a time (with a frame per page, a call into zstd for each
        # would make a full check much slower), each checked as it comes.
        decoded = packs.in_memory(data).decompress_many(name, data, frames)
        for frame, plain in zip(frames, decoded, strict=True):
            if isinstance(plain, packs.PackError):
                return str(plain)
            if encryption is not None:
                continue  # each frame opened with its chunk's id: that was the check
            for e in by_frame[frame]:
                if not packs.chunk_matches(e.key, plain[e.offset : e.offset + e.length]):
                    return f"chunk {e.key.hex()} does not match its hash"
    except (packs.PackError, crypto.OpenError) as exc:
        return str(exc)
    return None


@dataclass
class _DocFindings:
    unindexed: int = 0
    first_unindexed: str = ""
    missing_packs: dict[str, int] = field(default_factory=dict)
    damaged_packs: dict[str, int] = field(default_factory=dict)


# What a caller checks in each document besides its references (the CLI: the signature);
# it returns the problems found, as details.
Inspect = Callable[[str, dict[str, Any]], list[Problem]]
HINT_CHUNKS = 1 << 16  # locations a check keeps from one snapshot for the next


def check(
    store: Store, read_data_fraction: float = 0.0, inspect: Inspect | None = None
) -> CheckReport:
    """Every document parses and every chunk it references is indexed and in a present
    pack; ``read_data_fraction`` of the packs is read and verified; ``inspect(id, doc)``
    adds the caller's own findings per document (the CLI checks signatures there)."""
    # Shared: a gc running meanwhile would make packs vanish under the check and turn
    # into false "missing_data" findings (recorded as failed verifications).
    with store.lock("shared"):
        return _check(store, read_data_fraction, inspect)


def _check(store: Store, read_data_fraction: float, inspect: Inspect | None) -> CheckReport:
    report = CheckReport()
    if read_data_fraction > 0 and store.encryption.encrypted:
        store.encryption.need_store_key("reading its packs")
    chunk_index = store.index()
    present = _packs(store)
    report.packs = len(present)
    readable = sorted(present)
    if store.encryption.encrypted:
        # A pack no keyring holds a key for cannot be opened by anyone: an index that names
        # it is reported below as missing data; one no index names is what a put stopped
        # between its packs and its keyring left behind, garbage for gc, not damage.
        store.encryption.forget_keys()
        sealed = store.encryption.sealed_keys()
        readable = [p for p in readable if bytes.fromhex(p) in sealed]
    sample: list[str] = []
    if read_data_fraction > 0 and readable:
        count = min(len(readable), math.ceil(read_data_fraction * len(readable)))
        sample = random.sample(readable, count)

    largest = limits.max_pack(store.config)

    def read_and_check(name: str) -> str | None:
        if present[name].size > largest:
            return f"it holds more than the {largest} bytes of any pack this store writes"
        try:
            return _pack_damage(store, name, store.backend.read(layout.pack_path(name), largest))
        except FileNotFoundError:
            return "it vanished while being checked"

    # Two packs at a time: zstd and SHA-256 release the GIL, and on an object store the
    # downloads overlap. (Checking the references meanwhile gained nothing: both halves
    # are mostly Python, so they only took turns.)
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="check") as pool:
        verdicts = list(pool.map(read_and_check, sample))
    damaged = {name: why for name, why in zip(sample, verdicts, strict=True) if why}
    report.packs_read = len(sample)
    _check_references(store, chunk_index, present, damaged, report, inspect)
    if read_data_fraction >= 1.0:
        _check_rebuilds(store, report)
    referenced_damage = {p.detail for p in report.problems}
    for name, why in sorted(damaged.items()):
        detail = f"pack {name} is damaged: {why}"
        if not any(name in d for d in referenced_damage):
            report.problems.append(Problem(None, "checksum_error", detail))
    if store.encryption.encrypted:
        report.problems.extend(_unkeyed(store, chunk_index, present))
    return report


def _unkeyed(store: Store, chunk_index: ChunkIndex, present: dict[str, Entry]) -> list[Problem]:
    """Packs the index names whose key no keyring holds (sealed to the store's key): their
    chunks cannot be read by anyone. Keyrings are plaintext records: no key is needed."""
    sealed = store.encryption.sealed_keys()
    lost = [p for p in chunk_index.packs if p in present and bytes.fromhex(p) not in sealed]
    return [
        Problem(None, "missing_data", f"pack {name} has no sealed key in any keyring")
        for name in sorted(lost)
    ]


def _check_references(
    store: Store,
    chunk_index: ChunkIndex,
    present: dict[str, Entry],
    damaged: dict[str, str],
    report: CheckReport,
    inspect: Inspect | None,
) -> None:
    """Report, per document, what it references that no index or no pack holds, and how
    many of its chunks lie in packs found damaged."""
    ids = store.snapshot_ids()
    report.snapshots = len(ids)
    # Oldest to newest per node: a snapshot shares most of its chunks with the one before,
    # so only the chunks the previous one did not have are looked up (memory: one
    # snapshot's locations, whatever the store holds). A first pass reads every document
    # for its place in that order (and the caller's inspection); the second reads them
    # again one batch at a time, so memory holds the order, not every document.
    order: list[tuple[str, str, str]] = []
    for sid, doc in _documents(store, ids):
        if isinstance(doc, str):
            report.problems.append(Problem(sid, "malformed", doc))
            continue
        if inspect is not None:
            report.problems.extend(inspect(sid, doc))
        order.append(_age_order((sid, doc)))
    order.sort()
    previous: dict[bytes, tuple[str, int, int, int, int]] = {}
    for sid, doc in _documents(store, [sid for _, _, sid in order]):
        if isinstance(doc, str):  # unreadable now, readable a moment ago: say so
            report.problems.append(Problem(sid, "malformed", doc))
            continue
        findings = _DocFindings()
        source = (
            store.chunk_source(sid, chunk_index)
            if not store.encryption.encrypted or store.keys.store is not None
            else None
        )
        # Chunks are taken a chunk list at a time, each list looked up in one batched,
        # sorted query of what the previous snapshot did not hold (a lookup per chunk was
        # most of a check). The locations of a snapshot's first HINT_CHUNKS chunks are kept
        # for the next, so memory stays flat however large a database: holding a whole
        # snapshot's took a full check from 81 to 171 MiB at 1 GiB.
        current: dict[bytes, tuple[str, int, int, int, int]] = {}
        try:
            for keys in _referenced_lists(source, doc):
                report.chunks_checked += len(keys)
                located = {key: loc for key in keys if (loc := previous.get(key)) is not None}
                located.update(chunk_index.locate_many([k for k in keys if k not in located]))
                _tally(keys, located, present, damaged, findings)
                if len(current) < HINT_CHUNKS:
                    current.update(located)
        except VerificationError as exc:  # a chunk list is unreadable: check what was listed
            report.problems.append(Problem(sid, exc.outcome, f"{exc.outcome}: {exc.detail}"))
        previous = current
        report.problems.extend(_problems(sid, findings, damaged))


class _Digest:
    """A sink that hashes what a read writes to it."""

    def __init__(self) -> None:
        self.sha = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.sha.update(data)
        return len(data)


def _check_rebuilds(store: Store, report: CheckReport) -> None:
    """Rebuild every artifact of every document not found wanting already, and compare it
    with the digest its manifest signs: pack bytes that check out prove only that each
    chunk is itself, not that a document's chunk list and size make the signed artifact
    (a list pointing at another snapshot's chunks, a size off by a page)."""
    flawed = {p.snapshot_id for p in report.problems}
    ids = [sid for sid in store.snapshot_ids() if sid not in flawed]
    for sid, doc in _documents(store, ids):
        if isinstance(doc, str):
            report.problems.append(Problem(sid, "malformed", doc))
            continue
        for member in sorted(doc["artifacts"]):
            sink = _Digest()
            try:
                store.read_artifact(sid, member, sink, check_chunks=False, document=doc)  # type: ignore[arg-type]
            except VerificationError as exc:
                report.problems.append(Problem(sid, exc.outcome, f"{exc.outcome}: {exc.detail}"))
                break
            if f"sha256:{sink.sha.hexdigest()}" != doc["manifest"]["artifacts"][member]:
                report.problems.append(
                    Problem(
                        sid,
                        "checksum_error",
                        f"checksum_error: {member} rebuilt from the store does not hash to "
                        "the digest its manifest signs",
                    )
                )
                break


def _tally(
    keys: list[bytes],
    located: dict[bytes, tuple[str, int, int, int, int]],
    present: dict[str, Entry],
    damaged: dict[str, str],
    findings: _DocFindings,
) -> None:
    for key in keys:
        location = located.get(key)
        if location is None:
            findings.unindexed += 1
            findings.first_unindexed = findings.first_unindexed or key.hex()
            continue
        pack = location[0]
        if pack not in present:
            findings.missing_packs[pack] = findings.missing_packs.get(pack, 0) + 1
        elif pack in damaged:
            findings.damaged_packs[pack] = findings.damaged_packs.get(pack, 0) + 1


def _age_order(item: tuple[str, dict[str, Any] | str]) -> tuple[str, str, str]:
    sid, doc = item
    manifest = doc.get("manifest", {}) if isinstance(doc, dict) else {}
    return str(manifest.get("node_id", "")), str(manifest.get("created_at", "")), sid


def _problems(sid: str, found: _DocFindings, damaged: dict[str, str]) -> list[Problem]:
    out = []
    if found.unindexed:
        out.append(
            Problem(
                sid,
                "missing_data",
                f"missing_data: {found.unindexed} chunks in no index "
                f"(first {found.first_unindexed})",
            )
        )
    for pack, n in sorted(found.missing_packs.items()):
        out.append(
            Problem(sid, "missing_data", f"missing_data: pack {pack} is missing ({n} chunks)")
        )
    for pack, n in sorted(found.damaged_packs.items()):
        out.append(
            Problem(
                sid,
                "checksum_error",
                f"checksum_error: pack {pack} is damaged: {damaged[pack]} ({n} chunks)",
            )
        )
    return out


# -- gc ---------------------------------------------------------------------------------


def _mark(store: Store, chunk_index: ChunkIndex) -> bytearray:
    live = bytearray(len(chunk_index))
    for sid, doc in _documents(store, store.snapshot_ids()):
        if isinstance(doc, str):
            raise StoreError(f"gc refused on {store.url}: {doc}")
        source = store.chunk_source(sid, chunk_index)
        try:
            for key in _referenced(source, doc):
                position = chunk_index.find(key)
                if position < 0:
                    raise StoreError(
                        f"gc refused on {store.url}: snapshot {sid} needs chunk "
                        f"{key.hex()} that is in no index (run check)"
                    )
                live[position] = 1
        except VerificationError as exc:
            raise StoreError(f"gc refused on {store.url}: {exc.detail}") from None
    return live


def _repack(
    store: Store, chunk_index: ChunkIndex, live: bytearray, doomed: set[str], report: GcReport
) -> tuple[int, set[str]]:
    """Copy the live chunks of ``doomed`` packs into new packs; return bytes written and the
    names of the packs written."""
    written = 0
    moved: list[int] = []
    names: set[str] = set()

    def on_pack(name: str, data: bytearray, entries: list[packs.PackEntry]) -> None:
        nonlocal written
        store.backend.write(layout.pack_path(name), data)
        names.add(name)
        number = chunk_index.pack_number(name)
        for entry in entries:
            position = moved.pop(0)
            chunk_index.set_raw(
                position, number, entry.frame_offset, entry.frame_length, entry.offset, entry.length
            )
        written += len(data)
        report.packs_written += 1

    cfg = store.config
    by_pack: dict[str, list[int]] = {}
    for position in chunk_index.positions_of_packs(doomed):
        if live[position]:
            by_pack.setdefault(chunk_index.location(position).pack, []).append(position)
    kept = _repack_dictionary(store, sorted(by_pack))
    crypt = store.encryption
    writer = packs.PackWriter(
        on_pack,
        cfg.level,
        cfg.frame_size,
        cfg.pack_size,
        kept,
        *crypt.pack_hooks(),
    )
    for name, positions in sorted(by_pack.items()):
        data: bytes = store.backend.read(layout.pack_path(name), limits.max_pack(cfg))
        lengths: dict[tuple[int, int], tuple[int, int]] = {}
        try:
            if crypt.encrypted:
                located = [(chunk_index.location(p), chunk_index.key(p)) for p in positions]
                opened = opened_pack(
                    crypt,
                    name,
                    data,
                    [(loc.frame_offset, loc.frame_length, k) for loc, k in located],
                )
                data, lengths = bytes(opened.data), opened.frames
        except crypto.OpenError as exc:
            raise StoreError(f"gc stopped on {store.url}: pack {name}: {exc}") from None
        decoder = packs.in_memory(data)
        frames: dict[int, bytes] = {}
        for position in positions:
            loc = chunk_index.location(position)
            _, length = lengths.get((loc.frame_offset, loc.frame_length), (0, loc.frame_length))
            try:
                if loc.frame_offset not in frames:
                    frames = {
                        loc.frame_offset: decoder.decompress(
                            name, data[loc.frame_offset : loc.frame_offset + length]
                        )
                    }
            except packs.PackError as exc:
                raise StoreError(f"gc stopped on {store.url}: pack {name}: {exc}") from None
            chunk = frames[loc.frame_offset][loc.offset : loc.offset + loc.length]
            key = chunk_index.key(position)
            if not crypt.matches(key, chunk):
                raise StoreError(
                    f"gc stopped on {store.url}: chunk {key.hex()} in pack {name} "
                    "does not match its hash"
                )
            moved.append(position)
            writer.add(key, chunk)
    writer.finish()
    return written, names


def _repack_dictionary(store: Store, names: list[str]) -> bytes | None:
    """What live chunks are repacked with: the dictionary of the first of ``names`` (doomed
    packs) that holds a sound one. It was trained on this data, and training again would cost
    more than it could gain; a pack without one (a put too small to train on) must not turn
    the others' pages back into frames of several pages."""
    for name in names:
        try:
            return pack_dictionary(
                store.backend, store.encryption if store.encryption.encrypted else None, name
            )
        except packs.PackError:
            continue  # none, or damaged: the next one (gc stops on damaged frames anyway)
    return None


def gc(store: Store, grace_seconds: float = 3600, max_unused: float = MAX_UNUSED) -> GcReport:
    """Free data no snapshot document references and that is older than the grace period;
    repack packs whose unused share exceeds ``max_unused`` (0.0 to 1.0)."""
    if not 0.0 <= max_unused <= 1.0:
        raise StoreError(f"max_unused must be between 0 and 1, not {max_unused}")
    with store.lock("exclusive"):
        try:
            return _gc(store, grace_seconds, max_unused)
        finally:
            store.forget_index()


def _gc(store: Store, grace_seconds: float, max_unused: float) -> GcReport:
    report = GcReport()
    store.forget_index()
    chunk_index = store.index()
    old_index = {n: layout.index_path(n) for n in store._index_names}
    index_sizes = {e.path: e.size for e in store.backend.list(layout.INDEX)}
    live = _mark(store, chunk_index)
    report.live_chunks = sum(live)

    total = [0] * len(chunk_index.packs)
    used = [0] * len(chunk_index.packs)
    for position in range(len(chunk_index)):
        pack, _, _, _, length = chunk_index.raw(position)
        total[pack] += length
        if live[position]:
            used[pack] += length

    now = time.time()
    delete: set[str] = set()
    repack: set[str] = set()
    for name, entry in _packs(store).items():
        young = entry.mtime is None or now - entry.mtime < grace_seconds
        number = chunk_index._pack_numbers.get(name)
        if number is None or used[number] == 0:
            if young:
                report.packs_kept_young += 1
            else:
                delete.add(name)
        elif not young and total[number] - used[number] > total[number] * max_unused:
            repack.add(name)
    # Packs an S3 Object Lock still holds stay, whole, with their index entries.
    locked = store.backend.retained([layout.pack_path(p) for p in sorted(delete | repack)])
    if locked:
        held = {p for p in delete | repack if layout.pack_path(p) in locked}
        report.packs_locked = len(held)
        delete -= held
        repack -= held
    if not delete and not repack:
        return report

    present = _packs(store)
    if repack and store.encryption.encrypted:
        store.encryption.need_store_key("repacking")
    written, rewritten = _repack(store, chunk_index, live, repack, report)
    # Pack names are content hashes: a repack that a killed gc already wrote comes out under
    # the same name, which this run found unreferenced (its index was not written yet).
    gone = (delete | repack) - rewritten
    keep = [
        p for p in range(len(chunk_index)) if chunk_index.packs[chunk_index.raw(p)[0]] not in gone
    ]
    stale_keyrings = _compact_keyrings(store, gone) if store.encryption.encrypted else []
    name, data = index.encode(chunk_index, keep)
    store.backend.write(layout.index_path(name), data)
    written += len(data)
    stale_index = [path for n, path in old_index.items() if n != name]
    store.backend.delete(stale_index)
    store.backend.delete(stale_keyrings)
    store.backend.delete([layout.pack_path(p) for p in sorted(gone)])

    freed = sum(present[p].size for p in gone) + sum(index_sizes.get(p, 0) for p in stale_index)
    report.packs_deleted = len(delete)
    report.packs_repacked = len(repack)
    report.index_objects_replaced = len(stale_index)
    report.bytes_freed = freed - written
    return report


def _compact_keyrings(store: Store, gone: set[str]) -> list[str]:
    """Write one keyring with the sealed keys of every pack that stays (those the repack
    wrote included), as they are; return the paths of the keyrings it replaces."""
    crypt = store.encryption
    repacked = crypt.take_written()  # in no keyring yet: they go in this one
    old = crypt.keyring_paths()
    crypt.forget_keys()
    assert crypt.public is not None
    every = {**crypt.sealed_keys(), **repacked}
    kept = {p: k for p, k in every.items() if p.hex() not in gone}
    name = crypt.put_keyring(crypt.public, kept)
    crypt.forget_keys()
    stale = [path for path in old if path != layout.keyring_path(name)]
    locked = store.backend.retained(stale)  # stay until their lock ends; readers ignore none
    return [path for path in stale if path not in locked]


# -- index rebuild ----------------------------------------------------------------------


def _trailer(store: Store, name: str, size: int) -> list[packs.PackEntry]:
    path = layout.pack_path(name)
    tail = store.backend.read_range(path, max(0, size - TAIL_BYTES), size)
    start, end = packs.trailer_span(size, tail)
    tail_start = size - len(tail)
    if start >= tail_start:
        return packs.parse_trailer(tail[start - tail_start : end - tail_start])
    return packs.parse_trailer(store.backend.read_range(path, start, end))


def _entry_fits(entry: packs.PackEntry, store: Store) -> bool:
    chunk, frame, decoded = limits.entry_bounds(store.config)
    return (
        0 < entry.length <= chunk
        and 0 < entry.frame_length <= frame
        and entry.offset + entry.length <= decoded
    )


def rebuild_index(store: Store) -> int:
    """Replace all index objects by one rebuilt from the pack trailers; return its size."""
    with store.lock("exclusive"):
        try:
            return _rebuild_index(store)
        finally:
            store.forget_index()


def _rebuild_index(store: Store) -> int:
    old = [e.path for e in store.backend.list(layout.INDEX)]
    fresh = ChunkIndex()
    for name, entry in sorted(_packs(store).items()):
        try:
            records = _trailer(store, name, entry.size)
        except packs.PackError as exc:
            log.warning("pack %s in %s left out of the index: %s", name, store.url, exc)
            continue
        if any(not _entry_fits(r, store) for r in records):
            log.warning(
                "pack %s in %s left out of the index: its trailer names a chunk or frame "
                "larger than this store's",
                name,
                store.url,
            )
            continue
        number = fresh.pack_number(name)
        for r in records:
            fresh.add(r.key, number, r.frame_offset, r.frame_length, r.offset, r.length)
    name, data = index.encode(fresh, range(len(fresh)))
    store.backend.write(layout.index_path(name), data)
    store.backend.delete([p for p in old if p != layout.index_path(name)])
    return len(fresh)


# -- sync -------------------------------------------------------------------------------


def sync(src: Store, dst: Store, progress: Callable[[int, int], None] | None = None) -> SyncReport:
    """Copy every snapshot ``dst`` lacks from ``src``: packs first, documents last."""
    with src.lock("shared"), dst.lock("shared"):
        try:
            return _sync(src, dst, progress)
        finally:
            dst.forget_index()


def _sync(src: Store, dst: Store, progress: Callable[[int, int], None] | None) -> SyncReport:
    report = SyncReport()
    theirs = set(dst.snapshot_ids())
    missing = [sid for sid in src.snapshot_ids() if sid not in theirs]
    if not missing:
        return report
    if src.encryption.public != dst.encryption.public and (
        src.encryption.public is None or dst.encryption.public is None
    ):
        raise StoreError(
            f"cannot sync from {src.url} to {dst.url}: sync copies packs as they are, and one "
            "store is encrypted and the other is not (store migrate re-encodes)"
        )
    src_index, dst_index = src.index(), dst.index()
    # An encrypted store's chunk lists are sealed: every pack the target lacks goes.
    needed: set[str] = set(src_index.packs) if src.encryption.encrypted else set()
    for sid, doc in _documents(src, missing):
        if isinstance(doc, str):
            raise StoreError(f"cannot sync {sid} from {src.url}: {doc}")
        if src.encryption.encrypted:
            continue
        source = ChunkSource(src.backend, src_index, sid)
        try:
            for key in _referenced(source, doc):
                if key in dst_index:
                    continue
                location = src_index.lookup(key)
                if location is None:
                    raise StoreError(
                        f"cannot sync {sid} from {src.url}: chunk {key.hex()} is in no index"
                    )
                needed.add(location.pack)
        except VerificationError as exc:
            raise StoreError(f"cannot sync from {src.url}: {exc.detail}") from None

    src_packs = _packs(src)
    copy = sorted(needed - set(_packs(dst)))
    total = sum(src_packs[p].size for p in copy if p in src_packs)
    batch: list[str] = []
    batch_size = 0
    for name in copy:
        if name not in src_packs:
            raise StoreError(f"cannot sync from {src.url}: pack {name} is missing")
        batch.append(name)
        batch_size += src_packs[name].size
        if batch_size >= COPY_BATCH_BYTES:
            _copy_packs(src, dst, batch, report, progress, total)
            batch, batch_size = [], 0
    _copy_packs(src, dst, batch, report, progress, total)

    if copy and src.encryption.encrypted:
        _copy_keys(src, dst, copy)
    if needed:
        name, data = index.encode(src_index, src_index.positions_of_packs(needed))
        dst.backend.write(layout.index_path(name), data)
        report.index_written = True
    docs = src.backend.read_many([layout.snapshot_path(s) for s in missing], docread.MAX_DOCUMENT)
    dst.backend.write_many(docs)
    report.snapshots_copied = len(missing)
    return report


def _copy_keys(src: Store, dst: Store, names: list[str]) -> None:
    """One keyring in ``dst`` for the packs copied: their sealed keys as they are when both
    stores have one store key, else opened with the source's and sealed to the target's."""
    wanted = {bytes.fromhex(n) for n in names}
    same = src.encryption.public == dst.encryption.public
    if not same:
        src.encryption.need_store_key(f"syncing to {dst.url}, encrypted to another store key,")
    sealed = src.encryption.sealed_keys()
    for pack in sorted(wanted):
        if pack not in sealed:
            raise StoreError(f"cannot sync from {src.url}: no keyring holds pack {pack.hex()}")
        if same:
            dst.encryption.keep_sealed(pack, sealed[pack])
        else:
            dst.encryption.pack_written(pack.hex(), src.encryption.pack_key(pack.hex()))
    dst.encryption.write_keyring()


def _copy_packs(
    src: Store,
    dst: Store,
    names: list[str],
    report: SyncReport,
    progress: Callable[[int, int], None] | None,
    total: int,
) -> None:
    if not names:
        return
    datas = src.backend.read_many([layout.pack_path(n) for n in names], limits.max_pack(src.config))
    for name in names:
        if hashlib.sha256(datas[layout.pack_path(name)]).hexdigest() != name:
            raise StoreError(f"cannot sync from {src.url}: pack {name} is damaged")
    dst.backend.write_many(datas)
    report.packs_copied += len(names)
    report.bytes_copied += sum(len(d) for d in datas.values())
    if progress:
        progress(report.bytes_copied, total)
