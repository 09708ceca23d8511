"""``stigmem catalog health`` and the per-node series of ``catalog metrics`` on a 30-day
history of five nodes, built through the Python API (tests/store/history.py).

The history is dated by ``day_at`` (days after 2026-01-01 03:00 UTC), not by the real clock,
so the commands are judged at a fixed "now": day 30 at 05:00, two hours after that day's
snapshots (``cli.health._now`` is replaced; the commands run in this process).

Every node snapshots daily into tier local; ``store sync`` to tier offsite is recorded as
the offsite placement of each day's snapshot the next day (so the day-30 snapshot is not
offsite yet, as after a real nightly sync). Drills and verifications are recorded with the
catalog's clock set to the day they ran.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from catalog.database import Catalog
from store.repository import Store
from tests.conftest import Runner, ok
from tests.store.history import day_at, snapshot_day, tiny_node, trust, write_config

NOW = day_at(30) + timedelta(hours=2)
DRILL_DAY = 25
RESTORE_SECONDS = {"steady": 4.5, "stray": 2.25, "stopped": 3.0, "no_offsite": 5.0}


@dataclass(frozen=True)
class Plan:
    """One node's history: snapshots on days 0..last_day, offsite copies of days up to
    offsite_until, a drill (ok) on drill_day unless None."""

    last_day: int = 30
    offsite_until: int = 29
    drill_day: int | None = DRILL_DAY
    in_fleet: bool = True


BAD = {
    "steady": Plan(),
    "stray": Plan(in_fleet=False),  # not in [fleet] nodes: seen through the catalog only
    "stopped": Plan(last_day=20, offsite_until=20, drill_day=19),
    "undrilled": Plan(drill_day=None),
    "no_offsite": Plan(offsite_until=25),
}
GOOD = {name: Plan(in_fleet=name != "stray") for name in BAD}


class SettableClock:
    def __init__(self) -> None:
        self.now = day_at(0)

    def __call__(self) -> datetime:
        return self.now


def build(home: Path, scratch: Path, plans: dict[str, Plan]) -> dict[str, str]:
    """The history of ``plans`` in ``home``'s catalog and stores; node name -> node id."""
    write_config(
        home / "config.toml",
        {"local": {"store": str(home / "local")}, "offsite": {"store": str(home / "offsite")}},
    )
    local = Store.open(str(home / "local"), create=True)
    Store.open(str(home / "offsite"), create=True)  # what `store sync` writes is not read here
    clock = SettableClock()
    catalog = Catalog.open(f"sqlite:///{home / 'catalog.db'}", clock=clock)
    node_ids: dict[str, str] = {}
    try:
        for seed, (name, plan) in enumerate(plans.items(), start=1):
            node = tiny_node(scratch / f"{name}.db", seed=seed)
            node_ids[name] = node.info.node_id
            if seed == 1:
                trust(catalog, node)  # every node signs with the same key here
            for day in range(plan.last_day + 1):
                clock.now = day_at(day)
                snapshot_day(node, day, local, catalog, "local", scratch)
            for day in range(min(plan.offsite_until, plan.last_day) + 1):
                clock.now = day_at(day + 1) + timedelta(hours=1)
                catalog.record_placement(node.ids[day], "offsite", str(home / "offsite"))
            newest = node.ids[plan.last_day]
            clock.now = day_at(plan.last_day) + timedelta(minutes=30)
            catalog.record_verification(newest, "default", "verify", "ok", "")
            if plan.drill_day is not None:
                clock.now = day_at(plan.drill_day) + timedelta(hours=1)
                catalog.record_drill(
                    node.ids[plan.drill_day],
                    node.info.node_id,
                    "ok",
                    [{"name": "restore", "ok": True, "detail": ""}],
                    RESTORE_SECONDS.get(name, 1.0),
                    node.info.size,
                    "local",
                )
    finally:
        catalog.close()
    fleet_nodes = [node_ids[n] for n, plan in plans.items() if plan.in_fleet]
    with (home / "config.toml").open("a") as config:
        config.write(f'[fleet]\nnodes = {json.dumps(fleet_nodes)}\ndrill_every = "14d"\n')
    return node_ids


@pytest.fixture
def at_now(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("cli.health._now", lambda: NOW)


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="microseconds")


PROM_LINE = re.compile(r'^([a-z_]+)\{node="([^"]*)"\} (\S+)$')


def node_metrics(text: str) -> dict[tuple[str, str], float]:
    """The node-labelled samples of Prometheus text, by (metric, node)."""
    found: dict[tuple[str, str], float] = {}
    for line in text.splitlines():
        match = PROM_LINE.match(line)
        if match:
            found[(match[1], match[2])] = float(match[3])
    return found


