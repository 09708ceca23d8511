"""A hostile store, through the console script: every command an operator runs against it
(restore, verify, export, store check, gc, prune, unlock, stats, list) either does its job on
the signed bytes or refuses in one line (exit 3 for snapshot content, 1 otherwise), never an
internal error, never more than 300 MiB of memory, and never changes the restore target,
writes an export, or touches a file outside the store.

Each test starts from a copy of one seeded store holding two snapshots of a node (OLD and
NEW), on a local directory and on S3 (moto's server through s3fs, as a tier's
storage_options); layouts made of links exist on local stores only. The store-level side is
tests/store/test_hostile_store.py.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import sqlite3
import struct
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import zstandard

from tests.cli.test_store_cli import toml_value
from tests.conftest import BUCKET, clean_env, run_in_process, s3_options
from tests.nodegen import make_node_db

SEED_KEY = bytes(range(32))
DB = "artifacts/stigmem.db"
MAX_RSS_KIB = 300 * 1024
TIME = Path("/usr/bin/time")


@dataclasses.dataclass(frozen=True)
class Ran:
    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    rss_kib: int | None

    def __repr__(self) -> str:
        return (
            f"stigmem {' '.join(self.args)} -> {self.returncode} ({self.rss_kib} KiB)\n"
            f"--- stdout\n{self.stdout[-2000:]}\n--- stderr\n{self.stderr[-2000:]}"
        )


def run(home: Path, *args: str) -> Ran:
    """``stigmem ARGS`` in a process of its own, its peak RSS measured by /usr/bin/time."""
    rss_file = home.parent / f"rss-{uuid.uuid4().hex}"
    prefix = [str(TIME), "-f", "%M", "-o", str(rss_file)] if TIME.exists() else []
    proc = subprocess.run(
        [*prefix, sys.executable, "-m", "cli", *args],
        env=clean_env(home),
        cwd=home,
        capture_output=True,
        text=True,
        timeout=300,
    )
    rss = int(rss_file.read_text().split()[-1]) if rss_file.exists() else None
    return Ran(tuple(args), proc.returncode, proc.stdout, proc.stderr, rss)


def refused(result: Ran, code: int) -> None:
    """Exit ``code`` with one line (on stderr; verify gives its verdict on stdout), nothing
    of a crash."""
    assert result.returncode == code, result
    said = result.stderr.strip() or result.stdout.strip()
    assert len(said.splitlines()) == 1, result
    sane(result)


def sane(result: Ran) -> None:
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr, result
    assert result.rss_kib is None or result.rss_kib < MAX_RSS_KIB, result


# ---------------------------------------------------------------- the store, either kind


class Files:
    """The store's objects by path relative to its root, on a local directory or S3."""

    def __init__(self, root: str, options: dict[str, Any]) -> None:
        self.root = root
        self.fs: Any = None
        if options:
            import s3fs

            self.fs = s3fs.S3FileSystem(**options)
            self.root = root.removeprefix("s3://")

    @property
    def local(self) -> Path:
        assert self.fs is None
        return Path(self.root)

    def read(self, path: str) -> bytes:
        if self.fs is None:
            return (self.local / path).read_bytes()
        data: bytes = self.fs.cat_file(f"{self.root}/{path}")
        return data

    def write(self, path: str, data: bytes) -> None:
        if self.fs is None:
            (self.local / path).parent.mkdir(parents=True, exist_ok=True)
            (self.local / path).write_bytes(data)
        else:
            self.fs.pipe_file(f"{self.root}/{path}", data)

    def listing(self) -> dict[str, str]:
        """path -> content hash of every object but locks (what 'nothing changed' means)."""
        if self.fs is None:
            found = {
                p.relative_to(self.local).as_posix(): p
                for p in self.local.rglob("*")
                if p.is_file() and not p.is_symlink()
            }
            return {
                k: hashlib.sha256(p.read_bytes()).hexdigest()
                for k, p in found.items()
                if not k.startswith("locks/")
            }
        self.fs.invalidate_cache()
        out = {}
        for full in self.fs.find(self.root):
            rel = full[len(self.root) + 1 :]
            if not rel.startswith("locks/"):
                out[rel] = hashlib.sha256(self.fs.cat_file(full)).hexdigest()
        return out

    def names(self, folder: str) -> list[str]:
        return sorted(p for p in self.listing() if p.startswith(folder + "/"))


