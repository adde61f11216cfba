"""The PostgreSQL store's snapshot operations (a mixin of
:class:`~flagmw.stores.postgres.PostgresStore`): reading revs whole or as a base plus
overlays, and publishing a whole document or only changed overlays
(:mod:`flagmw.stores._postgres_overlays` holds the rows).

Every read runs in one ``REPEATABLE READ READ ONLY`` transaction; every publish in one
write transaction holding the ``changes`` row lock (:mod:`flagmw.stores._postgres_pool`),
which checks the expected parent rev, plans the rows (:mod:`flagmw.stores._overlays`) and
writes the base row, the changed overlay rows and the audit entry.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from flagmw.core.snapshot_hash import digest_hex
from flagmw.errors import ConflictError, NotFoundError
from flagmw.stores._overlays import (
    OverlayKey,
    OverlayTexts,
    PublishPlan,
    assemble,
    check_changes,
    plan_changes,
    plan_document,
    texts_memo,
)
from flagmw.stores._postgres_overlays import (
    changed_between,
    copy_rows,
    head_digest,
    names_at,
    texts_at,
    texts_of,
)
from flagmw.stores._postgres_pool import Cursor
from flagmw.stores._sqlite_rows import INFO_COLUMNS, dumps, row_to_info
from flagmw.stores.base import SnapshotInfo, SnapshotRecord, check_publish_action

__all__ = ["PostgresSnapshots"]

R = TypeVar("R")


class PostgresSnapshots:
    """Snapshot revs of a PostgreSQL store (needs the store's ``_read``/``_write``
    transactions, ``_audit_row``, ``_s``, ``name`` and ``clock``)."""

    name: str
    clock: Callable[[], float]
    _s: str

    if TYPE_CHECKING:

        def _read(self, work: Callable[[Cursor], R]) -> R: ...

        def _write(self, which: int, work: Callable[[Cursor], tuple[R, dict[str, Any]]]) -> R: ...

        def _audit_row(
            self,
            cur: Cursor,
            at: float,
            action: str,
            actor: str,
            reason: str,
            target: str,
            before: Any,
            after: Any,
            details: Mapping[str, Any],
        ) -> None: ...

    def head(self) -> SnapshotInfo | None:
        row = self._read(
            lambda cur: cur.execute(
                f"SELECT {INFO_COLUMNS} FROM {self._s}.snapshots ORDER BY rev DESC LIMIT 1"
            ).fetchone()
        )
        return row_to_info(row) if row else None

    def _rev_row(self, cur: Cursor, rev: int | None, columns: str) -> Any:
        """The row of ``rev`` (the head when None).

        Raises:
            NotFoundError: no such rev, or nothing published.
        """
        s = self._s
        if rev is None:
            row = cur.execute(
                f"SELECT {columns} FROM {s}.snapshots ORDER BY rev DESC LIMIT 1"
            ).fetchone()
        else:
            row = cur.execute(
                f"SELECT {columns} FROM {s}.snapshots WHERE rev=%s", (rev,)
            ).fetchone()
        if row is None:
            top = cur.execute(f"SELECT max(rev) FROM {s}.snapshots").fetchone()
            if top is None or top[0] is None:
                raise NotFoundError(f"nothing has been published to {self.name} yet")
            raise NotFoundError(f"no snapshot rev {rev} in {self.name} (the head is rev {top[0]})")
        return row

    def get_snapshot(self, rev: int | None = None, *, overlays: bool = True) -> SnapshotRecord:
        s = self._s

        def work(cur: Cursor) -> SnapshotRecord:
            row = self._rev_row(cur, rev, f"{INFO_COLUMNS}, document")
            reg = cur.execute(
                f"SELECT document FROM {s}.registries WHERE fingerprint=%s", (row[6],)
            ).fetchone()
            assert reg is not None
            texts = texts_at(cur, s, row[0]) if overlays else {}
            return SnapshotRecord(
                row_to_info(row), assemble(json.loads(row[9]), texts), json.loads(reg[0])
            )

        result: SnapshotRecord = self._read(work)
        return result

    def overlay_names(self, rev: int) -> list[OverlayKey]:
        def work(cur: Cursor) -> list[OverlayKey]:
            self._rev_row(cur, rev, "rev")
            return names_at(cur, self._s, rev)

        result: list[OverlayKey] = self._read(work)
        return result

    def get_overlays(
        self, rev: int, keys: Iterable[OverlayKey]
    ) -> dict[OverlayKey, Mapping[str, Any]]:
        wanted = list(keys)

        def work(cur: Cursor) -> dict[OverlayKey, str | None]:
            self._rev_row(cur, rev, "rev")
            return texts_of(cur, self._s, rev, wanted)

        texts: dict[OverlayKey, str | None] = self._read(work)
        return {k: json.loads(t) for k, t in texts.items() if t is not None}

    def overlay_texts(self, rev: int) -> OverlayTexts:
        def work(cur: Cursor) -> OverlayTexts:
            self._rev_row(cur, rev, "rev")
            return OverlayTexts(texts_at(cur, self._s, rev), rev, head_digest(cur, self._s, rev))

        result: OverlayTexts = self._read(work)
        return texts_memo(self).keep(result)

    def changed_overlays(self, since_rev: int, rev: int) -> set[OverlayKey]:
        result: set[OverlayKey] = self._read(
            lambda cur: changed_between(cur, self._s, since_rev, rev)
        )
        return result

    def history(self, limit: int = 50) -> list[SnapshotInfo]:
        rows = self._read(
            lambda cur: cur.execute(
                f"SELECT {INFO_COLUMNS} FROM {self._s}.snapshots ORDER BY rev DESC LIMIT %s",
                (max(limit, 0),),
            ).fetchall()
        )
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
        overlay_texts: Mapping[OverlayKey, str] | None = None,
    ) -> SnapshotInfo:
        check_publish_action(action, rollback_of)
        reg_text = dumps(registry)

        def work(cur: Cursor) -> tuple[SnapshotInfo, dict[str, Any]]:
            head = self._check_parent(cur, parent_rev)
            plan = plan_document(
                document,
                texts_memo(self).get(head) or texts_at(cur, self._s, head),
                content_hash,
                overlay_texts,
                head_digest(cur, self._s, head),
            )
            return self._insert(
                cur,
                plan,
                reg_text,
                head,
                registry_fingerprint,
                author,
                message,
                at,
                action,
                rollback_of,
            )

        info: SnapshotInfo = self._write(0, work)
        return info

    def publish_overlays(
        self,
        changes: Mapping[OverlayKey, Mapping[str, Any] | None],
        registry: Mapping[str, Any],
        *,
        registry_fingerprint: str,
        parent_rev: int,
        author: str,
        message: str,
        at: float,
    ) -> SnapshotInfo:
        check_changes(changes)
        reg_text = dumps(registry)
        s = self._s

        def work(cur: Cursor) -> tuple[SnapshotInfo, dict[str, Any]]:
            head = self._check_parent(cur, parent_rev)
            if head is None:  # a patch needs a rev to patch
                raise ConflictError(parent_rev, head)
            row = cur.execute(
                f"SELECT document, overlay_digest FROM {s}.snapshots WHERE rev=%s", (head,)
            ).fetchone()
            assert row is not None
            plan = plan_changes(
                changes,
                base=json.loads(row[0]),
                head=texts_of(cur, s, head, changes),
                head_digest=head_digest(cur, s, head),
            )
            return self._insert(
                cur,
                plan,
                reg_text,
                head,
                registry_fingerprint,
                author,
                message,
                at,
                "publish",
                None,
            )

        info: SnapshotInfo = self._write(0, work)
        return info

    def _check_parent(self, cur: Cursor, parent_rev: int | None) -> int | None:
        """The head rev (None before the first publish).

        Raises:
            ConflictError: ``parent_rev`` is not the head.
        """
        top = cur.execute(f"SELECT max(rev) FROM {self._s}.snapshots").fetchone()
        head = top[0] if top else None
        if parent_rev != head:
            raise ConflictError(parent_rev, head)
        return head

    def _insert(
        self,
        cur: Cursor,
        plan: PublishPlan,
        reg_text: str,
        head: int | None,
        registry_fingerprint: str,
        author: str,
        message: str,
        at: float,
        action: str,
        rollback_of: int | None,
    ) -> tuple[SnapshotInfo, dict[str, Any]]:
        """Write rev ``head + 1`` as planned (inside the caller's write transaction): its
        registry, base row, overlay rows and audit entry."""
        s = self._s
        rev = (head or 0) + 1
        cur.execute(
            f"INSERT INTO {s}.registries(fingerprint, document) VALUES (%s, %s) "
            "ON CONFLICT (fingerprint) DO NOTHING",
            (registry_fingerprint, reg_text),
        )
        cur.execute(
            f"INSERT INTO {s}.snapshots(rev, parent_rev, content_hash, author, message, "
            "created_at, registry_fingerprint, action, rollback_of, document, overlay_digest) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
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
        if plan.rows:
            copy_rows(cur, s, rev, plan.rows)
        self._audit_row(
            cur,
            self.clock(),
            action,
            author,
            message,
            f"rev {rev}",
            head,
            rev,
            plan.audit_details(rollback_of),
        )
        info = SnapshotInfo(
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
        return info, {"rev": rev}
