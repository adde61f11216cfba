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

from ._version import __version__
from .client import ClientStatus, FlagClient, PublishResult
from .context import EvaluationContext
from .errors import (
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
from .overrides import Override
from .registry import Binding, Flag, FlagRegistry, FlagType
from .resolver import Explanation
from .runconfig import HotChange, Layer, Provenance, RunConfig
from .snapshot import Snapshot, validate_document
from .stores import MemoryStore, SQLiteStore, Store

if TYPE_CHECKING:  # pragma: no cover
    from .graph import RunDrained, wrap
    from .models import routed_model
    from .run import current
    from .tools import enabled_tools, gate_of, gated

# name → (module, extra that provides its dependencies)
_LAZY = {
    "wrap": ("flagmw.graph", "langgraph"),
    "RunDrained": ("flagmw.graph", "langgraph"),
    "gated": ("flagmw.tools", "langgraph"),
    "enabled_tools": ("flagmw.tools", "langgraph"),
    "gate_of": ("flagmw.tools", "langgraph"),
    "routed_model": ("flagmw.models", "langgraph"),
    "current": ("flagmw.run", None),
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
    "validate_document",
    "wrap",
]
