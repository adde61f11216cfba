"""The tool gate: whether a tool behind a flag may be offered and called.

A :class:`Gate` names the flag that gates a tool; :func:`check_tool` decides it against
a run's RunConfig and returns a :class:`Refusal` (the ``ToolMessage(status="error")``
text, the kill's id and reason) or None. :func:`decide_call` is the decision of one
*call*: with the run found in the call's config or context, or — when the call runs
outside any run (a thread pool does not carry context variables) — by the policy of
bug 3.7 in issue 7:

1. the run's RunConfig, when the call's config or context carries the run;
2. else a live evaluation with the client the tool was gated with
   (``gated(key, client=...)``) — for an empty evaluation context, and refused as well
   when any kill of the flag is in force for some tenant or route (no run tells whose
   call this is, so a scoped kill must not be missed);
3. else refused (no answer is possible), unless the gate says ``outside_run="allow"``.

Who applies the decision: gated tools themselves (:mod:`flagmw.langgraph.tools`), name
gates installed by ``flagmw.wrap(..., gates=...)`` (:mod:`flagmw.langgraph.gates`), and
the ``create_agent`` middleware (:mod:`flagmw.integrations.langchain`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast

from langchain_core.messages import ToolMessage
from langchain_core.tools import BaseTool

from flagmw.core.context import EvaluationContext
from flagmw.core.provenance import Layer, Provenance
from flagmw.core.runconfig import RunConfig
from flagmw.errors import FlagmwError, RefusedError
from flagmw.langgraph.run import RUN_KEY, RunState, current_run

if TYPE_CHECKING:  # pragma: no cover
    from flagmw.client.client import FlagClient

__all__ = ["Gate", "OutsideRun", "Refusal", "check_tool", "decide_call", "enabled_tools", "gate_of"]

log = logging.getLogger("flagmw")

T = TypeVar("T")

#: ``tool.metadata`` key that holds the gate.
METADATA_KEY = "flagmw"

#: What a call does when no flagmw run is found and no client was given:
#: ``"refuse"`` (default, fail closed) or ``"allow"`` (run it unevaluated, warn once).
OutsideRun = Literal["allow", "refuse"]


@dataclass(frozen=True, slots=True)
class Gate:
    """The flag that gates a tool.

    Attributes:
        key: the flag key, e.g. ``"tools.refund_api.enabled"``.
        when: None for a bool flag (enabled when the value is ``True``); otherwise the
            values for which the tool is enabled (e.g. the choices of an enum flag).
        outside_run: what a call does when no flagmw run is found and the gate has no
            client to evaluate with: ``"refuse"`` (default) or ``"allow"`` (run the tool,
            evaluate nothing, log a warning once per tool).
        side_effects: the tool changes the world (a refund, an e-mail): in a shadow run
            it is never executed and answers a dry-run result (:mod:`flagmw.rollout`).
    """

    key: str
    when: tuple[Any, ...] | None = None
    outside_run: OutsideRun = "refuse"
    side_effects: bool = False

    def to_metadata(self) -> dict[str, Any]:
        """The ``tool.metadata["flagmw"]`` form (JSON primitives)."""
        out: dict[str, Any] = {"flag": self.key}
        if self.when is not None:
            out["when"] = list(self.when)
        if self.outside_run != "refuse":
            out["outside_run"] = self.outside_run
        if self.side_effects:
            out["side_effects"] = True
        return out

    @classmethod
    def from_metadata(cls, data: Any) -> Gate | None:
        """Inverse of :meth:`to_metadata`; None when ``data`` is not a gate."""
        if not isinstance(data, Mapping) or not isinstance(data.get("flag"), str):
            return None
        when = data.get("when")
        return cls(
            data["flag"],
            tuple(when) if when is not None else None,
            "allow" if data.get("outside_run") == "allow" else "refuse",
            data.get("side_effects") is True,
        )


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a gated tool may not run.

    Attributes:
        tool: the tool's name.
        key: the gating flag.
        message: the text returned to the model (the ``ToolMessage`` content).
        reason: the override's reason when an override decided the value, otherwise a
            short description of where the value came from (e.g. ``"tenant acme @rev
            3"``), or why the gate could not be evaluated.
        override_id: the override (kill) that decided the value, if one did.
        value: the flag's value (None when the flag is unknown or was not evaluated).
    """

    tool: str
    key: str
    message: str
    reason: str | None = None
    override_id: str | None = None
    value: Any = None
    dry_run: bool = False  #: a side-effecting tool in a shadow run: answered, not run

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


