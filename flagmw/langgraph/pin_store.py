"""Where a thread's pins live, and finding the one to resume with.

* the pin itself — :func:`~flagmw.langgraph.pin.encode_pin` text, ≈2.5 KB for 50 flags —
  is the metadata of one checkpoint in the thread's own
  :data:`~flagmw.langgraph.keys.PIN_NAMESPACE` namespace (an empty checkpoint, id = the
  run's first root checkpoint id without its dashes), written once per pinned run
  (:func:`pin_record`, by the checkpointer delegate);
* every checkpoint the run writes in its own namespace (the root namespace; for a
  wrapped graph nested in a node of another, the task's namespace) names it under
  :data:`~flagmw.langgraph.keys.REF_KEY` (``"<pin id>"`` or ``"<pin id> <span ref>"``,
  ≤ 100 bytes), so a resume reads two checkpoints — the one it resumes and the pin —
  whatever the length of the thread (:func:`find_pin`), and deleting older root
  checkpoints (``prune`` ``keep_latest``, a TTL sweep) leaves both in place. Pins of
  nested runs share the pin namespace (their ids are checkpoint ids: unique).
  ``delete_thread`` and ``copy_thread`` take the pins with the thread.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Generator, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal, cast

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    BaseCheckpointSaver,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    copy_checkpoint,
    empty_checkpoint,
)

from flagmw.errors import IntegrityError
from flagmw.langgraph.keys import PIN_FORMAT, PIN_KEY, PIN_NAMESPACE, REF_KEY, SPAN_KEY

__all__ = ["afind_pin", "find_pin", "pin_record"]


# an empty checkpoint, copied for each pin (empty_checkpoint() makes a uuid6: ≈13 µs)
_EMPTY = empty_checkpoint()


def pin_record(
    thread_id: Any, checkpoint_id: str, pin: str, ts: str | None = None
) -> tuple[str, RunnableConfig, Checkpoint, CheckpointMetadata]:
    """``(pin id, config, checkpoint, metadata)`` of the checkpoint that stores ``pin``
    for a run whose first root checkpoint is ``checkpoint_id`` (written at ``ts``): an
    empty checkpoint in the thread's :data:`PIN_NAMESPACE`, id = ``checkpoint_id``
    without dashes (ordered like it, so "the latest checkpoint of the namespace" is the
    newest pin)."""
    pin_id = checkpoint_id.replace("-", "")
    checkpoint = copy_checkpoint(_EMPTY)
    checkpoint["id"] = pin_id
    if ts is not None:
        checkpoint["ts"] = ts
    config: RunnableConfig = {
        "configurable": {"thread_id": thread_id, "checkpoint_ns": PIN_NAMESPACE}
    }
    metadata = cast(CheckpointMetadata, {PIN_KEY: pin})
    return pin_id, config, checkpoint, metadata


def _pin_config(thread_id: Any, pin_id: str) -> RunnableConfig:
    return {
        "configurable": {
            "thread_id": thread_id,
            "checkpoint_ns": PIN_NAMESPACE,
            "checkpoint_id": pin_id,
        }
    }


@dataclass(frozen=True, slots=True)
class _Found:
    pin: str | None  # the JSON of the pin
    checkpoint_id: str | None  # the checkpoint that carries it
    span: str | None  # the span reference of the invocation resumed
    ref: str | None = None  # the pin id the checkpoint resumed names (None: 0.1 layout)
    exists: bool = False  # the thread has the checkpoint to resume

    def missing(self, thread: str | None) -> str:
        """Why no pin was found, for the error a ``pinned`` resume raises."""
        where = (
            f"its checkpoints name pin {self.ref} (namespace {PIN_NAMESPACE!r}) but it is gone"
            if self.ref is not None
            else "its checkpoints name no pin (the run started before the graph was wrapped, "
            "or its checkpoints were written without flagmw)"
        )
        return (
            f"thread {thread}: cannot resume with the pinned RunConfig: {where}. Resume "
            "with a graph wrapped with on_resume='live' to resolve the config afresh."
        )


_Request = (
    tuple[Literal["get"], RunnableConfig]
    | tuple[Literal["scan"], RunnableConfig, RunnableConfig, dict[str, Any]]
)


def _lookup_configs(
    config: RunnableConfig, ns: str = ""
) -> tuple[RunnableConfig, RunnableConfig | None] | None:
    """(the config of the run's namespace in the thread — the root namespace, or a nested
    run's own — and the explicit checkpoint's config or None; a nested run reads its
    namespace's latest checkpoint: the checkpoint id in its config is its parent's)."""
    conf = config.get("configurable") or {}
    thread_id = conf.get("thread_id")
    if thread_id is None:
        return None
    base: RunnableConfig = {"configurable": {"thread_id": thread_id, "checkpoint_ns": ns}}
    cid = conf.get("checkpoint_id")
    if not cid or ns:
        return base, None
    return base, {
        "configurable": {"thread_id": thread_id, "checkpoint_ns": "", "checkpoint_id": cid}
    }


def _lookup(config: RunnableConfig, ns: str = "") -> Generator[_Request, Any, _Found]:
    """The lookup, sans I/O (one implementation for sync and async): yields the reads it
    needs, receives their results. Two reads when the checkpoint resumed names its pin."""
    cfgs = _lookup_configs(config, ns)
    if cfgs is None:
        return _Found(None, None, None)
    base, explicit = cfgs
    tup: CheckpointTuple | None = yield ("get", explicit or base)
    if tup is None:
        return _Found(None, None, None)
    # A checkpoint that names no pin: written by 0.1 (the pin on the run's first root
    # checkpoint) or outside the wrapper (the bare graph's update_state): walk back to
    # the nearest pin or reference.
    state: dict[str, Any] = {}
    found = _scan([tup], state)
    if found is None:
        found = yield ("scan", base, tup.config, state)
    if found is None:
        return _Found(None, None, state.get("span"), exists=True)
    if found.ref is None:
        return found  # a 0.1 pin
    thread_id = base["configurable"]["thread_id"]
    held: CheckpointTuple | None = yield ("get", _pin_config(thread_id, found.ref))
    pin = (held.metadata or {}).get(PIN_KEY) if held is not None else None
    if not isinstance(pin, str):
        return found
    _refuse_downgrade(pin, found.ref)
    return replace(found, pin=pin, checkpoint_id=found.ref)


def _refuse_downgrade(pin: str, pin_id: str) -> None:
    """A pin in the pin namespace is always ``flagmw.pin/2`` (with its digest): one of the
    digest-less forms :func:`decode_pin` also reads there was put in place of it."""
    try:
        fmt = json.loads(pin).get("format")
    except (json.JSONDecodeError, AttributeError):
        return  # decode_pin reports it
    if fmt != PIN_FORMAT:
        raise IntegrityError(
            f"pin {pin_id} (namespace {PIN_NAMESPACE!r}) is {fmt!r}, not {PIN_FORMAT!r}: "
            "a pin stored there always carries a digest; refused"
        )


def _scan(tuples: Iterable[CheckpointTuple | None], state: dict[str, Any]) -> _Found | None:
    """The first of ``tuples`` (newest first) that names a pin (``flagmw.ref``) or holds
    a 0.1 one (``flagmw.pin``), as a :class:`_Found` (``pin`` None: to be read)."""
    for tup in tuples:
        if tup is None:
            continue
        md: Mapping[str, Any] = tup.metadata or {}
        ref = md.get(REF_KEY)
        if isinstance(ref, str) and ref:
            pin_id, _, span = ref.partition(" ")
            return _Found(None, None, state.get("span") or span or None, pin_id, True)
        if state.get("span") is None and isinstance(md.get(SPAN_KEY), str):
            state["span"] = md[SPAN_KEY]
        pin = md.get(PIN_KEY)
        if isinstance(pin, str):
            cid = tup.config.get("configurable", {}).get("checkpoint_id")
            return _Found(pin, cid, state.get("span"), None, True)
    return None


def find_pin(
    checkpointer: BaseCheckpointSaver[Any], config: RunnableConfig, *, ns: str = ""
) -> _Found:
    """The pin of the run to resume at ``config`` (its ``checkpoint_id`` when it names
    one, else the thread's latest checkpoint in namespace ``ns``: ``""`` for a root run,
    the task's namespace for a wrapped graph nested in another graph's node), with the
    span reference of the invocation it continues. Reads two checkpoints (0.1 threads:
    walks back to the pin)."""
    gen = _lookup(config, ns)
    try:
        request = next(gen)
        while True:
            if request[0] == "get":
                result: Any = checkpointer.get_tuple(request[1])
            else:
                _, base, before, state = request
                # closing matters: SqliteSaver.list holds its lock while the generator is open
                it: Iterator[CheckpointTuple] = checkpointer.list(base, before=before)
                try:
                    result = _scan(it, state)
                finally:
                    close = getattr(it, "close", None)
                    if close is not None:
                        close()
            request = gen.send(result)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]


async def afind_pin(
    checkpointer: BaseCheckpointSaver[Any], config: RunnableConfig, *, ns: str = ""
) -> _Found:
    """Async twin of :func:`find_pin` (the same lookup, async reads)."""
    gen = _lookup(config, ns)
    try:
        request = next(gen)
        while True:
            if request[0] == "get":
                result: Any = await checkpointer.aget_tuple(request[1])
            else:
                _, base, before, state = request
                it: AsyncIterator[CheckpointTuple] = checkpointer.alist(base, before=before)
                result = None
                try:
                    async for tup in it:
                        result = _scan([tup], state)
                        if result is not None:
                            break
                finally:
                    aclose = getattr(it, "aclose", None)
                    if aclose is not None:
                        await aclose()
            request = gen.send(result)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
