"""Reading a store's snapshot history through a client: the mixin of
:class:`~flagmw.client.FlagClient` behind ``history``, ``get_snapshot`` and ``diff``
(the commands ``flagmw history`` and ``flagmw diff``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flagmw.client.arguments import check_limit
from flagmw.core.snapshot import Change, diff_documents
from flagmw.stores.base import SnapshotInfo, SnapshotRecord, Store

__all__ = ["SnapshotReads"]


class SnapshotReads:
    """History, one rev, and the diff of two revs (needs the client's store and
    ``_check_rev``)."""

    store: Store

    if TYPE_CHECKING:  # pragma: no cover - provided by AdminOperations

        def _check_rev(self, operation: str, name: str, rev: Any) -> None: ...

    def history(self, limit: int = 50) -> list[SnapshotInfo]:
        """The most recent snapshot revs, newest first (``limit`` at least 1; a larger
        one than any store holds means all).

        Raises:
            ValidationError: ``limit`` is not an int of at least 1.
        """
        return self.store.history(check_limit("history", limit))

    def get_snapshot(self, rev: int | None = None) -> SnapshotRecord:
        """One snapshot rev (the head when None).

        Raises:
            NotFoundError: no such rev.
            ValidationError: ``rev`` is not an int.
        """
        if rev is not None:
            self._check_rev("get_snapshot", "rev", rev)
        return self.store.get_snapshot(rev)

    def diff(self, rev_a: int, rev_b: int) -> list[Change]:
        """The changes from rev ``rev_a`` to rev ``rev_b``.

        Raises:
            NotFoundError: no such rev.
            ValidationError: a rev that is not an int.
        """
        self._check_rev("diff", "rev_a", rev_a)
        self._check_rev("diff", "rev_b", rev_b)
        a = self.store.get_snapshot(rev_a).document
        b = self.store.get_snapshot(rev_b).document
        return diff_documents(a, b)
