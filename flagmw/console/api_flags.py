"""``/api/v1/flags``, ``/api/v1/flags/{key}/explain`` and ``/api/v1/admin/feature-flags``:
every flag with its value and the layer that won for a context, and why."""

from __future__ import annotations

import datetime as _dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from flagmw.console.auth import Principal, reader
from flagmw.console.params import Context
from flagmw.console.state import Console
from flagmw.console.views import MASK, flag_rows

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["flags"])
Reader = Annotated[Principal, Depends(reader)]


def _console(request: Request) -> Console:
    console: Console = request.app.state.console
    return console


@router.get("/flags", operation_id="listFlags")
def list_flags(request: Request, ctx: Context, who: Reader) -> dict[str, Any]:
    """Every flag: type, default, binding, owner, tags, expiry, protected — and its value
    and winning layer (``source``, with the full ``provenance``) for the context given as
    query parameters."""
    console = _console(request)
    client = console.client
    today = _dt.datetime.fromtimestamp(console.clock(), _dt.UTC).date()
    return {
        "snapshot_rev": client.snapshot_rev,
        "environment": client.environment,
        "context": ctx.to_dict(),
        "flags": flag_rows(client, ctx, show_secrets=who.sees_secrets, today=today),
    }


@router.get("/admin/feature-flags", operation_id="featureFlags")
def feature_flags(request: Request, ctx: Context, who: Reader) -> dict[str, Any]:
    """The flag list services poll: ``{"flags": [{"name", "enabled", "source",
    "value"}]}``. ``enabled`` is the value of a bool flag (null for other types, whose
    ``value`` says what they are); ``source`` is the layer that won (``default``,
    ``environment``, ``snapshot``, ``tenant``, ``route``, ``experiment``, ``override``)."""
    client = _console(request).client
    rc = client.resolve(ctx)
    out = []
    for flag in client.registry:
        value = rc[flag.key]
        if flag.sensitive and not who.sees_secrets:
            value = MASK
        out.append(
            {
                "name": flag.key,
                "enabled": value if isinstance(value, bool) else None,
                "source": rc.provenance[flag.key].layer.value,
                "value": value,
            }
        )
    return {"flags": out}


@router.get("/flags/{key}/explain", operation_id="explainFlag")
def explain_flag(request: Request, key: str, ctx: Context, who: Reader) -> dict[str, Any]:
    """Why ``key`` has its value for the context: the winner (layer, rule, rev,
    override) and every candidate it shadowed (``flagmw explain``).

    404 (problem+json) for an unknown key, with suggestions."""
    client = _console(request).client
    doc = client.explain(key, ctx).to_dict()
    if client.registry[key].sensitive and not who.sees_secrets:
        doc["value"] = MASK
        for c in doc["candidates"]:
            c["value"] = MASK
    return doc
