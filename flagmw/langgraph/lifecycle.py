"""The run lifecycle: one invocation of a wrapped graph from its config to its outcome
(context, pin or rehydrate, activation of observers, end), for sync and async."""

from __future__ import annotations

import contextlib
import logging
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from langchain_core.callbacks import BaseCallbackManager, CallbackManager
from langchain_core.runnables import RunnableConfig

# the merge LangGraph itself applies to an invocation's config (ambient config, the
# reset of an inherited checkpoint coordinate); private in langgraph 1.2
from langgraph.callbacks import GraphCallbackHandler, GraphInterruptEvent, GraphResumeEvent
from langgraph.checkpoint.base import (
    BaseCheckpointSaver,
)
from langgraph.errors import GraphDrained
from langgraph.types import Command

from flagmw.client.client import FlagClient
from flagmw.core.context import EvaluationContext
from flagmw.core.runconfig import RunConfig
from flagmw.errors import ConfigChangedError, IntegrityError
from flagmw.langgraph.run import RUN_KEY, Outcome, RunObserver, RunState

if TYPE_CHECKING:  # pragma: no cover
    from langchain_core.callbacks import Callbacks
from flagmw.langgraph.checkpointer import PinningCheckpointer
from flagmw.langgraph.context import ContextBuilder, context_from_config
from flagmw.langgraph.control import _FlagControl
from flagmw.langgraph.drain import RunDrained
from flagmw.langgraph.keys import (
    CONFIG_HASH_KEY,
    LENT_CHECKPOINTER_KEY,
    RUNTIME_KEY,
    SCRUB_MODES,
    SNAPSHOT_REV_KEY,
    AnyGraph,
    ResumePolicy,
)
from flagmw.langgraph.pin import _Found, decode_pin, encode_pin

log = logging.getLogger("flagmw")


class _InterruptWatch(GraphCallbackHandler):
    """Learns whether an invocation ended on an interrupt.

    LangGraph reports ``on_interrupt`` for the root graph's ``interrupt()`` calls and
    breakpoints (``interrupt_before`` / ``interrupt_after``), whatever the stream mode
    (``emit_graph_lifecycle_events`` in ``Pregel.stream``), where the
    ``__interrupt__`` marker only appears in some modes. It ignores every other callback
    so it costs nothing per node.
    """

    run_inline = True  # async graphs: called in the loop, not in an executor

    def __init__(self) -> None:
        self.interrupted = False

    @property
    def ignore_llm(self) -> bool:
        return True

    @property
    def ignore_retry(self) -> bool:
        return True

    @property
    def ignore_chain(self) -> bool:
        return True

    @property
    def ignore_agent(self) -> bool:
        return True

    @property
    def ignore_retriever(self) -> bool:
        return True

    @property
    def ignore_chat_model(self) -> bool:
        return True

    @property
    def ignore_custom_event(self) -> bool:
        return True

    def on_interrupt(self, event: GraphInterruptEvent) -> None:
        if not event.checkpoint_ns:
            self.interrupted = True

    def on_resume(self, event: GraphResumeEvent) -> None:
        return None


def _add_callback(callbacks: Callbacks, handler: _InterruptWatch) -> Callbacks:
    """``callbacks`` plus ``handler`` as a non-inheritable handler: LangGraph builds the
    graph's lifecycle callback manager from every handler of ``config["callbacks"]``,
    while child runs (nodes, tools, models) only inherit the inheritable ones — so the
    watch costs nothing per node."""
    if isinstance(callbacks, BaseCallbackManager):
        manager = callbacks.copy()
    else:
        # a list of callbacks is inheritable as a whole (CallbackManager.configure)
        listed = list(callbacks or ())
        manager = CallbackManager(handlers=listed, inheritable_handlers=listed)
    manager.add_handler(handler, inherit=False)
    return manager


class _Activation:
    """Enters ``obs.activate(run)`` of every observer around one stretch of execution;
    an observer that raises is logged and skipped, never allowed to break the run (or
    to swallow its exception).

    ``trivial`` tells, after ``__enter__``, that every observer returned a plain
    ``contextlib.nullcontext`` (e.g. the trace writer with no OpenTelemetry SDK
    configured): the wrapper then stops activating for the rest of the invocation.
    """

    __slots__ = ("_entered", "_run", "trivial")

    def __init__(self, run: RunState) -> None:
        self._run = run
        self._entered: list[contextlib.AbstractContextManager[Any]] = []
        self.trivial = True

    def __enter__(self) -> None:
        for obs in self._run.observers:
            try:
                cm = obs.activate(self._run)
                if type(cm) is not contextlib.nullcontext:
                    self.trivial = False
                cm.__enter__()
            except Exception:
                self.trivial = False
                log.warning("flagmw: observer %r failed to activate", obs, exc_info=True)
                continue
            self._entered.append(cm)

    def __exit__(self, *exc: Any) -> None:
        while self._entered:
            cm = self._entered.pop()
            try:
                cm.__exit__(*exc)
            except Exception:
                log.warning("flagmw: observer %r failed to deactivate", cm, exc_info=True)


