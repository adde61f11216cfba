"""``flagmw`` commands on snapshots: init, validate, publish, history, diff, rollback."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from flagmw.cli.errors import (
    EXIT_CODES_EPILOG,
    EXIT_PROBLEMS,
    CliError,
    ProblemsError,
    summary_line,
)
from flagmw.cli.options import AuthorOpt, MessageOpt, ParentOpt, with_session
from flagmw.cli.output import format_time, format_value, problems_table, table, write_lines
from flagmw.cli.session import Session
from flagmw.errors import FlagmwError, Problem, ValidationError

if TYPE_CHECKING:  # pragma: no cover
    from rich.console import Console

    from flagmw.stores.base import SnapshotInfo

__all__ = ["register"]


@with_session(exclude=("registry", "actor", "max_ttl"))
def init(
    g: Session,
    path: Annotated[
        Path, typer.Argument(help="The folder to write flags.yaml into.", show_default=True)
    ] = Path("."),
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite an existing flags.yaml.")
    ] = False,
    no_flags_file: Annotated[
        bool,
        typer.Option("--no-flags-file", help="Only create the store; write no flags.yaml."),
    ] = False,
) -> None:
    """Create the store (--store; the only command that creates one) and write a starter
    flags.yaml (registry + first snapshot, commented) into PATH.

    An existing store is kept as it is, and so is an existing flags.yaml unless --force:
    running init again is harmless.
    """
    from flagmw.cli.starter import starter_flags_yaml

    target = path / "flags.yaml"
    wrote = False
    flags = 0
    if not no_flags_file and (force or not target.exists()):
        try:
            path.mkdir(parents=True, exist_ok=True)
            target.write_text(starter_flags_yaml(), encoding="utf-8")
        except OSError as exc:
            raise CliError(f"cannot write {target}: {exc.strerror or exc}") from None
        wrote = True
        # The starter must always be valid; checking it here catches a broken template.
        from flagmw.core.registry import FlagRegistry
        from flagmw.core.snapshot import validate_document

        registry = FlagRegistry.from_yaml(target)
        validate_document(target, registry)
        flags = len(registry)
    existed = _store_exists(g)
    store = g.open_store(create=True)
    try:
        head = store.head()
        name = store.name
    finally:
        store.close()
    doc = {
        "flags_file": str(target) if wrote else None,
        "flags": flags,
        "store": name,
        "store_created": not existed,
        "head_rev": head.rev if head is not None else None,
    }

    def render(out: Console) -> None:
        if wrote:
            out.print(f"wrote {target} ({flags} flags, valid)")
        elif not no_flags_file:
            out.print(f"kept {target} (pass --force to overwrite it)")
        if existed:
            rev = "no snapshot yet" if head is None else f"head rev {head.rev}"
            out.print(f"store {name} exists ({rev}); left as it is")
        else:
            out.print(f"created store {name}")
        if head is None:
            out.print(f"next: flagmw validate {target}")
            out.print(f'      flagmw publish {target} --message "first snapshot"')

    g.emit(doc, render)


def _store_exists(g: Session) -> bool:
    """Whether the store init is about to open exists already (for the message)."""
    try:
        store = g.open_store(create=False)
    except (CliError, FlagmwError):
        return False
    store.close()
    return True


@with_session()
def validate(
    g: Session,
    file: Annotated[
        Path, typer.Argument(help="The flags file (YAML or JSON).", show_default=True)
    ] = Path("flags.yaml"),
) -> None:
    """Validate a flags file: its registry (flags:) and its snapshot.

    Prints every problem with file:line, document path, message and hint. Warnings (e.g.
    expired flags) are shown but do not fail (exit 0); errors exit 1.
    """
    from flagmw.core.snapshot import validate_document
    from flagmw.core.source import load_document

    source = str(file)
    problems: list[Problem] = []
    where = ""
    content_hash: str | None = None
    try:
        data, locator = load_document(file)
        registry, where = g.find_registry_without_store(document=(data, locator))
        if registry is None:
            raise CliError(
                f"{source} has no flags: section and no registry was found: pass "
                "--registry FILE or set FLAGMW_REGISTRY"
            )
        g.note(f"registry: {where} ({len(registry)} flags)")
        snapshot = validate_document(data, registry, locator=locator)
        problems.extend(snapshot.warnings)
        content_hash = snapshot.content_hash
    except ValidationError as exc:
        problems.extend(exc.problems)
    errors = [p for p in problems if p.severity == "error"]
    warnings = [p for p in problems if p.severity != "error"]
    doc = {
        "file": source,
        "valid": not errors,
        "registry": where,
        "content_hash": content_hash,
        "errors": len(errors),
        "warnings": len(warnings),
        "problems": [p.to_dict() for p in problems],
    }

    def render(out: Console) -> None:
        if problems:
            out.print(problems_table(problems))
        if not errors:
            extra = f", {len(warnings)} warning(s)" if warnings else ""
            out.print(f"{source}: valid{extra} (content hash {content_hash})")

    g.emit(doc, render)
    if errors:
        write_lines([f"flagmw: error: {summary_line(problems, source)}"], stderr=True)
        raise typer.Exit(EXIT_PROBLEMS)


# -- snapshots ------------------------------------------------------------------------------


@with_session()
def publish(
    g: Session,
    file: Annotated[Path, typer.Argument(help="The flags file to publish.")],
    message: MessageOpt,
    author: AuthorOpt = None,
    parent: ParentOpt = None,
    overlays: Annotated[
        bool,
        typer.Option(
            "--overlays",
            help="FILE holds only tenants: and/or routes: (an entry null removes it): "
            "publish just those overlays on top of the head, leaving everything else.",
        ),
    ] = False,
    canary: Annotated[
        str | None,
        typer.Option(
            "--canary",
            help="Publish as a config canary: serve the new rev to these growing shares "
            "(percent, e.g. 1,10,100) of --unit under guardrails, rolling back "
            "automatically; other runs keep the current head.",
        ),
    ] = None,
    unit: Annotated[
        str, typer.Option("--unit", help="--canary: sticky unit: tenant, user, thread or run.")
    ] = "tenant",
    min_runs: Annotated[
        int, typer.Option("--min-runs", help="--canary: candidate runs a stage needs.")
    ] = 200,
    min_duration: Annotated[
        str, typer.Option("--min-duration", help="--canary: shortest stage, e.g. 30m (0: none).")
    ] = "30m",
    guardrail: Annotated[
        list[str] | None,
        typer.Option(
            "--guardrail",
            help="--canary: METRIC <= VALUE | baseline + POINTS | baseline * FACTOR "
            "(repeatable; default: the built-in set).",
        ),
    ] = None,
) -> None:
    """Validate FILE and publish its snapshot as the next rev.

    The registry is --registry, else the file's flags: section, else the usual search.
    Nothing is published unless everything is valid (exit 1 with every problem); a stale
    --parent exits 3. With --overlays only the tenants and routes FILE names are
    validated and written (one tenant of 100k in milliseconds). With --canary the rev is
    rolled out as rollout config-rev-N (`flagmw rollout status|tick|advance|abort`); a
    publish while a canary is in progress exits 3.
    """
    from flagmw.core.source import load_document

    kwargs: dict[str, Any] = {} if parent is None else {"parent_rev": parent}
    if canary is not None and overlays:
        raise CliError("--canary publishes a whole document; it cannot be combined with --overlays")
    rollout = None
    try:
        data, locator = load_document(file)
        with g.client(document=(data, locator)) as client:
            if canary is not None:
                started = _start_canary(
                    g,
                    client,
                    file,
                    canary,
                    unit,
                    min_runs,
                    min_duration,
                    guardrail,
                    author or g.actor,
                    message,
                )
                result, rollout = started.publish, started.rollout
            else:
                publish_one = client.publish_overlays if overlays else client.publish
                result = publish_one(file, author=author or g.actor, message=message, **kwargs)
    except ValidationError as exc:
        raise ProblemsError(exc.problems, exc.source, "nothing was published") from None

    def render(out: Console) -> None:
        if result.published:
            out.print(
                f"published rev {result.rev} ({_parent(result.parent_rev)}), "
                f"content hash {result.content_hash}"
            )
        else:
            out.print(
                f"no change: the document equals head rev {result.rev}; nothing was published"
            )
        if rollout is not None:
            out.print(
                f"canary: rev {result.rev} over rev {result.parent_rev}, rollout {rollout.name} "
                f"at stage {rollout.share:g} % of {rollout.unit}s (stages "
                f"{','.join(f'{s:g}' for s in rollout.stages)}); other runs keep rev "
                f"{result.parent_rev}"
            )
        if result.warnings:
            out.print(problems_table(result.warnings))

    doc = result.to_dict()
    if rollout is not None:
        doc["canary"] = rollout.to_dict()
    g.emit(doc, render)


def _start_canary(
    g: Session,
    client: Any,
    file: Path,
    stages: str,
    unit: str,
    min_runs: int,
    min_duration: str,
    guardrail: list[str] | None,
    author: str,
    message: str,
) -> Any:
    """`publish --canary`: publish the canary rev and start its rollout."""
    from flagmw.rollout.canary import start_canary
    from flagmw.rollout.controller import RolloutController
    from flagmw.rollout.guardrails import parse_guardrail
    from flagmw.rollout.store import open_rollout_store

    rails = [parse_guardrail(t) for t in guardrail or ()]
    rs = open_rollout_store(client.store)
    try:
        ctl = RolloutController(rs, flags=client.store)
        return start_canary(
            client,
            file,
            stages=stages,
            unit=unit,
            min_duration=min_duration,
            min_runs=min_runs,
            guardrails=rails,
            author=author,
            message=message,
            controller=ctl,
        )
    finally:
        rs.close()


def _rev(rev: int | None) -> str:
    return "-" if rev is None else str(rev)


def _parent(rev: int | None) -> str:
    return "the first rev" if rev is None else f"parent rev {rev}"


def _info_row(info: SnapshotInfo) -> list[str]:
    action = info.action
    if info.rollback_of is not None:
        action = f"{'canary over' if action == 'canary' else 'rollback of'} {info.rollback_of}"
    return [
        str(info.rev),
        _rev(info.parent_rev),
        format_time(info.created_at),
        info.author,
        action,
        info.message,
        info.content_hash.removeprefix("sha256:")[:12],
    ]


@with_session()
def history(
    g: Session,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="How many revs.")] = 20,
) -> None:
    """The most recent snapshot revs, newest first."""
    from flagmw.client.arguments import check_limit

    store = g.open_store()
    try:
        infos = store.history(check_limit("history", limit))
    finally:
        store.close()

    def render(out: Console) -> None:
        if not infos:
            out.print("nothing has been published yet")
            return
        t = table("rev", "parent", "created (UTC)", "author", "action", "message", "hash")
        for info in infos:
            t.add_row(*_info_row(info))
        out.print(t)

    g.emit({"snapshots": [i.to_dict() for i in infos]}, render)


@with_session()
def diff(
    g: Session,
    rev_a: Annotated[int, typer.Argument(help="The older rev.")],
    rev_b: Annotated[int, typer.Argument(help="The newer rev.")],
) -> None:
    """What changed from REV_A to REV_B: path, before, after."""
    with g.client(registry="stored") as client:
        changes = client.diff(rev_a, rev_b)
    doc = {
        "from": rev_a,
        "to": rev_b,
        "changes": [
            {"path": c.path, "kind": c.kind, "before": c.before, "after": c.after} for c in changes
        ],
    }

    def render(out: Console) -> None:
        if not changes:
            out.print(f"rev {rev_a} and rev {rev_b} have the same content")
            return
        t = table("path", "change", "before", "after", title=f"rev {rev_a} → rev {rev_b}")
        for c in changes:
            t.add_row(
                c.path,
                c.kind,
                "-" if c.kind == "added" else format_value(c.before),
                "-" if c.kind == "removed" else format_value(c.after),
            )
        out.print(t)

    g.emit(doc, render)


@with_session()
def rollback(
    g: Session,
    rev: Annotated[int, typer.Argument(help="The rev whose content to publish again.")],
    message: MessageOpt,
    author: AuthorOpt = None,
    parent: ParentOpt = None,
) -> None:
    """Publish the content of an older REV as a new rev."""
    with g.client() as client:
        kwargs: dict[str, Any] = {} if parent is None else {"parent_rev": parent}
        result = client.rollback(rev, author=author or g.actor, message=message, **kwargs)

    def render(out: Console) -> None:
        if result.published:
            out.print(
                f"published rev {result.rev} with the content of rev {rev} "
                f"(parent rev {_rev(result.parent_rev)}), content hash {result.content_hash}"
            )
        else:
            out.print(f"no change: head rev {result.rev} already has the content of rev {rev}")

    g.emit({**result.to_dict(), "rollback_of": rev}, render)


def register(app: typer.Typer) -> None:
    """Add the snapshot commands to ``app``."""
    for command in (init, validate, publish, history, diff, rollback):
        app.command(epilog=EXIT_CODES_EPILOG)(command)
