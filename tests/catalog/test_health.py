"""Fleet health rules (``catalog.health``), on facts given directly: no catalog, no clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from catalog.health import NodeFacts, node_health, problems_of, unhealthy
from catalog.metrics import node_samples, render_prometheus
from snapshot.config import Expected, Fleet

NOW = datetime(2026, 6, 30, 12, 0, tzinfo=UTC)
TIERS = ["local", "offsite"]
FLEET = Fleet(
    nodes=("alpha", "ghost"),
    default=Expected(every=timedelta(days=1), drill_every=timedelta(days=30)),
    per_node={"weekly": Expected(every=timedelta(days=7), drill_every=timedelta(days=30))},
)


def hours(n: float) -> datetime:
    return NOW - timedelta(hours=n)


def healthy(node_id: str = "alpha", **changes: object) -> NodeFacts:
    """A node that backed up 2 h ago, verified ok, drilled ok 5 days ago, synced offsite."""
    base: dict[str, object] = dict(
        node_id=node_id,
        last_snapshot_at=hours(2),
        last_verified_at=hours(1),
        last_verify_outcome="ok",
        last_drill_at=hours(5 * 24),
        last_drill_outcome="ok",
        restore_seconds=3.5,
        tiers={"local": hours(2), "offsite": hours(26)},
        due_snapshot_at=hours(26),
    )
    base.update(changes)
    return NodeFacts(**base)  # type: ignore[arg-type]


def problems(facts: NodeFacts, tiers: list[str] = TIERS) -> list[str]:
    return problems_of(facts, FLEET, tiers, NOW)


def test_a_healthy_node_has_no_problem() -> None:
    assert problems(healthy()) == []


def test_overdue_is_older_than_every_and_every_is_per_node() -> None:
    assert problems(healthy(last_snapshot_at=hours(24))) == []  # exactly every: not yet
    assert problems(healthy(last_snapshot_at=hours(24.01))) == ["overdue"]
    weekly = healthy("weekly", last_snapshot_at=hours(6 * 24), tiers={}, due_snapshot_at=None)
    assert problems(weekly) == []
    assert problems(healthy("weekly", last_snapshot_at=hours(8 * 24))) == ["overdue"]


def test_verify_failed_follows_the_newest_verification_only() -> None:
    assert problems(healthy(last_verify_outcome="hash_mismatch")) == ["verify_failed"]
    assert problems(healthy(last_verified_at=None, last_verify_outcome=None)) == []


def test_drills_due_when_missing_or_old_and_failed_separately() -> None:
    never = healthy(last_drill_at=None, last_drill_outcome=None, restore_seconds=None)
    assert problems(never) == ["drill_due"]
    assert problems(healthy(last_drill_at=hours(30 * 24 + 1))) == ["drill_due"]
    assert problems(healthy(last_drill_outcome="failed")) == ["drill_failed"]
    old_failure = healthy(last_drill_at=hours(31 * 24), last_drill_outcome="failed")
    assert problems(old_failure) == ["drill_due", "drill_failed"]


def test_offsite_must_hold_the_newest_snapshot_older_than_every() -> None:
    # The snapshot of 2 h ago need not be offsite yet; the one of 26 h ago must.
    assert problems(healthy(tiers={"local": hours(2), "offsite": hours(26)})) == []
    assert problems(healthy(tiers={"local": hours(2), "offsite": hours(50)})) == ["offsite_missing"]
    assert problems(healthy(tiers={"local": hours(2)})) == ["offsite_missing"]
    # Only tiers after the default one are checked; one tier checks nothing.
    assert problems(healthy(tiers={"offsite": hours(2)})) == []
    assert problems(healthy(tiers={}), tiers=["local"]) == []
    # A node whose snapshots are all younger than every owes nothing offsite yet.
    assert problems(healthy(tiers={"local": hours(2)}, due_snapshot_at=None)) == []


def test_a_stopped_node_is_overdue_not_also_offsite_missing() -> None:
    stopped = healthy(
        last_snapshot_at=hours(10 * 24),
        tiers={"local": hours(10 * 24), "offsite": hours(10 * 24)},
        due_snapshot_at=hours(10 * 24),
    )
    assert problems(stopped) == ["overdue"]


def test_problems_come_in_a_fixed_order() -> None:
    everything = healthy(
        last_snapshot_at=hours(48),
        last_verify_outcome="signature",
        last_drill_at=hours(40 * 24),
        last_drill_outcome="failed",
        tiers={"local": hours(48)},
        due_snapshot_at=hours(48),
    )
    assert problems(everything) == [
        "overdue",
        "verify_failed",
        "drill_due",
        "drill_failed",
        "offsite_missing",
    ]


def test_report_lists_fleet_nodes_and_seen_nodes_with_every_configured_tier() -> None:
    facts = {"alpha": healthy(), "stray": healthy("stray", tiers={"local": hours(2)})}
    reports = node_health(facts, FLEET, TIERS, NOW)
    assert [r.node_id for r in reports] == ["alpha", "ghost", "stray"]
    alpha, ghost, stray = (r.to_json() for r in reports)
    assert alpha == {
        "node_id": "alpha",
        "last_snapshot_at": "2026-06-30T10:00:00.000000+00:00",
        "last_snapshot_age_seconds": 7200.0,
        "last_verified_at": "2026-06-30T11:00:00.000000+00:00",
        "last_verify_outcome": "ok",
        "last_drill_at": "2026-06-25T12:00:00.000000+00:00",
        "last_drill_outcome": "ok",
        "restore_seconds": 3.5,
        "tiers": {
            "local": "2026-06-30T10:00:00.000000+00:00",
            "offsite": "2026-06-29T10:00:00.000000+00:00",
        },
        "problems": [],
    }
    assert ghost == {
        "node_id": "ghost",
        "last_snapshot_at": None,
        "last_snapshot_age_seconds": None,
        "last_verified_at": None,
        "last_verify_outcome": None,
        "last_drill_at": None,
        "last_drill_outcome": None,
        "restore_seconds": None,
        "tiers": {"local": None, "offsite": None},
        "problems": ["never_seen"],
    }
    assert stray["problems"] == ["offsite_missing"]
    assert stray["tiers"] == {"local": "2026-06-30T10:00:00.000000+00:00", "offsite": None}
    assert unhealthy(reports)
    assert not unhealthy(node_health({"alpha": healthy()}, Fleet(), TIERS, NOW))


def test_node_samples() -> None:
    facts = {
        "alpha": healthy(),
        "late": healthy("late", last_snapshot_at=hours(30), last_drill_outcome="failed"),
        "undrilled": healthy(
            "undrilled", last_drill_at=None, last_drill_outcome=None, restore_seconds=None
        ),
    }
    samples = node_samples(node_health(facts, FLEET, TIERS, NOW), NOW)
    values = {(name, labels["node"]): value for name, labels, value in samples}
    assert values == {
        ("stigmem_node_overdue", "alpha"): 0,
        ("stigmem_node_overdue", "ghost"): 1,  # expected, never seen
        ("stigmem_node_overdue", "late"): 1,
        ("stigmem_node_overdue", "undrilled"): 0,
        ("stigmem_last_drill_age_seconds", "alpha"): 5 * 86400,
        ("stigmem_last_drill_age_seconds", "late"): 5 * 86400,
        ("stigmem_drill_ok", "alpha"): 1,
        ("stigmem_drill_ok", "late"): 0,
        ("stigmem_restore_seconds", "alpha"): 3.5,
        ("stigmem_restore_seconds", "late"): 3.5,
    }
    text = render_prometheus(samples)
    assert text.count("# TYPE stigmem_drill_ok gauge") == 1
    assert 'stigmem_restore_seconds{node="alpha"} 3.5\n' in text


def test_fleet_facts_from_the_catalog(catalog_url: str) -> None:
    """The catalog's reads: newest snapshot, live placements per tier, newest verification,
    newest drill and the newest snapshot before each node's cutoff (SQLite and PostgreSQL)."""
    from catalog import Catalog
    from tests.catalog.catalog_factories import T0, Clock, Maker, snapshot_id

    clock = Clock()
    maker = Maker()
    a, b = "stigmem:node:a", "stigmem:node:b"
    with Catalog.open(catalog_url, clock=clock) as cat:
        for n, node in ((0, a), (1, a), (2, a), (3, b)):
            cat.record_snapshot(maker.record(n, node))
            cat.record_placement(snapshot_id(n), "local", "/stores/local")
        cat.record_placement(snapshot_id(0), "offsite", "/stores/offsite")
        cat.record_placement(snapshot_id(1), "offsite", "/stores/offsite")
        cat.mark_removed(snapshot_id(1), "offsite")  # pruned offsite: no longer held there
        cat.record_verification(snapshot_id(2), "default", "verify", "ok", "")
        cat.record_verification(snapshot_id(0), "default", "verify", "hash_mismatch", "")
        verified_at = clock.now  # the newest verification, of an older snapshot
        cat.record_drill(snapshot_id(1), a, "ok", [], 2.0, 100, "local")
        drilled_at = clock.now
        cat.record_drill(snapshot_id(2), a, "failed", [], 7.25, 100, "offsite")
        failed_at = clock.now
        facts = cat.fleet_facts(
            lambda node: T0 + timedelta(hours=1, minutes=30) if node == a else T0
        )
    assert set(facts) == {a, b}
    fa, fb = facts[a], facts[b]
    assert fa.last_snapshot_at == T0 + timedelta(hours=2)
    assert fa.tiers == {"local": T0 + timedelta(hours=2), "offsite": T0}
    assert (fa.last_verified_at, fa.last_verify_outcome) == (verified_at, "hash_mismatch")
    assert (fa.last_drill_at, fa.last_drill_outcome, fa.restore_seconds) == (
        failed_at,
        "failed",
        7.25,
    )
    assert drilled_at < failed_at
    assert fa.due_snapshot_at == T0 + timedelta(hours=1)  # newest at or before its cutoff
    assert fb.last_snapshot_at == T0 + timedelta(hours=3)
    assert fb.tiers == {"local": T0 + timedelta(hours=3)}
    assert fb.due_snapshot_at is None  # its only snapshot is after its cutoff
    assert (fb.last_verified_at, fb.last_drill_at, fb.restore_seconds) == (None, None, None)
