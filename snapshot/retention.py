"""Prune planning: which snapshots a retention policy keeps, and why. Pure: no I/O, no clock.

Semantics are restic's ``forget`` (docs/design.md sections 7 and 9), applied per node id:

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

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from itertools import chain, compress, repeat
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

    def longest_keep(self) -> timedelta | None:
        """The longest any time rule can keep a snapshot (a bucket rule's N buckets, a month
        counted as 31 days and a year as 366; ``keep_within``), or None when no rule is
        bounded in time (``keep_last`` keeps a snapshot for as long as fewer are taken)."""
        spans = [
            timedelta(hours=self.keep_hourly or 0),
            timedelta(days=self.keep_daily or 0),
            timedelta(weeks=self.keep_weekly or 0),
            timedelta(days=31 * (self.keep_monthly or 0)),
            timedelta(days=366 * (self.keep_yearly or 0)),
            self.keep_within or timedelta(0),
        ]
        longest = max(spans)
        return longest if longest > timedelta(0) else None

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
        given (docs/design.md section 9: flags replace the tier's policy, they do not merge into it,
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


# One snapshot as the planner's core takes it: ``(created_utc, id, node_id, flags)``.
#
# ``created_utc`` is the UTC time as fixed-width ISO 8601 text without the offset,
# "YYYY-MM-DDTHH:MM:SS.ffffff" (``utc_text`` makes it from a datetime; the catalog makes it from
# its stored text in SQL). Text order is time order, the hour, day, month and year buckets
# are prefixes of it, and the plan's ``created_at`` is it plus "+00:00" (minus a zero
# fraction, as ``datetime.isoformat`` writes it): 100,000 snapshots plan and serialise
# without a datetime object each. ``flags`` is a sum of TRUSTED, PINNED and VERIFIED_OK.
PlanRow = tuple[str, str, str, int]
TRUSTED = 1  # signed by a key that counts for retention
PINNED = 2
VERIFIED_OK = 4  # its last verification was ok


def utc_text(moment: datetime, snapshot_id: str = "?") -> str:
    """``created_utc`` of a PlanRow; ``ValueError`` for a naive datetime."""
    return _utc(moment, snapshot_id).replace(tzinfo=None).isoformat(timespec="microseconds")


def utc_datetime(created_utc: str) -> datetime:
    return datetime.fromisoformat(created_utc).replace(tzinfo=UTC)


def plan_row(snapshot: SnapshotInfo) -> PlanRow:
    flags = (
        (TRUSTED if snapshot.trusted else 0)
        | (PINNED if snapshot.pinned else 0)
        | (VERIFIED_OK if snapshot.last_verify_ok else 0)
    )
    return (utc_text(snapshot.created_at, snapshot.id), snapshot.id, snapshot.node_id, flags)


@dataclass(slots=True)  # not frozen: building 100,000 frozen instances costs a third of a plan
class PlanEntry:
    id: str
    created_at: datetime
    node_id: str
    action: Action
    reasons: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The ``plan`` item of ``snapshot prune --json`` (docs/design.md section 8)."""
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


