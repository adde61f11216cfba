"""What ``flagmw rollout status`` shows: per stage and arm, the aggregated outcomes;
for the current stage, each guardrail's verdict and the traffic split; the history.
"""

from __future__ import annotations

from typing import Any

from flagmw.rollout.aggregate import aggregate
from flagmw.rollout.controller import JUDGED, RolloutController
from flagmw.rollout.stages import Rollout

__all__ = ["shadow_summary", "status_report"]


def shadow_summary(ctl: RolloutController, r: Rollout) -> dict[str, Any] | None:
    """The shadow comparisons of ``r``'s candidate (:mod:`flagmw.rollout.shadow`):
    count, same-answer and same-tools rates, errors, median latencies; None when none."""
    rows = [
        o
        for o in ctl.store.outcomes(r.created_at - 30 * 86400)
        if o.get("kind") == "shadow"
        and o.get("agent") == r.agent
        and o.get("version") == r.candidate
    ]
    if not rows:
        return None
    n = len(rows)

    def median(key: str) -> float:
        values = sorted(float(o.get(key) or 0.0) for o in rows)
        return values[n // 2]

    return {
        "runs": n,
        "same_answer": sum(bool(o.get("same_answer")) for o in rows) / n,
        "same_tools": sum(bool(o.get("same_tools")) for o in rows) / n,
        "errors": sum(o.get("error") is not None for o in rows),
        "primary_latency_ms": median("primary_latency_ms"),
        "shadow_latency_ms": median("shadow_latency_ms"),
    }


def status_report(ctl: RolloutController, r: Rollout) -> dict[str, Any]:
    """A JSON-able report of rollout ``r`` (see the module docs)."""
    outcomes = ctl.outcomes(r)
    rows: list[dict[str, Any]] = []
    stages = sorted({float(o["stage"]) for o in outcomes if o.get("stage") is not None})
    for stage in stages:
        arms = (("candidate", r.candidate), ("shadow", r.candidate), ("baseline", r.baseline))
        for arm, version in arms:
            runs = [o for o in outcomes if o.get("stage") == stage and o.get("arm") == arm]
            if not runs:
                continue
            stats = aggregate(o for o in runs if o.get("outcome") in JUDGED)
            rows.append(
                {"stage": stage, "arm": arm, "version": version, "all_runs": len(runs)}
                | stats.to_dict()
            )
    ev = ctl.evaluate(r) if r.active else None
    return {
        "shadow": shadow_summary(ctl, r),
        "rollout": r.to_dict() | {"share": r.share, "in_shadow": r.in_shadow},
        "stages": rows,
        "guardrails": []
        if ev is None
        else [
            {"guardrail": v.guardrail, "status": v.status, "message": v.message}
            for v in ev.verdicts
        ],
        "srm": None
        if ev is None or r.in_shadow  # no traffic split in a shadow stage
        else {
            "candidate_units": ev.srm.candidate,
            "baseline_units": ev.srm.baseline,
            "expected": ev.srm.expected,
            "chi2": ev.srm.chi2,
            "p_value": ev.srm.p_value,
            "mismatch": ev.srm.mismatch,
        },
        "duration_met": None if ev is None else ev.duration_met,
        "runs_met": None if ev is None else ev.runs_met,
    }
