"""The published test vector of an encrypted format-2 store (tests/vectors/store-v2, made by
tests/vectors/make_store_v2.py with the fixed keys beside it): this tool restores it, and a
reader written from docs/design.md alone, with nothing but ``cryptography`` and
``zstandard``, opens its keyring, a pack key, a frame and a chunk id."""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import struct
from pathlib import Path

import zstandard
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from store import crypto
from store.encryption import StoreKeys
from store.repository import Store

VECTORS = Path(__file__).parent.parent / "vectors"
STORE = VECTORS / "store-v2"
SNAPSHOT = "5011e9dafc207cba4b7c3db3940ec6a3cf67ec3a4c6862cf8fba553e5e217162"
DB = "artifacts/stigmem.db"


def key_file(name: str) -> bytes:
    line = (VECTORS / name).read_text().splitlines()[1]
    return base64.urlsafe_b64decode(line + "=" * (-len(line) % 4))


def hkdf(secret: bytes, info: bytes) -> bytes:
    return HKDF(hashes.SHA256(), 32, salt=None, info=info).derive(secret)


def test_this_tool_restores_the_vector_with_the_store_key_alone() -> None:
    keys = StoreKeys(crypto.StoreKey.from_text((VECTORS / "store-v2.key").read_text(), "v"))
    store = Store.open(str(STORE), keys=keys)
    out = io.BytesIO()
    store.read_artifact(SNAPSHOT, DB, out)
    doc = store.load_document(SNAPSHOT)
    assert (
        "sha256:" + hashlib.sha256(out.getvalue()).hexdigest() == (doc["manifest"]["artifacts"][DB])
    )


def test_a_reader_from_the_design_alone_opens_a_frame_and_names_its_chunk() -> None:
    private = key_file("store-v2.key")
    writer = key_file("writer-v2.key")
    store_key = X25519PrivateKey.from_private_bytes(private)
    public = store_key.public_key().public_bytes_raw()
    config = json.loads((STORE / "config.json").read_text())
    assert config["version"] == 2
    assert config["encryption"]["scheme"] == "x25519-hkdf-sha256-aes256gcm"
    assert base64.urlsafe_b64decode(config["encryption"]["store_key"] + "=") == public

    # Keyring: magic, the public key it is sealed to, count, records of 112 bytes.
    (keyring,) = (STORE / "keys").iterdir()
    data = keyring.read_bytes()
    assert data[:8] == b"stgmkey1" and data[8:40] == public
    (count,) = struct.unpack(">I", data[40:44])
    records = [data[44 + 112 * i : 44 + 112 * (i + 1)] for i in range(count)]
    pack, ephemeral, sealed = records[0][:32], records[0][32:64], records[0][64:]
    shared = store_key.exchange(X25519PublicKey.from_public_bytes(ephemeral))
    wrap = hkdf(shared, b"stigmem-snapshots pack key v1" + ephemeral + public)
    pack_key = AESGCM(wrap).decrypt(bytes(12), sealed, pack)

    # The pack's trailer (plaintext) names its chunks and frames; open the first frame.
    body = (STORE / "packs" / pack.hex()[:2] / pack.hex()).read_bytes()
    assert body[-8:] == b"stgmpak1"
    (length,) = struct.unpack(">I", body[-12:-8])
    trailer = zstandard.ZstdDecompressor().decompress(body[-12 - length : -12])
    chunk_id, frame_offset, frame_length, offset, chunk_length = struct.unpack(
        ">32sIIII", trailer[:48]
    )
    frame = AESGCM(pack_key).decrypt(
        frame_offset.to_bytes(12, "big"),
        body[frame_offset : frame_offset + frame_length],
        chunk_id,
    )
    chunk = zstandard.ZstdDecompressor().decompress(frame)[offset : offset + chunk_length]
    # Its id is the HMAC of its bytes under the writer key's chunk-id key.
    id_key = hkdf(writer, b"stigmem-snapshots chunk id v1")
    assert hmac.digest(id_key, chunk, "sha256") == chunk_id
    assert hashlib.sha256(chunk).digest() != chunk_id
