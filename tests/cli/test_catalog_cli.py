"""The catalog through the console script, on SQLite and PostgreSQL.

Everything here is what an operator would type and read: snapshot list/show/history --json
(field names of docs/design.md sections 8 and 9, and README's table), keys, pins, filters,
catalog reindex and metrics, concurrent creates, and failures that must stay one line.
PostgreSQL runs get a schema of their own through the URL and skip when no server answers.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import subprocess
import sys
import tarfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from tests import reference_format as ref
from tests.catalog import conftest as catalog_conftest
from tests.conftest import REPO, Result, Runner, clean_env
from tests.nodegen import NodeInfo, make_node_db, migration_files

SEED_A = bytes(range(32))
SEED_B = b"\x42" * 32
STRANGER = b"\xee" * 32
MIGRATIONS = REPO / "tests" / "fixtures" / "migrations"
# The node is at this migration, so a restore with MIGRATIONS replays the rest.
OLDER = "028_subscription_delivery_claim"
REPLAYED = [f.stem for f in migration_files()][len(migration_files(OLDER)) :]

# The contract (docs/design.md sections 8 and 9): more fields may be printed, none may be missing.
LIST_FIELDS = {
    "id",
    "node_id",
    "created_at",
    "db_sha256",
    "db_size",
    "signer_key_id",
    "trusted",
    "tiers",
    "pinned",
    "last_verified_at",
    "last_verify_outcome",
}
SHOW_FIELDS = LIST_FIELDS | {"manifest", "placements", "verifications", "restores"}
PLACEMENT_FIELDS = {"tier", "store", "since", "removed_at"}
VERIFICATION_FIELDS = {"at", "mode", "kind", "outcome", "detail", "host"}
RESTORE_FIELDS = {"at", "target", "forced", "migrations_replayed"}
HISTORY_FIELDS = {"at", "event", "snapshot_id", "detail"}
KEY_FIELDS = {"key_id", "public_key", "label", "trusted", "revoked", "first_seen"}
VERIFY_FIELDS = {
    "outcome",
    "mode",
    "snapshot_id",
    "node_id",
    "signer_key_id",
    "trusted_by",
    "detail",
}
CREATE_FIELDS = {
    "id",
    "name",
    "node_id",
    "created_at",
    "db_sha256",
    "signer_key_id",
    "store",
    "tarball",
}


# ---------------------------------------------------------------- fixtures and helpers


@pytest.fixture(scope="session")
def pg_user() -> str:
    user, reason = catalog_conftest._pg_user()
    if user is None:
        pytest.skip(
            f"PostgreSQL not available at {catalog_conftest.PG_HOST}:{catalog_conftest.PG_PORT}"
            f"/{catalog_conftest.PG_DATABASE}: {reason}"
        )
    return user


@pytest.fixture
def pg_url(pg_user: str) -> Iterator[str]:
    """A fresh schema per test, reached through search_path in the URL (child processes too)."""
    import psycopg

    schema = f"stigmem_cli_{uuid.uuid4().hex[:12]}"
    conninfo = (
        f"host={catalog_conftest.PG_HOST} port={catalog_conftest.PG_PORT} "
        f"dbname={catalog_conftest.PG_DATABASE} user={pg_user}"
    )
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield (
            f"postgresql+psycopg://{pg_user}@{catalog_conftest.PG_HOST}:"
            f"{catalog_conftest.PG_PORT}/{catalog_conftest.PG_DATABASE}"
            f"?options=-csearch_path%3D{schema}"
        )
    finally:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture(params=["sqlite", "postgresql"])
def catalog_env(request: pytest.FixtureRequest) -> dict[str, str]:
    """Extra environment selecting the catalog: the default $STIGMEM_HOME/catalog.db, or PG."""
    if request.param == "sqlite":
        return {}
    return {"STIGMEM_CATALOG_URL": str(request.getfixturevalue("pg_url"))}


@pytest.fixture
def node(tmp_path: Path) -> NodeInfo:
    return make_node_db(
        tmp_path / "node" / "stigmem.db", size_mb=0.5, seed=1, privkey_seed=SEED_A, upto=OLDER
    )


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def ok(result: Any, code: int = 0) -> Any:
    assert result.returncode == code, result
    assert "Traceback" not in result.stderr, result
    return result


def flip_middle_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def tampered_copy(tarball: Path, out: Path) -> Path:
    """The same snapshot with one byte of its cursor flipped: the manifest is still genuine
    (so the failure is recorded against the snapshot) and the database still restores."""
    members = []
    with tarfile.open(tarball, "r:gz") as tar:
        for info in tar:
            if info.isdir():
                members.append(ref.TarMember(info.name, kind="dir"))
                continue
            handle = tar.extractfile(info)
            assert handle is not None
            data = handle.read()
            if info.name == ref.CURSOR:
                at = data.index(b"init") + 1
                data = data[:at] + bytes([data[at] ^ 0x20]) + data[at + 1 :]  # "iNit"
            members.append(ref.TarMember(info.name, data))
    return ref.write_tar_gz(out, members)


def applied(db: Path) -> list[str]:
    conn = sqlite3.connect(db)
    try:
        return [r[0] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY 1")]
    finally:
        conn.close()


def readme_fields(command: str) -> set[str]:
    """The quoted field names README.md's JSON table gives for ``command``."""
    for line in (REPO / "README.md").read_text().splitlines():
        if line.startswith(f"| `{command}` |"):
            return set(re.findall(r'"([a-z_]+)"', line.split("|")[2]))
    raise AssertionError(f"README.md has no JSON row for {command}")


