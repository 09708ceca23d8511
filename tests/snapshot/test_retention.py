"""Prune planning (restic ``forget`` semantics), checked two ways.

1. Golden plans: two years of hourly snapshots (with gaps) under each rule and some mixes; the
   kept ids and their reasons are committed in tests/snapshot/golden/*.json and compared.
   Regenerate with ``STIGMEM_UPDATE_GOLDEN=1 pytest tests/snapshot/test_retention.py`` and
   review the diff.
2. Independent assertions: the same plans recomputed the naive way (group by UTC day, ISO
   week ...; take the newest of the N most recent groups), so a golden file cannot silently
   bless a wrong plan.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from snapshot.errors import ConfigError
from snapshot.retention import (
    EMPTY_POLICY_MESSAGE,
    PINNED,
    TRUSTED,
    VERIFIED_OK,
    EmptyPolicyError,
    Plan,
    Policy,
    SnapshotInfo,
    plan_prune,
    plan_row,
    plan_rows,
)

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("STIGMEM_UPDATE_GOLDEN") == "1"
START = datetime(2024, 1, 1, tzinfo=UTC)

# Gaps in the history, so that rules must look past empty buckets:
# ISO week 2024-W11 entirely, February 2025 entirely, 25-27 December 2025, and the hours
# 06:00-11:59 of the last day.
GAPS: list[tuple[datetime, datetime]] = [
    (datetime(2024, 3, 11, tzinfo=UTC), datetime(2024, 3, 18, tzinfo=UTC)),
    (datetime(2025, 2, 1, tzinfo=UTC), datetime(2025, 3, 1, tzinfo=UTC)),
    (datetime(2025, 12, 25, tzinfo=UTC), datetime(2025, 12, 28, tzinfo=UTC)),
    (datetime(2025, 12, 31, 6, tzinfo=UTC), datetime(2025, 12, 31, 12, tzinfo=UTC)),
]


def hourly(node: str = "a", *, hours: int = 2 * 8784 - 24, every: int = 1) -> list[SnapshotInfo]:
    """One snapshot per ``every`` hours from 2024-01-01 (two years by default, 2024 being a
    leap year), at a varying minute, minus GAPS. Ids read as node-YYYYMMDDTHHMM."""
    out = []
    for h in range(0, hours, every):
        when = START + timedelta(hours=h, minutes=(h * 7) % 60, seconds=h % 60)
        if any(lo <= when < hi for lo, hi in GAPS):
            continue
        out.append(SnapshotInfo(f"{node}-{when:%Y%m%dT%H%M}", f"stigmem:node:{node}", when))
    return out


HISTORY = hourly()


def id_at(year: int, month: int, day: int, hour: int) -> str:
    """The id of HISTORY's snapshot taken in that UTC hour."""
    hour_start = datetime(year, month, day, hour, tzinfo=UTC)
    (found,) = [
        s.id for s in HISTORY if hour_start <= s.created_at < hour_start + timedelta(hours=1)
    ]
    return found


# --- golden files -------------------------------------------------------------------------------


def golden_document(plan: Plan, snapshots: list[SnapshotInfo]) -> str:
    kept = [e for e in plan.entries if e.action == "keep"]
    lines = [json.dumps({"id": e.id, "reasons": e.reasons}) for e in kept]
    head = json.dumps(
        {
            "policy": plan.policy.to_json(),
            "snapshots": len(snapshots),
            "kept": len(kept),
            "removed": len(plan.remove),
        }
    )
    return head[:-1] + ', "keep": [\n  ' + ",\n  ".join(lines) + "\n]}\n"


def check_golden(name: str, plan: Plan, snapshots: list[SnapshotInfo]) -> None:
    path = GOLDEN / f"{name}.json"
    text = golden_document(plan, snapshots)
    if UPDATE:
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"{path} missing: run with STIGMEM_UPDATE_GOLDEN=1 and review it"
    expected = json.loads(path.read_text())
    assert json.loads(text) == expected, f"plan differs from {path.name}"


# --- an independent, naive model of the rules ---------------------------------------------------

