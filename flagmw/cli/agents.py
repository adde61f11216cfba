"""``flagmw agent`` commands: publish, versions, diff (agent versions as artifacts)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from flagmw.cli.errors import EXIT_CODES_EPILOG, ProblemsError
from flagmw.cli.options import AuthorOpt, with_session
from flagmw.cli.output import format_time, format_value, table
from flagmw.cli.session import Session
from flagmw.errors import ValidationError

if TYPE_CHECKING:  # pragma: no cover
    from rich.console import Console

__all__ = ["register"]


@with_session(exclude=("max_ttl",))
def publish(
    g: Session,
    file: Annotated[Path, typer.Argument(help="The version file, e.g. agents/a/v1.3.3.yaml.")],
    author: AuthorOpt = None,
    message: Annotated[
        str | None, typer.Option("--message", "-m", help="Why (default: the file's message).")
    ] = None,
) -> None:
    """Validate FILE against the registry and publish it as an immutable agent version.

    Publishing the same content again is a no-op; the same name with other content
    exits 1 (versions are immutable: publish a new version).
    """
    from dataclasses import replace

    from flagmw.rollout.store import open_rollout_store
    from flagmw.rollout.versions import load_version

    with g.client() as client:
        try:
            version = load_version(client.registry, file)
        except ValidationError as exc:
            raise ProblemsError(exc.problems, exc.source, "nothing was published") from None
        if message:
            version = replace(version, message=message)
        rs = open_rollout_store(client.store)
        try:
            stored = rs.publish_version(version, author=author or g.actor, at=client.clock())
        finally:
            rs.close()
    doc = stored.to_dict()
    g.emit_lines(
        doc,
        [
            f"published {stored.ref} ({len(stored.values)} flags), "
            f"content hash {stored.content_hash}"
        ],
    )


@with_session(exclude=("max_ttl",))
def versions(
    g: Session,
    agent: Annotated[str | None, typer.Argument(help="Only this agent's versions.")] = None,
) -> None:
    """List the published agent versions, oldest first."""
    from flagmw.rollout.store import open_rollout_store

    store = g.open_store()
    try:
        rs = open_rollout_store(store)
        found = rs.list_versions(agent)
        rs.close()
    finally:
        store.close()

    def render(out: Console) -> None:
        t = table("agent", "version", "published", "author", "flags", "prompt", "message")
        for v in found:
            prompt = f"{v.prompt['version']} {v.prompt['hash'][7:19]}" if v.prompt else "-"
            t.add_row(
                v.agent,
                v.version,
                format_time(v.created_at),
                v.author,
                str(len(v.values)),
                prompt,
                v.message,
            )
        out.print(t)

    g.emit([v.to_dict() for v in found], render)


@with_session(exclude=("max_ttl",))
def diff(
    g: Session,
    old: Annotated[str, typer.Argument(help="The older version, e.g. v1.3.2.")],
    new: Annotated[str, typer.Argument(help="The newer version, e.g. v1.3.3.")],
    agent: Annotated[
        str | None,
        typer.Option("--agent", help="The agent (needed when several have these versions)."),
    ] = None,
) -> None:
    """Show what changed between two published versions of an agent."""
    from flagmw.cli.errors import CliError
    from flagmw.rollout.store import open_rollout_store
    from flagmw.rollout.versions import diff_versions

    store = g.open_store()
    try:
        rs = open_rollout_store(store)
        if agent is None:
            agents = {v.agent for v in rs.list_versions() if v.version in (old, new)}
            if len(agents) != 1:
                rs.close()
                raise CliError(
                    f"name the agent with --agent (versions {old}/{new} belong to "
                    f"{', '.join(sorted(agents)) or 'no agent'})"
                )
            agent = agents.pop()
        a, b = rs.get_version(agent, old), rs.get_version(agent, new)
        rs.close()
    finally:
        store.close()
    d = diff_versions(a, b)
    doc = {
        "agent": agent,
        "old": old,
        "new": new,
        "changed": {k: {"old": o, "new": n} for k, (o, n) in d.changed.items()},
        "added": d.added,
        "removed": d.removed,
        "prompt": None if d.prompt is None else {"old": d.prompt[0], "new": d.prompt[1]},
    }
    lines = [f"{agent}: {old} → {new}"]
    for k, (o, n) in d.changed.items():
        lines.append(f"  ~ {k}: {format_value(o)} → {format_value(n)}")
    for k, v in d.added.items():
        lines.append(f"  + {k}: {format_value(v)}")
    for k, v in d.removed.items():
        lines.append(f"  - {k}: {format_value(v)}")
    if d.prompt is not None:
        o, n = d.prompt
        lines.append(f"  ~ prompt: {_prompt(o)} → {_prompt(n)}")
    if not d:
        lines.append("  (no difference)")
    g.emit_lines(doc, lines)


def _prompt(p: dict[str, str] | None) -> str:
    return "-" if not p else f"{p['version']} ({p['hash'][7:19]})"


def register(app: typer.Typer) -> None:
    """Add the ``agent`` group (publish, versions, diff) to ``app``."""
    agent = typer.Typer(
        name="agent", help="Agent versions: publish, list, diff.", no_args_is_help=True
    )
    for command in (publish, versions, diff):
        agent.command(epilog=EXIT_CODES_EPILOG)(command)
    app.add_typer(agent, name="agent")
