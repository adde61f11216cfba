"""The pin: the stored form of a run's RunConfig in checkpoint metadata, and finding it
again when the run resumes."""

from __future__ import annotations

import json
import logging
from collections.abc import (
    Iterable,
    Mapping,
)
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from langchain_core.runnables import RunnableConfig

# the merge LangGraph itself applies to an invocation's config (ambient config, the
# reset of an inherited checkpoint coordinate); private in langgraph 1.2
from langgraph.checkpoint.base import (
    BaseCheckpointSaver,
    CheckpointTuple,
)

from flagmw.core.provenance import Layer, Provenance
from flagmw.core.runconfig import FORMAT as RUNCONFIG_FORMAT
from flagmw.core.runconfig import RunConfig
from flagmw.errors import IntegrityError

if TYPE_CHECKING:  # pragma: no cover
    pass
from flagmw.langgraph.keys import PIN_FORMAT, PIN_KEY, SPAN_KEY

log = logging.getLogger("flagmw")


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