BUCKETS: dict[str, Callable[[datetime], object]] = {
    "keep_last": lambda t: t,
    "keep_hourly": lambda t: (t.date(), t.hour),
    "keep_daily": lambda t: t.date(),
    "keep_weekly": lambda t: t.isocalendar()[:2],
    "keep_monthly": lambda t: (t.year, t.month),
    "keep_yearly": lambda t: t.year,
}


def naive_keep(rule: str, n: int, snaps: Iterable[SnapshotInfo]) -> set[str]:
    """Newest of each of the n most recent buckets, plus the oldest snapshot when there are
    fewer than n buckets (restic keeps it to lengthen the history)."""
    groups: dict[object, list[SnapshotInfo]] = {}
    for s in snaps:
        groups.setdefault(BUCKETS[rule](s.created_at), []).append(s)
    newest = sorted(
        (max(g, key=lambda s: s.created_at) for g in groups.values()),
        key=lambda s: s.created_at,
        reverse=True,
    )
    kept = {s.id for s in newest[:n]}
    if len(groups) < n:
        kept.add(min((s for g in groups.values() for s in g), key=lambda s: s.created_at).id)
    return kept


def naive_within(d: timedelta, snaps: list[SnapshotInfo]) -> set[str]:
    newest = max(s.created_at for s in snaps)
    return {s.id for s in snaps if s.created_at > newest - d}


def naive_policy(policy: Policy, snaps: list[SnapshotInfo]) -> set[str]:
    kept: set[str] = set()
    for rule in BUCKETS:
        if getattr(policy, rule):
            kept |= naive_keep(rule, getattr(policy, rule), snaps)
    if policy.keep_within:
        kept |= naive_within(policy.keep_within, snaps)
    return kept


def kept_ids(plan: Plan) -> set[str]:
    return {e.id for e in plan.entries if e.action == "keep"}


def reasons_of(plan: Plan) -> dict[str, list[str]]:
    return {e.id: e.reasons for e in plan.entries}


# --- single rules and combinations over two years ------------------------------------------------

SINGLE_RULES: dict[str, Policy] = {
    "keep_last_3": Policy(keep_last=3),
    "keep_hourly_10": Policy(keep_hourly=10),
    "keep_daily_7": Policy(keep_daily=7),
    "keep_weekly_4": Policy(keep_weekly=4),
    "keep_monthly_12": Policy(keep_monthly=12),
    "keep_yearly_3": Policy(keep_yearly=3),
    "keep_within_30d": Policy(keep_within=timedelta(days=30)),
    "daily_7_weekly_4_monthly_6": Policy(keep_daily=7, keep_weekly=4, keep_monthly=6),
    "all_rules": Policy(
        keep_last=2,
        keep_hourly=6,
        keep_daily=7,
        keep_weekly=4,
        keep_monthly=12,
        keep_yearly=5,
        keep_within=timedelta(days=2),
    ),
}


@pytest.mark.parametrize("name", list(SINGLE_RULES))
def test_golden_two_years_hourly(name: str) -> None:
    policy = SINGLE_RULES[name]
    plan = plan_prune(policy, HISTORY)
    check_golden(name, plan, HISTORY)
    assert kept_ids(plan) == naive_policy(policy, HISTORY)


def test_keep_daily_7_keeps_the_last_snapshot_of_each_of_the_7_newest_days() -> None:
    plan = plan_prune(Policy(keep_daily=7), HISTORY)
    kept = [e for e in plan.entries if e.action == "keep"]
    assert len(kept) == 7
    # 25-27 December are a gap, so the 7 days reach back to the 23rd.
    assert [e.created_at.date() for e in kept] == [
        date(2025, 12, d) for d in (31, 30, 29, 28, 24, 23, 22)
    ]
    for entry in kept:
        same_day = [s for s in HISTORY if s.created_at.date() == entry.created_at.date()]
        assert entry.created_at == max(s.created_at for s in same_day)
        assert entry.reasons == ["daily snapshot"]
    assert len(plan.remove) == len(HISTORY) - 7


