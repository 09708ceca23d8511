"""``[hooks]``: a ping URL told when create, sync and prune start and how they ended, and a
command given the same JSON; neither may ever change what the command does."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Runner, free_port, ok
from tests.nodegen import make_node_db

BODY_KEYS = {
    "version",
    "event",
    "outcome",
    "exit_code",
    "host",
    "started_at",
    "finished_at",
    "seconds",
    "detail",
}


@dataclass
class Ping:
    method: str
    path: str
    body: Any


@dataclass
class PingServer:
    """A healthchecks.io stand-in on 127.0.0.1: records every request; while ``hang`` is
    set, answers none of them until ``release`` is set."""

    url: str
    pings: list[Ping] = field(default_factory=list)
    hang: bool = False
    release: threading.Event = field(default_factory=threading.Event)

    def paths(self) -> list[tuple[str, str]]:
        return [(p.method, p.path) for p in self.pings]


@pytest.fixture
def ping_server() -> Iterator[PingServer]:
    state = PingServer("")
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def answer(self, body: Any) -> None:
            if state.hang:
                state.release.wait()
            with lock:
                state.pings.append(Ping(self.command, self.path, body))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"OK")

        def do_GET(self) -> None:  # (http.server's names)
            self.answer(None)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            self.answer(json.loads(self.rfile.read(length)))

        def log_message(self, format: str, *args: Any) -> None:
            pass  # not on the stderr a command is given

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/ping/3f1a"
    try:
        yield state
    finally:
        state.release.set()
        server.shutdown()
        server.server_close()
        thread.join()


def write_hooks(
    home: Path,
    ping_url: str | None = None,
    command: str | None = None,
    timeout: str = "10s",
    tiers: str = "",
) -> None:
    lines = [tiers, "[hooks]", f'timeout = "{timeout}"']
    if ping_url is not None:
        lines.append(f"ping_url = {json.dumps(ping_url)}")
    if command is not None:
        lines.append(f"command = {json.dumps(command)}")
    (home / "config.toml").write_text("\n".join(lines) + "\n")


def assert_body(body: Any, event: str, outcome: str, exit_code: int) -> None:
    assert set(body) == BODY_KEYS
    assert body["version"] == 1
    assert (body["event"], body["outcome"], body["exit_code"]) == (event, outcome, exit_code)
    assert isinstance(body["host"], str) and body["host"]
    started = datetime.fromisoformat(body["started_at"])
    finished = datetime.fromisoformat(body["finished_at"])
    assert started.utcoffset() is not None and started <= finished
    assert 0 <= body["seconds"] <= (finished - started).total_seconds() + 0.01


@pytest.fixture
def node_db(tmp_path: Path) -> Path:
    db = tmp_path / "node.db"
    make_node_db(db, size_mb=0.2)
    return db


def test_create_pings_start_then_success_with_its_result(
    stigmem: Runner, home: Path, node_db: Path, ping_server: PingServer
) -> None:
    write_hooks(home, ping_url=ping_server.url)
    created = ok(stigmem("snapshot", "create", "--db", str(node_db), "--json"))
    assert created.stderr == ""  # a hook that worked says nothing

    assert ping_server.paths() == [("GET", "/ping/3f1a/start"), ("POST", "/ping/3f1a")]
    body = ping_server.pings[1].body
    assert_body(body, "create", "success", 0)
    # The detail is the command's own --json document: ids and digests, no key material.
    assert body["detail"] == created.json()
    assert body["detail"]["id"] in ok(stigmem("snapshot", "list", "--json")).stdout


def test_failing_create_pings_fail_and_exits_as_without_hooks(
    stigmem: Runner, home: Path, tmp_path: Path, ping_server: PingServer
) -> None:
    missing = tmp_path / "no-such.db"
    without = stigmem("snapshot", "create", "--db", str(missing))
    assert without.returncode != 0

    write_hooks(home, ping_url=ping_server.url)
    result = stigmem("snapshot", "create", "--db", str(missing))
    assert (result.returncode, result.stdout, result.stderr) == (
        without.returncode,
        without.stdout,
        without.stderr,
    )
    assert ping_server.paths() == [("GET", "/ping/3f1a/start"), ("POST", "/ping/3f1a/fail")]
    body = ping_server.pings[1].body
    assert_body(body, "create", "failure", without.returncode)
    # The one-line error the operator sees on stderr, without the "stigmem: " prefix.
    assert f"stigmem: {body['detail']}" == without.stderr.strip()
    assert str(missing) in body["detail"]


def test_sync_and_prune_ping_with_their_results(
    stigmem: Runner, home: Path, tmp_path: Path, node_db: Path, ping_server: PingServer
) -> None:
    tiers = (
        f'default_tier = "local"\n[tiers.local]\nstore = {json.dumps(str(tmp_path / "a"))}\n'
        f"keep_last = 1\n[tiers.offsite]\nstore = {json.dumps(str(tmp_path / 'b'))}\n"
    )
    write_hooks(home, ping_url=ping_server.url + "/", tiers=tiers)  # a trailing / is fine
    first = ok(stigmem("snapshot", "create", "--db", str(node_db), "--json")).json()
    second = ok(stigmem("snapshot", "create", "--db", str(node_db), "--json")).json()
    del ping_server.pings[:]

    synced = ok(stigmem("store", "sync", "--to", "offsite", "--json"))
    assert ping_server.paths() == [("GET", "/ping/3f1a/start"), ("POST", "/ping/3f1a")]
    body = ping_server.pings[1].body
    assert_body(body, "sync", "success", 0)
    assert body["detail"] == synced.json()
    assert body["detail"]["snapshots_copied"] == 2
    del ping_server.pings[:]

    pruned = ok(stigmem("snapshot", "prune", "--json")).json()
    assert pruned["removed"] == [first["id"]]
    assert ping_server.paths() == [("GET", "/ping/3f1a/start"), ("POST", "/ping/3f1a")]
    body = ping_server.pings[1].body
    assert_body(body, "prune", "success", 0)
    # The --json document without its per-snapshot plan, with the plan's counts.
    assert body["detail"] == {
        "tier": "local",
        "dry_run": False,
        "policy": {"keep_last": 1},
        "snapshots": 2,
        "to_remove": 1,
        "removed": [first["id"]],
        "retained": [],
        "bytes_freed": pruned["bytes_freed"],
    }
    assert second["id"] not in json.dumps(body)
    del ping_server.pings[:]

    # A prune that fails (no rule at all for the offsite tier) pings /fail.
    failed = stigmem("snapshot", "prune", "--tier", "offsite")
    assert failed.returncode != 0
    assert ping_server.paths() == [("GET", "/ping/3f1a/start"), ("POST", "/ping/3f1a/fail")]
    assert_body(ping_server.pings[1].body, "prune", "failure", failed.returncode)
    assert f"stigmem: {ping_server.pings[1].body['detail']}" == failed.stderr.strip()


def test_a_ping_server_that_is_down_never_fails_the_backup(
    stigmem: Runner, home: Path, node_db: Path
) -> None:
    write_hooks(home, ping_url=f"http://127.0.0.1:{free_port()}/ping/3f1a")
    created = ok(stigmem("snapshot", "create", "--db", str(node_db), "--json"))
    assert created.json()["id"] in ok(stigmem("snapshot", "list", "--json")).stdout
    assert "WARNING: hook: ping /start failed" in created.stderr
    assert "WARNING: hook: ping / failed" in created.stderr


def test_a_ping_server_that_never_answers_delays_by_the_timeout_at_most(
    stigmem: Runner, home: Path, node_db: Path, ping_server: PingServer
) -> None:
    ok(stigmem("snapshot", "create", "--db", str(node_db)))  # imports done, store made
    write_hooks(home, ping_url=ping_server.url, timeout="1s")
    ping_server.hang = True
    began = time.monotonic()
    created = ok(stigmem("snapshot", "create", "--db", str(node_db), "--json"))
    took = time.monotonic() - began
    assert took < 5, took
    assert created.json()["id"] in ok(stigmem("snapshot", "list", "--json")).stdout
    assert "WARNING: hook: ping / failed: timed out" in created.stderr


HOOK_SCRIPT = """\
import json, os, sys
with open(sys.argv[1], "w") as out:
    json.dump({"stdin": sys.stdin.read(), "env": dict(os.environ)}, out)
