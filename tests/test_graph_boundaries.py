"""flagmw.wrap: step boundaries, hot flags, run kills (drain and resume) and observers.

Step indexes: ``RunDrained.step`` and ``HotChange.step`` count the step boundaries of one
invocation from 0. For a new run of a graph without subgraphs that is LangGraph's
superstep number (``langgraph_step`` in the node's metadata): ``__start__`` runs at
step 0, the first node at step 1.
"""

from __future__ import annotations

import contextlib
import contextvars
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from graph_workers.support import linear_graph, make_registry, publish, rev_of
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.config import get_stream_writer
from langgraph.errors import GraphDrained
from langgraph.runtime import RunControl
from langgraph.types import Command, interrupt

import flagmw
from flagmw import FlagClient, MemoryStore
from flagmw.langgraph.drain import RunDrained
from flagmw.langgraph.keys import SPAN_KEY
from flagmw.langgraph.run import RunState

ACTIVE: contextvars.ContextVar[str | None] = contextvars.ContextVar("active", default=None)


class Recorder:
    """A RunObserver that records everything, and whether it is active in nodes."""

    def __init__(self, span_prefix: str | None = None) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.span_prefix = span_prefix
        self.runs: list[RunState] = []

    def run_started(self, run: RunState) -> None:
        self.runs.append(run)
        self.calls.append(("started", run.resumed, run.previous_span_ref))
        if self.span_prefix:
            run.span_ref = f"{self.span_prefix}-{len(self.runs)}"

    @contextlib.contextmanager
    def activate(self, run: RunState) -> Iterator[None]:
        token = ACTIVE.set(run.name)
        try:
            yield
        finally:
            ACTIVE.reset(token)

    def run_event(self, run: RunState, name: str, attributes: Mapping[str, Any]) -> None:
        self.calls.append(("event", name, dict(attributes)))

    def run_ended(self, run: RunState, outcome: str, error: BaseException | None) -> None:
        self.calls.append(("ended", outcome, error))

    def ended(self) -> list[tuple[str, BaseException | None]]:
        return [(c[1], c[2]) for c in self.calls if c[0] == "ended"]

    def events(self, name: str) -> list[dict[str, Any]]:
        return [c[2] for c in self.calls if c[0] == "event" and c[1] == name]


class Broken:
    """An observer that raises everywhere."""

    def run_started(self, run: RunState) -> None:
        raise RuntimeError("observer bug")

    def activate(self, run: RunState) -> Any:
        raise RuntimeError("observer bug")

    def run_event(self, run: RunState, name: str, attributes: Mapping[str, Any]) -> None:
        raise RuntimeError("observer bug")

    def run_ended(self, run: RunState, outcome: str, error: BaseException | None) -> None:
        raise RuntimeError("observer bug")


class BrokenExit(Recorder):
    @contextlib.contextmanager
    def activate(self, run: RunState) -> Iterator[None]:
        yield
        raise RuntimeError("exit bug")


@pytest.fixture
def client() -> Iterator[FlagClient]:
    c = FlagClient(make_registry(), MemoryStore(), environment="test")
    publish(c, 1)
    yield c
    c.close()


def cfg(**configurable: Any) -> dict[str, Any]:
    return {"configurable": {"thread_id": f"t-{uuid.uuid4().hex[:8]}", **configurable}}


def wrapped(client: FlagClient, hooks: Any = None, **kw: Any) -> Any:
    names = kw.pop("names", ("a", "b", "c", "d"))
    saver = kw.pop("saver", InMemorySaver())
    return flagmw.wrap(linear_graph(names, hooks, checkpointer=saver), client, tracer=False, **kw)


# -- hot flags ------------------------------------------------------------------------


