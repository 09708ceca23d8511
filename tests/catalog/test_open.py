"""Opening catalogs: concurrency, schema upgrades with data, refusals with one-line errors."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from catalog import Catalog, SnapshotFilter, default_catalog_url
from catalog.engine import make_engine
from catalog.migrate import REVISIONS, head_revision
from catalog.tables import schema
from snapshot.errors import CatalogError
from tests.catalog.catalog_factories import Maker, open_fresh, record_many, snapshot_id, upgrade_to

# fork: children start in milliseconds; the parent never holds a connection when forking.
PROCESSES = multiprocessing.get_context("fork")


def run_processes(target: Callable[..., object], args_list: list[tuple[object, ...]]) -> None:
    procs = [PROCESSES.Process(target=target, args=args) for args in args_list]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=120)
    assert [proc.exitcode for proc in procs] == [0] * len(procs)


def test_default_url(tmp_path: Path) -> None:
    assert default_catalog_url(tmp_path) == f"sqlite:///{tmp_path}/catalog.db"


def test_open_creates_directory_and_schema(catalog_url: str) -> None:
    with Catalog.open(catalog_url) as cat:
        assert cat.applied_revisions == ("0001", "0002", "0003", head_revision())
        assert cat.list_snapshots(SnapshotFilter()) == []
    with Catalog.open(catalog_url) as cat:
        assert cat.applied_revisions == ()


def schema_differences(url: str) -> list[object]:
    engine = make_engine(url)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        found = list(compare_metadata(context, schema()))
    engine.dispose()
    return found


def test_models_match_the_schema_the_migrations_make(catalog_url: str) -> None:
    if catalog_url.startswith("sqlite:///"):
        Path(catalog_url.removeprefix("sqlite:///")).parent.mkdir(parents=True)
    upgrade_to(catalog_url, "head")  # every migration, from an empty database
    assert schema_differences(catalog_url) == []
    with Catalog.open(catalog_url) as cat:
        assert cat.applied_revisions == ()


def test_a_new_catalog_made_by_the_command_line_has_the_migrated_indexes(tmp_path: Path) -> None:
    """In a process of its own: the test process's ``schema()`` calls put the partial
    indexes in the shared metadata, which a command's first open never has."""
    import sqlite3
    import subprocess
    import sys

    made, migrated = tmp_path / "made.db", tmp_path / "migrated.db"
    subprocess.run(
        [sys.executable, "-c", "import sys; from catalog import Catalog; "
         "Catalog.open(sys.argv[1]).close()", f"sqlite:///{made}"],
        check=True,
    )  # fmt: skip
    upgrade_to(f"sqlite:///{migrated}", "head")

    def indexes(path: Path) -> set[tuple[object, ...]]:
        with sqlite3.connect(path) as db:
            found: set[tuple[object, ...]] = set()
            for table in ("snapshots", "placements", "verifications", "restores", "drills"):
                for _, name, unique, _, partial in db.execute(f"PRAGMA index_list({table})"):
                    columns = tuple(r[2] for r in db.execute(f"PRAGMA index_info({name})"))
                    found.add((table, name, unique, partial, columns))
            return found

    assert indexes(made) == indexes(migrated)
    assert any(entry[1] == "ux_placements_live" and entry[3] for entry in indexes(made))


def test_a_new_catalog_is_made_as_the_migrations_make_it(catalog_url: str) -> None:
    with Catalog.open(catalog_url) as cat:  # made at the head, without running them
        assert cat.applied_revisions == REVISIONS
    assert schema_differences(catalog_url) == []


def test_same_snapshots_recorded_by_processes_at_once(catalog_url: str) -> None:
    Catalog.open(catalog_url).close()
    barrier = PROCESSES.Barrier(3)
    # Three writers, overlapping ranges: 0-29, 10-39, 20-49.
    run_processes(
        record_many,
        [(catalog_url, start, 30, barrier) for start in (0, 10, 20)],
    )
    with Catalog.open(catalog_url) as cat:
        listed = cat.list_snapshots(SnapshotFilter())
        assert sorted(s.id for s in listed) == sorted(snapshot_id(n) for n in range(50))
        assert all(s.tiers == ["local"] for s in listed)
        assert len(cat.keys()) == 1
        assert len(cat.history(event="catalogued")) == 50
        assert len(cat.history(event="placed")) == 50


def test_fresh_catalog_opened_by_processes_at_once_migrates_once(catalog_url: str) -> None:
    barrier = PROCESSES.Barrier(3)
    results = PROCESSES.Queue()
    run_processes(open_fresh, [(catalog_url, barrier, results) for _ in range(3)])
    applied = sorted(results.get(timeout=10) for _ in range(3))
    assert applied == [(), (), ("0001", "0002", "0003", "0004")]
    engine = make_engine(catalog_url)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).all() == [("0004",)]
    engine.dispose()


def _ts(url: str, value: str) -> str:
    # Plain SQL as a 0001-era tool would have written it on each backend.
    return value if url.startswith("postgresql") else value.replace("+00:00", "")


