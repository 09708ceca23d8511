"""A snapshot named on the command line: a tarball path or a store id / prefix.

Both kinds are read the same way: one streaming pass that yields the manifest, the digests of
the artifacts actually read, and the database bytes to whoever wants them.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cli.app import App, Tier, is_snapshot_ref
from cli.output import progress
from snapshot.errors import StigmemError, StoreError, VerificationError
from snapshot.manifest import CURSOR_MEMBER, DB_MEMBER, Manifest, manifest_from_dict, parse_cursor
from snapshot.trust import TrustPolicy, VerifyResult, evaluate, failed

if TYPE_CHECKING:
    from snapshot.fileio import Writable
    from store.repository import Store

OnDb = Callable[[bytes], None]


@dataclass
class ReadResult:
    manifest: Manifest | None
    actual: dict[str, str] = field(default_factory=dict)
    applied_migrations: list[str] = field(default_factory=list)
    db_size: int = 0
    cursor: bytes = b""


class _HashSink:
    def __init__(self, on_db: OnDb | None) -> None:
        self.digest = hashlib.sha256()
        self.size = 0
        self.on_db = on_db

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.size += len(data)
        if self.on_db is not None:
            self.on_db(data)
        return len(data)


@dataclass
class TarballSource:
    path: Path
    max_size: int

    @property
    def label(self) -> str:
        return str(self.path)

    def peek(self) -> Manifest:
        """The manifest, read with a full streaming pass but nothing kept."""
        from snapshot.tarball import read_tarball

        return read_tarball(self.path, None, self.max_size).manifest

    def read(self, on_db: OnDb | None, state: ReadResult) -> None:
        from snapshot.tarball import read_tarball

        contents = read_tarball(self.path, on_db, self.max_size)
        state.manifest = contents.manifest
        state.actual = contents.actual
        state.applied_migrations = contents.applied_migrations
        state.db_size = contents.db_size
        state.cursor = contents.cursor


@dataclass
class StoreSource:
    store: Store
    tier: Tier
    snapshot_id: str

    document: dict[str, Any] | None = None  # read once: each read is a request to S3

    @property
    def label(self) -> str:
        return f"{self.snapshot_id} in {self.store.url}"

    def _document(self) -> dict[str, Any]:
        if self.document is None:
            self.document = self.store.load_document(self.snapshot_id)
        return self.document

    def stored_document(self) -> dict[str, Any]:
        """The snapshot's document, read from the store once."""
        return self._document()

    def peek(self) -> Manifest:
        return manifest_from_dict(self._document()["manifest"])

    def checked_record(self) -> Any:
        """The document's attestation that the database passed SQLite's check (or None),
        as the store holds it: untrusted until ``snapshot.checked.attested`` says so."""
        return self._document().get("checked")

    def _read_manifest_and_cursor(self, state: ReadResult) -> None:
        state.manifest = self.peek()
        cursor = io.BytesIO()
        self.store.read_artifact(self.snapshot_id, CURSOR_MEMBER, cursor, document=self._document())
        state.actual[CURSOR_MEMBER] = "sha256:" + hashlib.sha256(cursor.getvalue()).hexdigest()
        state.cursor = cursor.getvalue()
        state.applied_migrations = parse_cursor(state.cursor)

    def read(self, on_db: OnDb | None, state: ReadResult) -> None:
        self._read_manifest_and_cursor(state)
        assert state.manifest is not None
        digest, size = self.read_db(on_db, state.manifest.artifacts.get(DB_MEMBER))
        state.actual[DB_MEMBER] = digest
        state.db_size = size

    def read_db(
        self, on_db: OnDb | None, expected: str | None, doing: str = "reading"
    ) -> tuple[str, int]:
        """Stream the database to ``on_db``; return its ``sha256:`` digest and size.

        Chunks go unchecked: the digest covers every byte once. When it is not ``expected``,
        the store is read again checking every chunk, to name the damaged one (raised as
        ``checksum_error``); the caller reports a digest that differs all the same. A bar on
        a terminal: a database of many GiB on S3 takes minutes."""
        sink = _HashSink(on_db)
        with progress(f"{doing} {self.snapshot_id[:12]}") as report:
            try:
                self.store.read_artifact(
                    self.snapshot_id,
                    DB_MEMBER,
                    sink,  # type: ignore[arg-type]
                    progress=report,
                    check_chunks=False,
                    document=self._document(),
                    stage_plans=expected is not None,
                )
            except VerificationError:
                # Damage in the store, or plans kept in this host's cache gone wrong: no
                # later read trusts those plans.
                self.store.drop_plans()
                raise
        digest = "sha256:" + sink.digest.hexdigest()
        if digest == expected:
            # The plans this read staged rebuilt exactly the signed bytes: the next read of
            # this snapshot (the restore after a verify, a second restore) uses them.
            self.store.keep_plans(self.snapshot_id)
        elif expected is not None:
            # The same, and the checked read asks the index itself.
            self.store.drop_plans()
            name_damaged_chunk(self.store, self.snapshot_id, DB_MEMBER)
        return digest, sink.size


