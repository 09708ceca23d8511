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
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from snapshot.checked import QUICK, attest
from snapshot.keys import b64url_encode
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


def edit_document(home: Path, snapshot_id: str, edit: Any) -> None:
    """Change a stored snapshot's document as someone with write access to the store could."""
    from store import documents
    from store.repository import Store

    store = Store.open(str(home / "store"))
    doc = store.load_document(snapshot_id)
    edit(doc)
    data = documents.encode(doc["manifest"], doc["artifacts"], doc.get("checked"))
    store.write_document(snapshot_id, data)


def test_a_restore_of_bytes_create_checked_says_so_here_and_on_another_host(
    stigmem: Runner, home: Path, node: NodeInfo, tmp_path: Path
) -> None:
    created = ok(stigmem("snapshot", "create", "--db", str(node.path), "--json")).json()
    target = tmp_path / "restored.db"
    args = ["snapshot", "restore", created["id"], "--db", str(target), "--no-backup"]

    def restored(*extra: str) -> Any:
        return ok(stigmem("--log-level", "INFO", *args, "--trusted-key", node.pubkey, *extra))

    marked = restored("--json")
    assert marked.json()["integrity_check"] == {"pragma": "quick_check", "result": "ok"}
    assert "quick_check not repeated" in marked.stderr
    assert hashlib.sha256(target.read_bytes()).hexdigest() == created["db_sha256"]
    assert rows(target, "PRAGMA integrity_check") == [("ok",)]

    # Without the mark (another host, or a cleared cache), the attestation the signer put in
    # the store document serves the same.
    for mark in (home / "cache" / "checked").iterdir():
        mark.unlink()
    attested = restored("--json")
    assert "quick_check not repeated" in attested.stderr
    assert attested.json()["integrity_check"] == marked.json()["integrity_check"]

    # A restore forced past a failed verification does not take the signer's word.
    for mark in (home / "cache" / "checked").iterdir():
        mark.unlink()
    untrusted = Ed25519PrivateKey.generate().public_key().public_bytes_raw()
    forced = ok(
        stigmem(
            "--log-level", "INFO", *args, "--trusted-key", b64url_encode(untrusted),
            "--force-unverified",
        )
    )  # fmt: skip
    assert "quick_check not repeated" not in forced.stderr

    # An attestation someone else signed, one of the same bytes in another snapshot, or
    # none: the restore checks the bytes itself, and says the same.

    forged = attest(Ed25519PrivateKey.generate(), QUICK, created["id"], created["db_sha256"])
    second = ok(stigmem("snapshot", "create", "--db", str(node.path), "--json")).json()
    from store.repository import Store

    replayed = Store.open(str(home / "store")).load_document(second["id"])["checked"]
    for record in (forged, replayed, None):

        def put(doc: dict[str, Any], record: Any = record) -> None:
            doc["checked"] = record

        edit_document(home, created["id"], put)
        for mark in (home / "cache" / "checked").iterdir():
            mark.unlink()
        unmarked = restored("--json")
        assert "quick_check not repeated" not in unmarked.stderr, record
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