def test_keep_weekly_skips_the_empty_week_and_uses_iso_weeks() -> None:
    snaps = [s for s in HISTORY if s.created_at < datetime(2024, 3, 25, tzinfo=UTC)]
    plan = plan_prune(Policy(keep_weekly=3), snaps)
    kept = [e.created_at for e in plan.entries if e.action == "keep"]
    # Newest of W12 (Sun 24 Mar), W10 (Sun 10 Mar), W09 (Sun 3 Mar): W11 has no snapshot.
    assert [t.date() for t in kept] == [date(2024, 3, 24), date(2024, 3, 10), date(2024, 3, 3)]
    assert all(t.isoweekday() == 7 and t.hour == 23 for t in kept)


def test_keep_monthly_reaches_past_the_empty_month() -> None:
    plan = plan_prune(Policy(keep_monthly=12), HISTORY)
    months = [(e.created_at.year, e.created_at.month) for e in plan.entries if e.action == "keep"]
    assert (2025, 2) not in months
    assert months[-1] == (2024, 12)
    assert len(months) == 12


def test_keep_yearly_with_fewer_years_than_asked_also_keeps_the_oldest() -> None:
    plan = plan_prune(Policy(keep_yearly=3), HISTORY)
    kept = [(e.id, e.reasons) for e in plan.entries if e.action == "keep"]
    assert kept == [
        (id_at(2025, 12, 31, 23), ["yearly snapshot"]),
        (id_at(2024, 12, 31, 23), ["yearly snapshot"]),
        (id_at(2024, 1, 1, 0), ["yearly snapshot"]),  # the oldest, as restic does
    ]


def test_keep_within_is_relative_to_the_newest_snapshot_not_now() -> None:
    plan = plan_prune(Policy(keep_within=timedelta(days=30)), HISTORY)
    newest = HISTORY[-1].created_at
    kept = [e for e in plan.entries if e.action == "keep"]
    assert all(newest - e.created_at < timedelta(days=30) for e in kept)
    assert all(e.reasons == ["within 30d"] for e in kept)
    removed = [e for e in plan.entries if e.action == "remove"]
    assert newest - removed[0].created_at >= timedelta(days=30)


def test_combined_reasons_name_every_rule_that_keeps() -> None:
    plan = plan_prune(SINGLE_RULES["all_rules"], HISTORY)
    assert plan.entries[0].reasons == [
        "within 2d",
        "last snapshot",
        "hourly snapshot",
        "daily snapshot",
        "weekly snapshot",
        "monthly snapshot",
        "yearly snapshot",
    ]


def test_entries_are_newest_first_and_remove_lists_the_removed() -> None:
    plan = plan_prune(Policy(keep_daily=7, keep_weekly=4), list(reversed(HISTORY)))
    times = [e.created_at for e in plan.entries]
    assert times == sorted(times, reverse=True)
    assert plan.remove == [e.id for e in plan.entries if e.action == "remove"]
    assert len(plan.entries) == len(HISTORY)


# --- trust, pins, verification, nodes ---------------------------------------------------------


def test_untrusted_are_kept_and_take_no_slot() -> None:
    recent = [s for s in HISTORY if s.created_at >= datetime(2025, 12, 1, tzinfo=UTC)]
    # Every third snapshot, including the newest of many days, is signed by an unknown key.
    snaps = [replace(s, trusted=i % 3 != 0) for i, s in enumerate(recent)]
    plan = plan_prune(Policy(keep_daily=7), snaps)
    check_golden("untrusted_interleaved", plan, snaps)
    reasons = reasons_of(plan)
    untrusted = [s for s in snaps if not s.trusted]
    assert all(reasons[s.id] == ["untrusted"] for s in untrusted)
    assert not set(plan.remove) & {s.id for s in untrusted}
    trusted = [s for s in snaps if s.trusted]
    daily = {i for i, r in reasons.items() if "daily snapshot" in r}
    assert daily == naive_keep("keep_daily", 7, trusted)
    assert len(daily) == 7


def test_all_untrusted_removes_nothing() -> None:
    snaps = [replace(s, trusted=False) for s in HISTORY[-50:]]
    plan = plan_prune(Policy(keep_last=1), snaps)
    assert plan.remove == []


