"""Time ``stigmem snapshot prune --dry-run --json`` over 100,000 catalogued snapshots.

    .venv/bin/python bench/prune_plan.py /tmp/bench-prune [--count 100000] [--runs 3]

Bulk-loads the catalog as bench/catalog_load.py does (100 nodes, hourly, all in tier
"local"), writes one snapshot document per snapshot into a local store (prune lists the
store: a document's content is not read by a dry run), then runs the real command and reports
the wall time of each run (process start included), its CPU time and the plan's size.
Acceptance: under 2 s.

The command runs as an installed tool does: with its byte-code cached (pip writes the .pyc
files at install). A ``PYTHONDONTWRITEBYTECODE`` in the caller's environment would otherwise
make every run compile the project's modules again (about 0.1 s); ``--no-bytecode-cache``
keeps that variable to measure it. One untimed run first fills the caches (byte-code, page
cache) and, the first time, upgrades the catalog's schema.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.catalog_load import load, snapshot_id  # noqa: E402
from store import layout  # noqa: E402
from store.repository import Store  # noqa: E402


def build(root: Path, count: int) -> None:
    root.mkdir(parents=True, exist_ok=True)
    store_dir = root / "store"
    started = time.perf_counter()
    load(f"sqlite:///{root / 'catalog.db'}", count)
    store = Store.open(str(store_dir), create=True)
    body = json.dumps({"manifest": {}, "artifacts": {}}).encode()
    # Plain file writes: fsync per document would make the setup, not the bench, slow.
    for i in range(count):
        path = store_dir / layout.snapshot_path(snapshot_id(i))
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(body)
    assert len(store.snapshot_ids()) == count
    (root / "config.toml").write_text(f'[tiers.local]\nstore = "{store_dir}"\nkeep_daily = 30\n')
    print(f"loaded {count} snapshots in {time.perf_counter() - started:.1f}s", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("root", type=Path)
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-bytecode-cache", action="store_true")
    args = parser.parse_args()
    if not (args.root / "catalog.db").exists():
        build(args.root, args.count)
    env = {**os.environ, "STIGMEM_HOME": str(args.root), "PYTHONPATH": str(REPO)}
    if not args.no_bytecode_cache:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
    command = [sys.executable, "-m", "cli", "snapshot", "prune", "--dry-run", "--json"]
    for run in range(args.runs + 1):
        cpu_before = os.times()
        started = time.perf_counter()
        proc = subprocess.run(command, env=env, capture_output=True, text=True, cwd=REPO)
        elapsed = time.perf_counter() - started
        cpu_after = os.times()
        if proc.returncode:
            print(proc.stderr, file=sys.stderr)
            return proc.returncode
        if run == 0:
            continue  # the warm-up
        cpu = (cpu_after.children_user - cpu_before.children_user) + (
            cpu_after.children_system - cpu_before.children_system
        )
        doc = json.loads(proc.stdout)
        removes = sum(1 for e in doc["plan"] if e["action"] == "remove")
        print(
            f"run {run}: {elapsed:.2f}s (cpu {cpu:.2f}s) for a plan of {len(doc['plan'])} "
            f"snapshots ({removes} to remove), {len(proc.stdout) >> 20} MiB of JSON"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
