"""Publishing only some tenants' and routes' overlays (issue 8 §3): the mixin of
:class:`~flagmw.client.FlagClient` behind :meth:`~OverlayPublishing.publish_overlays`,
``publish_tenant`` and ``flagmw publish --overlays``.

A fleet snapshot with 100k tenants is published whole in seconds; changing one tenant
that way means reading, validating and comparing all of them. Here the document holds
only ``tenants:`` and/or ``routes:`` — each entry the tenant's (route's) whole new
overlay, or ``null`` to remove it — and only those are validated (against the
registry and the head's segments) and written as the next rev; everything else stays
as the head has it. The new rev's content hash is the one the whole document would
have (:mod:`flagmw.core.snapshot_hash`), so ``diff``, ``rollback`` and
``snapshot_rev`` mean what they always meant.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from flagmw.client.arguments import check_int, check_required_text, check_source, check_text
from flagmw.client.canary import refuse_during_canary
from flagmw.client.results import PublishResult
from flagmw.core.overlay_reuse import KnownOverlays
from flagmw.core.registry import FlagRegistry
from flagmw.core.snapshot import Snapshot, validate_document
from flagmw.core.snapshot_hash import OVERLAY_SECTIONS
from flagmw.core.source import load_document
from flagmw.errors import ConflictError, FlagmwError, Problem, ValidationError
from flagmw.stores.base import SnapshotInfo, Store

__all__ = ["OverlayPublishing", "head_overlays"]

_HEAD: Any = object()


def head_overlays(store: Store, registry: FlagRegistry, data: Any) -> KnownOverlays | None:
    """The head rev's overlays, for a whole-document publish to validate only the
    tenants and routes that changed (:mod:`flagmw.core.overlay_reuse`); None when the
    head was published against another registry, or the document has no overlays."""
    if not isinstance(data, Mapping) or not (data.get("tenants") or data.get("routes")):
        return None
    try:
        head = store.head()
        if head is None or head.registry_fingerprint != registry.fingerprint:
            return None
        base = store.get_snapshot(head.rev, overlays=False).document
        return KnownOverlays(store.overlay_texts(head.rev), base.get("segments", {}))
    except FlagmwError:
        return None  # the publish itself reports the store


class OverlayPublishing:
    """Publish a few overlays as the next rev (needs the client's registry, store,
    clock and :meth:`refresh`)."""

    registry: FlagRegistry
    store: Store
    clock: Callable[[], float]

    if TYPE_CHECKING:  # pragma: no cover - provided by EvaluationCache

        def refresh(self, *, force: bool = False) -> bool: ...

    def publish_overlays(
        self,
        source: str | os.PathLike[str] | Mapping[str, Any],
        *,
        author: str,
        message: str,
        parent_rev: int | None = _HEAD,
    ) -> PublishResult:
        """Validate and publish the ``tenants:`` and ``routes:`` of ``source`` on top of
        the head: each named overlay replaced (or removed, ``null``), nothing else.

        Args:
            source: a YAML/JSON file or a mapping with only ``tenants`` and/or
                ``routes`` sections, e.g. ``{"tenants": {"acme": {"values": {...}}}}``.
            author: who publishes (mandatory).
            message: why (mandatory).
            parent_rev: the rev the change was based on; the head when omitted.

        Returns:
            the new rev and its content hash; ``published`` False when every overlay
            named is already the head's.

        Raises:
            ValidationError: a section other than tenants/routes, an invalid overlay
                (located), nothing published yet, or a head published against another
                registry (publish the whole document then).
            ConflictError: ``parent_rev`` is not the head any more.
            OverrideError: missing author or message.
        """
        check_source("publish_overlays", source)
        check_required_text("publish_overlays", "author", author)
        check_required_text("publish_overlays", "message", message)
        if parent_rev is not _HEAD and parent_rev is not None:
            check_int("publish_overlays", "parent_rev", parent_rev)
        checked, head, sections = self._checked_patch(source, "overlay publish")
        if parent_rev is _HEAD:
            parent_rev = head.rev
        if parent_rev != head.rev:
            raise ConflictError(parent_rev, head.rev)
        changes: dict[tuple[str, str], Mapping[str, Any] | None] = {}
        for s, entries in sections.items():
            for name, overlay in entries.items():
                check_text("publish_overlays", f"{s} name", name)
                changes[(s, name)] = None if overlay is None else checked.document[s][name]
        current = self.store.get_overlays(head.rev, changes)
        if all(current.get(k) == v for k, v in changes.items()):
            return PublishResult(head.rev, head.content_hash, head.parent_rev, False, ())
        info = self.store.publish_overlays(
            changes,
            self.registry.to_dict(),
            registry_fingerprint=self.registry.fingerprint,
            parent_rev=head.rev,
            author=author,
            message=message,
            at=self.clock(),
        )
        self.refresh()
        return PublishResult(
            info.rev, info.content_hash, info.parent_rev, True, tuple(checked.warnings)
        )

    def validate_overlays(self, source: str | os.PathLike[str] | Mapping[str, Any]) -> Snapshot:
        """Validate an overlay patch as :meth:`publish_overlays` would, without
        publishing: the ``tenants:`` / ``routes:`` of ``source`` checked against the
        registry and the head's segments.

        Returns:
            the checked patch (its ``document`` holds the normalised overlays).

        Raises:
            ValidationError: as :meth:`publish_overlays` (every problem located).
        """
        check_source("validate_overlays", source)
        return self._checked_patch(source, None)[0]

    def _checked_patch(
        self, source: str | os.PathLike[str] | Mapping[str, Any], operation: str | None
    ) -> tuple[Snapshot, SnapshotInfo, dict[str, Mapping[str, Any]]]:
        """The patch validated, the head it applies to and its sections; with
        ``operation``, refused while the head is a config canary."""
        data, locator = load_document(source)
        if data is None:
            data = {}
        problems: list[Problem] = []
        if not isinstance(data, Mapping):
            problems.append(
                locator.problem((), "an overlay patch is a mapping with tenants: and/or routes:")
            )
            raise ValidationError(problems, locator.source)
        for section in data:
            if section not in OVERLAY_SECTIONS:
                problems.append(
                    locator.problem(
                        (str(section),),
                        f"only tenants: and routes: can be published on their own, not {section!r}",
                        "publish the whole document to change other sections",
                        "unknown_section",
                    )
                )
        head = self.store.head()
        if operation is not None:
            refuse_during_canary(head, operation)
        if head is None:
            problems.append(
                locator.problem((), "nothing is published yet", "publish a whole document first")
            )
        elif head.registry_fingerprint != self.registry.fingerprint:
            problems.append(
                locator.problem(
                    (),
                    f"rev {head.rev} was published against another registry",
                    "publish the whole document, so every overlay is checked against this registry",
                    "registry_mismatch",
                )
            )
        sections = {s: data.get(s) or {} for s in OVERLAY_SECTIONS}
        for s, entries in sections.items():
            if not isinstance(entries, Mapping):
                problems.append(locator.problem((s,), f"{s} must be a mapping of name → overlay"))
                sections[s] = {}
        checked = None
        if head is not None and not any(p.code == "registry_mismatch" for p in problems):
            base = self.store.get_snapshot(head.rev, overlays=False).document
            try:
                # validated as a document with the head's segments (rules may name them)
                checked = validate_document(
                    {
                        "segments": base.get("segments", {}),
                        **{
                            s: {n: o for n, o in e.items() if o is not None}
                            for s, e in sections.items()
                        },
                    },
                    self.registry,
                    locator=locator,
                )
            except ValidationError as exc:
                problems.extend(exc.problems)
        if problems or checked is None or head is None:
            raise ValidationError(problems, locator.source)
        return checked, head, sections

    def publish_tenant(
        self,
        tenant: str,
        overlay: Mapping[str, Any] | None,
        *,
        author: str,
        message: str,
        parent_rev: int | None = _HEAD,
    ) -> PublishResult:
        """Publish one tenant's whole overlay (``{"values": …, "rules": …,
        "requires": …}``), or remove it (None), as the next rev: sugar over
        :meth:`publish_overlays`.

        Raises:
            as :meth:`publish_overlays`.
        """
        check_text("publish_tenant", "tenant", tenant)
        return self.publish_overlays(
            {"tenants": {tenant: overlay}}, author=author, message=message, parent_rev=parent_rev
        )
