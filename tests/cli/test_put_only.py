"""A node whose S3 credentials may only put, get and list: create and sync work day after
day, nothing it runs deletes or overwrites an object, and a prune with its credentials fails
with one line and deletes nothing; a curator's credentials then prune.

The S3 server is moto's, run with IAM enforcement (its own process: the setting is read when
moto starts), with two IAM users made through its IAM API.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from store import layout
from store.repository import Store
from tests.conftest import Runner, ok
from tests.nodegen import apply_churn, make_node_db
from tests.store.history import live_placements, write_config

BUCKET = "stigmem-put-only"
# Bucket, users, policies and keys are made before IAM is enforced; then every request is.
SETUP_REQUESTS = 12


@pytest.fixture(scope="module")
def iam_s3() -> Iterator[dict[str, dict[str, Any]]]:
    """Storage options for a node (put, get, list) and a curator (everything)."""
    try:
        import boto3
    except ImportError as exc:
        pytest.skip(f"boto3 (moto[server]) is not installed: {exc}")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = dict(os.environ, INITIAL_NO_AUTH_ACTION_COUNT=str(SETUP_REQUESTS))
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.skip("moto server with IAM enforcement did not start")
                time.sleep(0.05)  # polling for the server's port; nothing else waits on it
        root = {
            "endpoint_url": endpoint,
            "aws_access_key_id": "testing",
            "aws_secret_access_key": "testing",
            "region_name": "us-east-1",
        }
        boto3.client("s3", **root).create_bucket(Bucket=BUCKET)
        iam = boto3.client("iam", **root)
        resources = [f"arn:aws:s3:::{BUCKET}", f"arn:aws:s3:::{BUCKET}/*"]
        # What AWS checks for reading, writing and listing is s3:GetObject, s3:PutObject and
        # s3:ListBucket; moto checks some calls by their own name (HEAD, ListObjectsV2).
        node_actions = [
            "s3:GetObject",
            "s3:PutObject",
            "s3:ListBucket",
            "s3:HeadObject",
            "s3:HeadBucket",
            "s3:ListObjects",
            "s3:ListObjectsV2",
        ]
        options = {}
        for user, actions in (("node", node_actions), ("curator", ["s3:*"])):
            iam.create_user(UserName=user)
            policy = {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": actions, "Resource": resources}],
            }
            arn = iam.create_policy(PolicyName=user, PolicyDocument=json.dumps(policy))["Policy"][
                "Arn"
            ]
            iam.attach_user_policy(UserName=user, PolicyArn=arn)
            key = iam.create_access_key(UserName=user)["AccessKey"]
            options[user] = {
                "key": key["AccessKeyId"],
                "secret": key["SecretAccessKey"],
                "client_kwargs": {"endpoint_url": endpoint, "region_name": "us-east-1"},
                "config_kwargs": {"retries": {"max_attempts": 1}, "connect_timeout": 2},
            }
        yield options
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def objects(url: str, options: dict[str, Any]) -> dict[str, int]:
    store = Store.open(url, options)
    return {e.path: e.size for e in store.backend.list() if not e.path.startswith("locks/")}


def test_a_put_only_node_creates_and_syncs_and_cannot_prune(
    stigmem: Runner, home: Path, tmp_path: Path, iam_s3: dict[str, dict[str, Any]]
) -> None:
    offsite_url = f"s3://{BUCKET}/fleet"
    local_url = str(tmp_path / "local")
    tiers = {
        "local": {"store": local_url, "keep_last": 5},
        "offsite": {"store": offsite_url, "keep_last": 5, "storage_options": iam_s3["node"]},
    }
    write_config(home / "config.toml", tiers)
    db = tmp_path / "node" / "stigmem.db"
    db.parent.mkdir()
    make_node_db(db, size_mb=0.2, seed=9)
    ok(stigmem("store", "init", "--tier", "offsite"))
    seen: dict[str, int] = {}
    for day in range(30):
        apply_churn(db, day + 1, seed=9, scale=0.1)
        tier = "offsite" if day % 3 == 0 else "local"
        ok(stigmem("snapshot", "create", "--db", str(db), "--tier", tier))
        if day % 10 == 9:
            ok(stigmem("store", "sync", "--to", "offsite"))
        now = objects(offsite_url, iam_s3["curator"])
        # Only ever added: no object went away or changed size.
        assert all(now.get(path) == size for path, size in seen.items())
        seen = now
    ok(stigmem("store", "check", "--tier", "offsite"))
    ok(stigmem("snapshot", "list", "--tier", "offsite"))
    stored = Store.open(offsite_url, iam_s3["curator"]).snapshot_ids()
    assert len(stored) == 30

    refused = stigmem("snapshot", "prune", "--tier", "offsite")
    assert refused.returncode == 1, refused
    assert refused.stderr.count("\n") == 1 and "may not delete" in refused.stderr
    assert Store.open(offsite_url, iam_s3["curator"]).snapshot_ids() == stored
    assert len(live_placements(home, "offsite")) == 30

    tiers["offsite"]["storage_options"] = iam_s3["curator"]
    write_config(home / "config.toml", tiers)
    pruned = ok(stigmem("snapshot", "prune", "--tier", "offsite", "--json")).json()
    assert len(pruned["removed"]) == 25
    curator = Store.open(offsite_url, iam_s3["curator"])
    assert len(curator.snapshot_ids()) == 5
    # The node's released-lock markers are gone with their locks.
    assert curator.backend.list(layout.LOCKS) == []
