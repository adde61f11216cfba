"""The agreement check of a rollout's shadow stage: how often the candidate, run in the
shadow of a baseline run on the same input, gave the same final answer (pure).

The comparison records are those :class:`~flagmw.rollout.shadow.ShadowRunner` writes
(``kind: shadow``, with ``same_answer`` and ``error``); a comparison whose shadow failed
counts as a disagreement. Like a guardrail, the check is a deterministic threshold judged
only with ``min_runs`` comparisons (:class:`~flagmw.rollout.guardrails.Verdict`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from flagmw.rollout.guardrails import Verdict

__all__ = ["agreement_verdict", "comparisons"]


def comparisons(outcomes: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The shadow comparison records among ``outcomes``."""
    return [o for o in outcomes if o.get("kind") == "shadow"]


def agreement_verdict(
    outcomes: Iterable[Mapping[str, Any]], least: float, min_runs: int
) -> Verdict:
    """Judge ``same_answer_rate >= least`` (a fraction, 0–1) on the comparison records
    among ``outcomes``: ``insufficient`` below ``max(min_runs, 1)`` comparisons, else
    ``pass`` or ``fail`` with the numbers (``same answer 81.0 % < 90.0 % over 412 shadow
    runs``)."""
    rows = comparisons(outcomes)
    text = f"same_answer_rate >= {least:g}"
    n = len(rows)
    if n < max(min_runs, 1):
        return Verdict(
            text, "insufficient", None, least, f"same answer: {n} shadow runs, {min_runs} needed"
        )
    rate = sum(bool(o.get("same_answer")) for o in rows) / n
    ok = rate >= least - 1e-12
    sign = "≥" if ok else "<"
    message = f"same answer {rate * 100:.1f} % {sign} {least * 100:.1f} % over {n} shadow runs"
    return Verdict(text, "pass" if ok else "fail", rate, least, message)
