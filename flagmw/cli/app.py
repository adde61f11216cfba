"""The ``flagmw`` command: operate flags, snapshots and kill switches from a shell.

Every command works through :class:`~flagmw.client.FlagClient` and the store protocol;
none re-implements resolution or validation. Output is a rich table on stdout, or one
JSON document with ``--json`` (built from the objects' ``to_dict()``). Errors are one
line ``flagmw: error: …`` on stderr and a non-zero exit code:

* ``0`` success;
* ``1`` validation problems, lint errors, or a ``status`` that is stale or unhealthy;
* ``2`` usage errors and every other error (unknown flag, missing store, refused kill …);
* ``3`` a publish or rollback conflict (someone published since ``--parent``).

Global options (``--store``, ``--environment``, ``--registry``, ``--actor``,
``--max-ttl``, ``--json``, ``--verbose``) are accepted before or after the command name.
The full reference is ``docs/cli.md``.
"""

from __future__ import annotations

import importlib
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.text import Text

from flagmw.cli.common import (
    EXIT_CODES_EPILOG,
    EXIT_OK,
    EXIT_PROBLEMS,
    ActorOpt,
    CliError,
    EnvironmentOpt,
    JsonOpt,
    MaxTtlOpt,
    ProblemsError,
    RegistryOpt,
    Session,
    StoreOpt,
    VerboseOpt,
    configure_logging,
    format_left,
    format_time,
    format_value,
    one_line,
    parse_scalar,
    problems_table,
    root_session,
    summary_line,
    table,
    with_session,
)
from flagmw.cli.starter import starter_flags_yaml
from flagmw.core.context import EvaluationContext
from flagmw.core.flag_spec import FlagType
from flagmw.core.overrides import Override
from flagmw.core.snapshot import validate_document
from flagmw.core.source import load_document
from flagmw.errors import Problem, ValidationError
from flagmw.stores.base import AuditEntry, SnapshotInfo

__all__ = ["app", "main"]

