"""Signer keys: seen, trusted (optionally labelled), revoked.

A key is named by its key id (first 16 hex digits of SHA-256 of the raw public key), its
base64url public key, or its label. Revocation is final: a revoked key is never trusted again,
and revoking a public key the catalog has never seen records it, so it is refused from then on.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from datetime import datetime
from typing import Any

from sqlalchemy import false, or_, select, true, update
from sqlalchemy.engine import Connection, Row

from catalog.records import KeyRow, iso
from catalog.tables import keys
from catalog.upsert import insert
from catalog.writes import record_event
from snapshot.errors import AmbiguousError, CatalogError


def key_id_of(public_key_b64: str) -> str | None:
    """The key id of a base64url Ed25519 public key, or None if it is not one."""
    try:
        raw = base64.urlsafe_b64decode(public_key_b64 + "=" * (-len(public_key_b64) % 4))
    except (binascii.Error, ValueError):
        return None
    if len(raw) != 32:
        return None
    return hashlib.sha256(raw).hexdigest()[:16]


def _key_row(row: Row[Any]) -> KeyRow:
    return KeyRow(
        key_id=row.key_id,
        public_key=row.public_key,
        label=row.label,
        trusted=bool(row.trusted) and not row.revoked,
        revoked=bool(row.revoked),
        first_seen=row.first_seen,
        revoked_at=row.revoked_at,
    )


def _check_id(public_key_b64: str, key_id: str) -> None:
    if key_id_of(public_key_b64) != key_id:
        raise CatalogError(f"key id {key_id} does not match public key {public_key_b64}")


def see_key(conn: Connection, at: datetime, public_key_b64: str, key_id: str) -> None:
    _check_id(public_key_b64, key_id)
    conn.execute(
        insert(conn, keys)
        .values(key_id=key_id, public_key=public_key_b64, first_seen=at)
        .on_conflict_do_nothing()
    )


def find(conn: Connection, ident: str) -> KeyRow | None:
    rows = conn.execute(
        select(keys).where(
            or_(keys.c.key_id == ident, keys.c.public_key == ident, keys.c.label == ident)
        )
    ).all()
    if len(rows) > 1:
        ids = ", ".join(sorted(row.key_id for row in rows))
        raise AmbiguousError(f"key {ident!r} is ambiguous in the catalog: {ids}")
    return _key_row(rows[0]) if rows else None


def trust_key(
    conn: Connection, at: datetime, host: str, public_key_b64: str, key_id: str, label: str | None
) -> None:
    _check_id(public_key_b64, key_id)
    existing = find(conn, key_id)
    if existing is not None and existing.revoked:
        raise CatalogError(
            f"key {key_id} was revoked at {iso(existing.revoked_at)}; "
            "a revoked key is never trusted again"
        )
    if label is not None:
        holder = conn.execute(select(keys.c.key_id).where(keys.c.label == label)).scalar()
        if holder is not None and holder != key_id:
            raise CatalogError(f"label {label!r} already names key {holder}")
    stmt = insert(conn, keys).values(
        key_id=key_id, public_key=public_key_b64, label=label, trusted=True, first_seen=at
    )
    changes: dict[str, Any] = {"trusted": True}
    if label is not None:
        changes["label"] = label
    conn.execute(stmt.on_conflict_do_update(index_elements=["key_id"], set_=changes))
    named = f" as {label!r}" if label else ""
    record_event(conn, at, host, "key-trusted", None, f"key {key_id}{named}")


def revoke_key(conn: Connection, at: datetime, host: str, ident: str) -> KeyRow:
    key = find(conn, ident)
    if key is None:
        key_id = key_id_of(ident)
        if key_id is None:
            raise CatalogError(
                f"no key {ident!r} in the catalog (give a key id, public key or label)"
            )
        conn.execute(
            insert(conn, keys)
            .values(key_id=key_id, public_key=ident, first_seen=at)
            .on_conflict_do_nothing()
        )
        key_row = find(conn, key_id)
        assert key_row is not None
        key = key_row
    if not key.revoked:
        conn.execute(
            update(keys)
            .where(keys.c.key_id == key.key_id)
            .values(revoked=True, trusted=False, revoked_at=at)
        )
        record_event(conn, at, host, "key-revoked", None, f"key {key.key_id}")
    revoked = find(conn, key.key_id)
    assert revoked is not None
    return revoked


def all_keys(conn: Connection) -> list[KeyRow]:
    rows = conn.execute(select(keys).order_by(keys.c.first_seen, keys.c.key_id)).all()
    return [_key_row(row) for row in rows]


def trusted_public_keys(conn: Connection) -> list[str]:
    stmt = select(keys.c.public_key).where(keys.c.trusted == true(), keys.c.revoked == false())
    return list(conn.execute(stmt.order_by(keys.c.public_key)).scalars())


def revoked_public_keys(conn: Connection) -> list[str]:
    stmt = select(keys.c.public_key).where(keys.c.revoked == true())
    return list(conn.execute(stmt.order_by(keys.c.public_key)).scalars())
