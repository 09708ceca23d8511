"""The console script as a process of its own: exit codes, streams and the process's end.

Everything else runs the same entry point in-process (tests/conftest.py); this is what only a
real process shows.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from tests.conftest import Runner, ok


def test_exit_codes_and_streams_of_a_real_process(stigmem_process: Runner, tmp_path: Path) -> None:
    key = tmp_path / "node.key"
    generated = ok(stigmem_process("keys", "generate", "--out", str(key)))
    assert generated.stdout.startswith("pub: ") and "key id: " in generated.stdout

    db = tmp_path / "stigmem.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE node_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    conn.execute("INSERT INTO node_meta VALUES ('node_id', 'stigmem:node:console')")
    conn.commit()
    conn.close()
    created = ok(
        stigmem_process(
            "snapshot",
            "create",
            "--db",
            str(db),
            "--sign-with",
            str(key),
            "--no-store",
            "--out",
            str(tmp_path),
            "--json",
        )
    )
    tarball = Path(json.loads(created.stdout)["tarball"])
    assert ok(stigmem_process("snapshot", "verify", str(tarball))).stdout.startswith("OK: ")

    usage = stigmem_process("snapshot", "verify")
    assert usage.returncode == 2 and "Missing argument" in usage.stderr

    missing = stigmem_process("snapshot", "verify", str(tmp_path / "nope.tar.gz"))
    assert missing.returncode == 1
    assert missing.stderr.startswith("stigmem: ") and missing.stderr.count("\n") == 1

    damaged = tmp_path / "damaged.tar.gz"
    damaged.write_bytes(tarball.read_bytes()[:-40])
    failed = stigmem_process("snapshot", "verify", str(damaged))
    assert failed.returncode == 3 and failed.stdout.startswith("FAIL: malformed")
    assert "Traceback" not in failed.stderr
