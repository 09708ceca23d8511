"""A validly signed store document whose manifest holds a hostile created_at: store check
reports it, catalog reindex skips it, neither crashes."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import pytest

from tests import reference_format as ref
from tests.conftest import Runner, ok

SEED = bytes(range(32))


@pytest.mark.parametrize(
    "created_at", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "not a time"]
)
def test_a_signed_document_with_a_hostile_created_at(
    stigmem: Runner, home: Path, tmp_path: Path, created_at: str
) -> None:
    db = tmp_path / "node.db"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE t (x)")
    con.commit()
    con.close()
    key = tmp_path / "node.key"
    key.write_text(ref.b64url(SEED))
    ok(stigmem("snapshot", "create", "--db", str(db), "--sign-with", str(key)))
    [path] = (home / "store" / "snapshots").glob("*.json")
    doc = json.loads(path.read_text())
    manifest = ref.sign_manifest({**doc["manifest"], "created_at": created_at}, SEED)
    sid = hashlib.sha256(ref.signed_bytes(manifest)).hexdigest()
    hostile = {**doc, "manifest": manifest}
    (path.parent / f"{sid}.json").write_text(json.dumps(hostile))

    checked = stigmem("store", "check")
    assert checked.returncode == 3, checked
    assert "internal error" not in checked.stderr
    assert any(sid in line and "created_at" in line for line in checked.stdout.splitlines())
    reindexed = ok(stigmem("catalog", "reindex"))
    assert f"skipped {sid}" in reindexed.stderr and "created_at" in reindexed.stderr
    listed = ok(stigmem("snapshot", "list", "--json")).json()
    assert sid not in [row["id"] for row in listed] and len(listed) == 1