def test_pinned_are_never_removed() -> None:
    pins = {id_at(2024, 1, 1, 0), id_at(2024, 7, 4, 12), id_at(2025, 12, 24, 23)}
    snaps = [replace(s, pinned=True) if s.id in pins else s for s in HISTORY]
    plan = plan_prune(Policy(keep_last=3), snaps)
    check_golden("pinned", plan, snaps)
    reasons = reasons_of(plan)
    assert all("pinned" in reasons[i] for i in pins)
    assert len(kept_ids(plan)) == 3 + len(pins)


def test_pinned_untrusted_shows_both_reasons() -> None:
    snap = replace(HISTORY[0], trusted=False, pinned=True)
    plan = plan_prune(Policy(keep_last=1), [snap, *HISTORY[1:10]])
    assert reasons_of(plan)[snap.id] == ["untrusted", "pinned"]


def test_newest_verified_is_never_removed() -> None:
    old_ok, newest_ok = id_at(2025, 6, 1, 12), id_at(2025, 10, 1, 4)
    verified = {id_at(2024, 3, 1, 12), old_ok, newest_ok}
    snaps = [replace(s, last_verify_ok=True) if s.id in verified else s for s in HISTORY]
    plan = plan_prune(Policy(keep_daily=7), snaps)
    check_golden("newest_verified", plan, snaps)
    reasons = reasons_of(plan)
    assert reasons[newest_ok] == ["newest verified"]
    assert reasons[old_ok] == []  # an older ok verification protects nothing
    assert len(kept_ids(plan)) == 8


def test_newest_verified_ignores_untrusted_snapshots() -> None:
    snaps = HISTORY[-100:]
    snaps = [replace(s, last_verify_ok=True, trusted=i != 0) for i, s in enumerate(snaps)]
    plan = plan_prune(Policy(keep_last=1), snaps)
    reasons = reasons_of(plan)
    # The newest ok one is untrusted (kept anyway): protection goes to the newest trusted one.
    assert reasons[snaps[-1].id] == ["last snapshot", "newest verified"]


def test_rules_apply_per_node() -> None:
    node_a = HISTORY
    # Node b: every 6 hours, stopped at the end of June 2025.
    node_b = [s for s in hourly("b", every=6) if s.created_at < datetime(2025, 7, 1, tzinfo=UTC)]
    snaps = sorted(node_a + node_b, key=lambda s: s.id)  # input order must not matter
    policy = Policy(keep_daily=3, keep_monthly=2)
    plan = plan_prune(policy, snaps)
    check_golden("two_nodes", plan, snaps)
    for node in (node_a, node_b):
        alone = plan_prune(policy, node)
        ids = {s.id for s in node}
        together = [(e.id, e.reasons, e.action) for e in plan.entries if e.id in ids]
        assert together == [(e.id, e.reasons, e.action) for e in alone.entries]
        assert kept_ids(alone) == naive_policy(policy, node)
    assert len(kept_ids(plan)) == 2 * 4  # 3 days + 1 more month each (the 2nd month's newest)


def test_runbook_policy_keeps_the_30_newest_of_120_dailies() -> None:
    first = datetime(2026, 2, 1, 3, 0, tzinfo=UTC)
    snaps = [
        SnapshotInfo(f"s{d:03d}", "stigmem:node:x", first + timedelta(days=d)) for d in range(120)
    ]
    plan = plan_prune(Policy(keep_daily=30), snaps)
    check_golden("runbook_120_daily_keep_daily_30", plan, snaps)
    assert [e.id for e in plan.entries if e.action == "keep"] == [
        f"s{d:03d}" for d in range(119, 89, -1)
    ]
    assert len(plan.remove) == 90


def test_fewer_snapshots_than_slots_keeps_them_all() -> None:
    snaps = HISTORY[-5:]
    plan = plan_prune(Policy(keep_last=10), snaps)
    assert plan.remove == []


def test_several_per_day_with_few_days_keeps_the_oldest_too() -> None:
    # Restic's rule: slots left after the oldest day, so its oldest snapshot is kept as well.
    day = datetime(2026, 6, 1, tzinfo=UTC)
    snaps = [
        SnapshotInfo(f"d{d}h{h}", "n", day + timedelta(days=d, hours=h))
        for d in range(3)
        for h in (1, 2, 3)
    ]
    plan = plan_prune(Policy(keep_daily=7), snaps)
    assert sorted(kept_ids(plan)) == ["d0h1", "d0h3", "d1h3", "d2h3"]


