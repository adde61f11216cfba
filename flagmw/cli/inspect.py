"""``flagmw`` commands that look without changing anything: explain, audit, status."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from flagmw.cli.context_options import (
    AttrOpt,
    CtxPlanOpt,
    CtxRouteOpt,
    CtxRunOpt,
    CtxTenantOpt,
    CtxThreadOpt,
    CtxUserOpt,
    context_from_options,
)
from flagmw.cli.errors import EXIT_CODES_EPILOG, EXIT_PROBLEMS
from flagmw.cli.options import KeyArg, with_session
from flagmw.cli.output import (
    format_time,
    format_value,
    printable,
    problems_table,
    styled,
    table,
)
from flagmw.cli.session import Session

if TYPE_CHECKING:  # pragma: no cover
    from rich.console import Console

    from flagmw.stores.base import AuditEntry

__all__ = ["register"]


def _rev(rev: int | None) -> str:
    return "-" if rev is None else str(rev)


@with_session()
def explain(
    g: Session,
    key: KeyArg,
    tenant: CtxTenantOpt = None,
    user: CtxUserOpt = None,
    route: CtxRouteOpt = None,
    plan: CtxPlanOpt = None,
    thread: CtxThreadOpt = None,
    run: CtxRunOpt = None,
    attr: AttrOpt = None,
) -> None:
    """Why KEY has its value for a context.

    Shows the value, the winner (layer, scope, rule, rev, override) and every candidate
    with its status: won, shadowed, not matched, expired, ended, exempt or superseded.
    """
    ctx = context_from_options(
        tenant=tenant, user=user, route=route, plan=plan, thread=thread, run=run, attr=attr
    )
    with g.client() as client:
        ex = client.explain(key, ctx)
        environment = client.environment
    doc = {**ex.to_dict(), "environment": environment}

    def render(out: Console) -> None:
        from rich.text import Text

        p = ex.provenance
        head = Text()
        head.append(printable(f"{key} = "), style="bold")
        head.append(printable(format_value(ex.value)), style="bold green")
        if ex.description:
            head.append(printable(f"   ({ex.description})"), style="dim")
        out.print(head)
        reason = f" — reason: {p.reason}" if p.reason else ""
        out.print(printable(f"winner: {p.describe()}{reason}"))
        ctx_text = (
            " ".join(
                f"{k}={format_value(v) if k == 'attributes' else v}"
                for k, v in ctx.to_dict().items()
            )
            or "(empty)"
        )
        out.print(
            printable(
                f"snapshot rev {_rev(ex.snapshot_rev)} · environment {environment} · "
                f"context {ctx_text} · at {format_time(ex.at)}"
            )
        )
        t = table(
            "layer", "scope", "rule / experiment / override", "rev", "value", "status", "note"
        )
        for c in ex.candidates:
            cp = c.provenance
            which = cp.rule or (f"{cp.experiment}={cp.variant}" if cp.experiment else None)
            which = which or cp.override_id or "-"
            style = {"won": "bold green", "shadowed": "", "not matched": "dim"}.get(
                c.status, "yellow"
            )
            t.add_row(
                cp.layer.value,
                cp.scope or "-",
                which,
                _rev(cp.rev),
                format_value(c.value),
                styled(c.status, style),
                c.note or (cp.reason or ""),
            )
        out.print(t)

    g.emit(doc, render)


def _audit_row(e: AuditEntry) -> list[str]:
    change = ""
    if e.before is not None or e.after is not None:
        change = f"{format_value(e.before)} → {format_value(e.after)}"
    return [str(e.seq), format_time(e.at), e.action, e.actor, e.target, e.reason, change]


@with_session()
def audit(
    g: Session,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="How many entries.")] = 50,
    action: Annotated[
        str | None,
        typer.Option(
            "--action",
            help="Only this action or action family: publish, rollback, "
            "kill (kill.set, kill.end …), override, kill.forced …",
        ),
    ] = None,
) -> None:
    """The audit log, newest first.

    Publishes, rollbacks, overrides and kills with actor, reason and before → after.
    """
    from flagmw.client.arguments import check_limit, check_text

    check_text("audit", "action", action, optional=True)
    store = g.open_store()
    try:
        entries = store.audit(check_limit("audit", limit), action=action)
    finally:
        store.close()

    def render(out: Console) -> None:
        if not entries:
            out.print("no audit entries" + (f" for action {action}" if action else ""))
            return
        t = table("seq", "at (UTC)", "action", "actor", "target", "reason", "before → after")
        for e in entries:
            t.add_row(*_audit_row(e))
        out.print(t)

    g.emit({"entries": [e.to_dict() for e in entries]}, render)


@with_session()
def status(g: Session) -> None:
    """The client's view of the store: served rev, head rev, health.

    Exit 1 when the served snapshot is stale (the head does not fit the registry) or the
    store is unhealthy.
    """
    with g.client(registry="optional") as client:
        st = client.status()
        registry_source = client.registry.source
        flags = len(client.registry)
    doc = {**st.to_dict(), "registry": registry_source, "flags": flags}

    def render(out: Console) -> None:
        t = table("", "")
        t.show_header = False
        rows = [
            ("store", st.store),
            ("environment", st.environment),
            ("registry", f"{registry_source} ({flags} flags)"),
            ("serving rev", _rev(st.snapshot_rev)),
            ("head rev", _rev(st.head_rev)),
            ("healthy", "yes" if st.healthy else "no"),
            ("stale", "yes" if st.stale else "no"),
            ("active overrides", str(st.active_overrides)),
            ("last refresh", format_time(st.last_refresh_at)),
        ]
        if st.last_error:
            rows.append(("last error", f"{st.last_error} ({format_time(st.last_error_at)})"))
        if st.rejected_rev is not None:
            rows.append(("rejected rev", str(st.rejected_rev)))
        if st.canary_rev is not None:
            rows.append(("canary rev", f"{st.canary_rev} (its rollout's candidates only)"))
        for name, value in rows:
            t.add_row(name, value)
        out.print(t)
        if st.rejected_problems:
            out.print(problems_table(st.rejected_problems))

    g.emit(doc, render)
    if st.stale or not st.healthy:
        raise typer.Exit(EXIT_PROBLEMS)


def register(app: typer.Typer) -> None:
    """Add explain, audit and status to ``app``."""
    for command in (explain, audit, status):
        app.command(epilog=EXIT_CODES_EPILOG)(command)
