"""The checkpointer delegate (issue 7, §2): every public method of ``BaseCheckpointSaver``
reaches the inner saver — including one added upstream later —, savers written before
``put_writes`` took ``task_path`` still work, and the ``__interrupt__`` channel name is
the one LangGraph writes."""

from __future__ import annotations

import asyncio
import inspect
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from graph_workers.support import linear_graph, make_registry, publish
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command, interrupt

import flagmw
from flagmw import FlagClient, MemoryStore
from flagmw.langgraph.checkpointer import FORWARDED, INTERRUPT_CHANNEL, PinningCheckpointer
from flagmw.testing import pinned

SENTINEL = object()

#: every public method BaseCheckpointSaver defines (in the installed langgraph-checkpoint)
PUBLIC = sorted(
    name
    for name, member in vars(BaseCheckpointSaver).items()
    if not name.startswith("_") and inspect.isfunction(member)
)


def _recording(name: str, member: Callable[..., Any]) -> Callable[..., Any]:
    if inspect.iscoroutinefunction(member):

        async def coro(self: Recorder, *args: Any, **kwargs: Any) -> Any:
            self.calls.append((name, args, kwargs))
            return SENTINEL

        return coro
    if inspect.isasyncgenfunction(member):

        async def agen(self: Recorder, *args: Any, **kwargs: Any) -> Any:
            self.calls.append((name, args, kwargs))
            yield SENTINEL

        return agen

    def sync(self: Recorder, *args: Any, **kwargs: Any) -> Any:
        self.calls.append((name, args, kwargs))
        return self if name == "with_allowlist" else SENTINEL

    return sync


