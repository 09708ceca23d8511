"""Which pack holds which chunk: index objects and their compact in-memory form.

An index object (``index/<sha256 of the object>``) is zstd-compressed binary::

    b"stgmidx1"  u32 pack count  pack count x 32-byte raw pack hash
    entries: 32-byte chunk hash, u32 pack number (into the list above),
             u32 frame offset, u32 frame length, u32 offset in frame, u32 length

(all integers big-endian). A put writes at most one, for the chunks it added; gc and
``rebuild_index`` replace them all by one. Everything in an index can be rebuilt from the
pack trailers (``packs.read_trailer``).

In memory the index is ``ChunkIndex``: an open-addressing hash table whose keys live in one
bytearray and whose locations live in one ``array('I')``: about 52 bytes per chunk plus
8-16 bytes of slots, with no Python object per chunk, so a store of millions of pages fits
in a few tens of MiB. SHA-256 digests are uniform, so their first 8 bytes are the hash.
"""

from __future__ import annotations

import hashlib
import struct
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import zstandard

from snapshot.errors import StoreError

MAGIC = b"stgmidx1"
_ENTRY = struct.Struct(">32sIIIII")
_FIELDS = 5  # pack, frame offset, frame length, offset in frame, length


@dataclass(frozen=True)
class Location:
    pack: str
    frame_offset: int
    frame_length: int
    offset: int
    length: int


class ChunkIndex:
    def __init__(self) -> None:
        self.packs: list[str] = []
        self._pack_numbers: dict[str, int] = {}
        self._keys = bytearray()
        self._loc = array("I")
        self._slots = array("I", bytes(4 * 1024))
        self._mask = 1023

    def __len__(self) -> int:
        return len(self._keys) // 32

    def pack_number(self, pack: str) -> int:
        number = self._pack_numbers.get(pack)
        if number is None:
            number = len(self.packs)
            self.packs.append(pack)
            self._pack_numbers[pack] = number
        return number

    def _slot(self, key: bytes) -> int:
        """The slot holding ``key``, or the empty slot where it would go."""
        mask = self._mask
        slot = int.from_bytes(key[:8], "little") & mask
        slots, keys = self._slots, self._keys
        while True:
            value = slots[slot]
            if value == 0:
                return slot
            start = (value - 1) * 32
            if keys[start : start + 32] == key:
                return slot
            slot = (slot + 1) & mask

    def find(self, key: bytes) -> int:
        """Position of ``key``'s entry, or -1."""
        return self._slots[self._slot(key)] - 1

    def __contains__(self, key: object) -> bool:
        return isinstance(key, bytes) and self.find(key) >= 0

    def add(
        self, key: bytes, pack: int, frame_offset: int, frame_length: int, offset: int, length: int
    ) -> int:
        """Add ``key`` unless present (the first location wins); return its position."""
        slot = self._slot(key)
        existing = self._slots[slot]
        if existing:
            return existing - 1
        position = len(self)
        self._keys += key
        self._loc.extend((pack, frame_offset, frame_length, offset, length))
        self._slots[slot] = position + 1
        if (position + 1) * 2 > self._mask:
            self._grow()
        return position

    def _grow(self) -> None:
        size = (self._mask + 1) * 2
        self._slots = array("I", bytes(4 * size))
        self._mask = size - 1
        keys = self._keys
        for position in range(len(self)):
            self._slots[self._slot(bytes(keys[position * 32 : position * 32 + 32]))] = position + 1

    def key(self, position: int) -> bytes:
        return bytes(self._keys[position * 32 : position * 32 + 32])

    def raw(self, position: int) -> tuple[int, int, int, int, int]:
        base = position * _FIELDS
        loc = self._loc
        return loc[base], loc[base + 1], loc[base + 2], loc[base + 3], loc[base + 4]

    def set_raw(
        self,
        position: int,
        pack: int,
        frame_offset: int,
        frame_length: int,
        offset: int,
        length: int,
    ) -> None:
        base = position * _FIELDS
        self._loc[base : base + _FIELDS] = array(
            "I", (pack, frame_offset, frame_length, offset, length)
        )

    def location(self, position: int) -> Location:
        pack, frame_offset, frame_length, offset, length = self.raw(position)
        return Location(self.packs[pack], frame_offset, frame_length, offset, length)

    def lookup(self, key: bytes) -> Location | None:
        position = self.find(key)
        return None if position < 0 else self.location(position)

    def positions_of_packs(self, packs: set[str]) -> Iterator[int]:
        wanted = {self._pack_numbers[p] for p in packs if p in self._pack_numbers}
        loc = self._loc
        for position in range(len(self)):
            if loc[position * _FIELDS] in wanted:
                yield position

    def load(self, data: bytes, name: str) -> None:
        """Merge one index object's content."""
        try:
            plain = zstandard.ZstdDecompressor().decompressobj().decompress(data)
        except zstandard.ZstdError:
            raise StoreError(f"index object {name} is corrupt (does not decompress)") from None
        if not plain.startswith(MAGIC) or len(plain) < len(MAGIC) + 4:
            raise StoreError(f"index object {name} is not a stigmem index")
        (count,) = struct.unpack_from(">I", plain, len(MAGIC))
        start = len(MAGIC) + 4
        body = start + 32 * count
        if (len(plain) - body) % _ENTRY.size:
            raise StoreError(f"index object {name} is truncated")
        numbers = [
            self.pack_number(plain[start + 32 * i : start + 32 * i + 32].hex())
            for i in range(count)
        ]
        for key, pack, *rest in _ENTRY.iter_unpack(memoryview(plain)[body:]):
            if pack >= count:
                raise StoreError(f"index object {name} names pack number {pack} of {count}")
            self.add(key, numbers[pack], *rest)


def encode(index: ChunkIndex, positions: Iterable[int]) -> tuple[str, bytearray]:
    """An index object holding the given entries of ``index``: (name, bytes).

    Entries are compressed as they are produced: a whole-store index is tens of MiB of
    records, and holding them plain next to their compressed form would dominate memory.
    """
    chosen = array("I", positions)
    local: dict[int, int] = {}
    packs: list[str] = []
    for position in chosen:
        pack = index.raw(position)[0]
        if pack not in local:
            local[pack] = len(packs)
            packs.append(index.packs[pack])
    compressor = zstandard.ZstdCompressor(level=3).compressobj()
    out = bytearray(compressor.compress(MAGIC + struct.pack(">I", len(packs))))
    out += compressor.compress(b"".join(bytes.fromhex(p) for p in packs))
    for start in range(0, len(chosen), 4096):
        piece = bytearray()
        for position in chosen[start : start + 4096]:
            pack, *rest = index.raw(position)
            piece += _ENTRY.pack(index.key(position), local[pack], *rest)
        out += compressor.compress(bytes(piece))
    out += compressor.flush()
    # Handed over as the bytearray it is: a copy would double the peak for a large index.
    return hashlib.sha256(out).hexdigest(), out
