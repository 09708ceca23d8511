"""Daily backups of a churning Stigmem node database: stigmem against restic and borg.

    .venv/bin/python -m bench.daily [--size-mb 256] [--days 7] [--workdir DIR]
                                    [--tools stigmem,restic,borg] [--json OUT] [--encrypt]
    .venv/bin/python -m bench.daily --rss-scaling 256,1024

Day 0 is the initial backup; each following day applies one day of a node's writes
(tests/nodegen.py: the real node schema and write path) and backs up with every tool, in an
order that rotates from day to day. See bench/README.md for the columns and the fairness
choices.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sqlite3
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from statistics import median
from typing import Any

from bench import report
from bench.floor import Floor, consistent_copy, measure
from bench.procs import BenchError, launcher_floor_kib
from bench.repofs import delta, scan
from bench.report import MIB, Check, Finish, Sample
from bench.tools import TOOLS, Stigmem, Tool, missing_reason, sha256_file
from tests.nodegen import apply_churn, make_node_db, migration_files

RESTORE_ROUNDS = 5  # timed restores per tool, alternating; the median is reported

FAIRNESS = (
    "every tool backs up a consistent copy made with SQLite's online backup API: stigmem "
    "makes it inside `snapshot create`; for restic and borg `sqlite3 DB .backup COPY` runs "
    "first and its time is added to theirs (peak RSS is the larger of the two processes)",
    "each tool runs as a whole process, started by a small launcher that times it and reads "
    "its peak RSS with wait4 (so the bench's own memory is not charged to it)",
    "tools run in a rotating order (day d starts with tool d mod k) so none always runs "
    "with the warmest cache",
    "default settings: stigmem's store config; restic's default repository format (0.14: "
    "version 2, zstd auto) with its encryption, which cannot be turned off; borg "
    "`init -e none` + `create` (lz4, buzhash chunker)",
    "restore and full-check times are warm-cache (nothing is dropped from the page cache): "
    "each tool first restores once untimed (its time is logged and kept in the JSON as "
    "'warmup_seconds'), since right after the days the first restore found the day-0 packs "
    "paged out (this machine's kernel pages out what sat idle for a minute) and the disk busy "
    "writing back the other tools' files, whichever tool came first",
    "stigmem runs byte-compiled, as installed from a wheel: where PYTHONDONTWRITEBYTECODE "
    "is set, an editable install's modules are compiled once before the first day (see "
    "the notes), else every command would compile them from source",
    f"restores run {RESTORE_ROUNDS} times per tool (and as many as a new host), the tools in "
    "an order that rotates from round to round; the median is reported (a single run swung "
    "by 0.3 s from run to run; three rounds left the median at the mercy of one)",
    "'new host' restores as a host that never used the repository: stigmem with a home of "
    "its own (no index cache, no catalog) and the store by URL, restic with --no-cache; borg "
    "keeps no local state a restore reads, so it has no such figure",
    "restic and borg full checks read every pack of the repository; stigmem's is "
    "`store check --read-data-subset 100%`; `snapshot verify` (latest only) is reported apart",
)

# With --encrypt every repository is encrypted: this line replaces the borg part of FAIRNESS.
ENCRYPTED_FAIRNESS = (
    "encrypted (--encrypt): stigmem's store is format 2 encrypted to a store key made for the "
    "run (`store init --encrypt-to`), every command given STIGMEM_STORE_KEY and "
    "STIGMEM_WRITER_KEY, the new-host restore the store key only; restic's default "
    "encryption; borg `init -e repokey` (passphrase in BORG_PASSPHRASE) + `create` (lz4, "
    "buzhash chunker)",
)


def fairness(encrypt: bool) -> tuple[str, ...]:
    if not encrypt:
        return FAIRNESS
    return (
        tuple(
            line.replace("; borg `init -e none` + `create` (lz4, buzhash chunker)", "")
            for line in FAIRNESS
        )
        + ENCRYPTED_FAIRNESS
    )


@dataclass
class Results:
    """Everything measured in a run, kept so a failure still reports what came before."""

    samples: list[Sample] = field(default_factory=list)
    floors: list[Floor] = field(default_factory=list)
    churn: list[dict[str, int]] = field(default_factory=list)
    finishes: list[Finish] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    notes: dict[str, list[str]] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    store_stats: dict[str, Any] | None = None
    error: str | None = None


def log(message: str) -> None:
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- the node database -------------------------------------------------------------------


def node_db(cache: Path, size_mb: float, seed: int, target: Path) -> dict[str, Any]:
    """Copy a generated database to ``target``, building it once per (size, seed) in ``cache``.

    Building 1 GiB takes minutes; the generator is deterministic, so a rerun with the same
    --workdir reuses the file.
    """
    cache.mkdir(parents=True, exist_ok=True)
    # Named by the schema too, so a database generated before the fixtures changed is not
    # reused.
    schema = migration_files()[-1].stem.split("_", 1)[0]
    base = cache / f"node-{size_mb:g}mb-seed{seed}-schema{schema}.db"
    meta = base.with_suffix(".json")
    if not (base.exists() and meta.exists()):
        log(f"building a {size_mb:g} MiB node database (seed {seed})")
        info = make_node_db(base, size_mb=size_mb, seed=seed)
        # Written last: a build cut short leaves no meta and is redone next time.
        meta.write_text(
            json.dumps({"pubkey": info.pubkey, "node_id": info.node_id, "facts": info.facts})
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    for stale in (target, *(target.with_name(target.name + s) for s in ("-wal", "-shm"))):
        stale.unlink(missing_ok=True)
    shutil.copyfile(base, target)
    return {**json.loads(meta.read_text()), "bytes": target.stat().st_size}


# --- one day -----------------------------------------------------------------------------


def rotate(tools: Sequence[Tool], day: int) -> list[Tool]:
    start = day % len(tools)
    return [*tools[start:], *tools[:start]]


def floor_for(day: int, db: Path, floor_dir: Path) -> Floor:
    """Page-level floor of this day's change; keeps this day's copy for tomorrow."""
    floor_dir.mkdir(parents=True, exist_ok=True)
    previous, current = floor_dir / "previous.db", floor_dir / "current.db"
    consistent_copy(db, current)
    result = measure(day, previous if day else None, current)
    current.replace(previous)
    return result


def measure_backup(tool: Tool, day: int, position: int) -> Sample:
    before = scan(tool.repo)
    result = tool.backup(day)
    change = delta(before, scan(tool.repo))
    return Sample(
        tool=tool.name,
        day=day,
        position=position,
        seconds=result.seconds,
        copy_seconds=tool.last_copy_seconds,
        peak_rss_mib=result.peak_rss_mib,
        growth_bytes=change.growth_bytes,
        objects_written=change.objects_written,
    )


@dataclass
class RestoreRuns:
    """One tool's restores over the rounds."""

    seconds: list[float] = field(default_factory=list)
    new_host_seconds: list[float] = field(default_factory=list)
    cpu_seconds: list[float] = field(default_factory=list)
    warmup_seconds: float | None = None
    peak_rss_mib: float = 0.0
    matches: bool = True
    error: str | None = None


