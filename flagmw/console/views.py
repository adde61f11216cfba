"""What the API and the dashboard show, built once from the client and the store: flag
rows with their value and winning layer, overrides with time left, filtered audit pages,
diffs. JSON primitives only; no HTTP here."""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Mapping
from typing import Any

from flagmw.client.client import FlagClient
from flagmw.console.secrets import MASK
from flagmw.core.context import EvaluationContext
from flagmw.core.overrides import Override
from flagmw.core.snapshot import Change
from flagmw.errors import Problem, ValidationError
from flagmw.stores.base import AuditEntry, Store

__all__ = [
    "MASK",
    "audit_page",
    "change_dict",
    "context_from",
    "flag_rows",
    "override_row",
    "served_document",
]

#: How many audit entries a filtered page scans at most (newest first).
AUDIT_SCAN = 5000


def context_from(
    *,
    tenant: str | None = None,
    user: str | None = None,
    route: str | None = None,
    plan: str | None = None,
    thread: str | None = None,
    environment: str | None = None,
    attributes: str | None = None,
) -> EvaluationContext:
    """An evaluation context from query parameters (empty strings are absent;
    ``attributes`` is a JSON object).

    Raises:
        ValidationError: ``attributes`` is not a JSON object, or a bad id.
    """

    def opt(v: str | None) -> str | None:
        return v if v else None

    attrs: Mapping[str, Any] = {}
    if attributes:
        try:
            attrs = json.loads(attributes)
        except ValueError:
            attrs = None  # type: ignore[assignment]
        if not isinstance(attrs, dict):
            raise ValidationError(
                [
                    Problem(
                        "query",
                        "attributes",
                        "attributes must be a JSON object",
                        'e.g. attributes={"region":"eu"}',
                        "bad_request",
                    )
                ]
            )
    return EvaluationContext(
        tenant_id=opt(tenant),
        user_id=opt(user),
        route=opt(route),
        plan=opt(plan),
        thread_id=opt(thread),
        environment=opt(environment),
        attributes=attrs,
    )


def flag_rows(
    client: FlagClient, ctx: EvaluationContext, *, show_secrets: bool, today: _dt.date
) -> list[dict[str, Any]]:
    """Every flag of the registry with its definition and, for ``ctx``, its value and
    the layer that won (one :meth:`FlagClient.resolve`)."""
    rc = client.resolve(ctx)
    rows = []
    for flag in client.registry:
        prov = rc.provenance[flag.key]
        value = rc[flag.key]
        masked = flag.sensitive and not show_secrets
        rows.append(
            {
                "key": flag.key,
                "type": flag.type.value,
                "default": MASK if masked else flag.default,
                "description": flag.description,
                "owner": flag.owner,
                "tags": list(flag.tags),
                "binding": flag.binding.value,
                "expires": flag.expires.isoformat() if flag.expires else None,
                "expired": flag.expires is not None and flag.expires < today,
                "protected": flag.protected,
                "run_kill": flag.run_kill,
                "sensitive": flag.sensitive,
                "value": MASK if masked else value,
                "source": prov.layer.value,
                "provenance": prov.to_dict(),
            }
        )
    return rows


def served_document(client: FlagClient) -> Mapping[str, Any]:
    """The normalised snapshot document the client serves (its tenants and routes name
    the overlays the dashboard offers). The client's compiled snapshot is the one the
    admin operations check scopes against (``unknown_target``), so the console offers
    exactly what a kill can reach."""
    document: Mapping[str, Any] = client._compiled.document
    return document


def override_row(ov: Override, now: float) -> dict[str, Any]:
    """An override with its status (``active``, ``expired``, ``ended``) and the seconds
    it has left."""
    active = ov.active_at(now)
    status = "active" if active else ("ended" if ov.ended_at is not None else "expired")
    return {
        **ov.to_dict(),
        "scope_label": ov.scope_label,
        "status": status,
        "seconds_left": max(0.0, ov.expires_at - now) if active else 0.0,
    }


def change_dict(change: Change) -> dict[str, Any]:
    """One diff line as JSON primitives."""
    return {
        "path": change.path,
        "kind": change.kind,
        "before": change.before,
        "after": change.after,
    }


def audit_page(
    store: Store,
    *,
    actor: str | None = None,
    key: str | None = None,
    kind: str | None = None,
    since: float | None = None,
    until: float | None = None,
    before: int | None = None,
    limit: int = 50,
) -> tuple[list[AuditEntry], int | None]:
    """A page of the audit log, newest first, and the ``before`` cursor of the next page
    (None at the end). Filters: ``actor`` (exact), ``key`` (a flag key in the target),
    ``kind`` (an action or family: ``kill``, ``publish``, ``token``), ``since`` /
    ``until`` (seconds since the epoch), ``before`` (entries older than this seq).
    Scans at most :data:`AUDIT_SCAN` entries."""
    entries = store.audit(AUDIT_SCAN, action=kind or None)
    out: list[AuditEntry] = []
    more = False
    for e in entries:
        if before is not None and e.seq >= before:
            continue
        if actor and e.actor != actor:
            continue
        if key and key not in e.target.split():
            continue
        if since is not None and e.at < since:
            continue
        if until is not None and e.at > until:
            continue
        if len(out) == limit:
            more = True
            break
        out.append(e)
    return out, (out[-1].seq if more and out else None)
