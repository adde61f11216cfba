"""Linting one module's source: parse, analyze, turn what was found into findings,
apply ``noqa`` comments (:func:`lint_source`)."""

from __future__ import annotations

import ast
import datetime as _dt
import re
import warnings
from collections.abc import Sequence

from flagmw.core.registry import FlagRegistry
from flagmw.lint.analyzer import Analyzer
from flagmw.lint.findings import LintFinding, make_finding, sort_key
from flagmw.lint.noqa import ALL_CODES, noqa_lines
from flagmw.lint.toggles import env_suggestion

__all__ = ["check_source", "lint_source"]


def _char_col(lines: Sequence[str], line: int, byte_col: int) -> int:
    """1-based character column of an AST ``col_offset`` (which counts UTF-8 bytes)."""
    if 1 <= line <= len(lines):
        return len(lines[line - 1].encode("utf-8")[:byte_col].decode("utf-8", "replace")) + 1
    return byte_col + 1


def check_source(
    source: str,
    path: str,
    registry: FlagRegistry | None,
    today: _dt.date,
    read_keys: set[str] | None = None,
) -> list[LintFinding]:
    try:
        with warnings.catch_warnings():
            # invalid escape sequences and the like are not lint's business
            warnings.simplefilter("ignore")
            tree = ast.parse(source, filename=path)
    except SyntaxError as exc:
        line = exc.lineno or 0
        return [
            make_finding(
                path,
                line,
                (exc.offset or 0) if line else 0,
                "FM000",
                f"cannot parse: {exc.msg}",
                "fix the syntax error; nothing else in this file was checked",
            )
        ]
    except (ValueError, RecursionError, MemoryError) as exc:  # e.g. NUL bytes, deep nesting
        return [make_finding(path, 0, 0, "FM000", f"cannot parse: {exc}", "")]
    analyzer = Analyzer(tree)
    analyzer.visit(tree)
    lines = re.split(r"\r\n|\r|\n", source)
    out: list[LintFinding] = []
    for r in analyzer.env_reads:
        out.append(
            make_finding(
                path,
                r.line,
                _char_col(lines, r.line, r.col),
                "FM001",
                f"feature toggle {r.name!r} read from the process environment ({r.form})",
                env_suggestion(r.name, registry),
            )
        )
    if registry is not None:
        expired = {f.key: f.expires for f in registry.expired(today)}
        for u in analyzer.uses:
            col = _char_col(lines, u.line, u.col)
            if read_keys is not None:
                read_keys.add(u.key)
            if u.key not in registry:
                close = registry.suggest(u.key)
                hint = (
                    "did you mean " + " or ".join(repr(k) for k in close) + "?"
                    if close
                    else f"define {u.key!r} in the registry ({registry.source}) or fix the key"
                )
                out.append(
                    make_finding(
                        path,
                        u.line,
                        col,
                        "FM002",
                        f"unknown flag key {u.key!r} in {u.form}: "
                        f"the registry ({registry.source}) does not define it",
                        hint,
                    )
                )
            elif u.key in expired:
                out.append(
                    make_finding(
                        path,
                        u.line,
                        col,
                        "FM003",
                        f"flag {u.key!r} expired on {expired[u.key]} but {u.form} still reads it",
                        f"remove this read and then the flag from {registry.source}, "
                        "or move its expires date",
                    )
                )
    noqa = noqa_lines(source) if out else {}
    kept = [
        f
        for f in out
        if not (codes := noqa.get(f.line)) or (codes != ALL_CODES and f.code not in codes)
    ]
    return sorted(set(kept), key=sort_key)


def lint_source(
    source: str,
    path: str = "<string>",
    registry: FlagRegistry | None = None,
    *,
    today: _dt.date | None = None,
) -> list[LintFinding]:
    """Lint one Python module given as text.

    Args:
        source: the module's source code.
        path: the name used in findings.
        registry: enables ``FM002`` (unknown keys) and ``FM003`` (reads of expired flags).
        today: the date ``expires`` is compared with (default: today, local time).

    Returns:
        The findings, sorted by path, line and column. A module that does not parse gives
        one ``FM000`` finding. The "expired flag read nowhere" ``FM003`` needs the whole
        code base and only comes from :func:`lint_paths`.
    """
    return check_source(source, path, registry, today or _dt.date.today())
