"""flagmw — the runtime control plane for LangGraph agents.

Which capabilities, models, tools and policy knobs are active for *this run*, decided
once when the run starts, kept in the checkpoint so a resumed run sees the same
answer, with kill switches that reach a run in flight at its next step boundary, and
every decision visible in the trace.

The core (registry, snapshots, resolver, stores, client) imports neither LangGraph nor
OpenTelemetry. The LangGraph integration (``wrap``, ``gated``, ``routed_model``,
``current`` …) is imported on first use and needs ``pip install 'flagmw[langgraph]'``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from flagmw._version import __version__
from flagmw.client.client import ClientStatus, FlagClient, PublishResult
from flagmw.core.context import EvaluationContext
from flagmw.core.overrides import Override
from flagmw.core.registry import Binding, Flag, FlagRegistry, FlagType
from flagmw.core.resolve import Explanation
from flagmw.core.runconfig import HotChange, Layer, Provenance, RunConfig
from flagmw.core.snapshot import Snapshot, validate_document
from flagmw.errors import (
    ConfigChangedError,
    ConflictError,
    FlagmwError,
    IntegrityError,
    NoRunConfigError,
    NotFoundError,
    OverrideError,
    Problem,
    RefusedError,
    StoreUnavailableError,
    UnknownFlagError,
    UnknownRouteError,
    ValidationError,
)
from flagmw.stores import MemoryStore, SQLiteStore, Store

if TYPE_CHECKING:  # pragma: no cover
    from flagmw.langgraph.drain import RunDrained
    from flagmw.langgraph.models import routed_model
    from flagmw.langgraph.run import current, run_info
    from flagmw.langgraph.tools import enabled_tools, gate_of, gated
    from flagmw.langgraph.wrap import wrap

# name → (module, extra that provides its dependencies)
_LAZY = {
    "wrap": ("flagmw.langgraph.wrap", "langgraph"),
    "RunDrained": ("flagmw.langgraph.drain", "langgraph"),
    "gated": ("flagmw.langgraph.tools", "langgraph"),
    "enabled_tools": ("flagmw.langgraph.tools", "langgraph"),
    "gate_of": ("flagmw.langgraph.tools", "langgraph"),
    "routed_model": ("flagmw.langgraph.models", "langgraph"),
    "current": ("flagmw.langgraph.run", None),
    "run_info": ("flagmw.langgraph.run", None),
}


def __getattr__(name: str) -> Any:
    spec = _LAZY.get(name)
    if spec is None:
        raise AttributeError(f"module 'flagmw' has no attribute {name!r}")
    module_name, extra = spec
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if extra is None or (exc.name or "").startswith("flagmw"):
            raise
        raise ImportError(
            f"flagmw.{name} needs the '{extra}' extra ({exc.name} is not installed): "
            f"pip install 'flagmw[{extra}]'"
        ) from exc
    value = getattr(module, name)
    globals()[name] = value
    return value


__all__ = [
    "Binding",
    "ClientStatus",
    "ConfigChangedError",
    "ConflictError",
    "EvaluationContext",
    "Explanation",
    "Flag",
    "FlagClient",
    "FlagRegistry",
    "FlagType",
    "FlagmwError",
    "HotChange",
    "IntegrityError",
    "Layer",
    "MemoryStore",
    "NoRunConfigError",
    "NotFoundError",
    "Override",
    "OverrideError",
    "Problem",
    "Provenance",
    "PublishResult",
    "RefusedError",
    "RunConfig",
    "RunDrained",
    "SQLiteStore",
    "Snapshot",
    "Store",
    "StoreUnavailableError",
    "UnknownFlagError",
    "UnknownRouteError",
    "ValidationError",
    "__version__",
    "current",
    "enabled_tools",
    "gate_of",
    "gated",
    "routed_model",
    "run_info",
    "validate_document",
    "wrap",
]
