"""``Catalog``: open (and upgrade) a catalog database, then record and query through it.

Opening creates a SQLite file's directory, upgrades the schema under a lock (``catalog.migrate``)
and refuses catalogs written by a newer tool. Every write runs in one short transaction (SQLite:
BEGIN IMMEDIATE) and is retried when SQLite reports the database busy or PostgreSQL a
serialization failure or deadlock; any other database failure becomes a one-line
``CatalogError`` naming the catalog URL with its password masked.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError

from catalog import keys as keys_module
from catalog import metrics as metrics_module
from catalog import queries, writes
from catalog.engine import WRITE, make_engine, masked, one_line, parse_url
from catalog.migrate import upgrade
from catalog.records import (
    KeyRow,
    PruneCandidate,
    Sample,
    SnapshotFilter,
    SnapshotRecord,
    SnapshotSummary,
)
from catalog.upsert import SUPPORTED_BACKENDS
from snapshot.errors import CatalogError, LockedError, StigmemError, shown
from snapshot.nodedb import is_busy

if TYPE_CHECKING:
    from catalog.health import NodeFacts

T = TypeVar("T")
WRITE_ATTEMPTS = 5
_RETRY_SQLSTATES = {"40001", "40P01"}  # serialization_failure, deadlock_detected


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _is_retryable(exc: DBAPIError) -> bool:
    if getattr(exc.orig, "sqlstate", None) in _RETRY_SQLSTATES:
        return True
    return isinstance(exc, OperationalError) and is_busy(exc.orig)


class Catalog:
    """A catalog database. Use ``Catalog.open(url)``; close it (or use ``with``) when done."""

    def __init__(
        self,
        engine: Engine,
        url: str,
        applied_revisions: tuple[str, ...],
        clock: Callable[[], datetime],
    ) -> None:
        self._engine = engine
        self.url = url
        # Revisions this open applied; empty when the catalog was already current.
        self.applied_revisions = applied_revisions
        self._clock = clock
        self._host = socket.gethostname()

    @classmethod
    def open(cls, url: str, *, clock: Callable[[], datetime] = _utcnow) -> Catalog:
        parsed = parse_url(url)
        shown = masked(parsed)
        if parsed.get_backend_name() not in SUPPORTED_BACKENDS:
            raise CatalogError(
                f"catalog {shown}: unsupported database "
                f"{parsed.get_backend_name()!r} (use sqlite or postgresql)"
            )
        engine = make_engine(url)
        try:
            applied = upgrade(engine, shown)
        except StigmemError:
            engine.dispose()
            raise
        except OperationalError as exc:
            engine.dispose()
            if parsed.get_backend_name() == "sqlite":
                raise CatalogError(f"catalog {shown} cannot be opened: {one_line(exc)}") from None
            raise CatalogError(f"catalog {shown} is unreachable: {one_line(exc)}") from None
        except DBAPIError as exc:
            engine.dispose()
            raise CatalogError(f"catalog {shown} cannot be opened: {one_line(exc)}") from None
        return cls(engine, shown, applied, clock)

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _write(self, work: Callable[[Connection, datetime], T]) -> T:
        for attempt in range(1, WRITE_ATTEMPTS + 1):
            try:
                with self._engine.connect().execution_options(**WRITE) as conn, conn.begin():
                    return work(conn, self._clock())
            except DBAPIError as exc:
                if not _is_retryable(exc):
                    raise CatalogError(f"catalog {self.url}: {one_line(exc)}") from None
                if attempt == WRITE_ATTEMPTS:
                    raise LockedError(
                        f"catalog {self.url} stayed locked by another process "
                        f"({WRITE_ATTEMPTS} attempts): {one_line(exc)}"
                    ) from None
            except SQLAlchemyError as exc:
                raise CatalogError(f"catalog {self.url}: {one_line(exc)}") from None
        raise AssertionError("unreachable")

    def _read(self, work: Callable[[Connection], T]) -> T:
        try:
            with self._engine.connect() as conn, conn.begin():
                return work(conn)
        except SQLAlchemyError as exc:
            raise CatalogError(f"catalog {self.url}: {one_line(exc)}") from None
        except (ValueError, TypeError) as exc:
            # A value the driver cannot convert (a time that is not one, text in a number
            # column): the catalog was edited by hand or by someone else.
            raise CatalogError(
                f"catalog {self.url} holds a value that cannot be read "
                f"({type(exc).__name__}: {shown(one_line(exc))}); "
                "rebuild it from the stores with catalog reindex"
            ) from None

    # -- writes ------------------------------------------------------------------------------

    def record_snapshot(self, record: SnapshotRecord) -> None:
        self._write(lambda c, at: writes.record_snapshot(c, at, self._host, record))

    def record_placement(self, snapshot_id: str, tier: str, store_url: str) -> None:
        self._write(
            lambda c, at: writes.record_placement(c, at, self._host, snapshot_id, tier, store_url)
        )

    def mark_removed(self, snapshot_id: str, tier: str) -> None:
        self._write(lambda c, at: writes.mark_removed(c, at, self._host, snapshot_id, tier))

    def record_verification(
        self, snapshot_id: str, mode: str, kind: str, outcome: str, detail: str
    ) -> None:
        self._write(
            lambda c, at: writes.record_verification(
                c, at, self._host, snapshot_id, mode, kind, outcome, detail
            )
        )

    def record_restore(
        self, snapshot_id: str, target: str, forced: bool, migrations_replayed: list[str]
    ) -> None:
        self._write(
            lambda c, at: writes.record_restore(
                c, at, self._host, snapshot_id, target, forced, migrations_replayed
            )
        )

    def record_prune(
        self,
        tier: str,
        policy: dict[str, Any],
        plan: str | list[dict[str, Any]],
        removed: list[str],
        bytes_freed: int,
        dry_run: bool,
    ) -> None:
        """``plan``: the plan's JSON text as printed (stored as it is), or the plan itself."""
        self._write(
            lambda c, at: writes.record_prune(
                c, at, self._host, tier, policy, plan, removed, bytes_freed, dry_run
            )
        )

    def record_drill(
        self,
        snapshot_id: str,
        node_id: str,
        outcome: str,
        checks: list[dict[str, Any]],
        restore_seconds: float,
        size: int,
        tier: str | None,
    ) -> None:
        self._write(
            lambda c, at: writes.record_drill(
                c,
                at,
                self._host,
                snapshot_id,
                node_id,
                outcome,
                checks,
                restore_seconds,
                size,
                tier,
            )
        )

    def last_drills(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        """The last drill of each of the snapshots ``ids`` that has one, by snapshot id."""
        return self._read(lambda c: queries.last_drills(c, ids))

    def record_event(self, event: str, snapshot_id: str | None, detail: str) -> None:
        self._write(
            lambda c, at: writes.record_event(c, at, self._host, event, snapshot_id, detail)
        )

    def set_pinned(self, snapshot_id: str, pinned: bool) -> None:
        self._write(lambda c, at: writes.set_pinned(c, at, self._host, snapshot_id, pinned))

    # -- keys --------------------------------------------------------------------------------

    def see_key(self, public_key_b64: str, key_id: str) -> None:
        self._write(lambda c, at: keys_module.see_key(c, at, public_key_b64, key_id))

    def trust_key(self, public_key_b64: str, key_id: str, label: str | None) -> None:
        self._write(
            lambda c, at: keys_module.trust_key(c, at, self._host, public_key_b64, key_id, label)
        )

    def revoke_key(self, key_id_or_pubkey_or_label: str) -> KeyRow:
        return self._write(
            lambda c, at: keys_module.revoke_key(c, at, self._host, key_id_or_pubkey_or_label)
        )

    def keys(self) -> list[KeyRow]:
        return self._read(keys_module.all_keys)

    def trusted_keys(self) -> list[str]:
        return self._read(keys_module.trusted_public_keys)

    def revoked_keys(self) -> list[str]:
        return self._read(keys_module.revoked_public_keys)

    # -- queries -----------------------------------------------------------------------------

    def resolve(self, prefix: str) -> str:
        return self._read(lambda c: queries.resolve(c, prefix))

    def known_ids(self, ids: list[str]) -> list[str]:
        """Which of ``ids`` are catalogued."""
        return self._read(lambda c: queries.known_ids(c, ids))

    def list_snapshots(self, filters: SnapshotFilter | None = None) -> list[SnapshotSummary]:
        return self._read(lambda c: queries.list_snapshots(c, filters or SnapshotFilter()))

    def show(self, snapshot_id: str) -> dict[str, Any]:
        def work(conn: Connection) -> dict[str, Any]:
            full = snapshot_id if len(snapshot_id) == 64 else queries.resolve(conn, snapshot_id)
            return queries.show(conn, full)

        return self._read(work)

    def history(
        self,
        snapshot_id: str | None = None,
        since: datetime | None = None,
        event: str | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        def work(conn: Connection) -> list[dict[str, Any]]:
            full = snapshot_id
            if snapshot_id is not None and len(snapshot_id) != 64:
                full = queries.resolve(conn, snapshot_id)
            return queries.history(conn, full, since, event, limit)

        return self._read(work)

    def snapshots_for_prune(
        self, tier: str, trusted_key_ids: Iterable[str] | None = None
    ) -> list[PruneCandidate]:
        """Newest first; TRUSTED means signed by one of ``trusted_key_ids`` (default: by a
        key this catalog trusts and has not revoked)."""
        return self._read(lambda c: queries.snapshots_for_prune(c, tier, trusted_key_ids))

    def prune_rows(
        self, tier: str, trusted_key_ids: Iterable[str] | None = None
    ) -> list[tuple[str, str, str, int]]:
        """``snapshots_for_prune`` as plain tuples (what the planner takes, made faster)."""
        return self._read(lambda c: queries.prune_rows(c, tier, trusted_key_ids))

    def metrics(self, now: datetime) -> list[Sample]:
        return self._read(lambda c: metrics_module.collect(c, now))

    # -- fleet health ------------------------------------------------------------------------

    def fleet_facts(self, cutoff_for: Callable[[str], datetime]) -> dict[str, NodeFacts]:
        """Per node with a snapshot, what ``catalog.health`` judges (``queries.fleet_facts``);
        ``cutoff_for(node_id)``: now minus the node's ``every``."""
        return self._read(lambda c: queries.fleet_facts(c, cutoff_for))