@dataclass(frozen=True, slots=True)
class RowPlan:
    """The planner's core result: ``rows`` newest first (ties: larger id first), and for each
    the reasons that keep it (``()``: removed). Equal reason tuples are one object."""

    policy: Policy
    rows: list[PlanRow]
    reasons: list[tuple[str, ...]]
    remove: list[str]  # ids with action "remove", newest first

    def entries(self) -> list[PlanEntry]:
        return [
            PlanEntry(sid, utc_datetime(created), node, "keep" if why else "remove", list(why))
            for (created, sid, node, _flags), why in zip(self.rows, self.reasons, strict=True)
        ]

    def plan(self) -> Plan:
        return Plan(policy=self.policy, entries=self.entries(), remove=self.remove)

    def to_json(self) -> list[dict[str, Any]]:
        """The ``plan`` array of ``snapshot prune --json`` as data (what ``json_text`` says)."""
        return [entry.to_json() for entry in self.entries()]

    def json_text(self) -> str:
        """``json.dumps(self.to_json(), separators=(",", ":"))``, byte for byte, at a fraction
        of the cost: the text is joined once, in C, from each entry's id, its time and one
        fragment per (node, reasons) pair holding everything after the time."""
        rows = self.rows
        if not rows:
            return "[]"
        tails = _Tails()
        ids: Iterable[str] = map(_ID, rows)
        if _plain_json("".join(map(_ID, rows))):  # as snapshot ids are: no escaping
            head, middle = ',{"id":"', '","created_at":"'
        else:
            head, middle, ids = ',{"id":', ',"created_at":"', map(json.dumps, ids)
        parts = list(
            chain.from_iterable(
                zip(
                    repeat(head),
                    ids,
                    repeat(middle),
                    map(_CREATED, rows),
                    map(tails.__getitem__, zip(map(_NODE, rows), self.reasons, strict=True)),
                )
            )
        )
        parts[0] = "[" + head[1:]
        parts.append("]")
        # isoformat() leaves out a zero fraction; only a time can precede this fragment.
        return "".join(parts).replace('.000000+00:00","node_id":', '+00:00","node_id":')


class _Tails(dict[tuple[str, tuple[str, ...]], str]):
    """The JSON of an entry after its time, per (node, reasons): made on first use, so the
    lookups (C, through ``map``) need no pass over the plan beforehand."""

    def __missing__(self, key: tuple[str, tuple[str, ...]]) -> str:
        node, why = key
        tail = self[key] = (
            f'+00:00","node_id":{json.dumps(node)},"action":'
            f'"{"keep" if why else "remove"}","reasons":'
            f"{json.dumps(list(why), separators=_COMPACT)}}}"
        )
        return tail


_CREATED, _ID, _NODE, _FLAGS = itemgetter(0), itemgetter(1), itemgetter(2), itemgetter(3)
_COMPACT = (",", ":")
# Printable ASCII but '"' and '\\': a string of these is its own JSON text between quotes.
_PLAIN_BYTES = bytes(c for c in range(0x20, 0x7F) if c not in b'"\\')


def _plain_json(text: str) -> bool:
    try:
        return not text.encode("ascii").translate(None, _PLAIN_BYTES)
    except UnicodeEncodeError:
        return False


class _Bucket:
    """One bucket rule's counter for one node. ``width``: the bucket key is that prefix of
    ``created_utc``; 0 for keep_last (every snapshot is its own bucket), -1 for ISO weeks."""

    __slots__ = ("last_key", "reason", "remaining", "width")

    def __init__(self, width: int, reason: str, count: int) -> None:
        self.width = width
        self.reason = reason
        self.remaining = count
        self.last_key: object = None


_WIDTHS: dict[str, int] = {
    "keep_last": 0,
    "keep_hourly": 13,  # "YYYY-MM-DDTHH"
    "keep_daily": 10,  # "YYYY-MM-DD"
    "keep_weekly": -1,  # from the day, through a per-day cache
    "keep_monthly": 7,  # "YYYY-MM"
    "keep_yearly": 4,  # "YYYY"
}


def plan_prune(policy: Policy, snapshots: Iterable[SnapshotInfo]) -> Plan:
    """Decide keep/remove for every snapshot; entries newest first (ties: larger id first).

    Raises :class:`EmptyPolicyError` (a ``ConfigError``) when the policy has no rule, and
    ``ValueError`` for a naive ``created_at``. Entry times are the snapshots' times in UTC.
    """
    if policy.is_empty():
        raise EmptyPolicyError()
    return plan_rows(policy, [plan_row(s) for s in snapshots]).plan()