def test_times_in_other_zones_are_bucketed_in_utc() -> None:
    from datetime import timezone

    plus2 = timezone(timedelta(hours=2))
    # 01:00+02:00 on 2 June is 23:00 UTC on 1 June: same UTC day as the other one.
    snaps = [
        SnapshotInfo("late", "n", datetime(2026, 6, 2, 1, 0, tzinfo=plus2)),
        SnapshotInfo("early", "n", datetime(2026, 6, 1, 10, 0, tzinfo=UTC)),
        SnapshotInfo("before", "n", datetime(2026, 5, 31, 10, 0, tzinfo=UTC)),
    ]
    plan = plan_prune(Policy(keep_daily=1), snaps)
    assert kept_ids(plan) == {"late"}
    assert plan.entries[0].created_at == datetime(2026, 6, 1, 23, 0, tzinfo=UTC)


# --- refusing to remove everything, bad input ---------------------------------------------------


@pytest.mark.parametrize(
    "policy", [Policy(), Policy(keep_daily=0, keep_last=0), Policy(keep_within=timedelta(0))]
)
def test_empty_policy_is_refused(policy: Policy) -> None:
    with pytest.raises(ConfigError) as info:
        plan_prune(policy, HISTORY[:10])
    assert isinstance(info.value, EmptyPolicyError)
    assert str(info.value) == EMPTY_POLICY_MESSAGE
    assert info.value.exit_code == 1


def test_no_snapshots_is_an_empty_plan() -> None:
    plan = plan_prune(Policy(keep_last=1), [])
    assert plan.entries == [] and plan.remove == []


def test_naive_created_at_is_rejected() -> None:
    with pytest.raises(ValueError, match="no time zone"):
        plan_prune(Policy(keep_last=1), [SnapshotInfo("x", "n", datetime(2026, 1, 1))])


def test_100k_snapshots_plan_in_one_go() -> None:
    base = datetime(2014, 1, 1, tzinfo=UTC)
    snaps = [
        SnapshotInfo(f"{i:06d}", f"n{i % 4}", base + timedelta(minutes=30 * i))
        for i in range(100_000)
    ]
    plan = plan_prune(
        Policy(keep_last=5, keep_daily=30, keep_weekly=8, keep_monthly=24, keep_yearly=10), snaps
    )
    assert len(plan.entries) == 100_000
    assert 0 < len(plan.remove) < 100_000


# --- Policy ---------------------------------------------------------------------------------


def test_overrides_replace_the_whole_policy() -> None:
    tier = Policy(keep_daily=30, keep_within=timedelta(days=7))
    assert tier.with_overrides() is tier
    assert tier.with_overrides(keep_last=1) == Policy(keep_last=1)
    assert tier.with_overrides(keep_within="12h") == Policy(keep_within=timedelta(hours=12))
    assert tier.with_overrides(keep_daily=0).is_empty()


def test_policy_json_round_trips() -> None:
    policy = Policy(keep_daily=7, keep_weekly=4, keep_within=timedelta(days=30))
    doc: dict[str, Any] = policy.to_json()
    assert doc == {"keep_daily": 7, "keep_weekly": 4, "keep_within": "30d"}
    assert Policy.from_json(json.loads(json.dumps(doc))) == policy
    assert policy.describe() == "keep 7 daily, 4 weekly, within 30d"


