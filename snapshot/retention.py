"""Prune planning: which snapshots a retention policy keeps, and why. Pure: no I/O, no clock.

Semantics are restic's ``forget`` (DESIGN.md sections 7 and 9), applied per node id:

- ``keep_last N`` keeps the N newest snapshots;
- ``keep_hourly/daily/weekly/monthly/yearly N`` keep the newest snapshot of each of the N most
  recent UTC hours / days / ISO weeks / months / years that have a snapshot;
- as in restic, when a bucket rule still has slots left after the node's oldest snapshot,
  that oldest snapshot is kept too (it lengthens the history kept while the policy allows);
- ``keep_within D`` keeps every snapshot strictly newer than (newest snapshot - D);
- a snapshot survives if any rule keeps it.

Safety rules on top of restic's: only trusted snapshots count toward (and are removed by) the
rules; untrusted ones are listed as kept with reason ``untrusted`` and take no bucket slot.
Pinned snapshots are never removed, and neither is the newest trusted snapshot of each node
whose last verification was ok. An empty policy is refused instead of removing everything.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from operator import itemgetter
from typing import Any, Literal

from snapshot.durations import format_duration, parse_duration
from snapshot.errors import ConfigError

Action = Literal["keep", "remove"]

EMPTY_POLICY_MESSAGE = "empty retention policy: refusing to remove every snapshot"

# Bucket rules in restic's evaluation (and reason) order.
BUCKET_RULES: tuple[str, ...] = (
    "keep_last",
    "keep_hourly",
    "keep_daily",
    "keep_weekly",
    "keep_monthly",
    "keep_yearly",
)
POLICY_KEYS: tuple[str, ...] = (*BUCKET_RULES, "keep_within")

_REASONS: dict[str, str] = {
    "keep_last": "last snapshot",
    "keep_hourly": "hourly snapshot",
    "keep_daily": "daily snapshot",
    "keep_weekly": "weekly snapshot",
    "keep_monthly": "monthly snapshot",
    "keep_yearly": "yearly snapshot",
}


class EmptyPolicyError(ConfigError):
    """No rule is set (or every rule is 0): planning would remove every snapshot."""

    def __init__(self) -> None:
        super().__init__(EMPTY_POLICY_MESSAGE)


@dataclass(frozen=True)
class Policy:
    """A retention policy. ``None`` (or 0) means the rule is not used, as in restic."""

    keep_last: int | None = None
    keep_hourly: int | None = None
    keep_daily: int | None = None
    keep_weekly: int | None = None
    keep_monthly: int | None = None
    keep_yearly: int | None = None
    keep_within: timedelta | None = None

    def __post_init__(self) -> None:
        for key in BUCKET_RULES:
            value = getattr(self, key)
            # bool is an int in Python; True as a count is always a mistake.
            if value is not None and (
                not isinstance(value, int) or isinstance(value, bool) or value < 0
            ):
                raise ValueError(f"{key} must be a non-negative integer, got {value!r}")
        if self.keep_within is not None and (
            not isinstance(self.keep_within, timedelta) or self.keep_within < timedelta(0)
        ):
            raise ValueError(
                f"keep_within must be a non-negative timedelta, got {self.keep_within!r}"
            )

    def is_empty(self) -> bool:
        """True when no rule would keep anything (restic treats 0 as "not set")."""
        return not any(getattr(self, key) for key in POLICY_KEYS)

    def with_overrides(
        self,
        *,
        keep_last: int | None = None,
        keep_hourly: int | None = None,
        keep_daily: int | None = None,
        keep_weekly: int | None = None,
        keep_monthly: int | None = None,
        keep_yearly: int | None = None,
        keep_within: timedelta | str | None = None,
    ) -> Policy:
        """The policy for one prune run given the command line's ``--keep-*`` flags.

        ``None`` means "flag not given". If any flag is given, the result is exactly the flags
        given (DESIGN.md section 9: flags replace the tier's policy, they do not merge into it,
        so ``--keep-last 1`` really keeps one). With no flag, the tier's policy is returned.
        A string ``keep_within`` is parsed (``DurationError`` on bad text).
        """
        within = parse_duration(keep_within) if isinstance(keep_within, str) else keep_within
        given = Policy(
            keep_last=keep_last,
            keep_hourly=keep_hourly,
            keep_daily=keep_daily,
            keep_weekly=keep_weekly,
            keep_monthly=keep_monthly,
            keep_yearly=keep_yearly,
            keep_within=within,
        )
        if all(getattr(given, key) is None for key in POLICY_KEYS):
            return self
        return given

    def to_json(self) -> dict[str, Any]:
        """The rules that are set, for the catalog's prune record: ``{"keep_daily": 30}``,
        ``{"keep_within": "30d"}``. Round-trips through :meth:`from_json`."""
        out: dict[str, Any] = {}
        for key in BUCKET_RULES:
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        if self.keep_within is not None:
            out["keep_within"] = format_duration(self.keep_within)
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Policy:
        unknown = sorted(set(data) - set(POLICY_KEYS))
        if unknown:
            raise ValueError(f"unknown policy key {unknown[0]!r}")
        within = data.get("keep_within")
        return cls(
            **{key: data.get(key) for key in BUCKET_RULES},
            keep_within=parse_duration(within) if isinstance(within, str) else within,
        )

    def describe(self) -> str:
        """One line for humans: ``keep 7 daily, 4 weekly, within 30d``."""
        parts = [
            f"{getattr(self, k)} {k.removeprefix('keep_')}"
            for k in BUCKET_RULES
            if getattr(self, k)
        ]
        if self.keep_within:
            parts.append(f"within {format_duration(self.keep_within)}")
        return "keep " + ", ".join(parts) if parts else "empty policy"


@dataclass(frozen=True, slots=True)
class SnapshotInfo:
    """What the planner needs to know of one snapshot (from the catalog)."""

    id: str
    node_id: str
    created_at: datetime
    trusted: bool = True
    pinned: bool = False
    last_verify_ok: bool = False


@dataclass(slots=True)  # not frozen: building 100,000 frozen instances costs a third of a plan
class PlanEntry:
    id: str
    created_at: datetime
    node_id: str
    action: Action
    reasons: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The ``plan`` item of ``snapshot prune --json`` (DESIGN.md section 8)."""
        return {
            "id": self.id,
            "created_at": self.created_at.isoformat(),
            "node_id": self.node_id,
            "action": self.action,
            "reasons": list(self.reasons),
        }


