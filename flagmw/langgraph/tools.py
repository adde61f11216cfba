"""Gated tools: a flag decides, per run, whether the model may see and call a tool.

``@gated(key)`` puts a tool behind a flag of the run's :class:`~flagmw.RunConfig`:

* **hidden** — a disabled tool is not offered to the model: :func:`enabled_tools`
  filters a tool list for binding, ``routed_model(...).bind_tools`` filters per call,
  and the ``create_agent`` middleware filters ``request.tools``;
* **refused** — hiding is not enforcement (a model can still emit the call, e.g. after
  a prompt injection), so a call to a disabled tool *returns* a
  ``ToolMessage(status="error")`` that names the tool, the flag and, when an override
  decided it, the kill's id and reason. It never raises out of the tool, so it cannot
  end the run whatever ``ToolNode(handle_tool_errors=...)`` says (a raising gate
  crashes the run under ToolNode's default handler, langgraph#6486).

How a tool is gated (reference: ``langgraph-integration.md`` §7.3 and §7.4): the tool
object is copied and its class swapped for a dynamic subclass of its own class whose
``run`` / ``arun`` check the gate first. Nothing else changes — ``func``,
``coroutine``, ``args_schema``, ``tool_call_schema``, ``return_direct``,
``response_format``, ``handle_tool_error`` and injected arguments (``ToolRuntime``,
``InjectedState``) are the original tool's, and ``isinstance`` still holds. The gate
itself lives in ``tool.metadata["flagmw"] = {"flag": key}`` (read it with
:func:`gate_of`).

A refusal runs through LangChain's own tool-run machinery (callbacks see a tool run
whose output is the error ``ToolMessage``); the tool's body is never entered, and its
arguments are not validated.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, cast, overload

from langchain_core.messages import ToolMessage
from langchain_core.tools import BaseTool, StructuredTool, ToolException
from langchain_core.tools import tool as _make_tool
from pydantic import BaseModel

from flagmw.core.provenance import Layer, Provenance
from flagmw.core.runconfig import RunConfig
from flagmw.errors import RefusedError
from flagmw.langgraph.run import RUN_KEY, RunState, current_run

__all__ = [
    "Gate",
    "GatedFunctionTool",
    "Refusal",
    "check_tool",
    "enabled_tools",
    "gate_of",
    "gated",
]

log = logging.getLogger("flagmw")

T = TypeVar("T")
ToolT = TypeVar("ToolT", bound=BaseTool)

#: ``tool.metadata`` key that holds the gate.
METADATA_KEY = "flagmw"

_UNSET: Any = object()

OutsideRun = Literal["allow", "refuse"]


@dataclass(frozen=True, slots=True)
class Gate:
    """The flag that gates a tool.

    Attributes:
        key: the flag key, e.g. ``"tools.refund_api.enabled"``.
        when: None for a bool flag (enabled when the value is ``True``); otherwise the
            values for which the tool is enabled (e.g. the choices of an enum flag).
        outside_run: what a call does when no flagmw run is active: ``"allow"`` (run
            the tool, evaluate nothing, log a warning once per tool) or ``"refuse"``.
    """

    key: str
    when: tuple[Any, ...] | None = None
    outside_run: OutsideRun = "allow"

    def to_metadata(self) -> dict[str, Any]:
        """The ``tool.metadata["flagmw"]`` form (JSON primitives)."""
        out: dict[str, Any] = {"flag": self.key}
        if self.when is not None:
            out["when"] = list(self.when)
        if self.outside_run != "allow":
            out["outside_run"] = self.outside_run
        return out

    @classmethod
    def from_metadata(cls, data: Any) -> Gate | None:
        """Inverse of :meth:`to_metadata`; None when ``data`` is not a gate."""
        if not isinstance(data, Mapping) or not isinstance(data.get("flag"), str):
            return None
        when = data.get("when")
        outside = data.get("outside_run", "allow")
        return cls(
            data["flag"],
            tuple(when) if when is not None else None,
            "refuse" if outside == "refuse" else "allow",
        )


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a gated tool may not run in this run.

    Attributes:
        tool: the tool's name.
        key: the gating flag.
        message: the text returned to the model (the ``ToolMessage`` content).
        reason: the override's reason when an override decided the value, otherwise a
            short description of where the value came from (e.g. ``"tenant acme @rev
            3"``), or why the gate could not be evaluated.
        override_id: the override (kill) that decided the value, if one did.
        value: the flag's value in the run (None when the flag is unknown).
    """

    tool: str
    key: str
    message: str
    reason: str | None = None
    override_id: str | None = None
    value: Any = None

    def tool_message(self, tool_call_id: str) -> ToolMessage:
        """The refusal as the ``ToolMessage(status="error")`` answering ``tool_call_id``."""
        return ToolMessage(self.message, tool_call_id=tool_call_id, name=self.tool, status="error")

    def error(self) -> RefusedError:
        """The refusal as a :class:`~flagmw.RefusedError` (for direct Python calls)."""
        return RefusedError(
            self.message, key=self.key, reason=self.reason, override_id=self.override_id
        )