app = typer.Typer(
    name="flagmw",
    help="Operate flagmw: typed flags, versioned snapshots, kill switches and overrides, "
    "and why a run sees the value it sees.",
    epilog=EXIT_CODES_EPILOG,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def _root(
    ctx: typer.Context,
    store: StoreOpt = None,
    environment: EnvironmentOpt = None,
    registry: RegistryOpt = None,
    actor: ActorOpt = None,
    max_ttl: MaxTtlOpt = None,
    json_output: JsonOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Operate flagmw: typed flags, versioned snapshots, kill switches and overrides."""
    ctx.obj = root_session(store, environment, registry, actor, max_ttl, json_output, verbose)


# -- argument and option types ---------------------------------------------------------------

KeyArg = Annotated[str, typer.Argument(help="A flag key, e.g. tools.refund_api.enabled.")]
ReasonOpt = Annotated[
    str, typer.Option("--reason", help="Why (mandatory; shown in refusals and the audit log).")
]
TtlOpt = Annotated[
    str | None,
    typer.Option(
        "--ttl",
        help="How long, e.g. 4h, 90m, 1h30m (default 4h, at most --max-ttl).",
        show_default=False,
    ),
]
TenantOpt = Annotated[
    str | None, typer.Option("--tenant", help="Only for this tenant.", show_default=False)
]
RouteOpt = Annotated[
    str | None,
    typer.Option("--route", help="Only for this route (agent profile).", show_default=False),
]
ForceOpt = Annotated[
    bool,
    typer.Option(
        "--force",
        help="Also turn a protected flag off for tenants that require it (audited).",
    ),
]
OnlyEnvOpt = Annotated[
    str | None,
    typer.Option(
        "--environment",
        help="Only in this environment (default: every environment).",
        show_default=False,
    ),
]
ParentOpt = Annotated[
    int | None,
    typer.Option(
        "--parent",
        help="The rev this change is based on; a conflict (exit 3) if the head moved. "
        "Default: the head at the time of the call.",
        show_default=False,
    ),
]
AuthorOpt = Annotated[
    str | None,
    typer.Option("--author", help="Who publishes (default: --actor).", show_default=False),
]
MessageOpt = Annotated[str, typer.Option("--message", "-m", help="Why (mandatory).")]


# -- init, validate ----------------------------------------------------------------------------


@app.command(epilog=EXIT_CODES_EPILOG)
@with_session()
def init(
    g: Session,
    path: Annotated[
        Path, typer.Argument(help="The folder to write flags.yaml into.", show_default=True)
    ] = Path("."),
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Write a starter flags.yaml (registry + first snapshot, commented) into PATH."""
    target = path / "flags.yaml"
    if target.exists() and not force:
        raise CliError(f"{target} already exists; pass --force to overwrite it")
    try:
        path.mkdir(parents=True, exist_ok=True)
        target.write_text(starter_flags_yaml(), encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot write {target}: {exc.strerror or exc}") from None
    # The starter must always be valid; checking it here catches a broken template.
    from flagmw.core.registry import FlagRegistry

    registry = FlagRegistry.from_yaml(target)
    snapshot = validate_document(target, registry)
    doc = {
        "path": str(target),
        "flags": len(registry),
        "content_hash": snapshot.content_hash,
    }

    def render(out: Console) -> None:
        out.print(f"wrote {target} ({len(registry)} flags, valid)")
        out.print(f"next: flagmw validate {target}")
        out.print(f'      flagmw publish {target} --message "first snapshot"')

    g.emit(doc, render)


@app.command(epilog=EXIT_CODES_EPILOG)
@with_session()
def validate(
    g: Session,
    file: Annotated[
        Path, typer.Argument(help="The flags file (YAML or JSON).", show_default=True)
    ] = Path("flags.yaml"),
) -> None:
    """Validate a flags file: its registry (flags:) and its snapshot.

    Prints every problem with file:line, document path, message and hint. Warnings (e.g.
    expired flags) are shown but do not fail (exit 0); errors exit 1.
    """
    source = str(file)
    problems: list[Problem] = []
    where = ""
    content_hash: str | None = None
    try:
        data, locator = load_document(file)
        registry, where = g.find_registry_without_store(document=(data, locator))
        if registry is None:
            raise CliError(
                f"{source} has no flags: section and no registry was found: pass "
                "--registry FILE or set FLAGMW_REGISTRY"
            )
        g.note(f"registry: {where} ({len(registry)} flags)")
        snapshot = validate_document(data, registry, locator=locator)
        problems.extend(snapshot.warnings)
        content_hash = snapshot.content_hash
    except ValidationError as exc:
        problems.extend(exc.problems)
    errors = [p for p in problems if p.severity == "error"]
    warnings = [p for p in problems if p.severity != "error"]
    doc = {
        "file": source,
        "valid": not errors,
        "registry": where,
        "content_hash": content_hash,
        "errors": len(errors),
        "warnings": len(warnings),
        "problems": [p.to_dict() for p in problems],
    }

    def render(out: Console) -> None:
        if problems:
            out.print(problems_table(problems))
        if not errors:
            extra = f", {len(warnings)} warning(s)" if warnings else ""
            out.print(f"{source}: valid{extra} (content hash {content_hash})")

    g.emit(doc, render)
    if errors:
        sys.stderr.write(f"flagmw: error: {summary_line(problems, source)}\n")
        raise typer.Exit(EXIT_PROBLEMS)


# -- snapshots ------------------------------------------------------------------------------


@app.command(epilog=EXIT_CODES_EPILOG)
@with_session()
def publish(
    g: Session,
    file: Annotated[Path, typer.Argument(help="The flags file to publish.")],
    message: MessageOpt,
    author: AuthorOpt = None,
    parent: ParentOpt = None,
) -> None:
    """Validate FILE and publish its snapshot as the next rev.

    The registry is --registry, else the file's flags: section, else the usual search.
    Nothing is published unless everything is valid (exit 1 with every problem); a stale
    --parent exits 3.
    """
    kwargs: dict[str, Any] = {} if parent is None else {"parent_rev": parent}
    try:
        data, locator = load_document(file)
        with g.client(create=True, document=(data, locator)) as client:
            result = client.publish(file, author=author or g.actor, message=message, **kwargs)
    except ValidationError as exc:
        raise ProblemsError(exc.problems, exc.source, "nothing was published") from None

    def render(out: Console) -> None:
        if result.published:
            out.print(
                f"published rev {result.rev} ({_parent(result.parent_rev)}), "
                f"content hash {result.content_hash}"
            )
        else:
            out.print(
                f"no change: the document equals head rev {result.rev}; nothing was published"
            )
        if result.warnings:
            out.print(problems_table(result.warnings))

    g.emit(result.to_dict(), render)


def _rev(rev: int | None) -> str:
    return "-" if rev is None else str(rev)


def _parent(rev: int | None) -> str:
    return "the first rev" if rev is None else f"parent rev {rev}"


def _info_row(info: SnapshotInfo) -> list[str]:
    action = info.action if info.rollback_of is None else f"rollback of {info.rollback_of}"
    return [
        str(info.rev),
        _rev(info.parent_rev),
        format_time(info.created_at),
        info.author,
        action,
        info.message,
        info.content_hash.removeprefix("sha256:")[:12],
    ]


@app.command(epilog=EXIT_CODES_EPILOG)
@with_session()
def history(
    g: Session,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="How many revs.")] = 20,
) -> None:
    """The most recent snapshot revs, newest first."""
    store = g.open_store()
    try:
        infos = store.history(limit)
    finally:
        store.close()

    def render(out: Console) -> None:
        if not infos:
            out.print("nothing has been published yet")
            return
        t = table("rev", "parent", "created (UTC)", "author", "action", "message", "hash")
        for info in infos:
            t.add_row(*_info_row(info))
        out.print(t)

    g.emit({"snapshots": [i.to_dict() for i in infos]}, render)


@app.command(epilog=EXIT_CODES_EPILOG)
@with_session()
def diff(
    g: Session,
    rev_a: Annotated[int, typer.Argument(help="The older rev.")],
    rev_b: Annotated[int, typer.Argument(help="The newer rev.")],
) -> None:
    """What changed from REV_A to REV_B: path, before, after."""
    with g.client(registry="stored") as client:
        changes = client.diff(rev_a, rev_b)
    doc = {
        "from": rev_a,
        "to": rev_b,
        "changes": [
            {"path": c.path, "kind": c.kind, "before": c.before, "after": c.after} for c in changes
        ],
    }

    def render(out: Console) -> None:
        if not changes:
            out.print(f"rev {rev_a} and rev {rev_b} have the same content")
            return
        t = table("path", "change", "before", "after", title=f"rev {rev_a} → rev {rev_b}")
        for c in changes:
            t.add_row(
                c.path,
                c.kind,
                "-" if c.kind == "added" else format_value(c.before),
                "-" if c.kind == "removed" else format_value(c.after),
            )
        out.print(t)

    g.emit(doc, render)


@app.command(epilog=EXIT_CODES_EPILOG)
@with_session()
def rollback(
    g: Session,
    rev: Annotated[int, typer.Argument(help="The rev whose content to publish again.")],
    message: MessageOpt,
    author: AuthorOpt = None,
    parent: ParentOpt = None,
) -> None:
    """Publish the content of an older REV as a new rev."""
    with g.client() as client:
        kwargs: dict[str, Any] = {} if parent is None else {"parent_rev": parent}
        result = client.rollback(rev, author=author or g.actor, message=message, **kwargs)

    def render(out: Console) -> None:
        if result.published:
            out.print(
                f"published rev {result.rev} with the content of rev {rev} "
                f"(parent rev {_rev(result.parent_rev)}), content hash {result.content_hash}"
            )
        else:
            out.print(f"no change: head rev {result.rev} already has the content of rev {rev}")

    g.emit({**result.to_dict(), "rollback_of": rev}, render)


# -- overrides and kill switches --------------------------------------------------------------


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
    with g.client(create=True) as client:
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

    def render(out: Console) -> None:
        for line in _override_lines(ov, now):
            out.print(line)
        if exempt:
            out.print(
                Text(
                    f"  exempt: tenant(s) {', '.join(exempt)} require {key} (a protected flag) "
                    "and keep it on; --force includes them",
                    style="yellow",
                )
            )
        out.print(f"  end it early: flagmw unkill {ov.id} --reason ...")

    g.emit({**ov.to_dict(), "exempt_tenants": exempt}, render)


def _parse_value(client: Any, key: str, text: str) -> Any:
    """VALUE on the command line → the flag's type. Text is read as JSON or a YAML scalar;
    for string and enum flags, text that reads as another type (``123``, ``yes``) is
    taken literally, since those flags only hold strings."""
    flag = client.registry[key]
    value = parse_scalar(text)
    if flag.type in (FlagType.STRING, FlagType.ENUM) and not isinstance(value, str):
        value = text
    return value


@app.command(epilog=EXIT_CODES_EPILOG)
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


@app.command(epilog=EXIT_CODES_EPILOG)
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


IdArg = Annotated[str, typer.Argument(help="An override or kill id, e.g. ov-3.")]


@app.command(epilog=EXIT_CODES_EPILOG)
@with_session()
def renew(g: Session, override_id: IdArg, reason: ReasonOpt, ttl: TtlOpt = None) -> None:
    """Extend an active override or kill: it now expires TTL from now."""
    with g.client(registry="optional") as client:
        ov = client.renew(override_id, actor=g.actor, reason=reason, ttl=ttl)
    now = time.time()

    def render(out: Console) -> None:
        out.print(f"renewed {ov.id}: {ov.key} = {format_value(ov.value)} ({ov.scope_label})")
        out.print(
            f"  expires: {format_time(ov.expires_at)} (in {format_left(ov.expires_at - now)})"
        )

    g.emit(ov.to_dict(), render)


@app.command(epilog=EXIT_CODES_EPILOG)
@with_session()
def unkill(g: Session, override_id: IdArg, reason: ReasonOpt) -> None:
    """End a kill or an override early."""
    with g.client(registry="optional") as client:
        ov = client.end_override(override_id, actor=g.actor, reason=reason)

    def render(out: Console) -> None:
        out.print(
            f"ended {ov.id}: {ov.key} ({ov.scope_label}) at {format_time(ov.ended_at)} "
            f"by {ov.ended_by}: {ov.end_reason}"
        )

    g.emit(ov.to_dict(), render)


def _status(ov: Override, now: float) -> str:
    if ov.ended_at is not None and ov.ended_at <= now:
        return f"ended {format_time(ov.ended_at)} by {ov.ended_by}: {ov.end_reason}"
    if now >= ov.expires_at:
        return "expired"
    return "active"


@app.command(epilog=EXIT_CODES_EPILOG)
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
                Text(_status(o, now), style="green" if active else "dim"),
            )
        out.print(t)

    g.emit(doc, render)