def test_health_names_the_stopped_undrilled_and_unsynced_nodes(
    stigmem: Runner, home: Path, tmp_path: Path, at_now: None
) -> None:
    ids = build(home, tmp_path, BAD)
    name = {node_id: n for n, node_id in ids.items()}

    result = stigmem("catalog", "health", "--json")
    assert result.returncode == 1, result
    assert result.stderr == ""  # a finding, not an error: no message, no traceback
    report = {name[node["node_id"]]: node for node in result.json()}
    assert {n: node["problems"] for n, node in report.items()} == {
        "steady": [],
        "stray": [],
        "stopped": ["overdue"],
        "undrilled": ["drill_due"],
        "no_offsite": ["offsite_missing"],
    }
    assert [node["node_id"] for node in result.json()] == sorted(ids.values())

    stopped = report["stopped"]
    assert stopped["last_snapshot_at"] == iso(day_at(20))
    assert stopped["last_snapshot_age_seconds"] == (10 * 24 + 2) * 3600
    assert stopped["tiers"] == {"local": iso(day_at(20)), "offsite": iso(day_at(20))}
    assert (stopped["last_verified_at"], stopped["last_verify_outcome"]) == (
        iso(day_at(20) + timedelta(minutes=30)),
        "ok",
    )
    steady = report["steady"]
    assert steady["last_snapshot_age_seconds"] == 2 * 3600
    assert steady["tiers"] == {"local": iso(day_at(30)), "offsite": iso(day_at(29))}
    assert (steady["last_drill_at"], steady["last_drill_outcome"], steady["restore_seconds"]) == (
        iso(day_at(DRILL_DAY) + timedelta(hours=1)),
        "ok",
        4.5,
    )
    undrilled = report["undrilled"]
    assert (undrilled["last_drill_at"], undrilled["restore_seconds"]) == (None, None)
    assert report["no_offsite"]["tiers"] == {"local": iso(day_at(30)), "offsite": iso(day_at(25))}

    table = stigmem("catalog", "health")
    assert table.returncode == 1, table
    assert table.stderr == ""
    lines = [line.split("\t") for line in table.stdout.splitlines()]
    assert lines[0] == [
        "NODE",
        "LAST SNAPSHOT",
        "AGE",
        "VERIFY",
        "DRILL",
        "local",
        "offsite",
        "PROBLEMS",
    ]
    problems = {name[row[0]]: row[-1] for row in lines[1:]}
    assert problems == {
        "steady": "ok",
        "stray": "ok",
        "stopped": "overdue",
        "undrilled": "drill_due",
        "no_offsite": "offsite_missing",
    }

    metrics = node_metrics(ok(stigmem("catalog", "metrics")).stdout)
    overdue = {name[node]: v for (metric, node), v in metrics.items() if metric.endswith("overdue")}
    assert overdue == {"steady": 0, "stray": 0, "stopped": 1, "undrilled": 0, "no_offsite": 0}
    drilled = {n for n in ids if ("stigmem_drill_ok", ids[n]) in metrics}
    assert drilled == {"steady", "stray", "stopped", "no_offsite"}  # none for undrilled
    for n in drilled:
        drill_day = BAD[n].drill_day
        assert drill_day is not None
        assert metrics[("stigmem_drill_ok", ids[n])] == 1
        assert metrics[("stigmem_restore_seconds", ids[n])] == RESTORE_SECONDS[n]
        age = NOW - (day_at(drill_day) + timedelta(hours=1))
        assert metrics[("stigmem_last_drill_age_seconds", ids[n])] == age.total_seconds()


def test_a_healthy_fleet_exits_0(stigmem: Runner, home: Path, tmp_path: Path, at_now: None) -> None:
    ids = build(home, tmp_path, GOOD)

    report = ok(stigmem("catalog", "health", "--json")).json()
    assert sorted(node["node_id"] for node in report) == sorted(ids.values())
    assert all(node["problems"] == [] for node in report), report
    table = ok(stigmem("catalog", "health"))
    assert [row.split("\t")[-1] for row in table.stdout.splitlines()[1:]] == ["ok"] * 5

    metrics = node_metrics(ok(stigmem("catalog", "metrics")).stdout)
    assert {metrics[("stigmem_node_overdue", node_id)] for node_id in ids.values()} == {0}
    assert {metrics[("stigmem_drill_ok", node_id)] for node_id in ids.values()} == {1}


def test_a_fleet_node_never_seen(stigmem: Runner, home: Path, tmp_path: Path, at_now: None) -> None:
    """A node [fleet] names that never backed up is reported, and overdue in the metrics."""
    build(home, tmp_path, {"steady": Plan()})
    with (home / "config.toml").open("a") as config:
        config.write('[fleet.node."stigmem:node:ghost"]\nevery = "7d"\n')
    text = (home / "config.toml").read_text()
    (home / "config.toml").write_text(
        text.replace("nodes = [", 'nodes = ["stigmem:node:ghost", ', 1)
    )

    result = stigmem("catalog", "health", "--json")
    assert result.returncode == 1, result
    ghost = next(n for n in result.json() if n["node_id"] == "stigmem:node:ghost")
    assert ghost["problems"] == ["never_seen"]
    assert ghost["last_snapshot_at"] is None
    assert ghost["tiers"] == {"local": None, "offsite": None}
    metrics = node_metrics(ok(stigmem("catalog", "metrics")).stdout)
    assert metrics[("stigmem_node_overdue", "stigmem:node:ghost")] == 1
