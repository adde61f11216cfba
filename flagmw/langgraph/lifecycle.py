"""The run lifecycle: one invocation of a wrapped graph from its config to its outcome
(context, pin or rehydrate, the run made current and the observers activated around
each stretch of execution, the outcome, the end).

One implementation serves ``stream`` and ``astream``: :class:`_Invocation` holds every
decision and state transition; the wrapper's two generators only do the I/O (read the
pin with ``find_pin`` / ``afind_pin``, drive LangGraph's ``stream`` / ``astream``)."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    BaseCheckpointSaver,
)
from langgraph.errors import GraphDrained, GraphInterrupt
from langgraph.types import Command

from flagmw.client.client import FlagClient
from flagmw.core.context import EvaluationContext
from flagmw.core.runconfig import RunConfig
from flagmw.errors import ConfigChangedError, IntegrityError
from flagmw.langgraph.checkpointer import PinningCheckpointer
from flagmw.langgraph.context import ContextBuilder, context_from_config
from flagmw.langgraph.control import _FlagControl
from flagmw.langgraph.drain import RunDrained
from flagmw.langgraph.interrupts import _add_callback, _InterruptWatch
from flagmw.langgraph.keys import (
    CONFIG_HASH_KEY,
    LENT_CHECKPOINTER_KEY,
    RUNTIME_KEY,
    SCRUB_MODES,
    SNAPSHOT_REV_KEY,
    TASK_ID_KEY,
    AnyGraph,
    ResumePolicy,
)
from flagmw.langgraph.observers import (
    _Activation,
    _needs_activation,
    _notify_ended,
    _notify_started,
)
from flagmw.langgraph.pin import _Found, decode_pin, encode_pin
from flagmw.langgraph.replay import REPLAY_KEY, Replay
from flagmw.langgraph.run import RUN_KEY, Outcome, RunObserver, RunState, _run_var, scrub_payload

log = logging.getLogger("flagmw")

_new_run_id: Callable[[], uuid.UUID]
try:  # LangChain's own run-id factory (time-ordered UUID v7), when it has one
    from langchain_core.utils.uuid import uuid7 as _new_run_id
except ImportError:  # pragma: no cover - older langchain-core
    _new_run_id = uuid.uuid4


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
        "_act",
        "_context",
        "_token",
        "config",
        "control",
        "cp",
        "ephemeral",
        "error",
        "kwargs",
        "merged",
        "nested",
        "new_input",
        "ns",
        "observed",
        "outcome",
        "refresh_hot_at_start",
        "run",
        "scrubbing",
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
        self.cp = self.checkpointer(graph)
        conf = merged.get("configurable") or {}
        # Running under a task of another graph (a subgraph node, or called in a node or
        # tool of another graph): the run lives in the task's checkpoint namespace and
        # pins there; LangGraph resumes it from that namespace when the task runs again.
        self.nested = TASK_ID_KEY in conf
        self.ns = str(conf.get("checkpoint_ns") or "") if self.nested else ""
        # no checkpoint to pin into: no checkpointer or thread
        self.ephemeral = (
            self.cp is None or conf.get("thread_id") is None or (self.nested and not self.ns)
        )
        self.watch: _InterruptWatch | None = (
            _InterruptWatch() if breakpoints or self.cp is None else None
        )
        self.refresh_hot_at_start = False
        mode = kwargs.get("stream_mode")
        if mode is None:
            mode = graph.stream_mode
        self.single_mode: str | None = mode if isinstance(mode, str) else None
        self.subgraphs = bool(kwargs.get("subgraphs"))
        self.v2 = kwargs.get("version") == "v2"
        self.scrubbing = (
            mode in SCRUB_MODES if isinstance(mode, str) else not SCRUB_MODES.isdisjoint(mode)
        )
        self.outcome: Outcome = "error"
        self.error: BaseException | None = None
        self.observed = False
        self._act: _Activation | None = None
        self._token: Any = None
        self._context: EvaluationContext | None = None

    # -- the pin to read (the caller does the I/O) ---------------------------------------

    @property
    def must_find_pin(self) -> bool:
        """A resume of a checkpointed run, or a nested run (whose task may be running
        again after an interrupt or a crash: its namespace then holds its pin): the pin
        must be read from the checkpointer."""
        return (self.nested or not self.new_input) and not self.ephemeral

    @property
    def no_pin(self) -> _Found | None:
        """What stands for the pin when none is read: None for new input (resolve), an
        empty find for an ephemeral resume."""
        return None if self.new_input else _Found(None, None, None)

    def launch(
        self, graph: AnyGraph, input: Any, found: _Found | None, parent: RunState | None
    ) -> dict[str, Any]:
        """Start the run (resolve or rehydrate), prepare the config passed down, tell
        the observers; returns the keyword arguments for LangGraph's stream."""
        run = self.start(input, found, self.ephemeral)
        run.ns = self.ns
        run.parent = parent
        run.owner = self.settings
        down = self.prepare(graph, run)
        self.began()
        self.observed = _needs_activation(run)
        return down

    # -- each stretch of execution: ``with inv: chunk = next(inner)`` --------------------

    def __enter__(self) -> None:
        run = self.run
        # the run is current for the stretch: LangGraph's tasks copy the context
        self._token = _run_var.set(run)
        if self.observed:
            act = _Activation(run)
            act.__enter__()
            self._act = act

    def __exit__(self, *exc: Any) -> None:
        act = self._act
        if act is not None:
            self._act = None
            act.__exit__(*exc)
            self.observed = not act.trivial
        _run_var.reset(self._token)

    # -- the outcome -------------------------------------------------------------------

    def completed(self) -> None:
        """LangGraph's stream ended normally."""
        self.outcome = self.ended_as()

    def failed(self, exc: BaseException) -> BaseException:
        """LangGraph's stream (or the caller) raised ``exc``: records the outcome and
        returns what to raise (a ``GraphDrained`` of a run kill becomes
        :class:`RunDrained`)."""
        if isinstance(exc, GraphInterrupt):
            # a wrapped graph nested in an unwrapped parent: its interrupt propagates
            self.outcome = "interrupted"
            return exc
        if isinstance(exc, GraphDrained):
            self.outcome = "drained"
            self.error = self.converted(exc)
            return self.error
        self.error = exc
        if isinstance(exc, GeneratorExit | asyncio.CancelledError):
            self.outcome = "cancelled"  # the caller stopped listening; the graph did not fail
        return exc

    @property
    def must_close(self) -> bool:
        """LangGraph's stream must be closed (it did not run to its end)."""
        return self.outcome in ("error", "cancelled")

    def ended(self) -> None:
        _notify_ended(self.run, self.outcome, self.error)

    # -- resolution -------------------------------------------------------------------

    def early_context(self, input: Any) -> EvaluationContext | None:
        """The evaluation context of new input, built now (once: :meth:`start` uses it)
        so that an async run can load what resolving it needs before it starts
        (``FlagClient.aready``); None for a resume, or when it cannot be built (the
        start reports that)."""
        if not self.new_input:
            return None
        self._assign_run_id()
        try:
            self._context = self.context(input)
        except Exception:
            return None
        return self._context

    def _assign_run_id(self) -> None:
        conf = self.merged.get("configurable") or {}
        if "run_id" not in conf and self.merged.get("run_id") is None:
            # give the LangChain root run the id the evaluation context uses, so the
            # context, the trace and LangSmith name the same run (a UUID v7, as LangChain
            # makes its own run ids)
            run_id = _new_run_id()
            self.config["run_id"] = run_id
            self.merged = {**self.merged, "run_id": run_id}

    def context(self, input: Any) -> EvaluationContext:
        if self._context is not None:
            return self._context
        builder = self.settings.context
        if builder is None:
            return context_from_config(self.merged, input, route=self.settings.name)
        ctx = builder(self.merged, input)
        if not isinstance(ctx, EvaluationContext):
            raise TypeError(
                f"flagmw.wrap(context=...) must return an EvaluationContext, got "
                f"{type(ctx).__name__}"
            )
        return ctx.valid()

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
        self._assign_run_id()
        generation = client.poll()
        replay = conf.get(REPLAY_KEY)
        if isinstance(replay, Replay) and self.new_input and not self.nested:
            run = RunState(
                client=client,
                rc=replay.run_config,
                name=s.name,
                thread_id=thread,
                observers=s.observers,
            )
            run.generation = generation
            run.frozen = replay.frozen
            run.pin_source = "replay"
            if not ephemeral:
                run.pending_pin = encode_pin(replay.run_config)
            # unfrozen: the recorded hot values are brought up to date before the first
            # step, as on a resume
            self.refresh_hot_at_start = not replay.frozen
            return run
        # a nested run whose namespace names a pin continues it (LangGraph resumes the
        # task's subgraph from that namespace); otherwise new input resolves afresh
        continues = self.nested and found is not None and (found.ref or found.pin) is not None
        if ephemeral or found is None or (self.new_input and not continues):
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
        elif s.on_resume == "pinned" and not client.pinned_version_killed(pinned):
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
        conf.pop(REPLAY_KEY, None)  # the replayed config is the run's, not a nested run's
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
        self.control.checked_at_start()

    # -- output -----------------------------------------------------------------------

    def scrub(self, chunk: Any) -> Any:
        """Remove the RunState from the configs that "checkpoints" / "debug" chunks
        carry (LangGraph strips only its own ``__pregel_*`` keys there), so wrapped and
        bare graphs stream the same chunks."""
        if self.v2:
            if isinstance(chunk, dict) and chunk.get("type") in SCRUB_MODES:
                scrub_payload(chunk.get("data"))
            return chunk
        if self.single_mode is not None:
            scrub_payload(chunk[-1] if self.subgraphs and isinstance(chunk, tuple) else chunk)
        elif isinstance(chunk, tuple) and len(chunk) >= 2 and chunk[-2] in SCRUB_MODES:
            scrub_payload(chunk[-1])
        return chunk

    def converted(self, exc: GraphDrained) -> BaseException:
        run = self.run
        if run.drain is None or isinstance(exc, RunDrained):
            return exc
        key, reason, override_id = run.drain
        step = self.control.drain_step if self.control.drain_step is not None else run.step
        out = RunDrained(key, reason, override_id, step)
        out.__cause__ = exc
        return out

    def ended_as(self) -> Outcome:
        interrupted = self.run.interrupted or (self.watch is not None and self.watch.interrupted)
        return "interrupted" if interrupted else "completed"
