"""The SQLite store's schema: its tables and triggers, and opening a connection to it.

Layout of ``flagmw.db``:

* ``meta`` — schema version and the two change sequences (``snapshot_seq``,
  ``override_seq``), bumped in the same transaction as every change;
* ``snapshots`` — one row per rev, immutable (triggers refuse UPDATE and DELETE);
* ``registries`` — the registries snapshots were validated against, by fingerprint;
* ``overrides`` — the emergency layer;
* ``audit`` — the append-only log (triggers refuse UPDATE and DELETE).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from flagmw.errors import StoreUnavailableError

__all__ = ["SCHEMA_VERSION", "connect"]

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', 1), ('snapshot_seq', 0),
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
    document TEXT NOT NULL
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


def connect(path: Path, timeout: float, name: str) -> sqlite3.Connection:
    """Open ``path`` in WAL mode (autocommit, usable from any thread), create the schema
    if missing, and check its version.

    Args:
        path: the database file.
        timeout: seconds to wait for another process's write lock.
        name: the store's name, for error messages (``sqlite:<path>``).

    Raises:
        StoreUnavailableError: the file cannot be opened, is not a flagmw store, or has
            another schema version than :data:`SCHEMA_VERSION`.
    """
    try:
        conn = sqlite3.connect(
            str(path), timeout=timeout, isolation_level=None, check_same_thread=False
        )
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _split_sql(_SCHEMA):
                conn.execute(statement)
            row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            version = row[0]
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    except sqlite3.DatabaseError as exc:
        raise StoreUnavailableError(name, f"{exc} (is it a flagmw store?)") from None
    if version != SCHEMA_VERSION:
        conn.close()
        raise StoreUnavailableError(
            name, f"schema version {version}; this flagmw reads version {SCHEMA_VERSION}"
        )
    return conn


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
