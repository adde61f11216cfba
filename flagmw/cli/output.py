r"""What the command prints: value and time formatting, rich tables in the house style,
the consoles, plain lines, and one JSON document for ``--json``.

**Terminal safety.** Everything the command shows a human passes :func:`printable`:
reasons, actors, tenants, authors, messages, keys, values and error messages come from
operators, flags files and request ids, and a control character or escape sequence in
them (``ESC[2J`` clear screen, an OSC 8 hyperlink or OSC 0 window title, a bidi
override, a zero-width or tag character hiding text) must never reach the terminal. It
is shown escaped instead, visibly, as Python writes it: ``\x1b``, ``\u202e``,
``\U000e0041``, ``\n``. The module is the one way out: :func:`console` (rich tables
and lines; its console escapes every string it renders and, as a backstop, every
segment it writes), :func:`write_lines` (the few plain lines of ``kill`` & co. and
every ``flagmw: …`` line on stderr) and :func:`write_json`. ``--json`` stays exact:
the same characters, written as JSON ``\uXXXX`` escapes.
``tests/test_hostile_operator_terminal.py`` fails when a CLI module writes to a stream
any other way.

rich is imported on first use, not with this module, so a command that prints a few
lines does not pay for the table machinery at start-up.
"""

from __future__ import annotations

import datetime as _dt
import functools
import json
import os
import sys
import unicodedata
from collections.abc import Iterable, Sequence
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
    "printable",
    "problems_table",
    "styled",
    "table",
    "write_json",
    "write_lines",
]


def _escape(ch: str) -> str:
    r"""One character as Python writes it in a string literal: ``\x1b``, ``\n``,
    ``\u202e``, ``\U000e0041``, ``\ud800`` (a lone surrogate)."""
    return ch.encode("unicode_escape").decode("ascii")


def _shown(ch: str, newlines: bool) -> str:
    if ch.isprintable() or (ch == "\n" and newlines):
        return ch
    if unicodedata.category(ch) == "Zs":  # a space (no-break, ideographic …): shown as is
        return ch
    return _escape(ch)


def printable(text: str, *, newlines: bool = False) -> str:
    r"""``text`` safe for a terminal: every character that is not printable is escaped
    visibly, the way Python writes it (``"\x1b[2J"`` → ``"\\x1b[2J"``).

    Not printable means :meth:`str.isprintable` is False and the character is not a
    space: C0 and C1 controls (ESC, BEL, CSI ``\x9b``, DEL, tab, carriage return,
    newline unless ``newlines``), format characters (bidi overrides and isolates
    ``\u202a``–``\u202e``, ``\u2066``–``\u2069``, zero-width characters, the tag
    characters ``\U000e0000``–``\U000e007f`` that hide text), lone surrogates (which
    cannot even be encoded for the terminal), line and paragraph separators, private-use
    and unassigned code points. Backslashes are left as they are. Printable text is
    returned unchanged (the same object).
    """
    if text.isprintable():
        return text
    shown = "".join([_shown(ch, newlines) for ch in text])
    return text if shown == text else shown


def write_lines(lines: Iterable[str], *, stderr: bool = False) -> None:
    """Plain lines on stdout (or stderr), each through :func:`printable` (so a reason
    holding a newline cannot fake a line of its own); rich is not loaded."""
    stream = sys.stderr if stderr else sys.stdout
    stream.write("".join(f"{printable(line)}\n" for line in lines))
    stream.flush()


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

    return Text(printable(text), style=style)


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

    stream = sys.stderr if stderr else sys.stdout
    width = None
    if "COLUMNS" not in os.environ and not stream.isatty():
        # Piped output (CI logs, files) is not cut at 80 columns: keep locations whole.
        width = 160
    # markup=False: flag paths such as ``values[model.primary]`` contain brackets that
    # rich would otherwise read as style tags and drop.
    return _safe_console_class()(
        file=stream, markup=False, highlight=False, width=width, soft_wrap=False
    )


@functools.cache
def _safe_console_class() -> type[Console]:
    """A rich ``Console`` that escapes what it shows (built on first use: rich is
    imported lazily)."""
    from rich.console import Console, ConsoleOptions, RenderableType
    from rich.segment import Segment
    from rich.text import Text

    class SafeConsole(Console):
        """Every string it renders — a line, a table cell — passes :func:`printable`
        before it is measured and laid out; every text segment it writes passes it
        again (the backstop for a ``rich.text.Text`` built elsewhere: alignment may
        suffer, the terminal never)."""

        def render_str(self, text: str, **kwargs: Any) -> Text:
            return super().render_str(printable(text, newlines=True), **kwargs)

        def render(
            self, renderable: RenderableType, options: ConsoleOptions | None = None
        ) -> Iterable[Segment]:
            for segment in super().render(renderable, options):
                text = segment.text
                if segment.control is None and not text.isprintable() and text != "\n":
                    safe = printable(text, newlines=True)
                    if safe is not text:
                        segment = Segment(safe, segment.style)
                yield segment

    return SafeConsole


def _json_escape(ch: str) -> str:
    r"""One character as JSON ``\uXXXX`` escapes (a surrogate pair above U+FFFF)."""
    code = ord(ch)
    if code > 0xFFFF:
        code -= 0x10000
        return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"
    return f"\\u{code:04x}"


def json_text(document: Any) -> str:
    r"""``document`` as indented JSON whose characters are all printable: JSON's own
    escapes cover C0 controls; every other character :func:`printable` would escape is
    written as ``\uXXXX`` (inside a JSON string, the only place it can be), so the
    document parses back to exactly the same data."""
    text = json.dumps(document, indent=2, ensure_ascii=False, default=str)
    if all(line.isprintable() for line in text.split("\n")):
        return text
    return "".join(
        [ch if ch == "\n" or _shown(ch, False) is ch else _json_escape(ch) for ch in text]
    )


def write_json(document: Any) -> None:
    """One JSON document on stdout (see :func:`json_text`)."""
    sys.stdout.write(json_text(document) + "\n")
    sys.stdout.flush()
