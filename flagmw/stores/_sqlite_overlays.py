"""The SQLite store's snapshot revs: a base row per rev and overlay rows per changed
tenant or route (:mod:`flagmw.stores._overlays`), and the schema-3 migration that
moves the overlays of revs written before it out of their documents.

``overlays(section, name, rev, body)``: the overlay of ``name`` at rev R is its row
with the greatest ``rev`` ≤ R; ``body`` NULL marks it removed at that rev. Rows are
immutable (triggers refuse UPDATE and DELETE), like the revs they belong to.
"""

from __future__ import annotations

import json
import sqlite3
import sys
from collections.abc import Iterable, Mapping
from typing import Any

from flagmw.core.snapshot_hash import digest_from_hex, digest_hex, texts_digest
from flagmw.stores._overlays import OverlayKey, PublishPlan, plan_document
from flagmw.stores._sqlite_rows import dumps, insert_audit

__all__ = [
    "OVERLAYS_SCHEMA",
    "changed_between",
    "head_digest",
    "insert_rev",
    "migrate_to_overlays",
    "names_at",
    "texts_at",
    "texts_of",
]

OVERLAYS_SCHEMA = """
CREATE TABLE IF NOT EXISTS overlays (
    section TEXT NOT NULL,
    name TEXT NOT NULL,
    rev INTEGER NOT NULL,
    body TEXT,
    PRIMARY KEY (section, name, rev)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS overlays_rev ON overlays(rev);
CREATE TRIGGER IF NOT EXISTS overlays_immutable_update BEFORE UPDATE ON overlays
BEGIN SELECT RAISE(ABORT, 'flagmw snapshots are immutable'); END;
CREATE TRIGGER IF NOT EXISTS overlays_immutable_delete BEFORE DELETE ON overlays
BEGIN SELECT RAISE(ABORT, 'flagmw snapshots are immutable'); END;
"""


def texts_at(conn: sqlite3.Connection, rev: int | None) -> dict[OverlayKey, str]:
    """Every overlay in force at ``rev`` (key → text); empty for None."""
    if rev is None:
        return {}
    # SQLite's bare columns: `body` comes from the row holding max(rev)
    rows = conn.execute(
        "SELECT section, name, body, MAX(rev) FROM overlays WHERE rev <= ? GROUP BY section, name",
        (rev,),
    )
    return {(s, n): b for s, n, b, _ in rows if b is not None}


def names_at(conn: sqlite3.Connection, rev: int) -> list[OverlayKey]:
    """The keys of every overlay in force at ``rev``."""
    rows = conn.execute(
        "SELECT section, name, body IS NULL, MAX(rev) FROM overlays WHERE rev <= ? "
        "GROUP BY section, name",
        (rev,),
    )
    intern = sys.intern  # one "tenants" object, not one per row
    return [(intern(s), n) for s, n, gone, _ in rows if not gone]


def texts_of(
    conn: sqlite3.Connection, rev: int | None, keys: Iterable[OverlayKey]
) -> dict[OverlayKey, str | None]:
    """The texts of ``keys`` at ``rev`` (None: no such overlay)."""
    out: dict[OverlayKey, str | None] = {}
    for section, name in keys:
        row = None
        if rev is not None:
            row = conn.execute(
                "SELECT body FROM overlays WHERE section=? AND name=? AND rev<=? "
                "ORDER BY rev DESC LIMIT 1",
                (section, name, rev),
            ).fetchone()
        out[(section, name)] = row[0] if row else None
    return out


def changed_between(conn: sqlite3.Connection, since: int, rev: int) -> set[OverlayKey]:
    """The keys of the overlays written by the revs after ``since`` up to ``rev``."""
    rows = conn.execute(
        "SELECT DISTINCT section, name FROM overlays WHERE rev > ? AND rev <= ?", (since, rev)
    )
    return {(s, n) for s, n in rows}


def head_digest(conn: sqlite3.Connection, rev: int | None) -> int:
    """The overlay digest of ``rev`` (0 before the first rev)."""
    if rev is None:
        return 0
    row = conn.execute("SELECT overlay_digest FROM snapshots WHERE rev=?", (rev,)).fetchone()
    if row and row[0]:
        return digest_from_hex(row[0])
    return texts_digest(texts_at(conn, rev))  # not recorded: summed from its overlays


def insert_rev(
    conn: sqlite3.Connection,
    plan: PublishPlan,
    registry: Mapping[str, Any],
    *,
    rev: int,
    head: int | None,
    registry_fingerprint: str,
    author: str,
    message: str,
    at: float,
    action: str,
    rollback_of: int | None,
    audit_at: float,
) -> None:
    """Write rev ``rev`` as planned: its registry, base row, overlay rows and the
    publish's audit entry (inside the caller's write transaction)."""
    conn.execute(
        "INSERT OR IGNORE INTO registries(fingerprint, document) VALUES (?, ?)",
        (registry_fingerprint, dumps(registry)),
    )
    conn.execute(
        "INSERT INTO snapshots(rev, parent_rev, content_hash, author, message, created_at,"
        " registry_fingerprint, action, rollback_of, document, overlay_digest) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            rev,
            head,
            plan.content_hash,
            author,
            message,
            at,
            registry_fingerprint,
            action,
            rollback_of,
            dumps(plan.base),
            digest_hex(plan.digest),
        ),
    )
    conn.executemany(
        "INSERT INTO overlays(section, name, rev, body) VALUES (?, ?, ?, ?)",
        ((s, n, rev, text) for s, n, text in plan.rows),
    )
    insert_audit(
        conn,
        audit_at,
        action,
        author,
        message,
        f"rev {rev}",
        head,
        rev,
        plan.audit_details(rollback_of),
    )


def migrate_to_overlays(conn: sqlite3.Connection) -> None:
    """Schema 2 → 3 (inside the caller's write transaction): move every rev's tenant
    and route overlays out of its document into overlay rows (only the changed ones per
    rev) and record its overlay digest. Content hashes already recorded are kept (they
    name what was published then); revs published from now on use the composable hash."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(snapshots)")}
    if "overlay_digest" not in columns:
        conn.execute("ALTER TABLE snapshots ADD COLUMN overlay_digest TEXT")
    for statement in _statements(OVERLAYS_SCHEMA):
        conn.execute(statement)
    conn.execute("DROP TRIGGER IF EXISTS snapshots_immutable_update")
    head: dict[OverlayKey, str] = {}
    revs = conn.execute("SELECT rev, document FROM snapshots ORDER BY rev").fetchall()
    for rev, text in revs:
        plan = plan_document(json.loads(text), head, "-")
        conn.executemany(
            "INSERT INTO overlays(section, name, rev, body) VALUES (?, ?, ?, ?)",
            ((s, n, rev, body) for s, n, body in plan.rows),
        )
        conn.execute(
            "UPDATE snapshots SET document=?, overlay_digest=? WHERE rev=?",
            (dumps(plan.base), digest_hex(plan.digest), rev),
        )
        for s, n, body in plan.rows:
            if body is None:
                head.pop((s, n), None)
            else:
                head[(s, n)] = body
    conn.execute(
        "CREATE TRIGGER snapshots_immutable_update BEFORE UPDATE ON snapshots "
        "BEGIN SELECT RAISE(ABORT, 'flagmw snapshots are immutable'); END"
    )


def _statements(script: str) -> list[str]:
    """Split a script into statements (``sqlite3.complete_statement`` knows triggers)."""
    out: list[str] = []
    buf = ""
    for line in script.strip().splitlines():
        buf += line + "\n"
        if sqlite3.complete_statement(buf):
            out.append(buf)
            buf = ""
    return out
