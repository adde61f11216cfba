"""What the client reports: :class:`PublishResult` (a publish or rollback) and
:class:`ClientStatus` (the health of a client's view of its store)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flagmw.errors import Problem

__all__ = ["ClientStatus", "PublishResult"]


@dataclass(frozen=True, slots=True)
class PublishResult:
    """What a publish or rollback did.

    Attributes:
        rev: the new snapshot rev (the head rev when nothing changed).
        content_hash: the snapshot's content hash.
        parent_rev: the rev it was published on top of.
        published: False when the document equals the head's and nothing was written.
        warnings: non-blocking problems found while validating.
    """

    rev: int
    content_hash: str
    parent_rev: int | None
    published: bool = True
    warnings: tuple[Problem, ...] = ()

    @property
    def hash(self) -> str:
        """Alias of :attr:`content_hash`."""
        return self.content_hash

    def to_dict(self) -> dict[str, Any]:
        """JSON primitives."""
        return {
            "rev": self.rev,
            "content_hash": self.content_hash,
            "parent_rev": self.parent_rev,
            "published": self.published,
            "warnings": [w.to_dict() for w in self.warnings],
        }


@dataclass(frozen=True, slots=True)
class ClientStatus:
    """The health of a client's view of its store.

    Attributes:
        store: the store's name.
        environment: the client's environment.
        snapshot_rev: the rev being served (None: defaults only).
        head_rev: the store's head rev at the last successful read.
        healthy: the last read of the store succeeded.
        stale: the client serves an older snapshot than the store's head (the store is
            unreachable, or its head failed validation).
        last_error: the last problem, or None.
        last_error_at: when (seconds since the epoch).
        rejected_rev: a head rev that failed the application's registry.
        rejected_problems: its problems.
        active_overrides: overrides in force at the last refresh.
        last_refresh_at: when the store was last read (seconds since the epoch).
        canary_rev: the head rev when it is a config canary (served only to the runs its
            rollout assigns it; ``snapshot_rev`` is then its baseline, served to everyone
            else: :mod:`flagmw.client.canary`), else None.
    """

    store: str
    environment: str
    snapshot_rev: int | None
    head_rev: int | None
    healthy: bool
    stale: bool
    last_error: str | None
    last_error_at: float | None
    rejected_rev: int | None
    rejected_problems: tuple[Problem, ...]
    active_overrides: int
    last_refresh_at: float | None
    canary_rev: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON primitives."""
        return {
            "store": self.store,
            "environment": self.environment,
            "snapshot_rev": self.snapshot_rev,
            "head_rev": self.head_rev,
            "healthy": self.healthy,
            "stale": self.stale,
            "last_error": self.last_error,
            "last_error_at": self.last_error_at,
            "rejected_rev": self.rejected_rev,
            "rejected_problems": [p.to_dict() for p in self.rejected_problems],
            "active_overrides": self.active_overrides,
            "last_refresh_at": self.last_refresh_at,
            "canary_rev": self.canary_rev,
        }
