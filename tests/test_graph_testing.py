"""flagmw.testing and the pytest plugin: pinning a literal RunConfig for code under test,
in-memory clients, and the ``flagmw_pin`` / ``flagmw_client`` fixtures."""

from __future__ import annotations

import asyncio
import importlib.metadata
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from graph_workers.support import LogState, linear_graph, make_registry
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, StateGraph
from langgraph.prebuilt import ToolNode

import flagmw
from flagmw import FlagClient, UnknownFlagError, ValidationError

# the plugin's fixtures, whether or not its pytest11 entry point is installed
from flagmw.pytest_plugin import flagmw_client, flagmw_pin  # noqa: F401
from flagmw.testing import (
    ScriptedChatModel,
    memory_client,
    pinned,
    pinned_config,
    tool_call,
)

REGISTRY = make_registry()

FLAGS_FILE = """\
flags:
  model.primary: {type: enum, choices: [gpt-4o, gpt-4o-mini], default: gpt-4o}
  agent.enabled: {type: bool, default: true, binding: hot, run_kill: true}
values:
  model.primary: gpt-4o-mini
"""


def model_name() -> str:
    """Code under test: reads a flag of the current run."""
    return str(flagmw.current()["model.primary"])


# -- pinned ---------------------------------------------------------------------------


def test_pinned_in_a_plain_function_and_nesting() -> None:
    assert flagmw.current(optional=True) is None
    with pinned({"model.primary": "o3"}) as rc:
        assert model_name() == "o3"
        assert flagmw.current() is rc
        with pinned({"model.primary": "gpt-4o-mini"}):
            assert model_name() == "gpt-4o-mini"
        assert model_name() == "o3"
    assert flagmw.current(optional=True) is None


def test_pinned_with_registry_checks_values_and_fills_defaults() -> None:
    rc = pinned_config({"model.primary": "o3"}, registry=REGISTRY, snapshot_rev=7)
    assert rc["model.primary"] == "o3"
    assert rc["loop.max_iterations"] == 8  # the registry default
    assert set(rc) == set(REGISTRY.keys())
    assert rc.snapshot_rev == 7
    assert rc.provenance["model.primary"].layer == "snapshot"
    assert rc.provenance["loop.max_iterations"].layer == "default"
    with pytest.raises(UnknownFlagError, match=r"did you mean 'model\.primary'"):
        pinned({"model.primray": "o3"}, registry=REGISTRY)
    with pytest.raises(ValidationError, match=r"loop\.max_iterations"):
        pinned({"loop.max_iterations": 500}, registry=REGISTRY)
    with pytest.raises(TypeError, match="JSON"):
        pinned({"model.primary": object()})


def test_pinned_accepts_a_real_run_config() -> None:
    client = memory_client(REGISTRY, {"values": {"model.primary": "o3"}})
    rc = client.resolve()
    with pinned(rc) as got:
        assert got is rc
        assert model_name() == "o3"


@pinned({"model.primary": "gpt-4o-mini"})
def test_pinned_as_a_decorator() -> None:
    assert model_name() == "gpt-4o-mini"


@pinned({"model.primary": "o3"})
async def test_pinned_as_a_decorator_on_async_code() -> None:
    async def inner() -> str:
        await asyncio.sleep(0)
        return model_name()

    assert await asyncio.create_task(inner()) == "o3"


async def test_pinned_as_async_context_manager() -> None:
    async with pinned({"model.primary": "o3"}):
        assert await asyncio.to_thread(model_name) == "o3"  # copied into the thread
    assert flagmw.current(optional=True) is None


def test_pinned_reaches_nodes_and_tool_node_threads_of_an_unwrapped_graph() -> None:
    @tool
    def which_model() -> str:
        """Which model the run uses."""
        return model_name()

    seen: list[str] = []

    def node(state: LogState) -> dict[str, Any]:
        seen.append(model_name())
        return {}

    class State(LogState):
        messages: list[Any]

    builder = StateGraph(State)
    builder.add_node("node", node)
    builder.add_node("tools", ToolNode([which_model]))
    builder.add_edge(START, "node")
    builder.add_edge("node", "tools")
    graph = builder.compile()
    with pinned({"model.primary": "o3"}):
        out = graph.invoke({"log": [], "messages": [tool_call("which_model")]})
    assert seen == ["o3"]
    assert out["messages"][-1].content == "o3"


def test_a_wrapped_run_takes_precedence_over_a_test_pin() -> None:
    client = memory_client(REGISTRY, {"values": {"model.primary": "o3"}})
    graph = flagmw.wrap(linear_graph(("a",)), client, tracer=False)
    with pinned({"model.primary": "gpt-4o"}):
        out = graph.invoke({"log": []})
        assert model_name() == "gpt-4o"
    assert out["log"][0]["pinned"]["model.primary"] == "o3"


# -- memory_client ----------------------------------------------------------------------


def test_memory_client_from_registry_and_document() -> None:
    client = memory_client(REGISTRY)
    assert client.snapshot_rev is None  # nothing published: defaults only
    assert client.resolve()["model.primary"] == "gpt-4o"
    client = memory_client(REGISTRY, {"values": {"model.primary": "o3"}}, environment="staging")
    assert client.snapshot_rev == 1
    assert client.environment == "staging"
    assert client.history()[0].author == "flagmw.testing"


