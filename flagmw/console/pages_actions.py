"""The dashboard's forms: kill, renew, end, rollback. Plain form posts (the CSRF secret
in the ``csrf`` field), answered with a redirect back and a message; each goes through
the same functions as the API (:mod:`flagmw.console.api_overrides`) and the client."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

import anyio
from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError as PydanticValidationError

from flagmw.cli.errors import one_line, summary_line
from flagmw.cli.output import parse_scalar
from flagmw.console.api_approvals import approve, reject
from flagmw.console.api_overrides import apply_override, end_override, renew_override
from flagmw.console.api_tenants import edit_tenant_value
from flagmw.console.auth import Principal, authenticate, check_csrf
from flagmw.console.problems import ApiProblem
from flagmw.console.schemas import EndBody, OverrideBody, RenewBody
from flagmw.console.state import Console
from flagmw.errors import FlagmwError, ValidationError

__all__ = ["router"]

router = APIRouter(include_in_schema=False)
_F = Annotated[str, Form(max_length=1000)]


def _back(path: str, **params: str) -> RedirectResponse:
    sep = "&" if "?" in path else "?"
    return RedirectResponse(f"{path}{sep}{urlencode(params)}", status_code=303)


def _message(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return summary_line(exc.problems, exc.source)
    if isinstance(exc, PydanticValidationError):
        first = exc.errors()[0]
        return f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"
    if isinstance(exc, ApiProblem):
        return exc.detail
    return one_line(str(exc))


async def _who(request: Request, permission: str) -> Principal | Response:
    who = await authenticate(request)
    if who is None:
        return RedirectResponse("/login", status_code=303)
    await check_csrf(request, who)  # ApiProblem 403 (problem+json) on a bad secret
    if not who.can(permission):
        raise ApiProblem(403, f"the {who.role} role may not do this")
    return who


def _console(request: Request) -> Console:
    console: Console = request.app.state.console
    return console


@router.post("/ui/kill")
async def kill(
    request: Request,
    key: _F,
    reason: Annotated[str, Form(max_length=1000)] = "",
    reason_code: _F = "",
    ttl: _F = "",
    ttl_custom: _F = "",
    scope: _F = "global",
    tenant: _F = "",
    route: _F = "",
    force: _F = "",
    back: _F = "/ui/kills",
) -> Response:
    who = await _who(request, "operate")
    if isinstance(who, Response):
        return who
    back = back if back.startswith("/ui/") else "/ui/kills"
    try:
        body = OverrideBody(
            key=key,
            kind="kill",
            reason=reason.strip() or " ",
            reason_code=reason_code or None,
            ttl=(ttl_custom.strip() if ttl == "custom" else ttl) or None,
            tenant=tenant.strip() if scope == "tenant" else None,
            route=route.strip() if scope == "route" else None,
            force=force == "on",
        )
        if not reason.strip():
            raise ApiProblem(422, "a kill needs a reason (pick a code and say what happened)")
        row = await anyio.to_thread.run_sync(apply_override, _console(request), who, body)
    except (FlagmwError, ApiProblem, PydanticValidationError) as exc:
        return _back(back, error=_message(exc))
    return _back("/ui/overrides", ok=f"killed {key} ({row['scope_label']}) as {row['id']}")


@router.post("/ui/overrides/{override_id}/renew")
async def renew(request: Request, override_id: str, reason: _F = "", ttl: _F = "1h") -> Response:
    who = await _who(request, "operate")
    if isinstance(who, Response):
        return who
    try:
        body = RenewBody(reason=reason.strip() or "renewed from the dashboard", ttl=ttl or None)
        await anyio.to_thread.run_sync(renew_override, _console(request), who, override_id, body)
    except (FlagmwError, ApiProblem, PydanticValidationError) as exc:
        return _back("/ui/overrides", error=_message(exc))
    return _back("/ui/overrides", ok=f"renewed {override_id} for {ttl}")


@router.post("/ui/overrides/{override_id}/end")
async def end(request: Request, override_id: str, reason: _F = "") -> Response:
    who = await _who(request, "operate")
    if isinstance(who, Response):
        return who
    try:
        if not reason.strip():
            raise ApiProblem(422, "ending an override needs a reason")
        body = EndBody(reason=reason.strip())
        await anyio.to_thread.run_sync(end_override, _console(request), who, override_id, body)
    except (FlagmwError, ApiProblem, PydanticValidationError) as exc:
        return _back("/ui/overrides", error=_message(exc))
    return _back("/ui/overrides", ok=f"ended {override_id}")


@router.post("/ui/rollback")
async def rollback(request: Request, rev: _F, message: _F = "") -> Response:
    who = await _who(request, "admin")
    if isinstance(who, Response):
        return who
    console = _console(request)

    def work() -> int:
        if not rev.isdigit():
            raise ApiProblem(422, f"rev {rev!r} is not a number")
        with console.lock:
            return console.client.rollback(
                int(rev), author=who.name, message=message.strip() or f"rollback to rev {rev}"
            ).rev

    try:
        new = await anyio.to_thread.run_sync(work)
    except (FlagmwError, ApiProblem) as exc:
        return _back("/ui/history", error=_message(exc))
    return _back("/ui/history", ok=f"rolled back to rev {rev}: now rev {new}")


@router.post("/ui/approvals/{pending_id}/approve")
async def approve_form(request: Request, pending_id: str) -> Response:
    who = await _who(request, "admin")
    if isinstance(who, Response):
        return who
    console = _console(request)
    try:
        out = await anyio.to_thread.run_sync(approve, request, console, who, pending_id)
    except (FlagmwError, ApiProblem) as exc:
        return _back("/ui/history", error=_message(exc))
    return _back("/ui/history", ok=f"approved {pending_id}: published rev {out['rev']}")


@router.post("/ui/approvals/{pending_id}/reject")
async def reject_form(request: Request, pending_id: str, reason: _F = "") -> Response:
    who = await _who(request, "admin")
    if isinstance(who, Response):
        return who
    try:
        if not reason.strip():
            raise ApiProblem(422, "rejecting a pending publish needs a reason")
        reject(request, _console(request), who, pending_id, reason.strip())
    except ApiProblem as exc:
        return _back("/ui/history", error=_message(exc))
    return _back("/ui/history", ok=f"rejected {pending_id}")


@router.post("/ui/tenants/{tenant}/values/{key}")
async def tenant_value_form(
    request: Request, tenant: str, key: str, value: _F = "", message: _F = ""
) -> Response:
    who = await _who(request, "tenant")
    if isinstance(who, Response):
        return who
    back = f"/ui/tenants?{urlencode({'tenant': tenant})}"
    console = _console(request)

    def work() -> tuple[int, dict[str, Any]]:
        if not message.strip():
            raise ApiProblem(422, "say why the tenant's value changes")
        parsed: Any = parse_scalar(value)
        flag = console.client.registry[key]
        if flag.type.value in ("string", "enum") and not isinstance(parsed, str):
            parsed = value  # as the CLI reads VALUE for string and enum flags
        return edit_tenant_value(request, console, who, tenant, key, parsed, message.strip())

    try:
        status, out = await anyio.to_thread.run_sync(work)
    except (FlagmwError, ApiProblem) as exc:
        return _back(back, error=_message(exc))
    if status == 202:
        return _back(
            back, ok=f"{key} for {tenant} waits for a second admin ({out['pending']['id']})"
        )
    return _back(back, ok=f"set {key} for {tenant}: published rev {out['rev']}")
