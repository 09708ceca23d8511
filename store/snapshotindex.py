"""The index entries one snapshot's read needs, found in the index objects as they are.

A host that holds no copy of a store's index (a new host, ``--no-cache``) would otherwise
load every index object into a ``ChunkIndex`` before its first read: an insert per chunk
of the store's whole history, then a lookup per chunk of the snapshot. A whole read of one
snapshot needs the locations of that snapshot's chunks only, so ``SnapshotIndex`` scans
the decompressed index objects for them instead:

- once for the document's chunk lists (and the chunks artifacts name directly);
- then, for each group of chunk lists (at most ``GROUP_KEYS`` chunks, which bounds the
  memory a read holds whatever the database's size), once for the group's chunks.

The first location of a chunk in index objects taken in name order wins, as when
``ChunkIndex`` loads them, and each entry used is held to the same bounds
(``limits.entry_bounds``) when it is used, so a read names the same damage either way.
Reads of single pages (``store.storedfile``) keep using ``ChunkIndex``.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import operator
import struct
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from snapshot.errors import StoreError
from store import documents
from store.index import MAGIC, Location, Placed, parsed_object

GROUP_KEYS = 3 << 15  # chunks located per scan: 384 MiB of 4 KiB pages
_RECORD = 52  # an index object's entry: the hash, then the place
_BATCH = 4096  # records whose keys are taken out of an index object in one call


@functools.lru_cache(maxsize=16)
def _keys_of(count: int) -> struct.Struct:
    """Unpacks the keys of ``count`` records in one call."""
    return struct.Struct(">" + "32s20x" * count)


_PLACE = struct.Struct(">IIIII")

# (pack number in this index, frame offset, frame length, offset, length)
Place = tuple[int, int, int, int, int]


@dataclass(frozen=True)
class _Object:
    name: str
    numbers: list[int]  # this index's pack number of each pack the object names
    records: memoryview
    first: int  # the number of its first record across all objects
    count: int  # its records


class SnapshotIndex:
    """Locations of the chunks of one snapshot document's artifacts (see the module)."""

    def __init__(
        self,
        objects: Iterable[tuple[bytes, str]],
        document: dict[str, Any],
        bounds: tuple[int, int, int] | None,
    ) -> None:
        self.packs: list[str] = []
        # Unbounded (None): what a 32-bit field can hold.
        self._chunk, self._frame, self._decoded = bounds or (1 << 32, 1 << 32, 1 << 33)
        numbers: dict[str, int] = {}
        self._objects: list[_Object] = []
        for data, name in objects:
            plain, count, body = parsed_object(data, name)
            start = len(MAGIC) + 4
            local = []
            for i in range(count):
                pack = plain[start + 32 * i : start + 32 * i + 32].hex()
                if pack not in numbers:
                    numbers[pack] = len(self.packs)
                    self.packs.append(pack)
                local.append(numbers[pack])
            last = self._objects[-1] if self._objects else None
            first = last.first + last.count if last is not None else 0
            records = memoryview(plain)[body:]
            self._objects.append(_Object(name, local, records, first, len(records) // _RECORD))
        self._firsts = [obj.first for obj in self._objects]
        self._last = self._objects[0] if self._objects else _Object("", [], memoryview(b""), 0, 0)
        # The chunk lists and directly named chunks of every artifact: what a read looks up
        # before it knows any other chunk.
        heads: set[bytes] = set()
        for entry in document.get("artifacts", {}).values():
            if entry.get("chunk_lists"):
                heads.update(documents.list_ids(entry))
            else:
                heads.update(bytes.fromhex(c) for c in entry.get("chunks", []))
        self._known: dict[bytes, int] = self._scan(heads)
        self._group: dict[bytes, int] = {}

    def _scan(self, wanted: set[bytes]) -> dict[bytes, int]:
        """The first entry for each of ``wanted`` that an index object holds, as its record
        number across all objects. Records are taken ``_BATCH`` at a time, last to first,
        each batch's hits replacing those found after it; within a batch, the set
        intersection and the key-to-number map are built in C, not a step per record."""
        found: dict[bytes, int] = {}
        for obj in reversed(self._objects):
            count = len(obj.records) // _RECORD
            for start in range((count - 1) // _BATCH * _BATCH, -1, -_BATCH):
                n = min(_BATCH, count - start)
                keys = _keys_of(n).unpack_from(obj.records, start * _RECORD)
                hits = wanted.intersection(keys)
                if hits:
                    last = obj.first + start + n - 1
                    # Reversed, so that a key held twice in the batch maps to its first.
                    numbers = dict(zip(reversed(keys), range(last, last - n, -1), strict=True))
                    found.update(zip(hits, map(numbers.__getitem__, hits), strict=True))
        return found

    def _checked(self, record: int) -> Place:
        """Record ``record`` as this index numbers it, refused as ``ChunkIndex`` refuses it."""
        obj = self._last
        at = record - obj.first
        if not 0 <= at < obj.count:
            # Records a window needs mostly lie in one object: look for another only here.
            obj = self._last = self._objects[bisect.bisect_right(self._firsts, record) - 1]
            at = record - obj.first
        pack, fo, fl, off, length = _PLACE.unpack_from(obj.records, at * _RECORD + 32)
        if (
            pack < len(obj.numbers)
            and 0 < length <= self._chunk
            and 0 < fl <= self._frame
            and off + length <= self._decoded
        ):
            return obj.numbers[pack], fo, fl, off, length
        if pack >= len(obj.numbers):
            raise StoreError(
                f"index object {obj.name} names pack number {pack} of {len(obj.numbers)}"
            )
        raise StoreError(
            f"index object {obj.name} names a chunk or frame larger than this store's "
            f"(chunks of at most {self._chunk} bytes, frames of {self._frame})"
        )

    def _place(self, key: bytes) -> Place | None:
        hit = self._group.get(key)
        if hit is None:
            hit = self._known.get(key)
        return None if hit is None else self._checked(hit)

    def lookup(self, key: bytes) -> Location | None:
        if key not in self._group and key not in self._known:
            # Not a chunk this read looked for: one scan for it alone.
            self._known.update(self._scan({key}))
        place = self._place(key)
        if place is None:
            return None
        pack, fo, fl, off, length = place
        return Location(self.packs[pack], fo, fl, off, length)

    def windows(
        self, entry: dict[str, Any], fetch_list: Callable[[bytes], bytes]
    ) -> Iterator[list[bytes]]:
        """The artifact's chunk ids, a chunk list at a time (as ``documents.chunk_windows``),
        each group's chunks located before its first list is handed out. The caller plans
        each list before it asks for the next (``rebuild``), so a group's locations are
        replaced only once none of its lists is still to be planned."""
        if not entry.get("chunk_lists"):
            yield from documents.chunk_windows(entry, fetch_list)
            return
        ids = documents.list_ids(entry)
        at = 0
        while at < len(ids):
            group: list[list[bytes]] = []
            count = 0
            while at < len(ids) and count < GROUP_KEYS:
                keys = documents.split_list(fetch_list(ids[at]))
                group.append(keys)
                count += len(keys)
                at += 1
            self._group = {}  # the last group's locations go before the next's are found
            self._group = self._scan(set(itertools.chain.from_iterable(group)))
            while group:
                yield group.pop(0)
        self._group = {}

    def locate_in_pack_order(
        self, keys: bytes, use_kept: bool = True, staging: str | None = None
    ) -> list[Placed]:
        """As ``ChunkIndex.locate_in_pack_order``: rows ``(n, pack number, frame offset,
        frame length, offset, length)`` of the n-th hash of ``keys`` found, in pack order.
        Nothing is kept (``use_kept``, ``staging``): this index lives for one read."""
        ids = documents.split_list(keys)
        known, checked = self._known, self._checked
        rows: list[Placed] = []
        for n, hit in enumerate(map(self._group.get, ids)):
            if hit is None:
                hit = known.get(ids[n])
                if hit is None:
                    continue
            rows.append((n, *checked(hit)))
        rows.sort(key=_PACK_ORDER)
        return rows


# Rows (n, pack, frame offset, frame length, offset, length) by pack, frame offset, offset, n.
_PACK_ORDER = operator.itemgetter(1, 2, 4, 0)
