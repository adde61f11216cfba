"""What the command prints: value and time formatting, rich tables in the house style,
the consoles, and one JSON document for ``--json``.

rich is imported on first use, not with this module, so a command that prints a few
lines does not pay for the table machinery at start-up.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from flagmw.errors import Problem

if TYPE_CHECKING:  # pragma: no cover
    from rich.console import Console
    from rich.table import Table

__all__ = [
    "console",
    "format_left",
    "format_time",
    "format_value",
    "parse_scalar",
    "problems_table",
    "styled",
    "table",
    "write_json",
]


def format_time(t: float | None) -> str:
    """Seconds since the epoch → UTC ISO-8601 to the second, e.g. ``2026-11-21T05:56:38Z``."""
    if t is None:
        return "-"
    return _dt.datetime.fromtimestamp(t, tz=_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def format_left(seconds: float) -> str:
    """A remaining time as its two most significant units, rounded down:
    ``14399`` → ``"3h59m"``, ``90061`` → ``"1d1h"``, ``75`` → ``"1m15s"``, ``0`` → ``"0s"``."""
    left = int(seconds)
    if left <= 0:
        return "0s"
    units: list[tuple[int, str]] = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        n, left = divmod(left, size)
        units.append((n, unit))
    first = next(i for i, (n, _) in enumerate(units) if n)
    return "".join(f"{n}{u}" for n, u in units[first : first + 2] if n)


def format_value(value: Any) -> str:
    """A flag value as compact JSON (``true``, ``"gpt-4o"``, ``["a", "b"]``), so types
    stay visible: the string ``"8"`` and the int ``8`` print differently."""
    try:
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    except (TypeError, ValueError):
        return repr(value)


def parse_scalar(text: str) -> Any:
    """Command-line text → a value: JSON first, then a YAML scalar or flow collection
    (so ``true``, ``8``, ``1.5``, ``[a, b]`` and ``{"k": 1}`` all work), else the text."""
    try:
        return json.loads(text)
    except ValueError:
        pass
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def styled(text: str, style: str) -> Any:
    """``text`` with a rich style (a :class:`rich.text.Text`), for a table cell or a line."""
    from rich.text import Text

    return Text(text, style=style)


def table(*columns: str, title: str | None = None) -> Table:
    """A rich table with the house style (no outer edge; cells fold instead of being
    cut)."""
    from rich.table import Table

    out = Table(title=title, title_justify="left", show_edge=False, pad_edge=False)
    for name in columns:
        out.add_column(name, overflow="fold")
    return out


def problems_table(problems: Sequence[Problem]) -> Table:
    """Every problem with its ``file:line``, document path, message and hint."""
    t = table("location", "severity", "path", "message", "hint")
    t.columns[0].no_wrap = True
    for p in problems:
        style = "red" if p.severity == "error" else "yellow"
        t.add_row(p.location, styled(p.severity, style), p.path or "-", p.message, p.hint or "-")
    return t


def console(stderr: bool = False) -> Console:
    """A rich console on stdout (or stderr) in the house style."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    width = None
    if "COLUMNS" not in os.environ and not stream.isatty():
        # Piped output (CI logs, files) is not cut at 80 columns: keep locations whole.
        width = 160
    # markup=False: flag paths such as ``values[model.primary]`` contain brackets that
    # rich would otherwise read as style tags and drop.
    return Console(file=stream, markup=False, highlight=False, width=width, soft_wrap=False)


def write_json(document: Any) -> None:
    """One JSON document on stdout."""
    sys.stdout.write(json.dumps(document, indent=2, ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()
