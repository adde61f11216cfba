"""``flagmw gate check`` / ``gate record``: quality gates of an agent version."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from flagmw.cli.errors import EXIT_CODES_EPILOG, EXIT_PROBLEMS, CliError
from flagmw.cli.options import with_session
from flagmw.cli.session import Session

__all__ = ["register"]

_NO = ("max_ttl", "registry", "environment")


@with_session(exclude=_NO)
def check(
    g: Session,
    agent: Annotated[str, typer.Argument(help="The agent.")],
    version: Annotated[str, typer.Argument(help="The version to judge.")],
    gates: Annotated[Path, typer.Option("--gates", help="The gates file.")] = Path(
        "quality_gates.yaml"
    ),
    env: Annotated[
        str | None,
        typer.Option("--in", help="Judge on runs recorded in this environment (e.g. staging)."),
    ] = None,
) -> None:
    """Print each gate with its measured value and verdict; exit 1 when a required gate
    fails."""
    from flagmw.rollout.gates import check_gates, load_gates
    from flagmw.rollout.store import open_rollout_store

    spec = load_gates(gates)
    store = g.open_store()
    try:
        rs = open_rollout_store(store)
        rs.get_version(agent, version)
        results = check_gates(rs, agent, version, spec, environment=env)
        rs.close()
    finally:
        store.close()
    g.emit_lines([r.to_dict() for r in results], [r.line() for r in results])
    if any(r.blocking for r in results):
        raise typer.Exit(EXIT_PROBLEMS)


@with_session(exclude=_NO)
def record(
    g: Session,
    agent: Annotated[str, typer.Argument(help="The agent.")],
    version: Annotated[str, typer.Argument(help="The version.")],
    metrics: Annotated[list[str], typer.Argument(help="NAME=VALUE, e.g. offline_quality=0.87")],
) -> None:
    """Record offline evaluation results of a version (read by threshold gates)."""
    import math
    import time

    from flagmw.rollout.store import open_rollout_store

    values: dict[str, float] = {}
    for item in metrics:
        name, sep, text = item.partition("=")
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not sep or not name or not math.isfinite(value):
            raise CliError(f"not NAME=NUMBER: {item!r}")
        values[name] = value
    store = g.open_store()
    try:
        rs = open_rollout_store(store)
        rs.get_version(agent, version)
        rs.save_eval(agent, version, values, time.time())
        rs.close()
    finally:
        store.close()
    g.emit_lines(values, [f"recorded {len(values)} metrics for {agent} {version}"])


def register(app: typer.Typer) -> None:
    """Add the ``gate`` group (check, record) to ``app``."""
    group = typer.Typer(name="gate", help="Quality gates of agent versions.", no_args_is_help=True)
    for command in (check, record):
        group.command(epilog=EXIT_CODES_EPILOG)(command)
    app.add_typer(group, name="gate")
