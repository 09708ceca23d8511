"""Against the real Stigmem node's own migration files, when they are at hand.

``STIGMEM_NODE_SRC`` names an unpacked stigmem-node source distribution (its ``migrations/``
folder is what a node applies); CI fetches one. Without it these tests skip and say so.
"""

from __future__ import annotations

import os
import re
import sqlite3
from pathlib import Path

import pytest

from tests.conftest import Runner, ok, rows
from tests.nodegen import apply_node_migrations

NODE_SRC = os.environ.get("STIGMEM_NODE_SRC")
pytestmark = pytest.mark.skipif(
    not NODE_SRC or not (Path(NODE_SRC) / "migrations").is_dir(),
    reason="STIGMEM_NODE_SRC does not name an unpacked stigmem-node source distribution",
)


OWN_BEGIN = re.compile(r"^\s*BEGIN\s*;", re.MULTILINE)


def node_migrations() -> Path:
    assert NODE_SRC is not None
    return Path(NODE_SRC) / "migrations"


def schema(db: Path) -> list[tuple[object, ...]]:
    return rows(db, "SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY name")


def test_a_snapshot_before_the_nodes_table_rebuilds_restores_to_the_nodes_schema(
    stigmem: Runner, tmp_path: Path
) -> None:
    every = sorted(p.stem for p in node_migrations().glob("*.sql"))
    # Older than the first script that rebuilds a table inside its own transaction.
    upto = next(v for v in every if OWN_BEGIN.search((node_migrations() / f"{v}.sql").read_text()))
    older = [v for v in every if v < upto]
    old_folder = tmp_path / "old-migrations"
    old_folder.mkdir()
    for version in older:
        (old_folder / f"{version}.sql").write_text(
            (node_migrations() / f"{version}.sql").read_text()
        )
    node = tmp_path / "node" / "stigmem.db"
    node.parent.mkdir()
    apply_node_migrations(node, old_folder)
    conn = sqlite3.connect(node)
    conn.execute(
        "INSERT INTO node_meta (key, value) VALUES "
        "('node_id', 'stigmem:node:3b0c7b5e-59c8-4a4e-9a51-0f6f3d1f1a77')"
    )
    conn.commit()
    conn.close()
    reference = tmp_path / "reference.db"
    apply_node_migrations(reference, node_migrations())
    key = tmp_path / "node.key"
    ok(stigmem("keys", "generate", "--out", str(key)))

    created = ok(
        stigmem("snapshot", "create", "--db", str(node), "--sign-with", str(key), "--json")
    )
    target = tmp_path / "target" / "stigmem.db"
    target.parent.mkdir()
    restored = ok(
        stigmem(
            "snapshot",
            "restore",
            created.json()["id"],
            "--db",
            str(target),
            "--migrations-dir",
            str(node_migrations()),
            "--json",
        )
    )

    assert restored.json()["migrations_replayed"] == [v for v in every if v >= upto]
    assert schema(target) == schema(reference)
    conn = sqlite3.connect(target)
    versions = [v for (v,) in conn.execute("SELECT version FROM schema_migrations ORDER BY id")]
    conn.close()
    assert versions == every