def _enabled_value(gate: Gate, value: Any) -> bool:
    return value is True if gate.when is None else value in gate.when


def _decide_live(name: str, gate: Gate, client: FlagClient) -> Refusal | None:
    """Outside a run, with the client the tool was gated with."""
    try:
        refusal = _decide(name, gate, client.resolve(EvaluationContext()))
        if refusal is not None:
            return refusal
        # a kill scoped to a tenant or route does not show for an empty context, and
        # without a run nothing tells whose call this is: any such kill refuses
        for ov in client.overrides():
            if ov.environment not in (None, client.environment):
                continue
            if ov.key == gate.key and not _enabled_value(gate, ov.value):
                target = f"{ov.scope} {ov.target}" if ov.target else ov.scope
                return Refusal(
                    name,
                    gate.key,
                    f"Tool '{name}' is disabled by flag {gate.key} (kill {ov.id} for "
                    f"{target}: {ov.reason}; called outside a flagmw run, so the kill "
                    f"cannot be scoped). {_ADVICE}",
                    reason=ov.reason,
                    override_id=ov.id,
                    value=ov.value,
                )
    except FlagmwError as exc:  # the store is down: no answer is possible
        return _no_answer(name, gate, f"flag {gate.key} could not be evaluated ({exc})")
    return None


def _no_answer(name: str, gate: Gate, why: str) -> Refusal:
    _log_once(
        ("no-answer", name, gate.key),
        logging.WARNING,
        "flagmw: gated tool %r was refused: %s. A thread pool does not carry the run: "
        "submit with contextvars.copy_context().run(...), or gate the tool with "
        "gated(%r, client=client)",
        name,
        why,
        gate.key,
    )
    return Refusal(
        name,
        gate.key,
        f"Tool '{name}' is disabled: {why}. {_ADVICE}",
        reason=why,
    )


