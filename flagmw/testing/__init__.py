"""Testing helpers: pin a literal RunConfig for code under test, and in-memory clients.

Code that reads flags with ``flagmw.current()`` (nodes, tools, model calls, helpers
they call) can be tested without a graph, a store or a client::

    from flagmw.testing import pinned

    def test_refund_tool_refuses_when_disabled():
        with pinned({"tools.refund_api.enabled": False}):
            assert refund.invoke({"order_id": "o-1"}).startswith("Tool 'refund' is disabled")

    @pinned({"model.primary": "gpt-4o-mini"}, registry=REGISTRY)
    async def test_small_model_route(): ...

and graphs can be run against a real :class:`~flagmw.client.FlagClient` on an
in-memory store::

    client = memory_client("flags.yaml")          # registry and snapshot (rev 1) in one file
    graph = flagmw.wrap(builder.compile(checkpointer=InMemorySaver()), client)

The pytest fixtures ``flagmw_pin`` and ``flagmw_client`` (:mod:`flagmw.pytest_plugin`)
wrap these two for a test's duration. ``ScriptedChatModel`` and ``tool_call`` (a chat
model that answers from a script and emits real tool calls) are re-exported here.
"""

from __future__ import annotations

from typing import Any

from flagmw.testing.pinning import memory_client, pinned, pinned_config

__all__ = ["ScriptedChatModel", "memory_client", "pinned", "pinned_config", "tool_call"]


def __getattr__(name: str) -> Any:
    # the scripted chat model needs langchain-core; pinned() and memory_client() do not
    if name in ("ScriptedChatModel", "tool_call"):
        from flagmw.testing import scripted

        return getattr(scripted, name)
    raise AttributeError(f"module 'flagmw.testing' has no attribute {name!r}")