def test_hot_change_reaches_the_next_step_pinned_flags_never_change(client: FlagClient) -> None:
    made: dict[str, Any] = {}

    def change(name: str, seen: dict[str, Any]) -> None:
        made["ov"] = client.override(
            "loop.max_iterations", 3, reason="runaway loops", actor="oncall", ttl="1h"
        )
        publish(client, 2)  # also changes every pinned flag: must not reach this run

    rec = Recorder()
    graph = wrapped(client, {"b": change}, observers=[rec])
    out = graph.invoke({"log": []}, cfg())
    by = {e["node"]: e for e in out["log"]}
    assert [by[n]["hot"]["loop.max_iterations"] for n in "abcd"] == [8, 8, 3, 3]
    assert {rev_of(by[n]["pinned"]) for n in "abcd"} == {1}
    assert {by[n]["rev"] for n in "abcd"} == {1}
    assert [by[n]["langgraph_step"] for n in "abcd"] == [1, 2, 3, 4]
    (event,) = rec.events("flag_changed")
    assert event == {
        "key": "loop.max_iterations",
        "old": 8,
        "new": 3,
        "layer": "override",
        "override_id": made["ov"].id,
        "step": 3,  # the boundary before "c", the first step after the change
    }
    run = rec.runs[0]
    (change_record,) = run.rc.changes
    assert change_record.step == 3
    assert change_record.key == "loop.max_iterations"
    assert run.pinned.config_hash == by["a"]["hash"] != run.rc.config_hash