def _outside_run(name: str, gate: Gate, client: FlagClient | None) -> Refusal | None:
    if client is not None:
        return _decide_live(name, gate, client)
    if gate.outside_run == "refuse":
        return _no_answer(name, gate, f"it is gated by flag {gate.key} and no flagmw run is active")
    _log_once(
        ("outside", name, gate.key),
        logging.WARNING,
        "flagmw: gated tool %r was called outside a flagmw run; flag %r was not evaluated "
        "and the tool ran (outside_run='allow')",
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


# Names of the tools gated in this process (name -> flag key), so that flagmw.wrap can
# tell when a graph runs an ungated tool whose gated copy is never used (bug 3.8).
# Bounded by the number of distinct tool names a program defines.
_gated_names: dict[str, str] = {}


def note_gated(name: str, key: str) -> None:
    """Remember that a tool named ``name`` was gated by ``key`` (by :func:`~flagmw.gated`)."""
    _gated_names[name] = key


def gated_twin(name: str) -> str | None:
    """The flag of a gated copy of a tool named ``name`` made in this process, or None."""
    return _gated_names.get(name)


def ungated_twin(tool: Any, gates: Mapping[str, Any] | None = None) -> str | None:
    """When ``tool`` runs ungated (no ``@gated``, not named in ``gates``) while
    :func:`~flagmw.gated` made a gated copy of a tool of its name in this process: that
    copy's flag (the copy is never the tool that runs). Else None."""
    name = tool_name(tool)
    if name is None or (gates and name in gates) or find_gate(tool) is not None:
        return None
    return gated_twin(name)


def warn_ungated_twin(tool: Any, gates: Mapping[str, Any] | None, where: str) -> None:
    """Log (once per tool name and place) when :func:`ungated_twin` finds a twin."""
    key = ungated_twin(tool, gates)
    if key is None:
        return
    name = tool_name(tool) or "?"
    _log_once(
        ("twin", f"{where}/{name}", key),
        logging.WARNING,
        "flagmw: %s runs tool %r ungated, but flagmw.gated(%r) made a gated copy of a tool "
        "of that name: gated() returns a copy, so the copy is never seen in a run. Gate the "
        "tool before the agent is built, or gate it by name (flagmw.wrap(..., gates={%r: "
        "%r}) or FlagmwMiddleware(..., tool_gates=...))",
        where,
        name,
        key,
        name,
        key,
    )


# -- reading gates ---------------------------------------------------------------------


def tool_name(tool: Any) -> str | None:
    """The name of a tool in any form ``bind_tools`` accepts (None when it has none)."""
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


def find_gate(tool: Any, gates: Mapping[str, str | Gate] | None = None) -> Gate | None:
    """The gate of ``tool``: its own (``@gated``) first, else ``gates`` by name (or by
    provider-tool ``type``)."""
    if isinstance(tool, BaseTool):
        found = Gate.from_metadata((tool.metadata or {}).get(METADATA_KEY))
        if found is not None:
            return found
    if gates:
        names = [tool_name(tool)]
        if isinstance(tool, Mapping) and isinstance(tool.get("type"), str):
            names.append(tool["type"])  # provider tools are known by name or by type
        for name in names:
            if name is not None and name in gates:
                spec = gates[name]
                return spec if isinstance(spec, Gate) else Gate(spec)
    return None


def gate_of(tool: Any) -> str | None:
    """The flag key gating ``tool`` (a tool made by :func:`~flagmw.gated`), or None."""
    gate = find_gate(tool)
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
    gate = find_gate(tool, gates)
    if gate is None:
        return None
    return _decide(tool_name(tool) or "?", gate, rc)


#: the context attribute that marks a shadow run (flagmw.rollout.shadow)
SHADOW_ATTR = "flagmw.shadow"
_DRY_RUN = "[dry run] {name} has side effects and was not executed (shadow run)."


def run_of(config: Any) -> RunState | None:
    """The run of a call: the one in ``config["configurable"]`` (ToolNode passes the
    call's config explicitly), else the ambient one (:func:`~flagmw.current`)."""
    if isinstance(config, Mapping):
        state = (config.get("configurable") or {}).get(RUN_KEY)
        if state is not None:
            return cast(RunState, state)
    return current_run(optional=True)


def decide_call(
    name: str,
    gate: Gate,
    config: Any = None,
    *,
    client: FlagClient | None = None,
) -> Refusal | None:
    """Whether one call of tool ``name`` under ``gate`` may run (the module docs give
    the order: the run, else ``client`` live, else refuse unless ``outside_run="allow"``).
    A refusal in a run records a ``tool_refused`` run event.

    Args:
        name: the tool's name (for the message).
        gate: its gate.
        config: the call's ``RunnableConfig``, when known.
        client: the client to evaluate with when no run is found.

    Returns:
        None when the call may run, else the :class:`Refusal`. Never raises: a gate
        that fails to evaluate refuses (fail closed) and logs the error.
    """
    try:
        state = run_of(config)
        if state is None:
            return _outside_run(name, gate, client)
        if gate.side_effects and state.rc.context.attributes.get(SHADOW_ATTR) is True:
            state.event("tool_dry_run", tool=name, key=gate.key)
            return Refusal(name, gate.key, _DRY_RUN.format(name=name), dry_run=True)
        refusal = _decide(name, gate, state.rc)
    except Exception as exc:
        log.exception("flagmw: the gate of tool %r (flag %s) failed; refused", name, gate.key)
        return Refusal(
            name,
            gate.key,
            f"Tool '{name}' is disabled: its gate flag {gate.key} could not be evaluated "
            f"({type(exc).__name__}). {_ADVICE}",
            reason=f"flag {gate.key} could not be evaluated",
        )
    if refusal is not None:
        state.event(
            "tool_refused",
            tool=name,
            key=refusal.key,
            reason=refusal.reason,
            override_id=refusal.override_id,
        )
    return refusal


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

    Outside a run (no ``rc`` and no current run) each gated tool is decided as a call
    would be (its client live, else left out unless ``outside_run="allow"``).
    """
    if rc is None:
        state = current_run(optional=True)
        if state is None:
            kept: list[T] = []
            for t in tools:
                gate = find_gate(t, gates)
                client = getattr(t, "gate_client", None)
                if gate is None or _outside_run(tool_name(t) or "?", gate, client) is None:
                    kept.append(t)
            return kept
        rc = state.rc
    return [t for t in tools if check_tool(t, rc, gates=gates) is None]
