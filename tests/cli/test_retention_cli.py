"""Retention tiers through the console script: the runbook policy over 120 simulated days,
untrusted snapshots that must not push real ones out, and bad config files.

Histories are built with the Python API (tests/store/history.py: what ``create`` does, with
``created_at`` set to the simulated day); everything asserted runs the real ``stigmem``.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import uuid
from pathlib import Path

import pytest

from store.localcache import LocalCache
from store.repository import Store
from tests.conftest import BUCKET, Runner, ok, s3_options
from tests.store.history import (
    OTHER_SEED,
    db_digest,
    held_chunks,
    live_placements,
    open_catalog,
    referenced_chunks,
    snapshot_day,
    tiny_node,
    trust,
    write_config,
)

# Tracebacks in failure output, should a command fail.
DEBUG = {"STIGMEM_LOG_LEVEL": "DEBUG"}


def prune_runs(home: Path) -> list[tuple[str, bool, list[str]]]:
    con = sqlite3.connect(home / "catalog.db")
    try:
        rows = con.execute("SELECT tier, dry_run, removed FROM prune_runs ORDER BY id").fetchall()
    finally:
        con.close()
    return [(tier, bool(dry), json.loads(removed)) for tier, dry, removed in rows]


# ---------------------------------------------------------------- the runbook policy


def test_runbook_policy_over_120_days_local_and_offsite(
    stigmem: Runner, home: Path, tmp_path: Path, s3_endpoint: str
) -> None:
    local_url = str(tmp_path / "local-store")
    offsite_url = f"s3://{BUCKET}/{uuid.uuid4().hex}"
    options = s3_options(s3_endpoint)
    write_config(
        home / "config.toml",
        {
            "local": {"store": local_url, "keep_daily": 30, "grace": "0h"},
            "offsite": {
                "store": offsite_url,
                "keep_daily": 90,
                "grace": "0h",
                "storage_options": options,
            },
        },
    )
    # A host cache bound small enough to be reached: the commands trim to it as they go.
    with (home / "config.toml").open("a") as config:
        config.write("\n[cache]\nmax_mib = 1\n")
    node = tiny_node(tmp_path / "node" / "stigmem.db")
    local = Store.open(local_url, create=True)
    catalog = open_catalog(home)
    trust(catalog, node)
    for day in range(60):
        snapshot_day(node, day, local, catalog, "local", tmp_path)
    packs_at_first_sync = len(local.backend.list("packs"))

    first = ok(stigmem("store", "sync", "--to", "offsite", "--json")).json()
    assert first["snapshots_copied"] == 60 and first["packs_copied"] == packs_at_first_sync

    for day in range(60, 120):
        snapshot_day(node, day, local, catalog, "local", tmp_path)
    catalog.close()
    # The second sync copies only the 60 new days' packs; -q prints nothing on success.
    quiet = ok(stigmem("store", "sync", "--to", "offsite", "-q"))
    assert quiet.stdout == "" and quiet.stderr == ""
    offsite = Store.open(offsite_url, options)
    assert len(offsite.backend.list("packs")) == len(local.backend.list("packs"))
    assert offsite.snapshot_ids() == local.snapshot_ids()
    assert live_placements(home, "offsite") == set(node.ids.values())

    # Day 10 verified ok and nothing newer verified: "newest verified" must keep it.
    verified = ok(stigmem("snapshot", "verify", node.ids[10], "--json", env=DEBUG)).json()
    assert verified["outcome"] == "ok"

    expected = {
        "local": {node.ids[d] for d in range(90, 120)} | {node.ids[10]},
        "offsite": {node.ids[d] for d in range(30, 120)} | {node.ids[10]},
    }
    stores = {"local": local, "offsite": offsite}
    for tier, kept in expected.items():
        doc = ok(stigmem("snapshot", "prune", "--tier", tier, "--json")).json()
        assert doc["tier"] == tier and doc["dry_run"] is False
        actions = {e["id"]: e["action"] for e in doc["plan"]}
        assert {sid for sid, a in actions.items() if a == "keep"} == kept
        assert set(doc["removed"]) == set(node.ids.values()) - kept
        assert doc["bytes_freed"] > 0
        reasons = {e["id"]: e["reasons"] for e in doc["plan"]}
        assert reasons[node.ids[10]] == ["newest verified"]
        assert reasons[node.ids[119]] == ["daily snapshot"]
        # Store documents and catalog placements agree with the policy.
        assert set(stores[tier].snapshot_ids()) == kept
        assert live_placements(home, tier) == kept

    # Checked only now: a check records "ok" verifications, which moves "newest verified".
    for tier, kept in expected.items():
        # Prune's own gc (grace 0) left no pack without a referenced chunk and lost nothing.
        store = stores[tier]
        wanted = referenced_chunks(store)
        assert wanted <= set(held_chunks(store))
        for entry in store.backend.list("packs"):
            from store import packs

            keys = {e.key for e in packs.entries_of(store.backend.read(entry.path))}
            assert keys & wanted, f"pack {entry.path} holds nothing referenced"
        # With every partly used pack repacked, the store holds exactly what is referenced.
        gc = ok(stigmem("store", "gc", "--tier", tier, "--max-unused", "0%", "--json")).json()
        assert gc["packs_repacked"] > 0
        held = held_chunks(store)
        assert sorted(held) == sorted(wanted)

        checked = ok(stigmem("store", "check", "--tier", tier, "--read-data-subset", "100%"))
        assert checked.stdout.startswith("OK: ")
        for sid in kept:
            assert db_digest(store, sid) == node.sha[sid]

    assert [(t, d, set(r)) for t, d, r in prune_runs(home)] == [
        ("local", False, set(node.ids.values()) - expected["local"]),
        ("offsite", False, set(node.ids.values()) - expected["offsite"]),
    ]
    # A sample verifies and restores through the console script: newest, oldest offsite-only.
    for sid in (node.ids[119], node.ids[30]):
        verdict = ok(stigmem("snapshot", "verify", sid, "--json", env=DEBUG)).json()
        assert verdict["outcome"] == "ok" and verdict["snapshot_id"] == sid
    target = tmp_path / "restored" / "stigmem.db"
    target.parent.mkdir()
    ok(stigmem("snapshot", "restore", node.ids[30], "--db", str(target), "--no-backup"))
    assert hashlib.sha256(target.read_bytes()).hexdigest() == node.sha[node.ids[30]]
    assert 0 < LocalCache(home / "cache").size() <= 1 << 20


# ---------------------------------------------------------------- untrusted snapshots


def test_planted_untrusted_snapshots_cannot_push_real_ones_out(
    stigmem: Runner, home: Path, tmp_path: Path
) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    url = str(tmp_path / "store")
    write_config(home / "config.toml", {"local": {"store": url, "keep_daily": 30}})
    node = tiny_node(tmp_path / "node" / "stigmem.db")
    store = Store.open(url, create=True)
    catalog = open_catalog(home)
    trust(catalog, node)
    for day in range(45):
        snapshot_day(node, day, store, catalog, "local", tmp_path)
    real = dict(node.ids)
    # 40 newer snapshots claiming the same node, signed by someone else's key.
    attacker = Ed25519PrivateKey.from_private_bytes(OTHER_SEED)
    for day in range(45, 85):
        snapshot_day(node, day, store, catalog, "local", tmp_path, signer=attacker)
    catalog.close()
    planted = {node.ids[d] for d in range(45, 85)}
    before = store.snapshot_ids()

    dry = ok(stigmem("snapshot", "prune", "--dry-run", "--json")).json()
    assert dry["dry_run"] is True and dry["removed"] == []
    assert store.snapshot_ids() == before

    doc = ok(stigmem("snapshot", "prune", "--json")).json()
    plan = {e["id"]: e for e in doc["plan"]}
    for sid in planted:
        assert (plan[sid]["action"], plan[sid]["reasons"]) == ("keep", ["untrusted"])
    kept_real = {real[d] for d in range(15, 45)}
    for sid in kept_real:
        assert (plan[sid]["action"], plan[sid]["reasons"]) == ("keep", ["daily snapshot"])
    assert set(doc["removed"]) == {real[d] for d in range(15)}
    assert set(store.snapshot_ids()) == kept_real | planted
    assert [(t, d) for t, d, _ in prune_runs(home)] == [("local", True), ("local", False)]


# ---------------------------------------------------------------- bad config files

BAD_CONFIGS = {
    "unknown key": ("keep_dayly = 3\n", "tiers.local.keep_dayly"),
    "bad duration": ('keep_within = "3 fortnights"\n', "tiers.local.keep_within"),
    "bad grace": ('grace = "soon"\n', "tiers.local.grace"),
    "unknown default tier": ("", "default_tier"),
    "tier without store": ("", "tiers.offsite.store"),
}


@pytest.mark.parametrize("case", list(BAD_CONFIGS))
def test_bad_config_is_one_line_naming_file_and_key_and_prunes_nothing(
    stigmem: Runner, home: Path, tmp_path: Path, case: str
) -> None:
    url = str(tmp_path / "store")
    node = tiny_node(tmp_path / "node" / "stigmem.db")
    store = Store.open(url, create=True)
    catalog = open_catalog(home)
    trust(catalog, node)
    for day in range(4):
        snapshot_day(node, day, store, catalog, "local", tmp_path)
    catalog.close()
    extra, key = BAD_CONFIGS[case]
    text = f'[tiers.local]\nstore = "{url}"\nkeep_last = 1\n{extra}'
    if case == "unknown default tier":
        text = 'default_tier = "nosuch"\n' + text
    if case == "tier without store":
        text += "[tiers.offsite]\nkeep_daily = 90\n"
    config = home / "config.toml"
    config.write_text(text)
    listing = sorted(e.path for e in store.backend.list())

    result = stigmem("snapshot", "prune", "--tier", "local")

    assert result.returncode == 1, result
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and str(config) in lines[0] and key in lines[0], result
    assert sorted(e.path for e in store.backend.list()) == listing


def test_unknown_tier_on_the_command_line_prunes_nothing(
    stigmem: Runner, home: Path, tmp_path: Path
) -> None:
    url = str(tmp_path / "store")
    write_config(home / "config.toml", {"local": {"store": url, "keep_last": 1}})
    Store.open(url, create=True)
    result = stigmem("snapshot", "prune", "--tier", "offsite")
    assert result.returncode == 1, result
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and "unknown tier 'offsite'" in lines[0]
    assert str(home / "config.toml") in lines[0]
