"""Recording and querying: list filters, show, history, keys, pins, prune input, metrics."""

from __future__ import annotations

from datetime import timedelta

import pytest

from catalog import Catalog, SnapshotFilter, render_prometheus
from snapshot.errors import AmbiguousError, CatalogError
from tests.catalog.catalog_factories import T0, Clock, Maker, make_key, snapshot_id

A, B = "stigmem:node:a", "stigmem:node:b"


@pytest.fixture
def cat(catalog_url: str, clock: Clock) -> Catalog:
    """Snapshots 0-5 of node A (key 1, tier local; 4-5 also offsite), 6-7 of node B (key 2)."""
    catalog = Catalog.open(catalog_url, clock=clock)
    maker = Maker()
    for n in range(6):
        catalog.record_snapshot(maker.record(n, A))
        catalog.record_placement(snapshot_id(n), "local", "/stores/local")
    for n in (4, 5):
        catalog.record_placement(snapshot_id(n), "offsite", "s3://bucket/stigmem")
    for n in (6, 7):
        catalog.record_snapshot(maker.record(n, B, key=make_key(2)))
        catalog.record_placement(snapshot_id(n), "local", "/stores/local")
    return catalog


def ids(cat: Catalog, **filters: object) -> list[int]:
    by_id = {snapshot_id(n): n for n in range(20)}
    return [by_id[s.id] for s in cat.list_snapshots(SnapshotFilter(**filters))]  # type: ignore[arg-type]


def test_list_is_newest_first_with_contract_fields(cat: Catalog) -> None:
    assert ids(cat) == [7, 6, 5, 4, 3, 2, 1, 0]
    assert ids(cat, limit=3) == [7, 6, 5]
    doc = cat.list_snapshots(SnapshotFilter(limit=1))[0].to_json()
    assert doc["id"] == snapshot_id(7)
    assert doc["created_at"] == "2026-06-01T10:00:00.123456+00:00"
    assert doc["tiers"] == ["local"]
    assert (doc["trusted"], doc["pinned"], doc["last_verified_at"]) == (False, False, None)
    assert doc["signer_key_id"] == make_key(2).key_id
    for field in ("node_id", "db_sha256", "db_size", "last_verify_outcome"):
        assert field in doc


def test_filter_node_since_until(cat: Catalog) -> None:
    assert ids(cat, node=B) == [7, 6]
    assert ids(cat, node=A, since=T0 + timedelta(hours=3)) == [5, 4, 3]
    assert ids(cat, until=T0 + timedelta(hours=1)) == [1, 0]
    assert ids(cat, node=A, since=T0 + timedelta(hours=2), until=T0 + timedelta(hours=3)) == [
        3,
        2,
    ]


def test_filter_signer_by_key_id_and_label(cat: Catalog) -> None:
    key2 = make_key(2)
    assert ids(cat, signer=key2.key_id) == [7, 6]
    cat.trust_key(key2.public_key, key2.key_id, "backup-robot")
    assert ids(cat, signer="backup-robot") == [7, 6]
    assert ids(cat, signer="nobody") == []
    assert [s.trusted for s in cat.list_snapshots(SnapshotFilter(limit=3))] == [True, True, False]


def test_filter_tier_counts_live_placements_only(cat: Catalog) -> None:
    assert ids(cat, tier="offsite") == [5, 4]
    cat.mark_removed(snapshot_id(5), "offsite")
    assert ids(cat, tier="offsite") == [4]
    assert cat.list_snapshots(SnapshotFilter(node=A, limit=1))[0].tiers == ["local"]
    cat.record_placement(snapshot_id(5), "offsite", "s3://bucket/stigmem")
    assert ids(cat, tier="offsite") == [5, 4]


