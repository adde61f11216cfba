"""Route selection: which model a flag routes a call to, the fallback ladder, and the
tools a routed call may bind. Shared by :func:`flagmw.routed_model` (the facade in
:mod:`flagmw.langgraph.models`) and the ``create_agent`` middleware."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from flagmw.core.flag_spec import FlagType
from flagmw.core.registry import FlagRegistry
from flagmw.core.runconfig import RunConfig
from flagmw.errors import NoRunConfigError, Problem, UnknownRouteError, ValidationError
from flagmw.langgraph.tool_gate import Gate, enabled_tools, tool_name

__all__ = [
    "FALLBACK_USED_KEY",
    "ROUTE_KEY",
    "check_route_flags",
    "filter_tools",
    "select_routes",
]

log = logging.getLogger("flagmw")

#: ``response_metadata`` keys written on every answer of a routed model.
ROUTE_KEY = "flagmw_route"
FALLBACK_USED_KEY = "flagmw_fallback_used"

_NON_FORCING = frozenset({"auto", "none"})
_ANY = frozenset({"any", "required"})


def select_routes(
    rc: RunConfig | None,
    routes: Sequence[str],
    *,
    flag: str,
    fallbacks: str | Sequence[str] | None = None,
    default_route: str | None = None,
) -> tuple[str, list[str]]:
    """The primary route and the fallback ladder for one call.

    Args:
        rc: the run's RunConfig; None outside a run.
        routes: the route names the model has.
        flag: the flag whose value names the primary route.
        fallbacks: a json flag holding a list of route names, or the list itself.
        default_route: the primary route outside a run.

    Returns:
        ``(primary, ladder)``: the ladder lists the fallbacks in order, without the
        primary and without duplicates. Fallback names that are not routes are left out
        (and logged): they only matter once the primary fails, and a bad ladder must not
        break calls the primary can serve.

    Raises:
        NoRunConfigError: outside a run without ``default_route``.
        UnknownRouteError: the primary named by ``flag`` is not a route.
    """
    if rc is None:
        if default_route is None:
            raise NoRunConfigError(
                f"routed model (flag {flag}) was called outside a flagmw run and has no "
                "default_route; call it inside a graph wrapped with flagmw.wrap (or an "
                "agent with FlagmwMiddleware), or pass routed_model(..., default_route=...)"
            )
        primary: Any = default_route
    else:
        primary = rc[flag]
    if not isinstance(primary, str) or primary not in routes:
        raise UnknownRouteError(flag, primary, routes)
    ladder: list[str] = []
    names: Any
    if fallbacks is None:
        names = []
    elif isinstance(fallbacks, str):
        names = rc.get(fallbacks, []) if rc is not None else []
        if not isinstance(names, list):
            log.error("flagmw: fallback flag %s is not a list (%r); no fallback", fallbacks, names)
            names = []
    else:
        names = list(fallbacks)
    for name in names:
        if name == primary or name in ladder:
            continue
        if not isinstance(name, str) or name not in routes:
            log.error(
                "flagmw: fallback route %r (from %s) is not a route of this model (%s); skipped",
                name,
                fallbacks if isinstance(fallbacks, str) else "fallbacks",
                ", ".join(routes),
            )
            continue
        ladder.append(name)
    return primary, ladder


def _forced_tool(tool_choice: Any) -> str | None:
    """The tool name a ``tool_choice`` forces, if it forces one."""
    if isinstance(tool_choice, str):
        return None if tool_choice in _NON_FORCING | _ANY else tool_choice
    if isinstance(tool_choice, Mapping):
        fn = tool_choice.get("function")
        if isinstance(fn, Mapping) and isinstance(fn.get("name"), str):
            return str(fn["name"])
        if isinstance(tool_choice.get("name"), str):
            return str(tool_choice["name"])
    return None


def filter_tools(
    tools: Sequence[Any],
    tool_choice: Any,
    rc: RunConfig | None,
    *,
    gates: Mapping[str, str | Gate] | None = None,
) -> tuple[list[Any], Any]:
    """Drop the tools whose gates are off in ``rc`` (see :func:`flagmw.enabled_tools`),
    and reset a ``tool_choice`` that forces a dropped tool (or "any tool" when none is
    left) to None, so the provider is never asked to call a hidden tool.

    Returns:
        ``(kept_tools, tool_choice)``.
    """
    kept = enabled_tools(tools, rc, gates=gates)
    if len(kept) == len(tools):
        return kept, tool_choice
    forced = _forced_tool(tool_choice)
    if (forced is not None and forced not in {tool_name(t) for t in kept}) or (
        not kept and (tool_choice is True or (isinstance(tool_choice, str) and tool_choice in _ANY))
    ):
        tool_choice = None
    return kept, tool_choice


def check_route_flags(
    registry: FlagRegistry,
    routes: Sequence[str],
    flag: str,
    fallbacks: str | Sequence[str] | None,
) -> None:
    """Check a routed model's flags against ``registry``: ``flag`` exists and is an enum
    (whose choices are all ``routes``) or string flag; ``fallbacks``, when a flag key,
    exists and is a json flag.

    Raises:
        ValidationError: every problem found, listed.
    """
    where = "routed_model"
    problems: list[Problem] = []
    f = registry.get(flag)
    if f is None:
        problems.append(
            Problem(
                where, flag, f"route flag {flag} is not defined in the registry", code="unknown_key"
            )
        )
    elif f.type is FlagType.ENUM:
        missing = [c for c in f.choices or () if c not in routes]
        if missing:
            problems.append(
                Problem(
                    where,
                    flag,
                    f"choices {missing} of route flag {flag} are not routes "
                    f"(routes: {', '.join(routes)})",
                    hint="add the routes or remove the choices",
                    code="unknown_choice",
                )
            )
    elif f.type is not FlagType.STRING:
        problems.append(
            Problem(
                where,
                flag,
                f"route flag {flag} is a {f.type} flag; it must be an enum (or string) flag",
                code="wrong_type",
            )
        )
    if isinstance(fallbacks, str):
        fb = registry.get(fallbacks)
        if fb is None:
            problems.append(
                Problem(
                    where,
                    fallbacks,
                    f"fallback flag {fallbacks} is not defined in the registry",
                    code="unknown_key",
                )
            )
        elif fb.type is not FlagType.JSON:
            problems.append(
                Problem(
                    where,
                    fallbacks,
                    f"fallback flag {fallbacks} is a {fb.type} flag; it must be a json flag "
                    "holding a list of route names",
                    code="wrong_type",
                )
            )
    if problems:
        raise ValidationError(problems, "routed_model(...)")