class Recorder(BaseCheckpointSaver[Any]):
    """A saver whose every public method records its call."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []


for _name in PUBLIC:
    setattr(Recorder, _name, _recording(_name, vars(BaseCheckpointSaver)[_name]))


def arguments(method: Callable[..., Any]) -> tuple[list[Any], dict[str, Any]]:
    """Plausible arguments for every required parameter of a base-class method."""
    config = {"configurable": {"thread_id": "t", "checkpoint_ns": ""}}
    by_name: dict[str, Any] = {
        "config": config,
        "writes": [("channel", 1)],
        "checkpoint": {"id": "c"},
        "metadata": {},
        "new_versions": {},
        "thread_ids": ["t"],
        "run_ids": ["r"],
        "channels": ["channel"],
    }
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    for param in list(inspect.signature(method).parameters.values())[1:]:
        if param.default is not param.empty or param.kind in (
            param.VAR_POSITIONAL,
            param.VAR_KEYWORD,
        ):
            continue
        value = by_name.get(param.name, f"<{param.name}>")
        if param.kind is param.KEYWORD_ONLY:
            kwargs[param.name] = value
        else:
            args.append(value)
    return args, kwargs


def test_the_base_class_has_the_methods_we_expect() -> None:
    # a sanity check of the enumeration itself (langgraph-checkpoint 4.x)
    assert {"get_tuple", "list", "put", "put_writes", "delete_thread", "prune"} <= set(PUBLIC)
    assert {"aget_tuple", "alist", "aput", "aput_writes", "adelete_thread", "aprune"} <= set(PUBLIC)


@pytest.mark.parametrize("name", PUBLIC)
def test_every_public_method_is_forwarded_to_the_inner_saver(name: str) -> None:
    inner = Recorder()
    delegate = PinningCheckpointer(inner)
    assert getattr(PinningCheckpointer, name) is not getattr(BaseCheckpointSaver, name)
    args, kwargs = arguments(vars(BaseCheckpointSaver)[name])
    result = getattr(delegate, name)(*args, **kwargs)
    if inspect.iscoroutine(result):
        result = asyncio.run(result)
    elif inspect.isasyncgen(result):

        async def drain(gen: Any) -> list[Any]:
            return [x async for x in gen]

        result = asyncio.run(drain(result))
    elif isinstance(result, Iterator):
        result = list(result)
    assert [call[0] for call in inner.calls] == [name]
    _, got_args, got_kwargs = inner.calls[0]
    if name not in ("put_writes", "aput_writes"):  # these also pass task_path on
        assert (list(got_args), got_kwargs) == (args, kwargs)
    if name == "with_allowlist":
        assert result is delegate  # the inner saver returned itself
    elif name not in FORWARDED:  # put / aput / put_writes / aput_writes: the inner result
        assert result in (SENTINEL, [SENTINEL], None)
    else:
        assert result in (SENTINEL, [SENTINEL])


def test_forwarded_is_every_public_method_but_the_ones_it_changes() -> None:
    changed = {"put", "aput", "put_writes", "aput_writes", "with_allowlist"}
    assert set(FORWARDED) == set(PUBLIC) - changed
    for name in FORWARDED:  # the signature and async-ness of the base method
        mine, base = getattr(PinningCheckpointer, name), vars(BaseCheckpointSaver)[name]
        assert inspect.signature(mine) == inspect.signature(base)
        assert inspect.iscoroutinefunction(mine) == inspect.iscoroutinefunction(base)


def test_attributes_and_properties_are_the_inner_savers() -> None:
    inner = InMemorySaver()
    delegate = PinningCheckpointer(inner)
    assert delegate.serde is inner.serde
    assert delegate.config_specs == inner.config_specs
    assert delegate.storage is inner.storage  # anything else: __getattr__


def test_a_method_added_upstream_is_forwarded_too() -> None:
    """A method BaseCheckpointSaver gains in a later release (simulated before import)."""
    script = textwrap.dedent(
        """
        from langgraph.checkpoint.base import BaseCheckpointSaver
        from langgraph.checkpoint.memory import InMemorySaver

        def brand_new(self, thread_id):
            raise NotImplementedError

        async def abrand_new(self, thread_id):
            raise NotImplementedError

        BaseCheckpointSaver.brand_new = brand_new
        BaseCheckpointSaver.abrand_new = abrand_new

        from flagmw.langgraph.checkpointer import FORWARDED, PinningCheckpointer
        import asyncio

        class Inner(InMemorySaver):
            def brand_new(self, thread_id):
                return ("inner", thread_id)

            async def abrand_new(self, thread_id):
                return ("ainner", thread_id)

        assert "brand_new" in FORWARDED and "abrand_new" in FORWARDED
        d = PinningCheckpointer(Inner())
        print(d.brand_new("t"), asyncio.run(d.abrand_new("t")))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "('inner', 't') ('ainner', 't')"


# -- put_writes and the interrupt channel ---------------------------------------------


@pytest.fixture
def client() -> Iterator[FlagClient]:
    c = FlagClient(make_registry(), MemoryStore(), environment="test")
    publish(c, 1)
    yield c
    c.close()


def ask(name: str, seen: dict[str, Any]) -> dict[str, Any]:
    return {"answer": interrupt(f"approve {name}?")}


class ChannelLog(InMemorySaver):
    """Records the channels of every pending write."""

    def __init__(self) -> None:
        super().__init__()
        self.channels: list[str] = []

    def put_writes(self, config: Any, writes: Any, task_id: str, task_path: str = "") -> None:
        self.channels += [channel for channel, _ in writes]
        super().put_writes(config, writes, task_id, task_path)


def test_interrupt_channel_is_the_one_langgraph_writes(client: FlagClient) -> None:
    """LangGraph exports no public constant for it: a real ``interrupt()`` proves the name."""
    saver = ChannelLog()
    bare = linear_graph(("a", "b"), {"b": ask}, checkpointer=saver)
    with pinned(client.resolve()):
        bare.invoke({"log": []}, {"configurable": {"thread_id": "bare"}})
    assert INTERRUPT_CHANNEL in saver.channels
    # and the wrapper hears it: the run ends "interrupted"
    ended: list[str] = []

    class Outcome:
        def run_started(self, run: Any) -> None:
            pass

        def activate(self, run: Any) -> Any:
            import contextlib

            return contextlib.nullcontext()

        def run_event(self, run: Any, name: str, attributes: Any) -> None:
            pass

        def run_ended(self, run: Any, outcome: str, error: Any) -> None:
            ended.append(outcome)

    graph = flagmw.wrap(bare, client, tracer=False, observers=[Outcome()])
    graph.invoke({"log": []}, {"configurable": {"thread_id": "wrapped"}})
    assert ended == ["interrupted"]


