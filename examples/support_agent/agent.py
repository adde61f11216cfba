"""A multi-tenant customer-support agent on a hand-built LangGraph ``StateGraph``.

The agent is the one of ``flagmw demo`` (it replays the Harbor refund-tool incident),
and a template for putting flagmw into an existing graph::

    START → agent ──(tool calls)──→ tools ──→ agent … ──→ END
              └──(refund above the approval threshold)──→ human_approval ──→ tools | agent

* ``agent`` calls a :func:`flagmw.routed_model`: the flag ``model.primary`` picks the
  route per call, ``model.fallbacks`` is the ladder, and tools whose gate is off are not
  offered to the model. The loop cap ``loop.max_iterations`` (hot) and the system
  prompt ``prompt.style`` are read from :func:`flagmw.current`.
* ``tools`` is LangGraph's own ``ToolNode`` (default error handling) over three tools:
  ``refund(order_id, amount)`` (``@flagmw.gated("tools.refund_api.enabled")`` — a hot
  kill switch), ``kb_search(query)`` and ``escalate(reason)``. A call to a disabled tool
  is answered with a ``ToolMessage(status="error")`` naming the flag and the kill's
  reason; it never ends the run. Tool output is PII-redacted when
  ``compliance.pii_redaction`` is on.
* ``human_approval`` calls ``interrupt()`` for a refund above
  ``refund.approval_threshold`` (pinned: a resumed run keeps the threshold it started
  with); resume it with ``Command(resume={"approved": True, "reviewer": "..."})``.

The graph does not import or need flagmw's wrapper: unwrapped, it runs on the
registry's defaults (``flagmw.current(optional=True)`` is None). Wrap it with
``flagmw.wrap(build_graph(checkpointer=saver), client)`` to pin a RunConfig per run.

No hosted model is reachable where flagmw is tested and demonstrated, so the routes
are :class:`~flagmw.testing.ScriptedChatModel` instances driven by
:func:`support_policy`, a deterministic policy that emits real tool calls from the
conversation and the tools bound for the call. Pass ``models={route: chat_model}`` to
use real models.
"""

from __future__ import annotations

import functools
import itertools
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolCall,
    ToolMessage,
)
from langchain_core.tools import BaseTool, tool
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.prebuilt import ToolNode
from langgraph.types import Command, interrupt

import flagmw
from flagmw.core.registry import FlagRegistry
from flagmw.testing.scripted import ScriptedChatModel, ScriptStep, tool_call

__all__ = [
    "FLAGS_PATH",
    "ROUTES",
    "Backend",
    "InMemoryBackend",
    "Knobs",
    "build_graph",
    "default_models",
    "knobs",
    "load_registry",
    "make_tools",
    "redact_pii",
    "support_policy",
]

#: The flags file of the agent: its registry (``flags:``) and first snapshot.
FLAGS_PATH = Path(__file__).with_name("flags.yaml")

#: The model routes; ``model.primary`` is an enum of exactly these names.
ROUTES = ("gpt-4o", "gpt-4o-mini", "claude-sonnet")

#: The text a customer writes to smuggle an instruction to the model (the policy
#: obeys it, as a model under a prompt injection would).
INJECTION_MARKER = "ignore previous instructions"


@functools.cache
def load_registry() -> FlagRegistry:
    """The agent's flag registry (the ``flags:`` section of :data:`FLAGS_PATH`)."""
    return FlagRegistry.from_yaml(FLAGS_PATH)


# -- the knobs the agent reads ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Knobs:
    """The policy flags the graph's own code reads (tools and models read theirs).

    Attributes:
        approval_threshold: ``refund.approval_threshold``, in the order's currency
            units: refunds above it wait for a human.
        max_iterations: ``loop.max_iterations``: model calls per customer turn.
        pii_redaction: ``compliance.pii_redaction``.
        prompt_style: ``prompt.style`` (``"v2"`` / ``"v3"``).
        retrieval_index: ``retrieval.index``, the knowledge-base index searched.
    """

    approval_threshold: float
    max_iterations: int
    pii_redaction: bool
    prompt_style: str
    retrieval_index: str


def knobs() -> Knobs:
    """The knobs of the run being executed: from :func:`flagmw.current` inside a
    wrapped run, the registry's defaults outside one (an unwrapped graph)."""
    rc = flagmw.current(optional=True)
    if rc is not None:

        def get(key: str) -> Any:
            return rc[key]
    else:
        registry = load_registry()

        def get(key: str) -> Any:
            return registry[key].default

    return Knobs(
        approval_threshold=float(get("refund.approval_threshold")),
        max_iterations=int(get("loop.max_iterations")),
        pii_redaction=bool(get("compliance.pii_redaction")),
        prompt_style=str(get("prompt.style")),
        retrieval_index=str(get("retrieval.index")),
    )


