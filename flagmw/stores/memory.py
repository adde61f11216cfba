"""MemoryStore: the store protocol in process memory (tests, examples, one process)."""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from flagmw.core.overrides import Override
from flagmw.errors import ConflictError, NotFoundError
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


def _copy(record: SnapshotRecord) -> SnapshotRecord:
    # published snapshots are immutable: never hand out the stored documents themselves
    return SnapshotRecord(
        record.info, copy.deepcopy(record.document), copy.deepcopy(record.registry)
    )


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
        self._snapshots: list[SnapshotRecord] = []
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

    # -- snapshots -----------------------------------------------------------------------

    def head(self) -> SnapshotInfo | None:
        with self._lock:
            return self._snapshots[-1].info if self._snapshots else None

    def get_snapshot(self, rev: int | None = None) -> SnapshotRecord:
        with self._lock:
            if not self._snapshots:
                raise NotFoundError("nothing has been published to this store yet")
            if rev is None:
                return _copy(self._snapshots[-1])
            if not 1 <= rev <= len(self._snapshots):
                raise NotFoundError(
                    f"no snapshot rev {rev} (the head is rev {len(self._snapshots)})"
                )
            return _copy(self._snapshots[rev - 1])

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
    ) -> SnapshotInfo:
        check_publish_action(action, rollback_of)
        with self._lock:
            head = len(self._snapshots) or None
            if parent_rev != head:
                raise ConflictError(parent_rev, head)
            rev = (head or 0) + 1
            info = SnapshotInfo(
                rev,
                head,
                content_hash,
                author,
                message,
                at,
                registry_fingerprint,
                action,
                rollback_of,
            )
            self._snapshots.append(
                SnapshotRecord(info, copy.deepcopy(dict(document)), copy.deepcopy(dict(registry)))
            )
            self._append_audit(
                self.clock(),
                action,
                author,
                message,
                f"rev {rev}",
                head,
                rev,
                {"content_hash": content_hash, "rollback_of": rollback_of},
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
