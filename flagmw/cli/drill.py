"""``flagmw drill``: a game day for kill switches against a real store (the work is in
:mod:`flagmw.drill`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from flagmw.cli.errors import EXIT_CODES_EPILOG, EXIT_PROBLEMS, CliError
from flagmw.cli.options import with_session
from flagmw.cli.output import table
from flagmw.cli.session import Session

if TYPE_CHECKING:  # pragma: no cover
    from rich.console import Console

__all__ = ["register"]


@with_session(exclude=("registry", "max_ttl"))
def drill(
    g: Session,
    workers: Annotated[int, typer.Option("--workers", min=1, max=64)] = 2,
    repetitions: Annotated[int, typer.Option("--repetitions", min=1, max=10_000)] = 5,
    key: Annotated[
        str, typer.Option("--key", help="A hot bool flag gating the workers' tool.")
    ] = "tools.refund_api.enabled",
    tool_latency: Annotated[
        float, typer.Option("--tool-latency", min=0.0, max=10.0, help="Seconds per tool call.")
    ] = 0.001,
    timeout: Annotated[
        float, typer.Option("--timeout", min=1.0, max=3600.0, help="Seconds to wait for any step.")
    ] = 30.0,
) -> None:
    """Game day: N worker processes run an agent against the store; kill KEY from here,
    measure commit → each worker knows and enforces, check that no tool runs after
    enforcement, end the kill; repeat.

    The kills are audited with reason "flagmw drill" and a 5-minute TTL, and ended as
    soon as every worker enforced them. Exit 1 when any tool ran after enforcement.
    """
    from flagmw.drill import DrillError, run_drill

    try:
        report = run_drill(
            g.store,
            workers=workers,
            repetitions=repetitions,
            key=key,
            tool_latency=tool_latency,
            timeout=timeout,
            actor=g.actor,
        )
    except DrillError as exc:
        raise CliError(str(exc)) from None
    doc = report.to_dict()

    def render(out: Console) -> None:
        out.print(
            f"drill on {doc['store']}: {doc['workers']} workers × {doc['repetitions']} kills; "
            f"step spacing {_ms(doc['step_spacing_ms_median'])} (median)"
        )
        t = table(
            "worker",
            "knows p50",
            "p95",
            "p99",
            "max",
            "enforced p50",
            "p95",
            "p99",
            "max",
            "tools after",
        )
        for w in doc["per_worker"]:
            t.add_row(
                str(w["worker"]),
                *(_ms(w[f"knows_{q}_ms"]) for q in ("p50", "p95", "p99", "max")),
                *(_ms(w[f"enforced_{q}_ms"]) for q in ("p50", "p95", "p99", "max")),
                str(w["after_enforcement"]),
            )
        out.print(t)
        out.print(
            f"every worker enforced: p50 {_ms(doc['all_enforced_p50_ms'])}, max "
            f"{_ms(doc['all_enforced_max_ms'])}; tool executions after enforcement: "
            f"{doc['executions_after_enforcement']}"
        )

    g.emit(doc, render)
    if report.executions_after_enforcement:
        raise typer.Exit(EXIT_PROBLEMS)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} ms"


def register(app: typer.Typer) -> None:
    """Add ``drill`` to ``app``."""
    app.command(epilog=EXIT_CODES_EPILOG)(drill)
