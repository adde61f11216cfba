"""Loading YAML and JSON documents while remembering where every node came from.

Validation errors must name the file and line of the offending node (YAML) or its
document path (JSON, Python dicts). :func:`load_document` returns the plain data
plus a :class:`Locator` that maps a document path (a tuple of keys and indexes)
to a ``"file:line"`` string.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

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


class _Builder:
    """Builds Python data from a composed YAML node tree, recording lines."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.lines: dict[DocPath, int] = {}
        self.problems: list[Problem] = []
        self.constructor = yaml.SafeLoader("")  # only its constructor methods are used

    def build(self, node: Node, path: DocPath) -> Any:
        self.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, MappingNode):
            self.constructor.flatten_mapping(node)
            out: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                key = self.constructor.construct_object(key_node, deep=True)
                if not isinstance(key, str | int | float | bool) and key is not None:
                    key = str(key)
                child = (*path, key if isinstance(key, str | int) else str(key))
                line = key_node.start_mark.line + 1
                if key in out:
                    self.problems.append(
                        Problem(
                            f"{self.source}:{line}",
                            format_path(child),
                            f"duplicate key {key!r} (first defined on line {self.lines[child]})",
                            "only the last one would be kept; remove or merge the duplicates",
                            "duplicate_key",
                        )
                    )
                self.lines[child] = line
                out[key] = self.build(value_node, child)
            return out
        if isinstance(node, SequenceNode):
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        assert isinstance(node, ScalarNode)
        return self.constructor.construct_object(node, deep=True)


def load_text(
    text: str, source: str = "<document>", *, fmt: str | None = None
) -> tuple[Any, Locator]:
    """Parse YAML or JSON text.

    Args:
        text: the document.
        source: the name used in locations (usually the file path).
        fmt: ``"yaml"`` or ``"json"``; guessed from ``source``'s suffix when None
            (YAML otherwise, which also reads most JSON).

    Returns:
        ``(data, locator)``.

    Raises:
        ValidationError: the text is not well-formed, or has duplicate keys.
    """
    if fmt is None:
        fmt = "json" if source.endswith(".json") else "yaml"
    if fmt == "json":
        return _load_json(text, source)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        problem = getattr(exc, "problem", None) or str(exc)
        raise ValidationError(
            [Problem(where, "", f"not valid YAML: {problem}", "fix the syntax", "syntax")], source
        ) from None
    if root is None:
        return None, Locator(source, {(): 1})
    builder = _Builder(source)
    try:
        data = builder.build(root, ())
    except yaml.YAMLError as exc:  # e.g. a bad !!tag
        raise ValidationError(
            [Problem(source, "", f"not valid YAML: {exc}", "fix the syntax", "syntax")], source
        ) from None
    if builder.problems:
        raise ValidationError(builder.problems, source)
    return data, Locator(source, builder.lines)


def _load_json(text: str, source: str) -> tuple[Any, Locator]:
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
        data = json.loads(text, object_pairs_hook=pairs)
    except json.JSONDecodeError as exc:
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


def load_document(source: str | os.PathLike[str] | Mapping[str, Any]) -> tuple[Any, Locator]:
    """Load a document from a path (YAML or JSON by suffix) or take a mapping as is.

    Raises:
        ValidationError: the file is missing, unreadable or malformed.
    """
    if isinstance(source, Mapping):
        return dict(source), Locator("<document>")
    path = Path(source)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValidationError(
            [Problem(str(path), "", "file not found", "check the path", "not_found")], str(path)
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValidationError(
            [Problem(str(path), "", f"cannot read the file: {exc}", "", "unreadable")], str(path)
        ) from None
    return load_text(text, str(path))
