"""Exit codes, the command line's own errors, and how every error becomes one line on
stderr and an exit code (never a traceback for a :class:`~flagmw.errors.FlagmwError`)."""

from __future__ import annotations

import sys
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, NoReturn

from flagmw.errors import ConflictError, FlagmwError, Problem, ValidationError

if TYPE_CHECKING:  # pragma: no cover
    from flagmw.cli.session import Session

__all__ = [
    "EXIT_CODES_EPILOG",
    "EXIT_CONFLICT",
    "EXIT_ERROR",
    "EXIT_OK",
    "EXIT_PROBLEMS",
    "CliError",
    "CommandExit",
    "ProblemsError",
    "fail",
    "one_line",
    "reporting",
    "summary_line",
]

#: Success (``status``: the client serves the head snapshot and the store is healthy).
EXIT_OK = 0
#: Problems found: validation errors, lint findings with severity ``error``, or a
#: ``status`` that is stale or unhealthy.
EXIT_PROBLEMS = 1
#: A usage error or any other error (unknown flag, missing store, refused override …).
EXIT_ERROR = 2
#: A publish or rollback conflict: someone published meanwhile (stale ``--parent``).
EXIT_CONFLICT = 3

EXIT_CODES_EPILOG = (
    "Exit codes: 0 success; 1 validation problems or lint errors (status: stale or "
    "unhealthy); 2 usage or other errors; 3 publish conflict (stale --parent)."
)


class CliError(Exception):
    """An error the command reports as one line on stderr, with an exit code."""

    def __init__(self, message: str, exit_code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class CommandExit(Exception):
    """The command ends with ``exit_code``; its error, if any, was already reported.

    Raised by :func:`fail`. This module does not import typer (the incident commands
    start without it, see :mod:`flagmw.cli.incident`): each front-end turns it into its
    own exit (``typer.Exit`` in :func:`flagmw.cli.options.with_session`, ``SystemExit``
    in :func:`flagmw.cli.incident.run`).
    """

    def __init__(self, exit_code: int) -> None:
        super().__init__(exit_code)
        self.exit_code = exit_code


def _is_typer_exit(exc: BaseException) -> bool:
    """``exc`` is a ``typer.Exit`` a command raised to end with a code (checked without
    importing typer: when typer is not loaded, nothing can have raised one)."""
    typer = sys.modules.get("typer")
    return typer is not None and isinstance(exc, typer.Exit)


class ProblemsError(Exception):
    """Validation problems to report as a table plus one summary line (exit 1).

    Attributes:
        problems: every problem (errors and warnings).
        source: the file or document they are about.
        note: appended to the summary line, e.g. ``"nothing was published"``.
    """

    def __init__(self, problems: Sequence[Problem], source: str | None, note: str = "") -> None:
        self.problems = tuple(problems)
        self.source = source
        self.note = note
        super().__init__(summary_line(self.problems, source, note))


def summary_line(problems: Sequence[Problem], source: str | None, note: str = "") -> str:
    """One line naming how many errors there are and the first one with its location."""
    errors = [p for p in problems if p.severity == "error"] or list(problems)
    if len(errors) == 1:
        text = one_line(str(errors[0]))
    else:
        where = f" in {source}" if source else ""
        text = f"{len(errors)} problems{where}; first: {one_line(str(errors[0]))}"
    return f"{text}; {note}" if note else text


def one_line(text: str) -> str:
    """Collapse a multi-line message into one line: its lines joined with ``; ``, each
    without surrounding blanks and a leading list bullet (``- ``). An option name such
    as ``--rollout-tick`` at the start of a line is kept whole."""
    parts = []
    for part in text.splitlines():
        part = part.strip()
        if part.startswith("- "):
            part = part[2:].lstrip()
        if part and part != "-":
            parts.append(part)
    return "; ".join(parts)


def fail(
    session: Session, message: str, exit_code: int, problems: Sequence[Problem] = ()
) -> NoReturn:
    """Report an error: with ``--json`` one JSON document on stdout; always one line
    ``flagmw: error: …`` on stderr; then end the command with ``exit_code``.

    Raises:
        CommandExit: always, with ``exit_code``.
    """
    from flagmw.cli.output import console, problems_table, write_json, write_lines

    line = one_line(message)
    if session.json:
        write_json(
            {
                "error": {
                    "message": line,
                    "exit_code": exit_code,
                    "problems": [p.to_dict() for p in problems],
                }
            }
        )
    elif problems:
        console(stderr=True).print(problems_table(problems))
    write_lines([f"flagmw: error: {line}"], stderr=True)
    raise CommandExit(exit_code)


@contextmanager
def reporting(session: Session) -> Iterator[None]:
    """Turn the errors of a command into one line on stderr and an exit code; never a
    traceback for a :class:`~flagmw.errors.FlagmwError`.

    Raises:
        CommandExit: with the exit code of the error (see :func:`fail`); 130 when
            interrupted. A ``typer.Exit`` the command raised passes through unchanged.
    """
    try:
        yield
    except CommandExit:
        raise
    except CliError as exc:
        fail(session, str(exc), exc.exit_code)
    except ProblemsError as exc:
        fail(session, str(exc), EXIT_PROBLEMS, exc.problems)
    except ValidationError as exc:
        fail(session, summary_line(exc.problems, exc.source), EXIT_PROBLEMS, exc.problems)
    except ConflictError as exc:
        fail(session, str(exc), EXIT_CONFLICT)
    except FlagmwError as exc:
        fail(session, str(exc), EXIT_ERROR)
    except KeyboardInterrupt:
        from flagmw.cli.output import write_lines

        write_lines(["flagmw: interrupted"], stderr=True)
        raise CommandExit(130) from None
    except Exception as exc:
        if _is_typer_exit(exc):
            raise
        if session.verbose:
            from flagmw.cli.output import write_lines

            write_lines(traceback.format_exc().splitlines(), stderr=True)
        fail(
            session,
            f"internal error: {type(exc).__name__}: {exc} (this is a flagmw bug; "
            "--verbose shows the traceback)",
            EXIT_ERROR,
        )