def _notify_started(run: RunState) -> None:
    for obs in run.observers:
        try:
            obs.run_started(run)
        except Exception:
            log.warning("flagmw: observer %r failed in run_started", obs, exc_info=True)


def _notify_ended(run: RunState, outcome: Outcome, error: BaseException | None) -> None:
    for obs in run.observers:
        try:
            obs.run_ended(run, outcome, error)
        except Exception:
            log.warning("flagmw: observer %r failed in run_ended", obs, exc_info=True)


# -- one invocation ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Settings:
    client: FlagClient
    name: str
    context: ContextBuilder | None
    on_resume: ResumePolicy
    observers: tuple[RunObserver, ...]
    kill_keys: tuple[str, ...]


class _Invocation:
    """The set-up and tear-down of one invocation of a wrapped graph."""

    __slots__ = (
        "config",
        "control",
        "kwargs",
        "merged",
        "modes",
        "new_input",
        "refresh_hot_at_start",
        "run",
        "settings",
        "single_mode",
        "subgraphs",
        "v2",
        "watch",
    )

    def __init__(
        self,
        graph: AnyGraph,
        settings: _Settings,
        input: Any,
        config: RunnableConfig | None,
        kwargs: dict[str, Any],
        merged: RunnableConfig,
    ) -> None:
        self.settings = settings
        self.kwargs = kwargs
        self.merged = merged
        self.config: RunnableConfig = dict(config) if config else {}  # type: ignore[assignment]
        self.new_input = input is not None and not isinstance(input, Command)
        # Interrupts are seen by the wrapper's checkpointer (_note_interrupt); the callback
        # watch is only needed where it cannot see them: no checkpointer, or breakpoints
        # (interrupt_before / interrupt_after stop a run without writing an interrupt).
        breakpoints = (
            kwargs.get("interrupt_before")
            or kwargs.get("interrupt_after")
            or graph.interrupt_before_nodes
            or graph.interrupt_after_nodes
        )
        self.watch: _InterruptWatch | None = (
            _InterruptWatch() if breakpoints or self.checkpointer(graph) is None else None
        )
        self.refresh_hot_at_start = False
        mode = kwargs.get("stream_mode")
        if mode is None:
            mode = graph.stream_mode
        self.single_mode: str | None = mode if isinstance(mode, str) else None
        self.modes = frozenset([mode] if isinstance(mode, str) else mode)
        self.subgraphs = bool(kwargs.get("subgraphs"))
        self.v2 = kwargs.get("version") == "v2"

    # -- resolution -------------------------------------------------------------------

    def context(self, input: Any) -> EvaluationContext:
        builder = self.settings.context
        if builder is None:
            return context_from_config(self.merged, input, route=self.settings.name)
        ctx = builder(self.merged, input)
        if not isinstance(ctx, EvaluationContext):
            raise TypeError(
                f"flagmw.wrap(context=...) must return an EvaluationContext, got "
                f"{type(ctx).__name__}"
            )
        return ctx

    def checkpointer(self, graph: AnyGraph) -> BaseCheckpointSaver[Any] | None:
        if graph.checkpointer is False:
            return None
        lent = (self.merged.get("configurable") or {}).get(LENT_CHECKPOINTER_KEY)
        cp = lent if lent is not None else graph.checkpointer
        return cp if isinstance(cp, BaseCheckpointSaver) else None

    def start(self, input: Any, found: _Found | None, ephemeral: bool) -> RunState:
        s = self.settings
        client = s.client
        conf = self.merged.get("configurable") or {}
        thread_id = conf.get("thread_id")
        thread = None if thread_id is None else str(thread_id)
        if "run_id" not in conf and self.merged.get("run_id") is None:
            # give the LangChain root run the id the evaluation context uses, so the
            # context, the trace and LangSmith name the same run
            run_id = uuid.uuid4()
            self.config["run_id"] = run_id
            self.merged = {**self.merged, "run_id": run_id}
        generation = client.poll()
        if self.new_input or ephemeral or found is None:
            rc = client.resolve(self.context(input))
            run = RunState(
                client=client, rc=rc, name=s.name, thread_id=thread, observers=s.observers
            )
            run.generation = generation
            if ephemeral:
                run.pin_source = "ephemeral"
            else:
                run.pending_pin = encode_pin(rc)
            return run
        # resume
        pinned: RunConfig | None = None
        if found.pin is not None:
            try:
                pinned = decode_pin(found.pin)
            except IntegrityError as exc:
                raise IntegrityError(
                    f"thread {thread}: the RunConfig pinned in checkpoint "
                    f"{found.checkpoint_id} failed verification: {exc}"
                ) from exc
        source = "checkpoint"
        if pinned is None:
            if found.exists and s.on_resume != "live":
                raise IntegrityError(found.missing(thread))
            log.warning(
                "flagmw: thread %s has no pinned RunConfig in its checkpoints (did the run "
                "start before the graph was wrapped?); resolving a fresh one",
                thread,
            )
            rc = client.resolve(self.context(input))
            source = "unpinned"
        elif s.on_resume == "pinned":
            rc = pinned
        else:
            fresh = client.resolve(pinned.context)
            if s.on_resume == "fail_if_changed":
                current = client.resolve_hot(pinned)
                if current.config_hash != fresh.config_hash:
                    changed = [k for k in fresh if fresh.get(k) != current.get(k)]
                    raise ConfigChangedError(
                        thread, pinned.config_hash, fresh.config_hash, sorted(changed)
                    )
                rc = pinned
            else:
                log.info(
                    "flagmw: thread %s resumes with a live config (rev %s, was rev %s)",
                    thread,
                    fresh.snapshot_rev,
                    pinned.snapshot_rev,
                )
                rc = fresh
                source = "live"
        run = RunState(
            client=client,
            rc=rc,
            name=s.name,
            thread_id=thread,
            resumed=True,
            observers=s.observers,
            previous_span_ref=found.span,
        )
        run.pin_source = source
        run.generation = generation
        if source != "checkpoint":
            run.pending_pin = encode_pin(rc)
        else:
            run.pin_ref = found.ref
            if found.ref is None:  # a 0.1 pin: store it where this version finds it
                run.pending_pin = encode_pin(rc)
            # the stored hot values are stale: began() brings them up to date before the
            # first step, once the observers know the run (each change is an event)
            self.refresh_hot_at_start = True
        return run

    # -- the config passed down -------------------------------------------------------

    def prepare(self, graph: AnyGraph, run: RunState) -> dict[str, Any]:
        self.run = run
        cfg = self.config
        conf = dict(cfg.get("configurable") or {})
        conf[RUN_KEY] = run
        lent = (self.merged.get("configurable") or {}).get(LENT_CHECKPOINTER_KEY)
        if isinstance(lent, BaseCheckpointSaver) and not isinstance(lent, PinningCheckpointer):
            conf[LENT_CHECKPOINTER_KEY] = PinningCheckpointer(lent)
        cfg["configurable"] = conf
        meta = dict(cfg.get("metadata") or {})
        if run.pinned.snapshot_rev is not None:
            meta[SNAPSHOT_REV_KEY] = run.pinned.snapshot_rev
        meta[CONFIG_HASH_KEY] = run.pinned.config_hash
        cfg["metadata"] = meta
        if self.watch is not None:
            cfg["callbacks"] = _add_callback(cfg.get("callbacks"), self.watch)
        inner = self.kwargs.pop("control", None)
        if inner is None:
            # a subgraph of an unwrapped parent: keep honouring the parent's control
            parent = (self.merged.get("configurable") or {}).get(RUNTIME_KEY)
            inner = getattr(parent, "control", None)
        self.control = _FlagControl(run, inner, self.settings.kill_keys)
        kwargs = dict(self.kwargs)
        kwargs["control"] = self.control
        return kwargs

    def began(self) -> None:
        run = self.run
        _notify_started(run)
        if self.refresh_hot_at_start:
            try:
                run.refresh_hot(run.generation, step=0)
            except Exception:  # a flag problem must never crash the run
                log.exception("flagmw: re-resolving hot flags on resume failed")

    # -- output -----------------------------------------------------------------------

    def scrub(self, chunk: Any) -> Any:
        """Remove the RunState from the configs that "checkpoints" / "debug" chunks
        carry (LangGraph strips only its own ``__pregel_*`` keys there), so wrapped and
        bare graphs stream the same chunks."""
        if self.v2:
            if isinstance(chunk, dict) and chunk.get("type") in SCRUB_MODES:
                _scrub_payload(chunk.get("data"))
            return chunk
        if self.single_mode is not None:
            _scrub_payload(chunk[-1] if self.subgraphs and isinstance(chunk, tuple) else chunk)
        elif isinstance(chunk, tuple) and len(chunk) >= 2 and chunk[-2] in SCRUB_MODES:
            _scrub_payload(chunk[-1])
        return chunk

    @property
    def must_scrub(self) -> bool:
        return bool(self.modes & SCRUB_MODES)

    def converted(self, exc: GraphDrained) -> BaseException:
        run = self.run
        if run.drain is None or isinstance(exc, RunDrained):
            return exc
        key, reason, override_id = run.drain
        step = self.control.drain_step if self.control.drain_step is not None else run.step
        out = RunDrained(key, reason, override_id, step)
        out.__cause__ = exc
        return out

    def outcome(self) -> Outcome:
        interrupted = self.run.interrupted or (self.watch is not None and self.watch.interrupted)
        return "interrupted" if interrupted else "completed"


def _scrub_payload(payload: Any) -> None:
    if not isinstance(payload, dict):
        return
    if payload.get("type") == "checkpoint" and isinstance(payload.get("payload"), dict):
        payload = payload["payload"]  # "debug" wraps the checkpoint payload
    for key in ("config", "parent_config"):
        cfg = payload.get(key)
        if isinstance(cfg, dict):
            conf = cfg.get("configurable")
            if isinstance(conf, dict) and RUN_KEY in conf:
                cfg["configurable"] = {k: v for k, v in conf.items() if k != RUN_KEY}
