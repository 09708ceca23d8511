"""The host's cache changes how much work a command does, never what it says.

The same catalog and store are copied into three homes; the same commands then run with the
cache as the earlier commands left it, with the cache folder deleted, and with --no-cache,
and say the same thing (once the clock's readings and the home's own path are set aside).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from tests.conftest import Runner, clean_env, ok, run_in_process
from tests.nodegen import apply_churn, make_node_db

SEED = bytes(range(32))
# The clock's readings: when a command ran, not what it found.
VOLATILE = {"at", "last_verified_at", "checkpoint_timestamp"}


def normalised(value: Any, home: Path) -> Any:
    if isinstance(value, dict):
        return {k: normalised(v, home) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [normalised(v, home) for v in value]
    if isinstance(value, str):
        return value.replace(str(home), "HOME")
    return value


def in_home(home: Path, *args: str) -> Any:
    result = run_in_process(tuple(args), clean_env(home), home, None)
    assert result.returncode == 0, result
    return result


def session(home: Path, node_db: Path, sid: str, *flags: str) -> list[Any]:
    """What an operator would run next, and what each command said."""
    said: list[Any] = []
    for args in (
        ("snapshot", "verify", sid, "--json"),
        ("snapshot", "restore", sid, "--db", str(home / "target.db"), "--json"),
        ("snapshot", "list", "--json"),
        ("snapshot", "show", sid, "--json"),
        ("store", "stats", "--json"),
        ("store", "check", "--read-data-subset", "100%", "--json"),
    ):
        said.append(normalised(json.loads(in_home(home, *flags, *args).stdout), home))
    exported = home / "export.tar.gz"
    in_home(home, *flags, "snapshot", "export", sid, "--out", str(exported))
    said.append(exported.read_bytes())
    # A new snapshot, after a day of changes: the same packs whatever the cache held.
    created = json.loads(
        in_home(home, *flags, "snapshot", "create", "--db", str(node_db), "--json").stdout
    )
    said.append({k: created[k] for k in ("db_sha256", "node_id", "signer_key_id")})
    stats = json.loads(in_home(home, *flags, "store", "stats", "--json").stdout)
    said.append(stats)
    return said


def test_deleting_the_cache_or_running_without_it_changes_no_output(
    stigmem: Runner, home: Path, tmp_path: Path
) -> None:
    node = make_node_db(tmp_path / "node.db", size_mb=0.5, seed=4, privkey_seed=SEED)
    ok(stigmem("snapshot", "create", "--db", str(node.path)))
    apply_churn(node.path, day=1)
    sid = ok(stigmem("snapshot", "create", "--db", str(node.path), "--json")).json()["id"]
    ok(stigmem("snapshot", "verify", sid))  # the cache now holds an index, plans and marks
    assert {p.name.split("-")[0] for p in (home / "cache").iterdir()} >= {"index", "checked"}
    apply_churn(node.path, day=2)

    homes = {}
    for mode in ("cached", "deleted", "disabled"):
        homes[mode] = tmp_path / mode
        shutil.copytree(home, homes[mode])
        shutil.copy(node.path, homes[mode] / "node.db")
    shutil.rmtree(homes["deleted"] / "cache")
    shutil.rmtree(homes["disabled"] / "cache")

    cached = session(homes["cached"], homes["cached"] / "node.db", sid)
    deleted = session(homes["deleted"], homes["deleted"] / "node.db", sid)
    disabled = session(homes["disabled"], homes["disabled"] / "node.db", sid, "--no-cache")

    assert deleted == cached
    assert disabled == cached
    assert (homes["deleted"] / "cache").is_dir()  # made again as the commands ran
    assert not (homes["disabled"] / "cache").exists()


def test_the_config_can_turn_the_cache_off(stigmem: Runner, home: Path, tmp_path: Path) -> None:
    (home / "config.toml").write_text("[cache]\nenabled = false\n")
    node = make_node_db(tmp_path / "node.db", size_mb=0.2, seed=5, privkey_seed=SEED)
    sid = ok(stigmem("snapshot", "create", "--db", str(node.path), "--json")).json()["id"]
    ok(stigmem("snapshot", "restore", sid, "--db", str(tmp_path / "target.db")))
    assert not (home / "cache").exists()

    (home / "config.toml").write_text("[cache]\nenabled = 'no'\n")
    refused = stigmem("store", "stats")
    assert refused.returncode == 1
    assert "cache.enabled" in refused.stderr and "expected true or false" in refused.stderr


def test_prune_takes_the_check_marks_of_what_it_removed(
    stigmem: Runner, home: Path, tmp_path: Path
) -> None:
    node = make_node_db(tmp_path / "node.db", size_mb=0.2, seed=6, privkey_seed=SEED)
    digests = []
    for day in range(3):
        apply_churn(node.path, day=day + 1)
        created = ok(stigmem("snapshot", "create", "--db", str(node.path), "--json")).json()
        digests.append(created["db_sha256"].removeprefix("sha256:"))
    marks = home / "cache" / "checked"
    assert {p.name for p in marks.iterdir()} == set(digests)

    ok(stigmem("snapshot", "prune", "--keep-last", "1"))

    assert {p.name for p in marks.iterdir()} == {digests[-1]}