def all_keys(doc: Any) -> set[str]:
    """Every key at any depth of a JSON document (README flattens nested fields)."""
    if isinstance(doc, dict):
        return set(doc) | {k for v in doc.values() for k in all_keys(v)}
    if isinstance(doc, list):
        return {k for v in doc for k in all_keys(v)}
    return set()


def parse_time(text: str) -> datetime:
    parsed = datetime.fromisoformat(text)
    assert parsed.utcoffset() == timedelta(0), text
    return parsed


def write_config(home: Path, stores: dict[str, Path]) -> None:
    lines = [f'default_tier = "{next(iter(stores))}"', ""]
    for name, path in stores.items():
        lines += [f"[tiers.{name}]", f'store = "{path}"', ""]
    (home / "config.toml").write_text("\n".join(lines))


# ---------------------------------------------------------------- 1. the scripted scenario


def test_scenario_is_reflected_in_list_show_and_history(
    stigmem: Runner, catalog_env: dict[str, str], node: NodeInfo, home: Path, tmp_path: Path
) -> None:
    run = partial(stigmem, env=catalog_env)
    target = make_node_db(tmp_path / "target" / "stigmem.db", size_mb=0.2, seed=2).path
    key_id = ref.key_id_of(node.pubkey)

    created = ok(run("snapshot", "create", "--db", str(node.path), "--json")).json()
    assert set(created) >= CREATE_FIELDS
    sid = created["id"]
    assert (created["signer_key_id"], created["node_id"]) == (key_id, node.node_id)
    assert created["store"] == str(home / "store")

    verified = ok(run("snapshot", "verify", sid[:10], "--json")).json()
    assert set(verified) >= VERIFY_FIELDS
    assert (verified["outcome"], verified["mode"], verified["trusted_by"]) == (
        "ok",
        "default",
        "catalog",
    )
    assert verified["signer_key_id"] == key_id
    strict = ok(run("snapshot", "verify", sid, "--trusted-key", node.pubkey, "--json")).json()
    assert (strict["outcome"], strict["mode"], strict["trusted_by"]) == (
        "ok",
        "strict",
        "trusted-keys",
    )

    good = Path(ok(run("snapshot", "export", sid, "--out", str(tmp_path))).stdout.strip())
    tampered = tampered_copy(good, tmp_path / "tampered.tar.gz")

    # Tamper with the store itself: one flipped byte in each pack object.
    packs = [p for p in (home / "store" / "packs").rglob("*") if p.is_file()]
    assert packs
    for pack in packs:
        flip_middle_byte(pack)
    broken = ok(run("snapshot", "verify", sid, "--json"), 3).json()
    assert (broken["outcome"], broken["mode"], broken["snapshot_id"]) == (
        "checksum_error",
        "default",
        sid,
    )

    before = digest(target)
    refused = ok(run("snapshot", "restore", sid, "--db", str(target)), 3)
    assert "FAIL: checksum_error" in refused.stderr
    assert digest(target) == before

    bad_tarball = ok(run("snapshot", "verify", str(tampered), "--json"), 3).json()
    assert (bad_tarball["outcome"], bad_tarball["snapshot_id"]) == ("checksum_error", sid)

    restored = ok(
        run(
            "snapshot",
            "restore",
            "--from",
            str(good),
            "--db",
            str(target),
            "--migrations-dir",
            str(MIGRATIONS),
            "--json",
        )
    ).json()
    assert restored["forced"] is False
    assert restored["migrations_replayed"] == REPLAYED
    forced = ok(
        run(
            "snapshot",
            "restore",
            "--from",
            str(tampered),
            "--db",
            str(target),
            "--force-unverified",
            "--migrations-dir",
            str(MIGRATIONS),
            "--json",
        )
    )
    assert "WARNING" in forced.stderr and "checksum_error" in forced.stderr
    assert forced.json()["forced"] is True
    assert forced.json()["verification"]["mode"] == "forced"
    assert applied(target) == sorted(f.stem for f in migration_files())

    # The node's own tarball of a day earlier, imported: a second snapshot, verified on import.
    day_before = datetime.now(UTC) - timedelta(days=1)
    (tmp_path / "in").mkdir()
    node_tarball = ref.write_reference_tarball(
        tmp_path / "in", node.path, SEED_A, node.node_id, node.migrations, day_before
    )
    imported = ok(run("snapshot", "import", str(node_tarball), "--json")).json()
    assert len(imported) == 1
    assert set(readme_fields("snapshot import")) <= set(imported[0])
    older = imported[0]["id"]
    assert (imported[0]["outcome"], imported[0]["imported"], imported[0]["tier"]) == (
        "ok",
        True,
        "local",
    )

    # ---- snapshot list --json
    listed = ok(run("snapshot", "list", "--json")).json()
    assert [row["id"] for row in listed] == [sid, older]  # newest first
    for row in listed:
        assert set(row) >= LIST_FIELDS
        assert readme_fields("snapshot list") <= set(row)
        assert (row["node_id"], row["signer_key_id"], row["trusted"]) == (
            node.node_id,
            key_id,
            True,
        )
        assert (row["tiers"], row["pinned"]) == (["local"], False)
        assert isinstance(row["db_size"], int) and row["db_size"] > 0
    newest, oldest = listed
    assert newest["created_at"] == created["created_at"]
    assert newest["db_sha256"] == created["db_sha256"]
    assert newest["last_verify_outcome"] == "checksum_error"  # the forced restore's verdict
    assert oldest["last_verify_outcome"] == "ok"
    assert parse_time(oldest["created_at"]) == day_before

    # ---- snapshot show --json
    shown = ok(run("snapshot", "show", sid[:8], "--json")).json()
    assert set(shown) >= SHOW_FIELDS
    assert readme_fields("snapshot show") <= all_keys(shown)
    assert {k: shown[k] for k in LIST_FIELDS} == {k: newest[k] for k in LIST_FIELDS}
    assert shown["manifest"]["signer_pubkey"] == node.pubkey
    assert shown["manifest"]["node_id"] == node.node_id
    assert [{k: p[k] for k in ("tier", "store", "removed_at")} for p in shown["placements"]] == [
        {"tier": "local", "store": str(home / "store"), "removed_at": None}
    ]
    assert all(set(p) >= PLACEMENT_FIELDS for p in shown["placements"])
    assert all(set(v) >= VERIFICATION_FIELDS for v in shown["verifications"])
    assert [(v["kind"], v["mode"], v["outcome"]) for v in shown["verifications"]] == [
        ("verify", "default", "ok"),
        ("verify", "strict", "ok"),
        ("verify", "default", "checksum_error"),  # the flipped pack
        ("restore", "default", "checksum_error"),  # the refused restore
        ("verify", "default", "checksum_error"),  # the tampered tarball
        ("restore", "default", "ok"),
        ("restore", "forced", "checksum_error"),
    ]
    times = [parse_time(v["at"]) for v in shown["verifications"]]
    assert times == sorted(times)
    assert all(set(r) >= RESTORE_FIELDS for r in shown["restores"])
    assert [(r["target"], r["forced"], r["migrations_replayed"]) for r in shown["restores"]] == [
        (str(target), False, REPLAYED),
        (str(target), True, REPLAYED),
    ]
    shown_older = ok(run("snapshot", "show", older, "--json")).json()
    assert [(v["kind"], v["mode"], v["outcome"]) for v in shown_older["verifications"]] == [
        ("import", "default", "ok")
    ]
    assert shown_older["restores"] == []

    # ---- snapshot history --json
    history = ok(run("snapshot", "history", "--json")).json()
    assert all(set(e) >= HISTORY_FIELDS for e in history)
    assert readme_fields("snapshot history") <= all_keys(history)
    at = [parse_time(e["at"]) for e in history]
    assert at == sorted(at, reverse=True)  # newest first
    mine = [e["event"] for e in reversed(history) if e["snapshot_id"] == sid]
    assert mine[:3] == ["catalogued", "placed", "create"]
    assert mine.count("verified") == 7
    assert mine.count("restored") == 2
    assert "export" in mine
    restores = [e["detail"] for e in history if e["event"] == "restored"]
    assert restores[0].startswith(f"forced restore to {target}")
    assert restores[1].startswith(f"restore to {target}")
    assert [e["event"] for e in reversed(history) if e["snapshot_id"] == older][-1] == "import"
    trusted = [e["detail"] for e in history if e["event"] == "key-trusted"]
    assert trusted == [f"key {key_id}"]
    only_mine = ok(run("snapshot", "history", "--snapshot", sid[:8], "--json")).json()
    assert only_mine == [e for e in history if e["snapshot_id"] == sid]


