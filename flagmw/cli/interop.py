"""``flagmw export`` and ``flagmw import``: flag files of other systems (flagd).

What a format cannot express is listed — on stderr, or in the ``--json`` document —
never dropped silently; ``--strict`` turns any loss into an error (exit 1, nothing
written). See ``docs/flagd.md``.
"""

from __future__ import annotations

import os
import tempfile
import time
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from flagmw.cli.errors import EXIT_CODES_EPILOG, CliError, ProblemsError
from flagmw.cli.options import with_session
from flagmw.cli.output import write_lines
from flagmw.cli.session import Session

if TYPE_CHECKING:  # pragma: no cover
    from flagmw.errors import Problem

__all__ = ["register"]


class Format(StrEnum):
    """The file formats flagmw reads and writes besides its own."""

    FLAGD = "flagd"


FormatOpt = Annotated[
    Format, typer.Option("--format", help="The other system's format.", case_sensitive=False)
]
StrictOpt = Annotated[
    bool,
    typer.Option("--strict", help="Fail (exit 1, nothing written) when anything would be lost."),
]
OutputOpt = Annotated[
    Path | None,
    typer.Option("--output", "-o", help="Write to FILE (default: stdout).", show_default=False),
]


def _write(path: Path, text: str, force: bool) -> None:
    """Write ``text`` to ``path`` atomically (a temporary file renamed over it)."""
    if path.exists() and not force:
        raise CliError(f"{path} exists; pass --force to overwrite it")
    folder = path.parent if str(path.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=folder)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except OSError as exc:
        raise CliError(f"cannot write {path}: {exc.strerror or exc}") from None


def _report(losses: list[Problem], strict: bool, what: str, source: str) -> None:
    if strict and any(p.severity == "warning" for p in losses):
        raise ProblemsError(
            [p for p in losses if p.severity == "warning"],
            source,
            f"--strict: {what} would lose information; nothing was written",
        )


def _loss_lines(losses: list[Problem]) -> list[str]:
    return [f"flagmw: {'loss' if p.severity == 'warning' else 'note'}: {p}" for p in losses]


@with_session(exclude=("registry", "actor", "max_ttl"))
def export(
    g: Session,
    format_: FormatOpt = Format.FLAGD,
    rev: Annotated[
        int | None,
        typer.Option("--rev", help="The snapshot rev (default: the head).", show_default=False),
    ] = None,
    output: OutputOpt = None,
    strict: StrictOpt = False,
    force: Annotated[bool, typer.Option("--force", help="Overwrite --output.")] = False,
) -> None:
    """Write a snapshot rev of the store as another system's flag file.

    --format flagd: a flagd flag-definition file for --environment (default production),
    so services in other languages read the same flags through their OpenFeature flagd
    providers. What flagd cannot express (overrides and kills, flagmw-salted bucketing,
    JSON schemas …) is listed on stderr (in the document with --json).
    """
    import json

    from flagmw.core.registry import FlagRegistry
    from flagmw.core.source import Locator
    from flagmw.interop.flagd_export import export_flagd

    store = g.open_store()
    try:
        record = store.get_snapshot(rev)
        now = time.time()
        overrides = [o for o in store.list_overrides() if o.active_at(now)]
    finally:
        store.close()
    number = record.info.rev
    registry = FlagRegistry.from_dict(
        record.registry, locator=Locator(f"{store.name} rev {number} registry")
    )
    result = export_flagd(
        registry,
        record.document,
        environment=g.environment,
        rev=number,
        overrides=[o for o in overrides if o.environment is None or o.environment == g.environment],
    )
    _report(result.losses, strict, "the export", f"rev {number}")
    text = json.dumps(result.document, indent=2, ensure_ascii=False) + "\n"
    if output is not None:
        _write(output, text, force)
    doc: dict[str, Any] = {
        "format": format_.value,
        "rev": number,
        "environment": g.environment,
        "output": str(output) if output is not None else None,
        "flags": len(result.document["flags"]),
        "losses": [p.to_dict() for p in result.losses],
    }
    if g.json:
        if output is None:
            doc["document"] = result.document
        g.emit(doc, lambda out: None)
        return
    if output is None:
        write_lines([text.rstrip("\n")])
    else:
        write_lines([f"wrote {output}: rev {number} ({g.environment}), {doc['flags']} flags"])
    write_lines(_loss_lines(result.losses), stderr=True)


@with_session(exclude=("store", "registry", "actor", "max_ttl", "environment"))
def import_(
    g: Session,
    file: Annotated[Path, typer.Argument(help="The file to import.")],
    format_: FormatOpt = Format.FLAGD,
    output: OutputOpt = None,
    strict: StrictOpt = False,
    force: Annotated[bool, typer.Option("--force", help="Overwrite --output.")] = False,
) -> None:
    """Turn another system's flag file into a flagmw flags file (registry + snapshot).

    --format flagd: a flagd flag-definition file (or the OpenFeature conformance
    test-flags.json). The result passes `flagmw validate`; what cannot be imported
    (unsupported JsonLogic, disabled flags, CEL …) is listed on stderr (in the document
    with --json). The file is untrusted: size limits apply and a $ref never reads a file
    or the network.
    """
    import yaml

    from flagmw.interop.flagd_import import import_flagd

    result = import_flagd(file)
    _report(result.losses, strict, "the import", str(file))
    text = f"# imported from {file.name} ({format_.value}) by flagmw import\n" + yaml.safe_dump(
        result.document, sort_keys=False, allow_unicode=True
    )
    if output is not None:
        _write(output, text, force)
    doc: dict[str, Any] = {
        "format": format_.value,
        "file": str(file),
        "output": str(output) if output is not None else None,
        "flags": len(result.document["flags"]),
        "losses": [p.to_dict() for p in result.losses],
    }
    if g.json:
        if output is None:
            doc["document"] = result.document
        g.emit(doc, lambda out: None)
        return
    if output is None:
        write_lines(text.rstrip("\n").splitlines())
    else:
        write_lines([f"wrote {output}: {doc['flags']} flags (check it: flagmw validate {output})"])
    write_lines(_loss_lines(result.losses), stderr=True)


def register(app: typer.Typer) -> None:
    """Add ``export`` and ``import`` to ``app``."""
    app.command("export", epilog=EXIT_CODES_EPILOG)(export)
    app.command("import", epilog=EXIT_CODES_EPILOG)(import_)