sys.exit(int(sys.argv[2]))
"""


def hook_command(tmp_path: Path, exit_code: int = 0) -> tuple[str, Path]:
    script = tmp_path / "hook.py"
    script.write_text(HOOK_SCRIPT)
    received = tmp_path / "received.json"
    return f"'{sys.executable}' '{script}' '{received}' {exit_code}", received


def test_the_command_gets_the_json_and_the_outcome_and_no_secrets(
    stigmem: Runner, home: Path, tmp_path: Path, node_db: Path
) -> None:
    command, received = hook_command(tmp_path)
    write_hooks(home, command=command)
    secrets = {
        "STIGMEM_WRITER_KEY": str(tmp_path / "writer.key"),
        "STIGMEM_STORE_KEY": str(tmp_path / "store.key"),
        "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI",
        "AWS_SESSION_TOKEN": "FwoGZXIvYXdzE",
        "PGPASSWORD": "hunter2",
        "BORG_PASSPHRASE": "correct horse",
    }
    out = tmp_path / "out"
    out.mkdir()
    created = ok(
        stigmem(
            "snapshot",
            "create",
            "--db",
            str(node_db),
            "--no-store",
            "--out",
            str(out),
            "--json",
            env={**secrets, "HOOK_CANARY": "seen"},
        )
    )
    assert created.stderr == ""
    got = json.loads(received.read_text())
    body = json.loads(got["stdin"])
    assert_body(body, "create", "success", 0)
    assert body["detail"] == created.json()
    env = got["env"]
    assert (env["STIGMEM_EVENT"], env["STIGMEM_OUTCOME"]) == ("create", "success")
    assert env["HOOK_CANARY"] == "seen"
    assert not set(secrets) & set(env)
    assert not any(value in got["stdin"] for value in secrets.values())


def test_the_command_is_told_of_a_failure_and_its_own_failure_is_a_warning(
    stigmem: Runner, home: Path, tmp_path: Path
) -> None:
    command, received = hook_command(tmp_path, exit_code=3)
    write_hooks(home, command=command)
    missing = tmp_path / "no-such.db"
    result = stigmem("snapshot", "create", "--db", str(missing))
    assert result.returncode == 1
    got = json.loads(received.read_text())
    body = json.loads(got["stdin"])
    assert_body(body, "create", "failure", 1)
    assert str(missing) in body["detail"]
    assert (got["env"]["STIGMEM_EVENT"], got["env"]["STIGMEM_OUTCOME"]) == ("create", "failure")
    assert "WARNING: hook: command exited with 3" in result.stderr
    assert result.stderr.strip().endswith(f"stigmem: {body['detail']}")


def test_a_command_that_hangs_is_killed_after_the_timeout(
    stigmem: Runner, home: Path, node_db: Path
) -> None:
    ok(stigmem("snapshot", "create", "--db", str(node_db)))  # imports done, store made
    write_hooks(home, command="cat > /dev/null; exec sleep 60", timeout="1s")
    began = time.monotonic()
    created = ok(stigmem("snapshot", "create", "--db", str(node_db), "--json"))
    assert time.monotonic() - began < 5
    assert created.json()["id"]
    assert "WARNING: hook: command killed after 1s" in created.stderr


def test_no_hooks_no_requests(
    stigmem: Runner, home: Path, node_db: Path, ping_server: PingServer
) -> None:
    (home / "config.toml").write_text("[cache]\nenabled = true\n")
    created = ok(stigmem("snapshot", "create", "--db", str(node_db)))
    assert created.stderr == ""
    assert ping_server.pings == []
