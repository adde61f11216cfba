"""``/api/v1/overrides``: kills and overrides in force with the time they have left;
create (reason and TTL rules, protected flags and ``force`` as in the CLI), renew, end
early. The actor is always the caller's token name."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from flagmw.console.auth import Principal, operator, reader
from flagmw.console.problems import ApiProblem
from flagmw.console.schemas import EndBody, OverrideBody, RenewBody
from flagmw.console.secrets import Masker
from flagmw.console.state import Console
from flagmw.console.views import override_row

__all__ = ["REASON_CODES", "apply_override", "end_override", "renew_override", "router"]

router = APIRouter(prefix="/api/v1/overrides", tags=["overrides"])
Reader = Annotated[Principal, Depends(reader)]
Operator = Annotated[Principal, Depends(operator)]

#: The reason codes a kill may carry (the dashboard's list), prefixed to the reason.
REASON_CODES = ("incident", "abuse", "cost", "vendor-outage", "compliance", "security", "other")


def _console(request: Request) -> Console:
    console: Console = request.app.state.console
    return console


def apply_override(console: Console, who: Principal, body: OverrideBody) -> dict[str, Any]:
    """Set a kill or an override through the client, as ``flagmw kill`` / ``flagmw
    override`` do: an unknown tenant or route is refused unless ``force``; the reply
    names the tenants a global kill of a protected flag does not reach.

    Raises:
        ApiProblem: an unknown reason code, or an unknown scope without ``force``.
        FlagmwError: whatever the client refuses (unknown flag, bad TTL, empty reason…).
    """
    reason = body.reason.strip()
    if body.reason_code:
        if body.reason_code not in REASON_CODES:
            raise ApiProblem(
                422, f"reason code {body.reason_code!r}: use one of {', '.join(REASON_CODES)}"
            )
        reason = f"[{body.reason_code}] {reason}" if reason else ""
    common: dict[str, Any] = {
        "reason": reason,
        "actor": who.name,
        "ttl": body.ttl or None,
        "tenant": body.tenant or None,
        "route": body.route or None,
        "force": body.force,
        "environment": body.environment or None,
    }
    with console.lock:
        client = console.client
        tenant, route = common["tenant"], common["route"]
        unknown = None if tenant and route else client.unknown_target(tenant=tenant, route=route)
        if unknown is not None and not body.force:
            raise ApiProblem(422, f"{unknown}; pass --force (force: true) if that is what you mean")
        if body.kind == "kill":
            ov = client.kill(body.key, **common)
        else:
            ov = client.override(body.key, body.value, **common)
        flag = client.registry[body.key]
        exempt: list[str] = []
        if flag.protected and ov.value is False and ov.target is None and not ov.force:
            exempt = client.exempt_tenants(body.key)
    return {**override_row(ov, console.clock()), "exempt_tenants": exempt}


def renew_override(
    console: Console, who: Principal, override_id: str, body: RenewBody
) -> dict[str, Any]:
    """Renew through the client (``flagmw renew``)."""
    with console.lock:
        ov = console.client.renew(
            override_id, actor=who.name, reason=body.reason, ttl=body.ttl or None
        )
    return override_row(ov, console.clock())


def end_override(
    console: Console, who: Principal, override_id: str, body: EndBody
) -> dict[str, Any]:
    """End early through the client (``flagmw unkill``)."""
    with console.lock:
        ov = console.client.end_override(override_id, actor=who.name, reason=body.reason)
    return override_row(ov, console.clock())


@router.get("", operation_id="listOverrides")
def list_overrides(
    request: Request,
    who: Reader,
    include_ended: Annotated[
        bool, Query(alias="all", description="Also ended and expired ones.")
    ] = False,
) -> dict[str, Any]:
    """Kills and overrides in force (newest first) with ``seconds_left``; with
    ``all=true`` also ended and expired ones."""
    console = _console(request)
    now = console.clock()
    every = console.store.list_overrides(include_ended=include_ended)
    shown = every if include_ended else [o for o in every if o.active_at(now)]
    mask = Masker(console.client, show=who.sees_secrets)
    return {"at": now, "overrides": [mask.override(override_row(o, now)) for o in shown]}


@router.post("", status_code=201, operation_id="createOverride")
def create(request: Request, body: OverrideBody, who: Operator) -> dict[str, Any]:
    """Set a kill or an override (reason mandatory; TTL default 4h, at most the
    maximum). A tenant kill of a protected flag the tenant requires needs ``force``
    (audited as ``kill.forced``)."""
    return apply_override(_console(request), who, body)


@router.post("/{override_id}/renew", operation_id="renewOverride")
def renew(request: Request, override_id: str, body: RenewBody, who: Operator) -> dict[str, Any]:
    """Extend an active override: it now expires ``ttl`` from now."""
    return renew_override(_console(request), who, override_id, body)


@router.post("/{override_id}/end", operation_id="endOverride")
def end(request: Request, override_id: str, body: EndBody, who: Operator) -> dict[str, Any]:
    """End a kill or override early, with a reason."""
    return end_override(_console(request), who, override_id, body)
