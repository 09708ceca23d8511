"""The store's ``config.json``: format marker, version, chunking, compression, pack sizes.

Settings are read from the store, never assumed, so a store written with other settings
stays readable; only ``version`` above ``VERSION`` is refused.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from snapshot import boundedjson
from snapshot.errors import StoreError

FORMAT = "stigmem-store"
VERSION = 1
MAX_CONFIG_BYTES = 64 << 10


@dataclass(frozen=True)
class StoreConfig:
    pages_per_chunk: int = 1
    # Level 3: measured 1.08-1.18x the zstd-3 floor against 1.07-1.16x at level 6, at
    # half the CPU time.
    level: int = 3
    frame_size: int = 1 << 20
    # Bytes of the zstd dictionary every chunk is compressed with, each in a frame of its own
    # (store.packs); 0: chunks compressed together in frames of ``frame_size``, as stores made
    # before dictionaries keep doing. 112 KiB, zstd's usual size: against 1 MiB frames, the
    # bench database's first snapshot came out 0.9% larger (16 KiB: 7.7%, 64 KiB: 2.1%).
    dictionary_size: int = 112 << 10
    pack_size: int = 16 << 20
    hashes_per_list: int = 4096
    direct_max: int = 64
    created_at: str = ""

    def to_json(self) -> bytes:
        doc: dict[str, Any] = {
            "format": FORMAT,
            "version": VERSION,
            "created_at": self.created_at or datetime.now(UTC).isoformat(),
            "chunking": {"method": "sqlite-pages", "pages_per_chunk": self.pages_per_chunk},
            "compression": {
                "algorithm": "zstd",
                "level": self.level,
                "frame_size": self.frame_size,
                "dictionary_size": self.dictionary_size,
            },
            "packs": {"target_size": self.pack_size},
            "chunk_lists": {"hashes_per_list": self.hashes_per_list, "direct_max": self.direct_max},
        }
        return json.dumps(doc, indent=2).encode()


def parse(data: bytes, url: str) -> StoreConfig:
    doc = boundedjson.load(data, f"{url}: config.json", StoreError, max_bytes=MAX_CONFIG_BYTES)
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise StoreError(f"{url} is not a stigmem store: config.json has no format {FORMAT!r}")
    version = doc.get("version")
    if not isinstance(version, int):
        raise StoreError(f"{url}: config.json has no integer version")
    if version > VERSION:
        raise StoreError(
            f"store {url} has format version {version}; this tool reads up to {VERSION}"
        )
    try:
        defaults = asdict(StoreConfig())
        return StoreConfig(
            pages_per_chunk=int(
                doc["chunking"].get("pages_per_chunk", defaults["pages_per_chunk"])
            ),
            level=int(doc["compression"].get("level", defaults["level"])),
            frame_size=int(doc["compression"].get("frame_size", defaults["frame_size"])),
            # Absent from stores made before dictionaries: they go on without.
            dictionary_size=int(doc["compression"].get("dictionary_size", 0)),
            pack_size=int(doc.get("packs", {}).get("target_size", defaults["pack_size"])),
            hashes_per_list=int(
                doc.get("chunk_lists", {}).get("hashes_per_list", defaults["hashes_per_list"])
            ),
            direct_max=int(doc.get("chunk_lists", {}).get("direct_max", defaults["direct_max"])),
            created_at=str(doc.get("created_at", "")),
        )
    except (KeyError, TypeError, ValueError, AttributeError):
        raise StoreError(
            f"{url}: config.json has unreadable chunking/compression settings"
        ) from None