def test_memory_client_from_one_flags_file(tmp_path: Path) -> None:
    path = tmp_path / "flags.yaml"
    path.write_text(FLAGS_FILE)
    client = memory_client(path)
    assert client.snapshot_rev == 1
    assert client.resolve()["model.primary"] == "gpt-4o-mini"
    assert client.registry.run_kill_keys == frozenset({"agent.enabled"})
    with pytest.raises(ValidationError):
        memory_client(path, {"values": {"model.primary": "gpt-5"}})


def test_memory_client_clock_drives_kill_expiry() -> None:
    now = [1_700_000_000.0]
    client = memory_client(REGISTRY, None, clock=lambda: now[0])
    client.kill("agent.enabled", reason="test", actor="t", ttl="10m")
    assert client.resolve()["agent.enabled"] is False
    now[0] += 601
    assert client.resolve()["agent.enabled"] is True


def test_scripted_model_is_re_exported() -> None:
    model = ScriptedChatModel(script=[tool_call("search", {"q": "x"}), "done"])
    assert model.invoke("hi").tool_calls[0]["name"] == "search"
    assert model.invoke("again").content == "done"


# -- the pytest fixtures ----------------------------------------------------------------


def test_flagmw_pin_fixture(flagmw_pin: Callable[..., Any]) -> None:  # noqa: F811
    rc = flagmw_pin({"model.primary": "o3"}, registry=REGISTRY)
    assert flagmw.current() is rc
    flagmw_pin({"model.primary": "gpt-4o"})  # replaces the pin
    assert model_name() == "gpt-4o"


async def test_flagmw_pin_fixture_in_async_tests(
    flagmw_pin: Callable[..., Any],  # noqa: F811
) -> None:
    flagmw_pin({"model.primary": "o3"})
    assert model_name() == "o3"


def test_flagmw_client_fixture(flagmw_client: Callable[..., FlagClient]) -> None:  # noqa: F811
    client = flagmw_client(REGISTRY, {"values": {"model.primary": "o3"}})
    graph = flagmw.wrap(linear_graph(("a",), checkpointer=InMemorySaver()), client, tracer=False)
    out = graph.invoke({"log": []}, {"configurable": {"thread_id": "t"}})
    assert out["log"][0]["pinned"]["model.primary"] == "o3"


def test_the_plugin_loads_in_a_pytest_session(tmp_path: Path) -> None:
    """A separate pytest process uses the fixtures through the plugin alone."""
    (tmp_path / "test_user.py").write_text(
        textwrap.dedent(
            """
            import flagmw

            def test_pin(flagmw_pin):
                flagmw_pin({"model.primary": "o3"})
                assert flagmw.current()["model.primary"] == "o3"

            def test_pin_is_gone_after_the_previous_test():
                assert flagmw.current(optional=True) is None

            def test_client(flagmw_client, tmp_path):
                path = tmp_path / "flags.yaml"
                path.write_text(FLAGS)
                assert flagmw_client(path).resolve()["model.primary"] == "gpt-4o-mini"

            FLAGS = '''%s'''
            """
        )
        % FLAGS_FILE
    )
    registered = any(
        ep.value == "flagmw.pytest_plugin"
        for ep in importlib.metadata.entry_points(group="pytest11")
    )
    plugin = [] if registered else ["-p", "flagmw.pytest_plugin"]
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *plugin, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 passed" in done.stdout


async def test_one_pinned_object_entered_by_concurrent_tasks() -> None:
    """Bug 3.9: the token stack of ``pinned`` was shared by every context, so two
    asyncio tasks entering the same ``pinned`` object and leaving in the other order
    reset each other's token (ValueError: created in a different Context)."""
    pin = pinned({"prompt.version": 3})
    first_in, second_in, first_out = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def first() -> int:
        async with pin:
            first_in.set()
            await second_in.wait()
            value = int(flagmw.current()["prompt.version"])
        first_out.set()  # leaves while the second task is still inside
        assert flagmw.current(optional=True) is None
        return value

    async def second() -> int:
        await first_in.wait()
        async with pin:
            second_in.set()
            await first_out.wait()
            value = int(flagmw.current()["prompt.version"])
        assert flagmw.current(optional=True) is None
        return value

    assert await asyncio.gather(first(), second()) == [3, 3]
    assert flagmw.current(optional=True) is None


def test_run_info_tells_step_resume_and_thread() -> None:
    """flagmw.run_info(): the step, resumed flag and thread of the run, in nodes."""
    from langgraph.types import Command, interrupt

    from flagmw.langgraph.run import RunInfo

    seen: list[RunInfo] = []

    def ask(name: str, obs: dict[str, Any]) -> None:
        seen.append(flagmw.run_info())
        interrupt("ok?")

    def note(name: str, obs: dict[str, Any]) -> None:
        seen.append(flagmw.run_info())

    client = memory_client(make_registry())
    graph = flagmw.wrap(
        linear_graph(("a", "b"), {"a": note, "b": ask}, checkpointer=InMemorySaver()),
        client,
        name="info",
        tracer=False,
    )
    config = {"configurable": {"thread_id": "t-info"}}
    graph.invoke({"log": []}, config)
    graph.invoke(Command(resume="yes"), config)
    assert [(i.step, i.resumed, i.thread_id, i.name) for i in seen] == [
        (2, False, "t-info", "info"),
        (3, False, "t-info", "info"),
        (1, True, "t-info", "info"),
    ]
    assert seen[0].pin_source == "resolved"
    assert seen[2].pin_source == "checkpoint"
    assert not seen[0].nested
    assert flagmw.run_info(optional=True) is None
    with pytest.raises(flagmw.NoRunConfigError):
        flagmw.run_info()
