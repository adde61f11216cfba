"""The incident commands without typer: ``kill``, ``override``, ``renew``, ``unkill`` and
``overrides`` parsed by the standard library's :mod:`argparse` (issue 7 §5: an on-call
engineer runs ``flagmw kill`` in an incident, and typer alone — it builds a pydantic
``TypeAdapter`` per parameter when it parses — costs more than the start-up target).

The parameters are declared once more here, in :data:`COMMANDS` and
:data:`GLOBAL_OPTIONS`, with the typer declarations (:mod:`flagmw.cli.overrides`,
:mod:`flagmw.cli.options`) as the reference; ``tests/test_cli_incident.py`` compares the
two (names, option strings, defaults, required, flags, environment variables), so they
cannot drift apart. What the commands *do* is not declared twice: both front-ends call
:mod:`flagmw.cli.override_actions`, inside the same :func:`~flagmw.cli.errors.reporting`.

Only a well-formed command line runs here. Anything this parser does not accept as is
(``--help``, an unknown or abbreviated option, a missing ``--reason`` or argument, an
option value that looks like an option, a command not in :data:`COMMANDS`) returns None
from :func:`parse`, and :func:`flagmw.cli.entry.main` hands the whole command line to
typer, which reports it in its own words (exit 2) — so usage errors and help read the same
whichever way a command line came in.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn

__all__ = ["COMMANDS", "GLOBAL_OPTIONS", "Command", "Param", "Parsed", "parse", "run"]


@dataclass(frozen=True)
class Param:
    """One parameter of a command, as typer declares it.

    Attributes:
        name: the Python name the typer command receives (``_g_`` + the
            :class:`~flagmw.cli.session.Session` field for a global option given after
            the command, as :func:`~flagmw.cli.options.with_session` names them).
        opts: the option strings (``("--verbose", "-v")``); empty for an argument.
        flag: an option without a value (``--force``), False unless given.
        required: an option or argument that must be given.
    """

    name: str
    opts: tuple[str, ...] = ()
    flag: bool = False
    required: bool = False

    @property
    def default(self) -> Any:
        """What the command receives when the option is not given (typer's default)."""
        return False if self.flag else None

    @property
    def argument(self) -> bool:
        return not self.opts


#: The global options (typer's root callback; ``name`` is the Session field). Accepted
#: before the command name, and after it as ``_g_<name>`` unless a command excludes them.
GLOBAL_OPTIONS: tuple[Param, ...] = (
    Param("store", ("--store",)),
    Param("environment", ("--environment",)),
    Param("registry", ("--registry",)),
    Param("actor", ("--actor",)),
    Param("max_ttl", ("--max-ttl",)),
    Param("json", ("--json",), flag=True),
    Param("verbose", ("--verbose", "-v"), flag=True),
)


@dataclass(frozen=True)
class Command:
    """A command's own parameters, the global options it does not take after its name,
    and the action it runs (a function of :mod:`flagmw.cli.override_actions`, given the
    session and the parsed own parameters)."""

    params: tuple[Param, ...]
    action: Callable[..., None]
    exclude: tuple[str, ...] = ()

    def all_params(self) -> tuple[Param, ...]:
        """Own parameters then the global options, in typer's order."""
        shared = tuple(
            Param(f"_g_{g.name}", g.opts, g.flag)
            for g in GLOBAL_OPTIONS
            if g.name not in self.exclude
        )
        return self.params + shared


def _kill(g: Any, **kw: Any) -> None:
    from flagmw.cli.override_actions import set_override

    set_override(g, "kill", kw.pop("key"), None, **kw)


def _override(g: Any, **kw: Any) -> None:
    from flagmw.cli.override_actions import set_override

    set_override(g, "override", kw.pop("key"), kw.pop("value"), **kw)


def _renew(g: Any, **kw: Any) -> None:
    from flagmw.cli.override_actions import renew_override

    renew_override(g, kw.pop("override_id"), **kw)


def _unkill(g: Any, **kw: Any) -> None:
    from flagmw.cli.override_actions import end_override

    end_override(g, kw.pop("override_id"), **kw)


def _overrides(g: Any, **kw: Any) -> None:
    from flagmw.cli.override_actions import list_overrides

    list_overrides(g, **kw)


_REASON = Param("reason", ("--reason",), required=True)
_TTL = Param("ttl", ("--ttl",))
_SCOPE = (
    _REASON,
    _TTL,
    Param("tenant", ("--tenant",)),
    Param("route", ("--route",)),
    Param("force", ("--force",), flag=True),
    Param("environment", ("--environment",)),  # the override's scope, not the global one
)

#: The commands this parser runs (the rest go to typer).
COMMANDS: dict[str, Command] = {
    "kill": Command((Param("key", required=True), *_SCOPE), _kill, ("environment",)),
    "override": Command(
        (Param("key", required=True), Param("value", required=True), *_SCOPE),
        _override,
        ("environment",),
    ),
    "renew": Command((Param("override_id", required=True), _REASON, _TTL), _renew),
    "unkill": Command((Param("override_id", required=True), _REASON), _unkill),
    "overrides": Command((Param("show_all", ("--all",), flag=True),), _overrides),
}


class _Unparsed(Exception):
    """The command line is not one this parser runs as is."""


class _Parser(argparse.ArgumentParser):
    """An argparse parser that never prints or exits: every problem is :class:`_Unparsed`."""

    def error(self, message: str) -> NoReturn:
        raise _Unparsed(message)

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        raise _Unparsed(message or "")


def _parser(params: Sequence[Param]) -> _Parser:
    parser = _Parser(prog="flagmw", add_help=False, allow_abbrev=False, exit_on_error=False)
    for p in params:
        if p.argument:
            parser.add_argument(p.name)
        elif p.flag:
            parser.add_argument(*p.opts, dest=p.name, action="store_true")
        else:
            parser.add_argument(*p.opts, dest=p.name, required=p.required, default=p.default)
    return parser


@dataclass
class Parsed:
    """A command line this parser runs: the command, the global options given before
    its name (Session field → value), and its own parameters and the global options
    after it (typer's parameter names, ``_g_…`` for the latter)."""

    command: str
    before: dict[str, Any] = field(default_factory=dict)
    after: dict[str, Any] = field(default_factory=dict)


_HELP = frozenset({"-h", "--help"})


def parse(argv: Sequence[str]) -> Parsed | None:
    """``argv`` (without the program name) as an incident command, or None when typer
    should handle it (help, another command, anything not accepted as is)."""
    if _HELP.intersection(argv):
        return None
    before: dict[str, Any] = {g.name: g.default for g in GLOBAL_OPTIONS}
    by_opt = {opt: g for g in GLOBAL_OPTIONS for opt in g.opts}
    i = 0
    while i < len(argv) and argv[i].startswith("-"):
        name, eq, value = argv[i].partition("=")
        g = by_opt.get(name)
        if g is None or (g.flag and eq):
            return None
        if g.flag:
            before[g.name] = True
        elif eq:
            before[g.name] = value
        elif i + 1 < len(argv):
            i += 1
            before[g.name] = argv[i]
        else:
            return None
        i += 1
    if i >= len(argv) or argv[i] not in COMMANDS:
        return None
    name = argv[i]
    try:
        ns = _parser(COMMANDS[name].all_params()).parse_args(list(argv[i + 1 :]))
    except (_Unparsed, argparse.ArgumentError):
        return None
    after = vars(ns)
    for p in COMMANDS[name].params:
        # argparse takes "-1" for an argument where click sees an unknown option
        if p.argument and after[p.name].startswith("-") and after[p.name] != "-":
            return None
    return Parsed(name, before, after)


def run(parsed: Parsed) -> int:
    """Run an incident command as typer would: the session from the global options (those
    after the command win, :func:`~flagmw.cli.session.after_command`), the action inside
    :func:`~flagmw.cli.errors.reporting`. Returns the exit code (0, or the code of the
    error reported on stderr)."""
    from flagmw.cli.errors import CommandExit, reporting
    from flagmw.cli.session import after_command, root_session

    command = COMMANDS[parsed.command]
    b = parsed.before
    base = root_session(
        b["store"],
        b["environment"],
        b["registry"],
        b["actor"],
        b["max_ttl"],
        b["json"],
        b["verbose"],
    )
    own = dict(parsed.after)
    given = {
        g.name: own.pop(f"_g_{g.name}") for g in GLOBAL_OPTIONS if g.name not in command.exclude
    }
    session = after_command(base, **given)
    try:
        with reporting(session):
            command.action(session, **own)
    except CommandExit as exc:
        return exc.exit_code
    return 0
