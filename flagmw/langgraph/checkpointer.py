"""The checkpointer delegate: forwards every public method of ``BaseCheckpointSaver`` to
the real checkpointer and writes the flagmw pin, its reference and the span reference
into the run's checkpoints."""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable, Sequence
from typing import Any, cast

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
)

from flagmw.langgraph.keys import REF_KEY, SPAN_KEY
from flagmw.langgraph.pin_store import pin_record
from flagmw.langgraph.run import RUN_KEY, RunState

log = logging.getLogger("flagmw")


#: The channel of pending writes where LangGraph stores interrupts: part of its persisted
#: checkpoint format. LangGraph exports no public constant for it (it is
#: ``langgraph._internal._constants.INTERRUPT``); tests/test_checkpointer.py proves a real
#: ``interrupt()`` is written under this name.
INTERRUPT_CHANNEL = "__interrupt__"


def _note_interrupt(config: RunnableConfig, writes: Sequence[tuple[str, Any]]) -> None:
    """Mark the run interrupted when its root namespace stores an ``interrupt()``: LangGraph
    saves it as a pending write on the ``__interrupt__`` channel (every durability mode;
    a subgraph's interrupt is written in the root namespace too). The writes are looked
    at first: the run is looked up only for writes that hold that channel. Reading it
    here costs nothing, where a callback handler to hear ``on_interrupt`` makes
    LangChain run its callback machinery for every node, model and tool call (≈4 % of a
    run)."""
    for channel, _ in writes:
        if channel == INTERRUPT_CHANNEL:
            break
    else:
        return
    conf = config.get("configurable")
    if not conf or conf.get("checkpoint_ns", ""):
        return
    run = conf.get(RUN_KEY)
    if isinstance(run, RunState):
        run.interrupted = True


def _strip_flagmw(config: RunnableConfig, run: RunState | None = None) -> RunnableConfig:
    """``config`` without the ``flagmw.*`` keys of its metadata. A run's checkpoints all
    come with one metadata dict (the loop's, never changed during the run): the kept
    keys are computed once per run (``run.stripped``) and copied for each put."""
    meta = config.get("metadata")
    if not meta:
        return config
    memo = run.stripped if run is not None else None
    if memo is not None and memo[0] is meta and memo[1] == len(meta):
        kept = memo[2]
    else:
        kept = {k: v for k, v in meta.items() if not k.startswith("flagmw.")}
        if run is not None:
            run.stripped = (meta, len(meta), kept)
    if len(kept) == len(meta):
        return config
    return {**config, "metadata": dict(kept)}


def _later(
    config: RunnableConfig, metadata: CheckpointMetadata
) -> tuple[RunnableConfig, CheckpointMetadata] | None:
    """``(config, metadata)`` to write for a later checkpoint of a wrapped run in its own
    namespace — most puts: the pin reference fixed at the invocation's first checkpoint
    (``run.ref_text``), the config without the ``flagmw.*`` metadata keys — or None for
    any other put (:meth:`PinningCheckpointer._prepare` decides those)."""
    conf = config.get("configurable")
    if not conf:
        return None
    run = conf.get(RUN_KEY)
    if (
        not isinstance(run, RunState)
        or not run.root_checkpoint_written
        or conf.get("checkpoint_ns", "") != run.ns
    ):
        return None
    ref = run.ref_text
    if ref is not None:
        # a copy: the loop keeps its metadata dict (and streams it in "checkpoints" mode)
        metadata = {**metadata, REF_KEY: ref}  # type: ignore[misc]
    return _strip_flagmw(config, run), metadata


def _accepts_task_path(put_writes: Callable[..., Any]) -> bool:
    """Whether a saver's ``put_writes`` / ``aput_writes`` takes ``task_path`` (savers
    written before langgraph-checkpoint 2.0.x added it do not): read once from its
    signature, as LangGraph itself does."""
    try:
        params = inspect.signature(put_writes).parameters
    except (TypeError, ValueError):  # no introspectable signature: assume the current API
        return True
    # task_path is passed positionally (as LangGraph does): a *args saver takes it too
    return "task_path" in params or any(
        p.kind is inspect.Parameter.VAR_POSITIONAL for p in params.values()
    )