def test_nothing_changed_means_no_re_resolution(
    client: FlagClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    original = client.resolve_hot
    monkeypatch.setattr(
        client, "resolve_hot", lambda rc, **kw: calls.append(1) or original(rc, **kw)
    )
    out = wrapped(client, names=tuple("abcdefgh")).invoke({"log": []}, cfg())
    assert len(out["log"]) == 8
    assert calls == []


def test_run_kill_drains_before_the_next_step_and_resumes_after_unkill(
    client: FlagClient,
) -> None:
    made: dict[str, Any] = {}

    def kill(name: str, seen: dict[str, Any]) -> None:
        made["ov"] = client.kill(
            "agent.enabled", reason="CRM webhook returns 500", actor="oncall", ttl="1h"
        )

    rec = Recorder()
    graph = wrapped(client, {"b": kill}, observers=[rec])
    config = cfg()
    with pytest.raises(RunDrained) as err:
        graph.invoke({"log": []}, config)
    drained = err.value
    ov = made["ov"]
    assert (drained.key, drained.reason, drained.override_id, drained.step) == (
        "agent.enabled",
        "CRM webhook returns 500",
        ov.id,
        3,
    )
    assert isinstance(drained, GraphDrained)
    assert isinstance(drained, flagmw.FlagmwError)
    assert ov.id in str(drained)
    assert "invoke(None, config)" in str(drained)
    state = graph.get_state(config)
    assert state.next == ("c",)
    assert [e["node"] for e in state.values["log"]] == ["a", "b"]
    assert rec.ended()[-1][0] == "drained"
    assert rec.ended()[-1][1] is drained
    assert rec.events("run_drained") == [
        {"key": "agent.enabled", "reason": "CRM webhook returns 500", "override_id": ov.id,
         "step": 3}
    ]  # fmt: skip

    # still killed: the resume drains again before its first step, nothing runs
    with pytest.raises(RunDrained) as again:
        graph.invoke(None, config)
    assert again.value.step == 0
    assert graph.get_state(config).next == ("c",)

    publish(client, 2)
    client.unkill(ov.id, actor="oncall", reason="CRM fixed")
    out = graph.invoke(None, config)
    by = {e["node"]: e for e in out["log"]}
    assert list(by) == ["a", "b", "c", "d"]
    assert by["c"]["resumed"]
    assert by["c"]["hash"] == by["a"]["hash"]
    assert by["c"]["hot"]["agent.enabled"] is True
    assert [o for o, _ in rec.ended()] == ["drained", "drained", "completed"]


def test_run_kill_in_force_before_the_run_drains_it_at_step_zero(client: FlagClient) -> None:
    ov = client.kill("agent.enabled", reason="maintenance", actor="ops", ttl="1h")
    graph = wrapped(client)
    config = cfg()
    with pytest.raises(RunDrained) as err:
        graph.invoke({"log": []}, config)
    assert err.value.step == 0
    assert err.value.override_id == ov.id
    assert graph.get_state(config).values.get("log", []) == []
    client.unkill(ov.id, actor="ops", reason="done")
    assert [e["node"] for e in graph.invoke(None, config)["log"]] == ["a", "b", "c", "d"]


def test_a_tenant_scoped_kill_only_drains_that_tenants_runs(client: FlagClient) -> None:
    client.kill("agent.enabled", reason="abuse", actor="ops", ttl="1h", tenant="evil")
    graph = wrapped(client)
    with pytest.raises(RunDrained):
        graph.invoke({"log": []}, cfg(tenant_id="evil"))
    assert len(graph.invoke({"log": []}, cfg(tenant_id="acme"))["log"]) == 4


async def test_async_drain_and_resume(client: FlagClient) -> None:
    made: dict[str, Any] = {}

    def kill(name: str, seen: dict[str, Any]) -> None:
        made["ov"] = client.kill("agent.enabled", reason="outage", actor="oncall", ttl="1h")

    graph = wrapped(client, {"a": kill})
    config = cfg()
    with pytest.raises(RunDrained) as err:
        await graph.ainvoke({"log": []}, config)
    assert err.value.step == 2
    client.unkill(made["ov"].id, actor="oncall", reason="fixed")
    chunks = [c async for c in graph.astream(None, config, stream_mode="updates")]
    assert [next(iter(c)) for c in chunks] == ["b", "c", "d"]


def test_user_control_still_drains_and_is_not_a_run_kill(client: FlagClient) -> None:
    control = RunControl()
    graph = wrapped(client, {"b": lambda n, s: control.request_drain("SIGTERM")})
    config = cfg()
    with pytest.raises(GraphDrained) as err:
        graph.invoke({"log": []}, config, control=control)
    assert not isinstance(err.value, RunDrained)
    assert err.value.reason == "SIGTERM"
    assert graph.get_state(config).next == ("c",)
    # the control a node sees (runtime.control) is the run's: draining it works too
    from langgraph.runtime import get_runtime

    graph = wrapped(client, {"a": lambda n, s: get_runtime().control.request_drain("deploy")})
    with pytest.raises(GraphDrained, match="deploy"):
        graph.invoke({"log": []}, cfg())


# -- observers ------------------------------------------------------------------------


def test_observer_lifecycle_and_activation_around_each_step(client: FlagClient) -> None:
    rec = Recorder()
    inside: list[str | None] = []
    graph = wrapped(client, {n: lambda n, s: inside.append(ACTIVE.get()) for n in "abcd"},
                    observers=[rec], name="agent")  # fmt: skip
    between: list[str | None] = []
    for _ in graph.stream({"log": []}, cfg(), stream_mode="updates"):
        between.append(ACTIVE.get())  # the consumer never sees the run's context
    assert inside == ["agent"] * 4
    assert between == [None] * 4
    assert rec.calls[0] == ("started", False, None)
    assert rec.ended() == [("completed", None)]


@pytest.mark.parametrize(
    "mode",
    ["values", "updates", "messages", "custom", "debug", "checkpoints", "tasks",
     ["messages", "custom"]],
)  # fmt: skip
def test_interrupt_is_reported_in_every_stream_mode(client: FlagClient, mode: Any) -> None:
    rec = Recorder()

    def ask(name: str, seen: dict[str, Any]) -> dict[str, Any]:
        get_stream_writer()({"node": name})
        return {"answer": interrupt("ok?")}

    graph = wrapped(client, {"b": ask}, observers=[rec])
    config = cfg()
    list(graph.stream({"log": []}, config, stream_mode=mode))
    assert rec.ended() == [("interrupted", None)]
    list(graph.stream(Command(resume="y"), config, stream_mode=mode))
    assert rec.ended()[-1] == ("completed", None)


def test_breakpoints_count_as_interrupts(client: FlagClient) -> None:
    rec = Recorder()
    graph = wrapped(client, observers=[rec])
    config = cfg()
    graph.invoke({"log": []}, config, interrupt_before=["c"])
    assert rec.ended() == [("interrupted", None)]
    graph.invoke(None, config)
    assert rec.ended()[-1] == ("completed", None)


def test_errors_and_abandoned_streams_are_reported_once(client: FlagClient) -> None:
    rec = Recorder()

    def boom(name: str, seen: dict[str, Any]) -> None:
        raise ValueError("tool exploded")

    graph = wrapped(client, {"c": boom}, observers=[rec])
    with pytest.raises(ValueError, match="tool exploded"):
        graph.invoke({"log": []}, cfg())
    ((outcome, error),) = rec.ended()
    assert outcome == "error"
    assert isinstance(error, ValueError)

    rec2 = Recorder()
    stream = wrapped(client, observers=[rec2]).stream({"log": []}, cfg(), stream_mode="updates")
    next(stream)
    stream.close()  # the consumer stops early
    ((outcome, error),) = rec2.ended()
    assert outcome == "cancelled"  # not an error of the run: the caller stopped listening
    assert isinstance(error, GeneratorExit)


def test_a_broken_observer_never_breaks_the_run(client: FlagClient) -> None:
    rec = BrokenExit()
    graph = wrapped(client, observers=[Broken(), rec])
    out = graph.invoke({"log": []}, cfg())
    assert len(out["log"]) == 4
    assert rec.ended() == [("completed", None)]
    # and an observer cannot swallow the run's exception
    boom = wrapped(client, {"a": lambda n, s: 1 / 0}, observers=[Broken(), BrokenExit()])
    with pytest.raises(ZeroDivisionError):
        boom.invoke({"log": []}, cfg())


def test_span_reference_is_stored_and_handed_to_the_resume(client: FlagClient) -> None:
    saver = InMemorySaver()
    rec = Recorder(span_prefix="span")
    graph = wrapped(
        client, {"b": lambda n, s: {"answer": interrupt("?")}}, observers=[rec], saver=saver
    )
    config = cfg()
    graph.invoke({"log": []}, config)
    graph.invoke(Command(resume="y"), config)
    starts = [c for c in rec.calls if c[0] == "started"]
    assert starts == [("started", False, None), ("started", True, "span-1")]
    spans = [
        t.metadata[SPAN_KEY]
        for t in saver.list({"configurable": {**config["configurable"], "checkpoint_ns": ""}})
        if SPAN_KEY in t.metadata
    ]
    assert spans == ["span-2", "span-1"]  # newest first: one per invocation


def test_hot_values_are_brought_up_to_date_on_resume(client: FlagClient) -> None:
    rec = Recorder()
    graph = wrapped(client, {"b": lambda n, s: {"answer": interrupt("?")}}, observers=[rec])
    config = cfg()
    graph.invoke({"log": []}, config)
    ov = client.kill("tools.refund_api.enabled", reason="fraud", actor="oncall", ttl="1h")
    out = graph.invoke(Command(resume="y"), config)
    b = out["log"][-3]
    assert b["node"] == "b"
    assert b["hot"]["tools.refund_api.enabled"] is False
    assert rec.events("flag_changed")[-1] == {
        "key": "tools.refund_api.enabled",
        "old": True,
        "new": False,
        "layer": "override",
        "override_id": ov.id,
        "step": 0,
    }
    assert rec.calls.index(("started", True, None)) < len(rec.calls) - 2


def test_a_failing_store_or_resolution_never_crashes_the_run(
    client: FlagClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    graph = wrapped(client, {"a": lambda n, s: client.override(
        "loop.max_iterations", 3, reason="x", actor="t", ttl="1h")})  # fmt: skip

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("store driver bug")

    monkeypatch.setattr(client, "resolve_hot", broken)
    with caplog.at_level("ERROR", logger="flagmw"):
        out = graph.invoke({"log": []}, cfg())
    assert [e["hot"]["loop.max_iterations"] for e in out["log"]] == [8, 8, 8, 8]  # kept
    assert "step boundary check failed" in caplog.text

    caplog.clear()
    calls = {"n": 0}
    poll = client.poll

    def flaky() -> int:
        calls["n"] += 1
        if calls["n"] > 2:  # resolution at run start works, boundaries fail
            raise RuntimeError("mmap vanished")
        return poll()

    monkeypatch.setattr(client, "poll", flaky)
    with caplog.at_level("ERROR", logger="flagmw"):
        out = wrapped(client).invoke({"log": []}, cfg())
    assert len(out["log"]) == 4
    assert "client.poll() failed" in caplog.text


async def test_a_cancelled_async_run_is_reported_once(client: FlagClient) -> None:
    import asyncio

    from graph_workers.support import LogState
    from langgraph.graph import START, StateGraph

    started = asyncio.Event()

    async def slow(state: LogState) -> dict[str, Any]:
        started.set()
        await asyncio.sleep(30)
        return {}

    builder = StateGraph(LogState)
    builder.add_node("slow", slow)
    builder.add_edge(START, "slow")
    rec = Recorder()
    graph = flagmw.wrap(builder.compile(checkpointer=InMemorySaver()), client, tracer=False,
                        observers=[rec])  # fmt: skip
    task = asyncio.create_task(graph.ainvoke({"log": []}, cfg()))
    await asyncio.wait_for(started.wait(), 30)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    ((outcome, error),) = rec.ended()
    assert outcome == "cancelled"
    assert isinstance(error, asyncio.CancelledError)


@pytest.mark.parametrize("as_manager", [False, True])
async def test_user_callbacks_still_see_every_run_and_interrupts_are_reported_async(
    client: FlagClient, as_manager: bool
) -> None:
    from langchain_core.callbacks import BaseCallbackHandler, CallbackManager

    class Names(BaseCallbackHandler):
        def __init__(self) -> None:
            self.names: list[str] = []

        def on_chain_start(self, serialized: Any, inputs: Any, **kwargs: Any) -> None:
            self.names.append(kwargs.get("name") or "")

    handler = Names()
    callbacks: Any = CallbackManager([handler], inheritable_handlers=[handler])
    rec = Recorder()
    graph = wrapped(client, {"b": lambda n, s: {"answer": interrupt("?")}}, observers=[rec])
    config = {**cfg(), "callbacks": callbacks if as_manager else [handler]}
    chunks = [c async for c in graph.astream({"log": []}, config, stream_mode="custom")]
    assert chunks == []
    assert rec.ended() == [("interrupted", None)]
    assert {"LangGraph", "a", "b"} <= set(handler.names)  # child runs still reach it


# -- observers that need no activation --------------------------------------------------


class Counting(Recorder):
    """A Recorder that counts its activations and answers ``activates``."""

    def __init__(self, answer: Any) -> None:
        super().__init__()
        self.answer = answer
        self.activations = 0

    @contextlib.contextmanager
    def activate(self, run: RunState) -> Iterator[None]:
        self.activations += 1
        yield

    def activates(self, run: RunState) -> bool:
        if isinstance(self.answer, Exception):
            raise self.answer
        return bool(self.answer)


@pytest.mark.parametrize(
    ("answers", "activated"),
    [
        ((False,), False),  # the only observer needs no activation: never activated
        ((True,), True),
        ((False, True), True),  # one that does: every observer is activated
        ((RuntimeError("observer bug"),), True),  # a failing answer: activated
    ],
)
def test_observers_that_say_they_need_no_activation_are_not_activated(
    client: FlagClient, answers: tuple[Any, ...], activated: bool
) -> None:
    observers = [Counting(a) for a in answers]
    graph = wrapped(client, observers=observers)
    graph.invoke({"log": []}, cfg())
    for obs in observers:
        assert (obs.activations > 0) is activated
        assert [c[0] for c in obs.calls] == ["started", "ended"]


@pytest.mark.parametrize("sdk", [False, True])
def test_the_trace_writer_is_activated_only_with_an_sdk(client: FlagClient, sdk: bool) -> None:
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider

    from flagmw.tracing.writer import RunTracer

    provider = TracerProvider() if sdk else trace.NoOpTracerProvider()
    tracer = RunTracer(tracer_provider=provider)
    calls: list[RunState] = []
    real = tracer.activate

    def counted(run: RunState) -> Any:
        calls.append(run)
        return real(run)

    tracer.activate = counted  # type: ignore[method-assign]
    graph = flagmw.wrap(
        linear_graph(("a", "b"), None, checkpointer=InMemorySaver()), client, tracer=tracer
    )
    graph.invoke({"log": []}, cfg())
    assert bool(calls) is sdk
