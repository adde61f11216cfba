"""``flagmw.wrap``: run-pinned flag configuration inside a LangGraph graph.

``wrap(graph, client)`` returns a copy of a compiled graph (same class, same API:
``invoke``, ``ainvoke``, ``stream``, ``astream``, ``batch``, ``get_state``,
``update_state``, ``with_config``, ``astream_events`` …) in which every run

* **pins** a :class:`~flagmw.runconfig.RunConfig`: resolved once when the run starts
  with new input, written into the metadata of the run's first checkpoint (as JSON
  primitives, key ``flagmw.pin``), and rehydrated — with its ``config_hash`` verified —
  when the run resumes (``Command(resume=...)``, ``invoke(None)`` after a crash, in
  another process or on another worker sharing the checkpointer);
* exposes it to every node, tool and model call through ``flagmw.current()`` (the
  :class:`~flagmw.run.RunState` travels in ``config["configurable"][RUN_KEY]``);
* re-resolves **hot** flags at every step boundary through LangGraph's own
  :class:`~langgraph.runtime.RunControl`, and **drains** the run (LangGraph saves the
  checkpoint and stops before the next superstep) when a run-kill flag turns off;
* reports its lifecycle and events to :class:`~flagmw.run.RunObserver` objects (the
  trace writer is one).

Why these mechanisms (verified against langgraph 1.2, see
``shared/reference/langgraph-integration.md``): ``Pregel.stream`` / ``astream`` are the
single entry point of every run (``invoke``, ``batch`` and ``astream_events`` go
through them), so the wrapper is a dynamic subclass of the graph's own class that
overrides those two, constructed the way ``Pregel.copy`` does. The pin cannot live in a
state channel or in run-wide ``config["metadata"]``: checkpointers serialise those at
every step, so the cost would grow with the number of steps; instead a checkpointer
delegate adds it to exactly one checkpoint per run.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import threading
import uuid
from collections.abc import (
    AsyncIterator,
    Callable,
    Generator,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast

from langchain_core.callbacks import BaseCallbackManager, CallbackManager
from langchain_core.runnables import RunnableConfig

# the merge LangGraph itself applies to an invocation's config (ambient config, the
# reset of an inherited checkpoint coordinate); private in langgraph 1.2
from langgraph._internal._config import ensure_config as _ensure_config
from langgraph.callbacks import GraphCallbackHandler, GraphInterruptEvent, GraphResumeEvent
from langgraph.checkpoint.base import (
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
)
from langgraph.errors import GraphDrained, GraphInterrupt
from langgraph.pregel import Pregel
from langgraph.pregel._checkpoint import put_writes_accepts_task_path
from langgraph.runtime import RunControl
from langgraph.types import Command

from flagmw.client.client import FlagClient
from flagmw.core.context import WELL_KNOWN_ATTRIBUTES, EvaluationContext
from flagmw.core.runconfig import FORMAT as RUNCONFIG_FORMAT
from flagmw.core.runconfig import Layer, Provenance, RunConfig
from flagmw.errors import ConfigChangedError, FlagmwError, IntegrityError
from flagmw.langgraph.run import RUN_KEY, Outcome, RunObserver, RunState, active_run_kill

if TYPE_CHECKING:  # pragma: no cover
    from langchain_core.callbacks import Callbacks

__all__ = [
    "CONFIG_HASH_KEY",
    "PIN_KEY",
    "SNAPSHOT_REV_KEY",
    "SPAN_KEY",
    "ConfigChangedError",
    "ContextBuilder",
    "PinningCheckpointer",
    "ResumePolicy",
    "RunDrained",
    "context_from_config",
    "decode_pin",
    "encode_pin",
    "wrap",
]

log = logging.getLogger("flagmw")

#: Checkpoint metadata key of the pinned RunConfig (a JSON string, see :func:`encode_pin`):
#: on the first checkpoint a run writes.
PIN_KEY = "flagmw.pin"
#: The ``format`` tag of the stored pin.
PIN_FORMAT = "flagmw.pin/1"
#: Checkpoint metadata key of the trace writer's span reference: on the first
#: checkpoint of every invocation (so a resume can link to the span it continues).
SPAN_KEY = "flagmw.span"
#: ``config["metadata"]`` keys the wrapper sets, so LangSmith / OpenInference spans of
#: the graph carry the run's snapshot rev and config hash.
SNAPSHOT_REV_KEY = "flagmw.snapshot_rev"
CONFIG_HASH_KEY = "flagmw.config_hash"

# langgraph's configurable keys (langgraph/_internal/_constants.py): the task id marks
# a graph running as a subgraph node; the checkpointer a parent lends a subgraph (or
# LangGraph Server passes) travels under the second.
_TASK_ID = "__pregel_task_id"
_LENT_CHECKPOINTER = "__pregel_checkpointer"
_RUNTIME = "__pregel_runtime"

# configurable keys never used as context attributes: LangGraph's own, and anything
# that looks like a secret (the same words langgraph drops from tracing metadata,
# langgraph/_internal/_config.py _get_tracing_metadata_defaults)
_SECRET_WORDS = ("key", "token", "secret", "password", "auth")
_NOT_ATTRIBUTES = frozenset({"thread_id", "environment", "thread_ts"})
_SCRUB_MODES = frozenset({"checkpoints", "debug"})

ResumePolicy = Literal["pinned", "live", "fail_if_changed"]
#: ``(config, input) -> EvaluationContext``: how a run's evaluation context is built.
ContextBuilder = Callable[[RunnableConfig, Any], EvaluationContext]

_Graph = Pregel[Any, Any, Any, Any]
G = TypeVar("G", bound=_Graph)


# -- errors --------------------------------------------------------------------------


class RunDrained(GraphDrained, FlagmwError):
    """A run kill stopped the run before a superstep; its checkpoint is saved.

    Raised from ``invoke`` / ``stream`` (and their async twins) of a wrapped graph when a
    hot flag declared ``run_kill`` (e.g. ``agent.enabled``) turned off. A subclass of
    LangGraph's ``GraphDrained``, so code that already handles cooperative drains keeps
    working. Resume the run with ``graph.invoke(None, config)`` once the kill has ended
    (``client.unkill(override_id, ...)`` or ``flagmw unkill``).

    Attributes:
        key: the run-kill flag that turned off.
        reason: the kill's reason (None when a snapshot, not an override, turned it off).
        override_id: the kill's override id (None when not an override).
        step: the step boundary of the invocation at which the run drained (0 = before
            its first superstep); the superstep at that boundary did not run.
    """

    def __init__(self, key: str, reason: str | None, override_id: str | None, step: int) -> None:
        why = f"{key} is off"
        if override_id:
            why += f" (kill {override_id}: {reason!r})" if reason else f" ({override_id})"
        elif reason:
            why += f" ({reason})"
        hint = f"`flagmw unkill {override_id}`" if override_id else f"turning {key} back on"
        GraphDrained.__init__(
            self,
            f"run drained at step boundary {step}: {why}; its checkpoint is kept — resume it "
            f"with graph.invoke(None, config) after {hint}",
        )
        self.key = key
        self.kill_reason = reason
        self.override_id = override_id
        self.step = step
        self.message = str(self.reason)
        # GraphDrained.reason is the drain reason text; flagmw's is the kill's reason
        self.reason = reason  # type: ignore[assignment]

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.key, self.kill_reason, self.override_id, self.step))


# -- evaluation context --------------------------------------------------------------


def context_from_config(
    config: RunnableConfig, input: Any = None, *, route: str | None = None
) -> EvaluationContext:
    """The default evaluation context of a run, from its ``RunnableConfig``.

    Reads ``config["configurable"]``: ``tenant_id``, ``user_id``, ``thread_id``,
    ``plan`` and ``route`` (defaulting to ``route``, the graph's name), ``run_id``
    (or else ``config["run_id"]``); every other scalar entry (str, int, float, bool)
    becomes a free attribute, except LangGraph's own keys (``__*``,
    ``checkpoint_*``), ``environment`` (the client decides the environment) and keys
    that look like secrets (containing ``key``, ``token``, ``secret``, ``password`` or
    ``auth``, the words LangGraph keeps out of tracing metadata).

    Args:
        config: the invocation's config.
        input: the graph input (unused by the default; part of the builder signature).
        route: the route to use when the config names none.
    """
    conf = config.get("configurable") or {}
    fields: dict[str, str] = {}
    attributes: dict[str, Any] = {}
    for key, value in conf.items():
        if value is None or key.startswith("__") or key.startswith("checkpoint_"):
            continue
        if key in WELL_KNOWN_ATTRIBUTES:
            if key != "environment":
                fields[key] = str(value)
            continue
        if key in _NOT_ATTRIBUTES:
            continue
        low = key.lower()
        if any(word in low for word in _SECRET_WORDS):
            continue
        if isinstance(value, str | int | float | bool):
            attributes[key] = value
    if "run_id" not in fields and config.get("run_id") is not None:
        fields["run_id"] = str(config.get("run_id"))
    if "route" not in fields and route is not None:
        fields["route"] = route
    return EvaluationContext(**fields, attributes=attributes).frozen()


# -- the stored pin ------------------------------------------------------------------


def encode_pin(rc: RunConfig) -> str:
    """The form of a RunConfig stored in checkpoint metadata: ``RunConfig.to_dict()``
    with ``format: "flagmw.pin/1"`` and the provenance grouped — a list of
    ``[provenance, [keys…]]`` instead of one provenance object per key — as compact JSON
    text.

    Why: most flags of a run share a provenance (``{"layer": "snapshot", "rev": 12,
    "scope": "global"}``); grouping halves the pin (≈2.2 KB instead of 4.2 KB for 50
    flags), and checkpointers keep it in every thread. It stays JSON primitives, readable
    in any checkpoint viewer, and :func:`decode_pin` verifies its ``config_hash``.
    """
    # Built from the RunConfig's precompiled canonical-JSON fragments rather than
    # to_dict() + json.dumps: this runs once per new run, on the run's critical path.
    candidates = rc._c
    groups: dict[Provenance, list[str]] = {}
    for key, cand in candidates.items():
        if cand.provenance.layer is not Layer.DEFAULT:
            groups.setdefault(cand.provenance, []).append(key)
    head: dict[str, Any] = {
        "format": PIN_FORMAT,
        "environment": rc.environment,
        "snapshot_rev": rc.snapshot_rev,
        "snapshot_hash": rc.snapshot_hash,
        "resolved_at": rc.resolved_at,
        "context": rc.context.to_dict(),
    }
    tail: dict[str, Any] = {
        "provenance": [[prov.to_dict(), keys] for prov, keys in groups.items()],
        "override_ids": list(rc.override_ids),
        "variants": dict(rc.variants),
        "config_hash": rc.config_hash,
    }
    if rc.changes:
        tail["changes"] = [ch.to_dict() for ch in rc.changes]
    values = ",".join([cand.fragment for cand in candidates.values()])
    return f'{_ENCODER.encode(head)[:-1]},"values":{{{values}}},{_ENCODER.encode(tail)[1:]}'


# one encoder: json.dumps with options builds a new JSONEncoder at every call
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def decode_pin(text: str | Mapping[str, Any]) -> RunConfig:
    """Inverse of :func:`encode_pin` (also accepts a plain ``RunConfig.to_json()`` form).

    Raises:
        IntegrityError: not a pin, malformed, or its ``config_hash`` does not match its
            values (the stored form was altered or truncated).
    """
    data: Any = text
    if isinstance(text, str):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise IntegrityError(f"stored pin is not valid JSON: {exc}") from None
    if isinstance(data, Mapping) and data.get("format") == PIN_FORMAT:
        groups: Any = data.get("provenance")
        try:
            provenance = {key: dict(prov) for prov, keys in groups for key in keys}
        except (TypeError, ValueError) as exc:
            raise IntegrityError(f"stored pin has malformed provenance: {exc!r}") from None
        data = {**data, "format": RUNCONFIG_FORMAT, "provenance": provenance}
    return RunConfig.from_json(data)


# -- the checkpointer delegate -------------------------------------------------------


#: The channel of pending writes where LangGraph stores interrupts (part of its persisted
#: checkpoint format; the constant itself lives in the private langgraph._internal).
_INTERRUPT = "__interrupt__"


def _note_interrupt(config: RunnableConfig, writes: Sequence[tuple[str, Any]]) -> None:
    """Mark the run interrupted when its root namespace stores an ``interrupt()``: LangGraph
    saves it as a pending write on the ``__interrupt__`` channel (every durability mode;
    a subgraph's interrupt is written in the root namespace too). Reading it here costs
    nothing, where a callback handler to hear ``on_interrupt`` makes LangChain run its
    callback machinery for every node, model and tool call (≈4 % of a run)."""
    conf = config.get("configurable")
    if not conf or conf.get("checkpoint_ns", ""):
        return
    run = conf.get(RUN_KEY)
    if isinstance(run, RunState) and any(channel == _INTERRUPT for channel, _ in writes):
        run.interrupted = True


def _strip_flagmw(config: RunnableConfig) -> RunnableConfig:
    meta = config.get("metadata")
    if not meta or not any(k.startswith("flagmw.") for k in meta):
        return config
    return {**config, "metadata": {k: v for k, v in meta.items() if not k.startswith("flagmw.")}}


class PinningCheckpointer(BaseCheckpointSaver[Any]):
    """A checkpointer that forwards everything to ``inner`` and writes the flagmw pin.

    ``wrap`` puts one in place of the graph's checkpointer (in the wrapped copy only).
    For a checkpoint written by a wrapped invocation (its config carries the
    :class:`~flagmw.run.RunState` under ``configurable[RUN_KEY]``):

    * the first checkpoint the invocation writes in the root namespace
      (``checkpoint_ns == ""``) gets ``flagmw.pin`` (the pinned RunConfig as a JSON
      string, only when the invocation pinned a new config) and ``flagmw.span`` (the
      trace writer's span reference, when set), and keeps ``flagmw.snapshot_rev`` /
      ``flagmw.config_hash`` from ``config["metadata"]``;
    * every other checkpoint (later steps, subgraph namespaces) is written without the
      ``flagmw.*`` keys of ``config["metadata"]`` — savers copy the scalar values of
      ``config["metadata"]`` into every checkpoint
      (``langgraph.checkpoint.base.get_checkpoint_metadata``), which would otherwise
      add bytes per step.

    So a run adds a constant number of bytes to its thread, whatever its number of
    steps. Anything else (``put_writes``, ``list``, ``get_tuple``, ``delete_thread``,
    ``setup``, ``conn`` …) is forwarded unchanged.

    Args:
        inner: the real checkpointer (InMemorySaver, SqliteSaver, PostgresSaver, …).
    """

    def __init__(self, inner: BaseCheckpointSaver[Any]) -> None:
        # no super().__init__: serde belongs to the inner saver (see the property)
        self.inner = inner
        self._writes_task_path = put_writes_accepts_task_path(inner.put_writes)
        self._awrites_task_path = put_writes_accepts_task_path(inner.aput_writes)

    # serde / specs / versions belong to the inner saver
    @property
    def serde(self) -> Any:
        return self.inner.serde

    @serde.setter
    def serde(self, value: Any) -> None:
        self.inner.serde = value

    @property
    def config_specs(self) -> list[Any]:
        return list(self.inner.config_specs)

    def get_next_version(self, current: Any, channel: None) -> Any:
        return self.inner.get_next_version(current, channel)

    def with_allowlist(self, extra_allowlist: Any) -> BaseCheckpointSaver[Any]:
        clone = self.inner.with_allowlist(extra_allowlist)
        return self if clone is self.inner else PinningCheckpointer(clone)

    def __getattr__(self, name: str) -> Any:
        if name == "inner":  # during copy / unpickling, before __init__
            raise AttributeError(name)
        return getattr(self.inner, name)

    def __repr__(self) -> str:
        return f"PinningCheckpointer({self.inner!r})"

    # -- the pin ----------------------------------------------------------------------

    @staticmethod
    def _prepare(
        config: RunnableConfig, metadata: CheckpointMetadata
    ) -> tuple[RunnableConfig, CheckpointMetadata]:
        conf = config.get("configurable")
        run = conf.get(RUN_KEY) if conf else None
        if not isinstance(run, RunState):
            return config, metadata
        if conf.get("checkpoint_ns", "") == "" and not run.root_checkpoint_written:  # type: ignore[union-attr]
            run.root_checkpoint_written = True
            extra: dict[str, Any] = {}
            if run.pending_pin is not None:
                extra[PIN_KEY] = run.pending_pin
                run.pending_pin = None
            if run.span_ref:
                extra[SPAN_KEY] = run.span_ref
            if extra:
                # a copy: the loop keeps its metadata dict (and streams it in
                # "checkpoints" mode), so it must not see these keys
                metadata = cast(CheckpointMetadata, {**metadata, **extra})
            return config, metadata
        return _strip_flagmw(config), metadata

    # -- writes -----------------------------------------------------------------------

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        config, metadata = self._prepare(config, metadata)
        return self.inner.put(config, checkpoint, metadata, new_versions)

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        config, metadata = self._prepare(config, metadata)
        return await self.inner.aput(config, checkpoint, metadata, new_versions)

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        _note_interrupt(config, writes)
        if self._writes_task_path:
            self.inner.put_writes(config, writes, task_id, task_path)
        else:
            self.inner.put_writes(config, writes, task_id)

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        _note_interrupt(config, writes)
        if self._awrites_task_path:
            await self.inner.aput_writes(config, writes, task_id, task_path)
        else:
            await self.inner.aput_writes(config, writes, task_id)

    # -- everything BaseCheckpointSaver defines, forwarded ----------------------------

    def get(self, config: RunnableConfig) -> Checkpoint | None:
        return self.inner.get(config)

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return self.inner.get_tuple(config)

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        return self.inner.list(config, filter=filter, before=before, limit=limit)

    def delete_thread(self, thread_id: str) -> None:
        self.inner.delete_thread(thread_id)

    def delete_for_runs(self, run_ids: Any) -> None:
        self.inner.delete_for_runs(run_ids)

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        self.inner.copy_thread(source_thread_id, target_thread_id)

    def prune(self, thread_ids: Any, *, strategy: str = "keep_latest") -> None:
        self.inner.prune(thread_ids, strategy=strategy)

    def get_delta_channel_history(
        self, *, config: RunnableConfig, channels: Sequence[str]
    ) -> Mapping[str, Any]:
        return self.inner.get_delta_channel_history(config=config, channels=channels)

    async def aget(self, config: RunnableConfig) -> Checkpoint | None:
        return await self.inner.aget(config)

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return await self.inner.aget_tuple(config)

    def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        return self.inner.alist(config, filter=filter, before=before, limit=limit)

    async def adelete_thread(self, thread_id: str) -> None:
        await self.inner.adelete_thread(thread_id)

    async def adelete_for_runs(self, run_ids: Any) -> None:
        await self.inner.adelete_for_runs(run_ids)

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        await self.inner.acopy_thread(source_thread_id, target_thread_id)

    async def aprune(self, thread_ids: Any, *, strategy: str = "keep_latest") -> None:
        await self.inner.aprune(thread_ids, strategy=strategy)

    async def aget_delta_channel_history(
        self, *, config: RunnableConfig, channels: Sequence[str]
    ) -> Mapping[str, Any]:
        return await self.inner.aget_delta_channel_history(config=config, channels=channels)


# -- finding the pin -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Found:
    pin: str | None  # the JSON of the most recent pin
    checkpoint_id: str | None  # the checkpoint that carries it
    span: str | None  # the most recent span reference


def _lookup_configs(
    config: RunnableConfig,
) -> tuple[RunnableConfig, RunnableConfig | None] | None:
    """(the thread's root-namespace config, the explicit checkpoint's config or None)."""
    conf = config.get("configurable") or {}
    thread_id = conf.get("thread_id")
    if thread_id is None:
        return None
    base: RunnableConfig = {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}
    cid = conf.get("checkpoint_id")
    if not cid:
        return base, None
    return base, {
        "configurable": {"thread_id": thread_id, "checkpoint_ns": "", "checkpoint_id": cid}
    }


def _scan(tuples: Iterable[CheckpointTuple | None], state: dict[str, Any]) -> _Found | None:
    for tup in tuples:
        if tup is None:
            continue
        md: Mapping[str, Any] = tup.metadata or {}
        if state.get("span") is None and isinstance(md.get(SPAN_KEY), str):
            state["span"] = md[SPAN_KEY]
        pin = md.get(PIN_KEY)
        if isinstance(pin, str):
            cid = tup.config.get("configurable", {}).get("checkpoint_id")
            return _Found(pin, cid, state.get("span"))
    return None


def find_pin(checkpointer: BaseCheckpointSaver[Any], config: RunnableConfig) -> _Found:
    """Walk a thread's root checkpoints newest first (from ``checkpoint_id`` when the
    config names one) to the most recent pin; also returns the most recent span
    reference seen on the way."""
    cfgs = _lookup_configs(config)
    if cfgs is None:
        return _Found(None, None, None)
    base, explicit = cfgs
    state: dict[str, Any] = {}
    if explicit is not None:
        found = _scan([checkpointer.get_tuple(explicit)], state)
        if found is not None:
            return found
    # closing matters: SqliteSaver.list holds its lock while the generator is open
    it = checkpointer.list(base, before=explicit)
    try:
        found = _scan(it, state)
    finally:
        close = getattr(it, "close", None)
        if close is not None:
            close()
    return found or _Found(None, None, state.get("span"))


async def afind_pin(checkpointer: BaseCheckpointSaver[Any], config: RunnableConfig) -> _Found:
    """Async twin of :func:`find_pin`."""
    cfgs = _lookup_configs(config)
    if cfgs is None:
        return _Found(None, None, None)
    base, explicit = cfgs
    state: dict[str, Any] = {}
    if explicit is not None:
        found = _scan([await checkpointer.aget_tuple(explicit)], state)
        if found is not None:
            return found
    it = checkpointer.alist(base, before=explicit)
    try:
        async for tup in it:
            found = _scan([tup], state)
            if found is not None:
                return found
    finally:
        aclose = getattr(it, "aclose", None)
        if aclose is not None:
            await aclose()
    return _Found(None, None, state.get("span"))


# -- step boundaries -----------------------------------------------------------------


class _FlagControl(RunControl):
    """LangGraph's run control with flagmw's step-boundary check.

    LangGraph reads ``drain_requested`` once per superstep, before the superstep's tasks
    run and after the previous checkpoint was handed to the saver
    (``langgraph/pregel/_loop.py`` ``tick``); subgraphs without a control of their own
    use their parent's (``Pregel.stream``: ``control or parent_runtime.control``), so
    their supersteps are step boundaries of the run too. When nothing changed, the
    check is one ``client.poll()`` and an integer compare.
    """

    __slots__ = ("_checked", "_count", "_inner", "_kill_keys", "_lock", "_run", "drain_step")

    def __init__(self, run: RunState, inner: RunControl | None, kill_keys: tuple[str, ...]) -> None:
        super().__init__()
        self._run = run
        self._inner = inner
        self._kill_keys = kill_keys
        self._lock = threading.Lock()
        self._count = itertools.count()
        self._checked = False  # run kills are checked at the first boundary in any case
        self.drain_step: int | None = None

    @property
    def drain_requested(self) -> bool:
        run = self._run
        # next() on itertools.count is atomic: parallel subgraphs get distinct indexes
        index = next(self._count)
        run.step = index + 1
        if self._drain_reason is not None:
            return True
        client = run.client
        try:
            changed = client is not None and client.poll() != run.generation
        except Exception:  # a store problem must never crash the run
            log.exception("flagmw: client.poll() failed at a step boundary")
            changed = False
        if client is not None and (changed or not self._checked):
            self._boundary(client, index)
            if self._drain_reason is not None:
                return True
        inner = self._inner
        return inner is not None and inner.drain_requested

    @property
    def drain_reason(self) -> str | None:
        if self._drain_reason is not None:
            return self._drain_reason
        return self._inner.drain_reason if self._inner is not None else None

    def _boundary(self, client: FlagClient, index: int) -> None:
        run = self._run
        with self._lock:
            try:
                generation = client.generation
                if generation != run.generation:
                    run.refresh_hot(generation, step=index)
                self._checked = True
                if self._drain_reason is None:
                    key = active_run_kill(run.rc, self._kill_keys)
                    if key is not None:
                        prov = run.rc.provenance[key]
                        self._drain((key, prov.reason, prov.override_id), index)
            except Exception:  # a flag problem must never crash the run
                log.exception("flagmw: step boundary check failed; the run keeps its config")

    def _drain(self, kill: tuple[str, str | None, str | None], index: int) -> None:
        run = self._run
        key, reason, override_id = kill
        run.drain = kill
        self.drain_step = index
        run.event("run_drained", key=key, reason=reason, override_id=override_id, step=index)
        self._drain_reason = f"flagmw: {key} is off" + (f" ({reason})" if reason else "")


# -- lifecycle -----------------------------------------------------------------------


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
        graph: _Graph,
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

    def checkpointer(self, graph: _Graph) -> BaseCheckpointSaver[Any] | None:
        if graph.checkpointer is False:
            return None
        lent = (self.merged.get("configurable") or {}).get(_LENT_CHECKPOINTER)
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
            # the stored hot values are stale: began() brings them up to date before the
            # first step, once the observers know the run (each change is an event)
            self.refresh_hot_at_start = True
        return run

    # -- the config passed down -------------------------------------------------------

    def prepare(self, graph: _Graph, run: RunState) -> dict[str, Any]:
        self.run = run
        cfg = self.config
        conf = dict(cfg.get("configurable") or {})
        conf[RUN_KEY] = run
        lent = (self.merged.get("configurable") or {}).get(_LENT_CHECKPOINTER)
        if isinstance(lent, BaseCheckpointSaver) and not isinstance(lent, PinningCheckpointer):
            conf[_LENT_CHECKPOINTER] = PinningCheckpointer(lent)
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
            parent = (self.merged.get("configurable") or {}).get(_RUNTIME)
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
            if isinstance(chunk, dict) and chunk.get("type") in _SCRUB_MODES:
                _scrub_payload(chunk.get("data"))
            return chunk
        if self.single_mode is not None:
            _scrub_payload(chunk[-1] if self.subgraphs and isinstance(chunk, tuple) else chunk)
        elif isinstance(chunk, tuple) and len(chunk) >= 2 and chunk[-2] in _SCRUB_MODES:
            _scrub_payload(chunk[-1])
        return chunk

    @property
    def must_scrub(self) -> bool:
        return bool(self.modes & _SCRUB_MODES)

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


# -- the wrapped graph ---------------------------------------------------------------


class _FlagmwGraph(Pregel[Any, Any, Any, Any]):
    """The behaviour ``wrap`` adds; mixed in front of the graph's own class.

    Its settings are a class attribute of the dynamic subclass, so ``copy()`` and
    ``with_config()`` (which rebuild the object from its ``__dict__``) keep them.
    """

    _flagmw: _Settings
    _flagmw_base: type[_Graph]

    def _flagmw_passthrough(self, config: RunnableConfig | None) -> tuple[bool, RunnableConfig]:
        merged = _ensure_config(self.config, config)
        conf = merged.get("configurable") or {}
        # a subgraph node of a wrapped parent: the parent's run state flows down
        return (_TASK_ID in conf and RUN_KEY in conf), merged

    def stream(
        self, input: Any, config: RunnableConfig | None = None, **kwargs: Any
    ) -> Iterator[Any]:
        passthrough, merged = self._flagmw_passthrough(config)
        if passthrough:
            return super().stream(input, config, **kwargs)
        return self._flagmw_stream(input, config, kwargs, merged)

    def astream(
        self, input: Any, config: RunnableConfig | None = None, **kwargs: Any
    ) -> AsyncIterator[Any]:
        passthrough, merged = self._flagmw_passthrough(config)
        if passthrough:
            return super().astream(input, config, **kwargs)
        return self._flagmw_astream(input, config, kwargs, merged)

    def _flagmw_setup(
        self,
        input: Any,
        config: RunnableConfig | None,
        kwargs: dict[str, Any],
        merged: RunnableConfig,
    ) -> tuple[_Invocation, BaseCheckpointSaver[Any] | None, bool]:
        inv = _Invocation(self, self._flagmw, input, config, kwargs, merged)
        cp = inv.checkpointer(self)
        conf = merged.get("configurable") or {}
        ephemeral = cp is None or conf.get("thread_id") is None or _TASK_ID in conf
        return inv, cp, ephemeral

    def _flagmw_stream(
        self,
        input: Any,
        config: RunnableConfig | None,
        kwargs: dict[str, Any],
        merged: RunnableConfig,
    ) -> Iterator[Any]:
        inv, cp, ephemeral = self._flagmw_setup(input, config, kwargs, merged)
        found = None
        if not inv.new_input and not ephemeral and cp is not None:
            found = find_pin(cp, merged)
        elif not inv.new_input:
            found = _Found(None, None, None)
        run = inv.start(input, found, ephemeral)
        down = inv.prepare(self, run)
        inv.began()
        observed = bool(run.observers)
        scrub = inv.must_scrub
        outcome: Outcome = "error"
        error: BaseException | None = None
        inner = cast(Generator[Any, None, None], super().stream(input, inv.config, **down))
        try:
            while True:
                if observed:
                    act = _Activation(run)
                    with act:
                        chunk = next(inner, _END)
                    observed = not act.trivial
                else:
                    chunk = next(inner, _END)
                if chunk is _END:
                    break
                yield inv.scrub(chunk) if scrub else chunk
            outcome = inv.outcome()
        except GraphInterrupt:
            # a wrapped graph nested in an unwrapped parent: its interrupt propagates
            outcome = "interrupted"
            raise
        except GraphDrained as exc:
            outcome, error = "drained", inv.converted(exc)
            if error is exc:
                raise
            raise error from exc
        except BaseException as exc:
            error = exc
            if isinstance(exc, GeneratorExit | asyncio.CancelledError):
                outcome = "cancelled"  # the caller stopped listening; the graph did not fail
            raise
        finally:
            if outcome in ("error", "cancelled"):
                with _Activation(run) if observed else contextlib.nullcontext():
                    inner.close()
            _notify_ended(run, outcome, error)

    async def _flagmw_astream(
        self,
        input: Any,
        config: RunnableConfig | None,
        kwargs: dict[str, Any],
        merged: RunnableConfig,
    ) -> AsyncIterator[Any]:
        inv, cp, ephemeral = self._flagmw_setup(input, config, kwargs, merged)
        found = None
        if not inv.new_input and not ephemeral and cp is not None:
            found = await afind_pin(cp, merged)
        elif not inv.new_input:
            found = _Found(None, None, None)
        run = inv.start(input, found, ephemeral)
        down = inv.prepare(self, run)
        inv.began()
        observed = bool(run.observers)
        scrub = inv.must_scrub
        outcome: Outcome = "error"
        error: BaseException | None = None
        inner = super().astream(input, inv.config, **down)
        try:
            while True:
                try:
                    if observed:
                        act = _Activation(run)
                        with act:
                            chunk = await inner.__anext__()
                        observed = not act.trivial
                    else:
                        chunk = await inner.__anext__()
                except StopAsyncIteration:
                    break
                yield inv.scrub(chunk) if scrub else chunk
            outcome = inv.outcome()
        except GraphInterrupt:
            # a wrapped graph nested in an unwrapped parent: its interrupt propagates
            outcome = "interrupted"
            raise
        except GraphDrained as exc:
            outcome, error = "drained", inv.converted(exc)
            if error is exc:
                raise
            raise error from exc
        except BaseException as exc:
            error = exc
            if isinstance(exc, GeneratorExit | asyncio.CancelledError):
                outcome = "cancelled"  # the caller stopped listening; the graph did not fail
            raise
        finally:
            if outcome in ("error", "cancelled"):
                aclose = getattr(inner, "aclose", None)
                if aclose is not None:
                    with _Activation(run) if observed else contextlib.nullcontext():
                        await aclose()
            _notify_ended(run, outcome, error)

    # -- reading the pin -------------------------------------------------------------

    def get_pinned_config(self, config: RunnableConfig) -> RunConfig | None:
        """The RunConfig pinned for the thread in ``config`` (at its ``checkpoint_id``
        when given): what a resume with ``on_resume="pinned"`` would use (before hot
        flags are brought up to date). None when the thread has no pin.

        Raises:
            IntegrityError: the stored pin fails verification.
            ValueError: the graph has no checkpointer.
        """
        cp = self._flagmw_checkpointer(config)
        found = find_pin(cp, _ensure_config(self.config, config))
        return None if found.pin is None else decode_pin(found.pin)

    async def aget_pinned_config(self, config: RunnableConfig) -> RunConfig | None:
        """Async twin of :meth:`get_pinned_config`."""
        cp = self._flagmw_checkpointer(config)
        found = await afind_pin(cp, _ensure_config(self.config, config))
        return None if found.pin is None else decode_pin(found.pin)

    def _flagmw_checkpointer(self, config: RunnableConfig) -> BaseCheckpointSaver[Any]:
        conf = config.get("configurable") or {}
        cp = conf.get(_LENT_CHECKPOINTER, self.checkpointer)
        if not isinstance(cp, BaseCheckpointSaver):
            raise ValueError(f"graph {self.name!r} has no checkpointer: nothing is pinned")
        return cp


_END: Any = object()


# -- wrap ----------------------------------------------------------------------------


def _default_tracer() -> RunObserver | None:
    try:
        import opentelemetry.trace  # noqa: F401

        from flagmw.tracing.writer import RunTracer  # type: ignore[attr-defined,unused-ignore]
    except ImportError:
        return None
    except Exception:
        log.warning("flagmw: flagmw.tracing failed to import; runs are not traced", exc_info=True)
        return None
    try:
        return cast(RunObserver, RunTracer())
    except Exception:
        log.warning("flagmw: RunTracer() failed; runs are not traced", exc_info=True)
        return None


def wrap(
    graph: G,
    client: FlagClient,
    *,
    name: str | None = None,
    context: ContextBuilder | None = None,
    on_resume: ResumePolicy = "pinned",
    tracer: RunObserver | Literal[False] | None = None,
    observers: Sequence[RunObserver] = (),
) -> G:
    """Put flagmw inside a compiled LangGraph graph.

    Returns a copy of ``graph`` — an instance of a subclass of the graph's own class,
    with the same API — whose runs get a pinned :class:`~flagmw.runconfig.RunConfig`
    (readable with ``flagmw.current()`` in any node, tool or model call), hot flags
    re-resolved at each step boundary, and run kills that drain the run. ``graph``
    itself is not changed.

    Works on graphs from ``StateGraph.compile()``, ``langgraph.prebuilt`` and
    ``langchain.agents.create_agent``; a wrapped graph running as a subgraph of another
    wrapped graph passes straight through (it shares its parent's run).

    Args:
        graph: a compiled graph (a ``Pregel`` instance). When it has a checkpointer,
            the copy uses a :class:`PinningCheckpointer` around it.
        client: the :class:`~flagmw.client.FlagClient` that resolves flags.
        name: the agent's name: the default ``route`` of the evaluation context and
            ``gen_ai.agent.name`` in the trace (default: the graph's ``name``).
        context: ``(config, input) -> EvaluationContext``; default
            :func:`context_from_config` (tenant, user, thread, run, plan and route from
            ``config["configurable"]``).
        on_resume: what a resumed run uses: ``"pinned"`` (default: the RunConfig pinned
            when the run started, with hot flags brought up to date), ``"live"`` (a fresh
            resolution, pinned from then on), ``"fail_if_changed"`` (the pin, but raise
            :class:`ConfigChangedError` before running when a fresh resolution differs
            in a pinned flag).
        tracer: a :class:`~flagmw.run.RunObserver` that writes the trace; None (default)
            uses ``flagmw.tracing.RunTracer()`` when it and OpenTelemetry import; False
            disables tracing.
        observers: more :class:`~flagmw.run.RunObserver` objects.

    Raises:
        TypeError: ``graph`` is not a compiled LangGraph graph.
        ValueError: an unknown ``on_resume`` policy.

    Example::

        graph = flagmw.wrap(builder.compile(checkpointer=saver), client, name="support")
        graph.invoke({"messages": [...]}, {"configurable": {"thread_id": "t-1",
                                                          "tenant_id": "acme"}})
    """
    if not isinstance(graph, Pregel):
        raise TypeError(
            f"flagmw.wrap expects a compiled LangGraph graph (builder.compile(), "
            f"create_agent(...)), got {type(graph).__name__}"
        )
    if on_resume not in ("pinned", "live", "fail_if_changed"):
        raise ValueError(
            f"on_resume must be 'pinned', 'live' or 'fail_if_changed', got {on_resume!r}"
        )
    if not isinstance(client, FlagClient):
        raise TypeError(f"flagmw.wrap expects a FlagClient, got {type(client).__name__}")
    base: type[_Graph] = getattr(type(graph), "_flagmw_base", type(graph))
    attrs = {k: v for k, v in graph.__dict__.items() if k != "__orig_class__"}
    checkpointer = attrs.get("checkpointer")
    if isinstance(checkpointer, PinningCheckpointer):  # re-wrapping a wrapped graph
        checkpointer = checkpointer.inner
    if isinstance(checkpointer, BaseCheckpointSaver):
        attrs["checkpointer"] = PinningCheckpointer(checkpointer)
    chosen = _default_tracer() if tracer is None else (None if tracer is False else tracer)
    every = tuple(o for o in (chosen, *observers) if o is not None)
    settings = _Settings(
        client=client,
        name=name or getattr(graph, "name", None) or "LangGraph",
        context=context,
        on_resume=on_resume,
        observers=every,
        kill_keys=tuple(sorted(client.registry.run_kill_keys)),
    )
    cls = type(
        "Flagged" + base.__name__,
        (_FlagmwGraph, base),
        {"_flagmw": settings, "_flagmw_base": base, "__module__": __name__},
    )
    return cast(G, cls(**attrs))
