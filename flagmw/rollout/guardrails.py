"""Guardrails: per-metric thresholds a candidate must hold, absolute and relative to the
baseline over the same window, judged only with enough runs (pure arithmetic).

A guardrail is a mapping (stored with the rollout) or the text form the CLI takes::

    error_rate <= 0.05                 absolute: at most 5 %
    error_rate <= baseline + 0.02      relative: at most 2 points above the baseline
    p95_latency_ms <= baseline * 1.5   relative: at most 1.5 × the baseline
    cost_per_run <= 0.45

Metrics: ``error_rate``, ``violation_rate`` (fractions), ``p95_latency_ms``,
``cost_per_run``, ``tokens_per_run`` (:class:`~flagmw.rollout.aggregate.Stats`).

These are deterministic thresholds (Flagger / Argo Rollouts style), not significance
tests: no p-value is claimed, so looking at every tick does not inflate one; noise at
small samples is held off by ``min_runs`` (candidate and, for a relative guardrail,
baseline runs in the window).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from flagmw.rollout.aggregate import Stats
from flagmw.rollout.stages import RolloutError

__all__ = ["DEFAULT_GUARDRAILS", "Verdict", "evaluate", "format_metric", "parse_guardrail"]

METRICS = ("error_rate", "violation_rate", "p95_latency_ms", "cost_per_run", "tokens_per_run")
_LABEL = {
    "error_rate": "error rate",
    "violation_rate": "violation rate",
    "p95_latency_ms": "p95 latency",
    "cost_per_run": "cost per run",
    "tokens_per_run": "tokens per run",
}
_TEXT = re.compile(
    r"^\s*(?P<metric>[a-z0-9_]+)\s*<=\s*(?:(?P<abs>[0-9.]+)|baseline\s*(?P<op>[+*])\s*(?P<val>[0-9.]+))\s*$"
)

#: error rate ≤ baseline + 2 points and ≤ 20 %; p95 ≤ 1.5 × baseline; cost ≤ 1.3 ×
#: baseline; violation rate ≤ baseline + 1 point
DEFAULT_GUARDRAILS: tuple[dict[str, Any], ...] = (
    {"metric": "error_rate", "max": 0.20},
    {"metric": "error_rate", "baseline_plus": 0.02},
    {"metric": "p95_latency_ms", "baseline_times": 1.5},
    {"metric": "cost_per_run", "baseline_times": 1.3},
    {"metric": "violation_rate", "baseline_plus": 0.01},
)


def parse_guardrail(text: str) -> dict[str, Any]:
    """The mapping of a text guardrail (see the module docs).

    Raises:
        RolloutError: not of that form, or an unknown metric.
    """
    m = _TEXT.match(text)
    if m is None:
        raise RolloutError(
            f"guardrail {text!r}: write METRIC <= VALUE, METRIC <= baseline + POINTS or "
            "METRIC <= baseline * FACTOR"
        )
    metric = m["metric"]
    if metric not in METRICS:
        raise RolloutError(f"guardrail {text!r}: unknown metric (use {', '.join(METRICS)})")
    try:
        if m["abs"] is not None:
            return {"metric": metric, "max": float(m["abs"])}
        kind = "baseline_plus" if m["op"] == "+" else "baseline_times"
        return {"metric": metric, kind: float(m["val"])}
    except ValueError:
        raise RolloutError(f"guardrail {text!r}: not a number") from None


def format_metric(metric: str, value: float | None) -> str:
    """A metric value for humans: rates in percent, latency in ms, cost with 4 decimals."""
    if value is None:
        return "-"
    if metric.endswith("_rate"):
        return f"{value * 100:.1f} %"
    if metric == "p95_latency_ms":
        return f"{value:.0f} ms"
    if metric == "cost_per_run":
        return f"{value:.4f}"
    return f"{value:.1f}"


def describe(g: Mapping[str, Any]) -> str:
    """The text form of a guardrail mapping."""
    if "max" in g:
        return f"{g['metric']} <= {g['max']:g}"
    if "baseline_plus" in g:
        return f"{g['metric']} <= baseline + {g['baseline_plus']:g}"
    return f"{g['metric']} <= baseline * {g['baseline_times']:g}"


@dataclass(frozen=True)
class Verdict:
    """One guardrail judged: ``status`` is ``pass``, ``fail`` or ``insufficient`` (too
    few runs to judge); ``message`` says it with the numbers, e.g. ``error rate 7.1 % >
    baseline 2.0 % + 2 points over 412 runs``."""

    guardrail: str
    status: Literal["pass", "fail", "insufficient"]
    value: float | None
    limit: float | None
    message: str


def evaluate(g: Mapping[str, Any], candidate: Stats, baseline: Stats, min_runs: int) -> Verdict:
    """Judge guardrail ``g`` on the window's candidate and baseline stats."""
    metric = str(g["metric"])
    label = _LABEL.get(metric, metric)
    text = describe(g)
    if candidate.runs < max(min_runs, 1):
        return Verdict(
            text,
            "insufficient",
            None,
            None,
            f"{label}: {candidate.runs} candidate runs, {min_runs} needed",
        )
    value = candidate.metric(metric)
    if "max" in g:
        limit = float(g["max"])
        limit_text = format_metric(metric, limit)
    else:
        if baseline.runs < max(min_runs, 1):
            return Verdict(
                text,
                "insufficient",
                value,
                None,
                f"{label}: {baseline.runs} baseline runs, {min_runs} needed",
            )
        base = baseline.metric(metric)
        if base is None:
            return Verdict(text, "insufficient", value, None, f"{label}: no baseline value")
        if "baseline_plus" in g:
            delta = float(g["baseline_plus"])
            limit = base + delta
            pts = delta * 100
            points = (
                f"{pts:g} point{'' if pts == 1 else 's'}"
                if metric.endswith("_rate")
                else f"{delta:g}"
            )
            limit_text = f"baseline {format_metric(metric, base)} + {points}"
        else:
            factor = float(g["baseline_times"])
            limit = base * factor
            limit_text = f"baseline {format_metric(metric, base)} × {factor:g}"
    if value is None:
        return Verdict(text, "insufficient", None, limit, f"{label}: no value")
    ok = value <= limit + 1e-12
    sign = "≤" if ok else ">"
    message = (
        f"{label} {format_metric(metric, value)} {sign} {limit_text} over {candidate.runs} runs"
    )
    return Verdict(text, "pass" if ok else "fail", value, limit, message)
