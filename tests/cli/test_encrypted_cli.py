"""Encrypted stores through the command line: key generation, init, a writer-only node that
creates and syncs but reads nothing, a store-key host on a new machine, rekey and migrate."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from store import layout
from store.repository import Store
from tests.conftest import Result, Runner, ok
from tests.nodegen import apply_churn, make_node_db


def keys(stigmem: Runner, tmp_path: Path) -> tuple[str, Path, Path]:
    store_key, writer_key = tmp_path / "store.key", tmp_path / "writer.key"
    out = ok(stigmem("keys", "generate", "--store", "--out", str(store_key))).stdout
    pub = next(line.split(": ", 1)[1] for line in out.splitlines() if line.startswith("pub: "))
    assert "key id: " in out
    assert (
        "key id: " in ok(stigmem("keys", "generate", "--writer", "--out", str(writer_key))).stdout
    )
    for path in (store_key, writer_key):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    return pub, store_key, writer_key


def test_writer_only_node_creates_and_syncs_a_store_key_host_restores(
    stigmem: Runner, tmp_path: Path
) -> None:
    pub, store_key, writer_key = keys(stigmem, tmp_path)
    local, offsite = tmp_path / "local", tmp_path / "offsite"
    ok(stigmem("store", "init", str(local), "--encrypt-to", pub))
    ok(stigmem("store", "init", str(offsite), "--encrypt-to", pub))
    config = tmp_path / "config.toml"
    config.write_text(
        f'[tiers.local]\nstore = "{local}"\nkeep_daily = 7\nwriter_key = "{writer_key}"\n'
        f'[tiers.offsite]\nstore = "{offsite}"\nkeep_daily = 30\nwriter_key = "{writer_key}"\n'
    )
    db = tmp_path / "node" / "stigmem.db"
    db.parent.mkdir()
    make_node_db(db, size_mb=0.3, seed=3)
    node = {"STIGMEM_CONFIG": str(config)}
    ids = []
    for day in range(2):
        apply_churn(db, day + 1, seed=3, scale=0.2)
        created = ok(stigmem("snapshot", "create", "--db", str(db), "--json", env=node))
        ids.append(json.loads(created.stdout)["id"])
    ok(stigmem("store", "sync", "--to", "offsite", env=node))
    ok(stigmem("snapshot", "list", env=node))
    ok(stigmem("store", "stats", env=node))
    ok(stigmem("store", "check", env=node))

    before = sorted(e.path for e in Store.open(str(local)).backend.list())
    for args in (
        ("snapshot", "restore", ids[0][:8], "--db", str(tmp_path / "r.db")),
        ("snapshot", "verify", ids[0][:8]),
        ("snapshot", "export", ids[0][:8], "--out", str(tmp_path / "x.tar.gz")),
        ("store", "check", "--read-data-subset", "10%"),
    ):
        failed = stigmem(*args, env=node)
        assert failed.returncode == 1, failed
        assert failed.stderr.strip().count("\n") == 0
        assert "needs the store key" in failed.stderr
    assert not (tmp_path / "r.db").exists() and not (tmp_path / "x.tar.gz").exists()
    assert sorted(e.path for e in Store.open(str(local)).backend.list()) == before

    # A new host: an empty home, the offsite store and its store key, no writer key.
    fresh = tmp_path / "new-host"
    env = {"STIGMEM_HOME": str(fresh), "STIGMEM_STORE_KEY": str(store_key)}
    target = tmp_path / "restored.db"
    ok(
        stigmem(
            "--store",
            str(offsite),
            "snapshot",
            "restore",
            ids[-1][:8],
            "--db",
            str(target),
            env=env,
        )
    )
    assert target.exists()


def test_rekey_and_migrate(stigmem: Runner, tmp_path: Path) -> None:
    pub, store_key, writer_key = keys(stigmem, tmp_path)
    plain = tmp_path / "plain"
    db = tmp_path / "node.db"
    make_node_db(db, size_mb=0.2, seed=5)
    created = ok(stigmem("--store", str(plain), "snapshot", "create", "--db", str(db), "--json"))
    sid = json.loads(created.stdout)["id"]
    encrypted = tmp_path / "encrypted"
    ok(stigmem("store", "init", str(encrypted), "--encrypt-to", pub))
    env = {"STIGMEM_WRITER_KEY": str(writer_key), "STIGMEM_STORE_KEY": str(store_key)}
    migrated = ok(stigmem("store", "migrate", str(plain), str(encrypted), "--json", env=env))
    assert json.loads(migrated.stdout)["snapshots_copied"] == 1
    again = ok(stigmem("store", "migrate", str(plain), str(encrypted), "--json", env=env))
    assert json.loads(again.stdout) | {"bytes_read": 0} == {
        "snapshots_copied": 0,
        "snapshots_present": 1,
        "bytes_read": 0,
    }

    (tmp_path / "second").mkdir()
    new_pub, new_key, _ = keys(stigmem, tmp_path / "second")
    rekeyed = ok(
        stigmem(
            "--store", str(encrypted), "store", "rekey", "--encrypt-to", new_pub, "--json", env=env
        )
    )
    assert json.loads(rekeyed.stdout)["packs"] >= 1
    assert len(Store.open(str(encrypted)).backend.list(layout.KEYS)) == 1

    def restore(target: str, env: dict[str, str]) -> Result:
        args = ["--store", str(encrypted), "snapshot", "restore", sid[:8], "--db", target]
        return stigmem(*args, env=env)

    old = restore(str(tmp_path / "o.db"), env)
    assert old.returncode == 1 and "encrypted to store key" in old.stderr
    ok(restore(str(tmp_path / "n.db"), {"STIGMEM_STORE_KEY": str(new_key)}))


def test_runbook_policy_over_120_days_leaves_nothing_readable_in_either_tier(
    stigmem: Runner, home: Path, tmp_path: Path
) -> None:
    from store import crypto
    from store.encryption import StoreKeys
    from tests.store.history import open_catalog, snapshot_day, tiny_node, trust, write_config
    from tests.store.test_encryption import secrets_of

    pub, store_key, writer_key = keys(stigmem, tmp_path)
    local_url, offsite_url = str(tmp_path / "local"), str(tmp_path / "offsite")
    tier = {"grace": "0h", "encrypt_to": pub, "writer_key": str(writer_key)}
    write_config(
        home / "config.toml",
        {
            "local": {"store": local_url, "keep_daily": 30, **tier},
            "offsite": {"store": offsite_url, "keep_daily": 90, **tier},
        },
    )
    held = StoreKeys(
        crypto.StoreKey.from_text(store_key.read_text(), "s"),
        crypto.WriterKey.from_text(writer_key.read_text(), "w"),
    )
    node = tiny_node(tmp_path / "node" / "stigmem.db")
    ok(stigmem("store", "init", "--tier", "local"))
    local = Store.open(local_url, keys=held)
    catalog = open_catalog(home)
    trust(catalog, node)
    copies: list[bytes] = []
    for day in range(120):
        snapshot_day(node, day, local, catalog, "local", tmp_path)
        copies.append(node.info.path.read_bytes())
        if day == 59:
            ok(stigmem("store", "sync", "--to", "offsite"))
    catalog.close()
    ok(stigmem("store", "sync", "--to", "offsite"))
    curator = {"STIGMEM_STORE_KEY": str(store_key)}
    for name in ("local", "offsite"):
        ok(stigmem("snapshot", "prune", "--tier", name, env=curator))
        ok(stigmem("store", "gc", "--tier", name, "--max-unused", "0%", env=curator))
        checked = ok(
            stigmem("store", "check", "--tier", name, "--read-data-subset", "100%", env=curator)
        )
        assert checked.stdout.startswith("OK: ")
    assert len(Store.open(local_url).snapshot_ids()) == 30
    assert len(Store.open(offsite_url).snapshot_ids()) == 90

    secrets = secrets_of(copies, node.info.path)
    for url in (local_url, offsite_url):
        store = Store.open(url)
        blob = b"\0".join(store.backend.read(e.path) for e in store.backend.list())
        assert [s for s in secrets if s in blob] == []


def test_migrate_killed_at_random_points_then_rerun_loses_nothing(
    stigmem: Runner, home: Path, tmp_path: Path
) -> None:
    import random
    import signal
    import subprocess
    import sys

    from store import crypto
    from store.config import StoreConfig
    from store.encryption import StoreKeys
    from tests.conftest import clean_env
    from tests.store.history import REAL_SEED, open_catalog, snapshot_day, tiny_node

    pub, store_key, writer_key = keys(stigmem, tmp_path)
    old_url, new_url = str(tmp_path / "format1"), str(tmp_path / "format2")
    old = Store.init(old_url, settings=StoreConfig(version=1))
    node = tiny_node(tmp_path / "node" / "stigmem.db")
    # Days of several MiB, so the migration runs long enough to be killed in the middle.
    node.info = make_node_db(
        node.info.path, size_mb=4, privkey_seed=REAL_SEED, upto="001_init", seed=2
    )
    catalog = open_catalog(home)
    for day in range(20):
        snapshot_day(node, day, old, catalog, "local", tmp_path)
    catalog.close()
    ok(stigmem("store", "init", new_url, "--encrypt-to", pub))
    env = {
        **clean_env(home),
        "STIGMEM_WRITER_KEY": str(writer_key),
        "STIGMEM_STORE_KEY": str(store_key),
    }
    rng = random.Random(61)
    killed = 0
    for _ in range(5):
        proc = subprocess.Popen(
            [sys.executable, "-m", "cli", "store", "migrate", old_url, new_url, "-q"],
            env=env,
            cwd=home,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            proc.wait(timeout=rng.uniform(0.2, 0.7))
            assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            killed += 1
    ok(stigmem("store", "migrate", old_url, new_url, env=env))
    assert killed > 0, "no migrate was interrupted: the rounds tested nothing"
    held = StoreKeys(crypto.StoreKey.from_text(store_key.read_text(), "s"))
    new = Store.open(new_url, keys=held)
    assert new.snapshot_ids() == old.snapshot_ids()
    from tests.store.history import db_digest

    for sid in new.snapshot_ids():
        assert db_digest(new, sid) == node.sha[sid]
    checked = ok(
        stigmem("--store", new_url, "store", "check", "--read-data-subset", "100%", env=env)
    )
    assert checked.stdout.startswith("OK: ")
