"""Gather the keys a verification may trust: command line, node, catalog (docs/design.md
section 3)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from cli.app import App
from snapshot.errors import StigmemError
from snapshot.keys import parse_public_key, public_key_bytes
from snapshot.trust import TrustPolicy

T = TypeVar("T")


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
        from snapshot.keys import node_public_keys_of

        keys.extend(node_public_keys_of(meta.federation_privkey, meta.federation_pubkey))
    return keys


def build_policy(
    app: App,
    trusted_key: tuple[str, ...],
    trusted_keys_file: Path | None,
    forced: bool = False,
    target_db: Path | None = None,
) -> TrustPolicy:
    return deferred_policy(app, trusted_key, trusted_keys_file, forced, target_db, False)()


def deferred_policy(
    app: App,
    trusted_key: tuple[str, ...],
    trusted_keys_file: Path | None,
    forced: bool = False,
    target_db: Path | None = None,
    background: bool = True,
) -> Callable[[], TrustPolicy]:
    """The trust policy, as a call that returns it.

    Command-line and node keys are read now (bad keys fail before any work; the target's
    node key must be read before a restore locks the target). The catalog's trusted and
    revoked keys are read in a background thread when ``background``: opening the catalog
    costs a restore nothing while its data is being written. The call waits for them and
    raises what opening the catalog raised.
    """
    strict: tuple[bytes, ...] | None = None
    if trusted_key or trusted_keys_file is not None:
        keys = [parse_public_key(k, "--trusted-key") for k in trusted_key]
        if trusted_keys_file is not None:
            from snapshot.keys import load_trusted_keys_file

            keys.extend(load_trusted_keys_file(trusted_keys_file))
        strict = tuple(keys)
    node_keys = tuple(node_public_keys(target_db)) if strict is None else ()

    def read() -> CatalogKeys:
        return catalog_keys(app)

    # Read once for the command: a search calls the policy once per snapshot it reads.
    get_keys = in_background(read) if background else once(read)

    def policy() -> TrustPolicy:
        trusted, revoked = get_keys()
        return TrustPolicy(
            node_keys=node_keys,
            catalog_keys=trusted if strict is None else (),
            strict_keys=strict,
            revoked=revoked,
            forced=forced,
        )

    return policy


def strict_policy(
    app: App, trusted_key: tuple[str, ...], trusted_keys_file: Path | None
) -> Callable[[], TrustPolicy]:
    """Strict mode: the keys given, else the keys the catalog trusts (and has not revoked);
    never the manifest's own key or a node's."""
    if trusted_key or trusted_keys_file is not None:
        return deferred_policy(app, trusted_key, trusted_keys_file, background=False)
    get_keys = once(lambda: catalog_keys(app))

    def policy() -> TrustPolicy:
        trusted, revoked = get_keys()
        return TrustPolicy(strict_keys=trusted, revoked=revoked)

    return policy


CatalogKeys = tuple[tuple[bytes, ...], frozenset[bytes]]


def catalog_keys(app: App) -> CatalogKeys:
    """The keys the catalog trusts, and those it revoked."""
    catalog = app.catalog()
    trusted = tuple(parse_public_key(k, "the catalog") for k in catalog.trusted_keys())
    revoked = frozenset(parse_public_key(k, "the catalog") for k in catalog.revoked_keys())
    return trusted, revoked


def once(work: Callable[[], T]) -> Callable[[], T]:
    """``work``, run at the first call only; later calls return its result."""
    done: list[T] = []

    def result() -> T:
        if not done:
            done.append(work())
        return done[0]

    return result


def in_background(work: Callable[[], T]) -> Callable[[], T]:
    """Start ``work`` on a daemon thread; the returned call waits for its result or raises
    its exception. Daemon: a command that fails before it needs the result exits at once
    instead of waiting for, say, a PostgreSQL connect timeout."""
    import threading

    outcome: list[T] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            outcome.append(work())
        except BaseException as exc:  # handed to the waiting caller, not lost in the thread
            failure.append(exc)

    thread = threading.Thread(target=run, name="catalog", daemon=True)
    thread.start()

    def result() -> T:
        thread.join()
        if failure:
            raise failure[0]
        return outcome[0]

    return result
