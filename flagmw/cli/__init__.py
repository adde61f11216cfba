"""The ``flagmw`` command: the Typer app (:mod:`flagmw.cli.app`), shared session and
output helpers (:mod:`flagmw.cli.common`) and one module per command group."""

from flagmw.cli.app import app, main

__all__ = ["app", "main"]
