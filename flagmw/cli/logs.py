"""The library's log records on the command line: one ``flagmw: …`` line on stderr."""

from __future__ import annotations

import logging

from flagmw.cli.errors import one_line
from flagmw.cli.output import write_lines

__all__ = ["configure_logging"]


class _StderrHandler(logging.Handler):
    """Writes the library's log records to the *current* ``sys.stderr`` as one line each."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = one_line(record.getMessage())
            if not text.startswith("flagmw:"):
                text = f"flagmw: {text}"
            write_lines([text], stderr=True)
        except Exception:  # pragma: no cover - logging must never break the command
            self.handleError(record)


def configure_logging() -> None:
    """Route the ``flagmw`` logger's warnings to stderr (called by :func:`flagmw.cli.main`
    only, never at import, so an application's logging set-up is left alone)."""
    logger = logging.getLogger("flagmw")
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        handler = _StderrHandler(logging.WARNING)
        logger.addHandler(handler)
