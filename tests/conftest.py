"""Fixtures every suite shares: an isolated stigmem environment and two command runners.

``stigmem`` runs the command line in this process, through the same entry point the console
script calls (``cli.main.run``), with its own environment, working directory, stdin, stdout
and stderr: what an operator sees, without an interpreter start per command. ``stigmem_process``
runs the real console script in a process of its own, for what only a process shows: exit
through ``os._exit``, signals, imports at start-up, kill -9.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent


@dataclass
class Result:
    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)

    def __repr__(self) -> str:  # shown by pytest when an assertion fails
        return (
            f"stigmem {' '.join(self.args)} -> {self.returncode}\n"
            f"--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"
        )


Runner = Callable[..., Result]


def ok(result: Result) -> Result:
    """``result``, asserting the command succeeded (its output is shown if not)."""
    assert result.returncode == 0, result
    return result


def clean_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STIGMEM_", "AWS_"))}
    env["STIGMEM_HOME"] = str(home)
    env["PYTHONPATH"] = str(REPO)
    return env


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


def run_in_process(
    args: tuple[str, ...], env: dict[str, str], cwd: Path, input: str | None
) -> Result:
    """``stigmem ARGS`` through ``cli.main.run`` with ``env`` as the whole environment."""
    from click.testing import CliRunner

    from cli.main import run

    overrides: dict[str, str | None] = {k: None for k in os.environ if k not in env}
    overrides.update(env)
    before = os.getcwd()
    os.chdir(cwd)
    try:
        with CliRunner().isolation(input=input, env=overrides) as (stdout, stderr, _):
            code = run(list(args))
            sys.stdout.flush()
            sys.stderr.flush()
            out, err = stdout.getvalue(), stderr.getvalue()
    finally:
        os.chdir(before)
    return Result(args, code, out.decode("utf-8"), err.decode("utf-8", "backslashreplace"))


def run_in_a_process(
    args: tuple[str, ...], env: dict[str, str], cwd: Path, input: str | None
) -> Result:
    """``stigmem ARGS`` as the console script, in a fresh process with ``env``."""
    proc = subprocess.run(
        [sys.executable, "-m", "cli", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        input=input,
        timeout=600,
    )
    return Result(args, proc.returncode, proc.stdout, proc.stderr)


def runner(home: Path, how: Callable[..., Result]) -> Runner:
    base = clean_env(home)

    def run(
        *args: str,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        input: str | None = None,
    ) -> Result:
        return how(tuple(args), {**base, **(env or {})}, cwd or home, input)

    return run


@pytest.fixture
def stigmem(home: Path) -> Runner:
    """Run ``stigmem ARGS`` in this process, with STIGMEM_HOME set to a temp folder."""
    return runner(home, run_in_process)


@pytest.fixture
def stigmem_process(home: Path) -> Runner:
    """Run ``stigmem ARGS`` in a fresh process with STIGMEM_HOME set to a temp folder."""
    return runner(home, run_in_a_process)


# ---------------------------------------------------------------- S3 (moto)

BUCKET = "stigmem-test"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def s3_options(endpoint: str) -> dict[str, Any]:
    """fsspec options for s3fs against ``endpoint``; one attempt, short connect timeout, so a
    dead endpoint fails fast instead of retrying."""
    return {
        "key": "testing",
        "secret": "testing",
        "client_kwargs": {"endpoint_url": endpoint, "region_name": "us-east-1"},
        "config_kwargs": {"retries": {"max_attempts": 1}, "connect_timeout": 2},
    }


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """moto's real HTTP S3 server on 127.0.0.1 with bucket BUCKET; one per test session.

    Skipped (with the reason) when the server cannot start: no S3 here is not a bug of ours.
    """
    try:
        import boto3
        from moto.server import ThreadedMotoServer

        # The server runs in this process, as do the commands: its request log must not reach
        # the stderr a command is given.
        logging.getLogger("werkzeug").disabled = True
        port = free_port()
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        server.start()
        endpoint = f"http://127.0.0.1:{port}"
        boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        ).create_bucket(Bucket=BUCKET)
    except Exception as exc:  # any failure to start means no S3 here, not a store bug
        pytest.skip(f"moto S3 server cannot start: {exc}")
    yield endpoint
    server.stop()


def rows(path: Path, sql: str) -> list[tuple[object, ...]]:
    """The rows a query returns from the SQLite file at ``path`` (a node database, a
    catalog), read with a connection of its own."""
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def write_rotten_database(path: Path) -> bytes:
    """A SQLite file whose header is fine and whose fourth page is not (its b-tree page type
    overwritten), as a torn write or a rotten disk leaves it: ``quick_check`` fails it."""
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (x INTEGER, y TEXT)")
    conn.executemany("INSERT INTO t VALUES (?, ?)", [(i, "v" * 100) for i in range(2000)])
    conn.commit()
    conn.close()
    damaged = bytearray(path.read_bytes())
    damaged[3 * 4096] = 0xFF
    path.write_bytes(damaged)
    return bytes(damaged)


def dead_pid() -> int:
    """The pid of a process that has ended: what a lock left by kill -9 names."""
    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(child.stdout)
