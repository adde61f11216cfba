"""The finding codes (:data:`CODES`) and one finding (:class:`LintFinding`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["CODES", "LintFinding", "make_finding", "sort_key"]

#: Finding codes and what they mean (stable names, shown by ``flagmw lint --help``).
CODES: Mapping[str, str] = {
    "FM000": "file cannot be read or parsed",
    "FM001": "feature toggle read from a process environment variable",
    "FM002": "flag key used in code is not defined in the registry",
    "FM003": "flag is past its expires date",
    "FM004": "flag is not referenced by any linted file (lint --unused)",
}


@dataclass(frozen=True, slots=True)
class LintFinding:
    """One problem found by :func:`lint_paths` / :func:`lint_source`.

    Attributes:
        path: the file, as reached from the linted path (or the registry's source for
            the "expired and unread" ``FM003``).
        line: 1-based line; 0 when the finding is about the whole file.
        col: 1-based column in characters; 0 when unknown.
        code: ``FM000`` … ``FM004`` (see :data:`CODES`).
        message: what is wrong, naming the variable or flag key.
        suggestion: what to do instead (may be empty).
        severity: ``"error"`` (the CLI exits 1) or ``"warning"``.
    """

    path: str
    line: int
    col: int
    code: str
    message: str
    suggestion: str
    severity: str

    def to_dict(self) -> dict[str, Any]:
        """The finding as JSON primitives (for ``flagmw lint --json``)."""
        return asdict(self)

    def __str__(self) -> str:
        """``"path:line:col CODE message (suggestion)"``."""
        text = f"{self.path}:{self.line}:{self.col} {self.code} {self.message}"
        if self.suggestion:
            text += f" ({self.suggestion})"
        return text


def make_finding(
    path: str, line: int, col: int, code: str, message: str, suggestion: str
) -> LintFinding:
    severity = "warning" if code in ("FM003", "FM004") else "error"
    return LintFinding(path, line, col, code, message, suggestion, severity)


def sort_key(f: LintFinding) -> tuple[str, int, int, str, str]:
    return (f.path, f.line, f.col, f.code, f.message)
