"""Fleet health: which nodes are backing up, verified, drilled and copied offsite on time.

Pure logic, no I/O: ``node_health`` takes what the catalog knows about each node
(``NodeFacts``, read by ``Catalog.fleet_facts``), the ``[fleet]`` config, the configured tier
names (the default tier first) and ``now``, and returns one ``NodeHealth`` per node: the nodes
``[fleet] nodes`` names plus every node the catalog holds a snapshot of, sorted by node id.

Problems, in this order (``PROBLEMS``), with ``every`` and ``drill_every`` the node's
``fleet.expected(node_id)``:

- ``never_seen``: a node ``[fleet] nodes`` names has no snapshot in the catalog. It is the
  node's only problem (nothing else can be judged).
- ``overdue``: the newest snapshot is older than ``every`` (``now - created_at > every``).
- ``verify_failed``: the node's newest verification (the latest ``last_verified_at`` over its
  snapshots) has an outcome other than ``ok``. A node never verified has no such problem.
- ``drill_due``: the node has never been drilled, or its newest drill is older than
  ``drill_every``.
- ``drill_failed``: the node's newest drill failed (outcome other than ``ok``), however recent.
- ``offsite_missing``: the newest snapshot older than ``every`` (created at or before
  ``now - every``) must be held, or a newer one must, by every configured tier other than the
  default one (the first). A snapshot younger than ``every`` is not yet required offsite, which
  leaves one ``every`` for the copy; a node with one tier, or whose snapshots are all younger
  than ``every``, never has this problem. A node that stopped is ``overdue``, not also
  ``offsite_missing``, as long as its last due snapshot was copied.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from catalog.records import iso

if TYPE_CHECKING:
    from snapshot.config import Fleet

NEVER_SEEN = "never_seen"
OVERDUE = "overdue"
VERIFY_FAILED = "verify_failed"
DRILL_DUE = "drill_due"
DRILL_FAILED = "drill_failed"
OFFSITE_MISSING = "offsite_missing"
PROBLEMS = (NEVER_SEEN, OVERDUE, VERIFY_FAILED, DRILL_DUE, DRILL_FAILED, OFFSITE_MISSING)


@dataclass(frozen=True)
class NodeFacts:
    """What the catalog knows about one node (times are aware, UTC)."""

    node_id: str
    last_snapshot_at: datetime | None = None
    last_verified_at: datetime | None = None
    last_verify_outcome: str | None = None
    last_drill_at: datetime | None = None
    last_drill_outcome: str | None = None
    restore_seconds: float | None = None  # of the newest drill
    # Tier -> created_at of the node's newest snapshot with a live placement there.
    tiers: Mapping[str, datetime] = field(default_factory=dict)
    # created_at of the node's newest snapshot at or before ``now - every`` (None: none is).
    due_snapshot_at: datetime | None = None


@dataclass(frozen=True)
class NodeHealth:
    facts: NodeFacts
    last_snapshot_age_seconds: float | None
    tiers: dict[str, datetime | None]  # every configured tier, default first
    problems: list[str]

    @property
    def node_id(self) -> str:
        return self.facts.node_id

    @property
    def overdue(self) -> bool:
        """For the ``stigmem_node_overdue`` metric: overdue, or expected and never seen."""
        return OVERDUE in self.problems or NEVER_SEEN in self.problems

    def to_json(self) -> dict[str, Any]:
        f = self.facts
        return {
            "node_id": f.node_id,
            "last_snapshot_at": iso(f.last_snapshot_at),
            "last_snapshot_age_seconds": self.last_snapshot_age_seconds,
            "last_verified_at": iso(f.last_verified_at),
            "last_verify_outcome": f.last_verify_outcome,
            "last_drill_at": iso(f.last_drill_at),
            "last_drill_outcome": f.last_drill_outcome,
            "restore_seconds": f.restore_seconds,
            "tiers": {tier: iso(at) for tier, at in self.tiers.items()},
            "problems": list(self.problems),
        }


def problems_of(
    facts: NodeFacts, fleet: Fleet, tier_names: Sequence[str], now: datetime
) -> list[str]:
    """The node's problems, in ``PROBLEMS`` order (rules in the module docstring)."""
    if facts.last_snapshot_at is None:
        return [NEVER_SEEN]
    expected = fleet.expected(facts.node_id)
    found: list[str] = []
    if now - facts.last_snapshot_at > expected.every:
        found.append(OVERDUE)
    if facts.last_verified_at is not None and facts.last_verify_outcome != "ok":
        found.append(VERIFY_FAILED)
    if facts.last_drill_at is None or now - facts.last_drill_at > expected.drill_every:
        found.append(DRILL_DUE)
    if facts.last_drill_at is not None and facts.last_drill_outcome != "ok":
        found.append(DRILL_FAILED)
    due = facts.due_snapshot_at
    if due is not None:
        for tier in tier_names[1:]:
            held = facts.tiers.get(tier)
            if held is None or held < due:
                found.append(OFFSITE_MISSING)
                break
    return found


def node_health(
    facts: Mapping[str, NodeFacts],
    fleet: Fleet,
    tier_names: Sequence[str],
    now: datetime,
) -> list[NodeHealth]:
    """One report per node of ``[fleet] nodes`` and of ``facts``, sorted by node id.

    ``tier_names``: the configured tiers, the default one first. ``facts`` of a node may come
    without ``due_snapshot_at`` only if it has no snapshot older than its ``every``.
    """
    reports = []
    for node_id in sorted({*fleet.nodes, *facts}):
        node = facts.get(node_id) or NodeFacts(node_id)
        age = None if node.last_snapshot_at is None else (now - node.last_snapshot_at)
        reports.append(
            NodeHealth(
                facts=node,
                last_snapshot_age_seconds=None if age is None else age.total_seconds(),
                tiers={tier: node.tiers.get(tier) for tier in tier_names},
                problems=problems_of(node, fleet, tier_names, now),
            )
        )
    return reports


def unhealthy(reports: Iterable[NodeHealth]) -> bool:
    return any(report.problems for report in reports)
