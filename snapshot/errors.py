"""The few error classes of the tool. Each carries its one-line message and its exit code.

The command line prints ``str(error)`` on stderr and exits with ``error.exit_code``; no
traceback is ever shown for these. Anything else escaping is a bug.
"""

from __future__ import annotations


class StigmemError(Exception):
    """A user-facing failure: bad input, missing file, unusable database."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UsageError(StigmemError):
    """The command was called wrongly (conflicting or missing options)."""

    exit_code = 2


class VerificationError(StigmemError):
    """A snapshot failed verification. ``outcome`` is one of docs/design.md section 3's outcomes."""

    exit_code = 3

    def __init__(self, outcome: str, detail: str, snapshot_id: str | None = None) -> None:
        super().__init__(f"FAIL: {outcome}: {detail}")
        self.outcome = outcome
        self.detail = detail
        self.snapshot_id = snapshot_id


SHOWN_LIMIT = 200


def shown(text: str, limit: int = SHOWN_LIMIT) -> str:
    """``text`` quoted for an error message, cut to ``limit`` characters with an ellipsis.

    For text an attacker chose (member names, paths, fields of a manifest): a message stays
    one readable line however long the text is, and ``repr`` escapes control characters.
    """
    if len(text) > limit:
        return repr(text[:limit]) + "..."
    return repr(text)


def malformed(detail: str) -> VerificationError:
    return VerificationError("malformed", detail)


class AmbiguousError(StigmemError):
    """A snapshot id prefix or a key name matches more than one snapshot or key: looking
    further (another store, another tier) cannot make it name one."""


class StoreError(StigmemError):
    """The store is unreachable, not a store, of a newer format, or damaged beyond one chunk."""


class AccessDenied(StoreError):
    """The store refused this host's credentials an operation (a node's put-only keys refuse
    every delete)."""


class CatalogError(StigmemError):
    """The catalog database cannot be opened, is of a newer schema, or refused a write."""


class ConfigError(StigmemError):
    """The config file is unreadable or names an unknown key, tier or duration."""


class LockedError(StigmemError):
    """Another process holds a lock we need (database in use, store prune lock)."""


class KeyNeededError(StigmemError):
    """An encrypted store needs a key this host does not hold (or holds another one)."""


class DrillFailed(StigmemError):
    """A restore drill found a snapshot that does not restore as its node's database."""

    exit_code = 3
