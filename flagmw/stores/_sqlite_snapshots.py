"""The SQLite store's snapshot operations (a mixin of
:class:`~flagmw.stores.sqlite.SQLiteStore`): reading revs whole or as a base plus
overlays, and publishing a whole document or only changed overlays
(:mod:`flagmw.stores._sqlite_overlays` holds the rows)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager
from typing import Any

from flagmw.errors import ConflictError, NotFoundError
from flagmw.stores._overlays import (
    OverlayTexts,
    PublishPlan,
    assemble,
    check_changes,
    plan_changes,
    plan_document,
    texts_memo,
)
from flagmw.stores._sqlite_overlays import (
    changed_between,
    head_digest,
    insert_rev,
    names_at,
    texts_at,
    texts_of,
)
from flagmw.stores._sqlite_rows import INFO_COLUMNS, row_to_info
from flagmw.stores.base import SnapshotInfo, SnapshotRecord, check_publish_action

__all__ = ["SQLiteSnapshots"]


class SQLiteSnapshots:
    """Snapshot revs of a SQLite store (needs the store's ``_read``/``_write``
    transactions, ``name`` and ``clock``)."""

    name: str
    clock: Callable[[], float]
    _read: Callable[[], AbstractContextManager[sqlite3.Connection]]
    _write: Callable[[], AbstractContextManager[tuple[sqlite3.Connection, list[int]]]]

    # -- snapshots -----------------------------------------------------------------------

    def head(self) -> SnapshotInfo | None:
        with self._read() as conn:
            row = conn.execute(
                f"SELECT {INFO_COLUMNS} FROM snapshots ORDER BY rev DESC LIMIT 1"
            ).fetchone()
        return row_to_info(row) if row else None

    def get_snapshot(self, rev: int | None = None, *, overlays: bool = True) -> SnapshotRecord:
        with self._read() as conn:
            row = self._rev_row(conn, rev, f"{INFO_COLUMNS}, document")
            reg = conn.execute(
                "SELECT document FROM registries WHERE fingerprint=?", (row[6],)
            ).fetchone()
            texts = texts_at(conn, row[0]) if overlays else {}
        return SnapshotRecord(
            row_to_info(row), assemble(json.loads(row[9]), texts), json.loads(reg[0])
        )

    def _rev_row(self, conn: sqlite3.Connection, rev: int | None, columns: str) -> Any:
        if rev is None:
            row = conn.execute(
                f"SELECT {columns} FROM snapshots ORDER BY rev DESC LIMIT 1"
            ).fetchone()
        else:
            row = conn.execute(f"SELECT {columns} FROM snapshots WHERE rev=?", (rev,)).fetchone()
        if row is None:
            head = conn.execute("SELECT MAX(rev) FROM snapshots").fetchone()[0]
            if head is None:
                raise NotFoundError(f"nothing has been published to {self.name} yet")
            raise NotFoundError(f"no snapshot rev {rev} in {self.name} (the head is rev {head})")
        return row

    def overlay_names(self, rev: int) -> list[tuple[str, str]]:
        with self._read() as conn:
            self._rev_row(conn, rev, "rev")
            return names_at(conn, rev)

    def get_overlays(
        self, rev: int, keys: Iterable[tuple[str, str]]
    ) -> dict[tuple[str, str], Mapping[str, Any]]:
        with self._read() as conn:
            self._rev_row(conn, rev, "rev")
            keys = list(keys)
            if len(keys) > 256:  # one scan of the rev's overlays beats many lookups
                every = texts_at(conn, rev)
                texts: dict[tuple[str, str], str | None] = {k: every.get(k) for k in keys}
            else:
                texts = texts_of(conn, rev, keys)
        return {k: json.loads(t) for k, t in texts.items() if t is not None}

    def overlay_texts(self, rev: int) -> OverlayTexts:
        with self._read() as conn:
            self._rev_row(conn, rev, "rev")
            texts = OverlayTexts(texts_at(conn, rev), rev, head_digest(conn, rev))
        return texts_memo(self).keep(texts)

    def changed_overlays(self, since_rev: int, rev: int) -> set[tuple[str, str]]:
        with self._read() as conn:
            return changed_between(conn, since_rev, rev)

    def history(self, limit: int = 50) -> list[SnapshotInfo]:
        with self._read() as conn:
            rows = conn.execute(
                f"SELECT {INFO_COLUMNS} FROM snapshots ORDER BY rev DESC LIMIT ?", (limit,)
            ).fetchall()
        return [row_to_info(r) for r in rows]

    def publish(
        self,
        document: Mapping[str, Any],
        registry: Mapping[str, Any],
        *,
        content_hash: str,
        registry_fingerprint: str,
        parent_rev: int | None,
        author: str,
        message: str,
        at: float,
        action: str = "publish",
        rollback_of: int | None = None,
        overlay_texts: Mapping[tuple[str, str], str] | None = None,
    ) -> SnapshotInfo:
        check_publish_action(action, rollback_of)
        with self._write() as (conn, seqs):
            head = conn.execute("SELECT MAX(rev) FROM snapshots").fetchone()[0]
            if parent_rev != head:
                raise ConflictError(parent_rev, head)
            plan = plan_document(
                document,
                texts_memo(self).get(head) or texts_at(conn, head),
                content_hash,
                overlay_texts,
                head_digest(conn, head),
            )
            return self._insert(
                conn,
                seqs,
                plan,
                registry,
                head,
                registry_fingerprint,
                author,
                message,
                at,
                action,
                rollback_of,
            )

    def publish_overlays(
        self,
        changes: Mapping[tuple[str, str], Mapping[str, Any] | None],
        registry: Mapping[str, Any],
        *,
        registry_fingerprint: str,
        parent_rev: int,
        author: str,
        message: str,
        at: float,
    ) -> SnapshotInfo:
        check_changes(changes)
        with self._write() as (conn, seqs):
            head = conn.execute("SELECT MAX(rev) FROM snapshots").fetchone()[0]
            if parent_rev != head:
                raise ConflictError(parent_rev, head)
            base = json.loads(
                conn.execute("SELECT document FROM snapshots WHERE rev=?", (head,)).fetchone()[0]
            )
            plan = plan_changes(
                changes,
                base=base,
                head=texts_of(conn, head, changes),
                head_digest=head_digest(conn, head),
            )
            return self._insert(
                conn,
                seqs,
                plan,
                registry,
                head,
                registry_fingerprint,
                author,
                message,
                at,
                "publish",
                None,
            )

    def _insert(
        self,
        conn: sqlite3.Connection,
        seqs: list[int],
        plan: PublishPlan,
        registry: Mapping[str, Any],
        head: int | None,
        registry_fingerprint: str,
        author: str,
        message: str,
        at: float,
        action: str,
        rollback_of: int | None,
    ) -> SnapshotInfo:
        rev = (head or 0) + 1
        insert_rev(
            conn,
            plan,
            registry,
            rev=rev,
            head=head,
            registry_fingerprint=registry_fingerprint,
            author=author,
            message=message,
            at=at,
            action=action,
            rollback_of=rollback_of,
            audit_at=self.clock(),
        )
        seqs[0] += 1
        return SnapshotInfo(
            rev,
            head,
            plan.content_hash,
            author,
            message,
            at,
            registry_fingerprint,
            action,
            rollback_of,
        )
