"""``/api/v1/tenants/{tenant}/values/{key}``: the ``tenant-editor`` role sets or clears
one value in one tenant's overlay, for flags the registry marks ``tenant_editable``.

Each edit reads only that tenant's overlay, changes ``values.<key>``, and publishes the
overlay alone (:meth:`FlagClient.publish_overlays`: validated, a new rev on top of the
head that writes one overlay row, so an edit costs the same with 10 or 100,000 tenants),
authored by the editor (so the snapshot history and the audit log name them). When the
head was published against another registry, the edit falls back to a whole-document
publish, so every overlay is checked against the console's registry. A flag tagged
``billing`` or ``compliance`` still needs a second admin (:mod:`flagmw.console.approvals`).
"""

from __future__ import annotations

import copy
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import Field

from flagmw.console.api_approvals import notify
from flagmw.console.approvals import guarded_keys
from flagmw.console.auth import Principal, tenant_editor
from flagmw.console.problems import ApiProblem
from flagmw.console.schemas import _Body
from flagmw.console.state import Console

__all__ = ["CLEAR", "TenantValueBody", "edit_tenant_value", "router"]

router = APIRouter(prefix="/api/v1/tenants", tags=["tenants"])
Editor = Annotated[Principal, Depends(tenant_editor)]


class TenantValueBody(_Body):
    """A tenant's value of one flag (``value`` of the flag's type), and why."""

    value: Any
    message: str = Field(min_length=1, max_length=1000)


class ClearBody(_Body):
    """Why a tenant's value is removed (the tenant falls back to the global value)."""

    message: str = Field(min_length=1, max_length=1000)


#: the value that removes a tenant's own value
CLEAR: Any = object()


def edit_tenant_value(
    request: Request,
    console: Console,
    who: Principal,
    tenant: str,
    key: str,
    value: Any,
    message: str,
) -> tuple[int, dict[str, Any]]:
    """Publish the head with ``tenants.<tenant>.values.<key>`` set to ``value`` (removed
    for :data:`CLEAR`); ``(status, body)``: 201 published, 202 waiting for approval.

    Raises:
        ApiProblem: 404 unknown tenant, 403 a flag that is not ``tenant_editable``.
        FlagmwError: unknown flag (404), a value of the wrong type (422, located), a
            publish in between (409).
    """
    with console.lock:
        client = console.client
        flag = client.registry[key]
        if not flag.tenant_editable:
            raise ApiProblem(
                403,
                f"{key} is not tenant_editable in the registry: a tenant editor may only "
                "change flags marked tenant_editable: true",
            )
        head = client.store.head()
        if head is None:
            raise ApiProblem(404, "nothing published yet: no tenant overlay to edit")
        if head.registry_fingerprint != client.registry.fingerprint:
            # the head was checked against another registry: publish the whole document,
            # so every overlay is validated against this one
            return _edit_document(request, console, who, head.rev, tenant, key, value, message)
        current = client.store.get_overlays(head.rev, [("tenants", tenant)])
        old = current.get(("tenants", tenant))
        if old is None:
            raise ApiProblem(404, _no_tenant(tenant, head.rev))
        overlay = copy.deepcopy(dict(old))
        _change(overlay, tenant, key, value)
        msg = f"{message} (tenant {tenant}: {key})"
        patch = {"tenants": {tenant: overlay}}
        keys = guarded_keys(client.registry, {"tenants": {tenant: old}}, patch)
        if keys:
            client.validate_overlays(patch)  # located errors now, not at the approval
            return _wait_for_approval(request, console, who, msg, patch, head.rev, keys, True)
        result = client.publish_overlays(patch, author=who.name, message=msg, parent_rev=head.rev)
    return 201, result.to_dict()


def _wait_for_approval(
    request: Request,
    console: Console,
    who: Principal,
    message: str,
    document: dict[str, Any],
    rev: int,
    keys: list[str],
    overlays: bool,
) -> tuple[int, dict[str, Any]]:
    """Queue the edit for a second admin (it changes a billing/compliance flag): 202."""
    p = console.approvals.add(
        who.name, message, document, rev, keys, console.clock(), overlays=overlays
    )
    notify(request, "approval.requested", p.to_dict())
    return 202, {"pending": p.to_dict()}


def _no_tenant(tenant: str, rev: int) -> str:
    return f"no tenant {tenant!r} in rev {rev}; tenant overlays are created by a publish (admin)"


def _change(overlay: dict[str, Any], tenant: str, key: str, value: Any) -> None:
    values = overlay["values"] = dict(overlay.get("values") or {})
    if value is CLEAR:
        if key not in values:
            raise ApiProblem(404, f"tenant {tenant} has no value of its own for {key}")
        del values[key]
    else:
        values[key] = value


def _edit_document(
    request: Request,
    console: Console,
    who: Principal,
    rev: int,
    tenant: str,
    key: str,
    value: Any,
    message: str,
) -> tuple[int, dict[str, Any]]:
    """The edit as a whole-document publish (the head fits another registry)."""
    client = console.client
    before = client.store.get_snapshot(rev).document
    document = copy.deepcopy(dict(before))
    tenants = document.setdefault("tenants", {})
    if tenant not in tenants:
        raise ApiProblem(404, _no_tenant(tenant, rev))
    _change(tenants[tenant], tenant, key, value)
    msg = f"{message} (tenant {tenant}: {key})"
    snapshot = client.validate(document)
    keys = guarded_keys(client.registry, before, snapshot.document)
    if keys:
        document = dict(snapshot.document)
        return _wait_for_approval(request, console, who, msg, document, rev, keys, False)
    result = client.publish(document, author=who.name, message=msg, parent_rev=rev)
    return 201, result.to_dict()


def _console(request: Request) -> Console:
    console: Console = request.app.state.console
    return console


@router.put(
    "/{tenant}/values/{key}",
    status_code=201,
    operation_id="setTenantValue",
    responses={202: {"description": "Waiting for a second admin"}},
)
def set_value(
    request: Request, tenant: str, key: str, body: TenantValueBody, who: Editor
) -> JSONResponse:
    """Set the tenant's value of a ``tenant_editable`` flag: a new rev touching only
    that tenant, authored by the caller."""
    status, out = edit_tenant_value(
        request, _console(request), who, tenant, key, body.value, body.message
    )
    return JSONResponse(out, status_code=status)


@router.post(
    "/{tenant}/values/{key}/clear",
    operation_id="clearTenantValue",
    status_code=201,
    responses={202: {"description": "Waiting for a second admin"}},
)
def clear_value(
    request: Request, tenant: str, key: str, body: ClearBody, who: Editor
) -> JSONResponse:
    """Remove the tenant's own value of a ``tenant_editable`` flag (it falls back to the
    global value)."""
    status, out = edit_tenant_value(
        request, _console(request), who, tenant, key, CLEAR, body.message
    )
    return JSONResponse(out, status_code=status)
