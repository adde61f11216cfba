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


#: The tags a flags file may use: YAML 1.2's core schema (str, int, float, bool, null,
#: map, seq) plus the timestamp PyYAML's safe resolver gives dates (``expires``).
_CORE = "tag:yaml.org,2002:"
ALLOWED_TAGS = frozenset(
    _CORE + t for t in ("str", "int", "float", "bool", "null", "map", "seq", "timestamp")
)


class _TooMuch(Exception):
    """A limit was exceeded while building (carries the problem)."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.message)
        self.problem = problem


class _Builder:
    """Builds Python data from a composed YAML node tree, recording lines, within the
    document limits (:mod:`flagmw.core.limits`), refusing tags outside the core schema,
    merge keys and non-scalar keys, each as a located problem."""

    def __init__(self, source: str, lim: DocumentLimits) -> None:
        self.source = source
        self.lines: dict[DocPath, int] = {}
        self.problems: list[Problem] = []
        self.constructor = yaml.SafeLoader("")  # only its constructor methods are used
        self.limits = lim
        self.nodes = 0
        self.alias_nodes = 0
        self.in_alias = 0
        self.collections: set[int] = set()

    def _where(self, node: Node) -> str:
        return f"{self.source}:{node.start_mark.line + 1}"

    def _limit(self, node: Node, path: DocPath, what: str, limit: str, value: int) -> _TooMuch:
        return _TooMuch(
            Problem(
                self._where(node),
                format_path(path),
                f"{what} (limit {value:,})",
                f"if the document is really meant to be this big, raise {env_name(limit)}",
                "too_large",
            )
        )

    def _count(self, node: Node, path: DocPath) -> None:
        self.nodes += 1
        if self.nodes > self.limits.max_nodes:
            raise self._limit(node, path, "too many nodes", "max_nodes", self.limits.max_nodes)
        if self.in_alias:
            self.alias_nodes += 1
            if self.alias_nodes > self.limits.max_alias_nodes:
                raise self._limit(
                    node,
                    path,
                    "YAML aliases expand to too many nodes (an alias bomb?)",
                    "max_alias_nodes",
                    self.limits.max_alias_nodes,
                )

    def _bad(self, node: Node, path: DocPath, message: str, hint: str, code: str) -> None:
        self.problems.append(Problem(self._where(node), format_path(path), message, hint, code))

    def build(self, node: Node, path: DocPath) -> Any:
        self._count(node, path)
        if len(path) > self.limits.max_depth:
            raise self._limit(node, path, "nested too deep", "max_depth", self.limits.max_depth)
        self.lines.setdefault(path, node.start_mark.line + 1)
        if node.tag not in ALLOWED_TAGS:
            self._bad(
                node,
                path,
                f"YAML tag {node.tag!r} is not allowed",
                "flags files use plain YAML values (strings, numbers, booleans, null, "
                "lists, mappings, dates): remove the tag",
                "yaml_tag",
            )
            return None
        if isinstance(node, MappingNode | SequenceNode):
            if id(node) in self.collections:  # an alias: built again
                self.in_alias += 1
                try:
                    return self._collection(node, path)
                finally:
                    self.in_alias -= 1
            self.collections.add(id(node))
            return self._collection(node, path)
        assert isinstance(node, ScalarNode)
        try:
            return self.constructor.construct_object(node, deep=True)
        except (ValueError, OverflowError, yaml.YAMLError) as exc:
            kind = node.tag.removeprefix(_CORE)
            self._bad(
                node,
                path,
                f"not a valid {kind}: {node.value[:80]!r} ({str(exc)[:120]})",
                "quote it to make it a string" if kind != "str" else "",
                "wrong_type",
            )
            return None

    def _collection(self, node: MappingNode | SequenceNode, path: DocPath) -> Any:
        if isinstance(node, SequenceNode):
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _CORE + "merge":
                self._bad(
                    key_node,
                    path,
                    "YAML merge keys (<<) are not supported",
                    "write the values out (a segment or a tenant overlay shares settings)",
                    "yaml_tag",
                )
                continue
            if not isinstance(key_node, ScalarNode):
                self._bad(
                    key_node,
                    path,
                    "a mapping key must be a plain value, not a list or a mapping",
                    "",
                    "wrong_type",
                )
                continue
            key = self.build(key_node, (*path, "<key>"))
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


def _yaml_error(exc: yaml.YAMLError, source: str) -> ValidationError:
    mark = getattr(exc, "problem_mark", None)
    where = f"{source}:{mark.line + 1}" if mark is not None else source
    problem = getattr(exc, "problem", None) or str(exc)
    return ValidationError(
        [Problem(where, "", f"not valid YAML: {problem}", "fix the syntax", "syntax")], source
    )


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


#: PyYAML's libyaml-based loader (C) when installed: composing a 50 MB file takes
#: seconds instead of minutes; node marks (lines) are the same.
_COMPOSE_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


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
    try:
        root = yaml.compose(text, Loader=_COMPOSE_LOADER)
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, source) from None
    except UnicodeError:  # a lone surrogate in text handed to the API
        raise ValidationError(
            [Problem(source, "", "the text is not valid Unicode (a lone surrogate)", "", "syntax")],
            source,
        ) from None
    except RecursionError:
        raise _depth_problem(source, lim) from None
    if root is None:
        return None, Locator(source, {(): 1})
    builder = _Builder(source, lim)
    try:
        data = builder.build(root, ())
    except _TooMuch as exc:
        raise ValidationError([exc.problem], source) from None
    except RecursionError:
        raise _depth_problem(source, lim) from None
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, source) from None
    if builder.problems:
        raise ValidationError(builder.problems, source)
    return data, Locator(source, builder.lines)


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
