"""``store rekey``: seal every pack key of an encrypted store to a new store key.

No pack is rewritten: the pack keys stay, their sealed copies change. Under the exclusive
lock: one keyring sealed to the new key is written, then ``config.json`` names the new key
(the switch: before it readers use the old keyrings, after it the new one), then the old
keyrings go. Killed before the switch, the store is as it was; after it, the keyrings left
behind are sealed to a key the store no longer names, and gc or another rekey removes them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from snapshot.errors import StoreError
from store import crypto, layout
from store.repository import Store


@dataclass
class RekeyReport:
    old_key_id: str
    new_key_id: str
    packs: int
    keyrings_replaced: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def rekey(store: Store, new_public: bytes) -> RekeyReport:
    crypt = store.encryption
    if crypt.public is None:
        raise StoreError(f"store {store.url} is not encrypted: there is no key to replace")
    old_id = crypto.public_key_id(crypt.public)
    new_id = crypto.public_key_id(new_public)
    if new_public == crypt.public:
        raise StoreError(f"store {store.url} is already encrypted to store key {new_id}")
    crypt.need_store_key("rekeying")
    with store.lock("exclusive"):
        crypt.forget_keys()
        packs = sorted(crypt.sealed_keys())
        sealed: dict[bytes, crypto.Sealed] = {}
        for pack in packs:
            key = crypt.pack_key(pack.hex())
            ephemeral, wrapped = crypto.seal(key, pack, new_public)
            sealed[pack] = crypto.Sealed(ephemeral, wrapped)
        old = crypt.keyring_paths()
        name = crypt.put_keyring(new_public, sealed)
        settings = store.config

        store.backend.write(layout.CONFIG, replace(settings, encrypt_to=new_public).to_json())
        stale = [path for path in old if path != layout.keyring_path(name)]
        store.backend.delete(stale)
        crypt.forget_keys()
    return RekeyReport(old_id, new_id, len(packs), len(stale))
