"""``# flagmw: noqa [CODES]`` comments: which findings a line silences."""

from __future__ import annotations

import io
import re
import tokenize

__all__ = ["ALL_CODES", "noqa_lines"]

_NOQA_RE = re.compile(
    r"#\s*flagmw:\s*noqa\b(?P<tail>[^#]*)",
    re.IGNORECASE,
)
_CODE_RE = re.compile(r"\bFM\d{3}\b", re.IGNORECASE)
ALL_CODES = frozenset({"*"})


def noqa_lines(source: str) -> dict[int, frozenset[str]]:
    """``{line: codes}`` from ``# flagmw: noqa [CODES]`` comments (``{"*"}``: every
    code). Only real comments count, not the same text inside a string."""
    out: dict[int, frozenset[str]] = {}
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (tokenize.TokenError, SyntaxError):  # pragma: no cover - the file parsed
        return out
    for tok in tokens:
        if tok.type != tokenize.COMMENT:
            continue
        m = _NOQA_RE.search(tok.string)
        if m is None:
            continue
        tail = m.group("tail").lstrip(" \t:")
        codes = frozenset(c.upper() for c in _CODE_RE.findall(tail)) if tail else ALL_CODES
        out[tok.start[0]] = codes or ALL_CODES
    return out
