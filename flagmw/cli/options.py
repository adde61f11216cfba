"""The options of the ``flagmw`` command: the global ones (accepted before or after the
command name), the ones several commands share, and :func:`with_session`, which gives a
command the global options and error reporting."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from typing import Annotated, Any, TypeVar

import typer

from flagmw.cli.errors import CommandExit, reporting
from flagmw.cli.session import Session, after_command, root_session

__all__ = [
    "ActorOpt",
    "AuthorOpt",
    "EnvironmentOpt",
    "ForceOpt",
    "JsonOpt",
    "KeyArg",
    "MaxTtlOpt",
    "MessageOpt",
    "OnlyEnvOpt",
    "ParentOpt",
    "ReasonOpt",
    "RegistryOpt",
    "RouteOpt",
    "StoreOpt",
    "TenantOpt",
    "TtlOpt",
    "VerboseOpt",
    "reflow",
    "with_session",
]

GLOBAL_PANEL = "Global options (also accepted before the command)"

# -- global options --------------------------------------------------------------------------

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

# -- options several commands share -----------------------------------------------------------

KeyArg = Annotated[str, typer.Argument(help="A flag key, e.g. tools.refund_api.enabled.")]
ReasonOpt = Annotated[
    str, typer.Option("--reason", help="Why (mandatory; shown in refusals and the audit log).")
]
TtlOpt = Annotated[
    str | None,
    typer.Option(
        "--ttl",
        help="How long, e.g. 4h, 90m, 1h30m (default 4h, at most --max-ttl).",
        show_default=False,
    ),
]
TenantOpt = Annotated[
    str | None, typer.Option("--tenant", help="Only for this tenant.", show_default=False)
]
RouteOpt = Annotated[
    str | None,
    typer.Option("--route", help="Only for this route (agent profile).", show_default=False),
]
ForceOpt = Annotated[
    bool,
    typer.Option(
        "--force",
        help="Also turn a protected flag off for tenants that require it (audited).",
    ),
]
OnlyEnvOpt = Annotated[
    str | None,
    typer.Option(
        "--environment",
        help="Only in this environment (default: every environment).",
        show_default=False,
    ),
]
ParentOpt = Annotated[
    int | None,
    typer.Option(
        "--parent",
        help="The rev this change is based on; a conflict (exit 3) if the head moved. "
        "Default: the head at the time of the call.",
        show_default=False,
    ),
]
AuthorOpt = Annotated[
    str | None,
    typer.Option("--author", help="Who publishes (default: --actor).", show_default=False),
]
MessageOpt = Annotated[str, typer.Option("--message", "-m", help="Why (mandatory).")]


# -- how a command receives them ------------------------------------------------------


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
            session = after_command(
                base, **{name: kwargs.pop(f"_g_{name}") for name, _, _ in shared}
            )
            try:
                with reporting(session):
                    return func(session, **kwargs)
            except CommandExit as exc:
                raise typer.Exit(exc.exit_code) from None
            raise AssertionError("unreachable")  # pragma: no cover

        wrapper.__doc__ = reflow(func.__doc__)
        wrapper.__signature__ = new_sig  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in new_sig.parameters.values()}
        return wrapper

    return decorate