def test_filter_verified_and_not_verified_since(cat: Catalog, clock: Clock) -> None:
    cat.record_verification(snapshot_id(1), "default", "verify", "ok", "")
    cat.record_verification(snapshot_id(2), "strict", "check", "checksum_error", "bad chunk")
    midway = clock.now
    clock.now += timedelta(days=10)
    cat.record_verification(snapshot_id(3), "default", "verify", "ok", "")
    # A later failure replaces an earlier success as the snapshot's state.
    cat.record_verification(snapshot_id(1), "default", "verify", "signature_mismatch", "")
    assert ids(cat, verified="ok") == [3]
    assert ids(cat, verified="failed") == [2, 1]
    assert ids(cat, verified="never") == [7, 6, 5, 4, 0]
    assert ids(cat, node=A, not_verified_since=midway + timedelta(days=1)) == [5, 4, 2, 0]
    summary = cat.list_snapshots(SnapshotFilter(verified="ok"))[0]
    assert summary.last_verify_outcome == "ok"
    assert summary.last_verified_at is not None and summary.last_verified_at > midway


def test_record_snapshot_is_idempotent(cat: Catalog) -> None:
    maker = Maker()
    cat.record_snapshot(maker.record(0, A))
    cat.record_placement(snapshot_id(0), "local", "/stores/local")
    assert len(cat.list_snapshots(SnapshotFilter())) == 8
    assert len(cat.history(snapshot_id=snapshot_id(0), event="catalogued")) == 1
    assert len(cat.show(snapshot_id(0))["placements"]) == 1


def test_placement_of_unknown_snapshot_is_refused(cat: Catalog) -> None:
    with pytest.raises(CatalogError, match=f"snapshot {snapshot_id(99)} is not in the catalog"):
        cat.record_placement(snapshot_id(99), "local", "/stores/local")


def test_show_has_placements_verifications_restores(cat: Catalog) -> None:
    sid = snapshot_id(4)
    cat.mark_removed(sid, "offsite")
    cat.record_verification(sid, "default", "import", "ok", "self-declared key")
    cat.record_verification(sid, "forced", "restore", "untrusted_key", "not in trusted keys")
    cat.record_restore(sid, "/var/lib/stigmem/stigmem.db", True, ["003_add", "004_more"])
    doc = cat.show(sid[:10])
    assert doc["id"] == sid
    assert doc["manifest"] == {"version": 1, "node_id": A, "n": 4}
    assert doc["cursor"] == ["001_init", "002_more"]
    assert doc["tiers"] == ["local"]
    assert [(p["tier"], p["store"], p["removed_at"] is None) for p in doc["placements"]] == [
        ("local", "/stores/local", True),
        ("offsite", "s3://bucket/stigmem", False),
    ]
    assert [(v["mode"], v["kind"], v["outcome"]) for v in doc["verifications"]] == [
        ("default", "import", "ok"),
        ("forced", "restore", "untrusted_key"),
    ]
    assert {"at", "detail", "host"} <= set(doc["verifications"][0])
    assert doc["last_verify_outcome"] == "untrusted_key"
    (restore,) = doc["restores"]
    assert restore["target"] == "/var/lib/stigmem/stigmem.db"
    assert restore["forced"] is True
    assert restore["migrations_replayed"] == ["003_add", "004_more"]
    assert restore["at"].endswith("+00:00")


def test_resolve_prefixes(cat: Catalog) -> None:
    sid = snapshot_id(3)
    assert cat.resolve(sid[:6]) == sid
    assert cat.resolve(sid.upper()) == sid
    with pytest.raises(CatalogError, match="too short"):
        cat.resolve(sid[:5])
    with pytest.raises(CatalogError, match="no snapshot 'ffffff'"):
        cat.resolve("ffffff")
    with pytest.raises(CatalogError, match="not a snapshot id"):
        cat.resolve("xyz123")


def test_ambiguous_prefix_lists_candidates(catalog_url: str) -> None:
    first, second = "abcdef" + "0" * 58, "abcdef" + "1" * 58
    maker = Maker()
    with Catalog.open(catalog_url) as cat:
        for n, sid in enumerate((first, second)):
            record = maker.record(n)
            cat.record_snapshot(type(record)(**{**record.__dict__, "id": sid}))
        with pytest.raises(AmbiguousError) as caught:
            cat.resolve("abcdef")
        assert f"ambiguous: {first}, {second}" in str(caught.value)
        assert cat.resolve("abcdef1") == second


