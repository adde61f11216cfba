"""Gated tools: ``@gated(key)`` puts a tool behind a flag of the run's RunConfig.

* **hidden** — a disabled tool is not offered to the model: :func:`enabled_tools`
  filters a tool list for binding, ``routed_model(...).bind_tools`` filters per call,
  and the ``create_agent`` middleware filters ``request.tools``;
* **refused** — hiding is not enforcement (a model can still emit the call, e.g. after
  a prompt injection), so a call to a disabled tool *returns* a
  ``ToolMessage(status="error")`` that names the tool, the flag and, when an override
  decided it, the kill's id and reason. It never raises out of the tool, so it cannot
  end the run whatever ``ToolNode(handle_tool_errors=...)`` says (a raising gate
  crashes the run under ToolNode's default handler, langgraph#6486).

How a tool is gated, with public APIs only (reference ``langgraph-integration.md``
§7.3, §7.4): the gated tool is an instance of a subclass of the tool's own class whose
``run`` / ``arun`` (``BaseTool``'s documented entry points) check the gate first; the
instance is built with pydantic's ``model_construct`` from the original's field values
(its constructor is not called, so a subclass with its own required ``__init__``
arguments works) and gets the original's private attributes. Nothing else changes —
``func``, ``coroutine``, ``args_schema``, ``tool_call_schema``, ``return_direct``,
``response_format``, ``handle_tool_error`` and injected arguments (``ToolRuntime``,
``InjectedState``) are the original tool's, and ``isinstance`` still holds. The gate
lives in ``tool.metadata["flagmw"] = {"flag": key}`` (read it with :func:`gate_of`).

A refusal runs through LangChain's own tool-run machinery (callbacks see a tool run
whose output is the error ``ToolMessage``, with the arguments the model sees — the
tool's ``tool_call_schema`` fields — and never injected state); the tool's body is
never entered, and its arguments are not validated.

Which run decides a call, and what happens outside a run (e.g. a tool called from a
thread pool, which does not carry context variables): :func:`~flagmw.langgraph.
tool_gate.decide_call`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast, overload

from langchain_core.tools import BaseTool, StructuredTool, ToolException
from langchain_core.tools import tool as _make_tool
from pydantic import BaseModel, PrivateAttr

from flagmw.langgraph.tool_gate import (
    METADATA_KEY,
    Gate,
    OutsideRun,
    Refusal,
    check_tool,
    decide_call,
    enabled_tools,
    find_gate,
    gate_of,
    note_gated,
)

if TYPE_CHECKING:  # pragma: no cover
    from flagmw.client.client import FlagClient

__all__ = [
    "Gate",
    "GatedFunctionTool",
    "Refusal",
    "check_tool",
    "enabled_tools",
    "gate_of",
    "gated",
]

ToolT = TypeVar("ToolT", bound=BaseTool)

_UNSET: Any = object()


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


class _DryRunTool(_RefusalTool):
    """Answers for a side-effecting tool in a shadow run, without running it."""

    def _run(self, *args: Any, **kwargs: Any) -> Any:
        return self.refusal_text

    async def _arun(self, *args: Any, **kwargs: Any) -> Any:
        return self.refusal_text


def _refusal_tool(tool: BaseTool, refusal: Refusal) -> _RefusalTool:
    kind = _DryRunTool if refusal.dry_run else _RefusalTool
    return kind(
        name=tool.name,
        description=tool.description,
        refusal_text=refusal.message,
        callbacks=tool.callbacks,
        tags=tool.tags,
        metadata=tool.metadata,
        verbose=tool.verbose,
    )


def _model_facing(tool: BaseTool, tool_input: Any) -> Any:
    """The arguments the model sees (the fields of ``tool_call_schema``): injected
    state, runtime and store stay out of the refusal's trace, as ``BaseTool.run``
    keeps them out of the real tool's."""
    if not isinstance(tool_input, dict):
        return tool_input
    try:
        schema: Any = tool.tool_call_schema
    except Exception:  # a tool whose schema cannot be built: trace no arguments
        return {}
    if isinstance(schema, type) and issubclass(schema, BaseModel):
        names: Collection[str] = schema.model_fields
    elif isinstance(schema, Mapping):
        names = schema.get("properties") or {}
    else:
        names = ()
    return {k: v for k, v in tool_input.items() if k in names}