class OldSaver(InMemorySaver):
    """A saver written before ``put_writes`` took ``task_path``."""

    def __init__(self) -> None:
        super().__init__()
        self.task_ids: list[str] = []

    def put_writes(self, config: Any, writes: Any, task_id: str) -> None:  # type: ignore[override]
        self.task_ids.append(task_id)
        super().put_writes(config, writes, task_id)


def test_a_saver_without_task_path_still_works(client: FlagClient) -> None:
    saver = OldSaver()
    graph = flagmw.wrap(
        linear_graph(("a", "b"), {"b": ask}, checkpointer=saver), client, tracer=False
    )
    config = {"configurable": {"thread_id": f"t-{uuid.uuid4().hex[:8]}"}}
    graph.invoke({"log": []}, config)
    out = graph.invoke(Command(resume="ok"), config)
    assert [e["node"] for e in out["log"]] == ["a", "b"]
    assert saver.task_ids  # its put_writes was called, without task_path
    assert PinningCheckpointer(saver)._writes_task_path is False
    assert PinningCheckpointer(InMemorySaver())._writes_task_path is True


def test_the_flagmw_metadata_is_stripped_once_per_run_and_follows_the_dict() -> None:
    from flagmw.langgraph.checkpointer import _strip_flagmw
    from flagmw.langgraph.run import RunState
    from flagmw.testing import pinned_config

    run = RunState(client=None, rc=pinned_config({}), name="g")
    meta = {"flagmw.config_hash": "sha256:x", "flagmw.snapshot_rev": 3, "thread_id": "t"}
    first = _strip_flagmw({"metadata": meta, "tags": []}, run)
    second = _strip_flagmw({"metadata": meta, "tags": ["x"]}, run)
    assert first == {"metadata": {"thread_id": "t"}, "tags": []}
    assert second == {"metadata": {"thread_id": "t"}, "tags": ["x"]}
    assert first["metadata"] is not second["metadata"]  # each put gets its own copy
    assert run.stripped is not None
    assert run.stripped[0] is meta
    meta["user"] = "u"  # the dict changed: computed again
    assert _strip_flagmw({"metadata": meta}, run) == {"metadata": {"thread_id": "t", "user": "u"}}
    other = {"thread_id": "t2", "flagmw.x": 1}  # another dict (a subgraph's loop)
    assert _strip_flagmw({"metadata": other}, run) == {"metadata": {"thread_id": "t2"}}
    plain = {"metadata": {"thread_id": "t"}}
    assert _strip_flagmw(plain, run) is plain  # nothing to strip: the same config
    assert _strip_flagmw(plain) is plain


def test_the_per_step_forwarded_methods_go_straight_to_the_inner_saver() -> None:
    from langgraph.checkpoint.memory import InMemorySaver

    from flagmw.langgraph.checkpointer import _HOT_FORWARDED, FORWARDED, PinningCheckpointer

    inner = InMemorySaver()
    cp = PinningCheckpointer(inner)
    assert _HOT_FORWARDED == ("get_next_version",)
    assert set(_HOT_FORWARDED) <= set(FORWARDED)
    for name in _HOT_FORWARDED:
        method = getattr(cp, name)
        assert method.__self__ is inner
        assert method.__func__ is getattr(type(inner), name)
    # InMemorySaver's versions are "<counter>.<random>": the counter part is the saver's
    assert (
        cp.get_next_version(None, None).split(".")[0]
        == inner.get_next_version(None, None).split(".")[0]
    )
    # the class still forwards (a subclass, introspection, a saver set up later)
    assert PinningCheckpointer.get_next_version.__qualname__.startswith("PinningCheckpointer.")