def plan_rows(policy: Policy, rows: Iterable[PlanRow]) -> RowPlan:
    """The planner itself, over :data:`PlanRow` tuples.

    Linear after one sort (nearly free when the rows come newest first, as the catalog gives
    them): one walk newest to oldest in which a node whose bucket rules are spent costs a
    few comparisons per snapshot. Raises :class:`EmptyPolicyError` for an empty policy.
    """
    if policy.is_empty():
        raise EmptyPolicyError()
    rules = [
        (_WIDTHS[key], _REASONS[key], int(getattr(policy, key)))
        for key in BUCKET_RULES
        if getattr(policy, key)
    ]
    within = policy.keep_within or None
    within_reason = f"within {format_duration(within)}" if within else ""

    # Newest first; ties broken by id so the plan never depends on input order.
    ordered = sorted(rows, reverse=True)

    # Per node, among trusted snapshots: the newest (keep_within's reference point), the
    # oldest (restic keeps it while a bucket rule has slots left) and the newest whose last
    # verification was ok (never removed). Built by dict() from zipped columns, in C: the
    # last value given for a node wins.
    trusted = list(compress(ordered, map(TRUSTED.__and__, map(_FLAGS, ordered))))
    oldest = dict(zip(map(_NODE, trusted), map(_ID, trusted), strict=True))
    ascending = trusted[::-1]
    newest = dict(zip(map(_NODE, ascending), map(_CREATED, ascending), strict=True))
    ok = list(compress(ascending, map(VERIFIED_OK.__and__, map(_FLAGS, ascending))))
    verified = set(dict(zip(map(_NODE, ok), map(_ID, ok), strict=True)).values())
    # Per node: (keep_within's cutoff or None, its bucket rules that still have slots).
    state = {
        node: (_cutoff(created, within), [_Bucket(w, reason, n) for w, reason, n in rules])
        for node, created in newest.items()
    }
    weeks: dict[str, tuple[int, int]] = {}

    untrusted = ("untrusted",)
    untrusted_pinned = ("untrusted", "pinned")
    interned: dict[tuple[str, ...], tuple[str, ...]] = {}
    reasons: list[tuple[str, ...]] = []
    remove: list[str] = []
    add_reasons, add_remove, intern = reasons.append, remove.append, interned.setdefault
    for created, sid, node, flags in ordered:
        if not flags & TRUSTED:
            # Not ours to judge: it takes no slot and is never removed.
            add_reasons(untrusted_pinned if flags & PINNED else untrusted)
            continue
        cutoff, buckets = state[node]
        why: tuple[str, ...] = (within_reason,) if cutoff is not None and created > cutoff else ()
        if buckets:
            is_oldest = sid == oldest[node]
            spent = False
            for bucket in buckets:
                width = bucket.width
                key: object
                if width > 0:
                    key = created[:width]
                elif width == 0:
                    key = sid
                else:
                    day = created[:10]
                    key = weeks.get(day)
                    if key is None:
                        key = weeks[day] = date.fromisoformat(day).isocalendar()[:2]
                if key != bucket.last_key or is_oldest:
                    bucket.last_key = key
                    bucket.remaining -= 1
                    spent = spent or bucket.remaining == 0
                    why += (bucket.reason,)
            if spent:
                buckets[:] = [b for b in buckets if b.remaining]
        if sid in verified:
            why += ("newest verified",)
        if flags & PINNED:
            why += ("pinned",)
        if why:
            add_reasons(intern(why, why))
        else:
            add_reasons(why)
            add_remove(sid)
    return RowPlan(policy=policy, rows=ordered, reasons=reasons, remove=remove)


def _cutoff(newest: str, within: timedelta | None) -> str | None:
    """keep_within keeps what is strictly newer than this ``created_utc`` text."""
    if within is None:
        return None
    try:
        return utc_text(utc_datetime(newest) - within)
    except OverflowError:  # reaches before year 1: everything is within
        return ""


def _utc(moment: datetime, snapshot_id: str) -> datetime:
    if moment.tzinfo is UTC:
        return moment
    if moment.tzinfo is None:
        raise ValueError(f"snapshot {snapshot_id}: created_at has no time zone")
    if moment.utcoffset() == timedelta(0):
        return moment if moment.tzinfo is UTC else moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)
