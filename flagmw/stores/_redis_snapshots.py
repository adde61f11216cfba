"""The Redis store's snapshot operations (a mixin of
:class:`~flagmw.stores.redis.RedisStore`): reading revs whole or as a base plus
overlays, and publishing a whole document or only changed overlays
(:mod:`flagmw.stores._redis_overlays` holds the overlay keys).

A publish runs in the store's optimistic write (WATCH ``store`` and ``seq``, read and
check, MULTI/EXEC): it checks the expected parent rev, reads the head's overlays it
compares with (rows ≤ the head never change, and the WATCH of ``seq`` guarantees the
head is still the head at EXEC), plans the rows (:mod:`flagmw.stores._overlays`) and
queues the base, the changed overlays and the history entry with its overlay digest.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from redis.client import Pipeline

from flagmw.core.snapshot_hash import digest_from_hex, digest_hex, texts_digest
from flagmw.errors import ConflictError, NotFoundError, StoreUnavailableError
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
from flagmw.stores._redis_keys import Keys, info_from_json
from flagmw.stores._redis_overlays import OverlayReader, queue_rows
from flagmw.stores._sqlite_rows import dumps
from flagmw.stores.base import SnapshotInfo, SnapshotRecord, check_publish_action

__all__ = ["RedisSnapshots", "Work"]

R = TypeVar("R")
#: what a write's work returns: its result, the writes to queue in MULTI, its audit
#: entry (without ``seq``) and the ids its notification carries
Work = tuple[R, Callable[[Pipeline], None], dict[str, Any], dict[str, Any]]


class RedisSnapshots:
    """Snapshot revs of a Redis store (needs the store's ``_read``/``_write``,
    ``_keys``, ``_overlays``, ``name`` and ``clock``)."""

    name: str
    clock: Callable[[], float]
    _keys: Keys
    _overlays: OverlayReader

    if TYPE_CHECKING:

        def _read(self, build: Callable[[Pipeline], object]) -> list[Any]: ...

        def _write(self, kind: int, work: Callable[[Pipeline], Work[R]]) -> R: ...

    def head(self) -> SnapshotInfo | None:
        (head,) = self._read(lambda p: p.lindex(self._keys.history, -1))
        return info_from_json(head) if head else None

    def _info(self, rev: int | None) -> SnapshotInfo:
        """The metadata of ``rev`` (the head when None).

        Raises:
            NotFoundError: no such rev, or nothing published.
        """
        k = self._keys
        index = -1 if rev is None else rev - 1
        if rev is not None and rev < 1:
            index = -(2**62)  # LINDEX would count from the end
        count, text = self._read(lambda p: (p.llen(k.history), p.lindex(k.history, index)))
        if not text:
            if not count:
                raise NotFoundError(f"nothing has been published to {self.name} yet")
            raise NotFoundError(f"no snapshot rev {rev} in {self.name} (the head is rev {count})")
        return info_from_json(text)

    def get_snapshot(self, rev: int | None = None, *, overlays: bool = True) -> SnapshotRecord:
        k = self._keys
        info = self._info(rev)
        doc, reg = self._read(
            lambda p: (p.get(k.snap(info.rev)), p.get(k.reg(info.registry_fingerprint)))
        )
        if doc is None or reg is None:
            raise StoreUnavailableError(self.name, f"rev {info.rev}'s document is missing")
        texts = self._overlays.texts_at(info.rev) if overlays else {}
        return SnapshotRecord(info, assemble(json.loads(doc), texts), json.loads(reg))

    def overlay_names(self, rev: int) -> list[OverlayKey]:
        self._info(rev)
        return self._overlays.names_at(rev)

    def get_overlays(
        self, rev: int, keys: Iterable[OverlayKey]
    ) -> dict[OverlayKey, Mapping[str, Any]]:
        self._info(rev)
        texts = self._overlays.texts_of(rev, keys)
        return {key: json.loads(text) for key, text in texts.items() if text is not None}

    def overlay_texts(self, rev: int) -> OverlayTexts:
        self._info(rev)
        texts = OverlayTexts(self._overlays.texts_at(rev), rev, self._digest(rev))
        return texts_memo(self).keep(texts)

    def _digest(self, rev: int | None) -> int | None:
        """The recorded overlay digest of ``rev`` (0 before the first rev, None when
        not recorded)."""
        if rev is None:
            return 0
        (text,) = self._read(lambda p: p.lindex(self._keys.history, rev - 1))
        entry = json.loads(text) if text else {}
        return digest_from_hex(entry["overlay_digest"]) if "overlay_digest" in entry else None

    def changed_overlays(self, since_rev: int, rev: int) -> set[OverlayKey]:
        return self._overlays.changed_between(since_rev, rev)

    def history(self, limit: int = 50) -> list[SnapshotInfo]:
        if limit <= 0:
            return []
        (rows,) = self._read(lambda p: p.lrange(self._keys.history, -limit, -1))
        return [info_from_json(r) for r in reversed(rows)]

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

        def work(pipe: Pipeline) -> Work[SnapshotInfo]:
            head = self._check_parent(pipe, parent_rev)
            plan = plan_document(
                document,
                texts_memo(self).get(head) or self._overlays.texts_at(head),
                content_hash,
                overlay_texts,
                self._digest(head),
            )
            return self._insert(
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

        return self._write(0, work)

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
        k = self._keys

        def work(pipe: Pipeline) -> Work[SnapshotInfo]:
            head = self._check_parent(pipe, parent_rev)
            if head is None:  # a patch needs a rev to patch
                raise ConflictError(parent_rev, head)
            base = pipe.get(k.snap(head))
            entry = json.loads(pipe.lindex(k.history, head - 1))  # type: ignore[arg-type]
            if base is None:
                raise StoreUnavailableError(self.name, f"rev {head}'s document is missing")
            base_doc = json.loads(base)
            if "overlay_digest" in entry:
                digest = digest_from_hex(entry["overlay_digest"])
            else:  # not written by this layout: summed from the head's overlays
                digest = texts_digest(self._overlays.texts_at(head))
            plan = plan_changes(
                changes,
                base=base_doc,
                head=self._overlays.texts_of(head, changes),
                head_digest=digest,
            )
            return self._insert(
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

        return self._write(0, work)

    def _check_parent(self, pipe: Pipeline, parent_rev: int | None) -> int | None:
        """The head rev (None before the first publish), read under the WATCH.

        Raises:
            ConflictError: ``parent_rev`` is not the head.
        """
        head = int(pipe.llen(self._keys.history)) or None
        if parent_rev != head:
            raise ConflictError(parent_rev, head)
        return head

    def _insert(
        self,
        plan: PublishPlan,
        reg_text: str,
        head: int | None,
        registry_fingerprint: str,
        author: str,
        message: str,
        at: float,
        action: str,
        rollback_of: int | None,
    ) -> Work[SnapshotInfo]:
        """The write of rev ``head + 1`` as planned: its registry, base, overlay rows,
        history entry (with the overlay digest) and audit entry."""
        k = self._keys
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
        base_text = dumps(plan.base)
        history_text = dumps({**info.to_dict(), "overlay_digest": digest_hex(plan.digest)})

        def writes(p: Pipeline) -> None:
            p.set(k.reg(registry_fingerprint), reg_text, nx=True)
            p.set(k.snap(rev), base_text)
            queue_rows(p, k, rev, plan.rows)
            p.rpush(k.history, history_text)

        entry = {
            "at": self.clock(),
            "action": action,
            "actor": author,
            "reason": message,
            "target": f"rev {rev}",
            "before": head,
            "after": rev,
            "details": plan.audit_details(rollback_of),
        }
        return info, writes, entry, {"rev": rev}
