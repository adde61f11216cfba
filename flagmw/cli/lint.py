"""``flagmw lint``: the CI guard against env-var feature toggles and unknown flag keys
(the checks live in :mod:`flagmw.lint`)."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from flagmw.cli.errors import EXIT_CODES_EPILOG, EXIT_PROBLEMS, CliError
from flagmw.cli.options import with_session
from flagmw.cli.session import Session

if TYPE_CHECKING:  # pragma: no cover
    from rich.console import Console

__all__ = ["register"]


@with_session()
def lint(
    g: Session,
    paths: Annotated[list[Path], typer.Argument(help="Files or folders to check.")],
    unused: Annotated[
        bool,
        typer.Option(
            "--unused",
            help="Also report registry flags no linted file references (FM004, warnings).",
        ),
    ] = False,
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
    findings = lint_module.lint_paths(paths, registry, unused=unused)
    errors = [f for f in findings if f.severity == "error"]

    def render(out: Console) -> None:
        from rich.text import Text

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


def register(app: typer.Typer) -> None:
    """Add ``lint`` to ``app``."""
    app.command(epilog=EXIT_CODES_EPILOG)(lint)
