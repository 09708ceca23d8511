"""Turn the raw measurements into the summary table, the ratios and the acceptance checks."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import median
from typing import Any

MIB = 1024 * 1024
# A daily snapshot may write its pack objects (one per started pack), one index object and
# its snapshot document (docs/design.md section 9); the packs are budgeted per 8 MiB stored.
OBJECT_BUDGET_BYTES = 8 * MIB
GROWTH_FLOOR_LIMIT = 1.25
RSS_LIMIT_MIB = 200.0
RSS_SCALING_LIMIT = 1.25


@dataclass(frozen=True)
class Sample:
    """One backup by one tool on one day (day 0 is the initial, full backup)."""

    tool: str
    day: int
    position: int  # 0 = first tool to run that day
    seconds: float
    copy_seconds: float | None  # part of ``seconds`` spent making the consistent copy
    peak_rss_mib: float
    growth_bytes: int
    objects_written: int


@dataclass(frozen=True)
class Finish:
    """Restore and read-back checks after the last day."""

    tool: str
    restore_seconds: float | None = None
    restore_peak_rss_mib: float | None = None
    restore_matches: bool | None = None  # restored files hash to the copy that was backed up
    new_host_restore_seconds: float | None = None  # no local cache of the repository's index
    restore_runs: tuple[float, ...] = ()  # every round's restore; the median is above
    new_host_runs: tuple[float, ...] = ()
    restore_cpu_runs: tuple[float, ...] = ()  # each round's CPU seconds (user + system)
    warmup_seconds: float | None = None  # the untimed restore before the rounds
    check_seconds: float | None = None
    check_peak_rss_mib: float | None = None
    verify_seconds: float | None = None
    error: str | None = None


@dataclass(frozen=True)
class Summary:
    tool: str
    initial_seconds: float
    initial_store_mib: float
    daily_seconds: float
    peak_rss_mib: float
    growth_mib: float
    growth_vs_floor: float
    objects: float
    restore_seconds: float | None
    check_seconds: float | None
    verify_seconds: float | None
    new_host_restore_seconds: float | None = None


def summarise(
    tool: str, samples: Sequence[Sample], finish: Finish | None, zstd_floor_bytes: float
) -> Summary:
    mine = [s for s in samples if s.tool == tool]
    initial = [s for s in mine if s.day == 0]
    daily = [s for s in mine if s.day > 0] or initial
    growth = median(s.growth_bytes for s in daily)
    return Summary(
        tool=tool,
        initial_seconds=initial[0].seconds if initial else math.nan,
        initial_store_mib=initial[0].growth_bytes / MIB if initial else math.nan,
        daily_seconds=median(s.seconds for s in daily),
        peak_rss_mib=max(s.peak_rss_mib for s in mine),
        growth_mib=growth / MIB,
        growth_vs_floor=growth / zstd_floor_bytes if zstd_floor_bytes else math.nan,
        objects=median(s.objects_written for s in daily),
        restore_seconds=finish.restore_seconds if finish else None,
        check_seconds=finish.check_seconds if finish else None,
        verify_seconds=finish.verify_seconds if finish else None,
        new_host_restore_seconds=finish.new_host_restore_seconds if finish else None,
    )


def fmt(value: float | None, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Plain text, first column left-aligned, the others right-aligned."""
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]

    def line(cells: Sequence[str]) -> str:
        parts = [
            str(c).ljust(w) if i == 0 else str(c).rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), rule, *(line(r) for r in rows)])


SUMMARY_HEADERS = (
    "tool", "daily s", "peak RSS MiB", "growth MiB/day", "growth/zstd floor", "objects/day",
    "restore s", "new host s", "full check s", "verify latest s", "initial s", "initial MiB",
)  # fmt: skip