class _GatedToolMixin:
    """``run`` / ``arun`` with the gate checked first (put before the tool's class;
    the class also defines the pydantic private attributes ``_flagmw_client`` and
    ``_flagmw_gate``)."""

    @property
    def gate_client(self) -> FlagClient | None:
        """The client given to ``gated(..., client=)``: evaluates the gate live when a
        call runs outside any flagmw run."""
        private = cast(BaseTool, self).__pydantic_private__ or {}
        return cast("FlagClient | None", private.get("_flagmw_client"))

    def _flagmw_refusal(self, config: Any) -> Refusal | None:
        tool = cast(BaseTool, self)
        # (metadata entry, Gate) as made by gated(): parsed again only when the entry
        # was replaced since (e.g. model_copy(update={"metadata": ...}))
        private = tool.__pydantic_private__ or {}
        cached = private.get("_flagmw_gate")
        entry = (tool.metadata or {}).get(METADATA_KEY)
        if cached is not None and cached[0] is entry:
            gate = cached[1]
        else:
            gate = find_gate(tool)
            if gate is None:
                return None
        return decide_call(tool.name, gate, config, client=private.get("_flagmw_client"))

    def run(self, tool_input: Any, *args: Any, **kwargs: Any) -> Any:
        refusal = self._flagmw_refusal(kwargs.get("config"))
        if refusal is None:
            return super().run(tool_input, *args, **kwargs)  # type: ignore[misc]
        tool = cast(BaseTool, self)
        return _refusal_tool(tool, refusal).run(_model_facing(tool, tool_input), *args, **kwargs)

    async def arun(self, tool_input: Any, *args: Any, **kwargs: Any) -> Any:
        refusal = self._flagmw_refusal(kwargs.get("config"))
        if refusal is None:
            return await super().arun(tool_input, *args, **kwargs)  # type: ignore[misc]
        tool = cast(BaseTool, self)
        return await _refusal_tool(tool, refusal).arun(
            _model_facing(tool, tool_input), *args, **kwargs
        )


class GatedFunctionTool(_GatedToolMixin, StructuredTool):
    """What ``gated(key)`` returns for a plain function: a ``StructuredTool`` (so
    ``ToolNode`` and ``create_agent`` use it as is, and its refusal is a ToolMessage)
    that is still callable like the function.

    A direct call ``refund("o-1")`` checks the gate too and raises
    :class:`~flagmw.RefusedError` when the tool is disabled (there is no tool call to
    answer); for an ``async def`` it returns the coroutine, checked when awaited.
    """

    _flagmw_client: Any = PrivateAttr(default=None)
    _flagmw_gate: Any = PrivateAttr(default=None)

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
        refusal = self._flagmw_refusal(None)
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
                    {
                        "__module__": __name__,
                        "__doc__": cls.__doc__,
                        "_flagmw_client": PrivateAttr(default=None),
                        "_flagmw_gate": PrivateAttr(default=None),
                    },
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


def _gated_copy(tool: BaseTool, cls: type[ToolT], gate: Gate, client: FlagClient | None) -> ToolT:
    """A ``cls`` instance with ``tool``'s field values and private attributes, gated."""
    values = dict(tool)  # the field values (pydantic's BaseModel.__iter__)
    values["metadata"] = _with_gate(tool.metadata, gate, f"tool {tool.name!r}")
    # model_construct: no validation and no __init__ (a subclass may require
    # constructor arguments); the values are the original's, already valid
    copy = cls.model_construct(_fields_set={*tool.model_fields_set, "metadata"}, **values)
    for name in type(tool).__private_attributes__:
        if name not in ("_flagmw_client", "_flagmw_gate") and hasattr(tool, name):
            setattr(copy, name, getattr(tool, name))
    note_gated(tool.name, gate.key)
    if client is None and isinstance(tool, _GatedToolMixin):
        client = tool.gate_client  # re-gating a gated tool keeps its client
    copy._flagmw_client = client
    copy._flagmw_gate = (values["metadata"][METADATA_KEY], gate)
    return cast(ToolT, copy)


def _gate_instance(tool: ToolT, gate: Gate, client: FlagClient | None) -> ToolT:
    return _gated_copy(tool, cast(type[ToolT], _gated_class(type(tool))), gate, client)


def _gate_class(cls: type[ToolT], gate: Gate, client: FlagClient | None) -> type[ToolT]:
    def model_post_init(self: BaseTool, context: Any, /) -> None:
        super(gated_cls, self).model_post_init(context)
        # BaseTool does not validate assignment, so this stays a plain dict
        self.metadata = _with_gate(self.metadata, gate, f"tool {self.name!r}")
        self._flagmw_client = client
        self._flagmw_gate = (self.metadata[METADATA_KEY], gate)
        note_gated(self.name, gate.key)

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
                "_flagmw_client": PrivateAttr(default=None),
                "_flagmw_gate": PrivateAttr(default=None),
            },
        ),
    )
    return gated_cls


def _gate_function(
    func: Callable[..., Any], gate: Gate, client: FlagClient | None
) -> GatedFunctionTool:
    base = _make_tool(func)  # what ToolNode / create_agent would build from the function
    if not isinstance(base, StructuredTool):  # pragma: no cover - defensive
        raise TypeError(f"cannot gate {func!r}: langchain made a {type(base).__name__}")
    return _gated_copy(base, GatedFunctionTool, gate, client)


