"""``snapshot restore``'s integrity check, and when a restore may trust the one create ran.

A restore checks the new database with quick_check unless the bytes it wrote (by SHA-256)
are those this host's create checked: the check is a function of the bytes."""

from __future__ import annotations

import contextlib
import hashlib
import sqlite3
from array import array
from pathlib import Path
from typing import Any

import pytest

from tests import reference_format as ref
from tests.conftest import Runner, ok, rows, write_rotten_database
from tests.nodegen import NodeInfo, make_node_db

SEED = bytes(range(32))


@pytest.fixture
def node(tmp_path: Path) -> NodeInfo:
    return make_node_db(tmp_path / "node" / "stigmem.db", size_mb=0.3, seed=1, privkey_seed=SEED)


def restore(stigmem: Runner, ref_: str, target: Path, pubkey: str, *extra: str) -> Any:
    args = ["snapshot", "restore", ref_, "--db", str(target), "--trusted-key", pubkey]
    return ok(stigmem(*args, "--no-backup", "--json", *extra)).json()


def test_a_restore_of_bytes_create_checked_here_says_so(
    stigmem: Runner, home: Path, node: NodeInfo, tmp_path: Path
) -> None:
    created = ok(stigmem("snapshot", "create", "--db", str(node.path), "--json")).json()
    target = tmp_path / "restored.db"

    args = ["snapshot", "restore", created["id"], "--db", str(target), "--no-backup"]
    marked = ok(stigmem("--log-level", "INFO", *args, "--trusted-key", node.pubkey, "--json"))
    assert marked.json()["integrity_check"] == {"pragma": "quick_check", "result": "ok"}
    assert "quick_check not repeated" in marked.stderr
    assert hashlib.sha256(target.read_bytes()).hexdigest() == created["db_sha256"]
    assert rows(target, "PRAGMA integrity_check") == [("ok",)]

    # Without the mark (another host, or a cleared cache) the restore checks itself, and
    # says the same.
    for mark in (home / "cache" / "checked").iterdir():
        mark.unlink()
    unmarked = ok(stigmem("--log-level", "INFO", *args, "--trusted-key", node.pubkey, "--json"))
    assert "quick_check not repeated" not in unmarked.stderr
    assert unmarked.json()["integrity_check"] == marked.json()["integrity_check"]
    text = ok(stigmem(*args, "--trusted-key", node.pubkey)).stdout
    assert "  integrity   quick_check passed" in text


def test_full_check_always_runs_its_own_check(
    stigmem: Runner, node: NodeInfo, tmp_path: Path
) -> None:
    created = ok(stigmem("snapshot", "create", "--db", str(node.path), "--json")).json()
    doc = restore(stigmem, created["id"], tmp_path / "restored.db", node.pubkey, "--full-check")
    assert doc["integrity_check"] == {"pragma": "integrity_check", "result": "ok"}


def test_marks_of_good_bytes_do_not_pass_other_bytes(
    stigmem: Runner, home: Path, node: NodeInfo, tmp_path: Path
) -> None:
    """A signed snapshot of a broken database is refused even on a host full of marks."""
    ok(stigmem("snapshot", "create", "--db", str(node.path)))
    assert any((home / "cache" / "checked").iterdir())
    broken = tmp_path / "broken" / "stigmem.db"
    broken.parent.mkdir()
    write_rotten_database(broken)  # signed anyway, below
    (tmp_path / "in").mkdir()
    tarball = ref.write_reference_tarball(tmp_path / "in", broken, SEED, node.node_id, [])
    target = tmp_path / "target.db"
    make_node_db(target, size_mb=0.1, seed=3)
    before = target.read_bytes()

    refused = stigmem(
        "snapshot", "restore", "--from", str(tarball), "--db", str(target),
        "--trusted-key", node.pubkey,
    )  # fmt: skip
    assert refused.returncode != 0
    assert "restored database fails quick_check" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert target.read_bytes() == before


@pytest.mark.parametrize("damage", ["swapped", "shifted"])
def test_plans_gone_wrong_in_the_host_cache_cost_one_failed_restore(
    stigmem: Runner, home: Path, node: NodeInfo, tmp_path: Path, damage: str
) -> None:
    created = ok(stigmem("snapshot", "create", "--db", str(node.path), "--json")).json()
    (cache,) = (home / "cache").glob("index-*.db")
    with contextlib.closing(sqlite3.connect(cache)) as db:
        assert db.execute("SELECT count(*) FROM plans").fetchone() == (0,)
    # A verify (or a restore) whose bytes hash right keeps the plans it read with.
    ok(stigmem("snapshot", "verify", created["id"], "--trusted-key", node.pubkey))
    with contextlib.closing(sqlite3.connect(cache)) as db, db:
        plans = db.execute("SELECT list, rows FROM plans").fetchall()
        assert plans
        for name, rows in plans:
            cells = array("I", rows)
            if damage == "swapped":  # the first two pages trade places: both decode
                cells[1:6], cells[7:12] = cells[7:12], cells[1:6]
            else:  # the first frame's offset is off: it does not decode
                cells[2] += 7
            db.execute("UPDATE plans SET rows = ? WHERE list = ?", (cells.tobytes(), name))
    target = tmp_path / "target.db"
    make_node_db(target, size_mb=0.1, seed=3)
    before = target.read_bytes()
    args = ["snapshot", "restore", created["id"], "--db", str(target), "--trusted-key"]

    failed = stigmem(*args, node.pubkey)
    assert failed.returncode == 3, failed
    assert "checksum_error" in failed.stdout + failed.stderr
    assert target.read_bytes() == before

    ok(stigmem(*args, node.pubkey))
    assert hashlib.sha256(target.read_bytes()).hexdigest() == created["db_sha256"]
