"""Validate only what changed (issue 8 §3): a tenant's or route's overlay that is
already, text for text, the one the head rev holds needs no validation.

The head's overlays are stored normalised, as canonical JSON (RFC 8785,
:func:`~flagmw.core.snapshot_hash.overlay_text`). Validation is deterministic and
normalising a normalised overlay changes nothing, so an overlay written exactly in the
stored form (``values``, ``rules``, ``requires`` as normalised, nothing else) whose
canonical text equals the head's is valid and normalised — *as long as what it is
checked against is the same*: the registry (the caller checks its fingerprint) and the
segments its rules may name (checked here). Canonical JSON keeps ``true`` apart from
``1`` and ``"1"``, so no wrongly typed value matches a stored one. Anything else is
validated in full.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flagmw.core.canonical import CanonicalizationError, canonical_json, sorted_json
from flagmw.core.snapshot_hash import (
    DIGEST_BITS,
    OverlayTexts,
    overlay_element,
    overlay_texts_of,
    snapshot_hash,
)

__all__ = ["KnownOverlays"]

_FIELDS = frozenset({"values", "rules", "requires", "description"})


class KnownOverlays:
    """The head's overlay texts, for :meth:`match`.

    Args:
        texts: ``(section, name)`` → canonical text of every overlay of the head.
        segments: the head's (normalised) segments.
    """

    def __init__(self, texts: Mapping[tuple[str, str], str], segments: Mapping[str, Any]) -> None:
        self.texts = texts
        self.segments_text = canonical_json(dict(segments))
        #: ``(section, name)`` → text of every overlay :meth:`match` accepted
        self.matched: dict[tuple[str, str], str] = {}

    def same_segments(self, segments: Any) -> bool:
        """True when the document's raw ``segments`` are the head's, text for text."""
        try:
            return canonical_json(dict(segments or {})) == self.segments_text
        except (CanonicalizationError, TypeError, ValueError):
            return False

    def match(self, section: str, name: str, raw: Any) -> dict[str, Any] | None:
        """``raw`` as its normalised form when it is the head's overlay of ``name``
        exactly; None: validate it."""
        known = self.texts.get((section, name))
        if known is None or type(raw) is not dict or raw.keys() - _FIELDS:
            return None
        if "requires" in raw and section != "tenants":
            return None
        filled: dict[str, Any] = {"values": raw.get("values", {}), "rules": raw.get("rules", [])}
        if raw.get("description"):
            filled["description"] = raw["description"]
        if section == "tenants":
            filled["requires"] = raw.get("requires", [])
        # equal to the stored canonical text only when it is that text (no RFC 8785
        # check needed: the stored text passed it)
        if sorted_json(filled) != known:
            return None
        text = known
        self.matched[(section, name)] = text
        return filled

    def hash_and_texts(
        self, document: Mapping[str, Any]
    ) -> tuple[str, dict[tuple[str, str], str]] | None:
        """The content hash of ``document`` (normalised) and its overlay texts, derived
        from the head's digest by the overlays that differ from the head's — the texts
        of those :meth:`match` accepted are the head's — or None when the head's digest
        is not known (then hash it whole)."""
        digest = getattr(self.texts, "digest", None)
        if digest is None:
            return None
        texts = overlay_texts_of(document, self.matched)
        for key, text in texts.items():
            if key in self.matched:
                continue
            section, name = key
            digest += overlay_element(section, name, text)
            before = self.texts.get(key)
            if before is not None:
                digest -= overlay_element(section, name, before)
        for (section, name), before in self.texts.items():
            if (section, name) not in texts:
                digest -= overlay_element(section, name, before)
        digest %= 1 << DIGEST_BITS
        return snapshot_hash(document, digest), OverlayTexts(texts, None, digest)
