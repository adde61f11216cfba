"""The store protocol: where snapshots, overrides and the audit log live.

A store keeps

* **snapshots** — immutable, numbered ``snapshot_rev`` 1, 2, 3 … per store, each with
  author, message, created_at, parent_rev, content hash and the registry it was
  validated against;
* **overrides** — the emergency layer (kills and overrides with reason and TTL);
* **the audit log** — append-only: every publish, rollback, override set / renew / end
  and forced kill, with actor, reason, time and before/after.

Contract every implementation keeps:

1. **Atomic publish with an expected parent rev** (optimistic concurrency):
   :meth:`Store.publish` writes rev ``head + 1`` only if ``parent_rev == head``, and
   raises :class:`~flagmw.errors.ConflictError` otherwise — never a silent overwrite.
   The audit entry is written in the same transaction.
2. **A cheap change counter**: :meth:`Store.change_token` returns a value that changes
   whenever a snapshot is published or an override is set, renewed or ended, and is
   cheap enough to call at every step boundary (the SQLite store reads a memory-mapped
   counter; PostgreSQL and Redis stores can set it from LISTEN/NOTIFY or pub/sub).
   It is a hint: :meth:`Store.read_state` returns the authoritative state together
   with the token it corresponds to.
3. **Snapshots and audit entries are never changed or deleted.**
4. **Tenant and route overlays are stored one by one**: a rev is kept as its base and
   the overlays that changed at that rev (:mod:`flagmw.stores._overlays`), so that
   publishing one tenant's change (:meth:`Store.publish_overlays`) writes one overlay,
   and a client loads the base, then each overlay on first use
   (:meth:`Store.get_overlays`) and only the changed ones after a publish
   (:meth:`Store.changed_overlays`).

Times are seconds since the epoch (UTC), as floats.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from flagmw.core.overrides import Override, OverrideKind

__all__ = [
    "AuditEntry",
    "SnapshotInfo",
    "SnapshotRecord",
    "Store",
    "StoreState",
    "check_publish_action",
    "override_audit_action",
]

#: An opaque value compared with ``==`` (a tuple for MemoryStore, 16 bytes for SQLiteStore).
ChangeToken = Hashable


@dataclass(frozen=True, slots=True)
class SnapshotInfo:
    """The metadata of one snapshot rev.

    Attributes:
        rev: the snapshot rev (1, 2, 3 … per store).
        parent_rev: the head rev it was published on top of (None for rev 1).
        content_hash: ``"sha256:…"`` of the normalised document.
        author: who published it.
        message: why.
        created_at: when (seconds since the epoch).
        registry_fingerprint: the fingerprint of the registry it was validated against.
        action: ``"publish"``, ``"rollback"`` or ``"canary"`` (a config canary: the rev
            is served only to the units its rollout assigns it, everyone else keeps
            ``rollback_of``; :mod:`flagmw.client.canary`).
        rollback_of: for a rollback, the rev whose content it republished; for a
            canary, its baseline rev (the head it was published over).
    """

    rev: int
    parent_rev: int | None
    content_hash: str
    author: str
    message: str
    created_at: float
    registry_fingerprint: str
    action: str = "publish"
    rollback_of: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON primitives."""
        return {
            "rev": self.rev,
            "parent_rev": self.parent_rev,
            "content_hash": self.content_hash,
            "author": self.author,
            "message": self.message,
            "created_at": self.created_at,
            "registry_fingerprint": self.registry_fingerprint,
            "action": self.action,
            "rollback_of": self.rollback_of,
        }


