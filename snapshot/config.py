"""The TOML config file: tiers (a store URL, fsspec options, a retention policy, a gc grace).

```toml
default_tier = "local"              # optional; else the first tier

[tiers.local]
store = "/var/lib/stigmem/store"
keep_daily = 30
grace = "1h"                        # gc grace period, optional (default 1h)

[tiers.offsite]
store = "s3://your-bucket/stigmem"
keep_daily = 90
keep_within = "14d"

[tiers.offsite.storage_options]     # passed to fsspec as is
endpoint_url = "https://s3.example.net"
```

Every problem is a :class:`ConfigError` of one line naming the file and the dotted key, e.g.
``/etc/stigmem/config.toml: unknown key 'tiers.local.keep_dayly' (did you mean 'keep_daily'?)``.
Unknown keys are errors because a misspelt retention key would otherwise silently prune by
another rule.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from snapshot.durations import DurationError, parse_duration
from snapshot.errors import ConfigError, shown
from snapshot.retention import BUCKET_RULES, Policy

DEFAULT_GRACE = timedelta(hours=1)
# A config names a few tiers; anything this large is not one.
MAX_CONFIG_BYTES = 1 << 20
TOP_LEVEL_KEYS = ("default_tier", "tiers", "cache", "fleet", "hooks")
FLEET_KEYS = ("nodes", "every", "drill_every", "node")
FLEET_NODE_KEYS = ("every", "drill_every")
HOOK_KEYS = ("ping_url", "command", "timeout")
DEFAULT_EVERY = timedelta(days=1)
DEFAULT_DRILL_EVERY = timedelta(days=90)
DEFAULT_HOOK_TIMEOUT = timedelta(seconds=10)
CACHE_KEYS = ("enabled", "max_mib")
TIER_KEYS = (
    "store",
    "storage_options",
    *BUCKET_RULES,
    "keep_within",
    "grace",
    "encrypt_to",
    "store_key",
    "writer_key",
    "object_lock",
)
OBJECT_LOCK_MODES = ("governance", "compliance")
# Tier names appear on the command line, in the catalog and in metric labels.
_TIER_NAME = re.compile(r"[A-Za-z0-9_-]+")


@dataclass(frozen=True)
class Tier:
    name: str
    store: str
    storage_options: dict[str, Any] = field(default_factory=dict)
    policy: Policy = field(default_factory=Policy)
    grace: timedelta = DEFAULT_GRACE
    encrypt_to: str | None = None  # the store key's public half a new store is encrypted to
    store_key: str | None = None  # path of the store key file (reads of content)
    writer_key: str | None = None  # path of the writer key file (writes)
    object_lock: str | None = None  # S3 Object Lock mode for what this tier writes

    @property
    def grace_seconds(self) -> float:
        return self.grace.total_seconds()


@dataclass(frozen=True)
class Expected:
    """How often one node must back up and be drilled."""

    every: timedelta = DEFAULT_EVERY
    drill_every: timedelta = DEFAULT_DRILL_EVERY


@dataclass(frozen=True)
class Fleet:
    """``[fleet]``: the nodes expected, and how often each must back up and be drilled."""

    nodes: tuple[str, ...] = ()
    default: Expected = field(default_factory=Expected)
    per_node: dict[str, Expected] = field(default_factory=dict)

    def expected(self, node_id: str) -> Expected:
        return self.per_node.get(node_id, self.default)


@dataclass(frozen=True)
class Hooks:
    """``[hooks]``: a healthchecks.io-style ping URL and/or a command, around commands."""

    ping_url: str | None = None
    command: str | None = None
    timeout: timedelta = DEFAULT_HOOK_TIMEOUT

    @property
    def enabled(self) -> bool:
        return bool(self.ping_url or self.command)


@dataclass(frozen=True)
class Config:
    """A loaded config. ``path`` is None when no file was read (empty config)."""

    path: Path | None = None
    default_tier: str | None = None
    tiers: dict[str, Tier] = field(default_factory=dict)  # in file order
    cache: bool = True  # [cache] enabled: keep this host's cache under $STIGMEM_HOME/cache
    cache_max_mib: int | None = None  # [cache] max_mib: its bound (None: the default)
    fleet: Fleet = field(default_factory=Fleet)
    hooks: Hooks = field(default_factory=Hooks)

    def tier(self, name: str) -> Tier:
        found = self.tiers.get(name)
        if found is None:
            known = ", ".join(self.tiers) or "none"
            where = f"in {self.path}" if self.path is not None else "(no config file)"
            raise ConfigError(f"unknown tier {name!r} (known: {known}) {where}")
        return found

    def default_tier_name(self, fallback: str | None = None) -> str | None:
        """docs/design.md section 9: ``default_tier``, else the first tier, else ``fallback``
        (the caller then uses the ``--store`` / ``STIGMEM_STORE_URL`` store as tier "local")."""
        if self.default_tier is not None:
            return self.default_tier
        return next(iter(self.tiers), fallback)


def load_config(path: Path | None, *, default_path: Path | None = None) -> Config:
    """Load ``path`` (given explicitly: ``--config`` or ``STIGMEM_CONFIG``; it must exist),
    else ``default_path`` (``$STIGMEM_HOME/config.toml``) when it exists, else an empty
    Config."""
    if path is None:
        if default_path is None or not default_path.exists():
            return Config()
        path = default_path
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, not a config file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc.strerror or exc}") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: config file is over the limit of {MAX_CONFIG_BYTES} bytes")
    return parse_config(raw, path)


def parse_config(raw: bytes | str, path: Path) -> Config:
    """Parse config text; ``path`` is only used to name the file in errors."""
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: not UTF-8 ({exc.reason})") from None
    try:
        data = tomllib.loads(text)
    except RecursionError:
        # tomllib recurses once per nested array or inline table, in Python: the limit
        # stops it cleanly long before anything useful is that deep.
        raise ConfigError(f"{path}: not valid TOML: nested too deeply") from None
    except ValueError as exc:  # TOMLDecodeError, and int() refusing 4,300+ digits
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return _Reader(path).config(data)


def _brief(value: Any) -> str:
    """A value from the file, for a message: its repr, cut to a line."""
    text = repr(value)
    return text if len(text) <= 80 else text[:80] + "..."


class _Reader:
    """Validates the parsed TOML; knows the file name for every message."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def error(self, key: str, problem: str) -> ConfigError:
        return ConfigError(f"{self.path}: key {shown(key)}: {problem}")

    def check_keys(self, table: Mapping[str, Any], allowed: tuple[str, ...], prefix: str) -> None:
        for key in table:
            if key not in allowed:
                hint = difflib.get_close_matches(key, allowed, n=1)
                suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
                raise ConfigError(f"{self.path}: unknown key {shown(prefix + key)}{suggestion}")

    def config(self, data: dict[str, Any]) -> Config:
        self.check_keys(data, TOP_LEVEL_KEYS, "")
        tiers_raw = data.get("tiers", {})
        if not isinstance(tiers_raw, dict):
            raise self.error("tiers", "expected a table of tiers ([tiers.NAME])")
        tiers = {name: self.tier(name, value) for name, value in tiers_raw.items()}
        default = data.get("default_tier")
        if default is not None:
            if not isinstance(default, str):
                raise self.error("default_tier", f"expected a tier name, got {_brief(default)}")
            if default not in tiers:
                known = ", ".join(tiers) or "none"
                raise self.error("default_tier", f"unknown tier {shown(default)} (known: {known})")
        enabled, max_mib = self.cache(data.get("cache", {}))
        return Config(
            path=self.path,
            default_tier=default,
            tiers=tiers,
            cache=enabled,
            cache_max_mib=max_mib,
            fleet=self.fleet(data.get("fleet", {})),
            hooks=self.hooks(data.get("hooks", {})),
        )

    def fleet(self, table: Any) -> Fleet:
        if not isinstance(table, dict):
            raise self.error("fleet", "expected a table ([fleet])")
        self.check_keys(table, FLEET_KEYS, "fleet.")
        nodes = table.get("nodes", [])
        if not isinstance(nodes, list) or not all(isinstance(n, str) and n for n in nodes):
            raise self.error("fleet.nodes", f"expected a list of node ids, got {_brief(nodes)}")
        default = Expected(
            self.duration(table, "every", "fleet") or DEFAULT_EVERY,
            self.duration(table, "drill_every", "fleet") or DEFAULT_DRILL_EVERY,
        )
        per_raw = table.get("node", {})
        if not isinstance(per_raw, dict):
            raise self.error("fleet.node", 'expected tables [fleet.node."<node id>"]')
        per_node: dict[str, Expected] = {}
        for node_id, node_table in per_raw.items():
            prefix = f"fleet.node.{node_id}"
            if not isinstance(node_table, dict):
                raise self.error(prefix, "expected a table with every and/or drill_every")
            self.check_keys(node_table, FLEET_NODE_KEYS, prefix + ".")
            per_node[node_id] = Expected(
                self.duration(node_table, "every", prefix) or default.every,
                self.duration(node_table, "drill_every", prefix) or default.drill_every,
            )
        return Fleet(tuple(dict.fromkeys(nodes)), default, per_node)

    def hooks(self, table: Any) -> Hooks:
        if not isinstance(table, dict):
            raise self.error("hooks", "expected a table ([hooks])")
        self.check_keys(table, HOOK_KEYS, "hooks.")
        found: dict[str, str | None] = {}
        for key in ("ping_url", "command"):
            value = table.get(key)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise self.error(f"hooks.{key}", f"expected a string, got {_brief(value)}")
            found[key] = value
        url = found["ping_url"]
        if url is not None and not url.startswith(("http://", "https://")):
            raise self.error("hooks.ping_url", f"expected an http(s) URL, got {_brief(url)}")
        timeout = self.duration(table, "timeout", "hooks") or DEFAULT_HOOK_TIMEOUT
        return Hooks(url, found["command"], timeout)

    def cache(self, table: Any) -> tuple[bool, int | None]:
        if not isinstance(table, dict):
            raise self.error("cache", "expected a table ([cache] with enabled, max_mib)")
        self.check_keys(table, CACHE_KEYS, "cache.")
        enabled = table.get("enabled", True)
        if not isinstance(enabled, bool):
            raise self.error("cache.enabled", f"expected true or false, got {_brief(enabled)}")
        max_mib = table.get("max_mib")
        if max_mib is not None and (
            not isinstance(max_mib, int) or isinstance(max_mib, bool) or not 1 <= max_mib <= 1 << 30
        ):
            raise self.error(
                "cache.max_mib", f"expected a size in MiB from 1 up, got {_brief(max_mib)}"
            )
        return enabled, max_mib

    def tier(self, name: str, table: Any) -> Tier:
        prefix = f"tiers.{name}"
        if not _TIER_NAME.fullmatch(name):
            raise self.error(prefix, "a tier name is letters, digits, '-' and '_'")
        if not isinstance(table, dict):
            raise self.error(prefix, "expected a table ([tiers.NAME] with a 'store')")
        self.check_keys(table, TIER_KEYS, prefix + ".")
        store = table.get("store")
        if store is None:
            raise ConfigError(
                f"{self.path}: tier {shown(name)} has no 'store' (key {shown(prefix + '.store')})"
            )
        if not isinstance(store, str) or not store.strip():
            raise self.error(
                f"{prefix}.store", f"expected a store URL or path, got {_brief(store)}"
            )
        options = table.get("storage_options", {})
        if not isinstance(options, dict):
            raise self.error(f"{prefix}.storage_options", "expected a table of fsspec options")
        counts: dict[str, int | None] = {}
        for key in BUCKET_RULES:
            value = table.get(key)
            # bool is an int in Python: "keep_daily = true" must not mean 1.
            if value is not None and (
                not isinstance(value, int) or isinstance(value, bool) or value < 0
            ):
                raise self.error(
                    f"{prefix}.{key}", f"expected a non-negative integer, got {_brief(value)}"
                )
            counts[key] = value
        within = self.duration(table, "keep_within", prefix)
        grace = self.duration(table, "grace", prefix)
        policy = Policy(**counts, keep_within=within)
        keys: dict[str, str | None] = {}
        lock = table.get("object_lock")
        if lock is not None:
            if lock not in OBJECT_LOCK_MODES:
                raise self.error(
                    f"{prefix}.object_lock",
                    f"expected 'governance' or 'compliance', got {_brief(lock)}",
                )
            if policy.longest_keep() is None:
                raise self.error(
                    f"{prefix}.object_lock",
                    "needs a rule bounded in time (keep_within, keep_daily, ...) to derive "
                    "how long objects stay locked; keep_last alone has no bound",
                )
            keys["object_lock"] = lock
        for key in ("encrypt_to", "store_key", "writer_key"):
            value = table.get(key)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise self.error(f"{prefix}.{key}", f"expected a string, got {_brief(value)}")
            keys[key] = value
        return Tier(
            name=name,
            store=store,
            storage_options=dict(options),
            policy=policy,
            grace=DEFAULT_GRACE if grace is None else grace,
            **keys,
        )

    def duration(self, table: Mapping[str, Any], key: str, prefix: str) -> timedelta | None:
        value = table.get(key)
        if value is None:
            return None
        if not isinstance(value, str):
            raise self.error(
                f"{prefix}.{key}", f'expected a duration string such as "30d", got {_brief(value)}'
            )
        try:
            return parse_duration(value)
        except DurationError as exc:
            raise self.error(f"{prefix}.{key}", str(exc)) from None
