"""Linting files and directories (:func:`lint_paths`): walking the tree, reading files
in their declared encoding, and the expired flags that no linted file reads."""

from __future__ import annotations

import datetime as _dt
import io
import os
import tokenize
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from flagmw.core.registry import FlagRegistry
from flagmw.core.source import load_document
from flagmw.errors import FlagmwError
from flagmw.lint.check import check_source
from flagmw.lint.findings import LintFinding, make_finding, sort_key

__all__ = ["SKIP_DIRS", "lint_paths"]

#: Directory names never entered when a directory is linted (hidden directories,
#: those starting with ``.``, are skipped too).
SKIP_DIRS: frozenset[str] = frozenset(
    {".venv", "venv", "site-packages", "__pycache__", ".git", "node_modules"}
)


def _walk(root: Path) -> Iterator[Path]:
    """``*.py`` files under ``root``, sorted, skipping :data:`SKIP_DIRS` and hidden
    directories (``os.walk`` does not follow directory symlinks, so no cycles)."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not d.startswith("."))
        for name in sorted(filenames):
            if name.endswith(".py"):
                yield Path(dirpath) / name


def _read(path: Path) -> str:
    with path.open("rb") as fh:
        data = fh.read()
    # honour a PEP 263 coding cookie, as the interpreter does
    encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    return data.decode(encoding)


def _registry_line(registry: FlagRegistry, key: str) -> int:
    """The line of ``key`` in the registry's YAML file (0 when not a readable file)."""
    if not os.path.isfile(registry.source):
        return 0
    try:
        data, locator = load_document(registry.source)
    except FlagmwError:
        return 0
    base: tuple[str, ...] = ("flags",) if isinstance(data, Mapping) and "flags" in data else ()
    where = locator((*base, key))
    _, _, line = where.rpartition(":")
    return int(line) if line.isdigit() else 0


def lint_paths(
    paths: Sequence[str | os.PathLike[str]],
    registry: FlagRegistry | None = None,
    *,
    today: _dt.date | None = None,
    unused: bool = False,
) -> list[LintFinding]:
    """Lint files and directories (directories: every ``*.py`` below, skipping
    :data:`SKIP_DIRS` and hidden directories; files named explicitly are linted
    whatever their suffix).

    Args:
        paths: files and directories. Finding paths are as reached from these
            (``src`` → ``src/app/tools.py``); a file reached twice is linted once.
        registry: enables ``FM002`` and ``FM003``; with it, each expired flag that no
            linted file reads gives one ``FM003`` at ``registry.source`` (at the flag's
            line when the source is a YAML/JSON file).
        today: the date ``expires`` is compared with (default: today, local time).
        unused: with a registry, also one ``FM004`` warning (at ``registry.source``) per
            flag that no linted file mentions — neither read in a way the analyzer
            recognises nor written as a string literal (``"key"`` or ``'key'``): the
            keys nobody dares delete (``flagmw lint --unused``).

    Returns:
        The findings, sorted by path, line and column. Never raises for bad input: a
        path that does not exist or a file that cannot be read or parsed gives one
        ``FM000`` (as ruff reports ``E902``), and the other files are still checked.
    """
    if isinstance(paths, str | os.PathLike):  # a lone path, not a sequence of them
        paths = [paths]
    day = today or _dt.date.today()
    findings: list[LintFinding] = []
    read_keys: set[str] = set()
    mentioned: set[str] = set()
    keys = registry.keys() if unused and registry is not None else []
    seen: set[Path] = set()
    for raw in paths:
        root = Path(raw)
        if root.is_dir():
            files: Iterator[Path] = _walk(root)
        elif root.exists():
            files = iter([root])
        else:
            findings.append(
                make_finding(
                    str(root), 0, 0, "FM000", "no such file or directory", "check the path"
                )
            )
            continue
        for file in files:
            real = file.resolve()
            if real in seen:
                continue
            seen.add(real)
            try:
                source = _read(file)
            except (OSError, UnicodeDecodeError, SyntaxError) as exc:
                # SyntaxError: detect_encoding on a bad coding cookie
                findings.append(make_finding(str(file), 0, 0, "FM000", f"cannot read: {exc}", ""))
                continue
            findings.extend(check_source(source, str(file), registry, day, read_keys))
            mentioned.update(k for k in keys if f'"{k}"' in source or f"'{k}'" in source)
    if registry is not None:
        for flag in registry.expired(day):
            if flag.key in read_keys:
                continue
            findings.append(
                make_finding(
                    registry.source,
                    _registry_line(registry, flag.key),
                    0,
                    "FM003",
                    f"flag {flag.key!r} expired on {flag.expires} and no linted file reads it",
                    "delete it from the registry",
                )
            )
    for key in keys:
        if key in read_keys or key in mentioned:
            continue
        findings.append(
            make_finding(
                registry.source if registry is not None else "",
                _registry_line(registry, key) if registry is not None else 0,
                0,
                "FM004",
                f"flag {key!r} is not referenced by any linted file",
                "delete it from the registry once no deployed code reads it",
            )
        )
    return sorted(findings, key=sort_key)
