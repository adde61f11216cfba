"""The Harbor support agent: a model node and a tool node, wrapped with flagmw."""

from __future__ import annotations

from typing import Any

import flagmw
from flagmw import EvaluationContext, FlagClient, RunConfig
from langchain_core.language_models import BaseChatModel
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode

from .tools import escalate, refund, search_kb

TOOLS = [refund, search_kb, escalate]
MAX_ITERATIONS_KEY = "loop.max_iteration"


def build_model(big: BaseChatModel, small: BaseChatModel) -> Any:
    """The chat model, routed per call by the run's flags."""
    return flagmw.routed_model(
        {"gpt-4o": big, "gpt-4o-mini": small},
        flag="model.primary",
        fallbacks="model.fallback",
    )


def call_model(state: MessagesState, model: Any) -> dict[str, Any]:
    rc = flagmw.current()
    if len(state["messages"]) > 2 * rc[MAX_ITERATIONS_KEY]:
        return {"messages": []}
    style = rc.get("prompt.style")
    bound = model.bind_tools(flagmw.enabled_tools(TOOLS))
    return {"messages": [bound.invoke(state["messages"], metadata={"style": style})]}


def should_continue(state: MessagesState) -> str:
    cfg = flagmw.current()
    if not cfg.enabled("agent.enabled"):
        return END
    last = state["messages"][-1]
    return "tools" if getattr(last, "tool_calls", None) else END


def retrieval_mode(run_config: RunConfig) -> str:
    return "hybrid" if run_config["rag.hybrid_search"] else "keyword"


def build(client: FlagClient, model: Any, checkpointer: Any) -> Any:
    builder = StateGraph(MessagesState)
    builder.add_node("model", lambda state: call_model(state, model))
    builder.add_node("tools", ToolNode(TOOLS))
    builder.add_edge(START, "model")
    builder.add_conditional_edges("model", should_continue)
    builder.add_edge("tools", "model")
    return flagmw.wrap(builder.compile(checkpointer=checkpointer), client, name="support_agent")


def why(client: FlagClient, tenant: str) -> str:
    """What an operator runs when a tenant says refunds are off."""
    ctx = EvaluationContext(tenant_id=tenant, route="refund-assistant")
    pinned = client.resolve(ctx)
    explanation = client.explain("tools.refund_api.enabld", ctx)
    return f"rev {pinned.snapshot_rev}: {explanation}"