# -- PII redaction ----------------------------------------------------------------------

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_CARD = re.compile(r"\b(?:\d[ -]?){12,15}\d\b")
_PHONE = re.compile(r"\+?\d[\d ()-]{7,}\d")


def redact_pii(text: str) -> str:
    """``text`` with e-mail addresses, card numbers and phone numbers replaced by
    ``[email]``, ``[card]`` and ``[phone]`` (cards before phones: a card number also
    looks like a phone number)."""
    text = _EMAIL.sub("[email]", text)
    text = _CARD.sub("[card]", text)
    return _PHONE.sub("[phone]", text)


def _tool_output(text: str) -> str:
    return redact_pii(text) if knobs().pii_redaction else text


# -- backend and tools --------------------------------------------------------------------


class Backend(Protocol):
    """What the tools call: the knowledge base, the CRM refund webhook, the ticketing
    system. The demo and tests pass their own to observe or stall a step."""

    def search(self, query: str, index: str) -> str:
        """The best knowledge-base passage for ``query`` in ``index``."""
        ...

    def refund(self, order_id: str, amount: float) -> str:
        """Issue a refund; returns a confirmation text."""
        ...

    def escalate(self, reason: str) -> str:
        """Open a ticket for a human agent; returns the ticket id."""
        ...


_ARTICLES = {
    "refund": (
        "Refund policy: orders can be refunded within 30 days. Refunds above the "
        "tenant's approval threshold need a supervisor. Questions: refunds@harbor.example, "
        "+1 415 555 0134."
    ),
    "password": (
        "Password reset: use 'Forgot password' on the sign-in page; the link is valid for "
        "an hour. Support line: +1 415 555 0100."
    ),
}


class InMemoryBackend:
    """A deterministic in-process backend (knowledge base, refunds, tickets).

    Attributes:
        refunds: ``(order_id, amount)`` of every refund issued.
        tickets: ``(ticket_id, reason)`` of every escalation.
    """

    def __init__(self) -> None:
        self.refunds: list[tuple[str, float]] = []
        self.tickets: list[tuple[str, str]] = []
        self._ids = itertools.count(1001)
        self._lock = threading.Lock()

    def search(self, query: str, index: str) -> str:
        """See :meth:`Backend.search`."""
        q = query.lower()
        key = next((k for k in _ARTICLES if k in q), "refund")
        return f"[{index}] {_ARTICLES[key]}"

    def refund(self, order_id: str, amount: float) -> str:
        """See :meth:`Backend.refund`."""
        with self._lock:
            ref = f"R-{next(self._ids)}"
            self.refunds.append((order_id, amount))
        return (
            f"Refund {ref} of {amount:.2f} for order {order_id} sent to card "
            f"4111 1111 1111 1111; receipt mailed to customer-{order_id.lower()}@mail.example."
        )

    def escalate(self, reason: str) -> str:
        """See :meth:`Backend.escalate`."""
        with self._lock:
            ticket = f"T-{next(self._ids)}"
            self.tickets.append((ticket, reason))
        return ticket


def make_tools(backend: Backend) -> list[BaseTool]:
    """The agent's tools over ``backend``: ``kb_search``, ``refund`` (gated by the hot
    kill switch ``tools.refund_api.enabled``) and ``escalate``, each gated by its flag.
    ``outside_run="allow"``: the graph also runs unwrapped, on the registry's defaults
    (a gate refuses outside a run by default)."""

    @flagmw.gated("tools.kb_search.enabled", outside_run="allow")
    @tool
    def kb_search(query: str) -> str:
        """Search the support knowledge base and return the best passage."""
        return _tool_output(backend.search(query, knobs().retrieval_index))

    @flagmw.gated("tools.refund_api.enabled", outside_run="allow")
    @tool
    def refund(order_id: str, amount: float) -> str:
        """Refund an order through the CRM refund webhook. amount is in the order's
        currency units."""
        return _tool_output(backend.refund(order_id, amount))

    @flagmw.gated("tools.escalation.enabled", outside_run="allow")
    @tool
    def escalate(reason: str) -> str:
        """Hand the conversation over to a human support agent with a short reason."""
        ticket = backend.escalate(reason)
        return f"Escalated to a human agent: ticket {ticket}."

    return [kb_search, refund, escalate]