@dataclass(frozen=True, slots=True)
class SnapshotRecord:
    """One snapshot rev with its document and registry.

    Attributes:
        info: its metadata.
        document: the normalised snapshot document (JSON primitives).
        registry: the registry it was validated against (``FlagRegistry.to_dict()``).
    """

    info: SnapshotInfo
    document: Mapping[str, Any]
    registry: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One record of the audit log.

    Attributes:
        seq: its position (1, 2, 3 …).
        at: when (seconds since the epoch).
        action: ``publish``, ``rollback``, ``override.set``, ``override.renew``,
            ``override.end``, ``kill.set``, ``kill.forced``, ``kill.renew``, ``kill.end``.
        actor: who.
        reason: why (the publish message for publishes).
        target: what: ``"rev 4"`` or ``"ov-3 tools.refund_api.enabled (tenant:acme)"``.
        before, after: the state before and after (revs, values, expiries).
        details: anything else, JSON primitives.
    """

    seq: int
    at: float
    action: str
    actor: str
    reason: str
    target: str
    before: Any = None
    after: Any = None
    details: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON primitives."""
        return {
            "seq": self.seq,
            "at": self.at,
            "action": self.action,
            "actor": self.actor,
            "reason": self.reason,
            "target": self.target,
            "before": self.before,
            "after": self.after,
            "details": dict(self.details),
        }


@dataclass(frozen=True, slots=True)
class StoreState:
    """What a client needs, read consistently: the head snapshot's metadata and the
    overrides that are not ended and not expired at the time of reading.

    Attributes:
        token: the change token this state corresponds to.
        head: the head snapshot's metadata (None before the first publish).
        overrides: the overrides still in force when read (ended and expired ones left
            out).
    """

    token: ChangeToken
    head: SnapshotInfo | None
    overrides: Sequence[Override]


