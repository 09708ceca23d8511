"""The Stigmem backup runbook, end to end through the console script.

Tarballs from "the Stigmem node" are made by tests/reference_format.py, written from the format
description alone; ours are checked by its independent reader.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests import reference_format as ref
from tests.conftest import REPO, Runner, rows
from tests.nodegen import NodeInfo, make_node_db, migration_files

SEED_A = bytes(range(32))
ATTACKER = b"\xee" * 32
MIGRATIONS = REPO / "tests" / "fixtures" / "migrations"


@pytest.fixture
def node(tmp_path: Path) -> NodeInfo:
    return make_node_db(tmp_path / "node" / "stigmem.db", size_mb=0.5, seed=1, privkey_seed=SEED_A)


@pytest.fixture
def target(tmp_path: Path) -> Path:
    """A different node's live database: the restore target."""
    info = make_node_db(tmp_path / "target" / "stigmem.db", size_mb=0.2, seed=2)
    return info.path


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def node_tarball(node: NodeInfo, out: Path, seed: bytes = SEED_A) -> Path:
    out.mkdir(exist_ok=True)
    return ref.write_reference_tarball(out, node.path, seed, node.node_id, node.migrations)


def dir_listing(path: Path) -> set[str]:
    return {p.name for p in path.iterdir()}


# ---------------------------------------------------------------- compatibility


def test_node_tarball_verifies_and_restores(
    stigmem: Runner, node: NodeInfo, target: Path, tmp_path: Path
) -> None:
    tarball = node_tarball(node, tmp_path / "in")
    manifest_text = ref.gunzip_member(tarball, "manifest.json").decode()
    assert "\n  " in manifest_text and "key id" not in manifest_text  # the node's own style

    verified = stigmem("snapshot", "verify", str(tarball), "--trusted-key", node.pubkey)
    assert verified.returncode == 0, verified
    key_id = hashlib.sha256(ref.b64url_decode(node.pubkey)).hexdigest()[:16]
    assert verified.stdout.splitlines()[0] == (
        f"OK: sha256 checksums valid, signature verified (key: {node.node_id}, key id {key_id})"
    )

    restored = stigmem(
        "snapshot",
        "restore",
        "--from",
        str(tarball),
        "--db",
        str(target),
        "--trusted-key",
        node.pubkey,
    )
    assert restored.returncode == 0, restored
    assert digest(target) == digest(node.path)
    assert rows(target, "PRAGMA integrity_check") == [("ok",)]
    backup = target.with_name(target.name + ".pre-restore-backup")
    assert backup.exists()