class _Gater:
    """The decorator returned by :func:`gated`."""

    def __init__(self, gate: Gate, client: FlagClient | None) -> None:
        self.gate = gate
        self.client = client

    @overload
    def __call__(self, target: type[ToolT]) -> type[ToolT]: ...
    @overload
    def __call__(self, target: ToolT) -> ToolT: ...
    @overload
    def __call__(self, target: Callable[..., Any]) -> GatedFunctionTool: ...

    def __call__(self, target: Any) -> Any:
        if isinstance(target, BaseTool):
            return _gate_instance(target, self.gate, self.client)
        if isinstance(target, type):
            if issubclass(target, BaseTool):
                return _gate_class(target, self.gate, self.client)
            raise TypeError(
                f"gated({self.gate.key!r}) cannot gate the class {target.__name__}: "
                "expected a BaseTool subclass, a tool or a function"
            )
        if isinstance(target, Mapping):
            raise TypeError(
                f"gated({self.gate.key!r}) cannot gate a provider tool dict; gate it by "
                f"name instead: enabled_tools(tools, gates={{name: {self.gate.key!r}}}), "
                "flagmw.wrap(graph, client, gates=...) or FlagmwMiddleware(client, "
                "tool_gates=...)"
            )
        if callable(target):
            return _gate_function(target, self.gate, self.client)
        raise TypeError(
            f"gated({self.gate.key!r}) expects a tool, a BaseTool subclass or a function, "
            f"got {type(target).__name__}"
        )


def gated(
    key: str,
    *,
    when: Any = _UNSET,
    client: FlagClient | None = None,
    outside_run: OutsideRun = "refuse",
    side_effects: bool = False,
) -> _Gater:
    """Put a tool behind a flag of the run's RunConfig.

    Use it above ``@tool`` (it receives the tool), on a ``BaseTool`` instance or
    subclass, or on a plain function (sync or async)::

        @flagmw.gated("tools.refund_api.enabled")
        @tool
        def refund(order_id: str) -> str:
            \"\"\"Refund an order.\"\"\"

        search = flagmw.gated("tools.search.enabled", client=client)(SearchTool())

    What each form returns:

    * a ``BaseTool`` instance (``@tool`` tools included) → a gated copy of the same
      class family (a subclass; ``isinstance`` holds, the schema is unchanged). It is
      a *copy*: gate the tool before an agent or ``ToolNode`` is built from it, or gate
      a graph you do not own by name with ``flagmw.wrap(graph, client, gates=...)``;
    * a ``BaseTool`` subclass → a subclass of the same name whose instances are gated;
    * a plain function → a :class:`GatedFunctionTool` (a ``StructuredTool`` built as
      ``@tool`` would, still callable like the function).

    Args:
        key: the flag, e.g. ``"tools.refund_api.enabled"``: a bool flag, or any flag
            with ``when``. Make it ``binding: hot`` so a kill reaches runs in flight.
        when: for non-bool flags: the value (or a list/tuple/set of values) for which
            the tool is enabled, e.g. ``gated("plan.tier", when=["pro", "enterprise"])``.
        client: the :class:`~flagmw.FlagClient` that evaluates the gate live when a call
            runs outside any flagmw run (e.g. from a ``ThreadPoolExecutor`` inside a
            node, which does not carry the run): for an empty evaluation context, and
            refused while any kill of the flag is in force, whatever its scope. Inside
            a run the run's RunConfig always decides.
        outside_run: when a call finds no run and there is no ``client``: ``"refuse"``
            (default: fail closed, with a warning once per tool naming the fix) or
            ``"allow"`` (run it unevaluated, with a warning once per tool).
        side_effects: the tool changes the world: in a shadow run
            (:mod:`flagmw.rollout.shadow`) it is never executed; the call answers
            ``[dry run] … was not executed`` and records a ``tool_dry_run`` run event.

    A disabled tool's call returns ``ToolMessage(status="error")``, e.g. ``Tool
    'refund' is disabled by flag tools.refund_api.enabled (kill ov-3: CRM webhook
    returns 500). Do not retry it; tell the user it is unavailable.``, and records a
    ``tool_refused`` run event. A gate on a flag the run's registry does not define,
    or a bool gate on a non-bool flag, refuses (fail closed) and logs an error once.

    Raises:
        TypeError: ``target`` is neither a tool, a ``BaseTool`` subclass nor a function
            (a provider dict tool is gated by name: ``enabled_tools(..., gates=...)``).
        ValueError: the tool is already gated by another flag; a bad ``outside_run``.
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
    return _Gater(Gate(key, values, outside_run, side_effects), client)
