"""The live state of a wrapped run, and ``flagmw.current()``.

This module is the contract between the parts that act inside a run:

* the LangGraph wrapper (:mod:`flagmw.graph`) creates one :class:`RunState` per
  invocation, puts it into ``config["configurable"][RUN_KEY]`` (keys starting with
  ``__`` are never copied into checkpoint or tracer metadata), updates ``state.rc``
  at step boundaries, and reports lifecycle and events to the run's observers;
* gated tools (:mod:`flagmw.tools`) and routed models (:mod:`flagmw.models`) read the
  RunConfig with :func:`current` / :func:`current_run` and report refusals and routes
  with :meth:`RunState.event`;
* the trace writer (:mod:`flagmw.tracing`) is a :class:`RunObserver`.

It imports neither LangGraph nor OpenTelemetry. The wrapper makes its run current
(:func:`use_run`, one ``ContextVar``) around every stretch of graph execution, so the
tasks LangGraph starts — which copy the context — see it: :func:`current` is a single
``ContextVar.get``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from typing import (
    TYPE_CHECKING,
    Any,
    Literal,
    NamedTuple,
    Protocol,
    overload,
    runtime_checkable,
)

from flagmw.core.runconfig import RunConfig
from flagmw.errors import NoRunConfigError

if TYPE_CHECKING:  # pragma: no cover
    from flagmw.client.client import FlagClient

__all__ = [
    "EVENT_NAMES",
    "RUN_KEY",
    "RunInfo",
    "RunObserver",
    "RunState",
    "active_run_kill",
    "current",
    "current_run",
    "run_info",
    "use_run",
]

#: The ``config["configurable"]`` key that carries the :class:`RunState` of a run.
RUN_KEY = "__flagmw_run"

#: The closed set of run events (span events ``flagmw.<name>`` in the trace).
#:
#: ``flag_changed``  a hot key changed at a step boundary: key, old, new, layer,
#:                   override_id, step
#: ``tool_refused``  a gated tool was called while its flag is off: tool, key, reason,
#:                   override_id
#: ``run_drained``   a run kill stopped the run before a superstep: key, reason,
#:                   override_id, step
#: ``model_route``   a routed model served a call: route, primary, fallback_used (bool),
#:                   error (of the primary, when a fallback was used)
#: ``policy_violation`` user code reported one (``flagmw.record_violation``): kind, detail
#: ``tool_dry_run``  a side-effecting tool was answered, not run, in a shadow run: tool, key
EVENT_NAMES = (
    "flag_changed",
    "tool_refused",
    "run_drained",
    "model_route",
    "policy_violation",
    "tool_dry_run",
)

Outcome = Literal["completed", "interrupted", "drained", "cancelled", "error"]


@runtime_checkable
class RunObserver(Protocol):
    """Receives the lifecycle and events of wrapped runs (the trace writer is one).

    The wrapper calls, per invocation: :meth:`run_started` once (before the first
    step), :meth:`activate` around every stretch of graph execution (each ``next()`` of
    a stream generator), :meth:`run_event` for each event, and :meth:`run_ended` once.
    Observers must never raise into the run.

    Optionally, an observer defines ``activates(run) -> bool``, asked once right after
    :meth:`run_started`: False promises that :meth:`activate` would return a plain
    ``contextlib.nullcontext()`` for this run, so the wrapper need not activate it at
    all (the trace writer with no OpenTelemetry SDK configured). Not part of the
    protocol's required members: an observer without it is activated as described.
    """

    def run_started(self, run: RunState) -> None:
        """The invocation starts (``run.resumed`` tells a resume from a new run)."""

    def activate(self, run: RunState) -> contextlib.AbstractContextManager[Any]:
        """A context manager entered around each stretch of execution of the run
        (e.g. to make its span current without holding it across ``yield``). Return a
        plain ``contextlib.nullcontext()`` when there is nothing to do for this run: once
        every observer did so, the wrapper stops calling ``activate`` for the rest of
        the invocation."""
        ...

    def run_event(self, run: RunState, name: str, attributes: Mapping[str, Any]) -> None:
        """An event of :data:`EVENT_NAMES` happened."""

    def run_ended(self, run: RunState, outcome: Outcome, error: BaseException | None) -> None:
        """The invocation ended: ``completed``, ``interrupted`` (``interrupt()``),
        ``drained`` (a run kill), ``cancelled`` (the caller closed the stream early or
        cancelled the task: ``error`` is the ``GeneratorExit`` / ``CancelledError``) or
        ``error``."""


class RunState:
    """The live state of one invocation of a wrapped graph.

    Attributes:
        client: the :class:`~flagmw.client.FlagClient` of the graph.
        name: the graph's name (``gen_ai.agent.name``).
        rc: the RunConfig in effect now (pinned keys fixed, hot keys as of the last step
            boundary).
        pinned: the RunConfig pinned at run start (or rehydrated on resume).
        thread_id: the LangGraph thread, when there is one.
        resumed: True when this invocation resumes a checkpointed run.
        step: step boundaries passed so far in this invocation.
        generation: the client generation last seen at a step boundary.
        observers: who receives lifecycle and events.
        span_ref: a reference to this invocation's root span (set by the trace writer,
            stored with the checkpoint so a later resume can link to it).
        previous_span_ref: the ``span_ref`` of the invocation this one resumes.
        drain: ``(key, reason, override_id)`` once a run kill drained the run.
        events: every event of the invocation, as ``(name, attributes)``, in order.
        pin_source: where :attr:`pinned` came from: ``"resolved"`` (new input, resolved
            at run start), ``"checkpoint"`` (rehydrated from the thread's checkpoint on
            resume), ``"live"`` (resumed with ``on_resume="live"``: resolved afresh),
            ``"unpinned"`` (resumed, but the thread held no pin: resolved afresh), or
            ``"ephemeral"`` (no checkpoint to pin into: a graph without checkpointer or
            thread), or ``"replay"`` (a :func:`flagmw.replay` of a recorded config). A
            wrapped graph nested in another graph's node pins in the task's
            checkpoint namespace (and is ``"checkpoint"`` when its task runs again).
        pending_pin: the JSON form of :attr:`pinned` that the wrapper's checkpointer
            still has to write into the first checkpoint of the invocation (None once
            written, or when nothing is to be written); wrapper-internal.
        pin_ref: the id of the run's pin in the thread's ``flagmw.pin`` checkpoint
            namespace, named by every root checkpoint the run writes (None until the
            pin is written); wrapper-internal.
        root_checkpoint_written: the first checkpoint of this invocation in its own
            namespace was written (it carries the pin and the span reference);
            wrapper-internal.
        ref_text: the ``flagmw.ref`` value every checkpoint of this invocation carries
            (the pin's id, and the span reference when set), fixed at its first
            checkpoint; wrapper-internal.
        frozen: the run's step boundaries ignore the live store: no hot refresh, no
            kill made after it started reaches it (a :func:`flagmw.replay` of a recorded
            config); its own RunConfig's run kills still drain it.
        ns: the checkpoint namespace the run writes its checkpoints in: ``""`` (the
            root) for a run of its own thread, the task's namespace for a wrapped graph
            nested in a node or tool of another graph; wrapper-internal.
        interrupted: the invocation stored an ``interrupt()`` in its root namespace (seen
            by the wrapper's checkpointer); wrapper-internal.
        parent: the RunState of the wrapped run this one is nested in (a wrapped graph
            called from a node or tool of another wrapped graph: the trace writer makes
            its span a child of the parent's), else None.
        owner: identifies the wrapped graph that made the run (its settings object);
            wrapper-internal.
        stripped: ``(metadata, its length, its keys but flagmw.*)`` of the run's config
            metadata, computed once for the checkpoints the run writes; wrapper-internal.
    """

    __slots__ = (
        "client",
        "drain",
        "events",
        "frozen",
        "generation",
        "interrupted",
        "name",
        "ns",
        "observers",
        "owner",
        "parent",
        "pending_pin",
        "pin_ref",
        "pin_source",
        "pinned",
        "previous_span_ref",
        "rc",
        "ref_text",
        "resumed",
        "root_checkpoint_written",
        "span_ref",
        "step",
        "stripped",
        "thread_id",
    )

    def __init__(
        self,
        *,
        client: FlagClient | None,
        rc: RunConfig,
        name: str,
        thread_id: str | None = None,
        resumed: bool = False,
        observers: Sequence[RunObserver] = (),
        previous_span_ref: str | None = None,
        parent: RunState | None = None,
        owner: object = None,
    ) -> None:
        self.client = client
        self.rc = rc
        self.pinned = rc
        self.name = name
        self.thread_id = thread_id
        self.resumed = resumed
        self.step = 0
        self.generation = client.generation if client is not None else 0
        self.observers = tuple(observers)
        self.span_ref: str | None = None
        self.previous_span_ref = previous_span_ref
        self.drain: tuple[str, str | None, str | None] | None = None
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.pin_source = "checkpoint" if resumed else "resolved"
        self.pending_pin: str | None = None
        self.pin_ref: str | None = None
        self.root_checkpoint_written = False
        self.ref_text: str | None = None
        self.ns = ""
        self.frozen = False
        self.interrupted = False
        self.parent = parent
        self.owner = owner
        self.stripped: tuple[Any, int, dict[str, Any]] | None = None

    def event(self, name: str, **attributes: Any) -> None:
        """Record an event of :data:`EVENT_NAMES` and pass it to the observers (an
        observer that raises is ignored: tracing never breaks a run)."""
        self.events.append((name, attributes))
        for obs in self.observers:
            with contextlib.suppress(Exception):  # observers must not break runs
                obs.run_event(self, name, attributes)

    def refresh_hot(self, generation: int, *, step: int | None) -> bool:
        """Bring the hot keys of :attr:`rc` up to date at a step boundary, after the
        client's :attr:`~flagmw.client.FlagClient.generation` moved to ``generation``:
        re-resolve them (``client.resolve_hot``; pinned keys never change) and record a
        ``flag_changed`` event for each value that changed.

        Returns:
            True when a value changed.
        """
        self.generation = generation
        client = self.client
        if client is None:
            return False
        old = self.rc
        new = client.resolve_hot(old, step=step)
        if new is old:
            return False
        self.rc = new
        for change in new.changes[len(old.changes) :]:
            self.event(
                "flag_changed",
                key=change.key,
                old=change.old,
                new=change.new,
                layer=change.provenance.layer.value,
                override_id=change.provenance.override_id,
                step=step,
            )
        return True

    def __repr__(self) -> str:
        return (
            f"RunState({self.name!r}, thread={self.thread_id!r}, rev={self.rc.snapshot_rev}, "
            f"resumed={self.resumed}, step={self.step})"
        )


_run_var: ContextVar[RunState | None] = ContextVar("flagmw_run", default=None)
_get_run = _run_var.get  # bound once: current() is read in hot loops of nodes

_NO_RUN = (
    "flagmw.current() was called outside a run wrapped with flagmw.wrap(...); call it "
    "inside a node, tool or model call of a wrapped graph, pin one in tests with "
    "flagmw.testing.pinned(...), or use current(optional=True)"
)


def current_run(optional: bool = False) -> RunState | None:
    """The :class:`RunState` of the run being executed: the innermost wrapped run (a
    wrapped graph nested in a node or tool of another has its own), or the one made
    current with :func:`use_run` / ``flagmw.testing.pinned``. Works in nodes, tools and
    model calls, sync or async (LangGraph copies the context into its tasks).

    Raises:
        NoRunConfigError: outside a run, unless ``optional``.
    """
    state = _run_var.get()
    if state is None and not optional:
        raise NoRunConfigError(_NO_RUN)
    return state


@overload
def current(optional: Literal[False] = False) -> RunConfig: ...
@overload
def current(optional: bool) -> RunConfig | None: ...


def current(optional: bool = False) -> RunConfig | None:
    """The RunConfig of the run being executed (in any node, tool or model call, sync
    or async).

    Args:
        optional: return None instead of raising outside a run.

    Raises:
        NoRunConfigError: outside a run, unless ``optional``.
    """
    state = _get_run()
    if state is not None:
        return state.rc
    if optional:
        return None
    raise NoRunConfigError(_NO_RUN)


class RunInfo(NamedTuple):
    """Where the current run stands (:func:`run_info`).

    Attributes:
        name: the wrapped graph's name (``gen_ai.agent.name``).
        thread_id: the LangGraph thread, or None.
        step: step boundaries passed so far in this invocation (0 before the first
            superstep).
        resumed: True when this invocation resumes a checkpointed run.
        pin_source: where the pinned RunConfig came from (see :attr:`RunState.pin_source`).
        nested: True when the run is nested in another wrapped run.
    """

    name: str
    thread_id: str | None
    step: int
    resumed: bool
    pin_source: str
    nested: bool


@overload
def run_info(optional: Literal[False] = False) -> RunInfo: ...
@overload
def run_info(optional: bool) -> RunInfo | None: ...


def run_info(optional: bool = False) -> RunInfo | None:
    """The step, ``resumed`` flag and thread of the run being executed, as a
    :class:`RunInfo` (exported as ``flagmw.run_info``).

    Raises:
        NoRunConfigError: outside a run, unless ``optional``.
    """
    state = current_run(optional)
    if state is None:
        return None
    return RunInfo(
        state.name,
        state.thread_id,
        state.step,
        state.resumed,
        state.pin_source,
        state.parent is not None,
    )


def active_run_kill(rc: RunConfig, keys: Iterable[str]) -> str | None:
    """The first of ``keys`` (run-kill flags, e.g. ``registry.run_kill_keys`` sorted) whose
    value is ``False`` in ``rc`` — a run kill in force — or None. Its provenance
    (``rc.provenance[key]``) tells whether a kill switch (override id, reason) or a
    snapshot turned it off."""
    for key in keys:
        if rc.get(key, True) is False:
            return key
    return None


@contextlib.contextmanager
def use_run(state: RunState) -> Iterator[RunState]:
    """Make ``state`` the current run in this context (for code that runs outside
    LangChain's config propagation, and for :mod:`flagmw.testing`)."""
    token = _run_var.set(state)
    try:
        yield state
    finally:
        _run_var.reset(token)


def scrub_payload(payload: Any) -> None:
    """Remove the run object (:data:`RUN_KEY`) from the configs in a streamed
    ``checkpoints``/``debug`` payload (it is process state, not data)."""
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
