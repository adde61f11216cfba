"""``FF_<KEY>`` process variables: typed values for the environment layer (local
development only)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from flagmw.core.flag_spec import FlagType
from flagmw.core.registry import FlagRegistry, env_var_name
from flagmw.core.source import Locator
from flagmw.errors import Problem, ValidationError

__all__ = ["read_env_values"]


def read_env_values(
    registry: FlagRegistry, environ: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Typed values of ``FF_<KEY>`` process variables (local development only).

    Text is parsed by type: bool ``true`` / ``false`` (any case); int and float as
    numbers; enum and string as is; json as JSON. ``FF_`` variables that match no flag
    are ignored.

    Raises:
        ValidationError: a variable whose value does not fit its flag, naming the
            variable.
    """
    environ = os.environ if environ is None else environ
    out: dict[str, Any] = {}
    problems: list[Problem] = []
    for flag in registry:
        name = env_var_name(flag.key)
        if name not in environ:
            continue
        text = environ[name]
        raw: Any = text
        try:
            if flag.type is FlagType.BOOL:
                low = text.strip().lower()
                raw = {"true": True, "false": False}.get(low, text)
            elif flag.type is FlagType.INT:
                raw = int(text.strip())
            elif flag.type is FlagType.FLOAT:
                raw = float(text.strip())
            elif flag.type is FlagType.JSON:
                try:
                    raw = json.loads(text)
                except ValueError as exc:
                    problems.append(
                        Problem(
                            f"${name}",
                            "",
                            f"{flag.key} is a json flag; ${name} is not valid JSON: {exc}",
                            "quote strings inside the JSON, e.g. FF_X='[\"a\"]'",
                            "wrong_type",
                        )
                    )
                    continue
        except ValueError:
            pass
        value, problem = flag.check(raw, Locator(f"${name}"), ())
        if problem is not None:
            problems.append(problem)
        else:
            out[flag.key] = value
    if problems:
        raise ValidationError(problems, "process environment (FF_ variables)")
    return out
