"""Gating a graph's tools by name: ``flagmw.wrap(graph, client, gates={...})``.

``gated()`` returns a gated *copy* of a tool, so gating a tool after a template built
its ``ToolNode`` (``create_agent``, ``create_react_agent``, a graph from a package you
do not own) silently changes nothing (bug 3.8 in issue 7). ``wrap(..., gates={"search":
"tools.search.enabled"})`` gates such a graph at execution instead:

* every ``ToolNode`` of the graph whose tools include a gated name is replaced, in the
  wrapped copy only, by a ``ToolNode`` with the same tools and settings plus a
  ``wrap_tool_call`` / ``awrap_tool_call`` interceptor (ToolNode's public hooks,
  reference ``langgraph-integration.md`` §2.2) that answers a call to a disabled tool
  with the same ``ToolMessage(status="error")`` as ``@gated`` and a ``tool_refused``
  run event. The interceptor is the innermost one: middleware of ``create_agent``
  (tool-call limits, human approval, …) still sees every call;
* the decision is :func:`~flagmw.langgraph.tool_gate.decide_call` with the run of the
  call (outside a run: the wrap's client, evaluated live);
* ``wrap`` logs a warning for a name in ``gates`` that no ``ToolNode`` of the graph
  has, and for a tool that a ``ToolNode`` runs ungated while ``gated()`` made a gated
  copy of a tool of that name in this process (the copy is never seen in a run).

ToolNodes of subgraphs added as nodes (``builder.add_node("agent", create_agent(...))``,
nested to any depth) are gated too: the subgraph is replaced, in the wrapped copy only,
by its public ``Pregel.copy`` with its ToolNodes gated. A graph *called* from inside a
node function is not a node of the graph and is not visited: wrap it too (it then runs
as a nested agent of its own) or gate its tools with ``gated()`` before it is built.

Hiding is not covered: the model is still offered the tool (refusal is the
enforcement; ``FlagmwMiddleware`` or ``routed_model`` hide it from binding).

The one LangGraph internal used: a ``ToolNode`` keeps its constructor settings in
``_handle_tool_errors``, ``_messages_key``, ``_wrap_tool_call`` and
``_awrap_tool_call``; they are read to build the gated copy with the public
constructor. :func:`gate_nodes` checks them and raises a clear error naming the
supported versions when an upgrade moved them.
"""

from __future__ import annotations

import importlib.metadata
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol, cast

from langchain_core.messages import ToolMessage
from langgraph.prebuilt import ToolNode
from langgraph.prebuilt.tool_node import ToolCallRequest
from langgraph.pregel import Pregel
from langgraph.types import Command

from flagmw.langgraph.tool_gate import Gate, decide_call, warn_ungated_twin

if TYPE_CHECKING:  # pragma: no cover
    from flagmw.client.client import FlagClient

__all__ = ["SUPPORTED_PREBUILT", "TOOLNODE_SETTINGS", "gate_nodes"]

log = logging.getLogger("flagmw")

#: The ToolNode attributes that hold its constructor settings (read, never written).
TOOLNODE_SETTINGS = ("_handle_tool_errors", "_messages_key", "_wrap_tool_call", "_awrap_tool_call")
#: The langgraph-prebuilt versions whose ToolNode was verified to hold them.
SUPPORTED_PREBUILT = "langgraph-prebuilt 1.1 (verified 1.1.2 and 1.1.3)"


class PregelNode(Protocol):
    """What is used of a ``Pregel.nodes`` value (LangGraph's ``PregelNode``, whose
    module is private): the bound runnable and the public ``copy(update)``."""

    bound: Any

    def copy(self, update: dict[str, Any]) -> Any: ...


Result = ToolMessage | Command[Any]
Execute = Callable[[ToolCallRequest], Result]
AExecute = Callable[[ToolCallRequest], Awaitable[Result]]


def _as_gates(gates: Mapping[str, str | Gate]) -> dict[str, Gate]:
    out: dict[str, Gate] = {}
    for name, spec in gates.items():
        if isinstance(spec, Gate):
            out[name] = spec
        elif isinstance(spec, str) and spec:
            out[name] = Gate(spec)
        else:
            raise TypeError(
                f"flagmw.wrap(gates=...): the gate of tool {name!r} must be a flag key or a "
                f"Gate, got {spec!r}"
            )
    return out


class _NameGate:
    """The ``wrap_tool_call`` / ``awrap_tool_call`` pair that refuses disabled tools."""

    def __init__(self, gates: dict[str, Gate], client: FlagClient) -> None:
        self.gates = gates
        self.client = client

    def refusal(self, request: ToolCallRequest) -> ToolMessage | None:
        call = request.tool_call
        gate = self.gates.get(call["name"])
        if gate is None:
            return None
        config = request.runtime.config if request.runtime is not None else None
        refusal = decide_call(call["name"], gate, config, client=self.client)
        return None if refusal is None else refusal.tool_message(str(call["id"]))

    def sync(self, inner: Any) -> Callable[[ToolCallRequest, Execute], Result]:
        def wrap_tool_call(request: ToolCallRequest, execute: Execute) -> Result:
            def gated_execute(req: ToolCallRequest) -> Result:
                refused = self.refusal(req)
                return refused if refused is not None else execute(req)

            if inner is None:
                return gated_execute(request)
            return inner(request, gated_execute)  # type: ignore[no-any-return]

        return wrap_tool_call

    def asynchronous(self, inner: Any) -> Callable[[ToolCallRequest, AExecute], Awaitable[Result]]:
        async def awrap_tool_call(request: ToolCallRequest, execute: AExecute) -> Result:
            async def gated_execute(req: ToolCallRequest) -> Result:
                refused = self.refusal(req)
                return refused if refused is not None else await execute(req)

            if inner is None:
                return await gated_execute(request)
            return await inner(request, gated_execute)  # type: ignore[no-any-return]

        return awrap_tool_call


