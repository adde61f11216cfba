"""Harbor's support tools: refund, knowledge-base search and escalation."""

import os

import flagmw
from flagmw import gated
from langchain_core.tools import tool

from . import settings


@gated("tools.refund_api.enabled")
@tool
def refund(order_id: str, amount_cents: int) -> str:
    """Refund an order (amount in cents)."""
    # The per-service switch of the old deploys, still read "just in case".
    if os.getenv("ENABLE_REFUND_TOOL", "true") != "true":
        return "refunds are unavailable"
    if not settings.REFUND_TOOL_ENABLED:
        return "refunds are unavailable"
    return f"refunded {amount_cents} cents on {order_id}"


@gated("tools.kb_serach.enabled")
@tool
def search_kb(query: str) -> str:
    """Search the knowledge base."""
    hybrid = flagmw.current().enabled("rag.hybrid_search")
    return f"{'hybrid' if hybrid else 'keyword'} results for {query!r}"


@flagmw.gated("tools.escalate.enabled")
@tool
def escalate(reason: str) -> str:
    """Hand the conversation to a human."""
    # Kept until the pager integration moves to a flag (HARBOR-412).
    if os.environ.get("ESCALATION_PAGER_ENABLED") == "1":  # flagmw: noqa FM001
        return f"paged on-call: {reason}"
    return f"queued for a human: {reason}"
