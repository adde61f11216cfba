"""The Redis store's key layout and how its values map to flagmw's records.

Every key of one store starts with its prefix, ``flagmw:<app>:<env>:`` by default
(several applications and environments share one Redis database):

==========================  =======  ===================================================
key (after the prefix)      type     content
==========================  =======  ===================================================
``store``                   hash     the store marker: ``format``, ``created_at``; a
                                     store exists only where this key does
``seq``                     hash     the change sequences ``snapshot`` and ``override``
``history``                 list     one JSON :class:`SnapshotInfo` per rev (rev N at
                                     index N-1) with its ``overlay_digest``, appended
                                     by publish
``snap:<rev>``              string   the rev's base document (JSON; tenants and routes
                                     empty)
``overlay:<section>:<name>``  hash   rev → the overlay's text at that rev, ``""`` when
                                     removed at that rev (written only at the revs
                                     that changed it)
``overlays``                zset     ``<section>:<name>`` of every overlay ever
                                     written, scored by the rev that first wrote it
``removed``                 set      ``<section>:<name>`` of every overlay ever removed
``changed:<rev>``           set      ``<section>:<name>`` of the overlays written at rev
``reg:<fingerprint>``       string   a registry (JSON), written once per fingerprint
``ov``                      hash     override id (``ov-N``) → the override (JSON)
``audit``                   list     one JSON audit entry per record (seq N at index
                                     N-1), append-only
``changes``                 channel  pub/sub channel of change notifications (ids only)
==========================  =======  ===================================================

Values are JSON text encoded as in the SQLite store
(:func:`flagmw.stores._sqlite_rows.dumps`); overlays are their canonical JSON
(:func:`flagmw.core.snapshot_hash.overlay_text`). Format 2 added the overlay keys
(:mod:`flagmw.stores._redis_overlays`; a format-1 store is migrated at open).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from flagmw.stores.base import AuditEntry, SnapshotInfo

__all__ = [
    "FORMAT",
    "Keys",
    "audit_from_json",
    "audit_json",
    "check_part",
    "info_from_json",
    "member_key",
    "overlay_member",
    "payload",
]

#: the key layout's version, kept in the store marker (a newer one is refused)
FORMAT = 2

_PART = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def check_part(what: str, value: str) -> str:
    """An application or environment name: 1-64 of ``A-Z a-z 0-9 _ . -`` (no ``:``,
    so one store's prefix never is the start of another's).

    Raises:
        ValueError: any other name.
    """
    if not _PART.match(value):
        raise ValueError(
            f"bad Redis store {what} {value!r}: use 1-64 letters, digits, '_', '.' or '-'"
        )
    return value


class Keys:
    """The key names of the store under ``prefix``."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.store = prefix + "store"
        self.seq = prefix + "seq"
        self.history = prefix + "history"
        self.ov = prefix + "ov"
        self.audit = prefix + "audit"
        self.channel = prefix + "changes"
        self.overlays = prefix + "overlays"
        self.removed = prefix + "removed"

    def snap(self, rev: int) -> str:
        return f"{self.prefix}snap:{rev}"

    def reg(self, fingerprint: str) -> str:
        return f"{self.prefix}reg:{fingerprint}"

    @property
    def overlay_prefix(self) -> str:
        return f"{self.prefix}overlay:"

    def overlay(self, section: str, name: str) -> str:
        return f"{self.overlay_prefix}{overlay_member(section, name)}"

    def changed(self, rev: int) -> str:
        return f"{self.prefix}changed:{rev}"


def overlay_member(section: str, name: str) -> str:
    """``<section>:<name>``: a section has no ``:``, so the first one splits it."""
    return f"{section}:{name}"


def member_key(member: str | bytes) -> tuple[str, str]:
    """The ``(section, name)`` of :func:`overlay_member`."""
    text = member.decode() if isinstance(member, bytes) else member
    section, name = text.split(":", 1)
    return section, name


def payload(seqs: tuple[int, int], **ids: Any) -> str:
    """A change notification: the new sequences and the id of what changed (``rev=4``
    or ``ov="ov-3"``); a few dozen bytes, never a document."""
    return json.dumps({"seq": list(seqs), **ids}, separators=(",", ":"))


def info_from_json(text: str | bytes) -> SnapshotInfo:
    d = json.loads(text)
    return SnapshotInfo(
        rev=d["rev"],
        parent_rev=d["parent_rev"],
        content_hash=d["content_hash"],
        author=d["author"],
        message=d["message"],
        created_at=d["created_at"],
        registry_fingerprint=d["registry_fingerprint"],
        action=d["action"],
        rollback_of=d["rollback_of"],
    )


def audit_json(
    seq: int,
    at: float,
    action: str,
    actor: str,
    reason: str,
    target: str,
    before: Any,
    after: Any,
    details: Mapping[str, Any],
) -> dict[str, Any]:
    return AuditEntry(
        seq, at, action, actor, reason, target, before, after, dict(details)
    ).to_dict()


def audit_from_json(text: str | bytes) -> AuditEntry:
    d = json.loads(text)
    return AuditEntry(
        d["seq"],
        d["at"],
        d["action"],
        d["actor"],
        d["reason"],
        d["target"],
        d["before"],
        d["after"],
        d["details"],
    )