@dataclasses.dataclass
class Seed:
    home: Path
    node: Path
    old: str
    new: str


@dataclasses.dataclass
class Hostile:
    home: Path
    files: Files
    node: Path
    old: str
    new: str
    kind: str
    # Where memory is what a hostile object attacks, each command runs in a process of its
    # own and its peak RSS is held to MAX_RSS_KIB; elsewhere the commands run in-process.
    measure: bool = False

    def run(self, *args: str) -> Ran:
        if self.measure:
            return run(self.home, *args)
        result = run_in_process(tuple(args), clean_env(self.home), self.home, None)
        return Ran(result.args, result.returncode, result.stdout, result.stderr, None)

    def measured(self) -> Hostile:
        return dataclasses.replace(self, measure=True)


def _seed(root: Path, url: str | None, options: dict[str, Any]) -> Seed:
    home = root / "home"
    home.mkdir(parents=True)
    if url is not None:
        write_tier(home, url, options)
    node = make_node_db(root / "node" / "stigmem.db", size_mb=0.5, seed=1, privkey_seed=SEED_KEY)
    ids = []
    for step in range(2):
        if step:
            con = sqlite3.connect(node.path)
            con.execute("CREATE TABLE hostile_extra (x TEXT)")
            con.executemany("INSERT INTO hostile_extra VALUES (?)", [("v" * 200,)] * 2000)
            con.commit()
            con.close()
        made = run(home, "snapshot", "create", "--db", str(node.path), "--json")
        assert made.returncode == 0, made
        ids.append(json.loads(made.stdout)["id"])
    return Seed(home, node.path, ids[0], ids[1])


def write_tier(home: Path, url: str, options: dict[str, Any]) -> None:
    lines = ["[tiers.shared]", f"store = {toml_value(url)}", "", "[tiers.shared.storage_options]"]
    lines += [f"{k} = {toml_value(v)}" for k, v in options.items()]
    (home / "config.toml").write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def local_seed(tmp_path_factory: pytest.TempPathFactory) -> Seed:
    return _seed(tmp_path_factory.mktemp("local-seed"), None, {})


@pytest.fixture(scope="module")
def s3_seed(tmp_path_factory: pytest.TempPathFactory, s3_endpoint: str) -> tuple[Seed, str]:
    url = f"s3://{BUCKET}/seed-{uuid.uuid4().hex}"
    return _seed(tmp_path_factory.mktemp("s3-seed"), url, s3_options(s3_endpoint)), url


def _copy(seed: Seed, tmp_path: Path) -> tuple[Path, Path]:
    home = tmp_path / "home"
    shutil.copytree(seed.home, home)
    node = tmp_path / "node" / "stigmem.db"
    node.parent.mkdir()
    shutil.copy2(seed.node, node)
    return home, node


@pytest.fixture(params=["local", "s3"])
def hostile(request: pytest.FixtureRequest, tmp_path: Path) -> Hostile:
    """This test's own copy of the seeded store (and catalog, and node database)."""
    if request.param == "local":
        seed: Seed = request.getfixturevalue("local_seed")
        home, node = _copy(seed, tmp_path)
        return Hostile(home, Files(str(home / "store"), {}), node, seed.old, seed.new, "local")
    seed, seed_url = request.getfixturevalue("s3_seed")
    options = s3_options(request.getfixturevalue("s3_endpoint"))
    home, node = _copy(seed, tmp_path)
    url = f"s3://{BUCKET}/{uuid.uuid4().hex}"
    files = Files(url, options)
    files.fs.copy(seed_url.removeprefix("s3://"), files.root, recursive=True)
    write_tier(home, url, options)
    return Hostile(home, files, node, seed.old, seed.new, "s3")