# -- explain, audit, status -------------------------------------------------------------------


@app.command(epilog=EXIT_CODES_EPILOG)
@with_session()
def explain(
    g: Session,
    key: KeyArg,
    tenant: Annotated[str | None, typer.Option("--tenant", help="tenant_id.")] = None,
    user: Annotated[str | None, typer.Option("--user", help="user_id.")] = None,
    route: Annotated[str | None, typer.Option("--route", help="route (agent profile).")] = None,
    plan: Annotated[str | None, typer.Option("--plan", help="plan.")] = None,
    thread: Annotated[str | None, typer.Option("--thread", help="thread_id.")] = None,
    run: Annotated[str | None, typer.Option("--run", help="run_id.")] = None,
    attr: Annotated[
        list[str] | None,
        typer.Option(
            "--attr",
            help="A free attribute name=value (repeatable); the value "
            "is read as JSON or YAML, so seats=40 is a number.",
        ),
    ] = None,
) -> None:
    """Why KEY has its value for a context.

    Shows the value, the winner (layer, scope, rule, rev, override) and every candidate
    with its status: won, shadowed, not matched, expired, ended, exempt or superseded.
    """
    attributes: dict[str, Any] = {}
    for item in attr or ():
        name, sep, text = item.partition("=")
        if not sep or not name.strip():
            raise CliError(f"--attr {item!r}: write name=value, e.g. --attr region=eu")
        attributes[name.strip()] = parse_scalar(text)
    ctx = EvaluationContext(
        tenant_id=tenant,
        user_id=user,
        route=route,
        thread_id=thread,
        run_id=run,
        plan=plan,
        attributes=MappingProxyType(attributes),
    )
    with g.client() as client:
        ex = client.explain(key, ctx)
        environment = client.environment
    doc = {**ex.to_dict(), "environment": environment}

    def render(out: Console) -> None:
        p = ex.provenance
        head = Text()
        head.append(f"{key} = ", style="bold")
        head.append(format_value(ex.value), style="bold green")
        if ex.description:
            head.append(f"   ({ex.description})", style="dim")
        out.print(head)
        out.print(f"winner: {p.describe()}" + (f" — reason: {p.reason}" if p.reason else ""))
        ctx_text = (
            " ".join(
                f"{k}={format_value(v) if k == 'attributes' else v}"
                for k, v in ctx.to_dict().items()
            )
            or "(empty)"
        )
        out.print(
            f"snapshot rev {_rev(ex.snapshot_rev)} · environment {environment} · "
            f"context {ctx_text} · at {format_time(ex.at)}"
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
                Text(c.status, style=style),
                c.note or (cp.reason or ""),
            )
        out.print(t)

    g.emit(doc, render)


