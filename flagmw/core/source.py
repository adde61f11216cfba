"""Loading YAML and JSON documents while remembering where every node came from.

Validation errors must name the file and line of the offending node (YAML) or its
document path (JSON, Python dicts). :func:`load_document` returns the plain data
plus a :class:`Locator` that maps a document path (a tuple of keys and indexes)
to a ``"file:line"`` string.

The YAML side (PyYAML, whose import costs a process ~10 ms) lives in
:mod:`flagmw.core.source_yaml` and is imported when a YAML text is parsed, so a process
that only locates problems or reads JSON (``flagmw kill`` with the registry stored in the
store) does not import it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flagmw.core.limits import DocumentLimits, env_name, limits
from flagmw.errors import Problem, ValidationError

__all__ = ["Locator", "format_path", "load_document", "load_text"]

DocPath = tuple[str | int, ...]


def format_path(path: DocPath) -> str:
    """Render a document path: ``("tenants", "acme", "values", "model.primary")`` →
    ``tenants.acme.values[model.primary]``; list indexes as ``rules[0]``."""
    out = ""
    for part in path:
        if isinstance(part, int) or "." in part or not part:
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


class Locator:
    """Maps document paths to source locations.

    Attributes:
        source: the file name (or ``"<document>"``) used in locations.
    """

    def __init__(self, source: str, lines: Mapping[DocPath, int] | None = None) -> None:
        self.source = source
        self._lines: dict[DocPath, int] = dict(lines or {})

    def __call__(self, path: DocPath) -> str:
        """``"file:line"`` of the node at ``path`` (or its nearest ancestor with a
        known line); just the source name when no line is known (JSON, dicts)."""
        p = tuple(path)
        while True:
            line = self._lines.get(p)
            if line is not None:
                return f"{self.source}:{line}"
            if not p:
                return self.source
            p = p[:-1]

    def problem(
        self,
        path: DocPath,
        message: str,
        hint: str = "",
        code: str = "invalid",
        *,
        severity: str = "error",
    ) -> Problem:
        """Build a :class:`~flagmw.errors.Problem` located at ``path``."""
        return Problem(self(path), format_path(path), message, hint, code, severity)


def _depth_problem(source: str, lim: DocumentLimits) -> ValidationError:
    return ValidationError(
        [
            Problem(
                source,
                "",
                f"nested too deep (limit {lim.max_depth:,})",
                f"if the document is really meant to be this deep, raise {env_name('max_depth')}",
                "too_large",
            )
        ],
        source,
    )


def load_text(
    text: str, source: str = "<document>", *, fmt: str | None = None
) -> tuple[Any, Locator]:
    """Parse YAML or JSON text, within the document limits (:mod:`flagmw.core.limits`).

    Args:
        text: the document.
        source: the name used in locations (usually the file path).
        fmt: ``"yaml"`` or ``"json"``; guessed from ``source``'s suffix when None
            (YAML otherwise, which also reads most JSON).

    Returns:
        ``(data, locator)``.

    Raises:
        ValidationError: the text is not well-formed, has duplicate keys, a tag outside
            YAML's core schema, a merge key, an impossible date or number, or exceeds a
            limit (each located; a limit names the variable that raises it).
    """
    if fmt is None:
        fmt = "json" if source.endswith(".json") else "yaml"
    lim = limits()
    if len(text) > lim.max_file_bytes:
        raise _size_problem(source, lim)
    if fmt == "json":
        return _load_json(text, source, lim)
    from flagmw.core.source_yaml import load_yaml

    return load_yaml(text, source, lim)


def _size_problem(source: str, lim: DocumentLimits) -> ValidationError:
    return ValidationError(
        [
            Problem(
                source,
                "",
                f"the document is larger than {lim.max_file_bytes:,} bytes",
                f"if it is really meant to be this big, raise {env_name('max_file_bytes')}",
                "too_large",
            )
        ],
        source,
    )


def _load_json(text: str, source: str, lim: DocumentLimits) -> tuple[Any, Locator]:
    duplicates: list[Problem] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in items:
            if k in out:
                duplicates.append(
                    Problem(
                        source,
                        "",
                        f"duplicate key {k!r}",
                        "remove or merge the duplicates",
                        "duplicate_key",
                    )
                )
            out[k] = v
        return out

    try:
        data = json.loads(text, object_pairs_hook=pairs, parse_constant=_json_constant)
    except RecursionError:
        raise _depth_problem(source, lim) from None
    except ValueError as exc:
        if not isinstance(exc, json.JSONDecodeError):  # e.g. a 5,000-digit integer
            raise ValidationError(
                [Problem(source, "", f"not valid JSON: {exc}", "", "syntax")], source
            ) from None
        raise ValidationError(
            [
                Problem(
                    f"{source}:{exc.lineno}",
                    "",
                    f"not valid JSON: {exc.msg}",
                    "fix the syntax",
                    "syntax",
                )
            ],
            source,
        ) from None
    if duplicates:
        # json reports no positions: JSON is (nearly always) YAML too, and the YAML
        # reader names each duplicate's path and line
        try:
            load_text(text, source, fmt="yaml")
        except ValidationError as exc:
            located = [p for p in exc.problems if p.code == "duplicate_key"]
            if located:
                raise ValidationError(located, source) from None
        raise ValidationError(duplicates, source)
    return data, Locator(source)


def _json_constant(name: str) -> Any:
    """``NaN`` / ``Infinity`` are not JSON (RFC 8259): refused, not read as floats."""
    raise ValueError(f"{name} is not a JSON number")


def load_document(source: str | os.PathLike[str] | Mapping[str, Any]) -> tuple[Any, Locator]:
    """Load a document from a path (YAML or JSON by suffix) or take a mapping as is.

    At most ``FLAGMW_MAX_FILE_BYTES`` are read (``/dev/zero`` is refused, not read to
    exhaustion); the text must be UTF-8.

    Raises:
        ValidationError: the file is missing, unreadable, too large or malformed.
    """
    if isinstance(source, Mapping):
        return dict(source), Locator("<document>")
    path = Path(source)
    lim = limits()
    try:
        with path.open("rb") as f:
            raw = f.read(lim.max_file_bytes + 1)
        if len(raw) > lim.max_file_bytes:
            raise _size_problem(str(path), lim)
        text = raw.decode("utf-8")
    except FileNotFoundError:
        raise ValidationError(
            [Problem(str(path), "", "file not found", "check the path", "not_found")], str(path)
        ) from None
    except UnicodeDecodeError as exc:
        raise ValidationError(
            [
                Problem(
                    str(path),
                    "",
                    f"the file is not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset "
                    f"{exc.start})",
                    "save it as UTF-8",
                    "unreadable",
                )
            ],
            str(path),
        ) from None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ValidationError(
            [Problem(str(path), "", f"cannot read the file: {reason}", "", "unreadable")],
            str(path),
        ) from None
    return load_text(text, str(path))
