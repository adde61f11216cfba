"""Validation problems shared by registry and snapshot validation: pydantic errors
mapped to located :class:`~flagmw.errors.Problem` objects, and "did you mean"
suggestions (difflib). Imports no pydantic: only a caller that already has a pydantic
error maps it here."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from flagmw.core.source import DocPath, Locator
from flagmw.errors import Problem

if TYPE_CHECKING:  # pragma: no cover - pydantic is imported by whoever has its errors
    import pydantic

__all__ = ["did_you_mean", "pydantic_problems", "suggest"]


def suggest(word: str, candidates: Iterable[str], n: int = 2) -> list[str]:
    """Close matches of ``word`` among ``candidates`` (difflib ratio ≥ 0.6)."""
    import difflib  # on first use: most processes never suggest anything

    return difflib.get_close_matches(str(word), list(candidates), n=n, cutoff=0.6)


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """``"did you mean 'x'?"`` or an empty string."""
    matches = suggest(word, candidates)
    if not matches:
        return ""
    return "did you mean " + " or ".join(repr(m) for m in matches) + "?"


def pydantic_problems(
    exc: pydantic.ValidationError,
    locator: Locator,
    base: DocPath,
    model: type[pydantic.BaseModel],
    *,
    what: str,
) -> list[Problem]:
    """Turn a pydantic ``ValidationError`` into located :class:`Problem` objects.

    ``extra_forbidden`` errors become ``unknown_field`` problems with a "did you
    mean" hint drawn from the model's field names and aliases.
    """
    fields: list[str] = []
    for name, info in model.model_fields.items():
        fields.append(info.alias or name)
    problems = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        path = (*base, *loc)
        kind = err["type"]
        if kind == "extra_forbidden":
            field = str(loc[-1]) if loc else "?"
            hint = did_you_mean(field, fields) or f"allowed fields: {', '.join(sorted(fields))}"
            problems.append(
                locator.problem(path, f"unknown {what} field {field!r}", hint, "unknown_field")
            )
        elif kind == "missing":
            field = str(loc[-1]) if loc else "?"
            problems.append(
                locator.problem(
                    path, f"missing required {what} field {field!r}", "add it", "missing_field"
                )
            )
        else:
            got = err.get("input")
            shown = repr(got) if not isinstance(got, dict | list) else type(got).__name__
            problems.append(
                locator.problem(path, f"{err['msg'].lower()}, got {shown}", "", "wrong_type")
            )
    return problems
