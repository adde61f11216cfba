"""``/api/v1/snapshots``: history, one rev, the diff of two revs (optionally only one
tenant's part), publish with the expected parent rev, rollback."""

from __future__ import annotations

from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from flagmw.console.api_approvals import notify
from flagmw.console.approvals import guarded_keys
from flagmw.console.auth import Principal, admin, reader
from flagmw.console.problems import ApiProblem
from flagmw.console.schemas import PublishBody, RollbackBody
from flagmw.console.secrets import Masker
from flagmw.console.state import Console
from flagmw.console.views import change_dict
from flagmw.core.snapshot import validate_document
from flagmw.core.source import load_text
from flagmw.errors import Problem

__all__ = ["router", "tenant_changes"]

router = APIRouter(prefix="/api/v1/snapshots", tags=["snapshots"])
Reader = Annotated[Principal, Depends(reader)]
Admin = Annotated[Principal, Depends(admin)]


def _console(request: Request) -> Console:
    console: Console = request.app.state.console
    return console


@router.get("", operation_id="listSnapshots")
def history(
    request: Request, who: Reader, limit: Annotated[int, Query(ge=1, le=1000)] = 50
) -> dict[str, Any]:
    """The most recent revs, newest first: rev, parent, author, message, time, action."""
    client = _console(request).client
    return {"snapshots": [i.to_dict() for i in client.history(limit)]}


@router.get("/{rev}", operation_id="getSnapshot")
def get_snapshot(request: Request, rev: int, who: Reader) -> dict[str, Any]:
    """One rev: its metadata and normalised document."""
    client = _console(request).client
    record = client.get_snapshot(rev)
    mask = Masker(client, show=who.sees_secrets)
    return {"info": record.info.to_dict(), "document": mask.document(dict(record.document))}


def tenant_changes(changes: list[dict[str, Any]], tenant: str) -> list[dict[str, Any]]:
    """The changes of a diff that touch ``tenant``'s overlay."""
    prefix = f"tenants.{tenant}"
    return [c for c in changes if c["path"] == prefix or c["path"].startswith(prefix + ".")]


@router.get("/{rev_a}/diff/{rev_b}", operation_id="diffSnapshots")
def diff(
    request: Request,
    rev_a: int,
    rev_b: int,
    who: Reader,
    tenant: Annotated[str | None, Query(max_length=256)] = None,
) -> dict[str, Any]:
    """The changes from ``rev_a`` to ``rev_b`` (``flagmw diff``); with ``tenant``, only
    those to that tenant's overlay."""
    console = _console(request)
    changes = [change_dict(c) for c in console.diff(rev_a, rev_b)]
    changes = Masker(console.client, show=who.sees_secrets).changes(changes)
    if tenant:
        changes = tenant_changes(changes, tenant)
    return {"from": rev_a, "to": rev_b, "tenant": tenant, "changes": changes}


@router.post(
    "",
    status_code=201,
    operation_id="publishSnapshot",
    responses={202: {"description": "Waiting for a second admin (billing/compliance)"}},
)
async def publish(request: Request, body: PublishBody, who: Admin) -> Any:
    """Validate and publish a snapshot document on top of ``parent_rev``. Invalid: 422
    with every problem located (``location``, ``path``, ``message``, ``code``), nothing
    published. Stale ``parent_rev``: 409. The author is the token's name. A change to a
    flag tagged ``billing`` or ``compliance`` is not published: 202 with the pending
    publish a second admin approves (``/api/v1/approvals``)."""
    if (body.document is None) == (body.yaml is None):
        raise ApiProblem(
            422,
            "give the snapshot as `document` (JSON) or as `yaml` (text), exactly one",
            [Problem("body", "document", "give document or yaml", code="bad_request")],
        )
    console = _console(request)

    def work() -> Any:
        if body.yaml is not None:
            data, locator = load_text(body.yaml, "<request>.yaml", fmt="yaml")
            # the same validation publish runs, first with the text's line numbers
            snapshot = validate_document(data, console.client.registry, locator=locator)
        else:
            data = body.document
            snapshot = console.client.validate(data or {})
        client = console.client
        head = client.store.head()
        before = client.store.get_snapshot(head.rev).document if head else None
        keys = guarded_keys(client.registry, before, snapshot.document)
        if keys:
            p = console.approvals.add(
                who.name,
                body.message,
                dict(snapshot.document),
                body.parent_rev,
                keys,
                console.clock(),
            )
            notify(request, "approval.requested", p.to_dict())
            return JSONResponse(
                {
                    "pending": p.to_dict(),
                    "detail": f"{', '.join(keys)} (billing/compliance) changed: a second "
                    f"admin must approve {p.id} (POST /api/v1/approvals/{p.id}/approve)",
                },
                status_code=202,
            )
        with console.lock:
            result = console.client.publish(
                data, author=who.name, message=body.message, parent_rev=body.parent_rev
            )
        return result.to_dict()

    return await anyio.to_thread.run_sync(work)


@router.post("/{rev}/rollback", status_code=201, operation_id="rollbackSnapshot")
def rollback(request: Request, rev: int, body: RollbackBody, who: Admin) -> dict[str, Any]:
    """Publish the content of ``rev`` as a new rev (``flagmw rollback``)."""
    console = _console(request)
    with console.lock:
        kw: dict[str, Any] = {} if body.parent_rev is None else {"parent_rev": body.parent_rev}
        result = console.client.rollback(rev, author=who.name, message=body.message, **kw)
    return result.to_dict()