@runtime_checkable
class Store(Protocol):
    """The store protocol (see the module docstring for the contract)."""

    #: A description such as ``"sqlite:/srv/flagmw.db"`` or ``"memory"``.
    name: str

    def change_token(self) -> ChangeToken:
        """A value that changes whenever anything is published or an override changes.
        Cheap (no I/O where the implementation allows; the SQLite store reads a
        memory-mapped counter)."""
        ...

    def read_state(self, now: float) -> StoreState:
        """The head snapshot's metadata and the overrides in force at ``now``, read in
        one consistent transaction, with the token they correspond to.

        Raises:
            StoreUnavailableError: the store cannot be read.
        """
        ...

    def head(self) -> SnapshotInfo | None:
        """The head snapshot's metadata, or None before the first publish."""
        ...

    def get_snapshot(self, rev: int | None = None, *, overlays: bool = True) -> SnapshotRecord:
        """The snapshot ``rev`` (the head when None). With ``overlays=False`` its
        ``tenants`` and ``routes`` sections are empty (the base only: a client loads
        those one by one with :meth:`get_overlays`).

        Raises:
            NotFoundError: there is no such rev (or nothing was published).
        """
        ...

    def overlay_names(self, rev: int) -> list[tuple[str, str]]:
        """The ``(section, name)`` of every tenant and route overlay of ``rev``.

        Raises:
            NotFoundError: there is no such rev.
        """
        ...

    def get_overlays(
        self, rev: int, keys: Iterable[tuple[str, str]]
    ) -> dict[tuple[str, str], Mapping[str, Any]]:
        """The normalised overlays of ``keys`` (``("tenants", "acme")``) at ``rev``;
        a key without an overlay at that rev is left out.

        Raises:
            NotFoundError: there is no such rev.
        """
        ...

    def overlay_texts(self, rev: int) -> dict[tuple[str, str], str]:
        """The canonical JSON text of every overlay of ``rev`` (as stored; what a
        publish compares a new document's overlays with), as an
        :class:`~flagmw.stores._overlays.OverlayTexts`: a dict that also carries the
        rev's overlay ``digest``. The store keeps the last one it handed out weakly, so a
        publish on top of that rev does not read them again.

        Raises:
            NotFoundError: there is no such rev.
        """
        ...

    def changed_overlays(self, since_rev: int, rev: int) -> set[tuple[str, str]]:
        """The keys of the overlays written by the revs after ``since_rev`` up to
        ``rev`` (a superset of those whose content differs between the two revs)."""
        ...

    def history(self, limit: int = 50) -> list[SnapshotInfo]:
        """The most recent snapshots, newest first."""
        ...

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
        """Publish ``document`` as rev ``parent_rev + 1`` (rev 1 when ``parent_rev`` is
        None), with its audit entry, atomically; of its tenant and route overlays only
        those that differ from the head's are written. ``action`` is ``"publish"``,
        ``"rollback"`` or ``"canary"`` (both need ``rollback_of``); the audit entry's time is the
        store's clock. ``overlay_texts``: the canonical text of each of the document's
        overlays when the caller computed them with the hash
        (:func:`flagmw.core.snapshot_hash.hash_and_texts`; written as given), else
        computed here.

        Raises:
            ConflictError: ``parent_rev`` is not the current head rev.
            ValueError: another ``action`` (:func:`check_publish_action`).
        """
        ...

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
        """Publish rev ``parent_rev + 1``: the head with only the overlays in
        ``changes`` replaced (a normalised overlay) or removed (None), everything else
        as it is; writes only those overlays, atomically, with its audit entry. The
        content hash is derived from the parent's (:mod:`flagmw.core.snapshot_hash`).

        Raises:
            ConflictError: ``parent_rev`` is not the current head rev.
            ValueError: a key outside ``tenants``/``routes``.
        """
        ...

    def add_override(self, override: Override) -> Override:
        """Store a new override (its ``id`` is assigned here) and its audit entry, whose
        action is derived from the override (:func:`override_audit_action`) and whose
        time is the store's clock."""
        ...

    def renew_override(
        self, override_id: str, expires_at: float, *, actor: str, reason: str, at: float
    ) -> Override:
        """Move an active override's expiry, with an audit entry.

        Raises:
            NotFoundError: no such override.
        """
        ...

    def end_override(self, override_id: str, *, actor: str, reason: str, at: float) -> Override:
        """End an override early, with an audit entry.

        Raises:
            NotFoundError: no such override.
        """
        ...

    def get_override(self, override_id: str) -> Override:
        """One override by id.

        Raises:
            NotFoundError: no such override.
        """
        ...

    def list_overrides(
        self, *, include_ended: bool = False, key: str | None = None
    ) -> list[Override]:
        """Overrides, newest first (expired ones included; ended ones on request; only
        those of one flag when ``key`` is given)."""
        ...

    def audit(self, limit: int = 100, *, action: str | None = None) -> list[AuditEntry]:
        """The most recent audit entries, newest first (optionally of one action prefix,
        e.g. ``"kill"``)."""
        ...

    def close(self) -> None:
        """Release connections and mappings."""
        ...


def override_target(ov: Override) -> str:
    """The audit ``target`` of an override."""
    return f"{ov.id} {ov.key} ({ov.scope_label})"


def override_audit_action(ov: Override) -> str:
    """The audit action of storing ``ov``: ``kill.forced`` (a kill with ``force``),
    ``kill.set`` or ``override.set``. Derived, never given by a caller, so the audit log
    cannot be made to say "publish" for a kill (issue 9 item 9)."""
    if ov.kind is OverrideKind.KILL:
        return "kill.forced" if ov.force else "kill.set"
    return "override.set"


def check_publish_action(action: str, rollback_of: int | None) -> None:
    """Refuse a publish ``action`` other than ``"publish"``, or ``"rollback"`` /
    ``"canary"`` with ``rollback_of`` (the rev republished / the canary's baseline rev).

    Raises:
        ValueError: any other action, or a rollback or canary without ``rollback_of``.
    """
    if action == "publish" and rollback_of is None:
        return
    if action in ("rollback", "canary") and isinstance(rollback_of, int) and rollback_of >= 1:
        return
    raise ValueError(
        f"a snapshot is published with action 'publish', or 'rollback' / 'canary' with "
        f"rollback_of; got action={action!r}, rollback_of={rollback_of!r}"
    )
