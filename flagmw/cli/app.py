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

import os
import sys
from collections.abc import Sequence

import typer

from flagmw.cli import (
    agents,
    console,
    demo,
    drill,
    gates,
    inspect,
    interop,
    lint,
    overrides,
    promote,
    replay,
    rollout,
    snapshots,
)
from flagmw.cli.errors import EXIT_CODES_EPILOG, EXIT_OK, one_line
from flagmw.cli.logs import configure_logging
from flagmw.cli.options import (
    ActorOpt,
    EnvironmentOpt,
    JsonOpt,
    MaxTtlOpt,
    RegistryOpt,
    StoreOpt,
    VerboseOpt,
)
from flagmw.cli.output import write_lines
from flagmw.cli.session import root_session

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


# One module per command group; the order here is the order of `flagmw --help`.
for group in (
    snapshots,
    overrides,
    inspect,
    replay,
    drill,
    lint,
    demo,
    interop,
    agents,
    rollout,
    gates,
    promote,
    console,
):
    group.register(app)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the command line through the typer app and exit with its code: what the
    console script (:func:`flagmw.cli.entry.main`) does for every command line but a
    well-formed incident command (:mod:`flagmw.cli.incident`).

    Usage errors are reported like every other error: one line on stderr, exit 2.
    """
    configure_logging()
    # This process builds pydantic models (typer's parameters, the registry) but needs no
    # pydantic plugin: skip their discovery, a scan of every installed distribution's
    # entry points. An explicit PYDANTIC_DISABLE_PLUGINS is left as it is.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
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
        write_lines([f"flagmw: error: {one_line(format_message())}{hint}"], stderr=True)
        sys.exit(exit_code)
    except KeyboardInterrupt:
        write_lines(["flagmw: interrupted"], stderr=True)
        sys.exit(130)
    sys.exit(rv if isinstance(rv, int) else EXIT_OK)


if __name__ == "__main__":
    main()
