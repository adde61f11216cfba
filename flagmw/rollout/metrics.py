"""Run outcomes as OpenTelemetry metrics, so dashboards can slice by config revision,
version, stage and tenant.

Instruments (meter ``flagmw``): ``flagmw.agent.runs`` (counter, ``{run}``),
``flagmw.agent.run.duration`` (histogram, ``ms``), ``flagmw.agent.tokens`` (counter,
``{token}``, attribute ``gen_ai.token.type`` = ``input`` / ``output``, as the GenAI
semantic conventions name it), ``flagmw.agent.cost`` (counter), ``flagmw.agent.violations``
(counter). Attributes: ``gen_ai.agent.name``, ``flagmw.snapshot_rev``,
``flagmw.agent.version``, ``flagmw.rollout.stage``, ``flagmw.tenant_id``,
``flagmw.run.outcome``. Without an SDK meter provider the API's no-op meter is used.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["OutcomeMetrics"]


class OutcomeMetrics:
    """Emits one outcome record as metric points.

    Args:
        meter_provider: an OpenTelemetry ``MeterProvider`` (default: the global one).
    """

    def __init__(self, meter_provider: Any = None) -> None:
        from opentelemetry import metrics

        meter = (meter_provider or metrics.get_meter_provider()).get_meter("flagmw")
        self._runs = meter.create_counter("flagmw.agent.runs", unit="{run}")
        self._duration = meter.create_histogram("flagmw.agent.run.duration", unit="ms")
        self._tokens = meter.create_counter("flagmw.agent.tokens", unit="{token}")
        self._cost = meter.create_counter("flagmw.agent.cost")
        self._violations = meter.create_counter("flagmw.agent.violations", unit="{violation}")

    @staticmethod
    def attributes(o: Mapping[str, Any]) -> dict[str, Any]:
        """The metric attributes of an outcome record (None values left out)."""
        attrs = {
            "gen_ai.agent.name": o.get("agent"),
            "flagmw.snapshot_rev": o.get("snapshot_rev"),
            "flagmw.agent.version": o.get("version"),
            "flagmw.rollout.stage": o.get("stage"),
            "flagmw.tenant_id": o.get("tenant"),
            "flagmw.run.outcome": o.get("outcome"),
        }
        return {k: v for k, v in attrs.items() if v is not None}

    def emit(self, o: Mapping[str, Any]) -> None:
        attrs = self.attributes(o)
        self._runs.add(1, attrs)
        self._duration.record(float(o.get("latency_ms") or 0.0), attrs)
        if o.get("input_tokens"):
            self._tokens.add(int(o["input_tokens"]), {**attrs, "gen_ai.token.type": "input"})
        if o.get("output_tokens"):
            self._tokens.add(int(o["output_tokens"]), {**attrs, "gen_ai.token.type": "output"})
        if o.get("cost"):
            self._cost.add(float(o["cost"]), attrs)
        if o.get("violations"):
            self._violations.add(len(o["violations"]), attrs)