def _audit_row(e: AuditEntry) -> list[str]:
    change = ""
    if e.before is not None or e.after is not None:
        change = f"{format_value(e.before)} → {format_value(e.after)}"
    return [str(e.seq), format_time(e.at), e.action, e.actor, e.target, e.reason, change]


@app.command(epilog=EXIT_CODES_EPILOG)
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
    store = g.open_store()
    try:
        entries = store.audit(limit, action=action)
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


@app.command(epilog=EXIT_CODES_EPILOG)
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
        for name, value in rows:
            t.add_row(name, value)
        out.print(t)
        if st.rejected_problems:
            out.print(problems_table(st.rejected_problems))

    g.emit(doc, render)
    if st.stale or not st.healthy:
        raise typer.Exit(EXIT_PROBLEMS)


# -- lint, demo ------------------------------------------------------------------------------


@app.command(epilog=EXIT_CODES_EPILOG)
@with_session()
def lint(
    g: Session,
    paths: Annotated[list[Path], typer.Argument(help="Files or folders to check.")],
) -> None:
    """CI guard: env-var feature toggles and flag keys the registry does not define.

    Prints path:line:col code message (suggestion) per finding; exit 1 when any finding is an error.
    """
    try:
        lint_module = importlib.import_module("flagmw.lint")
    except ModuleNotFoundError as exc:
        if exc.name != "flagmw.lint":
            raise
        raise CliError(
            "flagmw lint is not available in this installation (flagmw.lint is missing)"
        ) from None
    # CI often has no store: lint then runs with the registry it can find, or none.
    registry, where = g.find_registry_without_store()
    g.note(f"registry: {where}" + ("" if registry is None else f" ({len(registry)} flags)"))
    findings = lint_module.lint_paths(paths, registry)
    errors = [f for f in findings if f.severity == "error"]

    def render(out: Console) -> None:
        for f in findings:
            text = f"{f.path}:{f.line}:{f.col} {f.code} {f.message}"
            if f.suggestion:
                text += f" ({f.suggestion})"
            out.print(Text(text), soft_wrap=True)
        warnings = len(findings) - len(errors)
        out.print(
            f"{len(findings)} finding(s): {len(errors)} error(s), {warnings} warning(s)"
            + ("" if registry is not None else "; no registry found, unknown keys not checked")
        )

    g.emit({"findings": [f.to_dict() for f in findings], "registry": where}, render)
    if errors:
        raise typer.Exit(EXIT_PROBLEMS)