_ADVICE = "Do not retry it; tell the user it is unavailable."


def _decide(name: str, gate: Gate, rc: RunConfig) -> Refusal | None:
    """The refusal of tool ``name`` under ``gate`` in ``rc``, or None when allowed."""
    key = gate.key
    if key not in rc:
        # fail closed: a gate on a flag the registry does not define is a bug, and a
        # tool meant to be killable must not run unguarded because of it
        _log_once(
            ("unknown", name, key),
            logging.ERROR,
            "flagmw: tool %r is gated by flag %r, which this run's registry does not "
            "define; the tool is refused until the flag is defined",
            name,
            key,
        )
        return Refusal(
            name,
            key,
            f"Tool '{name}' is disabled: its gate flag {key} is not defined in the flag "
            f"registry. {_ADVICE}",
            reason=f"flag {key} is not defined in the registry",
        )
    value = rc.get(key)
    if gate.when is None:
        if value is True:
            return None
        if value is not False:
            _log_once(
                ("type", name, key),
                logging.ERROR,
                "flagmw: tool %r is gated by %r, which is not a bool flag (value %r); "
                "use gated(%r, when=...)",
                name,
                key,
                value,
                key,
            )
            return Refusal(
                name,
                key,
                f"Tool '{name}' is disabled: its gate flag {key} is not a bool flag "
                f"(value {value!r}). {_ADVICE}",
                reason=f"flag {key} is not a bool flag",
                value=value,
            )
    elif value in gate.when:
        return None
    prov: Provenance = rc.provenance[key]
    if prov.layer is Layer.OVERRIDE:
        kind = "kill" if value is False else "override"
        why = f"{kind} {prov.override_id}" + (f": {prov.reason}" if prov.reason else "")
        reason = prov.reason
    else:
        why = f"set by {prov.describe()}"
        reason = prov.describe()
    if gate.when is not None:
        allowed = ", ".join(repr(v) for v in gate.when)
        why = f"value {value!r}, enabled for {allowed}; {why}"
    return Refusal(
        name,
        key,
        f"Tool '{name}' is disabled by flag {key} ({why}). {_ADVICE}",
        reason=reason,
        override_id=prov.override_id,
        value=value,
    )


def _outside_run(name: str, gate: Gate) -> Refusal | None:
    if gate.outside_run == "refuse":
        return Refusal(
            name,
            gate.key,
            f"Tool '{name}' is disabled: it is gated by flag {gate.key} and no flagmw run "
            f"is active. {_ADVICE}",
            reason="no flagmw run is active",
        )
    _log_once(
        ("outside", name, gate.key),
        logging.WARNING,
        "flagmw: gated tool %r was called outside a flagmw run; flag %r was not evaluated "
        "and the tool ran (wrap the graph with flagmw.wrap, or use FlagmwMiddleware)",
        name,
        gate.key,
    )
    return None


_logged: set[tuple[str, str, str]] = set()
_logged_lock = threading.Lock()


def _log_once(what: tuple[str, str, str], level: int, msg: str, *args: Any) -> None:
    # a misconfigured gate would otherwise log on every call of every run
    with _logged_lock:
        if what in _logged:
            return
        _logged.add(what)
    log.log(level, msg, *args)


# -- reading gates ---------------------------------------------------------------------


def _tool_name(tool: Any) -> str | None:
    if isinstance(tool, BaseTool):
        return tool.name
    if isinstance(tool, Mapping):
        fn = tool.get("function")
        if isinstance(fn, Mapping) and isinstance(fn.get("name"), str):
            return cast(str, fn["name"])
        for field in ("name", "type"):
            if isinstance(tool.get(field), str):
                return cast(str, tool[field])
        return None
    name = getattr(tool, "__name__", None)
    return name if isinstance(name, str) else None


