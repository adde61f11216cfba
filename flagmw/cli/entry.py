"""The console script ``flagmw``: the incident commands (:mod:`flagmw.cli.incident`)
without typer, everything else through the typer app (:mod:`flagmw.cli.app`).

The choice is made on the command line alone, before typer is imported: an on-call
engineer's ``flagmw kill KEY --reason R`` starts without typer, pydantic or rich (issue 7
§5). Both front-ends run the same implementation and report errors the same way.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> None:
    """Run the ``flagmw`` command line and exit with its code (see :mod:`flagmw.cli.app`
    for the codes).

    Args:
        argv: the arguments without the program name; None: ``sys.argv[1:]``.

    Raises:
        SystemExit: always, with the command's exit code.
    """
    from flagmw.cli.logs import configure_logging

    args = list(sys.argv[1:] if argv is None else argv)
    configure_logging()
    # This process may build pydantic models (typer's parameters; a registry flag that is
    # not in a plain shape) but needs no pydantic plugin: skip their discovery, a scan of
    # every installed distribution's entry points. An explicit value is left as it is.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    from flagmw.cli.incident import parse, run

    parsed = parse(args)
    if parsed is not None:
        try:
            code = run(parsed)
        except KeyboardInterrupt:
            from flagmw.cli.output import write_lines

            write_lines(["flagmw: interrupted"], stderr=True)
            code = 130
        sys.exit(code)
    from flagmw.cli.app import main as typer_main

    typer_main(args)
