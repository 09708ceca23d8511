"""S3 Object Lock on a tier: objects are written locked for the tier's retention, a prune
during the lock removes nothing and reports each snapshot retained, `store check` names an
object whose lock is missing or too short, and once the locks have passed prune removes what
the policy says. On moto, with a bucket made with Object Lock enabled."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from store import layout
from store.repository import Store
from tests.conftest import Runner, ok, s3_options
from tests.nodegen import apply_churn, make_node_db
from tests.store.history import live_placements, write_config


def s3(endpoint: str) -> Any:
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )


def locked_objects(client: Any, bucket: str, prefix: str) -> dict[str, datetime | None]:
    found = {}
    for item in client.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", []):
        head = client.head_object(Bucket=bucket, Key=item["Key"])
        found[item["Key"][len(prefix) + 1 :]] = head.get("ObjectLockRetainUntilDate")
    return found


def test_object_lock_retains_during_the_lock_and_prunes_after(
    stigmem: Runner, home: Path, tmp_path: Path, s3_endpoint: str
) -> None:
    client = s3(s3_endpoint)
    bucket = f"locked-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    url = f"s3://{bucket}/vault"
    tier = {
        "store": url,
        "keep_last": 1,
        "keep_daily": 3,
        "grace": "0h",
        "object_lock": "governance",
        "storage_options": s3_options(s3_endpoint),
    }
    write_config(home / "config.toml", {"vault": tier})
    db = tmp_path / "node" / "stigmem.db"
    db.parent.mkdir()
    make_node_db(db, size_mb=0.2, seed=4)
    ids = []
    for day in range(5):
        apply_churn(db, day + 1, seed=4, scale=0.2)
        ids.append(ok(stigmem("snapshot", "create", "--db", str(db), "--json")).json()["id"])

    # Packs, documents and keyrings are locked for 3 days (keep_daily 3, grace 0h).
    objects = locked_objects(client, bucket, "vault")
    now = datetime.now(UTC)
    for path, until in objects.items():
        if path.startswith(("packs/", "snapshots/", "keys/")):
            assert until is not None and now + timedelta(days=2.9) < until, path
        else:
            assert until is None, path  # index, config.json: replaced by design
    assert ok(stigmem("store", "check")).stdout.startswith("OK: ")

    # The policy removes some of the five, but all are locked.
    during = ok(stigmem("snapshot", "prune", "--json")).json()
    doomed = sorted(e["id"] for e in during["plan"] if e["action"] == "remove")
    kept = sorted(set(ids) - set(doomed))
    assert doomed and during["removed"] == []
    assert sorted(r["id"] for r in during["retained"]) == doomed
    assert all(r["locked_until"] for r in during["retained"])
    store = Store.open(url, s3_options(s3_endpoint))
    assert sorted(store.snapshot_ids()) == sorted(ids)
    assert live_placements(home, "vault") == set(ids)
    plain = stigmem("snapshot", "prune")
    assert plain.returncode == 0 and "retained (locked until" in plain.stderr

    # An object written without a lock is named by check.
    stray = f"vault/{layout.pack_path('ab' * 32)}"
    client.put_object(Bucket=bucket, Key=stray, Body=b"not locked")
    checked = stigmem("store", "check", "--json")
    assert checked.returncode == 3
    problems = checked.json()["problems"]
    assert [p["outcome"] for p in problems] == ["lock_missing"]
    assert "ab" * 32 in problems[0]["problem"]
    client.delete_object(Bucket=bucket, Key=stray)

    # The locks pass (moved into the past, as the bucket's owner may in governance mode).
    past = datetime.now(UTC) - timedelta(seconds=1)
    for version in client.list_object_versions(Bucket=bucket, Prefix="vault/").get("Versions", []):
        client.put_object_retention(
            Bucket=bucket,
            Key=version["Key"],
            VersionId=version["VersionId"],
            Retention={"Mode": "GOVERNANCE", "RetainUntilDate": past},
            BypassGovernanceRetention=True,
        )
    after = ok(stigmem("snapshot", "prune", "--json")).json()
    assert sorted(after["removed"]) == doomed and after["retained"] == []
    assert sorted(store.snapshot_ids()) == kept
    assert live_placements(home, "vault") == set(kept)
    # Removed for good: no version of a removed document is left behind a delete marker.
    versions = client.list_object_versions(Bucket=bucket, Prefix="vault/snapshots/")
    assert {v["Key"] for v in versions.get("Versions", [])} == {
        f"vault/{layout.snapshot_path(sid)}" for sid in kept
    }
    for sid in kept:
        ok(stigmem("snapshot", "verify", sid))


def test_objects_written_in_a_batch_carry_the_tiers_lock(s3_endpoint: str) -> None:
    """What sync writes a batch at a time (packs, documents) is locked like a single write;
    what a tier does not lock (index objects) is not."""
    from store.backend import FsspecBackend, open_backend

    client = s3(s3_endpoint)
    bucket = f"locked-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    backend = open_backend(f"s3://{bucket}/vault", s3_options(s3_endpoint))
    assert isinstance(backend, FsspecBackend)
    backend.object_lock = ("GOVERNANCE", 3600)
    pack, document, index = (
        layout.pack_path("ab" * 32),
        layout.snapshot_path("cd" * 32),
        (layout.index_path("ef" * 32)),
    )
    backend.write_many({pack: b"p", document: b"{}", index: b"i"})
    until = locked_objects(client, bucket, "vault")
    assert until[index] is None
    for path in (pack, document):
        locked = until[path]
        assert locked is not None and locked > datetime.now(UTC) + timedelta(minutes=50), path