_Write = tuple[RunnableConfig, Checkpoint, CheckpointMetadata]


class PinningCheckpointer(BaseCheckpointSaver[Any]):
    """A checkpointer that forwards everything to ``inner`` and writes the flagmw pin.

    ``wrap`` puts one in place of the graph's checkpointer (in the wrapped copy only).
    For a checkpoint written by a wrapped invocation (its config carries the
    :class:`~flagmw.run.RunState` under ``configurable[RUN_KEY]``), in the run's own
    namespace (``checkpoint_ns == ""``; for a wrapped graph nested in a node or tool of
    another graph, the task's namespace):

    * when the invocation pinned a new config, the first checkpoint is preceded by the
      pin checkpoint (:func:`~flagmw.langgraph.pin.pin_record`: the pin in the
      metadata of an empty checkpoint in the thread's ``flagmw.pin`` namespace);
    * every checkpoint gets ``flagmw.ref`` — the pin's id, and the trace writer's span
      reference when set (≤ 100 bytes);
    * the first checkpoint also gets ``flagmw.span`` and keeps ``flagmw.snapshot_rev`` /
      ``flagmw.config_hash`` from ``config["metadata"]``; every other checkpoint is
      written without the ``flagmw.*`` keys of ``config["metadata"]`` — savers copy the
      scalar values of ``config["metadata"]`` into every checkpoint
      (``langgraph.checkpoint.base.get_checkpoint_metadata``).

    A root checkpoint written outside a wrapped invocation (``update_state``) carries
    its parent's ``flagmw.ref`` forward (one read), so the latest checkpoint always
    names the pin. The namespaces of a run's (unwrapped) subgraphs are written without
    ``flagmw.*`` keys.

    Every other public method of ``BaseCheckpointSaver`` — those of the installed
    langgraph-checkpoint, including any added upstream later — is forwarded to
    ``inner`` unchanged (generated below the class), as are its attributes
    (``serde``, ``conn``, ``setup`` …).

    Args:
        inner: the real checkpointer (InMemorySaver, SqliteSaver, PostgresSaver, …).
    """

    def __init__(self, inner: BaseCheckpointSaver[Any]) -> None:
        # no super().__init__: serde belongs to the inner saver (see the property)
        self.inner = inner
        self._writes_task_path = _accepts_task_path(inner.put_writes)
        self._awrites_task_path = _accepts_task_path(inner.aput_writes)
        # the forwarded methods called at every step (get_next_version per channel
        # written) go straight to the inner saver's bound method
        for name in _HOT_FORWARDED:
            setattr(self, name, getattr(inner, name))

    # serde / specs belong to the inner saver
    @property
    def serde(self) -> Any:
        return self.inner.serde

    @serde.setter
    def serde(self, value: Any) -> None:
        self.inner.serde = value

    @property
    def config_specs(self) -> list[Any]:
        return list(self.inner.config_specs)

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
        config: RunnableConfig, checkpoint: Checkpoint, metadata: CheckpointMetadata
    ) -> tuple[RunnableConfig, CheckpointMetadata, _Write | None, bool]:
        """(config, metadata) to write, the pin checkpoint to write first, and whether the
        parent's reference must be carried forward (a put outside a wrapped run), for
        the puts :func:`_later` does not answer (``put`` / ``aput`` ask it first): the
        first checkpoint of an invocation, a subgraph's, one outside a wrapped run."""
        conf = config.get("configurable")
        if not conf:
            return config, metadata, None, False
        ns = conf.get("checkpoint_ns", "")
        run = conf.get(RUN_KEY)
        if not isinstance(run, RunState):
            carry = not ns and bool(conf.get("checkpoint_id")) and REF_KEY not in metadata
            return config, metadata, None, carry
        if ns != run.ns:  # a subgraph of the run (not a wrapped graph of its own)
            return _strip_flagmw(config, run), metadata, None, False
        pin_write: _Write | None = None
        extra: dict[str, Any] = {}
        # the first checkpoint of the invocation in its namespace
        run.root_checkpoint_written = True
        if run.pending_pin is not None:
            pin_id, *rest = pin_record(
                conf["thread_id"], checkpoint["id"], run.pending_pin, checkpoint.get("ts")
            )
            pin_write = cast(_Write, tuple(rest))
            run.pin_ref = pin_id
            run.pending_pin = None
        if run.span_ref:
            extra[SPAN_KEY] = run.span_ref
        ref = run.pin_ref
        if ref is not None:
            # the reference every checkpoint of this invocation carries (the span is set
            # when the run starts, before its first checkpoint)
            run.ref_text = extra[REF_KEY] = f"{ref} {run.span_ref}" if run.span_ref else ref
        if extra:
            # a copy: the loop keeps its metadata dict (and streams it in
            # "checkpoints" mode), so it must not see these keys
            metadata = cast(CheckpointMetadata, {**metadata, **extra})
        return config, metadata, pin_write, False

    @staticmethod
    def _parent_config(config: RunnableConfig) -> RunnableConfig:
        conf = config["configurable"]
        return {
            "configurable": {
                "thread_id": conf["thread_id"],
                "checkpoint_ns": "",
                "checkpoint_id": conf["checkpoint_id"],
            }
        }

    @staticmethod
    def _carried(metadata: CheckpointMetadata, parent: Any) -> CheckpointMetadata:
        ref = (parent.metadata or {}).get(REF_KEY) if parent is not None else None
        if not isinstance(ref, str):
            return metadata
        return cast(CheckpointMetadata, {**metadata, REF_KEY: ref})

    # -- writes -----------------------------------------------------------------------

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        later = _later(config, metadata)  # most puts: a later checkpoint of the run
        if later is not None:
            return self.inner.put(later[0], checkpoint, later[1], new_versions)
        config, metadata, pin_write, carry = self._prepare(config, checkpoint, metadata)
        if pin_write is not None:  # before the checkpoints that name it
            self.inner.put(*pin_write, {})
        elif carry:
            parent = self.inner.get_tuple(self._parent_config(config))
            metadata = self._carried(metadata, parent)
        return self.inner.put(config, checkpoint, metadata, new_versions)

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        later = _later(config, metadata)
        if later is not None:
            return await self.inner.aput(later[0], checkpoint, later[1], new_versions)
        config, metadata, pin_write, carry = self._prepare(config, checkpoint, metadata)
        if pin_write is not None:
            await self.inner.aput(*pin_write, {})
        elif carry:
            parent = await self.inner.aget_tuple(self._parent_config(config))
            metadata = self._carried(metadata, parent)
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