def _gate(tool: Any, gates: Mapping[str, str | Gate] | None = None) -> Gate | None:
    if isinstance(tool, BaseTool):
        found = Gate.from_metadata((tool.metadata or {}).get(METADATA_KEY))
        if found is not None:
            return found
    if gates:
        names = [_tool_name(tool)]
        if isinstance(tool, Mapping) and isinstance(tool.get("type"), str):
            names.append(tool["type"])  # provider tools are known by name or by type
        for name in names:
            if name is not None and name in gates:
                spec = gates[name]
                return spec if isinstance(spec, Gate) else Gate(spec)
    return None


def gate_of(tool: Any) -> str | None:
    """The flag key gating ``tool`` (a tool made by :func:`gated`), or None."""
    gate = _gate(tool)
    return gate.key if gate is not None else None


def check_tool(
    tool: Any, rc: RunConfig, *, gates: Mapping[str, str | Gate] | None = None
) -> Refusal | None:
    """Whether ``tool`` may be offered and called in ``rc``.

    Args:
        tool: a ``BaseTool`` (gated or not), a provider tool ``dict`` or any other tool
            form (functions, pydantic classes).
        rc: the run's RunConfig.
        gates: extra gates by tool name (or provider-tool ``type``): flag key or
            :class:`Gate`, for tools that cannot carry ``@gated`` (provider dicts,
            third-party and MCP tools). A ``@gated`` tool's own gate wins.

    Returns:
        None when allowed (ungated tools always are), else the :class:`Refusal`.
    """
    gate = _gate(tool, gates)
    if gate is None:
        return None
    return _decide(_tool_name(tool) or "?", gate, rc)


def enabled_tools(
    tools: Sequence[T],
    rc: RunConfig | None = None,
    *,
    gates: Mapping[str, str | Gate] | None = None,
) -> list[T]:
    """The tools whose gates are on, in their order, for binding to a model.

    Use it wherever tools are bound by hand, e.g. in a node:
    ``model.bind_tools(flagmw.enabled_tools(tools))``.

    Args:
        tools: tools in any form ``bind_tools`` accepts. Ungated tools are always kept;
            provider ``dict`` tools are kept unless ``gates`` names them.
        rc: the RunConfig to evaluate against (default :func:`flagmw.current`).
        gates: extra gates by tool name (see :func:`check_tool`).

    Outside a run (no ``rc`` and no current run) nothing is evaluated and every tool
    is returned, with a warning logged once per tool (the same policy as a call).
    """
    if rc is None:
        state = current_run(optional=True)
        if state is None:
            for t in tools:
                gate = _gate(t, gates)
                if gate is not None:
                    _outside_run(_tool_name(t) or "?", gate)
            return list(tools)
        rc = state.rc
    return [t for t in tools if check_tool(t, rc, gates=gates) is None]


# -- gating ----------------------------------------------------------------------------


class _EmptyArgs(BaseModel):
    pass


class _RefusalTool(BaseTool):
    """Stands in for a refused tool so that LangChain's own ``run`` produces the error
    ``ToolMessage`` and the tool-run callbacks (tracing sees the refusal)."""

    refusal_text: str
    args_schema: type[BaseModel] = _EmptyArgs
    handle_tool_error: bool = True

    def _run(self, *args: Any, **kwargs: Any) -> Any:
        raise ToolException(self.refusal_text)

    async def _arun(self, *args: Any, **kwargs: Any) -> Any:
        raise ToolException(self.refusal_text)


def _run_state(config: Any) -> RunState | None:
    # the config handed to run() first (ToolNode passes it explicitly), then the
    # ambient one / use_run()
    if isinstance(config, Mapping):
        state = (config.get("configurable") or {}).get(RUN_KEY)
        if state is not None:
            return cast(RunState, state)
    return current_run(optional=True)


def _check_call(tool: BaseTool, config: Any) -> Refusal | None:
    gate = _gate(tool)
    if gate is None:
        return None
    state = _run_state(config)
    if state is None:
        return _outside_run(tool.name, gate)
    refusal = _decide(tool.name, gate, state.rc)
    if refusal is not None:
        state.event(
            "tool_refused",
            tool=tool.name,
            key=refusal.key,
            reason=refusal.reason,
            override_id=refusal.override_id,
        )
    return refusal


def _refusal_tool(tool: BaseTool, refusal: Refusal) -> _RefusalTool:
    return _RefusalTool(
        name=tool.name,
        description=tool.description,
        refusal_text=refusal.message,
        callbacks=tool.callbacks,
        tags=tool.tags,
        metadata=tool.metadata,
        verbose=tool.verbose,
    )


