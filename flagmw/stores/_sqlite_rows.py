"""How the SQLite store's rows map to flagmw's records (and back): column lists,
row converters, the JSON encoding of stored values, and the audit row writer."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from typing import Any

from flagmw.core.overrides import Override, OverrideKind, ScopeKind
from flagmw.stores.base import AuditEntry, SnapshotInfo

__all__ = [
    "AUDIT_COLUMNS",
    "INFO_COLUMNS",
    "OV_COLUMNS",
    "dumps",
    "insert_audit",
    "row_to_audit",
    "row_to_info",
    "row_to_override",
]

OV_COLUMNS = (
    "id, key, value, kind, scope, target, reason, actor, created_at, expires_at, "
    "force, environment, ended_at, ended_by, end_reason"
)

INFO_COLUMNS = (
    "rev, parent_rev, content_hash, author, message, created_at, "
    "registry_fingerprint, action, rollback_of"
)

AUDIT_COLUMNS = "seq, at, action, actor, reason, target, before, after, details"


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def row_to_override(row: tuple[Any, ...]) -> Override:
    return Override(
        id=row[0],
        key=row[1],
        value=json.loads(row[2]),
        kind=OverrideKind(row[3]),
        scope=ScopeKind(row[4]),
        target=row[5],
        reason=row[6],
        actor=row[7],
        created_at=row[8],
        expires_at=row[9],
        force=bool(row[10]),
        environment=row[11],
        ended_at=row[12],
        ended_by=row[13],
        end_reason=row[14],
    )


def row_to_info(row: tuple[Any, ...]) -> SnapshotInfo:
    return SnapshotInfo(
        rev=row[0],
        parent_rev=row[1],
        content_hash=row[2],
        author=row[3],
        message=row[4],
        created_at=row[5],
        registry_fingerprint=row[6],
        action=row[7],
        rollback_of=row[8],
    )


def row_to_audit(r: tuple[Any, ...]) -> AuditEntry:
    return AuditEntry(
        r[0],
        r[1],
        r[2],
        r[3],
        r[4],
        r[5],
        json.loads(r[6]),
        json.loads(r[7]),
        json.loads(r[8]),
    )


def insert_audit(
    conn: sqlite3.Connection,
    at: float,
    action: str,
    actor: str,
    reason: str,
    target: str,
    before: Any,
    after: Any,
    details: Mapping[str, Any],
) -> None:
    """Append one row to the audit log, inside the caller's write transaction."""
    conn.execute(
        "INSERT INTO audit(at, action, actor, reason, target, before, after, details) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (at, action, actor, reason, target, dumps(before), dumps(after), dumps(details)),
    )
