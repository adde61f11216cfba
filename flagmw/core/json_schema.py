"""JSON schemas of ``json`` flags, handled as untrusted input (issue 9 item 2).

A flags file is written by whoever can open a pull request or reach the store; its JSON
schemas are validated when the file is validated and published, and again by every
process that loads the registry. So a schema must never make flagmw reach the network or
the file system: ``jsonschema`` resolves a ``$ref`` it does not know by *retrieving* it
(``http://…``, ``file://…``), which made ``validate``, and later every ``status``,
``kill`` and ``explain`` on the store, send requests and print local files.

The rule: a schema may only refer to itself. Every ``$ref`` / ``$dynamicRef`` must be a
fragment (``#/$defs/address``, ``#anchor``) or an absolute URI that a ``$id`` inside the
same schema declares (optionally with a fragment). Anything else is a located validation
problem naming the reference, before any validator is built. The validators built here
use a ``referencing.Registry`` whose retrieval refuses every URI, so nothing is fetched
even if a reference slips past the check (it then fails as unresolvable, never as a
request).

``jsonschema`` (and ``referencing``) are imported on first use, so commands that never
look at a JSON flag's schema (``flagmw kill``) do not pay for them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

__all__ = ["compile_schema", "schema_problems"]

#: nesting depth of a schema that is walked (deeper is refused: a schema is a document)
MAX_SCHEMA_DEPTH = 64


def _walk(node: Any, depth: int = 0) -> Iterator[tuple[str, Any, int]]:
    """(keyword, value, depth) of every mapping entry of the schema, depth first."""
    if depth > MAX_SCHEMA_DEPTH:
        yield ("", None, depth)
        return
    if isinstance(node, Mapping):
        for k, v in node.items():
            yield (str(k), v, depth)
            yield from _walk(v, depth + 1)
    elif isinstance(node, list):
        for v in node:
            yield from _walk(v, depth + 1)


def _declared_ids(schema: Mapping[str, Any]) -> set[str]:
    ids: set[str] = set()
    for key, value, _ in _walk(schema):
        if key == "$id" and isinstance(value, str):
            ids.add(value.split("#", 1)[0])
    return ids


def schema_problems(schema: Mapping[str, Any]) -> list[str]:
    """Why ``schema`` cannot be used: references outside itself, too deep, or not a
    valid JSON schema (draft 2020-12). Empty when it is fine. Never touches the network
    or the file system."""
    problems: list[str] = []
    ids = _declared_ids(schema)
    for key, value, depth in _walk(schema):
        if depth > MAX_SCHEMA_DEPTH:
            return [f"the schema is nested deeper than {MAX_SCHEMA_DEPTH} levels"]
        if key in ("$ref", "$dynamicRef"):
            if not isinstance(value, str):
                problems.append(f"{key} must be a string, got {type(value).__name__}")
            elif not (value.startswith("#") or value.split("#", 1)[0] in ids):
                problems.append(
                    f"{key} {value!r} points outside the schema: flags files are untrusted, "
                    "so flagmw never fetches or reads a referenced schema; copy it under "
                    "$defs and refer to it as #/$defs/…"
                )
    if problems:
        return problems
    import jsonschema

    try:
        jsonschema.Draft202012Validator.check_schema(dict(schema))
    except jsonschema.SchemaError as exc:
        return [f"not a valid JSON schema: {exc.message}"]
    except RecursionError:
        return [f"the schema is nested deeper than {MAX_SCHEMA_DEPTH} levels"]
    return []


def _refuse(uri: str) -> Any:
    from referencing.exceptions import NoSuchResource

    raise NoSuchResource(ref=uri)  # type: ignore[call-arg]  # attrs class


def compile_schema(schema: Mapping[str, Any]) -> Any:
    """A ``jsonschema.Draft202012Validator`` for ``schema`` whose reference registry
    retrieves nothing (see the module docs).

    Raises:
        ValueError: :func:`schema_problems` found a problem (the first one).
    """
    problems = schema_problems(schema)
    if problems:
        raise ValueError(problems[0])
    import jsonschema
    from referencing import Registry

    registry = Registry(retrieve=_refuse)  # type: ignore[call-arg]  # attrs class
    return jsonschema.Draft202012Validator(dict(schema), registry=registry)
