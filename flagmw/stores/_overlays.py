"""What a publish writes when tenant and route overlays are stored one by one.

Every store keeps a snapshot rev as its **base** (the document with the overlay
sections empty) plus **overlay rows** ``(section, name, rev, text)`` written only for
the overlays that changed at that rev (``text`` None: removed at that rev). The
overlay of a name at rev R is its row with the greatest rev ≤ R. A rev also keeps its
**overlay digest** (:mod:`flagmw.core.snapshot_hash`), so that the next publish of one
tenant computes the new content hash from it without reading the others.

This module plans a publish for any backend: :func:`plan_document` for a whole
document (compared with the head's overlays; only the changed ones are written) and
:func:`plan_changes` for a set of overlay changes on top of the head.
"""

from __future__ import annotations

import json
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flagmw.core.snapshot_hash import (
    DIGEST_BITS,
    OVERLAY_SECTIONS,
    OverlayTexts,
    add_element,
    base_of,
    overlay_element,
    overlay_text,
    overlays_of,
    snapshot_hash,
)

__all__ = [
    "OverlayKey",
    "OverlayRow",
    "OverlayTexts",
    "PublishPlan",
    "TextsMemo",
    "assemble",
    "check_changes",
    "plan_changes",
    "plan_document",
    "texts_memo",
]

#: ``(section, name)``: ``("tenants", "acme")``.
OverlayKey = tuple[str, str]
#: ``(section, name, text)``; text None when the overlay is removed.
OverlayRow = tuple[str, str, str | None]


@dataclass(frozen=True, slots=True)
class PublishPlan:
    """What one publish writes.

    Attributes:
        base: the base document (overlay sections empty).
        rows: the overlay rows of the new rev (changed overlays only).
        digest: the new rev's overlay digest.
        content_hash: the new rev's content hash.
    """

    base: dict[str, Any]
    rows: list[OverlayRow]
    digest: int
    content_hash: str

    def audit_details(self, rollback_of: int | None) -> dict[str, Any]:
        """The ``details`` of the publish's audit entry (every store writes the same)."""
        return {
            "content_hash": self.content_hash,
            "rollback_of": rollback_of,
            "overlays_changed": len(self.rows),
        }


def plan_document(
    document: Mapping[str, Any],
    head: Mapping[OverlayKey, str],
    content_hash: str | None = None,
    texts: Mapping[OverlayKey, str] | None = None,
    head_digest: int | None = None,
) -> PublishPlan:
    """Plan the publish of a whole normalised ``document`` on top of a head whose
    overlays are ``head`` (key → text; empty for the first rev). ``content_hash``: the
    caller's hash of the document (:func:`~flagmw.core.snapshot_hash.document_hash`),
    recorded as given; computed when None. ``texts``: the overlays' canonical texts
    when the caller has them (:func:`~flagmw.core.snapshot_hash.hash_and_texts`).
    ``head_digest``: the head's overlay digest, updated for the changed overlays only
    (None: summed over every overlay)."""
    # the caller's texts may carry their digest (the whole document's): nothing to sum
    known = getattr(texts, "digest", None) if getattr(texts, "rev", 0) is None else None
    summed = known is None and head_digest is None
    rows: list[OverlayRow] = []
    full = 0
    seen: set[OverlayKey] = set()
    for section, name, overlay in overlays_of(document):
        key = (section, name)
        text = texts.get(key) if texts is not None else None
        if text is None:
            text = overlay_text(overlay)
        seen.add(key)
        if summed:
            full += overlay_element(section, name, text)
        if head.get(key) != text:
            rows.append((section, name, text))
    rows.extend((s, n, None) for (s, n) in head if (s, n) not in seen)
    if known is not None:
        digest = known
    elif head_digest is None:
        digest = full % (1 << DIGEST_BITS)
    else:  # the head's, with the written overlays' elements swapped
        digest = head_digest
        for section, name, after in rows:
            before = head.get((section, name))
            if after is not None:
                digest += overlay_element(section, name, after)
            if before is not None:
                digest -= overlay_element(section, name, before)
        digest %= 1 << DIGEST_BITS
    base = base_of(document)
    return PublishPlan(base, rows, digest, content_hash or snapshot_hash(base, digest))


def check_changes(changes: Mapping[OverlayKey, Any]) -> None:
    """Refuse overlay changes outside the overlay sections.

    Raises:
        ValueError: a key that is not ``(section, name)`` of a tenant or route.
    """
    for key in changes:
        if (
            not isinstance(key, tuple)
            or len(key) != 2
            or key[0] not in OVERLAY_SECTIONS
            or not isinstance(key[1], str)
            or not key[1]
        ):
            raise ValueError(
                f"an overlay change is keyed (section, name) with section one of "
                f"{', '.join(OVERLAY_SECTIONS)}; got {key!r}"
            )


def plan_changes(
    changes: Mapping[OverlayKey, Mapping[str, Any] | None],
    *,
    base: Mapping[str, Any],
    head: Mapping[OverlayKey, str | None],
    head_digest: int,
) -> PublishPlan:
    """Plan a publish that changes only ``changes`` (key → normalised overlay, or None
    to remove it) on top of a head with ``base``, whose current texts for the changed
    keys are ``head`` (None: absent) and whose digest is ``head_digest``."""
    check_changes(changes)
    digest = head_digest
    rows: list[OverlayRow] = []
    for (section, name), overlay in changes.items():
        before = head.get((section, name))
        after = overlay_text(overlay) if overlay is not None else None
        if before == after:
            continue
        if before is not None:
            digest = add_element(digest, overlay_element(section, name, before), -1)
        if after is not None:
            digest = add_element(digest, overlay_element(section, name, after))
        rows.append((section, name, after))
    base = base_of(base)
    return PublishPlan(base, rows, digest, snapshot_hash(base, digest))


def assemble(base: Mapping[str, Any], overlays: Mapping[OverlayKey, str]) -> dict[str, Any]:
    """The whole document from a base and the texts of its overlays (sorted by name,
    as the normalised document is written)."""
    doc = dict(base)
    for section in OVERLAY_SECTIONS:
        if section in doc:
            doc[section] = {}
    for (section, name), text in sorted(overlays.items()):
        doc.setdefault(section, {})[name] = json.loads(text)
    return doc


class TextsMemo:
    """The last :class:`OverlayTexts` a store handed out, held weakly: a publish on top
    of that very rev (texts of a rev never change) uses them instead of reading 100k
    texts again, for as long as the caller still holds them — never longer."""

    __slots__ = ("_ref",)

    def __init__(self) -> None:
        self._ref: weakref.ref[OverlayTexts] | None = None

    def keep(self, texts: OverlayTexts) -> OverlayTexts:
        self._ref = weakref.ref(texts)
        return texts

    def get(self, rev: int | None) -> OverlayTexts | None:
        texts = self._ref() if self._ref is not None else None
        return texts if texts is not None and rev is not None and texts.rev == rev else None


def texts_memo(store: object) -> TextsMemo:
    """The :class:`TextsMemo` of ``store`` (made on first use)."""
    memo: TextsMemo | None = getattr(store, "_texts_memo_", None)
    if memo is None:
        memo = TextsMemo()
        store._texts_memo_ = memo  # type: ignore[attr-defined]
    return memo