def test_history_newest_first_with_filters(cat: Catalog, clock: Clock) -> None:
    sid = snapshot_id(2)
    start = clock.now + timedelta(microseconds=1)  # the clock's next reading
    cat.set_pinned(sid, True)
    cat.record_event("gc", None, "removed 3 packs")
    events = cat.history(limit=2)
    assert [(e["event"], e["snapshot_id"]) for e in events] == [("gc", None), ("pinned", sid)]
    assert [e["event"] for e in cat.history(snapshot_id=sid)] == ["pinned", "placed", "catalogued"]
    assert [e["event"] for e in cat.history(since=start)] == ["gc", "pinned"]
    assert len(cat.history(event="catalogued")) == 8
    assert set(events[0]) >= {"at", "event", "snapshot_id", "detail"}


def test_pin_and_unpin(cat: Catalog) -> None:
    sid = snapshot_id(1)
    cat.set_pinned(sid, True)
    cat.set_pinned(sid, True)
    assert cat.show(sid)["pinned"] is True
    cat.set_pinned(sid, False)
    assert cat.show(sid)["pinned"] is False
    assert [e["event"] for e in cat.history(snapshot_id=sid, limit=2)] == ["unpinned", "pinned"]


def test_keys_trust_and_revoke(cat: Catalog) -> None:
    key1, key2, key3 = make_key(1), make_key(2), make_key(3)
    assert {k.key_id for k in cat.keys()}  # noqa: SIM118 (Catalog.keys is not a dict) == {key1.key_id, key2.key_id}
    assert cat.trusted_keys() == []
    cat.trust_key(key1.public_key, key1.key_id, "node-a")
    cat.trust_key(key3.public_key, key3.key_id, None)
    assert sorted(cat.trusted_keys()) == sorted([key1.public_key, key3.public_key])

    revoked = cat.revoke_key("node-a")
    assert (revoked.key_id, revoked.revoked, revoked.trusted) == (key1.key_id, True, False)
    assert cat.trusted_keys() == [key3.public_key]
    assert cat.revoked_keys() == [key1.public_key]
    assert not cat.list_snapshots(SnapshotFilter(node=A, limit=1))[0].trusted
    with pytest.raises(CatalogError, match="revoked"):
        cat.trust_key(key1.public_key, key1.key_id, None)
    assert key1.public_key not in cat.trusted_keys()

    cat.revoke_key(key3.public_key)
    key4 = make_key(4)
    cat.revoke_key(key4.public_key)  # never seen: recorded as revoked
    assert sorted(cat.revoked_keys()) == sorted([key1.public_key, key3.public_key, key4.public_key])
    known = cat.keys()
    listed = {k.key_id: k.to_json() for k in known}
    assert listed[key1.key_id]["label"] == "node-a"
    assert set(listed[key1.key_id]) >= {
        "key_id",
        "public_key",
        "label",
        "trusted",
        "revoked",
        "first_seen",
    }
    with pytest.raises(CatalogError, match="no key 'nobody' in the catalog"):
        cat.revoke_key("nobody")
    with pytest.raises(CatalogError, match="already names key"):
        cat.trust_key(key2.public_key, key2.key_id, "node-a")