def test_our_tarball_passes_the_independent_reader(
    stigmem: Runner, node: NodeInfo, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    created = stigmem(
        "snapshot", "create", "--no-store", "--db", str(node.path), "--out", str(out), "--json"
    )
    assert created.returncode == 0, created
    doc = created.json()
    tarball = Path(doc["tarball"])
    assert tarball.parent == out
    assert tarball.name == doc["name"]
    assert tarball.name.startswith("stigmem-snapshot-")
    assert tarball.name.endswith(f"-{doc['db_sha256'][:12]}.tar.gz")
    assert tarball.stat().st_mode & 0o777 == 0o600
    assert doc["store"] is None

    read = ref.read_reference_tarball(tarball, [node.pubkey], db_out=tmp_path / "copy.db")
    assert read["snapshot_id"] == doc["id"]
    assert read["node_id"] == node.node_id
    assert read["applied_migrations"] == node.migrations
    assert rows(tmp_path / "copy.db", "PRAGMA integrity_check") == [("ok",)]
    assert rows(tmp_path / "copy.db", "SELECT count(*) FROM facts") == rows(
        node.path, "SELECT count(*) FROM facts"
    )
    names = [name for name, _kind, _size in ref.members_of(tarball)]
    assert names == [
        "manifest.json",
        "artifacts",
        "artifacts/schema_migration_cursor.json",
        "artifacts/stigmem.db",
    ]


def test_signing_key_from_environment_and_node_id(
    stigmem: Runner, node: NodeInfo, tmp_path: Path
) -> None:
    env = {
        "STIGMEM_FEDERATION_PRIVKEY": ref.b64url(ATTACKER),
        "STIGMEM_NODE_ID": "stigmem:node:x",
        "STIGMEM_DB_PATH": str(node.path),
    }
    created = stigmem("snapshot", "create", "--no-store", "--out", str(tmp_path), "--json", env=env)
    assert created.returncode == 0, created
    read = ref.read_reference_tarball(Path(created.json()["tarball"]))
    assert read["signer_pubkey"] == ref.public_key_of(ATTACKER)
    assert read["node_id"] == "stigmem:node:x"


# ---------------------------------------------------------------- tampering


def tampered(node: NodeInfo, out: Path, how: str) -> Path:
    db = node.path.read_bytes()
    when = datetime(2026, 6, 1, 3, 0, tzinfo=UTC)
    members, manifest = ref.reference_members(db, SEED_A, node.node_id, node.migrations, when)
    if how == "flipped-db":
        flipped = bytearray(db)
        flipped[len(flipped) // 2] ^= 0x01
        members[3] = ref.TarMember(ref.DATABASE, bytes(flipped))
    elif how == "edited-manifest":
        edited = {**manifest, "node_id": "stigmem:node:evil"}
        members[0] = ref.TarMember(ref.MANIFEST, json.dumps(edited, indent=2).encode())
    elif how == "attacker-resigned":
        members, _ = ref.reference_members(db, ATTACKER, node.node_id, node.migrations, when)
    path = out / f"{how}.tar.gz"
    out.mkdir(exist_ok=True)
    return ref.write_tar_gz(path, members)


@pytest.mark.parametrize(
    ("how", "outcome"),
    [("flipped-db", "checksum_error"), ("edited-manifest", "signature_mismatch")],
)
def test_tampering_fails_and_restore_refuses(
    stigmem: Runner, node: NodeInfo, target: Path, tmp_path: Path, how: str, outcome: str
) -> None:
    tarball = tampered(node, tmp_path / "in", how)
    verified = stigmem("snapshot", "verify", str(tarball))
    assert verified.returncode == 3, verified
    assert verified.stdout.startswith(f"FAIL: {outcome}: ")

    as_json = stigmem("snapshot", "verify", str(tarball), "--json")
    assert as_json.returncode == 3
    assert as_json.json()["outcome"] == outcome
    assert as_json.json()["mode"] == "default"

    before = digest(target)
    listing = dir_listing(target.parent)
    restored = stigmem("snapshot", "restore", str(tarball), "--db", str(target))
    assert restored.returncode == 3, restored
    assert f"FAIL: {outcome}" in restored.stderr
    assert "Traceback" not in restored.stderr
    assert digest(target) == before
    assert dir_listing(target.parent) == listing


def test_attacker_key_passes_default_only_as_self_declared(
    stigmem: Runner, node: NodeInfo, target: Path, tmp_path: Path
) -> None:
    tarball = tampered(node, tmp_path / "in", "attacker-resigned")
    default = stigmem("snapshot", "verify", str(tarball), "--json")
    assert default.returncode == 0, default
    assert default.json()["trusted_by"] == "self-declared"
    text = stigmem("snapshot", "verify", str(tarball))
    assert text.returncode == 0
    assert "self-declared" in text.stdout

    strict = stigmem("snapshot", "verify", str(tarball), "--trusted-key", node.pubkey)
    assert strict.returncode == 3
    assert strict.stdout.startswith("FAIL: untrusted_key: ")

    keys_file = tmp_path / "trusted.json"
    keys_file.write_text(json.dumps([node.pubkey]))
    before = digest(target)
    refused = stigmem(
        "snapshot", "restore", str(tarball), "--db", str(target), "--trusted-keys", str(keys_file)
    )
    assert refused.returncode == 3, refused
    assert digest(target) == before


def test_forced_restore_warns_even_at_error_level(
    stigmem: Runner, node: NodeInfo, target: Path, tmp_path: Path
) -> None:
    tarball = tampered(node, tmp_path / "in", "edited-manifest")
    forced = stigmem(
        "--log-level",
        "ERROR",
        "snapshot",
        "restore",
        str(tarball),
        "--db",
        str(target),
        "--force-unverified",
    )
    assert forced.returncode == 0, forced
    assert "WARNING" in forced.stderr and "signature_mismatch" in forced.stderr
    restored_db = ref.gunzip_member(tarball, ref.DATABASE)
    assert target.read_bytes() == restored_db


# ---------------------------------------------------------------- bad input


def _bad_members(node: NodeInfo, case: str) -> list[ref.TarMember]:
    db = node.path.read_bytes()
    when = datetime(2026, 6, 1, 3, 0, tzinfo=UTC)
    members, manifest = ref.reference_members(db, SEED_A, node.node_id, node.migrations, when)
    man = members[0]

    def with_manifest(doc: object, raw: bytes | None = None) -> list[ref.TarMember]:
        data = raw if raw is not None else json.dumps(doc).encode()
        return [ref.TarMember(ref.MANIFEST, data), *members[1:]]

    resigned = {k: v for k, v in manifest.items() if k != "signature"}
    return {
        "dotdot": [*members, ref.TarMember("artifacts/../../evil", b"x")],
        "absolute": [ref.TarMember("/etc/evil", b"x"), *members],
        "symlink": [*members[:3], ref.TarMember(ref.DATABASE, kind="symlink", linkname="/etc")],
        "hardlink": [
            *members[:3],
            ref.TarMember(ref.DATABASE, kind="hardlink", linkname="manifest.json"),
        ],
        "device": [*members[:3], ref.TarMember(ref.DATABASE, kind="chardev")],
        "two-manifests": [man, *members],
        "extra-member": [*members, ref.TarMember("artifacts/extra.txt", b"x")],
        "missing-db": members[:3],
        "missing-manifest": members[1:],
        "manifest-not-json": with_manifest(None, b"{not json"),
        "wrong-version": with_manifest(ref.sign_manifest({**resigned, "version": 2}, SEED_A)),
        "duplicate-keys": with_manifest(
            None, man.data.replace(b'"version": 1', b'"version": 1, "version": 1')
        ),
        "wrong-types": with_manifest({**manifest, "node_id": 42}),
        "short-key": with_manifest({**manifest, "signer_pubkey": ref.b64url(b"x" * 31)}),
        "bad-base64": with_manifest({**manifest, "signer_pubkey": "!!!notbase64url!!!"}),
    }[case]


BAD_CASES = [
    "dotdot",
    "absolute",
    "symlink",
    "hardlink",
    "device",
    "two-manifests",
    "extra-member",
    "missing-db",
    "missing-manifest",
    "manifest-not-json",
    "wrong-version",
    "duplicate-keys",
    "wrong-types",
    "short-key",
    "bad-base64",
]


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_tarballs_fail_cleanly(
    stigmem: Runner, node: NodeInfo, target: Path, tmp_path: Path, case: str
) -> None:
    (tmp_path / "in").mkdir()
    tarball = ref.write_tar_gz(tmp_path / "in" / f"{case}.tar.gz", _bad_members(node, case))
    verified = stigmem("snapshot", "verify", str(tarball), "--json")
    assert verified.returncode == 3, verified
    expected = "checksum_error" if case == "missing-db" else "malformed"
    assert verified.json()["outcome"] == expected

    before, listing = digest(target), dir_listing(target.parent)
    restored = stigmem("snapshot", "restore", str(tarball), "--db", str(target))
    assert restored.returncode == 3, restored
    lines = restored.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"FAIL: {expected}: "), restored
    assert digest(target) == before
    assert dir_listing(target.parent) == listing


def test_size_bomb_is_refused_without_reading_it(
    stigmem: Runner, target: Path, tmp_path: Path
) -> None:
    bomb = ref.write_size_bomb(tmp_path / "bomb.tar.gz", declared_size=80 << 30, body_size=4096)
    result = stigmem("snapshot", "verify", str(bomb), "--json")
    assert result.returncode == 3
    assert result.json()["outcome"] == "malformed"
    assert "over the cap" in result.json()["detail"]

    small_bomb = ref.write_size_bomb(tmp_path / "small.tar.gz", declared_size=8 << 20)
    capped = stigmem("snapshot", "verify", str(small_bomb), "--max-size", str(1 << 20), "--json")
    assert capped.returncode == 3 and "over the cap" in capped.json()["detail"]
    before = digest(target)
    refused = stigmem("snapshot", "restore", str(bomb), "--db", str(target))
    assert refused.returncode == 3 and digest(target) == before


@pytest.mark.parametrize("case", ["missing", "not-gzip", "directory"])
def test_unreadable_inputs(stigmem: Runner, tmp_path: Path, case: str) -> None:
    path = tmp_path / "x.tar.gz"
    if case == "not-gzip":
        path.write_bytes(b"plain text, not gzip\n" * 10)
    elif case == "directory":
        path.mkdir()
    result = stigmem("snapshot", "verify", str(path))
    assert result.returncode in (1, 3)
    output = (result.stdout + result.stderr).strip().splitlines()
    assert len(output) == 1 and str(path) in output[0], result
    assert "Traceback" not in result.stderr


def test_trusted_keys_file_must_be_an_array(
    stigmem: Runner, node: NodeInfo, tmp_path: Path
) -> None:
    tarball = node_tarball(node, tmp_path / "in")
    keys_file = tmp_path / "keys.json"
    keys_file.write_text(json.dumps({"key": node.pubkey}))
    result = stigmem("snapshot", "verify", str(tarball), "--trusted-keys", str(keys_file))
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0 and str(keys_file) in result.stderr


@pytest.mark.parametrize("case", ["directory", "not-sqlite"])
def test_create_refuses_bad_databases(stigmem: Runner, tmp_path: Path, case: str) -> None:
    db = tmp_path / "db"
    if case == "directory":
        db.mkdir()
    else:
        db.write_bytes(b"not a database at all" * 100)
    out = tmp_path / "out"
    out.mkdir()
    result = stigmem("snapshot", "create", "--no-store", "--db", str(db), "--out", str(out))
    assert result.returncode == 1, result
    assert str(db) in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert list(out.iterdir()) == []


def test_restore_refuses_a_database_in_use(
    stigmem: Runner, node: NodeInfo, target: Path, tmp_path: Path
) -> None:
    tarball = node_tarball(node, tmp_path / "in")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sqlite3, sys\n"
            f"c = sqlite3.connect({str(target)!r}, isolation_level=None)\n"
            "c.execute('BEGIN IMMEDIATE'); c.execute(\"INSERT INTO node_meta VALUES ('k','v')\")\n"
            "print('locked', flush=True); sys.stdin.readline()\n",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        before = digest(target)
        result = stigmem(
            "snapshot", "restore", str(tarball), "--db", str(target), "--trusted-key", node.pubkey
        )
        assert result.returncode != 0
        assert "database in use" in result.stderr and str(target) in result.stderr
        assert digest(target) == before
    finally:
        holder.communicate("done\n", timeout=30)


# ---------------------------------------------------------------- migrations, help


def test_restore_replays_newer_migrations_in_order(
    stigmem: Runner, target: Path, tmp_path: Path
) -> None:
    older = "028_subscription_delivery_claim"
    node = make_node_db(
        tmp_path / "old" / "stigmem.db", size_mb=0.5, seed=1, privkey_seed=SEED_A, upto=older
    )
    applied = [f.stem for f in migration_files(older)]
    replayed = [f.stem for f in migration_files()][len(applied) :]
    assert node.migrations == applied
    tarball = node_tarball(node, tmp_path / "in")
    result = stigmem(
        "snapshot",
        "restore",
        str(tarball),
        "--db",
        str(target),
        "--trusted-key",
        node.pubkey,
        "--migrations-dir",
        str(MIGRATIONS),
        "--json",
    )
    assert result.returncode == 0, result
    assert result.json()["migrations_replayed"] == replayed
    versions = [v for (v,) in rows(target, "SELECT version FROM schema_migrations ORDER BY 1")]
    assert versions == applied + replayed
    again = stigmem(
        "snapshot",
        "restore",
        str(tarball),
        "--db",
        str(target),
        "--no-backup",
        "--trusted-key",
        node.pubkey,
        "--migrations-dir",
        str(MIGRATIONS),
        "--json",
    )
    assert again.json()["migrations_replayed"] == replayed


COMMANDS = [
    [],
    ["snapshot"],
    ["snapshot", "create"],
    ["snapshot", "verify"],
    ["snapshot", "restore"],
    ["snapshot", "list"],
    ["snapshot", "show"],
    ["snapshot", "history"],
    ["snapshot", "export"],
    ["snapshot", "import"],
    ["snapshot", "prune"],
    ["snapshot", "pin"],
    ["snapshot", "unpin"],
    ["store", "init"],
    ["store", "check"],
    ["store", "sync"],
    ["store", "gc"],
    ["store", "stats"],
    ["keys", "generate"],
    ["keys", "trust"],
    ["keys", "revoke"],
    ["keys", "list"],
    ["federation", "cursor-export"],
    ["catalog", "reindex"],
    ["catalog", "metrics"],
]


def test_every_command_help_shows_an_example(stigmem: Runner) -> None:
    for command in COMMANDS:
        if len(command) == 1:
            continue  # groups list their commands; the leaves carry the examples
        result = stigmem(*command, "--help")
        assert result.returncode == 0, result
        assert "Example" in result.stdout and "stigmem " in result.stdout, command
