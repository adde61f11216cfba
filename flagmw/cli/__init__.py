"""The ``flagmw`` command: the console script :func:`main` (:mod:`flagmw.cli.entry`,
which runs the incident commands through :mod:`flagmw.cli.incident` and everything else
through the Typer app :mod:`flagmw.cli.app`), one module per command group
(:mod:`~flagmw.cli.snapshots`, :mod:`~flagmw.cli.overrides`, :mod:`~flagmw.cli.inspect`,
:mod:`~flagmw.cli.lint`, :mod:`~flagmw.cli.demo`, …), on shared plumbing:
:mod:`~flagmw.cli.session` (global options → store, registry, client),
:mod:`~flagmw.cli.options`, :mod:`~flagmw.cli.output`, :mod:`~flagmw.cli.errors`,
:mod:`~flagmw.cli.stores`.

``app`` is imported on first use (PEP 562), so ``from flagmw.cli import main`` (the
console script) does not import typer.
"""

import sys
import types
from typing import TYPE_CHECKING, Any

from flagmw.cli.entry import main

if TYPE_CHECKING:  # pragma: no cover
    from flagmw.cli.app import app

__all__ = ["app", "main"]


class _CliPackage(types.ModuleType):
    """This package, whose ``app`` is the Typer app, imported on first use.

    The name is also the submodule :mod:`flagmw.cli.app`: importing it makes Python set
    the package's ``app`` to the module, which the setter ignores, so ``flagmw.cli.app``
    stays the Typer app however the submodule came to be imported (as when this package
    imported it eagerly)."""

    @property
    def app(self) -> Any:
        from flagmw.cli.app import app

        return app

    @app.setter
    def app(self, value: Any) -> None:
        pass  # the submodule flagmw.cli.app being bound (see the class docs)


sys.modules[__name__].__class__ = _CliPackage