def test_snapshots_for_prune(cat: Catalog) -> None:
    key1 = make_key(1)
    cat.trust_key(key1.public_key, key1.key_id, None)
    cat.set_pinned(snapshot_id(0), True)
    cat.record_verification(snapshot_id(1), "default", "verify", "ok", "")
    cat.record_verification(snapshot_id(2), "default", "verify", "checksum_error", "")
    offsite = cat.snapshots_for_prune("offsite")
    assert [(c.id, c.node_id, c.trusted) for c in offsite] == [
        (snapshot_id(5), A, True),
        (snapshot_id(4), A, True),
    ]
    local = cat.snapshots_for_prune("local")
    # Newest first, as the planner's rows: (created_utc, id, node_id, flags).
    assert [c.id for c in local] == [snapshot_id(n) for n in range(7, -1, -1)]
    by_id = {c.id: c for c in local}
    assert by_id[snapshot_id(0)].pinned and by_id[snapshot_id(0)].flags == 1 | 2
    assert by_id[snapshot_id(1)].last_verify_ok and by_id[snapshot_id(1)].flags == 1 | 4
    assert by_id[snapshot_id(2)].flags == 1  # verified, but not ok
    assert not by_id[snapshot_id(7)].trusted
    three = by_id[snapshot_id(3)]
    assert three.created_at == T0 + timedelta(hours=3)
    assert three.created_utc == "2026-06-01T06:00:00.123456"
    assert tuple(three) == (three.created_utc, three.id, three.node_id, three.flags)
    # The planner's input, the same rows as plain tuples.
    rows = cat.prune_rows("local")
    assert rows == [tuple(c) for c in local]
    assert all(type(row) is tuple for row in rows)


def test_snapshots_for_prune_trust_given_by_the_caller(cat: Catalog) -> None:
    key1, key2 = make_key(1), make_key(2)
    cat.revoke_key(key1.public_key)  # the caller's set decides, not the catalog
    trusted = {c.id for c in cat.snapshots_for_prune("local", [key2.key_id]) if c.trusted}
    assert trusted == {snapshot_id(6), snapshot_id(7)}
    assert not any(c.trusted for c in cat.snapshots_for_prune("local", []))
    both = cat.snapshots_for_prune("local", {key1.key_id, key2.key_id})
    assert all(c.trusted for c in both)


def test_snapshots_for_prune_counts_live_placements_only(cat: Catalog) -> None:
    cat.mark_removed(snapshot_id(5), "offsite")
    assert [c.id for c in cat.snapshots_for_prune("offsite")] == [snapshot_id(4)]
    for n in range(8):
        cat.mark_removed(snapshot_id(n), "local")
    assert cat.snapshots_for_prune("local") == []
    cat.record_placement(snapshot_id(2), "local", "/stores/local")
    assert [c.id for c in cat.snapshots_for_prune("local")] == [snapshot_id(2)]
    assert cat.snapshots_for_prune("nowhere") == []


def test_snapshots_for_prune_zero_fraction_and_microsecond_order(catalog_url: str) -> None:
    # Times a microsecond apart and one on the second: text order must stay time order.
    from dataclasses import replace
    from datetime import UTC, datetime

    base = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
    maker = Maker()
    with Catalog.open(catalog_url) as catalog:
        for n, micro in enumerate((0, 1, 999_999)):
            created = base + timedelta(microseconds=micro)
            catalog.record_snapshot(replace(maker.record(n, A), created_at=created))
            catalog.record_placement(snapshot_id(n), "local", "/stores/local")
        rows = catalog.snapshots_for_prune("local")
    assert [c.created_utc for c in rows] == [
        "2026-03-01T12:00:00.999999",
        "2026-03-01T12:00:00.000001",
        "2026-03-01T12:00:00.000000",
    ]
    assert [c.created_at for c in rows] == [
        base + timedelta(microseconds=m) for m in (999_999, 1, 0)
    ]


def test_prune_rows_normalise_times_written_by_another_tool(tmp_path: object) -> None:
    # SQLite keeps whatever text a row was given: times with an offset, as long as the ones
    # this catalog writes, must still order, bucket and print as the planner expects.
    import sqlite3
    from pathlib import Path

    path = Path(str(tmp_path)) / "catalog.db"
    maker = Maker()
    with Catalog.open(f"sqlite:///{path}") as catalog:
        for n in range(3):
            catalog.record_snapshot(maker.record(n, A))
            catalog.record_placement(snapshot_id(n), "local", "/stores/local")
    with sqlite3.connect(path) as db:
        db.execute(
            "UPDATE snapshots SET created_at = ? WHERE id = ?",
            ("2026-06-01 09:00:00.0+0000", snapshot_id(0)),
        )
        db.execute(
            "UPDATE snapshots SET created_at = ? WHERE id = ?",
            ("2026-06-01 10:30:00.5+0200", snapshot_id(1)),  # 26 characters, like ours
        )
    with Catalog.open(f"sqlite:///{path}") as catalog:
        rows = catalog.prune_rows("local")
    assert [(created, sid) for created, sid, _, _ in rows] == [
        ("2026-06-01T09:00:00.000000", snapshot_id(0)),
        ("2026-06-01T08:30:00.500000", snapshot_id(1)),
        ("2026-06-01T05:00:00.123456", snapshot_id(2)),
    ]


