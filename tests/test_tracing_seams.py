"""flagmw's seams into OpenTelemetry: the attribute limit comes from public
``SpanLimits`` (never a span's private ``_limits``), and the experimental logs API
(``opentelemetry._logs``) is reached through one guarded module that fails with a
clear message naming the tested versions."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
import types
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import snapshot_part
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.trace import SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from flagmw import EvaluationContext, Flag, FlagClient, FlagRegistry, MemoryStore
from flagmw.langgraph.run import RunState
from flagmw.tracing import LogsAPIUnavailable, RunTracer, otel_logs
from flagmw.tracing import attributes as A
from flagmw.tracing.limits import DEFAULT_ATTRIBUTE_LIMIT, attribute_limit


def client60() -> FlagClient:
    flags = [Flag(f"feature.f{i:02d}.enabled", "bool", True) for i in range(60)]
    return FlagClient(FlagRegistry(flags), MemoryStore())


def one_run(provider: TracerProvider, tracer: RunTracer, client: FlagClient) -> None:
    run = RunState(
        client=client,
        rc=client.resolve(EvaluationContext(tenant_id="acme")),
        name="agent",
        observers=(tracer,),
    )
    tracer.run_started(run)
    tracer.run_ended(run, "completed", None)


@pytest.fixture
def limited() -> Iterator[tuple[TracerProvider, InMemorySpanExporter, SpanLimits]]:
    limits = SpanLimits(max_span_attributes=40)
    exporter = InMemorySpanExporter()
    provider = TracerProvider(span_limits=limits)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter, limits
    provider.shutdown()


def test_the_limit_is_read_from_public_span_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", raising=False)
    monkeypatch.delenv("OTEL_ATTRIBUTE_COUNT_LIMIT", raising=False)
    assert attribute_limit(None) == DEFAULT_ATTRIBUTE_LIMIT == 128
    assert attribute_limit(SpanLimits(max_span_attributes=50)) == 50
    assert attribute_limit(SpanLimits(max_span_attributes=SpanLimits.UNSET)) is None
    monkeypatch.setenv("OTEL_ATTRIBUTE_COUNT_LIMIT", "70")
    assert attribute_limit(None) == 70
    monkeypatch.setenv("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "60")  # the span-specific one wins
    assert attribute_limit(None) == 60
    assert RunTracer().attribute_limit == 60


def test_the_writer_reads_no_private_field_of_a_span() -> None:
    from pathlib import Path

    import flagmw.tracing

    sources = Path(flagmw.tracing.__file__).parent.glob("*.py")
    offenders = [p.name for p in sources if "_limits" in p.read_text().replace("span_limits", "")]
    assert offenders == []


def test_provider_limits_passed_in_are_honoured(limited: Any) -> None:
    provider, exporter, limits = limited
    one_run(provider, RunTracer(tracer_provider=provider, span_limits=limits), client60())
    (span,) = exporter.get_finished_spans()
    a = dict(span.attributes or {})
    assert span.dropped_attributes == 0
    assert len(a) <= 40
    assert a[A.FLAG_COUNT] == 60
    assert a[A.FLAGS_TRUNCATED] is True
    assert A.CONFIG in a
    assert A.OUTCOME in a


def test_env_limit_is_honoured_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "40")
    exporter = InMemorySpanExporter()
    provider = TracerProvider()  # reads the same variable
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    one_run(provider, RunTracer(tracer_provider=provider), client60())
    (span,) = exporter.get_finished_spans()
    assert span.dropped_attributes == 0
    assert len(span.attributes or {}) <= 40
    provider.shutdown()


def test_a_lower_provider_limit_is_warned_about_once(
    limited: Any, caplog: pytest.LogCaptureFixture
) -> None:
    provider, exporter, _ = limited
    tracer = RunTracer(tracer_provider=provider)  # assumes 128: the provider allows 40
    client = client60()
    with caplog.at_level(logging.WARNING, logger="flagmw.tracing"):
        one_run(provider, tracer, client)
        one_run(provider, tracer, client)
    warnings = [r for r in caplog.records if r.name == "flagmw.tracing"]
    assert len(warnings) == 1
    assert "RunTracer(span_limits=" in warnings[0].getMessage()
    # the run-level attributes were re-set last: they survived the provider's eviction
    for span in exporter.get_finished_spans():
        a = dict(span.attributes or {})
        assert span.dropped_attributes > 0
        assert a[A.OUTCOME] == "completed"
        assert a[A.FLAG_COUNT] == 60
        assert A.OVERRIDE_IDS in a
        assert A.CHANGED_KEYS in a


# -- the experimental logs API behind one guard ------------------------------------------------


@pytest.fixture
def fresh_guard(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.setattr(otel_logs, "_api", None)
    return monkeypatch


def test_missing_logs_api_fails_at_set_up_naming_versions(fresh_guard: Any) -> None:
    import opentelemetry

    fresh_guard.setitem(sys.modules, "opentelemetry._logs", None)  # import fails
    fresh_guard.delattr(opentelemetry, "_logs", raising=False)
    with pytest.raises(LogsAPIUnavailable, match=r"1\.45") as err:
        RunTracer(evaluation_events=True)
    assert "evaluation_events=True" in str(err.value)
    assert isinstance(err.value, ImportError)
    RunTracer()  # spans do not need it


def test_changed_logs_api_is_detected(fresh_guard: Any) -> None:
    class Logger:
        def emit(self, record: Any = None, *, attributes: Any = None) -> None: ...

    changed = types.ModuleType("opentelemetry._logs")
    changed.get_logger = changed.get_logger_provider = changed.set_logger_provider = print  # type: ignore[attr-defined]
    changed.Logger = Logger  # type: ignore[attr-defined]
    fresh_guard.setitem(sys.modules, "opentelemetry._logs", changed)
    import opentelemetry

    fresh_guard.setattr(opentelemetry, "_logs", changed, raising=False)
    with pytest.raises(LogsAPIUnavailable, match="event_name, context"):
        RunTracer(evaluation_events=True)


def test_evaluation_events_still_work_through_the_guard(
    client: FlagClient, fresh_guard: Any
) -> None:
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor

    logs = InMemoryLogRecordExporter()
    lp = LoggerProvider()
    lp.add_log_record_processor(SimpleLogRecordProcessor(logs))
    tracer = RunTracer(tracer_provider=TracerProvider(), logger_provider=lp, evaluation_events=True)
    one_run(TracerProvider(), tracer, client)
    assert {r.log_record.event_name for r in logs.get_finished_logs()} == {
        "feature_flag.evaluation"
    }


@pytest.fixture
def client(memory_client: Any) -> FlagClient:
    c: FlagClient = memory_client(document=snapshot_part())
    return c


def test_configure_logs_without_the_logs_api_names_versions(tmp_path: Any) -> None:
    script = tmp_path / "no_logs.py"
    script.write_text(
        textwrap.dedent(
            """
            import sys
            sys.modules["opentelemetry.sdk._logs"] = None   # the SDK part is missing
            from flagmw.tracing import LogsAPIUnavailable, configure
            try:
                configure(console=True, logs=True)
            except LogsAPIUnavailable as exc:
                print("refused:", exc)
            """
        )
    )
    proc = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert "refused: flagmw.tracing.configure(logs=True) needs" in proc.stdout
    assert "1.45" in proc.stdout


@settings(max_examples=40, deadline=None)
@given(
    limit=st.integers(min_value=48, max_value=200),
    flags=st.integers(min_value=0, max_value=120),
    hot_every=st.integers(min_value=1, max_value=7),
    killed=st.integers(min_value=0, max_value=12),
)
def test_flagmw_never_evicts_under_any_limit_it_is_told(
    limit: int, flags: int, hot_every: int, killed: int
) -> None:
    """For every limit (down to 48), flag count and number of hot keys killed in flight,
    the writer's own attributes fit: nothing is dropped and the run-level record is
    complete."""
    limits = SpanLimits(max_span_attributes=limit)
    exporter = InMemorySpanExporter()
    provider = TracerProvider(span_limits=limits)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    registry = FlagRegistry(
        [
            Flag(f"f.{i:03d}", "bool", True, binding="hot" if i % hot_every == 0 else "pinned")
            for i in range(flags)
        ]
    )
    client = FlagClient(registry, MemoryStore())
    tracer = RunTracer(tracer_provider=provider, span_limits=limits, flag_budget=200)
    run = RunState(
        client=client,
        rc=client.resolve(EvaluationContext(tenant_id="acme", user_id="u-1")),
        name="agent",
        thread_id="t-1",
        observers=(tracer,),
    )
    tracer.run_started(run)
    hot = sorted(registry.hot_keys)[:killed]
    for key in hot:
        client.kill(key, reason="incident", actor="oncall", ttl="1h")
    if hot:
        assert run.refresh_hot(client.generation, step=1)
    tracer.run_ended(run, "completed", None)
    (span,) = exporter.get_finished_spans()
    a = dict(span.attributes or {})
    assert span.dropped_attributes == 0
    assert len(a) <= limit
    assert a[A.CHANGED_KEYS] == tuple(hot)
    assert a[A.CHANGE_COUNT] == len(hot)
    assert len(a[A.OVERRIDE_IDS]) == len(hot)
    assert a[A.FLAG_COUNT] == flags
    assert a[A.OUTCOME] == "completed"
    shown = [k for k in a if k.startswith(A.EFFECTIVE_PREFIX) and k.endswith(".value")]
    assert len(shown) == min(len(hot), 8, limit // 4)
    provider.shutdown()
