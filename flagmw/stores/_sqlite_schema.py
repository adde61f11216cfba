"""The SQLite store's schema: its tables and triggers, and opening a connection to it.

Layout of ``flagmw.db``:

* ``meta`` — schema version and the two change sequences (``snapshot_seq``,
  ``override_seq``), bumped in the same transaction as every change;
* ``snapshots`` — one row per rev, immutable (triggers refuse UPDATE and DELETE);
* ``registries`` — the registries snapshots were validated against, by fingerprint;
* ``overrides`` — the emergency layer, append-only as far as SQLite allows: triggers
  refuse DELETE, and every UPDATE but a renewal (``expires_at``) or the one end of an
  override (``ended_*``; schema version 2);
* ``audit`` — the append-only log (triggers refuse UPDATE and DELETE);
* ``overlays`` — the tenant and route overlays of every rev, one row per overlay
  changed at that rev (schema version 3; :mod:`flagmw.stores._sqlite_overlays`); a
  rev's ``document`` is its base and ``overlay_digest`` summarises its overlays.
* ``api_tokens`` — the console's API tokens, hashed (:mod:`flagmw.stores.tokens`;
  schema version 4): never deleted, only revoked once.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from flagmw.errors import StoreUnavailableError
from flagmw.stores._sqlite_overlays import OVERLAYS_SCHEMA, migrate_to_overlays

__all__ = ["SCHEMA_VERSION", "connect"]

SCHEMA_VERSION = 4

# schema version 2: the overrides table is append-only too (issue 9 item 9)
_OVERRIDES_TRIGGERS = """
CREATE TRIGGER IF NOT EXISTS overrides_append_only_delete BEFORE DELETE ON overrides
BEGIN SELECT RAISE(ABORT, 'flagmw overrides are append-only (end one early instead)'); END;
CREATE TRIGGER IF NOT EXISTS overrides_append_only_update BEFORE UPDATE ON overrides
WHEN NEW.seq IS NOT OLD.seq
    OR (OLD.id IS NOT NULL AND NEW.id IS NOT OLD.id)
    OR NEW.key IS NOT OLD.key OR NEW.value IS NOT OLD.value OR NEW.kind IS NOT OLD.kind
    OR NEW.scope IS NOT OLD.scope OR NEW.target IS NOT OLD.target
    OR NEW.reason IS NOT OLD.reason OR NEW.actor IS NOT OLD.actor
    OR NEW.created_at IS NOT OLD.created_at OR NEW.force IS NOT OLD.force
    OR NEW.environment IS NOT OLD.environment
    OR (OLD.ended_at IS NOT NULL AND (NEW.ended_at IS NOT OLD.ended_at
        OR NEW.ended_by IS NOT OLD.ended_by OR NEW.end_reason IS NOT OLD.end_reason
        OR NEW.expires_at IS NOT OLD.expires_at))
BEGIN
    SELECT RAISE(ABORT, 'flagmw overrides are append-only (only renew or end change one)');
END;
"""

# schema version 4: the console's API tokens (flagmw.stores.tokens)
_TOKENS = """
CREATE TABLE IF NOT EXISTS api_tokens (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT UNIQUE NOT NULL,
    hash TEXT UNIQUE NOT NULL,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    created_at REAL NOT NULL,
    created_by TEXT NOT NULL,
    revoked_at REAL,
    revoked_by TEXT,
    revoke_reason TEXT
);
CREATE TRIGGER IF NOT EXISTS api_tokens_no_delete BEFORE DELETE ON api_tokens
BEGIN SELECT RAISE(ABORT, 'flagmw API tokens are revoked, never deleted'); END;
CREATE TRIGGER IF NOT EXISTS api_tokens_revoke_once BEFORE UPDATE ON api_tokens
WHEN OLD.revoked_at IS NOT NULL OR NEW.seq IS NOT OLD.seq OR NEW.id IS NOT OLD.id
    OR NEW.hash IS NOT OLD.hash OR NEW.name IS NOT OLD.name OR NEW.role IS NOT OLD.role
    OR NEW.created_at IS NOT OLD.created_at OR NEW.created_by IS NOT OLD.created_by
