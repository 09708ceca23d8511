"""``snapshot drill``: a good snapshot passes and is recorded with its time to restore; a
signed database that fails the full integrity check, one whose node_meta names another node,
one in a damaged pack, and one interrupted by SIGINT each fail, leave no scratch file and
touch no live database."""

from __future__ import annotations

import hashlib
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from store import layout
from store.repository import Store
from tests.conftest import Runner, clean_env, ok
from tests.nodegen import make_node_db


def node_db(tmp_path: Path, size_mb: float = 0.3) -> Path:
    db = tmp_path / "node" / "stigmem.db"
    db.parent.mkdir(parents=True, exist_ok=True)
    make_node_db(db, size_mb=size_mb, seed=11)
    return db


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def scratch_left(home: Path) -> list[Path]:
    scratch = home / "scratch"
    return sorted(scratch.rglob("*")) if scratch.exists() else []


def drill(stigmem: Runner, db: Path, *args: str) -> tuple[int, dict]:
    """Run a drill with STIGMEM_DB_PATH naming the live database, which must not change."""
    before = digest(db)
    result = stigmem("snapshot", "drill", *args, "--json", env={"STIGMEM_DB_PATH": str(db)})
    assert digest(db) == before
    assert scratch_left(db.parent.parent / "home") == []
    return result.returncode, result.json()


def failed_checks(doc: dict) -> list[str]:
    return [c["name"] for c in doc["checks"] if not c["ok"]]


def test_a_good_snapshot_passes_and_is_recorded_with_its_rto(
    stigmem: Runner, home: Path, tmp_path: Path
) -> None:
    db = node_db(tmp_path)
    sid = ok(stigmem("snapshot", "create", "--db", str(db), "--json")).json()["id"]
    code, doc = drill(stigmem, db, sid[:10])
    assert code == 0
    assert doc["snapshot_id"] == sid and doc["outcome"] == "ok"
    assert doc["bytes"] == db.stat().st_size and doc["restore_seconds"] > 0
    names = {c["name"] for c in doc["checks"]}
    assert {"verify", "integrity_check", "core_tables", "node_id", "schema_migrations"} <= names
    shown = ok(stigmem("snapshot", "show", sid[:10], "--json")).json()
    assert shown["last_drill"]["outcome"] == "ok"
    assert shown["last_drill"]["restore_seconds"] == doc["restore_seconds"]
    listed = ok(stigmem("snapshot", "list", "--json")).json()
    assert listed[0]["last_drill"]["outcome"] == "ok"
    # The default: the newest snapshot of every node, as an array.
    code, every = drill(stigmem, db)
    assert code == 0 and [d["snapshot_id"] for d in every] == [sid]


def test_a_signed_database_failing_integrity_check_fails_the_drill(
    stigmem: Runner, home: Path, tmp_path: Path
) -> None:
    db = node_db(tmp_path)
    # An index that misses rows: quick_check (which create runs) does not look inside
    # indexes, the full integrity_check does. The snapshot is signed over these bytes.
    conn = sqlite3.connect(db)
    conn.executescript("CREATE TABLE drill_x(a INTEGER); CREATE INDEX drill_xi ON drill_x(a);")
    (entry,) = conn.execute(
        "SELECT type, name, tbl_name, rootpage, sql FROM sqlite_master WHERE name = 'drill_xi'"
    ).fetchall()
    conn.execute("PRAGMA writable_schema=ON")
    conn.execute("DELETE FROM sqlite_master WHERE name = 'drill_xi'")
    conn.commit()
    conn.close()
    conn = sqlite3.connect(db)
    conn.executemany("INSERT INTO drill_x(a) VALUES (?)", [(n,) for n in range(50)])
    conn.commit()
    conn.execute("PRAGMA writable_schema=ON")
    conn.execute("INSERT INTO sqlite_master VALUES (?, ?, ?, ?, ?)", entry)
    conn.commit()
    conn.close()
    assert sqlite3.connect(db).execute("PRAGMA quick_check").fetchone() == ("ok",)

    sid = ok(stigmem("snapshot", "create", "--db", str(db), "--json")).json()["id"]
    code, doc = drill(stigmem, db, sid[:10])
    assert code == 3 and doc["outcome"] == "failed"
    assert failed_checks(doc) == ["integrity_check"]
    assert "drill_xi" in next(c["detail"] for c in doc["checks"] if not c["ok"])


def test_a_snapshot_whose_node_meta_names_another_node_fails(
    stigmem: Runner, home: Path, tmp_path: Path
) -> None:
    db = node_db(tmp_path)
    made = stigmem(
        "snapshot", "create", "--db", str(db), "--json", env={"STIGMEM_NODE_ID": "stigmem:node:x"}
    )
    sid = ok(made).json()["id"]
    code, doc = drill(stigmem, db, sid[:10])
    assert code == 3
    assert failed_checks(doc) == ["node_id"]


def test_a_damaged_pack_fails_the_drill_at_verify(
    stigmem: Runner, home: Path, tmp_path: Path
) -> None:
    db = node_db(tmp_path)
    sid = ok(stigmem("snapshot", "create", "--db", str(db), "--json")).json()["id"]
    store = Store.open(str(home / "store"))
    (pack, *_) = sorted(e.path for e in store.backend.list(layout.PACKS))
    data = bytearray(store.backend.read(pack))
    data[len(data) // 2] ^= 0xFF
    (home / "store" / pack).write_bytes(bytes(data))
    code, doc = drill(stigmem, db, sid[:10])
    assert code == 3
    assert failed_checks(doc) == ["verify"]
    assert "checksum_error" in doc["checks"][0]["detail"]
    assert ok(stigmem("snapshot", "show", sid[:10], "--json")).json()["last_drill"]["outcome"] == (
        "failed"
    )


def test_a_drill_interrupted_by_sigint_leaves_no_scratch_and_no_live_change(
    stigmem: Runner, home: Path, tmp_path: Path
) -> None:
    db = node_db(tmp_path, size_mb=24)
    ok(stigmem("snapshot", "create", "--db", str(db)))
    before = digest(db)
    env = clean_env(home) | {"STIGMEM_DB_PATH": str(db)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli", "snapshot", "drill"],
        env=env,
        cwd=home,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    scratch = home / "scratch"
    while not any(scratch.glob("drill-*/*")) and proc.poll() is None:
        time.sleep(0.005)  # polling for the scratch file; no outcome depends on this
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode != 0, (out, err)
    assert scratch_left(home) == []
    assert digest(db) == before


def test_a_drill_replays_a_migrations_folder(stigmem: Runner, home: Path, tmp_path: Path) -> None:
    db = tmp_path / "node" / "stigmem.db"
    db.parent.mkdir(parents=True)
    make_node_db(db, size_mb=0.2, seed=12, upto="010_scope_propagation")
    sid = ok(stigmem("snapshot", "create", "--db", str(db), "--json")).json()["id"]
    folder = Path(__file__).parent.parent / "fixtures" / "migrations"
    code, doc = drill(stigmem, db, sid[:10], "--migrations-dir", str(folder))
    assert code == 0, doc
    checks = {c["name"]: c for c in doc["checks"]}
    assert checks["migrations"]["ok"] and "replayed" in checks["migrations"]["detail"]
    newer = sorted(p.stem for p in folder.glob("*.sql") if p.stem > "010_scope_propagation")
    assert newer and all(name in checks["migrations"]["detail"] for name in newer)
    assert checks["schema_migrations"]["ok"]
