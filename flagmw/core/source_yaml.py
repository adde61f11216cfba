"""The YAML side of :mod:`flagmw.core.source`: composing a YAML text into plain data and
the line of every node, within the document limits, refusing tags outside YAML's core
schema, merge keys and non-scalar keys. Imported by :func:`flagmw.core.source.load_text`
when it parses YAML.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from flagmw.core.limits import DocumentLimits, env_name
from flagmw.core.source import DocPath, Locator, _depth_problem, format_path
from flagmw.errors import Problem, ValidationError

__all__ = ["ALLOWED_TAGS", "load_yaml"]

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


#: PyYAML's libyaml-based loader (C) when installed: composing a 50 MB file takes
#: seconds instead of minutes; node marks (lines) are the same.
_COMPOSE_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(text: str, source: str, lim: DocumentLimits) -> tuple[Any, Locator]:
    """Parse YAML ``text`` (see :func:`flagmw.core.source.load_text`, which checked its
    size).

    Raises:
        ValidationError: as :func:`~flagmw.core.source.load_text`.
    """
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
