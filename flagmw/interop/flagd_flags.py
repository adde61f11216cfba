"""flagd flag entries read for import: flag keys flagmw accepts, the type a flag's
variants imply, and flagd's array form of ``flags`` (``[{"key": …}, …]``)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from flagmw.core.flag_spec import MAX_KEY_LENGTH
from flagmw.core.source import Locator
from flagmw.errors import ValidationError

__all__ = ["flagmw_key", "flags_map", "infer_type"]


def flagmw_key(key: str) -> str:
    """A flag key flagmw accepts for a flagd key (``myFlag`` → ``my_flag``)."""
    text = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", key).lower()
    text = re.sub(r"[^a-z0-9_.-]+", "_", text).strip("._-")
    text = re.sub(r"\.{2,}", ".", text)
    if not text or not text[0].isalpha():
        text = "f_" + text
    return text[:MAX_KEY_LENGTH]


def infer_type(values: list[Any]) -> dict[str, Any]:
    """The flag definition (``{"type": …}``) the variants' values imply: all booleans →
    ``bool``, all integers → ``int``, all numbers → ``float``, all text → ``string``,
    anything else ``json``."""
    if all(isinstance(v, bool) for v in values):
        return {"type": "bool"}
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return {"type": "int"}
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return {"type": "float"}
    if all(isinstance(v, str) for v in values):
        return {"type": "string"}
    return {"type": "json"}


def flags_map(items: list[Any], loc: Locator) -> dict[str, Any]:
    """flagd's array form of ``flags`` as the mapping form.

    Raises:
        ValidationError: an entry without a ``key``, or a key given twice (located).
    """
    out: dict[str, Any] = {}
    problems = []
    for i, item in enumerate(items):
        key = item.get("key") if isinstance(item, Mapping) else None
        if not isinstance(key, str) or not key or key in out:
            what = "a duplicate key" if key in out else "no key"
            problems.append(loc.problem(("flags", i), f"flag {i} has {what}", "", "invalid"))
            continue
        out[key] = {k: v for k, v in item.items() if k != "key"}
    if problems:
        raise ValidationError(problems, loc.source)
    return out
