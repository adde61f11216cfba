"""The content hash of a snapshot, composable over its tenant and route overlays.

A snapshot with 100k tenants is stored as a **base** (every section but the overlay
sections) and one **overlay** per tenant and route (``docs/stores.md``), so that a
publish that changes one tenant writes, validates and hashes one tenant. Its content
hash must then be computable from the parent's without reading the 100k others:

* each overlay is written as its canonical JSON text (RFC 8785, :func:`overlay_text`);
* the overlays of a snapshot are summarised by a **multiset hash**: the sum, modulo
  2**2048, of the SHAKE-256 (2048-bit output) of ``section NUL name NUL text`` of every
  overlay — the additive construction of Bellare and Micciancio ("A New Paradigm for
  Collision-free Hashing", 1997), incremental by design: replacing one overlay
  subtracts its old element and adds the new one;
* the content hash is ``"sha256:<hex>"`` of the canonical JSON of the base, a newline,
  and the digest as 512 hex digits.

The hash depends only on the normalised document (never on how it was published), so
a whole-document publish and a one-tenant publish of the same content give the same
hash. The 2048-bit modulus keeps the generalised-birthday attacks on additive hashes
(Wagner, 2002) far out of reach.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

from flagmw.core.canonical import (
    canonical_json,
    canonical_json_many,
    canonical_json_small,
    sha256_hex,
)

__all__ = [
    "DIGEST_BITS",
    "OVERLAY_SECTIONS",
    "OverlayTexts",
    "add_element",
    "base_of",
    "digest_from_hex",
    "digest_hex",
    "document_hash",
    "hash_and_texts",
    "overlay_element",
    "overlay_text",
    "overlay_texts_of",
    "overlays_of",
    "snapshot_hash",
    "texts_digest",
]

#: The sections whose entries are stored, validated and loaded one by one.
OVERLAY_SECTIONS = ("tenants", "routes")

#: The size of the multiset digest.
DIGEST_BITS = 2048
_MOD = 1 << DIGEST_BITS
_BYTES = DIGEST_BITS // 8


def overlay_text(overlay: Mapping[str, Any]) -> str:
    """The canonical JSON (RFC 8785) of one normalised overlay: what is stored and
    hashed."""
    return canonical_json_small(dict(overlay))


def overlay_element(section: str, name: str, text: str) -> int:
    """The multiset element of one overlay: SHAKE-256 of ``section NUL name NUL text``
    as a 2048-bit integer."""
    data = f"{section}\0{name}\0{text}".encode("utf-8", "surrogatepass")
    return int.from_bytes(hashlib.shake_256(data).digest(_BYTES), "big")


def texts_digest(texts: Mapping[tuple[str, str], str]) -> int:
    """The overlay digest of overlays given as ``(section, name)`` → canonical text: the
    sum of their :func:`overlay_element` modulo 2**:data:`DIGEST_BITS`."""
    return sum(overlay_element(s, n, t) for (s, n), t in texts.items()) % _MOD


def add_element(digest: int, element: int, sign: int = 1) -> int:
    """``digest`` with ``element`` added (``sign=1``) or removed (``sign=-1``)."""
    return (digest + sign * element) % _MOD


def digest_hex(digest: int) -> str:
    """The digest as 512 lowercase hex digits (how stores keep it)."""
    return format(digest, f"0{_BYTES * 2}x")


def digest_from_hex(text: str) -> int:
    """The digest read back from :func:`digest_hex`.

    Raises:
        ValueError: ``text`` is not 512 hex digits.
    """
    if len(text) != _BYTES * 2:
        raise ValueError(f"an overlay digest is {_BYTES * 2} hex digits, got {len(text)}")
    return int(text, 16)


def base_of(document: Mapping[str, Any]) -> dict[str, Any]:
    """``document`` with its overlay sections empty (the stored base; a section the
    document does not have stays absent)."""
    base = dict(document)
    for section in OVERLAY_SECTIONS:
        if section in base:
            base[section] = {}
    return base


def overlays_of(document: Mapping[str, Any]) -> Iterable[tuple[str, str, Mapping[str, Any]]]:
    """Every ``(section, name, overlay)`` of a normalised document."""
    for section in OVERLAY_SECTIONS:
        for name, overlay in (document.get(section) or {}).items():
            yield section, name, overlay


def snapshot_hash(base: Mapping[str, Any], digest: int) -> str:
    """The content hash of a snapshot from its base and its overlay digest."""
    return sha256_hex(canonical_json(base_of(base)) + "\n" + digest_hex(digest))


def document_hash(document: Mapping[str, Any]) -> str:
    """The content hash of a whole normalised document (the same value as
    :func:`snapshot_hash` of its base and the digest of its overlays).

    Raises:
        CanonicalizationError: the document holds something JSON cannot represent.
    """
    return hash_and_texts(document)[0]


def hash_and_texts(
    document: Mapping[str, Any], known: Mapping[tuple[str, str], str] | None = None
) -> tuple[str, dict[tuple[str, str], str]]:
    """:func:`document_hash` and the canonical text of every overlay (``(section,
    name)`` → text, as :class:`OverlayTexts` carrying their digest), which a store
    writes: computed once per publish (``known``: texts already computed for some
    overlays).

    Raises:
        CanonicalizationError: the document holds something JSON cannot represent.
    """
    texts = overlay_texts_of(document, known)
    digest = texts_digest(texts)
    return snapshot_hash(document, digest), OverlayTexts(texts, None, digest)


def overlay_texts_of(
    document: Mapping[str, Any], known: Mapping[tuple[str, str], str] | None = None
) -> dict[tuple[str, str], str]:
    """The canonical text of every overlay of ``document`` (``known``: texts already
    computed), the RFC 8785 checks run once over all of them
    (:func:`~flagmw.core.canonical.canonical_json_many`).

    Raises:
        CanonicalizationError: the document holds something JSON cannot represent.
    """
    texts: dict[tuple[str, str], str] = {}
    todo: list[tuple[tuple[str, str], Any]] = []
    for section, name, overlay in overlays_of(document):
        key = (section, name)
        text = known.get(key) if known else None
        if text is None:
            todo.append((key, overlay if type(overlay) is dict else dict(overlay)))
            texts[key] = ""  # keeps the document's order
        else:
            texts[key] = text
    for (key, _), text in zip(todo, canonical_json_many([o for _, o in todo]), strict=True):
        texts[key] = text
    return texts


class OverlayTexts(dict[tuple[str, str], str]):
    """Overlay texts with their digest: what :meth:`~flagmw.stores.base.Store.
    overlay_texts` returns for a stored ``rev`` (key → text, and that rev's overlay
    ``digest``, None when the store has none recorded), so a caller can derive a new
    document's hash from the head's by the overlays that changed; and, with ``rev``
    None, a new document's texts and digest as a caller computed them with its hash
    (:mod:`flagmw.core.snapshot_hash`), which a publish then need not sum again."""

    __slots__ = ("__weakref__", "digest", "rev")

    def __init__(
        self, texts: Mapping[tuple[str, str], str], rev: int | None, digest: int | None
    ) -> None:
        super().__init__(texts)
        self.rev = rev
        self.digest = digest
