"""The evaluation-context options shared by the commands that resolve for a context
(``explain``, ``resolve``): ``--tenant``, ``--user``, ``--route``, ``--plan``,
``--thread``, ``--run`` and repeatable ``--attr name=value``, and the
:class:`~flagmw.core.context.EvaluationContext` they make."""

from __future__ import annotations

from types import MappingProxyType
from typing import TYPE_CHECKING, Annotated, Any

import typer

from flagmw.cli.errors import CliError
from flagmw.cli.output import parse_scalar

if TYPE_CHECKING:  # pragma: no cover
    from flagmw.core.context import EvaluationContext

__all__ = [
    "AttrOpt",
    "CtxPlanOpt",
    "CtxRouteOpt",
    "CtxRunOpt",
    "CtxTenantOpt",
    "CtxThreadOpt",
    "CtxUserOpt",
    "context_from_options",
]

CtxTenantOpt = Annotated[str | None, typer.Option("--tenant", help="tenant_id.")]
CtxUserOpt = Annotated[str | None, typer.Option("--user", help="user_id.")]
CtxRouteOpt = Annotated[str | None, typer.Option("--route", help="route (agent profile).")]
CtxPlanOpt = Annotated[str | None, typer.Option("--plan", help="plan.")]
CtxThreadOpt = Annotated[str | None, typer.Option("--thread", help="thread_id.")]
CtxRunOpt = Annotated[str | None, typer.Option("--run", help="run_id.")]
AttrOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--attr",
        help="A free attribute name=value (repeatable); the value is read as JSON or "
        "YAML, so seats=40 is a number.",
    ),
]


def context_from_options(
    *,
    tenant: str | None,
    user: str | None,
    route: str | None,
    plan: str | None,
    thread: str | None,
    run: str | None,
    attr: list[str] | None,
) -> EvaluationContext:
    """The EvaluationContext the options name.

    Raises:
        CliError: an ``--attr`` that is not ``name=value``.
    """
    from flagmw.core.context import EvaluationContext

    attributes: dict[str, Any] = {}
    for item in attr or ():
        name, sep, text = item.partition("=")
        if not sep or not name.strip():
            raise CliError(f"--attr {item!r}: write name=value, e.g. --attr region=eu")
        attributes[name.strip()] = parse_scalar(text)
    return EvaluationContext(
        tenant_id=tenant,
        user_id=user,
        route=route,
        thread_id=thread,
        run_id=run,
        plan=plan,
        attributes=MappingProxyType(attributes),
    )
