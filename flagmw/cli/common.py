"""Plumbing of the ``flagmw`` command: global options, store and registry lookup,
output (rich tables or one JSON document) and the mapping of errors to exit codes.

Kept apart from :mod:`flagmw.cli` so the command module reads as the list of commands.
Nothing here is public API; the behaviour it implements is documented in ``docs/cli.md``.
"""

from __future__ import annotations

import datetime as _dt
import functools
import getpass
import inspect
import json
import logging
import os
import re
import sys
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from flagmw.client.client import FlagClient
from flagmw.core.overrides import parse_duration
from flagmw.core.registry import FlagRegistry
from flagmw.core.source import Locator, load_document
from flagmw.errors import ConflictError, FlagmwError, Problem, ValidationError
from flagmw.stores.base import Store
from flagmw.stores.sqlite import SQLiteStore

# -- exit codes ----------------------------------------------------------------------------

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

DEFAULT_STORE = "flagmw.db"
DEFAULT_REGISTRY = "flags.yaml"
DEFAULT_ENVIRONMENT = "production"
DEFAULT_MAX_TTL = "24h"
#: The TTL of a kill or override when ``--ttl`` is not given (capped by ``--max-ttl``).
DEFAULT_TTL_SECONDS = 4 * 3600.0

GLOBAL_PANEL = "Global options (also accepted before the command)"


