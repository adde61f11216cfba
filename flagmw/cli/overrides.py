"""``flagmw`` commands on the emergency layer: kill, override, renew, unkill, overrides.

Their typer declarations; what they do is :mod:`flagmw.cli.override_actions`, which the
fast incident parser (:mod:`flagmw.cli.incident`) calls too."""

from __future__ import annotations

from typing import Annotated

import typer

from flagmw.cli.errors import EXIT_CODES_EPILOG
from flagmw.cli.options import (
    ForceOpt,
    KeyArg,
    OnlyEnvOpt,
    ReasonOpt,
    RouteOpt,
    TenantOpt,
    TtlOpt,
    with_session,
)
from flagmw.cli.override_actions import (
    end_override,
    list_overrides,
    renew_override,
    set_override,
)
from flagmw.cli.session import Session

__all__ = ["register"]

IdArg = Annotated[str, typer.Argument(help="An override or kill id, e.g. ov-3.")]


@with_session(exclude=("environment",))
def kill(
    g: Session,
    key: KeyArg,
    reason: ReasonOpt,
    ttl: TtlOpt = None,
    tenant: TenantOpt = None,
    route: RouteOpt = None,
    force: ForceOpt = False,
    environment: OnlyEnvOpt = None,
) -> None:
    """Turn a bool flag off (a kill switch) for a TTL.

    Global unless --tenant or --route. A hot flag's kill reaches runs in flight at their
    next step boundary. A global kill of a protected flag skips tenants that require it,
    unless --force (audited as kill.forced).
    """
    set_override(
        g,
        "kill",
        key,
        None,
        reason=reason,
        ttl=ttl,
        tenant=tenant,
        route=route,
        force=force,
        environment=environment,
    )


@with_session(exclude=("environment",))
def override(
    g: Session,
    key: KeyArg,
    value: Annotated[
        str, typer.Argument(help="The value, as JSON or YAML (true, 4, gpt-4o-mini, \\[a, b]).")
    ],
    reason: ReasonOpt,
    ttl: TtlOpt = None,
    tenant: TenantOpt = None,
    route: RouteOpt = None,
    force: ForceOpt = False,
    environment: OnlyEnvOpt = None,
) -> None:
    """Force a flag to VALUE for a TTL, in the emergency layer.

    VALUE is read as JSON or YAML and type-checked by the flag.
    """
    set_override(
        g,
        "override",
        key,
        value,
        reason=reason,
        ttl=ttl,
        tenant=tenant,
        route=route,
        force=force,
        environment=environment,
    )


@with_session()
def renew(g: Session, override_id: IdArg, reason: ReasonOpt, ttl: TtlOpt = None) -> None:
    """Extend an active override or kill: it now expires TTL from now."""
    renew_override(g, override_id, reason=reason, ttl=ttl)


@with_session()
def unkill(g: Session, override_id: IdArg, reason: ReasonOpt) -> None:
    """End a kill or an override early."""
    end_override(g, override_id, reason=reason)


@with_session()
def overrides(
    g: Session,
    show_all: Annotated[
        bool, typer.Option("--all", help="Also list ended and expired overrides.")
    ] = False,
) -> None:
    """Overrides and kills in force, with the time they have left."""
    list_overrides(g, show_all=show_all)


def register(app: typer.Typer) -> None:
    """Add the override and kill-switch commands to ``app``."""
    for command in (kill, override, renew, unkill, overrides):
        app.command(epilog=EXIT_CODES_EPILOG)(command)
