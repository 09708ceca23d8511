"""``snapshot drill``: restore a stored snapshot into scratch space and prove it is a node
database, as the runbook's quarterly restore test would, and record the drill.

A drill never goes near a live database: it restores into a folder of its own under
``$STIGMEM_HOME/scratch``, removed afterwards whatever happens (failure, Ctrl-C). It verifies
in strict mode (the keys given, else the keys the catalog trusts), runs the full
``PRAGMA integrity_check``, and checks the node's own facts against the manifest.
"""

from __future__ import annotations

import random
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cli.app import App, Tier
from cli.sources import ReadResult, StoreSource, write_into
from snapshot.errors import StigmemError, VerificationError
from snapshot.nodedb import applied_migrations_of, node_meta_of, readonly_uri

if TYPE_CHECKING:
    from snapshot.fileio import Writable
    from snapshot.trust import TrustPolicy, VerifyResult

# Tables every Stigmem node database has from its first migration on.
CORE_TABLES = ("node_meta", "schema_migrations", "facts")
DB_NAME = "stigmem.db"


@dataclass
class Check:
    name: str
    ok: bool
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "detail": self.detail}


@dataclass
class Drill:
    snapshot_id: str
    node_id: str | None = None
    checks: list[Check] = field(default_factory=list)
    restore_seconds: float = 0.0
    size: int = 0
    tier: str | None = None

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    def to_json(self) -> dict[str, Any]:
        return {
            "snapshot_id": self.snapshot_id,
            "node_id": self.node_id,
            "outcome": "ok" if self.ok else "failed",
            "checks": [c.to_json() for c in self.checks],
            "restore_seconds": round(self.restore_seconds, 3),
            "bytes": self.size,
            "tier": self.tier,
        }

    def check(self, name: str, ok: bool, detail: str) -> bool:
        self.checks.append(Check(name, ok, detail))
        return ok


def chosen_snapshots(
    app: App, ref: str | None, node: str | None, tier: Tier | None, pick_random: bool
) -> list[tuple[str, str]]:
    """The snapshot ids to drill: ``ref`` resolved, or per node (``node``, else every node
    the catalog knows) the newest placed in ``tier`` (any tier when None), or a random one."""
    from catalog.records import SnapshotFilter

    catalog = app.catalog()
    if ref is not None:
        sid = catalog.resolve(ref)
        return [(sid, str(catalog.show(sid)["node_id"]))]
    rows = catalog.list_snapshots(
        SnapshotFilter(node=node, tier=tier.name if tier is not None else None)
    )
    by_node: dict[str, list[Any]] = {}
    for row in rows:
        if row.tiers:
            by_node.setdefault(row.node_id, []).append(row)
    if node is not None and node not in by_node:
        raise StigmemError(f"no stored snapshot of node {node} in the catalog")
    chosen = []
    rng = random.SystemRandom()
    for node_id in sorted(by_node):
        candidates = by_node[node_id]
        if pick_random:
            row = rng.choice(candidates)
        else:
            row = max(candidates, key=lambda r: (r.created_at, r.id))
        chosen.append((row.id, row.node_id))
    return chosen


def scratch_root(app: App) -> Path:
    root = app.home / "scratch"
    root.mkdir(parents=True, exist_ok=True)
    return root


def drill(
    app: App,
    source: StoreSource,
    node_id: str,
    policy: Callable[[], TrustPolicy],
    migrations_dir: Path | None,
) -> Drill:
    """Restore ``source`` (a catalogued snapshot of node ``node_id``) into scratch space, run
    every check, remove the scratch space."""
    result = Drill(source.snapshot_id, node_id=node_id, tier=source.tier.name)
    scratch = Path(tempfile.mkdtemp(prefix="drill-", dir=scratch_root(app)))
    try:
        _run(app, source, policy, migrations_dir, scratch / DB_NAME, result)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return result


