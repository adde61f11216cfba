"""``flagmw`` commands on the emergency layer: kill, override, renew, unkill, overrides."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated, Any

import typer

from flagmw.cli.errors import EXIT_CODES_EPILOG, CliError
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
from flagmw.cli.output import format_left, format_time, format_value, parse_scalar, styled, table
from flagmw.cli.session import Session

if TYPE_CHECKING:  # pragma: no cover
    from rich.console import Console

    from flagmw.core.overrides import Override

__all__ = ["register"]

IdArg = Annotated[str, typer.Argument(help="An override or kill id, e.g. ov-3.")]


def _override_lines(ov: Override, now: float) -> list[str]:
    env = "every environment" if ov.environment is None else f"environment {ov.environment} only"
    return [
        f"{ov.kind.value} {ov.id}: {ov.key} = {format_value(ov.value)}",
        f"  scope: {ov.scope_label} ({env})",
        f"  expires: {format_time(ov.expires_at)} (in {format_left(ov.expires_at - now)})",
        f"  reason: {ov.reason}",
        f"  actor: {ov.actor}" + ("  (forced)" if ov.force else ""),
    ]


def _set_override(
    g: Session,
    kind: str,
    key: str,
    value_text: str | None,
    *,
    reason: str,
    ttl: str | None,
    tenant: str | None,
    route: str | None,
    force: bool,
    environment: str | None,
) -> None:
    with g.client() as client:
        unknown = None if tenant and route else client.unknown_target(tenant=tenant, route=route)
        if unknown is not None and not force:
            raise CliError(f"{unknown}; pass --force if that is what you mean")
        common: dict[str, Any] = {
            "reason": reason,
            "actor": g.actor,
            "ttl": ttl,
            "tenant": tenant,
            "route": route,
            "force": force,
            "environment": environment,
        }
        if kind == "kill":
            ov = client.kill(key, **common)
        else:
            assert value_text is not None
            ov = client.override(key, _parse_value(client, key, value_text), **common)
        flag = client.registry[key]
        exempt: list[str] = []
        if flag.protected and ov.value is False and ov.target is None and not ov.force:
            exempt = client.exempt_tenants(key)
    now = time.time()

    lines = _override_lines(ov, now)
    if exempt:
        lines.append(
            f"  exempt: tenant(s) {', '.join(exempt)} require {key} (a protected flag) "
            "and keep it on; --force includes them"
        )
    lines.append(f"  end it early: flagmw unkill {ov.id} --reason ...")
    g.emit_lines({**ov.to_dict(), "exempt_tenants": exempt}, lines)


def _parse_value(client: Any, key: str, text: str) -> Any:
    """VALUE on the command line → the flag's type. Text is read as JSON or a YAML scalar;
    for string and enum flags, text that reads as another type (``123``, ``yes``) is
    taken literally, since those flags only hold strings."""
    from flagmw.core.flag_spec import FlagType

    flag = client.registry[key]
    value = parse_scalar(text)
    if flag.type in (FlagType.STRING, FlagType.ENUM) and not isinstance(value, str):
        value = text
    return value


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
    _set_override(
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
    _set_override(
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
    with g.client(registry="optional") as client:
        ov = client.renew(override_id, actor=g.actor, reason=reason, ttl=ttl)
    now = time.time()

    lines = [
        f"renewed {ov.id}: {ov.key} = {format_value(ov.value)} ({ov.scope_label})",
        f"  expires: {format_time(ov.expires_at)} (in {format_left(ov.expires_at - now)})",
    ]
    g.emit_lines(ov.to_dict(), lines)


@with_session()
def unkill(g: Session, override_id: IdArg, reason: ReasonOpt) -> None:
    """End a kill or an override early."""
    with g.client(registry="optional") as client:
        ov = client.end_override(override_id, actor=g.actor, reason=reason)

    line = (
        f"ended {ov.id}: {ov.key} ({ov.scope_label}) at {format_time(ov.ended_at)} "
        f"by {ov.ended_by}: {ov.end_reason}"
    )
    g.emit_lines(ov.to_dict(), [line])


def _status(ov: Override, now: float) -> str:
    if ov.ended_at is not None and ov.ended_at <= now:
        return f"ended {format_time(ov.ended_at)} by {ov.ended_by}: {ov.end_reason}"
    if now >= ov.expires_at:
        return "expired"
    return "active"


@with_session()
def overrides(
    g: Session,
    show_all: Annotated[
        bool, typer.Option("--all", help="Also list ended and expired overrides.")
    ] = False,
) -> None:
    """Overrides and kills in force, with the time they have left."""
    store = g.open_store()
    now = time.time()
    try:
        every = store.list_overrides(include_ended=show_all)
    finally:
        store.close()
    shown = every if show_all else [o for o in every if o.active_at(now)]
    doc = {
        "at": now,
        "overrides": [
            {
                **o.to_dict(),
                "status": _status(o, now).split(" ", 1)[0],
                "seconds_left": max(0.0, o.expires_at - now) if o.active_at(now) else 0.0,
            }
            for o in shown
        ],
    }

    def render(out: Console) -> None:
        if not shown:
            out.print("no overrides in force" if not show_all else "no overrides")
            return
        t = table(
            "id",
            "key",
            "value",
            "scope",
            "env",
            "expires (UTC)",
            "left",
            "actor",
            "reason",
            "status",
        )
        for o in shown:
            active = o.active_at(now)
            t.add_row(
                o.id,
                o.key,
                format_value(o.value),
                o.scope_label + (" (forced)" if o.force else ""),
                o.environment or "all",
                format_time(o.expires_at),
                format_left(o.expires_at - now) if active else "-",
                o.actor,
                o.reason,
                styled(_status(o, now), "green" if active else "dim"),
            )
        out.print(t)

    g.emit(doc, render)


def register(app: typer.Typer) -> None:
    """Add the override and kill-switch commands to ``app``."""
    for command in (kill, override, renew, unkill, overrides):
        app.command(epilog=EXIT_CODES_EPILOG)(command)
