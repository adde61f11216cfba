"""Run outcomes aggregated per version and stage: the numbers guardrails compare.

Pure: a list of outcome records (as :class:`~flagmw.rollout.outcomes.OutcomeRecorder`
stores them) in, :class:`Stats` out. The p95 is the nearest-rank percentile
(``ceil(0.95 n)``-th smallest), the convention of Flagger and Argo Rollouts' Prometheus
queries rounded to an observed value.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["FAILED_OUTCOMES", "Stats", "aggregate", "by_version_stage", "percentile"]

#: outcomes that count as an error of the run
FAILED_OUTCOMES = frozenset({"failed"})


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile ``q`` (0–100) of ``values``; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True)
class Stats:
    """Aggregates of a set of runs.

    Attributes:
        runs: how many outcomes.
        errors: how many ``failed``.
        violations: runs with at least one policy violation.
        error_rate, violation_rate: fractions (0–1); 0 when ``runs`` is 0.
        p95_latency_ms: nearest-rank p95 of latency in milliseconds (None: no runs).
        cost_per_run: mean cost (the price table's currency) per run.
        tokens_per_run: mean input + output tokens per run.
        tool_errors: tool calls that raised, summed.
    """

    runs: int
    errors: int
    violations: int
    p95_latency_ms: float | None
    cost: float
    tokens: int
    tool_errors: int

    @property
    def error_rate(self) -> float:
        return self.errors / self.runs if self.runs else 0.0

    @property
    def violation_rate(self) -> float:
        return self.violations / self.runs if self.runs else 0.0

    @property
    def cost_per_run(self) -> float:
        return self.cost / self.runs if self.runs else 0.0

    @property
    def tokens_per_run(self) -> float:
        return self.tokens / self.runs if self.runs else 0.0

    def metric(self, name: str) -> float | None:
        """A guardrail metric by name: ``error_rate``, ``violation_rate``,
        ``p95_latency_ms``, ``cost_per_run``, ``tokens_per_run``."""
        if name == "p95_latency_ms":
            return self.p95_latency_ms
        return float(getattr(self, name))

    def to_dict(self) -> dict[str, Any]:
        return {
            "runs": self.runs,
            "errors": self.errors,
            "error_rate": self.error_rate,
            "violation_rate": self.violation_rate,
            "p95_latency_ms": self.p95_latency_ms,
            "cost_per_run": self.cost_per_run,
            "tokens_per_run": self.tokens_per_run,
            "tool_errors": self.tool_errors,
        }


def aggregate(outcomes: Iterable[Mapping[str, Any]]) -> Stats:
    """:class:`Stats` of ``outcomes``."""
    runs = errors = violations = tokens = tool_errors = 0
    cost = 0.0
    latencies: list[float] = []
    for o in outcomes:
        runs += 1
        if o.get("outcome") in FAILED_OUTCOMES:
            errors += 1
        if o.get("violations"):
            violations += 1
        latencies.append(float(o.get("latency_ms") or 0.0))
        cost += float(o.get("cost") or 0.0)
        tokens += int(o.get("input_tokens") or 0) + int(o.get("output_tokens") or 0)
        tool_errors += int(o.get("tool_errors") or 0)
    return Stats(runs, errors, violations, percentile(latencies, 95), cost, tokens, tool_errors)


def by_version_stage(
    outcomes: Iterable[Mapping[str, Any]],
) -> dict[tuple[str, str, Any], Stats]:
    """``(agent, version, stage)`` → :class:`Stats` (stage None for unstaged runs)."""
    groups: dict[tuple[str, str, Any], list[Mapping[str, Any]]] = {}
    for o in outcomes:
        key = (str(o.get("agent") or ""), str(o.get("version") or ""), o.get("stage"))
        groups.setdefault(key, []).append(o)
    return {k: aggregate(v) for k, v in sorted(groups.items(), key=lambda kv: str(kv[0]))}
