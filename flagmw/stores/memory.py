"""MemoryStore: the store protocol in process memory (tests, examples, one process)."""

from __future__ import annotations

import copy
import json
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from flagmw.core.overrides import Override
from flagmw.errors import ConflictError, NotFoundError
from flagmw.stores._overlays import (
    OverlayKey,
    OverlayTexts,
    PublishPlan,
    assemble,
    check_changes,
    plan_changes,
    plan_document,
)
from flagmw.stores.base import (
    AuditEntry,
    ChangeToken,
    SnapshotInfo,
    SnapshotRecord,
    StoreState,
    check_publish_action,
    override_audit_action,
    override_target,
)

__all__ = ["MemoryStore"]


def _text_at(rows: list[tuple[int, str | None]], rev: int) -> str | None:
    """The text of an overlay at ``rev`` from its rows (ascending revs)."""
    text = None
    for r, t in rows:
        if r > rev:
            break
        text = t
    return text


class MemoryStore:
    """A store in process memory. Thread-safe; nothing survives the process.

    Example::

        client = FlagClient(registry, MemoryStore(), environment="test")
    """

    name = "memory"

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        #: the store's clock (seconds since the epoch): the time of every audit entry
        self.clock = clock
        self._lock = threading.Lock()
        self._snapshots: list[SnapshotRecord] = []  # documents: the bases
        self._digests: list[int] = []
        self._rows: dict[OverlayKey, list[tuple[int, str | None]]] = {}
        self._overrides: dict[str, Override] = {}
        self._audit: list[AuditEntry] = []
        self._snap_seq = 0
        self._ov_seq = 0
        self._next_ov = 1

    # -- change detection ---------------------------------------------------------------

    def change_token(self) -> ChangeToken:
        return (self._snap_seq, self._ov_seq)

    def read_state(self, now: float) -> StoreState:
        with self._lock:
            head = self._snapshots[-1].info if self._snapshots else None
            live = [
                o for o in self._overrides.values() if o.ended_at is None and o.expires_at > now
            ]
            return StoreState((self._snap_seq, self._ov_seq), head, live)

    # -- snapshots (a base per rev and overlay rows, as the other stores keep them) -----

    def head(self) -> SnapshotInfo | None:
        with self._lock:
            return self._snapshots[-1].info if self._snapshots else None

    def _record(self, rev: int | None) -> SnapshotRecord:
        if not self._snapshots:
            raise NotFoundError("nothing has been published to this store yet")
        if rev is None:
            return self._snapshots[-1]
        if not 1 <= rev <= len(self._snapshots):
            raise NotFoundError(f"no snapshot rev {rev} (the head is rev {len(self._snapshots)})")
        return self._snapshots[rev - 1]

    def _texts_at(self, rev: int | None) -> dict[OverlayKey, str]:
        out: dict[OverlayKey, str] = {}
        if rev is None:
            return out
        for key, rows in self._rows.items():
            text = _text_at(rows, rev)
            if text is not None:
                out[key] = text
        return out

    def get_snapshot(self, rev: int | None = None, *, overlays: bool = True) -> SnapshotRecord:
        with self._lock:
            record = self._record(rev)
            texts = self._texts_at(record.info.rev) if overlays else {}
            # published snapshots are immutable: never hand out the stored documents
            return SnapshotRecord(
                record.info,
                assemble(copy.deepcopy(dict(record.document)), texts),
                copy.deepcopy(record.registry),
            )

    def overlay_names(self, rev: int) -> list[OverlayKey]:
        with self._lock:
            self._record(rev)
            return sorted(self._texts_at(rev))

    def get_overlays(
        self, rev: int, keys: Iterable[OverlayKey]
    ) -> dict[OverlayKey, Mapping[str, Any]]:
        with self._lock:
            self._record(rev)
            out: dict[OverlayKey, Mapping[str, Any]] = {}
            for key in keys:
                text = _text_at(self._rows.get(key, []), rev)
                if text is not None:
                    out[key] = json.loads(text)
            return out

    def overlay_texts(self, rev: int) -> OverlayTexts:
        with self._lock:
            self._record(rev)
            return OverlayTexts(self._texts_at(rev), rev, self._digests[rev - 1])

    def changed_overlays(self, since_rev: int, rev: int) -> set[OverlayKey]:
        with self._lock:
            return {
                key
                for key, rows in self._rows.items()
                if any(since_rev < r <= rev for r, _ in rows)
            }

    def history(self, limit: int = 50) -> list[SnapshotInfo]:
        with self._lock:
            return [r.info for r in reversed(self._snapshots[-limit:])] if limit > 0 else []

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
        with self._lock:
            head = self._check_parent(parent_rev)
            plan = plan_document(
                document,
                self._texts_at(head),
                content_hash,
                overlay_texts,
                self._digests[-1] if self._digests else None,
            )
            return self._insert(
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
        with self._lock:
            head = self._check_parent(parent_rev)
            if head is None:  # a patch needs a rev to patch
                raise ConflictError(parent_rev, head)
            record = self._record(head)
            plan = plan_changes(
                changes,
                base=record.document,
                head={k: _text_at(self._rows.get(k, []), head) for k in changes},
                head_digest=self._digests[-1],
            )
            return self._insert(
                plan, registry, head, registry_fingerprint, author, message, at, "publish", None
            )

    def _check_parent(self, parent_rev: int | None) -> int | None:
        head = len(self._snapshots) or None
        if parent_rev != head:
            raise ConflictError(parent_rev, head)
        return head

    def _insert(
        self,
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
        self._snapshots.append(
            SnapshotRecord(info, copy.deepcopy(plan.base), copy.deepcopy(dict(registry)))
        )
        self._digests.append(plan.digest)
        for section, name, text in plan.rows:
            self._rows.setdefault((section, name), []).append((rev, text))
        self._append_audit(
            self.clock(),
            action,
            author,
            message,
            f"rev {rev}",
            head,
            rev,
            plan.audit_details(rollback_of),
        )
        self._snap_seq += 1
        return info

    # -- overrides -----------------------------------------------------------------------

    def add_override(self, override: Override) -> Override:
        with self._lock:
            ov = override.with_changes(id=f"ov-{self._next_ov}")
            self._next_ov += 1
            self._overrides[ov.id] = ov
            self._append_audit(
                self.clock(),
                override_audit_action(ov),
                ov.actor,
                ov.reason,
                override_target(ov),
                None,
                ov.value,
                {"expires_at": ov.expires_at, "force": ov.force, "environment": ov.environment},
            )
            self._ov_seq += 1
            return ov

    def renew_override(
        self, override_id: str, expires_at: float, *, actor: str, reason: str, at: float
    ) -> Override:
        with self._lock:
            old = self._get(override_id)
            new = old.with_changes(expires_at=expires_at)
            self._overrides[override_id] = new
            self._append_audit(
                self.clock(),
                f"{old.kind.value}.renew",
                actor,
                reason,
                override_target(new),
                {"expires_at": old.expires_at},
                {"expires_at": expires_at},
                {},
            )
            self._ov_seq += 1
            return new

    def end_override(self, override_id: str, *, actor: str, reason: str, at: float) -> Override:
        with self._lock:
            old = self._get(override_id)
            new = old.with_changes(ended_at=at, ended_by=actor, end_reason=reason)
            self._overrides[override_id] = new
            self._append_audit(
                self.clock(),
                f"{old.kind.value}.end",
                actor,
                reason,
                override_target(new),
                old.value,
                None,
                {},
            )
            self._ov_seq += 1
            return new

    def get_override(self, override_id: str) -> Override:
        with self._lock:
            return self._get(override_id)

    def list_overrides(
        self, *, include_ended: bool = False, key: str | None = None
    ) -> list[Override]:
        with self._lock:
            out = [
                o
                for o in self._overrides.values()
                if (include_ended or o.ended_at is None) and (key is None or o.key == key)
            ]
        return sorted(out, key=lambda o: o.order, reverse=True)

    def _get(self, override_id: str) -> Override:
        try:
            return self._overrides[override_id]
        except KeyError:
            raise NotFoundError(f"no override {override_id!r} (see `flagmw overrides`)") from None

    # -- audit ---------------------------------------------------------------------------

    def _append_audit(
        self,
        at: float,
        action: str,
        actor: str,
        reason: str,
        target: str,
        before: Any,
        after: Any,
        details: Mapping[str, Any],
    ) -> None:
        self._audit.append(
            AuditEntry(
                len(self._audit) + 1,
                at,
                action,
                actor,
                reason,
                target,
                before,
                after,
                dict(details),
            )
        )

    def audit(self, limit: int = 100, *, action: str | None = None) -> list[AuditEntry]:
        with self._lock:
            out = [
                a
                for a in reversed(self._audit)
                if action is None or a.action == action or a.action.startswith(action + ".")
            ]
        return out[:limit]

    def close(self) -> None:
        pass

    def __repr__(self) -> str:
        return f"MemoryStore({len(self._snapshots)} snapshots, {len(self._overrides)} overrides)"
