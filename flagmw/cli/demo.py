"""``flagmw demo``: the support agent of :mod:`flagmw.examples.support_agent` replaying a
kill-switch incident (needs the ``all`` extra)."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Annotated

import typer

from flagmw.cli.errors import EXIT_CODES_EPILOG, EXIT_OK, CliError
from flagmw.cli.options import with_session
from flagmw.cli.session import Session

__all__ = ["register"]


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


@with_session()
def demo(
    g: Session,
    scenario: Annotated[
        str,
        typer.Argument(
            help="incident (the kill-switch incident) or rollout (a staged rollout of an "
            "agent version rolled back automatically, docs/rollouts.md).",
        ),
    ] = "incident",
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
    if scenario == "rollout":
        _rollout_demo(workdir)
    if scenario != "incident":
        raise CliError(f"unknown demo {scenario!r}: use incident or rollout")
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


def _rollout_demo(workdir: Path | None) -> None:
    try:
        module = importlib.import_module("flagmw.examples.rollout_demo")
    except ModuleNotFoundError as exc:
        raise CliError(f"flagmw demo rollout needs {exc.name}: pip install 'flagmw[all]'") from None
    raise typer.Exit(int(module.main(workdir) or EXIT_OK))


def register(app: typer.Typer) -> None:
    """Add ``demo`` to ``app``."""
    app.command(epilog=EXIT_CODES_EPILOG, help=_demo_help())(demo)