# ---------------------------------------------------------------- 3. reindex


def test_reindex_rebuilds_from_the_stores(
    stigmem: Runner, node: NodeInfo, home: Path, tmp_path: Path
) -> None:
    stores = {"local": tmp_path / "stores" / "local", "offsite": tmp_path / "stores" / "offsite"}
    write_config(home, stores)
    target = make_node_db(tmp_path / "target" / "stigmem.db", size_mb=0.2, seed=2).path

    first = ok(stigmem("snapshot", "create", "--db", str(node.path), "--json")).json()["id"]
    ok(stigmem("store", "sync", "--to", "offsite"))
    second = ok(
        stigmem("snapshot", "create", "--db", str(node.path), "--tier", "offsite", "--json")
    ).json()["id"]
    ok(stigmem("snapshot", "verify", first))
    ok(stigmem("snapshot", "restore", first, "--db", str(target)))

    # Someone else, with a key this catalog never trusted, writes into the same local store.
    stranger = make_node_db(
        tmp_path / "stranger" / "stigmem.db", size_mb=0.2, seed=3, privkey_seed=STRANGER
    )
    other_home = tmp_path / "other-home"
    other_home.mkdir()
    write_config(other_home, stores)
    planted = subprocess.run(
        [sys.executable, "-m", "cli", "snapshot", "create", "--db", str(stranger.path), "--json"],
        env=clean_env(other_home),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    planted_id = json.loads(planted.stdout)["id"]

    def listing() -> dict[str, tuple[list[str], bool]]:
        rows = ok(stigmem("snapshot", "list", "--json")).json()
        return {row["id"]: (row["tiers"], row["trusted"]) for row in rows}

    assert planted_id not in listing()
    reindexed = ok(stigmem("catalog", "reindex", "--json")).json()
    assert reindexed == {"tiers": {"local": 2, "offsite": 2}, "skipped": []}
    expected = {
        first: (["local", "offsite"], True),
        second: (["offsite"], True),
        planted_id: (["local"], False),
    }
    assert listing() == expected
    # Without deleting the catalog, history survives a reindex.
    shown = ok(stigmem("snapshot", "show", first, "--json")).json()
    assert [(v["kind"], v["outcome"]) for v in shown["verifications"]] == [
        ("verify", "ok"),
        ("restore", "ok"),
    ]
    assert [r["target"] for r in shown["restores"]] == [str(target)]
    events = {e["event"] for e in ok(stigmem("snapshot", "history", "--json")).json()}
    assert {"create", "verified", "restored", "reindex"} <= events

    # Lose the catalog: the stores hold everything needed to rebuild snapshots and placements.
    for name in ("catalog.db", "catalog.db-wal", "catalog.db-shm"):
        (home / name).unlink(missing_ok=True)
    ok(stigmem("catalog", "reindex"))
    # Trust is the operator's decision, not the store's: every signer is untrusted again ...
    assert listing() == {sid: (tiers, False) for sid, (tiers, _) in expected.items()}
    keys = {k["key_id"]: k for k in ok(stigmem("keys", "list", "--json")).json()}
    assert set(keys) == {ref.key_id_of(node.pubkey), ref.key_id_of(stranger.pubkey)}
    assert not any(k["trusted"] for k in keys.values())
    # ... until the operator trusts its own key again; the planted snapshot stays untrusted.
    ok(stigmem("keys", "trust", node.pubkey, "--label", "ops"))
    assert listing() == expected
    rebuilt = ok(stigmem("snapshot", "show", first, "--json")).json()
    assert {p["tier"] for p in rebuilt["placements"]} == {"local", "offsite"}
    assert {p["store"] for p in rebuilt["placements"]} == {str(s) for s in stores.values()}
    assert rebuilt["manifest"] == shown["manifest"]
    assert rebuilt["verifications"] == [] and rebuilt["restores"] == []


# ---------------------------------------------------------------- 4. concurrent creates


def test_two_processes_create_at_once(
    catalog_env: dict[str, str], home: Path, tmp_path: Path, stigmem: Runner
) -> None:
    # Two nodes signed with one operator key: both processes race on the fresh catalog's
    # migration, the key row, the store's lock and the index, all at once.
    nodes = [
        make_node_db(
            tmp_path / f"node{n}" / "stigmem.db", size_mb=0.3, seed=10 + n, privkey_seed=SEED_B
        )
        for n in (1, 2)
    ]
    env = {**clean_env(home), **catalog_env}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "cli", "snapshot", "create", "--db", str(n.path), "--json"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in nodes
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    for proc, (_out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
        assert "locked" not in err and "Traceback" not in err, err
    ids = sorted(json.loads(out)["id"] for out, _ in outputs)
    assert len(set(ids)) == 2

    listed = ok(stigmem("snapshot", "list", "--json", env=catalog_env)).json()
    assert sorted(row["id"] for row in listed) == ids
    assert sorted(row["node_id"] for row in listed) == sorted(n.node_id for n in nodes)
    assert all(row["tiers"] == ["local"] and row["trusted"] for row in listed)
    keys = ok(stigmem("keys", "list", "--json", env=catalog_env)).json()
    assert [k["key_id"] for k in keys] == [ref.key_id_of(nodes[0].pubkey)]
    for sid in ids:
        shown = ok(stigmem("snapshot", "show", sid, "--json", env=catalog_env)).json()
        assert len(shown["placements"]) == 1
        events = ok(
            stigmem("snapshot", "history", "--snapshot", sid, "--json", env=catalog_env)
        ).json()
        assert sorted(e["event"] for e in events) == ["catalogued", "create", "placed"]


# ---------------------------------------------------------------- 5. upgrade in place


def test_catalog_at_the_previous_revision_upgrades_with_rows_intact(
    stigmem: Runner, catalog_env: dict[str, str], home: Path
) -> None:
    from alembic import command
    from sqlalchemy import text

    from catalog.engine import default_catalog_url, make_engine
    from catalog.migrate import alembic_config

    url = catalog_env.get("STIGMEM_CATALOG_URL") or default_catalog_url(home)
    engine = make_engine(url)
    with engine.begin() as conn:
        config = alembic_config()
        config.attributes["connection"] = conn
        command.upgrade(config, "0001")
    sid = hashlib.sha256(b"old snapshot").hexdigest()
    pub = ref.public_key_of(SEED_A)
    old_time = "2026-01-02 03:04:05.000006" + ("+00:00" if url.startswith("postgresql") else "")
    with engine.begin() as conn:  # as a 0001-era tool wrote it, in plain SQL
        conn.execute(
            text(
                "INSERT INTO snapshots (id, node_id, created_at, db_sha256, db_size, cursor,"
                " signer_key_id, signer_pubkey, manifest, catalogued_at, catalogued_from,"
                " catalogued_host, pinned) VALUES (:id, 'stigmem:node:old', :t, :sha, 4096,"
                " :cursor, :kid, :pub, :manifest, :t, 'old', 'oldhost', :p)"
            ),
            dict(
                id=sid,
                t=old_time,
                sha="ab" * 32,
                kid=ref.key_id_of(pub),
                pub=pub,
                p=True,
                cursor='["001_init"]',
                manifest='{"version":1}',
            ),
        )
        conn.execute(
            text(
                "INSERT INTO verifications (snapshot_id, at, mode, outcome, detail, host)"
                " VALUES (:id, :t, 'default', 'ok', '', 'oldhost')"
            ),
            dict(id=sid, t=old_time),
        )
    engine.dispose()

    listed = ok(stigmem("snapshot", "list", "--json", env=catalog_env)).json()
    assert len(listed) == 1
    row = listed[0]
    assert (row["id"], row["node_id"], row["db_size"], row["pinned"]) == (
        sid,
        "stigmem:node:old",
        4096,
        True,
    )
    assert row["created_at"] == "2026-01-02T03:04:05.000006+00:00"
    assert (row["last_verify_outcome"], row["last_verified_at"]) == (
        "ok",
        "2026-01-02T03:04:05.000006+00:00",
    )  # backfilled by 0002
    engine = make_engine(url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).all() == [("0004",)]
    engine.dispose()


# ---------------------------------------------------------------- 6. bad catalogs


def newer_catalog(stigmem: Runner, home: Path) -> Path:
    ok(stigmem("snapshot", "list"))
    path = home / "catalog.db"
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("UPDATE alembic_version SET version_num = 'ffff'")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # so the file alone holds the state
    conn.close()
    return path


BAD_CATALOGS = {
    "bad-url": (
        ["--catalog", "nonsense://x"],
        "stigmem: catalog nonsense://x: unsupported database 'nonsense'",
    ),
    "unreachable": (
        ["--catalog", "postgresql+psycopg://stigmem:secret@127.0.0.1:1/test"],
        "stigmem: catalog postgresql+psycopg://stigmem:***@127.0.0.1:1/test is unreachable: ",
    ),
    "newer": (
        [],
        "was written by a newer version of stigmem-snapshots (revision ffff); upgrade the tool",
    ),
}


def home_state(home: Path) -> dict[str, bytes | None]:
    """Every file and folder under the home (the catalog file, the default store)."""
    return {
        str(p.relative_to(home)): p.read_bytes() if p.is_file() else None
        for p in sorted(home.rglob("*"))
    }


def assert_fails_cleanly(stigmem: Runner, home: Path, case: str, *args: str) -> None:
    options, expected = BAD_CATALOGS[case]
    before = home_state(home)
    result = stigmem(*options, *args)
    assert result.returncode == 1, result
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1, result
    assert expected in result.stderr, result
    assert "Traceback" not in result.stderr and "secret" not in result.stderr
    assert home_state(home) == before, f"stigmem {' '.join(args)} changed files under {home}"


@pytest.mark.parametrize("case", sorted(BAD_CATALOGS))
def test_bad_catalogs_fail_in_one_line_and_change_nothing(
    stigmem: Runner, node: NodeInfo, home: Path, case: str
) -> None:
    catalog = newer_catalog(stigmem, home) if case == "newer" else None
    # A reader, a writer and the command that walks the stores.
    for args in (
        ["snapshot", "list", "--json"],
        ["keys", "trust", ref.public_key_of(SEED_B)],
        ["catalog", "reindex"],
    ):
        assert_fails_cleanly(stigmem, home, case, *args)
    if catalog is not None:
        conn = sqlite3.connect(catalog)
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [("ffff",)]
        conn.close()


def test_create_with_a_bad_catalog_writes_nothing(
    stigmem: Runner, node: NodeInfo, home: Path
) -> None:
    # Same for every bad catalog (the store is written first); one case keeps the suite short.
    assert_fails_cleanly(stigmem, home, "bad-url", "snapshot", "create", "--db", str(node.path))


# ---------------------------------------------------------------- keys


def test_keys_trust_list_and_revoke(stigmem: Runner, node: NodeInfo, tmp_path: Path) -> None:
    # SQLite only: the key queries are the catalog's, already run on PostgreSQL by the
    # scenario above and by tests/catalog.
    run = stigmem
    (tmp_path / "in").mkdir()
    friend = ref.write_reference_tarball(
        tmp_path / "in", node.path, SEED_B, node.node_id, node.migrations
    )
    friend_pub, friend_id = ref.public_key_of(SEED_B), ref.key_id_of(ref.public_key_of(SEED_B))
    imported = ok(run("snapshot", "import", str(friend), "--json")).json()[0]
    assert imported["trusted_by"] == "self-declared"
    sid = imported["id"]
    assert ok(run("snapshot", "list", "--json")).json()[0]["trusted"] is False

    trusted = ok(run("keys", "trust", friend_pub, "--label", "friend"))
    assert friend_id in trusted.stdout
    keys = ok(run("keys", "list", "--json")).json()
    assert readme_fields("keys list") <= KEY_FIELDS
    assert [{k: key[k] for k in KEY_FIELDS - {"first_seen"}} for key in keys] == [
        {
            "key_id": friend_id,
            "public_key": friend_pub,
            "label": "friend",
            "trusted": True,
            "revoked": False,
        }
    ]
    parse_time(keys[0]["first_seen"])
    assert ok(run("snapshot", "list", "--json")).json()[0]["trusted"] is True
    by_catalog = ok(run("snapshot", "verify", sid, "--json")).json()
    assert (by_catalog["outcome"], by_catalog["trusted_by"]) == ("ok", "catalog")

    ok(run("keys", "revoke", "friend"))
    keys = ok(run("keys", "list", "--json")).json()
    assert (keys[0]["trusted"], keys[0]["revoked"]) == (False, True)
    assert ok(run("snapshot", "list", "--json")).json()[0]["trusted"] is False
    for extra in ([], ["--trusted-key", friend_pub]):
        refused = ok(run("snapshot", "verify", sid, *extra, "--json"), 3).json()
        assert refused["outcome"] == "untrusted_key", refused
    keys_file = tmp_path / "trusted.json"
    keys_file.write_text(json.dumps([friend_pub]))
    refused = ok(run("snapshot", "verify", str(friend), "--trusted-keys", str(keys_file)), 3)
    assert refused.stdout.startswith("FAIL: untrusted_key: ")
    again = ok(run("keys", "trust", friend_pub), 1)
    assert "revoked" in again.stderr and len(again.stderr.splitlines()) == 1


# ---------------------------------------------------------------- list filters, pins, metrics


@dataclass
class Fleet:
    run: Runner
    ids: dict[str, str]

    def __getitem__(self, name: str) -> str:
        return self.ids[name]


def runner_for(home: Path) -> Runner:
    """The ``stigmem`` fixture's runner, for a home that outlives one test."""

    def run(*args: str, env: dict[str, str] | None = None) -> Result:
        proc = subprocess.run(
            [sys.executable, "-m", "cli", *args],
            env={**clean_env(home), **(env or {})},
            cwd=home,
            capture_output=True,
            text=True,
            timeout=600,
        )
        return Result(tuple(args), proc.returncode, proc.stdout, proc.stderr)

    return run


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Fleet:
    """Snapshots of two nodes at known ages, in two tiers, in several verification states,
    built once for the read-only tests below (each CLI call costs a second of start-up).

    Names: a40/a10/a2 (node A, 40, 10 and 2 days old, key A trusted as 'ops'), b3 (node B,
    3 days, stranger key), fresh (node A, created now, never verified); a10 lives in tier
    offsite and has since failed a verification; node_a/node_b are the node ids.
    """
    tmp_path = tmp_path_factory.mktemp("fleet")
    home = tmp_path / "home"
    home.mkdir()
    stigmem = runner_for(home)
    write_config(home, {"local": tmp_path / "local", "offsite": tmp_path / "offsite"})
    a = make_node_db(tmp_path / "a" / "stigmem.db", size_mb=0.2, seed=21, privkey_seed=SEED_A)
    b = make_node_db(tmp_path / "b" / "stigmem.db", size_mb=0.2, seed=22, privkey_seed=STRANGER)
    ok(stigmem("keys", "trust", a.pubkey, "--label", "ops"))
    (tmp_path / "in").mkdir()
    now = datetime.now(UTC)
    ids: dict[str, str] = {}
    for name, info, seed, days, tier in (
        ("a40", a, SEED_A, 40, "local"),
        ("a10", a, SEED_A, 10, "offsite"),
        ("a2", a, SEED_A, 2, "local"),
        ("b3", b, STRANGER, 3, "local"),
    ):
        tarball = ref.write_reference_tarball(
            tmp_path / "in",
            info.path,
            seed,
            info.node_id,
            info.migrations,
            now - timedelta(days=days),
        )
        ids[name] = ok(
            stigmem("snapshot", "import", str(tarball), "--tier", tier, "--json")
        ).json()[0]["id"]
        if name == "a10":
            ok(stigmem("snapshot", "verify", str(tampered_copy(tarball, tmp_path / "t.tar.gz"))), 3)
    ids["fresh"] = ok(stigmem("snapshot", "create", "--db", str(a.path), "--json")).json()["id"]
    ids["node_a"], ids["node_b"] = a.node_id, b.node_id
    return Fleet(stigmem, ids)


def test_list_filters(fleet: Fleet) -> None:
    stigmem = fleet.run
    name = {v: k for k, v in fleet.ids.items()}

    def listed(*filters: str) -> list[str]:
        return [
            name[row["id"]] for row in ok(stigmem("snapshot", "list", *filters, "--json")).json()
        ]

    assert listed() == ["fresh", "a2", "b3", "a10", "a40"]
    assert listed("--node", fleet["node_b"]) == ["b3"]
    assert listed("--node", fleet["node_a"], "--since", "7d") == ["fresh", "a2"]
    assert listed("--since", "30d", "--until", "3d") == ["b3", "a10"]
    assert listed("--signer", "ops") == ["fresh", "a2", "a10", "a40"]
    assert listed("--signer", ref.key_id_of(ref.public_key_of(STRANGER))) == ["b3"]
    assert listed("--tier", "offsite") == ["a10"]
    assert listed("--tier", "local", "--limit", "2") == ["fresh", "a2"]
    assert listed("--verified", "never") == ["fresh"]
    assert listed("--verified", "failed") == ["a10"]
    assert listed("--verified", "ok") == ["a2", "b3", "a40"]
    # Everything but "fresh" was verified (import, or the failed check) moments ago.
    assert listed("--not-verified-since", "30d") == ["fresh"]
    assert listed("--limit", "1") == ["fresh"]
    rows = {name[r["id"]]: r for r in ok(stigmem("snapshot", "list", "--json")).json()}
    assert [rows[n]["trusted"] for n in ("fresh", "a2", "b3")] == [True, True, False]
    text = ok(stigmem("snapshot", "list", "--node", fleet["node_b"]))
    assert text.stdout.splitlines()[1].startswith(fleet["b3"][:12])  # piped: tab-separated
    bad = ok(stigmem("snapshot", "list", "--since", "yesterday-ish"), 2)
    assert "--since" in bad.stderr and len(bad.stderr.splitlines()) == 1


def test_pin_and_unpin_show_in_list(fleet: Fleet) -> None:
    stigmem = fleet.run

    def pinned() -> dict[str, bool]:
        return {r["id"]: r["pinned"] for r in ok(stigmem("snapshot", "list", "--json")).json()}

    assert not any(pinned().values())
    assert ok(stigmem("snapshot", "pin", fleet["a40"][:8])).stdout.strip() == (
        f"pinned {fleet['a40']}"
    )
    assert [sid for sid, p in pinned().items() if p] == [fleet["a40"]]
    assert ok(stigmem("snapshot", "show", fleet["a40"], "--json")).json()["pinned"] is True
    ok(stigmem("snapshot", "unpin", fleet["a40"]))
    assert not any(pinned().values())
    events = [
        e["event"]
        for e in ok(stigmem("snapshot", "history", "--snapshot", fleet["a40"], "--json")).json()
    ]
    assert events[:2] == ["unpinned", "pinned"]


PROM_LINE = re.compile(
    r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>[^}]*)\})? (?P<value>\S+)$"
)
PROM_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_prometheus(text: str) -> list[tuple[str, dict[str, str], float]]:
    """A strict reader of the text exposition format (HELP/TYPE comments, one sample a line)."""
    samples = []
    typed: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# HELP "):
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert kind in ("gauge", "counter") and name not in typed, line
            typed.add(name)
            continue
        match = PROM_LINE.match(line)
        assert match, f"not a Prometheus sample line: {line!r}"
        labels = dict(PROM_LABEL.findall(match["labels"] or ""))
        assert match["name"] in typed, f"sample before its TYPE: {line!r}"
        samples.append((match["name"], labels, float(match["value"])))
    return samples