# -- everything else BaseCheckpointSaver defines, forwarded ------------------------------


def _forwarder(name: str, member: Callable[..., Any]) -> Callable[..., Any]:
    if inspect.iscoroutinefunction(member):

        async def aforward(self: PinningCheckpointer, *args: Any, **kwargs: Any) -> Any:
            return await getattr(self.inner, name)(*args, **kwargs)

        forward: Callable[..., Any] = aforward
    else:

        def sforward(self: PinningCheckpointer, *args: Any, **kwargs: Any) -> Any:
            return getattr(self.inner, name)(*args, **kwargs)

        forward = sforward
    functools.update_wrapper(forward, member)
    forward.__qualname__ = f"PinningCheckpointer.{name}"
    forward.__doc__ = f"Forwarded to ``inner.{name}``."
    return forward


#: The public methods of ``BaseCheckpointSaver`` (of the installed langgraph-checkpoint)
#: that :class:`PinningCheckpointer` forwards unchanged to its ``inner`` saver: every
#: one it does not override (``put`` / ``aput`` / ``put_writes`` / ``aput_writes`` /
#: ``with_allowlist``).
FORWARDED: tuple[str, ...] = tuple(
    sorted(
        name
        for name, member in vars(BaseCheckpointSaver).items()
        if not name.startswith("_")
        and inspect.isfunction(member)
        and name not in PinningCheckpointer.__dict__
    )
)

#: Forwarded methods LangGraph calls at every superstep: bound to the inner saver's
#: methods on each instance (an attribute lookup instead of a call through the class's
#: forwarder).
_HOT_FORWARDED: tuple[str, ...] = tuple(n for n in ("get_next_version",) if n in FORWARDED)

for _name in FORWARDED:
    setattr(PinningCheckpointer, _name, _forwarder(_name, vars(BaseCheckpointSaver)[_name]))
del _name
