"""The admin operations of a client: publish and roll back snapshots; set, renew and
end kills and overrides; read history and the audit log.

Every operation validates against the client's registry, writes through the
:class:`~flagmw.stores.Store` protocol (which audits it in the same transaction), and then
refreshes the client's cache so the client reads its own writes. Arguments are checked
first (:mod:`flagmw.client.arguments`): a wrongly typed or unstorable one is a
:class:`~flagmw.errors.ValidationError` and nothing is read or written.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from flagmw.client.arguments import (
    MAX_REV,
    check_flag,
    check_int,
    check_limit,
    check_required_text,
    check_source,
    check_text,
    check_ttl,
    check_value_text,
)
from flagmw.client.canary import CANARY_ACTION, refuse_during_canary
from flagmw.client.overlay_publish import head_overlays
from flagmw.client.results import PublishResult
from flagmw.client.scope import unknown_target
from flagmw.core.compiled import CompiledSnapshot
from flagmw.core.flag_spec import FlagType
from flagmw.core.overrides import Override, OverrideKind, ScopeKind, format_duration, parse_duration
from flagmw.core.registry import FlagRegistry
from flagmw.core.snapshot import Snapshot, validate_document
from flagmw.core.source import Locator, load_document
from flagmw.errors import ConflictError, NotFoundError, OverrideError, Problem, ValidationError
from flagmw.stores.base import AuditEntry, Store

__all__ = ["AdminOperations"]

log = logging.getLogger("flagmw")

#: ``parent_rev`` default: the store's head at the time of the call.
_HEAD: Any = object()


class AdminOperations:
    """Publish, rollback, kill, override, renew, end, history and audit: the mixin of
    :class:`~flagmw.client.FlagClient` that writes to the store.

    It uses the client's registry, store, clock, TTL bounds, served snapshot and
    :meth:`refresh` (declared below for type checkers only).
    """

    registry: FlagRegistry
    store: Store
    clock: Callable[[], float]
    default_ttl: float
    max_ttl: float
    _compiled: CompiledSnapshot

    if TYPE_CHECKING:  # pragma: no cover - provided by EvaluationCache

        def refresh(self, *, force: bool = False) -> bool: ...

    # -- snapshots -----------------------------------------------------------------------

    def validate(self, source: str | os.PathLike[str] | Mapping[str, Any]) -> Snapshot:
        """Validate a snapshot document against the registry without publishing.

        Raises:
            ValidationError: every problem, located.
        """
        return validate_document(source, self.registry)

    def publish(
        self,
        source: str | os.PathLike[str] | Mapping[str, Any],
        *,
        author: str,
        message: str,
        parent_rev: int | None = _HEAD,
    ) -> PublishResult:
        """Validate and publish a snapshot document as the next rev.

        Args:
            source: a YAML/JSON file or a mapping (a ``flags:`` section is ignored; it
                is the registry).
            author: who publishes (mandatory).
            message: why (mandatory).
            parent_rev: the rev the document was based on (optimistic concurrency); the
                store's head at the time of the call when omitted.

        Returns:
            the new rev, its content hash and its parent. When the document equals the
            head's, nothing is written and ``published`` is False.

        Raises:
            ValidationError: the document is invalid (nothing is published).
            ConflictError: ``parent_rev`` is not the head any more.
            CanaryInProgressError: the head is a config canary (a ConflictError:
                finish or abort it first, :mod:`flagmw.client.canary`).
            OverrideError: missing author or message.
        """
        check_required_text("publish", "author", author)
        check_required_text("publish", "message", message)
        snapshot, warnings = self._validated(source)
        return self._publish(
            snapshot, author=author, message=message, parent_rev=parent_rev, warnings=warnings
        )

    def _validated(
        self, source: str | os.PathLike[str] | Mapping[str, Any]
    ) -> tuple[Snapshot, tuple[Problem, ...]]:
        """``source`` validated against the registry, with its warnings."""
        check_source("publish", source)
        data, locator = load_document(source)
        known = head_overlays(self.store, self.registry, data)  # validate what changed
        snapshot = validate_document(data, self.registry, locator=locator, known=known)
        warnings = list(snapshot.warnings)
        if isinstance(data, Mapping) and isinstance(data.get("flags"), Mapping):
            try:
                file_registry = FlagRegistry.from_dict(data, locator=locator)
            except ValidationError as exc:
                raise ValidationError(exc.problems, locator.source) from None
            if file_registry.fingerprint != self.registry.fingerprint:
                warnings.append(
                    Problem(
                        locator.source,
                        "flags",
                        "the flags: section differs from "
                        "the registry this client validates against",
                        "the snapshot was validated against the client's registry",
                        "registry_mismatch",
                        "warning",
                    )
                )
        return snapshot, tuple(warnings)

    def _publish(
        self,
        snapshot: Snapshot,
        *,
        author: str,
        message: str,
        parent_rev: Any,
        warnings: tuple[Problem, ...] = (),
        action: str = "publish",
        rollback_of: int | None = None,
    ) -> PublishResult:
        if parent_rev is not _HEAD and parent_rev is not None:
            check_int(action, "parent_rev", parent_rev)
        head = self.store.head()
        refuse_during_canary(head, "canary publish" if action == CANARY_ACTION else action)
        if parent_rev is _HEAD:
            parent_rev = head.rev if head else None
        elif parent_rev is not None and not 0 <= parent_rev <= MAX_REV:
            # no store holds such a rev: it cannot be the head
            raise ConflictError(parent_rev, head.rev if head else None)
        if (
            head is not None
            and parent_rev == head.rev
            and head.content_hash == snapshot.content_hash
            and head.registry_fingerprint == self.registry.fingerprint
        ):
            return PublishResult(head.rev, head.content_hash, head.parent_rev, False, warnings)
        info = self.store.publish(
            snapshot.document,
            self.registry.to_dict(),
            content_hash=snapshot.content_hash,
            registry_fingerprint=self.registry.fingerprint,
            parent_rev=parent_rev,
            author=author,
            message=message,
            at=self.clock(),
            action=action,
            rollback_of=rollback_of,
            **({"overlay_texts": snapshot.overlay_texts} if snapshot.overlay_texts else {}),
        )
        self.refresh()
        return PublishResult(info.rev, info.content_hash, info.parent_rev, True, warnings)

    def rollback(
        self, rev: int, *, author: str, message: str, parent_rev: int | None = _HEAD
    ) -> PublishResult:
        """Publish the content of an older rev as a new rev.

        Raises:
            NotFoundError: no such rev.
            ValidationError: the old content does not fit the current registry.
            ConflictError: someone published meanwhile.
            ValidationError: a wrongly typed argument.
        """
        self._check_rev("rollback", "rev", rev)
        check_required_text("rollback", "author", author)
        check_required_text("rollback", "message", message)
        if parent_rev is not _HEAD and parent_rev is not None:
            check_int("rollback", "parent_rev", parent_rev)
        record = self.store.get_snapshot(rev)
        snapshot = validate_document(
            record.document, self.registry, locator=Locator(f"{self.store.name} rev {rev}")
        )
        return self._publish(
            snapshot,
            author=author,
            message=message,
            parent_rev=parent_rev,
            action="rollback",
            rollback_of=rev,
        )

    def _check_rev(self, operation: str, name: str, rev: Any) -> None:
        """``rev`` is an int; one no store can hold is not found."""
        check_int(operation, name, rev)
        if not 0 <= rev <= MAX_REV:
            raise NotFoundError(f"no snapshot rev {rev} in {self.store.name}")

    # -- overrides -----------------------------------------------------------------------

    def kill(
        self,
        key: str,
        *,
        reason: str,
        actor: str,
        ttl: str | float | None = None,
        tenant: str | None = None,
        route: str | None = None,
        force: bool = False,
        environment: str | None = None,
    ) -> Override:
        """Turn a bool flag off in the emergency layer, for a TTL.

        Args:
            key: a bool flag.
            reason: why (mandatory, non-empty; shown in refusals and in the trace).
            actor: who (mandatory).
            ttl: how long, e.g. ``"4h"`` or seconds (default :attr:`default_ttl`, at
                most :attr:`max_ttl`).
            tenant / route: narrow the scope (global when both are None).
            force: also turn off a ``protected`` flag for tenants that require it
                (audited as ``kill.forced``).
            environment: only in this environment (default: every environment).

        Raises:
            UnknownFlagError: no such flag.
            OverrideError: missing reason or actor, a non-bool flag, a TTL above the
                maximum, both tenant and route, or a tenant-scoped kill of a protected
                flag the tenant requires, without ``force``.
            ValidationError: a wrongly typed or unstorable argument (see
                :mod:`flagmw.client.arguments`).
        """
        check_text("kill", "key", key)
        flag = self.registry[key]
        if flag.type is not FlagType.BOOL:
            raise OverrideError(
                f"a kill turns a bool flag off; {key} is {_article(flag.type)} {flag.type} flag "
                "(use an override: `flagmw override KEY VALUE`)"
            )
        return self._set(
            key,
            False,
            OverrideKind.KILL,
            reason=reason,
            actor=actor,
            ttl=ttl,
            tenant=tenant,
            route=route,
            force=force,
            environment=environment,
        )

    def override(
        self,
        key: str,
        value: Any,
        *,
        reason: str,
        actor: str,
        ttl: str | float | None = None,
        tenant: str | None = None,
        route: str | None = None,
        force: bool = False,
        environment: str | None = None,
    ) -> Override:
        """Force a flag to ``value`` in the emergency layer, for a TTL (see :meth:`kill`
        for the arguments).

        Raises:
            UnknownFlagError, OverrideError: as :meth:`kill`.
            ValidationError: ``value`` does not fit the flag's type, or a wrongly typed
                or unstorable argument.
        """
        check_text("override", "key", key)
        flag = self.registry[key]
        value = flag.coerce(value)
        check_value_text("override", "value", value)
        return self._set(
            key,
            value,
            OverrideKind.OVERRIDE,
            reason=reason,
            actor=actor,
            ttl=ttl,
            tenant=tenant,
            route=route,
            force=force,
            environment=environment,
        )

    def _ttl(self, operation: str, ttl: str | float | None) -> float:
        if ttl is None:
            return self.default_ttl
        check_ttl(operation, ttl)
        try:
            seconds = parse_duration(ttl)
        except ValueError as exc:
            raise OverrideError(str(exc)) from None
        if seconds > self.max_ttl:
            raise OverrideError(
                f"TTL {format_duration(seconds)} is above the maximum "
                f"{format_duration(self.max_ttl)}; renew it before it expires "
                "instead"
            )
        return seconds

    def _set(
        self,
        key: str,
        value: Any,
        kind: OverrideKind,
        *,
        reason: str,
        actor: str,
        ttl: str | float | None,
        tenant: str | None,
        route: str | None,
        force: bool,
        environment: str | None,
    ) -> Override:
        operation = kind.value
        check_required_text(operation, "reason", reason)
        check_required_text(operation, "actor", actor)
        check_text(operation, "tenant", tenant, optional=True)
        check_text(operation, "route", route, optional=True)
        check_text(operation, "environment", environment, optional=True)
        check_flag(operation, "force", force)
        if tenant is not None and route is not None:
            raise OverrideError(
                "give a tenant or a route, not both (the scope is one of global, tenant, route)"
            )
        for what, target in (("tenant", tenant), ("route", route)):
            if target is not None and not target.strip():
                raise OverrideError(
                    f"an empty {what} names no {what}: give one, or leave the option out "
                    "for a global override"
                )
        seconds = self._ttl(operation, ttl)
        unknown = unknown_target(self._compiled, tenant, route)
        if unknown is not None:
            log.warning("flagmw: %s", unknown)
        flag = self.registry[key]
        if flag.protected and value is False and not force and tenant is not None:
            tdoc = self._compiled.document["tenants"].get(tenant)
            if tdoc is not None and key in tdoc.get("requires", ()):
                raise OverrideError(
                    f"tenant {tenant} requires {key} (a protected flag); turning "
                    "it off for that tenant needs force=True (--force), which is "
                    "audited"
                )
        scope = (
            ScopeKind.TENANT
            if tenant is not None
            else ScopeKind.ROUTE
            if route is not None
            else ScopeKind.GLOBAL
        )
        now = self.clock()
        ov = Override(
            id="",
            key=key,
            value=value,
            kind=kind,
            scope=scope,
            target=tenant if tenant is not None else route,
            reason=reason.strip(),
            actor=actor.strip(),
            created_at=now,
            expires_at=now + seconds,
            force=force,
            environment=environment,
        )
        stored = self.store.add_override(ov)
        self.refresh()
        return stored

    def exempt_tenants(self, key: str) -> list[str]:
        """Tenants of the served snapshot that require ``key`` (a global kill without
        ``force`` does not reach them)."""
        check_text("exempt_tenants", "key", key)
        return sorted(
            t
            for t, doc in self._compiled.document["tenants"].items()
            if key in doc.get("requires", ())
        )

    def renew(
        self, override_id: str, *, actor: str, reason: str, ttl: str | float | None = None
    ) -> Override:
        """Extend an active override: it now expires ``ttl`` from now.

        Raises:
            NotFoundError: no such override.
            OverrideError: it already ended or expired, or the TTL is above the maximum.
            ValidationError: a wrongly typed or unstorable argument.
        """
        check_text("renew", "override_id", override_id)
        check_required_text("renew", "reason", reason)
        check_required_text("renew", "actor", actor)
        seconds = self._ttl("renew", ttl)
        now = self.clock()
        ov = self.store.get_override(override_id)
        if not ov.active_at(now):
            raise OverrideError(
                f"{override_id} is no longer active (ended or expired); set a new one instead"
            )
        out = self.store.renew_override(
            override_id, now + seconds, actor=actor.strip(), reason=reason.strip(), at=now
        )
        self.refresh()
        return out

    def end_override(self, override_id: str, *, actor: str, reason: str) -> Override:
        """End an override or kill early.

        Raises:
            NotFoundError: no such override.
            OverrideError: it already ended, or a missing reason or actor.
            ValidationError: a wrongly typed or unstorable argument.
        """
        check_text("end_override", "override_id", override_id)
        check_required_text("end_override", "reason", reason)
        check_required_text("end_override", "actor", actor)
        ov = self.store.get_override(override_id)
        if ov.ended_at is not None:
            raise OverrideError(f"{override_id} already ended at {ov.ended_at} by {ov.ended_by}")
        out = self.store.end_override(
            override_id, actor=actor.strip(), reason=reason.strip(), at=self.clock()
        )
        self.refresh()
        return out

    unkill = end_override

    def overrides(
        self, *, include_ended: bool = False, include_expired: bool = False
    ) -> list[Override]:
        """Overrides in the store, newest first (by default only those in force now).

        Raises:
            ValidationError: a flag that is not a bool.
        """
        check_flag("overrides", "include_ended", include_ended)
        check_flag("overrides", "include_expired", include_expired)
        now = self.clock()
        out = self.store.list_overrides(include_ended=include_ended)
        if not include_expired:
            out = [o for o in out if o.expires_at > now or (include_ended and o.ended_at)]
        return out

    def audit(self, limit: int = 100, *, action: str | None = None) -> list[AuditEntry]:
        """The most recent audit entries, newest first (``limit`` as :meth:`history`;
        ``action`` an action or family such as ``"kill"``).

        Raises:
            ValidationError: a wrongly typed or unstorable argument.
        """
        check_text("audit", "action", action, optional=True)
        return self.store.audit(check_limit("audit", limit), action=action)


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"
