"""An independent reader of a local store, written from docs/design.md section 5 alone.

It shares no code with ``store/``: it reads ``config.json``, the snapshot document, the index
objects and the packs as the design describes them, and rebuilds each artifact, so a test can
hold the writer to the written format.
"""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path
from typing import Any

import zstandard

INDEX_MAGIC = b"stgmidx1"
DICT_MAGIC = b"stgmdict"
PACK_MAGIC = b"stgmpak1"
ENTRY = struct.Struct(">32sIIIII")
RECORD = struct.Struct(">32sIIII")

Location = tuple[str, int, int, int, int]  # pack, frame offset, frame length, offset, length


def signed_bytes(manifest: dict[str, Any]) -> bytes:
    body = {k: v for k, v in manifest.items() if k != "signature"}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode("utf-8")


class ReferenceStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.config = json.loads((root / "config.json").read_text())
        assert self.config["format"] == "stigmem-store"
        self.locations: dict[bytes, Location] = {}
        for path in sorted((root / "index").iterdir()):
            self._load_index(path)
        self.dictionaries: dict[int, zstandard.ZstdCompressionDict] = {}

    def _load_index(self, path: Path) -> None:
        data = path.read_bytes()
        assert hashlib.sha256(data).hexdigest() == path.name
        with zstandard.ZstdDecompressor().stream_reader(data) as reader:
            plain = reader.read()
        assert plain[:8] == INDEX_MAGIC
        (count,) = struct.unpack(">I", plain[8:12])
        packs = [plain[12 + 32 * i : 44 + 32 * i].hex() for i in range(count)]
        body = plain[12 + 32 * count :]
        assert len(body) % ENTRY.size == 0
        for name, pack, frame_offset, frame_length, offset, length in ENTRY.iter_unpack(body):
            self.locations.setdefault(
                name, (packs[pack], frame_offset, frame_length, offset, length)
            )

    def pack_path(self, pack: str) -> Path:
        return self.root / "packs" / pack[:2] / pack

    def pack_records(self, pack: str) -> list[tuple[bytes, int, int, int, int]]:
        """The pack's own list of its chunks, from its trailer."""
        data = self.pack_path(pack).read_bytes()
        assert data[-8:] == PACK_MAGIC
        (length,) = struct.unpack(">I", data[-12:-8])
        trailer = zstandard.ZstdDecompressor().decompress(data[-12 - length : -12])
        assert len(trailer) % RECORD.size == 0
        return list(RECORD.iter_unpack(trailer))

    def _dictionary(self, pack: str, dict_id: int) -> zstandard.ZstdCompressionDict:
        if dict_id not in self.dictionaries:
            with self.pack_path(pack).open("rb") as handle:
                head = handle.read(12)
                assert head[:8] == DICT_MAGIC
                (length,) = struct.unpack(">I", head[8:12])
                raw = zstandard.ZstdDecompressor().decompress(handle.read(length))
            dictionary = zstandard.ZstdCompressionDict(raw)
            assert dictionary.dict_id() == dict_id
            self.dictionaries[dict_id] = dictionary
        return self.dictionaries[dict_id]

    def chunk(self, name: bytes) -> bytes:
        pack, frame_offset, frame_length, offset, length = self.locations[name]
        with self.pack_path(pack).open("rb") as handle:
            handle.seek(frame_offset)
            frame = handle.read(frame_length)
        assert len(frame) == frame_length
        dict_id = zstandard.get_frame_parameters(frame).dict_id
        if dict_id:
            decoder = zstandard.ZstdDecompressor(dict_data=self._dictionary(pack, dict_id))
        else:
            decoder = zstandard.ZstdDecompressor()
        plain = decoder.decompress(frame)[offset : offset + length]
        assert hashlib.sha256(plain).digest() == name
        return plain

    def document(self, snapshot_id: str) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads(
            (self.root / "snapshots" / f"{snapshot_id}.json").read_text()
        )
        assert hashlib.sha256(signed_bytes(doc["manifest"])).hexdigest() == snapshot_id
        assert set(doc["artifacts"]) == set(doc["manifest"]["artifacts"])
        return doc

    def artifact(self, snapshot_id: str, member: str) -> bytes:
        entry = self.document(snapshot_id)["artifacts"][member]
        names = [bytes.fromhex(h) for h in entry["chunks"]]
        if entry.get("chunk_lists", False):
            blobs = [self.chunk(name) for name in names]
            names = [blob[i : i + 32] for blob in blobs for i in range(0, len(blob), 32)]
        data = b"".join(self.chunk(name) for name in names)
        assert len(data) == entry["size"]
        return data
