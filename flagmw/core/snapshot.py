"""Snapshot documents: the values and rules of every layer below the emergency layer.

A snapshot document is YAML or JSON (see ``docs/flags-file.md`` for every field)::

    environments: {staging: {model.primary: gpt-4o-mini}}     # layer 2
    values: {model.fallbacks: [gpt-4o-mini]}                   # layer 3
    rules: [{name: enterprise-v3, when: {plan: enterprise}, set: {prompt.style: v3}}]
    segments: {beta: {user_id: {in: [u-1, u-2]}}}
    tenants: {acme: {values: {...}, rules: [...], requires: [compliance.pii_redaction]}}  # 4
    routes: {refund-assistant: {values: {loop.max_iterations: 4}}}                        # 5
    experiments: {style-v3: {flag: prompt.style, unit: user, variants: {...}, weights: {...}}}  # 6

:func:`validate_document` checks a document against a :class:`~flagmw.registry.FlagRegistry`
and returns a :class:`Snapshot` holding the **normalised** document (shorthands
expanded, values coerced to their flag's type): the form that is stored, hashed and
compiled. Every problem is reported at once, each located; nothing is returned when
any error is found.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flagmw.core.overlay_reuse import KnownOverlays
from flagmw.core.registry import FlagRegistry
from flagmw.core.snapshot_hash import document_hash, hash_and_texts
from flagmw.core.snapshot_validation import DocumentValidator
from flagmw.core.source import DocPath, Locator, format_path, load_document
from flagmw.errors import Problem, ValidationError

__all__ = ["Change", "Snapshot", "diff_documents", "validate_document"]


@dataclass(frozen=True, slots=True)
class Change:
    """One difference between two snapshot documents (``flagmw diff``)."""

    path: str
    before: Any
    after: Any
    kind: str  # "added" | "removed" | "changed"


@dataclass(frozen=True, slots=True, eq=False)
class Snapshot:
    """A validated, normalised snapshot document.

    Attributes:
        document: the normalised document (JSON primitives): ``version``,
            ``environments``, ``values``, ``rules``, ``segments``, ``tenants``,
            ``routes``, ``experiments`` — every section present, shorthands expanded.
        content_hash: ``"sha256:…"`` of ``document``: the canonical JSON of its base and
            the multiset digest of its tenant and route overlays
            (:mod:`flagmw.core.snapshot_hash`).
        warnings: non-blocking problems (e.g. expired flags, empty conditions).
    """

    document: Mapping[str, Any]
    content_hash: str
    warnings: tuple[Problem, ...] = ()
    #: the canonical text of each overlay, ``(section, name)`` → text, when computed
    #: with the hash (a store writes them as they are: computed once per publish)
    overlay_texts: Mapping[tuple[str, str], str] | None = None

    @classmethod
    def from_normalised(cls, document: Mapping[str, Any]) -> Snapshot:
        """Wrap a document that was validated before (e.g. read back from a store)."""
        return cls(document, document_hash(document))


def validate_document(
    source: str | os.PathLike[str] | Mapping[str, Any],
    registry: FlagRegistry,
    *,
    locator: Locator | None = None,
    known: KnownOverlays | None = None,
) -> Snapshot:
    """Validate a snapshot document against ``registry``.

    Args:
        source: a path to a YAML or JSON file, or the document as a mapping. A
            ``flags:`` section in the document is ignored here (it is the registry).
            With ``locator`` given, ``source`` is content already loaded
            (:func:`~flagmw.core.source.load_document`) and is never read as a path:
            None is the empty snapshot, anything but a mapping is a problem.
        registry: the flags the document may set.
        locator: where the loaded content came from (for locations).
        known: the head rev's overlays (:class:`~flagmw.core.overlay_reuse.
            KnownOverlays`), validated against this same registry: an overlay written
            exactly as the head holds it is not validated again (100k tenants).

    Returns:
        the :class:`Snapshot` with the normalised document and any warnings.

    Raises:
        ValidationError: every error found, each with its location (``file:line`` for
            YAML) and a fix hint. ``.warnings`` of a successful result hold the rest.
    """
    data: Any
    if locator is not None or source is None or isinstance(source, Mapping):
        # content already loaded (never a path: a file whose whole content is a string
        # naming another file must not publish that file)
        data, loc = source, locator or Locator("<document>")
    else:
        data, loc = load_document(source)
    if data is None:  # an empty document: the empty snapshot
        data = {}
    if not isinstance(data, Mapping):
        kinds: dict[type, str] = {list: "a list", str: "a string"}
        kind = kinds.get(type(data), f"a {type(data).__name__}")
        raise ValidationError(
            [
                loc.problem(
                    (),
                    f"a flags file is a mapping (flags:, values:, tenants: …), not {kind}",
                    "start the file with a key such as `values:`; an empty file is the "
                    "empty snapshot",
                    "wrong_type",
                )
            ],
            loc.source,
        )
    v = DocumentValidator(registry, loc, known)
    doc = v.document(data)
    v.problems.extend(registry.expiry_warnings(loc))
    errors = [p for p in v.problems if p.severity == "error"]
    if errors:
        raise ValidationError(v.problems, loc.source)
    derived = known.hash_and_texts(doc) if known is not None else None
    digest, texts = derived or hash_and_texts(doc, known.matched if known is not None else None)
    return Snapshot(doc, digest, tuple(p for p in v.problems if p.severity != "error"), texts)


def diff_documents(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[Change]:
    """Differences between two (normalised) documents, as located changes.

    Lists are compared whole, except rule lists, which are compared by rule name.
    """
    out: list[Change] = []

    def walk(x: Any, y: Any, path: DocPath) -> None:
        if isinstance(x, Mapping) and isinstance(y, Mapping):
            for k in sorted(set(x) | set(y), key=str):
                p = (*path, k)
                if k not in x:
                    out.append(Change(format_path(p), None, y[k], "added"))
                elif k not in y:
                    out.append(Change(format_path(p), x[k], None, "removed"))
                else:
                    walk(x[k], y[k], p)
            return
        if (
            path
            and path[-1] == "rules"
            and isinstance(x, list)
            and isinstance(y, list)
            and all(isinstance(r, Mapping) and "name" in r for r in [*x, *y])
        ):
            walk({r["name"]: r for r in x}, {r["name"]: r for r in y}, path)
            return
        if x != y or type(x) is not type(y):
            out.append(Change(format_path(path), x, y, "changed"))

    walk(a, b, ())
    return out