def test_upgrade_from_0001_keeps_and_backfills_rows(catalog_url: str) -> None:
    upgrade_to(catalog_url, "0001")
    maker = Maker()
    engine = make_engine(catalog_url)
    with engine.begin() as conn:
        for n in (1, 2, 3):
            conn.execute(
                sa.text(
                    "INSERT INTO snapshots (id, node_id, created_at, db_sha256, db_size, cursor,"
                    " signer_key_id, signer_pubkey, manifest, catalogued_at, catalogued_from,"
                    " catalogued_host, pinned) VALUES (:id, 'stigmem:node:old', :created, :sha,"
                    " 100, :cursor, :kid, :pub, :manifest, :created, 'old',"
                    " 'oldhost', :pinned)"
                ),
                dict(
                    id=snapshot_id(n),
                    created=_ts(catalog_url, f"2026-01-0{n} 03:00:00.000001+00:00"),
                    sha="ab" * 32,
                    kid=maker.key.key_id,
                    pub=maker.key.public_key,
                    pinned=n == 3,
                    cursor='["001_init"]',
                    manifest='{"version":1}',
                ),
            )
        verifications = [
            (1, "2026-02-01 00:00:00.000000+00:00", "checksum_error"),
            (1, "2026-03-01 00:00:00.000000+00:00", "ok"),
            (2, "2026-02-15 00:00:00.000000+00:00", "signature_mismatch"),
        ]
        for n, at, outcome in verifications:
            conn.execute(
                sa.text(
                    "INSERT INTO verifications (snapshot_id, at, mode, outcome, detail, host)"
                    " VALUES (:sid, :at, 'default', :outcome, '', 'oldhost')"
                ),
                dict(sid=snapshot_id(n), at=_ts(catalog_url, at), outcome=outcome),
            )
    engine.dispose()

    with Catalog.open(catalog_url) as cat:
        assert cat.applied_revisions == ("0002", "0003", "0004")
        by_id = {s.id: s for s in cat.list_snapshots(SnapshotFilter())}
        assert len(by_id) == 3
        one, two, three = (by_id[snapshot_id(n)] for n in (1, 2, 3))
        assert one.created_at == datetime(2026, 1, 1, 3, 0, 0, 1, tzinfo=UTC)
        assert (one.last_verify_outcome, one.last_verified_at) == (
            "ok",
            datetime(2026, 3, 1, tzinfo=UTC),
        )
        assert two.last_verify_outcome == "signature_mismatch"
        assert (three.last_verified_at, three.last_verify_outcome) == (None, None)
        assert three.pinned and not one.pinned
        assert one.tags == [] and one.label is None
        shown = cat.show(snapshot_id(1))
        assert [v["kind"] for v in shown["verifications"]] == ["verify", "verify"]
        assert shown["cursor"] == ["001_init"]
        failed = cat.list_snapshots(SnapshotFilter(verified="failed"))
        assert [s.id for s in failed] == [snapshot_id(2)]


def test_catalog_of_a_newer_tool_is_refused_and_left_alone(catalog_url: str) -> None:
    Catalog.open(catalog_url).close()
    engine = make_engine(catalog_url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '0999'"))
    engine.dispose()
    db_file = Path(sa.make_url(catalog_url).database or "")
    before = db_file.read_bytes() if catalog_url.startswith("sqlite") else b""

    with pytest.raises(CatalogError) as caught:
        Catalog.open(catalog_url)

    message = str(caught.value)
    assert "newer version of stigmem-snapshots (revision 0999); upgrade the tool" in message
    assert "\n" not in message
    if catalog_url.startswith("sqlite"):
        assert db_file.read_bytes() == before
    engine = make_engine(catalog_url)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).all() == [("0999",)]
        columns = {c["name"] for c in sa.inspect(conn).get_columns("snapshots")}
        assert "last_verified_at" in columns
    engine.dispose()


def test_unreachable_postgresql_is_one_line_with_password_masked() -> None:
    url = "postgresql+psycopg://admin:s3cret@127.0.0.1:1/catalog"
    with pytest.raises(CatalogError) as caught:
        Catalog.open(url)
    message = str(caught.value)
    assert message.startswith("catalog postgresql+psycopg://admin:***@127.0.0.1:1/catalog ")
    assert "unreachable" in message
    assert "s3cret" not in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("not a url", "is not a database URL"),
        ("mysql://u@localhost/db", "unsupported database 'mysql'"),
    ],
)
def test_bad_urls(url: str, expected: str) -> None:
    with pytest.raises(CatalogError, match=expected):
        Catalog.open(url)


def test_sqlite_file_that_is_not_a_catalog(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(CatalogError, match=f"catalog sqlite:///{garbage} cannot be opened"):
        Catalog.open(f"sqlite:///{garbage}")
    assert garbage.read_bytes() == b"this is not sqlite" * 100

    other = tmp_path / "node.db"
    engine = make_engine(f"sqlite:///{other}")
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE node_meta (k TEXT, v TEXT)"))
    engine.dispose()
    with pytest.raises(CatalogError, match="is not a stigmem-snapshots catalog"):
        Catalog.open(f"sqlite:///{other}")


def test_revision_constants_match_the_migration_scripts() -> None:
    from catalog.migrate import HEAD, head_revision, script_directory

    assert head_revision() == HEAD
    chain = [r.revision for r in script_directory().iterate_revisions(HEAD, "base")]
    assert tuple(reversed(chain)) == REVISIONS
