"""Gather the keys a verification may trust: command line, node, catalog (DESIGN.md s.3)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from cli.app import App
from snapshot.errors import StigmemError
from snapshot.keys import b64url_decode, parse_public_key, public_key_bytes
from snapshot.trust import TrustPolicy


def node_public_keys(target_db: Path | None) -> list[bytes]:
    keys: list[bytes] = []
    env = os.environ.get("STIGMEM_FEDERATION_PRIVKEY")
    if env:
        from snapshot.keys import private_key_from_text

        keys.append(public_key_bytes(private_key_from_text(env, "STIGMEM_FEDERATION_PRIVKEY")))
    if target_db is not None and target_db.is_file():
        from snapshot.nodedb import read_node_meta

        try:
            meta = read_node_meta(target_db)
        except StigmemError:
            return keys  # a broken target (the disaster case) vouches for nothing
        if meta.federation_pubkey:
            with contextlib.suppress(ValueError):
                keys.append(b64url_decode(meta.federation_pubkey, 32, "federation_pubkey"))
    return keys


def build_policy(
    app: App,
    trusted_key: tuple[str, ...],
    trusted_keys_file: Path | None,
    forced: bool = False,
    target_db: Path | None = None,
) -> TrustPolicy:
    strict: tuple[bytes, ...] | None = None
    if trusted_key or trusted_keys_file is not None:
        keys = [parse_public_key(k, "--trusted-key") for k in trusted_key]
        if trusted_keys_file is not None:
            from snapshot.keys import load_trusted_keys_file

            keys.extend(load_trusted_keys_file(trusted_keys_file))
        strict = tuple(keys)
    catalog = app.catalog()
    return TrustPolicy(
        node_keys=tuple(node_public_keys(target_db)) if strict is None else (),
        catalog_keys=tuple(parse_public_key(k, "the catalog") for k in catalog.trusted_keys())
        if strict is None
        else (),
        strict_keys=strict,
        revoked=frozenset(parse_public_key(k, "the catalog") for k in catalog.revoked_keys()),
        forced=forced,
    )
