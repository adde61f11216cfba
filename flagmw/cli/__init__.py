"""The ``flagmw`` command: the Typer app (:mod:`flagmw.cli.app`) and one module per
command group (:mod:`~flagmw.cli.snapshots`, :mod:`~flagmw.cli.overrides`,
:mod:`~flagmw.cli.inspect`, :mod:`~flagmw.cli.lint`, :mod:`~flagmw.cli.demo`), on shared
plumbing: :mod:`~flagmw.cli.session` (global options → store, registry, client),
:mod:`~flagmw.cli.options`, :mod:`~flagmw.cli.output`, :mod:`~flagmw.cli.errors`,
:mod:`~flagmw.cli.stores`."""

from flagmw.cli.app import app, main

__all__ = ["app", "main"]
