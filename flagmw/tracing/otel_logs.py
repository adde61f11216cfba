"""The one place flagmw touches OpenTelemetry's logs API, which is still experimental.

The ``feature_flag.evaluation`` event of the semantic conventions is a *log-based*
event (otel-conventions reference §1.1), and OpenTelemetry Python publishes its logs
API only under underscore modules: ``opentelemetry._logs`` (API) and
``opentelemetry.sdk._logs`` plus ``opentelemetry.exporter.otlp.proto.http._log_exporter``
(SDK and exporter). They may change or move in any release. Every import of them is
here, behind a guard: when they are missing or changed, the features that need them —
``RunTracer(evaluation_events=True)`` and ``configure(logs=True)`` — raise
:class:`LogsAPIUnavailable` naming the versions flagmw was tested with, and nothing else
in flagmw is affected (spans do not use these modules).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from opentelemetry._logs import Logger, LoggerProvider

__all__ = ["TESTED_VERSIONS", "LogsAPIUnavailable", "SDKLogs", "api", "get_logger", "sdk"]

#: The OpenTelemetry releases whose logs API flagmw was tested with.
TESTED_VERSIONS = "opentelemetry-api, -sdk and -exporter-otlp-proto-http 1.45.x"


class LogsAPIUnavailable(ImportError):
    """OpenTelemetry's experimental logs API is missing or not the one flagmw knows
    (the message names the installed and the tested versions)."""


def _installed_version() -> str:
    try:
        from opentelemetry.version import __version__
    except ImportError:  # pragma: no cover - opentelemetry-api always has it
        return "unknown"
    return str(__version__)


def _unavailable(feature: str, what: str) -> LogsAPIUnavailable:
    return LogsAPIUnavailable(
        f"{feature} needs OpenTelemetry's experimental logs API ({what}); flagmw is tested "
        f"with {TESTED_VERSIONS}, this environment has opentelemetry-api "
        f"{_installed_version()}: pip install 'opentelemetry-api~=1.45.0' "
        "'opentelemetry-sdk~=1.45.0', or leave the log-based events off"
    )


class _API:
    """The parts of ``opentelemetry._logs`` flagmw uses, checked once."""

    def __init__(self, module: Any) -> None:
        self.get_logger = module.get_logger
        self.get_logger_provider = module.get_logger_provider
        self.set_logger_provider = module.set_logger_provider
        self.Logger = module.Logger


_api: _API | None = None


def api(feature: str) -> _API:
    """``opentelemetry._logs`` (get_logger, get_logger_provider, set_logger_provider),
    checked to have the ``Logger.emit(event_name=..., attributes=..., context=...)``
    form flagmw calls.

    Args:
        feature: what needs it, for the error message (e.g.
            ``"RunTracer(evaluation_events=True)"``).

    Raises:
        LogsAPIUnavailable: the module is missing, or its ``emit`` lacks a keyword.
    """
    global _api
    if _api is not None:
        return _api
    try:
        from opentelemetry import _logs as module
    except ImportError as exc:
        raise _unavailable(feature, "opentelemetry._logs is missing") from exc
    try:
        found = _API(module)
        params = inspect.signature(found.Logger.emit).parameters
    except (AttributeError, TypeError, ValueError) as exc:
        raise _unavailable(feature, f"opentelemetry._logs changed: {exc}") from exc
    missing = [k for k in ("event_name", "attributes", "context") if k not in params]
    if missing:
        raise _unavailable(feature, f"Logger.emit has no {', '.join(missing)} keyword")
    _api = found
    return found


def get_logger(feature: str, version: str, provider: LoggerProvider | None) -> Logger:
    """``opentelemetry._logs.get_logger("flagmw", version, logger_provider=provider)``.

    Raises:
        LogsAPIUnavailable: see :func:`api`.
    """
    return api(feature).get_logger("flagmw", version, logger_provider=provider)  # type: ignore[no-any-return]


@dataclass(frozen=True)
class SDKLogs:
    """The SDK and exporter classes of the logs pipeline (``configure(logs=True)``)."""

    LoggerProvider: Any
    BatchLogRecordProcessor: Any
    SimpleLogRecordProcessor: Any
    ConsoleLogRecordExporter: Any
    OTLPLogExporter: Any


def sdk(feature: str) -> SDKLogs:
    """The SDK's logger provider, processors and exporters (``opentelemetry.sdk._logs``,
    ``opentelemetry.exporter.otlp.proto.http._log_exporter``).

    Raises:
        LogsAPIUnavailable: one of them is missing or renamed.
    """
    api(feature)
    try:
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
        from opentelemetry.sdk._logs import LoggerProvider
        from opentelemetry.sdk._logs.export import (
            BatchLogRecordProcessor,
            ConsoleLogRecordExporter,
            SimpleLogRecordProcessor,
        )
    except ImportError as exc:
        raise _unavailable(feature, f"{exc.name or exc} could not be imported") from exc
    return SDKLogs(
        LoggerProvider,
        BatchLogRecordProcessor,
        SimpleLogRecordProcessor,
        ConsoleLogRecordExporter,
        OTLPLogExporter,
    )