def restore_round(tool: Tool, target: Path, runs: RestoreRuns) -> None:
    """One restore and one new-host restore, each hashed against what was backed up."""
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    restored, path = tool.restore(target)
    runs.seconds.append(restored.seconds)
    runs.cpu_seconds.append(restored.user_seconds + restored.system_seconds)
    runs.peak_rss_mib = max(runs.peak_rss_mib, restored.peak_rss_mib)
    runs.matches &= path.exists() and sha256_file(path) == tool.expected_sha256()
    shutil.rmtree(target, ignore_errors=True)  # a 1 GiB restore need not linger
    target.mkdir(parents=True)
    fresh = tool.restore_on_new_host(target)
    if fresh is not None:
        run_fresh, path = fresh
        runs.new_host_seconds.append(run_fresh.seconds)
        runs.matches &= path.exists() and sha256_file(path) == tool.expected_sha256()
    shutil.rmtree(target, ignore_errors=True)


def warm_up(tool: Tool, target: Path) -> float:
    """One restore, not counted: its seconds."""
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    restored, _ = tool.restore(target)
    shutil.rmtree(target, ignore_errors=True)
    return restored.seconds


def finish_all(tools: Sequence[Tool], restore_dir: Path) -> list[Finish]:
    """Restore every tool's latest backup ``RESTORE_ROUNDS`` times, tools in an order that
    rotates from round to round; then verify and check each once. Errors are kept, not
    raised."""
    runs = {tool.name: RestoreRuns() for tool in tools}
    for tool in tools:  # untimed: see FAIRNESS
        try:
            runs[tool.name].warmup_seconds = warm_up(tool, restore_dir / tool.name)
        except BenchError as exc:
            runs[tool.name].error = str(exc)
            log(f"{tool.name}: {exc}\n{exc.output}")
            continue
        log(f"warm-up {tool.name}: restore {runs[tool.name].warmup_seconds:.2f} s (not counted)")
    for round_ in range(RESTORE_ROUNDS):
        for tool in rotate(tools, round_):
            tool_runs = runs[tool.name]
            if tool_runs.error is not None:
                continue
            try:
                restore_round(tool, restore_dir / tool.name, tool_runs)
            except BenchError as exc:
                tool_runs.error = str(exc)
                log(f"{tool.name}: {exc}\n{exc.output}")
                continue
            log(
                f"round {round_ + 1} {tool.name}: restore {tool_runs.seconds[-1]:.2f} s "
                f"({tool_runs.cpu_seconds[-1]:.2f} CPU-s)"
                + (
                    f", new host {tool_runs.new_host_seconds[-1]:.2f} s"
                    if tool_runs.new_host_seconds
                    else ""
                )
            )
    return [read_back(tool, runs[tool.name]) for tool in tools]


