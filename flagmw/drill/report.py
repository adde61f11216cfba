"""What a drill measured, per repetition and per worker, and its summary."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

__all__ = ["DrillReport", "Repetition", "percentile"]


def percentile(values: list[float], q: float) -> float:
    """The sample at index ``int(q * n)`` of the sorted values (the benchmarks' rule)."""
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))] if s else float("nan")


@dataclass(frozen=True, slots=True)
class Repetition:
    """One kill: how long ``kill()`` took to commit (ms), and per worker ``knows_ms``
    (commit → the worker's client generation moved), ``enforced_ms`` (commit → the
    first refused tool call) and ``after_enforcement`` (tool executions started after
    that worker enforced, before the kill ended: must be 0)."""

    commit_ms: float
    workers: list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class DrillReport:
    """A whole drill (see :func:`flagmw.drill.run_drill`)."""

    store: str
    workers: int
    tool_latency: float
    repetitions: list[Repetition]
    step_spacing_ms: list[float] = field(default_factory=list)

    @property
    def executions_after_enforcement(self) -> int:
        """Tool executions started after enforcement, over the whole drill (must be 0)."""
        return sum(int(w["after_enforcement"]) for r in self.repetitions for w in r.workers)

    def per_worker(self) -> list[dict[str, Any]]:
        """Per worker: p50/p95/p99/max of ``knows_ms`` and ``enforced_ms``."""
        out = []
        for i in range(self.workers):
            row: dict[str, Any] = {"worker": i}
            for name in ("knows_ms", "enforced_ms"):
                vals = [float(r.workers[i][name]) for r in self.repetitions]
                for q, label in ((0.5, "p50"), (0.95, "p95"), (0.99, "p99")):
                    row[f"{name[:-3]}_{label}_ms"] = percentile(vals, q)
                row[f"{name[:-3]}_max_ms"] = max(vals) if vals else float("nan")
            row["after_enforcement"] = sum(
                int(r.workers[i]["after_enforcement"]) for r in self.repetitions
            )
            out.append(row)
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON primitives: the summary, per worker, and every repetition."""
        every = [max(float(w["enforced_ms"]) for w in r.workers) for r in self.repetitions]
        knows = [float(w["knows_ms"]) for r in self.repetitions for w in r.workers]
        return {
            "store": self.store,
            "workers": self.workers,
            "repetitions": len(self.repetitions),
            "tool_latency_s": self.tool_latency,
            "step_spacing_ms_median": statistics.median(self.step_spacing_ms)
            if self.step_spacing_ms
            else None,
            "knows_p99_ms": percentile(knows, 0.99),
            "all_enforced_p50_ms": percentile(every, 0.5),
            "all_enforced_max_ms": max(every) if every else None,
            "executions_after_enforcement": self.executions_after_enforcement,
            "per_worker": self.per_worker(),
            "runs": [{"commit_ms": r.commit_ms, "workers": r.workers} for r in self.repetitions],
        }
