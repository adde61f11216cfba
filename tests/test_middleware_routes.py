"""FlagmwMiddleware routes: the fallback ladder (LangChain's ``ModelFallbackMiddleware``
over the routes) and the provider cache settings a route does not accept."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from conftest import MakeClient, snapshot_part
from langchain.agents import create_agent
from langchain.agents.middleware import AgentMiddleware, ModelRequest
from langchain_core.messages import HumanMessage
from test_middleware import Recorder, _cfg, _run, refund, search

from flagmw import FlagClient
from flagmw.integrations.langchain import FlagmwMiddleware
from flagmw.testing import ScriptedChatModel


@pytest.fixture
def client(make_client: MakeClient) -> FlagClient:
    """A client on a real SQLite store with the DESIGN §9 snapshot (rev 1)."""
    return make_client(document=snapshot_part())


class KwargsRecorder(ScriptedChatModel):
    """Records the call kwargs (bound settings) of every call."""

    kwargs: list[dict[str, Any]]

    def _generate(self, messages: Any, stop: Any = None, run_manager: Any = None, **kw: Any) -> Any:
        self.kwargs.append({k: v for k, v in kw.items() if k not in ("tools", "tool_choice")})
        return super()._generate(messages, stop, run_manager, **kw)


class AnthropicCaching(AgentMiddleware):
    """An outer middleware that sets an Anthropic prompt-cache setting."""

    def wrap_model_call(self, request: ModelRequest, handler: Callable[..., Any]) -> Any:
        settings = {"cache_control": {"type": "ephemeral"}, "temperature": 0}
        return handler(request.override(model_settings=settings))

    async def awrap_model_call(self, request: ModelRequest, handler: Callable[..., Any]) -> Any:
        settings = {"cache_control": {"type": "ephemeral"}, "temperature": 0}
        return await handler(request.override(model_settings=settings))


def test_routing_drops_provider_cache_settings_the_route_does_not_support(
    client: FlagClient,
) -> None:
    route = KwargsRecorder(script=["ok"], kwargs=[])
    agent = create_agent(
        ScriptedChatModel(script=["unrouted"]),
        tools=[search],
        middleware=[
            AnthropicCaching(),
            FlagmwMiddleware(client, routes={"gpt-4o": route, "gpt-4o-mini": route}),
        ],
    )
    agent.invoke({"messages": [HumanMessage("hi")]})
    assert route.kwargs == [{"temperature": 0}]


# -- routes ------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_routes_with_the_fallback_ladder(mode: str, client: FlagClient) -> None:
    routes = {
        "gpt-4o": ScriptedChatModel(script=[RuntimeError("overloaded")], label="big"),
        "gpt-4o-mini": ScriptedChatModel(script=["small answer"], label="small"),
    }
    rec = Recorder()
    mw = FlagmwMiddleware(client, routes=routes, fallbacks="model.fallbacks", observers=[rec])
    default = ScriptedChatModel(script=["unrouted"])
    agent = create_agent(default, tools=[refund, search], middleware=[mw])
    out = _run(agent, {"messages": [HumanMessage("hi")]}, _cfg("t-r", tenant_id="globex"), mode)
    answer = out["messages"][-1]
    assert answer.content == "small answer"
    assert answer.response_metadata["flagmw_route"] == "gpt-4o-mini"
    assert answer.response_metadata["flagmw_fallback_used"] is True
    assert default.calls == 0
    assert routes["gpt-4o-mini"].seen_tools == [["refund", "search"]]
    assert rec.named("model_route") == [
        {
            "route": "gpt-4o-mini",
            "primary": "gpt-4o",
            "fallback_used": True,
            "error": "RuntimeError: overloaded",
        }
    ]
    broken = dict(routes)
    broken["gpt-4o-mini"] = ScriptedChatModel(script=[TimeoutError("also down")])
    agent = create_agent(
        default,
        tools=[search],
        middleware=[FlagmwMiddleware(client, routes=broken, fallbacks="model.fallbacks")],
    )
    with pytest.raises(TimeoutError, match="also down"):
        _run(agent, {"messages": [HumanMessage("hi")]}, _cfg("t-r2"), mode)
