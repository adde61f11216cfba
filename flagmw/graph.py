"""Compatibility: 0.1's ``flagmw.graph`` moved to :mod:`flagmw.langgraph` in 0.2 (``wrap``,
``RunDrained`` and ``ConfigChangedError`` are also re-exported by :mod:`flagmw`). Kept so
imports written for 0.1 keep working."""

from flagmw.errors import ConfigChangedError
from flagmw.langgraph.checkpointer import PinningCheckpointer
from flagmw.langgraph.context import ContextBuilder, context_from_config
from flagmw.langgraph.drain import RunDrained
from flagmw.langgraph.keys import (
    CONFIG_HASH_KEY,
    PIN_KEY,
    SNAPSHOT_REV_KEY,
    SPAN_KEY,
    ResumePolicy,
)
from flagmw.langgraph.pin import decode_pin, encode_pin
from flagmw.langgraph.wrap import wrap

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
