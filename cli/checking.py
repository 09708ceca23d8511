"""``store check``, ``catalog reindex`` and ``catalog metrics``: the store as source of truth."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import click

from cli.app import App, Tier
from cli.output import echo, emit_json, note
from snapshot.errors import StigmemError, VerificationError
from snapshot.manifest import CURSOR_MEMBER, manifest_from_dict, parse_cursor
from store.reports import Problem

if TYPE_CHECKING:
    from store.repository import Store


def _signature_problems(sid: str, doc: dict[str, Any]) -> list[Problem]:
    """The document's manifest names this id and its signature verifies."""
    try:
        manifest = manifest_from_dict(doc["manifest"])
    except (VerificationError, StigmemError, KeyError) as exc:
        return [Problem(sid, "malformed", f"document unreadable: {exc}")]
    if manifest.snapshot_id != sid:
        return [Problem(sid, "malformed", "document id differs from its manifest")]
    if not manifest.signature_valid():
        return [Problem(sid, "signature_mismatch", "signature does not verify")]
    return []


# When a snapshot has several findings, the catalog records the gravest.
GRAVITY = ("malformed", "signature_mismatch", "checksum_error", "missing_data")


def _outcome(found: list[Problem]) -> str:
    if not found:
        return "ok"
    return min((p.outcome for p in found), key=lambda o: GRAVITY.index(o) if o in GRAVITY else 0)


def check_store(app: App, tier: Tier, fraction: float, as_json: bool) -> None:
    store = app.store(tier)
    from store import maintenance

    report = maintenance.check(store, read_data_fraction=fraction, inspect=_signature_problems)
    if tier.object_lock is not None:
        report.problems.extend(_lock_problems(store, tier))
    problems: dict[str, list[Problem]] = {}
    for found_problem in report.problems:
        problems.setdefault(found_problem.snapshot_id or "store", []).append(found_problem)
    ids = store.snapshot_ids()
    catalog = app.catalog()
    mode = "check" if fraction == 0 else f"check read {fraction:.0%}"
    for sid in sorted(catalog.known_ids(ids)):
        found = problems.get(sid, [])
        outcome = _outcome(found)
        detail = "; ".join(p.detail for p in found) or mode
        catalog.record_verification(sid, "default", "check", outcome, detail)
    summary = (
        f"{store.url}: {len(ids)} snapshots, "
        f"{report.chunks_checked} chunks checked, {report.packs_read} packs read, "
        f"{sum(len(v) for v in problems.values())} problems"
    )
    catalog.record_event("check", None, summary)
    if as_json:
        emit_json(
            {
                "store": store.url,
                "ok": not problems,
                "problems": [
                    {"snapshot_id": s, "outcome": p.outcome, "problem": p.detail}
                    for s, ps in sorted(problems.items())
                    for p in ps
                ],
                **report.to_json(),
            }
        )
    else:
        for sid, found in sorted(problems.items()):
            for problem in found:
                echo(f"FAIL: {sid}: {problem.detail}")
        click.echo(("OK: " if not problems else "FAIL: ") + summary)
    if problems:
        raise click.exceptions.Exit(3)


def _lock_problems(store: Store, tier: Tier) -> list[Problem]:
    """Objects an Object Lock should hold for the tier's retention (from their writing) and
    does not: no lock, or one that ends sooner. A minute's slack for clocks."""
    from datetime import timedelta

    from store.backend import LOCKABLE

    needed = timedelta(seconds=tier.lock_seconds() - 60)
    found = []
    for entry in store.backend.list():
        if not entry.path.startswith(LOCKABLE) or entry.mtime is None:
            continue
        lock = store.backend.lock_of(entry.path)
        # The store's problem, not the snapshot's: its data is as sound as it was.
        sid = None
        written = datetime.fromtimestamp(entry.mtime, UTC)
        if lock is None:
            found.append(Problem(sid, "lock_missing", f"{entry.path} has no object lock"))
        elif lock[1] < written + needed:
            found.append(
                Problem(
                    sid,
                    "lock_missing",
                    f"{entry.path} is locked until {lock[1].isoformat()}, sooner than the "
                    f"tier's retention needs ({written + needed + timedelta(seconds=60)})",
                )
            )
    return found


def reindex(app: App, as_json: bool) -> None:
    """Rebuild snapshot and placement rows from every store; history rows are kept.

    A document whose signature fails is skipped, never adopted: it names an id that no key
    signed. A validly signed one from an unknown key is catalogued, and shows as untrusted.
    """
    from cli.recording import catalog_snapshot

    catalog = app.catalog()
    counts: dict[str, int] = {}
    skipped: list[str] = []
    for tier in app.all_tiers():
        store = app.store(tier)
        counts[tier.name] = 0
        for sid in store.snapshot_ids():
            try:
                # Refused by the store's reader (not the snapshot its name says, say): skipped.
                doc = store.load_document(sid)
                manifest = manifest_from_dict(doc["manifest"])
            except VerificationError as exc:
                skipped.append(f"{sid}: {exc.detail}")
                continue
            if manifest.snapshot_id != sid or not manifest.signature_valid():
                skipped.append(f"{sid}: signature does not verify")
                continue
            cursor = io.BytesIO()
            try:
                store.read_artifact(sid, CURSOR_MEMBER, cursor)
                applied = parse_cursor(cursor.getvalue())
            except VerificationError:
                applied = []
            size = int(doc.get("artifacts", {}).get("artifacts/stigmem.db", {}).get("size", 0))
            catalog_snapshot(catalog, manifest, applied, size, store.url)
            catalog.record_placement(sid, tier.name, store.url)
            counts[tier.name] += 1
    catalog.record_event("reindex", None, ", ".join(f"{t}: {n}" for t, n in counts.items()))
    for line in skipped:
        note(f"skipped {line}")
    if as_json:
        emit_json({"tiers": counts, "skipped": skipped})
    else:
        for tier_name, count in counts.items():
            click.echo(f"tier {tier_name}: {count} snapshots catalogued")


def metrics_text(app: App) -> str:
    from catalog.metrics import render_prometheus
    from store import maintenance

    samples: list[Any] = list(app.catalog().metrics(datetime.now(UTC)))
    for tier in app.all_tiers():
        try:
            stored = maintenance.stats(app.store(tier)).stored_bytes
        except StigmemError as exc:
            note(f"tier {tier.name}: {exc}")
            continue
        samples.append(("stigmem_store_bytes", {"tier": tier.name}, float(stored)))
    return str(render_prometheus(samples))