class CliError(Exception):
    """An error the command reports as one line on stderr, with an exit code."""

    def __init__(self, message: str, exit_code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.exit_code = exit_code


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
    """Collapse a multi-line message into one line."""
    return "; ".join(part.strip(" -") for part in text.splitlines() if part.strip())


# -- formatting ----------------------------------------------------------------------------


def format_time(t: float | None) -> str:
    """Seconds since the epoch → UTC ISO-8601 to the second, e.g. ``2026-11-21T05:56:38Z``."""
    if t is None:
        return "-"
    return _dt.datetime.fromtimestamp(t, tz=_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def format_left(seconds: float) -> str:
    """A remaining time as its two most significant units, rounded down:
    ``14399`` → ``"3h59m"``, ``90061`` → ``"1d1h"``, ``75`` → ``"1m15s"``, ``0`` → ``"0s"``."""
    left = int(seconds)
    if left <= 0:
        return "0s"
    units: list[tuple[int, str]] = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        n, left = divmod(left, size)
        units.append((n, unit))
    first = next(i for i, (n, _) in enumerate(units) if n)
    return "".join(f"{n}{u}" for n, u in units[first : first + 2] if n)


def format_value(value: Any) -> str:
    """A flag value as compact JSON (``true``, ``"gpt-4o"``, ``["a", "b"]``), so types
    stay visible: the string ``"8"`` and the int ``8`` print differently."""
    try:
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    except (TypeError, ValueError):
        return repr(value)


def parse_scalar(text: str) -> Any:
    """Command-line text → a value: JSON first, then a YAML scalar or flow collection
    (so ``true``, ``8``, ``1.5``, ``[a, b]`` and ``{"k": 1}`` all work), else the text."""
    import yaml

    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def table(*columns: str, title: str | None = None) -> Table:
    """A rich table with the house style (no outer edge; cells fold instead of being
    cut)."""
    out = Table(title=title, title_justify="left", show_edge=False, pad_edge=False)
    for name in columns:
        out.add_column(name, overflow="fold")
    return out


def problems_table(problems: Sequence[Problem]) -> Table:
    """Every problem with its ``file:line``, document path, message and hint."""
    t = table("location", "severity", "path", "message", "hint")
    t.columns[0].no_wrap = True
    for p in problems:
        style = "red" if p.severity == "error" else "yellow"
        t.add_row(
            p.location, Text(p.severity, style=style), p.path or "-", p.message, p.hint or "-"
        )
    return t


# -- consoles ------------------------------------------------------------------------------


def _console(stderr: bool = False) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    width = None
    if "COLUMNS" not in os.environ and not stream.isatty():
        # Piped output (CI logs, files) is not cut at 80 columns: keep locations whole.
        width = 160
    # markup=False: flag paths such as ``values[model.primary]`` contain brackets that
    # rich would otherwise read as style tags and drop.
    return Console(file=stream, markup=False, highlight=False, width=width, soft_wrap=False)


def default_actor() -> str:
    """``$FLAGMW_ACTOR``, else the OS user name, else ``uid:<n>``."""
    actor = os.environ.get("FLAGMW_ACTOR", "").strip()
    if actor:
        return actor
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no passwd entry (some containers)
        return f"uid:{os.getuid()}" if hasattr(os, "getuid") else "unknown"


# -- stores --------------------------------------------------------------------------------

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):(.*)$", re.DOTALL)


def _open_sqlite(location: str, create: bool) -> Store:
    if location.startswith("//"):  # sqlite:///abs/path, as in a URL
        location = location[2:]
    if not location:
        raise CliError("--store sqlite: needs a file path, e.g. sqlite:/srv/flagmw.db")
    path = Path(location).expanduser()
    if not create and not path.exists():  # (SQLiteStore(create=False) would also refuse)
        raise CliError(
            f"no flagmw store at {path}: publish a snapshot first (flagmw publish "
            "flags.yaml), or name the store with --store or FLAGMW_STORE"
        )
    if path.is_dir():
        raise CliError(
            f"--store {location} is a folder; name the store file, e.g. {path}/flagmw.db"
        )
    return SQLiteStore(path)


#: Store URL scheme → opener(location after the scheme, create). New stores (PostgreSQL,
#: Redis) plug in here; a plain path (no scheme) is a SQLite file.
STORE_OPENERS: dict[str, Callable[[str, bool], Store]] = {"sqlite": _open_sqlite}

_PLANNED_SCHEMES = ("postgres", "postgresql", "redis", "rediss")


def open_store(spec: str, *, create: bool) -> Store:
    """Open the store named by ``--store``: ``PATH`` or ``sqlite:PATH`` (or
    ``sqlite:///ABS/PATH``) for a SQLite file.

    Args:
        spec: the store's name.
        create: create a missing SQLite file (commands that write); otherwise a missing
            file is an error, so a typo in ``--store`` does not silently read an empty
            store.

    Raises:
        CliError: an unknown or unsupported scheme, or a missing file.
        StoreUnavailableError: the file is not a flagmw store or cannot be opened.
    """
    m = _SCHEME.match(spec)
    if m is None:
        return _open_sqlite(spec, create)
    scheme, rest = m.group(1).lower(), m.group(2)
    opener = STORE_OPENERS.get(scheme)
    if opener is not None:
        return opener(rest, create)
    if scheme in _PLANNED_SCHEMES:
        raise CliError(
            f"--store {spec}: {scheme} stores are not available in this flagmw yet; "
            "use a SQLite file (--store PATH or sqlite:PATH)"
        )
    raise CliError(
        f"--store {spec}: unknown store scheme {scheme!r} (known: "
        f"{', '.join(sorted(STORE_OPENERS))}; a plain path is a SQLite file, "
        "write ./NAME for a file name with a colon)"
    )


# -- the session: global options plus what every command needs ------------------------------


@dataclass
class Session:
    """The global options of one invocation, and the helpers commands share.

    Attributes:
        store: the store's name (``--store``; ``$FLAGMW_STORE``; ``./flagmw.db``).
        environment: the client's environment (``--environment``; ``$FLAGMW_ENVIRONMENT``;
            ``production``).
        registry: an explicit ``--registry`` file, or None.
        actor: who acts (``--actor``; ``$FLAGMW_ACTOR``; the OS user).
        max_ttl: the longest TTL accepted, e.g. ``"24h"`` (``--max-ttl``;
            ``$FLAGMW_MAX_TTL``).
        json: write one JSON document to stdout instead of tables.
        verbose: say which store and registry were used; tracebacks for internal errors.
    """

    store: str = DEFAULT_STORE
    environment: str = DEFAULT_ENVIRONMENT
    registry: str | None = None
    actor: str = ""
    max_ttl: str = DEFAULT_MAX_TTL
    json: bool = False
    verbose: bool = False

    # -- output --

    @property
    def out(self) -> Console:
        """The stdout console (tables)."""
        return _console()

    def emit(self, document: Any, render: Callable[[Console], None]) -> None:
        """Write ``document`` as JSON (``--json``) or call ``render`` with the console."""
        if self.json:
            write_json(document)
        else:
            render(self.out)

    def note(self, message: str) -> None:
        """A ``--verbose`` remark on stderr."""
        if self.verbose:
            sys.stderr.write(f"flagmw: {one_line(message)}\n")

    # -- store, registry, client --

    def open_store(self, *, create: bool = False) -> Store:
        """The store (see :func:`open_store`)."""
        store = open_store(self.store, create=create)
        self.note(f"store: {store.name}")
        return store

    def max_ttl_seconds(self) -> float:
        """``--max-ttl`` in seconds.

        Raises:
            CliError: not a positive duration.
        """
        try:
            return parse_duration(self.max_ttl)
        except ValueError as exc:
            raise CliError(f"--max-ttl: {exc}") from None

    def find_registry(
        self,
        store: Store | None,
        *,
        document: tuple[Any, Locator] | None = None,
    ) -> tuple[FlagRegistry | None, str]:
        """The application's registry, and where it came from.

        Order: ``--registry FILE``; the ``flags:`` section of ``document`` (the file
        being validated or published); ``$FLAGMW_REGISTRY``; ``./flags.yaml`` when it
        has a ``flags:`` section; the registry stored with the store's head snapshot
        (so an operator without the source tree can still kill a flag). ``(None, …)``
        when none is found.

        Raises:
            ValidationError: a registry file that is invalid (every problem).
        """
        if self.registry:
            return FlagRegistry.from_yaml(self.registry), f"--registry {self.registry}"
        if document is not None:
            data, locator = document
            if isinstance(data, Mapping) and "flags" in data:
                reg = FlagRegistry.from_dict(data, locator=locator)
                return reg, f"the flags: section of {locator.source}"
        env_file = os.environ.get("FLAGMW_REGISTRY", "").strip()
        if env_file:
            return FlagRegistry.from_yaml(env_file), f"$FLAGMW_REGISTRY ({env_file})"
        local = Path(DEFAULT_REGISTRY)
        if local.is_file():
            data, locator = load_document(local)
            if isinstance(data, Mapping) and "flags" in data:
                return FlagRegistry.from_dict(data, locator=locator), f"./{DEFAULT_REGISTRY}"
        if store is not None:
            return stored_registry(store)
        return None, "none"

    def find_registry_without_store(
        self, *, document: tuple[Any, Locator] | None = None
    ) -> tuple[FlagRegistry | None, str]:
        """:meth:`find_registry` for commands that do not need the store otherwise
        (``validate``, ``lint``): the store is opened only as the last resort, and only
        when its file exists."""
        registry, where = self.find_registry(None, document=document)
        if registry is not None:
            return registry, where
        try:
            store = self.open_store()
        except CliError:
            return None, where
        try:
            return stored_registry(store)
        finally:
            store.close()

    def registry_or_fail(
        self, store: Store | None, *, document: tuple[Any, Locator] | None = None
    ) -> FlagRegistry:
        """:meth:`find_registry`, or a clear error when there is none."""
        registry, where = self.find_registry(store, document=document)
        if registry is None:
            raise CliError(
                "no flag registry found: pass --registry FILE, set FLAGMW_REGISTRY, run in "
                f"a folder with {DEFAULT_REGISTRY}, or publish a snapshot to the store first"
            )
        self.note(f"registry: {where} ({len(registry)} flags)")
        return registry

    def client(
        self,
        *,
        create: bool = False,
        registry: str = "required",
        document: tuple[Any, Locator] | None = None,
    ) -> FlagClient:
        """A :class:`FlagClient` on the store.

        Args:
            create: create a missing SQLite store (commands that write).
            document: the loaded file being published, whose ``flags:`` section is a
                registry candidate (see :meth:`find_registry`).
            registry: ``"required"`` (:meth:`find_registry`, an error when none),
                ``"optional"`` (an empty registry when none) or ``"stored"`` (the head's
                stored registry: for commands that only read snapshots, so a local
                ``flags.yaml`` that drifted does not matter).
        """
        store = self.open_store(create=create)
        try:
            if registry == "required":
                reg = self.registry_or_fail(store, document=document)
            elif registry == "optional":
                found, where = self.find_registry(store)
                reg = found if found is not None else FlagRegistry([], source="<none>")
                self.note(f"registry: {where}")
            else:
                found, where = stored_registry(store)
                reg = found if found is not None else FlagRegistry([], source="<none>")
                self.note(f"registry: {where}")
            max_ttl = self.max_ttl_seconds()
            return FlagClient(
                reg,
                store,
                environment=self.environment,
                default_ttl=min(DEFAULT_TTL_SECONDS, max_ttl),
                max_ttl=max_ttl,
            )
        except BaseException:
            store.close()
            raise


def stored_registry(store: Store) -> tuple[FlagRegistry | None, str]:
    """The registry stored with the store's head snapshot, and a description."""
    head = store.head()
    if head is None:
        return None, "none (nothing published)"
    record = store.get_snapshot(head.rev)
    locator = Locator(f"{store.name} rev {head.rev} registry")
    return (
        FlagRegistry.from_dict(record.registry, locator=locator),
        f"the registry stored with rev {head.rev} in {store.name}",
    )


def write_json(document: Any) -> None:
    """One JSON document on stdout."""
    sys.stdout.write(json.dumps(document, indent=2, ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()


# -- errors --------------------------------------------------------------------------------


def fail(
    session: Session, message: str, exit_code: int, problems: Sequence[Problem] = ()
) -> NoReturn:
    """Report an error: with ``--json`` one JSON document on stdout; always one line
    ``flagmw: error: …`` on stderr; then exit with ``exit_code``."""
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
        _console(stderr=True).print(problems_table(problems))
    sys.stderr.write(f"flagmw: error: {line}\n")
    sys.stderr.flush()
    raise typer.Exit(exit_code)


@contextmanager
def reporting(session: Session) -> Iterator[None]:
    """Turn the errors of a command into one line on stderr and an exit code; never a
    traceback for a :class:`~flagmw.errors.FlagmwError`."""
    try:
        yield
    except typer.Exit:
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
        sys.stderr.write("flagmw: interrupted\n")
        raise typer.Exit(130) from None
    except Exception as exc:
        if session.verbose:
            traceback.print_exc()
        fail(
            session,
            f"internal error: {type(exc).__name__}: {exc} (this is a flagmw bug; "
            "--verbose shows the traceback)",
            EXIT_ERROR,
        )


# -- shared options ------------------------------------------------------------------------

StoreOpt = Annotated[
    str | None,
    typer.Option(
        "--store",
        help="The store: a SQLite file PATH or sqlite:PATH. Default $FLAGMW_STORE, "
        "else ./flagmw.db.",
        rich_help_panel=GLOBAL_PANEL,
        show_default=False,
    ),
]
EnvironmentOpt = Annotated[
    str | None,
    typer.Option(
        "--environment",
        help="The deployment environment to resolve for. Default $FLAGMW_ENVIRONMENT, "
        "else production.",
        rich_help_panel=GLOBAL_PANEL,
        show_default=False,
    ),
]
RegistryOpt = Annotated[
    str | None,
    typer.Option(
        "--registry",
        help="The registry file (a flags: section). Default $FLAGMW_REGISTRY, else "
        "./flags.yaml, else the registry stored with the head snapshot.",
        rich_help_panel=GLOBAL_PANEL,
        show_default=False,
    ),
]
ActorOpt = Annotated[
    str | None,
    typer.Option(
        "--actor",
        help="Who acts (audited). Default $FLAGMW_ACTOR, else the OS user.",
        rich_help_panel=GLOBAL_PANEL,
        show_default=False,
    ),
]
MaxTtlOpt = Annotated[
    str | None,
    typer.Option(
        "--max-ttl",
        help="The longest TTL accepted for kills and overrides. Default $FLAGMW_MAX_TTL, else 24h.",
        rich_help_panel=GLOBAL_PANEL,
        show_default=False,
    ),
]
JsonOpt = Annotated[
    bool,
    typer.Option(
        "--json",
        help="Write one JSON document to stdout instead of tables.",
        rich_help_panel=GLOBAL_PANEL,
    ),
]
VerboseOpt = Annotated[
    bool,
    typer.Option(
        "--verbose",
        "-v",
        help="Say which store and registry are used.",
        rich_help_panel=GLOBAL_PANEL,
    ),
]

_SHARED: tuple[tuple[str, Any, Any], ...] = (
    ("store", StoreOpt, None),
    ("environment", EnvironmentOpt, None),
    ("registry", RegistryOpt, None),
    ("actor", ActorOpt, None),
    ("max_ttl", MaxTtlOpt, None),
    ("json", JsonOpt, False),
    ("verbose", VerboseOpt, False),
)

R = TypeVar("R")


def root_session(
    store: str | None,
    environment: str | None,
    registry: str | None,
    actor: str | None,
    max_ttl: str | None,
    json_output: bool,
    verbose: bool,
) -> Session:
    """The session from the options given before the command (and the environment)."""
    return Session(
        store=store or os.environ.get("FLAGMW_STORE") or DEFAULT_STORE,
        environment=environment or os.environ.get("FLAGMW_ENVIRONMENT") or DEFAULT_ENVIRONMENT,
        registry=registry,
        actor=actor or default_actor(),
        max_ttl=max_ttl or os.environ.get("FLAGMW_MAX_TTL") or DEFAULT_MAX_TTL,
        json=json_output,
        verbose=verbose,
    )


def reflow(doc: str | None) -> str | None:
    """Join the lines of each docstring paragraph: typer's rich help keeps single line
    breaks, which would show the source's wrapping in ``--help``."""
    if doc is None:
        return None
    paragraphs = inspect.cleandoc(doc).split("\n\n")
    return "\n\n".join(" ".join(p.split()) for p in paragraphs)


def with_session(*, exclude: Sequence[str] = ()) -> Callable[[Callable[..., R]], Callable[..., R]]:
    """Give a command the global options and error reporting.

    The decorated function takes a :class:`Session` as its first parameter. Typer sees
    the function's other parameters plus every global option not in ``exclude`` (so
    ``flagmw kill KEY --store x.db`` works as well as ``flagmw --store x.db kill KEY``;
    a value given after the command wins). The body runs inside :func:`reporting`.
    """

    def decorate(func: Callable[..., R]) -> Callable[..., R]:
        sig = inspect.signature(func, eval_str=True)
        own = list(sig.parameters.values())[1:]  # drop the Session parameter
        shared = [(n, a, d) for n, a, d in _SHARED if n not in exclude]
        extra = [
            inspect.Parameter(f"_g_{n}", inspect.Parameter.KEYWORD_ONLY, default=d, annotation=a)
            for n, a, d in shared
        ]
        ctx_param = inspect.Parameter(
            "_g_ctx", inspect.Parameter.KEYWORD_ONLY, annotation=typer.Context
        )
        params = [
            p.replace(kind=inspect.Parameter.KEYWORD_ONLY)
            if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
            else p
            for p in own
        ]
        new_sig = sig.replace(parameters=[ctx_param, *params, *extra])

        @functools.wraps(func)
        def wrapper(**kwargs: Any) -> R:
            ctx: typer.Context = kwargs.pop("_g_ctx")
            base = (
                ctx.obj
                if isinstance(ctx.obj, Session)
                else root_session(None, None, None, None, None, False, False)
            )
            given: dict[str, Any] = {}
            for name, _, _ in shared:
                value = kwargs.pop(f"_g_{name}")
                if value:  # None / False: not given after the command
                    given[name] = value
            session = replace(base, **given)
            with reporting(session):
                return func(session, **kwargs)
            raise AssertionError("unreachable")  # pragma: no cover

        wrapper.__doc__ = reflow(func.__doc__)
        wrapper.__signature__ = new_sig  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in new_sig.parameters.values()}
        return wrapper

    return decorate


# -- logging ---------------------------------------------------------------------------------


class _StderrHandler(logging.Handler):
    """Writes the library's log records to the *current* ``sys.stderr`` as one line each."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = one_line(record.getMessage())
            if not text.startswith("flagmw:"):
                text = f"flagmw: {text}"
            sys.stderr.write(text + "\n")
        except Exception:  # pragma: no cover - logging must never break the command
            self.handleError(record)


def configure_logging() -> None:
    """Route the ``flagmw`` logger's warnings to stderr (called by :func:`flagmw.cli.main`
    only, never at import, so an application's logging set-up is left alone)."""
    logger = logging.getLogger("flagmw")
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        handler = _StderrHandler(logging.WARNING)
        logger.addHandler(handler)
