"""``flagmw demo``: the Harbor refund-tool incident, replayed on a real LangGraph agent.

The support agent of :mod:`flagmw.examples.support_agent` (a hand-built ``StateGraph``
with a routed model, gated tools in a ``ToolNode``, a human-approval ``interrupt()``
and a loop cap) is wrapped with :func:`flagmw.wrap` and run against the embedded
default: a SQLite flag store (``flagmw.db``) and a SQLite checkpointer
(``checkpoints.db``) in a working folder. Its chat models are scripted (no hosted
model is reachable) but emit real tool calls; everything else is the real thing,
including a second OS process that issues the kill with the ``flagmw`` command.

The steps (:data:`~flagmw.examples.support_agent.steps.DEMO_STEPS`) each print what
happened and check it: a step that does not behave as described stops the demo with
one message and exit code 1. See ``docs/demo.md``. The steps live in
:mod:`~flagmw.examples.support_agent.story` (1-5) and
:mod:`~flagmw.examples.support_agent.incident` (6-9), on the plumbing of
:mod:`~flagmw.examples.support_agent.runner`; this module sets up the traces and runs
them.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

from rich.console import Console

# flagmw.examples is installed from examples/ (a package-dir mapping mypy cannot follow)
from flagmw.errors import FlagmwError
from flagmw.examples.support_agent.incident import Demo  # type: ignore[import-not-found,unused-ignore]
from flagmw.examples.support_agent.runner import DemoFailure  # type: ignore[import-not-found,unused-ignore]

__all__ = ["DemoFailure", "TracesNotExported", "main"]

#: How long the demo waits at the end for its spans to be exported, in milliseconds.
FLUSH_TIMEOUT_MS = 30_000


class TracesNotExported(Exception):
    """``--otlp-endpoint`` was given but the spans did not reach the collector (the
    message says how many, where, and the exporter's reason)."""


def _listening(endpoint: str) -> bool:
    """True when something accepts TCP connections at the endpoint's host and port."""
    parts = urlsplit(endpoint)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", port), timeout=1.0):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def _traces(otlp_endpoint: str | None, console_traces: bool, out: Console) -> Iterator[None]:
    """Export the spans of the runs (OTLP/HTTP and/or console) while the body runs; at
    the end flush them and raise :class:`TracesNotExported` when the OTLP export
    failed or did not finish (only when the body itself succeeded)."""
    if not otlp_endpoint and not console_traces:
        yield
        return
    from flagmw import tracing

    provider = tracing.configure(
        otlp_endpoint=otlp_endpoint, console=console_traces, service_name="flagmw-demo"
    )
    where = " and ".join(
        x for x in (otlp_endpoint and f"OTLP {otlp_endpoint}", console_traces and "console") if x
    )
    out.print(f"traces: exporting to {where} (service and Phoenix project: flagmw-demo)")
    if otlp_endpoint and not _listening(otlp_endpoint):
        out.print(
            f"[yellow]traces: warning: nothing accepts connections at {otlp_endpoint} yet; "
            "start the collector (e.g. phoenix serve) or the spans will be lost[/]"
        )
    try:
        yield
    except BaseException:
        provider.force_flush(FLUSH_TIMEOUT_MS)  # the spans of a failed demo help too
        raise
    flushed = provider.force_flush(FLUSH_TIMEOUT_MS)
    status = tracing.export_status(provider)
    if status is None:
        return  # console only
    url = ", ".join(status.endpoints)
    if status.failed:
        total = status.failed + status.exported
        raise TracesNotExported(
            f"traces were not exported: {status.failed} of {total} spans could not be sent "
            f"to {url} ({status.last_error}); is the collector running and listening there?"
        )
    if not flushed:
        raise TracesNotExported(
            f"traces were not exported: the export to {url} did not finish within "
            f"{FLUSH_TIMEOUT_MS // 1000} s ({status.exported} spans sent)"
        )
    out.print(f"traces: {status.exported} spans exported to {url}")


def main(
    workdir: str | os.PathLike[str] | None = None,
    otlp_endpoint: str | None = None,
    console_traces: bool = False,
) -> int:
    """Run the demo and return the process exit code.

    Args:
        workdir: the working folder for ``flagmw.db``, ``checkpoints.db`` and
            ``flags.yaml`` (created if missing; must not hold a previous demo). None: a
            new temporary folder (printed).
        otlp_endpoint: export the runs' spans over OTLP/HTTP to this URL (e.g.
            ``http://127.0.0.1:6006`` for Arize Phoenix).
        console_traces: print the spans to stdout.

    Returns:
        0 when every step behaved as described (and, with ``otlp_endpoint``, every span
        was exported); 1 otherwise, after printing one line ``flagmw demo: error: ...``
        to stderr (for a failed export: how many spans were lost, where, and why).
    """
    import tempfile

    console = Console(highlight=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        # rich falls back to 80 columns when writing to a pipe or file: too narrow for
        # the tables
        console = Console(highlight=False, width=120)
    wd = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="flagmw-demo-"))
    console.rule("[bold]flagmw demo: the Harbor refund-tool incident, replayed")
    demo: Demo | None = None
    try:
        with _traces(otlp_endpoint, console_traces, console):
            demo = Demo(wd.resolve(), console)
            try:
                demo.run()
            finally:
                demo.close()
    except (DemoFailure, FlagmwError, TracesNotExported, ValueError) as exc:
        sys.stdout.flush()
        print(f"flagmw demo: error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # one clear line instead of a traceback, but say what it was
        sys.stdout.flush()
        step = f" in step {demo.step_no}" if demo is not None else ""
        print(f"flagmw demo: error{step}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