@pytest.fixture
def local(local_seed: Seed, tmp_path: Path) -> Hostile:
    home, node = _copy(local_seed, tmp_path)
    return Hostile(
        home, Files(str(home / "store"), {}), node, local_seed.old, local_seed.new, "local"
    )


# ---------------------------------------------------------------- the commands


def document(h: Hostile, sid: str) -> Any:
    return json.loads(h.files.read(f"snapshots/{sid}.json"))


def put_document(h: Hostile, sid: str, doc: Any) -> None:
    h.files.write(f"snapshots/{sid}.json", json.dumps(doc).encode())


def restore_refused(h: Hostile, code: int) -> None:
    """A restore of NEW refused, the target and its folder untouched."""
    before = {p.name: p.read_bytes() for p in h.node.parent.iterdir()}
    refused(h.run("snapshot", "restore", h.new, "--db", str(h.node)), code)
    assert {p.name: p.read_bytes() for p in h.node.parent.iterdir()} == before


def export_refused(h: Hostile, code: int) -> None:
    out = h.home.parent / "exports"
    out.mkdir(exist_ok=True)
    refused(h.run("snapshot", "export", h.new, "--out", str(out)), code)
    assert list(out.iterdir()) == []


def reads_refused(h: Hostile, code: int) -> None:
    """restore, verify, export of NEW and a full store check all refuse."""
    restore_refused(h, code)
    refused(h.run("snapshot", "verify", h.new), code)
    export_refused(h, code)
    check_fails(h, code, "--read-data-subset", "100%")


def check_fails(h: Hostile, code: int, *options: str) -> None:
    """``store check`` fails: a line per problem naming NEW (exit 3), or one line naming
    what stops the whole check (exit 1)."""
    checked = h.run("store", "check", *options)
    assert checked.returncode == code, checked
    sane(checked)
    if code == 3:
        assert f"FAIL: {h.new}: " in checked.stdout, checked
    else:
        refused(checked, code)


def deleting_refused(h: Hostile) -> None:
    """gc and prune refuse while the store is hostile, and delete nothing."""
    before = h.files.listing()
    refused(h.run("store", "gc"), 1)
    refused(h.run("snapshot", "prune", "--keep-last", "1"), 1)
    assert h.files.listing() == before


def harmless(h: Hostile) -> None:
    """What neither reads snapshot data nor deletes any still works, or refuses cleanly."""
    for args in (("store", "unlock"), ("store", "stats"), ("snapshot", "list")):
        sane(h.run(*args))


def old_still_restores(h: Hostile) -> None:
    restored = h.run("snapshot", "restore", h.old, "--db", str(h.node))
    assert restored.returncode == 0, restored
    sane(restored)


# ---------------------------------------------------------------- documents


def test_a_document_copied_over_another_snapshots_name(hostile: Hostile) -> None:
    h = hostile
    h.files.write(f"snapshots/{h.new}.json", h.files.read(f"snapshots/{h.old}.json"))
    reads_refused(h, 3)
    check_fails(h, 3)
    deleting_refused(h)
    harmless(h)
    old_still_restores(h)
    reindexed = h.run("catalog", "reindex", "--json")
    assert reindexed.returncode == 0, reindexed
    assert [line.split(":")[0] for line in json.loads(reindexed.stdout)["skipped"]] == [h.new]


Forge = Callable[[dict[str, Any], dict[str, Any]], None]
FORGERIES: dict[str, tuple[Forge, int]] = {
    "no-artifacts": (lambda doc, old: doc["artifacts"].clear(), 3),
    "size-plus-a-page": (
        lambda doc, old: doc["artifacts"][DB].update(size=doc["artifacts"][DB]["size"] + 4096),
        3,
    ),
    "size-less-a-byte": (
        lambda doc, old: doc["artifacts"][DB].update(size=doc["artifacts"][DB]["size"] - 1),
        3,
    ),
    "size-2**62": (lambda doc, old: doc["artifacts"][DB].update(size=2**62), 3),
    "chunks-of-another-snapshot": (
        lambda doc, old: doc["artifacts"].update({DB: old["artifacts"][DB]}),
        3,
    ),
}


