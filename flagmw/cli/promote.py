"""``flagmw promote snapshot`` / ``promote version``: from a staging store to a
production store, only when the quality gates pass on the runs recorded in staging
(:mod:`flagmw.rollout.promote`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from flagmw.cli.errors import EXIT_CODES_EPILOG, EXIT_PROBLEMS, CliError
from flagmw.cli.options import with_session
from flagmw.cli.session import Session

if TYPE_CHECKING:  # pragma: no cover
    from flagmw.core.registry import FlagRegistry
    from flagmw.rollout.gates import Gate
    from flagmw.rollout.promote import PromoteResult
    from flagmw.stores.base import Store

__all__ = ["register"]

_NO = ("max_ttl", "environment")

GatesOpt = Annotated[
    Path,
    typer.Option("--gates", help="The gates file: every required gate must pass on staging."),
]
ToOpt = Annotated[
    str,
    typer.Option(
        "--to",
        envvar="FLAGMW_PROMOTE_TO",
        help="The production store (a path, sqlite:PATH, postgresql://…, redis://…; "
        "$FLAGMW_PROMOTE_TO).",
    ),
]
FromOpt = Annotated[
    str | None,
    typer.Option("--from", help="The staging store (default: --store / $FLAGMW_STORE)."),
]
InOpt = Annotated[
    str | None,
    typer.Option("--in", help="Judge only the staging runs recorded in this environment."),
]


def _run(g: Session, source_spec: str | None, target_spec: str, gates: Path, act: Any) -> None:
    """Open both stores, promote with ``act(source, target, spec, registry)``, report."""
    from flagmw.cli.stores import open_store
    from flagmw.core.registry import FlagRegistry
    from flagmw.rollout.gates import load_gates
    from flagmw.rollout.promote import PromotionRefusedError

    spec = load_gates(gates)
    registry = FlagRegistry.from_yaml(g.registry) if g.registry else None
    source = open_store(source_spec or g.store, create=False)
    try:
        target = open_store(target_spec, create=False)
        try:
            if source.name == target.name:
                raise CliError(f"--from and --to name the same store ({source.name})")
            try:
                result: PromoteResult = act(source, target, spec, registry)
            except PromotionRefusedError as exc:
                doc = {"promoted": False, "reason": str(exc)}
                doc["gates"] = [r.to_dict() for r in exc.results]
                g.emit_lines(doc, [*(r.line() for r in exc.results), f"refused: {exc}"])
                raise typer.Exit(EXIT_PROBLEMS) from None
        finally:
            target.close()
    finally:
        source.close()
    if result.kind == "snapshot":
        done = (
            f"promoted {result.ref} of {result.source} to {result.target} as rev "
            f"{result.target_rev}"
            if result.written
            else f"{result.target} rev {result.target_rev} already holds {result.ref} of "
            f"{result.source}: nothing written"
        )
    else:
        done = (
            f"promoted {result.ref} from {result.source} to {result.target}"
            if result.written
            else f"{result.target} already holds {result.ref}: nothing written"
        )
    g.emit_lines(
        {"promoted": True} | result.to_dict(),
        [*(r.line() for r in result.gates), f"{done} (content hash {result.content_hash})"],
    )


@with_session(exclude=_NO)
def snapshot(
    g: Session,
    to: ToOpt,
    gates: GatesOpt = Path("quality_gates.yaml"),
    source: FromOpt = None,
    rev: Annotated[
        int | None, typer.Option("--rev", help="The staging rev (default: staging's head).")
    ] = None,
    env: InOpt = None,
    agent: Annotated[
        str | None, typer.Option("--agent", help="Judge only this agent's staging runs.")
    ] = None,
) -> None:
    """Publish staging snapshot --rev to production when the gates pass on the staging
    runs recorded under that rev (same content hash; message names the source). A
    failing gate: exit 1, nothing written."""
    from flagmw.rollout.promote import promote_snapshot

    def act(src: Store, dst: Store, spec: list[Gate], registry: FlagRegistry | None) -> Any:
        return promote_snapshot(
            src, dst, spec, actor=g.actor, rev=rev, environment=env, agent=agent,
            registry=registry,
        )  # fmt: skip

    _run(g, source, to, gates, act)


@with_session(exclude=_NO)
def version(
    g: Session,
    agent: Annotated[str, typer.Argument(help="The agent.")],
    name: Annotated[str, typer.Argument(help="The version, e.g. v1.3.3.")],
    to: ToOpt,
    gates: GatesOpt = Path("quality_gates.yaml"),
    source: FromOpt = None,
    env: InOpt = None,
) -> None:
    """Publish the staging version AGENT NAME (the immutable artifact, same content
    hash) to production's rollout store when the gates pass on its staging runs and
    its values fit production's registry. A failing gate: exit 1, nothing written."""
    from flagmw.rollout.promote import promote_version

    def act(src: Store, dst: Store, spec: list[Gate], registry: FlagRegistry | None) -> Any:
        return promote_version(
            src, dst, agent, name, spec, actor=g.actor, environment=env, registry=registry
        )

    _run(g, source, to, gates, act)


def register(app: typer.Typer) -> None:
    """Add the ``promote`` group (snapshot, version) to ``app``."""
    group = typer.Typer(
        name="promote",
        help="Promote a snapshot or an agent version from staging to production, gated.",
        no_args_is_help=True,
    )
    for command in (snapshot, version):
        group.command(epilog=EXIT_CODES_EPILOG)(command)
    app.add_typer(group, name="promote")
