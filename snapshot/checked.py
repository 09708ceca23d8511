"""Database copies this host has seen pass SQLite's integrity check, known by their SHA-256.

``PRAGMA quick_check`` is a function of a file's bytes and of the SQLite that runs it.
``create`` runs it on the consistent copy it signs, and a restore hashes the bytes it writes
on the way (to compare them with the signed manifest). When a restore has written exactly
the bytes this host already checked, checking them again can only give the same answer,
and that second check would be a serial pass over the whole file at the end of the restore.
So ``create`` leaves a mark here once its check passed, and a restore that finds the mark
for the digest of what it wrote says so instead of checking again.

A mark is a file named by the hex digest, under ``$STIGMEM_HOME/cache/checked/``, holding
the check that passed and the SQLite version that ran it; a mark of another version or of
another check is not used. Marks are written temp + rename, only after a check passed, and
are never needed: a missing or unreadable one only costs a restore its check. A restore
given ``--full-check`` always runs ``integrity_check`` itself.
"""

from __future__ import annotations

import logging
import re
import sqlite3
from pathlib import Path

from snapshot.fileio import atomic_write_bytes

QUICK = "quick_check"
FULL = "integrity_check"
# A passed integrity_check covers quick_check too (it runs every quick_check test and more).
_COVERS = {QUICK: (QUICK, FULL), FULL: (FULL,)}
_HEX = re.compile(r"[0-9a-f]{64}")
log = logging.getLogger("stigmem.cache")


class CheckedCopies:
    """Marks in ``folder``: which database digests passed which check, on this SQLite."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def record(self, digest: str, check: str) -> None:
        """Remember that the file of ``digest`` (``sha256:<hex>`` or hex) passed ``check``.
        Best effort: a cache that cannot be written costs later restores a check, never the
        command that just succeeded."""
        name = _hex(digest)
        if name is None or check not in _COVERS:
            return
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(self.folder / name, _mark(check))
        except OSError as exc:
            log.debug("cache: cannot leave a check mark in %s: %s", self.folder, exc)

    def holds(self, digest: str, check: str) -> bool:
        """Whether a file of ``digest`` is known to pass ``check`` on this SQLite."""
        name = _hex(digest)
        if name is None or check not in _COVERS:
            return False
        try:
            text = (self.folder / name).read_bytes()
        except FileNotFoundError:
            return False
        except OSError as exc:
            log.debug("cache: cannot read the check mark %s: %s", name, exc)
            return False
        return any(text == _mark(covering) for covering in _COVERS[check])


def _mark(check: str) -> bytes:
    return f"{check} ok sqlite {sqlite3.sqlite_version}\n".encode()


def _hex(digest: str) -> str | None:
    name = digest.removeprefix("sha256:")
    return name if _HEX.fullmatch(name) else None
