"""What the emergency-layer commands do (``kill``, ``override``, ``renew``, ``unkill``,
``overrides``), given a :class:`~flagmw.cli.session.Session` and the parsed arguments.

One implementation for both front-ends: typer's commands in :mod:`flagmw.cli.overrides`
and the standard-library parser of :mod:`flagmw.cli.incident` (which starts without typer,
pydantic or rich) call these functions, so the two cannot differ in what they check,
write or print. This module imports neither typer nor rich at import time.

The registry is loaded with ``check_schemas=False``: a ``json`` flag's JSON schema is
checked when a value of that flag is (``flagmw override`` of it), so a broken schema of an
unrelated flag cannot stop a kill, and the kill does not import ``jsonschema``.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from flagmw.cli.errors import CliError
from flagmw.cli.output import format_left, format_time, format_value, parse_scalar, styled, table
from flagmw.cli.session import Session

if TYPE_CHECKING:  # pragma: no cover
    from rich.console import Console

    from flagmw.core.overrides import Override

__all__ = ["end_override", "list_overrides", "renew_override", "set_override"]


def _override_lines(ov: Override, now: float) -> list[str]:
    env = "every environment" if ov.environment is None else f"environment {ov.environment} only"
    return [
        f"{ov.kind.value} {ov.id}: {ov.key} = {format_value(ov.value)}",
        f"  scope: {ov.scope_label} ({env})",
        f"  expires: {format_time(ov.expires_at)} (in {format_left(ov.expires_at - now)})",
        f"  reason: {ov.reason}",
        f"  actor: {ov.actor}" + ("  (forced)" if ov.force else ""),
    ]


def set_override(
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
    """``flagmw kill`` (``kind="kill"``, ``value_text`` None) and ``flagmw override``
    (``kind="override"``): write the override with its audit entry through the client,
    then print it (a few plain lines, or its ``to_dict()`` plus ``exempt_tenants`` with
    ``--json``). Nothing is printed unless the store accepted it.

    Args:
        ttl: e.g. ``"4h"``; None: the default, 4 hours capped by ``--max-ttl``.
        environment: the kill's scope (``--environment`` after the command), None: every
            environment.

    Raises:
        CliError: a tenant or route the head snapshot does not know, without ``force``.
        FlagmwError: what :meth:`FlagClient.kill` / :meth:`FlagClient.override` raise
            (unknown flag, refused override, unavailable store …).
    """
    with g.client(check_schemas=False) as client:
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


def renew_override(g: Session, override_id: str, *, reason: str, ttl: str | None) -> None:
    """``flagmw renew``: the override now expires ``ttl`` (None: the default) from now.

    Raises:
        FlagmwError: what :meth:`FlagClient.renew` raises.
    """
    with g.client(registry="optional", check_schemas=False) as client:
        ov = client.renew(override_id, actor=g.actor, reason=reason, ttl=ttl)
    now = time.time()

    lines = [
        f"renewed {ov.id}: {ov.key} = {format_value(ov.value)} ({ov.scope_label})",
        f"  expires: {format_time(ov.expires_at)} (in {format_left(ov.expires_at - now)})",
    ]
    g.emit_lines(ov.to_dict(), lines)


def end_override(g: Session, override_id: str, *, reason: str) -> None:
    """``flagmw unkill``: end a kill or an override now.

    Raises:
        FlagmwError: what :meth:`FlagClient.end_override` raises.
    """
    with g.client(registry="optional", check_schemas=False) as client:
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


def list_overrides(g: Session, *, show_all: bool) -> None:
    """``flagmw overrides``: the overrides in force (all of them with ``show_all``), as a
    table or one JSON document ``{"at", "overrides": [… "status", "seconds_left"]}``.

    Raises:
        FlagmwError: the store cannot be read.
    """
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
