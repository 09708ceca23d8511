"""The node's key forms in node_meta, and keys or ids from elsewhere that disagree with it."""

from __future__ import annotations

import base64
import hashlib
import sqlite3
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from tests.conftest import Result, Runner, ok

NODE_ID = "stigmem:node:0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0"


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def key_id(key: Ed25519PrivateKey) -> str:
    raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def seed_text(key: Ed25519PrivateKey) -> str:
    return b64url(key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption()))


def pkcs8_text(key: Ed25519PrivateKey) -> str:
    return b64url(key.private_bytes(Encoding.DER, PrivateFormat.PKCS8, NoEncryption()))


def node_db(path: Path, meta: dict[str, str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE node_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    conn.execute("CREATE TABLE facts (id TEXT PRIMARY KEY, entity TEXT, value_v TEXT)")
    conn.executemany("INSERT INTO facts VALUES (?, 'e', 'v')", [(str(i),) for i in range(50)])
    conn.executemany("INSERT INTO node_meta VALUES (?, ?)", meta.items())
    conn.commit()
    conn.close()
    return path


def create(stigmem: Runner, db: Path, *extra: str, env: dict[str, str] | None = None) -> Result:
    """``snapshot create --db DB --json``, which must succeed."""
    return ok(stigmem("snapshot", "create", "--db", str(db), "--json", *extra, env=env))


def folder_state(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_a_pkcs8_key_in_node_meta_signs_and_is_the_nodes_key(
    stigmem: Runner, tmp_path: Path
) -> None:
    key = Ed25519PrivateKey.generate()
    db = node_db(
        tmp_path / "node" / "stigmem.db",
        {"node_id": NODE_ID, "federation_privkey": pkcs8_text(key)},
    )
    before = folder_state(db.parent)

    created = create(stigmem, db)

    doc = created.json()
    assert doc["signer_key_id"] == key_id(key)
    assert doc["node_id"] == NODE_ID
    assert "WARNING" not in created.stderr
    assert folder_state(db.parent) == before  # nothing written to the live database

    # The restore target is a node holding the same PKCS8 key: default mode trusts it as the
    # node's own key, not only as the manifest's self-declared one.
    target = node_db(
        tmp_path / "target" / "stigmem.db",
        {"node_id": NODE_ID, "federation_privkey": pkcs8_text(key)},
    )
    restored = ok(stigmem("snapshot", "restore", doc["id"], "--db", str(target), "--json"))
    assert restored.json()["verification"]["trusted_by"] == "node"


def test_the_seed_form_with_its_pubkey_still_signs(stigmem: Runner, tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    pub = b64url(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))
    db = node_db(
        tmp_path / "stigmem.db",
        {"node_id": NODE_ID, "federation_privkey": seed_text(key), "federation_pubkey": pub},
    )
    created = create(stigmem, db)
    assert created.json()["signer_key_id"] == key_id(key)
    assert "WARNING" not in created.stderr


@pytest.mark.parametrize("form", [seed_text, pkcs8_text])
def test_a_key_from_the_environment_that_the_node_does_not_hold_is_named(
    stigmem: Runner, tmp_path: Path, form: object
) -> None:
    node_key, other = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    assert callable(form)
    db = node_db(
        tmp_path / "stigmem.db", {"node_id": NODE_ID, "federation_privkey": form(node_key)}
    )

    created = create(stigmem, db, env={"STIGMEM_FEDERATION_PRIVKEY": seed_text(other)})

    assert created.json()["signer_key_id"] == key_id(other)
    warnings = [line for line in created.stderr.splitlines() if "WARNING" in line]
    assert len(warnings) == 1
    assert "STIGMEM_FEDERATION_PRIVKEY" in warnings[0]
    assert key_id(other) in warnings[0] and key_id(node_key) in warnings[0]


def test_the_nodes_own_key_from_the_environment_is_not_a_warning(
    stigmem: Runner, tmp_path: Path
) -> None:
    key = Ed25519PrivateKey.generate()
    db = node_db(
        tmp_path / "stigmem.db", {"node_id": NODE_ID, "federation_privkey": pkcs8_text(key)}
    )
    created = create(stigmem, db, env={"STIGMEM_FEDERATION_PRIVKEY": seed_text(key)})
    assert "WARNING" not in created.stderr


def test_a_node_id_from_the_environment_that_differs_is_named(
    stigmem: Runner, tmp_path: Path
) -> None:
    key = Ed25519PrivateKey.generate()
    db = node_db(
        tmp_path / "stigmem.db", {"node_id": NODE_ID, "federation_privkey": seed_text(key)}
    )
    other_id = "stigmem:node:99999999-9999-4999-8999-999999999999"
    created = create(stigmem, db, env={"STIGMEM_NODE_ID": other_id})
    assert created.json()["node_id"] == other_id
    assert any(
        "WARNING" in line and other_id in line and NODE_ID in line
        for line in created.stderr.splitlines()
    )


def test_a_node_meta_key_in_neither_form_is_a_one_line_error(
    stigmem: Runner, tmp_path: Path
) -> None:
    db = node_db(
        tmp_path / "stigmem.db", {"node_id": NODE_ID, "federation_privkey": b64url(b"\x01" * 48)}
    )
    result = stigmem("snapshot", "create", "--db", str(db))
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1
    assert "bad private key in node_meta of" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_dedicated_signing_key_given_with_sign_with_is_used_without_a_warning(
    stigmem: Runner, tmp_path: Path
) -> None:
    node_key = Ed25519PrivateKey.generate()
    db = node_db(
        tmp_path / "stigmem.db", {"node_id": NODE_ID, "federation_privkey": seed_text(node_key)}
    )
    generated = ok(stigmem("keys", "generate", "--out", str(tmp_path / "backup.key")))
    created = ok(
        stigmem(
            "snapshot",
            "create",
            "--db",
            str(db),
            "--sign-with",
            str(tmp_path / "backup.key"),
            "--json",
        )
    )
    assert created.json()["signer_key_id"] in generated.stdout
    assert created.json()["signer_key_id"] != key_id(node_key)
    assert "WARNING" not in created.stderr