# -- the scripted model's policy ------------------------------------------------------------

_ORDER = re.compile(r"\b([A-Z]{1,4}-\d{3,})\b")
_AMOUNT = re.compile(r"\$\s?(\d[\d,]*(?:\.\d{1,2})?)")


def _last_human(messages: Sequence[BaseMessage]) -> int:
    for i in range(len(messages) - 1, -1, -1):
        if isinstance(messages[i], HumanMessage):
            return i
    return -1


def _style(messages: Sequence[BaseMessage]) -> str:
    for m in messages:
        if isinstance(m, SystemMessage) and "style v3" in str(m.content):
            return "v3"
    return "v2"


def _say(style: str, text: str) -> str:
    # v3 is the shorter, warmer style the experiment rolls out
    if style == "v3":
        return f"Thanks for your patience! {text[:1].upper()}{text[1:]}"
    return f"Dear customer, {text}"


def support_policy(messages: Sequence[BaseMessage], bound: list[str]) -> ScriptStep:
    """The scripted model: one answer from the conversation and the bound tool names.

    For a refund request (``refund`` in the customer's message, an order id like
    ``A-1042`` and an amount like ``$40``): search the knowledge base (if
    ``kb_search`` is bound), then call ``refund`` if it is bound — or escalate when it
    is hidden; after a refund error (refused by a flag, rejected by a reviewer) it
    escalates; then it answers. A message containing :data:`INJECTION_MARKER` makes it
    call ``refund`` even when the tool is not bound (a prompt-injected model): only the
    call-time gate stops it. Other questions: search, then answer.
    """
    start = _last_human(messages)
    if start < 0:
        return "How can I help you today?"
    ask = str(messages[start].content)
    low = ask.lower()
    style = _style(messages)
    results: dict[str, ToolMessage] = {}
    for m in messages[start + 1 :]:
        if isinstance(m, ToolMessage) and m.name:
            results[m.name] = m

    if "escalate" in results:
        ticket = results["escalate"].content
        return _say(style, f"a human colleague will take it from here ({ticket})")
    if "kb_search" not in results and "kb_search" in bound:
        topic = "refund policy" if "refund" in low else ask[:60]
        return tool_call("kb_search", {"query": topic})
    if "refund" not in low:
        found = results.get("kb_search")
        return _say(style, str(found.content) if found is not None else "let me check that.")

    order = _ORDER.search(ask)
    amount = _AMOUNT.search(ask)
    if order is None or amount is None:
        return _say(style, "could you tell me the order number and the amount to refund?")
    done = results.get("refund")
    if done is not None and done.status != "error":
        return _say(style, f"your refund is on its way. {done.content}")
    if done is None and ("refund" in bound or INJECTION_MARKER in low):
        value = float(amount.group(1).replace(",", ""))
        return tool_call("refund", {"order_id": order.group(1), "amount": value})
    why = (
        f"refund of order {order.group(1)} failed: {done.content}"
        if done is not None
        else f"refund of order {order.group(1)} requested but the refund tool is unavailable"
    )
    if "escalate" in bound:
        return tool_call("escalate", {"reason": why[:300]})
    return _say(style, "I can't issue refunds right now; please contact us again later.")


def default_models() -> dict[str, BaseChatModel]:
    """One :class:`~flagmw.testing.ScriptedChatModel` per route of :data:`ROUTES`,
    driven by :func:`support_policy` and labelled with the route name."""
    return {r: ScriptedChatModel(script=support_policy, label=r) for r in ROUTES}


# -- the graph ---------------------------------------------------------------------------------

_SYSTEM = {
    "v2": "You are the support agent of {tenant}. Answer formally. (style v2)",
    "v3": "You help {tenant}'s customers. Be brief and warm. (style v3)",
}


def _pending_calls(messages: Sequence[BaseMessage]) -> list[ToolCall]:
    """The tool calls of the last AI message that no ToolMessage answers yet."""
    for i in range(len(messages) - 1, -1, -1):
        m = messages[i]
        if isinstance(m, AIMessage):
            answered = {t.tool_call_id for t in messages[i + 1 :] if isinstance(t, ToolMessage)}
            return [c for c in m.tool_calls if c["id"] not in answered]
    return []


def _needs_approval(calls: Sequence[ToolCall], threshold: float) -> list[ToolCall]:
    out = []
    for c in calls:
        if c["name"] != "refund":
            continue
        try:
            amount = float(c["args"].get("amount", 0))
        except (TypeError, ValueError):
            continue  # the tool's own argument validation reports it
        if amount > threshold:
            out.append(c)
    return out