def _settings(node: ToolNode) -> dict[str, Any]:
    missing = [a for a in TOOLNODE_SETTINGS if not hasattr(node, a)]
    if missing:
        try:
            installed = importlib.metadata.version("langgraph-prebuilt")
        except importlib.metadata.PackageNotFoundError:  # pragma: no cover
            installed = "unknown"
        raise RuntimeError(
            f"flagmw.wrap(gates=...) cannot gate ToolNode {node.name!r}: this ToolNode has "
            f"no {', '.join(missing)} (installed langgraph-prebuilt {installed}; supported: "
            f"{SUPPORTED_PREBUILT}). Gate the tools with flagmw.gated() before the graph is "
            "built, or pin a supported langgraph-prebuilt"
        )
    return {a: getattr(node, a) for a in TOOLNODE_SETTINGS}


def _gated_tool_node(node: ToolNode, gate: _NameGate) -> ToolNode:
    s = _settings(node)
    inner_sync, inner_async = s["_wrap_tool_call"], s["_awrap_tool_call"]
    # an async ToolNode with only a sync interceptor runs it with a sync execute;
    # keep that shape rather than calling a sync interceptor from a coroutine
    awrap = (
        gate.asynchronous(inner_async) if inner_async is not None or inner_sync is None else None
    )
    return ToolNode(
        list(node.tools_by_name.values()),
        name=node.name or "tools",
        tags=list(node.tags) if node.tags is not None else None,
        handle_tool_errors=s["_handle_tool_errors"],
        messages_key=s["_messages_key"],
        wrap_tool_call=gate.sync(inner_sync),
        awrap_tool_call=awrap,
    )


def gate_nodes(
    nodes: Mapping[str, PregelNode],
    gates: Mapping[str, str | Gate] | None,
    client: FlagClient,
    *,
    graph_name: str,
) -> dict[str, PregelNode]:
    """The graph's nodes with the named tools gated (see the module docs).

    Args:
        nodes: the compiled graph's ``nodes`` (``Pregel.nodes``); not modified.
        gates: tool name → flag key or :class:`~flagmw.tools.Gate`; None or empty
            only checks for ungated twins of gated tools.
        client: the wrap's client (evaluates a call found outside any run).
        graph_name: for log messages.

    Returns:
        A new ``{name: PregelNode}``: a gated ToolNode node is a ``PregelNode.copy``
        with the new ToolNode bound; every other node is the same object.

    Raises:
        TypeError: a gate is neither a flag key nor a :class:`Gate`.
        RuntimeError: a ToolNode to gate lacks the settings of a supported
            langgraph-prebuilt (the message names the versions).
    """
    specs = _as_gates(gates or {})
    gate = _NameGate(specs, client)
    out, seen = _gate(nodes, specs, gate, graph_name, "")
    for name in sorted(specs.keys() - seen):
        log.warning(
            "flagmw: wrap(gates=...) gates tool %r by flag %s, but no ToolNode of graph %r "
            "or of its subgraph nodes has a tool of that name",
            name,
            specs[name].key,
            graph_name,
        )
    return out


def _gate(
    nodes: Mapping[str, PregelNode],
    specs: dict[str, Gate],
    gate: _NameGate,
    graph_name: str,
    prefix: str,
) -> tuple[dict[str, PregelNode], set[str]]:
    """(the nodes with their ToolNodes and subgraph nodes gated, the gated names seen);
    ``prefix`` is the path of a subgraph node (``"agent/"``) for log messages."""
    out = dict(nodes)
    seen: set[str] = set()
    for node_name, node in nodes.items():
        bound = node.bound
        where = f"graph {graph_name!r} node {prefix + node_name!r}"
        if isinstance(bound, Pregel):  # a subgraph added as a node
            sub, sub_seen = _gate(bound.nodes, specs, gate, graph_name, f"{prefix}{node_name}/")
            if sub_seen:
                seen |= sub_seen
                out[node_name] = cast(PregelNode, node.copy({"bound": bound.copy({"nodes": sub})}))
            continue
        if not isinstance(bound, ToolNode):
            continue
        for tool in bound.tools_by_name.values():
            warn_ungated_twin(tool, specs, where)
        names = specs.keys() & bound.tools_by_name.keys()
        if not names:
            continue
        if type(bound) is not ToolNode:
            log.warning(
                "flagmw: %s is a %s, not a ToolNode: its tools %s are not gated by name",
                where,
                type(bound).__name__,
                sorted(names),
            )
            continue
        seen |= names
        out[node_name] = cast(PregelNode, node.copy({"bound": _gated_tool_node(bound, gate)}))
    return out, seen
