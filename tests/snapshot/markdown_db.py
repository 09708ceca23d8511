"""A node database for the Markdown export's tests: the node's schema (the project's fixture
migrations) with facts of every value type and scope, aliases, expiry and its overrides,
quarantine, two tenants and conflicts, each row written here so the test says what it holds."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from tests.nodegen import apply_node_migrations

NODE_ID = "stigmem:node:markdown-test"
PAST = "2001-01-01T00:00:00+00:00"  # expired whenever the tests run
FUTURE = "2999-01-01T00:00:00+00:00"  # never expires while they do


@dataclass
class NodeDb:
    """Writes rows into a node database; timestamps go up one second per fact, so the facts
    written last are listed first."""

    conn: sqlite3.Connection
    written: int = 0
    ids: list[str] = field(default_factory=list)

    def fact(
        self,
        entity: str,
        relation: str,
        value_type: str,
        value: str,
        *,
        scope: str = "team",
        confidence: float = 0.9,
        source: str = "agent:writer",
        valid_until: str | None = None,
        tenant: str = "default",
        quarantine: str | None = None,
        timestamp: str | None = None,
        fact_id: str | None = None,
    ) -> str:
        self.written += 1
        fid = fact_id or f"fact-{self.written:04d}"
        when = timestamp or f"2026-05-01T00:{self.written // 60:02d}:{self.written % 60:02d}+00:00"
        self.conn.execute(
            "INSERT INTO facts (id, entity, relation, value_type, value_v, source, timestamp,"
            " valid_until, confidence, scope, tenant_id, quarantine_status)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                fid,
                entity,
                relation,
                value_type,
                value,
                source,
                when,
                valid_until,
                confidence,
                scope,
                tenant,
                quarantine,
            ),
        )
        self.ids.append(fid)
        return fid

    def override(
        self, fact_id: str, valid_until: str | None = None, confidence: float | None = None
    ) -> None:
        self.conn.execute(
            "INSERT INTO fact_validity_overrides (fact_id, valid_until, confidence, updated_at)"
            " VALUES (?, ?, ?, ?)",
            (fact_id, valid_until, confidence, "2026-05-02T00:00:00+00:00"),
        )

    def quarantine(self, fact_id: str, status: str) -> None:
        self.conn.execute(
            "INSERT INTO fact_quarantine_status (fact_id, quarantine_status, updated_at)"
            " VALUES (?, ?, ?)",
            (fact_id, status, "2026-05-02T00:00:00+00:00"),
        )

    def alias(self, raw: str, canonical: str) -> None:
        self.conn.execute(
            "INSERT INTO entity_aliases (raw_uri, canonical_uri, created_at) VALUES (?, ?, ?)",
            (raw, canonical, "2026-05-02T00:00:00+00:00"),
        )

    def conflict(self, cid: str, fact_a: str, fact_b: str, status: str, detected: str) -> None:
        self.conn.execute(
            "INSERT INTO conflicts (id, fact_a_id, fact_b_id, status, detected_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (cid, fact_a, fact_b, status, detected),
        )


def new_node_db(path: Path) -> NodeDb:
    conn = sqlite3.connect(path)
    # A scratch file: with an fsync for each migration, making one took 2.5 s, not 0.13 s.
    conn.execute("PRAGMA synchronous = OFF")
    apply_node_migrations(conn)
    conn.execute("INSERT OR REPLACE INTO node_meta (key, value) VALUES ('node_id', ?)", (NODE_ID,))
    return NodeDb(conn)


def fill(db: NodeDb) -> None:
    """The scenario the export tests read. ``team:ops`` in scope ``team`` holds one fact of
    each kind the export prints or leaves out; the lines it lists are in ``OPS_TEAM_LINES``."""
    # Two conflicts name facts that are not there: SQLite leaves foreign keys unchecked
    # unless a connection asks, and the script's table has a row for such conflicts too.
    db.conn.commit()  # the pragma does nothing inside a transaction
    db.conn.execute("PRAGMA foreign_keys = OFF")
    f = db.fact
    # Left out: expired, or expired by an override; pending quarantine (the fact's own status
    # or the projection's); another tenant; another scope; a relation stated twice.
    f("team:ops", "expired", "string", "gone", valid_until=PAST)
    db.override(f("team:ops", "expired-by-override", "string", "gone", valid_until=FUTURE), PAST)
    f("team:ops", "pending", "string", "held", quarantine="pending")
    db.quarantine(f("team:ops", "pending-projection", "string", "held"), "pending")
    f("team:ops", "other-tenant", "string", "theirs", tenant="acme")
    f("team:ops", "other-scope", "string", "local only", scope="local")
    f("team:ops", "owner", "string", "alice")
    f("team:ops", "owner", "string", "bob")
    # Listed, oldest first here (the export lists newest first).
    f("team:ops", "promoted", "string", "released", quarantine="pending")
    db.quarantine(db.ids[-1], "promoted")
    f("team:ops", "rejected", "string", "kept", quarantine="rejected")
    db.override(f("team:ops", "extended", "string", "still valid", valid_until=PAST), FUTURE)
    db.override(f("team:ops", "reweighed", "string", "less sure", confidence=0.8), None, 0.25)
    f("team:ops", "expires-later", "string", "for now", valid_until=FUTURE)
    f("ops-team", "via-alias", "string", "an alias's fact")
    db.alias("ops-team", "team:ops")
    f("team:ops", "name", "string", "Ｏｐｓ\u200b \u202eteam\x07\tone")
    f("team:ops", "notes", "text", "first line\nsecond line\n\nfourth line")
    f("team:ops", "count", "number", "12.0")
    f("team:ops", "big", "number", "1e20")
    f("team:ops", "small", "number", "1e-6")
    f("team:ops", "long", "number", "1.2345678901234567e19")
    f("team:ops", "on-call", "boolean", "true")
    f("team:ops", "paused", "boolean", "false")
    f("team:ops", "manager", "null", "null")
    f("team:ops", "since", "datetime", "2024-02-29T08:00:00Z")
    f("team:ops", "wiki", "ref", "https://wiki.example/ops")
    f("team:ops", "lead", "ref", "agent:bot-1")
    f("team:ops", "certain", "string", "yes", confidence=1.0, source="human:carol")
    # Another entity, in two scopes; its name is normalised as the node does.
    f("agent:bot-one", "role", "string", "deployer")
    f("agent:bot-one", "role", "string", "public face", scope="public")
    # Conflicts of both tenants and several scopes, and one whose first fact is gone.
    acme_a = f("x:1", "c", "string", "1", scope="public", tenant="acme")
    acme_b = f("x:1", "c", "string", "2", scope="public", tenant="acme")
    co_a = f("x:2", "c", "string", "1", scope="company")
    co_b = f("x:2", "c", "string", "2", scope="company")
    db.conflict("stigmem:conflict:1", acme_a, acme_b, "unresolved", "2026-05-03T00:00:01+00:00")
    db.conflict("stigmem:conflict:2", co_a, co_b, "resolved", "2026-05-03T00:00:02+00:00")
    db.conflict("stigmem:conflict:3", co_a, co_b, "unresolved", "2026-05-03T00:00:03+00:00")
    db.conflict("stigmem:conflict:4", "gone", acme_b, "resolved", "2026-05-03T00:00:04+00:00")
    db.conflict("stigmem:conflict:5", "gone", "gone-too", "unresolved", "2026-05-03T00:00:05+00:00")
    db.conn.commit()


OPS_TEAM_LINES = [
    "- **certain** (source=human:carol, conf=1): yes",
    "- **lead** (source=agent:writer, conf=0.9): agent:bot-1",
    "- **wiki** (source=agent:writer, conf=0.9): https://wiki.example/ops",
    "- **since** (source=agent:writer, conf=0.9): 2024-02-29T08:00:00Z",
    "- **manager** (source=agent:writer, conf=0.9): null",
    "- **paused** (source=agent:writer, conf=0.9): false",
    "- **on-call** (source=agent:writer, conf=0.9): true",
    "- **long** (source=agent:writer, conf=0.9): 12345678901234567000",
    "- **small** (source=agent:writer, conf=0.9): 1e-06",
    "- **big** (source=agent:writer, conf=0.9): 1e+20",
    "- **count** (source=agent:writer, conf=0.9): 12",
    "- **notes** (source=agent:writer, conf=0.9): first line\n  second line\n  \n  fourth line",
    "- **name** (source=agent:writer, conf=0.9): Ops team\tone",
    "- **via-alias** (source=agent:writer, conf=0.9): an alias's fact",
    "- **expires-later** (source=agent:writer, conf=0.9): for now",
    "- **reweighed** (source=agent:writer, conf=0.25): less sure",
    "- **extended** (source=agent:writer, conf=0.9): still valid",
    "- **rejected** (source=agent:writer, conf=0.9): kept",
    "- **promoted** (source=agent:writer, conf=0.9): released",
]

CONFLICT_LINES = [
    "## Contradiction Metrics",
    "",
    "| Scope | Unresolved | Resolved | Total |",
    "|-------|------------|----------|-------|",
    "| company | 1 | 1 | 2 |",
    "| public | 1 | 1 | 2 |",
    "| unknown | 1 | 0 | 1 |",
    "",
]


def expected_body(entities_line: str, sections: list[tuple[str, list[str]]]) -> str:
    """The text after the header's first four lines (title, blank, Auto-generated, blank) and
    the Node line, for scope ``team`` with the contradiction metrics."""
    lines = ["- **Scope:** team", f"- **Entities:** {entities_line}", ""]
    for heading, facts in sections:
        lines += [f"## {heading} — team scope", "", *facts, ""]
    return "\n".join([*lines, *CONFLICT_LINES]) + "\n"
