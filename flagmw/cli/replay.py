"""``flagmw`` commands that answer "which config did that run have?" after the fact:
``pin show`` (a thread's pinned RunConfig, read from the LangGraph checkpointer) and
``resolve`` (a config recomputed as it was at a time, from the store's history)."""

from __future__ import annotations

import datetime as _dt
import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

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
from flagmw.cli.errors import EXIT_CODES_EPILOG, EXIT_PROBLEMS, CliError
from flagmw.cli.options import with_session
from flagmw.cli.output import format_time, format_value, table
from flagmw.cli.session import Session

if TYPE_CHECKING:  # pragma: no cover
    from rich.console import Console

    from flagmw.core.context import EvaluationContext
    from flagmw.core.runconfig import RunConfig

__all__ = ["parse_time", "register"]


def parse_time(text: str) -> float:
    """``--at``: seconds since the epoch, or an ISO-8601 time (``2026-12-03T17:40:00Z``;
    a time without offset is UTC).

    Raises:
        CliError: neither.
    """
    t = text.strip()
    try:
        value = float(t)
    except ValueError:
        try:
            parsed = _dt.datetime.fromisoformat(t.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise CliError(
                f"--at {text!r}: write seconds since the epoch or an ISO-8601 time, e.g. "
                "2026-12-03T17:40:00Z"
            ) from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=_dt.UTC)
        return parsed.timestamp()
    if not math.isfinite(value) or value < 0 or value > 32503680000:  # year 3000
        raise CliError(f"--at {text!r}: not a time (seconds since the epoch, 0 .. year 3000)")
    return value


def _config_rows(rc: RunConfig) -> list[tuple[str, str, str]]:
    return [(k, format_value(rc[k]), rc.provenance[k].describe()) for k in rc]


def _render_config(out: Console, rc: RunConfig, header: list[str]) -> None:
    for line in header:
        out.print(line, highlight=False, markup=False)
    t = table("flag", "value", "provenance")
    for row in _config_rows(rc):
        t.add_row(*row)
    out.print(t)


def _summary(rc: RunConfig) -> list[str]:
    ctx = " ".join(f"{k}={v}" for k, v in rc.context.to_dict().items()) or "(empty)"
    rev = "-" if rc.snapshot_rev is None else str(rc.snapshot_rev)
    lines = [
        f"config_hash {rc.config_hash}",
        f"snapshot rev {rev} · environment {rc.environment} · resolved at "
        f"{format_time(rc.resolved_at)}",
        f"context {ctx}",
    ]
    if rc.override_ids:
        lines.append("overrides " + ", ".join(rc.override_ids))
    return lines


def _open_checkpointer(spec: str) -> Any:
    """A LangGraph checkpointer on a SQLite file (opened read-only) or a PostgreSQL URL,
    as a context manager."""
    if spec.startswith(("postgres://", "postgresql://")):
        try:
            from langgraph.checkpoint.postgres import PostgresSaver
        except ImportError:
            raise CliError(
                "--checkpointer postgresql://…: needs langgraph-checkpoint-postgres "
                '(pip install "flagmw[postgres]")'
            ) from None
        return PostgresSaver.from_conn_string(spec)
    path = Path(spec.removeprefix("sqlite:"))
    try:
        if not path.is_file():
            raise CliError(
                f"--checkpointer {spec}: no such SQLite file (give the checkpoint database "
                "of the agent, e.g. checkpoints.sqlite, or a postgresql:// URL)"
            )
    except OSError as exc:
        raise CliError(f"--checkpointer {spec}: {exc.strerror or exc}") from None
    try:
        import sqlite3
        from contextlib import closing, contextmanager

        from langgraph.checkpoint.sqlite import SqliteSaver
    except ImportError:
        raise CliError(
            "--checkpointer FILE: needs langgraph-checkpoint-sqlite "
            '(pip install "flagmw[langgraph]")'
        ) from None

    @contextmanager
    def read_only() -> Any:
        uri = f"{path.resolve().as_uri()}?mode=ro"
        with closing(sqlite3.connect(uri, uri=True, check_same_thread=False)) as conn:
            saver = SqliteSaver(conn)
            saver.is_setup = True  # read-only: never create tables in someone's database
            yield saver

    return read_only()


