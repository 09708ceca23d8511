"""The content-addressed store, through the console script.

Every check is one an operator could make: exit codes, the one-line messages, `store stats
--json`, the store directory or bucket listing, and the bytes of the restored database. S3 is
moto's real HTTP server reached through s3fs, configured the way a user would: a tier's
`storage_options` in the config file.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from store import packs as packs_format
from tests import reference_format as ref
from tests.conftest import BUCKET, Runner, clean_env, free_port, ok, rows, s3_options
from tests.nodegen import NodeInfo, apply_churn, make_node_db

SEED_A = bytes(range(32))
SEED_B = b"\x42" * 32


# ---------------------------------------------------------------- helpers


@pytest.fixture
def node(tmp_path: Path) -> NodeInfo:
    # 2 MiB: a node's schema alone is 0.8 MiB and every write touches ~15 tables, so a day's
    # change is only "slight" on a node with some data.
    return make_node_db(tmp_path / "nodeA" / "stigmem.db", size_mb=2, seed=1, privkey_seed=SEED_A)


@dataclasses.dataclass(frozen=True)
class Stocked:
    node: NodeInfo
    created: dict[str, Any]  # `snapshot create --json` of the snapshot already in the store


@pytest.fixture(scope="module")
def _seed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, NodeInfo, dict[str, Any]]:
    """One create of node A into a fresh home, made once: a create is the slowest command,
    and most tests only need a store that holds a snapshot."""
    root = tmp_path_factory.mktemp("seed")
    info = make_node_db(root / "nodeA" / "stigmem.db", size_mb=2, seed=1, privkey_seed=SEED_A)
    home = root / "home"
    home.mkdir()
    proc = subprocess.run(
        [sys.executable, "-m", "cli", "snapshot", "create", "--db", str(info.path), "--json"],
        env=clean_env(home),
        cwd=home,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    return home, info, json.loads(proc.stdout)


@pytest.fixture
def stocked(_seed: tuple[Path, NodeInfo, dict[str, Any]], home: Path, tmp_path: Path) -> Stocked:
    """This test's own copy of the seeded home (catalog and store) and of node A's database."""
    seed_home, info, created = _seed
    shutil.copytree(seed_home, home, dirs_exist_ok=True)
    db = tmp_path / "nodeA" / "stigmem.db"
    db.parent.mkdir()
    shutil.copy2(info.path, db)
    return Stocked(dataclasses.replace(info, path=db), created)


@pytest.fixture
def other_node(tmp_path: Path) -> NodeInfo:
    """Node B: another database, another key; the restore target."""
    return make_node_db(tmp_path / "nodeB" / "stigmem.db", size_mb=0.2, seed=2, privkey_seed=SEED_B)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tree(root: Path) -> dict[str, str]:
    """Every file under ``root`` (relative path -> content hash): 'nothing written' means
    this is unchanged, not just the names."""
    if not root.exists():
        return {}
    return {p.relative_to(root).as_posix(): digest(p) for p in root.rglob("*") if p.is_file()}


def under(listing: dict[str, str], prefix: str) -> dict[str, str]:
    return {k: v for k, v in listing.items() if k.startswith(prefix + "/")}


def one_line_error(result: Any, *names: str) -> None:
    """A failed command as docs/design.md section 8 wants it: non-zero, one line on stderr naming
    the problem's path/URL/id, no traceback."""
    assert result.returncode != 0, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result
    assert "Traceback" not in result.stderr, result
    for name in names:
        assert name in lines[0], result


def toml_value(value: object) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(str(value))  # a TOML basic string is a JSON string for these values


def write_config(home: Path, url: str, options: dict[str, Any], tier: str = "shared") -> Path:
    """$STIGMEM_HOME/config.toml with one tier, its fsspec options as a user writes them."""
    lines = [f"[tiers.{tier}]", f"store = {toml_value(url)}", "", f"[tiers.{tier}.storage_options]"]
    lines += [f"{k} = {toml_value(v)}" for k, v in options.items()]
    home.mkdir(parents=True, exist_ok=True)
    path = home / "config.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def bucket_listing(
    endpoint: str, prefix: str, key: str = "testing", secret: str = "testing"
) -> dict[str, str]:
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        region_name="us-east-1",
    )
    found: dict[str, str] = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        for obj in page.get("Contents", []):
            found[obj["Key"]] = obj["ETag"]
    return found


