"""What every command shares: paths and URLs from the group options, and lazily opened
config, catalog and stores. Opening is lazy so that ``--help`` and commands that need none of
them stay fast and never touch a database.
"""

from __future__ import annotations

import os
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from snapshot.errors import CatalogError, ConfigError, StigmemError, UsageError, shown

if TYPE_CHECKING:
    from catalog.database import Catalog
    from snapshot.config import Config
    from snapshot.retention import Policy
    from store.localcache import LocalCache
    from store.repository import Store

FALLBACK_TIER = "local"


@dataclass
class Tier:
    name: str
    url: str
    storage_options: dict[str, Any]
    policy: Policy = field(default_factory=lambda: _empty_policy())
    grace_seconds: float = 3600.0
    encrypt_to: str | None = None
    store_key: str | None = None
    writer_key: str | None = None
    object_lock: str | None = None  # "governance" or "compliance": S3 Object Lock on writes

    def lock_seconds(self) -> float:
        """How long what this tier writes stays locked: the longest its policy keeps a
        snapshot, plus the grace period."""
        longest = self.policy.longest_keep()
        assert longest is not None  # the config refuses object_lock without such a rule
        return longest.total_seconds() + self.grace_seconds


def _empty_policy() -> Policy:
    from snapshot.retention import Policy

    return Policy()


@dataclass
class App:
    home: Path
    config_path: Path | None
    catalog_url: str | None
    store_url: str | None
    no_cache: bool = False  # --no-cache: nothing kept under $STIGMEM_HOME/cache this time
    _config: Config | None = None
    _cache: LocalCache | None = None
    _catalog: Catalog | None = None
    _stores: dict[str, Store] = field(default_factory=dict)
    _catalog_lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        # Refused before any command runs: create would otherwise store the snapshot and
        # only then find a catalog that each thread sees empty, and that is gone at exit.
        if self.catalog_url is not None and in_memory_sqlite(self.catalog_url):
            raise CatalogError(
                f"catalog {shown(self.catalog_url)} is an in-memory database, gone when the "
                "command ends; name a file (sqlite:///PATH) or a server"
            )

    @property
    def host(self) -> str:
        return socket.gethostname()

    def config(self) -> Config:
        if self._config is None:
            from snapshot.config import load_config

            self._config = load_config(self.config_path, default_path=self.home / "config.toml")
        return self._config

    def catalog(self) -> Catalog:
        # Under a lock: a restore opens the catalog on a background thread, and a second
        # caller must wait for that open rather than run a second one (and its migrations).
        with self._catalog_lock:
            if self._catalog is None:
                from catalog.database import Catalog
                from catalog.engine import default_catalog_url

                url = self.catalog_url or default_catalog_url(self.home)
                self._catalog = Catalog.open(url)
            return self._catalog

    def cache(self) -> LocalCache:
        """This host's cache: ``$STIGMEM_HOME/cache``, unless ``--no-cache`` or the config's
        ``[cache] enabled = false`` says to run without one."""
        if self._cache is None:
            from store.localcache import DEFAULT_MAX_BYTES, LocalCache

            config = self.config()
            enabled = config.cache and not self.no_cache
            bound = (
                DEFAULT_MAX_BYTES if config.cache_max_mib is None else config.cache_max_mib << 20
            )
            self._cache = LocalCache(self.home / "cache" if enabled else None, bound)
        return self._cache

    def fallback_store_url(self) -> str:
        return self.store_url or str(self.home / "store")

    def tier(self, name: str | None) -> Tier:
        """The named tier, or the default one (docs/design.md section 9)."""
        config = self.config()
        if name is None:
            name = config.default_tier_name()
            if name is None:
                return Tier(FALLBACK_TIER, self.fallback_store_url(), {})
        if name == FALLBACK_TIER and not config.tiers:
            return Tier(FALLBACK_TIER, self.fallback_store_url(), {})
        tier = config.tier(name)
        return Tier(
            name,
            tier.store,
            dict(tier.storage_options),
            tier.policy,
            tier.grace_seconds,
            tier.encrypt_to,
            tier.store_key,
            tier.writer_key,
            tier.object_lock,
        )

    def all_tiers(self) -> list[Tier]:
        config = self.config()
        if not config.tiers:
            return [self.tier(None)]
        first = self.tier(None)
        return [first] + [self.tier(n) for n in config.tiers if n != first.name]

    def grace_seconds(self, tier: Tier) -> float:
        return tier.grace_seconds

    def store(self, tier: Tier, create: bool = False) -> Store:
        key = f"{tier.name}\0{tier.url}"
        if key not in self._stores:
            from cli.storekeys import keys_for, settings_for
            from store.repository import Store

            store = Store.open(
                tier.url,
                tier.storage_options,
                create=create,
                cache=self.cache(),
                keys=keys_for(tier),
                settings=settings_for(tier) if create else None,
            )
            if tier.object_lock is not None:
                from store.backend import FsspecBackend

                backend = store.backend
                if not isinstance(backend, FsspecBackend) or not backend.is_s3:
                    raise ConfigError(
                        f"tier {tier.name}: object_lock needs an S3 store, not {tier.url}"
                    )
                backend.object_lock = (tier.object_lock.upper(), tier.lock_seconds())
            self._stores[key] = store
        return self._stores[key]

    def close(self) -> None:
        for store in self._stores.values():
            store.forget_index()  # closes the local index cache, as the process ends
        if self._cache is not None:
            self._cache.trim()
        # A background open still running (the command failed before it needed the catalog)
        # is not waited for: its daemon thread ends with the process.
        if self._catalog_lock.acquire(timeout=0):
            try:
                if self._catalog is not None:
                    self._catalog.close()
            finally:
                self._catalog_lock.release()


def in_memory_sqlite(url: str) -> bool:
    """Whether a SQLAlchemy URL names an in-memory SQLite database (``sqlite://``,
    ``sqlite:///:memory:``, a ``file:`` URI with ``mode=memory``). Read from the text, so the
    check costs no SQLAlchemy import."""
    scheme, sep, rest = url.strip().partition("://")
    if not sep or scheme.lower().split("+", 1)[0] != "sqlite":
        return False
    database, _, query = rest.removeprefix("/").partition("?")
    return (
        database in ("", ":memory:")
        or database.startswith(("file::memory:", ":memory:"))
        or "mode=memory" in query
        or "mode=memory" in database
    )


def db_path_option(value: Path | None) -> Path:
    if value is not None:
        return value
    env = os.environ.get("STIGMEM_DB_PATH")
    if env:
        return Path(env)
    raise UsageError("no node database given: pass --db or set STIGMEM_DB_PATH")


def is_snapshot_ref(text: str) -> bool:
    """A store id or prefix rather than a file path."""
    return len(text) >= 6 and all(c in "0123456789abcdef" for c in text.lower())


def require_file(path: Path, what: str) -> Path:
    if not path.exists():
        raise StigmemError(f"no such file: {path}")
    if path.is_dir():
        raise StigmemError(f"{what} is a directory: {path}")
    return path
