"""Nothing a kept snapshot needs is ever lost: prune and gc racing ``create`` (local and S3),
``kill -9`` during prune, gc and sync, and locks left behind or still held.

Histories are built with the Python API (tests/store/history.py); the commands under test run
through the real console script in their own processes.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from store import layout, locks
from store.repository import Store
from tests.conftest import BUCKET, REPO, Result, Runner, clean_env, dead_pid, ok, s3_options
from tests.nodegen import apply_churn
from tests.store.history import (
    Node,
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

LOCKED = "is locked"


def spawn(home: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "cli", *args],
        env=clean_env(home),
        cwd=home,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen[str]) -> Result:
    out, err = proc.communicate(timeout=120)
    args: list[str] = proc.args  # type: ignore[assignment]  # spawn() passes a list of str
    return Result(tuple(args[3:]), proc.returncode, out, err)


def kill_while_locked(proc: subprocess.Popen[str], store: Store, delay: float) -> bool:
    """SIGKILL ``proc`` ``delay`` seconds after its lock shows up in ``store``, so the kill
    lands inside the work the lock guards; True if it was killed, False if it ended first."""
    while not store.backend.list(layout.LOCKS):
        if proc.poll() is not None:
            proc.communicate()
            return False
        time.sleep(0.005)  # polling for the lock object; no timing depends on this
    try:
        proc.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        return True
    proc.communicate()
    return False


def setup_tier(
    home: Path, tmp_path: Path, url: str, options: dict[str, Any], days: int
) -> tuple[Node, Store]:
    write_config(
        home / "config.toml",
        {"local": {"store": url, "keep_daily": 30, "grace": "0h", "storage_options": options}},
    )
    node = tiny_node(tmp_path / "node" / "stigmem.db")
    store = Store.open(url, options, create=True)
    catalog = open_catalog(home)
    trust(catalog, node)
    for day in range(days):
        snapshot_day(node, day, store, catalog, "local", tmp_path)
    catalog.close()
    return node, store


# ---------------------------------------------------------------- prune and gc racing create


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_prune_and_gc_racing_create_lose_nothing_create_reported(
    request: pytest.FixtureRequest, stigmem: Runner, home: Path, tmp_path: Path, kind: str
) -> None:
    if kind == "s3":
        options = s3_options(request.getfixturevalue("s3_endpoint"))
        url = f"s3://{BUCKET}/{uuid.uuid4().hex}"
    else:
        options, url = {}, str(tmp_path / "store")
    # Old snapshots of the same node share most pages with the ones create will make, so
    # gc deletes and repacks packs that a concurrent create would deduplicate against.
    node, store = setup_tier(home, tmp_path, url, options, days=16)
    now = datetime.now(UTC)
    ages = sorted(
        (now - datetime.fromisoformat(store.load_document(s)["manifest"]["created_at"])).days
        for s in node.ids.values()
    )
    iterations = 4
    reported: dict[str, str] = {}
    outcomes: list[str] = []
    # Which side takes the lock first is a coin toss: go on past the planned rounds until
    # some create has won one (all losing 12 times in a row: 1 in 4,096 at even odds).
    for i in range(3 * iterations):
        if i >= iterations and reported:
            break
        apply_churn(node.info.path, 200 + i)
        create = spawn(home, "snapshot", "create", "--db", str(node.info.path), "--json")
        if i % 2 == 0:
            # keep_within is relative to the newest snapshot (a created one, now): each
            # round drops the oldest few days, never anything created in this test.
            within = f"{max(ages[-1] - 3 * (i + 1), 1)}d"
            upkeep = spawn(home, "snapshot", "prune", "--keep-within", within, "--json")
        else:
            upkeep = spawn(home, "store", "gc", "--max-unused", "0%", "--json")
        made, kept = finish(create), finish(upkeep)
        for result in (made, kept):
            # Losing the race is fine if it is said clearly; anything else is a failure.
            assert result.returncode == 0 or (
                result.returncode == 1
                and LOCKED in result.stderr
                and len(result.stderr.splitlines()) == 1
            ), result
        outcomes.append(f"create {made.returncode} / {kept.args[0]} {kept.returncode}")
        if made.returncode == 0:
            doc = made.json()
            reported[doc["id"]] = doc["db_sha256"]

    assert reported, outcomes
    present = set(store.snapshot_ids())
    for sid, digest in reported.items():
        assert sid in present, outcomes
        assert db_digest(store, sid) == digest
    ok(stigmem("store", "check", "--read-data-subset", "100%"))
    # What prune left is what gc must keep: the store now holds only referenced data.
    ok(stigmem("store", "gc", "--max-unused", "0%"))
    assert sorted(held_chunks(store)) == sorted(referenced_chunks(store))
    newest = max(reported, key=lambda s: store.load_document(s)["manifest"]["created_at"])
    target = tmp_path / "restored.db"
    ok(stigmem("snapshot", "restore", newest, "--db", str(target), "--no-backup"))
    assert hashlib.sha256(target.read_bytes()).hexdigest() == reported[newest]


# ---------------------------------------------------------------- kill -9 and locks

TRIALS = 3
MAX_TRIALS = 6


def trials(kills: list[bool]) -> Iterator[int]:
    """TRIALS rounds, and more (up to MAX_TRIALS) until some kill landed while the lock was
    held: on a faster machine the locked work may end before the chosen moment."""
    for trial in range(MAX_TRIALS):
        if trial >= TRIALS and any(kills):
            return
        yield trial


def assert_intact(stigmem: Runner, home: Path, store: Store, node: Node, tier: str) -> None:
    ok(stigmem("store", "check", "--tier", tier, "--read-data-subset", "100%"))
    for sid in store.snapshot_ids():
        assert db_digest(store, sid) == node.sha[sid]
    assert live_placements(home, tier) == set(store.snapshot_ids())


def test_kill_9_during_prune_then_rerun(stigmem: Runner, home: Path, tmp_path: Path) -> None:
    rng = random.Random(41)
    node, store = setup_tier(home, tmp_path, str(tmp_path / "store"), {}, days=40)
    kills: list[bool] = []
    for trial in trials(kills):
        keep = 34 - 5 * trial
        args = ("snapshot", "prune", "--keep-last", str(keep), "--json")
        kills.append(kill_while_locked(spawn(home, *args), store, rng.uniform(0.0, 0.1)))
        ok(stigmem(*args))  # the lock of the killed run (dead pid) neither blocks nor stays
        assert set(store.snapshot_ids()) == {node.ids[d] for d in range(40 - keep, 40)}
        assert_intact(stigmem, home, store, node, "local")
        assert store.backend.list(layout.LOCKS) == []
    print(f"prune: {sum(kills)} of {len(kills)} runs killed while holding the lock")  # -s
    assert any(kills), "no prune was interrupted: the trials tested nothing"


def test_kill_9_during_gc_then_rerun(stigmem: Runner, home: Path, tmp_path: Path) -> None:
    rng = random.Random(42)
    node, store = setup_tier(home, tmp_path, str(tmp_path / "store"), {}, days=40)
    catalog = open_catalog(home)
    kills: list[bool] = []
    for trial in trials(kills):
        # New garbage each trial: documents gone, their data not yet collected.
        for day in range(trial * 6, trial * 6 + 6):
            store.delete_snapshot(node.ids[day])
            catalog.mark_removed(node.ids[day], "local")
        args = ("store", "gc", "--max-unused", "0%", "--json")
        kills.append(kill_while_locked(spawn(home, *args), store, rng.uniform(0.0, 0.2)))
        ok(stigmem(*args))
        assert sorted(held_chunks(store)) == sorted(referenced_chunks(store))
        assert_intact(stigmem, home, store, node, "local")
        assert store.backend.list(layout.LOCKS) == []
    catalog.close()
    print(f"gc: {sum(kills)} of {len(kills)} runs killed while holding the lock")
    assert any(kills), "no gc was interrupted: the trials tested nothing"


def test_kill_9_during_sync_then_rerun(
    stigmem: Runner, home: Path, tmp_path: Path, s3_endpoint: str
) -> None:
    rng = random.Random(43)
    options = s3_options(s3_endpoint)
    offsite_url = f"s3://{BUCKET}/{uuid.uuid4().hex}"
    local_url = str(tmp_path / "store")
    node, local = setup_tier(home, tmp_path, local_url, {}, days=10)
    write_config(
        home / "config.toml",
        {
            "local": {"store": local_url, "keep_daily": 30},
            "offsite": {"store": offsite_url, "keep_daily": 90, "storage_options": options},
        },
    )
    offsite = Store.open(offsite_url, options, create=True)
    catalog = open_catalog(home)
    day = 10
    kills: list[bool] = []
    for _trial in trials(kills):
        for _ in range(6):
            snapshot_day(node, day, local, catalog, "local", tmp_path)
            day += 1
        sync = spawn(home, "store", "sync", "--to", "offsite")
        kills.append(kill_while_locked(sync, local, rng.uniform(0.0, 0.3)))
        ok(stigmem("store", "sync", "--to", "offsite", "-q"))
        assert offsite.snapshot_ids() == local.snapshot_ids()
        assert_intact(stigmem, home, offsite, node, "offsite")
        assert local.backend.list(layout.LOCKS) == offsite.backend.list(layout.LOCKS) == []
    catalog.close()
    print(f"sync: {sum(kills)} of {len(kills)} runs killed while holding the lock")
    assert any(kills), "no sync was interrupted: the trials tested nothing"


# ---------------------------------------------------------------- locks


def plant_lock(store: Store, kind: str, host: str, pid: int, at: float) -> None:
    body = {"kind": kind, "host": host, "pid": pid, "time": at}
    store.backend.write(
        layout.lock_path(f"{kind}-{uuid.uuid4().hex}.json"), json.dumps(body).encode()
    )


def test_held_lock_fails_fast_with_holder_and_unlock_removes_only_what_it_should(
    stigmem: Runner, home: Path, tmp_path: Path
) -> None:
    node, store = setup_tier(home, tmp_path, str(tmp_path / "store"), {}, days=3)
    before = store.snapshot_ids()
    plant_lock(store, "exclusive", socket.gethostname(), dead_pid(), time.time())

    with store.lock("exclusive"):  # a live prune elsewhere: this test process
        # The lock of the dead process does not block, nor does it outlive the next try.
        for args in (
            ("snapshot", "prune", "--keep-last", "1"),
            ("snapshot", "create", "--db", str(node.info.path)),
            ("store", "gc"),
        ):
            result = stigmem(*args)
            assert result.returncode == 1, result
            (line,) = result.stderr.splitlines()
            assert LOCKED in line and f"pid {os.getpid()}" in line and "store unlock" in line
            assert socket.gethostname() in line
        assert store.snapshot_ids() == before
        assert [lock.pid for lock in locks.read_locks(store.backend)] == [os.getpid()]

    with store.lock("exclusive"):
        plant_lock(store, "exclusive", socket.gethostname(), dead_pid(), time.time())
        stale = ok(stigmem("store", "unlock"))
        assert "removed exclusive lock" in stale.stdout and "still locked" in stale.stderr
        assert len(store.backend.list(layout.LOCKS)) == 1
        forced = ok(stigmem("store", "unlock", "--all", "--json")).json()
        assert [lock["pid"] for lock in forced["removed"]] == [os.getpid()]
    assert store.backend.list(layout.LOCKS) == []
    ok(stigmem("snapshot", "prune", "--keep-last", "1"))
    assert store.snapshot_ids() == [node.ids[2]]


def test_scheduled_run_is_quiet_on_success_and_refuses_a_second_run(
    home: Path, tmp_path: Path
) -> None:
    import fcntl

    node = tiny_node(tmp_path / "node" / "stigmem.db")
    write_config(
        home / "config.toml",
        {
            "local": {"store": str(tmp_path / "local"), "keep_daily": 30},
            "offsite": {"store": str(tmp_path / "offsite"), "keep_daily": 90},
        },
    )
    env = {
        **clean_env(home),
        "STIGMEM_DB_PATH": str(node.info.path),
        "STIGMEM": str(Path(sys.executable).parent / "stigmem"),
    }
    script = str(REPO / "contrib" / "stigmem-backup")
    timer = (REPO / "contrib" / "stigmem-backup.timer").read_text()
    assert (
        "OnCalendar=" in timer
        and "ExecStart=" in (REPO / "contrib" / "stigmem-backup.service").read_text()
    )

    first = subprocess.run([script], env=env, capture_output=True, text=True, timeout=300)
    assert (first.returncode, first.stdout, first.stderr) == (0, "", "")
    offsite = Store.open(str(tmp_path / "offsite"))
    assert len(offsite.snapshot_ids()) == 1
    assert "stigmem store check --tier offsite" in (home / "backup.log").read_text()

    with (home / "backup.lock").open("a") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a run in progress
        second = subprocess.run([script], env=env, capture_output=True, text=True, timeout=60)
    assert second.returncode == 75 and second.stdout == ""
    assert "another backup run holds" in second.stderr
    assert len(offsite.snapshot_ids()) == 1

    broken = subprocess.run(
        [script],
        env={**env, "STIGMEM_OFFSITE_TIER": "nosuch"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert broken.returncode == 1 and broken.stdout == ""
    assert "store sync" in broken.stderr and "unknown tier 'nosuch'" in broken.stderr