def read_back(tool: Tool, runs: RestoreRuns) -> Finish:
    """The restores' medians, then ``verify`` (stigmem) and a full check of the repository."""
    fields: dict[str, Any] = {
        "tool": tool.name,
        "restore_seconds": median(runs.seconds) if runs.seconds else None,
        "restore_runs": tuple(runs.seconds),
        "restore_peak_rss_mib": runs.peak_rss_mib if runs.seconds else None,
        "restore_matches": runs.matches if runs.seconds else None,
        "new_host_restore_seconds": (
            median(runs.new_host_seconds) if runs.new_host_seconds else None
        ),
        "new_host_runs": tuple(runs.new_host_seconds),
        "restore_cpu_runs": tuple(runs.cpu_seconds),
        "warmup_seconds": runs.warmup_seconds,
        "error": runs.error,
    }
    if runs.error is None:
        log(f"{tool.name}: verify and full check")
        try:
            verified = tool.verify_latest()
            fields["verify_seconds"] = verified.seconds if verified else None
            checked = tool.check()
            fields["check_seconds"] = checked.seconds
            fields["check_peak_rss_mib"] = checked.peak_rss_mib
        except BenchError as exc:
            fields["error"] = str(exc)
            log(f"{tool.name}: {exc}\n{exc.output}")
    return Finish(**fields)


# --- the daily comparison ----------------------------------------------------------------


def make_tools(
    names: Sequence[str], run_dir: Path, db: Path, pubkey: str, res: Results, encrypt: bool
) -> list[Tool]:
    tools: list[Tool] = []
    for name in names:
        reason = missing_reason(name)
        if reason:
            res.skipped[name] = reason
            log(f"skipping {name}: {reason}")
            continue
        tools.append(
            TOOLS[name](name=name, work=run_dir / name, db=db, pubkey=pubkey, encrypt=encrypt)
        )
    return tools


def daily_run(args: argparse.Namespace, workdir: Path, res: Results) -> None:
    run_dir = workdir / "run"
    shutil.rmtree(run_dir, ignore_errors=True)
    db = run_dir / "node" / "stigmem.db"
    info = node_db(workdir / "cache", args.size_mb, args.seed, db)
    log(f"node database {db}: {info['bytes'] / MIB:.1f} MiB, {info['facts']} facts")
    tools = make_tools(args.tools, run_dir, db, info["pubkey"], res, args.encrypt)
    for tool in tools:
        tool.setup()
        res.versions[tool.name] = tool.version()
        res.notes[tool.name] = tool.notes
    for day in range(args.days + 1):
        if day:
            res.churn.append(asdict(apply_churn(db, day=day, seed=args.seed)))
        res.floors.append(floor_for(day, db, run_dir / "floor"))
        for position, tool in enumerate(rotate(tools, day)):
            sample = measure_backup(tool, day, position)
            res.samples.append(sample)
            log(
                f"day {day} {tool.name}: {sample.seconds:.2f} s, {sample.peak_rss_mib:.0f} MiB "
                f"RSS, +{sample.growth_bytes / MIB:.2f} MiB, {sample.objects_written} objects"
            )
    res.finishes.extend(finish_all(tools, run_dir / "restore"))
    for tool in tools:
        if isinstance(tool, Stigmem):
            res.store_stats = store_stats(tool)


