"""Generate Stigmem node databases on the node's own schema, deterministically from a seed.

Used by the tests and by ``bench/``::

    python -m tests.nodegen --out node.db --size-mb 256 [--seed 0] [--upto 028_...]
    python -m tests.nodegen --out node.db --churn-day 1      # one day of a node's life

The schema is the one ``tests/fixtures/migrations`` builds, applied the way the node applies
its migrations (``apply_node_migrations``). A database is at the latest migration unless
``upto`` (a version, or a count of files) stops earlier, so that a restore with that
directory as ``--migrations-dir`` replays the rest.

The workload follows the node's write path: a fact assertion inserts the fact (and, through
the trigger, its FTS5 row), a JSON copy in ``fact_journal``, a ``fact_audit_log`` row, a
``fact_chain`` link (a checkpoint every ``CHECKPOINT_INTERVAL`` links), its CID alias, an
``entity_edges`` row for a ref, a ``session_scope_access`` row and a quota bucket upsert;
contradictions add two conflict facts and a ``conflicts`` row per live sibling; a fact
received from a peer adds a ``stigmem:received_from`` meta-fact and moves the peer's cursor;
a recall writes ``recall_audit_log``, ``fact_recall_signals`` and a ``memory_cards`` upsert;
a retraction is a confidence-0 insert plus ``fact_retractions``. Facts are never updated or
deleted (the node's triggers refuse it).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import random
import sqlite3
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

MIGRATIONS_DIR = Path(__file__).parent / "fixtures" / "migrations"
PAGE_SIZE = 4096
# Fixed origin for every generated time, so the bytes depend on the seed only. A database's
# history spans the HISTORY_DAYS before it; churn day d happens d days after it.
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
HISTORY_DAYS = 60
DAY_MS = 86_400_000
# The node checkpoints its fact chain every this many links per tenant (its default).
CHECKPOINT_INTERVAL = 1000

# A day of a node. The first three are what a real node's week showed (bench/README.md,
# "The workload"); the others are chosen so that the pages a day changes match that week's.
DAILY_FACTS = 0.02  # new facts asserted or received
RECEIVED_SHARE = 1 / 3  # of those, received from peers
RECALLS_PER_FACT = 1.0
RECALLED_ENTITIES = 0.02  # the share of entities recalls ask about
# Recall (and its audit) came to the node later than facts: its history holds fewer.
HISTORY_RECALLS_PER_FACT = 0.3
# The share of a node's history (of its bytes) written before the journal, chain and CID
# tables existed.
LEGACY_SHARE = 0.55
CONTRADICTION_RATE = 0.02  # new facts that reuse a live (entity, relation, scope)
RETRACTION_RATE = 0.02  # retractions per new fact
QUARANTINE_RATE = 0.05  # received facts held for review
RESOLVE_RATE = 0.05  # of the unresolved conflicts, resolved per day
PULL_BATCH = 50  # received facts per pull, after which the cursor moves
BUILD_BATCH = 256  # operations per commit while building

KeyForm = Literal["seed", "pkcs8"]
TENANTS = (("default", "acme", 0.85), ("globex", "globex", 0.15))
SCOPES = ("local", "team", "company", "public")
SCOPE_WEIGHTS = (0.40, 0.35, 0.20, 0.05)
VALUE_TYPES = ("text", "string", "number", "ref", "datetime", "boolean", "null")
VALUE_WEIGHTS = (0.45, 0.20, 0.10, 0.13, 0.06, 0.04, 0.02)
ENTITY_KINDS = ("person", "project", "team", "doc", "service", "place", "topic", "decision")
RELATIONS = tuple(
    f"{ns}:{name}"
    for ns, names in (
        ("profile", ("name", "role", "email", "timezone", "location", "manager", "bio")),
        ("work", ("owns", "depends_on", "status", "deadline", "priority", "summary", "blocker")),
        ("memory", ("note", "preference", "decision", "observation", "lesson", "goal")),
        ("graph", ("related_to", "part_of", "mentions", "authored", "reviewed")),
        ("ops", ("version", "endpoint", "runbook", "incident", "oncall")),
    )
    for name in names
)
AGENTS = tuple(f"agent-{n:02d}" for n in range(24))


def _syllable_words(rng: random.Random, count: int) -> list[str]:
    syllables = [c + v for c in "bcdfghjklmnprstvwz" for v in "aeiou"] + ["th", "ch", "st", "er"]
    return ["".join(rng.choices(syllables, k=rng.choice((1, 2, 2, 3, 3, 4)))) for _ in range(count)]


def _corpus() -> str:
    # Prose-like text: a few thousand words drawn with a Zipf-like skew, so it compresses
    # about as prose does; values are slices of it (cheap to make).
    rng = random.Random("stigmem-corpus")
    words = _syllable_words(rng, 4000)
    weights = [1 / (n + 1) for n in range(len(words))]
    out = rng.choices(words, weights, k=400_000)
    for n in range(0, len(out), 13):
        out[n] = out[n] + rng.choice((".", ",", ";", ""))
    return " ".join(out)


CORPUS = _corpus()


@dataclass(frozen=True)
class NodeInfo:
    path: Path
    node_id: str
    privkey: str  # federation_privkey as stored: base64url seed, or base64url PKCS8 DER
    pubkey: str  # base64url raw public key (stored beside a seed, derived for PKCS8)
    migrations: list[str]
    facts: int  # rows of facts (conflict and meta facts included)
    size: int
    key_form: KeyForm = "seed"


@dataclass(frozen=True)
class ChurnStats:
    day: int
    inserted: int  # rows added to facts, every kind
    asserted: int  # local assertions
    received: int  # facts received from peers (each with a meta-fact)
    conflicts: int
    resolved: int
    retractions: int
    recalls: int


def _cols(names: str) -> list[str]:
    return names.split()


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


# --- migrations, as the node applies them ------------------------------------------------


def migration_files(
    limit: int | str | None = None, migrations_dir: Path = MIGRATIONS_DIR
) -> list[Path]:
    """``NNN_name.sql`` files in name order, up to ``limit`` (a count, or a version included)."""
    files = sorted(migrations_dir.glob("[0-9]*_*.sql"), key=lambda p: p.name)
    if limit is None:
        return files
    if isinstance(limit, int):
        return files[:limit]
    stems = [f.stem for f in files]
    if limit not in stems:
        raise ValueError(f"no migration {limit!r} in {migrations_dir}")
    return files[: stems.index(limit) + 1]


def apply_node_migrations(
    target: sqlite3.Connection | Path | str,
    migrations_dir: Path = MIGRATIONS_DIR,
    upto: int | str | None = None,
    *,
    clock: Callable[[], datetime] | None = None,
) -> list[str]:
    """Apply the migrations of ``migrations_dir`` the way a Stigmem node does; the versions run.

    ``schema_migrations (id, version UNIQUE, applied_at)`` is created first; then each file
    (in name order, up to ``upto``) whose stem is not recorded is run with ``executescript``
    as it is, with no transaction around it (scripts that need one open their own, and some
    switch foreign keys off outside it), and its version is inserted and committed. A path
    is opened as the node opens its database (WAL, foreign keys on); a connection is used as
    it is. ``clock`` stands in for ``datetime.now(UTC)`` in ``applied_at``.
    """
    now = clock or (lambda: datetime.now(UTC))
    conn = target if isinstance(target, sqlite3.Connection) else sqlite3.connect(target)
    try:
        if conn is not target:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA foreign_keys=ON")
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            "id INTEGER PRIMARY KEY AUTOINCREMENT, version TEXT NOT NULL UNIQUE, "
            "applied_at TEXT NOT NULL)"
        )
        conn.commit()
        applied = {v for (v,) in conn.execute("SELECT version FROM schema_migrations")}
        ran = []
        for sql_file in migration_files(upto, migrations_dir):
            if sql_file.stem in applied:
                continue
            conn.executescript(sql_file.read_text(encoding="utf-8"))
            conn.execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
                (sql_file.stem, now().isoformat()),
            )
            conn.commit()
            ran.append(sql_file.stem)
        return ran
    finally:
        if conn is not target:
            conn.close()


# --- the node's write path -----------------------------------------------------------------


class _Table:
    """Inserts (or upserts) into one table, keeping only the columns the schema has yet.

    Rows are tuples in ``columns`` order; a table the schema lacks takes nothing.
    """

    def __init__(
        self,
        conn: sqlite3.Connection,
        name: str,
        columns: Sequence[str],
        verb: str = "INSERT",
        suffix: str = "",
    ) -> None:
        self.conn = conn
        have = {row[1] for row in conn.execute(f"PRAGMA table_info({name})")}
        self.present = bool(have)
        keep = [n for n, c in enumerate(columns) if c in have]
        self.pick: list[int] | None = None if len(keep) == len(columns) else keep
        names = ", ".join(columns[n] for n in keep)
        marks = ", ".join("?" * len(keep))
        self.sql = f"{verb} INTO {name} ({names}) VALUES ({marks}) {suffix}"

    def put(self, row: tuple[Any, ...]) -> None:
        if not self.present:
            return
        self.conn.execute(self.sql, row if self.pick is None else [row[n] for n in self.pick])


@dataclass
class _Live:
    """What the write path remembers between operations (rebuilt from the database)."""

    facts: list[tuple[str, str, str, str, str, str, str]] = field(default_factory=list)
    # (tenant, entity, relation, scope) -> live fact ids: the contradiction check's answer
    combos: dict[tuple[str, str, str, str], list[str]] = field(default_factory=dict)
    # (tenant, entity) -> (id, relation, value_v, confidence): what a recall returns
    by_entity: dict[tuple[str, str], list[tuple[str, str, str, float]]] = field(
        default_factory=dict
    )
    chain: dict[str, tuple[int, str | None]] = field(default_factory=dict)  # tenant -> head
    audit_seq: int = 0
    entities: int = 1000


@dataclass(frozen=True)
class _Peer:
    id: str
    node_id: str
    status: str


class _NodeWriter:
    """One node's writes: every operation touches the tables the node's code touches."""

    def __init__(self, conn: sqlite3.Connection, rng: random.Random, node_id: str) -> None:
        self.conn = conn
        self.rng = rng
        self.node_id = node_id
        self.live = _Live()
        self.ms = 0  # current time, ms since EPOCH
        self.counter = 0
        self.sessions: dict[str, tuple[str, str, int]] = {}  # org -> (id, caller, ops left)
        # Facts of a node's early history predate the journal, chain and CID tables: they
        # have none of those rows (and no CID), as on a node upgraded through its migrations.
        self.legacy = False
        self.stats_conflicts = 0
        self.peers: list[_Peer] = []
        t = _Table
        self.facts = t(conn, "facts", FACT_COLUMNS)
        self.journal = t(
            conn,
            "fact_journal",
            _cols("id fact_id event_type event_ts tenant_id actor_uri source scope cid body_json"),
        )
        self.audit = t(
            conn,
            "fact_audit_log",
            _cols(
                "id fact_id event_type entity_uri source attested_key_id ts tenant_id detail seq"
            ),
        )
        self.chain = t(
            conn,
            "fact_chain",
            _cols("id tenant_id chain_seq fact_id event_hash previous_hash chain_hash created_at"),
        )
        self.checkpoints = t(
            conn,
            "fact_chain_checkpoints",
            _cols(
                "id tenant_id covered_chain_seq chain_hash payload status attempt_count created_at "
                "submitted_at tl_backend tl_log_id tl_leaf_hash tl_log_index tl_integrated_time "
                "tl_inclusion_proof tl_raw"
            ),
        )
        self.cid_aliases = t(conn, "fact_cid_aliases", ("fact_id", "cid"), "INSERT OR IGNORE")
        self.edges = t(
            conn,
            "entity_edges",
            _cols(
                "id subject relation object scope tenant_id received_from valid_until confidence "
                "created_at"
            ),
        )
        self.session_access = t(
            conn,
            "session_scope_access",
            _cols("id session_id entity_uri tenant_id scope access_type ts"),
            "INSERT OR IGNORE",
        )
        self.quota = t(
            conn,
            "quota_buckets",
            _cols("entity_uri tenant_id dimension tokens last_refill"),
            suffix="ON CONFLICT (entity_uri, tenant_id, dimension) DO UPDATE SET "
            "tokens = excluded.tokens, last_refill = excluded.last_refill",
        )
        self.recall_audit = t(
            conn,
            "recall_audit_log",
            _cols(
                "id entity_uri query_hash scope token_budget facts_returned tokens_used truncated "
                "tenant_id ts"
            ),
        )
        self.recall_signals = t(
            conn,
            "fact_recall_signals",
            _cols("fact_id last_recalled_at recall_count salience updated_at"),
            suffix="ON CONFLICT (fact_id) DO UPDATE SET last_recalled_at = "
            "excluded.last_recalled_at, recall_count = recall_count + 1, "
            "updated_at = excluded.updated_at",
        )
        self.cards = t(
            conn,
            "memory_cards",
            _cols(
                "entity_uri tenant_id scope summary fact_hashes avg_confidence refreshed_at "
                "is_stale has_contradictions"
            ),
            suffix="ON CONFLICT (entity_uri, tenant_id, scope) DO UPDATE SET "
            "summary = excluded.summary, fact_hashes = excluded.fact_hashes, "
            "avg_confidence = excluded.avg_confidence, refreshed_at = excluded.refreshed_at, "
            "is_stale = 0, has_contradictions = excluded.has_contradictions",
        )
        self.conflicts = t(
            conn,
            "conflicts",
            _cols("id fact_a_id fact_b_id status resolution_fact_id detected_at"),
            "INSERT OR IGNORE",
        )
        self.retractions = t(
            conn, "fact_retractions", ["id", "fact_id", "retracted_at", "retracted_by"]
        )
        self.overrides = t(
            conn,
            "fact_validity_overrides",
            _cols("fact_id valid_until confidence reason updated_at updated_by"),
            suffix="ON CONFLICT (fact_id) DO UPDATE SET valid_until = excluded.valid_until, "
            "confidence = excluded.confidence, reason = excluded.reason, "
            "updated_at = excluded.updated_at, updated_by = excluded.updated_by",
        )
        self.quarantine = t(
            conn,
            "fact_quarantine_status",
            _cols(
                "fact_id quarantine_garden_id quarantine_status quarantine_reason "
                "quarantine_acted_by quarantine_acted_at updated_at"
            ),
        )
        self.cursors = t(
            conn,
            "replication_cursors",
            ("peer_id", "direction", "cursor", "updated_at"),
            suffix="ON CONFLICT (peer_id, direction) DO UPDATE SET cursor = excluded.cursor, "
            "updated_at = excluded.updated_at",
        )
        self.aliases = t(
            conn,
            "entity_aliases",
            ("raw_uri", "canonical_uri", "created_at", "kind"),
            "INSERT OR IGNORE",
        )
        self.has_cards = self.cards.present
        self.has_conflicts = self.conflicts.present

    # -- clocks and names --

    def iso(self, ms: int | None = None) -> str:
        return _iso_ms(self.ms if ms is None else ms)

    def hlc(self) -> str:
        self.counter = (self.counter + 1) % 10_000
        return f"{_EPOCH_MS + self.ms}.{self.counter}"

    def uuid(self) -> str:
        return _uuid(self.rng)

    def tenant(self) -> tuple[str, str]:
        return ("default", "acme") if self.rng.random() < TENANTS[0][2] else ("globex", "globex")

    def entity(self, org: str, skew: int = 2, hot: float = 0.5, span: float = 1.0) -> str:
        r = self.rng.random
        # A few hot entities and a long tail, as in a real memory graph.
        n = int((r() ** skew if r() < hot else r()) * self.live.entities * span)
        kind = ENTITY_KINDS[n % len(ENTITY_KINDS)]
        return f"stigmem://{org}/{kind}/{kind[0]}{n:05d}"

    def caller(self, org: str) -> str:
        return f"stigmem://{org}/agent/{AGENTS[int(self.rng.random() * len(AGENTS))]}"

    def value(self, vtype: str, org: str) -> str:
        r = self.rng.random
        if vtype == "text":
            at = int(r() * (len(CORPUS) - 2000))
            length = 16 + int(r() ** 2 * 1300)
            start = CORPUS.find(" ", at) + 1
            return CORPUS[start : start + length].strip()
        if vtype == "string":
            at = int(r() * (len(CORPUS) - 100))
            start = CORPUS.find(" ", at) + 1
            return CORPUS[start : start + 4 + int(r() * 36)].strip()
        if vtype == "number":
            return str(round((r() - 0.3) * 10 ** int(r() * 7), int(r() * 4)))
        if vtype == "ref":
            return self.entity(org)
        if vtype == "datetime":
            return self.iso(int(self.ms + (r() - 0.7) * 90 * DAY_MS))
        if vtype == "boolean":
            return "true" if r() < 0.5 else "false"
        return "null"

    # -- operations --

    def session_for(self, org: str) -> tuple[str, str]:
        sid, who, left = self.sessions.get(org, ("", "", 0))
        if left <= 0:
            sid, who, left = self.uuid(), self.caller(org), 30 + int(self.rng.random() * 300)
        self.sessions[org] = (sid, who, left - 1)
        return sid, who

    def fresh_combo(
        self, tenant: str, org: str, scopes: Sequence[str], weights: Sequence[float]
    ) -> tuple[str, str, str, str]:
        """A subject no live fact has yet (a few tries): contradictions only where wanted."""
        r = self.rng.random
        for _ in range(6):
            combo = (
                tenant,
                self.entity(org),
                RELATIONS[int(r() * len(RELATIONS))],
                self.rng.choices(scopes, weights)[0],
            )
            if combo not in self.live.combos:
                break
        return combo

    def assert_fact(self, contradict: bool = False) -> int:
        """A local assertion: the fact, its journal, audit, chain, CID alias, edge, session
        and quota rows, then contradiction detection. Returns fact rows added."""
        rng, r = self.rng, self.rng.random
        tenant, org = self.tenant()
        sid, who = self.session_for(org)
        combo = None
        if contradict and self.live.facts:
            old = self.live.facts[int(r() * len(self.live.facts))]
            combo = (old[4], old[1], old[2], old[3])
            tenant, org = old[4], "acme" if old[4] == "default" else "globex"
        if combo is None:
            combo = self.fresh_combo(tenant, org, SCOPES, SCOPE_WEIGHTS)
        _, entity, relation, scope = combo
        vtype = rng.choices(VALUE_TYPES, VALUE_WEIGHTS)[0]
        value_v = self.value(vtype, org)
        confidence = round(0.5 + r() * 0.5, 2)
        valid_until = self.iso(int(self.ms + (r() - 0.3) * 60 * DAY_MS)) if r() < 0.1 else None
        interpret_as = "instruction" if r() < 0.01 else "content"
        derived = (
            json.dumps([_cid_of(self.live.facts[int(r() * len(self.live.facts))][0])])
            if self.live.facts and r() < 0.1
            else None
        )
        return self._write_local(
            tenant,
            who,
            sid,
            entity,
            relation,
            scope,
            vtype,
            value_v,
            confidence,
            valid_until,
            interpret_as,
            derived,
            "fact_write",
        )

    def _write_local(
        self,
        tenant: str,
        who: str,
        sid: str,
        entity: str,
        relation: str,
        scope: str,
        vtype: str,
        value_v: str,
        confidence: float,
        valid_until: str | None,
        interpret_as: str,
        derived: str | None,
        event: str,
    ) -> int:
        r = self.rng.random
        fact_id = self.uuid()
        now = self.iso()
        attested_key = f"key_{who.rsplit('/', 1)[1]}" if r() < 0.3 else None
        body = {
            "confidence": confidence,
            "entity": entity,
            "interpret_as": interpret_as,
            "relation": relation,
            "scope": scope,
            "source": who,
            "timestamp": now,
            "valid_until": valid_until,
            "value_type": vtype,
            "value_v": value_v,
        }
        legacy = self.legacy
        cid = None if legacy else "sha256:" + hashlib.sha256(_canon(body).encode()).hexdigest()
        self.facts.put(
            (
                fact_id,
                entity,
                relation,
                vtype,
                value_v,
                who,
                now,
                valid_until,
                confidence,
                scope,
                self.hlc(),
                None,
                attested_key,
                None,
                None,
                None,
                tenant,
                None,
                None,
                derived,
                cid,
                interpret_as,
            )
        )
        if not legacy:
            self.journal.put(
                (
                    self.uuid(),
                    fact_id,
                    "fact_insert",
                    now,
                    tenant,
                    who,
                    who,
                    scope,
                    cid,
                    json.dumps(body, sort_keys=True, separators=(",", ":")),
                )
            )
            self.cid_aliases.put((fact_id, cid))
            self.session_access.put((self.uuid(), sid, who, tenant, scope, "write", now))
        self.live.audit_seq += 1
        self.audit.put(
            (
                self.uuid(),
                fact_id,
                event,
                who,
                who,
                attested_key,
                now,
                tenant,
                json.dumps({"scope": scope}),
                self.live.audit_seq,
            )
        )
        if vtype == "ref":
            self.edges.put(
                (
                    fact_id,
                    entity,
                    relation,
                    value_v,
                    scope,
                    tenant,
                    None,
                    valid_until,
                    confidence,
                    _EPOCH_MS + self.ms,
                )
            )
        if cid is not None:
            self._chain(tenant, fact_id, cid, body)
            self.quota.put((who, tenant, "fact_write", round(50 + r() * 50, 3), self._secs()))
        if self.has_cards:
            self.conn.execute(
                "UPDATE memory_cards SET is_stale = 1 "
                "WHERE entity_uri = ? AND tenant_id = ? AND scope = ?",
                (entity, tenant, scope),
            )
        added = 1 + self._contradictions(tenant, entity, relation, scope, fact_id, now)
        if confidence > 0:
            self._remember(fact_id, entity, relation, scope, tenant, vtype, value_v, confidence)
        return added

    def _chain(self, tenant: str, fact_id: str, cid: str, body: dict[str, Any]) -> None:
        if not self.chain.present:
            return
        seq, previous = self.live.chain.get(tenant, (0, None))
        seq += 1
        event_hash = _hash_json({"cid": cid, "fact_id": fact_id, "tenant_id": tenant, **body})
        chain_hash = _hash_json(
            {"chain_seq": seq, "event_hash": event_hash, "previous_hash": previous}
        )
        now = self.iso()
        self.chain.put(
            (
                f"chain_{self.rng.getrandbits(128):032x}",
                tenant,
                seq,
                fact_id,
                event_hash,
                previous,
                chain_hash,
                now,
            )
        )
        self.live.chain[tenant] = (seq, chain_hash)
        if seq % CHECKPOINT_INTERVAL == 0:
            payload = _canon(
                {
                    "chain_hash": chain_hash,
                    "covered_chain_seq": seq,
                    "created_at": now,
                    "kind": "stigmem.fact_chain_checkpoint",
                    "tenant_id": tenant,
                    "version": 1,
                }
            )
            proof = {
                "hashes": [f"{self.rng.getrandbits(256):064x}" for _ in range(12)],
                "log_index": seq,
                "tree_size": seq + 17,
            }
            self.checkpoints.put(
                (
                    f"ckpt_{self.rng.getrandbits(128):032x}",
                    tenant,
                    seq,
                    chain_hash,
                    payload,
                    "submitted",
                    1,
                    now,
                    now,
                    "rekor",
                    "log-stigmem",
                    _hash_json(proof),
                    seq,
                    _EPOCH_MS + self.ms,
                    json.dumps(proof),
                    json.dumps({"entry": payload}),
                )
            )

    def _contradictions(
        self, tenant: str, entity: str, relation: str, scope: str, fact_id: str, now: str
    ) -> int:
        siblings = self.live.combos.get((tenant, entity, relation, scope), ())
        if not self.has_conflicts:
            return 0
        added = 0
        for sibling in siblings:
            conflict = f"stigmem:conflict:{self.uuid()}"
            for rel, vtype, value in (
                ("stigmem:conflict:between", "text", f"{fact_id} {sibling}"),
                ("stigmem:conflict:status", "string", "unresolved"),
            ):
                self.facts.put(
                    (
                        self.uuid(),
                        conflict,
                        rel,
                        vtype,
                        value,
                        "system:stigmem",
                        now,
                        None,
                        1.0,
                        scope,
                        self.hlc(),
                        None,
                        None,
                        None,
                        None,
                        None,
                        tenant,
                        None,
                        None,
                        None,
                        None,
                        "content",
                    )
                )
                added += 1
            self.conflicts.put((conflict, fact_id, sibling, "unresolved", None, now))
            self.stats_conflicts += 1
        return added

    def _remember(
        self,
        fact_id: str,
        entity: str,
        relation: str,
        scope: str,
        tenant: str,
        vtype: str,
        value_v: str,
        confidence: float,
    ) -> None:
        self.live.facts.append((fact_id, entity, relation, scope, tenant, vtype, value_v))
        self.live.combos.setdefault((tenant, entity, relation, scope), []).append(fact_id)
        self.live.by_entity.setdefault((tenant, entity), []).append(
            (fact_id, relation, value_v, confidence)
        )

    def receive_fact(self, peer: _Peer) -> int:
        """A fact pulled from ``peer``: the fact (quarantined now and then, with its audit
        and projection rows), its ``stigmem:received_from`` meta-fact, contradictions."""
        rng, r = self.rng, self.rng.random
        tenant, org = "default", "acme"
        # Local facts do not travel.
        _, entity, relation, scope = self.fresh_combo(tenant, org, SCOPES[1:], SCOPE_WEIGHTS[1:])
        vtype = rng.choices(VALUE_TYPES, VALUE_WEIGHTS)[0]
        value_v = self.value(vtype, org)
        confidence = round(0.4 + r() * 0.6, 2)
        fact_id = self.uuid()
        now = self.iso()
        source = f"stigmem://{peer.node_id.rsplit(':', 1)[1][:8]}/agent/{AGENTS[int(r() * 8)]}"
        body = {"entity": entity, "relation": relation, "scope": scope, "value_v": value_v}
        cid = "sha256:" + hashlib.sha256(_canon({**body, "source": source}).encode()).hexdigest()
        quarantined = r() < QUARANTINE_RATE
        peer_hlc = f"{_EPOCH_MS + self.ms - int(r() * 600_000)}.{int(r() * 100)}"
        self.facts.put(
            (
                fact_id,
                entity,
                relation,
                vtype,
                value_v,
                source,
                now,
                None,
                confidence,
                scope,
                peer_hlc,
                peer.node_id,
                None,
                peer.node_id,
                json.dumps(list(SCOPES[1:])),
                None,
                tenant,
                "pending" if quarantined else None,
                "source trust below threshold" if quarantined else None,
                None,
                cid,
                "content",
            )
        )
        if vtype == "ref":
            self.edges.put(
                (
                    fact_id,
                    entity,
                    relation,
                    value_v,
                    scope,
                    tenant,
                    peer.node_id,
                    None,
                    confidence,
                    _EPOCH_MS + self.ms,
                )
            )
        if quarantined:
            self.live.audit_seq += 1
            self.audit.put(
                (
                    self.uuid(),
                    fact_id,
                    "quarantine_ingest",
                    None,
                    peer.node_id,
                    None,
                    now,
                    tenant,
                    json.dumps(
                        {
                            "reason": "source trust below threshold",
                            "received_from": peer.node_id,
                            "trust_score": round(r() * 0.3, 3),
                        }
                    ),
                    self.live.audit_seq,
                )
            )
            self.quarantine.put(
                (fact_id, None, "pending", "source trust below threshold", None, None, now)
            )
        self.facts.put(
            (
                self.uuid(),
                fact_id,
                "stigmem:received_from",
                "ref",
                peer.node_id,
                "system:stigmem",
                now,
                None,
                1.0,
                "local",
                self.hlc(),
                None,
                None,
                None,
                None,
                None,
                tenant,
                None,
                None,
                None,
                None,
                "content",
            )
        )
        added = 2
        if not quarantined:
            added += self._contradictions(tenant, entity, relation, scope, fact_id, now)
            self._remember(fact_id, entity, relation, scope, tenant, vtype, value_v, confidence)
        return added

    def move_cursor(self, peer: _Peer, direction: str) -> None:
        self.cursors.put((peer.id, direction, self.hlc(), self.iso()))

    def recall(self) -> None:
        """A recall: audit row, the entity's card refreshed, recall signals of what it
        returned, a read in the session graph, the read quota."""
        if not self.live.facts:
            return
        r = self.rng.random
        tenant, org = self.tenant()
        # Recalls ask about the entities in use: a small, hot set.
        rows: list[tuple[str, str, str, float]] = []
        for _ in range(4):
            entity = self.entity(org, skew=2, hot=1.0, span=RECALLED_ENTITIES)
            rows = self.live.by_entity.get((tenant, entity), [])[:8]
            if rows:
                break
        if not rows:
            picked = self.live.facts[int(r() * len(self.live.facts))]
            entity, tenant = picked[1], picked[4]
            org = "acme" if tenant == "default" else "globex"
            rows = self.live.by_entity[(tenant, entity)][:12]
        scope = self.rng.choices(SCOPES, SCOPE_WEIGHTS)[0]
        sid, who = self.session_for(org)
        now = self.iso()
        query = " ".join(self.value("string", org) for _ in range(2))
        self.recall_audit.put(
            (
                self.uuid(),
                who,
                hashlib.sha256(query.encode()).hexdigest(),
                scope,
                2000,
                len(rows),
                sum(len(v) // 4 + 8 for _, _, v, _ in rows),
                0,
                tenant,
                now,
            )
        )
        summary = "\n".join(
            [f"Entity: {entity}", "Facts:"]
            + [f"  {rel}: {v[:80]} (conf={c:.2f})" for _, rel, v, c in rows]
        )
        hashes = json.dumps([hashlib.sha256(i.encode()).hexdigest() for i, _, _, _ in rows])
        avg = sum(c for *_, c in rows) / len(rows) if rows else 0.0
        self.cards.put((entity, tenant, scope, summary, hashes, round(avg, 4), now, 0, 0))
        for fact_id, *_ in rows[:1]:
            self.recall_signals.put((fact_id, now, 1, round(r(), 3), now))
        self.session_access.put((self.uuid(), sid, who, tenant, scope, "read", now))
        self.quota.put((who, tenant, "fact_read", round(100 + r() * 100, 3), self._secs()))

    def retract(self) -> int:
        """A retraction: the fact again at confidence 0, through the write path, and a row in
        the retraction log and the validity overrides."""
        if not self.live.facts:
            return 0
        r = self.rng.random
        fact_id, entity, relation, scope, tenant, vtype, value_v = self.live.facts[
            int(r() * len(self.live.facts))
        ]
        org = "acme" if tenant == "default" else "globex"
        sid, who = self.session_for(org)
        added = self._write_local(
            tenant,
            who,
            sid,
            entity,
            relation,
            scope,
            vtype,
            value_v,
            0.0,
            None,
            "content",
            None,
            "fact_retract",
        )
        now = self.iso()
        self.retractions.put((self.uuid(), fact_id, now, who))
        self.overrides.put((fact_id, None, 0.0, "retracted", now, who))
        return added

    def resolve_conflicts(self, count: int) -> int:
        if not self.has_conflicts or count <= 0:
            return 0
        now = self.iso()
        open_ = self.conn.execute(
            "SELECT id, fact_a_id, detected_at FROM conflicts WHERE status = 'unresolved' "
            "ORDER BY detected_at, id LIMIT ?",
            (count,),
        ).fetchall()
        for conflict, winner, _ in open_:
            status_id = self.uuid()
            self.facts.put(
                (
                    status_id,
                    conflict,
                    "stigmem:conflict:status",
                    "string",
                    "resolved",
                    "system:stigmem",
                    now,
                    None,
                    1.0,
                    "team",
                    self.hlc(),
                    None,
                    None,
                    None,
                    None,
                    None,
                    "default",
                    None,
                    None,
                    None,
                    None,
                    "content",
                )
            )
            self.conn.execute(
                "UPDATE conflicts SET status = 'resolved', resolution_fact_id = ? WHERE id = ?",
                (winner, conflict),
            )
        return len(open_)

    def _secs(self) -> float:
        return round((_EPOCH_MS + self.ms) / 1000, 3)


FACT_COLUMNS = _cols(
    "id entity relation value_type value_v source timestamp valid_until confidence scope hlc "
    "received_from attested_key_id origin_node_id origin_allowed_scopes garden_id tenant_id "
    "quarantine_status quarantine_reason derived_from cid interpret_as"
)

_EPOCH_MS = int(EPOCH.timestamp() * 1000)


def _iso_ms(ms: int) -> str:
    return (EPOCH + timedelta(milliseconds=ms)).isoformat()


def _canon(body: dict[str, Any]) -> str:
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _hash_json(body: dict[str, Any]) -> str:
    return "sha256:" + hashlib.sha256(_canon(body).encode()).hexdigest()


def _cid_of(fact_id: str) -> str:
    return "sha256:" + hashlib.sha256(fact_id.encode()).hexdigest()


# --- building a database ---------------------------------------------------------------------


def make_node_db(
    path: Path,
    size_mb: float = 1,
    seed: int = 0,
    node_id: str | None = None,
    privkey_seed: bytes | None = None,
    migrations: int | str | None = None,
    *,
    upto: int | str | None = None,
    key_form: KeyForm = "seed",
) -> NodeInfo:
    """Build a WAL-mode node database of about ``size_mb`` MiB at ``path`` (replaced if present).

    ``upto`` (or ``migrations``, its older name) stops the schema at a version or after a
    count of migration files; by default every fixture migration is applied. ``key_form``
    picks how node_meta keeps the federation key: ``"seed"`` (base64url 32-byte seed, with
    ``federation_pubkey`` beside it) or ``"pkcs8"`` (base64url PKCS8 DER, no pubkey row).
    The same arguments give the same bytes (for a given SQLite version).
    """
    limit = upto if upto is not None else migrations
    if limit is not None and (limit == 0 or not migration_files(limit)):
        raise ValueError("a node database has at least 001_init applied")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in (path, *_sidecars(path)):
        stale.unlink(missing_ok=True)
    rng = random.Random(seed)
    node_id = node_id or f"stigmem:node:{_uuid(rng)}"
    seed_bytes = privkey_seed if privkey_seed is not None else rng.randbytes(32)
    private = Ed25519PrivateKey.from_private_bytes(seed_bytes)
    pubkey = b64url(private.public_key().public_bytes_raw())
    if key_form == "seed":
        privkey = b64url(seed_bytes)
        meta = {"node_id": node_id, "federation_privkey": privkey, "federation_pubkey": pubkey}
    else:
        der = private.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        privkey = b64url(der)
        meta = {"node_id": node_id, "federation_privkey": privkey}

    conn = sqlite3.connect(path, isolation_level=None)
    try:
        # Build speed matters (bench builds 256 MiB); durability does not until the end.
        conn.execute(f"PRAGMA page_size={PAGE_SIZE}")
        conn.execute("PRAGMA journal_mode=OFF")
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute("PRAGMA cache_size=-262144")
        applied_at = iter(EPOCH - timedelta(days=400 - n) for n in range(1000))
        applied = apply_node_migrations(conn, MIGRATIONS_DIR, limit, clock=lambda: next(applied_at))
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO node_meta (key, value) VALUES (?, ?)", meta.items())
        writer = _NodeWriter(conn, rng, node_id)
        _setup(writer)
        conn.execute("COMMIT")
        _fill(writer, int(size_mb * 1024 * 1024))
        (facts,) = conn.execute("SELECT count(*) FROM facts").fetchone()
        conn.execute("PRAGMA journal_mode=WAL")
    finally:
        conn.close()
    return NodeInfo(
        path=path,
        node_id=node_id,
        privkey=privkey,
        pubkey=pubkey,
        migrations=applied,
        facts=int(facts),
        size=path.stat().st_size,
        key_form=key_form,
    )


def _setup(w: _NodeWriter) -> None:
    """Peers and their cursors, gardens, entity aliases: what a node has besides facts."""
    conn, rng = w.conn, w.rng
    peers = _Table(
        conn,
        "peers",
        _cols(
            "id node_id node_url federation_pubkey allowed_scopes status established_at "
            "declaration_sig signed_at created_at"
        ),
    )
    (peers_sql,) = conn.execute(
        "SELECT coalesce(max(sql), '') FROM sqlite_master WHERE name = 'peers'"
    ).fetchone()
    # Before migration 038 a peer waiting for an operator is still pending verification.
    waiting = "pending_approval" if "pending_approval" in peers_sql else "pending_verification"
    statuses = ["active", waiting, "active", "revoked", "active", "active"]
    for n in range(4 + int(rng.random() * 3)):
        status = statuses[n % len(statuses)]
        established = _iso_ms(-(HISTORY_DAYS + 30 - n) * DAY_MS)
        peer = _Peer(_uuid(rng), f"stigmem:node:{_uuid(rng)}", status)
        peers.put(
            (
                peer.id,
                peer.node_id,
                f"https://node{n}.peers.example.net:8443",
                b64url(rng.randbytes(32)),
                json.dumps(["team", "company", "public"]),
                status,
                established if status != waiting else None,
                b64url(rng.randbytes(64)),
                established,
                established,
            )
        )
        w.peers.append(peer)
        # A peer never pulled from (pending) or never pushed to has NULL cursors.
        for direction in ("inbound", "outbound"):
            never = status == waiting or (direction == "outbound" and n == 2)
            w.cursors.put((peer.id, direction, None if never else w.hlc(), established))
    gardens = _Table(conn, "gardens", _cols("id slug name scope created_by created_at quarantine"))
    gardens.put(
        (
            "garden-main",
            "main",
            "Main",
            "team",
            "stigmem://acme/agent/admin",
            _iso_ms(-HISTORY_DAYS * DAY_MS),
            0,
        )
    )
    gardens.put(
        (
            "garden-quarantine",
            "quarantine",
            "Quarantine",
            "team",
            "stigmem://acme/agent/admin",
            _iso_ms(-HISTORY_DAYS * DAY_MS),
            1,
        )
    )


def _fill(w: _NodeWriter, target_bytes: int) -> None:
    """History up to the target size: days of assertions, receptions, recalls, retractions,
    in the proportions of a day's churn, times spread over ``HISTORY_DAYS``."""
    conn, r = w.conn, w.rng.random
    w.live.entities = _entities_for(target_bytes)
    active = [p for p in w.peers if p.status == "active"]
    ops = 0
    conn.execute("BEGIN")
    while (progress := _size(conn) / target_bytes) < 1:
        w.ms = int((progress - 1) * HISTORY_DAYS * DAY_MS)
        w.legacy = progress < LEGACY_SHARE
        # The node commits each request, and FTS5 writes a segment per commit, so the
        # index's shape and its merges depend on it. A released savepoint flushes FTS5 the
        # same way (the file differs from per-operation commits in its header's change
        # counter only) and takes half the build time: commits are batched.
        if ops and ops % BUILD_BATCH == 0:
            conn.execute("COMMIT")
            conn.execute("BEGIN")
        conn.execute("SAVEPOINT op")
        _one_op(w, r, active)
        ops += 1
        if ops % PULL_BATCH == 0 and active:
            w.move_cursor(active[ops // PULL_BATCH % len(active)], "inbound")
        conn.execute("RELEASE op")
    w.legacy = False
    _extras(w)
    conn.execute("COMMIT")


def _one_op(w: _NodeWriter, r: Callable[[], float], active: list[_Peer]) -> None:
    # Per new fact: one recall, a retraction now and then; a third of facts come from peers.
    x = r() * (1 + HISTORY_RECALLS_PER_FACT + RETRACTION_RATE)
    if x < 1:
        if active and r() < RECEIVED_SHARE:
            w.receive_fact(active[int(r() * len(active))])
        else:
            w.assert_fact(contradict=r() < CONTRADICTION_RATE)
    elif x < 1 + HISTORY_RECALLS_PER_FACT:
        w.recall()
    else:
        w.retract()


def _extras(w: _NodeWriter) -> None:
    """Rows the markdown export reads that the day-to-day mix makes rarely: aliases, a
    validity override that extends a fact, resolved conflicts, one fact of each kind."""
    now = w.iso()
    for n, fact in enumerate(w.live.facts[:: max(1, len(w.live.facts) // 40)]):
        entity = fact[1]
        w.aliases.put((entity.upper(), entity, now, "migration"))
        if n % 4 == 0:
            w.aliases.put((entity.replace("stigmem://", "urn:stigmem:"), entity, now, "user"))
    for fact in w.live.facts[5 :: max(1, len(w.live.facts) // 20)]:
        w.overrides.put((fact[0], w.iso(w.ms + 30 * DAY_MS), None, "extended", now, "admin"))
    w.resolve_conflicts(max(1, w.stats_conflicts // 3))
    # Every value type in every scope, in both tenants, at least once (once there are
    # tenants: the first migrations are for a node's tiniest databases).
    if "tenant_id" not in {row[1] for row in w.conn.execute("PRAGMA table_info(facts)")}:
        return
    for tenant, org in (("default", "acme"), ("globex", "globex")):
        sid, who = w.session_for(org)
        for vtype in VALUE_TYPES:
            for scope in SCOPES:
                w._write_local(
                    tenant,
                    who,
                    sid,
                    f"stigmem://{org}/topic/sampler",
                    f"sample:{vtype}",
                    scope,
                    vtype,
                    w.value(vtype, org),
                    0.9,
                    None,
                    "content",
                    None,
                    "fact_write",
                )


def apply_churn(path: Path, day: int, seed: int = 0, scale: float = 1.0) -> ChurnStats:
    """One day of a node's life on an existing database (each operation its own transaction,
    as the node commits each request). Deterministic in (database, day, seed)."""
    rng = random.Random(f"churn:{seed}:{day}")
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA synchronous=NORMAL")
        (node_id,) = conn.execute("SELECT value FROM node_meta WHERE key = 'node_id'").fetchone()
        w = _NodeWriter(conn, rng, node_id)
        _reload(w)
        w.ms = (day * DAY_MS) + 6 * 3_600_000
        real = len(w.live.facts)
        # Rounded at random (from the day's seed): a small node gets a fact on some days only.
        expected = real * DAILY_FACTS * scale
        new_facts = int(expected) + (rng.random() < expected % 1)
        active = [p for p in w.peers if p.status == "active"]
        received = int(new_facts * RECEIVED_SHARE) if active else 0
        recalls = int(new_facts * RECALLS_PER_FACT)
        retractions = int(new_facts * RETRACTION_RATE)
        ops = ["assert"] * (new_facts - received) + ["receive"] * received
        ops += ["recall"] * recalls + ["retract"] * retractions
        rng.shuffle(ops)
        step = (16 * 3_600_000) // max(1, len(ops))
        inserted = pulled = 0
        conflicts_before = w.stats_conflicts
        for op in ops:
            w.ms += step
            conn.execute("BEGIN")
            if op == "assert":
                inserted += w.assert_fact(contradict=rng.random() < CONTRADICTION_RATE)
            elif op == "receive":
                # Pulls go round the active peers a batch at a time; the cursor of the peer
                # pulled from moves after each batch.
                peer = active[pulled // PULL_BATCH % len(active)]
                inserted += w.receive_fact(peer)
                pulled += 1
                if pulled % PULL_BATCH == 0 or pulled == received:
                    w.move_cursor(peer, "inbound")
            elif op == "recall":
                w.recall()
            else:
                inserted += w.retract()
            conn.execute("COMMIT")
        conn.execute("BEGIN")
        for peer in active:
            w.move_cursor(peer, "outbound")
        unresolved = 0
        if w.has_conflicts:
            (unresolved,) = conn.execute(
                "SELECT count(*) FROM conflicts WHERE status = 'unresolved'"
            ).fetchone()
        resolved = w.resolve_conflicts(int(unresolved * RESOLVE_RATE))
        inserted += resolved
        conn.execute("COMMIT")
    finally:
        conn.close()
    return ChurnStats(
        day=day,
        inserted=inserted,
        asserted=new_facts - received,
        received=received,
        conflicts=w.stats_conflicts - conflicts_before,
        resolved=resolved,
        retractions=retractions,
        recalls=recalls,
    )


def _reload(w: _NodeWriter) -> None:
    """What the writer remembers, read back from the database."""
    conn = w.conn
    has = {n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    columns = {row[1] for row in conn.execute("PRAGMA table_info(facts)")}
    tenant = "tenant_id" if "tenant_id" in columns else "'default'"
    held = "AND quarantine_status IS NULL" if "quarantine_status" in columns else ""
    for row in conn.execute(
        f"SELECT id, entity, relation, scope, {tenant}, value_type, value_v, confidence "
        f"FROM facts WHERE confidence > 0 AND source != 'system:stigmem' {held} ORDER BY rowid"
    ):
        w._remember(*row)
    w.live.entities = _entities_for(_size(conn))
    if "fact_chain" in has:
        for t, seq, h in conn.execute(
            "SELECT tenant_id, chain_seq, chain_hash FROM fact_chain c WHERE chain_seq = "
            "(SELECT max(chain_seq) FROM fact_chain d WHERE d.tenant_id = c.tenant_id)"
        ):
            w.live.chain[t] = (seq, h)
    if "fact_audit_log" in has:
        w.live.audit_seq = conn.execute(
            "SELECT coalesce(max(rowid), 0) FROM fact_audit_log"
        ).fetchone()[0]
    if "peers" in has:
        w.peers = [
            _Peer(*row)
            for row in conn.execute("SELECT id, node_id, status FROM peers ORDER BY rowid")
        ]


def _entities_for(size: int) -> int:
    # Entities scale with the database: a larger node knows more things, not more about the
    # same ones (about one entity per four facts, at 3.5 KiB a fact).
    return max(200, size // 3584 // 4)


def _size(conn: sqlite3.Connection) -> int:
    (pages,) = conn.execute("PRAGMA page_count").fetchone()
    return int(pages) * PAGE_SIZE


def _uuid(rng: random.Random) -> str:
    # uuid.UUID(int=..., version=4) by hand: it is a third of the build time otherwise.
    bits = rng.getrandbits(128) & ~(0xF << 76) & ~(0xC << 60) | (4 << 76) | (0x8 << 60)
    h = f"{bits:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _sidecars(path: Path) -> tuple[Path, ...]:
    return tuple(path.with_name(path.name + s) for s in ("-wal", "-shm", "-journal"))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.nodegen", description=__doc__)
    parser.add_argument("--out", type=Path, required=True, help="database to create or churn")
    parser.add_argument("--size-mb", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--upto", help="last migration to apply (default: all)")
    parser.add_argument("--key-form", choices=("seed", "pkcs8"), default="seed")
    parser.add_argument(
        "--churn-day",
        type=int,
        action="append",
        default=[],
        help="apply this day's churn to the existing --out (repeatable)",
    )
    args = parser.parse_args(argv)
    if args.churn_day:
        if not args.out.is_file():
            parser.error(f"no such file: {args.out}")
        for day in args.churn_day:
            stats = apply_churn(args.out, day, seed=args.seed)
            print(json.dumps(asdict(stats)))
        return 0
    info = make_node_db(
        args.out, args.size_mb, seed=args.seed, upto=args.upto, key_form=args.key_form
    )
    print(json.dumps({**asdict(info), "path": str(info.path)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