def _run(
    app: App,
    source: StoreSource,
    policy: Callable[[], TrustPolicy],
    migrations_dir: Path | None,
    target: Path,
    result: Drill,
) -> None:
    from snapshot.restore import restore_database

    outcome: dict[str, Any] = {}

    def write_new(out: Writable) -> Callable[[], None]:
        judge, outcome["state"] = write_into(source, out)

        def finish() -> None:
            verdict, state = judge(policy())
            outcome["verdict"], outcome["state"] = verdict, state
            if not verdict.ok:
                raise VerificationError(verdict.outcome, verdict.detail, verdict.snapshot_id)

        return finish

    started = time.perf_counter()
    try:
        restored = restore_database(
            target,
            write_new,
            backup=False,
            migrations_dir=migrations_dir,
            # In scratch space a database failing its check is kept, to be reported as the
            # failed check it is rather than as an error.
            force=True,
            full_check=True,
        )
    except VerificationError as exc:
        result.check("verify", False, f"{exc.outcome}: {exc.detail}")
        _record(app, result, outcome.get("verdict"))
        return
    except StigmemError as exc:
        verdict = outcome.get("verdict")
        if verdict is None:
            result.check("restore", False, str(exc))
        else:
            result.check("verify", True, verdict.line())
            result.check("migrations", False, str(exc))
        _record(app, result, verdict)
        return
    result.restore_seconds = time.perf_counter() - started
    verdict = outcome["verdict"]
    state: ReadResult = outcome["state"]
    result.size = state.db_size
    result.check("verify", True, verdict.line())
    result.check(
        "integrity_check",
        restored.integrity == "ok",
        "ok" if restored.integrity == "ok" else restored.integrity,
    )
    if migrations_dir is not None:
        replayed = list(restored.migrations_replayed)
        result.check("migrations", True, f"replayed {len(replayed)}: {', '.join(replayed)}")
    expected = list(state.applied_migrations) + list(restored.migrations_replayed)
    _node_checks(target, verdict.node_id, expected, result)
    if verdict.node_id != result.node_id:
        result.check(
            "catalog",
            False,
            f"the manifest names node {verdict.node_id}, the catalog {result.node_id}",
        )
    _record(app, result, verdict)


def _node_checks(target: Path, node_id: str | None, cursor: list[str], result: Drill) -> None:
    """The restored file is this node's database: its node id, its migrations, its tables."""
    try:
        conn = sqlite3.connect(readonly_uri(target), uri=True)
    except sqlite3.Error as exc:
        result.check("node_database", False, f"does not open: {exc}")
        return
    try:
        tables = {
            name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
        }
        missing = [t for t in CORE_TABLES if t not in tables]
        if not result.check(
            "core_tables",
            not missing,
            "present: " + ", ".join(CORE_TABLES)
            if not missing
            else "missing: " + ", ".join(missing),
        ):
            return
        found = node_meta_of(conn).node_id
        result.check(
            "node_id",
            found is not None and found == node_id,
            f"node_meta names {found!r}, the manifest {node_id!r}",
        )
        versions = applied_migrations_of(conn)
        result.check(
            "schema_migrations",
            versions == sorted(cursor),
            f"{len(versions)} applied, the manifest's cursor lists {len(cursor)}",
        )
        (facts,) = conn.execute("SELECT count(*) FROM facts").fetchone()
        result.check("facts", True, f"{facts} facts readable")
    except sqlite3.Error as exc:
        result.check("node_database", False, f"unreadable: {exc}")
    finally:
        conn.close()


def _record(app: App, result: Drill, verdict: VerifyResult | None) -> None:
    """The drill, in the catalog, under the catalogued snapshot it restored, and its
    verification (kind ``drill``) when the snapshot's manifest was read."""
    doc = result.to_json()
    assert result.node_id is not None
    catalog = app.catalog()
    if verdict is not None and verdict.snapshot_id == result.snapshot_id:
        catalog.record_verification(
            result.snapshot_id, verdict.mode, "drill", verdict.outcome, verdict.detail
        )
    catalog.record_drill(
        result.snapshot_id,
        result.node_id,
        doc["outcome"],
        doc["checks"],
        doc["restore_seconds"],
        result.size,
        result.tier,
    )