@dataclass(frozen=True)
class Plan:
    policy: Policy
    entries: list[PlanEntry]  # newest first
    remove: list[str]  # ids with action "remove", newest first

    @property
    def keep(self) -> list[str]:
        return [entry.id for entry in self.entries if entry.action == "keep"]

    def to_json(self) -> list[dict[str, Any]]:
        return [entry.to_json() for entry in self.entries]


# Bucket keys: one integer per UTC hour / day / ISO week / month / year, like restic's ymdh etc.
def _hour(t: datetime) -> int:
    return ((t.year * 100 + t.month) * 100 + t.day) * 100 + t.hour


def _day(t: datetime) -> int:
    return (t.year * 100 + t.month) * 100 + t.day


def _week(t: datetime) -> int:
    year, week, _ = t.isocalendar()
    return year * 100 + week


def _month(t: datetime) -> int:
    return t.year * 100 + t.month


def _year(t: datetime) -> int:
    return t.year


_BUCKET_KEYS: dict[str, Callable[[datetime], int] | None] = {
    "keep_last": None,  # every snapshot is its own bucket
    "keep_hourly": _hour,
    "keep_daily": _day,
    "keep_weekly": _week,
    "keep_monthly": _month,
    "keep_yearly": _year,
}


class _Bucket:
    """One bucket rule's counter for one node."""

    __slots__ = ("key_of", "last_key", "reason", "remaining")

    def __init__(self, key_of: Callable[[datetime], int] | None, reason: str, count: int) -> None:
        self.key_of = key_of
        self.reason = reason
        self.remaining = count
        self.last_key: object = None


