"""Revision 0003 (covering indexes for the prune plan): the upgrade keeps every row, the
indexes exist on both backends, and SQLite's planner serves the prune query from them alone."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import command

from catalog import Catalog
from catalog.engine import make_engine
from catalog.migrate import alembic_config
from catalog.queries import snapshots_for_prune
from tests.catalog.catalog_factories import Maker, snapshot_id, upgrade_to

INDEXES = {
    "snapshots": "ix_snapshots_prune",
    "placements": "ix_placements_tier_live",
}


def _index_names(url: str) -> dict[str, set[str]]:
    engine = make_engine(url)
    with engine.connect() as conn:
        inspector = sa.inspect(conn)
        names = {t: {i["name"] or "" for i in inspector.get_indexes(t)} for t in INDEXES}
    engine.dispose()
    return names


def test_upgrade_from_0002_keeps_rows_and_adds_the_indexes(catalog_url: str) -> None:
    upgrade_to(catalog_url, "0002")
    assert all(INDEXES[t] not in names for t, names in _index_names(catalog_url).items())
    maker = Maker()
    sqlite = catalog_url.startswith("sqlite")
    engine = make_engine(catalog_url)
    with engine.begin() as conn:
        for n in (1, 2, 3):
            created = f"2026-01-0{n} 03:00:00.00000{n}"
            conn.execute(
                sa.text(
                    "INSERT INTO snapshots (id, node_id, created_at, db_sha256, db_size, cursor,"
                    " signer_key_id, signer_pubkey, manifest, catalogued_at, catalogued_from,"
                    " catalogued_host, pinned, last_verify_outcome) VALUES (:id,"
                    " 'stigmem:node:old', :created, :sha, 100, '[]', :kid, :pub, '{}', :created,"
                    " 'old', 'oldhost', :pinned, :outcome)"
                ),
                dict(
                    id=snapshot_id(n),
                    created=created if sqlite else created + "+00:00",
                    sha="ab" * 32,
                    kid=maker.key.key_id,
                    pub=maker.key.public_key,
                    pinned=n == 3,
                    outcome="ok" if n == 2 else None,
                ),
            )
            conn.execute(
                sa.text(
                    "INSERT INTO placements (snapshot_id, tier, store, since, removed_at)"
                    " VALUES (:id, 'local', '/s', :since, :removed)"
                ),
                dict(
                    id=snapshot_id(n),
                    since="2026-01-05 00:00:00" if sqlite else "2026-01-05 00:00:00+00:00",
                    removed=None if n != 1 else ("2026-01-06 00:00:00" + ("" if sqlite else "Z")),
                ),
            )
    engine.dispose()

    with Catalog.open(catalog_url) as cat:
        assert cat.applied_revisions == ("0003", "0004")
        rows = cat.snapshots_for_prune("local", [maker.key.key_id])
        assert {s.id for s in cat.list_snapshots()} == {snapshot_id(n) for n in (1, 2, 3)}
    assert [(r.id, r.flags) for r in rows] == [(snapshot_id(3), 1 | 2), (snapshot_id(2), 1 | 4)]
    assert rows[0].created_at == datetime(2026, 1, 3, 3, 0, 0, 3, tzinfo=UTC)
    assert all(INDEXES[t] in names for t, names in _index_names(catalog_url).items())


def test_downgrade_to_0002_drops_only_the_indexes(catalog_url: str) -> None:
    with Catalog.open(catalog_url) as cat:
        cat.record_snapshot(Maker().record(1))
        cat.record_placement(snapshot_id(1), "local", "/s")
    engine = make_engine(catalog_url)
    with engine.begin() as conn:
        config = alembic_config()
        config.attributes["connection"] = conn
        command.downgrade(config, "0002")
    engine.dispose()
    assert all(INDEXES[t] not in names for t, names in _index_names(catalog_url).items())
    with Catalog.open(catalog_url) as cat:
        assert cat.applied_revisions == ("0003", "0004")
        assert [r.id for r in cat.snapshots_for_prune("local")] == [snapshot_id(1)]


def test_sqlite_serves_the_prune_query_from_the_indexes(tmp_path: object) -> None:
    url = f"sqlite:///{tmp_path}/catalog.db"
    maker = Maker()
    with Catalog.open(url) as cat:
        for n in range(3):
            cat.record_snapshot(maker.record(n))
            cat.record_placement(snapshot_id(n), "local" if n else "offsite", "/s")
    engine = make_engine(url)
    statements: list[str] = []
    with engine.connect() as conn, conn.begin():
        driver = conn.connection.driver_connection
        assert driver is not None
        driver.set_trace_callback(statements.append)
        assert [r.id for r in snapshots_for_prune(conn, "local")] == [
            snapshot_id(2),
            snapshot_id(1),
        ]
        driver.set_trace_callback(None)
        plans = {
            sql: " / ".join(row[3] for row in driver.execute(f"EXPLAIN QUERY PLAN {sql}"))
            for sql in statements
            if sql.startswith("SELECT")
        }
    engine.dispose()
    snapshot_scan = [p for sql, p in plans.items() if "FROM snapshots ORDER BY" in sql]
    placement_scan = [p for sql, p in plans.items() if sql.startswith("SELECT snapshot_id")]
    # (then the catalog's trusted keys, read once: "LIST SUBQUERY 1 / SCAN keys")
    assert [p.split(" / ")[0] for p in snapshot_scan] == [
        "SCAN snapshots USING COVERING INDEX ix_snapshots_prune"
    ]
    assert placement_scan == [
        "SEARCH placements USING COVERING INDEX ix_placements_tier_live (tier=?)"
    ]