def _traced_input(tool: BaseTool, tool_input: Any) -> Any:
    # keep injected arguments (state, runtime, store) out of the refusal's trace, as
    # BaseTool.run does for the real tool
    if isinstance(tool_input, dict):
        try:
            return tool._filter_injected_args(tool_input)
        except Exception:  # pragma: no cover - private helper of langchain-core
            return {}
    return tool_input


class _GatedToolMixin:
    """``run`` / ``arun`` with the gate checked first (put before the tool's class)."""

    def run(self, tool_input: Any, *args: Any, **kwargs: Any) -> Any:
        tool = cast(BaseTool, self)
        refusal = _check_call(tool, kwargs.get("config"))
        if refusal is None:
            return super().run(tool_input, *args, **kwargs)  # type: ignore[misc]
        return _refusal_tool(tool, refusal).run(_traced_input(tool, tool_input), *args, **kwargs)

    async def arun(self, tool_input: Any, *args: Any, **kwargs: Any) -> Any:
        tool = cast(BaseTool, self)
        refusal = _check_call(tool, kwargs.get("config"))
        if refusal is None:
            return await super().arun(tool_input, *args, **kwargs)  # type: ignore[misc]
        return await _refusal_tool(tool, refusal).arun(
            _traced_input(tool, tool_input), *args, **kwargs
        )


class GatedFunctionTool(_GatedToolMixin, StructuredTool):
    """What ``gated(key)`` returns for a plain function: a ``StructuredTool`` (so
    ``ToolNode`` and ``create_agent`` use it as is, and its refusal is a ToolMessage)
    that is still callable like the function.

    A direct call ``refund("o-1")`` checks the gate too and raises
    :class:`~flagmw.RefusedError` when the tool is disabled (there is no tool call to
    answer); for an ``async def`` it returns the coroutine, checked when awaited.
    """

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.func is None and self.coroutine is not None:
            coroutine = self.coroutine

            async def call() -> Any:
                self._check_direct()
                return await coroutine(*args, **kwargs)

            return call()
        self._check_direct()
        assert self.func is not None
        return self.func(*args, **kwargs)

    def _check_direct(self) -> None:
        refusal = _check_call(self, None)
        if refusal is not None:
            raise refusal.error()


_classes: dict[type[BaseTool], type[BaseTool]] = {}
_classes_lock = threading.Lock()


def _gated_class(cls: type[BaseTool]) -> type[BaseTool]:
    if issubclass(cls, _GatedToolMixin):
        return cls
    with _classes_lock:
        gated_cls = _classes.get(cls)
        if gated_cls is None:
            gated_cls = cast(
                type[BaseTool],
                type(
                    f"Gated{cls.__name__}",
                    (_GatedToolMixin, cls),
                    {"__module__": __name__, "__doc__": cls.__doc__},
                ),
            )
            _classes[cls] = gated_cls
    return gated_cls


def _with_gate(metadata: Mapping[str, Any] | None, gate: Gate, what: str) -> dict[str, Any]:
    meta = dict(metadata or {})
    existing = Gate.from_metadata(meta.get(METADATA_KEY))
    if existing is not None and existing != gate:
        raise ValueError(
            f"{what} is already gated by flag {existing.key!r}; a tool has one gate "
            f"(cannot also gate it by {gate.key!r})"
        )
    meta[METADATA_KEY] = gate.to_metadata()
    return meta


def _gate_instance(tool: ToolT, gate: Gate) -> ToolT:
    metadata = _with_gate(tool.metadata, gate, f"tool {tool.name!r}")
    copy = tool.model_copy(update={"metadata": metadata})
    # swap the class of the copy rather than re-instantiating it: a BaseTool subclass
    # may have its own __init__ with required arguments
    object.__setattr__(copy, "__class__", _gated_class(type(tool)))
    return copy


def _gate_class(cls: type[ToolT], gate: Gate) -> type[ToolT]:
    def model_post_init(self: BaseTool, context: Any, /) -> None:
        super(gated_cls, self).model_post_init(context)
        # BaseTool does not validate assignment, so this stays a plain dict
        self.metadata = _with_gate(self.metadata, gate, f"tool {self.name!r}")

    gated_cls = cast(
        type[ToolT],
        type(
            cls.__name__,
            (_GatedToolMixin, cls),
            {
                "__module__": cls.__module__,
                "__qualname__": cls.__qualname__,
                "__doc__": cls.__doc__,
                "model_post_init": model_post_init,
            },
        ),
    )
    return gated_cls


