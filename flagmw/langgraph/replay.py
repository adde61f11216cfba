"""Replay a recorded run's config: run a wrapped graph on a new thread with exactly a
given RunConfig pinned (issue 10 §4).

Every run's RunConfig is pinned in its checkpoint and summarised on its root span, so
after an incident the question "would the agent do it again with *that* config?" can be
answered by running it again with that config — not with whatever the store says now:

    result = flagmw.replay(agent, {"configurable": {"thread_id": "t-incident"}}, input)
    assert result.run_config.config_hash == recorded_hash

The source of the config is one of:

* a :class:`~flagmw.core.runconfig.RunConfig`;
* its JSON (``RunConfig.to_json()``, the root span's ``flagmw.config`` attribute) or a
  stored pin (``flagmw.pin/2``, the checkpoint's ``metadata["flagmw.pin"]``), as text
  or as a parsed mapping — verified (digest / signature with ``FLAGMW_PIN_KEY``, then
  ``config_hash``) before it is used;
* a LangGraph config naming a thread (``{"configurable": {"thread_id": ...}}``, with a
  ``checkpoint_id`` to pick an older run of the thread): the pin of that thread in the
  graph's checkpointer (:meth:`get_pinned_config`).

The replay starts a new run (``pin_source == "replay"``) on a new thread (one is made up
when ``config`` names none; a thread that already has checkpoints is refused, so a
recorded thread is never written to) and pins the config there, so an interrupt and
resume of the replay keep it. By default the config is **frozen**: hot flags are not
brought up to date and kills made since do not reach the replay (``frozen=False``:
the replay's step boundaries honour the live store like any run's — its hot values may
then differ from the recording's).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flagmw.core.runconfig import RunConfig
from flagmw.langgraph.pin import decode_pin

if TYPE_CHECKING:  # pragma: no cover
    from langchain_core.runnables import RunnableConfig

__all__ = ["REPLAY_KEY", "Replay", "ReplayResult", "areplay", "load_run_config", "replay"]

#: ``config["configurable"]`` key under which :func:`replay` hands the lifecycle the
#: RunConfig to pin (a :class:`Replay`); wrapper-internal.
REPLAY_KEY = "__flagmw_replay"


@dataclass(frozen=True, slots=True)
class Replay:
    """What the run lifecycle gets from :func:`replay`: the RunConfig to pin, and
    whether the run's step boundaries ignore the live store (``frozen``)."""

    run_config: RunConfig
    frozen: bool = True


@dataclass(frozen=True, slots=True)
class ReplayResult:
    """The outcome of :func:`replay`.

    Attributes:
        output: what ``graph.invoke`` returned.
        config: the LangGraph config of the replay's thread (``{"configurable":
            {"thread_id": ...}}``): resume it, or read its pin, with it.
        run_config: the RunConfig the replay was pinned with (its ``config_hash`` is
            the recording's).
    """

    output: Any
    config: dict[str, Any]
    run_config: RunConfig


def load_run_config(source: Any, graph: Any = None) -> RunConfig:
    """The RunConfig a :func:`replay` source names (see the module docs).

    Raises:
        IntegrityError: a pin or RunConfig JSON that fails verification or is not one.
        LookupError: a thread with no pin.
        TypeError: a source of another type, or a thread config without a wrapped graph.
    """
    if isinstance(source, RunConfig):
        return source
    if isinstance(source, bytes):
        source = source.decode("utf-8", errors="strict")
    if isinstance(source, Mapping) and "configurable" in source:
        getter = getattr(graph, "get_pinned_config", None)
        if getter is None:
            raise TypeError("replay from a thread needs the wrapped graph that ran it")
        rc = getter(dict(source))
        if rc is None:
            conf = source.get("configurable") or {}
            raise LookupError(f"thread {conf.get('thread_id')!r} has no pinned RunConfig")
        return rc  # type: ignore[no-any-return]
    if isinstance(source, str | Mapping):
        return decode_pin(source)
    raise TypeError(
        "replay source must be a RunConfig, its JSON, a stored pin, or a config naming a "
        f"thread; got {type(source).__name__}"
    )


