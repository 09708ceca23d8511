"""The store's ``config.json``: format marker, version, chunking, compression, pack sizes.

Settings are read from the store, never assumed, so a store written with other settings
stays readable. The file is untrusted like the rest of the store: a ``version`` above
``VERSION`` is refused, and so is any setting of the wrong type or outside its range
(``RANGES``), with one line naming config.json and the field.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from snapshot import boundedjson
from snapshot.errors import StoreError, shown
from store import crypto

FORMAT = "stigmem-store"
VERSION = 2  # what new stores are made as; 1 is still read and written to
MAX_CONFIG_BYTES = 64 << 10


@dataclass(frozen=True)
class StoreConfig:
    pages_per_chunk: int = 1
    # Level 3: higher levels make these pages barely smaller, for twice the CPU time or more.
    level: int = 3
    frame_size: int = 1 << 20
    # Bytes of the zstd dictionary every chunk is compressed with, each in a frame of its own
    # (store.packs); 0: chunks compressed together in frames of ``frame_size``, as stores made
    # before dictionaries keep doing. 112 KiB, zstd's usual size: large enough that a frame
    # per page compresses within about a percent of 1 MiB frames, where smaller dictionaries
    # fall well behind.
    dictionary_size: int = 112 << 10
    pack_size: int = 16 << 20
    hashes_per_list: int = 4096
    direct_max: int = 64
    created_at: str = ""
    version: int = VERSION
    # The store key's public half every pack key is sealed to; None: a plaintext store.
    encrypt_to: bytes | None = None

    @property
    def encrypted(self) -> bool:
        return self.encrypt_to is not None

    def to_json(self) -> bytes:
        doc: dict[str, Any] = {
            "format": FORMAT,
            "version": self.version,
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
        if self.version >= 2:
            doc["encryption"] = (
                {"scheme": crypto.SCHEME, "store_key": crypto.b64(self.encrypt_to)}
                if self.encrypt_to is not None
                else {"scheme": "none"}
            )
        return json.dumps(doc, indent=2).encode()


def parse(data: bytes, url: str) -> StoreConfig:
    doc = boundedjson.load(data, f"{url}: config.json", StoreError, max_bytes=MAX_CONFIG_BYTES)
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise StoreError(f"{url} is not a stigmem store: config.json has no format {FORMAT!r}")
    version = doc.get("version")
    if type(version) is not int:
        raise StoreError(f"{url}: config.json has no integer version")
    if version > VERSION:
        raise StoreError(
            f"store {url} has format version {version}; this tool reads up to {VERSION}"
        )
    if version < 1:
        raise StoreError(f"{url}: config.json field version must be 1 to {VERSION}, not {version}")
    defaults = StoreConfig()
    for section, name, only in (
        ("compression", "algorithm", "zstd"),
        ("chunking", "method", "sqlite-pages"),
    ):
        value = doc.get(section, {}).get(name, only) if isinstance(doc.get(section), dict) else only
        if value != only:
            raise StoreError(f"{url}: config.json field {section}.{name} must be {only!r}")
    encrypt_to = _encryption(doc, url) if version >= 2 else None
    created_at = doc.get("created_at", "")
    if not isinstance(created_at, str):
        raise StoreError(f"{url}: config.json field created_at is not a string")
    return StoreConfig(
        pages_per_chunk=_field(doc, url, "chunking", "pages_per_chunk", defaults.pages_per_chunk),
        level=_field(doc, url, "compression", "level", defaults.level),
        frame_size=_field(doc, url, "compression", "frame_size", defaults.frame_size),
        # Absent from stores made before dictionaries: they go on without.
        dictionary_size=_field(doc, url, "compression", "dictionary_size", 0),
        pack_size=_field(doc, url, "packs", "target_size", defaults.pack_size),
        hashes_per_list=_field(
            doc, url, "chunk_lists", "hashes_per_list", defaults.hashes_per_list
        ),
        direct_max=_field(doc, url, "chunk_lists", "direct_max", defaults.direct_max),
        created_at=created_at,
        version=version,
        encrypt_to=encrypt_to,
    )


def _encryption(doc: dict[str, Any], url: str) -> bytes | None:
    """The store key's public half a format-2 store is encrypted to, or None (plaintext)."""
    settings = doc.get("encryption")
    if not isinstance(settings, dict):
        raise StoreError(f"{url}: config.json of a format-2 store has no encryption settings")
    scheme = settings.get("scheme")
    if scheme == "none":
        return None
    if scheme != crypto.SCHEME:
        raise StoreError(
            f"{url}: config.json field encryption.scheme must be {crypto.SCHEME!r} or 'none', "
            f"not {shown(str(scheme), 60)}"
        )
    try:
        return crypto.parse_public(str(settings.get("store_key", "")), "encryption.store_key")
    except crypto.BadKey as exc:
        raise StoreError(f"{url}: config.json field {exc}") from None


# (section, field) -> the values a reader accepts. Every size a store's reader or writer
# allocates by comes from here, so each is bounded: pages of 64 KiB times ``pages_per_chunk``,
# frames up to zstd's 64 MiB (``packs.MAX_FRAME``), packs read whole by check and gc.
RANGES: dict[tuple[str, str], tuple[int, int]] = {
    ("chunking", "pages_per_chunk"): (1, 64),
    ("compression", "level"): (1, 22),
    ("compression", "frame_size"): (1 << 10, 64 << 20),
    ("compression", "dictionary_size"): (0, 1 << 20),
    ("packs", "target_size"): (4 << 10, 128 << 20),
    ("chunk_lists", "hashes_per_list"): (16, 1 << 16),
    ("chunk_lists", "direct_max"): (0, 1 << 16),
}
MIN_DICTIONARY = 1 << 10
REQUIRED = ("chunking", "compression")  # the sections every store has had


def _field(doc: dict[str, Any], url: str, section: str, name: str, default: int) -> int:
    """An integer setting of ``config.json``, checked against its range."""
    settings = doc.get(section)
    if settings is None and section not in REQUIRED:
        return default
    if not isinstance(settings, dict):
        raise StoreError(f"{url}: config.json has no {section} settings")
    value = settings.get(name, default)
    low, high = RANGES[(section, name)]
    if type(value) is not int or not low <= value <= high:
        raise StoreError(
            f"{url}: config.json field {section}.{name} must be an integer from {low} to "
            f"{high}, not {shown(str(value), 40)}"
        )
    if name == "dictionary_size" and 0 < value < MIN_DICTIONARY:
        # A dictionary is trained to its size: one of a few bytes cannot be trained at all.
        raise StoreError(
            f"{url}: config.json field {section}.{name} must be 0 (none) or from "
            f"{MIN_DICTIONARY} to {high}, not {value}"
        )
    return value
