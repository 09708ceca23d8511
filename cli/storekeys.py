"""Which store keys a command holds for a tier: the tier's ``store_key`` and ``writer_key``
files, else ``STIGMEM_STORE_KEY`` and ``STIGMEM_WRITER_KEY`` (paths); and the settings of a
store a first use creates (the tier's ``encrypt_to``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from snapshot.errors import ConfigError, StigmemError

if TYPE_CHECKING:
    from cli.app import Tier
    from store.config import StoreConfig
    from store.encryption import StoreKeys

MAX_KEY_FILE = 4 << 10


def _read(path: str, what: str) -> str:
    file = Path(path).expanduser()
    try:
        if file.stat().st_size > MAX_KEY_FILE:
            raise StigmemError(f"{what} file {file} is larger than any key file")
        return file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise StigmemError(f"{what} file not found: {file}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise StigmemError(f"cannot read {what} file {file}: {exc}") from None


def load_store_key(path: str) -> object:
    from store import crypto

    try:
        return crypto.StoreKey.from_text(_read(path, "store key"), path)
    except crypto.BadKey as exc:
        raise StigmemError(str(exc)) from None


def load_writer_key(path: str) -> object:
    from store import crypto

    try:
        return crypto.WriterKey.from_text(_read(path, "writer key"), path)
    except crypto.BadKey as exc:
        raise StigmemError(str(exc)) from None


def keys_for(tier: Tier) -> StoreKeys:
    from store import crypto
    from store.encryption import StoreKeys

    store_path = tier.store_key or os.environ.get("STIGMEM_STORE_KEY") or None
    writer_path = tier.writer_key or os.environ.get("STIGMEM_WRITER_KEY") or None
    store_key = load_store_key(store_path) if store_path else None
    writer_key = load_writer_key(writer_path) if writer_path else None
    assert store_key is None or isinstance(store_key, crypto.StoreKey)
    assert writer_key is None or isinstance(writer_key, crypto.WriterKey)
    return StoreKeys(store_key, writer_key)


def public_key(text: str, what: str) -> bytes:
    from store import crypto

    try:
        return crypto.parse_public(text, what)
    except crypto.BadKey as exc:
        raise ConfigError(
            f"{exc}: expected the pub: line of 'stigmem keys generate --store'"
        ) from None


def settings_for(tier: Tier) -> StoreConfig:
    from store.config import StoreConfig

    if tier.encrypt_to:
        return StoreConfig(encrypt_to=public_key(tier.encrypt_to, f"tier {tier.name} encrypt_to"))
    return StoreConfig()
