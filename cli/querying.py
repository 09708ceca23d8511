"""``snapshot sql``: a read-only SQL query on a stored snapshot, in place.

The snapshot's database is opened through ``store.storedfile`` (pages fetched as the query
touches them, each checked against its id), never restored. Before any page is read the
snapshot is judged as ``verify`` would judge it, less the whole-database digest (that would
read every page): its manifest's signature and signer under the trust options, and its last
recorded verification, which must not have failed. ``--force-unverified`` queries anyway.
Only reading statements run: an authorizer refuses anything else (exit 2).
"""

from __future__ import annotations

import base64
import csv
import io
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from cli.app import App
from snapshot.errors import StigmemError, UsageError, VerificationError
from snapshot.manifest import DB_MEMBER

if TYPE_CHECKING:
    from snapshot.trust import TrustPolicy


class RefusedStatement(UsageError):
    """The statement would do more than read."""


def _authorizer() -> Callable[..., int]:
    import apsw

    allowed = {apsw.SQLITE_SELECT, apsw.SQLITE_READ, apsw.SQLITE_FUNCTION, apsw.SQLITE_RECURSIVE}

    def authorize(op: int, *_: Any) -> int:
        return apsw.SQLITE_OK if op in allowed else apsw.SQLITE_DENY

    return authorize


def _value(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode()
    return value


ASK_CATALOG = object()  # judge's last outcome, when the caller does not know it


def judge(
    app: App,
    sid: str,
    document: dict[str, Any],
    policy: Callable[[], TrustPolicy],
    force: bool,
    last_outcome: str | object | None = ASK_CATALOG,
) -> None:
    """Refuse (``VerificationError``) a snapshot whose manifest (in ``document``) does not
    verify under ``policy`` (signature, signer; not the whole-database digest) or whose last
    recorded verification (``last_outcome``, else the catalog's) failed, unless ``force``."""
    from snapshot.manifest import manifest_from_dict
    from snapshot.trust import evaluate

    manifest = manifest_from_dict(document["manifest"])
    verdict = evaluate(manifest, dict(manifest.artifacts), policy())
    if force:
        return
    if not verdict.ok:
        raise VerificationError(verdict.outcome, verdict.detail, sid)
    last = last_outcome
    if last is ASK_CATALOG:
        catalog = app.catalog()
        last = catalog.show(sid).get("last_verify_outcome") if catalog.known_ids([sid]) else None
    if last not in (None, "ok"):
        raise VerificationError(
            str(last), f"{sid}: its last verification failed ({last}); verify it again", sid
        )


def run_sql(
    app: App,
    ref: str,
    query: str,
    params: tuple[str, ...],
    policy: Callable[[], TrustPolicy],
    force_unverified: bool,
    output: str,
) -> None:
    import apsw

    from cli.sources import StoreSource, resolve
    from store.storedfile import ChunkCache, StoredFile, open_database

    source = resolve(app, ref, 0)
    if not isinstance(source, StoreSource):
        raise StigmemError(f"snapshot sql reads stored snapshots: {ref} is a tarball")
    store, sid, document = source.store, source.snapshot_id, source.stored_document()
    judge(app, sid, document, policy, force_unverified)
    cache = ChunkCache()
    stored = StoredFile(store, sid, DB_MEMBER, cache, document)
    conn = open_database(stored, f"{sid}.db")
    conn.authorizer = _authorizer()
    try:
        cursor = conn.execute(query, params)
        try:
            columns = [name for name, _ in cursor.get_description()]
        except apsw.ExecutionCompleteError:
            columns = []
        rows = [tuple(row) for row in cursor]
    except apsw.AuthError:
        raise RefusedStatement(
            "snapshot sql runs reading statements only (SELECT, WITH ... SELECT): refused"
        ) from None
    except apsw.ReadOnlyError:
        raise RefusedStatement("snapshot sql runs reading statements only: refused") from None
    except apsw.SQLError as exc:
        if stored.failure is not None:
            raise stored.failure from None
        raise UsageError(f"snapshot sql: {exc}") from None
    except apsw.Error as exc:
        if stored.failure is not None:
            raise stored.failure from None
        raise StigmemError(f"snapshot sql on {sid}: {exc}") from None
    finally:
        conn.close()
    app.catalog().record_event(
        "sql",
        sid,
        f"{len(rows)} rows, {cache.decoded} of {len(stored)} pages read: {query[:200]}",
    )
    _print(columns, rows, output)


def _print(columns: list[str], rows: list[tuple[Any, ...]], output: str) -> None:
    from cli.output import emit_json, table

    if output == "json":
        emit_json([{c: _value(v) for c, v in zip(columns, row, strict=True)} for row in rows])
    elif output == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([[_value(v) for v in row] for row in rows])
        click.echo(buffer.getvalue(), nl=False)
    else:
        table(
            columns,
            [[json.dumps(v) if isinstance(v, dict) else _value(v) for v in row] for row in rows],
        )
