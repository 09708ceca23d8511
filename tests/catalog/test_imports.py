"""What a catalog command imports: start-up is most of a ``snapshot list`` or ``show`` on a
million-snapshot catalog, so the heavy modules it does not need must stay out.

Each command runs in a fresh process (the entry point's own ``_run``) that reports, when the
command is done, which of the watched modules got imported.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from catalog import Catalog
from tests.catalog.catalog_factories import Maker, snapshot_id

REPO = Path(__file__).resolve().parents[2]
WATCHED = (
    "sqlalchemy",
    "sqlalchemy.orm",
    "alembic",
    "rich",
    "sqlalchemy.dialects.sqlite",
    "sqlalchemy.dialects.postgresql",
    "cli.store_cmds",
    "cryptography",
    "fsspec",
)
# The entry point's own run (main() ends the process without running atexit handlers).
REPORT = f"""
import json, sys
sys.argv = ["stigmem", *sys.argv[1:]]
from cli.main import run
code = run()
print(json.dumps([m for m in {WATCHED!r} if m in sys.modules]), file=sys.stderr)
sys.exit(code)
"""


def imported_by(home: Path, *args: str, tty: bool = False) -> list[str]:
    """Run ``stigmem ARGS``; with ``tty`` its stdout is a terminal (a pseudo-terminal)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STIGMEM_")}
    env.update(STIGMEM_HOME=str(home), PYTHONPATH=str(REPO))
    command = [sys.executable, "-c", REPORT, *args]
    if not tty:
        proc = subprocess.run(command, env=env, capture_output=True, text=True, cwd=home)
    else:
        import pty

        leader, follower = pty.openpty()
        try:
            # A few short lines: they fit the terminal's buffer, nothing needs reading.
            proc = subprocess.run(
                command, env=env, stdout=follower, stderr=subprocess.PIPE, text=True, cwd=home
            )
        finally:
            os.close(follower)
            os.close(leader)
    assert proc.returncode == 0, proc.stderr
    return list(json.loads(proc.stderr.strip().splitlines()[-1]))


def test_list_and_show_import_only_what_they_use(catalog_url: str, tmp_path: Path) -> None:
    with Catalog.open(catalog_url) as cat:
        cat.record_snapshot(Maker().record(1))
        cat.record_placement(snapshot_id(1), "local", "/stores/local")
    backend = "sqlite" if catalog_url.startswith("sqlite") else "postgresql"
    expected = ["sqlalchemy", f"sqlalchemy.dialects.{backend}"]
    for args in (
        ("snapshot", "list", "--since", "3650d", "--limit", "50", "--json"),
        ("snapshot", "list", "--limit", "50"),  # the table, piped
        ("snapshot", "show", snapshot_id(1)[:8], "--json"),
        ("snapshot", "show", snapshot_id(1)[:8]),
    ):
        assert imported_by(tmp_path, "--catalog", catalog_url, *args) == expected, args
    # On a terminal too: the table is plain text, no rich.
    for args in (("snapshot", "list", "--limit", "50"), ("snapshot", "show", snapshot_id(1))):
        assert imported_by(tmp_path, "--catalog", catalog_url, *args, tty=True) == expected


@pytest.mark.parametrize(
    "args", [("--help",), ("snapshot", "--help"), ("snapshot", "list", "--help")]
)
def test_help_imports_no_library(args: tuple[str, ...], tmp_path: Path) -> None:
    # The top-level help lists every group, so it does import their (light) modules.
    assert [m for m in imported_by(tmp_path, *args) if not m.startswith("cli.")] == []


def test_a_local_store_is_used_without_fsspec(tmp_path: Path) -> None:
    # A plain directory is files and fsync: fsspec (35 ms of start-up) is for other stores.
    store = str(tmp_path / "store")
    for args in (("store", "init", store), ("--store", store, "store", "stats")):
        assert "fsspec" not in imported_by(tmp_path, *args), args
    assert "fsspec" in imported_by(tmp_path, "store", "init", f"memory://{store}")