def _prepare(
    graph: Any, source: Any, config: RunnableConfig | Mapping[str, Any] | None, frozen: bool
) -> tuple[RunConfig, dict[str, Any]]:
    if getattr(type(graph), "_flagmw", None) is None:
        raise TypeError("flagmw.replay expects a graph wrapped with flagmw.wrap")
    rc = load_run_config(source, graph)
    cfg: dict[str, Any] = dict(config or {})
    conf = dict(cfg.get("configurable") or {})
    if conf.get("thread_id") is None:
        conf["thread_id"] = f"replay-{uuid.uuid4().hex}"
    conf.pop("checkpoint_id", None)
    conf[REPLAY_KEY] = Replay(rc, frozen)
    cfg["configurable"] = conf
    return rc, cfg


def _thread_config(cfg: Mapping[str, Any]) -> dict[str, Any]:
    return {"configurable": {"thread_id": cfg["configurable"]["thread_id"]}}


def _refuse_used_thread(exists: bool, cfg: Mapping[str, Any]) -> None:
    if exists:
        raise ValueError(
            f"thread {cfg['configurable']['thread_id']!r} already has checkpoints: a replay "
            "runs on a new thread (leave thread_id out to get one)"
        )


def replay(
    graph: Any,
    source: Any,
    input: Any,
    config: RunnableConfig | Mapping[str, Any] | None = None,
    *,
    frozen: bool = True,
) -> ReplayResult:
    """Run ``graph`` (a wrapped graph) on ``input`` with exactly the RunConfig ``source``
    names pinned, on a new thread.

    Args:
        graph: a graph returned by :func:`flagmw.wrap`.
        source: a RunConfig, its JSON, a stored pin, or a config naming a recorded
            thread (module docs).
        input: the graph's input.
        config: a LangGraph config for the replay (its ``thread_id`` must be new;
            default a made-up ``replay-…`` thread).
        frozen: True (default): the replay keeps the config as recorded, hot flags
            and kills included; False: its step boundaries honour the live store.

    Returns:
        :class:`ReplayResult` (output, the replay thread's config, the pinned RunConfig).

    Raises:
        TypeError: ``graph`` is not wrapped, or ``source`` is of an unknown type.
        IntegrityError: the source fails verification.
        LookupError: the source thread has no pin.
        ValueError: ``config`` names a thread that already has checkpoints.
    """
    rc, cfg = _prepare(graph, source, config, frozen)
    cp = graph.checkpointer
    if cp is not None and cp is not False and cp is not True:
        _refuse_used_thread(cp.get_tuple(_thread_config(cfg)) is not None, cfg)
    output = graph.invoke(input, cfg)
    return ReplayResult(output, _thread_config(cfg), rc)


async def areplay(
    graph: Any,
    source: Any,
    input: Any,
    config: RunnableConfig | Mapping[str, Any] | None = None,
    *,
    frozen: bool = True,
) -> ReplayResult:
    """Async twin of :func:`replay` (``ainvoke``; the checkpointer read with its async
    methods)."""
    if isinstance(source, Mapping) and "configurable" in source:
        getter = getattr(graph, "aget_pinned_config", None)
        if getter is not None:
            found = await getter(dict(source))
            if found is None:
                conf = source.get("configurable") or {}
                raise LookupError(f"thread {conf.get('thread_id')!r} has no pinned RunConfig")
            source = found
    rc, cfg = _prepare(graph, source, config, frozen)
    cp = graph.checkpointer
    if cp is not None and cp is not False and cp is not True:
        _refuse_used_thread(await cp.aget_tuple(_thread_config(cfg)) is not None, cfg)
    output = await graph.ainvoke(input, cfg)
    return ReplayResult(output, _thread_config(cfg), rc)