def store_stats(tool: Stigmem) -> dict[str, Any]:
    """``store stats``, for the record; its failure is reported, not fatal."""
    try:
        return tool.stats()
    except (BenchError, ValueError) as exc:
        log(f"stigmem store stats: {exc}")
        return {"error": str(exc)}


def daily_report(
    args: argparse.Namespace, res: Results, names: Sequence[str], env: dict[str, Any]
) -> dict[str, Any]:
    daily_floors = [f for f in res.floors if f.day > 0] or res.floors
    zstd_floor = median(f.zstd_bytes for f in daily_floors) if daily_floors else 0.0
    raw_floor = median(f.raw_bytes for f in daily_floors) if daily_floors else 0.0
    by_finish = {f.tool: f for f in res.finishes}
    summaries = [
        report.summarise(name, res.samples, by_finish.get(name), zstd_floor)
        for name in names
        if any(s.tool == name for s in res.samples)
    ]
    by_tool = {s.tool: s for s in summaries}
    checks = report.acceptance(by_tool, res.samples, zstd_floor) if summaries else []
    checks += restore_checks(res.finishes)
    print_daily(args, res, env, summaries, (raw_floor, zstd_floor), checks)
    return {
        "floor_median": {"raw_bytes": raw_floor, "zstd_bytes": zstd_floor},
        "floors": [asdict(f) for f in res.floors],
        "churn": res.churn,
        "samples": [asdict(s) for s in res.samples],
        "finish": [asdict(f) for f in res.finishes],
        "summary": [asdict(s) for s in summaries],
        "ratios": report.ratios(by_tool),
        "checks": [asdict(c) for c in checks],
        "stigmem_store_stats": res.store_stats,
    }


def restore_checks(finishes: Sequence[Finish]) -> list[Check]:
    checks = []
    for f in finishes:
        if f.error:
            checks.append(Check(f"{f.tool} restore and check", "FAIL", f.error.splitlines()[0]))
        if f.restore_matches is not None:
            checks.append(
                Check(
                    f"{f.tool} restored file is the one backed up",
                    report.verdict(f.restore_matches),
                    "sha256 of the restored file (and of the new-host restore) vs the "
                    "consistent copy it was made from",
                )
            )
    return checks


def print_daily(
    args: argparse.Namespace,
    res: Results,
    env: dict[str, Any],
    summaries: Sequence[report.Summary],
    floors: tuple[float, float],
    checks: Sequence[Check],
) -> None:
    raw_floor, zstd_floor = floors
    encrypted = ", encrypted repositories" if args.encrypt else ""
    print(
        f"\nstigmem daily backup bench: {args.size_mb:g} MiB database, {args.days} days{encrypted}"
    )
    print(
        f"  {env['date']}, {env['cpus']} CPUs, load average {_load(env['loadavg_start'])} at "
        f"start, {_load(os.getloadavg())} at end; RSS floor of the measurement "
        f"{env['rss_floor_mib']:.1f} MiB"
    )
    for name, version in res.versions.items():
        notes = f" ({'; '.join(res.notes.get(name, []))})" if res.notes.get(name) else ""
        print(f"  {name}: {version.splitlines()[0] if version else '?'}{notes}")
    for name, reason in res.skipped.items():
        print(f"  {name}: SKIPPED, {reason}")
    print("\nper day: churn and the floor (pages that differ between consistent copies)")
    print(report.table(*floor_table(res)))
    print("\nper day and tool (day 0 = initial backup; copy s is included in s)")
    print(report.table(*sample_table(res.samples)))
    print("\nsummary (medians over days 1..N; peak RSS is the max over all days)")
    rows = report.summary_rows(summaries)
    rows.append(["floor zstd-3", "-", "-", report.fmt(zstd_floor / MIB), "1.00", *["-"] * 7])
    rows.append(["floor raw", "-", "-", report.fmt(raw_floor / MIB), *["-"] * 8])
    print(report.table(report.SUMMARY_HEADERS, rows))
    ratio_lines = report.ratios({s.tool: s for s in summaries})
    if ratio_lines:
        print("\n" + "\n".join(ratio_lines))
    print("\nfairness:")
    for line in fairness(args.encrypt):
        print(f"  - {line}")
    print("\nacceptance:")
    for check in checks:
        print(f"  {check.line()}")
    if res.error:
        print(f"\nRUN STOPPED EARLY: {res.error}")


def _load(triple: Sequence[float]) -> str:
    return "/".join(f"{x:.1f}" for x in triple)