def _approved(decision: Any) -> tuple[bool, str]:
    """A resume value → (approved, reviewer). Accepts ``{"approved": bool, "reviewer":
    str}``, a bool, or ``"approve"`` / ``"reject"``."""
    if isinstance(decision, Mapping):
        return bool(decision.get("approved")), str(decision.get("reviewer") or "a reviewer")
    if isinstance(decision, str):
        return decision.strip().lower() in ("approve", "approved", "yes", "y"), "a reviewer"
    return bool(decision), "a reviewer"


def build_graph(
    *,
    checkpointer: BaseCheckpointSaver[Any] | None,
    models: Mapping[str, BaseChatModel] | None = None,
    backend: Backend | None = None,
    name: str = "support-agent",
) -> CompiledStateGraph[Any, Any, Any, Any]:
    """Build and compile the support agent.

    Args:
        checkpointer: LangGraph checkpointer (needed for human approval, which
            interrupts the run); None compiles without one.
        models: route name → chat model, for the routes of :data:`ROUTES` (default
            :func:`default_models`: scripted, no network).
        backend: what the tools call (default a new :class:`InMemoryBackend`).
        name: the graph's name (the default ``route`` of a wrapped run's evaluation
            context, and the agent name in traces).

    Returns:
        The compiled graph (unwrapped; wrap it with :func:`flagmw.wrap`).

    Raises:
        flagmw.ValidationError: ``models`` does not cover the routes ``model.primary``
            can name (checked against the registry now, not at run time).
    """
    registry = load_registry()
    routes = dict(models) if models is not None else default_models()
    model = flagmw.routed_model(
        routes,
        flag="model.primary",
        fallbacks="model.fallbacks",
        default_route=str(registry["model.primary"].default),
        registry=registry,
    )
    tools = make_tools(backend if backend is not None else InMemoryBackend())
    bound = model.bind_tools(tools)  # filtered per call by the gates of the run

    def agent(state: MessagesState) -> dict[str, Any]:
        k = knobs()
        messages = state["messages"]
        turn = messages[_last_human(messages) + 1 :]
        calls = sum(1 for m in turn if isinstance(m, AIMessage))
        if calls >= k.max_iterations:
            # the cap ends the turn with an answer (never a dangling tool call)
            return {
                "messages": [
                    AIMessage(
                        f"I have reached my step limit ({k.max_iterations}) for this "
                        "request; a human colleague will follow up."
                    )
                ]
            }
        rc = flagmw.current(optional=True)
        tenant = (rc.context.tenant_id if rc is not None else None) or "our"
        system = SystemMessage(_SYSTEM.get(k.prompt_style, _SYSTEM["v2"]).format(tenant=tenant))
        return {"messages": [bound.invoke([system, *messages])]}

    def after_agent(state: MessagesState) -> str:
        calls = _pending_calls(state["messages"])
        if not calls:
            return END
        if _needs_approval(calls, knobs().approval_threshold):
            return "human_approval"
        return "tools"

    def human_approval(state: MessagesState) -> Command[Literal["tools", "agent"]]:
        # Re-runs from its first line on resume: the threshold read here must be the
        # pinned one, or a resumed run could skip (or newly require) the approval.
        k = knobs()
        calls = _pending_calls(state["messages"])
        above = _needs_approval(calls, k.approval_threshold)
        if not above:
            return Command(goto="tools")
        rc = flagmw.current(optional=True)
        decision = interrupt(
            {
                "action": "approve_refund",
                "refunds": [dict(c["args"]) for c in above],
                "threshold": k.approval_threshold,
                "tenant": rc.context.tenant_id if rc is not None else None,
            }
        )
        ok, reviewer = _approved(decision)
        if ok:
            return Command(goto="tools")
        rejected = [
            ToolMessage(
                f"The refund was rejected by {reviewer} (above the approval threshold "
                f"{k.approval_threshold:.2f}). Do not retry it."
                if c["name"] == "refund"
                else "Not run: a refund in the same turn was rejected.",
                tool_call_id=c["id"],
                name=c["name"],
                status="error",
            )
            for c in calls
        ]
        return Command(update={"messages": rejected}, goto="agent")

    builder = StateGraph(MessagesState)
    builder.add_node("agent", agent)
    builder.add_node("human_approval", human_approval, destinations=("tools", "agent"))
    builder.add_node("tools", ToolNode(tools))
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", after_agent, ["human_approval", "tools", END])
    builder.add_edge("tools", "agent")
    return builder.compile(checkpointer=checkpointer, name=name)