def name_damaged_chunk(store: Store, snapshot_id: str, member: str) -> None:
    """``member`` read without per-chunk checks did not hash to the manifest's digest: read it
    again checking every chunk, which raises ``checksum_error`` naming the first damaged
    chunk and its pack, if one is (else the caller reports the member as differing)."""
    store.read_artifact(snapshot_id, member, _HashSink(None), check_chunks=True)  # type: ignore[arg-type]


Source = TarballSource | StoreSource


def resolve(app: App, ref: str, max_size: int) -> Source:
    """A tarball when ``ref`` names an existing path, else an id or prefix in the stores."""
    path = Path(ref)
    if path.exists() or not is_snapshot_ref(ref):
        if path.is_dir():
            raise StigmemError(f"is a directory, not a snapshot tarball: {path}")
        if not path.exists():
            raise StigmemError(f"no such file or snapshot id: {ref}")
        return TarballSource(path, max_size)
    misses: list[str] = []
    for tier in app.all_tiers():
        try:
            store = app.store(tier)
            return StoreSource(store, tier, store.resolve(ref.lower()))
        except StoreError as exc:  # not there (an ambiguous prefix is raised as it is)
            misses.append(str(exc))
    raise StigmemError(f"no snapshot matches {ref}: " + "; ".join(misses))


def verify(
    source: Source, policy: TrustPolicy, on_db: OnDb | None = None
) -> tuple[VerifyResult, ReadResult]:
    """Read ``source`` once and judge it. Never raises for a bad snapshot: the result says."""
    state = ReadResult(None)
    try:
        source.read(on_db, state)
    except VerificationError as exc:
        if exc.snapshot_id is None and isinstance(source, StoreSource):
            exc.snapshot_id = source.snapshot_id
        return failed(exc, policy, state.manifest), state
    assert state.manifest is not None
    return evaluate(state.manifest, state.actual, policy), state


Judge = Callable[[TrustPolicy], tuple[VerifyResult, ReadResult]]


def source_for(app: App, snapshot_id: str, tier: Tier | None = None) -> StoreSource:
    """The snapshot in ``tier``'s store, else in the first store of the config holding it."""
    tiers = [tier] if tier is not None else app.all_tiers()
    misses = []
    for candidate in tiers:
        store = app.store(candidate)
        if store.has_snapshot(snapshot_id):
            return StoreSource(store, candidate, snapshot_id)
        misses.append(store.url)
    raise StigmemError(f"snapshot {snapshot_id} is in none of the stores {', '.join(misses)}")


def write_into(source: Source, out: Writable) -> tuple[Judge, ReadResult]:
    """Write the snapshot's database into ``out``; return the step that judges it under a
    policy (a restore may still be reading the catalog's keys meanwhile), and what was read
    (the digests of what was written are known before the judgement). Never raises for a
    bad snapshot: everything readable is written, and the judgement says what was not."""
    state = ReadResult(None)
    failure: VerificationError | None = None
    try:
        source.read(copy_into(out), state)
    except VerificationError as exc:
        failure = exc
        if exc.snapshot_id is None and isinstance(source, StoreSource):
            exc.snapshot_id = source.snapshot_id

    def judge(policy: TrustPolicy) -> tuple[VerifyResult, ReadResult]:
        if failure is not None:
            return failed(failure, policy, state.manifest), state
        assert state.manifest is not None
        return evaluate(state.manifest, state.actual, policy), state

    return judge, state


def copy_into(out: Writable) -> OnDb:
    """A sink that writes what it is given to ``out``."""

    def sink(data: bytes) -> None:
        out.write(data)

    return sink