BEGIN SELECT RAISE(ABORT, 'flagmw API tokens only change by one revocation'); END;
"""

_SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', 4), ('snapshot_seq', 0),
    ('override_seq', 0);
CREATE TABLE IF NOT EXISTS registries (
    fingerprint TEXT PRIMARY KEY,
    document TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS snapshots (
    rev INTEGER PRIMARY KEY,
    parent_rev INTEGER,
    content_hash TEXT NOT NULL,
    author TEXT NOT NULL,
    message TEXT NOT NULL,
    created_at REAL NOT NULL,
    registry_fingerprint TEXT NOT NULL REFERENCES registries(fingerprint),
    action TEXT NOT NULL,
    rollback_of INTEGER,
    document TEXT NOT NULL,
    overlay_digest TEXT
);
CREATE TRIGGER IF NOT EXISTS snapshots_immutable_update BEFORE UPDATE ON snapshots
BEGIN SELECT RAISE(ABORT, 'flagmw snapshots are immutable'); END;
CREATE TRIGGER IF NOT EXISTS snapshots_immutable_delete BEFORE DELETE ON snapshots
BEGIN SELECT RAISE(ABORT, 'flagmw snapshots are immutable'); END;
CREATE TABLE IF NOT EXISTS overrides (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT UNIQUE,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    kind TEXT NOT NULL,
    scope TEXT NOT NULL,
    target TEXT,
    reason TEXT NOT NULL,
    actor TEXT NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    force INTEGER NOT NULL DEFAULT 0,
    environment TEXT,
    ended_at REAL,
    ended_by TEXT,
    end_reason TEXT
);
CREATE INDEX IF NOT EXISTS overrides_live ON overrides(ended_at, expires_at);
CREATE INDEX IF NOT EXISTS overrides_key ON overrides(key);
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    action TEXT NOT NULL,
    actor TEXT NOT NULL,
    reason TEXT NOT NULL,
    target TEXT NOT NULL,
    before TEXT,
    after TEXT,
    details TEXT NOT NULL DEFAULT '{}'
);
CREATE TRIGGER IF NOT EXISTS audit_append_only_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'the flagmw audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_append_only_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'the flagmw audit log is append-only'); END;
"""
    + _OVERRIDES_TRIGGERS
    + OVERLAYS_SCHEMA
    + _TOKENS
)


def connect(path: Path, timeout: float, name: str) -> sqlite3.Connection:
    """Open ``path`` (autocommit, usable from any thread) and check its schema.

    The schema is set up (or migrated from version 1) in a write transaction only when it
    is missing or older: opening an up-to-date store takes no write lock, so a reader is
    never blocked by a writer holding the lock, and a read-only store file can be read.

    Args:
        path: the database file.
        timeout: seconds to wait for another process's write lock (setup and writes).
        name: the store's name, for error messages (``sqlite:<path>``).

    Raises:
        StoreUnavailableError: the file cannot be opened, is not a flagmw store, or has
            a newer schema version than :data:`SCHEMA_VERSION`.
    """
    try:
        conn = sqlite3.connect(
            str(path), timeout=timeout, isolation_level=None, check_same_thread=False
        )
        version = _version(conn)
        if version != SCHEMA_VERSION and (version is None or version < SCHEMA_VERSION):
            version = _set_up(conn, version)
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA synchronous=FULL")  # per connection: every commit is durable
    except sqlite3.DatabaseError as exc:
        raise StoreUnavailableError(name, f"{exc} (is it a flagmw store?)") from None
    if version != SCHEMA_VERSION:
        conn.close()
        raise StoreUnavailableError(
            name, f"schema version {version}; this flagmw reads version {SCHEMA_VERSION}"
        )
    return conn


def _version(conn: sqlite3.Connection) -> int | None:
    """The schema version, read without a write lock; None for an empty database."""
    try:
        row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return None
        raise
    return None if row is None else int(row[0])


def _set_up(conn: sqlite3.Connection, found: int | None) -> int:
    """Create the schema (a new file) or migrate it, in one write transaction."""
    conn.execute("PRAGMA journal_mode=WAL")  # persistent: set once, with the schema
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = _version(conn)  # again, under the lock: another process may have won
        if version is None:
            for statement in _split_sql(_SCHEMA):
                conn.execute(statement)
        elif version < SCHEMA_VERSION:
            if version < 2:  # 1 → 2: the overrides triggers
                for statement in _split_sql(_OVERRIDES_TRIGGERS):
                    conn.execute(statement)
            if version < 3:  # 2 → 3: overlays stored one by one
                migrate_to_overlays(conn)
            if version < 4:  # 3 → 4: the console's API tokens
                for statement in _split_sql(_TOKENS):
                    conn.execute(statement)
            conn.execute("UPDATE meta SET value=? WHERE key='schema_version'", (SCHEMA_VERSION,))
        version = _version(conn)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    assert version is not None
    return version


def _split_sql(script: str) -> list[str]:
    """Split the schema script into statements (triggers contain inner semicolons)."""
    out, buf, in_trigger = [], [], False
    for line in script.strip().splitlines():
        buf.append(line)
        stripped = line.strip().upper()
        if stripped.startswith("CREATE TRIGGER"):
            in_trigger = True
        if in_trigger:
            if stripped.endswith("END;"):
                out.append("\n".join(buf))
                buf, in_trigger = [], False
        elif stripped.endswith(";"):
            out.append("\n".join(buf))
            buf = []
    if buf and "".join(buf).strip():
        out.append("\n".join(buf))
    return out