def floor_table(res: Results) -> tuple[list[str], list[list[str]]]:
    churn = {c["day"]: c for c in res.churn}
    headers = [
        "day",
        "asserted",
        "received",
        "recalls",
        "conflicts",
        "fact rows",
        "pages",
        "raw MiB",
        "zstd MiB",
    ]
    rows = []
    for f in res.floors:
        c = churn.get(f.day, {})
        rows.append(
            [
                str(f.day),
                str(c.get("asserted", "-")),
                str(c.get("received", "-")),
                str(c.get("recalls", "-")),
                str(c.get("conflicts", "-")),
                str(c.get("inserted", "-")),
                str(f.pages_changed),
                report.fmt(f.raw_bytes / MIB),
                report.fmt(f.zstd_bytes / MIB),
            ]
        )
    return headers, rows


def sample_table(samples: Sequence[Sample]) -> tuple[list[str], list[list[str]]]:
    headers = ["day", "tool", "order", "s", "copy s", "RSS MiB", "growth MiB", "objects"]
    rows = [
        [
            str(s.day),
            s.tool,
            str(s.position + 1),
            report.fmt(s.seconds),
            report.fmt(s.copy_seconds),
            report.fmt(s.peak_rss_mib, 1),
            report.fmt(s.growth_bytes / MIB),
            str(s.objects_written),
        ]
        for s in samples
    ]
    return headers, rows


# --- memory scaling ----------------------------------------------------------------------


# What is measured at each size: the initial and a daily snapshot, then a restore of the
# daily one, on this host and as a new host.
SCALED = ("initial", "daily", "restore", "new_host")