def test_record_prune(cat: Catalog) -> None:
    cat.record_prune("local", {"keep_daily": 30}, [{"id": snapshot_id(0)}], [], 0, True)
    (event,) = cat.history(event="pruned")
    assert event["detail"] == "tier local: dry run"


def test_record_prune_stores_plan_text_as_given(catalog_url: str) -> None:
    import json

    import sqlalchemy as sa

    from catalog.engine import make_engine

    text = '[{"id":"x","created_at":"2026-06-01T03:00:00+00:00","action":"keep","reasons":[]}]'
    with Catalog.open(catalog_url) as catalog:
        catalog.record_prune("local", {"keep_daily": 30}, text, [], 0, True)
        catalog.record_prune("local", {"keep_last": 1}, json.loads(text), ["x"], 5, False)
    engine = make_engine(catalog_url)
    with engine.connect() as conn:
        stored = conn.execute(
            sa.text("SELECT plan, removed, dry_run FROM prune_runs ORDER BY id")
        ).all()
    engine.dispose()
    assert stored[0][0] == text
    assert json.loads(stored[1][0]) == json.loads(text)
    assert [(json.loads(r), bool(d)) for _p, r, d in stored] == [([], True), (["x"], False)]


def test_metrics(cat: Catalog, clock: Clock) -> None:
    cat.record_verification(snapshot_id(2), "default", "verify", "ok", "")
    verified_at = clock.now
    now = T0 + timedelta(days=400)
    samples = {
        (name, labels["node"], labels["tier"]): value for name, labels, value in cat.metrics(now)
    }
    age = (now - T0).total_seconds()
    assert samples[("stigmem_snapshots", A, "local")] == 6
    assert samples[("stigmem_snapshots", A, "offsite")] == 2
    assert samples[("stigmem_snapshot_newest_age_seconds", A, "local")] == age - 5 * 3600
    assert samples[("stigmem_snapshot_newest_verified_age_seconds", A, "local")] == age - 2 * 3600
    assert (
        samples[("stigmem_snapshot_last_verification_age_seconds", A, "local")]
        == (now - verified_at).total_seconds()
    )
    assert ("stigmem_snapshot_newest_verified_age_seconds", B, "local") not in samples
    text = render_prometheus(cat.metrics(now))
    assert text.count("# TYPE stigmem_snapshots gauge") == 1
    assert f'stigmem_snapshots{{node="{A}",tier="offsite"}} 2\n' in text


def test_render_prometheus_escapes_and_groups() -> None:
    text = render_prometheus(
        [
            ("stigmem_store_bytes", {"tier": 'we"ird\\tier\nx'}, 1024.0),
            ("stigmem_snapshots", {"node": "n", "tier": "t"}, 3.0),
            ("stigmem_store_bytes", {"tier": "b"}, 0.5),
        ]
    )
    assert text == (
        "# HELP stigmem_store_bytes Bytes stored by the tier's store.\n"
        "# TYPE stigmem_store_bytes gauge\n"
        'stigmem_store_bytes{tier="we\\"ird\\\\tier\\nx"} 1024\n'
        'stigmem_store_bytes{tier="b"} 0.5\n'
        "# HELP stigmem_snapshots Snapshots held by the tier (live placements).\n"
        "# TYPE stigmem_snapshots gauge\n"
        'stigmem_snapshots{node="n",tier="t"} 3\n'
    )
    assert render_prometheus([]) == ""