@pytest.mark.parametrize(
    "kwargs",
    [{"keep_daily": -1}, {"keep_last": True}, {"keep_weekly": 1.5}, {"keep_within": "30d"}],
)
def test_policy_rejects_bad_values(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Policy(**kwargs)


def test_plan_json_matches_the_prune_contract() -> None:
    plan = plan_prune(Policy(keep_last=1), HISTORY[-2:])
    assert plan.to_json() == [
        {
            "id": "a-20251231T2341",
            "created_at": "2025-12-31T23:41:23+00:00",
            "node_id": "stigmem:node:a",
            "action": "keep",
            "reasons": ["last snapshot"],
        },
        {
            "id": "a-20251231T2234",
            "created_at": "2025-12-31T22:34:22+00:00",
            "node_id": "stigmem:node:a",
            "action": "remove",
            "reasons": [],
        },
    ]


# --- the planner's core over rows, and the plan's JSON text --------------------------------------


def test_plan_rows_is_plan_prune_over_rows_in_any_order() -> None:
    snaps = [
        replace(s, trusted=i % 5 != 0, pinned=i % 97 == 0, last_verify_ok=i % 7 == 0)
        for i, s in enumerate(HISTORY[-3000:])
    ]
    policy = SINGLE_RULES["all_rules"]
    expected = plan_prune(policy, snaps)
    rows = [plan_row(s) for s in snaps]
    for ordered in (rows, rows[::-1], sorted(rows, key=lambda r: r[1])):
        plan = plan_rows(policy, ordered)
        assert plan.plan() == expected
        assert plan.remove == expected.remove
    assert plan_row(snaps[0])[0] == snaps[0].created_at.strftime("%Y-%m-%dT%H:%M:%S.%f")
    assert plan_row(replace(snaps[0], trusted=True, pinned=True, last_verify_ok=True))[3] == (
        TRUSTED | PINNED | VERIFIED_OK
    )


def _dumps(data: object) -> str:
    return json.dumps(data, separators=(",", ":"))


@pytest.mark.parametrize("name", ["keep_daily_7", "all_rules", "keep_within_30d"])
def test_json_text_is_the_plan_as_json_byte_for_byte(name: str) -> None:
    snaps = [
        replace(s, trusted=i % 11 != 0, pinned=i % 301 == 0, last_verify_ok=i % 13 == 0)
        for i, s in enumerate(HISTORY)
    ]
    plan = plan_rows(SINGLE_RULES[name], [plan_row(s) for s in snaps])
    text = plan.json_text()
    # The same text as the entries' dicts through the json module (the former output) ...
    assert text == _dumps(plan_prune(SINGLE_RULES[name], snaps).to_json())
    assert text == _dumps(plan.to_json())
    # ... and so the same data.
    assert json.loads(text) == plan.plan().to_json()


def test_json_text_times_ids_and_nodes_that_need_care() -> None:
    base = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    snaps = [
        # On the second (isoformat leaves the fraction out), a microsecond past, just before.
        SnapshotInfo("plain0", "n", base),
        SnapshotInfo("plain1", "n", base + timedelta(microseconds=1)),
        SnapshotInfo("plain2", "n", base - timedelta(microseconds=1)),
        # A node id that ends like a time and holds characters JSON escapes.
        SnapshotInfo("odd-node", 'no"de\\.000000+00:00', base - timedelta(hours=1)),
        SnapshotInfo("unicode", "nœud\n\u2028", base - timedelta(hours=2), pinned=True),
        SnapshotInfo('quo"te\\', "n", base - timedelta(days=1), trusted=False),
        SnapshotInfo("ünï", "n", base - timedelta(days=2)),
    ]
    for policy in (Policy(keep_last=1), Policy(keep_daily=2, keep_within=timedelta(hours=1))):
        plan = plan_rows(policy, [plan_row(s) for s in snaps])
        text = plan.json_text()
        assert text == _dumps(plan_prune(policy, snaps).to_json())
        assert [e["created_at"] for e in json.loads(text)[:3]] == [
            "2026-05-01T12:00:00.000001+00:00",
            "2026-05-01T12:00:00+00:00",
            "2026-05-01T11:59:59.999999+00:00",
        ]
    # Plain ids only: the same path as the catalog's hex ids.
    plain = plan_rows(Policy(keep_last=1), [plan_row(s) for s in snaps[:3]])
    assert plain.json_text() == _dumps(plain.to_json())


def test_json_text_of_an_empty_plan() -> None:
    assert plan_rows(Policy(keep_last=1), []).json_text() == "[]"


def test_keep_within_reaching_before_year_one_keeps_everything() -> None:
    snaps = HISTORY[-10:]
    plan = plan_prune(Policy(keep_within=timedelta(days=800_000)), snaps)
    assert plan.remove == []
