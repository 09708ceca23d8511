"""kill -9 of `stigmem snapshot create` at random points leaves a usable store.

A snapshot document is the commit point (docs/design.md section 5): whenever create dies, every
document in the store must be complete, every earlier snapshot must still verify and
`store check` must pass. The kill points are drawn from a seeded RNG as fractions of a
measured create duration, so they land anywhere: during start-up, the consistent copy and
chunking, the pack, index and document writes, or the catalog update after the commit.
"""

from __future__ import annotations

import hashlib
import json
import random
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.conftest import Result, Runner, clean_env
from tests.nodegen import apply_churn, make_node_db

TRIALS = 20
SEED = 20260601
CLI_CHECK_EVERY = 5
DB_MEMBER = "artifacts/stigmem.db"


def documents(store: Path) -> set[str]:
    """Snapshot ids the store holds, as `ls snapshots/` shows them."""
    return {p.name.removesuffix(".json") for p in (store / "snapshots").glob("*.json")}


class _Hash:
    def __init__(self) -> None:
        self.digest = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        return len(data)


def quick_check(store: Path, new: set[str]) -> None:
    """What `store check` checks, run in this process through the same store code.

    A `stigmem` process costs about two seconds of interpreter start-up and imports on a
    loaded machine, so after every kill the store is checked here (every document's chunks
    indexed and their packs present), a just-committed document is read back in full against
    its signed hash, and the console script's own `store check` runs every few trials.
    """
    from store import maintenance
    from store.repository import Store

    opened = Store.open(str(store))
    report = maintenance.check(opened)
    assert report.problems == [], report.problems
    for sid in new:
        manifest = json.loads((store / "snapshots" / f"{sid}.json").read_bytes())["manifest"]
        sink = _Hash()
        opened.read_artifact(sid, DB_MEMBER, sink)  # type: ignore[arg-type]
        assert "sha256:" + sink.digest.hexdigest() == manifest["artifacts"][DB_MEMBER], sid


def test_kill_9_during_create_never_leaves_a_broken_store(
    stigmem: Runner, stigmem_process: Runner, home: Path, tmp_path: Path
) -> None:
    rng = random.Random(SEED)
    store = home / "store"
    # A few MiB, so that a create spends real time copying and packing.
    node = make_node_db(
        tmp_path / "node" / "stigmem.db", size_mb=6, seed=5, privkey_seed=bytes(range(32))
    )

    first = stigmem("snapshot", "create", "--db", str(node.path))
    assert first.returncode == 0, first
    apply_churn(node.path, day=0)
    started = time.time()  # wall clock, to compare with file modification times
    second = stigmem("snapshot", "create", "--db", str(node.path), "--json")
    assert second.returncode == 0, second
    # How long a create of a churned database (as in the trials) takes to reach its commit
    # point, read off the document's modification time: the catalog update after it takes
    # longer still but cannot hurt the store, so kill points are drawn up to a little past
    # the commit, not up to the exit.
    document = store / "snapshots" / f"{second.json()['id']}.json"
    duration = 1.2 * (document.stat().st_mtime - started)
    assert duration > 0
    earlier = baseline = documents(store)
    assert len(baseline) == 2

    env = clean_env(home)
    completed = killed = 0
    for trial in range(1, TRIALS + 1):
        apply_churn(node.path, day=trial)  # new pages each time, so each create packs data
        proc = subprocess.Popen(
            [sys.executable, "-m", "cli", "snapshot", "create", "--db", str(node.path)],
            env=env,
            cwd=home,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        # The delay only chooses the kill point; a create that ends sooner is not waited for.
        kill_after = rng.uniform(0.0, duration)
        try:
            proc.wait(timeout=kill_after)
            completed += 1
        except subprocess.TimeoutExpired:
            proc.kill()  # SIGKILL: no cleanup handler runs
            killed += 1
        _, stderr = proc.communicate(timeout=60)
        assert proc.returncode in (0, -9), (trial, proc.returncode, stderr)

        now = documents(store)
        assert earlier <= now, f"trial {trial}: a snapshot document disappeared"
        assert len(now - earlier) <= 1, f"trial {trial}: one create, one document at most"
        # Every document present, old or just committed, has all its chunks: check passes.
        quick_check(store, now - earlier)
        if trial % CLI_CHECK_EVERY == 0:
            checked = stigmem("store", "check")
            assert checked.returncode == 0, (trial, kill_after, checked)
            assert checked.stdout.strip().startswith("OK: "), checked
        earlier = now

    print(f"crash trials: {killed} killed, {completed} finished first")  # shown with -s
    assert killed > 0, "no create was interrupted: the trials tested nothing"

    # The snapshots made before the kills still verify (checksums and signature) in full, and
    # so does the newest one made between them; the commands run side by side to save time,
    # each in a process of its own.
    def verify(sid: str) -> Result:
        return stigmem_process("snapshot", "verify", sid)

    def full_check(_: str) -> Result:
        return stigmem_process("store", "check", "--read-data-subset", "100%")

    newest = max(earlier - baseline, default=None, key=lambda s: _created_at(store, s))
    wanted = sorted(baseline | ({newest} if newest else set()))
    with ThreadPoolExecutor(max_workers=4) as pool:
        verified = list(pool.map(verify, wanted))
        full = pool.submit(full_check, "").result()
    for result in verified:
        assert result.returncode == 0, result
        assert result.stdout.startswith("OK: "), result
    # Reading every pack in full finds no damage either.
    assert full.returncode == 0, full


def _created_at(store: Path, sid: str) -> str:
    doc = json.loads((store / "snapshots" / f"{sid}.json").read_bytes())
    created: str = doc["manifest"]["created_at"]
    return created
