"""The checkpointer delegate that writes the pin into the run's checkpoint metadata."""

from __future__ import annotations

import logging
from collections.abc import (
    AsyncIterator,
    Iterator,
    Mapping,
    Sequence,
)
from typing import TYPE_CHECKING, Any, cast

from langchain_core.runnables import RunnableConfig

# the merge LangGraph itself applies to an invocation's config (ambient config, the
# reset of an inherited checkpoint coordinate); private in langgraph 1.2
from langgraph.checkpoint.base import (
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
)
from langgraph.pregel._checkpoint import put_writes_accepts_task_path

from flagmw.langgraph.run import RUN_KEY, RunState

if TYPE_CHECKING:  # pragma: no cover
    pass
from flagmw.langgraph.keys import PIN_KEY, SPAN_KEY

log = logging.getLogger("flagmw")


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