@with_session(exclude=("registry", "actor", "max_ttl"))
def show(
    g: Session,
    checkpointer: Annotated[
        str,
        typer.Option(
            "--checkpointer",
            help="The agent's checkpoint database: a SQLite file or a postgresql:// URL.",
        ),
    ],
    thread: Annotated[str, typer.Option("--thread", help="The thread id.")],
    checkpoint: Annotated[
        str | None,
        typer.Option("--checkpoint", help="A checkpoint id of the thread (default: latest)."),
    ] = None,
) -> None:
    """A thread's pinned RunConfig: values, provenance, rev and config_hash.

    The pin is verified (digest, or signature with FLAGMW_PIN_KEY) before it is shown.
    Exit 2 when the thread has no pin or the pin fails verification.
    """
    from flagmw.errors import IntegrityError
    from flagmw.langgraph.pin import decode_pin
    from flagmw.langgraph.pin_store import find_pin

    conf: dict[str, Any] = {"thread_id": thread}
    if checkpoint:
        conf["checkpoint_id"] = checkpoint
    try:
        with _open_checkpointer(checkpointer) as cp:
            found = find_pin(cp, {"configurable": conf})
    except CliError:
        raise
    except Exception as exc:  # the checkpoint database itself failed
        raise CliError(f"--checkpointer {checkpointer}: {type(exc).__name__}: {exc}") from None
    if found.pin is None:
        raise CliError(f"thread {thread!r}: no pinned RunConfig in {checkpointer}")
    try:
        rc = decode_pin(found.pin)
    except IntegrityError as exc:
        raise CliError(f"thread {thread!r}: the pin failed verification: {exc}") from None
    doc = {"thread_id": thread, "checkpoint_id": found.checkpoint_id, "run_config": rc.to_dict()}
    g.emit(doc, lambda out: _render_config(out, rc, [f"thread {thread}", *_summary(rc)]))


@with_session(exclude=("actor", "max_ttl"))
def resolve(
    g: Session,
    at: Annotated[
        str,
        typer.Option("--at", help="When: seconds since the epoch or ISO-8601 (UTC if no offset)."),
    ],
    rev: Annotated[
        int | None,
        typer.Option("--rev", min=1, help="The snapshot rev (default: the head at --at)."),
    ] = None,
    tenant: CtxTenantOpt = None,
    user: CtxUserOpt = None,
    route: CtxRouteOpt = None,
    plan: CtxPlanOpt = None,
    thread: CtxThreadOpt = None,
    run: CtxRunOpt = None,
    attr: AttrOpt = None,
    context: Annotated[
        str | None,
        typer.Option(
            "--context",
            help="The whole evaluation context as a JSON object (the run_config.context "
            "of `flagmw pin show --json` or of the span's flagmw.config), instead of the "
            "options above.",
        ),
    ] = None,
    expect: Annotated[
        str | None,
        typer.Option("--hash", help="A recorded config_hash: exit 1 unless it matches."),
    ] = None,
) -> None:
    """Recompute the RunConfig of a context as it was at a time, from the store's history
    (the rev that was the head then, or --rev, and the overrides in force then).

    With --hash, says whether it matches a recorded config_hash (exit 1 when not).
    """
    from flagmw.client.history import resolve_at
    from flagmw.errors import NotFoundError

    when = parse_time(at)
    if context is not None:
        if any(v is not None for v in (tenant, user, route, plan, thread, run)) or attr:
            raise CliError("--context: give the context either as JSON or as options, not both")
        ctx = _context_json(context)
    else:
        ctx = context_from_options(
            tenant=tenant, user=user, route=route, plan=plan, thread=thread, run=run, attr=attr
        )
    store = g.open_store()

    try:
        registry = g.registry_or_fail(store)
        try:
            h = resolve_at(store, registry, ctx, at=when, environment=g.environment, rev=rev)
        except NotFoundError as exc:
            raise CliError(str(exc)) from None
    finally:
        store.close()
    rc = h.run_config
    matches = None if expect is None else h.matches(expect.strip())
    doc: dict[str, Any] = {
        "rev": h.rev,
        "at": h.at,
        "overrides_in_force": list(h.override_ids),
        "run_config": rc.to_dict(),
    }
    if matches is not None:
        doc["expected_hash"] = expect
        doc["matches"] = matches

    def render(out: Console) -> None:
        lines = _summary(rc)
        if matches is not None:
            lines.append(
                "matches the recorded config_hash"
                if matches
                else f"does NOT match the recorded config_hash {expect}"
            )
        _render_config(out, rc, lines)

    g.emit(doc, render)
    if matches is False:
        raise typer.Exit(EXIT_PROBLEMS)


def _context_json(text: str) -> EvaluationContext:
    import json

    from flagmw.core.context import EvaluationContext
    from flagmw.errors import ValidationError

    try:
        data = json.loads(text)
    except ValueError as exc:
        raise CliError(f"--context: not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise CliError('--context: give a JSON object, e.g. \'{"tenant_id": "acme"}\'')
    try:
        return EvaluationContext.from_dict(data)
    except (ValidationError, TypeError, ValueError) as exc:
        raise CliError(f"--context: {exc}") from None


def register(app: typer.Typer) -> None:
    """Add ``resolve`` and the ``pin`` group (``pin show``) to ``app``."""
    app.command(epilog=EXIT_CODES_EPILOG)(resolve)
    pin = typer.Typer(
        name="pin",
        help="Read a run's pinned RunConfig from the agent's checkpoints.",
        no_args_is_help=True,
    )
    pin.command("show", epilog=EXIT_CODES_EPILOG)(show)
    app.add_typer(pin, name="pin")