def test_metrics_parse_as_prometheus_text(fleet: Fleet, tmp_path: Path) -> None:
    stigmem = fleet.run
    result = ok(stigmem("catalog", "metrics"))
    samples = parse_prometheus(result.stdout)
    by_key = {(n, tuple(sorted(lab.items()))): v for n, lab, v in samples}

    def value(metric: str, **labels: str) -> float:
        return by_key[(metric, tuple(sorted(labels.items())))]

    a, b = fleet["node_a"], fleet["node_b"]
    assert value("stigmem_snapshots", node=a, tier="local") == 3  # a40, a2, fresh
    assert value("stigmem_snapshots", node=a, tier="offsite") == 1
    assert value("stigmem_snapshots", node=b, tier="local") == 1
    assert value("stigmem_snapshot_newest_age_seconds", node=a, tier="local") < 600
    assert (
        2 * 86400
        <= value("stigmem_snapshot_newest_verified_age_seconds", node=a, tier="local")
        < 2 * 86400 + 600
    )  # a2: fresh was never verified
    assert value("stigmem_snapshot_newest_age_seconds", node=a, tier="offsite") > 9 * 86400
    assert (
        "stigmem_snapshot_newest_verified_age_seconds",
        (("node", a), ("tier", "offsite")),
    ) not in by_key  # a10 failed
    assert 0 <= value("stigmem_snapshot_last_verification_age_seconds", node=b, tier="local") < 600
    assert value("stigmem_store_bytes", tier="local") > 0
    assert value("stigmem_store_bytes", tier="offsite") > 0
    assert {n for n, _, _ in samples} == {
        "stigmem_snapshot_newest_age_seconds",
        "stigmem_snapshot_newest_verified_age_seconds",
        "stigmem_snapshot_last_verification_age_seconds",
        "stigmem_snapshots",
        "stigmem_store_bytes",
        "stigmem_node_overdue",  # no drill yet: no drill series
    }
    assert value("stigmem_node_overdue", node=a) == 0  # fresh
    assert value("stigmem_node_overdue", node=b) == 1  # 3 days old, [fleet] every is 1 day
    out = tmp_path / "stigmem.prom"
    ok(stigmem("catalog", "metrics", "--out", str(out)))
    assert {n for n, _, _ in parse_prometheus(out.read_text())} == {n for n, _, _ in samples}