def _gate_function(func: Callable[..., Any], gate: Gate) -> GatedFunctionTool:
    base = _make_tool(func)  # what ToolNode / create_agent would build from the function
    if not isinstance(base, StructuredTool):  # pragma: no cover - defensive
        raise TypeError(f"cannot gate {func!r}: langchain made a {type(base).__name__}")
    metadata = _with_gate(base.metadata, gate, f"tool {base.name!r}")
    copy = base.model_copy(update={"metadata": metadata})
    object.__setattr__(copy, "__class__", GatedFunctionTool)
    return cast(GatedFunctionTool, copy)


class _Gater:
    """The decorator returned by :func:`gated`."""

    def __init__(self, gate: Gate) -> None:
        self.gate = gate

    @overload
    def __call__(self, target: type[ToolT]) -> type[ToolT]: ...
    @overload
    def __call__(self, target: ToolT) -> ToolT: ...
    @overload
    def __call__(self, target: Callable[..., Any]) -> GatedFunctionTool: ...

    def __call__(self, target: Any) -> Any:
        if isinstance(target, BaseTool):
            return _gate_instance(target, self.gate)
        if isinstance(target, type):
            if issubclass(target, BaseTool):
                return _gate_class(target, self.gate)
            raise TypeError(
                f"gated({self.gate.key!r}) cannot gate the class {target.__name__}: "
                "expected a BaseTool subclass, a tool or a function"
            )
        if isinstance(target, Mapping):
            raise TypeError(
                f"gated({self.gate.key!r}) cannot gate a provider tool dict; gate it by "
                f"name instead: enabled_tools(tools, gates={{name: {self.gate.key!r}}}) "
                "or FlagmwMiddleware(client, tool_gates=...)"
            )
        if callable(target):
            return _gate_function(target, self.gate)
        raise TypeError(
            f"gated({self.gate.key!r}) expects a tool, a BaseTool subclass or a function, "
            f"got {type(target).__name__}"
        )


def gated(key: str, *, when: Any = _UNSET, outside_run: OutsideRun = "allow") -> _Gater:
    """Put a tool behind a flag of the run's RunConfig.

    Use it above ``@tool`` (it receives the tool), on a ``BaseTool`` instance or
    subclass, or on a plain function (sync or async)::

        @flagmw.gated("tools.refund_api.enabled")
        @tool
        def refund(order_id: str) -> str:
            \"\"\"Refund an order.\"\"\"

        search = flagmw.gated("tools.search.enabled")(SearchTool())

    What each form returns:

    * a ``BaseTool`` instance (``@tool`` tools included) → a gated copy of the same
      class family (a dynamic subclass; ``isinstance`` holds, the schema is unchanged);
    * a ``BaseTool`` subclass → a subclass of the same name whose instances are gated;
    * a plain function → a :class:`GatedFunctionTool` (a ``StructuredTool`` built as
      ``@tool`` would, still callable like the function).

    Args:
        key: the flag, e.g. ``"tools.refund_api.enabled"``: a bool flag, or any flag
            with ``when``. Make it ``binding: hot`` so a kill reaches runs in flight.
        when: for non-bool flags: the value (or a list/tuple/set of values) for which
            the tool is enabled, e.g. ``gated("plan.tier", when=["pro", "enterprise"])``.
        outside_run: ``"allow"`` (default: outside a flagmw run the flag is not
            evaluated, the tool runs and a warning is logged once per tool) or
            ``"refuse"`` (fail closed).

    A disabled tool's call returns ``ToolMessage(status="error")``, e.g. ``Tool
    'refund' is disabled by flag tools.refund_api.enabled (kill ov-3: CRM webhook
    returns 500). Do not retry it; tell the user it is unavailable.``, and records a
    ``tool_refused`` run event. A gate on a flag the run's registry does not define,
    or a bool gate on a non-bool flag, refuses (fail closed) and logs an error once.

    Raises:
        TypeError: ``target`` is neither a tool, a ``BaseTool`` subclass nor a function
            (a provider dict tool is gated by name: ``enabled_tools(..., gates=...)``).
        ValueError: the tool is already gated by another flag.
    """
    if not isinstance(key, str) or not key:
        raise TypeError(f"gated() needs a flag key (a non-empty str), got {key!r}")
    if outside_run not in ("allow", "refuse"):
        raise ValueError(f"gated(outside_run=...) must be 'allow' or 'refuse', got {outside_run!r}")
    values: tuple[Any, ...] | None
    if when is _UNSET:
        values = None
    elif isinstance(when, str) or not isinstance(when, Collection):
        values = (when,)
    else:
        values = tuple(when)
    return _Gater(Gate(key, values, outside_run))