class _NodeState:
    """Per-node state while walking newest to oldest."""

    __slots__ = ("active", "cutoff", "oldest_id", "verified_id")

    def __init__(self, rules: list[tuple[Callable[[datetime], int] | None, str, int]]) -> None:
        # Only rules with slots left are walked, so the long tail of old snapshots costs
        # almost nothing once every counter is spent.
        self.active = [_Bucket(key_of, reason, count) for key_of, reason, count in rules]
        self.cutoff: datetime | None = None
        self.oldest_id: str | None = None
        self.verified_id: str | None = None


def plan_prune(policy: Policy, snapshots: Iterable[SnapshotInfo]) -> Plan:
    """Decide keep/remove for every snapshot; entries newest first (ties: larger id first).

    Raises :class:`EmptyPolicyError` (a ``ConfigError``) when the policy has no rule, and
    ``ValueError`` for a naive ``created_at``. Linear after one sort: 100,000 snapshots plan
    in well under a second.
    """
    if policy.is_empty():
        raise EmptyPolicyError()

    rules = [
        (_BUCKET_KEYS[key], _REASONS[key], int(getattr(policy, key)))
        for key in BUCKET_RULES
        if getattr(policy, key)
    ]
    within = policy.keep_within or None
    within_reason = f"within {format_duration(within)}" if within else ""

    # One sort, newest first; ties broken by id so the plan never depends on input order.
    ordered = sorted(
        [(_utc(s.created_at, s.id), s.id, s) for s in snapshots],
        key=itemgetter(0, 1),
        reverse=True,
    )

    # First pass: per node, the newest trusted snapshot (keep_within's reference point), the
    # oldest trusted one (restic keeps it when a bucket rule has slots left) and the newest
    # trusted one whose last verification was ok (never removed).
    nodes: dict[str, _NodeState] = {}
    for when, _, snap in ordered:
        if not snap.trusted:
            continue
        state = nodes.get(snap.node_id)
        if state is None:
            state = nodes[snap.node_id] = _NodeState(rules)
            if within is not None:
                state.cutoff = when - within
        state.oldest_id = snap.id
        if state.verified_id is None and snap.last_verify_ok:
            state.verified_id = snap.id

    entries: list[PlanEntry] = []
    remove: list[str] = []
    for when, _, snap in ordered:
        reasons: list[str] = []
        if not snap.trusted:
            # Not ours to judge: it takes no slot and is never removed.
            reasons.append("untrusted")
        else:
            state = nodes[snap.node_id]
            if state.cutoff is not None and when > state.cutoff:
                reasons.append(within_reason)
            if state.active:
                is_oldest = snap.id == state.oldest_id
                spent = False
                for bucket in state.active:
                    # keep_last has no key function: every snapshot is a new bucket.
                    key = bucket.key_of(when) if bucket.key_of is not None else snap.id
                    if key != bucket.last_key or is_oldest:
                        bucket.last_key = key
                        bucket.remaining -= 1
                        spent = spent or bucket.remaining == 0
                        reasons.append(bucket.reason)
                if spent:
                    state.active = [b for b in state.active if b.remaining]
            if snap.id == state.verified_id:
                reasons.append("newest verified")
        if snap.pinned:
            reasons.append("pinned")
        action: Action = "keep" if reasons else "remove"
        entries.append(PlanEntry(snap.id, when, snap.node_id, action, reasons))
        if not reasons:
            remove.append(snap.id)
    return Plan(policy=policy, entries=entries, remove=remove)


def _utc(moment: datetime, snapshot_id: str) -> datetime:
    if moment.tzinfo is UTC:
        return moment
    if moment.tzinfo is None:
        raise ValueError(f"snapshot {snapshot_id}: created_at has no time zone")
    if moment.utcoffset() == timedelta(0):
        return moment if moment.tzinfo is UTC else moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)
