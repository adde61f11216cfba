"""flagmw — the runtime control plane for LangGraph agents.

Which capabilities, models, tools and policy knobs are active for *this run*, decided
once when the run starts, kept in the checkpoint so a resumed run sees the same
answer, with kill switches that reach a run in flight at its next step boundary, and
every decision visible in the trace.

The core (registry, snapshots, resolver, stores, client) imports neither LangGraph nor
OpenTelemetry. The LangGraph integration (``wrap``, ``gated``, ``routed_model``,
``current`` …) needs ``pip install 'flagmw[langgraph]'``.

Every public name is imported on first use (PEP 562 module ``__getattr__``), so
``import flagmw`` costs next to nothing and ``flagmw kill`` in an incident starts fast;
``from flagmw import X``, ``flagmw.X``, ``dir(flagmw)`` and ``__all__`` work as usual.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from flagmw._version import __version__

if TYPE_CHECKING:  # pragma: no cover - what the lazy names are, for type checkers
    from flagmw.client.client import ClientStatus, FlagClient, PublishResult
    from flagmw.core.context import EvaluationContext
    from flagmw.core.explain import Explanation
    from flagmw.core.flag import Flag
    from flagmw.core.flag_spec import Binding, FlagType
    from flagmw.core.hot_change import HotChange
    from flagmw.core.overrides import Override
    from flagmw.core.provenance import Layer, Provenance
    from flagmw.core.registry import FlagRegistry
    from flagmw.core.runconfig import RunConfig
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
    from flagmw.langgraph.drain import RunDrained
    from flagmw.langgraph.models import routed_model
    from flagmw.langgraph.replay import areplay, replay
    from flagmw.langgraph.run import current, run_info
    from flagmw.langgraph.tools import enabled_tools, gate_of, gated
    from flagmw.langgraph.wrap import wrap
    from flagmw.stores import MemoryStore, SQLiteStore, Store

_ERRORS = (
    "ConfigChangedError",
    "ConflictError",
    "FlagmwError",
    "IntegrityError",
    "NoRunConfigError",
    "NotFoundError",
    "OverrideError",
    "Problem",
    "RefusedError",
    "StoreUnavailableError",
    "UnknownFlagError",
    "UnknownRouteError",
    "ValidationError",
)

#: public name → (module that defines it, extra that provides its dependencies or None)
_LAZY: dict[str, tuple[str, str | None]] = {
    "ClientStatus": ("flagmw.client.client", None),
    "FlagClient": ("flagmw.client.client", None),
    "PublishResult": ("flagmw.client.client", None),
    "EvaluationContext": ("flagmw.core.context", None),
    "Override": ("flagmw.core.overrides", None),
    "Binding": ("flagmw.core.flag_spec", None),
    "Flag": ("flagmw.core.flag", None),
    "FlagRegistry": ("flagmw.core.registry", None),
    "FlagType": ("flagmw.core.flag_spec", None),
    "Explanation": ("flagmw.core.explain", None),
    "HotChange": ("flagmw.core.hot_change", None),
    "Layer": ("flagmw.core.provenance", None),
    "Provenance": ("flagmw.core.provenance", None),
    "RunConfig": ("flagmw.core.runconfig", None),
    "Snapshot": ("flagmw.core.snapshot", None),
    "validate_document": ("flagmw.core.snapshot", None),
    **{name: ("flagmw.errors", None) for name in _ERRORS},
    "MemoryStore": ("flagmw.stores", None),
    "SQLiteStore": ("flagmw.stores", None),
    "Store": ("flagmw.stores", None),
    "wrap": ("flagmw.langgraph.wrap", "langgraph"),
    "replay": ("flagmw.langgraph.replay", "langgraph"),
    "areplay": ("flagmw.langgraph.replay", "langgraph"),
    "RunDrained": ("flagmw.langgraph.drain", "langgraph"),
    "gated": ("flagmw.langgraph.tools", "langgraph"),
    "enabled_tools": ("flagmw.langgraph.tools", "langgraph"),
    "gate_of": ("flagmw.langgraph.tools", "langgraph"),
    "routed_model": ("flagmw.langgraph.models", "langgraph"),
    "current": ("flagmw.langgraph.run", None),
    "run_info": ("flagmw.langgraph.run", None),
    "record_violation": ("flagmw.rollout.outcomes", None),
}


def __getattr__(name: str) -> Any:
    """Import a public name on first use and keep it (PEP 562).

    Raises:
        AttributeError: not a public name of flagmw.
        ImportError: the name needs an extra that is not installed (the message names
            the ``pip install`` that provides it).
    """
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


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


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
    "areplay",
    "current",
    "enabled_tools",
    "gate_of",
    "gated",
    "record_violation",
    "replay",
    "routed_model",
    "run_info",
    "validate_document",
    "wrap",
]
