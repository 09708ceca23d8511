"""CheckedCopies: marks of database bytes that passed SQLite's check, by digest and version."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

from snapshot.checked import FULL, QUICK, CheckedCopies

DIGEST = hashlib.sha256(b"a database").hexdigest()


def test_a_recorded_check_is_held_for_that_digest_only(tmp_path: Path) -> None:
    marks = CheckedCopies(tmp_path / "checked")
    assert not marks.holds(DIGEST, QUICK)
    marks.record(f"sha256:{DIGEST}", QUICK)
    assert marks.holds(DIGEST, QUICK)
    assert marks.holds(f"sha256:{DIGEST}", QUICK)
    assert not marks.holds(hashlib.sha256(b"other bytes").hexdigest(), QUICK)
    # quick_check does not stand in for the full check a --full-check restore asks for.
    assert not marks.holds(DIGEST, FULL)


def test_a_passed_full_check_covers_the_quick_one(tmp_path: Path) -> None:
    marks = CheckedCopies(tmp_path / "checked")
    marks.record(DIGEST, FULL)
    assert marks.holds(DIGEST, FULL)
    assert marks.holds(DIGEST, QUICK)


def test_a_mark_of_another_sqlite_version_is_not_used(tmp_path: Path) -> None:
    marks = CheckedCopies(tmp_path / "checked")
    marks.record(DIGEST, QUICK)
    mark = tmp_path / "checked" / DIGEST
    assert mark.read_text() == f"quick_check ok sqlite {sqlite3.sqlite_version}\n"
    mark.write_text("quick_check ok sqlite 3.0.0\n")
    assert not marks.holds(DIGEST, QUICK)
    mark.write_text("garbage")
    assert not marks.holds(DIGEST, QUICK)


def test_names_that_are_not_digests_are_neither_written_nor_read(tmp_path: Path) -> None:
    marks = CheckedCopies(tmp_path / "checked")
    for name in ("../escape", "sha256:xyz", DIGEST.upper(), ""):
        marks.record(name, QUICK)
        assert not marks.holds(name, QUICK)
    assert not (tmp_path / "checked").exists()
    assert not (tmp_path / "escape").exists()


def test_an_unwritable_cache_costs_the_mark_not_the_command(tmp_path: Path) -> None:
    blocked = tmp_path / "checked"
    blocked.write_text("a file where the folder should be")
    marks = CheckedCopies(blocked)
    marks.record(DIGEST, QUICK)  # no exception: the create that just succeeded stays a success
    assert not marks.holds(DIGEST, QUICK)
    assert blocked.read_text() == "a file where the folder should be"