def rss_scaling(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """stigmem's peak RSS at each database size: an initial and a daily snapshot, a restore
    and a restore as a new host."""
    rows = [
        scaling_row(float(size), args.seed, workdir, args.encrypt)
        for size in args.rss_scaling.split(",")
    ]
    checks = scaling_checks(rows)
    print("\nstigmem snapshot create and restore: peak RSS by database size")
    print(
        report.table(
            ["size MiB", "db MiB", *(f"{p} {m}" for p in SCALED for m in ("s", "RSS MiB"))],
            [
                [
                    f"{r['size_mb']:g}",
                    report.fmt(r["db_bytes"] / MIB, 1),
                    *(
                        cell
                        for p in SCALED
                        for cell in (
                            report.fmt(r[f"{p}_seconds"]),
                            report.fmt(r[f"{p}_rss_mib"], 1),
                        )
                    ),
                ]
                for r in rows
            ],
        )
    )
    print("\nacceptance:")
    for check in checks:
        print(f"  {check.line()}")
    return {"rss_scaling": rows, "checks": [asdict(c) for c in checks]}


def scaling_row(size_mb: float, seed: int, workdir: Path, encrypt: bool) -> dict[str, Any]:
    run_dir = workdir / "scaling" / f"{size_mb:g}"
    shutil.rmtree(run_dir, ignore_errors=True)
    db = run_dir / "node" / "stigmem.db"
    info = node_db(workdir / "cache", size_mb, seed, db)
    tool = Stigmem(
        name="stigmem", work=run_dir / "stigmem", db=db, pubkey=info["pubkey"], encrypt=encrypt
    )
    tool.setup()
    initial = tool.backup(0)
    log(f"{size_mb:g} MiB initial: {initial.seconds:.2f} s, {initial.peak_rss_mib:.0f} MiB")
    apply_churn(db, day=1, seed=seed)
    daily = tool.backup(1)
    log(f"{size_mb:g} MiB daily: {daily.seconds:.2f} s, {daily.peak_rss_mib:.0f} MiB")
    (run_dir / "restore").mkdir()
    restored, _ = tool.restore(run_dir / "restore")
    log(f"{size_mb:g} MiB restore: {restored.seconds:.2f} s, {restored.peak_rss_mib:.0f} MiB")
    shutil.rmtree(run_dir / "restore", ignore_errors=True)
    (run_dir / "restore").mkdir()
    fresh = tool.restore_on_new_host(run_dir / "restore")
    assert fresh is not None
    new_host = fresh[0]
    log(f"{size_mb:g} MiB new host: {new_host.seconds:.2f} s, {new_host.peak_rss_mib:.0f} MiB")
    shutil.rmtree(run_dir, ignore_errors=True)
    return {
        "size_mb": size_mb,
        "db_bytes": info["bytes"],
        "initial_seconds": initial.seconds,
        "initial_rss_mib": initial.peak_rss_mib,
        "daily_seconds": daily.seconds,
        "daily_rss_mib": daily.peak_rss_mib,
        "restore_seconds": restored.seconds,
        "restore_rss_mib": restored.peak_rss_mib,
        "new_host_seconds": new_host.seconds,
        "new_host_rss_mib": new_host.peak_rss_mib,
    }


def scaling_checks(rows: Sequence[dict[str, Any]]) -> list[Check]:
    if len(rows) < 2:
        return [Check("RSS scaling", "SKIP", "give at least two sizes")]
    small = min(rows, key=lambda r: r["size_mb"])
    large = max(rows, key=lambda r: r["size_mb"])
    checks = []
    for phase in SCALED:
        ratio = large[f"{phase}_rss_mib"] / small[f"{phase}_rss_mib"]
        checks.append(
            Check(
                f"{phase} peak RSS at {large['size_mb']:g} MiB <= "
                f"{report.RSS_SCALING_LIMIT}x that at {small['size_mb']:g} MiB",
                report.verdict(ratio <= report.RSS_SCALING_LIMIT),
                f"{large[f'{phase}_rss_mib']:.1f} / {small[f'{phase}_rss_mib']:.1f} MiB "
                f"= {ratio:.2f}x",
            )
        )
    return checks


# --- command line ------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.daily",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--size-mb", type=float, default=256.0, help="database size (MiB)")
    parser.add_argument("--days", type=int, default=7, help="days of churn after day 0")
    parser.add_argument("--seed", type=int, default=0, help="generator and churn seed")
    parser.add_argument(
        "--workdir",
        type=Path,
        help="keep repositories and the generated database here (reused on reruns); "
        "default: a temporary directory, removed at the end",
    )
    parser.add_argument(
        "--tools",
        default="stigmem,restic,borg",
        help=f"comma-separated, from {','.join(TOOLS)} (restic-v1: format 1, uncompressed)",
    )
    parser.add_argument("--json", type=Path, help="also write every figure to this JSON file")
    parser.add_argument(
        "--rss-scaling",
        metavar="MB,MB",
        help="instead of the daily comparison: stigmem peak RSS at these database sizes",
    )
    parser.add_argument(
        "--encrypt",
        action="store_true",
        help="encrypted repositories: stigmem a format-2 store encrypted to a store key made "
        "for the run, borg repokey (restic always encrypts)",
    )
    args = parser.parse_args(argv)
    args.tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    unknown = [t for t in args.tools if t not in TOOLS]
    if unknown:
        parser.error(f"unknown tool(s): {', '.join(unknown)}; known: {', '.join(TOOLS)}")
    if args.days < 0 or args.size_mb <= 0:
        parser.error("--days must be >= 0 and --size-mb > 0")
    return args


def environment() -> dict[str, Any]:
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, "-m", "bench.daily", *sys.argv[1:]]),
        "host": platform.node(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        # Other work on the machine slows every tool; the load says how quiet it was.
        "loadavg_start": os.getloadavg(),
        "rss_floor_mib": launcher_floor_kib() / 1024,
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="stigmem-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    env = environment()
    doc: dict[str, Any] = {"environment": env, "config": _config(args)}
    status = 0
    try:
        if args.rss_scaling:
            doc.update(rss_scaling(args, workdir))
        else:
            res = Results()
            try:
                daily_run(args, workdir, res)
            except BenchError as exc:
                # Report what was measured so far: the failure itself is a finding.
                res.error, status = str(exc), 1
                log(f"{exc}\n{exc.output}")
            doc.update(daily_report(args, res, args.tools, env))
            env["loadavg_end"] = os.getloadavg()
            doc.update(versions=res.versions, notes=res.notes, skipped=res.skipped)
            doc["error"] = res.error
            doc["fairness"] = list(fairness(args.encrypt))
        if any(c["status"] == "FAIL" for c in doc.get("checks", [])):
            status = status or 3
    except BenchError as exc:
        print(f"bench failed: {exc}", file=sys.stderr)
        status = 1
    finally:
        if args.json:
            args.json.write_text(json.dumps(report.as_json(doc), indent=2) + "\n")
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    return status


def _config(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "size_mb": args.size_mb,
        "days": args.days,
        "seed": args.seed,
        "tools": args.tools,
        "rss_scaling": args.rss_scaling,
        "encrypt": args.encrypt,
        "workdir": str(args.workdir) if args.workdir else None,
    }


if __name__ == "__main__":
    sys.exit(main())
