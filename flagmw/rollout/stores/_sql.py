"""The SQL shared by the SQLite and PostgreSQL rollout stores: two tables and their
migrations (schema version kept in ``rollout_meta``)."""

from __future__ import annotations

__all__ = ["MIGRATIONS"]

#: schema version → statements that bring the previous version to it; ``{p}`` is the
#: table prefix (``flagmw_`` in SQLite, ``"<schema>".`` in PostgreSQL), ``{serial}`` the
#: auto-incrementing key type, ``{real}`` a double.
MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        "CREATE TABLE IF NOT EXISTS {p}rollout_docs (kind TEXT NOT NULL, id TEXT NOT NULL, "
        "seq INTEGER NOT NULL, doc TEXT NOT NULL, PRIMARY KEY (kind, id))",
        "CREATE TABLE IF NOT EXISTS {p}rollout_log (n {serial}, kind TEXT NOT NULL, "
        "at {real} NOT NULL, doc TEXT NOT NULL)",
        "CREATE INDEX IF NOT EXISTS {i}rollout_log_at ON {p}rollout_log (kind, at)",
    ),
}

LATEST = max(MIGRATIONS)
