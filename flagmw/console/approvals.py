"""Two-admin approval: a publish that changes a flag tagged ``billing`` or ``compliance``
waits as a *pending publish* until a second admin approves it (the checklist item "flags
that affect billing or compliance require signed approval in the change log").

A flag counts as changed when anything the snapshot document says about it differs from
the head's: its value in any section (environments, values, rule ``set``s, tenant and
route overlays), an experiment on it, a tenant's ``requires`` (:func:`guarded_keys`).
The approved publish is written with the requester as author and the message ending in
``(approved by <approver>)``, so the audit entry names both; the request, the approval
and a rejection are notified like every change. Pending publishes live in the console's
memory (a restart drops them; nothing was published), and approving one publishes on
top of the parent rev it was requested on — a publish in between is a conflict.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from flagmw.core.registry import FlagRegistry

__all__ = ["APPROVAL_TAGS", "Approvals", "PendingPublish", "guarded_keys"]

#: Tags whose flags need a second admin's approval to change.
APPROVAL_TAGS = frozenset({"billing", "compliance"})


def _footprint(document: Mapping[str, Any], key: str) -> list[tuple[str, str]]:
    """Every place ``document`` mentions ``key`` (as a mapping key, an experiment's
    ``flag``, or a list element such as ``requires``), with what it says there."""
    out: list[tuple[str, str]] = []

    def walk(node: Any, path: str) -> None:
        if isinstance(node, Mapping):
            for k, v in node.items():
                p = f"{path}/{k}"
                if k == key:
                    out.append((p, json.dumps(v, sort_keys=True, default=str)))
                elif k == "flag" and v == key:
                    out.append((p, "flag"))
                else:
                    walk(v, p)
        elif isinstance(node, list):
            for i, v in enumerate(node):
                if v == key:
                    out.append((f"{path}/{i}", "listed"))
                else:
                    walk(v, f"{path}/{i}")

    walk(document, "")
    return sorted(out)


def guarded_keys(
    registry: FlagRegistry, before: Mapping[str, Any] | None, after: Mapping[str, Any]
) -> list[str]:
    """The flags tagged with an :data:`APPROVAL_TAGS` tag whose footprint differs between
    the normalised documents ``before`` (None: nothing published) and ``after``."""
    old = before or {}
    return [
        f.key
        for f in registry
        if APPROVAL_TAGS.intersection(f.tags) and _footprint(old, f.key) != _footprint(after, f.key)
    ]


@dataclass
class PendingPublish:
    """A publish waiting for a second admin."""

    id: str
    requested_by: str
    message: str
    document: dict[str, Any]
    parent_rev: int | None
    keys: list[str]
    created_at: float
    status: str = "pending"
    decided_by: str | None = None
    reason: str | None = None
    rev: int | None = None
    #: ``document`` is an overlay patch (``{"tenants": {name: overlay}}``) published with
    #: :meth:`FlagClient.publish_overlays`, not a whole document
    overlays: bool = False

    def to_dict(self, *, with_document: bool = False) -> dict[str, Any]:
        """JSON primitives (the document on request)."""
        out: dict[str, Any] = {
            "id": self.id,
            "requested_by": self.requested_by,
            "message": self.message,
            "parent_rev": self.parent_rev,
            "keys": list(self.keys),
            "created_at": self.created_at,
            "status": self.status,
            "decided_by": self.decided_by,
            "reason": self.reason,
            "rev": self.rev,
            "overlays": self.overlays,
        }
        if with_document:
            out["document"] = self.document
        return out


@dataclass
class Approvals:
    """The pending publishes of one console."""

    items: dict[str, PendingPublish] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(
        self,
        requested_by: str,
        message: str,
        document: dict[str, Any],
        parent_rev: int | None,
        keys: list[str],
        at: float,
        *,
        overlays: bool = False,
    ) -> PendingPublish:
        """Queue a publish for a second admin (``overlays``: ``document`` is an overlay
        patch, published with ``publish_overlays``)."""
        with self.lock:
            p = PendingPublish(
                f"pp-{len(self.items) + 1}",
                requested_by,
                message,
                document,
                parent_rev,
                keys,
                at,
                overlays=overlays,
            )
            self.items[p.id] = p
            return p

    def pending(self) -> list[PendingPublish]:
        with self.lock:
            return [p for p in self.items.values() if p.status == "pending"]

    def get(self, pending_id: str) -> PendingPublish | None:
        with self.lock:
            return self.items.get(pending_id)
