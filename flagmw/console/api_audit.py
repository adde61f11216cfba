"""``/api/v1/audit``: the audit log, filtered and paged; ``/api/v1/tokens``: API tokens
(admin)."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from flagmw.console.auth import Principal, admin, reader
from flagmw.console.schemas import EndBody, TokenBody
from flagmw.console.secrets import Masker
from flagmw.console.state import Console
from flagmw.console.views import audit_page
from flagmw.stores.tokens import check_token_name, hash_secret, new_secret

__all__ = ["router"]

router = APIRouter(prefix="/api/v1")
Reader = Annotated[Principal, Depends(reader)]
Admin = Annotated[Principal, Depends(admin)]
_Text = Annotated[str | None, Query(max_length=256)]


def _console(request: Request) -> Console:
    console: Console = request.app.state.console
    return console


@router.get("/audit", tags=["audit"], operation_id="auditLog")
def audit(
    request: Request,
    who: Reader,
    actor: _Text = None,
    key: _Text = None,
    kind: Annotated[
        str | None, Query(max_length=64, description="An action or family: kill, publish…")
    ] = None,
    since: Annotated[float | None, Query(description="Seconds since the epoch.")] = None,
    until: Annotated[float | None, Query(description="Seconds since the epoch.")] = None,
    before: Annotated[int | None, Query(ge=1, description="The next-page cursor.")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    """Audit entries, newest first, filtered by actor, flag key, kind and time range;
    ``next_before`` is the cursor of the next page (null at the end)."""
    console = _console(request)
    mask = Masker(console.client, show=who.sees_secrets)
    entries, nxt = audit_page(
        console.store,
        actor=actor,
        key=key,
        kind=kind,
        since=since,
        until=until,
        before=before,
        limit=limit,
    )
    return {"entries": [mask.audit(e.to_dict()) for e in entries], "next_before": nxt}


@router.get("/tokens", tags=["tokens"], operation_id="listTokens")
def list_tokens(request: Request, who: Admin) -> dict[str, Any]:
    """Every API token (never a secret), revoked ones included."""
    return {"tokens": [t.to_dict() for t in _console(request).tokens.list_tokens()]}


@router.post("/tokens", status_code=201, tags=["tokens"], operation_id="createToken")
def create_token(request: Request, body: TokenBody, who: Admin) -> dict[str, Any]:
    """A new token; its ``secret`` is in this reply only (the store keeps its SHA-256)."""
    check_token_name(body.name, body.role)
    secret = new_secret()
    digest = hash_secret(secret)
    assert digest is not None
    token = _console(request).tokens.add_token(
        digest, body.name, body.role, actor=who.name, at=time.time()
    )
    return {**token.to_dict(), "secret": secret}


@router.post("/tokens/{token_id}/revoke", tags=["tokens"], operation_id="revokeToken")
def revoke_token(request: Request, token_id: str, body: EndBody, who: Admin) -> dict[str, Any]:
    """Revoke a token: it, and every dashboard session opened with it, stop working at
    once."""
    token = _console(request).tokens.revoke_token(
        token_id, actor=who.name, reason=body.reason.strip(), at=time.time()
    )
    return token.to_dict()