def _demo_help() -> str | None:
    """The demo's long help, kept in ``flagmw.examples.support_agent.steps`` so
    ``flagmw --help`` does not import LangGraph; None (the docstring is used) when it is
    not there."""
    try:
        module = importlib.import_module("flagmw.examples.support_agent.steps")
    except ImportError:
        return None
    text = getattr(module, "DEMO_HELP", None)
    return text if isinstance(text, str) else None


@app.command(epilog=EXIT_CODES_EPILOG, help=_demo_help())
@with_session()
def demo(
    g: Session,
    workdir: Annotated[
        Path | None,
        typer.Option(
            "--workdir",
            help="Working folder for the store, checkpoints and "
            "traces (default: a new temp folder).",
            show_default=False,
        ),
    ] = None,
    otlp_endpoint: Annotated[
        str | None,
        typer.Option(
            "--otlp-endpoint", help="Export traces over OTLP/HTTP to this URL.", show_default=False
        ),
    ] = None,
    console_traces: Annotated[
        bool,
        typer.Option("--console-traces/--no-console-traces", help="Print spans to the console."),
    ] = False,
) -> None:
    """Run the main job: a LangGraph support agent replaying a kill-switch incident."""
    try:
        demo_module = importlib.import_module("flagmw.examples.support_agent.demo")
    except ModuleNotFoundError as exc:
        if exc.name == "flagmw.examples.support_agent.demo":
            raise CliError(
                "flagmw demo is not available in this installation (flagmw.demo is missing)"
            ) from None
        raise CliError(f"flagmw demo needs {exc.name}: pip install 'flagmw[all]'") from None
    # workdir None: the demo makes a new temporary folder and prints where it is.
    code = demo_module.main(
        workdir=workdir, otlp_endpoint=otlp_endpoint, console_traces=console_traces
    )
    raise typer.Exit(int(code or EXIT_OK))


# -- entry point -----------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> None:
    """The console script ``flagmw``: run the command line and exit with its code.

    Usage errors are reported like every other error: one line on stderr, exit 2.
    """
    configure_logging()
    try:
        rv = app(
            args=list(argv) if argv is not None else None, prog_name="flagmw", standalone_mode=False
        )
    except Exception as exc:
        # typer's vendored click raises UsageError & co. with standalone_mode=False;
        # recognise them by their interface instead of a private import path.
        format_message = getattr(exc, "format_message", None)
        exit_code = getattr(exc, "exit_code", None)
        if format_message is None or not isinstance(exit_code, int):
            raise
        ctx = getattr(exc, "ctx", None)
        hint = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
        sys.stderr.write(f"flagmw: error: {one_line(format_message())}{hint}\n")
        sys.exit(exit_code)
    except KeyboardInterrupt:
        sys.stderr.write("flagmw: interrupted\n")
        sys.exit(130)
    sys.exit(rv if isinstance(rv, int) else EXIT_OK)


if __name__ == "__main__":
    main()