@pytest.mark.parametrize("forgery", sorted(FORGERIES))
def test_a_forged_document_never_restores_other_bytes(hostile: Hostile, forgery: str) -> None:
    h = hostile
    forge, code = FORGERIES[forgery]
    doc = document(h, h.new)
    forge(doc, document(h, h.old))
    put_document(h, h.new, doc)
    reads_refused(h, code)
    harmless(h)
    old_still_restores(h)


def test_a_truncated_document(hostile: Hostile) -> None:
    h = hostile
    path = f"snapshots/{h.new}.json"
    h.files.write(path, h.files.read(path)[:-7])
    reads_refused(h, 3)
    deleting_refused(h)
    harmless(h)


def test_a_document_of_two_million_chunks_is_refused_within_the_memory_bound(
    local: Hostile,
) -> None:
    h = local.measured()
    doc = document(h, h.new)
    doc["artifacts"][DB] = {
        "size": 1 << 40,
        "chunk_lists": False,
        "chunks": ["ab" * 32] * 2_000_000,
    }
    put_document(h, h.new, doc)
    reads_refused(h, 3)
    deleting_refused(h)


# ---------------------------------------------------------------- index and packs


def zstd_bomb(size: int, head: bytes) -> bytes:
    compressor = zstandard.ZstdCompressor(level=1).compressobj()
    zeros = bytes(64 << 20)
    pieces = [compressor.compress(head)]
    pieces += [compressor.compress(zeros) for _ in range(size // len(zeros))]
    return b"".join(pieces) + compressor.flush()


def test_an_index_object_that_is_a_zstd_bomb(hostile: Hostile) -> None:
    h = hostile.measured()
    size = (3 << 30) if h.kind == "local" else (256 << 20)  # 3 GiB once, where it is cheap
    h.files.write("index/" + "0" * 64, zstd_bomb(size, b"stgmidx1"))
    reads_refused(h, 1)
    deleting_refused(h)
    refused(h.run("store", "stats"), 1)


def test_an_index_entry_of_four_gib(hostile: Hostile) -> None:
    h = hostile.measured()
    first_list = document(h, h.new)["artifacts"][DB]["chunks"][0]
    pack = h.files.names("packs")[0].rsplit("/", 1)[1]
    plain = b"stgmidx1" + struct.pack(">I", 1) + bytes.fromhex(pack)
    plain += struct.pack(">32sIIIII", bytes.fromhex(first_list), 0, 0, 100, 0, 0xFFFFFFFF)
    # Named to load first, so its entry would win over the true one.
    h.files.write("index/" + "0" * 64, zstandard.ZstdCompressor().compress(plain))
    reads_refused(h, 1)
    deleting_refused(h)


def test_a_truncated_pack(hostile: Hostile) -> None:
    h = hostile
    for path in h.files.names("packs"):
        h.files.write(path, h.files.read(path)[:200])
    reads_refused(h, 3)


# ---------------------------------------------------------------- config.json


@pytest.mark.parametrize(
    ("section", "field", "value"),
    [
        ("chunking", "pages_per_chunk", 0),
        ("chunk_lists", "hashes_per_list", 0),
        ("compression", "dictionary_size", 2**40),
        (None, "version", -1),
    ],
)
def test_a_config_json_out_of_range(
    hostile: Hostile, section: str | None, field: str, value: int
) -> None:
    # A dictionary size of a TiB attacks memory; the others would divide by zero.
    h = hostile.measured() if field == "dictionary_size" else hostile
    config = json.loads(h.files.read("config.json"))
    (config if section is None else config[section])[field] = value
    h.files.write("config.json", json.dumps(config).encode())
    before = h.files.listing()
    for args in (
        ("snapshot", "restore", h.new, "--db", str(h.node)),
        ("snapshot", "verify", h.new),
        ("store", "check"),
        ("store", "gc"),
        ("store", "unlock"),
        ("store", "stats"),
        ("snapshot", "create", "--db", str(h.node)),
    ):
        result = h.run(*args)
        refused(result, 1)
        assert "config.json" in result.stderr and field in result.stderr, result
    assert h.files.listing() == before


# ---------------------------------------------------------------- locks


@pytest.mark.parametrize("pid", ["1e400", str(2**70), str(-(2**40))])
def test_a_lock_with_an_impossible_pid_stops_nothing(hostile: Hostile, pid: str) -> None:
    h = hostile
    body = f'{{"kind": "exclusive", "host": "elsewhere", "pid": {pid}, "time": 1.0}}'
    h.files.write("locks/exclusive-planted.json", body.encode())
    for args in (("store", "check"), ("store", "gc"), ("store", "stats")):
        result = h.run(*args)
        assert result.returncode == 0, result
        sane(result)
    unlocked = h.run("store", "unlock", "--json")
    assert [
        (lock["name"], lock["readable"]) for lock in json.loads(unlocked.stdout)["removed"]
    ] == [("exclusive-planted.json", False)]


def test_unlock_leaves_what_is_not_named_like_a_lock(hostile: Hostile) -> None:
    h = hostile
    h.files.write("locks/README", b"an operator's note")
    unlocked = h.run("store", "unlock", "--all")
    assert unlocked.returncode == 0, unlocked
    assert h.files.read("locks/README") == b"an operator's note"


# ---------------------------------------------------------------- links (local stores)


def test_links_to_dev_zero(local: Hostile) -> None:
    h = local.measured()
    root = h.files.local
    (root / "packs" / "00").mkdir(exist_ok=True)
    (root / "packs" / "00" / ("00" * 32)).symlink_to("/dev/zero")
    refused(h.run("store", "check", "--read-data-subset", "100%"), 1)
    (root / "locks" / "exclusive-zero.json").symlink_to("/dev/zero")
    checked = h.run("store", "check")
    assert checked.returncode == 0, checked
    unlocked = h.run("store", "unlock")
    assert unlocked.returncode == 0, unlocked
    assert (
        unlocked.stdout == "removed unreadable lock 'exclusive-zero.json' (no lock of this tool)\n"
    )
    assert not (root / "locks" / "exclusive-zero.json").is_symlink()
    restored = h.run("snapshot", "restore", h.new, "--db", str(h.node))
    assert restored.returncode == 0, restored
    (root / "config.json").unlink()
    (root / "config.json").symlink_to("/dev/zero")
    for args in (("store", "stats"), ("snapshot", "verify", h.new), ("store", "unlock")):
        result = h.run(*args)
        refused(result, 1)
        assert "config.json" in result.stderr, result


def outside_folder(h: Hostile, name: str) -> Path:
    """The store's ``name`` folder replaced by a link to a folder outside the store that
    holds an operator's files; returns that folder."""
    outside = h.home.parent / f"outside-{name}"
    outside.mkdir()
    (outside / "precious").write_bytes(b"keep me")
    (outside / "exclusive-1.json").write_bytes(b"not a lock")
    folder = h.files.local / name
    if folder.exists():
        shutil.rmtree(folder)
    folder.symlink_to(outside)
    return outside


def outside_untouched(outside: Path) -> None:
    assert {p.name: p.read_bytes() for p in outside.iterdir()} == {
        "precious": b"keep me",
        "exclusive-1.json": b"not a lock",
    }


def test_a_locks_folder_linked_out_of_the_store(local: Hostile) -> None:
    h = local
    outside = outside_folder(h, "locks")
    for args in (("store", "unlock", "--all"), ("store", "gc"), ("store", "check")):
        result = h.run(*args)
        refused(result, 1)
        assert "link out of the store" in result.stderr, result
    outside_untouched(outside)


def test_a_snapshots_folder_linked_out_of_the_store(local: Hostile) -> None:
    h = local
    outside = outside_folder(h, "snapshots")
    con = sqlite3.connect(h.node)
    con.execute("INSERT INTO hostile_extra VALUES ('one more')")
    con.commit()
    con.close()
    for args in (
        ("snapshot", "create", "--db", str(h.node)),
        ("snapshot", "verify", h.new),
        ("store", "gc"),
    ):
        result = h.run(*args)
        refused(result, 1)
        assert "link out of the store" in result.stderr, result
    outside_untouched(outside)
