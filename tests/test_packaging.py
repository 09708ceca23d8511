"""The wheel an operator installs.

Builds a wheel from a copy of the repository, checks its file list, installs it into a fresh
virtual environment (dependencies from PyPI) and runs *that* environment's ``stigmem``: it must
create and migrate a new catalog and upgrade one left at the previous revision, which only
works when the Alembic scripts ship inside the wheel.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests import reference_format as ref
from tests.conftest import REPO
from tests.nodegen import make_node_db

PACKAGES = {"cli", "catalog", "store", "snapshot", "migrations"}
IGNORED = shutil.ignore_patterns(
    ".venv",
    ".git",
    "__pycache__",
    "*.pyc",
    "build",
    "dist",
    "*.egg-info",
    ".mypy_cache",
    ".ruff_cache",
    ".pytest_cache",
)


def head_revision() -> str:
    from catalog.migrate import head_revision as head

    return head()


def run(args: list[str | Path], **kwargs: object) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=600, **kwargs
    )  # type: ignore[call-overload]
    assert proc.returncode == 0, f"{args} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def venv_env(home: Path) -> dict[str, str]:
    # Nothing from the repository may leak in: no PYTHONPATH, no STIGMEM_* of the caller.
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("STIGMEM_", "PYTHON", "VIRTUAL_ENV"))
    }
    env["STIGMEM_HOME"] = str(home)
    return env


def catalog_revision(path: Path) -> list[tuple[str]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT version_num FROM alembic_version").fetchall()
    finally:
        conn.close()


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Build from a copy so the build never leaves build/ or egg-info behind in the checkout.
    work = tmp_path_factory.mktemp("wheel")
    source = work / "src"
    shutil.copytree(REPO, source, ignore=IGNORED)
    run([sys.executable, "-m", "build", "--wheel", "--outdir", work / "dist", source])
    wheels = list((work / "dist").glob("*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def test_wheel_holds_exactly_the_packages(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/")[0] for name in names}
    dist_info = {t for t in top if t.endswith(".dist-info")}
    assert len(dist_info) == 1
    assert top - dist_info == PACKAGES
    assert not [n for n in names if n.startswith(("tests/", "bench/")) or "/tests/" in n]
    for required in (
        "migrations/env.py",
        "migrations/script.py.mako",
        "migrations/versions/__init__.py",
        "migrations/versions/0001_initial.py",
        "migrations/versions/0002_labels_and_last_verification.py",
        "cli/__main__.py",
    ):
        assert required in names, required
    shipped = {n.rsplit("/", 1)[1] for n in names if n.startswith("migrations/versions/")}
    in_repo = {p.name for p in (REPO / "migrations" / "versions").glob("*.py")}
    assert shipped == in_repo
    entry_points = zipfile.ZipFile(wheel).read(f"{dist_info.pop()}/entry_points.txt").decode()
    assert "stigmem = cli.main:main" in entry_points


@pytest.mark.slow
def test_installed_wheel_creates_and_upgrades_catalogs(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", venv])
    run(
        [
            venv / "bin" / "python",
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "-q",
            wheel,
        ]
    )
    stigmem = venv / "bin" / "stigmem"
    home = tmp_path / "home"
    env = venv_env(home)
    # The installed modules answer, not the checkout's.
    where = run(
        [
            venv / "bin" / "python",
            "-c",
            "import cli, migrations; print(cli.__file__); print(migrations.__file__)",
        ],
        env=env,
        cwd=tmp_path,
    )
    assert all(str(venv) in line for line in where.stdout.splitlines())

    assert run([stigmem, "--help"], env=env, cwd=tmp_path).stdout.startswith("Usage: stigmem")
    listed = run([stigmem, "--home", home, "keys", "list", "--json"], env=env, cwd=tmp_path)
    assert json.loads(listed.stdout) == []
    assert catalog_revision(home / "catalog.db") == [(head_revision(),)]

    node = make_node_db(
        tmp_path / "node" / "stigmem.db", size_mb=0.2, seed=5, privkey_seed=b"\x07" * 32
    )
    created = run(
        [stigmem, "snapshot", "create", "--db", node.path, "--json"], env=env, cwd=tmp_path
    )
    sid = json.loads(created.stdout)["id"]
    rows = json.loads(run([stigmem, "snapshot", "list", "--json"], env=env, cwd=tmp_path).stdout)
    assert [(r["id"], r["tiers"], r["trusted"]) for r in rows] == [(sid, ["local"], True)]

    # A catalog left at the previous revision by an older tool upgrades in place.
    old = tmp_path / "old" / "catalog.db"
    build_0001_catalog(old)
    upgraded = run(
        [stigmem, "--catalog", f"sqlite:///{old}", "snapshot", "list", "--json"],
        env=env,
        cwd=tmp_path,
    )
    rows = json.loads(upgraded.stdout)
    assert [(r["id"], r["node_id"], r["last_verify_outcome"]) for r in rows] == [
        (OLD_ID, "stigmem:node:old", None)
    ]
    assert catalog_revision(old) == [(head_revision(),)]


OLD_ID = hashlib.sha256(b"a snapshot catalogued by revision 0001").hexdigest()


def build_0001_catalog(path: Path) -> None:
    """A catalog as the previous release left it: schema 0001, one row written in plain SQL."""
    from alembic import command
    from sqlalchemy import text

    from catalog.engine import make_engine
    from catalog.migrate import alembic_config

    engine = make_engine(f"sqlite:///{path}")
    try:
        with engine.begin() as conn:
            config = alembic_config()
            config.attributes["connection"] = conn
            command.upgrade(config, "0001")
        pub = ref.public_key_of(b"\x08" * 32)
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO snapshots (id, node_id, created_at, db_sha256, db_size, cursor,"
                    " signer_key_id, signer_pubkey, manifest, catalogued_at, catalogued_from,"
                    " catalogued_host, pinned) VALUES (:id, 'stigmem:node:old', :t, :sha, 1,"
                    " :cursor, :kid, :pub, :manifest, :t, 'old', 'oldhost', 0)"
                ),
                dict(
                    id=OLD_ID,
                    t="2026-01-02 03:04:05.000006",
                    sha="cd" * 32,
                    cursor="[]",
                    kid=ref.key_id_of(pub),
                    pub=pub,
                    manifest='{"version":1}',
                ),
            )
    finally:
        engine.dispose()
    assert catalog_revision(path) == [("0001",)]