def create(stigmem: Runner, db: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    result = stigmem("snapshot", "create", "--db", str(db), "--json", env=env)
    assert result.returncode == 0, result
    doc: dict[str, Any] = result.json()
    return doc


def stats(stigmem: Runner, env: dict[str, str] | None = None) -> dict[str, Any]:
    result = stigmem("store", "stats", "--json", env=env)
    assert result.returncode == 0, result
    doc: dict[str, Any] = result.json()
    return doc


# ---------------------------------------------------------------- 1: dedup, stats


def test_unchanged_database_adds_one_document_and_no_chunk_data(
    stigmem: Runner, home: Path, stocked: Stocked
) -> None:
    store, node, first = home / "store", stocked.node, stocked.created
    before, stats_before = tree(store), stats(stigmem)
    second = create(stigmem, node.path)
    after, stats_after = tree(store), stats(stigmem)

    assert second["id"] != first["id"]  # another moment, another signed manifest
    assert second["db_sha256"] == first["db_sha256"]
    new_docs = set(under(after, "snapshots")) - set(under(before, "snapshots"))
    assert new_docs == {f"snapshots/{second['id']}.json"}
    assert under(after, "snapshots").keys() >= under(before, "snapshots").keys()
    assert under(after, "packs") == under(before, "packs")
    assert under(after, "index") == under(before, "index")
    assert stats_after["chunks"] == stats_before["chunks"]
    assert stats_after["packs"] == stats_before["packs"]
    assert stats_after["snapshots"] == stats_before["snapshots"] + 1


def test_stats_fields_and_dedup_after_a_slight_change(stigmem: Runner, stocked: Stocked) -> None:
    node = stocked.node
    one = stats(stigmem)
    apply_churn(node.path, day=1)
    create(stigmem, node.path)
    two = stats(stigmem)
    listed = stigmem("snapshot", "list", "--json")
    assert listed.returncode == 0, listed
    # The sizes of the consistent copies the snapshots hold, newest first.
    size_two, size_one = (int(row["db_size"]) for row in listed.json())

    for doc in (one, two):
        assert {
            "snapshots",
            "chunks",
            "packs",
            "stored_bytes",
            "logical_bytes",
            "dedup_ratio",
        } <= doc.keys()
        for key in ("snapshots", "chunks", "packs", "stored_bytes", "logical_bytes"):
            assert isinstance(doc[key], int) and doc[key] > 0, (key, doc)
        assert doc["dedup_ratio"] == pytest.approx(
            doc["logical_bytes"] / doc["stored_bytes"], rel=0.01
        )
    assert one["snapshots"] == 1 and two["snapshots"] == 2
    # Both snapshots count in full as logical bytes: the databases plus two small cursors.
    assert size_one <= one["logical_bytes"] < size_one + 4096
    assert size_one + size_two <= two["logical_bytes"] < size_one + size_two + 8192
    # A slight change costs a few chunks, not a second copy: the ratio nearly doubles.
    assert two["chunks"] > one["chunks"]
    assert two["chunks"] - one["chunks"] < one["chunks"] // 2
    assert two["stored_bytes"] - one["stored_bytes"] < one["stored_bytes"] // 2
    assert two["dedup_ratio"] > 1
    assert two["dedup_ratio"] > 1.3 * one["dedup_ratio"]


# ---------------------------------------------------------------- prefixes


def test_verify_and_restore_by_prefix_and_ambiguous_prefix_lists_candidates(
    stigmem: Runner, home: Path, stocked: Stocked, other_node: NodeInfo
) -> None:
    node, created = stocked.node, stocked.created
    sid = created["id"]
    verified = stigmem("snapshot", "verify", sid[:8], "--json")
    assert verified.returncode == 0, verified
    assert verified.json()["snapshot_id"] == sid and verified.json()["outcome"] == "ok"

    restored = stigmem(
        "snapshot",
        "restore",
        sid[:8],
        "--db",
        str(other_node.path),
        "--trusted-key",
        node.pubkey,
        "--json",
    )
    assert restored.returncode == 0, restored
    assert restored.json()["snapshot_id"] == sid
    assert digest(other_node.path) == created["db_sha256"]

    # Two ids sharing a 6-digit prefix need ~16M signatures to happen for real; a copy of
    # the document under a colliding name gives the store the same listing.
    docs = home / "store" / "snapshots"
    twin = sid[:6] + ("0" if sid[6] != "0" else "1") + sid[7:]
    (docs / f"{twin}.json").write_bytes((docs / f"{sid}.json").read_bytes())
    ambiguous = stigmem("snapshot", "verify", sid[:6])
    one_line_error(ambiguous, "ambiguous", sid, twin)
    assert ambiguous.returncode == 1
    # Still unambiguous with one more digit.
    assert stigmem("snapshot", "verify", sid[:7]).returncode == 0


# ---------------------------------------------------------------- 6: damaged data


@pytest.mark.parametrize("damage", ["flipped-byte", "deleted-pack", "wrong-page"])
def test_damaged_pack_fails_verify_and_restore(
    stigmem: Runner, home: Path, stocked: Stocked, other_node: NodeInfo, damage: str
) -> None:
    node, sid = stocked.node, stocked.created["id"]
    packs = sorted((home / "store" / "packs").rglob("*"))
    packs = [p for p in packs if p.is_file()]
    assert len(packs) == 1  # a 0.5 MiB database fits in one pack: damaging it hits the db
    pack = packs[0]
    if damage == "flipped-byte":
        data = bytearray(pack.read_bytes())
        page = next(e for e in packs_format.entries_of(bytes(data)) if e.length == 4096)
        data[page.frame_offset + page.frame_length // 2] ^= 0x01  # inside a page's frame
        pack.write_bytes(bytes(data))
        outcome = "checksum_error"
    elif damage == "deleted-pack":
        pack.unlink()
        outcome = "missing_data"
    else:
        # A damaged local index cache: every frame still decodes, one page is read from its
        # neighbour's place. Only hashing catches it; the error names that page's chunk.
        shutil.rmtree(home / "cache")  # the seed's cache, named after the seed's store URL
        assert stigmem("store", "stats").returncode == 0  # loads this store's index cache
        (cache,) = (home / "cache").glob("index-*.db")
        with contextlib.closing(sqlite3.connect(cache)) as db, db:
            (key, *_), (_, *other) = db.execute(
                "SELECT key, pack, fo, fl, off FROM e WHERE len = 4096 ORDER BY pos LIMIT 2"
            ).fetchall()
            db.execute(
                "UPDATE e SET pack = ?, fo = ?, fl = ?, off = ? WHERE key = ?", (*other, key)
            )
        outcome = "checksum_error"
        pack = Path(bytes(key).hex())  # the error names the chunk

    verified = stigmem("snapshot", "verify", sid)
    assert verified.returncode == 3, verified
    line = verified.stdout.strip().splitlines()[0]
    assert line.startswith(f"FAIL: {outcome}: ") and sid in line and pack.name in line, verified
    target = other_node.path
    before, listing = digest(target), tree(target.parent)
    restored = stigmem(
        "snapshot", "restore", sid[:8], "--db", str(target), "--trusted-key", node.pubkey
    )
    assert restored.returncode == 3, restored
    one_line_error(restored, f"FAIL: {outcome}: ", sid, pack.name)
    assert digest(target) == before
    assert tree(target.parent) == listing  # no backup, no temporary file left behind


def test_store_check_names_a_forged_signature_and_an_unreadable_document(
    stigmem: Runner, stocked: Stocked, home: Path
) -> None:
    sid = stocked.created["id"]
    assert stigmem("store", "check").returncode == 0
    path = home / "store" / "snapshots" / f"{sid}.json"
    doc = json.loads(path.read_text())
    signature = doc["manifest"]["signature"]
    doc["manifest"]["signature"] = ("A" if signature[0] != "A" else "B") + signature[1:]
    path.write_text(json.dumps(doc))
    (home / "store" / "snapshots" / f"{'0' * 64}.json").write_text("{not json")

    checked = stigmem("store", "check", "--json")
    assert checked.returncode == 3, checked
    found = {(p["snapshot_id"], p["outcome"], p["problem"]) for p in checked.json()["problems"]}
    assert (sid, "signature_mismatch", "signature does not verify") in found
    assert any(s == "0" * 64 and o == "malformed" for s, o, _ in found), found
    # The catalog records the check under the outcome found, not a guess from its wording.
    shown = ok(stigmem("snapshot", "show", sid, "--json")).json()
    checks = [v["outcome"] for v in shown["verifications"] if v["kind"] == "check"]
    assert sorted(checks) == ["ok", "signature_mismatch"]


def test_restore_with_an_unreachable_catalog_changes_nothing(
    stigmem: Runner, stocked: Stocked, other_node: NodeInfo
) -> None:
    # The catalog opens on a background thread while the data is written: its failure must
    # still stop the restore before the rename, with one line and no temporary file left.
    node, sid = stocked.node, stocked.created["id"]
    target = other_node.path
    before, listing = digest(target), tree(target.parent)
    url = f"postgresql+psycopg://nobody@127.0.0.1:{free_port()}/none"
    restored = stigmem(
        "--catalog", url, "snapshot", "restore", sid[:8], "--db", str(target),
        "--trusted-key", node.pubkey,
    )  # fmt: skip
    one_line_error(restored, "catalog", "unreachable")
    assert restored.returncode == 1
    assert digest(target) == before
    assert tree(target.parent) == listing


# ---------------------------------------------------------------- 7: cross-node restore


@pytest.fixture(params=["local", "s3"])
def shared_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """How both nodes reach one store: a URL and its fsspec options (empty for a path)."""
    if request.param == "local":
        yield {"url": str(tmp_path / "shared-store"), "options": {}}
    else:
        endpoint = request.getfixturevalue("s3_endpoint")
        yield {"url": f"s3://{BUCKET}/{tmp_path.name}", "options": s3_options(endpoint)}


def test_cross_node_restore_by_prefix_with_trusted_keys(
    stigmem: Runner,
    home: Path,
    tmp_path: Path,
    node: NodeInfo,
    other_node: NodeInfo,
    shared_store: dict[str, Any],
) -> None:
    home_b = tmp_path / "homeB"
    for h in (home, home_b):
        write_config(h, shared_store["url"], shared_store["options"])
    as_b = {"STIGMEM_HOME": str(home_b)}

    created = create(stigmem, node.path)
    assert created["store"] == shared_store["url"]
    sid = created["id"]

    assert not home_b.joinpath("catalog.db").exists()  # B's catalog knows nothing of A

    wrong_keys = tmp_path / "b-only.json"
    wrong_keys.write_text(json.dumps([other_node.pubkey]))
    before, listing = digest(other_node.path), tree(other_node.path.parent)
    refused = stigmem(
        "snapshot",
        "restore",
        sid[:8],
        "--db",
        str(other_node.path),
        "--trusted-keys",
        str(wrong_keys),
        env=as_b,
    )
    assert refused.returncode == 3, refused
    assert "untrusted_key" in refused.stderr and "Traceback" not in refused.stderr
    assert digest(other_node.path) == before
    assert tree(other_node.path.parent) == listing

    keys = tmp_path / "a-key.json"
    keys.write_text(json.dumps([node.pubkey]))
    restored = stigmem(
        "snapshot",
        "restore",
        sid[:8],
        "--db",
        str(other_node.path),
        "--trusted-keys",
        str(keys),
        "--json",
        env=as_b,
    )
    assert restored.returncode == 0, restored
    assert restored.json()["snapshot_id"] == sid
    assert restored.json()["node_id"] == node.node_id
    assert restored.json()["verification"]["mode"] == "strict"
    assert restored.json()["verification"]["trusted_by"] == "trusted-keys"

    target = other_node.path
    assert digest(target) == created["db_sha256"]
    assert rows(target, "PRAGMA integrity_check") == [("ok",)]
    facts = "SELECT * FROM facts ORDER BY rowid"
    assert rows(target, facts) == rows(node.path, facts)
    assert rows(target, "SELECT value FROM node_meta WHERE key = 'node_id'") == rows(
        node.path, "SELECT value FROM node_meta WHERE key = 'node_id'"
    )


# ---------------------------------------------------------------- 8: export, import


def test_export_is_deterministic_and_imports_with_the_same_id(
    stigmem: Runner, tmp_path: Path, stocked: Stocked
) -> None:
    node, created = stocked.node, stocked.created
    sid = created["id"]
    outs = [tmp_path / "out1", tmp_path / "out2"]
    files = []
    for out in outs:
        out.mkdir()
        exported = stigmem("snapshot", "export", sid[:8], "--out", str(out))
        assert exported.returncode == 0, exported
        files.append(Path(exported.stdout.strip()))
    assert [f.parent for f in files] == outs
    assert files[0].name == files[1].name == created["name"]
    assert files[0].read_bytes() == files[1].read_bytes()
    assert files[0].stat().st_mode & 0o777 == 0o600

    read = ref.read_reference_tarball(files[0], [node.pubkey])
    assert read["snapshot_id"] == sid and read["db_sha256"] == created["db_sha256"]

    other = {"STIGMEM_HOME": str(tmp_path / "homeC")}
    imported = stigmem("snapshot", "import", str(files[0]), "--json", env=other)
    assert imported.returncode == 0, imported
    assert [d["id"] for d in imported.json()] == [sid]
    assert (tmp_path / "homeC" / "store" / "snapshots" / f"{sid}.json").is_file()


def test_reference_tarball_imports_and_restores_by_id(
    stigmem: Runner, tmp_path: Path, node: NodeInfo, other_node: NodeInfo
) -> None:
    (tmp_path / "in").mkdir()
    tarball = ref.write_reference_tarball(
        tmp_path / "in", node.path, SEED_A, node.node_id, node.migrations
    )
    expected = ref.read_reference_tarball(tarball, [node.pubkey])["snapshot_id"]
    imported = stigmem("snapshot", "import", str(tarball), "--trusted-key", node.pubkey, "--json")
    assert imported.returncode == 0, imported
    assert imported.json()[0]["id"] == expected and imported.json()[0]["imported"] is True
    restored = stigmem(
        "snapshot", "restore", expected, "--db", str(other_node.path), "--trusted-key", node.pubkey
    )
    assert restored.returncode == 0, restored
    assert digest(other_node.path) == digest(node.path)


# ---------------------------------------------------------------- 9: unusable stores


def test_directory_that_is_not_a_store(
    stigmem: Runner, tmp_path: Path, node: NodeInfo, other_node: NodeInfo
) -> None:
    not_store = tmp_path / "documents"
    not_store.mkdir()
    (not_store / "notes.txt").write_text("not a store\n")
    (not_store / "snapshots").mkdir()
    env = {"STIGMEM_STORE_URL": str(not_store)}
    listing = tree(not_store)
    target_before = digest(other_node.path)
    for args in (
        ["snapshot", "create", "--db", str(node.path)],
        ["store", "stats", "--json"],
        ["snapshot", "restore", "abcdef12", "--db", str(other_node.path)],
    ):
        result = stigmem(*args, env=env)
        one_line_error(result, str(not_store))
        assert result.returncode == 1, result
        assert tree(not_store) == listing
        assert sorted(p.name for p in not_store.iterdir()) == ["notes.txt", "snapshots"]
    assert digest(other_node.path) == target_before


def test_store_of_a_newer_format_version(
    stigmem: Runner, home: Path, stocked: Stocked, other_node: NodeInfo
) -> None:
    store, node, sid = home / "store", stocked.node, stocked.created["id"]
    config = store / "config.json"
    doc = json.loads(config.read_text())
    doc["version"] += 1
    config.write_text(json.dumps(doc, indent=2))
    listing = tree(store)
    target_before = digest(other_node.path)
    for args in (
        ["snapshot", "create", "--db", str(node.path)],
        ["snapshot", "verify", sid[:8]],
        ["snapshot", "restore", sid[:8], "--db", str(other_node.path)],
    ):
        result = stigmem(*args)
        one_line_error(result, str(store), "version")
        assert tree(store) == listing
    assert digest(other_node.path) == target_before


def test_unreachable_s3_endpoint(
    stigmem: Runner, home: Path, node: NodeInfo, s3_endpoint: str, tmp_path: Path
) -> None:
    url = f"s3://{BUCKET}/{tmp_path.name}"
    # A port nobody listens on: connection refused at once.
    write_config(home, url, s3_options(f"http://127.0.0.1:{free_port()}"))
    bucket_before = bucket_listing(s3_endpoint, "")
    home_before = tree(home)
    for args in (["snapshot", "create", "--db", str(node.path)], ["store", "stats"]):
        result = stigmem(*args)
        one_line_error(result, url)
        assert result.returncode == 1, result
    assert bucket_listing(s3_endpoint, "") == bucket_before
    assert tree(home) == home_before


# Run in its own process: moto reads INITIAL_NO_AUTH_ACTION_COUNT when imported, and its auth
# is process-wide, so the shared S3 server cannot check credentials. The first requests are
# free (bucket, user, policy, key); from then on every request must be signed by a known key.
_AUTH_SERVER = """
import json, os, sys
os.environ["INITIAL_NO_AUTH_ACTION_COUNT"] = "4"
try:
    import boto3
    from moto.server import ThreadedMotoServer
    port = int(sys.argv[1])
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    def client(service, key="any", secret="any"):
        return boto3.client(service, endpoint_url=endpoint, region_name="us-east-1",
                            aws_access_key_id=key, aws_secret_access_key=secret)
    client("s3").create_bucket(Bucket=sys.argv[2])
    iam = client("iam")
    iam.create_user(UserName="backup")
    iam.put_user_policy(UserName="backup", PolicyName="all", PolicyDocument=json.dumps(
        {"Version": "2012-10-17",
         "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
    made = iam.create_access_key(UserName="backup")["AccessKey"]
    try:  # the free requests are used up: an unknown key must now be refused
        client("s3", "AKIAUNKNOWNUNKNOWN00", "x").list_objects_v2(Bucket=sys.argv[2])
        raise SystemExit("moto accepted an unknown key")
    except boto3.exceptions.botocore.exceptions.ClientError:
        pass
    print(json.dumps({"endpoint": endpoint, "key": made["AccessKeyId"],
                      "secret": made["SecretAccessKey"]}), flush=True)
except BaseException as exc:
    print(f"cannot start: {type(exc).__name__}: {exc}", flush=True)
    raise SystemExit(1)
sys.stdin.read()  # serve until the test closes our stdin
server.stop()
"""


@pytest.fixture(scope="module")
def s3_with_auth() -> Iterator[dict[str, str]]:
    """A second moto server that checks credentials; yields its endpoint and a valid key."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _AUTH_SERVER, str(free_port()), BUCKET],
        stdout=subprocess.PIPE,
        stdin=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdin is not None
    line = proc.stdout.readline()  # blocks until the server is ready or the script failed
    if not line.startswith("{"):
        proc.kill()
        proc.wait()
        pytest.skip(f"moto S3 server with authentication cannot start: {line.strip()!r}")
    try:
        yield json.loads(line)
    finally:
        proc.stdin.close()  # the server stops when its stdin closes
        proc.wait(timeout=30)


def test_bad_s3_credentials(
    stigmem: Runner, home: Path, node: NodeInfo, tmp_path: Path, s3_with_auth: dict[str, str]
) -> None:
    endpoint = s3_with_auth["endpoint"]
    good = (s3_with_auth["key"], s3_with_auth["secret"])
    url = f"s3://{BUCKET}/{tmp_path.name}"
    # The good key works: a store is there with one snapshot (proves the setup, not the bug).
    write_config(home, url, {**s3_options(endpoint), "key": good[0], "secret": good[1]})
    create(stigmem, node.path)
    before = bucket_listing(endpoint, "", *good)
    assert any(k.startswith(f"{tmp_path.name}/snapshots/") for k in before)

    write_config(
        home, url, {**s3_options(endpoint), "key": "AKIAWRONGWRONGWRONG0", "secret": "wrong"}
    )
    for args in (["snapshot", "create", "--db", str(node.path)], ["store", "stats"]):
        result = stigmem(*args)
        one_line_error(result, url)
        assert result.returncode == 1, result
    assert bucket_listing(endpoint, "", *good) == before
