"""``/api/v1/approvals``: publishes of ``billing``/``compliance`` flags waiting for a
second admin (:mod:`flagmw.console.approvals`); approve or reject one."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from flagmw.console.auth import Principal, admin, reader
from flagmw.console.problems import ApiProblem
from flagmw.console.schemas import EndBody
from flagmw.console.state import Console

__all__ = ["approve", "notify", "reject", "router"]

router = APIRouter(prefix="/api/v1/approvals", tags=["approvals"])
Reader = Annotated[Principal, Depends(reader)]
Admin = Annotated[Principal, Depends(admin)]


def _console(request: Request) -> Console:
    console: Console = request.app.state.console
    return console


def notify(request: Request, name: str, data: dict[str, Any]) -> None:
    """Hand an approval event to the webhooks, if any."""
    notifier = getattr(request.app.state, "notifier", None)
    if notifier is not None:
        notifier.enqueue(name, data)


def approve(request: Request, console: Console, who: Principal, pending_id: str) -> dict[str, Any]:
    """Publish a pending publish as its requester, approved by ``who`` (another admin).

    Raises:
        ApiProblem: no such pending publish (404), not pending any more (409), or the
            requester approving their own change (403).
        ConflictError: a publish happened since it was requested.
    """
    p = console.approvals.get(pending_id)
    if p is None:
        raise ApiProblem(404, f"no pending publish {pending_id!r}")
    if p.status != "pending":
        raise ApiProblem(409, f"{pending_id} is {p.status} already (by {p.decided_by})")
    if p.requested_by == who.name:
        raise ApiProblem(
            403,
            f"{pending_id} changes {', '.join(p.keys)} (billing/compliance): a second admin "
            f"must approve it, not its requester {who.name}",
        )
    with console.lock:
        publish = console.client.publish_overlays if p.overlays else console.client.publish
        result = publish(
            p.document,
            author=p.requested_by,
            message=f"{p.message} (approved by {who.name})",
            parent_rev=p.parent_rev,
        )
        p.status, p.decided_by, p.rev = "approved", who.name, result.rev
    out = {**p.to_dict(), **result.to_dict()}
    notify(request, "approval.approved", p.to_dict())
    return out


def reject(
    request: Request, console: Console, who: Principal, pending_id: str, reason: str
) -> dict[str, Any]:
    """Reject (or, by its requester, withdraw) a pending publish."""
    p = console.approvals.get(pending_id)
    if p is None:
        raise ApiProblem(404, f"no pending publish {pending_id!r}")
    if p.status != "pending":
        raise ApiProblem(409, f"{pending_id} is {p.status} already (by {p.decided_by})")
    p.status, p.decided_by, p.reason = "rejected", who.name, reason
    notify(request, "approval.rejected", p.to_dict())
    return p.to_dict()


@router.get("", operation_id="listApprovals")
def list_pending(request: Request, who: Reader) -> dict[str, Any]:
    """Publishes waiting for a second admin, with the flags that make them wait."""
    return {"pending": [p.to_dict() for p in _console(request).approvals.pending()]}


@router.get("/{pending_id}", operation_id="getApproval")
def get_pending(request: Request, pending_id: str, who: Reader) -> dict[str, Any]:
    """One pending publish, with its document."""
    p = _console(request).approvals.get(pending_id)
    if p is None:
        raise ApiProblem(404, f"no pending publish {pending_id!r}")
    return p.to_dict(with_document=True)


@router.post("/{pending_id}/approve", status_code=201, operation_id="approvePublish")
def approve_route(request: Request, pending_id: str, who: Admin) -> dict[str, Any]:
    """Approve and publish (a second admin only); the audit entry names both."""
    return approve(request, _console(request), who, pending_id)


@router.post("/{pending_id}/reject", operation_id="rejectPublish")
def reject_route(request: Request, pending_id: str, body: EndBody, who: Admin) -> dict[str, Any]:
    """Reject a pending publish, with a reason."""
    return reject(request, _console(request), who, pending_id, body.reason.strip())