def summary_rows(summaries: Sequence[Summary]) -> list[list[str]]:
    return [
        [
            s.tool,
            fmt(s.daily_seconds),
            fmt(s.peak_rss_mib, 1),
            fmt(s.growth_mib),
            fmt(s.growth_vs_floor),
            fmt(s.objects, 1),
            fmt(s.restore_seconds),
            fmt(s.new_host_restore_seconds),
            fmt(s.check_seconds),
            fmt(s.verify_seconds),
            fmt(s.initial_seconds),
            fmt(s.initial_store_mib, 1),
        ]
        for s in summaries
    ]


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # PASS, FAIL or SKIP
    detail: str

    def line(self) -> str:
        return f"{self.status:4}  {self.name}: {self.detail}"


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def acceptance(
    by_tool: dict[str, Summary], samples: Sequence[Sample], zstd_floor_bytes: float
) -> list[Check]:
    me = by_tool.get("stigmem")
    if me is None:
        return [Check("acceptance", "SKIP", "stigmem was not run")]
    checks = [
        Check(
            f"stigmem growth <= {GROWTH_FLOOR_LIMIT}x zstd floor",
            verdict(me.growth_vs_floor <= GROWTH_FLOOR_LIMIT),
            f"{fmt(me.growth_mib)} MiB vs floor {fmt(zstd_floor_bytes / MIB)} MiB "
            f"= {fmt(me.growth_vs_floor)}x (medians)",
        )
    ]
    for other in ("restic", "borg"):
        checks.append(_faster(me, by_tool.get(other), "daily", "daily time"))
    for other in ("restic", "borg"):
        checks.append(_faster(me, by_tool.get(other), "restore", "restore time"))
    # borg keeps no local state a restore reads: it has no new-host figure to compare.
    checks.append(_faster(me, by_tool.get("restic"), "new_host", "new-host restore time"))
    checks.append(
        Check(
            f"stigmem peak RSS < {RSS_LIMIT_MIB:.0f} MiB",
            verdict(me.peak_rss_mib < RSS_LIMIT_MIB),
            f"{fmt(me.peak_rss_mib, 1)} MiB (max over all days, initial included)",
        )
    )
    checks.append(_objects_check(samples))
    return checks


def _faster(me: Summary, other: Summary | None, which: str, label: str) -> Check:
    name = f"stigmem {label} < {other.tool if other else '?'}"
    if other is None:
        return Check(f"stigmem {label} < (tool not run)", "SKIP", "nothing to compare with")
    mine, theirs = _seconds(me, which), _seconds(other, which)
    if mine is None or theirs is None:
        return Check(name, "SKIP", "not measured")
    return Check(name, verdict(mine < theirs), f"{fmt(mine)} s vs {fmt(theirs)} s")


def _seconds(summary: Summary, which: str) -> float | None:
    if which == "daily":
        return summary.daily_seconds
    if which == "new_host":
        return summary.new_host_restore_seconds
    return summary.restore_seconds


def objects_allowed(growth_bytes: int) -> int:
    return 2 + math.ceil(max(growth_bytes, 0) / OBJECT_BUDGET_BYTES)


def _objects_check(samples: Sequence[Sample]) -> Check:
    daily = [s for s in samples if s.tool == "stigmem" and s.day > 0]
    over = [s for s in daily if s.objects_written > objects_allowed(s.growth_bytes)]
    detail = ", ".join(
        f"day {s.day}: {s.objects_written}/{objects_allowed(s.growth_bytes)}" for s in daily
    )
    return Check("stigmem objects/day <= 2 + ceil(growth / 8 MiB)", verdict(not over), detail)


def ratios(by_tool: dict[str, Summary]) -> list[str]:
    me = by_tool.get("stigmem")
    lines = []
    for other in ("restic", "restic-v1", "borg"):
        them = by_tool.get(other)
        if me is None or them is None:
            continue
        restore = (
            f", restore {me.restore_seconds / them.restore_seconds:.2f}x"
            if me.restore_seconds and them.restore_seconds
            else ""
        )
        lines.append(
            f"stigmem/{other}: daily time {me.daily_seconds / them.daily_seconds:.2f}x, "
            f"growth {me.growth_mib / them.growth_mib:.2f}x{restore}"
            if them.growth_mib
            else f"stigmem/{other}: daily time {me.daily_seconds / them.daily_seconds:.2f}x"
        )
    return lines


def as_json(obj: Any) -> Any:
    """NaN is not JSON; write null instead."""
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if isinstance(obj, dict):
        return {k: as_json(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [as_json(v) for v in obj]
    return obj
